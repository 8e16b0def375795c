//! Relocatable modules (the `.ko` analogue): parsing, relocation and linking into the kernel.
//!
//! A module is a wasm32 cdylib linked with `--import-memory --emit-relocs
//! --unresolved-symbols=ignore-all` (see docs/ABI.md, "Modules"). [`ObjectFile::parse`] checks
//! it and reads its `linking` and `reloc.*` sections; [`ObjectFile::link`] produces a module that
//! imports the kernel's memory, table 0 and `__stack_pointer`, with every call going through a
//! slot, and the relocated data image the loader writes into kernel memory.

mod entry;
mod link;
pub mod linking;
mod reloc;

use std::collections::HashMap;
use std::ops::Range;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasmparser::{
    BinaryReader, DataKind, ExternalKind, FuncType, GlobalType, Name, NameSectionReader, Operator,
    Parser, Payload, RelocSectionReader, RelocationEntry, TypeRef,
};

use crate::func_count::{self, MAX_MODULE_FUNCS};
use crate::instrument::FuncSig;
use crate::instrument::kernel::const_i32;
use crate::kallsyms::{self, SymKind, Symbol};
use linking::{LinkingInfo, SymTarget};

/// Largest module file accepted.
const MAX_FILE: usize = 64 << 20;
/// Largest data image (all segments, bss included) accepted.
const MAX_DATA: u32 = 64 << 20;
/// Largest data alignment accepted, as a power of two.
const MAX_P2ALIGN: u32 = 16;

/// Why a module cannot be parsed or linked (ENOEXEC-class, except [`ObjectError::Unresolved`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The file is not a well-formed relocatable module, or uses something the linker does not
    /// handle.
    #[error("{0}")]
    Malformed(String),
    /// An undefined symbol could not be resolved (ENOENT-class).
    #[error("unknown symbol {0}")]
    Unresolved(String),
}

impl From<wasmparser::BinaryReaderError> for ObjectError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        Self::Malformed(e.to_string())
    }
}

fn malformed(msg: impl Into<String>) -> ObjectError {
    ObjectError::Malformed(msg.into())
}

/// A function the module defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModFunc {
    /// 0-based among the defined functions (its slot is `slot_base + index`).
    pub index: u32,
    /// Raw name (symbol name, else name section, else export name, else `func<n>`).
    pub name: String,
    /// Its signature.
    pub sig: FuncSig,
    /// Global binding (visible to other modules).
    pub global: bool,
}

/// What an undefined symbol must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndefKind {
    /// A function with this signature (resolves to a slot).
    Func(FuncSig),
    /// Data (resolves to a linear address).
    Data,
}

/// A symbol the module uses but does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    /// Raw name: `printk`, or `.klp.sym.vmlinux.show_value,2` for a livepatch relocation.
    pub name: String,
    /// Function or data.
    pub kind: UndefKind,
}

/// Where the loader placed the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPlan {
    /// Address of the data image in kernel memory.
    pub data_base: u32,
    /// First table entry: defined function `i` gets slot `slot_base + i`, its orig entry
    /// `slot_base + n + i`. The linked module's element segment fills the orig entries only;
    /// the slots are the loader's (ftrace's) to write.
    pub slot_base: u32,
}

/// A linked module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The module to instantiate against the kernel's memory, table and stack pointer.
    pub wasm: Vec<u8>,
    /// The relocated data image, to write at `data_base`.
    pub data: Vec<u8>,
    /// Slot of `init_module`.
    pub init: Option<u32>,
    /// Slot of `cleanup_module`.
    pub exit: Option<u32>,
    /// Module parameters: name, address and size of each `__param_<name>`.
    pub params: Vec<(String, u32, u32)>,
}

/// An owned symbol-table entry.
#[derive(Debug, Clone)]
struct Sym {
    name: Option<String>,
    target: SymTarget,
    defined: bool,
    global: bool,
}

/// An active data segment.
#[derive(Debug, Clone)]
struct Segment {
    /// Link-time address.
    addr: u32,
    /// Its bytes, as a range of the file.
    bytes: Range<usize>,
    /// Where its bytes start, relative to the data section payload (`reloc.DATA` offsets).
    rel_start: usize,
    /// Name from the segment info, such as `.bss`.
    name: String,
}

