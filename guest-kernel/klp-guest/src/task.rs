//! Tasks for modules: kthreads, sleeping, wait queues, completions, timers and work items.
//!
//! The kernel functions are in [`sys`] (also re-exported by the crate's `sys`), with Linux's
//! names and return conventions (booleans are `i32` 0/1, jiffies are `i32`); this module adds
//! safe wrappers for the common cases and the `wait_event!` macros. The structures are
//! klp-abi's `#[repr(C)]` types with `const` constructors, so they can be `static`s:
//!
//! ```ignore
//! use core::ffi::c_void;
//! use klp_guest::task::{self, Completion, TaskStruct};
//!
//! static DONE: Completion = Completion::new();
//!
//! unsafe extern "C" fn worker(_data: *mut c_void) -> i32 {
//!     while !task::kthread_should_stop() {
//!         task::msleep(10);
//!     }
//!     task::complete(&DONE);
//!     0
//! }
//!
//! // init: let k = unsafe { task::kthread_run(worker, core::ptr::null_mut(), c"my_worker") };
//! // exit: unsafe { task::kthread_stop(k) }; task::wait_for_completion(&DONE);
//! ```

use core::ffi::{CStr, c_void};

pub use klp_abi::task::{
    HZ, MAX_SCHEDULE_TIMEOUT, PF_KTHREAD, PF_WQ_WORKER, TASK_COMM_LEN, TASK_DEAD,
    TASK_INTERRUPTIBLE, TASK_KILLABLE, TASK_NORMAL, TASK_RUNNING, TASK_UNINTERRUPTIBLE,
    TIF_PATCH_PENDING, TIF_SIGPENDING,
};
pub use klp_abi::{
    Completion, DelayedWork, TaskStruct, TimerFn, TimerList, WaitQueueEntry, WaitQueueFunc,
    WaitQueueHead, WorkFunc, WorkStruct,
};

/// A kthread's function: `int (*threadfn)(void *data)`.
pub type ThreadFn = unsafe extern "C" fn(data: *mut c_void) -> i32;

/// The kernel's task functions, as the loader links them.
pub mod sys {
    use core::ffi::{c_char, c_void};

    use super::{
        Completion, DelayedWork, TaskStruct, ThreadFn, TimerFn, TimerList, WaitQueueEntry,
        WaitQueueHead, WorkStruct,
    };

