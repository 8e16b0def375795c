//! Reading a kernel module once: the sections the pass rewrites, names, and the slot plan.

use std::collections::HashMap;
use std::ops::Range;

use wasmparser::{
    BinaryReader, CompositeInnerType, ConstExpr, DataKind, ElementItems, ElementKind, Export,
    FuncType, FunctionBody, GlobalType, Name, Operator, Parser, Payload, TableType, TypeRef,
};

use super::InstrumentError;
use super::ftrace::{FTRACE_SECTION, FtraceEntry, FtraceMap, FuncSig};
use super::rewrite;
use crate::func_count::{self, MAX_KERNEL_FUNCS};
use crate::object::linking::{LinkingInfo, SymTarget};

/// Name of the custom section listing notrace functions, one raw name per line.
pub const NOTRACE_SECTION: &str = "klp.notrace";

/// Most slots a kernel may have; more is refused rather than allocated.
pub(crate) const MAX_SLOTS: u32 = 1 << 20;

/// A section kept in place, by id and payload range in the input.
#[derive(Debug, Clone)]
pub(crate) struct RawSection {
    pub id: u8,
    pub range: Range<usize>,
}

/// An active data segment: where it goes and how long it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataSeg {
    /// Linear address (`None` for passive segments or non-constant offsets).
    pub addr: Option<u32>,
    /// Length in bytes.
    pub len: u32,
}

/// The one active element segment of table 0, as the pass sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Elem {
    /// Table offset of the first item.
    pub offset: u32,
    /// Items: function indices or null.
    pub items: Vec<Option<u32>>,
}

