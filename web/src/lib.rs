//! klp-web: klp-core (with the passes) and klp-shell compiled to wasm32, running the guest
//! kernel and its modules on the browser's own WebAssembly engine.
//!
//! The page (`web/www/`) fetches the guest kernel, boots a [`Kernel`] (which embeds the modules
//! at `/lib/modules/<release>`, as the `klp` command does) and talks to it in JSON strings: shell
//! output, the ftrace table, the module files, the module and patch list, and
//! `/sys/kernel/livepatch`. Files dropped on the page are written into the kernel's `/tmp`.
//! [`build_patch`] generates a live patch module from two builds of an object, as `klp build
//! --orig --patched` does (src/patch.rs); the page writes it into `/tmp` the same way.
//!
//! The kernel has tasks (src/tasks.rs): whatever may run them — a shell command, a file
//! written as the shell, the page's idle time — is a [`Job`], set with a `begin_*` method and
//! run by [`Kernel::drive`], which the page calls through `WebAssembly.promising` (its stack
//! waits while a task runs); [`Kernel::take_output`] then gives its result. The page runs one
//! job at a time and calls nothing else meanwhile.

mod engine;
mod json;
mod patch;
mod tasks;

use engine::WebEngine;
use json::Json;
use klp_core::engine::Engine;
use klp_core::fs::WriteError;
use klp_core::fs::modules::ModuleFiles;
use klp_core::kernel::Switching;
use klp_core::kernel::run_task;
use klp_shell::{self as shell, Host, Shell};
pub use patch::{PatchBuild, build_patch};
use std::time::Duration;
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

/// What [`Kernel::drive`] runs next.
enum Job {
    /// A shell script, as `klp run -c` runs it.
    Script(String),
    /// A file written as the shell would write it (`path`, `data`).
    PutFile(String, Vec<u8>),
    /// Idle time: the kernel runs for this long (virtual time).
    Idle(Duration),
}

/// A booted kernel in the page.
#[wasm_bindgen]
pub struct Kernel {
    engine: WebEngine,
    shell: Shell,
    job: Option<Job>,
    output: String,
}

