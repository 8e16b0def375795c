//! System call entry, `arch/x86/entry/common.c` and `kernel/entry/common.c`: a user task's
//! `do_syscall_64`, and the work on the way back to user mode.

use klp_abi::TaskStruct;
use klp_abi::errno::{EINVAL, ENOSYS};

use crate::livepatch::transition::klp_update_patch_state;

notrace!(do_syscall_64, syscall_exit_to_user_mode);

type F0 = unsafe extern "C" fn() -> i32;
type F1 = unsafe extern "C" fn(i32) -> i32;
type F2 = unsafe extern "C" fn(i32, i32) -> i32;
type F3 = unsafe extern "C" fn(i32, i32, i32) -> i32;
type F4 = unsafe extern "C" fn(i32, i32, i32, i32) -> i32;
type F5 = unsafe extern "C" fn(i32, i32, i32, i32, i32) -> i32;
type F6 = unsafe extern "C" fn(i32, i32, i32, i32, i32, i32) -> i32;
type V0 = unsafe extern "C" fn();
type V1 = unsafe extern "C" fn(i32);
type V2 = unsafe extern "C" fn(i32, i32);
type V3 = unsafe extern "C" fn(i32, i32, i32);
type V4 = unsafe extern "C" fn(i32, i32, i32, i32);
type V5 = unsafe extern "C" fn(i32, i32, i32, i32, i32);
type V6 = unsafe extern "C" fn(i32, i32, i32, i32, i32, i32);

/// Calls the function at table index `func` with `nargs` of `a`; `has_ret` says whether it
/// returns an `i32` (0 is returned for one that does not).
///
/// # Safety
///
/// `func` must be a kernel function of that type; a wrong type traps in `call_indirect`.
unsafe fn call_syscall(func: usize, nargs: i32, has_ret: bool, a: [i32; 6]) -> i32 {
    macro_rules! call {
        ($ty:ty, $($arg:expr),*) => {{
            // SAFETY: the caller's contract; function pointers are table indices.
            let f: $ty = unsafe { core::mem::transmute::<usize, $ty>(func) };
            // SAFETY: as above.
            unsafe { f($($arg),*) }
        }};
    }
    // A function without a result is called for its effect, and the syscall returns 0.
    macro_rules! void {
        ($ty:ty, $($arg:expr),*) => {{
            call!($ty, $($arg),*);
            0
        }};
    }
    match (nargs, has_ret) {
        (0, true) => call!(F0,),
        (1, true) => call!(F1, a[0]),
        (2, true) => call!(F2, a[0], a[1]),
        (3, true) => call!(F3, a[0], a[1], a[2]),
        (4, true) => call!(F4, a[0], a[1], a[2], a[3]),
        (5, true) => call!(F5, a[0], a[1], a[2], a[3], a[4]),
        (6, true) => call!(F6, a[0], a[1], a[2], a[3], a[4], a[5]),
        (0, false) => void!(V0,),
        (1, false) => void!(V1, a[0]),
        (2, false) => void!(V2, a[0], a[1]),
        (3, false) => void!(V3, a[0], a[1], a[2]),
        (4, false) => void!(V4, a[0], a[1], a[2], a[3]),
        (5, false) => void!(V5, a[0], a[1], a[2], a[3], a[4]),
        (6, false) => void!(V6, a[0], a[1], a[2], a[3], a[4], a[5]),
        _ => -EINVAL,
    }
}

/// The entry of user tasks: runs the system call in `task.regs` (the kernel function
/// `regs.func` with `regs.nargs` arguments), stores its result in `regs.ret` (`-ENOSYS`
/// for no function, `-EINVAL` for more than 6 arguments), then returns to user mode.
///
/// # Safety
///
/// `task` is the user task the host runs, `current`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn do_syscall_64(task: *mut TaskStruct) {
    // SAFETY: the caller's contract; the copy holds no borrow across the call.
    let regs = unsafe { (*task).regs };
    let ret = if regs.func == 0 {
        -ENOSYS
    } else {
        // SAFETY: the host puts a kernel function of the described type in `func`.
        unsafe {
            call_syscall(
                regs.func as u32 as usize,
                regs.nargs,
                regs.has_ret != 0,
                regs.args,
            )
        }
    };
    // SAFETY: as above.
    unsafe { (*task).regs.ret = ret };
    syscall_exit_to_user_mode(task);
}

/// `syscall_exit_to_user_mode()`: the livepatch switch of `exit_to_user_mode_prepare`.
/// Signals are left to the host, which ends the command.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn syscall_exit_to_user_mode(task: *mut TaskStruct) {
    klp_update_patch_state(task);
}
