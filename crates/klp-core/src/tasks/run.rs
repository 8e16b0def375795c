//! Running tasks: the scheduler loop, calls made on behalf of a task, and the shell's sleep.

use super::{
    Frames, HostTimer, KernelAddrs, Kind, NS_PER_JIFFY, NS_PER_UNIT, Pid, SLICE, SWITCH_NS, Task,
    Tasks,
};
use crate::engine::{Callee, Engine, EngineError, TaskStop};
use crate::errno::Errno;
use crate::instrument::ValType;
use crate::sys::{SysError, SysResult};
use core::time::Duration;
use klp_abi::pt_regs as pt;
use klp_abi::task::{TASK_DEAD, TASK_INTERRUPTIBLE, TASK_RUNNING, THREAD_SIZE, TIF_SIGPENDING};
use klp_abi::task_struct as ts;

/// Learns the kernel's task addresses once it has booted. A kernel without tasks has none.
pub(crate) fn init(e: &mut impl Engine) -> SysResult<()> {
    if !e.has_tasks() {
        return Ok(());
    }
    let current = crate::sys::call(e, "klp_current_task_ptr", &[])? as u32;
    let init_task = crate::sys::call(e, "klp_init_task", &[])? as u32;
    let target_state = crate::sys::call(e, "klp_target_state_ptr", &[])? as u32;
    e.with_state(|s| {
        s.ftrace.set_current(current, ts::PATCH_STATE);
        s.tasks.addrs = Some(KernelAddrs {
            current,
            init_task,
            target_state,
        });
    });
    Ok(())
}

/// Writes the `current_task` word.
fn set_current(e: &mut impl Engine, task: u32) -> Result<(), EngineError> {
    match e.with_state(|s| s.tasks.addrs) {
        Some(a) => e.write(a.current, &task.to_le_bytes()),
        None => Ok(()),
    }
}

/// Calls a kernel function for the running command: inside the command's task when the kernel
/// has tasks and this is no host call (the call may then sleep, and other tasks run meanwhile),
/// directly otherwise. Returns what the function returned.
///
/// # Errors
/// A trap in the call, or `EINTR` when the call waits for something that can never happen
/// (nothing left to run, no timer pending).
pub fn call(e: &mut impl Engine, name: &str, args: &[i32]) -> SysResult<Option<i32>> {
    let target = e.with_state(|s| export_slot(s, name, args.len()));
    call_as_command(e, Callee::Export(name), target, args)
}

/// Calls the function a function pointer (table slot) leads to, as [`call`] calls an export:
/// a livepatch callback runs so, in the task of the operation that calls it.
///
/// # Errors
/// As [`call`]; `EINVAL` when `slot` is not a function taking `args.len()` `i32`s and
/// returning one `i32` or nothing.
pub fn call_slot(e: &mut impl Engine, slot: u32, args: &[i32]) -> SysResult<Option<i32>> {
    let Some(target) = e.with_state(|s| slot_target(s, slot, args.len())) else {
        return Err(Errno::EINVAL.into());
    };
    call_as_command(e, Callee::Slot(slot), Some(target), args)
}

