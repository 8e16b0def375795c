//! Switching tasks (kernel/livepatch/transition.c): each task's `patch_state`, the stack check,
//! the retry work, signals and force.

use super::plan::{Draft, commit};
use super::transition::{self, Target};
use super::{Livepatch, PatchId};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::func_name;
use crate::kallsyms;
use crate::state::KernelState;
use crate::sys::{self, SysResult};
use crate::tasks::{HostTimer, Kind, Pid};
use klp_abi::task::{
    KLP_TRANSITION_IDLE, PF_KTHREAD, TASK_INTERRUPTIBLE, TASK_RUNNING, TIF_PATCH_PENDING,
    TIF_SIGPENDING,
};
use klp_abi::task_struct as ts;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// After this many tries (one a second) the remaining tasks are signaled (`SIGNALS_TIMEOUT`).
const SIGNALS_TIMEOUT: u32 = 15;
/// How long the transition work waits between tries: one second (`round_jiffies_relative(HZ)`).
const RETRY_NS: u64 = 1_000_000_000;

/// Every task the transition switches: the tasks' `task_struct` addresses, the idle task last.
fn all_tasks(e: &mut impl Engine) -> Vec<u32> {
    e.with_state(|s| {
        let t = &s.tasks;
        t.iter().map(|t| t.addr()).chain(t.init_task()).collect()
    })
}

fn set_target_state(e: &mut impl Engine, state: i32) -> SysResult<()> {
    match e.with_state(|s| s.tasks.target_state_addr()) {
        Some(addr) => Ok(e.write_u32(addr, state as u32)?),
        None => Ok(()),
    }
}

/// Sets or clears a `thread_info` flag of the task at `addr`.
fn set_flag(e: &mut impl Engine, addr: u32, flag: u32, on: bool) -> SysResult<()> {
    let flags = e.read_u32(addr + ts::TI_FLAGS)?;
    let new = if on { flags | flag } else { flags & !flag };
    Ok(e.write_u32(addr + ts::TI_FLAGS, new)?)
}

/// `klp_init_transition`'s task half: every task starts from the state the patch leaves
/// (`!state`), and `klp_target_state` says where they go. Done before the plan that makes the
/// functions' dispatchers visible.
pub(super) fn init_tasks(e: &mut impl Engine, target: Target) -> SysResult<()> {
    let initial = target.reversed().state();
    for addr in all_tasks(e) {
        e.write_u32(addr + ts::PATCH_STATE, initial as u32)?;
    }
    set_target_state(e, target.state())
}

/// `klp_start_transition`'s task half: every task not yet in the target state gets
/// TIF_PATCH_PENDING; it switches when checked, or at its next exit to user mode.
pub(super) fn start_tasks(e: &mut impl Engine, target: Target) -> SysResult<()> {
    set_target_state(e, target.state())?;
    for addr in all_tasks(e) {
        let state = e.read_u32(addr + ts::PATCH_STATE)? as i32;
        set_flag(e, addr, TIF_PATCH_PENDING, state != target.state())?;
    }
    Ok(())
}

/// The end of a transition: every task idle again (`KLP_TRANSITION_IDLE`), no flag pending.
pub(super) fn idle_tasks(e: &mut impl Engine) -> SysResult<()> {
    for addr in all_tasks(e) {
        set_flag(e, addr, TIF_PATCH_PENDING, false)?;
        e.write_u32(addr + ts::PATCH_STATE, KLP_TRANSITION_IDLE as u32)?;
    }
    set_target_state(e, KLP_TRANSITION_IDLE)
}

