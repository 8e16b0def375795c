//! Module data asking for more than kmalloc's 8-byte alignment gets it, and is freed whole.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_core::kernel;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

/// Reads an unsigned LEB128 number at `*at`, moving past it.
fn leb(bytes: &[u8], at: &mut usize) -> u32 {
    let (mut value, mut shift) = (0u32, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// `module` with every data segment's alignment in the `linking` section's segment info set to
/// `2^p2align` (the old and new values must each fit one LEB byte).
fn with_segment_alignment(module: &[u8], p2align: u8) -> Vec<u8> {
    let mut out = module.to_vec();
    let linking = wasmparser::Parser::new(0)
        .parse_all(module)
        .find_map(|payload| match payload {
            Ok(wasmparser::Payload::CustomSection(s)) if s.name() == "linking" => {
                Some(s.data_offset()..s.data_offset() + s.data().len())
            }
            _ => None,
        })
        .expect("a relocatable module has a linking section");
    let mut at = linking.start;
    assert_eq!(leb(&out, &mut at), 2, "linking section version");
    let mut changed = 0;
    while at < linking.end {
        let kind = out[at];
        at += 1;
        let len = leb(&out, &mut at) as usize;
        let end = at + len;
        if kind == 5 {
            // WASM_SEGMENT_INFO: count, then name, alignment, flags per segment.
            for _ in 0..leb(&out, &mut at) {
                let name_len = leb(&out, &mut at) as usize;
                at += name_len;
                assert!(out[at] < 0x80, "one-byte alignment");
                out[at] = p2align;
                at += 1;
                leb(&out, &mut at);
                changed += 1;
            }
        }
        at = end;
    }
    assert!(changed > 0, "the module has data segments");
    out
}

fn mem_free_kb(e: &mut WasmtimeEngine) -> u64 {
    let meminfo = String::from_utf8(fs::read_file(e, "/proc/meminfo").unwrap()).unwrap();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemFree:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemFree in /proc/meminfo")
}

#[test]
fn data_asking_for_page_alignment_is_placed_on_a_page_and_freed_whole() {
    let mut e = rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default())
        .expect("kernel boots");
    let free_before = mem_free_kb(&mut e);
    let aligned = with_segment_alignment(artifacts::module("hello").unwrap(), 12);
    for round in 0..20 {
        kernel::run_task(&mut e, "insmod", |e| {
            klp_core::loader::load_module(e, "hello", &aligned, &[])
        })
        .expect("the aligned module loads");
        let base = e.with_state(|s| s.module("hello").map(|m| m.data_base).unwrap());
        assert_eq!(base % 4096, 0, "round {round}: data at {base:#x}");
        let modules = String::from_utf8(fs::read_file(&mut e, "/proc/modules").unwrap()).unwrap();
        assert!(
            modules.contains(&format!("{base:#010x}")),
            "/proc/modules shows the aligned address: {modules}"
        );
        kernel::run_task(&mut e, "rmmod", |e| {
            klp_core::loader::unload_module(e, "hello")
        })
        .expect("it unloads");
    }
    let log = klp_core::sys::syslog_read_all(&mut e).unwrap();
    assert_eq!(
        log.matches("hello: module loaded").count(),
        20,
        "its init prints from its relocated data: {log}"
    );
    assert_eq!(
        mem_free_kb(&mut e),
        free_before,
        "every over-allocated block is freed"
    );
}
