//! Tests of module parsing and linking: a real rustc module and a hand-built one.

use super::*;
use wasm_encoder::{Encode, RawSection};
use wasmparser::{Operator, Payload};

const RUSTC_MODULE: &[u8] = include_bytes!("../../tests/data/exp_module.wasm");

use crate::test_util::{bodies, validate};

/// `(module, name, kind)` of every import.
fn imports(wasm: &[u8]) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for p in Parser::new(0).parse_all(wasm) {
        if let Payload::ImportSection(r) = p.unwrap() {
            for i in r.into_imports() {
                let i = i.unwrap();
                let kind = match i.ty {
                    TypeRef::Func(_) | TypeRef::FuncExact(_) => "func",
                    TypeRef::Memory(_) => "memory",
                    TypeRef::Table(_) => "table",
                    TypeRef::Global(_) => "global",
                    TypeRef::Tag(_) => "tag",
                };
                out.push((i.module.into(), i.name.into(), kind));
            }
        }
    }
    out
}

/// Names of the sections present, in order.
fn section_ids(wasm: &[u8]) -> Vec<u8> {
    Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| p.unwrap().as_section().map(|(id, _)| id))
        .collect()
}

fn rustc_resolver(u: &Undefined) -> Result<u32, ObjectError> {
    match u.name.as_str() {
        "printk" => Ok(7),
        "klp_enable_patch" => Ok(8),
        "jiffies" => Ok(0x1234),
        _ => Err(ObjectError::Unresolved(u.name.clone())),
    }
}

#[test]
fn rustc_module_lists_functions_undefined_symbols_and_data() {
    let o = ObjectFile::parse(RUSTC_MODULE).unwrap();
    assert_eq!(o.data_size(), (40, 4));
    let f: Vec<(&str, String, bool)> = o
        .functions()
        .iter()
        .map(|f| (f.name.as_str(), f.sig.to_string(), f.global))
        .collect();
    assert_eq!(
        f,
        [
            (
                "_ZN1m14livepatch_show17h519a7c94269f39bdE",
                "(i32) -> i32".to_string(),
                false
            ),
            ("init_module", "() -> i32".to_string(), true),
        ]
    );
    let u: Vec<(&str, String)> = o
        .undefined()
        .iter()
        .map(|u| {
            let kind = match &u.kind {
                UndefKind::Func(sig) => sig.to_string(),
                UndefKind::Data => "data".to_string(),
            };
            (u.name.as_str(), kind)
        })
        .collect();
    assert_eq!(
        u,
        [
            ("printk", "(i32, i32) -> i32".to_string()),
            ("klp_enable_patch", "(i32) -> i32".to_string()),
            ("jiffies", "data".to_string()),
        ]
    );
    let syms: Vec<(String, char, u32)> = o
        .symbols(0x20_0000, 100)
        .into_iter()
        .map(|s| (s.name.clone(), s.type_char(), s.addr))
        .collect();
    assert_eq!(
        syms,
        [
            ("livepatch_show".to_string(), 't', 100),
            ("init_module".to_string(), 'T', 101),
            ("FUNCS".to_string(), 'd', 0x20_0014),
            ("PATCH".to_string(), 'd', 0x20_0020),
        ]
    );
}

#[test]
fn rustc_module_links_against_the_kernel_table_memory_and_stack_pointer() {
    let o = ObjectFile::parse(RUSTC_MODULE).unwrap();
    let plan = LinkPlan {
        data_base: 0x20_0000,
        slot_base: 100,
    };
    let l = o.link(&plan, &mut rustc_resolver).unwrap();
    validate(&l.wasm);
    assert_eq!(
        imports(&l.wasm),
        [
            ("env".into(), "memory".into(), "memory"),
            ("env".into(), "__indirect_function_table".into(), "table"),
            ("env".into(), "__stack_pointer".into(), "global"),
            ("env".into(), "__klp_caller".into(), "global"),
        ]
    );
    // type, import, function, global, element, code, name: no table, memory, export or data.
    assert_eq!(section_ids(&l.wasm), [1, 2, 3, 6, 9, 10, 0]);
    assert_eq!((l.init, l.exit), (Some(101), None));
    assert!(l.params.is_empty());
    // FUNCS = { name: .Lanon (image start), sympos, new: slot of livepatch_show }, PATCH.funcs.
    let word = |at: usize| u32::from_le_bytes(l.data[at..at + 4].try_into().unwrap());
    assert_eq!(&l.data[..17], b"cmdline_proc_show");
    assert_eq!(word(20), 0x20_0000);
    assert_eq!(word(28), 100);
    assert_eq!(word(32), 0x20_0014);
    let b = bodies(&l.wasm);
    for ops in &b {
        assert!(!ops.iter().any(|op| matches!(op, Operator::Call { .. })));
    }
    // printk and klp_enable_patch go through the kernel's slots; jiffies is at its address.
    let consts: Vec<i32> = b
        .iter()
        .flatten()
        .filter_map(|op| match op {
            Operator::I32Const { value } => Some(*value),
            _ => None,
        })
        .collect();
    assert!(consts.contains(&7) && consts.contains(&8) && consts.contains(&0x20_0020));
    assert!(b.iter().flatten().any(|op| matches!(
        op,
        Operator::I64Load { memarg } if memarg.offset == 0x1234
    )));
}

