//! The wasmtime `Config` a kernel runs on: with tasks (stack switching) or as before (inlining
//! allowed), with or without wasmtime's on-disk compilation cache.

use klp_core::engine::EngineError;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Once;
use wasmtime::{Cache, CacheConfig, Config, Inlining};

/// Options for the wasmtime engine.
#[derive(Debug, Clone, Default)]
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
    /// The directory of wasmtime's compilation cache (`None`: every boot compiles). Every
    /// module compiled on the engine — the kernel, its modules, trampolines, transition
    /// dispatchers — is looked up there before Cranelift runs, and stored there after. The key
    /// is wasmtime's own: a SHA-256 of the wasm bytes and of the engine's compile settings
    /// (target triple, Cranelift flags, the ISA flags of the CPU it detected, tunables, wasm
    /// features), in a subdirectory named after the wasmtime version; a change to any of them
    /// is a miss, never a stale hit. A relative path is taken from the current directory.
    pub cache_dir: Option<PathBuf>,
}

/// Frames a backtrace keeps: a sleeping task's whole stack, not wasmtime's default 20.
pub const BACKTRACE_FRAMES: usize = 256;

/// The `Config` for a kernel. `tasks` (the kernel imports `klp.yield`, so the instrumentation
/// pass gave it a task dispatcher: [`klp_passes::instrument::tasks`]) turns on what the
/// dispatcher needs (stack switching, exceptions for its tags, typed function references for
/// its continuation types) and deep backtraces; without it the config is the one every kernel
/// ran on before tasks.
///
/// `options.cache_dir` turns on wasmtime's compilation cache there (see [`Options::cache_dir`]).
/// A cache that cannot be set up (the directory cannot be created, say) does not stop the
/// kernel: the config has no cache, and the first such failure of the process is reported on
/// stderr. Writes that fail later are wasmtime's to skip: the module is compiled all the same.
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
    if let Some(dir) = &options.cache_dir {
        match compile_cache(dir) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(err) => {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    eprintln!(
                        "klp: warning: compilation cache {}: {err:#}; compiling without it",
                        dir.display()
                    );
                });
            }
        }
    }
    Ok(config)
}

/// wasmtime's compilation cache in `dir` (created if missing), with wasmtime's defaults: entries
/// compressed with zstd, and a worker thread that, at most once an hour, trims the directory to
/// 65,536 files and 512 MiB.
fn compile_cache(dir: &Path) -> wasmtime::Result<Cache> {
    let mut config = CacheConfig::new();
    config.with_directory(std::path::absolute(dir)?);
    Cache::new(config)
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
        let err = kernel_config(inlining.clone(), true).err().unwrap();
        assert!(
            err.to_string().contains("inlining is not available"),
            "{err}"
        );
        wasmtime::Engine::new(&kernel_config(inlining, false).unwrap()).unwrap();
        wasmtime::Engine::new(&kernel_config(Options::default(), true).unwrap()).unwrap();
    }

    #[test]
    fn a_cache_dir_that_cannot_be_created_leaves_compiling_uncached() {
        let file = std::env::temp_dir().join(format!("klp-cache-file-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").unwrap();
        let options = Options {
            cache_dir: Some(file.join("cache")),
            ..Options::default()
        };
        let engine = wasmtime::Engine::new(&kernel_config(options, false).unwrap()).unwrap();
        wasmtime::Module::new(&engine, wat::parse_str("(module)").unwrap()).unwrap();
        std::fs::remove_file(&file).unwrap();
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
