//! The module loader, for kernel modules and livepatch modules alike: place, relocate, resolve,
//! instantiate, init — all or nothing.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::instrument::FuncSig;
use crate::kallsyms::SymKind;
use crate::livepatch;
use crate::object::{LinkPlan, ObjectError, ObjectFile, UndefKind, Undefined};
use crate::sys::{self, SysError, SysResult};
use crate::tracing;

/// What the host keeps of a loaded module.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    /// The module's name.
    pub name: String,
    /// Where its data lives in kernel memory.
    pub data_base: u32,
    /// Size of its data.
    pub data_size: u32,
    /// First table entry of its range (`2 * nr_funcs` entries: slots then originals).
    pub slot_base: u32,
    /// Number of defined functions.
    pub nr_funcs: u32,
    /// The engine's instance.
    pub instance: u32,
    /// Slot of `cleanup_module`, if any.
    pub exit: Option<u32>,
    /// Modules whose symbols it uses.
    pub uses: Vec<String>,
    /// References held on it: by modules using it, and by its own enabled patch.
    pub refcnt: u32,
    /// It registered a live patch.
    pub livepatch: bool,
}

/// The module name for a file name or path: the stem, `-` turned into `_`.
pub fn module_name(name_or_path: &str) -> String {
    let file = name_or_path.rsplit('/').next().unwrap_or(name_or_path);
    let stem = file
        .strip_suffix(".wasm")
        .or_else(|| file.strip_suffix(".ko"))
        .unwrap_or(file);
    stem.replace('-', "_")
}

fn kname(e: &mut impl Engine, name: &str) -> SysResult<(i32, i32)> {
    let bytes = name.as_bytes();
    let at = e.with_state(|s| s.user_buffer) + sys::USER_BUFFER_SIZE - 1024;
    let bytes = &bytes[..bytes.len().min(512)];
    e.write(at, bytes)?;
    Ok((at as i32, bytes.len() as i32))
}

/// Sets the reference count the kernel shows in /proc/modules for a module's own patch.
///
/// # Errors
/// A trap in the kernel.
pub fn set_refcnt(e: &mut impl Engine, name: &str, own: u32) -> SysResult<()> {
    let Some(count) = e.with_state(|s| {
        let users = s
            .modules
            .iter()
            .filter(|m| m.uses.iter().any(|u| u == name))
            .count() as u32;
        let m = s.modules.iter_mut().find(|m| m.name == name)?;
        m.refcnt = users + own;
        Some(m.refcnt)
    }) else {
        return Ok(());
    };
    let (ptr, len) = kname(e, name)?;
    sys::call(e, "module_set_refcnt", &[ptr, len, count as i32]).map(drop)
}

fn log(e: &mut impl Engine, msg: &str) -> SysResult<()> {
    sys::printk(e, &format!("\x013{msg}"))
}

/// Logs why a module is malformed and gives insmod's "Invalid module format" (ENOEXEC).
fn invalid_format(e: &mut impl Engine, name: &str, err: &ObjectError) -> SysError {
    let message = format!(
        "{name}: invalid module format: {}",
        one_line(&err.to_string())
    );
    match log(e, &message) {
        Ok(()) => Errno::ENOEXEC.into(),
        Err(trap) => trap,
    }
}

/// Folds a multi-line error message (wasmparser's) into one log line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `name=value` module parameters (`y`/`n`/`true`/`false` mean 1/0).
fn parse_param(value: &str) -> Option<i32> {
    match value {
        "y" | "Y" | "true" => Some(1),
        "n" | "N" | "false" => Some(0),
        v => v.parse().ok(),
    }
}

/// What a symbol resolves to, and which module (if any) provides it.
struct Resolved {
    value: u32,
    provider: Option<String>,
}

/// Splits `.klp.sym.<objname>.<name>,<sympos>`.
fn klp_sym(name: &str) -> Option<(&str, &str, u32)> {
    let rest = name.strip_prefix(".klp.sym.")?;
    let (obj, sym) = rest.split_once('.')?;
    let (sym, pos) = sym.rsplit_once(',')?;
    Some((obj, sym, pos.parse().ok()?))
}

