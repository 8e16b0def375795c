//! insmod: place, relocate, resolve, instantiate, record, init — each step with its undo.

use super::params::ParamKind;
use super::resolve::resolve;
use super::undo::{Transaction, Undo};
use super::{
    LoadedModule, ModuleState, Param, gone_is_enodev, log, module_call, own_ref, set_refcnt,
    set_state, valid_module_name,
};
use crate::engine::{Callee, Engine, EngineError};
use crate::errno::Errno;
use crate::ftrace::{self, Slot};
use crate::instrument::FuncSig;
use crate::livepatch;
use crate::object::{LinkPlan, Linked, ObjectError, ObjectFile};
use crate::sys::{self, SysError, SysResult};
use crate::tracing;

/// The alignment every kmalloc block has.
const KMALLOC_ALIGN: u32 = 8;

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

/// The errno of a module the engine could not instantiate. The linker made and validated it, so
/// a compile error means the engine refused its code (`Invalid module format`), and any other
/// failure a resource the engine ran out of (its instance limit, memory, the table): ENOMEM, as
/// Linux's loader gives when it cannot allocate a module.
fn instantiate_errno(err: &EngineError) -> Errno {
    match err {
        EngineError::Compile(_) => Errno::ENOEXEC,
        _ => Errno::ENOMEM,
    }
}

/// Folds a multi-line error message (wasmparser's) into one log line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// The sysfs permission `.modinfo` gives parameter `param` (`parmperm=param:0o644`, or Linux's
/// octal `0644`); 0, leaving it out of sysfs, when it gives none.
fn param_perm(info: &[(String, String)], param: &str) -> u32 {
    info.iter()
        .filter(|(k, _)| k == "parmperm")
        .filter_map(|(_, v)| v.split_once(':'))
        .find(|(p, _)| *p == param)
        .and_then(|(_, perm)| u32::from_str_radix(perm.trim_start_matches("0o"), 8).ok())
        .map_or(0, |perm| perm & 0o777)
}

/// Loads a module: `insmod NAME [param=value...]`.
///
/// # Errors
/// `EEXIST` when loaded already, `ENOEXEC` for a malformed module (a name
/// [`valid_module_name`] refuses, or a parameter outside the module's data, included), `ENOENT` for an unknown
/// symbol, `EINVAL` for a symbol of the wrong type or a bad parameter (`ERANGE` for an `int`
/// out of range), `ENOMEM`, the errno its
/// init returned, or a trap. The kernel is left as it was: every step taken is undone.
pub fn load_module(
    e: &mut impl Engine,
    name: &str,
    bytes: &[u8],
    params: &[&str],
) -> SysResult<()> {
    if !valid_module_name(name) {
        log(e, &format!("module name {name:?} is invalid"))?;
        return Err(Errno::ENOEXEC.into());
    }
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
    let mut tx = Transaction::new(name);
    match load(e, name, bytes, &object, params, &mut tx) {
        Ok(()) => Ok(()),
        Err(err) => Err(tx.abort(e, err)),
    }
}