#[test]
fn unresolved_symbol_error_comes_back_from_link() {
    let o = ObjectFile::parse(RUSTC_MODULE).unwrap();
    let plan = LinkPlan {
        data_base: 0,
        slot_base: 0,
    };
    let err = o
        .link(&plan, &mut |u| {
            if u.name == "jiffies" {
                Err(ObjectError::Unresolved(u.name.clone()))
            } else {
                Ok(1)
            }
        })
        .unwrap_err();
    assert_eq!(err, ObjectError::Unresolved("jiffies".into()));
}

/// Cutting at a section boundary can leave a valid module; anything else must be an error.
#[test]
fn truncated_or_corrupt_modules_are_errors_not_panics() {
    let plan = LinkPlan {
        data_base: 0x1000,
        slot_base: 10,
    };
    let mut ends = vec![8];
    for p in Parser::new(0).parse_all(RUSTC_MODULE) {
        let p = p.unwrap();
        if let Some((_, r)) = p.as_section() {
            ends.push(r.end);
        } else if let Payload::CustomSection(c) = p {
            ends.push(c.range().end);
        }
    }
    for len in 0..RUSTC_MODULE.len() {
        match ObjectFile::parse(&RUSTC_MODULE[..len]) {
            Ok(o) => {
                assert!(ends.contains(&len), "len {len} parsed");
                let _ = o.link(&plan, &mut |_| Ok(1));
            }
            Err(ObjectError::Malformed(_)) => {}
            Err(e) => panic!("len {len}: {e:?}"),
        }
    }
    let mut seed = 0x9e37_79b9u32;
    for _ in 0..3000 {
        let mut bad = RUSTC_MODULE.to_vec();
        for _ in 0..2 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = seed as usize % bad.len();
            bad[at] ^= (seed >> 24) as u8 | 1;
        }
        if let Ok(o) = ObjectFile::parse(&bad) {
            let _ = o.link(&plan, &mut |_| Ok(1));
        }
    }
}

#[test]
fn module_without_relocations_links() {
    // `init_module() -> i32 { 0 }`: lld writes a linking section but no reloc.* at all.
    let wasm = include_bytes!("../../tests/data/exp_trivial_module.wasm");
    let o = ObjectFile::parse(wasm).unwrap();
    assert_eq!(o.data_size().0, 0);
    let l = o.link(&HAND_PLAN, &mut hand_resolver).unwrap();
    validate(&l.wasm);
    assert_eq!((l.init, l.exit), (Some(50), None));
    assert!(l.data.is_empty());
}

