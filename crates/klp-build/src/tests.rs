//! The comparison and the generator on hand-built linked objects.

use wasmparser::{FuncType, RelocationType, ValType};

use crate::compare::compare;
use crate::module::{Module, OutFunc, OutReloc, Target};
use crate::object::Obj;
use crate::{Object, Options, build};

/// A function of a hand-built object: its name and its code.
enum Code {
    /// `i32.const N`.
    Const(u8),
    /// A call of the named function.
    Call(&'static str),
    /// A load from the named data plus an addend.
    Load(&'static str, i64),
    /// Nothing, and no result: a function of another type.
    Void,
}

/// A linked object with these functions (`() -> i32`, but `() -> ()` for [`Code::Void`]) and
/// data, in this order.
fn object(funcs: &[(&'static str, Code)], data: &[(&'static str, &[u8])]) -> Vec<u8> {
    let mut m = Module::default();
    let ty = m.ty(&FuncType::new([], [ValType::I32]));
    let void = m.ty(&FuncType::new([], []));
    for (name, bytes) in data {
        m.add_data((*name).to_string(), bytes, 4);
    }
    let index = |name: &str| funcs.iter().position(|(n, _)| *n == name).unwrap() as u32;
    let data_index = |name: &str| data.iter().position(|(n, _)| *n == name).unwrap() as u32;
    for (name, code) in funcs {
        let pad = [0x80, 0x80, 0x80, 0x80, 0x00];
        let (body, relocs) = match code {
            Code::Void => (vec![0x00, 0x0b], Vec::new()),
            Code::Const(n) => (vec![0x00, 0x41, *n, 0x0b], Vec::new()),
            Code::Call(callee) => {
                let mut b = vec![0x00, 0x10];
                b.extend_from_slice(&pad);
                b.push(0x0b);
                let r = OutReloc {
                    offset: 2,
                    ty: RelocationType::FunctionIndexLeb,
                    target: Target::Func(index(callee)),
                    addend: 0,
                };
                (b, vec![r])
            }
            Code::Load(d, addend) => {
                let mut b = vec![0x00, 0x41];
                b.extend_from_slice(&pad);
                b.extend_from_slice(&[0x28, 0x02, 0x00, 0x0b]);
                let r = OutReloc {
                    offset: 2,
                    ty: RelocationType::MemoryAddrSleb,
                    target: Target::Data(data_index(d)),
                    addend: *addend,
                };
                (b, vec![r])
            }
        };
        m.funcs.push(OutFunc {
            name: (*name).to_string(),
            ty: if matches!(code, Code::Void) { void } else { ty },
            body,
            relocs,
            exported: *name == "init_module",
        });
    }
    m.encode()
}

/// `wasm` with a `klp.notrace` section naming `names`.
fn with_notrace(mut wasm: Vec<u8>, names: &str) -> Vec<u8> {
    use wasm_encoder::Section;
    wasm_encoder::CustomSection {
        name: "klp.notrace".into(),
        data: names.as_bytes().into(),
    }
    .append_to(&mut wasm);
    wasm
}

fn changed_and_new(orig: &[u8], patched: &[u8]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (a, b) = (Obj::parse(orig).unwrap(), Obj::parse(patched).unwrap());
    let cmp = compare(&a, &b);
    let names = |fs: &[u32]| -> Vec<String> {
        let mut v: Vec<String> = fs
            .iter()
            .map(|f| b.func(*f).unwrap().name.clone())
            .collect();
        v.sort();
        v
    };
    let data = cmp.changed_data.iter().map(|d| d.name.clone()).collect();
    (names(&cmp.changed), names(&cmp.new), data)
}

/// Builds a patch of object `target` from two builds.
fn build_target(orig: &[u8], patched: &[u8], options: &Options) -> crate::Build {
    let objects = [Object {
        name: "target",
        orig,
        patched,
    }];
    build(&objects, options).unwrap()
}

const DATA: &[(&str, &[u8])] = &[("table", &[1, 2, 3, 4, 5, 6, 7, 8])];

#[test]
fn identical_builds_have_no_changes() {
    let o = object(&[("f", Code::Const(1)), ("g", Code::Call("f"))], DATA);
    assert_eq!(changed_and_new(&o, &o), (vec![], vec![], vec![]));
}

#[test]
fn reordered_functions_are_not_changes() {
    let a = object(
        &[
            ("f", Code::Const(1)),
            ("g", Code::Call("f")),
            ("h", Code::Load("table", 4)),
        ],
        DATA,
    );
    let b = object(
        &[
            ("h", Code::Load("table", 4)),
            ("g", Code::Call("f")),
            ("f", Code::Const(1)),
        ],
        DATA,
    );
    assert_eq!(changed_and_new(&a, &b), (vec![], vec![], vec![]));
}

#[test]
fn a_moved_call_target_is_not_a_change_but_a_new_function_is_new() {
    let a = object(&[("f", Code::Const(1)), ("g", Code::Call("f"))], DATA);
    // `f` moves to index 1: the call's field differs, its target does not.
    let b = object(
        &[
            ("helper", Code::Const(9)),
            ("f", Code::Const(1)),
            ("g", Code::Call("f")),
        ],
        DATA,
    );
    assert_eq!(
        changed_and_new(&a, &b),
        (vec![], vec!["helper".into()], vec![])
    );
}

#[test]
fn a_call_to_another_function_is_a_change() {
    let a = object(
        &[
            ("f", Code::Const(1)),
            ("f2", Code::Const(1)),
            ("g", Code::Call("f")),
        ],
        DATA,
    );
    let b = object(
        &[
            ("f", Code::Const(1)),
            ("f2", Code::Const(1)),
            ("g", Code::Call("f2")),
        ],
        DATA,
    );
    assert_eq!(changed_and_new(&a, &b).0, vec!["g".to_string()]);
}

#[test]
fn a_changed_relocation_addend_is_a_change() {
    let a = object(&[("h", Code::Load("table", 4))], DATA);
    let b = object(&[("h", Code::Load("table", 0))], DATA);
    assert_eq!(changed_and_new(&a, &b).0, vec!["h".to_string()]);
}

#[test]
fn a_changed_constant_is_a_change() {
    let a = object(&[("f", Code::Const(1))], DATA);
    let b = object(&[("f", Code::Const(2))], DATA);
    assert_eq!(changed_and_new(&a, &b).0, vec!["f".to_string()]);
}

#[test]
fn moved_data_is_not_a_change_but_a_changed_initializer_is() {
    let a = object(
        &[("h", Code::Load("table", 4))],
        &[("table", &[1, 2, 3, 4]), ("other", &[0; 4])],
    );
    // `table` moves behind a new symbol: same value, other address.
    let moved = object(
        &[("h", Code::Load("table", 4))],
        &[
            ("other", &[0; 4]),
            ("pad", &[7; 8]),
            ("table", &[1, 2, 3, 4]),
        ],
    );
    assert_eq!(changed_and_new(&a, &moved), (vec![], vec![], vec![]));
    let changed = object(
        &[("h", Code::Load("table", 4))],
        &[("table", &[1, 2, 3, 5]), ("other", &[0; 4])],
    );
    assert_eq!(
        changed_and_new(&a, &changed),
        (vec![], vec![], vec!["table".into()])
    );
}

#[test]
fn anonymous_data_is_compared_by_content() {
    let a = object(
        &[("h", Code::Load(".Lanon.1", 0))],
        &[(".Lanon.1", b"old\0")],
    );
    let renamed = object(
        &[("h", Code::Load(".Lanon.7", 0))],
        &[(".Lanon.7", b"old\0")],
    );
    assert_eq!(changed_and_new(&a, &renamed), (vec![], vec![], vec![]));
    let other = object(
        &[("h", Code::Load(".Lanon.1", 0))],
        &[(".Lanon.1", b"new\0")],
    );
    assert_eq!(changed_and_new(&a, &other).0, vec!["h".to_string()]);
}

#[test]
fn the_generated_module_carries_the_change_and_names_what_it_leaves() {
    let a = object(
        &[
            ("f", Code::Const(1)),
            ("g", Code::Call("f")),
            ("h", Code::Load("table", 4)),
        ],
        DATA,
    );
    let b = object(
        &[
            ("f", Code::Const(1)),
            ("g", Code::Call("f")),
            ("h", Code::Load("table", 0)),
            ("k", Code::Load(".Lanon.1", 0)),
        ],
        &[("table", &[1, 2, 3, 4, 5, 6, 7, 8]), (".Lanon.1", b"str\0")],
    );
    let options = Options {
        name: "fix".into(),
        ..Options::default()
    };
    let out = build_target(&a, &b, &options);
    assert_eq!(out.report.objects[0].changed, ["h"]);
    assert_eq!(out.report.objects[0].new, ["k"]);
    assert_eq!(
        out.report.objects[0].klp_relocs,
        [".klp.sym.target.table,0"]
    );
    let wasm = out.wasm.expect("a module");
    let module = klp_passes::object::ObjectFile::parse(&wasm).unwrap();
    let names: Vec<&str> = module.functions().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["h", "k", "init_module", "cleanup_module"]);
    let undefined: Vec<&str> = module.undefined().iter().map(|u| u.name.as_str()).collect();
    assert_eq!(undefined, ["klp_enable_patch", ".klp.sym.target.table,0"]);
    assert!(String::from_utf8_lossy(&wasm).contains("livepatch=Y"));
}

#[test]
fn changed_data_is_refused_by_name_unless_handled() {
    let a = object(&[("h", Code::Load("table", 4))], DATA);
    let b = object(
        &[("h", Code::Load("table", 0))],
        &[("table", &[9, 2, 3, 4, 5, 6, 7, 8])],
    );
    let mut options = Options {
        name: "fix".into(),
        ..Options::default()
    };
    let out = build_target(&a, &b, &options);
    assert!(out.wasm.is_none());
    let why = out.report.refusal().unwrap();
    assert!(why.contains("data `table` changed"), "{why}");
    options.handled = vec!["table".into()];
    let out = build_target(&a, &b, &options);
    assert_eq!(out.report.objects[0].handled, ["table"]);
    assert!(out.wasm.is_some());
}

#[test]
fn no_change_is_no_patch() {
    let a = object(&[("f", Code::Const(1))], DATA);
    let out = build_target(&a, &a, &Options::default());
    assert_eq!(
        out.report.refusal().as_deref(),
        Some("no functional changes found")
    );
    assert!(out.wasm.is_none());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let a = object(&[("f", Code::Const(1))], DATA);
    let objects = [Object {
        name: "target",
        orig: &a,
        patched: b"\0asm garbage",
    }];
    let err = build(&objects, &Options::default()).unwrap_err();
    assert!(err.message.starts_with("patched build:"), "{err}");
}

#[test]
fn a_module_helper_without_state_is_copied_and_one_with_state_is_a_klp_relocation() {
    let a = object(
        &[
            ("g", Code::Const(0)),
            ("pure", Code::Const(1)),
            ("stateful", Code::Load("table", 0)),
        ],
        DATA,
    );
    let funcs = |g: &'static str| {
        [
            ("pure", Code::Const(1)),
            ("stateful", Code::Load("table", 0)),
            ("g", Code::Call(g)),
        ]
    };
    let objects = |b: &[u8]| {
        let out = build(
            &[Object {
                name: "target",
                orig: &a,
                patched: b,
            }],
            &Options::default(),
        )
        .unwrap();
        let report = out.report.objects[0].clone();
        (report.copied, report.klp_relocs)
    };
    // `g` changed to call an unchanged helper: `pure` is copied, `stateful` is not.
    let b = object(&funcs("pure"), DATA);
    assert_eq!(objects(&b), (vec!["pure".to_string()], vec![]));
    let c = object(&funcs("stateful"), DATA);
    let (copied, relocs) = objects(&c);
    assert!(copied.is_empty());
    assert_eq!(relocs, [".klp.sym.target.stateful,0"]);
}