/// [`call`] of `callee`, whose slot and whether it returns a value are `target` (`None`: it
/// cannot run in a task, and is called directly).
fn call_as_command(
    e: &mut impl Engine,
    callee: Callee<'_>,
    target: Option<(u32, bool)>,
    args: &[i32],
) -> SysResult<Option<i32>> {
    let nested = e.in_host_call();
    let command = e.with_state(|s| {
        let t = &s.tasks;
        let task = t.command.and_then(|pid| t.tasks.get(&pid));
        // A process makes one syscall at a time: while its task is inside one, or while the
        // scheduler runs (the command waits in a call or a sleep), a call is the kernel's own
        // work (reaping a thread, reporting an oops), run as the idle task.
        let busy = t.scheduling || task.is_some_and(|t| t.frames != Frames::None);
        task.filter(|_| !busy).map(|t| (t.pid, t.addr, t.dead))
    });
    let pid = match (command, nested) {
        (_, true) => return Ok(e.call(callee, args)?),
        (Some((pid, _, false)), false) => pid,
        // No command, one busy in a syscall, or one an oops killed (its exit path): directly,
        // as the dead task or as the idle task.
        (other, false) => {
            let current = match other {
                Some((_, addr, _)) => Some(addr),
                None => e.with_state(|s| s.tasks.addrs.map(|a| a.init_task)),
            };
            if let Some(current) = current {
                set_current(e, current)?;
            }
            e.with_state(|s| s.tasks.now_ns += SWITCH_NS);
            return Ok(e.call(callee, args)?);
        }
    };
    let Some((func, returns)) = target else {
        return Ok(e.call(callee, args)?);
    };
    let addr = e.with_state(|s| s.tasks.tasks.get(&pid).map(|t| t.addr));
    let Some(addr) = addr else {
        return Err(Errno::ESRCH.into());
    };
    let regs = addr + ts::REGS;
    e.write_u32(regs + pt::FUNC, func)?;
    e.write_u32(regs + pt::NARGS, args.len() as u32)?;
    e.write_u32(regs + pt::HAS_RET, u32::from(returns))?;
    for (i, &a) in args.iter().enumerate() {
        e.write_u32(regs + pt::ARGS + 4 * i as u32, a as u32)?;
    }
    e.with_state(|s| {
        if let Some(t) = s.tasks.tasks.get_mut(&pid) {
            t.runnable = true;
        }
    });
    let finished = run_loop(
        e,
        &|t: &Tasks| {
            t.tasks
                .get(&pid)
                .is_none_or(|t| t.frames == Frames::None && !t.runnable)
        },
        None,
        Some(pid),
    );
    match finished {
        Ok(()) => {}
        Err(Loop::Sys(err)) => return Err(err),
        Err(Loop::Hung) => {
            hung(e, pid)?;
            return Err(Errno::EINTR.into());
        }
    }
    if e.with_state(|s| std::mem::take(&mut s.tasks.sigint)) {
        // Killed by SIGINT on its way back to user mode.
        return Err(interrupted().into());
    }
    let ret = e.read_u32(regs + pt::RET)? as i32;
    Ok(returns.then_some(ret))
}

/// The error of a command the user interrupted, as the engine reports one it stopped itself.
fn interrupted() -> EngineError {
    EngineError::Trap(crate::engine::GuestTrap {
        message: "interrupted".into(),
        frames: Vec::new(),
        stop: Some(crate::engine::Stop::Interrupted),
    })
}

/// The command's task has slept for 120 s of kernel time without waking, or waits for what can
/// never happen (nothing can run, no timer is pending): named as Linux's hung task detector
/// names it, and killed.
/// Its frames stay where they are, never resumed (it may be on a wait queue: its
/// `task_struct` and stack are never freed, a zombie).
fn hung(e: &mut impl Engine, pid: Pid) -> SysResult<()> {
    let task = e.with_state(|s| {
        let now = s.tasks.now_ns;
        let t = s.tasks.tasks.get_mut(&pid)?;
        // Nothing could ever wake it: it is named when the detector would have named it.
        let named_at = t.ran_at.saturating_add(HUNG_TASK_TIMEOUT_NS).max(now);
        t.dead = true;
        t.zombie = true;
        t.frames = Frames::None;
        t.runnable = false;
        let named = (t.comm.clone(), t.addr, t.stack.clone().unwrap_or_default());
        s.tasks.now_ns = named_at;
        Some(named)
    });
    let Some((comm, addr, stack)) = task else {
        return Ok(());
    };
    e.write_u32(addr + ts::STATE, TASK_DEAD as u32)?;
    let mut report = format!(
        "INFO: task {comm}:{} blocked for more than 120 seconds.\nCall Trace:\n <TASK>\n",
        pid.get()
    );
    for raw in stack
        .iter()
        .flatten()
        .filter(|raw| !super::is_machinery(raw))
    {
        let name = crate::kallsyms::symbol_name(raw).unwrap_or_else(|| raw.clone());
        report.push_str(&format!(" {name}\n"));
    }
    report.push_str(" </TASK>");
    for line in report.lines() {
        crate::sys::printk(e, &format!("\x013{line}"))?;
    }
    Ok(())
}

/// The table slot of a kernel export taking `nargs` `i32`s and returning one `i32` or nothing,
/// and whether it returns; `None` for anything a task cannot call that way.
fn export_slot(s: &crate::state::KernelState, name: &str, nargs: usize) -> Option<(u32, bool)> {
    let sym = s.kallsyms.lookup_global(name)?;
    if sym.module.is_some() {
        return None;
    }
    slot_target(s, sym.addr, nargs)
}

