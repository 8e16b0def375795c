//! The kernel's scheduler host calls: Schedule, Wake, TaskNew, TimerNext.

use super::{Frames, Kind, NS_PER_JIFFY, Pid, Task};
use crate::engine::{Callee, Engine};
use crate::errno::Errno;
use crate::sys::SysResult;
use klp_abi::task::{PF_KTHREAD, PF_WQ_WORKER, TASK_RUNNING};
use klp_abi::task_struct as ts;

/// `Schedule`: the current task is about to give up the CPU. Returns 0 when it must now yield
/// (its stack is recorded when it sleeps, or during a transition: a backtrace at this known
/// point is its reliable stack), 1 when it
/// cannot sleep here (no task runs, or kernel code a host call re-entered): time then jumps
/// to the next timer and the expired timers run, so that a sleep still ends.
///
/// # Errors
/// A trap in the timers.
pub fn schedule(e: &mut impl Engine) -> SysResult<i32> {
    if !e.has_tasks() {
        // No task can sleep on this engine: the kernel runs its timers itself.
        return Err(Errno::ENOSYS.into());
    }
    let (running, depth) = e.with_state(|s| (s.tasks.running, s.tasks.host_depth));
    let Some(pid) = running.filter(|_| depth == 1) else {
        let next = e.with_state(|s| s.tasks.next_timer);
        if let Some(j) = next {
            e.with_state(|s| {
                s.tasks.now_ns = s.tasks.now_ns.max(j.saturating_mul(NS_PER_JIFFY));
                s.tasks.next_timer = None;
            });
            e.call(Callee::Export("run_timers"), &[])?;
        }
        return Ok(1);
    };
    let addr = e.with_state(|s| s.tasks.tasks.get(&pid).map(|t| t.addr));
    let Some(addr) = addr else {
        return Ok(1);
    };
    let state = e.read_u32(addr + ts::STATE)? as i32;
    // The frames below the host call: the kernel's schedule() and whoever called it. A task
    // that stays runnable (cond_resched) runs again soon: only a transition checks its stack
    // meanwhile, so it is recorded only during one (a backtrace costs more than the switch);
    // otherwise the task has no reliable stack until it sleeps or runs again.
    let in_transition = e.with_state(|s| s.livepatch.transition().is_some());
    let stack = (state != TASK_RUNNING || in_transition).then(|| e.backtrace());
    e.with_state(|s| {
        if let Some(t) = s.tasks.tasks.get_mut(&pid) {
            t.runnable = state == TASK_RUNNING;
            t.stack = stack;
        }
    });
    if state == TASK_RUNNING {
        // cond_resched(): a switch point of its own during a transition.
        crate::livepatch::sched_try_switch(e, pid)?;
    }
    Ok(0)
}

/// `Wake`: the kernel set the task at `addr` running again (it may be queued already: a
/// preempted task).
pub fn wake(e: &mut impl Engine, addr: u32) -> SysResult<i32> {
    if !e.has_tasks() {
        return Err(Errno::ENOSYS.into());
    }
    e.with_state(|s| {
        let pid = s.tasks.by_addr(addr);
        match pid.and_then(|pid| s.tasks.tasks.get_mut(&pid)) {
            Some(t) => {
                t.runnable = true;
                Ok(0)
            }
            None => Err(Errno::ESRCH.into()),
        }
    })
}

/// `TaskNew`: the kernel made a task at `addr`; kernel threads are runnable at once, a process
/// runs when it makes a call.
///
/// # Errors
/// A fault reading the task.
pub fn task_new(e: &mut impl Engine, addr: u32) -> SysResult<i32> {
    if !e.has_tasks() {
        // The kernel keeps no task it would need the host to run (no kworker: work runs when
        // queued).
        return Err(Errno::ENOSYS.into());
    }
    let pid = e.read_u32(addr + ts::PID)? as i32;
    let slot = e.read_u32(addr + ts::SLOT)? as i32;
    let flags = (e.read_u32(addr + ts::FLAGS)? as i32) as u32;
    let state = e.read_u32(addr + ts::STATE)? as i32;
    let mut comm = [0; 16];
    e.read(addr + ts::COMM, &mut comm)?;
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let comm = String::from_utf8_lossy(&comm[..end]).into_owned();
    let kind = if flags & PF_WQ_WORKER != 0 {
        Kind::Worker
    } else if flags & PF_KTHREAD != 0 {
        Kind::Kthread
    } else {
        Kind::User
    };
    let Ok(slot) = u32::try_from(slot) else {
        return Err(Errno::EINVAL.into());
    };
    e.with_state(|s| {
        let task = Task {
            pid: Pid(pid),
            addr,
            slot,
            kind,
            comm,
            frames: Frames::None,
            runnable: kind != Kind::User && state == TASK_RUNNING,
            stack: Some(Vec::new()),
            ran_at: 0,
            dead: false,
            zombie: false,
        };
        s.tasks.tasks.insert(Pid(pid), task);
    });
    Ok(0)
}

/// `TimerNext`: the kernel's earliest timer now expires at jiffy `at` (`u64::MAX`: none).
pub fn timer_next(e: &mut impl Engine, at: u64) -> SysResult<i32> {
    if !e.has_tasks() {
        return Err(Errno::ENOSYS.into());
    }
    e.with_state(|s| s.tasks.next_timer = (at != u64::MAX).then_some(at));
    Ok(0)
}