    unsafe extern "C" {
        /// The running task, `current`.
        pub fn get_current() -> *mut TaskStruct;
        /// A kthread running `threadfn(data)`, not started (`wake_up_process` starts it);
        /// `name` NUL-terminated, cut to 15 bytes. NULL on failure.
        pub fn kthread_create(
            threadfn: ThreadFn,
            data: *mut c_void,
            name: *const c_char,
        ) -> *mut TaskStruct;
        /// As `kthread_create`, started. NULL on failure.
        pub fn kthread_run(
            threadfn: ThreadFn,
            data: *mut c_void,
            name: *const c_char,
        ) -> *mut TaskStruct;
        /// Stops the kthread `k`: wakes it, waits for its function to return and returns
        /// its result (`-EINTR` if it never ran).
        pub fn kthread_stop(k: *mut TaskStruct) -> i32;
        /// 1 once `kthread_stop` was called for the running kthread.
        pub fn kthread_should_stop() -> i32;
        /// Wakes `p` if it sleeps; 1 if it did.
        pub fn wake_up_process(p: *mut TaskStruct) -> i32;
        /// Wakes `p` if it sleeps in one of `state`; 1 if it did.
        pub fn wake_up_state(p: *mut TaskStruct, state: u32) -> i32;
        /// Gives up the CPU (sleeps if the state set before says so).
        pub fn schedule();
        /// Sleeps until woken or `timeout` jiffies passed; returns the jiffies left.
        pub fn schedule_timeout(timeout: i32) -> i32;
        /// `schedule_timeout` in `TASK_INTERRUPTIBLE`.
        pub fn schedule_timeout_interruptible(timeout: i32) -> i32;
        /// `schedule_timeout` in `TASK_UNINTERRUPTIBLE`.
        pub fn schedule_timeout_uninterruptible(timeout: i32) -> i32;
        /// Sleeps at least `msecs` milliseconds.
        pub fn msleep(msecs: u32);
        /// Sleeps `msecs` milliseconds unless a signal comes; returns the milliseconds left.
        pub fn msleep_interruptible(msecs: u32) -> u32;
        /// Lets another task run; 1 if one did.
        pub fn cond_resched() -> i32;
        /// Jiffies since boot.
        pub fn get_jiffies_64() -> u64;
        /// Milliseconds to jiffies, rounding up.
        pub fn __msecs_to_jiffies(m: u32) -> i32;
        /// Jiffies to milliseconds.
        pub fn jiffies_to_msecs(j: i32) -> u32;
        /// Sets the state the running task sleeps in at its next `schedule`.
        pub fn set_current_state(state: i32);
        /// 1 if `p` has a signal pending.
        pub fn signal_pending(p: *mut TaskStruct) -> i32;
        /// The getpid system call (a traceable kernel function a patch can replace).
        pub fn __x64_sys_getpid() -> i32;
        /// getpid through `__x64_sys_getpid`'s ftrace slot.
        pub fn sys_getpid() -> i32;
        /// One more reference to `task`.
        pub fn get_task_struct(task: *mut TaskStruct) -> *mut TaskStruct;
        /// Drops a reference to `task`.
        pub fn put_task_struct(task: *mut TaskStruct);

        /// An empty wait queue.
        pub fn init_waitqueue_head(wq: *mut WaitQueueHead);
        /// A waiter for `current` woken by `autoremove_wake_function`.
        pub fn init_wait_entry(entry: *mut WaitQueueEntry, flags: u32);
        /// Adds a non-exclusive waiter.
        pub fn add_wait_queue(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry);
        /// Adds an exclusive waiter.
        pub fn add_wait_queue_exclusive(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry);
        /// Takes a waiter off the queue.
        pub fn remove_wait_queue(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry);
        /// Queues `entry` unless queued and sets the state `current` sleeps in.
        pub fn prepare_to_wait(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry, state: i32);
        /// As `prepare_to_wait` for an exclusive waiter; 1 if it queued it now.
        pub fn prepare_to_wait_exclusive(
            wq: *mut WaitQueueHead,
            entry: *mut WaitQueueEntry,
            state: i32,
        ) -> i32;
        /// `current` runs again; takes `entry` off the queue.
        pub fn finish_wait(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry);
        /// Wakes the waiters for `mode`, at most `nr_exclusive` exclusive ones (0: all);
        /// returns how many woke.
        pub fn __wake_up(
            wq: *mut WaitQueueHead,
            mode: u32,
            nr_exclusive: i32,
            key: *mut c_void,
        ) -> i32;
        /// Wakes the non-exclusive waiters and one exclusive one.
        pub fn wake_up(wq: *mut WaitQueueHead);
        /// As `wake_up` for `TASK_INTERRUPTIBLE` waiters.
        pub fn wake_up_interruptible(wq: *mut WaitQueueHead);
        /// Wakes every waiter.
        pub fn wake_up_all(wq: *mut WaitQueueHead);
        /// Wakes every `TASK_INTERRUPTIBLE` waiter.
        pub fn wake_up_interruptible_all(wq: *mut WaitQueueHead);
        /// 1 if anyone waits on `wq`.
        pub fn waitqueue_active(wq: *mut WaitQueueHead) -> i32;

        /// Not done, nobody waiting.
        pub fn init_completion(x: *mut Completion);
        /// Not done again.
        pub fn reinit_completion(x: *mut Completion);
        /// One more completion; wakes one waiter.
        pub fn complete(x: *mut Completion);
        /// Done for good; wakes every waiter.
        pub fn complete_all(x: *mut Completion);
        /// Sleeps until `x` is done.
        pub fn wait_for_completion(x: *mut Completion);
        /// At most `timeout` jiffies: 0 on timeout, else the jiffies left (at least 1).
        pub fn wait_for_completion_timeout(x: *mut Completion, timeout: i32) -> i32;
        /// 0 when done, `-ERESTARTSYS` on a signal.
        pub fn wait_for_completion_interruptible(x: *mut Completion) -> i32;
        /// The jiffies left, 0 on timeout, `-ERESTARTSYS` on a signal.
        pub fn wait_for_completion_interruptible_timeout(x: *mut Completion, timeout: i32) -> i32;
        /// 0 when done, `-ERESTARTSYS` on a fatal signal.
        pub fn wait_for_completion_killable(x: *mut Completion) -> i32;
        /// Consumes a completion without sleeping; 1 if there was one.
        pub fn try_wait_for_completion(x: *mut Completion) -> i32;
        /// 1 if a wait would not sleep.
        pub fn completion_done(x: *mut Completion) -> i32;

        /// Prepares `timer` to call `function`.
        pub fn timer_setup(timer: *mut TimerList, function: TimerFn, flags: u32);
        /// (Re)arms `timer` for `expires` (jiffies); 1 if it was pending.
        pub fn mod_timer(timer: *mut TimerList, expires: u64) -> i32;
        /// Arms `timer` at its `expires`.
        pub fn add_timer(timer: *mut TimerList);
        /// Disarms `timer`; 1 if it was pending.
        pub fn del_timer(timer: *mut TimerList) -> i32;
        /// As `del_timer` (callbacks never run concurrently here).
        pub fn del_timer_sync(timer: *mut TimerList) -> i32;
        /// `del_timer`'s newer name.
        pub fn timer_delete(timer: *mut TimerList) -> i32;
        /// `del_timer_sync`'s newer name.
        pub fn timer_delete_sync(timer: *mut TimerList) -> i32;
        /// 1 if `timer` is armed.
        pub fn timer_pending(timer: *const TimerList) -> i32;

        /// Queues `work` on the system workqueue; 0 if it was already pending.
        pub fn schedule_work(work: *mut WorkStruct) -> i32;
        /// Queues `dwork` after `delay` jiffies; 0 if it was already pending.
        pub fn schedule_delayed_work(dwork: *mut DelayedWork, delay: i32) -> i32;
        /// (Re)queues `dwork` after `delay` jiffies; 1 if it was pending.
        pub fn mod_delayed_work(dwork: *mut DelayedWork, delay: i32) -> i32;
        /// Waits until `work` (queued or running) finished; 1 if it waited.
        pub fn flush_work(work: *mut WorkStruct) -> i32;
        /// Queues `dwork` now if its timer is armed, then flushes it.
        pub fn flush_delayed_work(dwork: *mut DelayedWork) -> i32;
        /// Dequeues `work` and waits for it if it runs; 1 if it was pending.
        pub fn cancel_work_sync(work: *mut WorkStruct) -> i32;
        /// Disarms or dequeues `dwork`; 1 if it was pending.
        pub fn cancel_delayed_work(dwork: *mut DelayedWork) -> i32;
        /// As `cancel_delayed_work`, and waits for it if it runs.
        pub fn cancel_delayed_work_sync(dwork: *mut DelayedWork) -> i32;
    }
}

