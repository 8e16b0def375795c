//! Shadow variables, `kernel/livepatch/shadow.c`: data a live patch attaches to an existing object.
//!
//! A fix often needs a field that the structure it patches does not have; a live patch cannot
//! change the layout of data the old code uses. A shadow variable is a block of memory found by
//! the pair `<obj, id>`: the object's address and a number the patch chooses. The kernel keeps
//! them in a hash table of 2^12 buckets keyed by the object's address, as Linux's
//! `klp_shadow_hash`, allocated at the first allocation (a kernel that never uses shadow
//! variables does not carry it).
//!
//! Linux protects the table with `klp_shadow_lock` (a spinlock taken with interrupts off) and
//! lets `klp_shadow_get` read it under RCU. This kernel runs on one CPU, where `spin_lock` is
//! `preempt_disable`: every walk and change of the table runs with `current`'s preempt count
//! raised, so no other task runs in between. As in Linux, the constructor and destructor run
//! under that lock (in atomic context), and the table is not borrowed across them: they may
//! call these functions again.

use core::ffi::c_void;
use core::ptr;

use crate::mm::{kfree, kmalloc};
use crate::preempt::preempt_disable;
use crate::sync::Global;

/// `klp_shadow_ctor_t`: fills a new shadow variable's data (zeroed before) from `ctor_data`;
/// a nonzero return value fails the allocation.
pub type KlpShadowCtor =
    unsafe extern "C" fn(obj: *mut c_void, shadow_data: *mut c_void, ctor_data: *mut c_void) -> i32;

/// `klp_shadow_dtor_t`: releases what a shadow variable's data refers to, before it is freed.
pub type KlpShadowDtor = unsafe extern "C" fn(obj: *mut c_void, shadow_data: *mut c_void);

/// `DEFINE_HASHTABLE(klp_shadow_hash, 12)`.
const SHADOW_HASH_BITS: u32 = 12;
/// Buckets in the table.
const SHADOW_HASH_SIZE: usize = 1 << SHADOW_HASH_BITS;

/// `struct klp_shadow`: the hash chain, the `<obj, id>` pair, then the caller's data,
/// 8-aligned as `kzalloc` gives it in Linux.
#[repr(C)]
struct KlpShadow {
    /// The next variable in the same bucket (`hlist_node`).
    next: *mut KlpShadow,
    /// The parent object.
    obj: *mut c_void,
    /// The data identifier.
    id: usize,
    /// The data area (`char data[]`).
    data: [u64; 0],
}

/// The buckets, NULL until the first shadow variable is allocated.
static SHADOW_HASH: Global<*mut *mut KlpShadow> = Global::new(ptr::null_mut());

/// `hash_min(obj, 12)`: `hash_32` of the address (wasm32's `unsigned long` is 32 bits).
fn bucket(obj: *mut c_void) -> usize {
    ((obj as usize as u32).wrapping_mul(0x61C8_8647) >> (32 - SHADOW_HASH_BITS)) as usize
}

/// The bucket array, or NULL if none was allocated yet.
fn buckets() -> *mut *mut KlpShadow {
    // SAFETY: a word read; the pointer is only written under preempt_disable.
    unsafe { SHADOW_HASH.as_ptr().read() }
}

/// The data area of a shadow variable.
fn data_of(shadow: *mut KlpShadow) -> *mut c_void {
    // SAFETY: `shadow` is a live block at least `size_of::<KlpShadow>()` long.
    unsafe { (&raw mut (*shadow).data).cast() }
}

/// `klp_shadow_match()`.
fn matches(shadow: *mut KlpShadow, obj: *mut c_void, id: usize) -> bool {
    // SAFETY: `shadow` is a live entry of the table.
    unsafe { (*shadow).obj == obj && (*shadow).id == id }
}

/// The entry `<obj, id>`, walking its bucket; the caller holds preemption off.
fn find(obj: *mut c_void, id: usize) -> *mut KlpShadow {
    let table = buckets();
    if table.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the table has SHADOW_HASH_SIZE buckets; the chain links live entries.
    let mut shadow = unsafe { *table.add(bucket(obj)) };
    while !shadow.is_null() && !matches(shadow, obj, id) {
        // SAFETY: as above.
        shadow = unsafe { (*shadow).next };
    }
    shadow
}

