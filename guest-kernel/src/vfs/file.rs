//! File descriptors: open, read, write, close and getdents over the inode's filesystem.

use alloc::vec::Vec;
use core::ptr;

use klp_abi::errno::{EACCES, EBADF, EINVAL, EIO, EISDIR, EMFILE, ENOENT, ENOMEM, ENOTDIR};
use klp_abi::fcntl::{O_ACCMODE, O_APPEND, O_CREAT, O_DIRECTORY, O_RDONLY, O_TRUNC, O_WRONLY};
use klp_abi::stat::S_IFREG;

use super::namei::{self, Last};
use super::{CharDev, FsType, Ino, Node, create, inode, put, readdir};
use crate::devkmsg::{self, DevkmsgUser, KMSG_FOPS};
use crate::proc::sysctl;
use crate::ramfs::{self, RamFile};
use crate::seq_file::seq_show;
use crate::sync::Global;
use crate::sysfs;

/// `RLIMIT_NOFILE`: descriptors are 0..NR_OPEN.
const NR_OPEN: usize = 1024;

/// An open file description.
struct File {
    ino: Ino,
    flags: i32,
    pos: u64,
    /// A seq_file's contents, produced by the show callback on the first read.
    seq: Option<Vec<u8>>,
    /// `/dev/kmsg`'s `private_data`: its `devkmsg_user` (NULL for other files).
    kmsg: *mut DevkmsgUser,
}

impl File {
    fn readable(&self) -> bool {
        self.flags & O_ACCMODE != O_WRONLY
    }

    fn writable(&self) -> bool {
        self.flags & O_ACCMODE != O_RDONLY
    }
}

/// The descriptor table of the kernel's one process.
static FILES: Global<Vec<Option<File>>> = Global::new(Vec::new());

fn files() -> &'static mut Vec<Option<File>> {
    // SAFETY: borrows are short and no outside call is made while one is held.
    unsafe { FILES.get() }
}

fn file(fd: i32) -> Result<&'static mut File, i32> {
    let fd = usize::try_from(fd).map_err(|_| EBADF)?;
    files().get_mut(fd).and_then(Option::as_mut).ok_or(EBADF)
}

/// O_CREAT of a missing file: a new empty ramfs file.
fn create_file(path: &[u8]) -> Result<Ino, i32> {
    let (dir, last) = namei::path_parent(path)?;
    let Last::Norm(name) = last else {
        return Err(EISDIR);
    };
    if path.ends_with(b"/") {
        return Err(EISDIR);
    }
    if inode(dir).map(|d| d.fs) != Some(FsType::Ramfs) {
        return Err(EACCES);
    }
    create(
        dir,
        name,
        FsType::Ramfs,
        S_IFREG | 0o644,
        Node::File(RamFile::default()),
    )
}

/// open(2); returns the lowest free descriptor.
///
/// # Errors
///
/// Lookup errors; `EISDIR` for a directory opened for writing; `ENOTDIR` with O_DIRECTORY;
/// `EACCES` for a read-only sysctl or sysfs attribute opened for writing (root does not bypass
/// their permissions) or for O_CREAT outside the ramfs; `EMFILE`; `EINVAL` for a bad access mode.
pub fn open(path: &[u8], flags: i32) -> Result<i32, i32> {
    if flags & O_ACCMODE == O_ACCMODE {
        return Err(EINVAL);
    }
    let ino = match namei::path_lookup(path) {
        Err(ENOENT) if flags & O_CREAT != 0 => create_file(path)?,
        other => other?,
    };
    let wants_write = flags & O_ACCMODE != O_RDONLY;
    let node = inode(ino).ok_or(ENOENT)?;
    let is_kmsg = matches!(node.node, Node::Chr(CharDev::Kmsg));
    match &mut node.node {
        Node::Dir(_) if wants_write => return Err(EISDIR),
        Node::Dir(_) => {}
        _ if flags & O_DIRECTORY != 0 => return Err(ENOTDIR),
        Node::Sysctl(table) if wants_write && table.mode & 0o200 == 0 => return Err(EACCES),
        Node::Sysctl(table) if flags & O_ACCMODE != O_WRONLY && table.mode & 0o400 == 0 => {
            return Err(EACCES);
        }
        // kernfs_fop_open: a sysfs attribute needs the mode bit and the op, even for root.
        Node::Attr(a) if wants_write && !a.writable() => return Err(EACCES),
        Node::Attr(a) if flags & O_ACCMODE != O_WRONLY && !a.readable() => return Err(EACCES),
        Node::File(data) if wants_write && flags & O_TRUNC != 0 => data.truncate(),
        _ => {}
    }
    let fd = alloc_fd()?;
    // The device's open may be a live patch's: no borrow of the tables is alive across it.
    let kmsg = if is_kmsg {
        let user = (KMSG_FOPS.open)(flags);
        if user.is_null() {
            // The free slot stays free.
            return Err(ENOMEM);
        }
        user
    } else {
        ptr::null_mut()
    };
    files()[fd] = Some(File {
        ino,
        flags,
        pos: 0,
        seq: None,
        kmsg,
    });
    inode(ino).ok_or(ENOENT)?.opened += 1;
    Ok(fd as i32)
}

