//! Path lookup and the namespace operations built on it: mkdir, unlink, rmdir, as `namei.c`.

use super::{FsType, Ino, Node, ROOT_INO, inode, is_mountpoint, lookup, mkdir_in, remove};
use klp_abi::errno::{
    EBUSY, EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENOENT, ENOTDIR, ENOTEMPTY, EPERM,
};

/// `PATH_MAX`, including the terminating NUL in Linux.
const PATH_MAX: usize = 4096;
/// `NAME_MAX`.
const NAME_MAX: usize = 255;

/// The last component of a path, as `filename_parentat` classifies it.
pub enum Last<'a> {
    /// An ordinary name.
    Norm(&'a [u8]),
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// The path is `/`.
    Root,
}

fn is_dir(ino: Ino) -> bool {
    inode(ino).is_some_and(|i| i.is_dir())
}

fn parent_of(ino: Ino) -> Ino {
    inode(ino).map_or(ROOT_INO, |i| i.parent)
}

/// Walks `components` starting at the root.
fn walk<'a>(components: impl Iterator<Item = &'a [u8]>) -> Result<Ino, i32> {
    let mut ino = ROOT_INO;
    for name in components {
        if !is_dir(ino) {
            return Err(ENOTDIR);
        }
        ino = match name {
            b"" | b"." => ino,
            b".." => parent_of(ino),
            _ if name.len() > NAME_MAX => return Err(ENAMETOOLONG),
            _ => lookup(ino, name).ok_or(ENOENT)?,
        };
    }
    Ok(ino)
}

fn check_len(path: &[u8]) -> Result<(), i32> {
    match path.len() {
        0 => Err(ENOENT),
        n if n >= PATH_MAX => Err(ENAMETOOLONG),
        _ => Ok(()),
    }
}

/// Looks up a whole path (relative paths start at `/`; the kernel has one process, whose
/// working directory is the root). A trailing slash requires a directory.
///
/// # Errors
///
/// `ENOENT`, `ENOTDIR`, `ENAMETOOLONG`.
pub fn path_lookup(path: &[u8]) -> Result<Ino, i32> {
    check_len(path)?;
    let ino = walk(path.split(|&b| b == b'/'))?;
    if path.ends_with(b"/") && !is_dir(ino) {
        return Err(ENOTDIR);
    }
    Ok(ino)
}

/// Looks up the directory that contains the last component, and classifies that component.
///
/// # Errors
///
/// As [`path_lookup`] for the directory part.
pub fn path_parent(path: &[u8]) -> Result<(Ino, Last<'_>), i32> {
    check_len(path)?;
    let trimmed = &path[..path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1)];
    let (dir, last) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&trimmed[..slash], &trimmed[slash + 1..]),
        None => (&b""[..], trimmed),
    };
    let parent = walk(dir.split(|&b| b == b'/'))?;
    if !is_dir(parent) {
        return Err(ENOTDIR);
    }
    let last = match last {
        b"" => Last::Root,
        b"." => Last::Dot,
        b".." => Last::DotDot,
        name if name.len() > NAME_MAX => return Err(ENAMETOOLONG),
        name => Last::Norm(name),
    };
    Ok((parent, last))
}

fn fs_of(ino: Ino) -> Option<FsType> {
    inode(ino).map(|i| i.fs)
}

/// mkdir(2): a new, empty ramfs directory with mode 0755.
///
/// # Errors
///
/// `EEXIST`; `EPERM` outside the ramfs (procfs and sysfs have no mkdir); lookup errors.
pub fn mkdir(path: &[u8]) -> Result<(), i32> {
    let (dir, last) = path_parent(path)?;
    let Last::Norm(name) = last else {
        return Err(EEXIST);
    };
    if lookup(dir, name).is_some() {
        return Err(EEXIST);
    }
    if fs_of(dir) != Some(FsType::Ramfs) {
        return Err(EPERM);
    }
    mkdir_in(dir, name, FsType::Ramfs, 0o755).map(|_| ())
}

/// unlink(2): removes a file; an open file lives on until it is closed.
///
/// # Errors
///
/// `EISDIR` for a directory, `EPERM` outside the ramfs, lookup errors.
pub fn unlink(path: &[u8]) -> Result<(), i32> {
    let (dir, last) = path_parent(path)?;
    let Last::Norm(name) = last else {
        return Err(EISDIR);
    };
    let ino = lookup(dir, name).ok_or(ENOENT)?;
    if is_dir(ino) {
        return Err(EISDIR);
    }
    if path.ends_with(b"/") {
        return Err(ENOTDIR);
    }
    if fs_of(dir) != Some(FsType::Ramfs) {
        return Err(EPERM);
    }
    remove(dir, name);
    Ok(())
}

/// rmdir(2): removes an empty directory.
///
/// # Errors
///
/// `ENOTDIR`, `ENOTEMPTY`, `EBUSY` for a mount point or `/`, `EINVAL` for `.`, `EPERM`
/// outside the ramfs, lookup errors.
pub fn rmdir(path: &[u8]) -> Result<(), i32> {
    let (dir, last) = path_parent(path)?;
    let name = match last {
        Last::Norm(name) => name,
        Last::Dot => return Err(EINVAL),
        Last::DotDot => return Err(ENOTEMPTY),
        Last::Root => return Err(EBUSY),
    };
    let ino = lookup(dir, name).ok_or(ENOENT)?;
    if !is_dir(ino) {
        return Err(ENOTDIR);
    }
    if fs_of(dir) != Some(FsType::Ramfs) {
        return Err(EPERM);
    }
    if is_mountpoint(ino) {
        return Err(EBUSY);
    }
    if inode(ino).is_some_and(|i| matches!(&i.node, Node::Dir(entries) if !entries.is_empty())) {
        return Err(ENOTEMPTY);
    }
    remove(dir, name);
    Ok(())
}
