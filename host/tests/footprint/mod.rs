//! The kernel's footprint: everything an insmod, rmmod, enable or disable may change, to compare.

use std::collections::BTreeMap;

use klp_core::engine::{Callee, Engine};
use klp_core::fs;
use klp_wasmtime::WasmtimeEngine;

/// Everything of the kernel an operation may change, read with the real engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// MemFree from /proc/meminfo; `None` while a patch replaces /proc/meminfo.
    pub mem_free_kb: Option<u64>,
    /// Free kernel memory to the byte: free heap bytes less linear memory's size (MemFree less
    /// the constant MemTotal).
    pub free_bytes: i64,
    /// Table entries in use: the table's length less the free ranges (a wasm table cannot
    /// shrink, so a failed load may leave it longer, with the range it took on the free list).
    table_in_use: u32,
    ftrace_slots: usize,
    /// Every slot ftrace has a user for: its index, livepatch's redirect and the hooks.
    ftrace_users: Vec<String>,
    symbols: usize,
    trampolines: usize,
    proc_modules: String,
    /// The host's records: name, reference count.
    host_modules: Vec<(String, u32)>,
    /// Every path under /sys/kernel/livepatch, with the contents of the readable attributes.
    sysfs: Vec<String>,
    /// Every func_stack: the patched slot, then each entry's patch and replacement slot.
    func_stacks: BTreeMap<u32, Vec<(String, u32)>>,
    /// The names in /proc (modules add entries there).
    pub proc_entries: Vec<String>,
    /// What the patched functions print.
    pub cmdline: String,
    stack_pointer: u32,
    loading: Option<String>,
    task_fds: Vec<i32>,
}

fn read(e: &mut WasmtimeEngine, path: &str) -> String {
    let bytes = fs::read_file(e, path).unwrap_or_else(|err| panic!("{path}: {err:?}"));
    String::from_utf8(bytes).unwrap()
}

/// The size of linear memory: the first address that cannot be read.
fn memory_size(e: &mut WasmtimeEngine) -> u64 {
    let (mut lo, mut hi) = (0u64, 1u64 << 32);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if e.read(mid as u32, &mut [0]).is_ok() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Address of the kernel's count of free heap bytes: the word among the kernel's `HEAP`
/// symbols that falls by exactly a block's size when kmalloc hands the block out.
fn free_bytes_counter(e: &mut WasmtimeEngine) -> u32 {
    let words: Vec<u32> = e.with_state(|s| {
        s.kallsyms
            .iter()
            .filter(|sym| sym.name == "HEAP" && sym.module.is_none())
            .flat_map(|sym| (0..sym.size.max(4) / 4).map(move |i| sym.addr + 4 * i))
            .collect()
    });
    let peek = |e: &mut WasmtimeEngine| -> Vec<u32> {
        words
            .iter()
            .map(|&at| {
                let mut b = [0; 4];
                e.read(at, &mut b).expect("kernel data");
                u32::from_le_bytes(b)
            })
            .collect()
    };
    // A free block large enough first, so the probe's kmalloc splits it instead of growing the
    // heap (which would move the counter by more than the block).
    let room = e
        .call(Callee::Export("kmalloc"), &[4096, 0])
        .unwrap()
        .unwrap();
    e.call(Callee::Export("kfree"), &[room]).unwrap();
    let was = peek(e);
    let block = e
        .call(Callee::Export("kmalloc"), &[1000, 0])
        .unwrap()
        .unwrap();
    let now = peek(e);
    e.call(Callee::Export("kfree"), &[block]).unwrap();
    let i = (0..words.len())
        .find(|&i| was[i].wrapping_sub(now[i]) == 1008)
        .expect("a HEAP word counts free bytes");
    words[i]
}

/// Reads the footprint of the kernel `e` runs.
pub fn footprint(e: &mut WasmtimeEngine) -> Footprint {
    let meminfo = read(e, "/proc/meminfo");
    let mem_free_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemFree:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap());
    let counter = free_bytes_counter(e);
    let mut word = [0; 4];
    e.read(counter, &mut word).unwrap();
    let free_bytes = i64::from(u32::from_le_bytes(word)) - memory_size(e) as i64;
    let table_len = e.table_len();
    let (free, ftrace_slots, ftrace_users, symbols, trampolines, host_modules, func_stacks) = e
        .with_state(|s| {
            (
                s.ftrace.free_entries(),
                s.ftrace.len(),
                s.ftrace
                    .used_slots()
                    .map(|slot| {
                        let (redirect, hooks) = (s.ftrace.redirect(slot), s.ftrace.hooks(slot));
                        format!("{} {redirect:?} {hooks:?}", slot.index())
                    })
                    .collect(),
                s.kallsyms.iter().count(),
                s.ftrace.trampolines(),
                s.modules
                    .iter()
                    .map(|m| (m.name.clone(), m.refcnt))
                    .collect(),
                s.livepatch
                    .func_stacks()
                    .iter()
                    .map(|(slot, stack)| {
                        let entries = stack.iter().map(|en| {
                            let patch = s.livepatch.get(en.patch()).map(|p| p.name().to_string());
                            (patch.unwrap_or_default(), en.new_func().index())
                        });
                        (slot.index(), entries.collect())
                    })
                    .collect(),
            )
        });
    let mut sysfs = Vec::new();
    sysfs_tree(e, "/sys/kernel/livepatch", &mut sysfs);
    let proc_entries = fs::list_dir(e, "/proc")
        .unwrap()
        .into_iter()
        .map(|en| en.name)
        .collect();
    let (loading, task_fds) = e.with_state(|s| (s.loading.clone(), s.task_fds.clone()));
    Footprint {
        mem_free_kb,
        free_bytes,
        table_in_use: table_len - free,
        ftrace_slots,
        ftrace_users,
        symbols,
        trampolines,
        proc_modules: read(e, "/proc/modules"),
        host_modules,
        sysfs,
        func_stacks,
        proc_entries,
        cmdline: read(e, "/proc/cmdline"),
        stack_pointer: e.stack_pointer(),
        loading,
        task_fds,
    }
}

fn sysfs_tree(e: &mut WasmtimeEngine, dir: &str, out: &mut Vec<String>) {
    for en in fs::list_dir(e, dir).unwrap() {
        let path = format!("{dir}/{}", en.name);
        if fs::is_dir(&en.stat) {
            out.push(format!("{path}/"));
            sysfs_tree(e, &path, out);
        } else {
            match fs::read_file(e, &path) {
                Ok(bytes) => out.push(format!("{path} = {}", String::from_utf8_lossy(&bytes))),
                Err(_) => out.push(path),
            }
        }
    }
}

/// The lines of `b`'s description that differ from `a`'s.
pub fn diff(a: &Footprint, b: &Footprint) -> String {
    let (a, b) = (format!("{a:#?}"), format!("{b:#?}"));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out = String::new();
    for line in &a {
        if !b.contains(line) {
            out.push_str(&format!("- {line}\n"));
        }
    }
    for line in &b {
        if !a.contains(line) {
            out.push_str(&format!("+ {line}\n"));
        }
    }
    out
}
