//! Global kernel state cells for a single-threaded kernel without lock flags.

use core::cell::UnsafeCell;

/// A kernel global: a value in linear memory that kernel code mutates in place.
///
/// The guest runs on one thread and is never re-entered while it holds a reference into a
/// cell (callbacks into modules and the host are made with no borrow alive), so no lock is
/// needed; and since there is no lock flag, a trap that aborts a call leaves nothing locked.
#[repr(transparent)]
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: the guest is single-threaded (wasm32-unknown-unknown without threads).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Global(UnsafeCell::new(value))
    }

    /// A raw pointer to the value, for tables that refer to it.
    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }

    /// Mutable access to the value.
    ///
    /// # Safety
    ///
    /// No other reference to the value may be alive: callers keep the borrow short and make
    /// no call that could reach the same cell (module callbacks, host calls) while holding it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's contract.
        unsafe { &mut *self.0.get() }
    }
}
