//! What the ftrace hook refuses: features outside its set, and damaged `klp.*` sections.

use klp_artifacts as artifacts;
use klp_core::kernel::prepare;
use klp_passes::instrument::{self, FEATURES, FtraceMap};
use wasmparser::{Parser, Payload, Validator};

#[test]
fn the_kernel_and_every_module_stay_within_the_feature_set() {
    let instrumented = instrument::instrument(artifacts::KERNEL, &[]).expect("instruments");
    let all = [
        ("kernel", artifacts::KERNEL),
        ("instrumented kernel", instrumented.wasm.as_slice()),
    ];
    for (name, wasm) in all.into_iter().chain(artifacts::MODULES.iter().copied()) {
        // The instrumented kernel has tasks (it imports klp.yield): the tasks rewrite's
        // features on top of the hook's; the kernel as built and every module need only the
        // hook's.
        let features = match name {
            "instrumented kernel" => FEATURES | klp_passes::instrument::tasks::FEATURES,
            _ => FEATURES,
        };
        if let Err(e) = Validator::new_with_features(features).validate_all(wasm) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn booting_a_kernel_with_call_ref_names_the_feature() {
    let kernel = wat::parse_str(
        r#"(module (memory 1) (global $__stack_pointer (mut i32) (i32.const 65536))
            (type $t (func)) (func $target (type $t)) (elem declare func $target)
            (func $kernel_boot (export "kernel_boot") ref.func $target call_ref $t))"#,
    )
    .unwrap();
    let err = prepare(&kernel, "", true).err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "instrument: WebAssembly feature function-references (`call_ref` in function \
             `kernel_boot`) is not handled by the ftrace hook"
        ),
        "{msg}"
    );
}

/// The payload ranges of the `klp.*` custom sections.
fn klp_sections(wasm: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| match p.unwrap() {
            Payload::CustomSection(c) if c.name().starts_with("klp.") => {
                let start = c.data_offset();
                Some((c.name().to_string(), start..start + c.data().len()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn damaged_klp_sections_never_panic_the_boot_path() {
    let good = instrument::instrument(artifacts::KERNEL, &[]).expect("instruments");
    let sections = klp_sections(&good.wasm);
    let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["klp.notrace", "klp.ftrace", "klp.kallsyms"]);
    let mut seed = 0x9e37_79b9u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    // Bytes that are not name letters: mostly the numbers, which odd rounds aim at.
    let numbers: Vec<Vec<usize>> = sections
        .iter()
        .map(|(_, r)| {
            r.clone()
                .filter(|&i| !good.wasm[i].is_ascii_graphic())
                .collect()
        })
        .collect();
    let mut refused = 0;
    for round in 0..400 {
        let (name, range) = &sections[round % sections.len()];
        let numbers = &numbers[round % sections.len()];
        let mut bad = good.wasm.clone();
        for _ in 0..=next() % 3 {
            let at = if round % 2 == 1 && !numbers.is_empty() {
                numbers[next() as usize % numbers.len()]
            } else {
                range.start + next() as usize % range.len()
            };
            bad[at] = match next() % 4 {
                0 => 0,
                1 => 0x80,
                2 => 0xff,
                _ => bad[at] ^ (next() as u8 | 1),
            };
        }
        match prepare(&bad, "", true) {
            Err(_) => refused += 1,
            Ok(image) => {
                // What boots passed the checks: its map reads back, slots below nr_slots.
                let map = FtraceMap::from_instrumented(&image.wasm)
                    .unwrap_or_else(|e| panic!("round {round} ({name}): {e}"));
                assert!(map.entries.iter().all(|e| e.slot < map.nr_slots));
            }
        }
    }
    // Most damage is caught; some (a name's letters, an unused notrace line) is harmless.
    assert!(refused > 200, "only {refused} of 400 refused");
}
