//! Kernel variants (which direct calls pass their slots), the call graph, and the boot/code split.

use std::collections::BTreeSet;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CustomSection, EntityType, ExportKind, ExportSection, ImportSection, Module, RawSection,
    TableSection, TagKind, TagType,
};
use wasmparser::{Operator, Parser, Payload, TypeRef};

use super::kernel::Kernel;
use super::{FTRACE_SECTION, InstrumentError};

/// Which call sites of the kernel's own code go through their slots.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Every direct call stays direct (function pointers and exports still use slots).
    Plain,
    /// Only direct calls to functions whose slot is in the set go through the slot.
    Selective(BTreeSet<u32>),
    /// Every direct call to a traceable function goes through its slot.
    Full,
}

impl Variant {
    /// Whether a direct call to the traceable function in `slot` goes through the slot.
    pub(crate) fn via_slot(&self, slot: u32) -> bool {
        match self {
            Self::Plain => false,
            Self::Selective(slots) => slots.contains(&slot),
            Self::Full => true,
        }
    }
}

/// Direct calls of the input kernel (before rewriting): who can reach whom without a slot in
/// the plain variant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallGraph {
    /// By function index of the kernel (imports included, so index = function index; imports
    /// have no callees): the raw name (name section; None if unnamed) and the sorted, deduped
    /// function indices it calls with `call`/`return_call`.
    pub funcs: Vec<(Option<String>, Vec<u32>)>,
}

/// The call graph of `k`'s code as it was read.
pub(crate) fn call_graph(k: &Kernel<'_>) -> Result<CallGraph, InstrumentError> {
    let nimp = k.num_imported_funcs as usize;
    let mut funcs: Vec<(Option<String>, Vec<u32>)> = (0..k.num_funcs())
        .map(|f| (k.func_names.get(&f).map(|n| (*n).to_string()), Vec::new()))
        .collect();
    for (callees, body) in funcs[nimp..].iter_mut().map(|f| &mut f.1).zip(&k.bodies) {
        let mut ops = body.get_operators_reader()?;
        while !ops.eof() {
            if let Operator::Call { function_index } | Operator::ReturnCall { function_index } =
                ops.read()?
            {
                callees.push(function_index);
            }
        }
        callees.sort_unstable();
        callees.dedup();
    }
    Ok(CallGraph { funcs })
}

/// An instrumented kernel as the code that boots, defining the kernel's state, and as a code
/// module that imports that state from the boot code's instance.
#[derive(Debug, Clone)]
pub struct Split {
    /// The input as it was (same sections, in the same order), defining its memory (with the
    /// data segments), tables, globals and tags, with exports added for what [`Split::code`]
    /// imports: `memory`, `__indirect_function_table` (table 0), each global `i` as
    /// `__klp_global_{i}` and each tag `i` as `__klp_tag_{i}`. Every export of the input stays.
    pub boot: Vec<u8>,
    /// The instrumented module with memory 0, table 0, every global and every tag imported
    /// from module [`STATE_MODULE`] under the names above, after its function imports, so no
    /// index changes. The continuation tables of a kernel with tasks stay defined; no data
    /// segments, no data count section, no start. Element segments (they fill the boot code's
    /// table 0 when the code is instantiated), exports (memory, table 0, globals and tags
    /// re-exported as before) and custom sections stay as they were.
    pub code: Vec<u8>,
}

/// Module name the code module of a [`Split`] imports its state from.
pub const STATE_MODULE: &str = "kernel";

/// Export name of global `i` in the boot code of a [`Split`].
fn global_name(i: u32) -> String {
    format!("__klp_global_{i}")
}

/// Export name of tag `i` in the boot code of a [`Split`].
fn tag_name(i: u32) -> String {
    format!("__klp_tag_{i}")
}

const MEMORY_NAME: &str = "memory";
const TABLE_NAME: &str = "__indirect_function_table";

const TYPE: u8 = 1;
const FUNCTION: u8 = 3;
const EXPORT: u8 = 7;
const ELEMENT: u8 = 9;
const CODE: u8 = 10;

