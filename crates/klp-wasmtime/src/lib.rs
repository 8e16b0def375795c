//! klp-wasmtime: the [`Engine`] on wasmtime; the kernel and its modules share one `Store`.
//!
//! [`boot`] prepares, instantiates and boots a kernel with the built-in modules of klp-artifacts:
//! what the `klp` command, the integration tests and the benchmarks run on.
//!
//! The soft lockup watchdog is wasmtime's epoch interruption: a thread advances the engine's
//! epoch every [`TICK`], and at each tick of an outermost guest call the watchdog checks it. A
//! call running past twice `watchdog_thresh` ([`klp_core::watchdog::soft_lockup_timeout`], read at every tick), or
//! one the user interrupted ([`Interrupter`], Ctrl-C), traps at its next function entry or loop
//! back edge, as a [`GuestTrap`] whose `stop` says why: `run_task` reports the first as Linux's
//! soft lockup and kills the second's task as SIGINT would.
//!
//! Growth is bounded by a resource limiter on the store: linear memory may not grow past `mem=`
//! (128M without it, the kernel's default) and the table past [`TABLE_MAX`] entries. A refused
//! `memory.grow` or `table.grow` in guest code returns -1 (the kernel's allocator fails), and
//! [`Engine::table_grow`] returns [`EngineError::Table`].
//!
//! Instances are bounded too: wasmtime frees them only with their store, so once enough are
//! dead ([`instances::DEAD_MAX`]) the next outermost call first moves the kernel to a fresh
//! store (`migrate.rs`), carrying its memory, table and stack pointer and re-instantiating the
//! live modules from their compiled code.

mod cache;
mod code;
mod config;
mod guest_func;
mod instances;
mod limits;
mod migrate;
mod tasks;
mod watchdog;

pub use config::{BACKTRACE_FRAMES, Options, kernel_config};
pub use instances::{DEAD_BYTES_MAX, DEAD_MAX, StoreStats};
pub use limits::TABLE_MAX;
pub use watchdog::{Interrupter, TICK};

use cache::ModuleCache;
use guest_func::{Fnv1a, GuestFunc};
use instances::Instances;
use klp_core::engine::{
    Callee, CodeKey, Engine, EngineError, GuestTrap, InstanceId, Resumed, Stop,
};
use klp_core::fs::modules::ModuleFiles;
use klp_core::ftrace::code::Mode;
use klp_core::hostcall;
use klp_core::kernel::{BootError, BootImage};
use klp_core::state::KernelState;
use limits::{Limits, mem_param};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{
    AsContext, AsContextMut, Caller, Extern, Func, Global, Instance, Linker, Memory, Module, Ref,
    Store, StoreContext, StoreContextMut, Table, Val, WasmBacktrace,
};
use watchdog::{Watchdog, watched};

/// The data of the wasmtime `Store`: the core state and the handles of the running kernel.
pub struct HostData {
    /// The core state; `None` only while the kernel moves to a fresh store.
    state: Option<KernelState>,
    handles: Option<Handles>,
    /// Every instance and the origin of every table entry; `None` until the kernel's
    /// instantiation, and while it moves.
    instances: Option<Instances>,
    boot: Instant,
    /// The soft lockup watchdog and interrupt flag; `None` only while the kernel moves.
    watchdog: Option<Watchdog>,
    /// When the outermost guest call running now started (the watchdog's coarse clock); `None`
    /// between calls.
    running_since: Option<u64>,
    /// The growth limits of the kernel's memory and table.
    limits: Limits,
    /// The modules compiled last.
    cache: ModuleCache,
    /// The kernel's state instance and code variants (dynamic ftrace); `None` for a kernel
    /// that is one module.
    code: Option<code::Codes>,
}

impl HostData {
    fn state(&mut self) -> &mut KernelState {
        self.state.as_mut().expect("the core state is in the store")
    }

    fn instances(&mut self) -> &mut Instances {
        self.instances
            .as_mut()
            .expect("the kernel is instantiated before use")
    }
}

/// What every engine call may need of the kernel instance. Nothing here grows: module
/// instances are listed in [`Instances`], and the exports are resolved once.
struct Handles {
    memory: Memory,
    table: Table,
    /// `None` for a kernel run without instrumentation (it exports no stack pointer).
    stack_pointer: Option<Global>,
    /// The caller global (`__klp_caller`) call sites store their caller's slot in; `None`
    /// without instrumentation.
    caller: Option<Global>,
    hostcall: Func,
    clock: Func,
    /// The kernel's function exports by name, shared so a call holds them across re-entry.
    exports: KernelExports,
    /// The task exports, for a kernel built with tasks.
    tasks: Option<tasks::TaskExports>,
}