/// The functions no task may be inside when it switches (`klp_check_stack_func`): for patching,
/// what its calls reach now (the entry below on the func_stack, or the original); for
/// unpatching, the patch's own replacements. By name, as the stacks record frames.
fn check_set(s: &KernelState, lp: &Livepatch, id: PatchId, target: Target) -> BTreeSet<String> {
    let Some(p) = lp.get(id) else {
        return BTreeSet::new();
    };
    let mut names = BTreeSet::new();
    for func in p.objs.iter().flat_map(|o| &o.funcs) {
        let Some(old) = func.old_func else {
            continue;
        };
        let slot = match target {
            Target::Unpatched => func.new_func,
            Target::Patched => {
                let stack = lp.func_stacks().get(old).unwrap_or(&[]);
                let mine = stack.iter().position(|en| en.patch() == id);
                match mine.and_then(|i| i.checked_sub(1)).map(|i| &stack[i]) {
                    Some(below) => below.new_func(),
                    None => old,
                }
            }
        };
        names.insert(func_name(s, slot));
    }
    names
}

/// The functions task `pid` may not be inside when it switches: `check`, and, for a task
/// running a code that calls some functions directly (dynamic ftrace), every function that
/// may reach one of them past its slot.
fn check_for<'a>(
    s: &KernelState,
    pid: Pid,
    check: &'a BTreeSet<String>,
) -> Cow<'a, BTreeSet<String>> {
    match s.code.as_ref().and_then(|c| Some((c, c.home(pid)?))) {
        Some((code, variant)) => Cow::Owned(code.reaching(variant, check)),
        None => Cow::Borrowed(check),
    }
}

/// Why a task could not switch (`klp_try_switch_task`'s cases).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Blocked {
    /// It is running now.
    Running,
    /// Its stack is not known (preempted, not at a known point).
    Unreliable,
    /// It sleeps inside a function being changed.
    SleepingOn(String),
}

/// Why the task `pid` cannot switch now, if it cannot: `klp_check_and_switch_task`. `own` is
/// the stack of the task running now, when it is the one that called into the host (it may
/// check itself: its own stack is known); any other running task is busy.
fn blocked(
    s: &KernelState,
    pid: Pid,
    check: &BTreeSet<String>,
    own: Option<&[Option<String>]>,
) -> Option<Blocked> {
    let t = &s.tasks;
    let stack = if t.running() == Some(pid) {
        own.ok_or(Blocked::Running)
    } else {
        t.get(pid)?.stack().ok_or(Blocked::Unreliable)
    };
    let stack = match stack {
        Ok(stack) => stack,
        Err(why) => return Some(why),
    };
    let check = check_for(s, pid, check);
    stack.iter().flatten().find_map(|raw| {
        let name = kallsyms::symbol_name(raw).unwrap_or_else(|| raw.clone());
        check.contains(&name).then_some(Blocked::SleepingOn(name))
    })
}

/// `__klp_sched_try_switch` (Linux's `klp_cond_resched`): a task at `cond_resched()` with
/// TIF_PATCH_PENDING whose stack holds none of the functions being changed switches there and
/// then, so that a kernel thread that loops never sleeping in one place still switches.
///
/// # Errors
/// A fault reading or writing the task.
pub fn sched_try_switch(e: &mut impl Engine, pid: Pid) -> SysResult<()> {
    let found = e.with_state(|s| {
        let (id, target) = s.livepatch.transition()?;
        let addr = s.tasks.get(pid)?.addr();
        let check = check_set(s, &s.livepatch, id, target);
        let check = check_for(s, pid, &check);
        let stack = s.tasks.get(pid)?.recorded_stack()?;
        let inside = stack.iter().flatten().any(|raw| {
            let name = kallsyms::symbol_name(raw).unwrap_or_else(|| raw.clone());
            check.contains(&name)
        });
        (!inside).then_some((addr, target))
    });
    let Some((addr, target)) = found else {
        return Ok(());
    };
    if e.read_u32(addr + ts::TI_FLAGS)? & TIF_PATCH_PENDING == 0 {
        return Ok(());
    }
    set_flag(e, addr, TIF_PATCH_PENDING, false)?;
    Ok(e.write_u32(addr + ts::PATCH_STATE, target.state() as u32)?)
}

