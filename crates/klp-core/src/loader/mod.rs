//! The module loader for kernel and livepatch modules: insmod and rmmod, complete or undone.
//!
//! `insmod` ([`load_module`]) records an undo for every step as it takes it (memory, table range,
//! instance, symbols, module list entry, references, the livepatch state, init) and, when a later
//! step fails, runs every undo in reverse order, even when one of them fails. `rmmod`
//! ([`unload_module`]) checks every refusal before the module's exit runs; once the exit has run
//! the module cannot come back, and every remaining step is taken.

mod insmod;
pub mod params;
mod resolve;
mod rmmod;
mod undo;

use crate::engine::Engine;
use crate::errno::Errno;
use crate::sys::{self, SysError, SysResult};
pub use insmod::load_module;
pub use rmmod::unload_module;
pub(crate) use undo::{FirstError, first_or_trap, retried};

/// What the host keeps of a loaded module.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    /// The module's name.
    pub name: String,
    /// Where its data lives in kernel memory (aligned as the module asks).
    pub data_base: u32,
    /// Size of its data.
    pub data_size: u32,
    /// The kmalloc block holding its data (`data_base` is inside it); 0 when it has no data.
    pub data_alloc: u32,
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
    /// Its parameters (`module_param`), in symbol order.
    pub params: Vec<Param>,
}

/// A module parameter: an `int`, a `bool` or an `int` array in the module's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name (`insmod MODULE name=value`).
    pub name: String,
    /// Its address in kernel memory, inside the module's data.
    pub addr: u32,
    /// Its type, which says its size and how it is parsed and shown.
    pub kind: params::ParamKind,
    /// The permission of `/sys/module/<module>/parameters/<name>`; 0: not in sysfs.
    pub perm: u32,
}

/// `enum module_state` as `module_set_state` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModuleState {
    Live = 0,
    Going = 2,
}

/// `MODULE_NAME_LEN`: a module name and its terminating NUL fit in 56 bytes.
pub const MODULE_NAME_LEN: usize = 56;

/// Whether a module may be called `name`: 1 to 55 bytes (`MODULE_NAME_LEN` with its NUL), each
/// a letter, a digit or `_`, the characters Kbuild's `KBUILD_MODNAME` is made of. Anything else
/// (empty, `.`, `..`, spaces, newlines, `/`) could never be named again by `rmmod` or in
/// /sys/kernel/livepatch; insmod refuses it as Linux refuses a module without a usable name:
/// `Invalid module format` (ENOEXEC).
pub fn valid_module_name(name: &str) -> bool {
    (1..MODULE_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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

/// Copies a module name into the end of the user buffer for a kernel call.
fn kname(e: &mut impl Engine, name: &str) -> SysResult<(i32, i32)> {
    let bytes = name.as_bytes();
    let at = e.with_state(|s| s.user_buffer) + sys::USER_BUFFER_SIZE - 1024;
    let bytes = &bytes[..bytes.len().min(512)];
    e.write(at, bytes)?;
    Ok((at as i32, bytes.len() as i32))
}

/// Calls a kernel `module_*` function whose first arguments are the module's name.
fn module_call(e: &mut impl Engine, func: &str, name: &str, rest: &[i32]) -> SysResult<()> {
    let (ptr, len) = kname(e, name)?;
    let mut args = vec![ptr, len];
    args.extend_from_slice(rest);
    sys::call(e, func, &args).map(drop)
}

/// Sets a module's state in the kernel's module list.
fn set_state(e: &mut impl Engine, name: &str, state: ModuleState) -> SysResult<()> {
    module_call(e, "module_set_state", name, &[state as i32])
}

/// The modules other than `except` that use `name`.
fn users(s: &crate::state::KernelState, name: &str, except: Option<&str>) -> u32 {
    s.modules
        .iter()
        .filter(|m| Some(m.name.as_str()) != except && m.uses.iter().any(|u| u == name))
        .count() as u32
}

/// Sets the reference count the kernel shows in /proc/modules for a module's own patch.
///
/// The kernel's count changes first and the host's only once it has: a trap leaves both as they
/// were.
///
/// # Errors
/// A trap in the kernel; `ENODEV` when the module is no longer on the kernel's module list
/// (see [`gone_is_enodev`]).
pub fn set_refcnt(e: &mut impl Engine, name: &str, own: u32) -> SysResult<()> {
    let count = e.with_state(|s| s.module(name).is_some().then(|| users(s, name, None) + own));
    match count {
        Some(count) => write_refcnt(e, name, count).map_err(gone_is_enodev),
        None => Ok(()),
    }
}

/// The kernel's module list answers `ENOENT` for a module it no longer has (one that called
/// `module_del` on itself). Taking a reference on such a module is Linux's failed
/// `try_module_get`, which `klp_enable_patch` and the loader report as `ENODEV` ("No such
/// device"); `ENOENT` would read "Unknown symbol in module" in insmod.
fn gone_is_enodev(err: SysError) -> SysError {
    match err {
        SysError::Errno(Errno::ENOENT) => Errno::ENODEV.into(),
        other => other,
    }
}

/// Writes a module's reference count: the kernel's, then the host's.
fn write_refcnt(e: &mut impl Engine, name: &str, count: u32) -> SysResult<()> {
    module_call(e, "module_set_refcnt", name, &[count as i32])?;
    e.with_state(|s| {
        if let Some(m) = s.modules.iter_mut().find(|m| m.name == name) {
            m.refcnt = count;
        }
    });
    Ok(())
}

/// The reference a module's own enabled patch holds on it (1 or 0).
fn own_ref(e: &mut impl Engine, name: &str) -> u32 {
    e.with_state(|s| u32::from(s.livepatch.holds_module(name)))
}

/// Logs an error line.
fn log(e: &mut impl Engine, msg: &str) -> SysResult<()> {
    sys::printk(e, &format!("\x013{msg}"))
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
    fn module_names_linux_cannot_name_are_invalid() {
        assert!(valid_module_name("livepatch_sample"));
        assert!(valid_module_name(&"m".repeat(MODULE_NAME_LEN - 1)));
        for bad in ["", ".", "..", "a b", "a\nb", "a/b", "a.b", "é"] {
            assert!(!valid_module_name(bad), "{bad:?}");
        }
        assert!(!valid_module_name(&"m".repeat(MODULE_NAME_LEN)));
    }
}