#[test]
fn a_changed_signature_is_refused() {
    let a = object(&[("f", Code::Const(1))], DATA);
    let b = object(&[("f", Code::Void)], DATA);
    let out = build_target(&a, &b, &Options::default());
    let why = out.report.refusal().unwrap();
    assert!(why.contains("function `f` changed its type"), "{why}");
    assert!(out.wasm.is_none());
}

#[test]
fn a_changed_notrace_function_is_refused() {
    let a = with_notrace(object(&[("f", Code::Const(1))], DATA), "f\n");
    let b = with_notrace(object(&[("f", Code::Const(2))], DATA), "f\n");
    let out = build_target(&a, &b, &Options::default());
    let why = out.report.refusal().unwrap();
    assert!(why.contains("`f` changed, but it is notrace"), "{why}");
}

#[test]
fn a_change_to_what_only_init_runs_has_no_effect() {
    let a = object(
        &[
            ("setup", Code::Const(1)),
            ("init_module", Code::Call("setup")),
            ("show", Code::Const(3)),
        ],
        DATA,
    );
    let b = object(
        &[
            ("setup", Code::Const(2)),
            ("init_module", Code::Call("setup")),
            ("show", Code::Const(4)),
        ],
        DATA,
    );
    let out = build_target(&a, &b, &Options::default());
    let report = &out.report.objects[0];
    assert_eq!(report.no_effect, ["setup"]);
    assert_eq!(report.changed, ["show"]);
    assert!(out.wasm.is_some());
}

