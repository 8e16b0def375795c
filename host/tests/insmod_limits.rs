//! insmod's limits: its work grows linearly with a module's functions, and it refuses what would
//! cost without bound or oops, early and with Linux's texts: the function caps of modules,
//! kernels and patches, entry points of the wrong type, the engine out of table or instances.

mod common;
mod klp_bin;
mod objects;
mod scratch;
mod spy;

use common::Recorder;
use klp_artifacts as artifacts;
use klp_bin::klp;
use klp_core::engine::Engine;
use klp_core::errno::Errno;
use klp_core::fs;
use klp_core::loader;
use klp_core::sys::SysError;
use klp_passes::func_count::{MAX_KERNEL_FUNCS, MAX_MODULE_FUNCS};
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options, TABLE_MAX, WasmtimeEngine};
use objects::{I32, Object};
use scratch::Scratch;
use spy::{Faults, Spy};

impl Scratch {
    /// Writes `bytes` to `file` in the directory; returns its host path.
    fn write(&self, file: &str, bytes: &[u8]) -> String {
        let path = self.0.join(file);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Runs `script` in `klp run` with the directory mounted at /mnt.
    fn run(&self, script: &str) -> (i32, String, String) {
        let mount = format!("{}:/mnt", self.0.display());
        klp(&["run", "--mount", &mount, "-c", script])
    }
}

#[test]
fn a_module_of_many_functions_loads_with_every_function_listed() {
    let tmp = Scratch::new("many");
    tmp.write("many.wasm", &objects::empty_functions(2000));
    let (status, out, err) = tmp.run(
        "insmod /mnt/many.wasm; grep -c '\\[many\\]' /proc/kallsyms; rmmod many; lsmod | grep -c many",
    );
    assert_eq!((status, out.as_str()), (1, "2000\n0\n"), "{err}");
}

#[test]
fn a_module_over_the_function_cap_is_invalid_module_format_naming_the_counts() {
    let tmp = Scratch::new("cap");
    let n = MAX_MODULE_FUNCS + 1;
    tmp.write("big.wasm", &objects::empty_functions(n));
    let (status, out, err) = tmp.run("insmod /mnt/big.wasm; dmesg | tail -1; lsmod | grep -c big");
    assert_eq!(status, 1);
    assert_eq!(
        err,
        "insmod: ERROR: could not insert module /mnt/big.wasm: Invalid module format\n"
    );
    assert!(
        out.ends_with(&format!(
            "] big: invalid module format: module has {n} functions (0 imported, {n} defined), \
             over the limit of {MAX_MODULE_FUNCS}\n0\n"
        )),
        "{out}"
    );
}

#[test]
fn a_module_that_is_no_live_patch_cannot_reach_private_symbols() {
    let tmp = Scratch::new("klpsym");
    let mut o = Object::default();
    o.import(".klp.sym.vmlinux.cmdline_proc_show,0", &[I32, I32], &[I32]);
    o.func("init_module", &[], &[I32], &[0x41, 0x00, 0x0b], &[]);
    tmp.write("private.wasm", &o.finish());
    let (status, out, err) =
        tmp.run("insmod /mnt/private.wasm; dmesg | tail -1; lsmod | grep -c private");
    assert_eq!(status, 1);
    assert_eq!(
        err,
        "insmod: ERROR: could not insert module /mnt/private.wasm: Unknown symbol in module\n"
    );
    assert!(
        out.ends_with(
            "] private: Unknown symbol .klp.sym.vmlinux.cmdline_proc_show,0 (err -2)\n0\n"
        ),
        "{out}"
    );
}

#[test]
fn instrument_and_kallsyms_refuse_a_kernel_over_the_cap_from_its_headers() {
    let tmp = Scratch::new("kernel");
    let input = tmp.write("huge.wasm", &objects::empty_functions(200_000));
    let output = tmp.0.join("out.wasm");
    for args in [
        vec!["kallsyms", &input],
        vec!["instrument", &input, "-o", output.to_str().unwrap()],
    ] {
        let (status, _, err) = klp(&args);
        assert_eq!(status, 1, "{args:?}");
        let reason = format!("200000 functions, over the limit of {MAX_KERNEL_FUNCS}");
        assert!(err.contains(&reason), "{args:?}: {err}");
        assert_eq!(err.matches(&reason).count(), 1, "said once: {err}");
    }
    assert!(!output.exists());
}

/// A live patch of `cmdline_proc_show` whose `objects` vmlinux objects all share one `klp_func`
/// array of `funcs` entries.
fn shared_array_patch(objects: u32, funcs: u32) -> Vec<u8> {
    let mut o = Object::default();
    let enable = o.import("klp_enable_patch", &[I32], &[I32]);
    let show = o.func("shared_show", &[I32, I32], &[I32], &[0x41, 0x00, 0x0b], &[]);
    let mut init = vec![0x41];
    init.extend(objects::padded_leb(0));
    init.push(0x10);
    init.extend(objects::padded_leb(enable));
    init.push(0x0b);
    // Symbols: klp_enable_patch, shared_show, init_module, then NAME, FUNCS, OBJS and PATCH.
    let patch_sym = 6;
    o.func(
        "init_module",
        &[],
        &[I32],
        &init,
        &[
            (objects::R_MEMORY_ADDR_SLEB, 1, patch_sym),
            (objects::R_FUNCTION_INDEX_LEB, 7, enable),
        ],
    );
    o.data("NAME", b"cmdline_proc_show\0\0\0");
    let name = o.data_symbol("NAME");
    let funcs_at = o.data("FUNCS", &vec![0; 12 * (funcs as usize + 1)]);
    let funcs_sym = o.data_symbol("FUNCS");
    for i in 0..funcs {
        o.data_reloc(objects::R_MEMORY_ADDR_I32, funcs_at + 12 * i, name);
        o.data_reloc(objects::R_TABLE_INDEX_I32, funcs_at + 12 * i + 4, show);
    }
    // klp_object: name, funcs, then four callbacks, none here.
    let objs_at = o.data("OBJS", &vec![0; 24 * (objects as usize + 1)]);
    let objs_sym = o.data_symbol("OBJS");
    for i in 0..objects {
        o.data_reloc(objects::R_MEMORY_ADDR_I32, objs_at + 24 * i + 4, funcs_sym);
    }
    // klp_patch: objs, replace, states (none).
    let patch_at = o.data("PATCH", &[0; 12]);
    assert_eq!(o.data_symbol("PATCH"), patch_sym);
    o.data_reloc(objects::R_MEMORY_ADDR_I32, patch_at, objs_sym);
    o.finish()
}

#[test]
fn a_patch_over_the_function_cap_in_total_is_refused_as_klp_enable_patch_would() {
    let tmp = Scratch::new("patch");
    tmp.write("small.wasm", &shared_array_patch(1, 1));
    // 63 objects sharing one array of 300: 18,900 functions, over the cap of 16,384.
    tmp.write("shared.wasm", &shared_array_patch(63, 300));
    let (status, out, err) = tmp.run(
        "insmod /mnt/small.wasm; ls /sys/kernel/livepatch; insmod /mnt/shared.wasm; \
         dmesg | grep shared; ls /sys/kernel/livepatch; lsmod | grep -c shared",
    );
    assert_eq!(status, 1);
    assert_eq!(
        err,
        "insmod: ERROR: could not insert module /mnt/shared.wasm: Invalid parameters\n"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"small"),
        "the small patch loads: {out}"
    );
    assert!(
        lines[1].ends_with("] livepatch: patch 'shared' has more than 16384 functions"),
        "{out}"
    );
    assert_eq!(lines[2..], ["small", "0"], "{out}");
}

