//! Livepatch API for modules: `klp_enable_patch` and friends, forwarded to the host core.
//!
//! The livepatch core (func_stack, transitions, sysfs) lives in the host, which owns the
//! ftrace table. These wrappers are notrace: patching them would break patching itself.
//! The tasks' side of a transition (`klp_update_patch_state`) is in [`transition`]; shadow
//! variables, which live in the kernel's memory, in [`shadow`].

pub mod shadow;
pub mod transition;

use klp_abi::{HostOp, KlpPatch, KlpState};

use crate::host::hostcall;

notrace!(
    klp_enable_patch,
    klp_register_patch,
    klp_unregister_patch,
    klp_disable_patch,
    klp_get_state,
    klp_get_prev_state
);

/// Registers and enables a patch (today's API); its name is the calling module's name.
/// Returns 0 or -errno.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_enable_patch(patch: *const KlpPatch) -> i32 {
    hostcall(HostOp::EnablePatch, patch as i32, 0, 0)
}

/// Registers a patch without enabling it (the 2016 API): `enabled` reads 0 until
/// `echo 1 > /sys/kernel/livepatch/<patch>/enabled`. Returns 0 or -errno.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_register_patch(patch: *const KlpPatch) -> i32 {
    hostcall(HostOp::RegisterPatch, patch as i32, 0, 0)
}

/// Unregisters a disabled patch (the 2016 API). Returns 0 or -errno (`-EBUSY` if enabled).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_unregister_patch(patch: *const KlpPatch) -> i32 {
    hostcall(HostOp::UnregisterPatch, patch as i32, 0, 0)
}

/// Disables an enabled patch (the 2016 API). Returns 0 or -errno.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_disable_patch(patch: *const KlpPatch) -> i32 {
    hostcall(HostOp::DisablePatch, patch as i32, 0, 0)
}

/// The state `id` that `patch` modifies (`klp_get_state`), NULL when it has none. Callable
/// from callbacks and from the patch's new code.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_get_state(patch: *const KlpPatch, id: u32) -> *mut KlpState {
    hostcall(HostOp::GetState, patch as i32, id as i32, 0) as *mut KlpState
}

/// The state `id` as the already installed patches left it (`klp_get_prev_state`): that of
/// the newest patch before the one in transition which modifies it, NULL when none does or no
/// transition runs. For callbacks.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_get_prev_state(id: u32) -> *mut KlpState {
    hostcall(HostOp::GetPrevState, id as i32, 0, 0) as *mut KlpState
}
