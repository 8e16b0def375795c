//! The ftrace hook ("-fentry"): gives every kernel function a slot in table 0 and calls through it.
//!
//! See docs/ABI.md, "The ftrace table". The pass reads the kernel once, assigns slots
//! ([`FtraceMap`]), rewrites every direct call to a traceable function into
//! `i32.const slot; call_indirect`, replaces exports and duplicate function pointers of traceable
//! functions with notrace thunks, lays out table 0 as `[slots | orig entries]`, exports memory,
//! table and `__stack_pointer`, and writes `klp.ftrace` and `klp.kallsyms`. A kernel that imports
//! `klp.yield` gets tasks too ([`tasks`]): a preemption budget at every loop header and, for an
//! engine with stack switching, yields that become suspends and a task dispatcher; any other
//! kernel is left as described above.
//!
//! [`instrument_variant`] leaves some direct calls direct ([`Variant`]: none, a chosen set of
//! slots, or all through their slots as [`instrument`] does), and reports the input's direct
//! calls ([`CallGraph`]); [`split`] makes of an instrumented kernel a boot module that defines
//! and exports its state (memory, table 0, globals, tags) and a code module that imports it.
//!
//! ```
//! let kernel = wat::parse_str(r#"(module
//!     (global $__stack_pointer (mut i32) (i32.const 65536))
//!     (memory 1)
//!     (func $helper (result i32) i32.const 42)
//!     (func $run (export "run") (result i32) call $helper))"#)?;
//! let out = klp_passes::instrument::instrument(&kernel, &[])?;
//! assert_eq!(out.ftrace.slot_of(0), Some(1)); // slot 0 stays NULL
//! assert_eq!(out.ftrace.nr_slots, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod features;
mod ftrace;
pub(crate) mod kernel;
pub(crate) mod rewrite;
pub mod tasks;
mod variant;

use std::collections::HashMap;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, ElementSection, Elements, ExportKind, ExportSection,
    FunctionSection, Module, NameMap, NameSection, RawSection, RefType, TableSection, TableType,
};
use wasmparser::{BinaryReader, ExternalKind, Name, NameSectionReader};

use crate::func_count::MAX_KERNEL_FUNCS;
pub use features::FEATURES;
pub(crate) use features::validate;
pub use ftrace::{FTRACE_SECTION, FtraceEntry, FtraceMap, FuncSig, ValType};
use kernel::Kernel;
pub use kernel::NOTRACE_SECTION;
use rewrite::{CallTarget, CodeMap, Rewriter};
pub use variant::{CallGraph, STATE_MODULE, Split, Variant, split};

/// Prefix of the name-section names of the pass's thunks.
pub const THUNK_PREFIX: &str = "__klp_thunk_";

/// An instrumented kernel.
#[derive(Debug, Clone)]
pub struct Instrumented {
    /// The rewritten module.
    pub wasm: Vec<u8>,
    /// Its slot assignment (also stored in its `klp.ftrace` section).
    pub ftrace: FtraceMap,
    /// The direct calls of the input kernel (the same for every [`Variant`]).
    pub calls: CallGraph,
}

/// Why a kernel could not be instrumented (or its ftrace map not read).
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    /// The input is not valid WebAssembly.
    #[error("invalid wasm: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// The input is valid WebAssembly but its klp metadata is inconsistent.
    #[error("malformed kernel: {0}")]
    Malformed(String),
    /// The input uses something the pass does not handle.
    #[error("unsupported kernel: {0}")]
    Unsupported(String),
    /// The input needs a WebAssembly feature outside [`FEATURES`], the set the pass handles.
    #[error(
        "{}",
        feature_message(.feature, .function.as_deref(), .instruction.as_deref(), .detail)
    )]
    Feature {
        /// The feature as wasm-tools names it (`function-references`): alternatives joined by
        /// `or`, features needed together by `and`; empty when they cannot be told.
        feature: String,
        /// The function (demangled) whose code needs it, when the validator points into code.
        function: Option<String>,
        /// The instruction that needs it (`call_ref`), when it decodes.
        instruction: Option<String>,
        /// The validator's message.
        detail: String,
    },
    /// Code would reach a traceable function without passing its slot, or change the ftrace
    /// table behind the host's back.
    #[error("{} uses `{instruction}`, which {why}", code_of(.function.as_deref()))]
    Unhookable {
        /// The function (demangled) whose code it is; `None` where the caller does not know.
        function: Option<String>,
        /// The instruction and its immediates (`table.set 0`).
        instruction: String,
        /// What it would do.
        why: &'static str,
    },
    /// The input already has a `klp.ftrace` section.
    #[error("kernel is already instrumented (it has a klp.ftrace section)")]
    AlreadyInstrumented,
    /// The input has no `klp.ftrace` section.
    #[error("kernel is not instrumented (no klp.ftrace section)")]
    NotInstrumented,
}