/// The running task.
#[inline]
pub fn current() -> *mut TaskStruct {
    // SAFETY: no arguments.
    unsafe { sys::get_current() }
}

/// `current->pid` through the getpid system call.
#[inline]
pub fn getpid() -> i32 {
    // SAFETY: no arguments.
    unsafe { sys::sys_getpid() }
}

/// Starts a kthread running `threadfn(data)` named `name`; NULL on failure.
///
/// # Safety
///
/// `data` must be what `threadfn` expects, for as long as the thread runs.
#[inline]
pub unsafe fn kthread_run(threadfn: ThreadFn, data: *mut c_void, name: &CStr) -> *mut TaskStruct {
    // SAFETY: a NUL-terminated name; `data` is the caller's contract.
    unsafe { sys::kthread_run(threadfn, data, name.as_ptr()) }
}

/// Stops the kthread `k` and returns its function's result.
///
/// # Safety
///
/// `k` must be a kthread from [`kthread_run`] not stopped yet.
#[inline]
pub unsafe fn kthread_stop(k: *mut TaskStruct) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { sys::kthread_stop(k) }
}

/// Whether `kthread_stop` was called for the running kthread.
#[inline]
pub fn kthread_should_stop() -> bool {
    // SAFETY: no arguments.
    unsafe { sys::kthread_should_stop() != 0 }
}

/// Sleeps at least `msecs` milliseconds.
#[inline]
pub fn msleep(msecs: u32) {
    // SAFETY: no pointers.
    unsafe { sys::msleep(msecs) }
}

/// Sleeps `msecs` milliseconds unless a signal comes; returns the milliseconds left.
#[inline]
pub fn msleep_interruptible(msecs: u32) -> u32 {
    // SAFETY: no pointers.
    unsafe { sys::msleep_interruptible(msecs) }
}

/// Gives up the CPU.
#[inline]
pub fn schedule() {
    // SAFETY: no arguments.
    unsafe { sys::schedule() }
}

