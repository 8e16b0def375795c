//! The VFS: the inode table of every mounted filesystem, directories, and inode lifetime.
//!
//! One table holds the inodes of the root ramfs, procfs, sysfs and devtmpfs; each inode records the
//! filesystem it belongs to, which decides the operations it supports ([`file`]). An inode
//! lives while a directory links to it or a file descriptor has it open.

pub mod file;
pub mod namei;
mod readdir;
pub mod stat;

use alloc::boxed::Box;
use alloc::vec::Vec;

use klp_abi::CtlTable;
use klp_abi::errno::ENOMEM;
use klp_abi::stat::{S_IFCHR, S_IFDIR};

use crate::ramfs::RamFile;
use crate::seq_file::ShowFn;
use crate::sync::Global;
use crate::sysfs;

/// An inode number: the index in the inode table.
pub type Ino = u32;

/// The root directory's inode.
pub const ROOT_INO: Ino = 1;

/// Which filesystem an inode belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    /// The RAM filesystem mounted at `/`: files can be created, written and removed.
    Ramfs,
    /// procfs at `/proc`: seq_file and sysctl entries created by the kernel and modules.
    Proc,
    /// sysfs at `/sys`: directories and the attributes of modules' kobjects; the host serves
    /// `/sys/kernel/livepatch` and `/sys/module`.
    Sysfs,
    /// devtmpfs at `/dev`: the memory devices.
    Devtmpfs,
}

/// A character device of drivers/char/mem.c.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CharDev {
    /// `/dev/null`: reads end at once, writes are taken and dropped.
    Null,
    /// `/dev/zero`: reads give zeros, writes are taken and dropped.
    Zero,
    /// `/dev/kmsg` (kernel/printk/printk.c): reads give the log's records, writes log a line.
    Kmsg,
}

/// What an inode holds.
pub enum Node {
    /// A directory's entries, in creation order.
    Dir(Vec<DirEntry>),
    /// A ramfs file's contents.
    File(RamFile),
    /// A procfs file whose contents come from a show callback, and the `v` it is called with
    /// (0, or what the entry is about, such as the pid of a `/proc/<pid>` file).
    Seq(ShowFn, usize),
    /// A `/proc/sys` file served by a sysctl handler.
    Sysctl(&'static CtlTable),
    /// A sysfs attribute of a module's kobject, read by `show` and written by `store`.
    Attr(sysfs::Attr),
    /// A character device.
    Chr(CharDev),
}

/// A name in a directory.
pub struct DirEntry {
    /// The name, without slashes.
    pub name: Box<[u8]>,
    /// The inode it links to.
    pub ino: Ino,
    /// Whether that inode is a directory (a dentry knows its type).
    pub is_dir: bool,
}

/// An inode.
pub struct Inode {
    /// The filesystem it belongs to.
    pub fs: FsType,
    /// Type and permission bits.
    pub mode: u32,
    /// The directory it was created in (itself for the root).
    pub parent: Ino,
    /// Links: 1 for a file, 2 plus subdirectories for a directory, 0 once removed.
    pub nlink: u32,
    /// Open file descriptions referring to it.
    pub opened: u32,
    /// Its contents.
    pub node: Node,
}

impl Inode {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir(_))
    }
}

/// Whether `ino` is the root of a mounted filesystem (its parent is in another filesystem).
pub fn is_mountpoint(ino: Ino) -> bool {
    let Some((fs, parent)) = inode(ino).map(|i| (i.fs, i.parent)) else {
        return false;
    };
    ino == ROOT_INO || inode(parent).is_some_and(|p| p.fs != fs)
}

/// All inodes, indexed by inode number; freed slots are reused.
static INODES: Global<Vec<Option<Inode>>> = Global::new(Vec::new());

fn table() -> &'static mut Vec<Option<Inode>> {
    // SAFETY: VFS code keeps these borrows short and makes no outside calls while holding one.
    unsafe { INODES.get() }
}

/// The inode `ino`, if it exists. Do not hold two of these at once.
pub fn inode(ino: Ino) -> Option<&'static mut Inode> {
    table().get_mut(ino as usize)?.as_mut()
}

/// The entry `name` in directory `dir`.
pub fn lookup(dir: Ino, name: &[u8]) -> Option<Ino> {
    match &inode(dir)?.node {
        Node::Dir(entries) => entries.iter().find(|e| *e.name == *name).map(|e| e.ino),
        _ => None,
    }
}