#[test]
fn builds_that_share_no_function_names_are_refused() {
    let a = object(
        &[
            ("_ZN1k1f17h0000000000000001E", Code::Const(1)),
            ("_ZN1k1g17h0000000000000002E", Code::Const(2)),
        ],
        DATA,
    );
    let b = object(
        &[
            ("_ZN1k1f17h000000000000000aE", Code::Const(1)),
            ("_ZN1k1g17h000000000000000bE", Code::Const(2)),
        ],
        DATA,
    );
    let out = build_target(&a, &b, &Options::default());
    let why = out.report.refusal().unwrap();
    assert!(
        why.contains("only 0 of the original build's 2 Rust symbols"),
        "{why}"
    );
}

#[test]
fn mutated_objects_are_refused_or_built_never_a_panic() {
    let a = object(
        &[
            ("f", Code::Const(1)),
            ("g", Code::Call("f")),
            ("h", Code::Load(".Lanon.1", 2)),
        ],
        &[("table", &[1, 2, 3, 4]), (".Lanon.1", b"string\0")],
    );
    // A fixed linear congruential sequence: the same mutations every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let mut built = 0;
    for _ in 0..10_000 {
        let mut b = a.clone();
        for _ in 0..1 + next() % 4 {
            let at = next() % b.len();
            b[at] = next() as u8;
        }
        let objects = [Object {
            name: "target",
            orig: &a,
            patched: &b,
        }];
        if let Ok(out) = build(&objects, &Options::default()) {
            built += usize::from(out.wasm.is_some());
        }
    }
    // Some mutations only change constants: those still give modules.
    assert!(built > 0);
}
