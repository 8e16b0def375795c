//! The generated live patch module, and its encoding as rust-lld writes a module linked with
//! `--import-memory --emit-relocs`: imports, code, one data segment, and the `linking`,
//! `reloc.CODE`, `reloc.DATA` and `.modinfo` sections the loader reads.

use std::collections::HashMap;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CustomSection, Encode, EntityType, ExportKind, ExportSection, FunctionSection, GlobalType,
    ImportSection, MemoryType, RawSection, SymbolTable, TableType, TypeSection, ValType,
};
use wasmparser::{FuncType, RelocationType};

/// The linking section version rust-lld writes.
const LINKING_VERSION: u32 = 2;
/// The segment info subsection.
const WASM_SEGMENT_INFO: u8 = 5;
/// The one data segment's alignment (a power of two: 8 bytes).
pub(crate) const DATA_P2ALIGN: u32 = 3;

/// A relocation entry as written: offset in the section payload, type, symbol, addend.
type Entry = (u32, RelocationType, u32, i64);

/// What a relocation in the generated module refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// An imported function, by import index.
    Import(u32),
    /// A defined function, by index among the defined ones.
    Func(u32),
    /// A defined data symbol, by index.
    Data(u32),
    /// An undefined data symbol (resolved by the loader), by index.
    UndefData(u32),
    /// The kernel's `__stack_pointer`.
    StackPointer,
    /// The kernel's function table.
    Table,
    /// A type, by index (`TypeIndexLeb`, no symbol).
    Type(u32),
    /// A link-time constant address of the running kernel (`__heap_base`): written, not
    /// relocated.
    Absolute(u32),
}

/// A relocation of the generated module.
#[derive(Debug, Clone)]
pub(crate) struct OutReloc {
    /// Offset in the body (or the data image).
    pub offset: u32,
    /// Its type.
    pub ty: RelocationType,
    /// What it refers to.
    pub target: Target,
    /// Addend (memory relocations).
    pub addend: i64,
}

impl OutReloc {
    /// Whether the loader relocates the field (an absolute address is only written).
    fn is_relocated(&self) -> bool {
        !matches!(self.target, Target::Absolute(_))
    }
}

/// A defined function of the generated module.
#[derive(Debug, Clone)]
pub(crate) struct OutFunc {
    /// Symbol name.
    pub name: String,
    /// Type index.
    pub ty: u32,
    /// Locals and code (no size prefix); relocated fields are padded to 5 bytes.
    pub body: Vec<u8>,
    /// Relocations in the body.
    pub relocs: Vec<OutReloc>,
    /// Exported, with a global symbol (`init_module`, `cleanup_module`); others are local.
    pub exported: bool,
}

/// A defined data symbol: a range of the one data segment.
#[derive(Debug, Clone)]
pub(crate) struct OutData {
    /// Symbol name.
    pub name: String,
    /// Offset in the segment.
    pub offset: u32,
    /// Size.
    pub size: u32,
}

/// The module being generated.
#[derive(Debug, Default)]
pub(crate) struct Module {
    types: Vec<FuncType>,
    /// Imported functions: symbol (and field) name, type index.
    pub imports: Vec<(String, u32)>,
    pub funcs: Vec<OutFunc>,
    /// The data segment's bytes.
    pub data: Vec<u8>,
    pub data_syms: Vec<OutData>,
    pub data_relocs: Vec<OutReloc>,
    /// Undefined data symbols' names.
    pub undef_data: Vec<String>,
    import_index: HashMap<String, u32>,
    undef_index: HashMap<String, u32>,
    /// `.modinfo` strings, `key=value`.
    pub modinfo: Vec<String>,
}

impl Module {
    /// The index of type `ty`, added if new.
    pub(crate) fn ty(&mut self, ty: &FuncType) -> u32 {
        if let Some(i) = self.types.iter().position(|t| t == ty) {
            return i as u32;
        }
        self.types.push(ty.clone());
        self.types.len() as u32 - 1
    }

    /// The import of function `name`, added if new.
    pub(crate) fn import(&mut self, name: &str, ty: &FuncType) -> u32 {
        if let Some(&i) = self.import_index.get(name) {
            return i;
        }
        let t = self.ty(ty);
        self.imports.push((name.to_string(), t));
        let i = self.imports.len() as u32 - 1;
        self.import_index.insert(name.to_string(), i);
        i
    }

    /// The undefined data symbol `name`, added if new.
    pub(crate) fn undef_data(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.undef_index.get(name) {
            return i;
        }
        self.undef_data.push(name.to_string());
        let i = self.undef_data.len() as u32 - 1;
        self.undef_index.insert(name.to_string(), i);
        i
    }

