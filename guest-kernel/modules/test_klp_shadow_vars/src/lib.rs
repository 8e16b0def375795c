//! test_klp_shadow_vars: Linux's lib/livepatch/test_klp_shadow_vars.c, the shadow variable
//! API exercised at insmod, every call echoed to the log with its arguments.
//!
//! Pointers are not printed raw but as `PTR<n>`: the n-th distinct pointer the test has met
//! (NULL is PTR0), kept in a small kmalloc'd list rather than in shadow variables, "not to lean
//! too heavily on the very code we're testing". So the log is the same on every run and
//! equals the one tools/testing/selftests/livepatch/test-shadow-vars.sh expects, except
//! `size=4`: the shadow data are pointers, 4 bytes on wasm32 (8 on x86_64).
#![no_std]

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;

use klp_guest::errno::{EINVAL, ENOMEM};
use klp_guest::printk::GfpFlags;
use klp_guest::shadow::{self, GFP_ATOMIC, GFP_KERNEL, KlpShadowCtor, KlpShadowDtor};
use klp_guest::{pr_info, sys};

/// `struct shadow_ptr`: a pointer met and its number, in `ptr_list`.
#[repr(C)]
struct ShadowPtr {
    ptr: *const c_void,
    id: i32,
    next: *mut ShadowPtr,
}

/// The head of `ptr_list` and the rolling count (`static int count` in `ptr_id`).
struct PtrList {
    head: *mut ShadowPtr,
    count: i32,
}

/// `ptr_list`, in a cell: the module's init is its only user.
struct PtrListCell(UnsafeCell<PtrList>);

// SAFETY: only the module's init uses it, one call at a time.
unsafe impl Sync for PtrListCell {}

static PTR_LIST: PtrListCell = PtrListCell(UnsafeCell::new(PtrList {
    head: ptr::null_mut(),
    count: 0,
}));

/// The list; callers hold the borrow only while they walk or change it.
fn ptr_list() -> &'static mut PtrList {
    // SAFETY: only init runs this module's code, and no two borrows overlap.
    unsafe { &mut *PTR_LIST.0.get() }
}

/// `free_ptr_list()`.
fn free_ptr_list() {
    let list = ptr_list();
    while !list.head.is_null() {
        let sp = list.head;
        // SAFETY: `sp` is a live node of the list.
        list.head = unsafe { (*sp).next };
        // SAFETY: allocated by kmalloc in ptr_id.
        unsafe { sys::kfree(sp.cast()) };
    }
}

/// `ptr_id()`: the number of `ptr`, giving it the next one if it is new (-ENOMEM if the
/// list cannot grow).
fn ptr_id<T>(ptr: *const T) -> i32 {
    let ptr = ptr.cast::<c_void>();
    let list = ptr_list();
    let mut sp = list.head;
    while !sp.is_null() {
        // SAFETY: a live node.
        unsafe {
            if (*sp).ptr == ptr {
                return (*sp).id;
            }
            sp = (*sp).next;
        }
    }
    // SAFETY: a plain allocation.
    let sp: *mut ShadowPtr = unsafe { sys::kmalloc(size_of::<ShadowPtr>(), GFP_ATOMIC) }.cast();
    if sp.is_null() {
        return -ENOMEM;
    }
    let id = list.count;
    list.count += 1;
    // SAFETY: a fresh block of the node's size.
    unsafe {
        sp.write(ShadowPtr {
            ptr,
            id,
            next: list.head,
        })
    };
    list.head = sp;
    id
}

/// A function pointer as the pointer `ptr_id` numbers (its table index; NULL for none).
fn fn_ptr<F: Copy>(f: Option<F>) -> *const c_void {
    match f {
        // SAFETY: F is an `extern "C" fn` type, one word like a data pointer on wasm32.
        Some(f) => unsafe { core::mem::transmute_copy::<F, *const c_void>(&f) },
        None => ptr::null(),
    }
}

