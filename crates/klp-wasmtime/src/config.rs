//! The wasmtime `Config` a kernel runs on: with tasks (stack switching) or as before (inlining allowed).

use klp_core::engine::EngineError;
use std::num::NonZeroUsize;
use wasmtime::{Config, Inlining};

/// Options for the wasmtime engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Let Cranelift inline calls between functions (wasmtime's `compiler_inlining`). Refused
    /// for a kernel with tasks: wasmtime cannot inline with stack switching enabled.
    pub inlining: bool,
    /// Run the kernel without tasks, as the browser does: no tasks rewrite, so no stack
    /// switching (and inlining is allowed); kernel threads never run, sleeps end by running the
    /// timers, transitions complete at once.
    pub no_tasks: bool,
    /// The seed of the scheduler's choices ([`klp_core::tasks::Tasks::set_seed`]): the same
    /// seed gives the same interleaving.
    pub sched_seed: u64,
    /// How calls reach their slots: the kernel runs plain until a hook needs them (dynamic,
    /// the default), or always through them (`klp run --ftrace=always`).
    pub ftrace: klp_core::ftrace::code::Mode,
}

/// Frames a backtrace keeps: a sleeping task's whole stack, not wasmtime's default 20.
pub const BACKTRACE_FRAMES: usize = 256;

/// The `Config` for a kernel. `tasks` (the kernel imports `klp.yield`, so the instrumentation
/// pass gave it a task dispatcher: [`klp_passes::instrument::tasks`]) turns on what the
/// dispatcher needs (stack switching, exceptions for its tags, typed function references for
/// its continuation types) and deep backtraces; without it the config is the one every kernel
/// ran on before tasks.
///
/// # Errors
/// [`EngineError::Compile`] when `options.inlining` is asked for a kernel with tasks.
pub fn kernel_config(options: Options, tasks: bool) -> Result<Config, EngineError> {
    let mut config = Config::new();
    if tasks {
        if options.inlining {
            return Err(EngineError::Compile(
                "inlining is not available for a kernel with tasks: wasmtime cannot inline \
                 calls when stack switching is enabled"
                    .into(),
            ));
        }
        config.wasm_stack_switching(true);
        config.wasm_exceptions(true);
        config.wasm_function_references(true);
        config.wasm_backtrace_max_frames(NonZeroUsize::new(BACKTRACE_FRAMES));
    }
    config.compiler_inlining(if options.inlining {
        Inlining::Yes
    } else {
        Inlining::No
    });
    // ftrace's transition dispatchers `return_call_indirect` (wasmtime's default, made explicit).
    config.wasm_tail_call(true);
    config.epoch_interruption(true);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlining_is_refused_with_tasks_only() {
        let inlining = Options {
            inlining: true,
            ..Options::default()
        };
        let err = kernel_config(inlining, true).err().unwrap();
        assert!(
            err.to_string().contains("inlining is not available"),
            "{err}"
        );
        wasmtime::Engine::new(&kernel_config(inlining, false).unwrap()).unwrap();
        wasmtime::Engine::new(&kernel_config(Options::default(), true).unwrap()).unwrap();
    }

    #[test]
    fn transition_dispatchers_compile_with_and_without_tasks() {
        use klp_core::ftrace::dispatcher::{Current, Spec, build};
        let spec = Spec {
            name: "f".into(),
            sig: klp_passes::instrument::FuncSig::default(),
            base: 4,
        };
        let current = Current {
            current_ptr: 16,
            patch_state_offset: 8,
        };
        let wasm = build(&[spec], current);
        for tasks in [false, true] {
            let config = kernel_config(Options::default(), tasks).unwrap();
            let engine = wasmtime::Engine::new(&config).unwrap();
            wasmtime::Module::new(&engine, &wasm).expect("tail calls are on");
        }
    }
}