/// Where the module's own stack pointer lives.
#[derive(Debug, Clone, Copy)]
enum StackPointer {
    /// Not used at all.
    None,
    /// A defined global (replaced by the import).
    Defined(u32),
    /// Already an import.
    Imported(u32),
}

/// A defined global kept in the output (its initializer is a single constant).
#[derive(Debug, Clone)]
struct Global {
    ty: GlobalType,
    /// The initializer (one constant instruction).
    init: wasm_encoder::ConstExpr,
}

/// A parsed relocatable module.
#[derive(Debug, Clone)]
pub struct ObjectFile {
    bytes: Vec<u8>,
    types: Vec<FuncType>,
    /// Type index of every function, imports first.
    func_types: Vec<u32>,
    num_imported_funcs: u32,
    num_imported_globals: u32,
    stack_pointer: StackPointer,
    globals: Vec<Global>,
    /// Payload range of the code section and its section index.
    code: Option<(Range<usize>, u32)>,
    /// Section index of the data section.
    data_section: Option<u32>,
    segments: Vec<Segment>,
    image_start: u32,
    image_size: u32,
    align: u32,
    symbols: Vec<Sym>,
    code_relocs: Vec<RelocationEntry>,
    data_relocs: Vec<RelocationEntry>,
    functions: Vec<ModFunc>,
    /// Body size of every defined function.
    body_sizes: Vec<u32>,
    undefined: Vec<Undefined>,
    /// Index into `undefined` of each imported function.
    undef_of_import: Vec<usize>,
    /// Index into `undefined` of each undefined data symbol, by symbol index.
    undef_of_data: HashMap<u32, usize>,
    func_names: HashMap<u32, String>,
    global_names: HashMap<u32, String>,
    module_name: Option<String>,
}

