//! Tracing users on the ftrace table: tracing every function and switching it off again leaves
//! every slot direct, with nothing allocated; a live patch under the tracer still works; the
//! ring buffer overwrites and counts like Linux's; a module's call names the module's function.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

fn boot() -> WasmtimeEngine {
    rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("kernel boots")
}

fn write(e: &mut WasmtimeEngine, path: &str, value: &str) {
    fs::write_file(e, path, value.as_bytes(), false)
        .unwrap_or_else(|err| panic!("{path}: {err:?}"));
}

fn read(e: &mut WasmtimeEngine, path: &str) -> String {
    String::from_utf8(fs::read_file(e, path).expect("readable")).unwrap()
}

fn table_in_use(e: &mut WasmtimeEngine) -> u32 {
    let len = e.table_len();
    len - e.with_state(|s| s.ftrace.free_entries())
}

#[test]
fn tracing_every_function_then_stopping_restores_direct_slots() {
    let mut e = boot();
    let before = table_in_use(&mut e);
    write(&mut e, "/sys/kernel/tracing/current_tracer", "function\n");
    let (tramps, traceable) = e.with_state(|s| {
        let traceable = s
            .ftrace
            .slots()
            .filter(|&slot| s.ftrace.traceable(slot))
            .count();
        (s.ftrace.trampolines(), traceable)
    });
    assert_eq!(
        tramps, traceable,
        "an empty filter traces every traceable function"
    );
    assert_eq!(read(&mut e, "/proc/cmdline"), "console=hvc0\n");
    let trace = read(&mut e, "/sys/kernel/tracing/trace");
    assert!(
        trace.contains(": cmdline_proc_show <-seq_show\n"),
        "{trace}"
    );
    assert!(
        trace.contains(": sys_open\n"),
        "host entries have no caller: {trace}"
    );
    write(&mut e, "/sys/kernel/tracing/current_tracer", "nop\n");
    assert_eq!(e.with_state(|s| s.ftrace.trampolines()), 0);
    assert_eq!(
        table_in_use(&mut e),
        before,
        "trampoline entries went back to the free list"
    );
    assert_eq!(read(&mut e, "/sys/kernel/tracing/enabled_functions"), "");
}

#[test]
fn a_patch_enabled_and_disabled_under_the_tracer_switches_cleanly() {
    let mut e = boot();
    write(&mut e, "/sys/kernel/tracing/current_tracer", "function\n");
    let module = artifacts::module("livepatch-sample").unwrap();
    klp_core::kernel::run_task(&mut e, "insmod", |e| {
        klp_core::loader::load_module(e, "livepatch_sample", module, &[])
    })
    .unwrap();
    for _ in 0..100 {
        assert_eq!(
            read(&mut e, "/proc/cmdline"),
            "this has been live patched\n"
        );
        write(
            &mut e,
            "/sys/kernel/livepatch/livepatch_sample/enabled",
            "0\n",
        );
        assert_eq!(read(&mut e, "/proc/cmdline"), "console=hvc0\n");
        // The disabled patch was freed: it comes back with its module.
        klp_core::kernel::run_task(&mut e, "rmmod", |e| {
            klp_core::loader::unload_module(e, "livepatch_sample")
        })
        .unwrap();
        klp_core::kernel::run_task(&mut e, "insmod", |e| {
            klp_core::loader::load_module(e, "livepatch_sample", module, &[])
        })
        .unwrap();
    }
    let trace = read(&mut e, "/sys/kernel/tracing/trace");
    assert!(
        trace.contains(": livepatch_cmdline_proc_show <-seq_show\n"),
        "the new function is traced"
    );
}

/// The trace header's `entries-in-buffer/entries-written` field.
fn entries(trace: &str) -> &str {
    trace
        .lines()
        .find_map(|l| l.strip_prefix("# entries-in-buffer/entries-written: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a header line")
}

#[test]
fn the_ring_buffer_overwrites_its_oldest_events_and_counts_every_one_written() {
    let mut e = boot();
    write(
        &mut e,
        "/sys/kernel/tracing/set_ftrace_filter",
        "cmdline_proc_show\n",
    );
    write(&mut e, "/sys/kernel/tracing/current_tracer", "function\n");
    let capacity = klp_core::tracing::ring::ENTRIES as usize;
    let reads = capacity + 8;
    for _ in 0..reads {
        read(&mut e, "/proc/cmdline");
    }
    let trace = read(&mut e, "/sys/kernel/tracing/trace");
    assert_eq!(entries(&trace), format!("{capacity}/{reads}"));
    let events = trace.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(
        events, capacity,
        "the buffer holds its last {capacity} events"
    );
    // Every line names the function and its caller, oldest first.
    let stamps: Vec<f64> = trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            assert!(l.ends_with(": cmdline_proc_show <-seq_show"), "{l}");
            let stamp = l.split("..... ").nth(1).unwrap().split(':').next().unwrap();
            stamp.trim().parse().unwrap()
        })
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    // tracing_on 0 records nothing; `echo > trace` empties the buffer and its counters.
    write(&mut e, "/sys/kernel/tracing/tracing_on", "0\n");
    read(&mut e, "/proc/cmdline");
    let trace = read(&mut e, "/sys/kernel/tracing/trace");
    assert_eq!(entries(&trace), format!("{capacity}/{reads}"));
    write(&mut e, "/sys/kernel/tracing/tracing_on", "1\n");
    write(&mut e, "/sys/kernel/tracing/trace", "\n");
    assert_eq!(entries(&read(&mut e, "/sys/kernel/tracing/trace")), "0/0");
    read(&mut e, "/proc/cmdline");
    assert_eq!(entries(&read(&mut e, "/sys/kernel/tracing/trace")), "1/1");
}

#[test]
fn a_module_function_calling_a_traced_kernel_function_is_its_caller() {
    let mut e = boot();
    let module = artifacts::module("livepatch-sample").unwrap();
    klp_core::kernel::run_task(&mut e, "insmod", |e| {
        klp_core::loader::load_module(e, "livepatch_sample", module, &[])
    })
    .unwrap();
    write(
        &mut e,
        "/sys/kernel/tracing/set_ftrace_filter",
        "seq_write\n",
    );
    write(&mut e, "/sys/kernel/tracing/current_tracer", "function\n");
    assert_eq!(
        read(&mut e, "/proc/cmdline"),
        "this has been live patched\n"
    );
    let (events, written) = klp_core::tracing::ring::read(&mut e).expect("the ring reads");
    assert_eq!((events.len(), written), (1, 1));
    let caller = e.with_state(|s| {
        s.kallsyms
            .func_by_slot(events[0].caller)
            .map(|sym| (sym.name.clone(), sym.module.clone()))
    });
    // The replacement's module code stored its own slot before calling into the kernel.
    assert_eq!(
        caller,
        Some(("seq_puts".to_string(), Some("livepatch_sample".to_string())))
    );
    let trace = read(&mut e, "/sys/kernel/tracing/trace");
    assert!(trace.contains(": seq_write <-seq_puts\n"), "{trace}");
}
