//! Unit tests of the tasks rewrite, on a small kernel-like module.

use super::*;
use crate::instrument::instrument;
use crate::test_util::bodies;
use wasmparser::{Name, Validator};

/// A kernel-like module: a shadow stack, a function table, a sleeping path through
/// `schedule`, a loop that never yields, a tail call to the yield point.
const KERNEL: &str = r#"(module
    (import "klp" "yield" (func $klp_yield))
    (global $__stack_pointer (mut i32) (i32.const 65536))
    (memory 1)
    (table 4 funcref)
    (elem (i32.const 1) $sleeper $spinner)
    (func $schedule call $klp_yield)
    (func $cond_resched return_call $klp_yield)
    (func $sleeper (param i32)
        (loop $l
            call $schedule
            local.get 0 i32.const 1 i32.sub local.tee 0
            br_if $l))
    (func $spinner (param i32)
        (block $out (loop $l (loop $inner br $out))))
    (func $run (export "run") (result i32) i32.const 7))"#;

fn task_kernel() -> Vec<u8> {
    instrument(&wat::parse_str(KERNEL).unwrap(), &[])
        .unwrap()
        .wasm
}

fn validate_tasks(wasm: &[u8]) {
    validate(wasm).unwrap();
}

fn export(wasm: &[u8], name: &str) -> Option<(ExternalKind, u32)> {
    Parser::new(0)
        .parse_all(wasm)
        .find_map(|p| match p.unwrap() {
            Payload::ExportSection(r) => r
                .into_iter()
                .map(Result::unwrap)
                .find(|e| e.name == name)
                .map(|e| (e.kind, e.index)),
            _ => None,
        })
}

fn names(wasm: &[u8], which: u8) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for p in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(c) = p.unwrap()
            && let wasmparser::KnownCustom::Name(r) = c.as_known()
        {
            for sub in r {
                let m = match (sub.unwrap(), which) {
                    (Name::Function(m), 1)
                    | (Name::Table(m), 5)
                    | (Name::Global(m), 7)
                    | (Name::Tag(m), 11) => m,
                    _ => continue,
                };
                out.extend(m.into_iter().map(|n| {
                    let n = n.unwrap();
                    (n.index, n.name.to_string())
                }));
            }
        }
    }
    out
}

#[test]
fn a_task_entry_clears_the_caller_global_before_calling_the_entry_function() {
    let wasm = task_kernel();
    let caller = export(&wasm, crate::instrument::CALLER_GLOBAL).unwrap().1;
    let entry = names(&wasm, 1)
        .into_iter()
        .find(|(_, n)| n == ENTRY_NAME)
        .unwrap()
        .0;
    // Function indices count the one import ($klp_yield); bodies do not.
    let b = &bodies(&wasm)[entry as usize - 1];
    assert!(matches!(b[0], Operator::Loop { .. }));
    assert!(matches!(b[1], Operator::I32Const { value: 0 }));
    assert!(matches!(b[2], Operator::GlobalSet { global_index } if global_index == caller));
    assert!(matches!(
        b[5],
        Operator::CallIndirect { table_index: 0, .. }
    ));
}

#[test]
fn a_kernel_importing_yield_gets_a_valid_dispatcher() {
    let wasm = task_kernel();
    validate_tasks(&wasm);
    assert!(uses_tasks(&wasm).unwrap());
    assert!(matches!(
        export(&wasm, SPAWN),
        Some((ExternalKind::Func, _))
    ));
    assert!(matches!(
        export(&wasm, RESUME),
        Some((ExternalKind::Func, _))
    ));
    for g in [BUDGET, CURRENT, STOP] {
        assert!(
            matches!(export(&wasm, g), Some((ExternalKind::Global, _))),
            "{g}"
        );
    }
    // Without the stack-switching features it does not validate.
    assert!(
        Validator::new_with_features(super::super::FEATURES)
            .validate_all(&wasm)
            .is_err()
    );
}

#[test]
fn the_ftrace_map_and_kallsyms_read_back_from_a_kernel_with_tasks() {
    let raw = wat::parse_str(KERNEL).unwrap();
    let out = instrument(&raw, &[]).unwrap();
    assert!(is_rewritten(&out.wasm));
    assert!(!is_rewritten(&raw));
    assert_eq!(
        crate::instrument::FtraceMap::from_instrumented(&out.wasm).unwrap(),
        out.ftrace
    );
    let syms = crate::kallsyms::Kallsyms::from_kernel(&out.wasm).unwrap();
    assert!(syms.lookup_global("sleeper").is_some());
    assert!(matches!(
        instrument(&out.wasm, &[]),
        Err(InstrumentError::AlreadyInstrumented)
    ));
    // A raw kernel still gets the hook's features only, yield or not.
    let sneaky = wat::parse_str(
        KERNEL
            .replace(
                "(func $run",
                "(type $t (func)) (func $target (type $t)) (elem declare func $target) (func $run",
            )
            .replace(
                "(func $schedule call $klp_yield)",
                "(func $schedule call $klp_yield ref.func $target call_ref $t)",
            ),
    )
    .unwrap();
    assert!(matches!(
        instrument(&sneaky, &[]),
        Err(InstrumentError::Feature { .. })
    ));
}

