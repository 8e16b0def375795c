//! stat(2): an inode's type, permissions, size, link count and number.

use klp_abi::SYSFS_BUF_SIZE;
use klp_abi::errno::ENOENT;
use klp_abi::stat::S_IFREG;

use super::{Node, inode, namei};

/// The fields of the ABI's `statbuf` ([`klp_abi::stat`]).
pub struct Stat {
    /// Type and permission bits.
    pub mode: u32,
    /// Size in bytes: a ramfs file's length, 0 for directories and procfs
    /// files, `PAGE_SIZE` for sysfs attributes (as Linux).
    pub size: u32,
    /// Link count.
    pub nlink: u32,
    /// Inode number.
    pub ino: u32,
}

/// stat(2) of a path.
///
/// # Errors
///
/// Lookup errors.
pub fn stat(path: &[u8]) -> Result<Stat, i32> {
    let ino = namei::path_lookup(path)?;
    let inode = inode(ino).ok_or(ENOENT)?;
    let (mode, size) = match &inode.node {
        Node::File(data) => (inode.mode, data.size() as u32),
        Node::Sysctl(table) => (S_IFREG | table.mode, 0),
        // sysfs attributes say PAGE_SIZE, the most a show can give.
        Node::Attr(_) => (inode.mode, SYSFS_BUF_SIZE as u32),
        Node::Dir(_) | Node::Seq(..) | Node::Chr(_) => (inode.mode, 0),
    };
    Ok(Stat {
        mode,
        size,
        nlink: inode.nlink,
        ino,
    })
}
