//! /sys/kernel/livepatch, served from the livepatch core with Linux's files, modes and errors.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::livepatch;
use crate::state::KernelState;
use crate::sys::{S_IFDIR, Stat, SysResult};

/// Where the tree is mounted.
pub const ROOT: &str = "/sys/kernel/livepatch";

const S_IFREG: u32 = 0o100000;

/// A node of the tree.
enum Node {
    Dir(Vec<String>),
    Attr { mode: u32, value: Option<String> },
}

fn attr(mode: u32, value: impl Into<String>) -> Option<Node> {
    Some(Node::Attr {
        mode,
        value: Some(value.into()),
    })
}

fn flag(b: bool) -> String {
    format!("{}\n", u8::from(b))
}

fn node(s: &KernelState, rel: &str) -> Option<Node> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let lp = &s.livepatch;
    let Some((&name, rest)) = parts.split_first() else {
        return Some(Node::Dir(
            lp.patches.iter().map(|p| p.name.clone()).collect(),
        ));
    };
    let patch = lp.get(name)?;
    match rest {
        [] => {
            let mut names: Vec<String> =
                ["enabled", "force", "replace", "stack_order", "transition"]
                    .map(String::from)
                    .into();
            names.extend(patch.objs.iter().map(|o| o.display_name().to_string()));
            Some(Node::Dir(names))
        }
        ["enabled"] => attr(0o644, flag(patch.enabled)),
        ["transition"] => attr(0o444, flag(false)),
        ["force"] => Some(Node::Attr {
            mode: 0o200,
            value: None,
        }),
        ["replace"] => attr(0o444, flag(patch.replace)),
        ["stack_order"] => attr(0o444, format!("{}\n", lp.stack_order(name)?)),
        [obj, more @ ..] => {
            let obj = patch.objs.iter().find(|o| o.display_name() == *obj)?;
            match more {
                [] => {
                    let mut names = vec!["patched".to_string()];
                    names.extend(obj.funcs.iter().map(|f| f.sysfs_name()));
                    Some(Node::Dir(names))
                }
                ["patched"] => attr(0o444, flag(obj.patched)),
                [func] if obj.funcs.iter().any(|f| f.sysfs_name() == *func) => {
                    Some(Node::Dir(Vec::new()))
                }
                _ => None,
            }
        }
    }
}

fn lookup(e: &mut impl Engine, rel: &str) -> Result<Node, Errno> {
    e.with_state(|s| node(s, rel)).ok_or(Errno::ENOENT)
}

/// Reads an attribute.
///
/// # Errors
/// `ENOENT`, `EISDIR` for a directory, `EACCES` for a write-only attribute.
pub fn read(e: &mut impl Engine, rel: &str) -> Result<String, Errno> {
    match lookup(e, rel)? {
        Node::Dir(_) => Err(Errno::EISDIR),
        Node::Attr { value: None, .. } => Err(Errno::EACCES),
        Node::Attr { value: Some(v), .. } => Ok(v),
    }
}

/// Checks that a path can be opened for writing, as kernfs does at open time.
///
/// # Errors
/// `ENOENT`, `EISDIR`, or `EACCES` for a read-only attribute.
pub fn check_writable(e: &mut impl Engine, rel: &str) -> Result<(), Errno> {
    match lookup(e, rel)? {
        Node::Dir(_) => Err(Errno::EISDIR),
        Node::Attr { mode, .. } if mode & 0o200 == 0 => Err(Errno::EACCES),
        Node::Attr { .. } => Ok(()),
    }
}

/// The kernel's `kstrtobool`: `1/y/Y/on` true, `0/n/N/off` false, anything else `EINVAL`.
fn kstrtobool(data: &[u8]) -> Result<bool, Errno> {
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

/// Writes an attribute: `enabled` enables or disables the patch, `force` has nothing to force
/// (transitions here complete at once).
///
/// # Errors
/// `EINVAL` for garbage or for writing the current state, the errors of enabling and disabling,
/// `EACCES` for read-only attributes.
pub fn write(e: &mut impl Engine, rel: &str, data: &[u8]) -> SysResult<()> {
    check_writable(e, rel)?;
    let parts: Vec<&str> = rel.split('/').collect();
    let [patch, attr] = parts[..] else {
        return Err(Errno::EACCES.into());
    };
    let wanted = kstrtobool(data)?;
    match attr {
        "enabled" => {
            let enabled = e
                .with_state(|s| s.livepatch.get(patch).map(|p| p.enabled))
                .ok_or(Errno::ENOENT)?;
            match (enabled, wanted) {
                (false, true) => livepatch::enable(e, patch),
                (true, false) => livepatch::disable(e, patch),
                _ => Err(Errno::EINVAL.into()),
            }
        }
        "force" if !wanted => Ok(()),
        _ => Err(Errno::EINVAL.into()),
    }
}

/// `stat` of a node: sysfs attributes have size 4096, directories 0.
///
/// # Errors
/// `ENOENT`.
pub fn stat(e: &mut impl Engine, rel: &str) -> Result<Stat, Errno> {
    Ok(match lookup(e, rel)? {
        Node::Dir(_) => Stat {
            mode: S_IFDIR | 0o755,
            size: 0,
            nlink: 2,
            ino: 0,
        },
        Node::Attr { mode, .. } => Stat {
            mode: S_IFREG | mode,
            size: 4096,
            nlink: 1,
            ino: 0,
        },
    })
}

/// Lists a directory.
///
/// # Errors
/// `ENOENT`, `ENOTDIR`.
pub fn list(e: &mut impl Engine, rel: &str) -> Result<Vec<String>, Errno> {
    match lookup(e, rel)? {
        Node::Dir(names) => Ok(names),
        Node::Attr { .. } => Err(Errno::ENOTDIR),
    }
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
}
