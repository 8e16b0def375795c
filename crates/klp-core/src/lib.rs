//! klp-core: the engine-independent core of klp-wasm, on any engine behind [`engine::Engine`].
//!
//! The kernel's host side: [`kernel`] (prepare, boot, oops handling), [`loader`] (insmod and
//! rmmod), [`livepatch`], [`ftrace`] and [`tracing`] on the ftrace slots, the host-served trees
//! ([`hostfs`], [`sysfs`]), the one file namespace ([`fs`]) and the syscall wrappers ([`sys`]),
//! all holding their state in [`state::KernelState`]. It depends on no engine and embeds no
//! guest: klp-wasmtime and klp-web provide the engine, and the callers of [`kernel::boot`] the
//! module files.
//!
//! The wasm passes live in klp-passes, which does not depend on this crate; they are imported
//! here at the crate root, so inside the core `crate::instrument`, `crate::kallsyms` and
//! `crate::object` name klp-passes's modules.

use klp_passes::{instrument, kallsyms, object};

pub mod engine;
pub mod errno;
pub mod fs;
pub mod ftrace;
pub mod hostcall;
pub mod hostfs;
pub mod kernel;
pub mod livepatch;
pub mod loader;
pub mod module_sysfs;
pub mod state;
pub mod sys;
pub mod sysfs;
pub mod tasks;
pub mod tracing;
pub mod watchdog;