/// Retrieves the data of the shadow variable `<obj, id>`, NULL if there is none.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn klp_shadow_get(obj: *mut c_void, id: usize) -> *mut c_void {
    let _lock = preempt_disable();
    let shadow = find(obj, id);
    if shadow.is_null() {
        ptr::null_mut()
    } else {
        data_of(shadow)
    }
}

/// Allocates the bucket array if there is none yet; false when memory is exhausted.
fn alloc_buckets(gfp_flags: u32) -> bool {
    if !buckets().is_null() {
        return true;
    }
    // kmalloc zeroes: every bucket starts empty. Allocated outside the lock, as Linux
    // allocates, and installed under it unless another task was first.
    let table = kmalloc(SHADOW_HASH_SIZE * size_of::<*mut KlpShadow>(), gfp_flags);
    if table.is_null() {
        return false;
    }
    let _lock = preempt_disable();
    if buckets().is_null() {
        // SAFETY: a word write under the lock.
        unsafe { SHADOW_HASH.as_ptr().write(table.cast()) };
    } else {
        kfree(table);
    }
    true
}

/// `__klp_shadow_get_or_alloc()`: the existing `<obj, id>` (or, with `warn_on_exist`, a
/// warning and NULL), else a new zeroed variable of `size` bytes filled by `ctor`.
///
/// # Safety
///
/// `ctor`, if given, must be a constructor that may be called with `obj`, the new data and
/// `ctor_data`.
#[track_caller]
unsafe fn get_or_alloc(
    obj: *mut c_void,
    id: usize,
    size: usize,
    gfp_flags: u32,
    ctor: Option<KlpShadowCtor>,
    ctor_data: *mut c_void,
    warn_on_exist: bool,
) -> *mut c_void {
    let existing = klp_shadow_get(obj, id);
    if !existing.is_null() {
        return exists(obj, id, existing, warn_on_exist);
    }
    // Allocate a new shadow variable, zeroed: the constructor does the rest, but only once
    // the variable is known to be needed (under the lock).
    let Some(total) = size.checked_add(size_of::<KlpShadow>()) else {
        return ptr::null_mut();
    };
    if !alloc_buckets(gfp_flags) {
        return ptr::null_mut();
    }
    let new: *mut KlpShadow = kmalloc(total, gfp_flags).cast();
    if new.is_null() {
        return ptr::null_mut();
    }
    let lock = preempt_disable();
    // Look for <obj, id> again under the lock: another task may have added it meanwhile.
    let existing = find(obj, id);
    if !existing.is_null() {
        drop(lock);
        kfree(new.cast());
        return exists(obj, id, data_of(existing), warn_on_exist);
    }
    // SAFETY: `new` is a fresh block of `total` bytes.
    unsafe {
        (*new).obj = obj;
        (*new).id = id;
    }
    if let Some(ctor) = ctor {
        // SAFETY: the caller's contract; the data area has `size` zeroed bytes.
        let err = unsafe { ctor(obj, data_of(new), ctor_data) };
        if err != 0 {
            drop(lock);
            kfree(new.cast());
            pr_err!(
                "livepatch: Failed to construct shadow variable <{:016x}, {id:x}> ({err})",
                obj as usize
            );
            return ptr::null_mut();
        }
    }
    // No <obj, id> found, so attach the new one. The constructor ran without a borrow of
    // the table; it is read again here.
    let slot = bucket(obj);
    // SAFETY: the table exists (allocated above, never freed) and has SHADOW_HASH_SIZE
    // buckets; `new` is ours.
    unsafe {
        let head = buckets().add(slot);
        (*new).next = *head;
        *head = new;
    }
    drop(lock);
    data_of(new)
}

