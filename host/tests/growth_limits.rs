//! Guest-controlled growth is bounded: memory by `mem=`, the table by `TABLE_MAX`; a refused
//! `memory.grow` or `table.grow` is -1 to the guest, and the host's `table_grow` a clean error.

use klp_artifacts as artifacts;
use klp_core::engine::{Callee, Engine, EngineError};
use klp_core::fs;
use klp_wasmtime::{self as rt, Options, TABLE_MAX, WasmtimeEngine};

const PAGE: i32 = 65536;

fn boot(cmdline: &str) -> WasmtimeEngine {
    rt::boot(artifacts::KERNEL, cmdline, true, Options::default()).expect("kernel boots")
}

/// Instantiates a module sharing the kernel's memory and table whose two functions, placed in
/// fresh table slots, run `memory.grow` and `table.grow` on them; returns the slots.
fn growers(e: &mut WasmtimeEngine) -> (u32, u32) {
    let base = e.table_grow(2).expect("two slots");
    let wat = format!(
        r#"(module
             (import "env" "memory" (memory 0))
             (import "env" "__indirect_function_table" (table 0 funcref))
             (func $grow_memory (param i32) (result i32) local.get 0 memory.grow)
             (func $grow_table (param i32) (result i32) ref.null func local.get 0 table.grow 0)
             (elem (i32.const {base}) func $grow_memory $grow_table))"#
    );
    e.instantiate(&wat::parse_str(wat).unwrap())
        .expect("instantiates");
    (base, base + 1)
}

fn mem_total(e: &mut WasmtimeEngine) -> String {
    let meminfo = String::from_utf8(fs::read_file(e, "/proc/meminfo").unwrap()).unwrap();
    meminfo.lines().next().unwrap().to_string()
}

/// Whether `addr` is inside the kernel's linear memory.
fn mapped(e: &mut WasmtimeEngine, addr: u32) -> bool {
    e.read(addr, &mut [0]).is_ok()
}

#[test]
fn guest_memory_grow_stops_at_mem_and_returns_minus_one() {
    let mut e = boot("console=hvc0 mem=16M");
    let (grow_memory, _) = growers(&mut e);
    let limit = 16 << 20;
    let pages = e.call(Callee::Slot(grow_memory), &[0]).unwrap().unwrap();
    assert!(pages * PAGE < limit, "the kernel boots below mem=");
    let past = limit / PAGE - pages + 1;
    assert_eq!(e.call(Callee::Slot(grow_memory), &[past]), Ok(Some(-1)));
    assert!(
        !mapped(&mut e, (limit - 1) as u32),
        "a refused growth maps nothing"
    );
    assert_eq!(
        e.call(Callee::Slot(grow_memory), &[past - 1]),
        Ok(Some(pages)),
        "growing up to mem= is allowed"
    );
    assert!(mapped(&mut e, (limit - 1) as u32));
    assert!(!mapped(&mut e, limit as u32));
    assert_eq!(e.call(Callee::Slot(grow_memory), &[1]), Ok(Some(-1)));
}

#[test]
fn guest_memory_grow_without_mem_stops_at_the_default_128m() {
    let mut e = boot("console=hvc0");
    let (grow_memory, _) = growers(&mut e);
    let pages = e.call(Callee::Slot(grow_memory), &[0]).unwrap().unwrap();
    let past = (128 << 20) / PAGE - pages + 1;
    assert_eq!(e.call(Callee::Slot(grow_memory), &[past]), Ok(Some(-1)));
    assert_eq!(e.call(Callee::Slot(grow_memory), &[0]), Ok(Some(pages)));
}

#[test]
fn kmalloc_beyond_mem_fails_cleanly_and_meminfo_is_unchanged() {
    let mut e = boot("console=hvc0 mem=16M");
    let before = mem_total(&mut e);
    assert_eq!(before.split_whitespace().nth(1), Some("16384"));
    for size in [17 << 20, 64 << 20, i32::MAX] {
        assert_eq!(
            e.call(Callee::Export("kmalloc"), &[size, 0]),
            Ok(Some(0)),
            "kmalloc({size}) returns NULL"
        );
    }
    assert!(!mapped(&mut e, 16 << 20));
    assert_eq!(mem_total(&mut e), before);
    let small = e
        .call(Callee::Export("kmalloc"), &[64, 0])
        .unwrap()
        .unwrap();
    assert_ne!(small, 0, "small allocations still succeed");
}

#[test]
fn guest_table_grow_past_the_cap_returns_minus_one() {
    let mut e = boot("console=hvc0");
    let (_, grow_table) = growers(&mut e);
    let len = e.table_len();
    let past = (TABLE_MAX as u32 - len + 1) as i32;
    assert_eq!(e.call(Callee::Slot(grow_table), &[past]), Ok(Some(-1)));
    assert_eq!(e.call(Callee::Slot(grow_table), &[i32::MAX]), Ok(Some(-1)));
    assert_eq!(e.table_len(), len);
    assert_eq!(e.call(Callee::Slot(grow_table), &[1]), Ok(Some(len as i32)));
}

#[test]
fn host_table_grow_past_the_cap_is_a_table_error_and_leaves_the_table() {
    let mut e = boot("console=hvc0");
    let len = e.table_len();
    for delta in [TABLE_MAX as u32, u32::MAX] {
        assert!(matches!(e.table_grow(delta), Err(EngineError::Table(_))));
        assert_eq!(e.table_len(), len);
    }
    assert_eq!(e.table_grow(4), Ok(len), "small growth still works");
}
