//! Attribute trees the host core serves itself (sysfs's livepatch and module directories,
//! tracefs), with the open/read/write rules kernfs applies to them.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::state::KernelState;
use crate::sys::{S_IFDIR, Stat, SysResult};

const S_IFREG: u32 = 0o100000;

/// A node of a served tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory and its entries.
    Dir(Vec<String>),
    /// An attribute: its mode and, when readable, its contents.
    Attr {
        /// Permission bits.
        mode: u32,
        /// The contents; `None` for a write-only attribute.
        value: Option<String>,
    },
}

impl Node {
    /// A readable attribute.
    pub fn attr(mode: u32, value: impl Into<String>) -> Option<Node> {
        Some(Node::Attr {
            mode,
            value: Some(value.into()),
        })
    }
}

/// `1\n` or `0\n`.
pub fn flag(b: bool) -> String {
    format!("{}\n", u8::from(b))
}

/// A tree of attributes served by the host.
pub trait Tree {
    /// The node at `rel` (relative to the tree's root), if it exists.
    fn node(s: &KernelState, rel: &str) -> Option<Node>;

    /// The size `stat` gives an attribute: sysfs and tracefs say 4096 (a page), procfs 0.
    const ATTR_SIZE: u32 = 4096;

    /// The node at `rel` with whatever it shows from kernel memory (a module parameter's
    /// value); by default [`Tree::node`].
    fn lookup(e: &mut impl Engine, rel: &str) -> Option<Node> {
        e.with_state(|s| Self::node(s, rel))
    }

    /// Writes an attribute that [`check_writable`] allowed.
    ///
    /// # Errors
    /// Whatever the attribute refuses.
    fn store(e: &mut impl Engine, rel: &str, data: &[u8], append: bool) -> SysResult<()>;
}

fn lookup<T: Tree>(e: &mut impl Engine, rel: &str) -> Result<Node, Errno> {
    T::lookup(e, rel).ok_or(Errno::ENOENT)
}

/// Reads an attribute.
///
/// # Errors
/// `ENOENT`, `EISDIR` for a directory, `EACCES` for a write-only attribute.
pub fn read<T: Tree>(e: &mut impl Engine, rel: &str) -> Result<String, Errno> {
    match lookup::<T>(e, rel)? {
        Node::Dir(_) => Err(Errno::EISDIR),
        Node::Attr { value: None, .. } => Err(Errno::EACCES),
        Node::Attr { value: Some(v), .. } => Ok(v),
    }
}

/// Checks that a path can be opened for writing, as kernfs does at open time.
///
/// # Errors
/// `ENOENT`, `EISDIR`, or `EACCES` for a read-only attribute.
pub fn check_writable<T: Tree>(e: &mut impl Engine, rel: &str) -> Result<(), Errno> {
    match lookup::<T>(e, rel)? {
        Node::Dir(_) => Err(Errno::EISDIR),
        Node::Attr { mode, .. } if mode & 0o200 == 0 => Err(Errno::EACCES),
        Node::Attr { .. } => Ok(()),
    }
}

/// Writes an attribute that [`check_writable`] allowed at open time (the caller checks first, so
/// the node, whose contents may be large, is not built twice).
///
/// # Errors
/// Whatever the attribute refuses.
pub fn write<T: Tree>(e: &mut impl Engine, rel: &str, data: &[u8], append: bool) -> SysResult<()> {
    T::store(e, rel, data, append)
}

/// `stat` of a node: attributes have the tree's [`Tree::ATTR_SIZE`], directories 0.
///
/// # Errors
/// `ENOENT`.
pub fn stat<T: Tree>(e: &mut impl Engine, rel: &str) -> Result<Stat, Errno> {
    Ok(match lookup::<T>(e, rel)? {
        Node::Dir(_) => Stat {
            mode: S_IFDIR | 0o755,
            size: 0,
            nlink: 2,
            ino: 0,
        },
        Node::Attr { mode, .. } => Stat {
            mode: S_IFREG | mode,
            size: T::ATTR_SIZE,
            nlink: 1,
            ino: 0,
        },
    })
}

/// Lists a directory.
///
/// # Errors
/// `ENOENT`, `ENOTDIR`.
pub fn list<T: Tree>(e: &mut impl Engine, rel: &str) -> Result<Vec<String>, Errno> {
    match lookup::<T>(e, rel)? {
        Node::Dir(names) => Ok(names),
        Node::Attr { .. } => Err(Errno::ENOTDIR),
    }
}

/// The kernel's `kstrtobool`: `1/y/Y/on` true, `0/n/N/off` false, anything else `EINVAL`.
///
/// # Errors
/// `EINVAL`.
pub fn kstrtobool(data: &[u8]) -> Result<bool, Errno> {
    let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    match text.as_bytes() {
        [b'1' | b'y' | b'Y', ..] => Ok(true),
        [b'0' | b'n' | b'N', ..] => Ok(false),
        [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
        [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
        _ => Err(Errno::EINVAL),
    }
}

/// `kstrtoul` for 0 or 1 (tracefs switches, ftrace_enabled).
///
/// # Errors
/// `EINVAL` for anything but a number.
pub fn switch(data: &[u8]) -> Result<bool, Errno> {
    let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?.trim();
    text.parse::<u64>()
        .map(|v| v != 0)
        .map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstrtobool_accepts_what_linux_accepts() {
        assert_eq!(kstrtobool(b"1\n"), Ok(true));
        assert_eq!(kstrtobool(b"N"), Ok(false));
        assert_eq!(kstrtobool(b"on"), Ok(true));
        assert_eq!(kstrtobool(b"off\n"), Ok(false));
        assert_eq!(kstrtobool(b"2"), Err(Errno::EINVAL));
        assert_eq!(kstrtobool(b""), Err(Errno::EINVAL));
        assert_eq!(kstrtobool(b"garbage"), Err(Errno::EINVAL));
    }

    #[test]
    fn switches_take_numbers_only() {
        assert_eq!(switch(b"0\n"), Ok(false));
        assert_eq!(switch(b"5"), Ok(true));
        assert_eq!(switch(b"on"), Err(Errno::EINVAL));
    }
}
