//! A tracer that fails to start is not left as the current tracer.

use klp_artifacts as artifacts;
use klp_core::engine::{Callee, Engine, EngineError, InstanceId};
use klp_core::fs;
use klp_core::state::KernelState;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

const CURRENT_TRACER: &str = "/sys/kernel/tracing/current_tracer";

/// The real engine, whose `n`th table write fails once (a fault while ftrace updates a slot).
struct FailingTableWrite<'a> {
    inner: &'a mut WasmtimeEngine,
    writes: u32,
    fail_at: u32,
}

impl Engine for FailingTableWrite<'_> {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        self.inner.with_state(f)
    }
    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError> {
        self.inner.call(callee, args)
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
        self.writes += 1;
        if self.writes == self.fail_at {
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
        self.inner.instantiate(wasm)
    }
    fn now_ns(&mut self) -> u64 {
        self.inner.now_ns()
    }
    fn backtrace(&mut self) -> Vec<Option<String>> {
        self.inner.backtrace()
    }
    fn release(&mut self, id: InstanceId) {
        self.inner.release(id);
    }
}

fn read(e: &mut impl Engine, path: &str) -> String {
    String::from_utf8(fs::read_file(e, path).expect("readable")).expect("text")
}

#[test]
fn a_function_tracer_that_fails_to_start_leaves_current_tracer_nop() {
    let mut kernel =
        rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("boots");
    let mut e = FailingTableWrite {
        inner: &mut kernel,
        writes: 0,
        fail_at: 3,
    };
    let written = fs::write_file(&mut e, CURRENT_TRACER, b"function\n", false);
    assert!(written.is_err(), "{written:?}");
    assert_eq!(read(&mut kernel, CURRENT_TRACER), "nop\n");
    assert_eq!(
        read(&mut kernel, "/sys/kernel/tracing/enabled_functions"),
        ""
    );
    // Without the fault it starts, and stops again.
    fs::write_file(&mut kernel, CURRENT_TRACER, b"function\n", false).expect("starts");
    assert_eq!(read(&mut kernel, CURRENT_TRACER), "function\n");
    fs::write_file(&mut kernel, CURRENT_TRACER, b"nop\n", false).expect("stops");
    assert_eq!(
        read(&mut kernel, "/sys/kernel/tracing/enabled_functions"),
        ""
    );
}