#[wasm_bindgen]
impl Kernel {
    /// Instruments `kernel`, instantiates it in the browser's engine and boots it.
    ///
    /// # Errors
    /// Whatever stops the boot, as text.
    #[wasm_bindgen(constructor)]
    pub fn new(kernel: &[u8], cmdline: &str) -> Result<Kernel, JsError> {
        // Tasks switch through the kernel's `klp.yield` import (JS Promise Integration).
        let image = klp_core::kernel::prepare_for(kernel, cmdline, true, Some(Switching::Import))
            .map_err(|e| JsError::new(&e.to_string()))?;
        let mut engine = WebEngine::instantiate_kernel(&image.wasm, image.state)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let modules = ModuleFiles::embedded(klp_artifacts::MODULES);
        klp_core::kernel::boot(&mut engine, modules).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Kernel {
            engine,
            shell: Shell::new(shell::Options::default()),
            job: None,
            output: String::new(),
        })
    }

    /// Sets the next job: a shell script, as `klp run -c` runs it. [`Kernel::take_output`]
    /// gives `{"status":N,"output":[["o"|"e", text], ...]}`.
    pub fn begin_script(&mut self, script: &str) {
        self.job = Some(Job::Script(script.to_string()));
    }

    /// Sets the next job: writing a file (one dropped on the page) into the kernel's namespace,
    /// e.g. `/tmp/fix.wasm`, where `insmod /tmp/fix.wasm` finds it. [`Kernel::take_output`]
    /// gives `{"error":null}` or `{"error":"PATH: reason"}`.
    pub fn begin_put_file(&mut self, path: &str, data: &[u8]) {
        self.job = Some(Job::PutFile(path.to_string(), data.to_vec()));
    }

    /// Sets the next job: `ms` milliseconds of the page's idle time, given to the kernel (its
    /// tasks run, its timers fire). [`Kernel::take_output`] gives `{"error":null}` or the error.
    pub fn begin_idle(&mut self, ms: f64) {
        self.job = Some(Job::Idle(Duration::from_secs_f64(
            ms.clamp(0.0, 10_000.0) / 1000.0,
        )));
    }

    /// Runs the job set with a `begin_*` method; returns 1 if there was one. The page calls it
    /// through `WebAssembly.promising` on the raw export `kernel_drive`.
    pub fn drive(&mut self) -> i32 {
        let Some(job) = self.job.take() else {
            return 0;
        };
        self.output = match job {
            Job::Script(script) => self.run(&script),
            Job::PutFile(path, data) => {
                let written = run_task(&mut self.engine, "sh", |e| {
                    klp_core::fs::write_file(e, &path, &data, false).map_err(|err| match err {
                        WriteError::Open(err) | WriteError::Write(err) => err,
                    })
                });
                error_json(written.err().map(|err| format!("{path}: {err}")))
            }
            Job::Idle(d) => error_json(
                klp_core::tasks::run_for(&mut self.engine, d)
                    .err()
                    .map(|err| err.to_string()),
            ),
        };
        1
    }

    /// What the last job gave (JSON; see each `begin_*` method).
    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.output)
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
    fn run(&mut self, script: &str) -> String {
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
    /// from the table itself (function identity), not from the core's bookkeeping; during a
    /// transition it is the dispatcher.
    pub fn ftrace(&mut self) -> String {
        struct Row {
            slot: u32,
            orig: Option<u32>,
            name: String,
            owner: String,
            stack: Vec<(String, u32, String)>,
            /// In a transition: the slot holds the dispatcher (`klp_ftrace_handler`).
            transition: bool,
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
                    let transition = s.ftrace.transition(slot).is_some();
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
                        transition,
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
                let func = if row.transition {
                    "klp_ftrace_handler: per task, the new function or the one below"
                } else {
                    "?"
                };
                j.key("slot")
                    .null()
                    .key("func")
                    .str(func)
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

    /// The kernel's tasks, as `/proc/<pid>/{stat,patch_state,stack}` read them, and the
    /// transition in progress:
    /// `{"transition":null|{"patch","target":"patched"|"unpatched"},
    /// "tasks":[{"pid","comm","state","patch_state","stack":[function, ...]}]}`.
    pub fn tasks(&mut self) -> String {
        let transition = self.engine.with_state(|s| {
            let (id, target) = s.livepatch.transition()?;
            let name = s.livepatch.get(id)?.name().to_string();
            let target = match target {
                klp_core::livepatch::Target::Patched => "patched",
                klp_core::livepatch::Target::Unpatched => "unpatched",
            };
            Some((name, target))
        });
        let e = &mut self.engine;
        let tasks = shell::ps::list(e).unwrap_or_default();
        let mut read = |path: &str| klp_core::fs::read_file(e, path);
        let mut j = Json::object_root();
        j.key("transition");
        match &transition {
            Some((patch, target)) => {
                j.object()
                    .key("patch")
                    .str(patch)
                    .key("target")
                    .str(target)
                    .end();
            }
            None => {
                j.null();
            }
        }
        j.key("tasks").array();
        for t in &tasks {
            let text = |r: Result<Vec<u8>, _>| {
                r.map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
                    .unwrap_or_default()
            };
            let patch_state = text(read(&format!("/proc/{}/patch_state", t.pid)));
            let stack = text(read(&format!("/proc/{}/stack", t.pid)));
            j.object()
                .key("pid")
                .num(t.pid)
                .key("comm")
                .str(&t.comm)
                .key("state")
                .str(&t.state.to_string())
                .key("patch_state")
                .num(patch_state.parse::<i32>().unwrap_or(0));
            j.key("stack").array();
            for line in stack.lines() {
                // `[<0>] name+0x0/0x0`
                let func = line.split_once("] ").map_or(line, |(_, f)| f);
                j.str(func.split('+').next().unwrap_or(func));
            }
            j.end().end();
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

/// `{"error":null}` or `{"error":"..."}`.
fn error_json(error: Option<String>) -> String {
    let mut j = Json::object_root();
    j.key("error");
    match error {
        Some(e) => j.str(&e),
        None => j.null(),
    };
    j.finish()
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