fn resolve(e: &mut impl Engine, module: &str, undef: &Undefined) -> Result<Resolved, Errno> {
    let found = e.with_state(|s| {
        let sym = match klp_sym(&undef.name) {
            Some((obj, name, pos)) => {
                let obj = (obj != "vmlinux").then_some(obj);
                s.kallsyms.lookup(obj, name, pos).ok()
            }
            None => s.kallsyms.lookup_global(&undef.name),
        }?;
        let sig = (sym.kind == SymKind::Func)
            .then(|| s.ftrace.info(sym.addr).map(|i| i.sig.clone()))
            .flatten();
        Some((sym.addr, sym.kind, sym.module.clone(), sig))
    });
    let Some((value, kind, provider, sig)) = found else {
        return Err(Errno::ENOENT);
    };
    let fits = match (&undef.kind, kind) {
        (UndefKind::Func(want), SymKind::Func) => sig.as_ref() == Some(want),
        (UndefKind::Data, SymKind::Data | SymKind::Bss) => true,
        _ => false,
    };
    if fits && provider.as_deref() != Some(module) {
        Ok(Resolved { value, provider })
    } else {
        Err(Errno::EINVAL)
    }
}

/// Everything allocated so far for a module being loaded, to undo on failure.
#[derive(Default)]
struct Partial {
    data: Option<u32>,
    slots: Option<(u32, u32)>,
    instance: Option<u32>,
    listed: bool,
    symbols: bool,
}

fn undo(e: &mut impl Engine, name: &str, p: &Partial) {
    // Best effort: each step is independent, and the first error is what the user sees.
    if p.listed
        && let Ok((ptr, len)) = kname(e, name)
    {
        let _ = sys::call(e, "module_del", &[ptr, len]);
    }
    if p.symbols {
        e.with_state(|s| s.kallsyms.remove_module(name));
    }
    if let Some((base, n)) = p.slots {
        let _ = tracing::module_going(e, base, n);
        let _ = e.table_clear(base, 2 * n);
        e.with_state(|s| s.ftrace.remove_module(base, n));
    }
    if let Some(id) = p.instance {
        e.release(id);
    }
    if let Some(addr) = p.data {
        let _ = sys::call(e, "kfree", &[addr as i32]);
    }
}

/// Loads a module: `insmod NAME [param=value...]`.
///
/// # Errors
/// `EEXIST` when loaded already, `ENOEXEC` for a malformed module, `ENOENT` for an unknown
/// symbol, `EINVAL` for a symbol of the wrong type or a bad parameter, `ENOMEM`, or the errno
/// its init returned. The kernel is left as it was.
pub fn load_module(
    e: &mut impl Engine,
    name: &str,
    bytes: &[u8],
    params: &[&str],
) -> SysResult<()> {
    if e.with_state(|s| s.module(name).is_some()) {
        return Err(Errno::EEXIST.into());
    }
    if e.with_state(|s| s.ftrace.is_empty()) {
        log(
            e,
            &format!("{name}: the kernel runs without its ftrace table; modules cannot be linked"),
        )?;
        return Err(Errno::ENOSYS.into());
    }
    let object = match ObjectFile::parse(bytes) {
        Ok(object) => object,
        Err(err) => return Err(invalid_format(e, name, &err)),
    };
    let mut partial = Partial::default();
    let result = load(e, name, bytes, &object, params, &mut partial);
    if result.is_err() {
        undo(e, name, &partial);
    }
    result
}

/// The `key=value` strings of a module's `.modinfo` section (`livepatch=Y` marks a live patch).
fn modinfo(bytes: &[u8]) -> Vec<(String, String)> {
    let mut info = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() != ".modinfo" {
            continue;
        }
        for entry in section.data().split(|&b| b == 0) {
            if let Some((k, v)) = std::str::from_utf8(entry)
                .ok()
                .and_then(|s| s.split_once('='))
            {
                info.push((k.to_string(), v.to_string()));
            }
        }
    }
    info
}