/// The function exports of a kernel code instance, by name.
type KernelExports = Arc<HashMap<Box<str>, GuestFunc, BuildHasherDefault<Fnv1a>>>;

/// A wasmtime context the core runs on: the [`WasmtimeEngine`]'s `Store`, or, inside a host
/// call, the `Caller` the kernel called in with. One [`Engine`] implementation serves both; it is
/// on this wrapper because the trait is klp-core's and the store types are wasmtime's.
pub struct Context<T>(T);

impl<T: AsContext> AsContext for Context<T> {
    type Data = T::Data;

    fn as_context(&self) -> StoreContext<'_, T::Data> {
        self.0.as_context()
    }
}

impl<T: AsContextMut> AsContextMut for Context<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T::Data> {
        self.0.as_context_mut()
    }
}

/// The wasmtime engine: a `Store` holding the kernel instance, its modules and the core state.
pub type WasmtimeEngine = Context<Store<HostData>>;

/// Compiles and instantiates an instrumented kernel; the core state goes into the store. A
/// kernel with tasks (see [`kernel_config`]) runs with stack switching, and without inlining.
///
/// # Errors
/// Compilation or instantiation failures; `options.inlining` for a kernel with tasks.
pub fn instantiate_kernel(
    wasm: &[u8],
    state: KernelState,
    options: Options,
) -> Result<WasmtimeEngine, EngineError> {
    instantiate(wasm, state, options)
}

/// Compiles and instantiates a prepared kernel ([`klp_core::kernel::prepare_dynamic`] or
/// [`klp_core::kernel::prepare_for`]); a kernel with code variants gets them ready to swap.
///
/// # Errors
/// As [`instantiate_kernel`].
pub fn instantiate_image(
    image: BootImage,
    options: Options,
) -> Result<WasmtimeEngine, EngineError> {
    instantiate(&image.wasm, image.state, options)
}

/// [`instantiate_image`]'s work.
fn instantiate(
    wasm: &[u8],
    state: KernelState,
    options: Options,
) -> Result<WasmtimeEngine, EngineError> {
    let tasks = klp_passes::instrument::tasks::has_tasks(wasm)
        .map_err(|e| EngineError::Compile(e.to_string()))?;
    let config = kernel_config(options, tasks)?;
    let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError::Compile(e.to_string()))?;
    let boot = Instant::now();
    let watchdog = Some(Watchdog::start(&engine, boot)?);
    let key = state.code.as_ref().map(|c| c.current_key());
    let module = Module::new(&engine, wasm).map_err(|e| EngineError::Compile(format!("{e:#}")))?;
    let mut instances = Instances::new(module.clone(), wasm)?;
    let mem = mem_param(&state);
    let mut store = new_store(
        &engine,
        HostData {
            state: Some(state),
            handles: None,
            instances: None,
            boot,
            watchdog,
            running_since: None,
            // Unlimited until the kernel is instantiated: its initial sizes set the floor.
            limits: Limits {
                memory_bytes: usize::MAX,
                table_elements: usize::MAX,
            },
            cache: ModuleCache::default(),
            code: None,
        },
    );
    let (handles, kernel, _) = link_kernel(&mut store, &module, None)?;
    // As in the kernel, RAM is `mem=` or the initial memory if that is larger.
    store.data_mut().limits = Limits {
        memory_bytes: mem.max(handles.memory.data_size(&store)),
        table_elements: TABLE_MAX.max(handles.table.size(&store) as usize),
    };
    instances.kernel_instantiated(handles.table.size(&store));
    if let Some(key) = key {
        // The boot code defines the state the other variants import.
        let boot = code::record(
            &mut store.as_context_mut(),
            &kernel,
            &kernel,
            handles.table,
            &instances.kernel_placements,
        );
        store.data_mut().code = Some(code::Codes::new(module, kernel, key, boot));
    }
    store.data_mut().instances = Some(instances);
    store.data_mut().handles = Some(handles);
    Ok(Context(store))
}

/// A store for a kernel: `data`, its resource limiter, and the watchdog's tick (and a deadline
/// for the kernel's instantiation, which runs no code, but gets one like any other entry).
fn new_store(engine: &wasmtime::Engine, data: HostData) -> Store<HostData> {
    let mut store = Store::new(engine, data);
    store.limiter(|data| &mut data.limits);
    store.epoch_deadline_callback(watchdog::on_tick);
    store.set_epoch_deadline(1);
    store
}

