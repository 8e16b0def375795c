//! Tasks: `task_struct` and its layout, and the wait queues, completions, timers and work items.
//!
//! The guest owns all of these (in kernel or module memory); the host reads a task only
//! through the [`task_struct`] offsets. The other structures are intrusive: the kernel links
//! them through their [`ListHead`]s, so once used they must not move (as in Linux). Their
//! fields are `UnsafeCell`s, because the kernel changes them through pointers to statics of
//! modules; `const` constructors make them usable as `static`s, and an all-null [`ListHead`]
//! is an empty list the kernel initialises on first use.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::offset_of;
use core::ptr;

/// Task constants, as in Linux's `include/linux/sched.h` and `thread_info.h`.
pub mod task {
    /// Bytes of each task's own stack (`__stack_pointer` shadow stack). Linux x86_64 has
    /// 16 KiB; Rust's formatting needs more.
    pub const THREAD_SIZE: u32 = 32 << 10;
    /// Length of `comm`, the NUL included.
    pub const TASK_COMM_LEN: usize = 16;
    /// Task slots (`TaskStruct::slot` is `0..MAX_TASKS`), as `klp_passes`' tasks `MAX_TASKS`.
    pub const MAX_TASKS: u32 = 4096;
    /// Timer ticks (jiffies) per second.
    pub const HZ: u64 = 250;
    /// `schedule_timeout` without a timeout.
    pub const MAX_SCHEDULE_TIMEOUT: i32 = i32::MAX;
    /// `__state`: running or runnable.
    pub const TASK_RUNNING: i32 = 0;
    /// `__state`: sleeping, woken by signals too.
    pub const TASK_INTERRUPTIBLE: i32 = 1;
    /// `__state`: sleeping, signals do not wake it.
    pub const TASK_UNINTERRUPTIBLE: i32 = 2;
    /// `__state`: it has exited.
    pub const TASK_DEAD: i32 = 0x80;
    /// `__state` modifier: woken by fatal signals.
    pub const TASK_WAKEKILL: i32 = 0x100;
    /// `__state` modifier: not counted in the load average.
    pub const TASK_NOLOAD: i32 = 0x400;
    /// An uninterruptible sleep that only fatal signals end.
    pub const TASK_KILLABLE: i32 = TASK_WAKEKILL | TASK_UNINTERRUPTIBLE;
    /// An uninterruptible sleep that does not count as load (shown as `I`).
    pub const TASK_IDLE: i32 = TASK_UNINTERRUPTIBLE | TASK_NOLOAD;
    /// The states `wake_up` wakes.
    pub const TASK_NORMAL: i32 = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE;
    /// `flags`: the idle task (`swapper/0`).
    pub const PF_IDLE: u32 = 0x2;
    /// `flags`: exiting.
    pub const PF_EXITING: u32 = 0x4;
    /// `flags`: a workqueue worker.
    pub const PF_WQ_WORKER: u32 = 0x20;
    /// `flags`: a kernel thread.
    pub const PF_KTHREAD: u32 = 0x0020_0000;
    /// `ti_flags`: a signal is pending.
    pub const TIF_SIGPENDING: u32 = 1 << 2;
    /// `ti_flags`: the task switches to `klp_target_state` on its way to user mode.
    pub const TIF_PATCH_PENDING: u32 = 1 << 13;
    /// `patch_state`: no transition.
    pub const KLP_TRANSITION_IDLE: i32 = -1;
    /// `patch_state`: runs the unpatched functions.
    pub const KLP_TRANSITION_UNPATCHED: i32 = 0;
    /// `patch_state`: runs the patched functions.
    pub const KLP_TRANSITION_PATCHED: i32 = 1;
    /// `WaitQueueEntry::flags`: an exclusive waiter (`wake_up` wakes one of them).
    pub const WQ_FLAG_EXCLUSIVE: u32 = 0x01;
    /// `WaitQueueEntry::flags`: woken (`woken_wake_function`).
    pub const WQ_FLAG_WOKEN: u32 = 0x02;
}