#[test]
fn module_without_linking_section_is_refused() {
    let wasm = wat::parse_str(r#"(module (import "env" "memory" (memory 1)) (func))"#).unwrap();
    let err = ObjectFile::parse(&wasm).unwrap_err();
    assert!(err.to_string().contains("no linking section"), "{err}");
}

// ---- A hand-built relocatable module, laid out as lld lays one out. ----

const R_FUNCTION_INDEX_LEB: u8 = 0;
const R_TABLE_INDEX_SLEB: u8 = 1;
const R_TABLE_INDEX_I32: u8 = 2;
const R_MEMORY_ADDR_LEB: u8 = 3;
const R_MEMORY_ADDR_SLEB: u8 = 4;
const R_MEMORY_ADDR_I32: u8 = 5;
const R_TYPE_INDEX_LEB: u8 = 6;
const R_GLOBAL_INDEX_LEB: u8 = 7;
const R_FUNCTION_OFFSET_I32: u8 = 8;
const R_TABLE_NUMBER_LEB: u8 = 20;

/// A relocation: type, offset in its section payload, symbol (or type) index, addend.
type Reloc = (u8, u32, u32, i32);

/// Code with relocation sites recorded relative to the start of the body.
#[derive(Default)]
struct Body {
    bytes: Vec<u8>,
    relocs: Vec<Reloc>,
}

impl Body {
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// A 5-byte padded LEB holding `value` (as lld leaves it), with a relocation.
    fn site(&mut self, ty: u8, index: u32, addend: i32, value: u32) -> &mut Self {
        self.relocs
            .push((ty, self.bytes.len() as u32, index, addend));
        let at = self.bytes.len();
        self.bytes
            .extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
        let field = if matches!(ty, R_MEMORY_ADDR_SLEB | R_TABLE_INDEX_SLEB) {
            reloc::Field::Sleb
        } else {
            reloc::Field::Leb
        };
        let entry = RelocationEntry {
            ty: wasmparser::RelocationType::FunctionIndexLeb,
            offset: 0,
            index: 0,
            addend: 0,
        };
        reloc::write(&mut self.bytes, at, field, value, &entry).unwrap();
        self
    }
}

fn leb(v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    s.encode(&mut out);
    out
}

/// The code section payload and its relocations (offsets relative to the payload).
fn code_section(bodies: &[Body]) -> (Vec<u8>, Vec<Reloc>) {
    let mut out = leb(bodies.len() as u32);
    let mut relocs = Vec::new();
    for b in bodies {
        let mut body = vec![0]; // no locals
        body.extend_from_slice(&b.bytes);
        out.extend(leb(body.len() as u32));
        let start = out.len() as u32 + 1;
        relocs.extend(b.relocs.iter().map(|&(t, o, i, a)| (t, start + o, i, a)));
        out.extend(body);
    }
    (out, relocs)
}

/// The data section payload and its relocations; segments are `(address, bytes, relocs)`.
fn data_section(segments: &[(u32, Vec<u8>, Vec<Reloc>)]) -> (Vec<u8>, Vec<Reloc>) {
    let mut out = leb(segments.len() as u32);
    let mut relocs = Vec::new();
    for (addr, bytes, rs) in segments {
        out.extend([0x00, 0x41]);
        i32::from_ne_bytes(addr.to_ne_bytes()).encode(&mut out);
        out.push(0x0b);
        out.extend(leb(bytes.len() as u32));
        let start = out.len() as u32;
        relocs.extend(rs.iter().map(|&(t, o, i, a)| (t, start + o, i, a)));
        out.extend(bytes);
    }
    (out, relocs)
}

fn reloc_section(section: u32, relocs: &[Reloc]) -> Vec<u8> {
    let mut out = leb(section);
    out.extend(leb(relocs.len() as u32));
    for &(ty, offset, index, addend) in relocs {
        out.push(ty);
        out.extend(leb(offset));
        out.extend(leb(index));
        if matches!(ty, 3 | 4 | 5 | 8) {
            addend.encode(&mut out);
        }
    }
    out
}

const LOCAL: u32 = 0x2;
const UNDEFINED: u32 = 0x10;

enum S<'a> {
    Func(u32, u32, Option<&'a str>),
    Data(u32, &'a str, Option<(u32, u32, u32)>),
    Global(u32, u32, &'a str),
    Table(u32, u32, &'a str),
}

fn linking_section(symbols: &[S<'_>], segments: &[(&str, u32)]) -> Vec<u8> {
    let mut syms = leb(symbols.len() as u32);
    for s in symbols {
        match s {
            S::Func(flags, index, name) => {
                syms.push(0);
                syms.extend(leb(*flags));
                syms.extend(leb(*index));
                if let Some(n) = name {
                    syms.extend(string(n));
                }
            }
            S::Data(flags, name, def) => {
                syms.push(1);
                syms.extend(leb(*flags));
                syms.extend(string(name));
                if let Some((seg, off, size)) = def {
                    syms.extend(leb(*seg));
                    syms.extend(leb(*off));
                    syms.extend(leb(*size));
                }
            }
            S::Global(flags, index, name) | S::Table(flags, index, name) => {
                syms.push(if matches!(s, S::Global(..)) { 2 } else { 5 });
                syms.extend(leb(*flags));
                syms.extend(leb(*index));
                syms.extend(string(name));
            }
        }
    }
    let mut segs = leb(segments.len() as u32);
    for (name, p2align) in segments {
        segs.extend(string(name));
        segs.extend(leb(*p2align));
        segs.extend(leb(0));
    }
    let mut out = leb(2);
    for (id, payload) in [(8u8, syms), (5, segs)] {
        out.push(id);
        out.extend(leb(payload.len() as u32));
        out.extend(payload);
    }
    out
}

/// Options for [`hand_module`] that make it broken in one way.
#[derive(Default)]
struct Breakage {
    extra_code_reloc: Option<Reloc>,
    param_size: Option<u32>,
    far_segment: Option<u32>,
}

/// A module in the shape lld gives: imports `kfunc` and a `.klp.sym` function, defines
/// `local_fn` (local), `init_module`, `cleanup_module`, a `.data` segment with a pointer, a
/// function pointer and `__param_level`, and a `.bss` counter; every relocation type the linker
/// handles appears at least once.
fn hand_module(b: &Breakage) -> Vec<u8> {
    // Symbols.
    const S_LOCAL_FN: u32 = 1;
    const S_KFUNC: u32 = 2;
    const S_SP: u32 = 3;
    const S_COUNTER: u32 = 4;
    const S_JIFFIES: u32 = 6;
    const S_TABLE: u32 = 8;
    const S_KLPSYM: u32 = 10;
    let symbols = [
        S::Func(0, 3, Some("init_module")),
        S::Func(LOCAL, 2, Some("_ZN3mod8local_fn17h0123456789abcdefE")),
        S::Func(UNDEFINED, 0, None),
        S::Global(0, 0, "__stack_pointer"),
        S::Data(
            LOCAL,
            "_ZN3mod7COUNTER17h0123456789abcdefE",
            Some((1, 4, 4)),
        ),
        S::Data(0, "__param_level", Some((0, 8, b.param_size.unwrap_or(4)))),
        S::Data(UNDEFINED, "jiffies", None),
        S::Func(0, 4, Some("cleanup_module")),
        S::Table(0x4, 0, "__indirect_function_table"),
        S::Data(
            LOCAL,
            "_ZN3mod9TABLE_PTR17h0123456789abcdefE",
            Some((0, 0, 8)),
        ),
        S::Func(UNDEFINED, 1, None),
    ];
    // Functions: 0 kfunc, 1 .klp.sym (imports), 2 local_fn, 3 init_module, 4 cleanup_module.
    let mut local_fn = Body::default();
    local_fn
        .op(&[0x20, 0x00, 0x10])
        .site(R_FUNCTION_INDEX_LEB, S_KFUNC, 0, 0)
        .op(&[0x41, 0x00, 0x28, 0x02])
        .site(R_MEMORY_ADDR_LEB, S_JIFFIES, 4, 4)
        .op(&[0x6a, 0x0b]);
    let mut init = Body::default();
    init.op(&[0x23])
        .site(R_GLOBAL_INDEX_LEB, S_SP, 0, 0)
        .op(&[0x1a, 0x41])
        .site(R_MEMORY_ADDR_SLEB, S_COUNTER, 0, 1044)
        .op(&[0x41, 0x01, 0x36, 0x02, 0x00, 0x41, 0x05, 0x41])
        .site(R_TABLE_INDEX_SLEB, S_LOCAL_FN, 0, 1)
        .op(&[0x11])
        .site(R_TYPE_INDEX_LEB, 0, 0, 0)
        .site(R_TABLE_NUMBER_LEB, S_TABLE, 0, 0)
        .op(&[0x1a, 0x41, 0x03, 0x10])
        .site(R_FUNCTION_INDEX_LEB, S_LOCAL_FN, 0, 2)
        .op(&[0x1a, 0x41, 0x00, 0x0b]);
    let mut cleanup = Body::default();
    cleanup
        .op(&[0x10])
        .site(R_FUNCTION_INDEX_LEB, S_KLPSYM, 0, 1)
        .op(&[0x1a, 0x0b]);
    let (code, mut code_relocs) = code_section(&[local_fn, init, cleanup]);
    code_relocs.extend(b.extra_code_reloc);
    let mut data0 = vec![0u8; 12];
    data0[8] = 3;
    let mut segments = vec![
        (
            1024,
            data0,
            vec![
                (R_MEMORY_ADDR_I32, 0, S_COUNTER, 0),
                (R_TABLE_INDEX_I32, 4, S_LOCAL_FN, 0),
            ],
        ),
        (1040, vec![0u8; 16], vec![]),
    ];
    if let Some(addr) = b.far_segment {
        segments.push((addr, vec![1], vec![]));
    }
    let (data, data_relocs) = data_section(&segments);

    let module = wat::parse_str(
        r#"(module
            (type (func (param i32) (result i32)))
            (type (func (result i32)))
            (type (func))
            (import "env" "memory" (memory 1))
            (import "env" "kfunc" (func (type 0)))
            (import "env" ".klp.sym.vmlinux.show_value,2" (func (type 1)))
            (func (type 0) unreachable) (func (type 1) unreachable) (func (type 2) unreachable)
            (table 2 2 funcref)
            (global (mut i32) (i32.const 65536))
            (export "init_module" (func 3))
            (export "cleanup_module" (func 4))
            (elem (i32.const 1) func 2))"#,
    )
    .unwrap();
    // Replace the placeholder code section, then append data and the custom sections.
    let mut out = wasm_encoder::Module::new();
    let mut count = 0u32;
    for p in Parser::new(0).parse_all(&module) {
        let p = p.unwrap();
        if let Some((id, range)) = p.as_section() {
            let payload = if id == 10 { &code[..] } else { &module[range] };
            out.section(&RawSection { id, data: payload });
            count += 1;
        }
    }
    let code_index = count - 1;
    out.section(&RawSection {
        id: 11,
        data: &data,
    });
    let sections = [
        (
            "linking",
            linking_section(&symbols, &[(".data", 2), (".bss", 2)]),
        ),
        ("reloc.CODE", reloc_section(code_index, &code_relocs)),
        ("reloc.DATA", reloc_section(code_index + 1, &data_relocs)),
    ];
    for (name, payload) in &sections {
        out.section(&wasm_encoder::CustomSection {
            name: (*name).into(),
            data: payload.into(),
        });
    }
    out.finish()
}

fn hand_resolver(u: &Undefined) -> Result<u32, ObjectError> {
    match u.name.as_str() {
        "kfunc" => Ok(9),
        ".klp.sym.vmlinux.show_value,2" => Ok(11),
        "jiffies" => Ok(0x5000),
        _ => Err(ObjectError::Unresolved(u.name.clone())),
    }
}

const HAND_PLAN: LinkPlan = LinkPlan {
    data_base: 0x1_0000,
    slot_base: 50,
};

#[test]
fn hand_built_module_parses() {
    let wasm = hand_module(&Breakage::default());
    let o = ObjectFile::parse(&wasm).unwrap();
    assert_eq!(o.data_size(), (32, 4));
    let names: Vec<&str> = o.undefined().iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["kfunc", ".klp.sym.vmlinux.show_value,2", "jiffies"]);
    let syms: Vec<(String, char, u32)> = o
        .symbols(HAND_PLAN.data_base, HAND_PLAN.slot_base)
        .into_iter()
        .map(|s| (s.name.clone(), s.type_char(), s.addr))
        .collect();
    assert_eq!(
        syms,
        [
            ("local_fn".to_string(), 't', 50),
            ("init_module".to_string(), 'T', 51),
            ("cleanup_module".to_string(), 'T', 52),
            ("TABLE_PTR".to_string(), 'd', 0x1_0000),
            ("__param_level".to_string(), 'D', 0x1_0008),
            ("COUNTER".to_string(), 'b', 0x1_0014),
        ]
    );
}

#[test]
fn every_relocation_type_is_applied() {
    let wasm = hand_module(&Breakage::default());
    let o = ObjectFile::parse(&wasm).unwrap();
    let l = o.link(&HAND_PLAN, &mut hand_resolver).unwrap();
    validate(&l.wasm);
    assert_eq!((l.init, l.exit), (Some(51), Some(52)));
    assert_eq!(l.params, [("level".to_string(), 0x1_0008, 4)]);
    // MEMORY_ADDR_I32 → COUNTER, TABLE_INDEX_I32 → local_fn's slot, the parameter's default.
    let word = |at: usize| u32::from_le_bytes(l.data[at..at + 4].try_into().unwrap());
    assert_eq!((word(0), word(4), word(8)), (0x1_0014, 50, 3));
    assert_eq!(l.data.len(), 32);
    let b = bodies(&l.wasm);
    use Operator as O;
    // Every call through table 0 stores the calling function's slot in the caller global
    // (import 1) first: local_fn 50, init_module 51, cleanup_module 52.
    let stores = |ops: &[O<'_>], at: usize, slot: i32| {
        matches!(ops[at], O::I32Const { value } if value == slot)
            && matches!(ops[at + 1], O::GlobalSet { global_index: 1 })
    };
    // local_fn: kfunc through kernel slot 9; jiffies + 4 as a load offset.
    assert!(stores(&b[0], 1, 50));
    assert!(matches!(b[0][3], O::I32Const { value: 9 }));
    assert!(matches!(
        b[0][4],
        O::CallIndirect {
            type_index: 0,
            table_index: 0
        }
    ));
    assert!(matches!(b[0][6], O::I32Load { memarg } if memarg.offset == 0x5004));
    // init_module: the imported stack pointer, COUNTER's address, local_fn's slot for the
    // call_indirect, and the direct call to local_fn through its own slot.
    assert!(matches!(b[1][0], O::GlobalGet { global_index: 0 }));
    assert!(matches!(b[1][2], O::I32Const { value: 0x1_0014 }));
    assert!(matches!(b[1][6], O::I32Const { value: 50 }));
    assert!(stores(&b[1], 7, 51));
    assert!(matches!(
        b[1][9],
        O::CallIndirect {
            type_index: 0,
            table_index: 0
        }
    ));
    assert!(stores(&b[1], 12, 51));
    assert!(matches!(b[1][14], O::I32Const { value: 50 }));
    assert!(matches!(b[1][15], O::CallIndirect { type_index: 0, .. }));
    // cleanup_module: the .klp.sym function through its resolved slot.
    assert!(stores(&b[2], 0, 52));
    assert!(matches!(b[2][2], O::I32Const { value: 11 }));
    assert!(matches!(b[2][3], O::CallIndirect { type_index: 1, .. }));
}

#[test]
fn linked_module_fills_the_orig_entries_only() {
    let wasm = hand_module(&Breakage::default());
    let l = ObjectFile::parse(&wasm)
        .unwrap()
        .link(&HAND_PLAN, &mut hand_resolver)
        .unwrap();
    let printed = wasmprinter::print_bytes(&l.wasm).unwrap();
    let funcs = "func $_ZN3mod8local_fn17h0123456789abcdefE $init_module $cleanup_module";
    assert!(
        printed.contains(&format!("(elem (;0;) (i32.const 53) {funcs})")),
        "{printed}"
    );
    assert!(!printed.contains("(elem (;1;)"), "{printed}");
    assert!(
        printed.contains(r#"(import "env" "__indirect_function_table" (table (;0;) 56 funcref))"#)
    );
}

#[test]
fn unknown_relocation_type_is_refused() {
    let wasm = hand_module(&Breakage {
        extra_code_reloc: Some((R_FUNCTION_OFFSET_I32, 3, 0, 0)),
        ..Breakage::default()
    });
    let err = ObjectFile::parse(&wasm).unwrap_err();
    assert!(err.to_string().contains("FunctionOffsetI32"), "{err}");
}

#[test]
fn relocation_outside_the_code_is_refused() {
    let wasm = hand_module(&Breakage {
        extra_code_reloc: Some((R_MEMORY_ADDR_LEB, 10_000, 4, 0)),
        ..Breakage::default()
    });
    let o = ObjectFile::parse(&wasm).unwrap();
    let err = o.link(&HAND_PLAN, &mut hand_resolver).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn relocation_against_a_missing_symbol_is_refused() {
    let wasm = hand_module(&Breakage {
        extra_code_reloc: Some((R_MEMORY_ADDR_LEB, 3, 99, 0)),
        ..Breakage::default()
    });
    assert!(ObjectFile::parse(&wasm).is_err());
}

#[test]
fn relocation_of_the_wrong_kind_is_refused() {
    // A memory address relocation against a function symbol, on a real LEB site.
    let o = ObjectFile::parse(&hand_module(&Breakage::default())).unwrap();
    let site = o.code_relocs[1].offset;
    let wasm = hand_module(&Breakage {
        extra_code_reloc: Some((R_MEMORY_ADDR_LEB, site, 0, 0)),
        ..Breakage::default()
    });
    let err = ObjectFile::parse(&wasm)
        .unwrap()
        .link(&HAND_PLAN, &mut hand_resolver)
        .unwrap_err();
    assert!(
        err.to_string().contains("defined symbol init_module"),
        "{err}"
    );
}

#[test]
fn parameter_of_no_size_is_refused() {
    let wasm = hand_module(&Breakage {
        param_size: Some(0),
        ..Breakage::default()
    });
    let err = ObjectFile::parse(&wasm)
        .unwrap()
        .link(&HAND_PLAN, &mut hand_resolver)
        .unwrap_err();
    assert!(
        err.to_string().contains("__param_level is 0 bytes"),
        "{err}"
    );
}

#[test]
fn data_over_64_mib_is_refused() {
    let wasm = hand_module(&Breakage {
        far_segment: Some(100 << 20),
        ..Breakage::default()
    });
    let err = ObjectFile::parse(&wasm).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn hand_built_module_survives_corruption() {
    let wasm = hand_module(&Breakage::default());
    let mut seed = 0x2545_f491u32;
    for _ in 0..3000 {
        let mut bad = wasm.clone();
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let at = seed as usize % bad.len();
        bad[at] ^= (seed >> 24) as u8 | 1;
        if let Ok(o) = ObjectFile::parse(&bad) {
            let _ = o.link(&HAND_PLAN, &mut hand_resolver);
        }
    }
}

#[test]
fn module_defining_its_own_memory_is_refused() {
    let wasm = wat::parse_str("(module (memory 1))").unwrap();
    let err = ObjectFile::parse(&wasm).unwrap_err();
    assert!(err.to_string().contains("--import-memory"), "{err}");
}

#[test]
fn module_with_call_ref_is_refused_naming_the_feature() {
    let wasm = wat::parse_str(
        r#"(module (import "env" "memory" (memory 1)) (type $t (func))
            (func $f (type $t)) (elem declare func $f)
            (func $caller ref.func $f call_ref $t))"#,
    )
    .unwrap();
    let err = ObjectFile::parse(&wasm).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "WebAssembly feature function-references (`call_ref` in function `caller`) is not \
             handled by the ftrace hook"
        ),
        "{err}"
    );
}

#[test]
fn module_writing_the_ftrace_table_is_refused_at_link() {
    let mut wasm = wat::parse_str(
        r#"(module (import "env" "memory" (memory 1)) (table 1 funcref)
            (func $writer i32.const 0 ref.null func table.set 0))"#,
    )
    .unwrap();
    let mut linking = wasm_encoder::LinkingSection::new();
    linking.symbol_table(&wasm_encoder::SymbolTable::new());
    wasm_encoder::Section::append_to(&linking, &mut wasm);
    let o = ObjectFile::parse(&wasm).unwrap();
    let err = o.link(&HAND_PLAN, &mut hand_resolver).unwrap_err();
    assert_eq!(
        err.to_string(),
        "function `writer` uses `table.set 0`, which writes the ftrace table behind the host's \
         back"
    );
}

#[test]
fn functions_up_to_the_cap_parse_and_one_more_is_refused_with_the_counts() {
    let module = |n: u32| {
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([], []);
        let mut funcs = wasm_encoder::FunctionSection::new();
        let mut code = wasm_encoder::CodeSection::new();
        for _ in 0..n {
            funcs.function(0);
            let mut body = wasm_encoder::Function::new([]);
            body.instructions().end();
            code.function(&body);
        }
        let mut out = wasm_encoder::Module::new();
        out.section(&types).section(&funcs).section(&code);
        out.section(&wasm_encoder::CustomSection {
            name: "linking".into(),
            data: linking_section(&[], &[]).into(),
        });
        out.finish()
    };
    let o = ObjectFile::parse(&module(MAX_MODULE_FUNCS)).unwrap();
    assert_eq!(o.functions().len(), MAX_MODULE_FUNCS as usize);
    let err = ObjectFile::parse(&module(MAX_MODULE_FUNCS + 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module has 16385 functions (0 imported, 16385 defined), over the limit of 16384"
    );
}