impl ObjectFile {
    /// Validates and reads a relocatable module.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Malformed`] for invalid WebAssembly or WebAssembly that needs a feature
    /// outside [`crate::instrument::FEATURES`], a missing `linking` section, a module that
    /// defines its own memory, has a start function, several tables, passive or non-constant
    /// data segments, imports other than functions, memory, table and `__stack_pointer`,
    /// unsupported signatures, data over 64 MiB, more than [`MAX_MODULE_FUNCS`] functions,
    /// imported and defined (counted from the section headers before anything else is read), or an `init_module` or
    /// `cleanup_module` that is not a defined function of type `() -> i32` or `() -> ()`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ObjectError> {
        if bytes.len() > MAX_FILE {
            return Err(malformed(format!(
                "module is {} bytes, over the {MAX_FILE}-byte limit",
                bytes.len()
            )));
        }
        let count = func_count::count(bytes)?;
        if count.total() > MAX_MODULE_FUNCS {
            return Err(malformed(format!(
                "module has {} functions ({} imported, {} defined), over the limit of \
                 {MAX_MODULE_FUNCS}",
                count.total(),
                count.imported,
                count.defined
            )));
        }
        crate::instrument::validate(bytes).map_err(|e| match e {
            crate::instrument::InstrumentError::Parse(e) => e.into(),
            other => malformed(other.to_string()),
        })?;
        Reader::default().read(bytes)
    }

    /// Size and alignment of the data image (all segments, bss included, from the lowest
    /// segment address rounded down to the alignment).
    pub fn data_size(&self) -> (u32, u32) {
        (self.image_size, self.align)
    }

    /// The functions the module defines, in index order.
    pub fn functions(&self) -> &[ModFunc] {
        &self.functions
    }

    /// The symbols the module needs: imported functions, then undefined data symbols.
    pub fn undefined(&self) -> &[Undefined] {
        &self.undefined
    }

    /// The module's defined symbols (local ones included) once placed at `data_base` and
    /// `slot_base`, with sympos assigned; `module` is left `None` for the loader to set.
    pub fn symbols(&self, data_base: u32, slot_base: u32) -> Vec<Symbol> {
        let nimp = self.num_imported_funcs;
        let mut out = Vec::new();
        let mut covered = vec![false; self.functions.len()];
        for sym in self.symbols.iter().filter(|s| s.defined) {
            let Some(name) = sym.name.as_deref().and_then(kallsyms::symbol_name) else {
                continue;
            };
            match sym.target {
                SymTarget::Func(f) if f >= nimp => {
                    let i = f - nimp;
                    if let Some(c) = covered.get_mut(i as usize) {
                        *c = true;
                    }
                    out.push(self.func_symbol(name, sym.global, i, slot_base));
                }
                SymTarget::Data(Some((seg, offset, size))) => {
                    let Some(s) = self.segments.get(seg as usize) else {
                        continue;
                    };
                    out.push(Symbol {
                        name,
                        kind: if kallsyms::is_bss(&s.name) {
                            SymKind::Bss
                        } else {
                            SymKind::Data
                        },
                        global: sym.global,
                        addr: self.data_addr(data_base, seg, offset),
                        size,
                        sympos: 0,
                        module: None,
                        func_index: None,
                    });
                }
                _ => {}
            }
        }
        for (f, covered) in self.functions.iter().zip(covered) {
            if let (false, Some(name)) = (covered, kallsyms::symbol_name(&f.name)) {
                out.push(self.func_symbol(name, f.global, f.index, slot_base));
            }
        }
        kallsyms::finish(&mut out, None);
        out
    }

    fn func_symbol(&self, name: String, global: bool, index: u32, slot_base: u32) -> Symbol {
        Symbol {
            name,
            kind: SymKind::Func,
            global,
            addr: slot_base.wrapping_add(index),
            size: self
                .body_sizes
                .get(index as usize)
                .copied()
                .unwrap_or_default(),
            sympos: 0,
            module: None,
            func_index: Some(index),
        }
    }

    /// Address of `offset` in data segment `seg` once the image is at `data_base`.
    fn data_addr(&self, data_base: u32, seg: u32, offset: u32) -> u32 {
        let addr = self.segments.get(seg as usize).map_or(0, |s| s.addr);
        data_base
            .wrapping_add(addr.wrapping_sub(self.image_start))
            .wrapping_add(offset)
    }

    /// Links the module for `plan`; `resolve` gives each [`Undefined`] its kernel slot
    /// (functions) or address (data).
    ///
    /// # Errors
    ///
    /// Whatever `resolve` returns, and [`ObjectError::Malformed`] for relocations that do not
    /// fit (unknown type, out of range, wrong symbol kind), code the rewrite cannot express or
    /// that writes the ftrace table (`table.set` and the like), a `__param_` symbol that is not
    /// 4 bytes, or an output that does not validate.
    pub fn link(
        &self,
        plan: &LinkPlan,
        resolve: &mut dyn FnMut(&Undefined) -> Result<u32, ObjectError>,
    ) -> Result<Linked, ObjectError> {
        link::link(self, plan, resolve)
    }
}

/// Collects an [`ObjectFile`] from the payloads of a validated module.
#[derive(Default)]
struct Reader<'a> {
    imports: Vec<wasmparser::Import<'a>>,
    exports: Vec<wasmparser::Export<'a>>,
    tables: u32,
    linking: Option<LinkingInfo<'a>>,
    relocs: Vec<(u32, Vec<RelocationEntry>)>,
    body_sizes: Vec<u32>,
}

