//! A host directory mounted into the kernel's namespace (`klp run --mount`, `--modules`), as
//! UML's hostfs or 9p do; no path may lead outside it.

use crate::errno::Errno;
use crate::sys::{S_IFDIR, Stat};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const S_IFREG: u32 = 0o100000;

/// The largest host file a mount reads (64 MiB): a bigger one is `EFBIG`, as a read past
/// `kernel_read_file`'s `max_size` is in Linux.
pub const MAX_READ: u64 = 64 << 20;

/// The host side of a mount: file operations on paths relative to the mounted directory
/// (`""` is its root, components are separated by `/` and never `.` or `..`).
pub trait HostDir: Send {
    /// A regular file's contents.
    ///
    /// # Errors
    /// `ENOENT`, `EISDIR`, `EACCES`, `EINVAL` for a FIFO or device (as `kernel_read_file`),
    /// `EFBIG` past [`MAX_READ`], ...
    fn read(&self, rel: &str) -> Result<Vec<u8>, Errno>;
    /// Creates, truncates or appends to a file.
    ///
    /// # Errors
    /// `ENOENT`, `EISDIR`, `EACCES`, ...
    fn write(&self, rel: &str, data: &[u8], append: bool) -> Result<(), Errno>;
    /// A node's type, mode and size.
    ///
    /// # Errors
    /// `ENOENT`, ...
    fn stat(&self, rel: &str) -> Result<Stat, Errno>;
    /// A directory's entries.
    ///
    /// # Errors
    /// `ENOENT`, `ENOTDIR`, ...
    fn list(&self, rel: &str) -> Result<Vec<String>, Errno>;
    /// Creates a directory.
    ///
    /// # Errors
    /// `EEXIST`, `ENOENT`, ...
    fn mkdir(&self, rel: &str) -> Result<(), Errno>;
    /// Removes a file.
    ///
    /// # Errors
    /// `ENOENT`, `EISDIR`, ...
    fn unlink(&self, rel: &str) -> Result<(), Errno>;
    /// Removes an empty directory.
    ///
    /// # Errors
    /// `ENOENT`, `ENOTDIR`, `ENOTEMPTY`, ...
    fn rmdir(&self, rel: &str) -> Result<(), Errno>;
}

/// A directory of the host's file system, through `std::fs`. Symbolic links are followed only
/// while they stay inside the directory; one that leads out is `EACCES`.
#[derive(Debug, Clone)]
pub struct StdDir {
    root: PathBuf,
}

fn io(err: &std::io::Error) -> Errno {
    err.raw_os_error().map_or(Errno::EIO, Errno)
}

impl StdDir {
    /// Opens `dir` (it must exist and be a directory).
    ///
    /// # Errors
    /// The reason, as text: `No such file or directory`, `Not a directory`, ...
    pub fn open(dir: &Path) -> Result<StdDir, String> {
        let root = std::fs::canonicalize(dir).map_err(|e| io(&e).strerror())?;
        if !root.is_dir() {
            return Err(Errno::ENOTDIR.strerror());
        }
        Ok(StdDir { root })
    }

    /// The mounted directory, canonical.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of `rel` with every symbolic link resolved; it must exist and lie inside.
    fn existing(&self, rel: &str) -> Result<PathBuf, Errno> {
        let path = std::fs::canonicalize(self.root.join(rel)).map_err(|e| io(&e))?;
        if path.starts_with(&self.root) {
            Ok(path)
        } else {
            Err(Errno::EACCES)
        }
    }

    /// The host path of `rel`'s last component inside its resolved parent, without following the
    /// last component (for creating or removing it). A dangling link there is refused.
    fn entry(&self, rel: &str) -> Result<PathBuf, Errno> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() {
            return Err(Errno::EBUSY);
        }
        let path = self.existing(parent)?.join(name);
        Ok(path)
    }
}

fn kind_of(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() { S_IFDIR } else { S_IFREG }
}

impl HostDir for StdDir {
    fn read(&self, rel: &str) -> Result<Vec<u8>, Errno> {
        let path = self.existing(rel)?;
        // The type is checked before opening: opening a FIFO blocks until it has a writer.
        let meta = std::fs::metadata(&path).map_err(|e| io(&e))?;
        if meta.is_dir() {
            return Err(Errno::EISDIR);
        }
        if !meta.is_file() {
            return Err(Errno::EINVAL);
        }
        let file = std::fs::File::open(path).map_err(|e| io(&e))?;
        let meta = file.metadata().map_err(|e| io(&e))?;
        if !meta.is_file() {
            return Err(Errno::EINVAL);
        }
        if meta.len() > MAX_READ {
            return Err(Errno::EFBIG);
        }
        // The file may grow while it is read: never more than the limit and one byte.
        let mut data = Vec::new();
        file.take(MAX_READ + 1)
            .read_to_end(&mut data)
            .map_err(|e| io(&e))?;
        if data.len() as u64 > MAX_READ {
            return Err(Errno::EFBIG);
        }
        Ok(data)
    }

    fn write(&self, rel: &str, data: &[u8], append: bool) -> Result<(), Errno> {
        let path = self.entry(rel)?;
        let path = match std::fs::symlink_metadata(&path) {
            // An existing link is written through only when it leads inside.
            Ok(meta) if meta.file_type().is_symlink() => self.existing(rel)?,
            Ok(meta) if meta.is_dir() => return Err(Errno::EISDIR),
            _ => path,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| io(&e))?;
        file.write_all(data).map_err(|e| io(&e))
    }

