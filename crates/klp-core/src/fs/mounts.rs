//! The mount table of host-backed file systems: the modules tree and host directories, each on
//! a directory of the kernel's namespace; `/proc/mounts`.

use super::hostdir::HostDir;
use super::modules::ModuleFiles;
use crate::errno::Errno;
use crate::sys::Stat;

/// What serves a mount.
pub enum Backend {
    /// `/lib/modules/<release>`: the module files.
    Modules(ModuleFiles),
    /// A host directory.
    Host(Box<dyn HostDir>),
}

/// One mount.
pub struct Mount {
    point: String,
    source: String,
    fstype: &'static str,
    readonly: bool,
    backend: Backend,
}

/// The mounts, in mount order.
#[derive(Default)]
pub struct Mounts {
    release: String,
    list: Vec<Mount>,
}

/// The file systems the kernel itself mounts, as `/proc/mounts` lists them first.
const KERNEL_MOUNTS: &[&str] = &[
    "rootfs / rootfs rw 0 0",
    "proc /proc proc rw 0 0",
    "sysfs /sys sysfs rw 0 0",
    "devtmpfs /dev devtmpfs rw 0 0",
    "tracefs /sys/kernel/tracing tracefs rw 0 0",
];

/// `rel` below `point`, when `path` is `point` or inside it.
fn below<'a>(path: &'a str, point: &str) -> Option<&'a str> {
    if point == "/" {
        return Some(path.trim_start_matches('/'));
    }
    let rest = path.strip_prefix(point)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/'))
}

impl Mounts {
    /// The kernel release (`uname -r`), which names the modules directory.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// Records the release (at boot).
    pub fn set_release(&mut self, release: &str) {
        self.release = release.to_string();
    }

    /// Adds a mount on `point` (normalized). A later mount on the same point hides the earlier.
    pub fn add(&mut self, point: &str, source: &str, readonly: bool, backend: Backend) {
        let fstype = match backend {
            Backend::Modules(_) => "modules",
            Backend::Host(_) => "hostfs",
        };
        self.list.push(Mount {
            point: point.to_string(),
            source: source.to_string(),
            fstype,
            readonly,
            backend,
        });
    }