impl<'a> Reader<'a> {
    fn read(mut self, bytes: &'a [u8]) -> Result<ObjectFile, ObjectError> {
        let mut o = ObjectFile {
            bytes: bytes.to_vec(),
            types: Vec::new(),
            func_types: Vec::new(),
            num_imported_funcs: 0,
            num_imported_globals: 0,
            stack_pointer: StackPointer::None,
            globals: Vec::new(),
            code: None,
            data_section: None,
            segments: Vec::new(),
            image_start: 0,
            image_size: 0,
            align: 1,
            symbols: Vec::new(),
            code_relocs: Vec::new(),
            data_relocs: Vec::new(),
            functions: Vec::new(),
            body_sizes: Vec::new(),
            undefined: Vec::new(),
            undef_of_import: Vec::new(),
            undef_of_data: HashMap::new(),
            func_names: HashMap::new(),
            global_names: HashMap::new(),
            module_name: None,
        };
        let mut section_index = 0u32;
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload?;
            let index = section_index;
            if payload.as_section().is_some() || matches!(payload, Payload::CustomSection(_)) {
                section_index += 1;
            }
            match payload {
                Payload::TypeSection(r) => {
                    for ty in r.into_iter_err_on_gc_types() {
                        o.types.push(ty?);
                    }
                }
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        self.imports.push(imp?);
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        o.func_types.push(t?);
                    }
                }
                Payload::TableSection(r) => self.tables += r.count(),
                Payload::MemorySection(r) if r.count() > 0 => {
                    return Err(malformed(
                        "module defines its own memory (link it with --import-memory)",
                    ));
                }
                Payload::TagSection(r) if r.count() > 0 => {
                    return Err(malformed("module defines exception tags"));
                }
                Payload::GlobalSection(r) => {
                    for g in r {
                        let g = g?;
                        check_const(&g.init_expr)?;
                        let init = RoundtripReencoder
                            .const_expr(g.init_expr)
                            .map_err(|e| malformed(e.to_string()))?;
                        o.globals.push(Global { ty: g.ty, init });
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        self.exports.push(e?);
                    }
                }
                Payload::StartSection { .. } => {
                    return Err(malformed("module has a start function"));
                }
                Payload::CodeSectionStart { range, .. } => o.code = Some((range, index)),
                Payload::CodeSectionEntry(body) => {
                    self.body_sizes.push(body.range().len() as u32);
                }
                Payload::DataSection(r) => {
                    o.data_section = Some(index);
                    let base = r.range().start;
                    for d in r {
                        let d = d?;
                        let addr = match &d.kind {
                            DataKind::Active {
                                memory_index: 0,
                                offset_expr,
                            } => const_i32(offset_expr),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            malformed("data segment is passive or has a non-constant offset")
                        })?;
                        let start = d.range.end - d.data.len();
                        o.segments.push(Segment {
                            addr,
                            bytes: start..d.range.end,
                            rel_start: start - base,
                            name: String::new(),
                        });
                    }
                }
                Payload::CustomSection(c) => match c.name() {
                    "linking" => {
                        self.linking =
                            Some(LinkingInfo::parse(c.data(), c.data_offset()).map_err(malformed)?);
                    }
                    n if n.starts_with("reloc.") => {
                        let r =
                            RelocSectionReader::new(BinaryReader::new(c.data(), c.data_offset()))?;
                        let mut entries = Vec::new();
                        for e in r.entries() {
                            entries.push(e?);
                        }
                        self.relocs.push((r.section_index(), entries));
                    }
                    "name" => o.read_names(c.data(), c.data_offset())?,
                    _ => {}
                },
                _ => {}
            }
        }
        self.finish(o)
    }

    fn finish(self, mut o: ObjectFile) -> Result<ObjectFile, ObjectError> {
        let linking = self.linking.ok_or_else(|| {
            malformed("not a relocatable module: no linking section (link with --emit-relocs)")
        })?;
        // lld writes no reloc.CODE for code without relocations, so none is required.
        for (section, entries) in self.relocs {
            let target = if o.code.as_ref().is_some_and(|(_, i)| *i == section) {
                &mut o.code_relocs
            } else if o.data_section == Some(section) {
                &mut o.data_relocs
            } else {
                // Relocations of custom sections (debug info) go with those sections.
                continue;
            };
            for e in &entries {
                reloc::classify(e.ty)?;
                let has_symbol = e.ty != wasmparser::RelocationType::TypeIndexLeb;
                if has_symbol && e.index as usize >= linking.symbols.len() {
                    return Err(malformed(format!(
                        "relocation against symbol {} out of range",
                        e.index
                    )));
                }
            }
            *target = entries;
        }
        o.symbols = linking
            .symbols
            .iter()
            .map(|s| Sym {
                name: s.name.map(str::to_string),
                target: s.target,
                defined: s.defined(),
                global: s.global(),
            })
            .collect();
        for (seg, info) in o.segments.iter_mut().zip(&linking.segments) {
            seg.name = info.name.to_string();
        }
        o.align = 1;
        for info in &linking.segments {
            if info.p2align > MAX_P2ALIGN {
                return Err(malformed(format!(
                    "segment {} alignment 2^{} is too large",
                    info.name, info.p2align
                )));
            }
            o.align = o.align.max(1 << info.p2align);
        }
        o.layout_data()?;
        // The first named undefined symbol of each imported function.
        let mut import_names: HashMap<u32, &str> = HashMap::new();
        for s in o.symbols.iter().filter(|s| !s.defined) {
            if let (SymTarget::Func(i), Some(n)) = (s.target, &s.name) {
                import_names.entry(i).or_insert(n);
            }
        }
        let mut imported_globals = 0;
        let mut import_types = Vec::new();
        for imp in &self.imports {
            match imp.ty {
                TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                    let f = o.num_imported_funcs;
                    let sym_name = import_names.get(&f).map(|n| (*n).to_string());
                    o.undef_of_import.push(o.undefined.len());
                    o.undefined.push(Undefined {
                        name: sym_name.unwrap_or_else(|| imp.name.to_string()),
                        kind: UndefKind::Func(o.sig_of_type(t)?),
                    });
                    import_types.push(t);
                    o.num_imported_funcs += 1;
                }
                TypeRef::Memory(m) => {
                    if m.memory64 || m.shared || m.page_size_log2.is_some() {
                        return Err(malformed("imported memory is not a plain 32-bit memory"));
                    }
                }
                TypeRef::Table(t) => {
                    if t.element_type != wasmparser::RefType::FUNCREF || t.table64 {
                        return Err(malformed("imported table is not a funcref table"));
                    }
                }
                TypeRef::Global(g) if imp.name == "__stack_pointer" => {
                    if g.content_type != wasmparser::ValType::I32 || !g.mutable || g.shared {
                        return Err(malformed("imported __stack_pointer is not a mutable i32"));
                    }
                    o.stack_pointer = StackPointer::Imported(imported_globals);
                    imported_globals += 1;
                }
                _ => {
                    return Err(malformed(format!(
                        "module imports {}.{} which is not a function, memory or table",
                        imp.module, imp.name
                    )));
                }
            }
        }
        o.func_types.splice(0..0, import_types);
        o.num_imported_globals = imported_globals;
        let table_imports = self
            .imports
            .iter()
            .filter(|i| matches!(i.ty, TypeRef::Table(_)))
            .count() as u32;
        if self.tables + table_imports > 1 {
            return Err(malformed("module has more than one table"));
        }
        if let StackPointer::None = o.stack_pointer {
            o.stack_pointer = o.find_defined_stack_pointer();
        }
        for (i, s) in o.symbols.iter().enumerate() {
            if s.defined {
                continue;
            }
            if s.target == SymTarget::Data(None) {
                let name = s.name.clone().unwrap_or_default();
                o.undef_of_data.insert(i as u32, o.undefined.len());
                o.undefined.push(Undefined {
                    name,
                    kind: UndefKind::Data,
                });
            }
        }
        o.functions = o.read_functions(&self.exports)?;
        if o.functions.len() != self.body_sizes.len() {
            return Err(malformed("function and code section counts differ"));
        }
        o.body_sizes = self.body_sizes;
        entry::check(&o)?;
        Ok(o)
    }
}