/// A user task's system call (`struct pt_regs`, layout [`pt_regs`]): `do_syscall_64` calls
/// the kernel function `func` with `nargs` of `args` and stores its result in `ret`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtRegs {
    /// Table index of the kernel function to call.
    pub func: i32,
    /// How many of `args` it takes (0 to 6).
    pub nargs: i32,
    /// Nonzero: it returns an `i32`; 0: it returns nothing.
    pub has_ret: i32,
    /// The arguments.
    pub args: [i32; 6],
    /// The result (0 for a function without one).
    pub ret: i32,
}

/// A task, `struct task_struct` (layout [`task_struct`]): the part the host and modules see.
/// The kernel allocates a larger object with private fields after these, so only the kernel
/// creates tasks.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskStruct {
    /// Process id.
    pub pid: i32,
    /// `__state`: `TASK_*`.
    pub state: i32,
    /// `PF_*`.
    pub flags: u32,
    /// `KLP_TRANSITION_*`: which version of patched functions it runs.
    pub patch_state: i32,
    /// `thread_info.flags`: `TIF_*`.
    pub ti_flags: u32,
    /// The task slot the host runs it in (`__klp_task_spawn`/`__klp_task_resume`).
    pub slot: i32,
    /// Base of its `THREAD_SIZE` bytes of stack; it starts with `sp = stack + THREAD_SIZE`.
    pub stack: u32,
    /// Table index of its entry, `extern "C" fn(*mut TaskStruct)`, called with the task.
    pub entry: i32,
    /// Its name, NUL-padded.
    pub comm: [u8; task::TASK_COMM_LEN],
    /// A user task's system call.
    pub regs: PtRegs,
    /// The exit code (a kthread's result).
    pub exit_code: i32,
    /// The parent's pid.
    pub ppid: i32,
    /// Thread group id: what `getpid` returns.
    pub tgid: i32,
    /// `preempt_count`: nonzero while the task is inside kernel code that must not be
    /// preempted (it holds kernel state another task could reach). A task preempted with a
    /// nonzero count must be resumed before any other task runs.
    pub preempt_count: i32,
}

/// Layout of [`TaskStruct`] in guest memory (byte offsets), as the host reads it.
pub mod task_struct {
    /// Size of the public part; the kernel's private fields follow.
    pub const SIZE: u32 = 104;
    /// `pid: i32`.
    pub const PID: u32 = 0;
    /// `state: i32`.
    pub const STATE: u32 = 4;
    /// `flags: u32`.
    pub const FLAGS: u32 = 8;
    /// `patch_state: i32`.
    pub const PATCH_STATE: u32 = 12;
    /// `ti_flags: u32`.
    pub const TI_FLAGS: u32 = 16;
    /// `slot: i32`.
    pub const SLOT: u32 = 20;
    /// `stack: u32`.
    pub const STACK: u32 = 24;
    /// `entry: i32`.
    pub const ENTRY: u32 = 28;
    /// `comm: [u8; 16]`.
    pub const COMM: u32 = 32;
    /// `regs: PtRegs` (layout [`pt_regs`](super::pt_regs)).
    pub const REGS: u32 = 48;
    /// `exit_code: i32`.
    pub const EXIT_CODE: u32 = 88;
    /// `ppid: i32`.
    pub const PPID: u32 = 92;
    /// `tgid: i32`.
    pub const TGID: u32 = 96;
    /// `preempt_count: i32`.
    pub const PREEMPT_COUNT: u32 = 100;
}

/// Layout of [`PtRegs`] (byte offsets from its start).
pub mod pt_regs {
    /// Size in bytes.
    pub const SIZE: u32 = 40;
    /// `func: i32`.
    pub const FUNC: u32 = 0;
    /// `nargs: i32`.
    pub const NARGS: u32 = 4;
    /// `has_ret: i32`.
    pub const HAS_RET: u32 = 8;
    /// `args: [i32; 6]`.
    pub const ARGS: u32 = 12;
    /// `ret: i32`.
    pub const RET: u32 = 36;
}

