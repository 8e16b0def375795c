//! sysfs kobjects for modules: `kobject_create_and_add`, `sysfs_create_file`, `kobject_put`.
//!
//! A kobject is a directory of the kernel's sysfs (`/sys/kernel/<name>` under `kernel_kobj`);
//! each attribute a file whose reads call the module's `show` into a `PAGE_SIZE` buffer and whose
//! writes call its `store`, as fs/sysfs/file.c. The host serves `/sys/kernel/livepatch` and
//! `/sys/module` itself; everything else under `/sys` is this.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use klp_abi::errno::{EEXIST, EINVAL, EIO, ENODEV, ENOMEM};
use klp_abi::stat::S_IFREG;
use klp_abi::{KobjAttribute, SYSFS_BUF_SIZE};

use crate::vfs::{self, FsType, Ino, Node, namei};

/// A kobject: the sysfs directory it owns. Modules hold it as an opaque
/// [`klp_abi::Kobject`] pointer.
pub struct Kobject {
    /// Its directory; 0 for [`KERNEL_KOBJECT`], which is found by path.
    ino: Ino,
    /// The directory it was created in.
    parent: Ino,
    /// Its name in `parent`.
    name: Vec<u8>,
}

/// `/sys/kernel`, the parent modules give as `kernel_kobj`.
static KERNEL_KOBJECT: Kobject = Kobject {
    ino: 0,
    parent: 0,
    name: Vec::new(),
};

/// A pointer to a kobject, as a data symbol modules read.
#[repr(transparent)]
pub struct KobjPtr(*const Kobject);

// SAFETY: the guest is single-threaded and the pointer never changes.
unsafe impl Sync for KobjPtr {}

/// `kernel_kobj`: the kobject of `/sys/kernel`, the parent of a module's own sysfs directory.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static kernel_kobj: KobjPtr = KobjPtr(&KERNEL_KOBJECT);

/// The directory of `kobj`: its own, `/sys/kernel` for `kernel_kobj`, `/sys` for NULL.
fn kobj_dir(kobj: *const Kobject) -> Option<Ino> {
    if kobj.is_null() {
        return namei::path_lookup(b"/sys").ok();
    }
    if core::ptr::eq(kobj, &KERNEL_KOBJECT) {
        return namei::path_lookup(b"/sys/kernel").ok();
    }
    // SAFETY: a kobject from kobject_create_and_add that has not been put.
    Some(unsafe { (*kobj).ino })
}

/// A sysfs directory's path below `/sys` (`/kernel/test_klp_syscall`), as kernfs names it in
/// messages; empty for `/sys` itself.
struct SysfsPath(Ino);

impl fmt::Display for SysfsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(inode) = vfs::inode(self.0) else {
            return Ok(());
        };
        let parent = inode.parent;
        if inode.fs != FsType::Sysfs || vfs::inode(parent).is_none_or(|p| p.fs != FsType::Sysfs) {
            return Ok(());
        }
        let Some(Node::Dir(entries)) = vfs::inode(parent).map(|p| &p.node) else {
            return Ok(());
        };
        let name = entries
            .iter()
            .find(|e| e.ino == self.0)
            .map(|e| e.name.clone());
        write!(f, "{}/", SysfsPath(parent))?;
        if let Some(name) = name {
            write!(f, "{}", name.escape_ascii())?;
        }
        Ok(())
    }
}

/// A sysfs attribute file: the kobject and the module's attribute its ops are called with.
#[derive(Clone, Copy)]
pub struct Attr {
    /// The kobject passed to `show` and `store`.
    kobj: *mut Kobject,
    /// The module's attribute; NULL once the file was removed (reads through a descriptor
    /// still open then fail with `ENODEV`, as kernfs does for a removed node).
    attr: *const KobjAttribute,
}

impl Attr {
    fn ops(&self) -> Option<&KobjAttribute> {
        // SAFETY: non-NULL only while the module that owns the attribute has the file.
        unsafe { self.attr.as_ref() }
    }