/// The end of [`get_or_alloc`] when `<obj, id>` exists: Linux's `WARN` and NULL for
/// `klp_shadow_alloc`, the existing data for `klp_shadow_get_or_alloc`.
#[track_caller]
fn exists(obj: *mut c_void, id: usize, data: *mut c_void, warn_on_exist: bool) -> *mut c_void {
    if warn_on_exist {
        crate::panic::warn(
            "__klp_shadow_get_or_alloc",
            format_args!("Duplicate shadow variable <{:016x}, {id:x}>", obj as usize),
        );
        return ptr::null_mut();
    }
    data
}

/// Allocates and adds a new shadow variable `<obj, id>` of `size` zeroed bytes (with
/// `gfp_flags`), initialized by `ctor` if given (called in atomic context, under the lock;
/// a nonzero return fails the allocation with `Failed to construct shadow variable`).
/// Returns its data, or NULL: on failure, or with a `Duplicate shadow variable` warning when
/// `<obj, id>` exists already.
///
/// # Safety
///
/// `ctor`, if not NULL, must be a constructor function of the kernel or a module.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn klp_shadow_alloc(
    obj: *mut c_void,
    id: usize,
    size: usize,
    gfp_flags: u32,
    ctor: Option<KlpShadowCtor>,
    ctor_data: *mut c_void,
) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { get_or_alloc(obj, id, size, gfp_flags, ctor, ctor_data, true) }
}

/// Returns the data of the existing shadow variable `<obj, id>`, or allocates a new one as
/// [`klp_shadow_alloc`] does (the constructor runs only for a new one). NULL on failure.
///
/// # Safety
///
/// As [`klp_shadow_alloc`].
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn klp_shadow_get_or_alloc(
    obj: *mut c_void,
    id: usize,
    size: usize,
    gfp_flags: u32,
    ctor: Option<KlpShadowCtor>,
    ctor_data: *mut c_void,
) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { get_or_alloc(obj, id, size, gfp_flags, ctor, ctor_data, false) }
}

/// `klp_shadow_free_struct()`: unlinks `shadow` (whose predecessor link is `link`), calls
/// `dtor` and frees it. The caller holds the lock.
///
/// # Safety
///
/// `link` must be the table or chain word pointing at `shadow`; `dtor` as in [`klp_shadow_free`].
unsafe fn free_struct(
    link: *mut *mut KlpShadow,
    shadow: *mut KlpShadow,
    dtor: Option<KlpShadowDtor>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        *link = (*shadow).next;
        if let Some(dtor) = dtor {
            dtor((*shadow).obj, data_of(shadow));
        }
    }
    kfree(shadow.cast());
}

/// Detaches and frees the shadow variable `<obj, id>`, calling `dtor` (if not NULL) with the
/// object and the data first. Nothing happens if there is none.
///
/// # Safety
///
/// `dtor`, if not NULL, must be a destructor function of the kernel or a module.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn klp_shadow_free(obj: *mut c_void, id: usize, dtor: Option<KlpShadowDtor>) {
    let _lock = preempt_disable();
    let table = buckets();
    if table.is_null() {
        return;
    }
    // SAFETY: the table has SHADOW_HASH_SIZE buckets; the chain links live entries.
    unsafe {
        let mut link = table.add(bucket(obj));
        while !(*link).is_null() {
            let shadow = *link;
            if matches(shadow, obj, id) {
                free_struct(link, shadow, dtor);
                break;
            }
            link = &raw mut (*shadow).next;
        }
    }
}

/// Detaches and frees every shadow variable `<*, id>`, calling `dtor` (if not NULL) for each,
/// bucket by bucket.
///
/// # Safety
///
/// As [`klp_shadow_free`].
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn klp_shadow_free_all(id: usize, dtor: Option<KlpShadowDtor>) {
    let _lock = preempt_disable();
    let table = buckets();
    if table.is_null() {
        return;
    }
    for i in 0..SHADOW_HASH_SIZE {
        // SAFETY: as in klp_shadow_free; an entry is unlinked before its destructor runs, and
        // the walk goes on from the link that now holds its successor.
        unsafe {
            let mut link = table.add(i);
            while !(*link).is_null() {
                let shadow = *link;
                if (*shadow).id == id {
                    free_struct(link, shadow, dtor);
                } else {
                    link = &raw mut (*shadow).next;
                }
            }
        }
    }
}
