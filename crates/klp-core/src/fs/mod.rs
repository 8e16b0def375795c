//! The one file namespace the shell, insmod and the page see: the kernel's VFS through
//! syscalls, the trees the host core serves itself (/sys/kernel/livepatch, /sys/kernel/tracing,
//! /proc/kallsyms, /proc/mounts, /proc/sys/kernel/ftrace_enabled), and the mounts: the modules
//! tree under /lib/modules/<release> and host directories mounted on request. The host's own
//! file system is never read unless it is mounted.

pub mod hostdir;
pub mod modules;
pub mod mounts;

use crate::engine::Engine;
use crate::errno::Errno;
use crate::hostfs;
use crate::module_sysfs;
use crate::sys::{self, S_IFDIR, Stat, SysError, SysResult, flags};
use crate::sysfs;
use crate::tracing::tracefs;
use crate::watchdog;
use hostdir::HostDir;
use modules::ModuleFiles;
use mounts::{Backend, Change};

/// Where `/proc/kallsyms` lives.
const KALLSYMS: &str = "/proc/kallsyms";
/// Where `/proc/mounts` lives.
const PROC_MOUNTS: &str = "/proc/mounts";

/// What the host core serves itself, beside the kernel's own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostFile {
    Kallsyms,
    ProcMounts,
    Livepatch,
    Tracing,
    Module,
    FtraceEnabled,
    WatchdogThresh,
    /// `/proc/<pid>/stack`, at the pid.
    TaskStack,
}

impl HostFile {
    /// Whether it is a directory tree (else a single file).
    fn is_tree(self) -> bool {
        matches!(
            self,
            HostFile::Livepatch | HostFile::Tracing | HostFile::Module
        )
    }
}

/// Where each [`HostFile`] lives: one table for the lookups and for listing the kernel
/// directories they sit in.
const HOST_FILES: [(&str, HostFile); 7] = [
    (KALLSYMS, HostFile::Kallsyms),
    (PROC_MOUNTS, HostFile::ProcMounts),
    (sysfs::ROOT, HostFile::Livepatch),
    (tracefs::ROOT, HostFile::Tracing),
    (module_sysfs::ROOT, HostFile::Module),
    (tracefs::FTRACE_ENABLED, HostFile::FtraceEnabled),
    (watchdog::WATCHDOG_THRESH, HostFile::WatchdogThresh),
];

/// A path served by the host core rather than the kernel.
enum Served<'a> {
    /// A host file or tree, and the path inside it (`""` for its root).
    Host(HostFile, &'a str),
    /// A mount of the mount table, and the path inside it.
    Mount(usize, String),
}

fn under<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/'))
}

/// Who serves `path`: a mount (the deepest mount point containing it), a host tree, or the
/// kernel (`None`).
fn served<'a>(e: &mut impl Engine, path: &'a str) -> Option<Served<'a>> {
    if let Some((i, rel)) = e.with_state(|s| s.mounts.resolve(path)) {
        return Some(Served::Mount(i, rel));
    }
    served_tree(path)
}

fn served_tree(path: &str) -> Option<Served<'_>> {
    if let Some(pid) = crate::tasks::procfs::stack_pid(path) {
        return Some(Served::Host(HostFile::TaskStack, pid));
    }
    HOST_FILES.iter().find_map(|&(at, file)| {
        let rel = under(path, at)?;
        (file.is_tree() || rel.is_empty()).then_some(Served::Host(file, rel))
    })
}

/// Entries the host adds to kernel directories: its own files living there.
fn served_children(dir: &str) -> impl Iterator<Item = &'static str> + '_ {
    let stack = crate::tasks::procfs::is_pid_dir(dir).then_some("stack");
    HOST_FILES
        .iter()
        .filter_map(move |(at, _)| {
            let (parent, name) = at.rsplit_once('/')?;
            (parent == dir || (parent.is_empty() && dir == "/")).then_some(name)
        })
        .chain(stack)
}

