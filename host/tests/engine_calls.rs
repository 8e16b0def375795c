//! Engine calls on the real kernel: every arity of export reaches the guest with its arguments,
//! slots and wrong calls behave, and a trap in a guest call nested in a host call keeps its call
//! trace up to the top-level error.

use klp_artifacts as artifacts;
use klp_core::engine::{Callee, Engine, EngineError};
use klp_core::fs;
use klp_core::ftrace::Slot;
use klp_core::sys::SysError;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

const ENOENT: i32 = 2;
const EBADF: i32 = 9;

fn boot() -> WasmtimeEngine {
    rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("kernel boots")
}

/// The ftrace slot of a kernel function.
fn slot_of(e: &mut WasmtimeEngine, func: &str) -> u32 {
    e.with_state(|s| s.kallsyms.lookup(None, func, 0).map(|sym| sym.addr))
        .unwrap_or_else(|err| panic!("{func}: {err:?}"))
}

#[test]
fn exports_of_every_arity_get_their_arguments_and_return_their_result() {
    let mut e = boot();
    let buf = e
        .call(Callee::Export("klp_user_buffer"), &[])
        .unwrap()
        .expect("klp_user_buffer returns the buffer");
    assert_eq!(e.call(Callee::Export("sys_close"), &[-1]), Ok(Some(-EBADF)));
    let path = b"/no/such/file";
    e.write(buf as u32, path).unwrap();
    assert_eq!(
        e.call(Callee::Export("sys_open"), &[buf, path.len() as i32, 0]),
        Ok(Some(-ENOENT))
    );
    let addr = e
        .call(Callee::Export("kmalloc"), &[64, 0])
        .unwrap()
        .expect("kmalloc returns an address");
    assert!(addr > 0, "kmalloc(64) = {addr}");
    assert_eq!(
        e.call(Callee::Export("kfree"), &[addr]),
        Ok(None),
        "kfree returns nothing"
    );
    // Five arguments: past the typed arities.
    let name = b"engine_calls";
    e.write(buf as u32, name).unwrap();
    assert_eq!(
        e.call(
            Callee::Export("module_add"),
            &[buf, name.len() as i32, 0, 0, 0]
        ),
        Ok(Some(0))
    );
    assert!(fs::read_file(&mut e, "/proc/modules").is_ok_and(|m| m.starts_with(name)));
    assert_eq!(
        e.call(Callee::Export("module_del"), &[buf, name.len() as i32]),
        Ok(Some(0))
    );
}

#[test]
fn a_slot_calls_whatever_function_it_holds() {
    let mut e = boot();
    let slot = slot_of(&mut e, "sys_close");
    assert_eq!(e.call(Callee::Slot(slot), &[-1]), Ok(Some(-EBADF)));
    let past_the_end = e.table_len();
    assert!(matches!(
        e.call(Callee::Slot(past_the_end), &[]),
        Err(EngineError::Table(_))
    ));
}

#[test]
fn unknown_exports_and_wrong_argument_counts_are_no_export() {
    let mut e = boot();
    assert_eq!(
        e.call(Callee::Export("no_such_export"), &[]),
        Err(EngineError::NoExport("no_such_export".into()))
    );
    assert!(matches!(
        e.call(Callee::Export("sys_close"), &[1, 2]),
        Err(EngineError::NoExport(_))
    ));
    let slot = slot_of(&mut e, "sys_close");
    assert!(matches!(
        e.call(Callee::Slot(slot), &[]),
        Err(EngineError::NoExport(_))
    ));
}

/// klp_enable_patch is a host call made by the patch's init; the livepatch core logs through
/// the kernel's `printk` from inside it. With `printk`'s slot emptied, that nested guest call
/// traps: insmod → do_one_initcall → init_module → klp.hostcall → printk → trap.
#[test]
fn a_trap_in_a_guest_call_nested_in_a_host_call_keeps_its_message_and_frames() {
    let mut e = boot();
    let printk = slot_of(&mut e, "printk");
    let orig = e.with_state(|s| {
        s.ftrace
            .info(Slot::new(printk))
            .map(|i| i.orig)
            .expect("printk's slot")
    });
    e.table_clear(printk, 1).unwrap();
    let sample = artifacts::module("livepatch-sample").unwrap();
    let err = klp_core::loader::load_module(&mut e, "livepatch_sample", sample, &[])
        .expect_err("the nested printk traps");
    let SysError::Engine(EngineError::Trap(trap)) = err else {
        panic!("not a trap: {err:?}");
    };
    assert_eq!(
        trap.message, "wasm trap: uninitialized element",
        "the innermost trap's message"
    );
    let frames: Vec<&str> = trap
        .frames
        .iter()
        .map(|f| f.as_deref().unwrap_or("?"))
        .collect();
    let at = |name: &str| {
        frames
            .iter()
            .position(|f| *f == name)
            .unwrap_or_else(|| panic!("no frame {name} in {frames:?}"))
    };
    assert_eq!(
        frames.first(),
        Some(&"__klp_thunk_printk"),
        "innermost first: the export the host called"
    );
    let order = [
        "__klp_thunk_printk",
        "klp_enable_patch",
        "init_module",
        "do_one_initcall",
    ];
    assert!(
        order.windows(2).all(|w| at(w[0]) < at(w[1])),
        "the nested call, the host call and the calls around it: {frames:?}"
    );

    e.table_copy(printk, orig).unwrap();
    assert_eq!(
        e.with_state(|s| s.modules.len()),
        0,
        "the failed load was undone"
    );
    klp_core::loader::load_module(&mut e, "livepatch_sample", sample, &[]).expect("loads again");
    assert_eq!(
        fs::read_file(&mut e, "/proc/cmdline").unwrap(),
        b"this has been live patched\n"
    );
}
