//! Booting the kernel and running top-level operations with oops handling.

use crate::engine::{Engine, EngineError, GuestTrap};
use crate::fs::modules::ModuleFiles;
use crate::instrument::{self, FtraceMap};
use crate::kallsyms::{self, Kallsyms};
use crate::state::KernelState;
use crate::sys::{self, SysError};
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
    let (wasm, ftrace) = if !hook {
        (kernel.to_vec(), FtraceMap::default())
    } else if let Ok(map) = FtraceMap::from_instrumented(kernel) {
        (kernel.to_vec(), map)
    } else {
        let out = instrument::instrument(kernel, &[])?;
        (out.wasm, out.ftrace)
    };
    let kallsyms = Kallsyms::from_kernel(&wasm)?;
    Ok(BootImage {
        wasm,
        state: KernelState::new(&ftrace, kallsyms, cmdline),
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
    crate::fs::mount_modules(e, modules)?;
    Ok(())
}

/// Runs a top-level operation on behalf of the command `comm`. A trap inside it is a kernel
/// oops: the stack pointer is restored (the task is killed, the kernel goes on), the report is
/// logged, and the error is returned with the report in [`Oops`].
pub fn run_task<E: Engine, T>(
    e: &mut E,
    comm: &str,
    f: impl FnOnce(&mut E) -> Result<T, SysError>,
) -> Result<T, TaskError> {
    let sp = e.stack_pointer();
    e.with_state(|s| s.comm = comm.to_string());
    match f(e) {
        Ok(v) => Ok(v),
        Err(SysError::Engine(EngineError::Trap(trap))) => {
            e.set_stack_pointer(sp);
            // The task is dead: close what it had open, as exit does.
            for fd in e.with_state(|s| std::mem::take(&mut s.task_fds)) {
                let _ = sys::call(e, "sys_close", &[fd]);
            }
            let report = oops_report(e, comm, &trap);
            for line in report.lines() {
                // The log may be what broke; the report is returned either way.
                let _ = sys::printk(e, &format!("\x014{line}"));
            }
            // Closing the files or logging may have trapped too, leaving the stack pointer moved.
            e.set_stack_pointer(sp);
            Err(TaskError::Oops(Oops { report }))
        }
        Err(other) => Err(TaskError::Sys(other)),
    }
}

/// A kernel oops: the report as the log shows it.
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
    /// The guest trapped: a kernel oops.
    #[error("oops")]
    Oops(Oops),
}

fn oops_report(e: &mut impl Engine, comm: &str, trap: &GuestTrap) -> String {
    let (n, tainted) = e.with_state(|s| {
        s.oopses += 1;
        (s.oopses, s.taint_flags())
    });
    let mut report = format!(
        "Oops: {} [#{n}]\nCPU: 0 PID: 1 Comm: {comm} Tainted: {tainted} 6.12.0-klp #1\nCall Trace:\n <TASK>\n",
        trap.message
    );
    for frame in &trap.frames {
        let name = frame.as_deref().map_or_else(
            || "?".to_string(),
            |raw| kallsyms::symbol_name(raw).unwrap_or_else(|| raw.to_string()),
        );
        report.push_str(&format!(" {name}\n"));
    }
    report.push_str(" </TASK>\n---[ end trace 0000000000000000 ]---");
    report
}
