//! ramfs: the contents of regular files, kept in kmalloc'd memory.

use alloc::vec::Vec;

use klp_abi::errno::{EFBIG, ENOSPC};

/// Largest ramfs file.
const MAX_FILE_SIZE: u64 = 1 << 30;

/// Copies file contents from `pos` into `buf`; returns the bytes copied (0 at end of file).
pub fn read(data: &[u8], pos: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(pos).unwrap_or(usize::MAX).min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// Writes `buf` at `pos`, zero-filling any gap; returns the bytes written.
///
/// # Errors
///
/// `EFBIG` past the largest file size, `ENOSPC` when memory runs out (as tmpfs does).
pub fn write(data: &mut Vec<u8>, pos: u64, buf: &[u8]) -> Result<usize, i32> {
    let end = pos
        .checked_add(buf.len() as u64)
        .filter(|&end| end <= MAX_FILE_SIZE)
        .ok_or(EFBIG)?;
    let (pos, end) = (pos as usize, end as usize);
    if end > data.len() {
        data.try_reserve(end - data.len()).map_err(|_| ENOSPC)?;
        data.resize(end, 0);
    }
    data[pos..end].copy_from_slice(buf);
    Ok(buf.len())
}

/// O_TRUNC: empties the file and gives its memory back.
pub fn truncate(data: &mut Vec<u8>) {
    *data = Vec::new();
}