    /// Whether a read may open it (`kernfs_fop_open`: a read bit and a `show`).
    pub fn readable(&self) -> bool {
        self.ops()
            .is_none_or(|a| a.mode & 0o444 != 0 && a.show.is_some())
    }

    /// Whether a write may open it (a write bit and a `store`).
    pub fn writable(&self) -> bool {
        self.ops()
            .is_none_or(|a| a.mode & 0o222 != 0 && a.store.is_some())
    }
}

/// Reads an attribute: calls `show` with a zeroed `PAGE_SIZE` buffer and returns what it wrote.
///
/// # Errors
///
/// `ENODEV` for a removed file, `EIO` without `show`, `ENOMEM`, or `show`'s -errno.
pub fn show(a: Attr) -> Result<Vec<u8>, i32> {
    let ops = a.ops().ok_or(ENODEV)?;
    let show = ops.show.ok_or(EIO)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(SYSFS_BUF_SIZE).map_err(|_| ENOMEM)?;
    buf.resize(SYSFS_BUF_SIZE, 0);
    // SAFETY: module code with the attribute's type; `buf` holds PAGE_SIZE bytes and no
    // borrow of kernel state is alive across the call.
    let ret = unsafe { show(a.kobj.cast(), a.attr.cast_mut(), buf.as_mut_ptr()) };
    if ret < 0 {
        return Err(-(ret as i32));
    }
    // sysfs_kf_seq_show: a show cannot give more than the page.
    buf.truncate((ret as usize).min(SYSFS_BUF_SIZE - 1));
    Ok(buf)
}

/// Writes an attribute: calls `store` with a NUL-terminated copy of at most `PAGE_SIZE - 1`
/// bytes, as `sysfs_kf_write`; returns what it consumed.
///
/// # Errors
///
/// `ENODEV` for a removed file, `EIO` without `store`, `ENOMEM`, or `store`'s -errno.
pub fn store(a: Attr, data: &[u8]) -> Result<usize, i32> {
    let ops = a.ops().ok_or(ENODEV)?;
    let store = ops.store.ok_or(EIO)?;
    let count = data.len().min(SYSFS_BUF_SIZE - 1);
    let mut buf = Vec::new();
    buf.try_reserve_exact(count + 1).map_err(|_| ENOMEM)?;
    buf.extend_from_slice(&data[..count]);
    buf.push(0);
    // SAFETY: as in `show`; `buf` holds `count` bytes and a NUL.
    let ret = unsafe { store(a.kobj.cast(), a.attr.cast_mut(), buf.as_ptr(), count) };
    if ret < 0 {
        return Err(-(ret as i32));
    }
    Ok((ret as usize).min(count))
}

/// Removes `name` from `dir`, a directory's files first; an attribute loses its ops so that a
/// descriptor still open on it never calls into a module that is gone.
fn remove_tree(dir: Ino, name: &[u8]) {
    let Some(ino) = vfs::lookup(dir, name) else {
        return;
    };
    let children: Vec<Box<[u8]>> = match vfs::inode(ino).map(|i| &mut i.node) {
        Some(Node::Dir(entries)) => entries.iter().map(|e| e.name.clone()).collect(),
        Some(Node::Attr(a)) => {
            a.attr = core::ptr::null();
            Vec::new()
        }
        _ => Vec::new(),
    };
    for child in children {
        remove_tree(ino, &child);
    }
    vfs::remove(dir, name);
}

/// `kobject_create_and_add`: creates the directory `name` in `parent`'s (`kernel_kobj`:
/// `/sys/kernel`; NULL: `/sys`) and returns its kobject, or NULL.
///
/// # Safety
///
/// `name` must be a NUL-terminated string; `parent` NULL, `kernel_kobj` or a live kobject.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kobject_create_and_add(
    name: *const u8,
    parent: *mut Kobject,
) -> *mut Kobject {
    if name.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's contract.
    let name = unsafe { CStr::from_ptr(name.cast()) }.to_bytes();
    let Some(dir) = kobj_dir(parent) else {
        return core::ptr::null_mut();
    };
    let err = if name.is_empty() || name.contains(&b'/') {
        EINVAL
    } else if vfs::lookup(dir, name).is_some() {
        EEXIST
    } else {
        match create(dir, name) {
            Ok(kobj) => return kobj,
            Err(errno) => errno,
        }
    };
    let name = name.escape_ascii();
    if err == EEXIST {
        pr_err!(
            "kobject_add_internal failed for {name} with -EEXIST, don't try to register things \
             with the same name in the same directory."
        );
    } else {
        let parent = SysfsPath(dir);
        pr_err!("kobject_add_internal failed for {name} (error: -{err} parent: {parent})");
    }
    core::ptr::null_mut()
}

