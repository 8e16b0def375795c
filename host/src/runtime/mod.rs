//! Engine implementations: wasmtime for the `klp` command and the benchmarks.

pub mod wasmtime;
