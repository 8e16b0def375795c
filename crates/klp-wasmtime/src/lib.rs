//! klp-wasmtime: the [`Engine`] on wasmtime; the kernel and its modules share one `Store`.
//!
//! [`boot`] prepares, instantiates and boots a kernel with the built-in modules of klp-artifacts:
//! what the `klp` command, the integration tests and the benchmarks run on.
//!
//! The soft lockup watchdog is wasmtime's epoch interruption: a thread advances the engine's
//! epoch every [`TICK`], and each outermost guest call gets a deadline that many ticks ahead
//! (twice `watchdog_thresh`, [`klp_core::kernel::soft_lockup_timeout`]). A call still running
//! then traps at its next function entry or loop back edge, as a [`GuestTrap`] with `stuck_for`
//! set, which `run_task` reports as Linux's soft lockup.
//!
//! Growth is bounded by a [`Limits`] resource limiter on the store: linear memory may not grow
//! past `mem=` (128M without it, the kernel's default) and the table past [`TABLE_MAX`] entries.
//! A refused `memory.grow` or `table.grow` in guest code returns -1 (the kernel's allocator
//! fails), and [`Engine::table_grow`] returns [`EngineError::Table`].

use klp_core::engine::{Callee, Engine, EngineError, GuestTrap, InstanceId};
use klp_core::fs::modules::ModuleFiles;
use klp_core::hostcall;
use klp_core::kernel::BootError;
use klp_core::state::KernelState;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::{
    AsContext, AsContextMut, Caller, Config, Extern, Func, Global, Inlining, Instance, Linker,
    Memory, Module, Ref, ResourceLimiter, Store, StoreContext, StoreContextMut, Table, TypedFunc,
    Val, WasmBacktrace,
};

/// The data of the wasmtime `Store`: the core state and the handles of the running kernel.
pub struct HostData {
    state: KernelState,
    handles: Option<Handles>,
    /// How many module instances [`Engine::instantiate`] made: the next one's id.
    instances: InstanceId,
    boot: Instant,
    /// The soft lockup watchdog; `None` when `watchdog_thresh=0` turned it off.
    watchdog: Option<Watchdog>,
    /// When the outermost guest call running now started (the watchdog's coarse clock); `None`
    /// between calls.
    running_since: Option<u64>,
    /// The growth limits of the kernel's memory and table.
    limits: Limits,
}

/// The most entries the function table may grow to: the kernel's slots plus room for many
/// modules (each takes a range of twice its functions, and trampolines).
pub const TABLE_MAX: usize = 1 << 20;

/// RAM size when the command line has no valid `mem=`, as in the kernel.
const DEFAULT_MEM: usize = 128 << 20;

/// The store's resource limiter: the maximum sizes memories and tables may grow to.
#[derive(Debug, Clone, Copy)]
struct Limits {
    memory_bytes: usize,
    table_elements: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.memory_bytes)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}

/// The RAM size `mem=` asks for, parsed as the kernel's 32-bit `memparse` does (an optional K,
/// M or G suffix; anything else, or an overflow, leaves the default).
fn mem_param(state: &KernelState) -> usize {
    let parse = |arg: &str| -> Option<u32> {
        let digits = arg.bytes().take_while(u8::is_ascii_digit).count();
        let value: u32 = arg[..digits].parse().ok()?;
        let shift = match &arg[digits..] {
            "" => 0,
            "k" | "K" => 10,
            "m" | "M" => 20,
            "g" | "G" => 30,
            _ => return None,
        };
        value.checked_mul(1 << shift)
    };
    state
        .cmdline_param("mem")
        .and_then(parse)
        .map_or(DEFAULT_MEM, |bytes| bytes as usize)
}

/// How often the watchdog thread advances the engine's epoch: the resolution of the deadline.
pub const TICK: Duration = Duration::from_millis(100);

/// The soft lockup watchdog of one kernel.
struct Watchdog {
    /// The deadline of an outermost guest call, in ticks.
    ticks: u64,
    /// Nanoseconds since boot as of the last tick, set by the watchdog thread: reading it costs
    /// a guest call one atomic load, where reading the clock would cost a clock read.
    coarse_ns: Arc<AtomicU64>,
}

impl Watchdog {
    /// Starts the thread that, every [`TICK`] for as long as `engine` lives (the store and its
    /// modules hold it), advances its epoch and the coarse clock.
    fn start(engine: &wasmtime::Engine, ticks: u64, boot: Instant) -> Result<Self, EngineError> {
        let coarse_ns = Arc::new(AtomicU64::new(0));
        let clock = Arc::clone(&coarse_ns);
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("klp-watchdog".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    clock.store(nanos(boot.elapsed()), Ordering::Relaxed);
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| EngineError::Instantiate(format!("watchdog thread: {e}")))?;
        Ok(Watchdog { ticks, coarse_ns })
    }
}

