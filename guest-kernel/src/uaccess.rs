//! Turning (pointer, length) arguments from the host and from modules into slices.

use core::arch::wasm32;

use klp_abi::errno::EFAULT;

/// `access_ok`: the range lies inside linear memory and does not start at NULL.
fn access_ok(ptr: usize, len: usize) -> Result<(), i32> {
    let end = ptr.checked_add(len).ok_or(EFAULT)?;
    if ptr == 0 || end > wasm32::memory_size(0) * 65536 {
        Err(EFAULT)
    } else {
        Ok(())
    }
}

/// A syscall's input buffer; an empty one may be NULL.
///
/// # Errors
///
/// `EFAULT` outside linear memory.
pub fn user_bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], i32> {
    if len == 0 {
        return Ok(&[]);
    }
    access_ok(ptr as usize, len)?;
    // SAFETY: the range is inside linear memory, which is all plain bytes.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A syscall's output buffer; an empty one may be NULL.
///
/// # Errors
///
/// `EFAULT` outside linear memory.
pub fn user_bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], i32> {
    if len == 0 {
        return Ok(&mut []);
    }
    access_ok(ptr as usize, len)?;
    // SAFETY: as above; the host does not alias its buffers with kernel state.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// A (name, length) argument of a function exported to modules; an empty one may be NULL.
///
/// # Safety
///
/// `ptr` must point at `len` readable bytes unless `len` is 0.
pub unsafe fn kernel_bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}