#[test]
fn yields_become_suspends_and_nothing_else_calls_the_import() {
    let wasm = task_kernel();
    let b = bodies(&wasm);
    let calls = |op: &Operator<'_>| {
        matches!(
            op,
            Operator::Call { function_index: 0 } | Operator::ReturnCall { function_index: 0 }
        )
    };
    assert!(!b.iter().flatten().any(calls));
    // $schedule: suspend; $cond_resched: suspend; return. Tag 0 is $klp_yield.
    assert!(matches!(b[0][0], Operator::Suspend { tag_index: 0 }));
    assert!(matches!(
        b[1][..2],
        [Operator::Suspend { tag_index: 0 }, Operator::Return]
    ));
    // The import is still there, so no index moved.
    let ex = export(&wasm, "run").unwrap().1;
    let fnames = names(&wasm, 1);
    assert!(
        fnames.contains(&(ex, "__klp_thunk_run".into())),
        "{fnames:?}"
    );
}

#[test]
fn every_loop_header_of_the_kernel_checks_the_budget() {
    let wasm = task_kernel();
    let budget = export(&wasm, BUDGET).unwrap().1;
    let preempt = names(&wasm, 1)
        .into_iter()
        .find(|(_, n)| n == PREEMPT_NAME)
        .unwrap()
        .0;
    let b = bodies(&wasm);
    let kernel_bodies = &b[..b.len() - 4];
    let mut loops = 0;
    for body in kernel_bodies {
        for (i, op) in body.iter().enumerate() {
            if !matches!(op, Operator::Loop { .. }) {
                continue;
            }
            loops += 1;
            let check = &body[i + 1..i + 11];
            assert!(
                matches!(
                    check,
                    [
                        Operator::GlobalGet { global_index: g1 },
                        Operator::I32Const { value: 1 },
                        Operator::I32Sub,
                        Operator::GlobalSet { global_index: g2 },
                        Operator::GlobalGet { global_index: g3 },
                        Operator::I32Const { value: 0 },
                        Operator::I32LtS,
                        Operator::If { .. },
                        Operator::Call { function_index: p },
                        Operator::End,
                    ] if [*g1, *g2, *g3] == [budget; 3] && *p == preempt
                ),
                "{check:?}"
            );
        }
    }
    assert_eq!(loops, 3);
    // The dispatcher's own loop (the task entry) has no check.
    let entry = &b[b.len() - 4];
    assert!(!entry.iter().any(|op| matches!(op, Operator::Call { .. })));
}

#[test]
fn names_the_dispatcher_in_the_name_section() {
    let wasm = task_kernel();
    let fnames: Vec<String> = names(&wasm, 1).into_iter().map(|(_, n)| n).collect();
    for n in [
        ENTRY_NAME,
        SPAWN,
        RESUME,
        PREEMPT_NAME,
        "schedule",
        "sleeper",
    ] {
        assert!(fnames.iter().any(|f| f == n), "{n} in {fnames:?}");
    }
    let globals: Vec<String> = names(&wasm, 7).into_iter().map(|(_, n)| n).collect();
    assert!(
        globals.ends_with(&[BUDGET.into(), CURRENT.into(), STOP.into()]),
        "{globals:?}"
    );
    assert_eq!(names(&wasm, 5).len(), 2);
    let tags: Vec<String> = names(&wasm, 11).into_iter().map(|(_, n)| n).collect();
    assert_eq!(tags, ["klp_yield", "klp_preempt", "klp_exit"]);
}

#[test]
fn a_kernel_without_yield_is_left_as_the_hook_makes_it() {
    let raw = wat::parse_str(KERNEL.replace(
        r#"(import "klp" "yield" (func $klp_yield))"#,
        r#"(import "klp" "other" (func $klp_yield))"#,
    ))
    .unwrap();
    assert!(!uses_tasks(&raw).unwrap());
    let out = instrument(&raw, &[]).unwrap().wasm;
    assert!(!uses_tasks(&out).unwrap());
    assert_eq!(export(&out, RESUME), None);
    crate::test_util::validate(&out);
    // The real rustc kernel test data has no yield either: its output needs no new feature.
    let rustc = instrument(include_bytes!("../../../tests/data/exp_kernel.wasm"), &[]).unwrap();
    crate::test_util::validate(&rustc.wasm);
    assert!(!uses_tasks(&rustc.wasm).unwrap());
}

