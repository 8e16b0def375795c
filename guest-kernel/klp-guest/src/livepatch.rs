//! What a livepatch callback works with: the object it is given, the state of its module, the
//! system states (`klp_state`) of its patch and of the patches before it, and the console
//! loglevel Linux's state selftests change.

use core::ffi::CStr;

use klp_abi::{KlpObject, KlpPatch, KlpState};
pub use klp_abi::module::{MODULE_STATE_COMING, MODULE_STATE_GOING, MODULE_STATE_LIVE};

use crate::sys;

/// The module name of the object a callback was given (`obj->name`), `None` for vmlinux.
///
/// # Safety
///
/// `obj` must be the `klp_object` the kernel passed to the running callback.
pub unsafe fn object_name(obj: *const KlpObject) -> Option<&'static CStr> {
    // SAFETY: the caller's contract: the object is one of the patch's statics.
    let name = unsafe { (*obj).name };
    // SAFETY: a non-NULL name is a NUL-terminated static string.
    (!name.is_null()).then(|| unsafe { CStr::from_ptr(name.cast()) })
}

/// The state of the loaded module `name` (`find_module(name)->state`): one of
/// [`MODULE_STATE_LIVE`], [`MODULE_STATE_COMING`], [`MODULE_STATE_GOING`]; `None` when no such
/// module is loaded.
pub fn module_state(name: &CStr) -> Option<u32> {
    // SAFETY: a NUL-terminated string.
    let state = unsafe { sys::module_state(name.as_ptr().cast()) };
    u32::try_from(state).ok()
}

/// How Linux's callback selftests name a module state (their `module_state[]`).
pub fn module_state_text(state: u32) -> &'static str {
    match state {
        MODULE_STATE_LIVE => "[MODULE_STATE_LIVE] Normal state",
        MODULE_STATE_COMING => "[MODULE_STATE_COMING] Full formed, running module_init",
        MODULE_STATE_GOING => "[MODULE_STATE_GOING] Going away",
        _ => "[MODULE_STATE_UNFORMED] Still setting it up",
    }
}

/// The callback selftests' `callback_info()`: logs `<module>: <callback>: vmlinux`, or
/// `<module>: <callback>: <object> -> <its module's state>`, at KERN_INFO.
///
/// # Safety
///
/// `obj` must be the `klp_object` the kernel passed to the running callback.
pub unsafe fn callback_info(module: &str, callback: &str, obj: *const KlpObject) {
    // SAFETY: the caller's contract.
    match unsafe { object_name(obj) } {
        Some(name) => {
            let state = module_state(name).map_or("", module_state_text);
            let name = name.to_str().unwrap_or("?");
            crate::pr_info!("{}: {}: {} -> {}", module, callback, name, state);
        }
        None => crate::pr_info!("{}: {}: vmlinux", module, callback),
    }
}

/// `klp_get_state(patch, id)`: the state `id` that `patch` modifies, NULL when none.
pub fn klp_get_state(patch: &'static KlpPatch, id: u32) -> *mut KlpState {
    // SAFETY: a live patch, which the kernel only reads.
    unsafe { sys::klp_get_state(patch, id) }
}

/// `klp_get_prev_state(id)`: the state `id` as the patches installed before the one in
/// transition left it, NULL when none modifies it (or no transition runs).
pub fn klp_get_prev_state(id: u32) -> *mut KlpState {
    // SAFETY: no argument to check.
    unsafe { sys::klp_get_prev_state(id) }
}

/// `CONSOLE_LOGLEVEL_MOTORMOUTH`: every message goes to the console.
pub const CONSOLE_LOGLEVEL_MOTORMOUTH: i32 = 15;

/// `console_loglevel`, the first field of `/proc/sys/kernel/printk`.
pub fn console_loglevel() -> i32 {
    // SAFETY: a read of the kernel's array; the guest is single-threaded.
    unsafe { sys::console_printk[0] }
}

/// Sets `console_loglevel`.
pub fn set_console_loglevel(level: i32) {
    // SAFETY: a write of the kernel's array; the guest is single-threaded.
    unsafe { sys::console_printk[0] = level };
}
