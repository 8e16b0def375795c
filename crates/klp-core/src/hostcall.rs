//! Calls from the guest kernel into the host core (`klp.hostcall`).

use crate::engine::{Engine, EngineError};
use crate::errno::Errno;
use klp_abi::HostOp;

/// Runs one host call for the guest; returns what the guest sees (`>= 0` or `-errno`).
///
/// # Errors
/// Only a trap in a nested guest call; every other failure is an errno for the guest.
pub fn dispatch(e: &mut impl Engine, op: i32, args: [i32; 3]) -> Result<i32, EngineError> {
    let Ok(op) = HostOp::try_from(op) else {
        return Ok(-Errno::ENOSYS.0);
    };
    let patch = args[0] as u32;
    e.with_state(|s| s.tasks.host_depth += 1);
    let result = match op {
        HostOp::EnablePatch => crate::livepatch::klp_enable_patch(e, patch).map(|()| 0),
        HostOp::RegisterPatch => crate::livepatch::klp_register_patch(e, patch).map(|()| 0),
        HostOp::UnregisterPatch => crate::livepatch::klp_unregister_patch(e, patch).map(|()| 0),
        HostOp::DisablePatch => crate::livepatch::klp_disable_patch(e, patch).map(|()| 0),
        HostOp::Schedule => crate::tasks::schedule(e),
        HostOp::Wake => crate::tasks::wake(e, args[0] as u32),
        HostOp::TaskNew => crate::tasks::task_new(e, args[0] as u32),
        HostOp::GetState => crate::livepatch::klp_get_state(e, patch, args[1] as u32),
        HostOp::GetPrevState => {
            let id = args[0] as u32;
            Ok(e.with_state(|s| crate::livepatch::klp_get_prev_state(&s.livepatch, id)))
        }
        HostOp::TimerNext => {
            let at = u64::from(args[0] as u32) | (u64::from(args[1] as u32) << 32);
            crate::tasks::timer_next(e, at)
        }
    };
    e.with_state(|s| s.tasks.host_depth -= 1);
    match result {
        Ok(v) => Ok(v),
        Err(crate::sys::SysError::Errno(errno)) => Ok(-errno.0),
        Err(crate::sys::SysError::Engine(err)) => Err(err),
    }
}