/// `shadow_get()`: `klp_shadow_get`, echoed.
fn shadow_get(obj: *mut c_void, id: usize) -> *mut c_void {
    let sv = shadow::klp_shadow_get(obj, id);
    pr_info!(
        "test_klp_shadow_vars: klp_shadow_get(obj=PTR{}, id={id:#x}) = PTR{}",
        ptr_id(obj),
        ptr_id(sv),
        id = id
    );
    sv
}

/// `shadow_alloc()`: `klp_shadow_alloc`, echoed (`ctor_data` points at the pointer the new
/// variable is to hold, which is what is printed).
///
/// # Safety
///
/// `ctor_data` points at a pointer; `ctor` is [`shadow_ctor`].
unsafe fn shadow_alloc(
    obj: *mut c_void,
    id: usize,
    size: usize,
    gfp_flags: u32,
    ctor: Option<KlpShadowCtor>,
    ctor_data: *mut *mut c_void,
) -> *mut *mut c_void {
    // SAFETY: the caller's contract.
    let sv = unsafe { shadow::klp_shadow_alloc(obj, id, size, gfp_flags, ctor, ctor_data.cast()) };
    pr_info!(
        "test_klp_shadow_vars: klp_shadow_alloc(obj=PTR{}, id={id:#x}, size={size:x}, \
         gfp_flags={}), ctor=PTR{}, ctor_data=PTR{} = PTR{}",
        ptr_id(obj),
        GfpFlags(gfp_flags),
        ptr_id(fn_ptr(ctor)),
        // SAFETY: the caller's contract.
        ptr_id(unsafe { *ctor_data }),
        ptr_id(sv),
        id = id,
        size = size
    );
    sv.cast()
}

/// `shadow_get_or_alloc()`: `klp_shadow_get_or_alloc`, echoed.
///
/// # Safety
///
/// As [`shadow_alloc`].
unsafe fn shadow_get_or_alloc(
    obj: *mut c_void,
    id: usize,
    size: usize,
    gfp_flags: u32,
    ctor: Option<KlpShadowCtor>,
    ctor_data: *mut *mut c_void,
) -> *mut *mut c_void {
    // SAFETY: the caller's contract.
    let sv = unsafe {
        shadow::klp_shadow_get_or_alloc(obj, id, size, gfp_flags, ctor, ctor_data.cast())
    };
    pr_info!(
        "test_klp_shadow_vars: klp_shadow_get_or_alloc(obj=PTR{}, id={id:#x}, size={size:x}, \
         gfp_flags={}), ctor=PTR{}, ctor_data=PTR{} = PTR{}",
        ptr_id(obj),
        GfpFlags(gfp_flags),
        ptr_id(fn_ptr(ctor)),
        // SAFETY: the caller's contract.
        ptr_id(unsafe { *ctor_data }),
        ptr_id(sv),
        id = id,
        size = size
    );
    sv.cast()
}

/// `shadow_free()`: `klp_shadow_free`, echoed.
fn shadow_free(obj: *mut c_void, id: usize, dtor: Option<KlpShadowDtor>) {
    // SAFETY: the destructor only logs.
    unsafe { shadow::klp_shadow_free(obj, id, dtor) };
    pr_info!(
        "test_klp_shadow_vars: klp_shadow_free(obj=PTR{}, id={id:#x}, dtor=PTR{})",
        ptr_id(obj),
        ptr_id(fn_ptr(dtor)),
        id = id
    );
}

/// `shadow_free_all()`: `klp_shadow_free_all`, echoed.
fn shadow_free_all(id: usize, dtor: Option<KlpShadowDtor>) {
    // SAFETY: the destructor only logs.
    unsafe { shadow::klp_shadow_free_all(id, dtor) };
    pr_info!(
        "test_klp_shadow_vars: klp_shadow_free_all(id={id:#x}, dtor=PTR{})",
        ptr_id(fn_ptr(dtor)),
        id = id
    );
}