/// The slot `slot` and whether its function returns a value, when it is a function taking
/// `nargs` (at most 6) `i32`s and returning one `i32` or nothing.
fn slot_target(s: &crate::state::KernelState, slot: u32, nargs: usize) -> Option<(u32, bool)> {
    if nargs > 6 {
        return None;
    }
    let info = s.ftrace.info(crate::ftrace::Slot::new(slot))?;
    let ints = |v: &[ValType]| v.iter().all(|t| *t == ValType::I32);
    (info.sig.params.len() == nargs
        && ints(&info.sig.params)
        && info.sig.results.len() <= 1
        && ints(&info.sig.results))
    .then_some((slot, !info.sig.results.is_empty()))
}

/// Runs `f` as the shell command `comm`: a process of its own (`task_fork`), whose calls run in
/// its task, ended (`task_exit`) when `f` returns. Without tasks, `f` just runs.
///
/// # Errors
/// `f`'s error; a failed fork is `EAGAIN`.
pub fn with_command<E: Engine, T>(
    e: &mut E,
    comm: &str,
    f: impl FnOnce(&mut E) -> SysResult<T>,
) -> SysResult<T> {
    if e.with_state(|s| s.tasks.addrs.is_none() || s.tasks.command.is_some()) || e.in_host_call() {
        return f(e);
    }
    let name = comm.as_bytes();
    let buf = e.with_state(|s| s.user_buffer);
    e.write(buf, name)?;
    let task = crate::sys::call(e, "task_fork", &[buf as i32, name.len() as i32])?;
    let pid = e.with_state(|s| s.tasks.by_addr(task as u32));
    let Some(pid) = pid else {
        return Err(Errno::EAGAIN.into());
    };
    e.with_state(|s| s.tasks.command = Some(pid));
    crate::tracing::ring::note_current(e)?;
    let result = f(e);
    let zombie = e.with_state(|s| {
        s.tasks.command = None;
        s.tasks.tasks.remove(&pid).is_some_and(|t| t.zombie)
    });
    crate::tracing::ring::note_current(e)?;
    if zombie {
        return result;
    }
    let code = i32::from(result.is_err());
    let exited = crate::sys::call(e, "task_exit", &[task, code]);
    result.and_then(|v| exited.map(|_| v))
}

/// Lets the kernel run for `d` of virtual time (the shell's `sleep`): tasks run, timers fire.
///
/// # Errors
/// An interrupt (Ctrl-C) ends the sleep early, as the engine's interrupted-call error; a
/// task's trap is reported in the log, not here.
pub fn run_for(e: &mut impl Engine, d: Duration) -> SysResult<()> {
    let until = e.with_state(|s| {
        let t = &s.tasks;
        t.now_ns
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    });
    let result = match run_loop(
        e,
        &|t: &Tasks| t.now_ns >= until || t.sigint,
        Some(until),
        None,
    ) {
        Ok(()) | Err(Loop::Hung) => Ok(()),
        Err(Loop::Sys(err)) => Err(err),
    };
    if e.with_state(|s| std::mem::take(&mut s.tasks.sigint)) {
        return Err(interrupted().into());
    }
    result
}

/// Hands the user's interrupt to the command: its task gets SIGINT (`TIF_SIGPENDING`, and an
/// interruptible sleep ends), and it dies when it returns to user mode.
fn deliver_interrupt(e: &mut impl Engine) -> Result<(), EngineError> {
    let task = e.with_state(|s| {
        s.tasks.sigint = true;
        let t = &s.tasks;
        t.command
            .and_then(|pid| t.tasks.get(&pid))
            .map(|t| (t.pid, t.addr))
    });
    let Some((pid, addr)) = task else {
        return Ok(());
    };
    let flags = e.read_u32(addr + ts::TI_FLAGS)?;
    e.write_u32(addr + ts::TI_FLAGS, flags | TIF_SIGPENDING)?;
    if e.read_u32(addr + ts::STATE)? as i32 == TASK_INTERRUPTIBLE {
        e.write_u32(addr + ts::STATE, TASK_RUNNING as u32)?;
        e.with_state(|s| s.tasks.make_runnable(pid));
    }
    Ok(())
}

