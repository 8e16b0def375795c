//! The file namespace the shell sees: the kernel's VFS through syscalls, plus the trees the host
//! core serves itself (/sys/kernel/livepatch, /proc/kallsyms).

use crate::engine::Engine;
use crate::errno::Errno;
use crate::sys::{self, S_IFDIR, Stat, SysError, SysResult, flags};
use crate::sysfs;

/// Where `/proc/kallsyms` lives.
const KALLSYMS: &str = "/proc/kallsyms";

/// A path served by the host core rather than the kernel.
enum Served<'a> {
    Kallsyms,
    Livepatch(&'a str),
}

fn served(path: &str) -> Option<Served<'_>> {
    if path == KALLSYMS {
        return Some(Served::Kallsyms);
    }
    let rest = path.strip_prefix(sysfs::ROOT)?;
    (rest.is_empty() || rest.starts_with('/'))
        .then(|| Served::Livepatch(rest.trim_start_matches('/')))
}

/// Makes `path` absolute and removes `.`, `..` and repeated slashes.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Reads a whole file.
///
/// # Errors
/// `ENOENT`, `EISDIR`, `EACCES` and the like, or a trap (oops).
pub fn read_file(e: &mut impl Engine, path: &str) -> SysResult<Vec<u8>> {
    let path = normalize(path);
    match served(&path) {
        Some(Served::Kallsyms) => Ok(e.with_state(|s| s.kallsyms.format()).into_bytes()),
        Some(Served::Livepatch(rel)) => Ok(sysfs::read(e, rel)?.into_bytes()),
        None => {
            let fd = sys::open(e, &path, flags::O_RDONLY)?;
            let data = sys::read_to_end(e, fd);
            sys::close(e, fd)?;
            data
        }
    }
}

/// Why a write failed: opening the file (`sh: PATH: ...`) or writing to it (`write error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The file could not be opened for writing.
    Open(SysError),
    /// The write itself failed.
    Write(SysError),
}

/// Writes `data` to a file, creating it, truncating it or appending to it.
///
/// # Errors
/// See [`WriteError`].
pub fn write_file(
    e: &mut impl Engine,
    path: &str,
    data: &[u8],
    append: bool,
) -> Result<(), WriteError> {
    let path = normalize(path);
    match served(&path) {
        Some(Served::Kallsyms) => Err(WriteError::Open(Errno::EACCES.into())),
        Some(Served::Livepatch(rel)) => {
            sysfs::check_writable(e, rel).map_err(|err| WriteError::Open(err.into()))?;
            sysfs::write(e, rel, data).map_err(WriteError::Write)
        }
        None => {
            let mode = if append {
                flags::O_APPEND
            } else {
                flags::O_TRUNC
            };
            let fd = sys::open(e, &path, flags::O_WRONLY | flags::O_CREAT | mode)
                .map_err(WriteError::Open)?;
            let written = sys::write(e, fd, data).map_err(WriteError::Write);
            let closed = sys::close(e, fd).map_err(WriteError::Write);
            written.and(closed)
        }
    }
}

/// `stat` of any path.
///
/// # Errors
/// `ENOENT` and the like, or a trap.
pub fn stat(e: &mut impl Engine, path: &str) -> SysResult<Stat> {
    let path = normalize(path);
    match served(&path) {
        Some(Served::Kallsyms) => Ok(Stat {
            mode: 0o100444,
            size: 0,
            nlink: 1,
            ino: 0,
        }),
        Some(Served::Livepatch(rel)) => Ok(sysfs::stat(e, rel)?),
        None => sys::stat(e, &path),
    }
}

/// One entry of a directory listing, with its `stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name within the directory.
    pub name: String,
    /// Its attributes.
    pub stat: Stat,
}

/// Lists a directory, sorted by name.
///
/// # Errors
/// `ENOENT`, `ENOTDIR`, or a trap.
pub fn list_dir(e: &mut impl Engine, path: &str) -> SysResult<Vec<Entry>> {
    let path = normalize(path);
    let mut entries = match served(&path) {
        Some(Served::Kallsyms) => return Err(Errno::ENOTDIR.into()),
        Some(Served::Livepatch(rel)) => sysfs::list(e, rel)?,
        None => {
            let mut names: Vec<String> = sys::list_dir(e, &path)?
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n != "." && n != "..")
                .collect();
            if path == "/proc" {
                names.push("kallsyms".into());
            }
            names
        }
    };
    entries.sort();
    entries.dedup();
    let base = if path == "/" {
        String::new()
    } else {
        path.clone()
    };
    entries
        .into_iter()
        .map(|name| {
            let stat = stat(e, &format!("{base}/{name}"))?;
            Ok(Entry { name, stat })
        })
        .collect()
}

/// Whether `stat` says directory.
pub fn is_dir(stat: &Stat) -> bool {
    stat.mode & 0o170000 == S_IFDIR
}

/// Creates a directory (kernel namespace only; sysfs refuses with `EPERM`).
///
/// # Errors
/// `EEXIST`, `ENOENT`, `EPERM`, or a trap.
pub fn mkdir(e: &mut impl Engine, path: &str) -> SysResult<()> {
    let path = normalize(path);
    match served(&path) {
        Some(_) => Err(Errno::EPERM.into()),
        None => sys::mkdir(e, &path),
    }
}

/// Removes a file (kernel namespace only; sysfs refuses with `EPERM`).
///
/// # Errors
/// `ENOENT`, `EISDIR`, `EPERM`, or a trap.
pub fn unlink(e: &mut impl Engine, path: &str) -> SysResult<()> {
    let path = normalize(path);
    match served(&path) {
        Some(_) => Err(Errno::EPERM.into()),
        None => sys::unlink(e, &path),
    }
}

/// Removes an empty directory (kernel namespace only).
///
/// # Errors
/// `ENOTEMPTY`, `ENOENT`, `EPERM`, or a trap.
pub fn rmdir(e: &mut impl Engine, path: &str) -> SysResult<()> {
    let path = normalize(path);
    match served(&path) {
        Some(_) => Err(Errno::EPERM.into()),
        None => sys::rmdir(e, &path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_and_slashes() {
        assert_eq!(normalize("/proc//./sys/../cmdline"), "/proc/cmdline");
        assert_eq!(normalize("tmp/x"), "/tmp/x");
        assert_eq!(normalize("/.."), "/");
    }

    #[test]
    fn livepatch_tree_is_served_by_the_host() {
        assert!(matches!(
            served("/sys/kernel/livepatch"),
            Some(Served::Livepatch(""))
        ));
        assert!(matches!(
            served("/sys/kernel/livepatch/p/enabled"),
            Some(Served::Livepatch("p/enabled"))
        ));
        assert!(served("/sys/kernel/livepatchx").is_none());
        assert!(served("/proc/cmdline").is_none());
    }
}