#[test]
fn add_tasks_to_a_kernel_without_yield_adds_the_dispatcher_only() {
    let raw = wat::parse_str(KERNEL.replace(
        r#"(import "klp" "yield" (func $klp_yield))"#,
        r#"(import "klp" "other" (func $klp_yield))"#,
    ))
    .unwrap();
    let out = add_tasks(&instrument(&raw, &[]).unwrap().wasm, Switching::Stacks).unwrap();
    validate_tasks(&out);
    assert!(
        bodies(&out)[0]
            .iter()
            .any(|op| matches!(op, Operator::Call { function_index: 0 }))
    );
}

#[test]
fn uses_of_yield_other_than_calls_are_refused() {
    for (from, to) in [
        (
            "(elem (i32.const 1) $sleeper $spinner)",
            "(elem (i32.const 1) $sleeper $klp_yield)",
        ),
        (
            "(func $schedule call $klp_yield)",
            "(func $schedule (drop (ref.func $klp_yield)))
            (elem declare func $klp_yield)",
        ),
    ] {
        let raw = wat::parse_str(KERNEL.replace(from, to)).unwrap();
        let err = instrument(&raw, &[]).unwrap_err();
        assert!(err.to_string().contains("klp.yield: only calls"), "{err}");
    }
    let raw = wat::parse_str(
        KERNEL
            .replace("(func $klp_yield)", "(func $klp_yield (param i32))")
            .replace(
                "return_call $klp_yield",
                "i32.const 0 return_call $klp_yield",
            )
            .replace("(func $schedule call", "(func $schedule i32.const 0 call"),
    )
    .unwrap();
    let err = instrument(&raw, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported kernel: klp.yield has type (func (param i32)), not [] -> []"
    );
    let raw = wat::parse_str(KERNEL.replace("(export \"run\")", "(export \"__klp_task_spawn\")"))
        .unwrap();
    let err = instrument(&raw, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported kernel: the kernel already exports `__klp_task_spawn`"
    );
}

/// The kernel as the browser runs it: instrumented with the yield import switching tasks.
fn import_kernel() -> Vec<u8> {
    crate::instrument::instrument_for(
        &wat::parse_str(KERNEL).unwrap(),
        &[],
        Some(Switching::Import),
    )
    .unwrap()
    .wasm
}

#[test]
fn import_switching_keeps_the_yield_calls_and_needs_no_new_feature() {
    let wasm = import_kernel();
    crate::test_util::validate(&wasm);
    assert!(!has_tasks(&wasm).unwrap());
    assert!(uses_tasks(&wasm).unwrap());
    let b = bodies(&wasm);
    assert!(matches!(b[0][0], Operator::Call { function_index: 0 }));
    assert!(matches!(
        b[1][0],
        Operator::ReturnCall { function_index: 0 }
    ));
    for name in [SPAWN, RESUME] {
        assert_eq!(export(&wasm, name), None, "{name}");
    }
    for name in [BUDGET, CURRENT, STOP] {
        assert!(
            matches!(export(&wasm, name), Some((ExternalKind::Global, _))),
            "{name}"
        );
    }
}

#[test]
fn import_switching_preempts_by_calling_the_yield_import_with_the_stop_set() {
    let wasm = import_kernel();
    let stop = export(&wasm, STOP).unwrap().1;
    let budget = export(&wasm, BUDGET).unwrap().1;
    let fnames = names(&wasm, 1);
    let preempt = fnames.iter().find(|(_, n)| n == PREEMPT_NAME).unwrap().0;
    assert_eq!(
        fnames
            .iter()
            .filter(|(_, n)| n.starts_with("__klp_task"))
            .count(),
        1
    );
    let b = bodies(&wasm);
    // The preemption check is the last body: outside a task it turns preemption off; inside it
    // says "preempted" and calls the import.
    let body = b.last().unwrap();
    assert!(
        body.windows(3).any(|w| matches!(
            w,
            [
                Operator::I32Const { value: STOP_PREEMPTED },
                Operator::GlobalSet { global_index: g },
                Operator::Call { function_index: 0 },
            ] if *g == stop
        )),
        "{body:?}"
    );
    // Every loop header of the kernel checks the budget and calls it.
    let loops = b[..b.len() - 1]
        .iter()
        .flat_map(|body| body.windows(2))
        .filter(|w| matches!(w[0], Operator::Loop { .. }))
        .inspect(|w| {
            assert!(matches!(w[1], Operator::GlobalGet { global_index: g } if g == budget));
        })
        .count();
    assert_eq!(loops, 3);
    assert!(
        b.iter()
            .flatten()
            .any(|op| matches!(op, Operator::Call { function_index: p } if *p == preempt))
    );
}

#[test]
fn import_switching_refuses_a_kernel_without_the_yield_import() {
    let raw = wat::parse_str(KERNEL.replace(
        r#"(import "klp" "yield" (func $klp_yield))"#,
        r#"(import "klp" "other" (func $klp_yield))"#,
    ))
    .unwrap();
    let out = instrument(&raw, &[]).unwrap().wasm;
    let err = add_tasks(&out, Switching::Import).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported kernel: no klp.yield import for the engine to switch tasks with"
    );
}
