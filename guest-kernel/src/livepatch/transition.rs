//! The kernel's part of a livepatch transition, `kernel/livepatch/transition.c`:
//! `klp_target_state` (written by the host's livepatch core) and `klp_update_patch_state`.

use klp_abi::TaskStruct;
use klp_abi::task::{KLP_TRANSITION_IDLE, TIF_PATCH_PENDING};

use crate::sync::Global;

notrace!(klp_update_patch_state, klp_target_state_ptr);

/// The patch state tasks switch to (`KLP_TRANSITION_*`); the host writes it at the start and
/// end of a transition.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static klp_target_state: Global<i32> = Global::new(KLP_TRANSITION_IDLE);

/// The address of `klp_target_state`.
#[unsafe(no_mangle)]
pub extern "C" fn klp_target_state_ptr() -> i32 {
    klp_target_state.as_ptr() as i32
}

/// `klp_update_patch_state()`: a task with `TIF_PATCH_PENDING` switches to
/// `klp_target_state` (on its way to user mode, where it runs no kernel function).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_update_patch_state(task: *mut TaskStruct) {
    if task.is_null() {
        return;
    }
    // SAFETY: a live task; a word read of the target state.
    unsafe {
        if (*task).ti_flags & TIF_PATCH_PENDING != 0 {
            (*task).ti_flags &= !TIF_PATCH_PENDING;
            (*task).patch_state = *klp_target_state.get();
        }
    }
}
