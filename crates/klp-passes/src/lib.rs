//! klp-passes: the wasm passes of klp-wasm, on bytes alone (no engine, no kernel state).
//!
//! [`instrument`] is the "-fentry" pass that turns the kernel's function table into the ftrace
//! table; [`kallsyms`] reads the symbol table of a kernel or module; [`object`] parses
//! relocatable modules, applies their relocations and links them into a running kernel's table
//! and memory. klp-core runs them; `klp instrument` and `klp kallsyms` expose them.
//! [`func_count`] holds the function-count caps all of them check first.

pub mod func_count;
pub mod instrument;
pub mod kallsyms;
pub mod object;
#[cfg(test)]
mod test_util;