    /// The mount that serves `path` (normalized), and the path relative to it: the deepest
    /// mount point that contains it, the latest one among equals.
    pub fn resolve(&self, path: &str) -> Option<(usize, String)> {
        self.list
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, m)| below(path, &m.point).map(|rel| (i, m.point.len(), rel)))
            .max_by_key(|&(_, len, _)| len)
            .map(|(i, _, rel)| (i, rel.to_string()))
    }

    /// Names of mount points directly inside directory `dir`: they appear in its listing.
    pub fn children(&self, dir: &str) -> Vec<String> {
        self.list
            .iter()
            .filter_map(|m| {
                let (parent, name) = m.point.rsplit_once('/')?;
                let parent = if parent.is_empty() { "/" } else { parent };
                (parent == dir).then(|| name.to_string())
            })
            .collect()
    }

    fn mount(&self, i: usize) -> &Mount {
        &self.list[i]
    }

    fn writable(&self, i: usize) -> Result<&Mount, Errno> {
        let m = self.mount(i);
        if m.readonly { Err(Errno::EROFS) } else { Ok(m) }
    }

    /// Reads a file of mount `i`.
    ///
    /// # Errors
    /// The backend's errno.
    pub fn read(&self, i: usize, rel: &str) -> Result<Vec<u8>, Errno> {
        match &self.mount(i).backend {
            Backend::Modules(files) => files.read(rel),
            Backend::Host(dir) => dir.read(rel),
        }
    }

    /// `stat` in mount `i`.
    ///
    /// # Errors
    /// The backend's errno.
    pub fn stat(&self, i: usize, rel: &str) -> Result<Stat, Errno> {
        match &self.mount(i).backend {
            Backend::Modules(files) => files.stat(rel),
            Backend::Host(dir) => dir.stat(rel),
        }
    }

    /// Lists a directory of mount `i`.
    ///
    /// # Errors
    /// The backend's errno.
    pub fn list(&self, i: usize, rel: &str) -> Result<Vec<String>, Errno> {
        match &self.mount(i).backend {
            Backend::Modules(files) => files.list(rel),
            Backend::Host(dir) => dir.list(rel),
        }
    }

    /// Checks that a file of mount `i` may be opened for writing: `EROFS` on a read-only mount.
    ///
    /// # Errors
    /// `EROFS`.
    pub fn check_writable(&self, i: usize) -> Result<(), Errno> {
        self.writable(i).map(|_| ())
    }

    /// Writes a file of mount `i`.
    ///
    /// # Errors
    /// `EROFS`, or the backend's errno.
    pub fn write(&self, i: usize, rel: &str, data: &[u8], append: bool) -> Result<(), Errno> {
        match &self.writable(i)?.backend {
            Backend::Modules(_) => Err(Errno::EROFS),
            Backend::Host(dir) => dir.write(rel, data, append),
        }
    }

    /// Creates, removes a file or removes a directory in mount `i`; the root of a mount is busy.
    ///
    /// # Errors
    /// `EROFS`, `EBUSY`, or the backend's errno.
    pub fn change(&self, i: usize, rel: &str, op: Change) -> Result<(), Errno> {
        if rel.is_empty() {
            return Err(if op == Change::Mkdir {
                Errno::EEXIST
            } else {
                Errno::EBUSY
            });
        }
        let Backend::Host(dir) = &self.writable(i)?.backend else {
            return Err(Errno::EROFS);
        };
        match op {
            Change::Mkdir => dir.mkdir(rel),
            Change::Unlink => dir.unlink(rel),
            Change::Rmdir => dir.rmdir(rel),
        }
    }

    /// Whether `path` is a mount point (it cannot be removed).
    pub fn is_mount_point(&self, path: &str) -> bool {
        self.list.iter().any(|m| m.point == path)
    }

    /// `/proc/mounts`: the kernel's own file systems, then the host-backed mounts.
    pub fn proc_mounts(&self) -> String {
        let mut text: String = KERNEL_MOUNTS.iter().map(|l| format!("{l}\n")).collect();
        for m in &self.list {
            let mode = if m.readonly { "ro" } else { "rw" };
            text.push_str(&format!(
                "{} {} {} {mode} 0 0\n",
                m.source, m.point, m.fstype
            ));
        }
        text
    }
}

/// A change to a directory's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `mkdir`.
    Mkdir,
    /// `unlink`.
    Unlink,
    /// `rmdir`.
    Rmdir,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Mounts {
        let mut m = Mounts::default();
        m.set_release("r");
        m.add(
            "/lib/modules/r",
            "modules",
            true,
            Backend::Modules(ModuleFiles::default()),
        );
        m.add(
            "/lib/modules/r/extra",
            "/host/a",
            true,
            Backend::Modules(ModuleFiles::default()),
        );
        m
    }

    #[test]
    fn the_deepest_mount_point_serves_a_path() {
        let m = table();
        assert_eq!(
            m.resolve("/lib/modules/r/x.wasm"),
            Some((0, "x.wasm".into()))
        );
        assert_eq!(m.resolve("/lib/modules/r/extra"), Some((1, String::new())));
        assert_eq!(m.resolve("/lib/modules/r/extra/y"), Some((1, "y".into())));
        assert_eq!(m.resolve("/lib/modules/rx"), None);
        assert_eq!(m.resolve("/lib"), None);
    }

    #[test]
    fn mount_points_are_listed_in_their_parent() {
        let m = table();
        assert_eq!(m.children("/lib/modules"), vec!["r".to_string()]);
        assert_eq!(m.children("/lib/modules/r"), vec!["extra".to_string()]);
        assert!(m.children("/").is_empty());
    }

    #[test]
    fn read_only_mounts_refuse_every_change() {
        let m = table();
        assert_eq!(m.write(0, "x.wasm", b"", false), Err(Errno::EROFS));
        assert_eq!(m.change(0, "d", Change::Mkdir), Err(Errno::EROFS));
        assert_eq!(m.change(1, "", Change::Rmdir), Err(Errno::EBUSY));
        assert!(m.proc_mounts().ends_with(
            "modules /lib/modules/r modules ro 0 0\n/host/a /lib/modules/r/extra modules ro 0 0\n"
        ));
    }
}