enum Loop {
    Hung,
    Sys(SysError),
}

impl From<SysError> for Loop {
    fn from(e: SysError) -> Self {
        Loop::Sys(e)
    }
}

impl From<EngineError> for Loop {
    fn from(e: EngineError) -> Self {
        Loop::Sys(e.into())
    }
}

/// How long a task may sleep uninterrupted in a call its command waits for before it is a hung
/// task (`hung_task_timeout_secs`, 120 s of kernel time).
const HUNG_TASK_TIMEOUT_NS: u64 = 120_000_000_000;

/// The scheduler loop: fire what is due, pick a runnable task, run it one slice; when nothing
/// can run, jump the clock to the next timer (no later than `limit`). `waiter` is the command's
/// task whose call the loop runs for: when it has slept for [`HUNG_TASK_TIMEOUT_NS`], or
/// nothing can ever wake it, it is hung.
fn run_loop(
    e: &mut impl Engine,
    done: &dyn Fn(&Tasks) -> bool,
    limit: Option<u64>,
    waiter: Option<Pid>,
) -> Result<(), Loop> {
    let was = e.with_state(|s| std::mem::replace(&mut s.tasks.scheduling, true));
    let result = schedule_until(e, done, limit, waiter);
    e.with_state(|s| s.tasks.scheduling = was);
    result
}

/// [`run_loop`]'s loop.
fn schedule_until(
    e: &mut impl Engine,
    done: &dyn Fn(&Tasks) -> bool,
    limit: Option<u64>,
    waiter: Option<Pid>,
) -> Result<(), Loop> {
    loop {
        if e.take_interrupt() {
            deliver_interrupt(e)?;
        }
        if e.with_state(|s| done(&s.tasks)) {
            return Ok(());
        }
        let hung = e.with_state(|s| {
            let t = &s.tasks;
            let task = waiter.and_then(|pid| t.tasks.get(&pid));
            task.is_some_and(|w| {
                matches!(w.frames, Frames::Suspended(_))
                    && !w.runnable
                    && t.now_ns.saturating_sub(w.ran_at) >= HUNG_TASK_TIMEOUT_NS
            })
        });
        if hung {
            return Err(Loop::Hung);
        }
        fire_timers(e)?;
        crate::ftrace::code::poll(e)?;
        if e.with_state(|s| done(&s.tasks)) {
            return Ok(());
        }
        let next = e.with_state(|s| {
            let t = &mut s.tasks;
            if let Some(pid) = t.pinned.take().filter(|p| t.tasks.contains_key(p)) {
                return Some(pid);
            }
            let runnable: Vec<Pid> = t
                .tasks
                .values()
                .filter(|t| t.runnable)
                .map(|t| t.pid)
                .collect();
            (!runnable.is_empty()).then(|| runnable[t.rng.usize(..runnable.len())])
        });
        match next {
            Some(pid) => run_slice(e, pid)?,
            None => {
                let wake = e.with_state(|s| {
                    let t = &s.tasks;
                    let kernel = t.next_timer.map(|j| j.saturating_mul(NS_PER_JIFFY));
                    let host = t.host_timers.values().min().copied();
                    [kernel, host, limit].into_iter().flatten().min()
                });
                match wake {
                    Some(at) => e.with_state(|s| s.tasks.now_ns = s.tasks.now_ns.max(at)),
                    None => return Err(Loop::Hung),
                }
            }
        }
    }
}

/// Runs the kernel's expired timers and the host's due timers.
fn fire_timers(e: &mut impl Engine) -> Result<(), Loop> {
    let (kernel_due, host_due) = e.with_state(|s| {
        let t = &mut s.tasks;
        let now = t.now_ns;
        let kernel = t
            .next_timer
            .is_some_and(|j| j.saturating_mul(NS_PER_JIFFY) <= now);
        let host: Vec<HostTimer> = t
            .host_timers
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(&h, _)| h)
            .collect();
        for h in &host {
            t.host_timers.remove(h);
        }
        (kernel, host)
    });
    if kernel_due {
        let init = e.with_state(|s| s.tasks.addrs.map(|a| a.init_task));
        if let Some(init) = init {
            set_current(e, init)?;
        }
        e.with_state(|s| s.tasks.next_timer = None);
        e.call(Callee::Export("run_timers"), &[])?;
    }
    for timer in host_due {
        match timer {
            HostTimer::TransitionWork => crate::livepatch::transition_work(e)?,
        }
    }
    Ok(())
}

