//! Syscalls into the kernel: arguments go through the kernel's user buffer, errors are errnos.

use crate::engine::{Callee, Engine, EngineError};
use crate::errno::Errno;
use thiserror::Error;

/// Size of the kernel's user buffer (`klp_user_buffer`).
pub const USER_BUFFER_SIZE: u32 = 64 * 1024;

/// `open(2)` flags, as the kernel defines them.
pub mod flags {
    /// Open for reading.
    pub const O_RDONLY: i32 = 0;
    /// Open for writing.
    pub const O_WRONLY: i32 = 1;
    /// Create the file if missing.
    pub const O_CREAT: i32 = 0o100;
    /// Truncate to zero length.
    pub const O_TRUNC: i32 = 0o1000;
    /// Append on every write.
    pub const O_APPEND: i32 = 0o2000;
    /// Fail unless the path is a directory.
    pub const O_DIRECTORY: i32 = 0o200000;
}

/// A failed syscall: the kernel returned an errno, or the guest trapped.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SysError {
    /// The kernel returned `-errno`.
    #[error(transparent)]
    Errno(#[from] Errno),
    /// The engine failed (a trap is a kernel oops).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Result of a syscall.
pub type SysResult<T> = Result<T, SysError>;

/// One directory entry from `getdents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    /// Inode number.
    pub ino: u32,
    /// `DT_DIR` (4) or `DT_REG` (8).
    pub kind: u8,
    /// The entry's name.
    pub name: String,
}

/// What `stat` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// File type and permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u32,
    /// Link count.
    pub nlink: u32,
    /// Inode number.
    pub ino: u32,
}

/// Directory bit of `Stat::mode`.
pub const S_IFDIR: u32 = 0o040000;

fn user_buffer(e: &mut impl Engine) -> u32 {
    e.with_state(|s| s.user_buffer)
}

/// Calls a kernel export with `i32` arguments and decodes `-errno`.
///
/// # Errors
/// The errno the kernel returned, or the engine's error.
pub fn call(e: &mut impl Engine, name: &str, args: &[i32]) -> SysResult<i32> {
    let ret = e.call(Callee::Export(name), args)?.unwrap_or(0);
    Ok(Errno::check(ret)?)
}

/// Copies `bytes` into the user buffer at `offset` and returns its address.
fn put(e: &mut impl Engine, offset: u32, bytes: &[u8]) -> SysResult<i32> {
    if offset as usize + bytes.len() > USER_BUFFER_SIZE as usize {
        return Err(Errno::ENAMETOOLONG.into());
    }
    let addr = user_buffer(e) + offset;
    e.write(addr, bytes)?;
    Ok(addr as i32)
}

/// Calls a syscall whose first two arguments are a path.
fn path_call(e: &mut impl Engine, name: &str, path: &str, rest: &[i32]) -> SysResult<i32> {
    let ptr = put(e, 0, path.as_bytes())?;
    let mut args = vec![ptr, path.len() as i32];
    args.extend_from_slice(rest);
    call(e, name, &args)
}

/// `open(2)`.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn open(e: &mut impl Engine, path: &str, flags: i32) -> SysResult<i32> {
    let fd = path_call(e, "sys_open", path, &[flags])?;
    e.with_state(|s| s.task_fds.push(fd));
    Ok(fd)
}

/// `close(2)`.
///
/// # Errors
/// The kernel's errno (`EBADF`) or a trap.
pub fn close(e: &mut impl Engine, fd: i32) -> SysResult<()> {
    e.with_state(|s| s.task_fds.retain(|&f| f != fd));
    call(e, "sys_close", &[fd]).map(drop)
}

/// `read(2)` of at most `len` bytes (at most the user buffer).
///
/// # Errors
/// The kernel's errno or a trap.
pub fn read(e: &mut impl Engine, fd: i32, len: u32) -> SysResult<Vec<u8>> {
    let len = len.min(USER_BUFFER_SIZE);
    let buf = user_buffer(e);
    let n = call(e, "sys_read", &[fd, buf as i32, len as i32])? as u32;
    let mut out = vec![0; n.min(len) as usize];
    e.read(buf, &mut out)?;
    Ok(out)
}

/// Reads until end of file.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn read_to_end(e: &mut impl Engine, fd: i32) -> SysResult<Vec<u8>> {
    let mut all = Vec::new();
    loop {
        let chunk = read(e, fd, 4096)?;
        if chunk.is_empty() {
            return Ok(all);
        }
        all.extend_from_slice(&chunk);
    }
}

/// `write(2)` of all of `data`, in chunks that fit the user buffer.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn write(e: &mut impl Engine, fd: i32, data: &[u8]) -> SysResult<usize> {
    let mut done = 0;
    for chunk in data.chunks(USER_BUFFER_SIZE as usize) {
        let ptr = put(e, 0, chunk)?;
        done += call(e, "sys_write", &[fd, ptr, chunk.len() as i32])? as usize;
    }
    Ok(done)
}

/// `mkdir(2)`.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn mkdir(e: &mut impl Engine, path: &str) -> SysResult<()> {
    path_call(e, "sys_mkdir", path, &[]).map(drop)
}

/// `unlink(2)`.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn unlink(e: &mut impl Engine, path: &str) -> SysResult<()> {
    path_call(e, "sys_unlink", path, &[]).map(drop)
}

/// `rmdir(2)`.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn rmdir(e: &mut impl Engine, path: &str) -> SysResult<()> {
    path_call(e, "sys_rmdir", path, &[]).map(drop)
}