/// Parses the parameters, resolves every undefined symbol; nothing is allocated yet.
fn prepare(
    e: &mut impl Engine,
    name: &str,
    object: &ObjectFile,
    params: &[&str],
    livepatch: bool,
) -> SysResult<Prepared> {
    // Parsed once the module is laid out and its parameters' types are known (parse_args).
    let values = params
        .iter()
        .map(|param| match param.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (param.to_string(), None),
        })
        .collect();
    let mut resolved = std::collections::HashMap::new();
    let mut uses = Vec::new();
    for undef in object.undefined() {
        match resolve(e, name, undef, livepatch) {
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
    Ok(Prepared {
        values,
        resolved,
        uses,
    })
}

/// What [`prepare`] found.
struct Prepared {
    /// Parameter values by name, as given (`None`: the name alone).
    values: Vec<(String, Option<String>)>,
    /// The value of every undefined symbol.
    resolved: std::collections::HashMap<String, u32>,
    /// Modules providing some of them.
    uses: Vec<String>,
}

/// Allocates `size` bytes of module data aligned to `align`: kmalloc's blocks are 8-aligned, so a
/// larger alignment is over-allocated and the data placed at the first aligned address in the
/// block. Returns the block and the data address.
///
/// # Errors
/// `ENOMEM`, or a trap in kmalloc.
fn alloc_data(e: &mut impl Engine, size: u32, align: u32) -> SysResult<(u32, u32)> {
    let pad = align.saturating_sub(KMALLOC_ALIGN);
    let total = size
        .checked_add(pad)
        .and_then(|t| i32::try_from(t).ok())
        .ok_or(Errno::ENOMEM)?;
    // A pointer, not an errno: addresses above 2 GiB are negative as i32.
    let block = e.call(Callee::Export("kmalloc"), &[total, 0])?.unwrap_or(0) as u32;
    if block == 0 {
        return Err(Errno::ENOMEM.into());
    }
    Ok((block, block.next_multiple_of(align.max(1))))
}

/// Every step of insmod, each pushing its undo onto `tx`.
fn load(
    e: &mut impl Engine,
    name: &str,
    bytes: &[u8],
    object: &ObjectFile,
    params: &[&str],
    tx: &mut Transaction<'_>,
) -> SysResult<()> {
    let info = modinfo(bytes);
    let livepatch = info.iter().any(|(k, v)| k == "livepatch" && v == "Y");
    let prepared = prepare(e, name, object, params, livepatch)?;
    let placed = place(e, name, object, &prepared, &info, tx)?;
    let (init, exit) = (placed.linked.init, placed.linked.exit);
    record(e, name, object, placed, prepared.uses, livepatch, tx)?;
    initialize(e, name, init, exit, tx)
}

/// Where a module's data and functions were placed, and the module linked for that place.
struct Placed {
    data_alloc: u32,
    data_base: u32,
    data_size: u32,
    slot_base: u32,
    sigs: Vec<FuncSig>,
    linked: Linked,
    params: Vec<Param>,
}

/// Allocates the module's data and table range, links it there, and writes its data and
/// parameters.
fn place(
    e: &mut impl Engine,
    name: &str,
    object: &ObjectFile,
    prepared: &Prepared,
    info: &[(String, String)],
    tx: &mut Transaction<'_>,
) -> SysResult<Placed> {
    let (data_size, align) = object.data_size();
    let (data_alloc, data_base) = if data_size == 0 {
        (0, 0)
    } else {
        let (block, base) = alloc_data(e, data_size, align)?;
        tx.push(Undo::Kfree(block));
        (block, base)
    };
    let sigs: Vec<FuncSig> = object.functions().iter().map(|f| f.sig.clone()).collect();
    let n = sigs.len() as u32;
    let slot_base = match ftrace::alloc_range(e, 2 * n) {
        Ok(base) => base,
        // The table cannot grow (its limit, or the host's memory): ENOMEM, as Linux's module
        // loader gives when it cannot allocate the module's memory.
        Err(SysError::Engine(EngineError::Table(why))) => {
            log(
                e,
                &format!("{name}: no room for {} table entries: {why}", 2 * n),
            )?;
            return Err(Errno::ENOMEM.into());
        }
        Err(err) => return Err(err),
    };
    tx.push(Undo::Slots { base: slot_base, n });
    let plan = LinkPlan {
        data_base,
        slot_base,
    };
    let linked = match object.link(&plan, &mut |u| {
        prepared
            .resolved
            .get(&u.name)
            .copied()
            .ok_or_else(|| ObjectError::Unresolved(u.name.clone()))
    }) {
        Ok(linked) => linked,
        Err(err) => return Err(invalid_format(e, name, &err)),
    };
    // A parameter lies in the module's own data, and its type (`parmtype`) fits its size; one
    // elsewhere would let `key=value` write anywhere in kernel memory.
    let data_end = u64::from(data_base) + u64::from(data_size);
    let mut params = Vec::new();
    for (key, addr, size) in &linked.params {
        let kind = ParamKind::from_modinfo(info, key, *size)
            .map_err(|why| invalid_format(e, name, &ObjectError::Malformed(why)))?;
        if *addr < data_base || u64::from(*addr) + u64::from(*size) > data_end {
            let err =
                ObjectError::Malformed(format!("parameter {key} lies outside the module's data"));
            return Err(invalid_format(e, name, &err));
        }
        params.push(Param {
            name: key.clone(),
            addr: *addr,
            kind,
            perm: param_perm(info, key),
        });
    }
    e.write(data_base, &linked.data)?;
    for (key, value) in &prepared.values {
        let value = value.as_deref().map(str::as_bytes);
        let Some(param) = params.iter().find(|p| p.name == *key) else {
            sys::printk(
                e,
                &format!("\x014{name}: unknown parameter '{key}' ignored"),
            )?;
            continue;
        };
        match param.kind.set(value) {
            Ok(bytes) => e.write(param.addr, &bytes)?,
            Err(errno) => {
                for line in param.kind.error_lines(name, key, value) {
                    log(e, &line)?;
                }
                return Err(errno.into());
            }
        }
    }
    Ok(Placed {
        data_alloc,
        data_base,
        data_size,
        slot_base,
        sigs,
        linked,
        params,
    })
}

/// Instantiates the module and records it: ftrace slots, symbols, tracers, the kernel's module
/// list, the host's record, and the references on the modules it uses (taken before its init
/// runs, as Linux's resolve_symbol takes them).
fn record(
    e: &mut impl Engine,
    name: &str,
    object: &ObjectFile,
    placed: Placed,
    uses: Vec<String>,
    is_livepatch: bool,
    tx: &mut Transaction<'_>,
) -> SysResult<()> {
    let Placed {
        data_alloc,
        data_base,
        data_size,
        slot_base,
        sigs,
        linked,
        params,
    } = placed;
    let n = sigs.len() as u32;
    let instance = match e.instantiate(&linked.wasm) {
        Ok(instance) => instance,
        Err(err) => {
            log(e, &format!("{name}: {err}"))?;
            return Err(instantiate_errno(&err).into());
        }
    };
    tx.push(Undo::Instance(instance));
    e.with_state(|s| s.ftrace.add_module(name, slot_base, &sigs));
    // The instantiation wrote the orig entries; ftrace fills the slots from them.
    ftrace::sync(e, (slot_base..slot_base + n).map(Slot::new))?;
    let symbols = object.symbols(data_base, slot_base);
    e.with_state(|s| s.kallsyms.add_module(name, symbols));
    tx.push(Undo::Symbols);
    tx.push(Undo::Traced { base: slot_base, n });
    tracing::module_coming(e, slot_base, n)?;
    module_call(
        e,
        "module_add",
        name,
        &[data_base as i32, data_size as i32, i32::from(is_livepatch)],
    )?;
    tx.push(Undo::Listed);
    let record = LoadedModule {
        name: name.to_string(),
        data_base,
        data_size,
        data_alloc,
        slot_base,
        nr_funcs: n,
        instance,
        exit: linked.exit,
        uses: uses.clone(),
        refcnt: 0,
        livepatch: is_livepatch,
        params,
    };
    e.with_state(|s| s.modules.push(record));
    tx.push(Undo::Recorded);
    for used in &uses {
        let count = e.with_state(|s| s.module(used).map_or(0, |m| m.refcnt));
        let own = own_ref(e, used);
        set_refcnt(e, used, own)?;
        tx.push(Undo::Refcnt {
            module: used.clone(),
            count,
        });
    }
    Ok(())
}

/// Applies the patches waiting for the module, runs its init with `name` as the calling module,
/// and marks it live. The undo of a successful init is the module's exit.
fn initialize(
    e: &mut impl Engine,
    name: &str,
    init: Option<u32>,
    exit: Option<u32>,
    tx: &mut Transaction<'_>,
) -> SysResult<()> {
    let before = e.with_state(|s| s.livepatch.clone());
    tx.push(Undo::Livepatch(Box::new(before)));
    tx.push(Undo::Coming);
    livepatch::module_coming(e, name)?;
    tx.push(Undo::OwnPatch);
    if let Some(init) = init {
        e.with_state(|s| s.loading = Some(name.to_string()));
        let ret = sys::call(e, "do_one_initcall", &[init as i32]);
        e.with_state(|s| s.loading = None);
        ret?;
    }
    tx.push(Undo::Init { exit });
    set_state(e, name, ModuleState::Live).map_err(gone_is_enodev)
}
