//! The file namespace the shell sees: the kernel's VFS through syscalls, plus the trees the host
//! core serves itself (/sys/kernel/livepatch, /sys/kernel/tracing, /proc/kallsyms,
//! /proc/sys/kernel/ftrace_enabled).

use crate::engine::Engine;
use crate::errno::Errno;
use crate::hostfs;
use crate::sys::{self, S_IFDIR, Stat, SysError, SysResult, flags};
use crate::sysfs;
use crate::tracing::tracefs;

/// Where `/proc/kallsyms` lives.
const KALLSYMS: &str = "/proc/kallsyms";

/// A path served by the host core rather than the kernel.
enum Served<'a> {
    Kallsyms,
    Livepatch(&'a str),
    Tracing(&'a str),
    FtraceEnabled,
}

fn under<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/'))
}

fn served(path: &str) -> Option<Served<'_>> {
    if path == KALLSYMS {
        return Some(Served::Kallsyms);
    }
    if path == tracefs::FTRACE_ENABLED {
        return Some(Served::FtraceEnabled);
    }
    under(path, sysfs::ROOT)
        .map(Served::Livepatch)
        .or_else(|| under(path, tracefs::ROOT).map(Served::Tracing))
}

/// Entries the host adds to kernel directories: its own files living there.
fn served_children(dir: &str) -> &'static [&'static str] {
    match dir {
        "/proc" => &["kallsyms"],
        "/proc/sys/kernel" => &["ftrace_enabled"],
        "/sys/kernel" => &["livepatch", "tracing"],
        _ => &[],
    }
}

/// Runs `$f::<Tree>(e, rel, ...)` for the tree that serves a path.
macro_rules! tree {
    ($served:expr, $e:expr, $f:ident ( $($arg:expr),* ), kallsyms => $k:expr) => {
        match $served {
            Served::Kallsyms => $k,
            Served::Livepatch(rel) => hostfs::$f::<sysfs::Livepatch>($e, rel $(, $arg)*),
            Served::Tracing(rel) => hostfs::$f::<tracefs::Tracefs>($e, rel $(, $arg)*),
            Served::FtraceEnabled => hostfs::$f::<tracefs::FtraceEnabled>($e, "" $(, $arg)*),
        }
    };
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
        Some(served) => Ok(
            tree!(served, e, read(), kallsyms => Ok(e.with_state(|s| s.kallsyms.format())))?
                .into_bytes(),
        ),
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
        Some(served) => {
            let open: Result<(), Errno> =
                tree!(&served, e, check_writable(), kallsyms => Err(Errno::EACCES));
            open.map_err(|err| WriteError::Open(err.into()))?;
            let done: SysResult<()> = tree!(served, e, write(data, append), kallsyms => Ok(()));
            done.map_err(WriteError::Write)
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
        Some(served) => {
            let kallsyms = Stat {
                mode: 0o100444,
                size: 0,
                nlink: 1,
                ino: 0,
            };
            Ok(tree!(served, e, stat(), kallsyms => Ok(kallsyms))?)
        }
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
        Some(served) => tree!(served, e, list(), kallsyms => Err(Errno::ENOTDIR))?,
        None => {
            let mut names: Vec<String> = sys::list_dir(e, &path)?
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n != "." && n != "..")
                .collect();
            names.extend(served_children(&path).iter().map(|n| (*n).to_string()));
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
