//! Shadow variables for live patches (`include/linux/livepatch.h`): data attached to an
//! existing object, found by `<obj, id>`, without changing the object's layout.
//!
//! The kernel keeps them (guest-kernel/src/livepatch/shadow.rs); these are its exported
//! functions and safe-to-call wrappers. Constructors and destructors are `extern "C"`
//! functions, passed as table indices like every function pointer; `None` is NULL.

use core::ffi::c_void;

pub use klp_abi::gfp::{GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT};

/// `klp_shadow_ctor_t`: fills a new variable's zeroed data from `ctor_data`, under the
/// kernel's lock (it must not sleep); nonzero fails the allocation.
pub type KlpShadowCtor =
    unsafe extern "C" fn(obj: *mut c_void, shadow_data: *mut c_void, ctor_data: *mut c_void) -> i32;

/// `klp_shadow_dtor_t`: releases what a variable's data refers to, before it is freed.
pub type KlpShadowDtor = unsafe extern "C" fn(obj: *mut c_void, shadow_data: *mut c_void);

/// The kernel's exported shadow-variable functions, called as they are (all but
/// [`klp_shadow_get`] are re-exported here unchanged: their contracts are the caller's).
pub mod sys {
    use super::{KlpShadowCtor, KlpShadowDtor, c_void};

    unsafe extern "C" {
        /// The data of `<obj, id>`, or NULL.
        pub fn klp_shadow_get(obj: *mut c_void, id: usize) -> *mut c_void;
        /// Allocates a new shadow variable `<obj, id>` of `size` zeroed bytes, then calls
        /// `ctor` with `obj`, the data and `ctor_data`. Returns the data; NULL when memory is
        /// exhausted, when `ctor` fails (`livepatch: Failed to construct shadow variable <obj,
        /// id> (err)`), or when `<obj, id>` exists already (a `Duplicate shadow variable`
        /// warning).
        ///
        /// # Safety
        ///
        /// `ctor` must be safe to call with these arguments (it runs with preemption off).
        pub fn klp_shadow_alloc(
            obj: *mut c_void,
            id: usize,
            size: usize,
            gfp_flags: u32,
            ctor: Option<KlpShadowCtor>,
            ctor_data: *mut c_void,
        ) -> *mut c_void;
        /// Returns the data of `<obj, id>` if it exists, else allocates it as
        /// [`klp_shadow_alloc`] does (the constructor runs only for a new variable). NULL on
        /// failure.
        ///
        /// # Safety
        ///
        /// As [`klp_shadow_alloc`].
        pub fn klp_shadow_get_or_alloc(
            obj: *mut c_void,
            id: usize,
            size: usize,
            gfp_flags: u32,
            ctor: Option<KlpShadowCtor>,
            ctor_data: *mut c_void,
        ) -> *mut c_void;
        /// Detaches and frees `<obj, id>`, calling `dtor` with the object and the data first;
        /// nothing happens if it does not exist.
        ///
        /// # Safety
        ///
        /// `dtor` must be safe to call with the variable's object and data (it runs with
        /// preemption off), and nobody may use the data afterwards.
        pub fn klp_shadow_free(obj: *mut c_void, id: usize, dtor: Option<KlpShadowDtor>);
        /// Detaches and frees every shadow variable `<*, id>`, calling `dtor` for each
        /// (typically from a patch module's exit, for the objects it shadowed).
        ///
        /// # Safety
        ///
        /// As [`klp_shadow_free`], for every variable with this `id`.
        pub fn klp_shadow_free_all(id: usize, dtor: Option<KlpShadowDtor>);
    }
}

pub use sys::{klp_shadow_alloc, klp_shadow_free, klp_shadow_free_all, klp_shadow_get_or_alloc};

/// Retrieves the data of the shadow variable `<obj, id>`, NULL if there is none. The object
/// is only a key: it is never dereferenced.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // `obj` is compared, never dereferenced.
pub fn klp_shadow_get(obj: *mut c_void, id: usize) -> *mut c_void {
    // SAFETY: the kernel only compares `obj`.
    unsafe { sys::klp_shadow_get(obj, id) }
}
