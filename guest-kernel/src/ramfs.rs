//! ramfs: the contents of regular files, kept in 4 KiB pages of kmalloc'd memory.

use alloc::vec::Vec;

use klp_abi::errno::{EFBIG, ENOSPC};

/// The page size: files grow and are counted (`Cached` in /proc/meminfo) in pages.
pub const PAGE_SIZE: usize = 4096;
/// Largest ramfs file.
const MAX_FILE_SIZE: u64 = 1 << 30;

/// Copies bytes from `pos` of `data` into `buf`; returns the bytes copied (0 at the end).
pub fn read(data: &[u8], pos: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(pos).unwrap_or(usize::MAX).min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// A ramfs file: its size and the pages holding it, each allocated on its own, as Linux's
/// page cache, so that one file can use all the memory the kernel has (a contiguous buffer
/// would need twice the file's size to grow).
#[derive(Default)]
pub struct RamFile {
    pages: Vec<Vec<u8>>,
    size: usize,
}

impl RamFile {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// Bytes of the pages it holds.
    pub fn page_bytes(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Copies file contents from `pos` into `buf`; returns the bytes copied (0 at the end).
    pub fn read(&self, pos: u64, buf: &mut [u8]) -> usize {
        let mut pos = usize::try_from(pos).unwrap_or(usize::MAX).min(self.size);
        let mut done = 0;
        while done < buf.len() && pos < self.size {
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (buf.len() - done).min(PAGE_SIZE - off).min(self.size - pos);
            buf[done..done + n].copy_from_slice(&self.pages[page][off..off + n]);
            (done, pos) = (done + n, pos + n);
        }
        done
    }

    /// Adds zeroed pages until `end` bytes are backed or memory runs out; returns the bytes
    /// backed.
    fn grow(&mut self, end: usize) -> usize {
        while self.page_bytes() < end {
            let mut page = Vec::new();
            if self.pages.try_reserve(1).is_err() || page.try_reserve_exact(PAGE_SIZE).is_err() {
                break;
            }
            page.resize(PAGE_SIZE, 0);
            self.pages.push(page);
        }
        self.page_bytes()
    }

    /// Writes `buf` at `pos`, zero-filling any gap; returns the bytes written, fewer than
    /// asked when memory runs out part way (a short write, as tmpfs gives).
    ///
    /// # Errors
    ///
    /// `EFBIG` past the largest file size, `ENOSPC` when not even one byte fits.
    pub fn write(&mut self, pos: u64, buf: &[u8]) -> Result<usize, i32> {
        let end = pos
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= MAX_FILE_SIZE)
            .ok_or(EFBIG)?;
        let (pos, end) = (pos as usize, end as usize);
        let end = end.min(self.grow(end));
        if end <= pos && !buf.is_empty() {
            return Err(ENOSPC);
        }
        let mut at = pos;
        while at < end {
            let (page, off) = (at / PAGE_SIZE, at % PAGE_SIZE);
            let n = (end - at).min(PAGE_SIZE - off);
            self.pages[page][off..off + n].copy_from_slice(&buf[at - pos..at - pos + n]);
            at += n;
        }
        self.size = self.size.max(end);
        Ok(end.saturating_sub(pos))
    }

    /// O_TRUNC: empties the file and gives its pages back.
    pub fn truncate(&mut self) {
        *self = RamFile::default();
    }
}
