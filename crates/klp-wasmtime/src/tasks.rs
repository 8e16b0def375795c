//! Tasks on wasmtime: the pass's `__klp_task_spawn`/`__klp_task_resume` and their globals.

use crate::watchdog::watched;
use crate::{Context, HostData, guest_error, handles};
use klp_core::engine::{EngineError, Resumed, TaskStop};
use klp_passes::instrument::tasks::{
    BUDGET, CURRENT, RESUME, SPAWN, STOP, STOP_FINISHED, STOP_PREEMPTED, STOP_YIELDED,
};
use wasmtime::{AsContextMut, Global, Instance, StoreContextMut, TypedFunc, Val};

/// Whether a compiled kernel has tasks (the pass's exports).
pub(crate) fn has_tasks(module: &wasmtime::Module) -> bool {
    module.get_export(RESUME).is_some()
}

/// The task exports of a kernel built with tasks.
#[derive(Clone)]
pub(crate) struct TaskExports {
    spawn: TypedFunc<(i32, i32, i32), ()>,
    resume: TypedFunc<(i32, i32), i32>,
    budget: Global,
    current: Global,
    stop: Global,
}

impl TaskExports {
    /// The exports, if the kernel has tasks.
    /// `state` exports the globals: the kernel itself, or the boot code's instance.
    pub(crate) fn find(
        store: &mut StoreContextMut<'_, HostData>,
        kernel: &Instance,
        state: &Instance,
    ) -> Option<TaskExports> {
        let spawn = kernel.get_typed_func(&mut *store, SPAWN).ok()?;
        let resume = kernel.get_typed_func(&mut *store, RESUME).ok()?;
        Some(TaskExports {
            spawn,
            resume,
            budget: state.get_global(&mut *store, BUDGET)?,
            current: state.get_global(&mut *store, CURRENT)?,
            stop: state.get_global(&mut *store, STOP)?,
        })
    }
}

fn exports<T: AsContextMut<Data = HostData>>(ctx: &Context<T>) -> Result<TaskExports, EngineError> {
    handles(ctx)
        .tasks
        .clone()
        .ok_or_else(|| EngineError::NoExport(SPAWN.into()))
}

fn get_i32<T: AsContextMut<Data = HostData>>(ctx: &mut Context<T>, g: Global) -> i32 {
    g.get(&mut *ctx).i32().unwrap_or(0)
}

fn set_i32<T: AsContextMut<Data = HostData>>(ctx: &mut Context<T>, g: Global, v: i32) {
    // The pass's globals are mutable i32s: setting one cannot fail.
    let _ = g.set(&mut *ctx, Val::I32(v));
}

/// `__klp_task_spawn(task, entry, arg)`.
pub(crate) fn spawn<T: AsContextMut<Data = HostData>>(
    ctx: &mut Context<T>,
    task: u32,
    entry: u32,
    arg: i32,
) -> Result<(), EngineError> {
    let t = exports(ctx)?;
    watched(ctx, |ctx| {
        t.spawn.call(&mut *ctx, (task as i32, entry as i32, arg))
    })
    .map_err(|err| guest_error(ctx, err))?;
    if let Some(codes) = ctx.as_context_mut().data_mut().code.as_mut() {
        codes.spawned(task, &t);
    }
    Ok(())
}

/// `__klp_task_resume(task, sp)` with `budget` loop headers; after a trap the stack pointer and
/// the current task are put back (the pass cannot restore them on a trap).
pub(crate) fn resume<T: AsContextMut<Data = HostData>>(
    ctx: &mut Context<T>,
    task: u32,
    sp: u32,
    budget: i32,
) -> Result<Resumed, EngineError> {
    // A task runs on in the code it was spawned in.
    let home = ctx
        .as_context_mut()
        .data()
        .code
        .as_ref()
        .and_then(|c| c.home(task));
    let t = match home {
        Some(t) => t,
        None => exports(ctx)?,
    };
    let own_sp = handles(ctx)
        .stack_pointer
        .map_or(0, |g| g.get(&mut *ctx).i32().unwrap_or(0));
    set_i32(ctx, t.budget, budget);
    let result = watched(ctx, |ctx| {
        t.resume.call(&mut *ctx, (task as i32, sp as i32))
    });
    let left = get_i32(ctx, t.budget);
    set_i32(ctx, t.budget, i32::MAX);
    // A preempted task's budget went below zero; `used` counts the headers it passed.
    let used = u32::try_from(i64::from(budget) - i64::from(left.max(-1))).unwrap_or(0);
    let ret = match result {
        Ok(ret) => ret,
        Err(err) => {
            if let Some(g) = handles(ctx).stack_pointer {
                let _ = g.set(&mut *ctx, Val::I32(own_sp));
            }
            set_i32(ctx, t.current, -1);
            return Err(guest_error(ctx, err));
        }
    };
    let stop = match get_i32(ctx, t.stop) {
        STOP_FINISHED => TaskStop::Finished,
        STOP_YIELDED => TaskStop::Yielded(ret as u32),
        STOP_PREEMPTED => TaskStop::Preempted(ret as u32),
        other => {
            return Err(EngineError::Trap(klp_core::engine::GuestTrap {
                message: format!("__klp_task_stop reads {other}"),
                frames: Vec::new(),
                stop: None,
            }));
        }
    };
    Ok(Resumed { stop, used })
}

/// Runs `f` (a guest call from inside a host call) as kernel code that may neither yield nor be
/// preempted: the current task reads -1 and the budget is full while it runs (docs/ABI.md
/// "Tasks": a suspend cannot cross the host frame).
pub(crate) fn atomic<T: AsContextMut<Data = HostData>, R>(
    ctx: &mut Context<T>,
    f: impl FnOnce(&mut Context<T>) -> R,
) -> R {
    let Some(t) = handles(ctx).tasks.clone() else {
        return f(ctx);
    };
    let (current, budget) = (get_i32(ctx, t.current), get_i32(ctx, t.budget));
    set_i32(ctx, t.current, -1);
    set_i32(ctx, t.budget, i32::MAX);
    let result = f(ctx);
    set_i32(ctx, t.current, current);
    set_i32(ctx, t.budget, budget);
    result
}