/// Runs task `pid` for one slice.
fn run_slice(e: &mut impl Engine, pid: Pid) -> Result<(), Loop> {
    let Some(task) = e.with_state(|s| s.tasks.tasks.get(&pid).cloned()) else {
        return Ok(());
    };
    let sp = match task.frames {
        Frames::Suspended(sp) => sp,
        _ => {
            let stack = e.read_u32(task.addr + ts::STACK)?;
            let entry = e.read_u32(task.addr + ts::ENTRY)?;
            e.task_spawn(task.slot, entry, task.addr as i32)?;
            e.with_state(|s| s.code.as_mut().map(|c| c.spawned(task.pid)));
            stack + THREAD_SIZE
        }
    };
    set_current(e, task.addr)?;
    e.with_state(|s| {
        let t = &mut s.tasks;
        t.running = Some(pid);
        if let Some(task) = t.tasks.get_mut(&pid) {
            task.frames = Frames::Running;
            task.ran_at = t.now_ns;
        }
    });
    crate::tracing::ring::note_current(e)?;
    let resumed = e.task_resume(task.slot, sp, SLICE);
    e.with_state(|s| s.tasks.running = None);
    crate::tracing::ring::note_current(e)?;
    let resumed = match resumed {
        Ok(r) => r,
        Err(err) => return task_died(e, &task, err),
    };
    // A worker that went idle may have been woken again before it finished (its state reads
    // running again): it runs again.
    let rerun = resumed.stop == TaskStop::Finished
        && task.kind == Kind::Worker
        && e.read_u32(task.addr + ts::STATE)? as i32 == TASK_RUNNING;
    e.with_state(|s| {
        let t = &mut s.tasks;
        t.now_ns += u64::from(resumed.used) * NS_PER_UNIT + SWITCH_NS;
        let Some(me) = t.tasks.get_mut(&pid) else {
            return;
        };
        match resumed.stop {
            TaskStop::Finished => {
                if let Some(c) = s.code.as_mut() {
                    c.left(pid);
                }
                me.frames = Frames::None;
                me.runnable = rerun;
                me.stack = Some(Vec::new());
            }
            TaskStop::Yielded(sp) => me.frames = Frames::Suspended(sp),
            TaskStop::Preempted(sp) => {
                me.frames = Frames::Suspended(sp);
                me.stack = None;
            }
        }
    });
    if let TaskStop::Preempted(_) = resumed.stop
        && e.read_u32(task.addr + ts::PREEMPT_COUNT)? != 0
    {
        e.with_state(|s| s.tasks.pinned = Some(pid));
    }
    if resumed.stop == TaskStop::Finished && task.kind == Kind::Kthread {
        // It exited: the host drops the reference the task held on itself.
        e.with_state(|s| s.tasks.tasks.remove(&pid));
        crate::sys::call(e, "put_task_struct", &[task.addr as i32])?;
    }
    Ok(())
}

/// A task trapped: it is dead. A command's trap goes back to the command (which reports the
/// oops); another task's is reported here.
fn task_died(e: &mut impl Engine, task: &Task, err: EngineError) -> Result<(), Loop> {
    let command = e.with_state(|s| {
        let t = &mut s.tasks;
        if let Some(c) = s.code.as_mut() {
            c.left(task.pid);
        }
        if let Some(dead) = t.tasks.get_mut(&task.pid) {
            dead.dead = true;
            dead.frames = Frames::None;
            dead.runnable = false;
        }
        t.command
    });
    let EngineError::Trap(trap) = err else {
        return Err(err.into());
    };
    if command == Some(task.pid) {
        // The command reports it and ends its process.
        return Err(Loop::Sys(EngineError::Trap(trap).into()));
    }
    // A kernel thread: dead where it stood (its task_struct stays, as a zombie nobody reaps).
    e.with_state(|s| s.tasks.tasks.remove(&task.pid));
    e.write_u32(task.addr + ts::STATE, TASK_DEAD as u32)?;
    crate::kernel::report_dead_task(e, &task.comm, task.pid.get(), &trap);
    Ok(())
}