/// `klp_try_switch_task` for every task and the idle task; whether all are in the target state.
fn switch_tasks(e: &mut impl Engine, id: PatchId, target: Target) -> SysResult<bool> {
    let (tasks, check) = e.with_state(|s| {
        let check = check_set(s, &s.livepatch, id, target);
        let tasks: Vec<(Option<Pid>, u32)> = s
            .tasks
            .iter()
            .map(|t| (Some(t.pid()), t.addr()))
            .chain(s.tasks.init_task().map(|a| (None, a)))
            .collect();
        (tasks, check)
    });
    // The task that called into the host (enabling from a module's init) checks its own stack.
    let own = e
        .with_state(|s| s.tasks.running().is_some() && s.tasks.host_depth > 0)
        .then(|| e.backtrace());
    let mut complete = true;
    for (pid, addr) in tasks {
        if e.read_u32(addr + ts::PATCH_STATE)? as i32 == target.state() {
            continue;
        }
        let stuck = pid.and_then(|pid| e.with_state(|s| blocked(s, pid, &check, own.as_deref())));
        if stuck.is_some() {
            complete = false;
            continue;
        }
        set_flag(e, addr, TIF_PATCH_PENDING, false)?;
        e.write_u32(addr + ts::PATCH_STATE, target.state() as u32)?;
    }
    Ok(complete)
}

/// `klp_try_complete_transition`: switches every task it can; when all are switched the
/// transition completes, otherwise it is tried again in a second (and every 15th try signals
/// the tasks still behind).
///
/// # Errors
/// A fault or trap on the way.
pub(super) fn try_complete(e: &mut impl Engine) -> SysResult<()> {
    let Some((id, target)) = e.with_state(|s| s.livepatch.transition()) else {
        return Ok(());
    };
    if !switch_tasks(e, id, target)? {
        let tries = e.with_state(|s| {
            let t = s.livepatch.transition.as_mut().map_or(0, |t| {
                t.tries += 1;
                t.tries - 1
            });
            let at = s.tasks.now_ns() + RETRY_NS;
            s.tasks.arm(HostTimer::TransitionWork, at);
            t
        });
        if tries > 0 && tries % SIGNALS_TIMEOUT == 0 {
            send_signals(e, tries)?;
        }
        return Ok(());
    }
    e.with_state(|s| s.tasks.disarm(HostTimer::TransitionWork));
    let plan = e.with_state(|s| {
        let loaded = |o: &_| super::core::object_loaded(s, o);
        transition::complete(Draft::new(s.livepatch.clone()), loaded).finish()
    });
    commit(e, plan)?;
    idle_tasks(e)
}

/// `klp_transition_work`: the retry, a second after the last.
///
/// # Errors
/// A fault or trap.
pub fn transition_work(e: &mut impl Engine) -> SysResult<()> {
    try_complete(e)
}

/// `klp_send_signals`: kernel threads still behind are woken from an interruptible sleep; other
/// tasks get a fake signal (an interruptible sleep ends early). `tries` is `klp_signals_cnt`:
/// as in Linux, only the first signaling of a transition (after 15 tries) is logged.
fn send_signals(e: &mut impl Engine, tries: u32) -> SysResult<()> {
    if tries == SIGNALS_TIMEOUT {
        sys::printk(e, "\x015livepatch: signaling remaining tasks")?;
    }
    let tasks: Vec<(Pid, u32, Kind)> = e.with_state(|s| {
        s.tasks
            .iter()
            .map(|t| (t.pid(), t.addr(), t.kind()))
            .collect()
    });
    for (pid, addr, _) in tasks {
        if e.read_u32(addr + ts::TI_FLAGS)? & TIF_PATCH_PENDING == 0 {
            continue;
        }
        let flags = e.read_u32(addr + ts::FLAGS)?;
        if flags & PF_KTHREAD == 0 {
            set_flag(e, addr, TIF_SIGPENDING, true)?;
        }
        if e.read_u32(addr + ts::STATE)? as i32 == TASK_INTERRUPTIBLE {
            e.write_u32(addr + ts::STATE, TASK_RUNNING as u32)?;
            e.with_state(|s| s.tasks.make_runnable(pid));
        }
    }
    Ok(())
}