/// `stat(2)`.
///
/// # Errors
/// The kernel's errno or a trap.
pub fn stat(e: &mut impl Engine, path: &str) -> SysResult<Stat> {
    let statbuf = user_buffer(e) + USER_BUFFER_SIZE - 16;
    path_call(e, "sys_stat", path, &[statbuf as i32])?;
    let mut raw = [0u8; 16];
    e.read(statbuf, &mut raw)?;
    let word = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    Ok(Stat {
        mode: word(0),
        size: word(4),
        nlink: word(8),
        ino: word(12),
    })
}

/// Lists a directory with `getdents` until it is exhausted.
///
/// # Errors
/// The kernel's errno (`ENOTDIR`, `ENOENT`) or a trap.
pub fn list_dir(e: &mut impl Engine, path: &str) -> SysResult<Vec<Dirent>> {
    let fd = open(e, path, flags::O_RDONLY | flags::O_DIRECTORY)?;
    let result = getdents_all(e, fd);
    close(e, fd)?;
    result
}

fn getdents_all(e: &mut impl Engine, fd: i32) -> SysResult<Vec<Dirent>> {
    let buf = user_buffer(e);
    let mut entries = Vec::new();
    loop {
        let n = call(e, "sys_getdents", &[fd, buf as i32, 4096])? as usize;
        if n == 0 {
            return Ok(entries);
        }
        let mut raw = vec![0u8; n];
        e.read(buf, &mut raw)?;
        parse_dirents(&raw, &mut entries)?;
    }
}

/// Decodes `getdents` records: `ino: u32, reclen: u16, type: u8, name, NUL`.
fn parse_dirents(raw: &[u8], out: &mut Vec<Dirent>) -> SysResult<()> {
    let mut at = 0;
    while at + 8 <= raw.len() {
        let ino = u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let reclen = usize::from(u16::from_le_bytes([raw[at + 4], raw[at + 5]]));
        let kind = raw[at + 6];
        if reclen < 8 || at + reclen > raw.len() {
            return Err(Errno::EIO.into());
        }
        let name = &raw[at + 7..at + reclen];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        out.push(Dirent {
            ino,
            kind,
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
        });
        at += reclen;
    }
    Ok(())
}

/// The six `struct new_utsname` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utsname {
    /// `sysname`, `nodename`, `release`, `version`, `machine`, `domainname`.
    pub fields: [String; 6],
}

/// `uname(2)`.
///
/// # Errors
/// A trap.
pub fn uname(e: &mut impl Engine) -> SysResult<Utsname> {
    let buf = user_buffer(e);
    call(e, "sys_uname", &[buf as i32])?;
    let mut raw = vec![0u8; 6 * 65];
    e.read(buf, &mut raw)?;
    let fields = std::array::from_fn(|i| {
        let field = &raw[i * 65..(i + 1) * 65];
        let end = field.iter().position(|&b| b == 0).unwrap_or(65);
        String::from_utf8_lossy(&field[..end]).into_owned()
    });
    Ok(Utsname { fields })
}

/// `syslog(2)` READ_ALL: the log as `dmesg` prints it.
///
/// # Errors
/// A trap.
pub fn syslog_read_all(e: &mut impl Engine) -> SysResult<String> {
    let buf = user_buffer(e);
    let n = call(e, "sys_syslog", &[3, buf as i32, USER_BUFFER_SIZE as i32])? as usize;
    let mut raw = vec![0u8; n.min(USER_BUFFER_SIZE as usize)];
    e.read(buf, &mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// `syslog(2)` CLEAR.
///
/// # Errors
/// A trap.
pub fn syslog_clear(e: &mut impl Engine) -> SysResult<()> {
    call(e, "sys_syslog", &[5, 0, 0]).map(drop)
}

/// Logs one message through the kernel's `printk` (prefix `"\x01" + level` to set the level).
///
/// # Errors
/// A trap.
pub fn printk(e: &mut impl Engine, msg: &str) -> SysResult<()> {
    let bytes = msg.as_bytes();
    let ptr = put(
        e,
        USER_BUFFER_SIZE / 2,
        &bytes[..bytes.len().min(USER_BUFFER_SIZE as usize / 2)],
    )?;
    call(
        e,
        "printk",
        &[ptr, bytes.len().min(USER_BUFFER_SIZE as usize / 2) as i32],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirent_records_decode_names_and_types() {
        let mut raw = Vec::new();
        for (ino, kind, name) in [(1u32, 4u8, "proc"), (7, 8, "x")] {
            let reclen = (7 + name.len() + 1).next_multiple_of(4);
            let start = raw.len();
            raw.extend_from_slice(&ino.to_le_bytes());
            raw.extend_from_slice(&(reclen as u16).to_le_bytes());
            raw.push(kind);
            raw.extend_from_slice(name.as_bytes());
            raw.resize(start + reclen, 0);
        }
        let mut out = Vec::new();
        parse_dirents(&raw, &mut out).unwrap();
        assert_eq!(
            out[0],
            Dirent {
                ino: 1,
                kind: 4,
                name: "proc".into()
            }
        );
        assert_eq!(out[1].name, "x");
    }

    #[test]
    fn truncated_dirent_record_is_an_io_error() {
        let raw = [1, 0, 0, 0, 200, 0, 8, b'a'];
        assert_eq!(
            parse_dirents(&raw, &mut Vec::new()),
            Err(SysError::Errno(Errno::EIO))
        );
    }
}