/// `d` in nanoseconds, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `f`, which enters the guest, under the watchdog. The outermost entry sets the deadline
/// and notes when it started; nested ones (from a host call) run under the outermost's deadline.
/// Returns `f`'s result and when the outermost entry started (nanoseconds since boot, to the
/// [`TICK`]; 0 with the watchdog off).
fn watched<T: AsContextMut<Data = HostData>, R>(
    ctx: &mut Context<T>,
    f: impl FnOnce(&mut Context<T>) -> R,
) -> (R, u64) {
    let mut store = ctx.as_context_mut();
    let data = store.data();
    let (Some(watchdog), None) = (&data.watchdog, data.running_since) else {
        let since = data.running_since.unwrap_or(0);
        return (f(ctx), since);
    };
    let (ticks, since) = (watchdog.ticks, watchdog.coarse_ns.load(Ordering::Relaxed));
    store.set_epoch_deadline(ticks);
    store.data_mut().running_since = Some(since);
    let result = f(ctx);
    ctx.as_context_mut().data_mut().running_since = None;
    (result, since)
}

/// What every engine call may need of the kernel instance. Nothing here grows: module
/// instances are not listed (the store keeps them), and the exports are resolved once.
struct Handles {
    memory: Memory,
    table: Table,
    /// `None` for a kernel run without instrumentation (it exports no stack pointer).
    stack_pointer: Option<Global>,
    hostcall: Func,
    clock: Func,
    /// The kernel's function exports by name, shared so a call holds them across re-entry.
    exports: Arc<HashMap<Box<str>, GuestFunc, BuildHasherDefault<Fnv1a>>>,
}

/// FNV-1a: export names are short and come from the core, so a simple hash beats SipHash on
/// the lookup every export call makes.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A guest function (a kernel export or a slot's function), typed for the signatures the core
/// calls (up to three `i32`s, returning one or nothing): calling it checks no types and
/// allocates nothing.
enum GuestFunc {
    Void0(TypedFunc<(), ()>),
    Int0(TypedFunc<(), i32>),
    Void1(TypedFunc<i32, ()>),
    Int1(TypedFunc<i32, i32>),
    Void2(TypedFunc<(i32, i32), ()>),
    Int2(TypedFunc<(i32, i32), i32>),
    Void3(TypedFunc<(i32, i32, i32), ()>),
    Int3(TypedFunc<(i32, i32, i32), i32>),
    /// Any other signature (more arguments, other types): checked and called per call.
    Other(Func),
}

impl GuestFunc {
    /// Types `func` by its signature.
    fn new(store: impl AsContext, func: Func) -> GuestFunc {
        let store = store.as_context();
        let ty = func.ty(&store);
        if !ty.params().all(|p| p.is_i32()) || ty.results().len() > 1 {
            return GuestFunc::Other(func);
        }
        let returns = match ty.results().next() {
            None => false,
            Some(r) if r.is_i32() => true,
            Some(_) => return GuestFunc::Other(func),
        };
        let typed = match (ty.params().len(), returns) {
            (0, false) => func.typed(&store).map(GuestFunc::Void0),
            (0, true) => func.typed(&store).map(GuestFunc::Int0),
            (1, false) => func.typed(&store).map(GuestFunc::Void1),
            (1, true) => func.typed(&store).map(GuestFunc::Int1),
            (2, false) => func.typed(&store).map(GuestFunc::Void2),
            (2, true) => func.typed(&store).map(GuestFunc::Int2),
            (3, false) => func.typed(&store).map(GuestFunc::Void3),
            (3, true) => func.typed(&store).map(GuestFunc::Int3),
            _ => return GuestFunc::Other(func),
        };
        typed.unwrap_or(GuestFunc::Other(func))
    }

    /// The untyped function.
    fn func(&self) -> Func {
        match self {
            GuestFunc::Void0(f) => *f.func(),
            GuestFunc::Int0(f) => *f.func(),
            GuestFunc::Void1(f) => *f.func(),
            GuestFunc::Int1(f) => *f.func(),
            GuestFunc::Void2(f) => *f.func(),
            GuestFunc::Int2(f) => *f.func(),
            GuestFunc::Void3(f) => *f.func(),
            GuestFunc::Int3(f) => *f.func(),
            GuestFunc::Other(f) => *f,
        }
    }

