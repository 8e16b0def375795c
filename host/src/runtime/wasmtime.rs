//! The [`Engine`] on wasmtime: the kernel and its modules share one `Store`.

use crate::engine::{Callee, Engine, EngineError, GuestTrap, InstanceId};
use crate::hostcall;
use crate::state::KernelState;
use std::time::Instant;
use wasmtime::{
    AsContext, AsContextMut, Caller, Config, Extern, Func, Global, Inlining, Instance, Linker,
    Memory, Module, Ref, Store, Table, Val, WasmBacktrace,
};

/// The data of the wasmtime `Store`: the core state and the handles of the running kernel.
pub struct HostData {
    state: KernelState,
    handles: Option<Handles>,
    boot: Instant,
}

#[derive(Clone)]
struct Handles {
    kernel: Instance,
    memory: Memory,
    table: Table,
    /// `None` for a kernel run without instrumentation (it exports no stack pointer).
    stack_pointer: Option<Global>,
    hostcall: Func,
    clock: Func,
    instances: Vec<Option<Instance>>,
}

/// The wasmtime engine: a `Store` holding the kernel instance, its modules and the core state.
pub type WasmtimeEngine = Store<HostData>;

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
    let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError::Compile(e.to_string()))?;
    let module = Module::new(&engine, wasm).map_err(|e| EngineError::Compile(format!("{e:#}")))?;
    let mut store = Store::new(
        &engine,
        HostData {
            state,
            handles: None,
            boot: Instant::now(),
        },
    );
    let clock = Func::wrap(&mut store, |caller: Caller<'_, HostData>| -> i64 {
        i64::try_from(caller.data().boot.elapsed().as_nanos()).unwrap_or(i64::MAX)
    });
    let hostcall = Func::wrap(
        &mut store,
        |mut caller: Caller<'_, HostData>,
         op: i32,
         a: i32,
         b: i32,
         c: i32|
         -> wasmtime::Result<i32> {
            hostcall::dispatch(&mut caller, op, [a, b, c]).map_err(wasmtime::Error::new)
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
    store.data_mut().handles = Some(Handles {
        kernel,
        memory,
        table,
        stack_pointer,
        hostcall,
        clock,
        instances: Vec::new(),
    });
    Ok(store)
}

fn handles(ctx: &impl AsContext<Data = HostData>) -> Handles {
    ctx.as_context()
        .data()
        .handles
        .clone()
        .expect("kernel instantiated before use")
}

/// Turns a wasmtime error into an [`EngineError`], keeping the trap's call trace.
fn engine_error(err: wasmtime::Error) -> EngineError {
    if let Some(inner) = err.downcast_ref::<GuestTrap>() {
        return EngineError::Trap(inner.clone());
    }
    let message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}")
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
    EngineError::Trap(GuestTrap { message, frames })
}

fn table_err(err: wasmtime::Error) -> EngineError {
    EngineError::Table(err.to_string())
}

impl<T: AsContextMut<Data = HostData>> Engine for T {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        f(&mut self.as_context_mut().data_mut().state)
    }

    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError> {
        let h = handles(self);
        let func = match callee {
            Callee::Export(name) => h
                .kernel
                .get_func(&mut *self, name)
                .ok_or_else(|| EngineError::NoExport(name.to_string()))?,
            Callee::Slot(slot) => match h.table.get(&mut *self, u64::from(slot)) {
                Some(Ref::Func(Some(f))) => f,
                _ => return Err(EngineError::Table(format!("slot {slot} holds no function"))),
            },
        };
        let ty = func.ty(&*self);
        if ty.params().len() != args.len() || ty.results().len() > 1 {
            return Err(EngineError::NoExport(format!("{callee:?} has type {ty:?}")));
        }
        let params: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
        let mut results = vec![Val::I32(0); ty.results().len()];
        func.call(&mut *self, &params, &mut results)
            .map_err(engine_error)?;
        Ok(results.first().and_then(Val::i32))
    }

    fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), EngineError> {
        handles(self)
            .memory
            .read(&*self, addr as usize, buf)
            .map_err(|_| EngineError::Fault(addr))
    }

    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), EngineError> {
        handles(self)
            .memory
            .write(&mut *self, addr as usize, data)
            .map_err(|_| EngineError::Fault(addr))
    }

    fn table_len(&mut self) -> u32 {
        u32::try_from(handles(self).table.size(&*self)).unwrap_or(u32::MAX)
    }

    fn table_grow(&mut self, delta: u32) -> Result<u32, EngineError> {
        let old = handles(self)
            .table
            .grow(&mut *self, u64::from(delta), Ref::Func(None))
            .map_err(table_err)?;
        u32::try_from(old).map_err(|_| EngineError::Table("table too large".into()))
    }

    fn table_copy(&mut self, dst: u32, src: u32) -> Result<(), EngineError> {
        let table = handles(self).table;
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
        handles(self)
            .table
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
        let module = Module::new(self.as_context().engine(), wasm)
            .map_err(|e| EngineError::Compile(format!("{e:#}")))?;
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
                ("klp", "hostcall") => h.hostcall.into(),
                ("klp", "clock_ns") => h.clock.into(),
                (m, n) => return Err(EngineError::Instantiate(format!("unknown import {m}.{n}"))),
            };
            imports.push(ext);
        }
        let instance =
            Instance::new(&mut *self, &module, &imports).map_err(|e| match engine_error(e) {
                EngineError::Trap(t) => EngineError::Instantiate(t.message),
                other => other,
            })?;
        let mut ctx = self.as_context_mut();
        let handles = ctx
            .data_mut()
            .handles
            .as_mut()
            .expect("kernel instantiated before use");
        handles.instances.push(Some(instance));
        u32::try_from(handles.instances.len() - 1)
            .map_err(|_| EngineError::Instantiate("too many instances".into()))
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

    fn release(&mut self, id: InstanceId) {
        if let Some(h) = self.as_context_mut().data_mut().handles.as_mut()
            && let Some(slot) = h.instances.get_mut(id as usize)
        {
            *slot = None;
        }
    }
}

/// Prepares, instantiates and boots a kernel on wasmtime.
///
/// # Errors
/// Anything [`crate::kernel::prepare`], [`instantiate_kernel`] or [`crate::kernel::boot`] reports.
pub fn boot(
    kernel: &[u8],
    cmdline: &str,
    hook: bool,
    options: Options,
) -> Result<WasmtimeEngine, crate::kernel::BootError> {
    let image = crate::kernel::prepare(kernel, cmdline, hook)?;
    let mut engine = instantiate_kernel(&image.wasm, image.state, options)?;
    crate::kernel::boot(&mut engine)?;
    Ok(engine)
}
