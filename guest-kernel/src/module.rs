//! Module support: the module list behind /proc/modules, and calling module init and exit.
//!
//! The host's loader places a module and records it here with [`module_add`]; the kernel
//! runs its entry points with [`do_one_initcall`] and [`do_exit_call`].

use alloc::boxed::Box;
use alloc::vec::Vec;

use klp_abi::errno::{EEXIST, EINVAL, ENOENT, ENOMEM};
use klp_abi::module::{
    MODULE_FLAG_LIVEPATCH, MODULE_STATE_COMING, MODULE_STATE_GOING, MODULE_STATE_LIVE,
};

use crate::panic::{TAINT_LIVEPATCH, add_taint};
use crate::sync::Global;
use crate::uaccess::kernel_bytes;

notrace!(do_one_initcall, do_exit_call);

/// `enum module_state`, in the ABI's numbering.
#[derive(Clone, Copy)]
pub enum ModuleState {
    /// Fully loaded.
    Live,
    /// Running its init.
    Coming,
    /// Running its exit.
    Going,
}

/// A loaded module.
pub struct Module {
    /// The module name (file stem, dashes as underscores).
    pub name: Box<[u8]>,
    /// Where its data was placed.
    pub base: u32,
    /// Its size in bytes.
    pub size: u32,
    /// A livepatch module.
    pub livepatch: bool,
    /// Its state.
    pub state: ModuleState,
    /// The "used by" count.
    pub refcnt: i32,
}

/// The module list, newest first like Linux's.
static MODULES: Global<Vec<Module>> = Global::new(Vec::new());

fn modules() -> &'static mut Vec<Module> {
    // SAFETY: borrows are short and make no outside calls.
    unsafe { MODULES.get() }
}

/// Calls `f` for every module, newest first.
pub fn for_each(mut f: impl FnMut(&Module)) {
    modules().iter().for_each(&mut f);
}

fn find(name: &[u8]) -> Result<&'static mut Module, i32> {
    modules()
        .iter_mut()
        .find(|m| *m.name == *name)
        .ok_or(ENOENT)
}

/// Records a module (state Coming). A livepatch module taints the kernel with
/// `TAINT_LIVEPATCH`. Returns 0, `-EEXIST`, or `-ENOMEM` when kmalloc cannot hold the record.
///
/// # Safety
///
/// `name` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn module_add(
    name: *const u8,
    len: usize,
    base: u32,
    size: u32,
    flags: u32,
) -> i32 {
    // SAFETY: the caller's contract.
    let name = unsafe { kernel_bytes(name, len) };
    if find(name).is_ok() {
        return -EEXIST;
    }
    let livepatch = flags & MODULE_FLAG_LIVEPATCH != 0;
    let mut record_name = Vec::new();
    if record_name.try_reserve_exact(name.len()).is_err() || modules().try_reserve(1).is_err() {
        return -ENOMEM;
    }
    record_name.extend_from_slice(name);
    modules().insert(
        0,
        Module {
            name: record_name.into_boxed_slice(),
            base,
            size,
            livepatch,
            state: ModuleState::Coming,
            refcnt: 0,
        },
    );
    if livepatch && add_taint(TAINT_LIVEPATCH) {
        pr_notice!(
            "{}: tainting kernel with TAINT_LIVEPATCH",
            name.escape_ascii()
        );
    }
    0
}

/// Sets a module's state: 0 Live, 1 Coming, 2 Going. Returns 0, `-ENOENT` or `-EINVAL`.
///
/// # Safety
///
/// `name` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn module_set_state(name: *const u8, len: usize, state: u32) -> i32 {
    let state = match state {
        MODULE_STATE_LIVE => ModuleState::Live,
        MODULE_STATE_COMING => ModuleState::Coming,
        MODULE_STATE_GOING => ModuleState::Going,
        _ => return -EINVAL,
    };
    // SAFETY: the caller's contract.
    match find(unsafe { kernel_bytes(name, len) }) {
        Ok(module) => {
            module.state = state;
            0
        }
        Err(errno) => -errno,
    }
}

/// The state of the module `name` (NUL-terminated), as `find_module(name)->state` gives it:
/// 0 Live, 1 Coming, 2 Going; `-ENOENT` when no such module is loaded. Exported to modules
/// (a livepatch callback reports the state of its object's module).
///
/// # Safety
///
/// `name` must point at a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn module_state(name: *const u8) -> i32 {
    // SAFETY: the caller's contract.
    let name = unsafe { core::ffi::CStr::from_ptr(name.cast()) };
    match find(name.to_bytes()) {
        Ok(module) => match module.state {
            ModuleState::Live => MODULE_STATE_LIVE as i32,
            ModuleState::Coming => MODULE_STATE_COMING as i32,
            ModuleState::Going => MODULE_STATE_GOING as i32,
        },
        Err(errno) => -errno,
    }
}

/// Sets a module's "used by" count. Returns 0 or `-ENOENT`.
///
/// # Safety
///
/// `name` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn module_set_refcnt(name: *const u8, len: usize, refcnt: i32) -> i32 {
    // SAFETY: the caller's contract.
    match find(unsafe { kernel_bytes(name, len) }) {
        Ok(module) => {
            module.refcnt = refcnt;
            0
        }
        Err(errno) => -errno,
    }
}

/// Removes a module from the list. Returns 0 or `-ENOENT`.
///
/// # Safety
///
/// `name` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn module_del(name: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's contract.
    let name = unsafe { kernel_bytes(name, len) };
    let list = modules();
    match list.iter().position(|m| *m.name == *name) {
        Some(pos) => {
            list.remove(pos);
            0
        }
        None => -ENOENT,
    }
}

/// Runs a module's `init_module` through its function pointer; returns what it returns.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn do_one_initcall(init: usize) -> i32 {
    if init == 0 {
        return -EINVAL;
    }
    // SAFETY: the loader passes the table index of the module's `init_module`, whose type
    // it has checked; a wrong type traps in call_indirect instead of misbehaving.
    let init: unsafe extern "C" fn() -> i32 = unsafe { core::mem::transmute(init) };
    // SAFETY: as above.
    unsafe { init() }
}

/// Runs a module's `cleanup_module` through its function pointer.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn do_exit_call(exit: usize) {
    if exit != 0 {
        // SAFETY: as in `do_one_initcall`.
        let exit: unsafe extern "C" fn() = unsafe { core::mem::transmute(exit) };
        // SAFETY: as above.
        unsafe { exit() }
    }
}