/// An object whose `init_module` or `cleanup_module` is `entry`.
fn with_entry(entry: Entry) -> Vec<u8> {
    let mut o = Object::default();
    match entry {
        Entry::Data(name) => {
            o.func("f", &[], &[], &[0x0b], &[]);
            o.data(name, &[0; 4]);
        }
        Entry::Func(name, params, results) => {
            let mut code = [0x41, 0x00].repeat(results.len());
            code.push(0x0b);
            o.func(name, params, results, &code, &[]);
        }
    }
    o.finish()
}

/// An entry point of the wrong kind: a data symbol, or a function of some type.
#[derive(Clone, Copy)]
enum Entry {
    Data(&'static str),
    Func(&'static str, &'static [u8], &'static [u8]),
}

#[test]
fn entry_points_of_the_wrong_type_are_invalid_module_format_not_an_oops() {
    let tmp = Scratch::new("entry");
    let cases = [
        (
            "data_init",
            Entry::Data("init_module"),
            "init_module is data, not a function () -> i32",
        ),
        (
            "data_exit",
            Entry::Data("cleanup_module"),
            "cleanup_module is data, not a function () -> ()",
        ),
        (
            "arg_init",
            Entry::Func("init_module", &[I32], &[I32]),
            "init_module is a function (i32) -> i32, not () -> i32",
        ),
        (
            "void_init",
            Entry::Func("init_module", &[], &[]),
            "init_module is a function () -> (), not () -> i32",
        ),
        (
            "int_exit",
            Entry::Func("cleanup_module", &[], &[I32]),
            "cleanup_module is a function () -> i32, not () -> ()",
        ),
    ];
    for (file, entry, why) in cases {
        tmp.write(&format!("{file}.wasm"), &with_entry(entry));
        let (status, out, err) = tmp.run(&format!(
            "insmod /mnt/{file}.wasm; dmesg | tail -1; rmmod {file}"
        ));
        assert_eq!(status, 1, "{file}");
        assert_eq!(
            err,
            format!(
                "insmod: ERROR: could not insert module /mnt/{file}.wasm: Invalid module format\n\
                 rmmod: ERROR: Module {file} is not currently loaded\n"
            ),
            "{file}: {out}"
        );
        assert!(
            out.ends_with(&format!("] {file}: invalid module format: {why}\n")),
            "{file}: {out}"
        );
    }
}

fn boot() -> WasmtimeEngine {
    rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("kernel boots")
}

/// Runs `script` in the shell on `e`; returns the terminal.
fn shell(e: &mut impl Engine, script: &str) -> String {
    let mut host = Recorder::default();
    shell::run_script(e, &mut host, script, shell::Options { errexit: false });
    host.text
}

#[test]
fn a_table_that_cannot_grow_is_cannot_allocate_memory() {
    let mut e = boot();
    let left = 1;
    let len = e.table_len();
    e.table_grow(TABLE_MAX as u32 - len - left)
        .expect("up to the limit");
    let hello = artifacts::module("hello").expect("built by build.rs");
    assert_eq!(
        loader::load_module(&mut e, "hello", hello, &[]),
        Err(SysError::Errno(Errno::ENOMEM))
    );
    let out = shell(
        &mut e,
        "dmesg | tail -1; insmod hello; lsmod | grep -c hello",
    );
    let mut lines = out.lines();
    let dmesg = lines.next().unwrap();
    assert!(
        dmesg.contains("] hello: no room for ") && dmesg.contains(" table entries: "),
        "{out}"
    );
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [
            "insmod: ERROR: could not insert module hello: Cannot allocate memory",
            "0"
        ]
    );
}

/// The work of loading a module of `n` empty functions: guest calls, table entries copied,
/// bytes instantiated.
fn load_work(n: u32) -> (u32, u32, usize) {
    let mut kernel = boot();
    let mut e = Spy::new(&mut kernel, Faults::default());
    let module = objects::empty_functions(n);
    loader::load_module(&mut e, "many", &module, &[]).expect("loads");
    (e.calls, e.table_copies, e.instantiated_bytes)
}

#[test]
fn the_work_of_insmod_grows_linearly_with_the_functions() {
    let (calls, copies, bytes) = load_work(1000);
    let (calls2, copies2, bytes2) = load_work(2000);
    assert_eq!(
        calls2, calls,
        "the guest calls do not depend on the functions"
    );
    assert_eq!((copies, copies2), (1000, 2000), "one copy per slot");
    assert!(
        bytes2 <= 2 * bytes + 4096,
        "the linked module grows linearly: {bytes} then {bytes2} bytes"
    );
}

#[test]
fn the_engine_instance_limit_is_cannot_allocate_memory() {
    let mut kernel = boot();
    // Every instantiation fails as at the store's instance limit.
    let faults = Faults {
        instantiate: Some("resource limit exceeded: instance count too high at 10001".into()),
        ..Faults::default()
    };
    let mut e = Spy::new(&mut kernel, faults);
    let out = shell(
        &mut e,
        "insmod hello; dmesg | tail -1; lsmod | grep -c hello",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "insmod: ERROR: could not insert module hello: Cannot allocate memory"
    );
    assert!(
        lines[1].ends_with("] hello: instantiation failed: resource limit exceeded: instance count too high at 10001"),
        "{out}"
    );
    assert_eq!(lines[2], "0");
    assert!(fs::read_file(&mut e, "/proc/modules").unwrap().is_empty());
}

#[test]
fn a_module_gone_from_the_module_list_is_no_such_device_not_an_unknown_symbol() {
    let (status, out, err) = klp(&[
        "run",
        "-c",
        "insmod test_klp_self_del; ls /sys/kernel/livepatch; lsmod | grep -c self_del",
    ]);
    assert_eq!((status, out.as_str()), (1, "0\n"));
    assert_eq!(
        err,
        "insmod: ERROR: could not insert module test_klp_self_del: No such device\n"
    );
}
