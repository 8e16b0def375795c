//! Kernel tasks on the page's engine: spawn and resume through JS Promise Integration
//! (src/tasks.js), for a kernel rewritten with [`Switching::Import`](klp_core::kernel::Switching).

use js_sys::{Reflect, WebAssembly};
use klp_core::engine::{EngineError, GuestTrap, TaskStop};
use klp_passes::instrument::tasks::{
    BUDGET, CURRENT, STOP, STOP_FINISHED, STOP_PREEMPTED, STOP_YIELDED,
};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/tasks.js")]
extern "C" {
    fn task_yield_import() -> JsValue;
    fn task_attach(
        table: &WebAssembly::Table,
        sp: &WebAssembly::Global,
        budget: &JsValue,
        current: &JsValue,
        stop: &JsValue,
        caller: &JsValue,
    );
    fn task_spawn(task: i32, entry: i32, arg: i32) -> i32;
    // A WebAssembly.Suspending: the core's stack waits here while the task runs. Its arguments
    // and result are plain i32s, so wasm-bindgen imports it as it is (no JS shim frame, which
    // JSPI could not suspend).
    fn task_resume(task: i32, sp: i32, budget: i32) -> i32;
    fn task_sp() -> i32;
    fn task_used() -> i32;
    fn task_error() -> JsValue;
}

/// The pass's globals of a kernel with tasks.
#[derive(Clone)]
pub struct TaskGlobals {
    budget: WebAssembly::Global,
    current: WebAssembly::Global,
}

/// The `klp.yield` import: switches tasks (a `WebAssembly.Suspending`).
pub fn yield_import() -> JsValue {
    task_yield_import()
}

/// The task globals among a kernel's exports, bound to the JS half; `None` for a kernel
/// without tasks.
pub fn attach(
    exports: &js_sys::Object,
    table: &WebAssembly::Table,
    sp: &WebAssembly::Global,
) -> Option<TaskGlobals> {
    let get = |name: &str| {
        Reflect::get(exports, &JsValue::from_str(name))
            .ok()
            .filter(|v| !v.is_undefined())
    };
    let (budget, current, stop) = (get(BUDGET)?, get(CURRENT)?, get(STOP)?);
    let caller = get(klp_passes::instrument::CALLER_GLOBAL)?;
    task_attach(table, sp, &budget, &current, &stop, &caller);
    Some(TaskGlobals {
        budget: budget.unchecked_into(),
        current: current.unchecked_into(),
    })
}

impl TaskGlobals {
    /// Runs `f` (a guest call from inside a host call) as kernel code that may neither yield
    /// nor be preempted: the current task reads -1 and the budget is full (docs/ABI.md "Tasks").
    pub fn atomic<R>(&self, f: impl FnOnce() -> R) -> R {
        let (current, budget) = (self.current.value(), self.budget.value());
        self.current.set_value(&JsValue::from(-1));
        self.budget.set_value(&JsValue::from(i32::MAX));
        let result = f();
        self.current.set_value(&current);
        self.budget.set_value(&budget);
        result
    }
}

/// `__klp_task_spawn(task, entry, arg)`.
pub fn spawn(task: u32, entry: u32, arg: i32) -> Result<(), EngineError> {
    if task_spawn(task as i32, entry as i32, arg) == 0 {
        return Ok(());
    }
    Err(EngineError::Trap(GuestTrap {
        message: format!("task slot {task} holds a task that has not finished"),
        frames: Vec::new(),
        stop: None,
    }))
}

/// How a resume ended: the task's stop and the loop headers it passed, or its error.
pub enum Outcome {
    /// It stopped or finished.
    Stopped(TaskStop, u32),
    /// It trapped (or could not run): the exception.
    Trapped(JsValue),
}

/// `__klp_task_resume(task, sp)` with `budget` loop headers.
pub fn resume(task: u32, sp: u32, budget: i32) -> Outcome {
    let kind = task_resume(task as i32, sp as i32, budget);
    let used = u32::try_from(task_used()).unwrap_or(0);
    let sp = task_sp() as u32;
    match kind {
        STOP_FINISHED => Outcome::Stopped(TaskStop::Finished, used),
        STOP_YIELDED => Outcome::Stopped(TaskStop::Yielded(sp), used),
        STOP_PREEMPTED => Outcome::Stopped(TaskStop::Preempted(sp), used),
        _ => Outcome::Trapped(task_error()),
    }
}