impl InstrumentError {
    /// Names the function an [`InstrumentError::Unhookable`] refusal was found in.
    pub(crate) fn in_function(self, name: String) -> Self {
        match self {
            Self::Unhookable {
                function: None,
                instruction,
                why,
            } => Self::Unhookable {
                function: Some(name),
                instruction,
                why,
            },
            other => other,
        }
    }
}

/// The message of [`InstrumentError::Feature`].
fn feature_message(
    feature: &str,
    function: Option<&str>,
    instruction: Option<&str>,
    detail: &str,
) -> String {
    let what = if feature.is_empty() {
        "a WebAssembly feature".to_string()
    } else {
        format!("WebAssembly feature {feature}")
    };
    let at = match (function, instruction) {
        (Some(f), Some(i)) => format!(" (`{i}` in function `{f}`)"),
        (Some(f), None) => format!(" (in function `{f}`)"),
        _ => String::new(),
    };
    format!("{what}{at} is not handled by the ftrace hook: {detail}")
}

/// The subject of [`InstrumentError::Unhookable`]'s message.
fn code_of(function: Option<&str>) -> String {
    function.map_or_else(|| "code".to_string(), |f| format!("function `{f}`"))
}

impl<E: std::fmt::Display> From<wasm_encoder::reencode::Error<E>> for InstrumentError {
    fn from(e: wasm_encoder::reencode::Error<E>) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// Instruments a kernel: see the [module documentation](self).
///
/// `extra_notrace` adds raw function names to the kernel's `klp.notrace` list; a trailing `*`
/// matches a prefix (`klp_*`).
///
/// # Errors
///
/// [`InstrumentError::Parse`] for invalid WebAssembly; [`InstrumentError::Feature`] for one that
/// needs a feature outside [`FEATURES`] (`call_ref` and `return_call_ref` among them);
/// [`InstrumentError::Unhookable`] for code that would bypass the slots (`ref.func` of a
/// traceable function, any write to the table); [`InstrumentError::AlreadyInstrumented`] when
/// run twice (or what [`FtraceMap::from_instrumented`] finds wrong with the input's map); and
/// [`InstrumentError::Unsupported`] for kernels outside what the pass handles (an imported or a
/// second table, several active element segments for table 0, non-constant offsets, no memory,
/// no mutable i32 `__stack_pointer`, more than 2^20 slots, clashing export names); for a kernel
/// that imports `klp.yield`, also what [`tasks::add_tasks`] refuses.
pub fn instrument(wasm: &[u8], extra_notrace: &[&str]) -> Result<Instrumented, InstrumentError> {
    instrument_for(wasm, extra_notrace, Some(tasks::Switching::Stacks))
}

/// [`instrument`], with the tasks rewrite for an engine that switches tasks as `switching`
/// says, or without it (`None`: a kernel that imports `klp.yield` runs with its yield a call
/// that returns at once).
///
/// # Errors
/// As [`instrument`].
pub fn instrument_for(
    wasm: &[u8],
    extra_notrace: &[&str],
    switching: Option<tasks::Switching>,
) -> Result<Instrumented, InstrumentError> {
    instrument_variant(wasm, extra_notrace, switching, &Variant::Full)
}

/// [`instrument_for`], rewriting the kernel's direct calls as `variant` says: everything else
/// (function indices, thunks, table layout, names, `klp.ftrace`, `klp.kallsyms`) is the same
/// for every variant, and [`Variant::Full`] gives [`instrument_for`]'s output. A kernel is
/// accepted or refused the same in every variant.
///
/// # Errors
/// As [`instrument`].
pub fn instrument_variant(
    wasm: &[u8],
    extra_notrace: &[&str],
    switching: Option<tasks::Switching>,
    variant: &Variant,
) -> Result<Instrumented, InstrumentError> {
    let k = Kernel::parse(wasm)?;
    let with_tasks = match switching {
        Some(switching) if tasks::uses_tasks(wasm)? => Some(switching),
        _ => None,
    };
    if k.is_instrumented() {
        // A damaged map says more than "already instrumented".
        k.ftrace_map()?;
        return Err(InstrumentError::AlreadyInstrumented);
    }
    k.check_tables()?;
    let plan = k.plan(extra_notrace)?;
    let map = &plan.map;
    let symbols = crate::kallsyms::kernel_symbols(&k, map)?;
    let sp = k.stack_pointer()?;
    if k.num_imported_memories == 0 && k.middle.iter().all(|s| s.id != MEMORY_SECTION) {
        return Err(unsupported("no memory"));
    }

    let nimp = k.num_imported_funcs;
    let nfuncs = k.num_funcs();
    let traceable = |f: u32| {
        map.entry_of(f)
            .filter(|e| !e.notrace)
            .map(|e| (e.slot, k.func_types[f as usize]))
    };
    // Thunks: `(function, entry)`. An entry thunk (an export: the host calls it) clears the
    // caller global, as its caller is no kernel function; a function pointer's thunk leaves
    // it as the call site through the pointer set it.
    let mut thunks: Vec<(u32, bool)> = Vec::new();
    let mut thunk_of: HashMap<(u32, bool), u32> = HashMap::new();
    let mut thunk = |f: u32, entry: bool| {
        *thunk_of.entry((f, entry)).or_insert_with(|| {
            thunks.push((f, entry));
            nfuncs + thunks.len() as u32 - 1
        })
    };
    let caller_global = u32::try_from(k.globals.len())
        .map_err(|_| unsupported("too many globals for the caller global"))?;

    // Table 0: [slots | orig entries].
    let nr = map.nr_slots;
    let mut table: Vec<Option<u32>> = vec![None; 2 * nr as usize];
    for (i, item) in k.elem.items.iter().enumerate() {
        table[k.elem.offset as usize + i] = *item;
    }
    for e in &map.entries {
        table[e.slot as usize] = Some(e.func_index);
        table[(e.slot + nr) as usize] = Some(e.func_index);
    }
    for &(pos, f) in &plan.duplicates {
        if traceable(f).is_some() {
            table[pos as usize] = Some(thunk(f, false));
        }
    }

    // Exports.
    let mut exports = ExportSection::new();
    let mut exported: HashMap<&str, (ExternalKind, u32)> = HashMap::new();
    for e in &k.exports {
        let index = match e.kind {
            ExternalKind::Func | ExternalKind::FuncExact if traceable(e.index).is_some() => {
                thunk(e.index, true)
            }
            _ => e.index,
        };
        exports.export(e.name, ExportKind::from(e.kind), index);
        exported.insert(e.name, (e.kind, e.index));
    }
    for (name, kind, index) in [
        ("memory", ExternalKind::Memory, 0),
        ("__indirect_function_table", ExternalKind::Table, 0),
        ("__stack_pointer", ExternalKind::Global, sp),
        (CALLER_GLOBAL, ExternalKind::Global, caller_global),
    ] {
        match exported.get(name) {
            None => {
                exports.export(name, ExportKind::from(kind), index);
            }
            Some(&(k, i)) if k == kind && i == index => {}
            Some(_) => {
                return Err(unsupported(format!("export `{name}` names something else")));
            }
        }
    }
    // The output must be readable again: its thunks count towards the cap.
    let total = nfuncs.saturating_add(u32::try_from(thunks.len()).unwrap_or(u32::MAX));
    if total > MAX_KERNEL_FUNCS {
        return Err(unsupported(format!(
            "{total} functions with the thunks ({} of them), over the limit of {MAX_KERNEL_FUNCS}",
            thunks.len()
        )));
    }

    // Code.
    let graph = variant::call_graph(&k)?;
    let full_calls: Vec<CallTarget> = (0..nfuncs)
        .map(|f| match traceable(f) {
            Some((slot, type_index)) => CallTarget::ViaSlot { slot, type_index },
            None => CallTarget::Direct(f),
        })
        .collect();
    let calls: Vec<CallTarget> = (0..nfuncs)
        .zip(&full_calls)
        .map(|(f, target)| match *target {
            CallTarget::ViaSlot { slot, .. } if !variant.via_slot(slot) => CallTarget::Direct(f),
            target => target,
        })
        .collect();
    let mut rewriter = Rewriter::new(CodeMap {
        calls: &calls,
        full_calls: Some(&full_calls),
        ref_funcs: None,
        globals: None,
        keep_segments: true,
        caller: Some(caller_global),
    });
    let mut code = CodeSection::new();
    let mut body = Vec::with_capacity(256);
    for (f, b) in (nimp..).zip(&k.bodies) {
        body.clear();
        rewriter
            .rewrite(b, map.slot_of(f).unwrap_or(0), &mut body)
            .map_err(|e| e.in_function(k.display_name(f)))?;
        code.raw(&body);
    }
    let mut functions = FunctionSection::new();
    for t in &k.func_types[nimp as usize..] {
        functions.function(*t);
    }
    for &(f, entry) in &thunks {
        let (slot, type_index) = traceable(f).unwrap_or_default();
        let nparams = k.func_type(f)?.params().len() as u32;
        functions.function(type_index);
        body.clear();
        body.push(0); // no locals
        for p in 0..nparams {
            body.push(0x20); // local.get
            wasm_encoder::Encode::encode(&p, &mut body);
        }
        if entry {
            rewrite::encode_caller_store(Some((0, caller_global)), &mut body);
        }
        rewrite::encode_call(CallTarget::ViaSlot { slot, type_index }, false, &mut body);
        body.push(0x0b); // end
        code.raw(&body);
    }

    // Assemble.
    let raw = |s: &kernel::RawSection| RawSection {
        id: s.id,
        data: &wasm[s.range.clone()],
    };
    let mut module = Module::new();
    for s in &k.head {
        module.section(&raw(s));
    }
    module.section(&functions);
    module.section(&tables(2 * nr));
    let globals = with_caller_global(&k, wasm)?;
    for s in &k.middle {
        match s.id {
            GLOBAL_SECTION => module.section(&RawSection {
                id: GLOBAL_SECTION,
                data: &globals,
            }),
            _ => module.section(&raw(s)),
        };
    }
    if !k.middle.iter().any(|s| s.id == GLOBAL_SECTION) {
        module.section(&RawSection {
            id: GLOBAL_SECTION,
            data: &globals,
        });
    }
    module.section(&exports);
    if let Some(s) = &k.start {
        module.section(&raw(s));
    }
    module.section(&elements(&k, &table)?);
    if let Some(s) = &k.data_count {
        module.section(&raw(s));
    }
    module.section(&code);
    if let Some(s) = &k.data {
        module.section(&raw(s));
    }
    let thunk_names: Vec<(u32, String)> = thunks
        .iter()
        .enumerate()
        .map(|(i, (f, _))| {
            (
                nfuncs + i as u32,
                format!("{THUNK_PREFIX}{}", k.func_name(*f)),
            )
        })
        .collect();
    module.section(&names(&k, &thunk_names)?);
    for (name, data) in &k.customs {
        module.section(&CustomSection {
            name: (*name).into(),
            data: (*data).into(),
        });
    }
    module.section(&CustomSection {
        name: FTRACE_SECTION.into(),
        data: map.encode().into(),
    });
    module.section(&CustomSection {
        name: crate::kallsyms::KALLSYMS_SECTION.into(),
        data: crate::kallsyms::encode_symbols(&symbols).into(),
    });
    let mut out = module.finish();
    if let Some(switching) = with_tasks {
        out = tasks::add_tasks(&out, switching)?;
    }
    Ok(Instrumented {
        wasm: out,
        ftrace: plan.map,
        calls: graph,
    })
}

const MEMORY_SECTION: u8 = 5;
const GLOBAL_SECTION: u8 = 6;

/// The name the kernel exports its caller global under (docs/ABI.md, "The caller global"):
/// every call through table 0 stores its caller's slot there first, 0 for the host.
pub const CALLER_GLOBAL: &str = "__klp_caller";

/// The contents of the kernel's global section with the caller global, `(mut i32)` starting at
/// 0, appended (its index is the number of globals the kernel had).
fn with_caller_global(k: &Kernel<'_>, wasm: &[u8]) -> Result<Vec<u8>, InstrumentError> {
    let (count, entries) = match k.middle.iter().find(|s| s.id == GLOBAL_SECTION) {
        Some(s) => {
            let mut r = BinaryReader::new(&wasm[s.range.clone()], 0);
            let count = r.read_var_u32()?;
            (count, r.read_bytes(r.bytes_remaining())?)
        }
        None => (0, &[][..]),
    };
    let mut out = Vec::with_capacity(entries.len() + 8);
    wasm_encoder::Encode::encode(&(count + 1), &mut out);
    out.extend_from_slice(entries);
    // (global (mut i32) (i32.const 0))
    out.extend_from_slice(&[0x7f, 0x01, 0x41, 0x00, 0x0b]);
    Ok(out)
}

fn unsupported(msg: impl Into<String>) -> InstrumentError {
    InstrumentError::Unsupported(msg.into())
}

/// The table section: table 0, the only one ([`Kernel::check_tables`]), sized `size` with no
/// maximum (the loader grows it).
fn tables(size: u32) -> TableSection {
    let mut out = TableSection::new();
    out.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: u64::from(size),
        maximum: None,
        shared: false,
    });
    out
}