/// The lowest free descriptor, the table grown by one if none is free.
///
/// # Errors
///
/// `EMFILE` past `NR_OPEN`, `ENOMEM` when the table cannot grow.
fn alloc_fd() -> Result<usize, i32> {
    let files = files();
    match files.iter().position(Option::is_none) {
        Some(fd) => Ok(fd),
        None if files.len() < NR_OPEN => {
            files.try_reserve(1).map_err(|_| ENOMEM)?;
            files.push(None);
            Ok(files.len() - 1)
        }
        None => Err(EMFILE),
    }
}

/// read(2) at the file position.
///
/// # Errors
///
/// `EBADF`, `EISDIR`, or what the show callback, sysctl handler or sysfs `show` returns.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    let f = file(fd)?;
    if !f.readable() {
        return Err(EBADF);
    }
    let (ino, pos, kmsg) = (f.ino, f.pos, f.kmsg);
    let n = match &inode(ino).ok_or(EBADF)?.node {
        Node::Dir(_) => return Err(EISDIR),
        Node::File(data) => data.read(pos, buf),
        &Node::Seq(show, v) => {
            if file(fd)?.seq.is_none() {
                // The callback may be module code calling back into the kernel: no borrow
                // of the descriptor or inode tables is alive across it.
                let text = seq_show(show, v)?;
                file(fd)?.seq = Some(text);
            }
            ramfs::read(file(fd)?.seq.as_deref().unwrap_or_default(), pos, buf)
        }
        &Node::Sysctl(table) => sysctl::read(table, buf, pos)?,
        &Node::Attr(a) => {
            if file(fd)?.seq.is_none() {
                // As for a seq_file: `show` is module code; no borrow is alive across it.
                let text = sysfs::show(a)?;
                file(fd)?.seq = Some(text);
            }
            ramfs::read(file(fd)?.seq.as_deref().unwrap_or_default(), pos, buf)
        }
        Node::Chr(CharDev::Null) => 0,
        Node::Chr(CharDev::Zero) => {
            buf.fill(0);
            buf.len()
        }
        // One record per read; the device's read may be a live patch's.
        // SAFETY: `kmsg` is this file's devkmsg_user; `buf` is writable.
        Node::Chr(CharDev::Kmsg) => {
            match unsafe { (KMSG_FOPS.read)(kmsg, buf.as_mut_ptr(), buf.len()) } {
                n if n < 0 => return Err(-n),
                n => n as usize,
            }
        }
    };
    file(fd)?.pos += n as u64;
    Ok(n)
}

/// write(2) at the file position (at the end with O_APPEND).
///
/// # Errors
///
/// `EBADF`; `EIO` for a procfs file without a write operation, as Linux's `proc_reg_write`;
/// ramfs, sysctl handler and sysfs `store` errors.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, i32> {
    let f = file(fd)?;
    if !f.writable() {
        return Err(EBADF);
    }
    let (ino, flags, pos) = (f.ino, f.flags, f.pos);
    let n = match &mut inode(ino).ok_or(EBADF)?.node {
        Node::Dir(_) => return Err(EISDIR),
        Node::File(data) => {
            let pos = if flags & O_APPEND != 0 {
                data.size()
            } else {
                pos
            };
            let n = data.write(pos, buf)?;
            file(fd)?.pos = pos;
            n
        }
        Node::Seq(..) => return Err(EIO),
        &mut Node::Sysctl(table) => sysctl::write(table, buf, pos)?,
        // Every write is one `store` of what it carries (sysfs ignores the position).
        &mut Node::Attr(a) => sysfs::store(a, buf)?,
        Node::Chr(CharDev::Kmsg) => devkmsg::write(buf),
        Node::Chr(_) => buf.len(),
    };
    file(fd)?.pos += n as u64;
    Ok(n)
}

/// close(2).
///
/// # Errors
///
/// `EBADF`.
pub fn close(fd: i32) -> Result<(), i32> {
    let (ino, kmsg) = {
        let f = file(fd)?;
        (f.ino, f.kmsg)
    };
    files()[fd as usize] = None;
    if !kmsg.is_null() {
        // The device's release may be a live patch's: the tables are not borrowed here.
        (KMSG_FOPS.release)(kmsg);
    }
    put(ino);
    Ok(())
}

/// getdents(2): directory records from the file position on.
///
/// # Errors
///
/// `EBADF`, `ENOTDIR`, `EINVAL` when not even one record fits.
pub fn getdents(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    let f = file(fd)?;
    let (ino, mut pos) = (f.ino, f.pos);
    let n = readdir::fill(ino, &mut pos, buf)?;
    file(fd)?.pos = pos;
    Ok(n)
}
