//! Booting the kernel and running top-level operations with oops handling.

use crate::engine::{Engine, EngineError, GuestTrap, Stop};
use crate::fs::modules::ModuleFiles;
use crate::ftrace::code::Code;
use crate::instrument::{self, FtraceMap, Variant};
use crate::kallsyms::{self, Kallsyms};
use crate::state::KernelState;
use crate::sys::{self, SysError};
use core::time::Duration;
/// How the engine switches tasks (the tasks rewrite it needs).
pub use klp_passes::instrument::tasks::Switching;
use thiserror::Error;

/// Errors while preparing or booting a kernel image.
#[derive(Debug, Error)]
pub enum BootError {
    /// The instrumentation pass refused the kernel.
    #[error("instrument: {0}")]
    Instrument(#[from] instrument::InstrumentError),
    /// The symbol table could not be read.
    #[error("kallsyms: {0}")]
    Kallsyms(#[from] kallsyms::KallsymsError),
    /// The engine could not run the kernel.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// `kernel_boot` failed.
    #[error("boot: {0}")]
    Sys(#[from] SysError),
}

/// A kernel image ready to be instantiated by an engine.
pub struct BootImage {
    /// The wasm to instantiate (instrumented unless asked otherwise).
    pub wasm: Vec<u8>,
    /// The core state that goes with it.
    pub state: KernelState,
}

/// Instruments `kernel` (unless it already is, or `hook` is false) and builds its kallsyms.
///
/// With `hook` false the kernel runs as built: no ftrace table, so nothing can be patched.
///
/// # Errors
/// The kernel is not valid wasm, or has no symbol table.
pub fn prepare(kernel: &[u8], cmdline: &str, hook: bool) -> Result<BootImage, BootError> {
    prepare_for(kernel, cmdline, hook, Some(Switching::Stacks))
}

/// [`prepare`] for an engine that switches tasks as `switching` says (wasmtime: stack
/// switching; the browser: its `klp.yield` import), or runs none (`None`): a kernel that
/// imports `klp.yield` gets the tasks rewrite only with tasks.
///
/// # Errors
/// As [`prepare`].
pub fn prepare_for(
    kernel: &[u8],
    cmdline: &str,
    hook: bool,
    switching: Option<Switching>,
) -> Result<BootImage, BootError> {
    let (wasm, ftrace, kallsyms) = if !hook {
        // No hook, but tasks all the same: the tasks rewrite stands on its own. It only
        // appends, so the symbols are the kernel's as built.
        let kallsyms = Kallsyms::from_kernel(kernel)?;
        let wasm = match switching {
            Some(switching) if instrument::tasks::uses_tasks(kernel)? => {
                instrument::tasks::add_tasks(kernel, switching)?
            }
            _ => kernel.to_vec(),
        };
        (wasm, FtraceMap::default(), kallsyms)
    } else {
        let (wasm, ftrace) = match FtraceMap::from_instrumented(kernel) {
            Ok(map) => (kernel.to_vec(), map),
            Err(_) => {
                let out = instrument::instrument_for(kernel, &[], switching)?;
                (out.wasm, out.ftrace)
            }
        };
        let kallsyms = Kallsyms::from_kernel(&wasm)?;
        (wasm, ftrace, kallsyms)
    };
    Ok(BootImage {
        wasm,
        state: KernelState::new(&ftrace, kallsyms, cmdline),
    })
}

/// [`prepare_for`] with the hook, for dynamic ftrace ([`crate::ftrace::code`]): the kernel
/// boots its plain variant, which defines its state and exports it for the other variants'
/// code modules to import, and the core state keeps what it takes to build those. A kernel
/// already instrumented has one code only: it is prepared as [`prepare_for`] does.
///
/// # Errors
/// As [`prepare`].
pub fn prepare_dynamic(
    kernel: &[u8],
    cmdline: &str,
    switching: Option<Switching>,
) -> Result<BootImage, BootError> {
    if FtraceMap::from_instrumented(kernel).is_ok() {
        return prepare_for(kernel, cmdline, true, switching);
    }
    let out = instrument::instrument_variant(kernel, &[], switching, &Variant::Plain)?;
    let split = instrument::split(&out.wasm)?;
    let kallsyms = Kallsyms::from_kernel(&out.wasm)?;
    let mut state = KernelState::new(&out.ftrace, kallsyms, cmdline);
    let mut code = Code::new(kernel.into(), switching, &out.calls, &out.ftrace);
    code.add_built(
        crate::ftrace::code::boot_key(&Variant::Plain),
        Variant::Plain,
        split.boot.as_slice().into(),
    );
    state.code = Some(code);
    Ok(BootImage {
        wasm: split.boot,
        state,
    })
}

/// Runs `kernel_boot` with the state's command line, then mounts `modules` (the built-in
/// modules, for the `klp` command and the page) at `/lib/modules/<release>` as an initramfs
/// would provide them.
///
/// # Errors
/// A trap or error during boot.
pub fn boot(e: &mut impl Engine, modules: ModuleFiles) -> Result<(), BootError> {
    let buf = sys::call(e, "klp_user_buffer", &[])? as u32;
    let cmdline = e.with_state(|s| {
        s.user_buffer = buf;
        s.cmdline.clone()
    });
    e.write(buf, cmdline.as_bytes())?;
    sys::call(e, "kernel_boot", &[buf as i32, cmdline.len() as i32])?;
    crate::tasks::init(e)?;
    crate::ftrace::code::init(e)?;
    crate::fs::mount_modules(e, modules)?;
    Ok(())
}

/// Runs a top-level operation on behalf of the command `comm`. A trap inside it is a kernel
/// oops: the stack pointer is restored (the task is killed, the kernel goes on), the report is
/// logged, and the error is returned with the report in [`Oops`]. A call the engine's watchdog
/// interrupted is handled the same way, with the soft lockup report instead of the oops.
pub fn run_task<E: Engine, T>(
    e: &mut E,
    comm: &str,
    f: impl FnOnce(&mut E) -> Result<T, SysError>,
) -> Result<T, TaskError> {
    let sp = e.stack_pointer();
    e.with_state(|s| s.comm = comm.to_string());
    // A variant compiled in the background is swapped in here too (the scheduler does it
    // between slices; a kernel without tasks has no scheduler).
    crate::ftrace::code::poll(e).map_err(TaskError::Sys)?;
    // Without tasks, the command is `current`: trace events name it.
    crate::tracing::ring::note_current(e).map_err(|err| TaskError::Sys(err.into()))?;
    let mut pid = PID;
    let result = crate::tasks::with_command(e, comm, |e| {
        pid = e.with_state(|s| s.tasks.command_pid()).unwrap_or(PID);
        f(e)
    });
    match result {
        Ok(v) => Ok(v),
        Err(SysError::Engine(EngineError::Trap(trap))) => {
            e.set_stack_pointer(sp);
            // The task is dead: close what it had open, as exit does.
            for fd in e.with_state(|s| std::mem::take(&mut s.task_fds)) {
                let _ = sys::call(e, "sys_close", &[fd]);
            }
            let report = match trap.stop {
                Some(Stop::SoftLockup(stuck)) => lockup_report(e, comm, pid, &trap, stuck),
                // Killed by SIGINT: nothing to report, as for a process.
                Some(Stop::Interrupted) => {
                    e.set_stack_pointer(sp);
                    return Err(TaskError::Interrupted);
                }
                None => oops_report(e, comm, pid, &trap),
            };
            for line in report.lines() {
                // The log may be what broke; the report is returned either way. A printk that
                // locks up would lock up for every line: one deadline is enough.
                if locked_up(&sys::printk(e, &format!("\x014{line}"))) {
                    break;
                }
            }
            // Closing the files or logging may have trapped too, leaving the stack pointer moved.
            e.set_stack_pointer(sp);
            Err(TaskError::Oops(Oops { report }))
        }
        Err(other) => Err(TaskError::Sys(other)),
    }
}

/// Whether `result` is a call the watchdog interrupted.
fn locked_up<T>(result: &Result<T, SysError>) -> bool {
    matches!(
        result,
        Err(SysError::Engine(EngineError::Trap(GuestTrap {
            stop: Some(Stop::SoftLockup(_)),
            ..
        })))
    )
}

/// A kernel oops or soft lockup: the report as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oops {
    /// The report, one line per log record.
    pub report: String,
}

/// How a top-level operation failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TaskError {
    /// The kernel returned an error.
    #[error(transparent)]
    Sys(SysError),
    /// The guest trapped (a kernel oops) or locked up (the watchdog interrupted it).
    #[error("oops")]
    Oops(Oops),
    /// The user interrupted the command (Ctrl-C): its task was killed, as by SIGINT.
    #[error("interrupted")]
    Interrupted,
}

/// Reports the trap of a task no command waits for (a kernel thread, a worker): the oops, or
/// the soft lockup, goes to the log; the task is dead, the kernel goes on.
pub(crate) fn report_dead_task(e: &mut impl Engine, comm: &str, pid: i32, trap: &GuestTrap) {
    let report = match trap.stop {
        Some(Stop::SoftLockup(stuck)) => lockup_report(e, comm, pid, trap, stuck),
        _ => oops_report(e, comm, pid, trap),
    };
    for line in report.lines() {
        if sys::printk(e, &format!("\x014{line}")).is_err() {
            break;
        }
    }
}

fn oops_report(e: &mut impl Engine, comm: &str, pid: i32, trap: &GuestTrap) -> String {
    let (n, tainted) = e.with_state(|s| {
        s.oopses += 1;
        (s.oopses, s.taint_flags())
    });
    let report = task_report(comm, pid, &tainted, trap);
    // Where it happened, as Linux's `RIP:` line, with the engine's own words for the trap.
    let rip = format!(
        "RIP: {} ({})\n",
        frame_name(trap.frames.first()),
        trap.message
    );
    let at = report.find("Call Trace:").unwrap_or(0);
    format!(
        "Oops: {}: 0000 [#{n}]\n{}{rip}{}\n---[ end trace 0000000000000000 ]---",
        oops_kind(&trap.message),
        &report[..at],
        &report[at..]
    )
}

/// The x86 exception Linux would name for a WebAssembly trap: `BUG()` is `unreachable` here as
/// `ud2` is there, a division traps as `#DE` does, a bad access faults, a runaway recursion hits
/// the stack guard.
fn oops_kind(message: &str) -> &'static str {
    const KINDS: [(&str, &str); 7] = [
        ("unreachable", "invalid opcode"),
        ("indirect call type mismatch", "invalid opcode"),
        ("divide by zero", "divide error"),
        ("integer overflow", "divide error"),
        ("call stack exhausted", "stack guard page"),
        ("out of bounds", "general protection fault"),
        ("uninitialized element", "general protection fault"),
    ];
    KINDS
        .iter()
        .find(|(wasm, _)| message.contains(wasm))
        .map_or("general protection fault", |&(_, linux)| linux)
}