/// Refuses global initializers other than one constant (they may not refer to other items).
fn check_const(expr: &wasmparser::ConstExpr<'_>) -> Result<(), ObjectError> {
    let mut ops = expr.get_operators_reader();
    let first = ops.read()?;
    let ok = matches!(
        first,
        Operator::I32Const { .. }
            | Operator::I64Const { .. }
            | Operator::F32Const { .. }
            | Operator::F64Const { .. }
            | Operator::RefNull { .. }
    ) && matches!(ops.read()?, Operator::End)
        && ops.eof();
    if ok {
        Ok(())
    } else {
        Err(malformed("global initializer is not a single constant"))
    }
}

impl ObjectFile {
    fn read_names(&mut self, data: &[u8], offset: usize) -> Result<(), ObjectError> {
        for sub in NameSectionReader::new(BinaryReader::new(data, offset)) {
            let (map, table) = match sub? {
                Name::Module { name, .. } => {
                    self.module_name = Some(name.to_string());
                    continue;
                }
                Name::Function(m) => (m, &mut self.func_names),
                Name::Global(m) => (m, &mut self.global_names),
                _ => continue,
            };
            for naming in map {
                let n = naming?;
                table.insert(n.index, n.name.to_string());
            }
        }
        Ok(())
    }

    fn sig_of_type(&self, t: u32) -> Result<FuncSig, ObjectError> {
        let ty = self
            .types
            .get(t as usize)
            .ok_or_else(|| malformed(format!("type {t} out of range")))?;
        FuncSig::from_wasm(ty).map_err(malformed)
    }