// No pointers: the layout is the same on every target, so the host checks it too.
const _: () = {
    assert!(size_of::<TaskStruct>() == task_struct::SIZE as usize);
    assert!(offset_of!(TaskStruct, pid) == task_struct::PID as usize);
    assert!(offset_of!(TaskStruct, state) == task_struct::STATE as usize);
    assert!(offset_of!(TaskStruct, flags) == task_struct::FLAGS as usize);
    assert!(offset_of!(TaskStruct, patch_state) == task_struct::PATCH_STATE as usize);
    assert!(offset_of!(TaskStruct, ti_flags) == task_struct::TI_FLAGS as usize);
    assert!(offset_of!(TaskStruct, slot) == task_struct::SLOT as usize);
    assert!(offset_of!(TaskStruct, stack) == task_struct::STACK as usize);
    assert!(offset_of!(TaskStruct, entry) == task_struct::ENTRY as usize);
    assert!(offset_of!(TaskStruct, comm) == task_struct::COMM as usize);
    assert!(offset_of!(TaskStruct, regs) == task_struct::REGS as usize);
    assert!(offset_of!(TaskStruct, exit_code) == task_struct::EXIT_CODE as usize);
    assert!(offset_of!(TaskStruct, ppid) == task_struct::PPID as usize);
    assert!(offset_of!(TaskStruct, tgid) == task_struct::TGID as usize);
    assert!(offset_of!(TaskStruct, preempt_count) == task_struct::PREEMPT_COUNT as usize);
    assert!(size_of::<PtRegs>() == pt_regs::SIZE as usize);
    assert!(offset_of!(PtRegs, func) == pt_regs::FUNC as usize);
    assert!(offset_of!(PtRegs, nargs) == pt_regs::NARGS as usize);
    assert!(offset_of!(PtRegs, has_ret) == pt_regs::HAS_RET as usize);
    assert!(offset_of!(PtRegs, args) == pt_regs::ARGS as usize);
    assert!(offset_of!(PtRegs, ret) == pt_regs::RET as usize);
};

/// A link of a doubly linked circular list, `struct list_head`. All null (as
/// [`new`](ListHead::new) makes it) is an empty list the kernel has not initialised yet.
#[repr(C)]
#[derive(Debug)]
pub struct ListHead {
    /// The next link (the head itself at the end).
    pub next: *mut ListHead,
    /// The previous link.
    pub prev: *mut ListHead,
}

impl ListHead {
    /// An empty list (or an unlinked entry).
    pub const fn new() -> Self {
        ListHead {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        }
    }
}

impl Default for ListHead {
    fn default() -> Self {
        Self::new()
    }
}

/// A wake function, `wait_queue_func_t`: wakes the waiter of `wq_entry` for `mode` (the
/// `TASK_*` states to wake); nonzero if it woke it.
pub type WaitQueueFunc = unsafe extern "C" fn(
    wq_entry: *mut WaitQueueEntry,
    mode: u32,
    flags: i32,
    key: *mut c_void,
) -> i32;

/// A wait queue, `struct wait_queue_head`.
#[repr(C)]
pub struct WaitQueueHead {
    /// The waiters' entries.
    pub head: UnsafeCell<ListHead>,
}

/// A waiter on a wait queue, `struct wait_queue_entry` (usually on the waiting task's stack).
#[repr(C)]
pub struct WaitQueueEntry {
    /// `WQ_FLAG_*`.
    pub flags: UnsafeCell<u32>,
    /// The waiting task (NULL: `prepare_to_wait` fills in `current`).
    pub private: UnsafeCell<*mut TaskStruct>,
    /// How to wake it; `None` is the kernel's `autoremove_wake_function`.
    pub func: UnsafeCell<Option<WaitQueueFunc>>,
    /// Its link in the queue.
    pub entry: UnsafeCell<ListHead>,
}

/// A completion, `struct completion`: `done` counts `complete` calls not yet waited for.
#[repr(C)]
pub struct Completion {
    /// Completions not consumed yet; `u32::MAX` after `complete_all`.
    pub done: UnsafeCell<u32>,
    /// The waiters.
    pub wait: WaitQueueHead,
}

/// A timer callback, called with the timer (use `container_of` for what embeds it).
pub type TimerFn = unsafe extern "C" fn(timer: *mut TimerList);

/// A timer, `struct timer_list`.
#[repr(C)]
pub struct TimerList {
    /// Its link in the kernel's list of pending timers.
    pub entry: UnsafeCell<ListHead>,
    /// When it fires, in jiffies.
    pub expires: UnsafeCell<u64>,
    /// What it calls.
    pub function: UnsafeCell<Option<TimerFn>>,
    /// `TIMER_*` flags.
    pub flags: UnsafeCell<u32>,
}