/// Instantiates the compiled kernel in `store` with the host functions it imports, and
/// resolves what engine calls need. With `boot` (the boot code of a kernel with code variants,
/// and the table entries its element segments write), `module` is another variant: the boot
/// code is instantiated first, defining the state `module` imports, and is returned recorded.
/// Returns the handles, the instance defining the state, and the boot code's record.
fn link_kernel(
    store: &mut Store<HostData>,
    module: &Module,
    boot: Option<(&Module, &[u32])>,
) -> Result<(Handles, Instance, Option<code::Instantiated>), EngineError> {
    let virtual_clock = tasks::has_tasks(module);
    let clock = Func::wrap(
        &mut *store,
        move |mut caller: Caller<'_, HostData>| -> i64 {
            i64::try_from(clock_ns(caller.data_mut(), virtual_clock)).unwrap_or(i64::MAX)
        },
    );
    let hostcall = Func::wrap(
        &mut *store,
        |caller: Caller<'_, HostData>, op: i32, a: i32, b: i32, c: i32| -> wasmtime::Result<i32> {
            // A nested call's error stays an EngineError inside: `engine_error` unwraps it.
            hostcall::dispatch(&mut Context(caller), op, [a, b, c]).map_err(wasmtime::Error::new)
        },
    );
    if let Some((boot, placements)) = boot {
        let fail = |e: wasmtime::Error| EngineError::Instantiate(format!("{e:#}"));
        let mut ctx = store.as_context_mut();
        let imports = code::imports(&mut ctx, None, &hostcall, &clock, boot)?;
        let state = Instance::new(&mut ctx, boot, &imports).map_err(fail)?;
        let table = state
            .get_table(&mut ctx, "__indirect_function_table")
            .ok_or_else(|| EngineError::NoExport("__indirect_function_table".into()))?;
        let recorded = code::record(&mut ctx, &state, &state, table, placements);
        let imports = code::imports(&mut ctx, Some(&state), &hostcall, &clock, module)?;
        let kernel = Instance::new(&mut ctx, module, &imports).map_err(fail)?;
        let handles = handles_of(store, &kernel, &state, hostcall, clock)?;
        return Ok((handles, state, Some(recorded)));
    }
    let mut linker = Linker::new(store.engine());
    linker
        .define(&mut *store, "klp", "clock_ns", clock)
        .and_then(|l| l.define(&mut *store, "klp", "hostcall", hostcall))
        .map_err(|e| EngineError::Instantiate(e.to_string()))?;
    let (yield_module, yield_name) = (
        klp_passes::instrument::tasks::YIELD_MODULE,
        klp_passes::instrument::tasks::YIELD_NAME,
    );
    if module
        .imports()
        .any(|i| (i.module(), i.name()) == (yield_module, yield_name))
    {
        // The pass turned every call of it into a suspend; a kernel run without the pass has
        // nobody else to run, so its yield returns at once.
        linker
            .func_wrap(yield_module, yield_name, || {})
            .map_err(|e| EngineError::Instantiate(e.to_string()))?;
    }
    let kernel = linker
        .instantiate(&mut *store, module)
        .map_err(|e| EngineError::Instantiate(format!("{e:#}")))?;
    Ok((
        handles_of(store, &kernel, &kernel, hostcall, clock)?,
        kernel,
        None,
    ))
}

/// What engine calls need of a kernel whose code instance is `kernel` and whose state (memory,
/// table, globals) `state` exports (the same instance for a kernel that is one module).
fn handles_of(
    store: &mut Store<HostData>,
    kernel: &Instance,
    state: &Instance,
    hostcall: Func,
    clock: Func,
) -> Result<Handles, EngineError> {
    let memory = state
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| EngineError::NoExport("memory".into()))?;
    let table = state
        .get_table(&mut *store, "__indirect_function_table")
        .ok_or_else(|| EngineError::NoExport("__indirect_function_table".into()))?;
    let stack_pointer = state.get_global(&mut *store, "__stack_pointer");
    let caller = state.get_global(&mut *store, klp_passes::instrument::CALLER_GLOBAL);
    let (exports, tasks) = code::exports(&mut store.as_context_mut(), kernel, state);
    Ok(Handles {
        memory,
        table,
        stack_pointer,
        caller,
        hostcall,
        clock,
        exports,
        tasks,
    })
}