fn unsupported(msg: impl Into<String>) -> InstrumentError {
    InstrumentError::Unsupported(msg.into())
}

/// Splits an output of [`super::instrument_variant`] or [`super::instrument_for`] (with or
/// without tasks): see [`Split`].
///
/// # Errors
///
/// [`InstrumentError::Parse`] or [`InstrumentError::Feature`] for input that does not validate
/// (with [`super::tasks::FEATURES`] for a kernel with tasks); [`InstrumentError::NotInstrumented`]
/// without a `klp.ftrace` section; [`InstrumentError::Unsupported`] when the kernel imports a
/// memory, table, global or tag, has no table, a table 0 with an initializer expression (its
/// entries would call the boot code's functions) or not exactly one memory, has a start
/// function, code that uses `memory.init` or `data.drop` (the code module has no data
/// segments), or an export that takes one of the names above for something else.
pub fn split(instrumented: &[u8]) -> Result<Split, InstrumentError> {
    let wasm = instrumented;
    if super::tasks::is_rewritten(wasm) {
        super::tasks::validate(wasm)?;
    } else {
        super::validate(wasm)?;
    }
    let mut re = RoundtripReencoder;
    let mut raw: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    let mut imports = ImportSection::new();
    let mut tables = Vec::new();
    let mut memories = Vec::new();
    let mut globals = Vec::new();
    let mut tags = Vec::new();
    let mut exports = Vec::new();
    let mut customs = Vec::new();
    let mut ftrace = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        match &payload {
            Payload::ImportSection(r) => {
                for imp in r.clone().into_imports() {
                    let imp = imp?;
                    if !matches!(imp.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        return Err(unsupported(format!(
                            "the kernel imports {}.{}, which is not a function",
                            imp.module, imp.name
                        )));
                    }
                }
                re.parse_import_section(&mut imports, r.clone())?;
            }
            Payload::TableSection(r) => {
                for t in r.clone() {
                    tables.push(t?);
                }
            }
            Payload::MemorySection(r) => {
                for m in r.clone() {
                    memories.push(m?);
                }
            }
            Payload::GlobalSection(r) => {
                for g in r.clone() {
                    globals.push(g?.ty);
                }
            }
            Payload::TagSection(r) => {
                for t in r.clone() {
                    tags.push(t?);
                }
            }
            Payload::ExportSection(r) => {
                for e in r.clone() {
                    exports.push(e?);
                }
            }
            Payload::StartSection { .. } => {
                return Err(unsupported("a start function: the split has none"));
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader()?;
                while !ops.eof() {
                    if let op @ (Operator::MemoryInit { .. } | Operator::DataDrop { .. }) =
                        ops.read()?
                    {
                        return Err(unsupported(format!(
                            "code uses {op:?}, but the code module has no data segments"
                        )));
                    }
                }
            }
            Payload::CustomSection(c) => {
                ftrace |= c.name() == FTRACE_SECTION;
                customs.push((c.name(), c.data()));
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            raw.push((id, range));
        }
    }
    if !ftrace {
        return Err(InstrumentError::NotInstrumented);
    }
    let Some(table0) = tables.first() else {
        return Err(unsupported("no table 0"));
    };
    if !matches!(table0.init, wasmparser::TableInit::RefNull) {
        return Err(unsupported("table 0 has an initializer expression"));
    }
    let [memory] = memories[..] else {
        return Err(unsupported(format!(
            "{} memories: the split handles exactly one",
            memories.len()
        )));
    };
    let section = |id: u8| {
        raw.iter().find(|(i, _)| *i == id).map(|(_, r)| RawSection {
            id,
            data: &wasm[r.clone()],
        })
    };

    // What the code imports and the boot code exports: memory 0, table 0, globals, tags.
    let table_type = re.table_type(table0.ty)?;
    let memory_type = re.memory_type(memory)?;
    let mut named: Vec<(String, ExportKind, u32)> = vec![
        (MEMORY_NAME.into(), ExportKind::Memory, 0),
        (TABLE_NAME.into(), ExportKind::Table, 0),
    ];
    named.extend((0..globals.len() as u32).map(|i| (global_name(i), ExportKind::Global, i)));
    named.extend((0..tags.len() as u32).map(|i| (tag_name(i), ExportKind::Tag, i)));
    for e in &exports {
        if let Some(&(_, kind, index)) = named.iter().find(|(n, _, _)| n == e.name)
            && (kind != ExportKind::from(e.kind) || index != e.index)
        {
            return Err(unsupported(format!(
                "export `{}` names something else than the code module imports under that name",
                e.name
            )));
        }
    }

    // The code: the state imported after the function imports, its sections left out.
    for (name, kind, index) in &named {
        let ty = match kind {
            ExportKind::Memory => EntityType::Memory(memory_type),
            ExportKind::Table => EntityType::Table(table_type),
            ExportKind::Global => EntityType::Global(re.global_type(globals[*index as usize])?),
            _ => EntityType::Tag(TagType {
                kind: TagKind::Exception,
                func_type_idx: tags[*index as usize].func_type_idx,
            }),
        };
        imports.import(STATE_MODULE, name, ty);
    }
    let mut code = Module::new();
    if let Some(s) = section(TYPE) {
        code.section(&s);
    }
    code.section(&imports);
    if let Some(s) = section(FUNCTION) {
        code.section(&s);
    }
    if tables.len() > 1 {
        let mut rest = TableSection::new();
        for t in tables.into_iter().skip(1) {
            re.parse_table(&mut rest, t)?;
        }
        code.section(&rest);
    }
    for id in [EXPORT, ELEMENT, CODE] {
        if let Some(s) = section(id) {
            code.section(&s);
        }
    }
    for (name, data) in customs {
        code.section(&CustomSection {
            name: name.into(),
            data: data.into(),
        });
    }
    // The boot code: the input itself, defining the state and exporting it under the names the
    // code modules import.
    let mut boot_exports = ExportSection::new();
    for e in &exports {
        boot_exports.export(e.name, ExportKind::from(e.kind), e.index);
    }
    for (name, kind, index) in &named {
        if !exports.iter().any(|e| e.name == name) {
            boot_exports.export(name, *kind, *index);
        }
    }
    let mut boot = Module::new();
    for (id, range) in &raw {
        match *id {
            EXPORT => boot.section(&boot_exports),
            id => boot.section(&RawSection {
                id,
                data: &wasm[range.clone()],
            }),
        };
    }
    Ok(Split {
        boot: boot.finish(),
        code: code.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::tasks::{self, Switching};
    use crate::instrument::{CALLER_GLOBAL, instrument_for, instrument_variant};
    use crate::test_util::{bodies, validate};
    use wasmparser::ExternalKind;

    const MEMORY: u8 = 5;
    const GLOBAL: u8 = 6;
    const START: u8 = 8;
    const DATA: u8 = 11;
    const DATA_COUNT: u8 = 12;
    const TAG: u8 = 13;
    const RUSTC_KERNEL: &[u8] = include_bytes!("../../tests/data/exp_kernel.wasm");

    /// A kernel with an import, a function pointer, notrace glue, a tail call and a call
    /// through a function pointer.
    const KERNEL: &str = r#"(module
        (import "klp" "clock_ns" (func $clock (result i64)))
        (type $t (func (param i32) (result i32)))
        (memory 1)
        (global $__stack_pointer (mut i32) (i32.const 65536))
        (table 4 funcref)
        (elem (i32.const 1) func $a $b)
        (data (i32.const 16) "hello")
        (func $a (type $t) local.get 0 call $b local.get 0 call $b i32.add)
        (func $b (type $t) local.get 0 call $klp_glue)
        (func $klp_glue (export "klp_glue") (type $t)
            local.get 0 call $c drop call $clock drop local.get 0)
        (func $c (type $t) local.get 0 return_call $a)
        (func $run (export "run") (type $t)
            local.get 0 local.get 0 call_indirect (type $t) call $a)
        (@custom "klp.notrace" "klp_glue\n"))"#;

    /// A kernel with tasks: a yield point, a loop, a function pointer.
    const TASK_KERNEL: &str = r#"(module
        (import "klp" "yield" (func $klp_yield))
        (global $__stack_pointer (mut i32) (i32.const 65536))
        (memory 1)
        (table 2 funcref)
        (elem (i32.const 1) $sleeper)
        (data (i32.const 8) "x")
        (func $schedule call $klp_yield)
        (func $sleeper (param i32)
            (loop $l call $schedule local.get 0 i32.const 1 i32.sub local.tee 0 br_if $l))
        (func $run (export "run") (result i32) i32.const 0 call $sleeper i32.const 7))"#;

    fn kernel() -> Vec<u8> {
        wat::parse_str(KERNEL).unwrap()
    }

    /// The sections of `wasm` as `(id or custom name, bytes)`, in order.
    fn sections(wasm: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            let p = p.unwrap();
            if let Payload::CustomSection(c) = &p {
                out.push((c.name().to_string(), c.data().to_vec()));
            } else if let Some((id, r)) = p.as_section() {
                out.push((id.to_string(), wasm[r].to_vec()));
            }
        }
        out
    }

    /// Ops of the kernel's own functions (not the thunks) in `out`.
    fn own_bodies(wasm: &[u8], n: usize) -> Vec<Vec<Operator<'_>>> {
        bodies(wasm).into_iter().take(n).collect()
    }

    fn caller_global(wasm: &[u8]) -> u32 {
        exports(wasm)
            .into_iter()
            .find(|(n, _, _)| n == CALLER_GLOBAL)
            .unwrap()
            .2
    }

    fn exports(wasm: &[u8]) -> Vec<(String, ExternalKind, u32)> {
        let mut out = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::ExportSection(r) = p.unwrap() {
                for e in r {
                    let e = e.unwrap();
                    out.push((e.name.to_string(), e.kind, e.index));
                }
            }
        }
        out
    }

    fn imports(wasm: &[u8]) -> Vec<(String, String, TypeRef)> {
        let mut out = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::ImportSection(r) = p.unwrap() {
                for i in r.into_imports() {
                    let i = i.unwrap();
                    out.push((i.module.to_string(), i.name.to_string(), i.ty));
                }
            }
        }
        out
    }

    fn validate_tasks(wasm: &[u8]) {
        tasks::validate(wasm).unwrap();
    }

    #[test]
    fn full_variant_is_instrument_for_byte_for_byte() {
        let wat_kernel = kernel();
        let task_kernel = wat::parse_str(TASK_KERNEL).unwrap();
        for (wasm, switching) in [
            (RUSTC_KERNEL, None),
            (&wat_kernel[..], None),
            (&task_kernel[..], Some(Switching::Stacks)),
            (&task_kernel[..], Some(Switching::Import)),
        ] {
            let full = instrument_variant(wasm, &[], switching, &Variant::Full).unwrap();
            let old = instrument_for(wasm, &[], switching).unwrap();
            assert_eq!(full.wasm, old.wasm);
            assert_eq!(full.ftrace, old.ftrace);
        }
    }

    #[test]
    fn variants_differ_in_the_code_section_only() {
        let task_kernel = wat::parse_str(TASK_KERNEL).unwrap();
        for (wasm, switching) in [
            (RUSTC_KERNEL, None),
            (&task_kernel[..], Some(Switching::Stacks)),
        ] {
            let full = instrument_variant(wasm, &[], switching, &Variant::Full).unwrap();
            let slot = full.ftrace.entries[0].slot;
            for variant in [Variant::Plain, Variant::Selective([slot].into())] {
                let out = instrument_variant(wasm, &[], switching, &variant).unwrap();
                let (a, b) = (sections(&out.wasm), sections(&full.wasm));
                assert_eq!(a.len(), b.len());
                for (x, y) in a.iter().zip(&b) {
                    assert_eq!(x.0, y.0);
                    if x.0 != CODE.to_string() {
                        assert!(x.1 == y.1, "section {} differs in {variant:?}", x.0);
                    }
                }
                assert_eq!(out.ftrace, full.ftrace);
                assert_eq!(out.calls, full.calls);
                if switching.is_some() {
                    validate_tasks(&out.wasm);
                } else {
                    validate(&out.wasm);
                }
            }
        }
    }

    #[test]
    fn plain_variant_keeps_direct_calls_and_stores_the_caller_only_at_function_pointer_calls() {
        let out = instrument_variant(&kernel(), &[], None, &Variant::Plain).unwrap();
        validate(&out.wasm);
        let caller = caller_global(&out.wasm);
        let own = own_bodies(&out.wasm, 5);
        let count = |pred: &dyn Fn(&Operator<'_>) -> bool| {
            own.iter().flatten().filter(|op| pred(op)).count()
        };
        // Only $run's call through a function pointer goes through table 0.
        assert_eq!(
            count(&|op| matches!(
                op,
                Operator::CallIndirect { .. } | Operator::ReturnCallIndirect { .. }
            )),
            1
        );
        assert_eq!(
            count(
                &|op| matches!(op, Operator::GlobalSet { global_index } if *global_index == caller)
            ),
            1
        );
        // $a still calls $b twice directly; $c tail-calls $a directly.
        assert!(matches!(own[0][1], Operator::Call { function_index: 2 }));
        assert!(matches!(own[0][3], Operator::Call { function_index: 2 }));
        assert!(matches!(
            own[3][1],
            Operator::ReturnCall { function_index: 1 }
        ));
        // Exports still enter through their thunks, which call through the slot.
        let run = exports(&out.wasm)
            .into_iter()
            .find(|(n, _, _)| n == "run")
            .unwrap()
            .2;
        assert!(run >= 6, "run is a thunk");
    }

    #[test]
    fn selective_variant_goes_through_the_chosen_slots_only() {
        let full = instrument_variant(&kernel(), &[], None, &Variant::Full).unwrap();
        let slot_b = full.ftrace.slot_of(2).unwrap();
        let out =
            instrument_variant(&kernel(), &[], None, &Variant::Selective([slot_b].into())).unwrap();
        validate(&out.wasm);
        let caller = caller_global(&out.wasm);
        let own = own_bodies(&out.wasm, 5);
        // $a calls $b twice through its slot, storing its own slot before each.
        let slot_a = out.ftrace.slot_of(1).unwrap() as i32;
        let a = &own[0];
        for at in [1, 6] {
            assert!(matches!(a[at], Operator::I32Const { value } if value == slot_a));
            assert!(
                matches!(a[at + 1], Operator::GlobalSet { global_index } if global_index == caller)
            );
            assert!(matches!(a[at + 2], Operator::I32Const { value } if value == slot_b as i32));
            assert!(matches!(
                a[at + 3],
                Operator::CallIndirect { table_index: 0, .. }
            ));
        }
        // $c → $a and $run → $a stay direct.
        assert!(matches!(
            own[3][1],
            Operator::ReturnCall { function_index: 1 }
        ));
        assert!(
            own[4]
                .iter()
                .any(|op| matches!(op, Operator::Call { function_index: 1 }))
        );
    }

    #[test]
    fn ref_func_of_a_traceable_function_is_refused_in_every_variant() {
        let wasm = wat::parse_str(
            r#"(module (memory 1) (global $__stack_pointer (mut i32) (i32.const 0))
                (table 1 funcref) (func $target) (elem declare func $target)
                (func $leak (export "leak") (result funcref) ref.func $target))"#,
        )
        .unwrap();
        for variant in [
            Variant::Plain,
            Variant::Selective(BTreeSet::new()),
            Variant::Full,
        ] {
            let err = instrument_variant(&wasm, &[], None, &variant).unwrap_err();
            assert!(matches!(err, InstrumentError::Unhookable { .. }), "{err:?}");
        }
    }

    #[test]
    fn call_graph_lists_each_function_s_sorted_deduped_direct_callees() {
        let out = instrument_variant(&kernel(), &[], None, &Variant::Plain).unwrap();
        let named = |n: &str, callees: &[u32]| (Some(n.to_string()), callees.to_vec());
        assert_eq!(
            out.calls.funcs,
            [
                named("clock", &[]),
                named("a", &[2]),
                named("b", &[3]),
                named("klp_glue", &[0, 4]),
                named("c", &[1]),
                named("run", &[1]),
            ]
        );
        let wasm = wat::parse_str("(module (func call 1 call 0) (func))").unwrap();
        let k = Kernel::parse(&wasm).unwrap();
        assert_eq!(
            call_graph(&k).unwrap().funcs,
            [(None, vec![0, 1]), (None, vec![])]
        );
    }

    /// The type of what `wasm` (which imports no memory, table, global or tag) exports as
    /// `name`, as an import of it would be typed.
    fn export_type(wasm: &[u8], name: &str) -> Option<TypeRef> {
        let (mut memories, mut tables, mut globals, mut tags) = (vec![], vec![], vec![], vec![]);
        for p in Parser::new(0).parse_all(wasm) {
            match p.unwrap() {
                Payload::MemorySection(r) => memories.extend(r.into_iter().map(Result::unwrap)),
                Payload::TableSection(r) => tables.extend(r.into_iter().map(|t| t.unwrap().ty)),
                Payload::GlobalSection(r) => globals.extend(r.into_iter().map(|g| g.unwrap().ty)),
                Payload::TagSection(r) => tags.extend(r.into_iter().map(Result::unwrap)),
                _ => {}
            }
        }
        let (_, kind, index) = exports(wasm).into_iter().find(|(n, _, _)| n == name)?;
        let i = index as usize;
        Some(match kind {
            ExternalKind::Memory => TypeRef::Memory(memories[i]),
            ExternalKind::Table => TypeRef::Table(tables[i]),
            ExternalKind::Global => TypeRef::Global(globals[i]),
            ExternalKind::Tag => TypeRef::Tag(tags[i]),
            other => panic!("{name} is a {other:?}"),
        })
    }

    /// Section ids of `wasm`, custom sections left out.
    fn section_ids(wasm: &[u8]) -> Vec<u8> {
        Parser::new(0)
            .parse_all(wasm)
            .filter_map(|p| {
                let p = p.unwrap();
                if matches!(p, Payload::CustomSection(_)) {
                    return None;
                }
                p.as_section().map(|(id, _)| id)
            })
            .collect()
    }

    /// What `code` imports from [`STATE_MODULE`], by name.
    fn kernel_imports(code: &[u8]) -> Vec<(String, TypeRef)> {
        imports(code)
            .into_iter()
            .filter(|(m, _, _)| m == STATE_MODULE)
            .map(|(_, n, t)| (n, t))
            .collect()
    }

    /// Checks the split of `wasm` and returns it.
    fn check_split(wasm: &[u8], with_tasks: bool) -> Split {
        let s = split(wasm).unwrap();
        let check = |m: &[u8]| {
            if with_tasks {
                validate_tasks(m);
            } else {
                validate(m);
            }
        };
        check(&s.boot);
        check(&s.code);
        for id in section_ids(&s.code) {
            assert!(
                ![MEMORY, GLOBAL, TAG, DATA, START, DATA_COUNT].contains(&id),
                "{id}"
            );
        }
        // The boot code is the input with exports added: same sections, every export kept.
        assert_eq!(section_ids(&s.boot), section_ids(wasm));
        let boot_exports = exports(&s.boot);
        for e in exports(wasm) {
            assert!(boot_exports.contains(&e), "boot keeps {e:?}");
        }
        // Code imports the state after its function imports, in index order, all exported by
        // the boot code with the same kinds and types.
        let originals = imports(wasm);
        let imported = kernel_imports(&s.code);
        assert_eq!(imports(&s.code)[..originals.len()], originals[..]);
        assert_eq!(imports(&s.code).len(), originals.len() + imported.len());
        assert_eq!(imported[0].0, MEMORY_NAME);
        assert!(matches!(imported[0].1, TypeRef::Memory(_)));
        assert_eq!(imported[1].0, TABLE_NAME);
        assert!(matches!(imported[1].1, TypeRef::Table(_)));
        assert!(boot_exports.contains(&(TABLE_NAME.to_string(), ExternalKind::Table, 0)));
        let mut globals = 0;
        let mut tags = 0;
        for (name, ty) in &imported[2..] {
            match ty {
                TypeRef::Global(_) => {
                    assert_eq!(*name, global_name(globals));
                    globals += 1;
                }
                TypeRef::Tag(_) => {
                    assert_eq!(*name, tag_name(tags));
                    tags += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        for (name, ty) in &imported {
            assert_eq!(
                export_type(&s.boot, name).as_ref(),
                Some(ty),
                "boot: {name}"
            );
        }
        // Function exports and bodies are the same.
        let funcs = |m: &[u8]| -> Vec<(String, ExternalKind, u32)> {
            exports(m)
                .into_iter()
                .filter(|e| e.1 == ExternalKind::Func)
                .collect()
        };
        assert_eq!(funcs(&s.code), funcs(wasm));
        assert_eq!(bodies(&s.code).len(), bodies(wasm).len());
        s
    }

    #[test]
    fn split_of_a_kernel_gives_a_boot_module_exporting_what_the_code_module_imports() {
        for variant in [Variant::Plain, Variant::Full] {
            let out = instrument_variant(RUSTC_KERNEL, &[], None, &variant).unwrap();
            check_split(&out.wasm, false);
        }
        let out = instrument_variant(&kernel(), &[], None, &Variant::Plain).unwrap();
        let s = check_split(&out.wasm, false);
        // The data segment initializes the boot code's memory; the code module has none.
        let data = |m: &[u8]| {
            Parser::new(0)
                .parse_all(m)
                .any(|p| matches!(p.unwrap(), Payload::DataSection(_)))
        };
        assert!(data(&s.boot));
        assert!(!data(&s.code));
        let kinds = |m: &[u8], name: &str| {
            exports(m)
                .iter()
                .any(|(n, k, _)| n == name && *k == ExternalKind::Global)
        };
        assert!(kinds(&s.boot, "__stack_pointer"));
        assert!(kinds(&s.code, "__stack_pointer"));
        assert!(kinds(&s.boot, &global_name(0)));
    }

    #[test]
    fn split_of_a_kernel_with_tasks_keeps_the_continuation_tables_in_the_code() {
        let task_kernel = wat::parse_str(TASK_KERNEL).unwrap();
        for variant in [Variant::Plain, Variant::Full] {
            let out =
                instrument_variant(&task_kernel, &[], Some(Switching::Stacks), &variant).unwrap();
            let s = check_split(&out.wasm, true);
            let tables = |m: &[u8]| {
                Parser::new(0)
                    .parse_all(m)
                    .find_map(|p| match p.unwrap() {
                        Payload::TableSection(r) => Some(r.count()),
                        _ => None,
                    })
                    .unwrap_or(0)
            };
            // Table 0 is imported; the two continuation tables stay defined in the code.
            assert_eq!(tables(&out.wasm), 3);
            assert_eq!(tables(&s.boot), 3);
            assert_eq!(tables(&s.code), 2);
            let imported_tables = kernel_imports(&s.code)
                .iter()
                .filter(|(_, t)| matches!(t, TypeRef::Table(_)))
                .count();
            assert_eq!(imported_tables, 1);
            let imported_tags: Vec<String> = kernel_imports(&s.code)
                .into_iter()
                .filter(|(_, t)| matches!(t, TypeRef::Tag(_)))
                .map(|(n, _)| n)
                .collect();
            assert_eq!(imported_tags, [tag_name(0), tag_name(1), tag_name(2)]);
        }
        let out = instrument_variant(&task_kernel, &[], Some(Switching::Import), &Variant::Plain)
            .unwrap();
        check_split(&out.wasm, false);
    }

    #[test]
    fn split_accepts_a_global_initialized_with_ref_func() {
        // The boot code initializes the global as the input did; the code module imports it
        // and needs no initializer.
        let wasm = wat::parse_str(
            r#"(module (import "klp" "clock_ns" (func $clock (result i64)))
                (memory 1) (global $__stack_pointer (mut i32) (i32.const 0))
                (global $f funcref (ref.func $clock))
                (func (export "f")))"#,
        )
        .unwrap();
        let out = instrument_variant(&wasm, &[], None, &Variant::Plain).unwrap();
        let s = check_split(&out.wasm, false);
        assert!(
            kernel_imports(&s.code)
                .iter()
                .any(|(n, t)| *n == global_name(1) && matches!(t, TypeRef::Global(_)))
        );
    }

    #[test]
    fn split_refuses_an_export_that_takes_an_imported_name_for_something_else() {
        let wasm = wat::parse_str(
            r#"(module (memory 1) (global $__stack_pointer (mut i32) (i32.const 0))
                (func (export "__klp_global_0")))"#,
        )
        .unwrap();
        let out = instrument_variant(&wasm, &[], None, &Variant::Plain).unwrap();
        let err = split(&out.wasm).unwrap_err();
        assert!(
            matches!(&err, InstrumentError::Unsupported(m) if m.contains("__klp_global_0")),
            "{err:?}"
        );
    }

    #[test]
    fn split_refuses_code_that_initializes_memory_from_a_segment() {
        let wasm = wat::parse_str(
            r#"(module (memory 1) (global $__stack_pointer (mut i32) (i32.const 0))
                (data "x")
                (func (export "f") i32.const 0 i32.const 0 i32.const 1 memory.init 0))"#,
        )
        .unwrap();
        let out = instrument_variant(&wasm, &[], None, &Variant::Plain).unwrap();
        let err = split(&out.wasm).unwrap_err();
        assert!(matches!(err, InstrumentError::Unsupported(_)), "{err:?}");
    }

    #[test]
    fn split_refuses_an_uninstrumented_kernel() {
        assert!(matches!(
            split(&kernel()),
            Err(InstrumentError::NotInstrumented)
        ));
    }

    #[test]
    fn the_code_module_reads_back_its_ftrace_map_and_kallsyms() {
        let task_kernel = wat::parse_str(TASK_KERNEL).unwrap();
        for (wasm, switching) in [
            (RUSTC_KERNEL, None),
            (&task_kernel[..], Some(Switching::Stacks)),
        ] {
            let out = instrument_variant(wasm, &[], switching, &Variant::Plain).unwrap();
            let code = split(&out.wasm).unwrap().code;
            assert_eq!(
                crate::instrument::FtraceMap::from_instrumented(&code).unwrap(),
                out.ftrace
            );
            let syms = |m: &[u8]| crate::kallsyms::Kallsyms::from_kernel(m).unwrap().format();
            assert_eq!(syms(&code), syms(&out.wasm));
        }
    }

    #[test]
    fn split_of_truncated_or_corrupt_kernels_is_an_error_or_valid() {
        let good = instrument_variant(&kernel(), &[], None, &Variant::Plain)
            .unwrap()
            .wasm;
        let mut seed = 0x9e37_79b9u32;
        for len in 0..good.len() {
            if let Ok(s) = split(&good[..len]) {
                validate(&s.boot);
                validate(&s.code);
            }
        }
        for _ in 0..2000 {
            let mut bad = good.clone();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = seed as usize % bad.len();
            bad[at] ^= (seed >> 24) as u8 | 1;
            if let Ok(s) = split(&bad) {
                validate(&s.boot);
                validate(&s.code);
            }
        }
    }
}
