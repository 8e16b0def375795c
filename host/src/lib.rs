//! klp: Linux kernel livepatching on WebAssembly — the engine-independent core and the wasmtime host.
pub mod instrument;
pub mod kallsyms;
pub mod object;
