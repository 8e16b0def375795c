//! The instrumentation pass on the real kernel: every call to a traceable function goes through
//! its slot, function pointers are slots, notrace functions keep their direct calls, the output
//! validates, and kallsyms tells duplicate local names apart.

use klp_artifacts as artifacts;
use klp_passes::instrument::{self, FtraceMap};
use klp_passes::kallsyms::{Kallsyms, SymKind};
use std::collections::HashSet;
use wasmparser::{Operator, Parser, Payload, Validator, WasmFeatures};

fn instrumented() -> (Vec<u8>, FtraceMap) {
    let out = instrument::instrument(artifacts::KERNEL, &[]).expect("the kernel instruments");
    (out.wasm, out.ftrace)
}

/// Every `call` target in the module's code, by caller position.
fn direct_call_targets(wasm: &[u8]) -> Vec<u32> {
    let mut targets = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CodeSectionEntry(body) = payload.unwrap() {
            let mut ops = body.get_operators_reader().unwrap();
            while !ops.eof() {
                if let Operator::Call { function_index } | Operator::ReturnCall { function_index } =
                    ops.read().unwrap()
                {
                    targets.push(function_index);
                }
            }
        }
    }
    targets
}

#[test]
fn instrumented_kernel_validates() {
    let (wasm, _) = instrumented();
    // With tasks (the kernel imports klp.yield): stack switching and what it needs.
    Validator::new_with_features(WasmFeatures::default() | klp_passes::instrument::tasks::FEATURES)
        .validate_all(&wasm)
        .expect("valid wasm");
}

#[test]
fn no_direct_call_to_a_traceable_function_remains() {
    let (wasm, map) = instrumented();
    let traceable: HashSet<u32> = map
        .entries
        .iter()
        .filter(|e| !e.notrace)
        .map(|e| e.func_index)
        .collect();
    let offenders: Vec<u32> = direct_call_targets(&wasm)
        .into_iter()
        .filter(|t| traceable.contains(t))
        .collect();
    assert!(
        offenders.is_empty(),
        "direct calls to traceable functions remain: {offenders:?}"
    );
}

#[test]
fn notrace_functions_keep_direct_calls() {
    let (wasm, map) = instrumented();
    let notrace: HashSet<u32> = map
        .entries
        .iter()
        .filter(|e| e.notrace)
        .map(|e| e.func_index)
        .collect();
    assert!(
        !notrace.is_empty(),
        "the kernel marks its hook glue notrace"
    );
    assert!(
        direct_call_targets(&wasm)
            .iter()
            .any(|t| notrace.contains(t)),
        "some notrace function is still called directly"
    );
    let names: Vec<&str> = map
        .entries
        .iter()
        .filter(|e| e.notrace)
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("klp_enable_patch")),
        "klp_enable_patch is notrace: {names:?}"
    );
}

#[test]
fn every_function_pointer_in_the_element_segments_is_a_slot() {
    let (wasm, map) = instrumented();
    let slots: HashSet<u32> = map.entries.iter().map(|e| e.slot).collect();
    for payload in Parser::new(0).parse_all(&wasm) {
        if let Payload::ElementSection(reader) = payload.unwrap() {
            for element in reader {
                let element = element.unwrap();
                let wasmparser::ElementKind::Active { offset_expr, .. } = element.kind else {
                    continue;
                };
                let mut ops = offset_expr.get_operators_reader();
                let Ok(Operator::I32Const { value }) = ops.read() else {
                    continue;
                };
                if let wasmparser::ElementItems::Functions(funcs) = element.items {
                    for (i, func) in funcs.into_iter().enumerate() {
                        let index = value as u32 + i as u32;
                        let func = func.unwrap();
                        if index < map.nr_slots {
                            let entry = map.entry_by_slot(index).expect("slot entry exists");
                            let thunk = map.entries.iter().all(|e| e.func_index != func);
                            assert!(
                                entry.func_index == func || thunk,
                                "slot {index} holds function {func}"
                            );
                            assert!(slots.contains(&index));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn instrumenting_twice_is_refused() {
    let (wasm, _) = instrumented();
    assert!(instrument::instrument(&wasm, &[]).is_err());
}

#[test]
fn kallsyms_tells_duplicate_local_names_apart_by_sympos() {
    let (wasm, _) = instrumented();
    let syms = Kallsyms::from_kernel(&wasm).unwrap();
    let dup = syms
        .iter()
        .find(|s| !s.global && s.kind == SymKind::Func && s.sympos == 2 && s.name == "parse_int")
        .map(|s| s.name.clone());
    let name = dup.expect("some local function name occurs twice");
    let first = syms.lookup(None, &name, 1).unwrap();
    let second = syms.lookup(None, &name, 2).unwrap();
    assert_ne!(first.addr, second.addr);
    assert!(first.addr < second.addr, "sympos follows address order");
    assert!(
        syms.lookup(None, &name, 0).is_err(),
        "an ambiguous name needs a sympos"
    );
    assert!(syms.lookup(None, &name, 3).is_err());
    let local_static = syms
        .iter()
        .find(|s| !s.global && matches!(s.kind, SymKind::Data | SymKind::Bss));
    assert!(local_static.is_some(), "local statics are listed");
    assert!(
        syms.format().contains(" t cmdline_proc_show\n"),
        "cmdline_proc_show is a local function"
    );
}
