//! The engine trait: the few things the core needs from a WebAssembly engine.
//!
//! The core (loader, livepatch, ftrace, tracing, sysfs, the file namespace) and klp-shell are
//! written against this trait only. klp-wasmtime implements it on wasmtime; klp-web implements it
//! on the browser's own WebAssembly engine. Every implementation routes the kernel's imports
//! `klp.clock_ns` and `klp.hostcall` and gives modules the imports `env.memory`,
//! `env.__indirect_function_table`, `env.__stack_pointer` and `env.__klp_caller` (the kernel's
//! own), and `klp.clock_ns` (trampolines read the clock).

use crate::state::KernelState;
use core::time::Duration;
use std::sync::Arc;
use thiserror::Error;

/// Identifies a module instance created with [`Engine::instantiate`].
pub type InstanceId = u32;

/// Identifies one code module of the running kernel ([`crate::ftrace::code`]): one key, one
/// variant, the same bytes.
pub type CodeKey = u64;

/// What to call in the guest.
#[derive(Debug, Clone, Copy)]
pub enum Callee<'a> {
    /// An export of the kernel instance, by name.
    Export(&'a str),
    /// Whatever function the ftrace table holds at this slot (a function pointer).
    Slot(u32),
}

/// A trap in the guest: the engine's message and the call trace, innermost frame first.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct GuestTrap {
    /// The engine's description of the trap (`integer divide by zero`, `unreachable`, ...).
    pub message: String,
    /// Raw function names from the name section, innermost first; `None` where unnamed.
    pub frames: Vec<Option<String>>,
    /// Set when the engine stopped a call that did not fault: its watchdog (a soft lockup) or
    /// the user (Ctrl-C).
    pub stop: Option<Stop>,
}

/// Why the engine stopped a guest call that did not fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The call ran past the watchdog's deadline: how long the outermost guest call had been
    /// running.
    SoftLockup(Duration),
    /// The user interrupted the command (Ctrl-C): its task is killed, as by SIGINT.
    Interrupted,
}

/// Errors from the engine.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EngineError {
    /// The guest trapped.
    #[error(transparent)]
    Trap(#[from] GuestTrap),
    /// A module failed to compile or validate.
    #[error("compile error: {0}")]
    Compile(String),
    /// A module failed to instantiate (missing or mismatched import, elements out of bounds).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The kernel has no export of that name, or it is not a function of `i32`s.
    #[error("no such export: {0}")]
    NoExport(String),
    /// A table slot is out of range or the table cannot grow.
    #[error("table: {0}")]
    Table(String),
    /// A memory access outside the kernel's memory.
    #[error("bad address {0:#x}")]
    Fault(u32),
}

/// How a task's run ended ([`Engine::task_resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStop {
    /// Its entry function returned: the task holds no frames any more.
    Finished,
    /// It called `klp.yield` (the kernel's `schedule()`); resume it with this stack pointer.
    Yielded(u32),
    /// Its budget ran out at a loop header; resume it with this stack pointer.
    Preempted(u32),
}

/// A task's run: how it ended and how many loop headers it passed (its budget used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// How the run ended.
    pub stop: TaskStop,
    /// Loop headers passed: the work done, in the units of the preemption budget.
    pub used: u32,
}

/// A running kernel instance and the modules linked into it.
///
/// Calls may re-enter the core: the guest calls `klp.hostcall`, which runs
/// [`crate::hostcall::dispatch`] with an engine handle of the same type. The core state is only
/// reachable through [`Engine::with_state`], whose closure cannot call the guest, so no borrow of
/// it is ever held across a guest call.
pub trait Engine {
    /// Runs `f` on the core state.
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R;

    /// Calls a guest function taking and returning `i32`s.
    ///
    /// # Errors
    /// A trap, or a callee that does not exist or has another type.
    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError>;