/// Makes the directory and its kobject.
fn create(dir: Ino, name: &[u8]) -> Result<*mut Kobject, i32> {
    let mut owned = Vec::new();
    owned.try_reserve_exact(name.len()).map_err(|_| ENOMEM)?;
    owned.extend_from_slice(name);
    let ino = vfs::mkdir_in(dir, name, FsType::Sysfs, 0o755)?;
    Ok(Box::into_raw(Box::new(Kobject {
        ino,
        parent: dir,
        name: owned,
    })))
}

/// `kobject_put`: drops the module's kobject, removing its directory and every file in it.
/// NULL and `kernel_kobj` are left alone.
///
/// # Safety
///
/// `kobj` must be NULL, `kernel_kobj` or a kobject from [`kobject_create_and_add`] not put yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kobject_put(kobj: *mut Kobject) {
    if kobj.is_null() || core::ptr::eq(kobj, &KERNEL_KOBJECT) {
        return;
    }
    // SAFETY: the caller's contract: a kobject we boxed, given back once.
    let kobj = unsafe { Box::from_raw(kobj) };
    remove_tree(kobj.parent, &kobj.name);
}

/// `sysfs_create_file`: adds the file `attr.name` with `attr.mode` to `kobj`'s directory.
/// Returns 0, `-EEXIST` (logged, as `sysfs_warn_dup`), `-EINVAL` or `-ENOMEM`.
///
/// # Safety
///
/// `kobj` must be a live kobject (or `kernel_kobj`); `attr` must stay valid until the file is
/// removed (a module's static).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sysfs_create_file(kobj: *mut Kobject, attr: *const KobjAttribute) -> i32 {
    // SAFETY: the caller's contract.
    let Some(ops) = (unsafe { attr.as_ref() }) else {
        return -EINVAL;
    };
    if ops.name.is_null() {
        return -EINVAL;
    }
    // SAFETY: attribute names are NUL-terminated.
    let name = unsafe { CStr::from_ptr(ops.name.cast()) }.to_bytes();
    let Some(dir) = kobj_dir(kobj) else {
        return -EINVAL;
    };
    if name.is_empty() || name.contains(&b'/') {
        return -EINVAL;
    }
    if vfs::lookup(dir, name).is_some() {
        let (dir, name) = (SysfsPath(dir), name.escape_ascii());
        pr_warn!("sysfs: cannot create duplicate filename '{dir}/{name}'");
        return -EEXIST;
    }
    let node = Node::Attr(Attr { kobj, attr });
    match vfs::create(dir, name, FsType::Sysfs, S_IFREG | (ops.mode & 0o777), node) {
        Ok(_) => 0,
        Err(errno) => -errno,
    }
}

/// `sysfs_remove_file`: removes the file `attr.name` from `kobj`'s directory, if it is there.
///
/// # Safety
///
/// As [`sysfs_create_file`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sysfs_remove_file(kobj: *mut Kobject, attr: *const KobjAttribute) {
    // SAFETY: the caller's contract.
    let Some(ops) = (unsafe { attr.as_ref() }) else {
        return;
    };
    let Some(dir) = kobj_dir(kobj) else { return };
    if ops.name.is_null() {
        return;
    }
    // SAFETY: attribute names are NUL-terminated.
    let name = unsafe { CStr::from_ptr(ops.name.cast()) }.to_bytes();
    let is_attr = vfs::lookup(dir, name)
        .and_then(vfs::inode)
        .is_some_and(|i| matches!(i.node, Node::Attr(_)));
    if is_attr {
        remove_tree(dir, name);
    }
}