fn load(
    e: &mut impl Engine,
    name: &str,
    bytes: &[u8],
    object: &ObjectFile,
    params: &[&str],
    partial: &mut Partial,
) -> SysResult<()> {
    let mut values = Vec::new();
    for param in params {
        let (key, value) = param.split_once('=').unwrap_or((param, "1"));
        match parse_param(value) {
            Some(v) => values.push((key.to_string(), v)),
            None => {
                log(
                    e,
                    &format!("{name}: '{value}' invalid for parameter '{key}'"),
                )?;
                return Err(Errno::EINVAL.into());
            }
        }
    }
    let mut resolved = std::collections::HashMap::new();
    let mut uses = Vec::new();
    for undef in object.undefined() {
        match resolve(e, name, undef) {
            Ok(r) => {
                if let Some(p) = r.provider
                    && !uses.contains(&p)
                {
                    uses.push(p);
                }
                resolved.insert(undef.name.clone(), r.value);
            }
            Err(Errno::ENOENT) => {
                log(
                    e,
                    &format!("{name}: Unknown symbol {} (err -2)", undef.name),
                )?;
                return Err(Errno::ENOENT.into());
            }
            Err(errno) => {
                log(
                    e,
                    &format!("{name}: disagrees about version of symbol {}", undef.name),
                )?;
                return Err(errno.into());
            }
        }
    }
    let (size, _align) = object.data_size();
    let data_base = if size == 0 {
        0
    } else {
        let addr = sys::call(e, "kmalloc", &[size as i32, 0])? as u32;
        if addr == 0 {
            return Err(Errno::ENOMEM.into());
        }
        partial.data = Some(addr);
        addr
    };
    let sigs: Vec<FuncSig> = object.functions().iter().map(|f| f.sig.clone()).collect();
    let n = sigs.len() as u32;
    let slot_base = match e.with_state(|s| s.ftrace.take_free(2 * n)) {
        Some(base) => base,
        None => e.table_grow(2 * n)?,
    };
    partial.slots = Some((slot_base, n));
    let plan = LinkPlan {
        data_base,
        slot_base,
    };
    let linked = match object.link(&plan, &mut |u| {
        resolved
            .get(&u.name)
            .copied()
            .ok_or_else(|| ObjectError::Unresolved(u.name.clone()))
    }) {
        Ok(linked) => linked,
        Err(err) => return Err(invalid_format(e, name, &err)),
    };
    e.write(data_base, &linked.data)?;
    for (key, value) in &values {
        match linked.params.iter().find(|(k, _)| k == key) {
            Some((_, addr)) => e.write(*addr, &value.to_le_bytes())?,
            None => sys::printk(
                e,
                &format!("\x014{name}: unknown parameter '{key}' ignored"),
            )?,
        }
    }
    partial.instance = Some(e.instantiate(&linked.wasm).map_err(|err| {
        let _ = log(e, &format!("{name}: {err}"));
        SysError::Errno(Errno::ENOEXEC)
    })?);
    e.with_state(|s| s.ftrace.add_module(name, slot_base, &sigs));
    let symbols = object.symbols(data_base, slot_base);
    e.with_state(|s| s.kallsyms.add_module(name, symbols));
    partial.symbols = true;
    tracing::module_coming(e, slot_base, n)?;
    let (ptr, len) = kname(e, name)?;
    let is_livepatch = modinfo(bytes)
        .iter()
        .any(|(k, v)| k == "livepatch" && v == "Y");
    sys::call(
        e,
        "module_add",
        &[
            ptr,
            len,
            data_base as i32,
            size as i32,
            i32::from(is_livepatch),
        ],
    )?;
    partial.listed = true;
    sys::call(e, "module_set_state", &[ptr, len, 1])?;
    let record = LoadedModule {
        name: name.to_string(),
        data_base,
        data_size: size,
        slot_base,
        nr_funcs: n,
        instance: partial.instance.unwrap_or_default(),
        exit: linked.exit,
        uses: uses.clone(),
        refcnt: 0,
        livepatch: is_livepatch,
    };
    e.with_state(|s| s.modules.push(record));
    let init = run_init(e, name, linked.init);
    if let Err(err) = init {
        if own_ref(e, name) == 1 {
            livepatch::disable(e, name)?;
        }
        livepatch::module_going(e, name)?;
        e.with_state(|s| {
            s.modules.retain(|m| m.name != name);
            s.livepatch.patches.retain(|p| p.name != name);
        });
        return Err(err);
    }
    for used in &uses {
        let own = own_ref(e, used);
        set_refcnt(e, used, own)?;
    }
    let (ptr, len) = kname(e, name)?;
    sys::call(e, "module_set_state", &[ptr, len, 0])?;
    Ok(())
}

