//! klp-web: klp-core (with the passes) and klp-shell compiled to wasm32, running the guest
//! kernel and its modules on the browser's own WebAssembly engine.
//!
//! The page (`web/www/`) fetches the guest kernel, boots a [`Kernel`] (which embeds the modules
//! at `/lib/modules/<release>`, as the `klp` command does) and talks to it in JSON strings: shell
//! output, the ftrace table, the module files, the module and patch list, and
//! `/sys/kernel/livepatch`. Files dropped on the page are written into the kernel's `/tmp`.

mod engine;
mod json;

use engine::WebEngine;
use json::Json;
use klp_core::engine::Engine;
use klp_core::fs::WriteError;
use klp_core::fs::modules::ModuleFiles;
use klp_core::kernel::run_task;
use klp_shell::{self as shell, Host, Shell};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Panics go to the console (the default hook has nowhere to write on wasm32).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| console_error(&format!("klp-web: {info}"))));
}

/// Whether a module file is a livepatch module (`livepatch=Y` in its `.modinfo`).
#[wasm_bindgen]
pub fn is_livepatch(wasm: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(Result::ok)
        .any(|payload| match payload {
            wasmparser::Payload::CustomSection(s) if s.name() == ".modinfo" => {
                s.data().split(|&b| b == 0).any(|kv| kv == b"livepatch=Y")
            }
            _ => false,
        })
}

/// The shell's surroundings in the page: output is collected per run.
struct Page {
    output: Vec<(char, String)>,
}

impl Page {
    fn push(&mut self, stream: char, text: &str) {
        match self.output.last_mut() {
            Some((s, t)) if *s == stream => t.push_str(text),
            _ => self.output.push((stream, text.to_string())),
        }
    }
}

impl Host for Page {
    fn out(&mut self, text: &str) {
        self.push('o', text);
    }
    fn err(&mut self, text: &str) {
        self.push('e', text);
    }
    fn sleep(&mut self, seconds: f64) {
        // The shell runs synchronously; a page cannot block otherwise. Capped at 10 s.
        let until = js_sys::Date::now() + seconds.clamp(0.0, 10.0) * 1000.0;
        while js_sys::Date::now() < until {}
    }
}

/// A booted kernel in the page.
#[wasm_bindgen]
pub struct Kernel {
    engine: WebEngine,
    shell: Shell,
}