    /// Calls the function; `None` when `args` do not fit its signature.
    fn call(
        &self,
        mut store: impl AsContextMut,
        args: &[i32],
    ) -> Option<wasmtime::Result<Option<i32>>> {
        let none = |()| None;
        Some(match (self, args) {
            (GuestFunc::Void0(f), []) => f.call(store, ()).map(none),
            (GuestFunc::Int0(f), []) => f.call(store, ()).map(Some),
            (GuestFunc::Void1(f), &[a]) => f.call(store, a).map(none),
            (GuestFunc::Int1(f), &[a]) => f.call(store, a).map(Some),
            (GuestFunc::Void2(f), &[a, b]) => f.call(store, (a, b)).map(none),
            (GuestFunc::Int2(f), &[a, b]) => f.call(store, (a, b)).map(Some),
            (GuestFunc::Void3(f), &[a, b, c]) => f.call(store, (a, b, c)).map(none),
            (GuestFunc::Int3(f), &[a, b, c]) => f.call(store, (a, b, c)).map(Some),
            (GuestFunc::Other(f), args) => {
                let ty = f.ty(&store);
                if ty.params().len() != args.len()
                    || ty.results().len() > 1
                    || !ty.params().chain(ty.results()).all(|t| t.is_i32())
                {
                    return None;
                }
                let params: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
                let mut results = [Val::I32(0)];
                let results = &mut results[..ty.results().len()];
                f.call(&mut store, &params, results)
                    .map(|()| results.first().and_then(Val::i32))
            }
            _ => return None,
        })
    }
}

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

/// Options for the wasmtime engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Let Cranelift inline calls between functions (wasmtime's `compiler_inlining`).
    pub inlining: bool,
}

/// Compiles and instantiates an instrumented kernel; the core state goes into the store.
///
/// # Errors
/// Compilation or instantiation failures.
pub fn instantiate_kernel(
    wasm: &[u8],
    state: KernelState,
    options: Options,
) -> Result<WasmtimeEngine, EngineError> {
    let mut config = Config::new();
    config.compiler_inlining(if options.inlining {
        Inlining::Yes
    } else {
        Inlining::No
    });
    let timeout = klp_core::kernel::soft_lockup_timeout(&state);
    config.epoch_interruption(timeout.is_some());
    let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError::Compile(e.to_string()))?;
    let boot = Instant::now();
    let watchdog = match timeout {
        // The first tick may come at once: one more tick makes the deadline at least `timeout`.
        Some(t) => Some(Watchdog::start(&engine, nanos(t) / nanos(TICK) + 1, boot)?),
        None => None,
    };
    let module = Module::new(&engine, wasm).map_err(|e| EngineError::Compile(format!("{e:#}")))?;
    let mut store = Store::new(
        &engine,
        HostData {
            state,
            handles: None,
            instances: 0,
            boot,
            watchdog,
            running_since: None,
            // Unlimited until the kernel is instantiated: its initial sizes set the floor.
            limits: Limits {
                memory_bytes: usize::MAX,
                table_elements: usize::MAX,
            },
        },
    );
    let mem = mem_param(&store.data().state);
    store.limiter(|data| &mut data.limits);
    if let Some(watchdog) = &store.data().watchdog {
        // The kernel's instantiation runs no code, but give it a deadline like any other entry.
        let ticks = watchdog.ticks;
        store.set_epoch_deadline(ticks);
    }
    let clock = Func::wrap(&mut store, |caller: Caller<'_, HostData>| -> i64 {
        i64::try_from(caller.data().boot.elapsed().as_nanos()).unwrap_or(i64::MAX)
    });
    let hostcall = Func::wrap(
        &mut store,
        |caller: Caller<'_, HostData>, op: i32, a: i32, b: i32, c: i32| -> wasmtime::Result<i32> {
            // A nested call's error stays an EngineError inside: `engine_error` unwraps it.
            hostcall::dispatch(&mut Context(caller), op, [a, b, c]).map_err(wasmtime::Error::new)
        },
    );
    let mut linker = Linker::new(&engine);
    linker
        .define(&mut store, "klp", "clock_ns", clock)
        .and_then(|l| l.define(&mut store, "klp", "hostcall", hostcall))
        .map_err(|e| EngineError::Instantiate(e.to_string()))?;
    let kernel = linker
        .instantiate(&mut store, &module)
        .map_err(|e| EngineError::Instantiate(format!("{e:#}")))?;
    let memory = kernel
        .get_memory(&mut store, "memory")
        .ok_or_else(|| EngineError::NoExport("memory".into()))?;
    let table = kernel
        .get_table(&mut store, "__indirect_function_table")
        .ok_or_else(|| EngineError::NoExport("__indirect_function_table".into()))?;
    let stack_pointer = kernel.get_global(&mut store, "__stack_pointer");
    let funcs: Vec<(Box<str>, Func)> = kernel
        .exports(&mut store)
        .filter_map(|export| {
            let name = export.name().into();
            export.into_func().map(|func| (name, func))
        })
        .collect();
    let exports = funcs
        .into_iter()
        .map(|(name, func)| (name, GuestFunc::new(&store, func)))
        .collect();
    // As in the kernel, RAM is `mem=` or the initial memory if that is larger.
    store.data_mut().limits = Limits {
        memory_bytes: mem.max(memory.data_size(&store)),
        table_elements: TABLE_MAX.max(table.size(&store) as usize),
    };
    store.data_mut().handles = Some(Handles {
        memory,
        table,
        stack_pointer,
        hostcall,
        clock,
        exports: Arc::new(exports),
    });
    Ok(Context(store))
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

