//! seq_file: the buffer procfs show callbacks write into, and `seq_write` for modules.

use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;

use klp_abi::errno::ENOMEM;

use crate::uaccess::kernel_bytes;

/// A show callback, `int (*show)(struct seq_file *m, void *v)` (the kernel's view of
/// [`klp_abi::ShowFn`]).
pub type ShowFn = unsafe extern "C" fn(m: *mut SeqFile, v: *mut c_void) -> i32;

/// An open seq_file: what a show callback has written so far.
///
/// Modules see it as the opaque [`klp_abi::SeqFile`] and append with [`seq_write`].
pub struct SeqFile {
    buf: Vec<u8>,
    /// Set when the buffer could not grow: the read fails with `ENOMEM`.
    overflow: bool,
}

impl SeqFile {
    /// Appends bytes (`seq_puts`); when memory runs out, the read will fail.
    pub fn puts(&mut self, s: &[u8]) {
        if self.buf.try_reserve(s.len()).is_ok() {
            self.buf.extend_from_slice(s);
        } else {
            self.overflow = true;
        }
    }
}

impl fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.puts(s.as_bytes());
        Ok(())
    }
}

/// Runs a show callback through its function pointer with `v` and returns what it wrote.
///
/// # Errors
///
/// The callback's negative return value, as a positive errno; `ENOMEM` when the buffer
/// could not hold what it wrote.
pub fn seq_show(show: ShowFn, v: usize) -> Result<Vec<u8>, i32> {
    let mut m = SeqFile {
        buf: Vec::new(),
        overflow: false,
    };
    let m_ptr: *mut SeqFile = &mut m;
    // SAFETY: `show` is a procfs callback of the right type; `m` outlives the call, and
    // no other reference to it exists while the callback runs.
    let ret = unsafe { show(m_ptr, v as *mut c_void) };
    match (ret, m.overflow) {
        (ret, _) if ret < 0 => Err(-ret),
        (_, true) => Err(ENOMEM),
        _ => Ok(m.buf),
    }
}

/// Appends `len` bytes at `buf` to the seq_file `m`; returns 0.
///
/// # Safety
///
/// `m` must be the seq_file passed to the running show callback and `buf` must point at
/// `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn seq_write(m: *mut SeqFile, buf: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { (*m).puts(kernel_bytes(buf, len)) };
    0
}