/// `echo 1 > force`: `klp_force_transition`: every task still behind is switched as it is,
/// and the patches whose code may still run can never be freed (their modules stay). The
/// transition work completes the transition at its next run.
///
/// # Errors
/// `EINVAL` when `name` is not the patch in transition.
pub fn force(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let Some((id, target)) = e.with_state(|s| {
        let (id, target) = s.livepatch.transition()?;
        (s.livepatch.get(id)?.name == name).then_some((id, target))
    }) else {
        return Err(Errno::EINVAL.into());
    };
    sys::printk(
        e,
        "\x014livepatch: forcing remaining tasks to the patched state",
    )?;
    for addr in all_tasks(e) {
        if e.read_u32(addr + ts::TI_FLAGS)? & TIF_PATCH_PENDING != 0 {
            set_flag(e, addr, TIF_PATCH_PENDING, false)?;
            e.write_u32(addr + ts::PATCH_STATE, target.state() as u32)?;
        }
    }
    e.with_state(|s| {
        let lp = &mut s.livepatch;
        let replace = lp.get(id).is_some_and(|p| p.replace);
        for p in &mut lp.patches {
            let gone = match target {
                Target::Unpatched => p.id == id,
                Target::Patched => replace && p.id != id,
            };
            p.forced |= gone;
        }
    });
    Ok(())
}

/// Runs a plan that may start a transition: the tasks are set up for it before the functions
/// go through their dispatchers, switched after; a failed commit leaves them idle.
pub(super) fn run_transition(
    e: &mut impl Engine,
    plan: super::plan::Plan,
    undo_on_trap: bool,
) -> SysResult<()> {
    let before = e.with_state(|s| s.livepatch.clone());
    run_transition_from(e, plan, undo_on_trap, before)
}

/// [`run_transition`] of the last plan of an operation that committed others before it:
/// undoing it goes back to `before`, the state before the operation's first plan.
pub(super) fn run_transition_from(
    e: &mut impl Engine,
    plan: super::plan::Plan,
    undo_on_trap: bool,
    before: Livepatch,
) -> SysResult<()> {
    let starts = plan.transition();
    if let Some((_, target)) = starts {
        init_tasks(e, target)?;
    }
    let committed = super::plan::commit_with(e, plan, undo_on_trap);
    let Some((_, target)) = starts else {
        return committed;
    };
    if committed.is_err() && undo_on_trap {
        // The plan undid itself; what the operation committed before it goes too.
        let undone = super::plan::restore(e, before);
        let idle = idle_tasks(e);
        return committed.and(undone).and(idle);
    }
    // A trap while printing may have left the change in place (a disable stays whole): the
    // transition then goes on; if it was undone, the tasks go back to idle.
    if e.with_state(|s| s.livepatch.transition().is_none()) {
        let _ = idle_tasks(e);
        return committed;
    }
    let started = start_tasks(e, target).and_then(|()| try_complete(e));
    let pending = e.with_state(|s| s.livepatch.transition().is_some());
    if started.is_err() && (pending || undo_on_trap) {
        // The transition could complete at once but its completion failed and was undone, or
        // (for an enable) the code just enabled trapped while its messages were printed: the
        // operation is undone as a whole, as if it had never started.
        let undone = super::plan::restore(e, before);
        let idle = idle_tasks(e);
        return committed.and(started).and(undone).and(idle);
    }
    committed.and(started)
}

/// `klp_reverse_transition` (`echo` of the other value to `enabled` during a transition):
/// pending flags are cleared, the target flips, and the transition starts again the other way.
///
/// # Errors
/// A trap while printing, or a fault.
pub(super) fn reverse(e: &mut impl Engine) -> SysResult<()> {
    for addr in all_tasks(e) {
        set_flag(e, addr, TIF_PATCH_PENDING, false)?;
    }
    let plan = e.with_state(|s| transition::reverse(Draft::new(s.livepatch.clone())).finish());
    commit(e, plan)?;
    match e.with_state(|s| s.livepatch.transition()) {
        Some((_, target)) => start_tasks(e, target),
        None => Ok(()),
    }
}