/// Turns a wasmtime error into an [`EngineError`], keeping the trap's call trace. An interrupt
/// is the watchdog's: the outermost call, which started `since` nanoseconds after `boot`, is stuck.
fn engine_error(err: wasmtime::Error, boot: Instant, since: u64) -> EngineError {
    // An error of a guest call nested in a host call crosses `klp.hostcall` as the EngineError
    // `hostcall::dispatch` returned, under the host call's backtrace: a trap there already has
    // the innermost message and frames.
    let nested = err.downcast_ref::<EngineError>();
    if let Some(EngineError::Trap(inner)) = nested {
        return EngineError::Trap(inner.clone());
    }
    let trap = err.downcast_ref::<wasmtime::Trap>();
    let stuck_for = (trap == Some(&wasmtime::Trap::Interrupt))
        .then(|| Duration::from_nanos(nanos(boot.elapsed()).saturating_sub(since)));
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
        stuck_for,
    })
}

fn table_err(err: wasmtime::Error) -> EngineError {
    EngineError::Table(err.to_string())
}

impl<T: AsContextMut<Data = HostData>> Engine for Context<T> {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        f(&mut self.as_context_mut().data_mut().state)
    }

    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError> {
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
        match watched(self, |ctx| func.call(ctx, args)) {
            (Some(result), since) => {
                let boot = self.as_context().data().boot;
                result.map_err(|err| engine_error(err, boot, since))
            }
            (None, _) => {
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
        .map_err(table_err)
    }

    fn table_clear(&mut self, start: u32, len: u32) -> Result<(), EngineError> {
        table(self)
            .fill(
                &mut *self,
                u64::from(start),
                Ref::Func(None),
                u64::from(len),
            )
            .map_err(table_err)
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
        let h = handles(self);
        let (memory, table, stack_pointer, hostcall, clock) =
            (h.memory, h.table, h.stack_pointer, h.hostcall, h.clock);
        let module = Module::new(self.as_context().engine(), wasm)
            .map_err(|e| EngineError::Compile(format!("{e:#}")))?;
        let mut imports = Vec::new();
        for import in module.imports() {
            let ext: Extern = match (import.module(), import.name()) {
                ("env", "memory") => memory.into(),
                ("env", "__indirect_function_table") => table.into(),
                ("env", "__stack_pointer") => match stack_pointer {
                    Some(global) => global.into(),
                    None => {
                        return Err(EngineError::Instantiate(
                            "the kernel exports no __stack_pointer".into(),
                        ));
                    }
                },
                ("klp", "hostcall") => hostcall.into(),
                ("klp", "clock_ns") => clock.into(),
                (m, n) => return Err(EngineError::Instantiate(format!("unknown import {m}.{n}"))),
            };
            imports.push(ext);
        }
        // The store keeps the instance as long as the kernel runs; its functions are in the
        // table, so nothing needs the handle.
        let (instance, since) = watched(self, |ctx| Instance::new(ctx, &module, &imports));
        let boot = self.as_context().data().boot;
        instance.map_err(|e| match engine_error(e, boot, since) {
            EngineError::Trap(t) => EngineError::Instantiate(t.message),
            other => other,
        })?;
        let mut ctx = self.as_context_mut();
        let data = ctx.data_mut();
        let id = data.instances;
        data.instances = id
            .checked_add(1)
            .ok_or_else(|| EngineError::Instantiate("too many instances".into()))?;
        Ok(id)
    }

    fn now_ns(&mut self) -> u64 {
        u64::try_from(self.as_context().data().boot.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn backtrace(&mut self) -> Vec<Option<String>> {
        WasmBacktrace::force_capture(&*self)
            .frames()
            .iter()
            .map(|f| f.func_name().map(str::to_string))
            .collect()
    }

    /// Nothing to do: wasmtime frees instances only with their store, and nothing here refers
    /// to an instance by id.
    fn release(&mut self, _id: InstanceId) {}
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
    let image = klp_core::kernel::prepare(kernel, cmdline, hook)?;
    let mut engine = instantiate_kernel(&image.wasm, image.state, options)?;
    klp_core::kernel::boot(&mut engine, ModuleFiles::embedded(klp_artifacts::MODULES))?;
    Ok(engine)
}