    /// Reads kernel memory.
    ///
    /// # Errors
    /// [`EngineError::Fault`] when the range is outside the memory.
    fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), EngineError>;

    /// Writes kernel memory.
    ///
    /// # Errors
    /// [`EngineError::Fault`] when the range is outside the memory.
    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), EngineError>;

    /// Reads a little-endian 32-bit word of kernel memory.
    ///
    /// # Errors
    /// [`EngineError::Fault`] when it is outside the memory.
    fn read_u32(&mut self, addr: u32) -> Result<u32, EngineError> {
        let mut word = [0; 4];
        self.read(addr, &mut word)?;
        Ok(u32::from_le_bytes(word))
    }

    /// Writes a little-endian 32-bit word of kernel memory.
    ///
    /// # Errors
    /// [`EngineError::Fault`] when it is outside the memory.
    fn write_u32(&mut self, addr: u32, value: u32) -> Result<(), EngineError> {
        self.write(addr, &value.to_le_bytes())
    }

    /// The current length of the ftrace table.
    fn table_len(&mut self) -> u32;

    /// Grows the ftrace table by `delta` null entries and returns the old length.
    ///
    /// # Errors
    /// [`EngineError::Table`] when the table cannot grow.
    fn table_grow(&mut self, delta: u32) -> Result<u32, EngineError>;

    /// Makes table entry `dst` refer to the function held at entry `src` (the livepatch switch).
    ///
    /// # Errors
    /// [`EngineError::Table`] when either index is out of range.
    fn table_copy(&mut self, dst: u32, src: u32) -> Result<(), EngineError>;

    /// Sets `len` table entries from `start` to null.
    ///
    /// # Errors
    /// [`EngineError::Table`] when the range is out of bounds.
    fn table_clear(&mut self, start: u32, len: u32) -> Result<(), EngineError>;

    /// The kernel's `__stack_pointer`.
    fn stack_pointer(&mut self) -> u32;

    /// Sets the kernel's `__stack_pointer` (used to unwind after a trap).
    fn set_stack_pointer(&mut self, sp: u32);

    /// Compiles and instantiates a linked module against the kernel's memory, table, stack
    /// pointer and host imports. Active element segments write the module's functions into the
    /// table during instantiation.
    ///
    /// # Errors
    /// Compilation or instantiation failure; the table may hold partial writes only in entries
    /// the caller allocated for this module.
    fn instantiate(&mut self, wasm: &[u8]) -> Result<InstanceId, EngineError>;

    /// The guest call stack at this moment, innermost frame first (raw names from the name
    /// sections). Called from a host call, it shows the kernel functions that led to it.
    fn backtrace(&mut self) -> Vec<Option<String>>;

    /// Whether the kernel has tasks (docs/ABI.md "Tasks": it imports `klp.yield` and the
    /// instrumentation pass gave it `__klp_task_spawn` and `__klp_task_resume`) and this engine
    /// can run them. Without tasks every call runs to its end on the caller's stack.
    fn has_tasks(&mut self) -> bool {
        false
    }

    /// Whether this handle is inside a host call (guest frames are live below it): no task may
    /// be resumed from here, and kernel code called from here must not sleep. Only engines
    /// with tasks need to know.
    fn in_host_call(&mut self) -> bool {
        false
    }

    /// Prepares task slot `task` to run the kernel function `fn(i32)` held by table entry
    /// `entry` with `arg` (`__klp_task_spawn`).
    ///
    /// # Errors
    /// A trap (a slot that holds an unfinished task), or an engine without tasks.
    fn task_spawn(&mut self, task: u32, entry: u32, arg: i32) -> Result<(), EngineError> {
        let _ = (task, entry, arg);
        Err(EngineError::NoExport("__klp_task_spawn".into()))
    }

    /// Runs task slot `task` on the stack pointer `sp` until it yields, is preempted after
    /// `budget` loop headers, or finishes (`__klp_task_resume`). After a trap the task slot is
    /// empty and the engine has put its own stack pointer and current task back.
    ///
    /// # Errors
    /// A trap in the task (it is dead), or an engine without tasks.
    fn task_resume(&mut self, task: u32, sp: u32, budget: i32) -> Result<Resumed, EngineError> {
        let _ = (task, sp, budget);
        Err(EngineError::NoExport("__klp_task_resume".into()))
    }

    /// Takes the user's interrupt (Ctrl-C) if one is pending and was not delivered to a guest
    /// call: the scheduler passes it on to the command's task between two runs.
    fn take_interrupt(&mut self) -> bool {
        false
    }

    /// Whether this engine can run the kernel's code variants (dynamic ftrace,
    /// [`crate::ftrace::code`]): the kernel booted its plain variant's boot code, which
    /// defines the state the other variants' code modules import, and [`Engine::swap_code`]
    /// can replace the code.
    fn swaps_code(&mut self) -> bool {
        false
    }

    /// Starts compiling the kernel code module `wasm`, known as `key`, in the background
    /// unless it is compiled or being compiled: a later [`Engine::swap_code`] with `key` then
    /// compiles nothing.
    fn prepare_code(&mut self, key: CodeKey, wasm: &Arc<[u8]>) {
        let _ = (key, wasm);
    }

    /// Whether the code module `key` is compiled ([`Engine::prepare_code`] finished).
    fn code_ready(&mut self, key: CodeKey) -> bool {
        let _ = key;
        false
    }

    /// Runs the code module `key` as the kernel from now on: instantiated over the kernel's
    /// state (once per store; compiled first if [`Engine::prepare_code`] has not finished),
    /// its functions written into every table entry the kernel's own code holds, its exports
    /// and task entry points used for calls and tasks started from now on. Tasks holding
    /// frames keep running the code they started in. Entries the core redirected are
    /// overwritten: the caller writes them again.
    ///
    /// # Errors
    /// An engine without code variants, an unknown `key`, a compile or instantiation failure
    /// (nothing changed then).
    fn swap_code(&mut self, key: CodeKey) -> Result<(), EngineError> {
        Err(EngineError::Instantiate(format!(
            "code variant {key:#x}: this engine runs one kernel code"
        )))
    }

    /// Moves the kernel to a fresh store whose boot code is the code module `key` (prepared
    /// with [`Engine::prepare_code`]: the boot code of the variant running now, which defines
    /// the kernel's state itself), so the running code no longer imports its state. Only
    /// between guest calls, while no task holds frames.
    ///
    /// # Errors
    /// An engine without code variants, a task holding frames, an unknown `key`, or any
    /// failure of the move (nothing changed then).
    fn rehome_code(&mut self, key: CodeKey) -> Result<(), EngineError> {
        Err(EngineError::Instantiate(format!(
            "code variant {key:#x}: this engine runs one kernel code"
        )))
    }

    /// Forgets an instance. Engines that cannot free instances early keep them until the kernel
    /// is dropped, but the instance is never used again.
    fn release(&mut self, id: InstanceId);
}
