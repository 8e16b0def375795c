//! The klp-wasm guest kernel: printk, kmalloc, a VFS with procfs and ramfs, syscalls, modules,
//! tasks (kthreads, wait queues, completions, timers, a workqueue).
//!
//! A `#![no_std]` program for `wasm32-unknown-unknown` that the host boots with
//! [`kernel_boot`](init::kernel_boot) and then drives through the `sys_*` exports (see
//! `docs/ABI.md`). All state lives in linear memory in [`sync::Global`] cells: the kernel is
//! single-threaded and keeps no lock flags, so a trap that aborts a call halfway leaves a
//! kernel that can still serve the next call.
#![no_std]

extern crate alloc;

#[macro_use]
mod printk;
#[macro_use]
mod notrace;
#[macro_use]
mod list;

mod bench;
mod completion;
mod devkmsg;
mod entry;
mod exit;
mod fork;
mod host;
mod init;
mod jiffies;
mod kthread;
mod livepatch;
mod mm;
mod module;
mod panic;
mod preempt;
mod proc;
mod ramfs;
mod sched;
mod seq_file;
mod sync;
mod syscalls;
mod sysfs;
mod timer;
mod uaccess;
mod utsname;
mod vfs;
mod wait;
mod workqueue;