/// `shadow_ctor()`: the new variable remembers the pointer `ctor_data` points at; -EINVAL
/// without one.
unsafe extern "C" fn shadow_ctor(
    _obj: *mut c_void,
    shadow_data: *mut c_void,
    ctor_data: *mut c_void,
) -> i32 {
    let sv: *mut *mut c_void = shadow_data.cast();
    let var: *mut *mut c_void = ctor_data.cast();
    if var.is_null() {
        return -EINVAL;
    }
    // SAFETY: the kernel passes the new variable's data (a pointer's room) and our ctor_data.
    unsafe { *sv = *var };
    // SAFETY: as above.
    pr_info!(
        "test_klp_shadow_vars: shadow_ctor: PTR{} -> PTR{}",
        ptr_id(sv),
        ptr_id(unsafe { *var })
    );
    0
}

/// `shadow_dtor()`: logs what it is called with.
unsafe extern "C" fn shadow_dtor(obj: *mut c_void, shadow_data: *mut c_void) {
    pr_info!(
        "test_klp_shadow_vars: shadow_dtor(obj=PTR{}, shadow_data=PTR{})",
        ptr_id(obj),
        ptr_id(shadow_data)
    );
}

/// Objects simulated that need shadow variables (`NUM_OBJS`).
const NUM_OBJS: usize = 3;
/// The shadow variable of the "char" field (`SV_ID1`).
const SV_ID1: usize = 0x1234;
/// The shadow variable of the "int" field (`SV_ID2`).
const SV_ID2: usize = 0x1235;

/// `struct test_object`: an object whose new fields `nfield1` and `nfield2` are shadow
/// variables with `SV_ID1` and `SV_ID2`.
#[repr(C)]
struct TestObject {
    sp: ShadowPtr,
}

const CTOR: Option<KlpShadowCtor> = Some(shadow_ctor);
const DTOR: Option<KlpShadowDtor> = Some(shadow_dtor);