/// Everything the pass and kallsyms need from a kernel module.
pub(crate) struct Kernel<'a> {
    /// Function types by type index; `None` for the continuation types of a kernel with tasks
    /// (other types are refused by validation).
    pub types: Vec<Option<FuncType>>,
    /// Type index of every function, imports first.
    pub func_types: Vec<u32>,
    pub num_imported_funcs: u32,
    pub num_imported_tables: u32,
    pub num_imported_memories: u32,
    pub num_imported_globals: u32,
    /// Type of every global, imports first.
    pub globals: Vec<GlobalType>,
    /// Raw names from the name section, by function index.
    pub func_names: HashMap<u32, &'a str>,
    /// The first named symbol of each function in the linking symbol table, by function index.
    pub func_syms: HashMap<u32, &'a str>,
    /// Global names from the name section.
    pub global_names: HashMap<u32, &'a str>,
    /// Sections before the table section that are copied unchanged (type, import, function).
    pub head: Vec<RawSection>,
    pub function_section: Option<Range<usize>>,
    /// Tables, imports first, with their initializer expressions.
    pub tables: Vec<(TableType, Option<ConstExpr<'a>>)>,
    /// Sections between table and export (memory, tag, global).
    pub middle: Vec<RawSection>,
    pub exports: Vec<Export<'a>>,
    pub start: Option<RawSection>,
    /// Active element segment of table 0.
    pub elem: Elem,
    /// The further active segments of table 0 an instrumented kernel has, in order.
    pub more_elems: Vec<Elem>,
    /// Other element segments, kept as they are.
    pub other_elems: Vec<wasmparser::Element<'a>>,
    pub data_count: Option<RawSection>,
    pub bodies: Vec<FunctionBody<'a>>,
    pub data: Option<RawSection>,
    pub data_segs: Vec<DataSeg>,
    /// Data segment names from the name section.
    pub data_names: HashMap<u32, &'a str>,
    /// Custom sections copied to the output, in order.
    pub customs: Vec<(&'a str, &'a [u8])>,
    pub name_section: Option<(&'a [u8], usize)>,
    pub linking: Option<LinkingInfo<'a>>,
    pub notrace: Vec<&'a str>,
    /// Payload and offset of the `klp.kallsyms` section of an instrumented kernel.
    pub kallsyms_section: Option<(&'a [u8], usize)>,
    /// Payload and offset of the `klp.ftrace` section of an instrumented kernel.
    pub ftrace_section: Option<(&'a [u8], usize)>,
}

fn unsupported(msg: impl Into<String>) -> InstrumentError {
    InstrumentError::Unsupported(msg.into())
}

fn malformed(msg: String) -> InstrumentError {
    InstrumentError::Malformed(msg)
}

/// A constant `i32.const N` expression's value.
pub(crate) fn const_i32(expr: &ConstExpr<'_>) -> Option<u32> {
    let mut ops = expr.get_operators_reader();
    match (ops.read().ok()?, ops.read().ok()?) {
        (Operator::I32Const { value }, Operator::End) if ops.eof() => {
            Some(u32::from_ne_bytes(value.to_ne_bytes()))
        }
        _ => None,
    }
}

impl<'a> Kernel<'a> {
    /// Validates (with [`super::FEATURES`], and [`super::tasks::FEATURES`] for an instrumented
    /// kernel with tasks) and reads `wasm`; more than [`MAX_KERNEL_FUNCS`]
    /// functions are refused from the section headers, before validation.
    pub(crate) fn parse(wasm: &'a [u8]) -> Result<Self, InstrumentError> {
        let count = func_count::count(wasm)?;
        if count.total() > MAX_KERNEL_FUNCS {
            return Err(unsupported(format!(
                "{} functions, over the limit of {MAX_KERNEL_FUNCS}",
                count.total()
            )));
        }
        if super::tasks::is_rewritten(wasm) {
            super::tasks::validate(wasm)?;
        } else {
            super::validate(wasm)?;
        }
        let mut k = Kernel {
            types: Vec::new(),
            func_types: Vec::new(),
            num_imported_funcs: 0,
            num_imported_tables: 0,
            num_imported_memories: 0,
            num_imported_globals: 0,
            globals: Vec::new(),
            func_names: HashMap::new(),
            func_syms: HashMap::new(),
            global_names: HashMap::new(),
            head: Vec::new(),
            function_section: None,
            tables: Vec::new(),
            middle: Vec::new(),
            exports: Vec::new(),
            start: None,
            elem: Elem::default(),
            more_elems: Vec::new(),
            other_elems: Vec::new(),
            data_count: None,
            bodies: Vec::new(),
            data: None,
            data_segs: Vec::new(),
            data_names: HashMap::new(),
            customs: Vec::new(),
            name_section: None,
            linking: None,
            notrace: Vec::new(),
            kallsyms_section: None,
            ftrace_section: None,
        };
        let mut saw_table0_elem = false;
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload?;
            if let Some((id, range)) = payload.as_section() {
                let raw = RawSection { id, range };
                match &payload {
                    Payload::TypeSection(_) | Payload::ImportSection(_) => k.head.push(raw),
                    Payload::MemorySection(_)
                    | Payload::TagSection(_)
                    | Payload::GlobalSection(_) => k.middle.push(raw),
                    Payload::StartSection { .. } => k.start = Some(raw),
                    Payload::DataCountSection { .. } => k.data_count = Some(raw),
                    Payload::DataSection(_) => k.data = Some(raw),
                    Payload::FunctionSection(_) => k.function_section = Some(raw.range),
                    _ => {}
                }
            }
            match payload {
                Payload::TypeSection(r) => {
                    for group in r {
                        for sub in group?.types() {
                            k.types.push(match &sub.composite_type.inner {
                                CompositeInnerType::Func(f) => Some(f.clone()),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        match imp?.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                k.func_types.push(t);
                                k.num_imported_funcs += 1;
                            }
                            TypeRef::Table(t) => {
                                k.num_imported_tables += 1;
                                k.tables.push((t, None));
                            }
                            TypeRef::Memory(_) => k.num_imported_memories += 1,
                            TypeRef::Global(g) => {
                                k.num_imported_globals += 1;
                                k.globals.push(g);
                            }
                            TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        k.func_types.push(t?);
                    }
                }
                Payload::GlobalSection(r) => {
                    for g in r {
                        k.globals.push(g?.ty);
                    }
                }
                Payload::TableSection(r) => {
                    for t in r {
                        let t = t?;
                        let init = match t.init {
                            wasmparser::TableInit::RefNull => None,
                            wasmparser::TableInit::Expr(e) => Some(e),
                        };
                        k.tables.push((t.ty, init));
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        k.exports.push(e?);
                    }
                }
                Payload::ElementSection(r) => {
                    for e in r {
                        let e = e?;
                        match &e.kind {
                            ElementKind::Active {
                                table_index,
                                offset_expr,
                            } if table_index.unwrap_or(0) == 0 => {
                                let elem = Elem {
                                    offset: const_i32(offset_expr).ok_or_else(|| {
                                        unsupported("element segment offset is not an i32.const")
                                    })?,
                                    items: elem_items(&e.items)?,
                                };
                                // An instrumented kernel has several; only a raw one is planned.
                                if std::mem::replace(&mut saw_table0_elem, true) {
                                    k.more_elems.push(elem);
                                } else {
                                    k.elem = elem;
                                }
                            }
                            _ => k.other_elems.push(e),
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => k.bodies.push(body),
                Payload::DataSection(r) => {
                    for d in r {
                        let d = d?;
                        let addr = match &d.kind {
                            DataKind::Active {
                                memory_index: 0,
                                offset_expr,
                            } => const_i32(offset_expr),
                            _ => None,
                        };
                        let len = u32::try_from(d.data.len())
                            .map_err(|_| unsupported("data segment over 4 GiB"))?;
                        k.data_segs.push(DataSeg { addr, len });
                    }
                }
                Payload::CustomSection(c) => match c.name() {
                    "name" => k.name_section = Some((c.data(), c.data_offset())),
                    "linking" => {
                        k.linking = Some(
                            LinkingInfo::parse(c.data(), c.data_offset())
                                .map_err(InstrumentError::Malformed)?,
                        );
                    }
                    FTRACE_SECTION => k.ftrace_section = Some((c.data(), c.data_offset())),
                    crate::kallsyms::KALLSYMS_SECTION => {
                        k.kallsyms_section = Some((c.data(), c.data_offset()));
                    }
                    NOTRACE_SECTION => {
                        let text = std::str::from_utf8(c.data()).map_err(|_| {
                            InstrumentError::Malformed("klp.notrace is not UTF-8".into())
                        })?;
                        k.notrace
                            .extend(text.lines().map(str::trim).filter(|l| !l.is_empty()));
                        k.customs.push((c.name(), c.data()));
                    }
                    n if n.starts_with("reloc.") || n.starts_with(".debug") => {}
                    n => k.customs.push((n, c.data())),
                },
                _ => {}
            }
        }
        if !k.more_elems.is_empty() && !k.is_instrumented() {
            return Err(unsupported(
                "more than one active element segment for table 0",
            ));
        }
        k.read_names()?;
        for sym in k.linking.iter().flat_map(|l| &l.symbols) {
            if let (SymTarget::Func(f), Some(name)) = (sym.target, sym.name) {
                k.func_syms.entry(f).or_insert(name);
            }
        }
        Ok(k)
    }

    fn read_names(&mut self) -> Result<(), InstrumentError> {
        let Some((data, offset)) = self.name_section else {
            return Ok(());
        };
        let reader = wasmparser::NameSectionReader::new(BinaryReader::new(data, offset));
        for sub in reader {
            let (map, table) = match sub? {
                Name::Function(m) => (m, &mut self.func_names),
                Name::Global(m) => (m, &mut self.global_names),
                Name::Data(m) => (m, &mut self.data_names),
                _ => continue,
            };
            for naming in map {
                let n = naming?;
                table.insert(n.index, n.name);
            }
        }
        Ok(())
    }

    /// Whether the kernel has a `klp.ftrace` section.
    pub(crate) fn is_instrumented(&self) -> bool {
        self.ftrace_section.is_some()
    }

    /// Number of functions, imports included.
    pub(crate) fn num_funcs(&self) -> u32 {
        u32::try_from(self.func_types.len()).unwrap_or(u32::MAX)
    }

    /// The raw name of function `f`: name section, then linking symbol table, else `func<f>`.
    pub(crate) fn func_name(&self, f: u32) -> String {
        if let Some(n) = self.func_names.get(&f) {
            return (*n).to_string();
        }
        self.func_syms
            .get(&f)
            .map_or_else(|| format!("func{f}"), |n| (*n).to_string())
    }

    /// The signature of function `f`.
    pub(crate) fn sig(&self, f: u32) -> Result<FuncSig, InstrumentError> {
        let ty = self.func_type(f)?;
        FuncSig::from_wasm(ty).map_err(InstrumentError::Unsupported)
    }

    /// The type of function `f`.
    pub(crate) fn func_type(&self, f: u32) -> Result<&FuncType, InstrumentError> {
        self.func_types
            .get(f as usize)
            .and_then(|t| self.types.get(*t as usize))
            .and_then(Option::as_ref)
            .ok_or_else(|| InstrumentError::Malformed(format!("no type for function {f}")))
    }

    /// The demangled name of function `f`, for messages.
    pub(crate) fn display_name(&self, f: u32) -> String {
        format!("{:#}", rustc_demangle::demangle(&self.func_name(f)))
    }

    /// The index of the `__stack_pointer` global, from the name section or the symbol table.
    ///
    /// # Errors
    ///
    /// [`InstrumentError::Unsupported`] when there is none, or it is not a mutable `i32` global
    /// of the kernel (the name section and the symbol table may name any index).
    pub(crate) fn stack_pointer(&self) -> Result<u32, InstrumentError> {
        let sp = self
            .global_names
            .iter()
            .find(|(_, n)| **n == "__stack_pointer")
            .map(|(i, _)| *i)
            .or_else(|| {
                self.linking.iter().flat_map(|l| &l.symbols).find_map(|s| {
                    match (s.target, s.name) {
                        (SymTarget::Global(g), Some("__stack_pointer")) => Some(g),
                        _ => None,
                    }
                })
            })
            .ok_or_else(|| unsupported("no `__stack_pointer` global"))?;
        match self.globals.get(sp as usize) {
            Some(g) if g.mutable && g.content_type == wasmparser::ValType::I32 => Ok(sp),
            Some(_) => Err(unsupported(format!(
                "`__stack_pointer` (global {sp}) is not a mutable i32"
            ))),
            None => Err(unsupported(format!(
                "`__stack_pointer` is global {sp}, but the kernel has {} globals",
                self.globals.len()
            ))),
        }
    }

    /// Refuses tables the ftrace table cannot be made of: an imported table 0 (but for the code
    /// half of a [`super::split`] kernel, which imports it from its state), one that is not a
    /// plain funcref table, or a second table (a function pointer into it would never pass a
    /// slot); the continuation tables a kernel with tasks has do not count.
    pub(crate) fn check_tables(&self) -> Result<(), InstrumentError> {
        if self.num_imported_tables > 0 && !self.is_instrumented() {
            return Err(unsupported("table 0 is imported"));
        }
        // The continuation tables of a kernel with tasks hold no function.
        let continuations = |ty: &TableType| match ty.element_type.heap_type() {
            wasmparser::HeapType::Concrete(t) | wasmparser::HeapType::Exact(t) => t
                .as_module_index()
                .and_then(|t| self.types.get(t as usize))
                .is_some_and(Option::is_none),
            _ => false,
        };
        let tables = self
            .tables
            .iter()
            .filter(|(ty, _)| !continuations(ty))
            .count();
        if tables > 1 {
            return Err(unsupported(format!(
                "{tables} tables: calls through any table but table 0, the ftrace table, bypass the slots"
            )));
        }
        if let Some((ty, init)) = self.tables.first() {
            if ty.element_type != wasmparser::RefType::FUNCREF || ty.table64 || ty.shared {
                return Err(unsupported("table 0 is not a plain funcref table"));
            }
            if init.is_some() {
                return Err(unsupported("table 0 has an initializer expression"));
            }
        }
        Ok(())
    }

    /// The ftrace map of an instrumented kernel, checked against the module it describes: every
    /// entry is a defined function with a distinct slot below `nr_slots` (see
    /// [`super::ftrace`]), table 0 is large enough and holds each function at its slot and at
    /// its orig entry, and no code does what [`rewrite::bypass`] refuses.
    ///
    /// # Errors
    ///
    /// [`InstrumentError::NotInstrumented`] without a `klp.ftrace` section,
    /// [`InstrumentError::Malformed`] when the section or the table disagrees with the module,
    /// [`InstrumentError::Unsupported`] or [`InstrumentError::Unhookable`] for what the pass
    /// would have refused.
    pub(crate) fn ftrace_map(&self) -> Result<FtraceMap, InstrumentError> {
        let (data, offset) = self
            .ftrace_section
            .ok_or(InstrumentError::NotInstrumented)?;
        let defined = self.num_imported_funcs..self.num_funcs();
        let map = super::ftrace::decode(data, offset, defined, |f| self.sig(f))?;
        self.check_tables()?;
        let nr = map.nr_slots;
        // `decode` keeps nr_slots within MAX_SLOTS, so this cannot overflow.
        let size = nr
            .checked_mul(2)
            .ok_or_else(|| malformed(format!("{FTRACE_SECTION}: nr_slots {nr} overflows")))?;
        let initial = self.tables.first().map_or(0, |(ty, _)| ty.initial);
        if initial < u64::from(size) {
            return Err(malformed(format!(
                "{FTRACE_SECTION}: table 0 has {initial} entries, fewer than 2 * nr_slots ({size})"
            )));
        }
        let mut table: Vec<Option<u32>> = vec![None; size as usize];
        for e in std::iter::once(&self.elem).chain(&self.more_elems) {
            for (pos, item) in (u64::from(e.offset)..).zip(&e.items) {
                if let Some(entry) = usize::try_from(pos).ok().and_then(|p| table.get_mut(p)) {
                    *entry = *item;
                }
            }
        }
        for e in &map.entries {
            // `decode` keeps slots below nr, so the orig entry is below size.
            for at in [Some(e.slot), e.slot.checked_add(nr)] {
                let held = at.and_then(|a| table.get(a as usize).copied().flatten());
                if held != Some(e.func_index) {
                    return Err(malformed(format!(
                        "{FTRACE_SECTION}: table entry {} does not hold `{}` (function {})",
                        at.map_or_else(|| "beyond 2^32".to_string(), |a| a.to_string()),
                        e.name,
                        e.func_index
                    )));
                }
            }
        }
        let traceable = |f: u32| map.entry_of(f).is_some_and(|e| !e.notrace);
        for (f, body) in (self.num_imported_funcs..).zip(&self.bodies) {
            rewrite::check_body(body, traceable)
                .map_err(|e| e.in_function(self.display_name(f)))?;
        }
        Ok(map)
    }

    /// Assigns slots: see ABI.md "The ftrace table".
    pub(crate) fn plan(&self, extra_notrace: &[&str]) -> Result<Plan, InstrumentError> {
        let nimp = self.num_imported_funcs;
        let nfuncs = self.num_funcs();
        let end = self
            .elem
            .offset
            .checked_add(u32::try_from(self.elem.items.len()).unwrap_or(u32::MAX))
            .filter(|e| *e <= MAX_SLOTS)
            .ok_or_else(|| unsupported("element segment beyond the slot limit"))?;
        let mut slots: Vec<Option<u32>> = vec![None; (nfuncs - nimp) as usize];
        let mut duplicates = Vec::new();
        for (i, item) in self.elem.items.iter().enumerate() {
            let Some(f) = *item else { continue };
            let pos = self.elem.offset + i as u32;
            if f < nimp {
                continue;
            }
            let slot = &mut slots[(f - nimp) as usize];
            if slot.is_none() {
                *slot = Some(pos);
            } else {
                duplicates.push((pos, f));
            }
        }
        // Slot 0 stays null: a function pointer of 0 is NULL.
        let mut next = end.max(1);
        for slot in slots.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(next);
            next += 1;
        }
        if next > MAX_SLOTS {
            return Err(unsupported(format!(
                "{next} slots exceed the limit of {MAX_SLOTS}"
            )));
        }
        let is_notrace = |name: &str| {
            self.notrace
                .iter()
                .chain(extra_notrace.iter())
                .any(|pat| match pat.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == *pat,
                })
        };
        let mut entries = Vec::with_capacity(slots.len());
        for (i, slot) in slots.iter().enumerate() {
            let func_index = nimp + i as u32;
            let name = self.func_name(func_index);
            entries.push(FtraceEntry {
                func_index,
                notrace: is_notrace(&name),
                name,
                slot: slot.unwrap_or_default(),
                sig: self.sig(func_index)?,
            });
        }
        Ok(Plan {
            map: FtraceMap {
                nr_slots: next,
                entries,
            },
            duplicates,
        })
    }
}

/// The slot assignment and the element entries that need thunks.
pub(crate) struct Plan {
    pub map: FtraceMap,
    /// Table positions holding a second pointer to an already slotted function: `(pos, func)`.
    pub duplicates: Vec<(u32, u32)>,
}

fn elem_items(items: &ElementItems<'_>) -> Result<Vec<Option<u32>>, InstrumentError> {
    let mut out = Vec::new();
    match items {
        ElementItems::Functions(r) => {
            for f in r.clone() {
                out.push(Some(f?));
            }
        }
        ElementItems::Expressions(_, r) => {
            for e in r.clone() {
                let e = e?;
                let mut ops = e.get_operators_reader();
                let item = match ops.read()? {
                    Operator::RefFunc { function_index } => Some(function_index),
                    Operator::RefNull { .. } => None,
                    _ => return Err(unsupported("element item is not ref.func or ref.null")),
                };
                out.push(item);
            }
        }
    }
    Ok(out)
}
