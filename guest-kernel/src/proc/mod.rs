//! procfs: `/proc` entries backed by seq_file show callbacks, for the kernel and for modules.

pub mod array;
pub mod base;
mod cmdline;
mod meminfo;
mod modules;
pub mod sysctl;
mod uptime;
mod version;

use klp_abi::errno::{EEXIST, EINVAL, ENOENT};
use klp_abi::stat::S_IFREG;

use crate::seq_file::ShowFn;
use crate::uaccess::kernel_bytes;
use crate::vfs::{self, FsType, Ino, Node, ROOT_INO};

/// The `/proc` directory.
pub fn proc_root() -> Ino {
    vfs::lookup(ROOT_INO, b"proc").unwrap_or(ROOT_INO)
}

/// Creates the read-only (0444) file `/proc/<name>` whose contents come from `show`.
///
/// # Errors
///
/// `EEXIST`; `EINVAL` for an empty name or one with a slash; `ENOMEM`.
pub fn proc_create(name: &[u8], show: ShowFn) -> Result<(), i32> {
    if name.is_empty() || name.contains(&b'/') {
        return Err(EINVAL);
    }
    let root = proc_root();
    if vfs::lookup(root, name).is_some() {
        return Err(EEXIST);
    }
    vfs::create(
        root,
        name,
        FsType::Proc,
        S_IFREG | 0o444,
        Node::Seq(show, 0),
    )
    .map(|_| ())
}

/// Creates `/proc/<name>` for a module: reading it calls `show(m, v)` through the pointer.
/// Returns 0 or -errno (`-EEXIST`, `-EINVAL`, `-ENOMEM`).
///
/// # Safety
///
/// `name` must point at `len` readable bytes and `show` must be a show callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn proc_create_single(name: *const u8, len: usize, show: ShowFn) -> i32 {
    // SAFETY: the caller's contract.
    let name = unsafe { kernel_bytes(name, len) };
    match proc_create(name, show) {
        Ok(()) => 0,
        Err(errno) => -errno,
    }
}

/// Removes `/proc/<name>`; readers that have it open keep their descriptor.
///
/// # Safety
///
/// `name` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn remove_proc_entry(name: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    let name = unsafe { kernel_bytes(name, len) };
    let root = proc_root();
    let is_seq = vfs::lookup(root, name)
        .and_then(vfs::inode)
        .is_some_and(|i| matches!(i.node, Node::Seq(..)));
    if is_seq {
        vfs::remove(root, name);
    } else {
        pr_warn!(
            "remove_proc_entry: no entry '{}' (-{})",
            name.escape_ascii(),
            ENOENT
        );
    }
}

/// Creates the kernel's own `/proc` files and `/proc/sys`.
pub fn init() {
    let entries: [(&[u8], ShowFn); 5] = [
        (b"cmdline", cmdline::cmdline_proc_show),
        (b"meminfo", meminfo::meminfo_proc_show),
        (b"modules", modules::modules_proc_show),
        (b"uptime", uptime::uptime_proc_show),
        (b"version", version::version_proc_show),
    ];
    for (name, show) in entries {
        // The names are distinct and /proc is empty at boot.
        let _ = proc_create(name, show);
    }
    sysctl::init();
}