    /// Appends `bytes` to the data segment at `align` as data symbol `name`; its index.
    pub(crate) fn add_data(&mut self, name: String, bytes: &[u8], align: u32) -> u32 {
        let align = align.clamp(1, 1 << DATA_P2ALIGN) as usize;
        while !self.data.len().is_multiple_of(align) {
            self.data.push(0);
        }
        self.data_syms.push(OutData {
            name,
            offset: self.data.len() as u32,
            size: bytes.len() as u32,
        });
        self.data.extend_from_slice(bytes);
        self.data_syms.len() as u32 - 1
    }

    /// The value a relocated field holds in the module as written (its own index spaces, the
    /// segment at address 0).
    fn value(&self, r: &OutReloc) -> i64 {
        let nimp = self.imports.len() as i64;
        match r.target {
            Target::Import(i) => i64::from(i),
            Target::Func(i) => match r.ty {
                RelocationType::FunctionIndexLeb => nimp + i64::from(i),
                _ => 0,
            },
            Target::Data(i) => i64::from(self.data_syms[i as usize].offset) + r.addend,
            Target::UndefData(_) => r.addend,
            Target::StackPointer | Target::Table => 0,
            Target::Type(t) => i64::from(t),
            Target::Absolute(v) => i64::from(v) + r.addend,
        }
    }

    /// Symbol indices: imports, defined functions, data, undefined data, stack pointer, table.
    fn symbol_index(&self, t: &Target) -> u32 {
        let nimp = self.imports.len() as u32;
        let nfunc = self.funcs.len() as u32;
        let ndata = self.data_syms.len() as u32;
        let nundef = self.undef_data.len() as u32;
        match *t {
            Target::Import(i) => i,
            Target::Func(i) => nimp + i,
            Target::Data(i) => nimp + nfunc + i,
            Target::UndefData(i) => nimp + nfunc + ndata + i,
            Target::StackPointer => nimp + nfunc + ndata + nundef,
            Target::Table => nimp + nfunc + ndata + nundef + 1,
            Target::Type(i) => i,
            Target::Absolute(_) => unreachable!("absolute addresses are not relocated"),
        }
    }

