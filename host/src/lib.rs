//! klp: Linux kernel livepatching on WebAssembly.
//!
//! The engine-independent core — [`instrument`] (the ftrace hook), [`kallsyms`], [`object`] and
//! [`loader`] (modules), [`livepatch`], [`sysfs`] and [`shell`] — runs on any engine behind the
//! [`engine::Engine`] trait. With the `wasmtime` feature, [`runtime::wasmtime`] runs it on
//! wasmtime and the crate builds the `klp` command.

pub mod artifacts;
pub mod demo;
pub mod engine;
pub mod errno;
pub mod fs;
pub mod ftrace;
pub mod hostcall;
pub mod hostfs;
pub mod instrument;
pub mod kallsyms;
pub mod kernel;
pub mod livepatch;
pub mod loader;
pub mod object;
#[cfg(feature = "wasmtime")]
pub mod runtime;
pub mod shell;
pub mod state;
pub mod sys;
pub mod sysfs;
#[cfg(test)]
mod test_util;
pub mod tracing;