/// The six passes of `test_klp_shadow_vars_init`; `Err(-errno)` where the C code jumps to
/// `out`.
fn run(objs: &mut [TestObject; NUM_OBJS]) -> Result<(), i32> {
    let mut nfields1 = [0u8; NUM_OBJS];
    let mut nfields2 = [0i32; NUM_OBJS];
    let mut pnfields1: [*mut c_void; NUM_OBJS] = [ptr::null_mut(); NUM_OBJS];
    let mut pnfields2: [*mut c_void; NUM_OBJS] = [ptr::null_mut(); NUM_OBJS];
    let mut pndup: [*mut c_void; NUM_OBJS] = [ptr::null_mut(); NUM_OBJS];
    let mut sv1: [*mut *mut c_void; NUM_OBJS] = [ptr::null_mut(); NUM_OBJS];
    let mut sv2: [*mut *mut c_void; NUM_OBJS] = [ptr::null_mut(); NUM_OBJS];
    let obj =
        |i: usize, objs: &mut [TestObject; NUM_OBJS]| -> *mut c_void { (&raw mut objs[i]).cast() };
    let ptr_size = size_of::<*mut c_void>();

    // Pass 1: init & alloc a char+int pair of svars for each object.
    for i in 0..NUM_OBJS {
        pnfields1[i] = (&raw mut nfields1[i]).cast();
        ptr_id(pnfields1[i]);
        let o = obj(i, objs);
        // SAFETY: ctor_data points at a pointer; the constructor is shadow_ctor.
        sv1[i] = unsafe {
            if i % 2 == 1 {
                shadow_alloc(o, SV_ID1, ptr_size, GFP_KERNEL, CTOR, &raw mut pnfields1[i])
            } else {
                shadow_get_or_alloc(o, SV_ID1, ptr_size, GFP_KERNEL, CTOR, &raw mut pnfields1[i])
            }
        };
        if sv1[i].is_null() {
            return Err(-ENOMEM);
        }
        pnfields2[i] = (&raw mut nfields2[i]).cast();
        ptr_id(pnfields2[i]);
        // SAFETY: as above.
        sv2[i] =
            unsafe { shadow_alloc(o, SV_ID2, ptr_size, GFP_KERNEL, CTOR, &raw mut pnfields2[i]) };
        if sv2[i].is_null() {
            return Err(-ENOMEM);
        }
    }

    // Pass 2: verify we find the allocated svars and where they point to.
    for i in 0..NUM_OBJS {
        for (id, svs, pn) in [(SV_ID1, &sv1, &pnfields1), (SV_ID2, &sv2, &pnfields2)] {
            let sv = shadow_get(obj(i, objs), id);
            if sv.is_null() {
                return Err(-EINVAL);
            }
            expect(sv, svs[i], pn[i]);
        }
    }

    // Pass 3: verify that get_or_alloc returns the svars already allocated.
    for i in 0..NUM_OBJS {
        pndup[i] = (&raw mut nfields1[i]).cast();
        ptr_id(pndup[i]);
        // SAFETY: as in pass 1.
        let sv = unsafe {
            shadow_get_or_alloc(
                obj(i, objs),
                SV_ID1,
                ptr_size,
                GFP_KERNEL,
                CTOR,
                &raw mut pndup[i],
            )
        };
        if sv.is_null() {
            return Err(-EINVAL);
        }
        expect(sv.cast(), sv1[i], pnfields1[i]);
    }

    // Pass 4: free the <objs[*], SV_ID1> svars, verify their removal.
    for i in 0..NUM_OBJS {
        shadow_free(obj(i, objs), SV_ID1, DTOR);
        if shadow_get(obj(i, objs), SV_ID1).is_null() {
            pr_info!("test_klp_shadow_vars:   got expected NULL result");
        }
    }

    // Pass 5: check we still find the <objs[*], SV_ID2> svars.
    for i in 0..NUM_OBJS {
        let sv = shadow_get(obj(i, objs), SV_ID2);
        if sv.is_null() {
            return Err(-EINVAL);
        }
        expect(sv, sv2[i], pnfields2[i]);
    }

    // Pass 6: free all the <objs[*], SV_ID2> svars too (no destructor: the order in which a
    // free_all meets several variables is not defined).
    shadow_free_all(SV_ID2, None);
    for i in 0..NUM_OBJS {
        if shadow_get(obj(i, objs), SV_ID2).is_null() {
            pr_info!("test_klp_shadow_vars:   got expected NULL result");
        }
    }
    Ok(())
}

/// Logs `got expected PTR<sv> -> PTR<*sv>` if `got` is `sv` and `sv` holds `want`.
fn expect(got: *mut c_void, sv: *mut *mut c_void, want: *mut c_void) {
    // SAFETY: `sv` is a live shadow variable holding a pointer.
    if got == sv.cast() && unsafe { *sv } == want {
        pr_info!(
            "test_klp_shadow_vars:   got expected PTR{} -> PTR{} result",
            ptr_id(sv),
            // SAFETY: as above.
            ptr_id(unsafe { *sv })
        );
    }
}

/// `test_klp_shadow_vars_init()`.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let mut objs: [TestObject; NUM_OBJS] = core::array::from_fn(|_| TestObject {
        sp: ShadowPtr {
            ptr: ptr::null(),
            id: 0,
            next: ptr::null_mut(),
        },
    });
    ptr_id(ptr::null::<c_void>());

    // With an empty shadow variable hash table, expect not to find any matches.
    if shadow_get((&raw mut objs[0]).cast(), SV_ID1).is_null() {
        pr_info!("test_klp_shadow_vars:   got expected NULL result");
    }
    match run(&mut objs) {
        Ok(()) => {
            free_ptr_list();
            0
        }
        Err(ret) => {
            shadow_free_all(SV_ID1, None);
            shadow_free_all(SV_ID2, None);
            free_ptr_list();
            ret
        }
    }
}

/// `test_klp_shadow_vars_exit()`: nothing to undo.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}
