//! The real wasmtime engine behind an [`Engine`] that counts what the core asks of it and fails
//! what a test tells it to: one wrapper for the fault-injection, tracer-failure and insmod-cost
//! tests.
//!
//! Calls the guest makes back into the core (`klp.hostcall`) run with the runtime's own engine
//! handle, not with this wrapper: only the core's top-level requests are counted and failed.

use klp_core::engine::{Callee, Engine, EngineError, GuestTrap, InstanceId, Resumed};
use klp_core::state::KernelState;
use klp_wasmtime::WasmtimeEngine;

/// What to fail, by the 1-based number of the request of its kind.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Trap this guest call, as an oops in it would (the stack pointer left moved).
    pub call: Option<u32>,
    /// Fail this table copy with a table error.
    pub table_copy: Option<u32>,
    /// Refuse every instantiation with this message.
    pub instantiate: Option<String>,
}

/// The wrapper: the engine, the faults to inject, and the counts so far.
pub struct Spy<'a> {
    /// The real engine.
    pub inner: &'a mut WasmtimeEngine,
    /// What to fail.
    pub faults: Faults,
    /// Guest calls made.
    pub calls: u32,
    /// Table entries copied.
    pub table_copies: u32,
    /// Bytes of wasm instantiated.
    pub instantiated_bytes: usize,
    /// Blocks `kmalloc` handed out through this wrapper.
    pub allocated: Vec<u32>,
    /// Blocks `kfree` took back through it.
    pub freed: Vec<u32>,
}

impl<'a> Spy<'a> {
    /// Wraps `inner`, injecting `faults`.
    pub fn new(inner: &'a mut WasmtimeEngine, faults: Faults) -> Self {
        Spy {
            inner,
            faults,
            calls: 0,
            table_copies: 0,
            instantiated_bytes: 0,
            allocated: Vec::new(),
            freed: Vec::new(),
        }
    }
}

impl Engine for Spy<'_> {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        self.inner.with_state(f)
    }

    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError> {
        self.calls += 1;
        if Some(self.calls) == self.faults.call {
            // A real trap leaves the stack pointer where the trapping frames moved it.
            let sp = self.inner.stack_pointer();
            self.inner.set_stack_pointer(sp - 256);
            return Err(EngineError::Trap(GuestTrap {
                message: format!("injected fault at call {} ({callee:?})", self.calls),
                frames: vec![Some("injected_fault".into())],
                stop: None,
            }));
        }
        let ret = self.inner.call(callee, args)?;
        match callee {
            Callee::Export("kmalloc") => self.allocated.extend(ret.map(|r| r as u32)),
            Callee::Export("kfree") => self.freed.push(args[0] as u32),
            _ => {}
        }
        Ok(ret)
    }

    fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), EngineError> {
        self.inner.read(addr, buf)
    }

    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), EngineError> {
        self.inner.write(addr, data)
    }

    fn table_len(&mut self) -> u32 {
        self.inner.table_len()
    }

    fn table_grow(&mut self, delta: u32) -> Result<u32, EngineError> {
        self.inner.table_grow(delta)
    }

    fn table_copy(&mut self, dst: u32, src: u32) -> Result<(), EngineError> {
        self.table_copies += 1;
        if Some(self.table_copies) == self.faults.table_copy {
            return Err(EngineError::Table("injected failure".into()));
        }
        self.inner.table_copy(dst, src)
    }

    fn table_clear(&mut self, start: u32, len: u32) -> Result<(), EngineError> {
        self.inner.table_clear(start, len)
    }

    fn stack_pointer(&mut self) -> u32 {
        self.inner.stack_pointer()
    }

    fn set_stack_pointer(&mut self, sp: u32) {
        self.inner.set_stack_pointer(sp);
    }

    fn instantiate(&mut self, wasm: &[u8]) -> Result<InstanceId, EngineError> {
        if let Some(message) = &self.faults.instantiate {
            return Err(EngineError::Instantiate(message.clone()));
        }
        self.instantiated_bytes += wasm.len();
        self.inner.instantiate(wasm)
    }

    fn backtrace(&mut self) -> Vec<Option<String>> {
        self.inner.backtrace()
    }

    fn release(&mut self, id: InstanceId) {
        self.inner.release(id);
    }

    fn has_tasks(&mut self) -> bool {
        self.inner.has_tasks()
    }

    fn in_host_call(&mut self) -> bool {
        self.inner.in_host_call()
    }

    fn task_spawn(&mut self, task: u32, entry: u32, arg: i32) -> Result<(), EngineError> {
        self.inner.task_spawn(task, entry, arg)
    }

    fn task_resume(&mut self, task: u32, sp: u32, budget: i32) -> Result<Resumed, EngineError> {
        self.inner.task_resume(task, sp, budget)
    }
}