/// Creates an inode in `dir` under `name` (which must not exist yet) and returns it.
///
/// # Errors
///
/// `ENOMEM` when kmalloc cannot hold the inode or the directory entry (`d_alloc` and
/// `new_inode` failing in Linux); nothing is created then.
pub fn create(dir: Ino, name: &[u8], fs: FsType, mode: u32, node: Node) -> Result<Ino, i32> {
    let is_dir = matches!(node, Node::Dir(_));
    let mut entry_name = Vec::new();
    entry_name
        .try_reserve_exact(name.len())
        .map_err(|_| ENOMEM)?;
    entry_name.extend_from_slice(name);
    if let Some(Inode {
        node: Node::Dir(entries),
        ..
    }) = inode(dir)
    {
        entries.try_reserve(1).map_err(|_| ENOMEM)?;
    }
    let inodes = table();
    let free = inodes
        .iter()
        .skip(ROOT_INO as usize + 1)
        .position(Option::is_none);
    if free.is_none() {
        inodes.try_reserve(1).map_err(|_| ENOMEM)?;
    }
    let new = Inode {
        fs,
        mode,
        parent: dir,
        nlink: if is_dir { 2 } else { 1 },
        opened: 0,
        node,
    };
    let ino = match free {
        Some(free) => free + ROOT_INO as usize + 1,
        None => {
            inodes.push(None);
            inodes.len() - 1
        }
    };
    inodes[ino] = Some(new);
    let ino = ino as Ino;
    if let Some(parent) = inode(dir) {
        if is_dir {
            parent.nlink += 1;
        }
        if let Node::Dir(entries) = &mut parent.node {
            entries.push(DirEntry {
                name: entry_name.into_boxed_slice(),
                ino,
                is_dir,
            });
        }
    }
    Ok(ino)
}

/// Removes `name` from `dir`; the inode is freed once no descriptor has it open.
pub fn remove(dir: Ino, name: &[u8]) {
    let Some(Inode {
        node: Node::Dir(entries),
        ..
    }) = inode(dir)
    else {
        return;
    };
    let Some(pos) = entries.iter().position(|e| *e.name == *name) else {
        return;
    };
    let ino = entries.remove(pos).ino;
    let Some(child) = inode(ino) else { return };
    child.nlink = 0;
    let child_is_dir = child.is_dir();
    if child_is_dir && let Some(parent) = inode(dir) {
        parent.nlink -= 1;
    }
    release(ino);
}

/// Drops one open reference to `ino` (see [`file`]).
pub fn put(ino: Ino) {
    if let Some(inode) = inode(ino) {
        inode.opened -= 1;
    }
    release(ino);
}

/// Frees an inode that is neither linked nor open.
fn release(ino: Ino) {
    if inode(ino).is_some_and(|i| i.nlink == 0 && i.opened == 0) {
        table()[ino as usize] = None;
    }
}

/// Bytes of page cache the ramfs files occupy: the pages they have allocated, each a 4 KiB
/// kmalloc block (so this is part of the memory counted as used, never more than it).
pub fn ramfs_pages_bytes() -> usize {
    table()
        .iter()
        .flatten()
        .map(|i| match &i.node {
            Node::File(file) => file.page_bytes(),
            _ => 0,
        })
        .sum()
}

/// Creates the directory `name` in `dir`.
///
/// # Errors
///
/// As [`create`].
pub fn mkdir_in(dir: Ino, name: &[u8], fs: FsType, mode: u32) -> Result<Ino, i32> {
    create(dir, name, fs, S_IFDIR | mode, Node::Dir(Vec::new()))
}

/// Mounts the root ramfs with `/tmp`, procfs at `/proc`, sysfs at `/sys` and devtmpfs at `/dev`
/// with `null` and `zero`.
pub fn init() {
    let inodes = table();
    if !inodes.is_empty() {
        return;
    }
    inodes.push(None);
    inodes.push(Some(Inode {
        fs: FsType::Ramfs,
        mode: S_IFDIR | 0o755,
        parent: ROOT_INO,
        nlink: 2,
        opened: 0,
        node: Node::Dir(Vec::new()),
    }));
    pr_info!("VFS: Mounted root (ramfs filesystem) on device 0:1.");
    // Boot-time directories: memory cannot be short yet.
    let _ = mkdir_in(ROOT_INO, b"tmp", FsType::Ramfs, 0o1777);
    let _ = mkdir_in(ROOT_INO, b"proc", FsType::Proc, 0o555);
    if let Ok(sys) = mkdir_in(ROOT_INO, b"sys", FsType::Sysfs, 0o555)
        && let Ok(kernel) = mkdir_in(sys, b"kernel", FsType::Sysfs, 0o755)
    {
        let _ = mkdir_in(kernel, b"livepatch", FsType::Sysfs, 0o755);
    }
    if let Ok(dev) = mkdir_in(ROOT_INO, b"dev", FsType::Devtmpfs, 0o755) {
        for (name, chr, perm) in [
            (&b"kmsg"[..], CharDev::Kmsg, 0o644),
            (b"null", CharDev::Null, 0o666),
            (b"zero", CharDev::Zero, 0o666),
        ] {
            let _ = create(dev, name, FsType::Devtmpfs, S_IFCHR | perm, Node::Chr(chr));
        }
    }
}