/// Runs `$f::<Tree>(e, rel, ...)` for the attribute tree that serves a path, `$other` for the
/// rest (single files and mounts, which each caller handles first).
macro_rules! tree {
    ($served:expr, $e:expr, $f:ident ( $($arg:expr),* ), other => $other:expr) => {
        match $served {
            Served::Host(HostFile::Livepatch, rel) => hostfs::$f::<sysfs::Livepatch>($e, rel $(, $arg)*),
            Served::Host(HostFile::Tracing, rel) => hostfs::$f::<tracefs::Tracefs>($e, rel $(, $arg)*),
            Served::Host(HostFile::Module, rel) => hostfs::$f::<module_sysfs::SysModule>($e, rel $(, $arg)*),
            Served::Host(HostFile::FtraceEnabled, rel) => hostfs::$f::<tracefs::FtraceEnabled>($e, rel $(, $arg)*),
            Served::Host(HostFile::WatchdogThresh, rel) => hostfs::$f::<watchdog::WatchdogThresh>($e, rel $(, $arg)*),
            Served::Host(HostFile::TaskStack, rel) => hostfs::$f::<crate::tasks::procfs::TaskStack>($e, rel $(, $arg)*),
            _ => $other,
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

/// [`normalize`]s a path a caller gave; one with a NUL byte is `EINVAL` before any call: the
/// kernel's C strings would end there, and a file so named would make its directory unlistable.
fn checked(path: &str) -> Result<String, Errno> {
    if path.contains('\0') {
        return Err(Errno::EINVAL);
    }
    Ok(normalize(path))
}

/// Reads a whole file.
///
/// # Errors
/// `ENOENT`, `EISDIR`, `EACCES`, `EINVAL` for a NUL in the path, and the like, or a trap (oops).
pub fn read_file(e: &mut impl Engine, path: &str) -> SysResult<Vec<u8>> {
    let path = checked(path)?;
    match served(e, &path) {
        Some(Served::Host(HostFile::ProcMounts, _)) => {
            Ok(e.with_state(|s| s.mounts.proc_mounts()).into_bytes())
        }
        Some(Served::Host(HostFile::Kallsyms, _)) => {
            Ok(e.with_state(|s| s.kallsyms.format()).into_bytes())
        }
        Some(Served::Mount(i, rel)) => Ok(e.with_state(|s| s.mounts.read(i, &rel))?),
        Some(served) => Ok(tree!(served, e, read(), other => Err(Errno::ENOENT))?.into_bytes()),
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
    let path = checked(path).map_err(|err| WriteError::Open(err.into()))?;
    match served(e, &path) {
        Some(Served::Mount(i, rel)) => e.with_state(|s| {
            s.mounts
                .check_writable(i)
                .map_err(|err| WriteError::Open(err.into()))?;
            s.mounts
                .write(i, &rel, data, append)
                .map_err(|err| WriteError::Open(err.into()))
        }),
        Some(served) => {
            let open: Result<(), Errno> =
                tree!(&served, e, check_writable(), other => Err(Errno::EACCES));
            open.map_err(|err| WriteError::Open(err.into()))?;
            let done: SysResult<()> = tree!(served, e, write(data, append), other => Ok(()));
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
/// `ENOENT`, `EINVAL` for a NUL in the path, and the like, or a trap.
pub fn stat(e: &mut impl Engine, path: &str) -> SysResult<Stat> {
    let path = checked(path)?;
    match served(e, &path) {
        Some(Served::Mount(i, rel)) => Ok(e.with_state(|s| s.mounts.stat(i, &rel))?),
        Some(served) => {
            // The single files (kallsyms, mounts): read-only, size 0 as procfs says.
            let file = Stat {
                mode: 0o100444,
                size: 0,
                nlink: 1,
                ino: 0,
            };
            Ok(tree!(served, e, stat(), other => Ok(file))?)
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

/// Lists a directory, sorted by name; mount points inside it are listed too.
///
/// # Errors
/// `ENOENT`, `ENOTDIR`, `EINVAL` for a NUL in the path, or a trap.
pub fn list_dir(e: &mut impl Engine, path: &str) -> SysResult<Vec<Entry>> {
    let path = checked(path)?;
    let mut entries = match served(e, &path) {
        Some(Served::Mount(i, rel)) => e.with_state(|s| s.mounts.list(i, &rel))?,
        Some(served) => tree!(served, e, list(), other => Err(Errno::ENOTDIR))?,
        None => {
            let mut names: Vec<String> = sys::list_dir(e, &path)?
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n != "." && n != "..")
                .collect();
            names.extend(served_children(&path).map(str::to_string));
            names
        }
    };
    entries.extend(e.with_state(|s| s.mounts.children(&path)));
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

/// Creates, removes a file or removes a directory: in a mount through its backend, in the
/// kernel through its syscalls; the host trees refuse with `EPERM`, a NUL in the path is `EINVAL`.
fn change(e: &mut impl Engine, path: &str, op: Change) -> SysResult<()> {
    let path = checked(path)?;
    match served(e, &path) {
        Some(Served::Mount(i, rel)) => Ok(e.with_state(|s| s.mounts.change(i, &rel, op))?),
        Some(_) => Err(Errno::EPERM.into()),
        None => match op {
            Change::Mkdir => sys::mkdir(e, &path),
            Change::Unlink => sys::unlink(e, &path),
            Change::Rmdir if e.with_state(|s| s.mounts.is_mount_point(&path)) => {
                Err(Errno::EBUSY.into())
            }
            Change::Rmdir => sys::rmdir(e, &path),
        },
    }
}

/// Creates a directory.
///
/// # Errors
/// `EEXIST`, `ENOENT`, `EPERM`, `EROFS`, or a trap.
pub fn mkdir(e: &mut impl Engine, path: &str) -> SysResult<()> {
    change(e, path, Change::Mkdir)
}

/// Removes a file.
///
/// # Errors
/// `ENOENT`, `EISDIR`, `EPERM`, `EROFS`, or a trap.
pub fn unlink(e: &mut impl Engine, path: &str) -> SysResult<()> {
    change(e, path, Change::Unlink)
}

/// Removes an empty directory.
///
/// # Errors
/// `ENOTEMPTY`, `ENOENT`, `EPERM`, `EBUSY` for a mount point, `EROFS`, or a trap.
pub fn rmdir(e: &mut impl Engine, path: &str) -> SysResult<()> {
    change(e, path, Change::Rmdir)
}

/// Creates `path` and its missing parents (`mkdir -p`).
///
/// # Errors
/// As [`mkdir`], except `EEXIST`.
pub fn mkdir_all(e: &mut impl Engine, path: &str) -> SysResult<()> {
    let mut prefix = String::new();
    for part in normalize(path).split('/').filter(|p| !p.is_empty()) {
        prefix = format!("{prefix}/{part}");
        match mkdir(e, &prefix) {
            Err(SysError::Errno(Errno::EEXIST)) | Ok(()) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Mounts `backend` on `point`. A point in the kernel's namespace is created first (`mkdir -p`)
/// and must be a directory; a point inside another mount needs no directory there.
///
/// # Errors
/// What creating the mount point fails with (`EPERM` in a host tree, `ENOTDIR`, ...).
fn mount(
    e: &mut impl Engine,
    point: &str,
    source: &str,
    readonly: bool,
    backend: Backend,
) -> SysResult<()> {
    let point = normalize(point);
    if e.with_state(|s| s.mounts.resolve(&point)).is_none() {
        mkdir_all(e, &point)?;
        if !is_dir(&stat(e, &point)?) {
            return Err(Errno::ENOTDIR.into());
        }
    }
    e.with_state(|s| s.mounts.add(&point, source, readonly, backend));
    Ok(())
}

/// Mounts a host directory on `point` (`klp run --mount HOST_DIR:POINT[:ro]`); `source` is what
/// `/proc/mounts` names it by.
///
/// # Errors
/// See [`mount`].
pub fn mount_host(
    e: &mut impl Engine,
    dir: Box<dyn HostDir>,
    source: &str,
    point: &str,
    readonly: bool,
) -> SysResult<()> {
    mount(e, point, source, readonly, Backend::Host(dir))
}

/// Mounts the modules tree at `/lib/modules/<release>`, the release read from the kernel; done
/// at boot.
///
/// # Errors
/// A failed syscall or a trap.
pub fn mount_modules(e: &mut impl Engine, files: ModuleFiles) -> SysResult<()> {
    let release = sys::uname(e)?.fields[2].clone();
    e.with_state(|s| s.mounts.set_release(&release));
    mount(
        e,
        &modules::dir(&release),
        "modules",
        true,
        Backend::Modules(files),
    )
}

/// The modules directory, `/lib/modules/<release>`.
pub fn modules_dir(e: &mut impl Engine) -> String {
    modules::dir(&e.with_state(|s| s.mounts.release().to_string()))
}

/// Reads a module for `insmod`: a path (it has a `/` or ends in `.wasm`/`.ko`) anywhere in the
/// namespace, or a name looked up in `/lib/modules/<release>/extra` and then
/// `/lib/modules/<release>`, `-` and `_` alike.
///
/// # Errors
/// `ENOENT` when no candidate exists; any other error of the first candidate that exists.
pub fn read_module(e: &mut impl Engine, name_or_path: &str) -> SysResult<Vec<u8>> {
    let is_path = name_or_path.contains('/')
        || name_or_path.ends_with(".wasm")
        || name_or_path.ends_with(".ko");
    if is_path {
        // finit_module reads only regular files (kernel_read_file: EINVAL for a device).
        if stat(e, name_or_path)?.mode & sys::S_IFMT == sys::S_IFCHR {
            return Err(Errno::EINVAL.into());
        }
        return read_file(e, name_or_path);
    }
    let release = e.with_state(|s| s.mounts.release().to_string());
    for path in modules::candidates(&release, name_or_path) {
        match read_file(e, &path) {
            Err(SysError::Errno(Errno::ENOENT)) => {}
            other => return other,
        }
    }
    Err(Errno::ENOENT.into())
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
    fn a_path_with_a_nul_byte_is_invalid() {
        assert_eq!(checked("/tmp/a\0b"), Err(Errno::EINVAL));
        assert_eq!(checked("/tmp//a"), Ok("/tmp/a".to_string()));
    }

    #[test]
    fn livepatch_tree_is_served_by_the_host() {
        assert!(matches!(
            served_tree("/sys/kernel/livepatch"),
            Some(Served::Host(HostFile::Livepatch, ""))
        ));
        assert!(matches!(
            served_tree("/sys/kernel/livepatch/p/enabled"),
            Some(Served::Host(HostFile::Livepatch, "p/enabled"))
        ));
        assert!(served_tree("/sys/kernel/livepatchx").is_none());
        assert!(served_tree("/proc/cmdline").is_none());
        assert!(
            served_tree("/proc/kallsyms/x").is_none(),
            "a file is not a directory"
        );
    }

    #[test]
    fn host_files_are_listed_in_the_kernel_directories_they_sit_in() {
        let listed = |dir| served_children(dir).collect::<Vec<_>>();
        assert_eq!(listed("/proc"), ["kallsyms", "mounts"]);
        assert_eq!(
            listed("/proc/sys/kernel"),
            ["ftrace_enabled", "watchdog_thresh"]
        );
        assert_eq!(listed("/sys"), ["module"]);
        assert_eq!(listed("/sys/kernel"), ["livepatch", "tracing"]);
        assert!(listed("/").is_empty());
    }
}