#[wasm_bindgen]
impl Kernel {
    /// Instruments `kernel`, instantiates it in the browser's engine and boots it.
    ///
    /// # Errors
    /// Whatever stops the boot, as text.
    #[wasm_bindgen(constructor)]
    pub fn new(kernel: &[u8], cmdline: &str) -> Result<Kernel, JsError> {
        // No stack switching in the browser: the kernel runs without tasks.
        let image = klp_core::kernel::prepare_for(kernel, cmdline, true, false)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let mut engine = WebEngine::instantiate_kernel(&image.wasm, image.state)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let modules = ModuleFiles::embedded(klp_artifacts::MODULES);
        klp_core::kernel::boot(&mut engine, modules).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Kernel {
            engine,
            shell: Shell::new(shell::Options::default()),
        })
    }

    /// Writes a file (one dropped on the page) into the kernel's namespace, e.g.
    /// `/tmp/fix.wasm`, where `insmod /tmp/fix.wasm` finds it.
    ///
    /// # Errors
    /// The kernel's refusal, as `PATH: reason`.
    pub fn put_file(&mut self, path: &str, data: &[u8]) -> Result<(), JsError> {
        let written = run_task(&mut self.engine, "sh", |e| {
            klp_core::fs::write_file(e, path, data, false).map_err(|err| match err {
                WriteError::Open(err) | WriteError::Write(err) => err,
            })
        });
        written.map_err(|err| JsError::new(&format!("{path}: {err}")))
    }

    /// The module files in `/lib/modules/<release>`, as `ls` lists them:
    /// `{"dir":"/lib/modules/R","files":[{"name","size","livepatch"}]}`.
    pub fn module_files(&mut self) -> String {
        let dir = klp_core::fs::modules_dir(&mut self.engine);
        let entries = klp_core::fs::list_dir(&mut self.engine, &dir).unwrap_or_default();
        let mut j = Json::object_root();
        j.key("dir").str(&dir).key("files").array();
        for entry in entries.iter().filter(|en| !klp_core::fs::is_dir(&en.stat)) {
            let path = format!("{dir}/{}", entry.name);
            let wasm = klp_core::fs::read_file(&mut self.engine, &path).unwrap_or_default();
            j.object()
                .key("name")
                .str(&entry.name)
                .key("size")
                .num(entry.stat.size)
                .key("livepatch")
                .bool(is_livepatch(&wasm))
                .end();
        }
        j.end();
        j.finish()
    }

    /// Runs a shell script as `klp run -c` does:
    /// `{"status":N,"output":[["o"|"e", text], ...]}`.
    pub fn run(&mut self, script: &str) -> String {
        let mut page = Page { output: Vec::new() };
        let status = self.shell.run(&mut self.engine, &mut page, script);
        let mut j = Json::object_root();
        j.key("status").num(status);
        j.key("output").array();
        for (stream, text) in &page.output {
            j.array().str(&stream.to_string()).str(text).end();
        }
        j.end();
        j.finish()
    }

    /// The ftrace table's patched functions, one row per non-empty func_stack:
    /// `{"slots":N,"table":N,"rows":[{"slot","name","owner","stack":[{"patch","slot","func"}],
    /// "points_to":{"slot","func","original"}}]}`, stacks newest first. Where a slot points is read
    /// from the table itself (function identity), not from the core's bookkeeping.
    pub fn ftrace(&mut self) -> String {
        struct Row {
            slot: u32,
            orig: Option<u32>,
            name: String,
            owner: String,
            stack: Vec<(String, u32, String)>,
        }
        let (slots, rows) = self.engine.with_state(|s| {
            let func = |slot: u32| match s.kallsyms.func_by_slot(slot) {
                Some(sym) => match &sym.module {
                    Some(m) => format!("{} [{m}]", sym.name),
                    None => sym.name.clone(),
                },
                None => format!("slot {slot}"),
            };
            let lp = &s.livepatch;
            let rows: Vec<Row> = lp
                .func_stacks()
                .iter()
                .filter(|(_, stack)| !stack.is_empty())
                .map(|(slot, stack)| {
                    let info = s.ftrace.info(slot);
                    let slot = slot.index();
                    Row {
                        slot,
                        orig: info.map(|i| i.orig),
                        name: func(slot),
                        owner: info
                            .and_then(|i| i.owner.clone())
                            .unwrap_or_else(|| "vmlinux".into()),
                        stack: stack
                            .iter()
                            .rev()
                            .map(|en| {
                                let patch = lp.get(en.patch()).map(|p| p.name().to_string());
                                let new = en.new_func().index();
                                (patch.unwrap_or_default(), new, func(new))
                            })
                            .collect(),
                    }
                })
                .collect();
            (s.ftrace.len(), rows)
        });
        let table = self.engine.table_len();
        let mut j = Json::object_root();
        j.key("slots").num(slots as u32).key("table").num(table);
        j.key("rows").array();
        for row in &rows {
            j.object()
                .key("slot")
                .num(row.slot)
                .key("name")
                .str(&row.name)
                .key("owner")
                .str(&row.owner);
            j.key("stack").array();
            for (patch, slot, func) in &row.stack {
                j.object()
                    .key("patch")
                    .str(patch)
                    .key("slot")
                    .num(*slot)
                    .key("func")
                    .str(func)
                    .end();
            }
            j.end();
            j.key("points_to").object();
            if let Some((_, slot, func)) = row
                .stack
                .iter()
                .find(|(_, new, _)| self.engine.same_entry(row.slot, *new))
            {
                j.key("slot").num(*slot).key("func").str(func);
                j.key("original").bool(false);
            } else if let Some(orig) = row.orig.filter(|&o| self.engine.same_entry(row.slot, o)) {
                j.key("slot").num(orig).key("func").str(&row.name);
                j.key("original").bool(true);
            } else {
                j.key("slot")
                    .null()
                    .key("func")
                    .str("?")
                    .key("original")
                    .bool(false);
            }
            j.end().end();
        }
        j.end();
        j.finish()
    }

    /// Loaded modules and registered patches:
    /// `{"modules":[{"name","livepatch"}],"patches":[{"name","enabled","replace","stack_order"}]}`.
    pub fn modules(&mut self) -> String {
        let (modules, patches) = self.engine.with_state(|s| {
            let modules: Vec<(String, bool)> = s
                .modules
                .iter()
                .map(|m| (m.name.clone(), m.livepatch))
                .collect();
            let patches: Vec<(String, bool, bool, usize)> = s
                .livepatch
                .patches()
                .map(|p| {
                    let order = s.livepatch.stack_order(p.name()).unwrap_or(0);
                    (p.name().to_string(), p.enabled(), p.replace(), order)
                })
                .collect();
            (modules, patches)
        });
        let mut j = Json::object_root();
        j.key("modules").array();
        for (name, livepatch) in &modules {
            j.object()
                .key("name")
                .str(name)
                .key("livepatch")
                .bool(*livepatch)
                .end();
        }
        j.end().key("patches").array();
        for (name, enabled, replace, order) in &patches {
            j.object()
                .key("name")
                .str(name)
                .key("enabled")
                .bool(*enabled)
                .key("replace")
                .bool(*replace)
                .key("stack_order")
                .num(*order as u32)
                .end();
        }
        j.end();
        j.finish()
    }

    /// `/sys/kernel/livepatch`, walked as `ls -l` and `cat` see it, depth first:
    /// `[{"path","mode","value"}]` (`value` null for directories and write-only files).
    pub fn sysfs(&mut self) -> String {
        let mut j = Json::array_root();
        walk(&mut self.engine, klp_core::sysfs::ROOT, &mut j);
        j.finish()
    }
}

fn walk(e: &mut WebEngine, dir: &str, j: &mut Json) {
    let Ok(entries) = klp_core::fs::list_dir(e, dir) else {
        return;
    };
    for entry in entries {
        let path = format!("{dir}/{}", entry.name);
        let is_dir = klp_core::fs::is_dir(&entry.stat);
        j.object()
            .key("path")
            .str(&path)
            .key("mode")
            .str(&mode_string(entry.stat.mode))
            .key("value");
        match (is_dir, klp_core::fs::read_file(e, &path)) {
            (false, Ok(bytes)) => j.str(String::from_utf8_lossy(&bytes).trim_end()),
            _ => j.null(),
        };
        j.end();
        if is_dir {
            walk(e, &path, j);
        }
    }
}

/// `drwxr-xr-x` from a mode.
fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(if mode & 0o170000 == 0o040000 {
        'd'
    } else {
        '-'
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}