/// A frame's name as the call trace prints it (`?` when unnamed).
fn frame_name(frame: Option<&Option<String>>) -> String {
    match frame {
        Some(Some(raw)) => kallsyms::symbol_name(raw).unwrap_or_else(|| raw.to_string()),
        _ => "?".to_string(),
    }
}

/// The soft lockup watchdog's report, as Linux's `watchdog_timer_fn` prints it: the seconds the
/// task has been stuck (rounded down, as Linux does), then the task and where it was spinning.
/// The task is killed like an oopsing one, but a lockup is no oops: it adds no `D` taint.
fn lockup_report(
    e: &mut impl Engine,
    comm: &str,
    pid: i32,
    trap: &GuestTrap,
    stuck: Duration,
) -> String {
    let tainted = e.with_state(|s| s.taint_flags());
    format!(
        "watchdog: BUG: soft lockup - CPU#0 stuck for {}s! [{comm}:{pid}]\n{}",
        stuck.as_secs(),
        task_report(comm, pid, &tainted, trap)
    )
}

/// The pid a report names for a command of a kernel without tasks: the shell's one task.
const PID: i32 = 1;

/// The task line and the call trace, innermost frame first (no newline after `</TASK>`).
fn task_report(comm: &str, pid: i32, tainted: &str, trap: &GuestTrap) -> String {
    let mut report = format!(
        "CPU: 0 PID: {pid} Comm: {comm} Tainted: {tainted} 6.12.0-klp #1\nCall Trace:\n <TASK>\n"
    );
    let kernel_frames = trap
        .frames
        .iter()
        .filter(|f| !f.as_deref().is_some_and(crate::tasks::is_machinery));
    for frame in kernel_frames {
        report.push_str(&format!(" {}\n", frame_name(Some(frame))));
    }
    report.push_str(" </TASK>");
    report
}
