//! `/proc/<pid>/stat` and `status`, `fs/proc/array.c`, in Linux's formats (what procps reads).

use core::ffi::c_void;
use core::fmt::Write;

use klp_abi::task::{
    PF_KTHREAD, PF_WQ_WORKER, TASK_DEAD, TASK_IDLE, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE,
};

use super::base::pid_task;
use crate::sched::task::Task;
use crate::seq_file::SeqFile;

/// `SIGCHLD`, the `exit_signal` of every task but the idle task.
const SIGCHLD: i32 = 17;
/// `USER_HZ`: the clock ticks of `/proc/<pid>/stat`.
const USER_HZ: u64 = 100;

/// `task_state_array`: the letter and name of a task's state, as `get_task_state`. An idle
/// worker (`TASK_INTERRUPTIBLE` with `PF_WQ_WORKER`) is `I`, as Linux's `TASK_IDLE` kworkers.
fn task_state(task: &Task) -> (char, &'static str) {
    let state = task.ts.state;
    if state & TASK_DEAD != 0 {
        ('X', "dead")
    } else if state & TASK_IDLE == TASK_IDLE
        || (state == TASK_INTERRUPTIBLE && task.ts.flags & PF_WQ_WORKER != 0)
    {
        ('I', "idle")
    } else if state & TASK_UNINTERRUPTIBLE != 0 {
        ('D', "disk sleep")
    } else if state & TASK_INTERRUPTIBLE != 0 {
        ('S', "sleeping")
    } else {
        ('R', "running")
    }
}

/// `/proc/<pid>/stat`: the 52 fields of `do_task_stat`; this kernel keeps no accounting,
/// memory map or signal masks, so those read 0.
#[inline(never)]
pub(super) unsafe extern "C" fn proc_pid_stat(m: *mut SeqFile, v: *mut c_void) -> i32 {
    let task = match pid_task(v) {
        Ok(task) => task,
        Err(errno) => return -errno,
    };
    // SAFETY: procfs passes the seq_file being filled; the task is live.
    let (m, task) = unsafe { (&mut *m, &*task) };
    let ts = &task.ts;
    let kthread = ts.flags & PF_KTHREAD != 0;
    let (pgrp, session) = if kthread { (0, 0) } else { (ts.tgid, 1) };
    let exit_signal = if ts.pid == 0 { 0 } else { SIGCHLD };
    let start_time = task.start_time / (1_000_000_000 / USER_HZ);
    let rsslim = if kthread { u64::MAX } else { 0 };
    let _ = write!(m, "{} (", ts.pid);
    m.puts(task.comm());
    let _ = writeln!(
        m,
        ") {} {} {pgrp} {session} 0 -1 {} 0 0 0 0 0 0 0 0 20 0 1 0 {start_time} 0 0 {rsslim} \
         0 0 0 0 0 0 0 0 0 0 0 0 {exit_signal} 0 0 0 0 0 0 0 0 0 0 0 0 0 {}",
        task_state(task).0,
        ts.ppid,
        ts.flags,
        ts.exit_code
    );
    0
}

/// `/proc/<pid>/status`: the first lines of `proc_pid_status`.
#[inline(never)]
pub(super) unsafe extern "C" fn proc_pid_status(m: *mut SeqFile, v: *mut c_void) -> i32 {
    let task = match pid_task(v) {
        Ok(task) => task,
        Err(errno) => return -errno,
    };
    // SAFETY: as above.
    let (m, task) = unsafe { (&mut *m, &*task) };
    let ts = &task.ts;
    let (letter, name) = task_state(task);
    m.puts(b"Name:\t");
    m.puts(task.comm());
    let _ = write!(
        m,
        "\nUmask:\t0022\nState:\t{letter} ({name})\nTgid:\t{}\nNgid:\t0\nPid:\t{}\nPPid:\t{}\n\
         TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nThreads:\t1\n",
        ts.tgid, ts.pid, ts.ppid
    );
    0
}
