//! Numbered kthreads, the way test modules start them: `kthread_run(fn, data, "name/%d", i)`
//! for each `i`, every task kept in a module-wide array, and the lot stopped at rmmod (or
//! when init fails half-way).
//!
//! ```ignore
//! use klp_guest::kthreads::{KthreadName, Kthreads};
//!
//! static TASKS: Kthreads<128> = Kthreads::new();
//!
//! // init: for i in 0..n {
//! //     let name = KthreadName::new("my_worker/", i);
//! //     // SAFETY: `worker` ignores its data.
//! //     if let Err(err) = unsafe { TASKS.start(worker, ptr::null_mut(), &name) } {
//! //         TASKS.stop_all();
//! //         return err;
//! //     }
//! // }
//! // exit: TASKS.stop_all();
//! ```

use core::ffi::{CStr, c_char, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::errno;
use crate::task::{self, TASK_COMM_LEN, TaskStruct, ThreadFn};

/// A kthread's name, `<prefix><n>` (the `"prefix%d"` of Linux's `kthread_run`),
/// NUL-terminated and cut to `TASK_COMM_LEN - 1` bytes, all the kernel keeps of it (its
/// `comm`).
#[derive(Clone, Copy)]
pub struct KthreadName {
    buf: [u8; TASK_COMM_LEN],
}

impl KthreadName {
    /// `<prefix><n>`, `n` in decimal, cut to `TASK_COMM_LEN - 1` bytes.
    pub fn new(prefix: &str, n: usize) -> Self {
        // `n`'s digits, last first.
        let mut digits = [0u8; 20];
        let mut count = 0;
        let mut rest = n;
        loop {
            digits[count] = b'0' + (rest % 10) as u8;
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let mut buf = [0u8; TASK_COMM_LEN];
        let bytes = prefix.bytes().chain(digits[..count].iter().rev().copied());
        // The last byte stays NUL.
        for (out, b) in buf[..TASK_COMM_LEN - 1].iter_mut().zip(bytes) {
            *out = b;
        }
        KthreadName { buf }
    }

    /// The name as a C string.
    pub fn as_cstr(&self) -> &CStr {
        // The last byte is never written, so a NUL is always there.
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }

    /// The NUL-terminated name, for the kernel's `kthread_run`.
    pub fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

/// The kthreads a module started, at most `N`, in the order it started them: a `static` that
/// init fills with [`start`](Self::start) and exit (or a failing init) empties with
/// [`stop_all`](Self::stop_all).
pub struct Kthreads<const N: usize> {
    /// The tasks started, the first `len` slots; a slot `stop_all` took is NULL.
    tasks: [AtomicPtr<TaskStruct>; N],
    len: AtomicUsize,
}

impl<const N: usize> Kthreads<N> {
    /// No kthreads.
    pub const fn new() -> Self {
        Kthreads {
            tasks: [const { AtomicPtr::new(ptr::null_mut()) }; N],
            len: AtomicUsize::new(0),
        }
    }

    /// Starts a kthread running `threadfn(data)` named `name` and keeps it in the next slot;
    /// returns it, or `-ENOSPC` when all `N` slots are taken (nothing started) and `-ENOMEM`
    /// when the kernel could not create it.
    ///
    /// # Safety
    ///
    /// `data` must be what `threadfn` expects, for as long as the thread runs.
    pub unsafe fn start(
        &self,
        threadfn: ThreadFn,
        data: *mut c_void,
        name: &KthreadName,
    ) -> Result<*mut TaskStruct, i32> {
        let n = self.len.load(Ordering::Relaxed);
        if n >= N {
            return Err(-errno::ENOSPC);
        }
        // SAFETY: a NUL-terminated name; `data` is the caller's contract.
        let k = unsafe { task::kthread_run(threadfn, data, name.as_cstr()) };
        if k.is_null() {
            return Err(-errno::ENOMEM);
        }
        self.tasks[n].store(k, Ordering::Relaxed);
        self.len.store(n + 1, Ordering::Relaxed);
        Ok(k)
    }

    /// How many kthreads were started (and not stopped by [`stop_all`](Self::stop_all)).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed).min(N)
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kthreads started, in order; while [`stop_all`](Self::stop_all) runs, those it
    /// stopped already are left out.
    pub fn iter(&self) -> impl Iterator<Item = *mut TaskStruct> + '_ {
        self.tasks[..self.len()]
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .filter(|t| !t.is_null())
    }

    /// The index of `task` among the kthreads started (its `n` in `start` order), if it is
    /// one of them.
    pub fn index_of(&self, task: *mut TaskStruct) -> Option<usize> {
        if task.is_null() {
            return None;
        }
        self.tasks[..self.len()]
            .iter()
            .position(|t| t.load(Ordering::Relaxed) == task)
    }

    /// Stops every kthread started, in the order they started (`kthread_stop` wakes each and
    /// waits for its function to return), and forgets them.
    pub fn stop_all(&self) {
        for slot in &self.tasks[..self.len()] {
            let k = slot.swap(ptr::null_mut(), Ordering::Relaxed);
            if !k.is_null() {
                // SAFETY: a kthread `start` started; taking it out of its slot first means
                // no other `stop_all` stops it again.
                unsafe { task::kthread_stop(k) };
            }
        }
        self.len.store(0, Ordering::Relaxed);
    }
}

impl<const N: usize> Default for Kthreads<N> {
    fn default() -> Self {
        Self::new()
    }
}