/// Applies waiting patches, then runs `init_module` with `name` as the calling module.
fn run_init(e: &mut impl Engine, name: &str, init: Option<u32>) -> SysResult<()> {
    livepatch::module_coming(e, name)?;
    let Some(init) = init else { return Ok(()) };
    e.with_state(|s| s.loading = Some(name.to_string()));
    let ret = sys::call(e, "do_one_initcall", &[init as i32]);
    e.with_state(|s| s.loading = None);
    ret.map(drop)
}

/// The reference a module's own enabled patch holds on it (1 or 0).
fn own_ref(e: &mut impl Engine, name: &str) -> u32 {
    e.with_state(|s| u32::from(s.livepatch.get(name).is_some_and(|p| p.enabled)))
}

/// Unloads a module: `rmmod NAME`.
///
/// # Errors
/// `ENOENT` when it is not loaded; `EBUSY` while its patch is enabled or another module uses it.
pub fn unload_module(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let Some(module) = e.with_state(|s| s.module(name).cloned()) else {
        return Err(Errno::ENOENT.into());
    };
    let probed = e.with_state(|s| tracing::module_probed(s, module.slot_base, module.nr_funcs));
    if module.refcnt > 0 || probed {
        return Err(Errno::EBUSY.into());
    }
    let (ptr, len) = kname(e, name)?;
    sys::call(e, "module_set_state", &[ptr, len, 2])?;
    if let Some(exit) = module.exit {
        sys::call(e, "do_exit_call", &[exit as i32])?;
    }
    if e.with_state(|s| s.livepatch.get(name).is_some()) {
        livepatch::unregister(e, name)?;
    }
    livepatch::module_going(e, name)?;
    let (ptr, len) = kname(e, name)?;
    sys::call(e, "module_del", &[ptr, len])?;
    tracing::module_going(e, module.slot_base, module.nr_funcs)?;
    e.table_clear(module.slot_base, 2 * module.nr_funcs)?;
    e.with_state(|s| {
        s.kallsyms.remove_module(name);
        s.ftrace.remove_module(module.slot_base, module.nr_funcs);
        s.modules.retain(|m| m.name != name);
    });
    e.release(module.instance);
    if module.data_base != 0 {
        sys::call(e, "kfree", &[module.data_base as i32])?;
    }
    for used in &module.uses {
        let own = own_ref(e, used);
        set_refcnt(e, used, own)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_name_is_the_stem_with_underscores() {
        assert_eq!(module_name("livepatch-sample"), "livepatch_sample");
        assert_eq!(
            module_name("/tmp/mods/test_klp_livepatch.wasm"),
            "test_klp_livepatch"
        );
    }

    #[test]
    fn klp_sym_names_split_into_object_name_and_position() {
        assert_eq!(
            klp_sym(".klp.sym.vmlinux.show_value,2"),
            Some(("vmlinux", "show_value", 2))
        );
        assert_eq!(
            klp_sym(".klp.sym.test_klp_mod_target.x.y,0"),
            Some(("test_klp_mod_target", "x.y", 0))
        );
        assert_eq!(klp_sym("printk"), None);
        assert_eq!(klp_sym(".klp.sym.vmlinux.bad,pos"), None);
    }

    #[test]
    fn parameters_accept_numbers_and_booleans() {
        assert_eq!(parse_param("1"), Some(1));
        assert_eq!(parse_param("N"), Some(0));
        assert_eq!(parse_param("-7"), Some(-7));
        assert_eq!(parse_param("maybe"), None);
    }
}