/// Lets another task run; whether one did.
#[inline]
pub fn cond_resched() -> bool {
    // SAFETY: no arguments.
    unsafe { sys::cond_resched() != 0 }
}

/// Sets the state the running task sleeps in at its next [`schedule`].
#[inline]
pub fn set_current_state(state: i32) {
    // SAFETY: no pointers.
    unsafe { sys::set_current_state(state) }
}

/// Jiffies since boot.
#[inline]
pub fn get_jiffies_64() -> u64 {
    // SAFETY: no arguments.
    unsafe { sys::get_jiffies_64() }
}

/// Milliseconds to jiffies, rounding up (`msecs_to_jiffies`, computed here as Linux's inline).
#[inline]
pub const fn msecs_to_jiffies(m: u32) -> i32 {
    let max = (i32::MAX >> 1) - 1;
    if m > i32::MAX as u32 {
        return max;
    }
    let j = (m as u64 * HZ).div_ceil(1000);
    if j > max as u64 { max } else { j as i32 }
}

/// Wakes the waiters of `wq` (non-exclusive ones and one exclusive one).
#[inline]
pub fn wake_up(wq: &WaitQueueHead) {
    // SAFETY: a live queue.
    unsafe { sys::wake_up(wq.as_ptr()) }
}

/// Wakes every waiter of `wq`.
#[inline]
pub fn wake_up_all(wq: &WaitQueueHead) {
    // SAFETY: a live queue.
    unsafe { sys::wake_up_all(wq.as_ptr()) }
}

/// Wakes the `TASK_INTERRUPTIBLE` waiters of `wq`.
#[inline]
pub fn wake_up_interruptible(wq: &WaitQueueHead) {
    // SAFETY: a live queue.
    unsafe { sys::wake_up_interruptible(wq.as_ptr()) }
}

/// One more completion of `x`; wakes one waiter.
#[inline]
pub fn complete(x: &Completion) {
    // SAFETY: a live completion.
    unsafe { sys::complete(x.as_ptr()) }
}

/// `x` done for good; wakes every waiter.
#[inline]
pub fn complete_all(x: &Completion) {
    // SAFETY: a live completion.
    unsafe { sys::complete_all(x.as_ptr()) }
}

/// Sleeps until `x` is done.
#[inline]
pub fn wait_for_completion(x: &Completion) {
    // SAFETY: a live completion, borrowed while the waiter is queued on it.
    unsafe { sys::wait_for_completion(x.as_ptr()) }
}

/// Sleeps until `x` is done or `timeout` jiffies passed: 0 on timeout, else the jiffies
/// left.
#[inline]
pub fn wait_for_completion_timeout(x: &Completion, timeout: i32) -> i32 {
    // SAFETY: as above.
    unsafe { sys::wait_for_completion_timeout(x.as_ptr(), timeout) }
}

/// Queues `work` on the system workqueue; false if it was already pending.
#[inline]
pub fn schedule_work(work: &'static WorkStruct) -> bool {
    // SAFETY: a work item that lives for ever.
    unsafe { sys::schedule_work(work.as_ptr()) != 0 }
}

/// Queues `dwork` after `delay` jiffies; false if it was already pending.
#[inline]
pub fn schedule_delayed_work(dwork: &'static DelayedWork, delay: i32) -> bool {
    // SAFETY: as above.
    unsafe { sys::schedule_delayed_work(dwork.as_ptr(), delay) != 0 }
}

/// Dequeues `work` and waits for it if it runs; whether it was pending.
#[inline]
pub fn cancel_work_sync(work: &WorkStruct) -> bool {
    // SAFETY: a live work item.
    unsafe { sys::cancel_work_sync(work.as_ptr()) != 0 }
}

/// Disarms or dequeues `dwork` and waits for it if it runs; whether it was pending.
#[inline]
pub fn cancel_delayed_work_sync(dwork: &DelayedWork) -> bool {
    // SAFETY: a live delayed work item.
    unsafe { sys::cancel_delayed_work_sync(dwork.as_ptr()) != 0 }
}

/// Waits until `work` (queued or running) finished; whether it waited.
#[inline]
pub fn flush_work(work: &WorkStruct) -> bool {
    // SAFETY: a live work item.
    unsafe { sys::flush_work(work.as_ptr()) != 0 }
}

