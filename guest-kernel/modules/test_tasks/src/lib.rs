//! test_tasks: a self-test of the kernel's task API, run at insmod: jiffies and msleep,
//! completions, a timer waking a wait queue, work items (queued, delayed, cancelled,
//! flushed), a kthread that is stopped, and getpid. Logs `test_tasks: all checks passed`, or
//! the first check that failed (and `insmod` fails with `-EINVAL`).
//!
//! The work and kthread checks need the init to run in a task (another task must run while
//! it waits); elsewhere (the top level, a host without tasks) they are skipped. In a task the
//! work runs in `kworker/0:0` and the kthread in its own task.
#![no_std]

use core::ffi::c_void;
use core::sync::atomic::{AtomicI32, Ordering};

use klp_guest::errno::EINVAL;
use klp_guest::task::{self, Completion, DelayedWork, TimerList, WaitQueueHead, WorkStruct, sys};
use klp_guest::{pr_info, wait_event, wait_event_timeout};

static DONE: Completion = Completion::new();
static WORK_DONE: Completion = Completion::new();
static WQ: WaitQueueHead = WaitQueueHead::new();
static TIMER_FIRED: AtomicI32 = AtomicI32::new(0);
static WORK_RAN: AtomicI32 = AtomicI32::new(0);
static DWORK_RAN: AtomicI32 = AtomicI32::new(0);
static TIMER: TimerList = TimerList::new(timer_fn);
static WORK: WorkStruct = WorkStruct::new(work_fn);
static DWORK: DelayedWork = DelayedWork::new(dwork_fn);
static THREAD_LOOPS: AtomicI32 = AtomicI32::new(0);

unsafe extern "C" fn timer_fn(_t: *mut TimerList) {
    TIMER_FIRED.store(1, Ordering::Relaxed);
    task::wake_up(&WQ);
}

unsafe extern "C" fn work_fn(_w: *mut WorkStruct) {
    WORK_RAN.fetch_add(1, Ordering::Relaxed);
    task::complete(&WORK_DONE);
}

unsafe extern "C" fn dwork_fn(_w: *mut WorkStruct) {
    DWORK_RAN.fetch_add(1, Ordering::Relaxed);
}

unsafe extern "C" fn thread_fn(data: *mut c_void) -> i32 {
    while !task::kthread_should_stop() {
        THREAD_LOOPS.fetch_add(1, Ordering::Relaxed);
        task::msleep(4);
    }
    data as usize as i32
}

/// Fails the test with `what`.
macro_rules! check {
    ($cond:expr, $what:literal) => {
        if !$cond {
            klp_guest::printk(concat!("\x013test_tasks: FAILED: ", $what, "\n"));
            return -EINVAL;
        }
    };
}

fn run() -> i32 {
    let j0 = task::get_jiffies_64();
    task::msleep(20);
    check!(
        task::get_jiffies_64() >= j0 + 5,
        "msleep(20) slept 5 jiffies"
    );
    check!(
        task::msecs_to_jiffies(20) == 5,
        "msecs_to_jiffies(20) == 5 at HZ=250"
    );
    check!(task::getpid() >= 0, "getpid");

    task::complete(&DONE);
    // SAFETY: a live completion.
    check!(
        unsafe { sys::completion_done(DONE.as_ptr()) } == 1,
        "completion_done after complete"
    );
    task::wait_for_completion(&DONE);
    check!(
        task::wait_for_completion_timeout(&DONE, 2) == 0,
        "wait_for_completion_timeout times out"
    );

    // SAFETY: a static timer.
    unsafe { sys::mod_timer(TIMER.as_ptr(), task::get_jiffies_64() + 1) };
    let left = wait_event_timeout!(&WQ, TIMER_FIRED.load(Ordering::Relaxed) != 0, 250);
    check!(left > 0, "a timer wakes wait_event_timeout");
    // SAFETY: as above.
    check!(
        unsafe { sys::timer_pending(TIMER.as_ptr()) } == 0,
        "the timer is not pending after it fired"
    );

    // A condition that is already true: no sleep.
    wait_event!(&WQ, TIMER_FIRED.load(Ordering::Relaxed) != 0);

    // Work and kthreads need other tasks to run while this one waits: only in a task
    // (where cond_resched switches), not at the top level or on a host without tasks.
    if !task::cond_resched() {
        pr_info!("test_tasks: not in a task: work and kthread checks skipped");
        pr_info!("test_tasks: all checks passed");
        return 0;
    }
    works()
}

/// The work item and kthread checks.
fn works() -> i32 {
    check!(task::schedule_work(&WORK), "schedule_work queues");
    task::wait_for_completion(&WORK_DONE);
    task::flush_work(&WORK);
    check!(WORK_RAN.load(Ordering::Relaxed) == 1, "the work ran once");

    check!(
        task::schedule_delayed_work(&DWORK, 2),
        "schedule_delayed_work queues"
    );
    check!(
        !task::schedule_delayed_work(&DWORK, 2),
        "schedule_delayed_work of a pending item"
    );
    // SAFETY: a static item.
    unsafe { sys::flush_delayed_work(DWORK.as_ptr()) };
    check!(
        DWORK_RAN.load(Ordering::Relaxed) == 1,
        "flush_delayed_work ran it"
    );
    check!(
        task::schedule_delayed_work(&DWORK, 1000),
        "schedule_delayed_work queues again"
    );
    check!(
        task::cancel_delayed_work_sync(&DWORK),
        "cancel_delayed_work_sync of a pending item"
    );
    check!(
        !task::cancel_delayed_work_sync(&DWORK),
        "cancel_delayed_work_sync of an idle item"
    );
    check!(
        DWORK_RAN.load(Ordering::Relaxed) == 1,
        "a cancelled item does not run"
    );

    // SAFETY: the thread gets a plain number.
    let k = unsafe { task::kthread_run(thread_fn, 42 as *mut c_void, c"test_tasks") };
    check!(!k.is_null(), "kthread_run");
    task::msleep(20);
    // SAFETY: our kthread, not stopped yet.
    let ret = unsafe { task::kthread_stop(k) };
    check!(ret == 42, "kthread_stop returns the thread's result");
    check!(THREAD_LOOPS.load(Ordering::Relaxed) > 0, "the kthread ran");
    pr_info!("test_tasks: all checks passed");
    0
}

/// Runs the checks.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    run()
}

/// Nothing to undo: every item is idle once init returned.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(
    description,
    "Self-test of timers, msleep, wait queues, completions, the workqueue and kthreads"
);
