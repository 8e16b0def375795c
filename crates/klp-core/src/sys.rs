//! Syscalls into the kernel: arguments go through the kernel's user buffer, errors are errnos.

use crate::engine::{Engine, EngineError};
use crate::errno::Errno;
use klp_abi::dirent::{D_INO, D_NAME, D_RECLEN, D_TYPE, MIN_RECLEN};
use klp_abi::new_utsname;
use klp_abi::syslog::{SYSLOG_ACTION_CLEAR, SYSLOG_ACTION_READ_ALL};
use thiserror::Error;

/// Size of the kernel's user buffer (`klp_user_buffer`).
pub use klp_abi::USER_BUFFER_SIZE;
/// `open(2)` flags, as the kernel defines them.
pub use klp_abi::fcntl as flags;
/// Directory bit of `Stat::mode`.
pub use klp_abi::stat::{S_IFCHR, S_IFDIR, S_IFMT};

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
    /// `DT_DIR` or `DT_REG` ([`klp_abi::dirent`]).
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

fn user_buffer(e: &mut impl Engine) -> u32 {
    e.with_state(|s| s.user_buffer)
}

/// Calls a kernel export with `i32` arguments and decodes `-errno`.
///
/// # Errors
/// The errno the kernel returned, or the engine's error.
pub fn call(e: &mut impl Engine, name: &str, args: &[i32]) -> SysResult<i32> {
    let ret = crate::tasks::call(e, name, args)?.unwrap_or(0);
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
/// The kernel's errno or a trap; `EFBIG` past [`READ_MAX`] bytes.
pub fn read_to_end(e: &mut impl Engine, fd: i32) -> SysResult<Vec<u8>> {
    let mut all = Vec::new();
    loop {
        let chunk = read(e, fd, 4096)?;
        if chunk.is_empty() {
            return Ok(all);
        }
        if all.len() + chunk.len() > READ_MAX {
            return Err(Errno::EFBIG.into());
        }
        all.extend_from_slice(&chunk);
    }
}

/// The most [`read_to_end`] reads: the host holds a whole file (the shell's pipelines buffer
/// each command's output), so an endless one (`/dev/zero`) stops here with `EFBIG`, as the
/// input limit of host files does.
pub const READ_MAX: usize = 64 << 20;

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
    use klp_abi::stat::{SIZE, ST_INO, ST_MODE, ST_NLINK, ST_SIZE};
    let statbuf = user_buffer(e) + USER_BUFFER_SIZE - SIZE as u32;
    path_call(e, "sys_stat", path, &[statbuf as i32])?;
    let mut raw = [0u8; SIZE];
    e.read(statbuf, &mut raw)?;
    let word = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    Ok(Stat {
        mode: word(ST_MODE),
        size: word(ST_SIZE),
        nlink: word(ST_NLINK),
        ino: word(ST_INO),
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
    while at + MIN_RECLEN <= raw.len() {
        let rec = &raw[at..];
        let ino = u32::from_le_bytes([rec[D_INO], rec[D_INO + 1], rec[D_INO + 2], rec[D_INO + 3]]);
        let reclen = usize::from(u16::from_le_bytes([rec[D_RECLEN], rec[D_RECLEN + 1]]));
        let kind = rec[D_TYPE];
        if reclen < MIN_RECLEN || reclen > rec.len() {
            return Err(Errno::EIO.into());
        }
        let name = &rec[D_NAME..reclen];
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
    let mut raw = vec![0u8; new_utsname::SIZE];
    e.read(buf, &mut raw)?;
    let fields = std::array::from_fn(|i| {
        let field = &raw[i * new_utsname::FIELD_LEN..(i + 1) * new_utsname::FIELD_LEN];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    });
    Ok(Utsname { fields })
}

/// `syslog(2)` READ_ALL: the log as the kernel returns it, each line `<level>[time] text`.
///
/// # Errors
/// A trap.
pub fn syslog_read_all(e: &mut impl Engine) -> SysResult<String> {
    let buf = user_buffer(e);
    let n = call(
        e,
        "sys_syslog",
        &[SYSLOG_ACTION_READ_ALL, buf as i32, USER_BUFFER_SIZE as i32],
    )? as usize;
    let mut raw = vec![0u8; n.min(USER_BUFFER_SIZE as usize)];
    e.read(buf, &mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// One line of a syslog(2) read: its log level (`None` without a `<N>` prefix) and its text.
pub fn syslog_line(line: &str) -> (Option<u8>, &str) {
    let prefix = line
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(n, text)| Some((n.parse::<u32>().ok()?, text)));
    match prefix {
        // The level is the low three bits; the rest is the facility (0: kern).
        Some((pri, text)) => (Some((pri & 7) as u8), text),
        None => (None, line),
    }
}

/// `syslog(2)` CLEAR.
///
/// # Errors
/// A trap.
pub fn syslog_clear(e: &mut impl Engine) -> SysResult<()> {
    call(e, "sys_syslog", &[SYSLOG_ACTION_CLEAR, 0, 0]).map(drop)
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
    #[test]
    fn syslog_lines_split_into_level_and_text() {
        assert_eq!(
            super::syslog_line("<5>[    0.1] livepatch: x"),
            (Some(5), "[    0.1] livepatch: x")
        );
        assert_eq!(super::syslog_line("plain"), (None, "plain"));
        assert_eq!(super::syslog_line("<x>y"), (None, "<x>y"));
    }

    use super::*;
    use klp_abi::dirent::{DT_DIR, DT_REG};

    #[test]
    fn dirent_records_decode_names_and_types() {
        let mut raw = Vec::new();
        for (ino, kind, name) in [(1u32, DT_DIR, "proc"), (7, DT_REG, "x")] {
            let reclen = klp_abi::dirent::reclen(name.len());
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
                kind: DT_DIR,
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