/// Sleeps uninterruptibly on the wait queue `$wq` (a `&WaitQueueHead`) until `$cond` is
/// true, as Linux's `wait_event`.
#[macro_export]
macro_rules! wait_event {
    ($wq:expr, $cond:expr) => {{
        let __wq: &$crate::task::WaitQueueHead = $wq;
        if !($cond) {
            let __wait = $crate::task::WaitQueueEntry::new();
            loop {
                // SAFETY: the queue and the entry outlive the wait.
                unsafe {
                    $crate::task::sys::prepare_to_wait(
                        __wq.as_ptr(),
                        __wait.as_ptr(),
                        $crate::task::TASK_UNINTERRUPTIBLE,
                    )
                };
                if $cond {
                    break;
                }
                $crate::task::schedule();
            }
            // SAFETY: as above.
            unsafe { $crate::task::sys::finish_wait(__wq.as_ptr(), __wait.as_ptr()) };
        }
    }};
}

/// As [`wait_event!`], interruptibly: 0 once `$cond` is true, `-ERESTARTSYS` when a signal
/// came first (`wait_event_interruptible`).
#[macro_export]
macro_rules! wait_event_interruptible {
    ($wq:expr, $cond:expr) => {{
        let __wq: &$crate::task::WaitQueueHead = $wq;
        let mut __ret: i32 = 0;
        if !($cond) {
            let __wait = $crate::task::WaitQueueEntry::new();
            loop {
                // SAFETY: the queue and the entry outlive the wait.
                unsafe {
                    $crate::task::sys::prepare_to_wait(
                        __wq.as_ptr(),
                        __wait.as_ptr(),
                        $crate::task::TASK_INTERRUPTIBLE,
                    )
                };
                if $cond {
                    break;
                }
                // SAFETY: `current` is live.
                if unsafe { $crate::task::sys::signal_pending($crate::task::current()) } != 0 {
                    __ret = -$crate::errno::ERESTARTSYS;
                    break;
                }
                $crate::task::schedule();
            }
            // SAFETY: as above.
            unsafe { $crate::task::sys::finish_wait(__wq.as_ptr(), __wait.as_ptr()) };
        }
        __ret
    }};
}

/// As [`wait_event!`] for at most `$timeout` jiffies (`wait_event_timeout`): 0 if `$cond`
/// is still false when the time is up, 1 if it became true just then, else the jiffies
/// left.
#[macro_export]
macro_rules! wait_event_timeout {
    ($wq:expr, $cond:expr, $timeout:expr) => {{
        let __wq: &$crate::task::WaitQueueHead = $wq;
        let mut __ret: i32 = $timeout;
        let mut __cond = $cond;
        if __cond && __ret == 0 {
            __ret = 1;
        }
        if !__cond && __ret != 0 {
            let __wait = $crate::task::WaitQueueEntry::new();
            loop {
                // SAFETY: the queue and the entry outlive the wait.
                unsafe {
                    $crate::task::sys::prepare_to_wait(
                        __wq.as_ptr(),
                        __wait.as_ptr(),
                        $crate::task::TASK_UNINTERRUPTIBLE,
                    )
                };
                __cond = $cond;
                if __cond && __ret == 0 {
                    __ret = 1;
                }
                if __cond || __ret == 0 {
                    break;
                }
                // SAFETY: no pointers.
                __ret = unsafe { $crate::task::sys::schedule_timeout(__ret) };
            }
            // SAFETY: as above.
            unsafe { $crate::task::sys::finish_wait(__wq.as_ptr(), __wait.as_ptr()) };
        }
        __ret
    }};
}

/// A set of up to `N` pids, for "the first time each task comes here" messages: a patch's
/// function that says so once per task, however often it runs.
pub struct PidSet<const N: usize> {
    pids: [core::sync::atomic::AtomicI32; N],
}

impl<const N: usize> PidSet<N> {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            pids: [const { core::sync::atomic::AtomicI32::new(0) }; N],
        }
    }

    /// Whether `pid` comes here the first time (it is then remembered); `false` also once
    /// the set is full.
    pub fn first_time(&self, pid: i32) -> bool {
        use core::sync::atomic::Ordering;
        for slot in &self.pids {
            match slot.load(Ordering::Relaxed) {
                p if p == pid => return false,
                0 => {
                    slot.store(pid, Ordering::Relaxed);
                    return true;
                }
                _ => {}
            }
        }
        false
    }
}

impl<const N: usize> Default for PidSet<N> {
    fn default() -> Self {
        Self::new()
    }
}