/// The kernel's clock: the scheduler's virtual clock for a kernel with tasks (docs/ABI.md
/// "Tasks"), the host's monotonic clock since boot otherwise.
fn clock_ns(data: &mut HostData, virtual_clock: bool) -> u64 {
    if virtual_clock {
        data.state().tasks.now_ns()
    } else {
        u64::try_from(data.boot.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The imports of a module linked into the kernel: its memory, table and stack pointer, and
/// the host functions.
fn module_imports(h: &Handles, module: &Module) -> Result<Vec<Extern>, EngineError> {
    let mut imports = Vec::new();
    for import in module.imports() {
        let ext: Extern = match (import.module(), import.name()) {
            ("env", "memory") => h.memory.into(),
            ("env", "__indirect_function_table") => h.table.into(),
            ("env", "__stack_pointer") => match h.stack_pointer {
                Some(global) => global.into(),
                None => {
                    return Err(EngineError::Instantiate(
                        "the kernel exports no __stack_pointer".into(),
                    ));
                }
            },
            ("env", klp_passes::instrument::CALLER_GLOBAL) => match h.caller {
                Some(global) => global.into(),
                None => {
                    return Err(EngineError::Instantiate(
                        "the kernel exports no __klp_caller".into(),
                    ));
                }
            },
            ("klp", "hostcall") => h.hostcall.into(),
            ("klp", "clock_ns") => h.clock.into(),
            (m, n) => return Err(EngineError::Instantiate(format!("unknown import {m}.{n}"))),
        };
        imports.push(ext);
    }
    Ok(imports)
}

/// A context at which the kernel may move to a fresh store: the store itself, where no guest
/// frame is live, and never a host call's `Caller`.
pub trait SafePoint {
    /// The store, when this context is one.
    fn store(&mut self) -> Option<&mut Store<HostData>>;
}

impl SafePoint for Store<HostData> {
    fn store(&mut self) -> Option<&mut Store<HostData>> {
        Some(self)
    }
}

impl SafePoint for Caller<'_, HostData> {
    fn store(&mut self) -> Option<&mut Store<HostData>> {
        None
    }
}

impl WasmtimeEngine {
    /// How many instances the kernel uses and its store holds, and how often it moved.
    pub fn store_stats(&mut self) -> StoreStats {
        self.0.data_mut().instances().stats()
    }

    /// Waits until every code variant being compiled in the background is compiled (dynamic
    /// ftrace compiles the full variant at boot): for tests and benchmarks that measure
    /// growth or time from a settled kernel.
    pub fn wait_for_code(&mut self) {
        if let Some(codes) = self.0.data_mut().code.as_mut() {
            codes.join_all();
        }
    }

    /// A handle that interrupts the command running in this kernel from another thread (the
    /// `klp` command's Ctrl-C handler).
    pub fn interrupter(&mut self) -> Interrupter {
        let watchdog = self.0.data().watchdog.as_ref();
        watchdog
            .expect("a running kernel has a watchdog")
            .interrupter()
    }

    /// Moves the kernel to a fresh store now, as it does by itself once enough instances are
    /// dead: for tests (nothing visible may change) and benchmarks (what a move costs).
    ///
    /// # Errors
    /// A table written behind the engine's back (its origins unknown), or an instantiation or
    /// growth failure in the fresh store; the kernel is then left where it was.
    pub fn move_now(&mut self) -> Result<(), EngineError> {
        migrate::move_kernel(&mut self.0)
    }
}

fn handles<T: AsContext<Data = HostData>>(ctx: &T) -> &Handles {
    ctx.as_context()
        .data()
        .handles
        .as_ref()
        .expect("kernel instantiated before use")
}

fn memory<T: AsContext<Data = HostData>>(ctx: &T) -> Memory {
    handles(ctx).memory
}

fn table<T: AsContext<Data = HostData>>(ctx: &T) -> Table {
    handles(ctx).table
}

/// Turns the error of a guest call into an [`EngineError`], keeping the trap's call trace and
/// why the watchdog stopped it, if it did.
fn guest_error<T: AsContextMut<Data = HostData>>(
    ctx: &mut Context<T>,
    err: wasmtime::Error,
) -> EngineError {
    let mut store = ctx.as_context_mut();
    let stop = store
        .data_mut()
        .watchdog
        .as_mut()
        .and_then(Watchdog::take_stop);
    engine_error(err, stop)
}

/// Turns a wasmtime error into an [`EngineError`], keeping the trap's call trace; `stop` is why
/// the watchdog interrupted the call, if it did.
fn engine_error(err: wasmtime::Error, stop: Option<Stop>) -> EngineError {
    // An error of a guest call nested in a host call crosses `klp.hostcall` as the EngineError
    // `hostcall::dispatch` returned, under the host call's backtrace: a trap there already has
    // the innermost message and frames.
    let nested = err.downcast_ref::<EngineError>();
    if let Some(EngineError::Trap(inner)) = nested {
        return EngineError::Trap(inner.clone());
    }
    let trap = err.downcast_ref::<wasmtime::Trap>();
    let stop = stop.filter(|_| trap == Some(&wasmtime::Trap::Interrupt));
    let message = match (nested, trap) {
        (Some(nested), _) => nested.to_string(),
        (None, Some(trap)) => trap.to_string(),
        (None, None) => format!("{err:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let frames = err
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|f| f.func_name().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    EngineError::Trap(GuestTrap {
        message,
        frames,
        stop,
    })
}

fn table_err(err: wasmtime::Error) -> EngineError {
    EngineError::Table(err.to_string())
}

impl<T: AsContextMut<Data = HostData> + SafePoint> Engine for Context<T> {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        f(self.as_context_mut().data_mut().state())
    }

    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError> {
        if let Some(store) = self.0.store() {
            migrate::at_safe_point(store);
        }
        // The exports are shared, not cloned: one reference count per call, whatever the
        // kernel's history.
        let exports;
        let slot_func;
        let func = match callee {
            Callee::Export(name) => {
                exports = Arc::clone(&handles(self).exports);
                exports
                    .get(name)
                    .ok_or_else(|| EngineError::NoExport(name.to_string()))?
            }
            Callee::Slot(slot) => {
                let table = table(self);
                match table.get(&mut *self, u64::from(slot)) {
                    Some(Ref::Func(Some(f))) => slot_func = GuestFunc::new(&*self, f),
                    _ => return Err(EngineError::Table(format!("slot {slot} holds no function"))),
                }
                &slot_func
            }
        };
        let nested = self.0.store().is_none();
        let called = if nested {
            tasks::atomic(self, |ctx| func.call(ctx, args))
        } else {
            watched(self, |ctx| func.call(ctx, args))
        };
        match called {
            Some(result) => result.map_err(|err| guest_error(self, err)),
            None => {
                let ty = func.func().ty(&*self);
                Err(EngineError::NoExport(format!("{callee:?} has type {ty:?}")))
            }
        }
    }

    fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), EngineError> {
        memory(self)
            .read(&*self, addr as usize, buf)
            .map_err(|_| EngineError::Fault(addr))
    }

    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), EngineError> {
        memory(self)
            .write(&mut *self, addr as usize, data)
            .map_err(|_| EngineError::Fault(addr))
    }

    fn table_len(&mut self) -> u32 {
        u32::try_from(table(self).size(&*self)).unwrap_or(u32::MAX)
    }

    fn table_grow(&mut self, delta: u32) -> Result<u32, EngineError> {
        let old = table(self)
            .grow(&mut *self, u64::from(delta), Ref::Func(None))
            .map_err(table_err)?;
        self.as_context_mut().data_mut().instances().grew(delta);
        u32::try_from(old).map_err(|_| EngineError::Table("table too large".into()))
    }

    fn table_copy(&mut self, dst: u32, src: u32) -> Result<(), EngineError> {
        let table = table(self);
        Table::copy(
            &mut *self,
            &table,
            u64::from(dst),
            &table,
            u64::from(src),
            1,
        )
        .map_err(table_err)?;
        self.as_context_mut()
            .data_mut()
            .instances()
            .copied(dst, src);
        Ok(())
    }

    fn table_clear(&mut self, start: u32, len: u32) -> Result<(), EngineError> {
        table(self)
            .fill(
                &mut *self,
                u64::from(start),
                Ref::Func(None),
                u64::from(len),
            )
            .map_err(table_err)?;
        self.as_context_mut()
            .data_mut()
            .instances()
            .cleared(start, len);
        Ok(())
    }

    fn stack_pointer(&mut self) -> u32 {
        match handles(self).stack_pointer {
            Some(global) => global.get(&mut *self).i32().map_or(0, |v| v as u32),
            None => 0,
        }
    }

    fn set_stack_pointer(&mut self, sp: u32) {
        if let Some(global) = handles(self).stack_pointer {
            // The global is the kernel's own mutable i32: setting it cannot fail.
            let _ = global.set(&mut *self, Val::I32(sp as i32));
        }
    }

    fn instantiate(&mut self, wasm: &[u8]) -> Result<InstanceId, EngineError> {
        let mut ctx = self.as_context_mut();
        let engine = ctx.engine().clone();
        let module = ctx.data_mut().cache.get(&engine, wasm)?;
        let placements = instances::placements(wasm)?;
        let imports = module_imports(handles(self), &module)?;
        let code = instances::code_size(&module);
        self.as_context_mut().data_mut().instances().attempted(code);
        let instance = watched(self, |ctx| Instance::new(ctx, &module, &imports));
        instance.map_err(|e| match guest_error(self, e) {
            EngineError::Trap(t) => EngineError::Instantiate(t.message),
            other => other,
        })?;
        // The instance's functions are in the table; the registry keeps what it takes to
        // instantiate it again in a fresh store.
        self.as_context_mut()
            .data_mut()
            .instances()
            .add(module, placements, code)
    }

    fn backtrace(&mut self) -> Vec<Option<String>> {
        WasmBacktrace::force_capture(&*self)
            .frames()
            .iter()
            .map(|f| f.func_name().map(str::to_string))
            .collect()
    }

    fn take_interrupt(&mut self) -> bool {
        let data = self.as_context_mut();
        data.data()
            .watchdog
            .as_ref()
            .is_some_and(Watchdog::take_interrupt)
    }

    fn has_tasks(&mut self) -> bool {
        handles(self).tasks.is_some()
    }

    fn in_host_call(&mut self) -> bool {
        self.0.store().is_none()
    }

    fn task_spawn(&mut self, task: u32, entry: u32, arg: i32) -> Result<(), EngineError> {
        tasks::spawn(self, task, entry, arg)
    }

    fn task_resume(&mut self, task: u32, sp: u32, budget: i32) -> Result<Resumed, EngineError> {
        if let Some(store) = self.0.store() {
            migrate::at_safe_point(store);
        }
        tasks::resume(self, task, sp, budget)
    }

    fn swaps_code(&mut self) -> bool {
        self.as_context_mut().data().code.is_some()
    }

    fn prepare_code(&mut self, key: CodeKey, wasm: &Arc<[u8]>) {
        let mut ctx = self.as_context_mut();
        let engine = ctx.engine().clone();
        if let Some(codes) = ctx.data_mut().code.as_mut() {
            codes.prepare(&engine, key, wasm);
        }
    }

    fn code_ready(&mut self, key: CodeKey) -> bool {
        let mut ctx = self.as_context_mut();
        ctx.data_mut().code.as_mut().is_some_and(|c| c.ready(key))
    }

    fn swap_code(&mut self, key: CodeKey) -> Result<(), EngineError> {
        code::swap(&mut self.as_context_mut(), key)
    }

    fn rehome_code(&mut self, key: CodeKey) -> Result<(), EngineError> {
        match self.0.store() {
            Some(store) => migrate::move_kernel_to(store, Some(key)),
            None => Err(EngineError::Instantiate(
                "the kernel moves only between guest calls".into(),
            )),
        }
    }

    /// The instance is dead: wasmtime frees it with the store, when the kernel next moves.
    fn release(&mut self, id: InstanceId) {
        self.as_context_mut().data_mut().instances().release(id);
    }
}

/// Prepares, instantiates and boots a kernel on wasmtime, with the built-in modules
/// ([`klp_artifacts::MODULES`]) at `/lib/modules/<release>`.
///
/// # Errors
/// Anything [`klp_core::kernel::prepare`], [`instantiate_kernel`] or [`klp_core::kernel::boot`]
/// reports.
pub fn boot(
    kernel: &[u8],
    cmdline: &str,
    hook: bool,
    options: Options,
) -> Result<WasmtimeEngine, BootError> {
    let switching = (!options.no_tasks).then_some(klp_core::kernel::Switching::Stacks);
    let mut image = match options.ftrace {
        Mode::Dynamic if hook => klp_core::kernel::prepare_dynamic(kernel, cmdline, switching)?,
        _ => klp_core::kernel::prepare_for(kernel, cmdline, hook, switching)?,
    };
    image.state.tasks.set_seed(options.sched_seed);
    let mut engine = instantiate_image(image, options)?;
    klp_core::kernel::boot(&mut engine, ModuleFiles::embedded(klp_artifacts::MODULES))?;
    Ok(engine)
}