/// A work function, `work_func_t`, called with the work item in the kworker.
pub type WorkFunc = unsafe extern "C" fn(work: *mut WorkStruct);

/// A work item, `struct work_struct`.
#[repr(C)]
pub struct WorkStruct {
    /// `WORK_STRUCT_*` bits (bit 0: pending).
    pub data: UnsafeCell<u32>,
    /// Its link in the worklist.
    pub entry: UnsafeCell<ListHead>,
    /// What the worker calls.
    pub func: UnsafeCell<Option<WorkFunc>>,
}

/// A work item queued after a delay, `struct delayed_work`.
#[repr(C)]
pub struct DelayedWork {
    /// The work item.
    pub work: WorkStruct,
    /// The timer that queues it (its function is set by `schedule_delayed_work`).
    pub timer: TimerList,
}

macro_rules! shared_in_guest {
    ($($ty:ty),+) => {
        $(
            // SAFETY: the guest is single-threaded; the kernel changes these only through
            // their `UnsafeCell` fields.
            #[allow(unsafe_code)]
            unsafe impl Sync for $ty {}

            impl $ty {
                /// The pointer the kernel functions take.
                pub const fn as_ptr(&self) -> *mut Self {
                    ptr::from_ref(self).cast_mut()
                }
            }
        )+
    };
}

shared_in_guest!(
    WaitQueueHead,
    WaitQueueEntry,
    Completion,
    TimerList,
    WorkStruct,
    DelayedWork
);

impl WaitQueueHead {
    /// An empty wait queue (`DECLARE_WAIT_QUEUE_HEAD`).
    pub const fn new() -> Self {
        WaitQueueHead {
            head: UnsafeCell::new(ListHead::new()),
        }
    }
}

impl Default for WaitQueueHead {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueueEntry {
    /// A waiter for `current` woken by `autoremove_wake_function` (`DEFINE_WAIT`).
    pub const fn new() -> Self {
        WaitQueueEntry {
            flags: UnsafeCell::new(0),
            private: UnsafeCell::new(ptr::null_mut()),
            func: UnsafeCell::new(None),
            entry: UnsafeCell::new(ListHead::new()),
        }
    }
}

impl Default for WaitQueueEntry {
    fn default() -> Self {
        Self::new()
    }
}

impl Completion {
    /// A completion not done yet (`DECLARE_COMPLETION`).
    pub const fn new() -> Self {
        Completion {
            done: UnsafeCell::new(0),
            wait: WaitQueueHead::new(),
        }
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerList {
    /// A timer calling `function` (`DEFINE_TIMER`), not pending.
    pub const fn new(function: TimerFn) -> Self {
        TimerList {
            function: UnsafeCell::new(Some(function)),
            ..Self::empty()
        }
    }

    /// A timer without a function yet (`timer_setup` sets it).
    pub const fn empty() -> Self {
        TimerList {
            entry: UnsafeCell::new(ListHead::new()),
            expires: UnsafeCell::new(0),
            function: UnsafeCell::new(None),
            flags: UnsafeCell::new(0),
        }
    }
}

impl WorkStruct {
    /// A work item calling `func` (`DECLARE_WORK`), not pending.
    pub const fn new(func: WorkFunc) -> Self {
        WorkStruct {
            data: UnsafeCell::new(0),
            entry: UnsafeCell::new(ListHead::new()),
            func: UnsafeCell::new(Some(func)),
        }
    }
}

impl DelayedWork {
    /// A delayed work item calling `func` (`DECLARE_DELAYED_WORK`), not pending.
    pub const fn new(func: WorkFunc) -> Self {
        DelayedWork {
            work: WorkStruct::new(func),
            timer: TimerList::empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TaskStruct, pt_regs, task, task_struct};

    #[test]
    fn task_struct_layout_is_the_same_on_the_host() {
        assert_eq!(size_of::<TaskStruct>(), task_struct::SIZE as usize);
        assert_eq!(task_struct::REGS + pt_regs::SIZE, task_struct::EXIT_CODE);
        assert_eq!(
            task_struct::COMM as usize + task::TASK_COMM_LEN,
            task_struct::REGS as usize
        );
    }
}
