// Kernel tasks on the page (src/tasks.rs): each task runs on a stack of its own through JS Promise
// Integration, and the synchronous core waits for it on its own suspended stack.
//
// The core calls `task_resume` (a WebAssembly.Suspending import of klp-web, so the core's whole
// stack is suspended while the task runs). A task is started with WebAssembly.promising on its
// entry function; it stops at `klp.yield` (a WebAssembly.Suspending import of the kernel: the
// task's stack is suspended until its next resume), when its entry returns, or when it traps.
// `__klp_task_preempt` (the pass's Switching::Import) sets `__klp_task_stop` to "preempted" and
// calls `klp.yield` too. One kernel per page: the state below is the page's kernel's.

const STOP_FINISHED = 0;
const STOP_YIELDED = 1;
const STOP_PREEMPTED = 2;
const TRAPPED = -1;
const NO_BUDGET = 0x7fffffff;

let k = null;               // the kernel's table, __stack_pointer, the pass's globals, __klp_caller
const slots = new Map();    // task slot -> { entry, arg, wake (resumes a task stopped in yield) }
let running = null;         // the task slot's record while it runs
let stopped = null;         // resolves the resume waiting for the running task to stop
let last = { sp: 0, used: 0, error: null };
// A resume completes in a microtask, and a chain of them starves the page's event loop: every
// BREATH_MS of a job's wall time a resume waits for a macrotask first, so the page still
// draws, scrolls and takes input (queued) while the kernel runs long.
const BREATH_MS = 50;
let breath = performance.now();

// The kernel's `klp.yield`: hands the task's stack pointer to the waiting resume, then waits
// for the task's next resume. Outside a task (the core never lets that happen) it returns at
// once, without suspending.
const klpYield = new WebAssembly.Suspending(() => {
  const t = running;
  if (!t) return undefined;
  const kind = k.stop.value === STOP_PREEMPTED ? STOP_PREEMPTED : STOP_YIELDED;
  k.stop.value = STOP_YIELDED;
  const resumed = new Promise((resolve) => { t.wake = resolve; });
  stopped({ kind, sp: k.sp.value });
  return resumed;
});

// The `klp.yield` import to instantiate the kernel with.
export function task_yield_import() {
  return klpYield;
}

// Binds the tasks to a freshly instantiated kernel.
export function task_attach(table, sp, budget, current, stop, caller) {
  k = { table, sp, budget, current, stop, caller };
  slots.clear();
}

// `__klp_task_spawn`: task slot `task` will run table entry `entry` with `arg`. 0, or -1 when
// the slot holds a task that has not finished.
export function task_spawn(task, entry, arg) {
  if (slots.has(task)) return -1;
  slots.set(task, { entry, arg, wake: null });
  return 0;
}

// `__klp_task_resume`: runs task `task` on stack pointer `sp` with `budget` loop headers until it
// stops; returns STOP_FINISHED, STOP_YIELDED, STOP_PREEMPTED or TRAPPED (the error in
// task_error). The task's stack pointer and the headers it used are in task_sp and task_used.
export const task_resume = new WebAssembly.Suspending(async (task, sp, budget) => {
  const t = slots.get(task);
  if (!t || running) {
    last = { sp: 0, used: 0, error: new Error(`task slot ${task} holds no task to resume`) };
    return TRAPPED;
  }
  if (performance.now() - breath > BREATH_MS) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    breath = performance.now();
  }
  const own = { sp: k.sp.value, current: k.current.value };
  k.budget.value = budget;
  k.stop.value = STOP_YIELDED;
  k.sp.value = sp;
  k.current.value = task;
  running = t;
  const stop = new Promise((resolve) => { stopped = resolve; });
  if (t.wake) {
    const wake = t.wake;
    t.wake = null;
    wake();
  } else {
    const entry = k.table.get(t.entry);
    if (typeof entry !== "function") {
      stopped({ kind: TRAPPED, error: new Error(`task entry ${t.entry} holds no function`) });
    } else {
      // The scheduler calls the entry, no kernel function: its caller is 0, as
      // `__klp_task_entry` stores on wasmtime.
      k.caller.value = 0;
      WebAssembly.promising(entry)(t.arg).then(
        () => stopped({ kind: STOP_FINISHED, sp: 0 }),
        (error) => stopped({ kind: TRAPPED, error }));
    }
  }
  const r = await stop;
  running = null;
  stopped = null;
  const left = k.budget.value;
  k.budget.value = NO_BUDGET;
  k.sp.value = own.sp;
  k.current.value = own.current;
  if (r.kind === STOP_FINISHED || r.kind === TRAPPED) slots.delete(task);
  last = { sp: r.sp ?? 0, used: Math.max(0, budget - Math.max(left, -1)), error: r.error ?? null };
  return r.kind;
});

// What the last resume left: the task's stack pointer, the loop headers it passed, its error.
export function task_sp() {
  return last.sp;
}

export function task_used() {
  return last.used;
}

export function task_error() {
  return last.error ?? new Error("no error");
}
