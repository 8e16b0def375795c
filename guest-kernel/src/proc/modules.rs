//! /proc/modules: the loaded modules, newest first, in the format `lsmod` parses.

use core::ffi::c_void;
use core::fmt::Write;

use crate::module::{self, ModuleState};
use crate::seq_file::SeqFile;

/// Shows `name size refcnt - state 0xaddress [(K)]` per module, as Linux's `m_show`.
/// Addresses are printed at pointer width, 8 hex digits on this 32-bit kernel.
#[inline(never)]
pub(super) unsafe extern "C" fn modules_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: procfs passes the seq_file being filled.
    let m = unsafe { &mut *m };
    module::for_each(|module| {
        let state = match module.state {
            ModuleState::Live => "Live",
            ModuleState::Coming => "Loading",
            ModuleState::Going => "Unloading",
        };
        m.puts(&module.name);
        let _ = write!(
            m,
            " {} {} - {state} {:#010x}",
            module.size, module.refcnt, module.base
        );
        if module.livepatch {
            m.puts(b" (K)");
        }
        m.puts(b"\n");
    });
    0
}