    /// Lays the segments out as one image and checks its size.
    fn layout_data(&mut self) -> Result<(), ObjectError> {
        let Some(lowest) = self.segments.iter().map(|s| s.addr).min() else {
            return Ok(());
        };
        let start = lowest & !(self.align - 1);
        let mut end = start;
        for s in &self.segments {
            let len = u32::try_from(s.bytes.len()).ok();
            let seg_end = len.and_then(|l| s.addr.checked_add(l)).ok_or_else(|| {
                malformed(format!(
                    "data segment {} overflows the address space",
                    s.name
                ))
            })?;
            end = end.max(seg_end);
        }
        let size = end - start;
        if size > MAX_DATA {
            return Err(malformed(format!(
                "data image of {size} bytes is over the {MAX_DATA}-byte limit"
            )));
        }
        self.image_start = start;
        self.image_size = size;
        Ok(())
    }

    /// The stack pointer among defined globals: by symbol table, then name section.
    fn find_defined_stack_pointer(&self) -> StackPointer {
        let by_symbol = self.symbols.iter().find_map(|s| match (s.target, &s.name) {
            (SymTarget::Global(g), Some(n)) if n == "__stack_pointer" && s.defined => Some(g),
            _ => None,
        });
        let by_name = || {
            self.global_names
                .iter()
                .find(|(_, n)| *n == "__stack_pointer")
                .map(|(g, _)| *g)
        };
        match by_symbol.or_else(by_name) {
            Some(g) if g >= self.num_imported_globals => StackPointer::Defined(g),
            _ => StackPointer::None,
        }
    }

    fn read_functions(
        &self,
        exports: &[wasmparser::Export<'_>],
    ) -> Result<Vec<ModFunc>, ObjectError> {
        let nimp = self.num_imported_funcs;
        // The first named defined symbol and the first export of each function, indexed once.
        let mut syms: HashMap<u32, &Sym> = HashMap::new();
        for s in self
            .symbols
            .iter()
            .filter(|s| s.defined && s.name.is_some())
        {
            if let SymTarget::Func(f) = s.target {
                syms.entry(f).or_insert(s);
            }
        }
        let mut exported: HashMap<u32, &str> = HashMap::new();
        for e in exports.iter().filter(|e| e.kind == ExternalKind::Func) {
            exported.entry(e.index).or_insert(e.name);
        }
        let mut out = Vec::with_capacity(self.func_types.len().saturating_sub(nimp as usize));
        for (i, t) in self.func_types.iter().enumerate().skip(nimp as usize) {
            let f = i as u32;
            let sym = syms.get(&f);
            let export = exported.get(&f);
            let name = sym
                .and_then(|s| s.name.clone())
                .or_else(|| self.func_names.get(&f).cloned())
                .or_else(|| export.map(|e| (*e).to_string()))
                .unwrap_or_else(|| format!("func{f}"));
            out.push(ModFunc {
                index: f - nimp,
                name,
                sig: self.sig_of_type(*t)?,
                global: sym.map_or(export.is_some(), |s| s.global),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