/// Element segments: contiguous runs of table 0, then the kernel's other segments as they were.
fn elements(k: &Kernel<'_>, table: &[Option<u32>]) -> Result<ElementSection, InstrumentError> {
    let mut out = ElementSection::new();
    let mut i = 0;
    while i < table.len() {
        if table[i].is_none() {
            i += 1;
            continue;
        }
        let start = i;
        let run: Vec<u32> = table[start..].iter().map_while(|e| *e).collect();
        i += run.len();
        out.active(
            None,
            &ConstExpr::i32_const(start as i32),
            Elements::Functions(run.into()),
        );
    }
    let mut re = RoundtripReencoder;
    for e in &k.other_elems {
        re.parse_element(&mut out, e.clone())?;
    }
    Ok(out)
}

/// The name section with the thunks' names added to the function names.
fn names(k: &Kernel<'_>, thunks: &[(u32, String)]) -> Result<NameSection, InstrumentError> {
    let mut out = NameSection::new();
    let func_map = || {
        let mut sorted: Vec<(&u32, &&str)> = k.func_names.iter().collect();
        sorted.sort_unstable();
        let mut m = NameMap::new();
        for (i, n) in sorted {
            m.append(*i, n);
        }
        for (i, n) in thunks {
            m.append(*i, n);
        }
        m
    };
    let mut functions_done = false;
    if let Some((data, offset)) = k.name_section {
        let raw_range = |r: std::ops::Range<usize>| {
            r.start
                .checked_sub(offset)
                .and_then(|s| data.get(s..r.end - offset))
                .unwrap_or_default()
        };
        for sub in NameSectionReader::new(BinaryReader::new(data, offset)) {
            let sub = sub?;
            let (id, bytes) = match &sub {
                Name::Module { name, .. } => {
                    out.module(name);
                    continue;
                }
                Name::Function(_) => {
                    out.functions(&func_map());
                    functions_done = true;
                    continue;
                }
                Name::Local(m) => (2, raw_range(m.range())),
                Name::Label(m) => (3, raw_range(m.range())),
                Name::Type(m) => (4, raw_range(m.range())),
                Name::Table(m) => (5, raw_range(m.range())),
                Name::Memory(m) => (6, raw_range(m.range())),
                Name::Global(m) => (7, raw_range(m.range())),
                Name::Element(m) => (8, raw_range(m.range())),
                Name::Data(m) => (9, raw_range(m.range())),
                Name::Field(m) => (10, raw_range(m.range())),
                Name::Tag(m) => (11, raw_range(m.range())),
                Name::Unknown { ty, data, .. } => (*ty, *data),
            };
            if !functions_done && id > 1 {
                out.functions(&func_map());
                functions_done = true;
            }
            out.raw(id, bytes);
        }
    }
    if !functions_done {
        out.functions(&func_map());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Operator, Parser, Payload};

    const RUSTC_KERNEL: &[u8] = include_bytes!("../../tests/data/exp_kernel.wasm");

    /// A kernel with an import, a duplicate function pointer, notrace glue and a tail call.
    const KERNEL: &str = r#"(module
        (import "klp" "clock_ns" (func $clock (result i64)))
        (type $t (func (param i32) (result i32)))
        (memory 1)
        (global $__stack_pointer (mut i32) (i32.const 65536))
        (table 4 funcref)
        (elem (i32.const 1) func $a $b $a)
        (func $a (type $t) local.get 0 call $b)
        (func $b (type $t) local.get 0 call $klp_glue)
        (func $klp_glue (export "klp_glue") (type $t)
            local.get 0 call $c drop call $clock drop local.get 0)
        (func $c (type $t) local.get 0 return_call $a)
        (func $run (export "run") (type $t)
            local.get 0 local.get 0 call_indirect (type $t) call $a)
        (@custom "klp.notrace" "klp_glue\n"))"#;

    use crate::test_util::{bodies, validate};

    /// Table 0 as the active element segments fill it.
    fn table(wasm: &[u8]) -> Vec<Option<u32>> {
        let mut t = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            let Payload::ElementSection(r) = p.unwrap() else {
                continue;
            };
            for e in r {
                let e = e.unwrap();
                let wasmparser::ElementKind::Active { offset_expr, .. } = e.kind else {
                    continue;
                };
                let off = kernel::const_i32(&offset_expr).unwrap() as usize;
                let wasmparser::ElementItems::Functions(fs) = e.items else {
                    panic!("expressions")
                };
                for (i, f) in fs.into_iter().enumerate() {
                    if t.len() <= off + i {
                        t.resize(off + i + 1, None);
                    }
                    t[off + i] = Some(f.unwrap());
                }
            }
        }
        t
    }

    fn exports(wasm: &[u8]) -> HashMap<String, (ExternalKind, u32)> {
        let mut out = HashMap::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::ExportSection(r) = p.unwrap() {
                for e in r {
                    let e = e.unwrap();
                    out.insert(e.name.to_string(), (e.kind, e.index));
                }
            }
        }
        out
    }

    fn func_names(wasm: &[u8]) -> HashMap<u32, String> {
        let mut out = HashMap::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::CustomSection(c) = p.unwrap()
                && let wasmparser::KnownCustom::Name(r) = c.as_known()
            {
                for sub in r {
                    if let Name::Function(m) = sub.unwrap() {
                        for n in m {
                            let n = n.unwrap();
                            out.insert(n.index, n.name.to_string());
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn rustc_kernel_instruments_to_a_valid_module() {
        let out = instrument(RUSTC_KERNEL, &[]).unwrap();
        validate(&out.wasm);
        let slots: Vec<u32> = out.ftrace.entries.iter().map(|e| e.slot).collect();
        // The two helpers are function pointers at 1 and 2 and keep them.
        assert_eq!(slots, [1, 2, 3, 4, 5]);
        assert_eq!(out.ftrace.nr_slots, 6);
        assert_eq!(out.ftrace.entries[3].sig.to_string(), "(i32, i32) -> i32");
        let t = table(&out.wasm);
        assert_eq!(t.len(), 12);
        for e in &out.ftrace.entries {
            assert_eq!(t[e.slot as usize], Some(e.func_index));
            assert_eq!(t[(e.slot + 6) as usize], Some(e.func_index));
        }
        let ex = exports(&out.wasm);
        assert_eq!(ex["memory"], (ExternalKind::Memory, 0));
        assert_eq!(ex["__indirect_function_table"], (ExternalKind::Table, 0));
        assert_eq!(ex["__stack_pointer"], (ExternalKind::Global, 0));
        let names = func_names(&out.wasm);
        assert_eq!(names[&ex["run"].1], "__klp_thunk_run");
        assert_eq!(names[&0], "_ZN1k1a6helper17hcdb7061e983b62bfE");
    }

    #[test]
    fn no_direct_call_to_a_traceable_function_remains() {
        let out = instrument(RUSTC_KERNEL, &[]).unwrap();
        for ops in bodies(&out.wasm) {
            assert!(!ops.iter().any(|op| matches!(op, Operator::Call { .. })));
        }
        let out = instrument(&wat::parse_str(KERNEL).unwrap(), &["c"]).unwrap();
        let notrace: Vec<u32> = out
            .ftrace
            .entries
            .iter()
            .filter(|e| e.notrace)
            .map(|e| e.func_index)
            .collect();
        assert_eq!(notrace, [3, 4]); // klp_glue (klp.notrace) and c (extra)
        for ops in bodies(&out.wasm) {
            for op in ops {
                if let Operator::Call { function_index: f }
                | Operator::ReturnCall { function_index: f } = op
                {
                    assert!(f == 0 || notrace.contains(&f), "direct call to {f}");
                }
            }
        }
    }

    #[test]
    fn calls_go_through_the_callee_slot() {
        let out = instrument(&wat::parse_str(KERNEL).unwrap(), &["c"]).unwrap();
        let b = bodies(&out.wasm);
        let caller = exports(&out.wasm)[CALLER_GLOBAL].1;
        let stores = |ops: &[Operator<'_>], at: usize, slot: i32| {
            matches!(ops[at], Operator::I32Const { value } if value == slot)
                && matches!(ops[at + 1], Operator::GlobalSet { global_index } if global_index == caller)
        };
        // $a (slot 1): local.get 0; its slot into the caller global; i32.const slot($b) = 2;
        // call_indirect
        assert!(stores(&b[0], 1, 1));
        assert!(matches!(b[0][3], Operator::I32Const { value: 2 }));
        assert!(matches!(
            b[0][4],
            Operator::CallIndirect { table_index: 0, .. }
        ));
        // $b calls notrace glue directly, storing nothing.
        assert!(matches!(b[1][1], Operator::Call { function_index: 3 }));
        // $c: return_call $a → return_call_indirect through slot 1, after storing its slot.
        let slot_c = out.ftrace.slot_of(4).unwrap() as i32;
        assert!(stores(&b[3], 1, slot_c));
        assert!(matches!(b[3][3], Operator::I32Const { value: 1 }));
        assert!(matches!(b[3][4], Operator::ReturnCallIndirect { .. }));
    }

    #[test]
    fn duplicate_function_pointers_and_exports_become_thunks() {
        let out = instrument(&wat::parse_str(KERNEL).unwrap(), &["c"]).unwrap();
        validate(&out.wasm);
        let slot_a = out.ftrace.slot_of(1).unwrap();
        assert_eq!(slot_a, 1);
        let t = table(&out.wasm);
        let dup = t[3].unwrap();
        let names = func_names(&out.wasm);
        assert_eq!(names[&dup], "__klp_thunk_a");
        let ex = exports(&out.wasm);
        assert_eq!(names[&ex["run"].1], "__klp_thunk_run");
        assert_eq!(ex["klp_glue"].1, 3, "notrace exports stay direct");
        // A function pointer's thunk leaves the caller global as the call site set it; an
        // export's clears it (the host called).
        let thunk = &bodies(&out.wasm)[(dup - 1) as usize];
        assert!(matches!(thunk[1], Operator::I32Const { value: 1 }));
        assert!(matches!(thunk[2], Operator::CallIndirect { .. }));
        let caller = ex[CALLER_GLOBAL].1;
        let entry = &bodies(&out.wasm)[(ex["run"].1 - 1) as usize];
        assert!(matches!(entry[1], Operator::I32Const { value: 0 }));
        assert!(matches!(entry[2], Operator::GlobalSet { global_index } if global_index == caller));
    }

    #[test]
    fn notrace_patterns_match_prefixes() {
        let out = instrument(&wat::parse_str(KERNEL).unwrap(), &["klp_*", "ru*"]).unwrap();
        let notrace: Vec<&str> = out
            .ftrace
            .entries
            .iter()
            .filter(|e| e.notrace)
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(notrace, ["klp_glue", "run"]);
    }

    #[test]
    fn ftrace_map_reads_back_from_the_instrumented_kernel() {
        let out = instrument(RUSTC_KERNEL, &["run"]).unwrap();
        assert_eq!(FtraceMap::from_instrumented(&out.wasm).unwrap(), out.ftrace);
        assert!(matches!(
            FtraceMap::from_instrumented(RUSTC_KERNEL),
            Err(InstrumentError::NotInstrumented)
        ));
    }

    #[test]
    fn instrumenting_twice_is_refused() {
        let out = instrument(RUSTC_KERNEL, &[]).unwrap();
        assert!(matches!(
            instrument(&out.wasm, &[]),
            Err(InstrumentError::AlreadyInstrumented)
        ));
    }

    #[test]
    fn truncated_or_corrupt_kernels_are_errors() {
        // Cutting at a section boundary leaves a valid module; anywhere else is an error.
        let mut ends = vec![8];
        for p in Parser::new(0).parse_all(RUSTC_KERNEL) {
            let p = p.unwrap();
            if let Some((_, r)) = p.as_section() {
                ends.push(r.end);
            } else if let Payload::CustomSection(c) = p {
                ends.push(c.range().end);
            }
        }
        for len in 0..RUSTC_KERNEL.len() {
            let res = instrument(&RUSTC_KERNEL[..len], &[]);
            assert!(ends.contains(&len) || res.is_err(), "len {len}");
        }
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut bad = RUSTC_KERNEL.to_vec();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = seed as usize % bad.len();
            bad[at] ^= (seed >> 24) as u8 | 1;
            let _ = instrument(&bad, &[]);
        }
    }

    #[test]
    fn kernel_without_stack_pointer_is_refused() {
        let wasm = wat::parse_str("(module (memory 1) (func))").unwrap();
        assert!(matches!(
            instrument(&wasm, &[]),
            Err(InstrumentError::Unsupported(_))
        ));
    }

    #[test]
    fn clashing_export_name_is_refused() {
        let wasm = wat::parse_str(
            r#"(module (memory 1) (global $__stack_pointer (mut i32) (i32.const 0))
                (func (export "memory")))"#,
        )
        .unwrap();
        let err = instrument(&wasm, &[]).unwrap_err();
        assert!(err.to_string().contains("`memory`"), "{err}");
    }

    /// A kernel with memory and a stack pointer around `items`.
    fn kernel(items: &str) -> Vec<u8> {
        wat::parse_str(format!(
            "(module (memory 1) (global $__stack_pointer (mut i32) (i32.const 65536)) {items})"
        ))
        .unwrap()
    }

    #[test]
    fn a_kernel_whose_thunks_would_pass_the_function_cap_is_refused() {
        // One exported function gets a thunk: at the cap, the output would be one over it.
        let with = |n: u32| {
            kernel(&format!(
                "(func (export \"run\")){}",
                "(func)".repeat(n as usize - 1)
            ))
        };
        let below = instrument(&with(MAX_KERNEL_FUNCS - 1), &[]).unwrap();
        assert_eq!(below.ftrace.nr_slots, MAX_KERNEL_FUNCS);
        let err = instrument(&with(MAX_KERNEL_FUNCS), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kernel: 65537 functions with the thunks (1 of them), over the limit of 65536"
        );
        let err = instrument(&with(MAX_KERNEL_FUNCS + 1), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kernel: 65537 functions, over the limit of 65536"
        );
    }

    #[test]
    fn call_ref_and_return_call_ref_are_refused_naming_the_feature() {
        for instruction in ["call_ref", "return_call_ref"] {
            let wasm = kernel(&format!(
                r#"(type $t (func)) (func $target (type $t)) (elem declare func $target)
                   (func $sneaky (export "sneaky") ref.func $target {instruction} $t)"#
            ));
            let err = instrument(&wasm, &[]).unwrap_err();
            let InstrumentError::Feature {
                feature,
                function,
                instruction: op,
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(feature, "function-references");
            assert_eq!(function.as_deref(), Some("sneaky"));
            assert_eq!(op.as_deref(), Some(instruction));
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!(
                    "WebAssembly feature function-references (`{instruction}` in function \
                     `sneaky`) is not handled by the ftrace hook: function references support is \
                     not enabled (at offset 0x"
                )),
                "{msg}"
            );
        }
    }

    #[test]
    fn ref_func_of_a_traceable_function_in_code_is_refused() {
        let wasm = kernel(
            r#"(table 1 funcref) (func $target) (elem declare func $target)
               (func $leak (export "leak") (result funcref) ref.func $target)"#,
        );
        let err = instrument(&wasm, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "function `leak` uses `ref.func 0`, which makes a reference to a traceable function \
             that bypasses its ftrace slot"
        );
        // A notrace function keeps its direct calls, so a reference to it bypasses nothing.
        validate(&instrument(&wasm, &["target"]).unwrap().wasm);
    }

    #[test]
    fn writes_to_the_ftrace_table_are_refused() {
        for (code, instruction) in [
            ("i32.const 1 ref.null func table.set 0", "table.set 0"),
            (
                "ref.null func i32.const 1 table.grow 0 drop",
                "table.grow 0",
            ),
            (
                "i32.const 0 ref.null func i32.const 1 table.fill 0",
                "table.fill 0",
            ),
            (
                "i32.const 0 i32.const 1 i32.const 1 table.copy 0 0",
                "table.copy 0 0",
            ),
            (
                "i32.const 0 i32.const 0 i32.const 1 table.init 0 0",
                "table.init 0 0",
            ),
        ] {
            let wasm = kernel(&format!(
                "(table 2 funcref) (func $f) (elem func $f) (func $writer {code})"
            ));
            let err = instrument(&wasm, &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "function `writer` uses `{instruction}`, which writes the ftrace table \
                     behind the host's back"
                )
            );
        }
        // Reading the table bypasses nothing: the funcref cannot be called or stored.
        let wasm = kernel("(table 2 funcref) (func (result funcref) i32.const 1 table.get 0)");
        validate(&instrument(&wasm, &[]).unwrap().wasm);
    }

    #[test]
    fn a_second_table_is_refused() {
        let wasm = kernel(
            r#"(table 1 funcref) (table $t2 1 funcref) (func $f)
               (elem (table $t2) (i32.const 0) func $f)
               (func $call i32.const 0 call_indirect $t2)"#,
        );
        let err = instrument(&wasm, &[]).unwrap_err();
        assert!(matches!(err, InstrumentError::Unsupported(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "unsupported kernel: 2 tables: calls through any table but table 0, the ftrace \
             table, bypass the slots"
        );
    }

    #[test]
    fn stack_pointer_must_be_a_mutable_i32_global_of_the_kernel() {
        let wasm = wat::parse_str(
            "(module (memory 1) (global $__stack_pointer i32 (i32.const 0)) (func))",
        )
        .unwrap();
        let err = instrument(&wasm, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kernel: `__stack_pointer` (global 0) is not a mutable i32"
        );
        // A name section naming global 5 of a kernel with one: subsection 7 (globals).
        let wasm = wat::parse_str(
            r#"(module (memory 1) (global (mut i32) (i32.const 0)) (func)
                (@custom "name" "\07\12\01\05\0f__stack_pointer"))"#,
        )
        .unwrap();
        let err = instrument(&wasm, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kernel: `__stack_pointer` is global 5, but the kernel has 1 globals"
        );
    }

    #[test]
    fn instrumenting_a_damaged_instrumented_kernel_reports_the_damage() {
        let mut out = instrument(RUSTC_KERNEL, &[]).unwrap().wasm;
        let ftrace = Parser::new(0)
            .parse_all(&out)
            .find_map(|p| match p.unwrap() {
                Payload::CustomSection(c) if c.name() == FTRACE_SECTION => Some(c.data_offset()),
                _ => None,
            })
            .unwrap();
        out[ftrace] = 2; // the version
        let err = instrument(&out, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed kernel: klp.ftrace: unsupported version 2"
        );
    }
}
