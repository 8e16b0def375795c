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
    let result = match op {
        HostOp::EnablePatch => crate::livepatch::klp_enable_patch(e, patch),
        HostOp::RegisterPatch => crate::livepatch::klp_register_patch(e, patch),
        HostOp::UnregisterPatch => crate::livepatch::klp_unregister_patch(e, patch),
        HostOp::DisablePatch => crate::livepatch::klp_disable_patch(e, patch),
        HostOp::TraceEntry => crate::tracing::trace_entry(e, patch, [args[1], args[2]]),
        HostOp::TraceExit => crate::tracing::trace_exit(e, patch, args[1]),
        // Tasks (issue 12): no scheduler in the host yet; the kernel's schedule() then does not
        // yield, and it keeps no kworker.
        HostOp::Schedule | HostOp::Wake | HostOp::TaskNew | HostOp::TimerNext => {
            return Ok(-Errno::ENOSYS.0);
        }
    };
    match result {
        Ok(()) => Ok(0),
        Err(crate::sys::SysError::Errno(errno)) => Ok(-errno.0),
        Err(crate::sys::SysError::Engine(err)) => Err(err),
    }
}