    fn stat(&self, rel: &str) -> Result<Stat, Errno> {
        let meta = std::fs::metadata(self.existing(rel)?).map_err(|e| io(&e))?;
        #[cfg(unix)]
        let perm = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o7777
        };
        #[cfg(not(unix))]
        let perm = if meta.permissions().readonly() {
            0o555
        } else {
            0o755
        };
        Ok(Stat {
            mode: kind_of(&meta) | perm,
            size: u32::try_from(meta.len()).unwrap_or(u32::MAX),
            nlink: if meta.is_dir() { 2 } else { 1 },
            ino: 0,
        })
    }

    fn list(&self, rel: &str) -> Result<Vec<String>, Errno> {
        let path = self.existing(rel)?;
        if !path.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| io(&e))? {
            let entry = entry.map_err(|e| io(&e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn mkdir(&self, rel: &str) -> Result<(), Errno> {
        std::fs::create_dir(self.entry(rel)?).map_err(|e| io(&e))
    }

    fn unlink(&self, rel: &str) -> Result<(), Errno> {
        let path = self.entry(rel)?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&e))?;
        if meta.is_dir() {
            return Err(Errno::EISDIR);
        }
        std::fs::remove_file(path).map_err(|e| io(&e))
    }

    fn rmdir(&self, rel: &str) -> Result<(), Errno> {
        let path = self.entry(rel)?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&e))?;
        if !meta.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        std::fs::remove_dir(path).map_err(|e| io(&e))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "klp-hostdir-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn files_inside_are_read_written_and_listed() {
        let tmp = Scratch::new("rw");
        let dir = StdDir::open(&tmp.0).unwrap();
        dir.mkdir("sub").unwrap();
        dir.write("sub/a", b"one\n", false).unwrap();
        dir.write("sub/a", b"two\n", true).unwrap();
        assert_eq!(dir.read("sub/a").unwrap(), b"one\ntwo\n");
        assert_eq!(dir.list("sub").unwrap(), vec!["a".to_string()]);
        assert_eq!(dir.stat("sub").unwrap().mode & S_IFDIR, S_IFDIR);
        assert_eq!(dir.read("sub"), Err(Errno::EISDIR));
        assert_eq!(dir.rmdir("sub"), Err(Errno::ENOTEMPTY));
        dir.unlink("sub/a").unwrap();
        dir.rmdir("sub").unwrap();
        assert_eq!(dir.read("nope"), Err(Errno::ENOENT));
    }

    #[test]
    fn symlinks_leading_outside_are_refused() {
        let outside = Scratch::new("outside");
        std::fs::write(outside.0.join("secret"), b"host file").unwrap();
        let tmp = Scratch::new("links");
        std::os::unix::fs::symlink(outside.0.join("secret"), tmp.0.join("abs")).unwrap();
        std::os::unix::fs::symlink("../", tmp.0.join("up")).unwrap();
        std::os::unix::fs::symlink(outside.0.join("new"), tmp.0.join("dangling")).unwrap();
        std::fs::write(tmp.0.join("inside"), b"in").unwrap();
        std::os::unix::fs::symlink("inside", tmp.0.join("ok")).unwrap();
        let dir = StdDir::open(&tmp.0).unwrap();
        assert_eq!(dir.read("abs"), Err(Errno::EACCES));
        assert_eq!(dir.write("abs", b"x", false), Err(Errno::EACCES));
        assert_eq!(dir.list("up"), Err(Errno::EACCES));
        assert_eq!(dir.write("up/escaped", b"x", false), Err(Errno::EACCES));
        assert_eq!(dir.write("dangling", b"x", false), Err(Errno::ENOENT));
        assert_eq!(dir.read("ok").unwrap(), b"in");
        assert_eq!(
            std::fs::read(outside.0.join("secret")).unwrap(),
            b"host file"
        );
        assert!(!outside.0.join("new").exists());
        assert!(!outside.0.parent().unwrap().join("escaped").exists());
        // Removing a link removes the link, never its target.
        dir.unlink("abs").unwrap();
        assert!(outside.0.join("secret").exists());
    }

    #[test]
    fn reading_a_fifo_is_refused_without_blocking() {
        let tmp = Scratch::new("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(tmp.0.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let dir = StdDir::open(&tmp.0).unwrap();
        assert_eq!(dir.read("pipe"), Err(Errno::EINVAL));
    }

    #[test]
    fn reading_a_file_past_the_limit_is_file_too_large() {
        let tmp = Scratch::new("big");
        let file = std::fs::File::create(tmp.0.join("big")).unwrap();
        file.set_len(MAX_READ + 1).unwrap();
        std::fs::File::create(tmp.0.join("limit"))
            .unwrap()
            .set_len(MAX_READ)
            .unwrap();
        let dir = StdDir::open(&tmp.0).unwrap();
        assert_eq!(dir.read("big"), Err(Errno::EFBIG));
        assert_eq!(dir.read("limit").unwrap().len() as u64, MAX_READ);
    }

    #[test]
    fn opening_a_missing_or_non_directory_fails() {
        let tmp = Scratch::new("open");
        std::fs::write(tmp.0.join("f"), b"").unwrap();
        assert_eq!(
            StdDir::open(&tmp.0.join("missing")).unwrap_err(),
            "No such file or directory"
        );
        assert_eq!(
            StdDir::open(&tmp.0.join("f")).unwrap_err(),
            "Not a directory"
        );
    }
}