    /// Writes every relocated field of `buf` with its value.
    fn patch_fields(&self, buf: &mut [u8], relocs: &[OutReloc]) {
        for r in relocs {
            let at = r.offset as usize;
            let value = self.value(r);
            match r.ty {
                RelocationType::MemoryAddrI32 | RelocationType::TableIndexI32 => {
                    buf[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
                }
                RelocationType::MemoryAddrSleb | RelocationType::TableIndexSleb => {
                    write_padded(&mut buf[at..at + 5], value, true);
                }
                _ => write_padded(&mut buf[at..at + 5], value, false),
            }
        }
    }

    /// The module's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        let mut types = TypeSection::new();
        for t in &self.types {
            // Function types of a validated module re-encode without error.
            let val = |v: &wasmparser::ValType| RoundtripReencoder.val_type(*v).ok();
            let params: Vec<ValType> = t.params().iter().filter_map(val).collect();
            let results: Vec<ValType> = t.results().iter().filter_map(val).collect();
            types.ty().function(params, results);
        }
        module.section(&types);
        let mut imports = ImportSection::new();
        imports.import(
            "env",
            "memory",
            EntityType::Memory(MemoryType {
                minimum: 0,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            }),
        );
        imports.import(
            "env",
            "__indirect_function_table",
            EntityType::Table(TableType {
                element_type: wasm_encoder::RefType::FUNCREF,
                table64: false,
                minimum: 0,
                maximum: None,
                shared: false,
            }),
        );
        imports.import(
            "env",
            "__stack_pointer",
            EntityType::Global(GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            }),
        );
        for (name, ty) in &self.imports {
            imports.import("env", name, EntityType::Function(*ty));
        }
        module.section(&imports);
        let mut functions = FunctionSection::new();
        for f in &self.funcs {
            functions.function(f.ty);
        }
        module.section(&functions);
        let mut exports = ExportSection::new();
        let nimp = self.imports.len() as u32;
        for (i, f) in self.funcs.iter().enumerate() {
            if f.exported {
                exports.export(&f.name, ExportKind::Func, nimp + i as u32);
            }
        }
        module.section(&exports);
        // Section indices for the relocation sections: type 0, import 1, function 2, export 3.
        let (code_section, data_section) = (4, 5);
        let (code, code_relocs) = self.code_payload();
        module.section(&RawSection {
            id: 10,
            data: &code,
        });
        let (data, data_relocs) = self.data_payload();
        module.section(&RawSection {
            id: 11,
            data: &data,
        });
        module.section(&custom("linking", self.linking()));
        module.section(&custom(
            "reloc.CODE",
            reloc_payload(code_section, &code_relocs),
        ));
        module.section(&custom(
            "reloc.DATA",
            reloc_payload(data_section, &data_relocs),
        ));
        let mut info = Vec::new();
        for s in &self.modinfo {
            info.extend_from_slice(s.as_bytes());
            info.push(0);
        }
        module.section(&custom(".modinfo", info));
        module.finish()
    }

    /// The code section's payload, and its relocations as (offset, type, symbol, addend).
    fn code_payload(&self) -> (Vec<u8>, Vec<Entry>) {
        let mut out = Vec::new();
        (self.funcs.len() as u32).encode(&mut out);
        let mut relocs = Vec::new();
        for f in &self.funcs {
            let mut body = f.body.clone();
            self.patch_fields(&mut body, &f.relocs);
            (body.len() as u32).encode(&mut out);
            let start = out.len() as u32;
            for r in f.relocs.iter().filter(|r| r.is_relocated()) {
                relocs.push((
                    start + r.offset,
                    r.ty,
                    self.symbol_index(&r.target),
                    r.addend,
                ));
            }
            out.extend_from_slice(&body);
        }
        (out, relocs)
    }

    /// The data section's payload (one active segment at address 0) and its relocations.
    fn data_payload(&self) -> (Vec<u8>, Vec<Entry>) {
        let mut out = vec![1, 0, 0x41, 0, 0x0b];
        (self.data.len() as u32).encode(&mut out);
        let start = out.len() as u32;
        let mut bytes = self.data.clone();
        self.patch_fields(&mut bytes, &self.data_relocs);
        out.extend_from_slice(&bytes);
        let relocs = self
            .data_relocs
            .iter()
            .filter(|r| r.is_relocated())
            .map(|r| {
                (
                    start + r.offset,
                    r.ty,
                    self.symbol_index(&r.target),
                    r.addend,
                )
            })
            .collect();
        (out, relocs)
    }

    /// The `linking` section's payload: segment info and the symbol table.
    fn linking(&self) -> Vec<u8> {
        let mut out = Vec::new();
        LINKING_VERSION.encode(&mut out);
        let mut seg = Vec::new();
        1u32.encode(&mut seg);
        ".data".encode(&mut seg);
        DATA_P2ALIGN.encode(&mut seg);
        0u32.encode(&mut seg);
        out.push(WASM_SEGMENT_INFO);
        seg.encode(&mut out);
        let mut syms = SymbolTable::new();
        for (i, (name, _)) in self.imports.iter().enumerate() {
            syms.function(
                SymbolTable::WASM_SYM_UNDEFINED | SymbolTable::WASM_SYM_EXPLICIT_NAME,
                i as u32,
                Some(name),
            );
        }
        let nimp = self.imports.len() as u32;
        for (i, f) in self.funcs.iter().enumerate() {
            let flags = if f.exported {
                SymbolTable::WASM_SYM_EXPORTED
            } else {
                SymbolTable::WASM_SYM_BINDING_LOCAL
            };
            syms.function(flags, nimp + i as u32, Some(&f.name));
        }
        for d in &self.data_syms {
            syms.data(
                SymbolTable::WASM_SYM_BINDING_LOCAL,
                &d.name,
                Some(wasm_encoder::DataSymbolDefinition {
                    index: 0,
                    offset: d.offset,
                    size: d.size,
                }),
            );
        }
        for name in &self.undef_data {
            syms.data(SymbolTable::WASM_SYM_UNDEFINED, name, None);
        }
        syms.global(SymbolTable::WASM_SYM_UNDEFINED, 0, None);
        syms.table(SymbolTable::WASM_SYM_UNDEFINED, 0, None);
        syms.encode(&mut out);
        out
    }
}

/// A custom section.
fn custom(name: &str, data: Vec<u8>) -> CustomSection<'_> {
    CustomSection {
        name: name.into(),
        data: data.into(),
    }
}

/// A `reloc.*` payload for section `section`.
fn reloc_payload(section: u32, relocs: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    section.encode(&mut out);
    (relocs.len() as u32).encode(&mut out);
    for &(offset, ty, index, addend) in relocs {
        out.push(ty as u8);
        offset.encode(&mut out);
        index.encode(&mut out);
        if has_addend(ty) {
            addend.encode(&mut out);
        }
    }
    out
}

/// Whether a relocation type carries an addend.
pub(crate) fn has_addend(ty: RelocationType) -> bool {
    matches!(
        ty,
        RelocationType::MemoryAddrLeb
            | RelocationType::MemoryAddrSleb
            | RelocationType::MemoryAddrI32
            | RelocationType::FunctionOffsetI32
            | RelocationType::SectionOffsetI32
    )
}

/// Writes `value` as a 5-byte padded (s)LEB128.
pub(crate) fn write_padded(site: &mut [u8], value: i64, signed: bool) {
    let value = if signed { value } else { value & 0xffff_ffff };
    for (i, b) in site.iter_mut().enumerate().take(5) {
        let part = ((value >> (7 * i)) & 0x7f) as u8;
        *b = if i < 4 { part | 0x80 } else { part };
    }
}
