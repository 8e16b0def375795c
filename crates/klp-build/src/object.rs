//! One linked build (kernel or module) read for comparison: functions with their relocations,
//! data symbols with theirs, exports, and what the table holds.

use std::collections::HashMap;
use std::ops::Range;

use klp_passes::object::linking::{LinkSym, LinkingInfo, SymTarget};
use wasmparser::{
    BinaryReader, DataKind, ElementItems, ElementKind, ExternalKind, FuncType, Operator, Parser,
    Payload, RelocSectionReader, RelocationEntry, RelocationType, TypeRef,
};

/// The custom section listing the kernel's notrace functions (raw names, one per line).
const NOTRACE_SECTION: &str = "klp.notrace";

/// A relocation inside one function body or one data symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reloc {
    /// Offset from the start of the body (or of the data symbol).
    pub offset: u32,
    /// Its type.
    pub ty: RelocationType,
    /// Symbol index (a type index for `TypeIndexLeb`).
    pub index: u32,
    /// Addend (memory and offset relocations).
    pub addend: i64,
}

impl Reloc {
    /// Where the relocated field ends, from the start of its body or data symbol.
    pub(crate) fn end(&self) -> usize {
        self.offset as usize + self.width()
    }

    /// Bytes of the relocated field.
    pub(crate) fn width(&self) -> usize {
        match self.ty {
            RelocationType::MemoryAddrI32 | RelocationType::TableIndexI32 => 4,
            _ => 5,
        }
    }
}

/// A defined function.
#[derive(Debug, Clone)]
pub(crate) struct Func {
    /// Function index (imports included).
    pub index: u32,
    /// Raw name of its first defined symbol (or `func<n>`).
    pub name: String,
    /// Type index.
    pub ty: u32,
    /// The body (locals and code, no size prefix) in the file.
    pub body: Range<usize>,
    /// Its relocations, by offset.
    pub relocs: Vec<Reloc>,
}

/// A defined data symbol.
#[derive(Debug, Clone)]
pub(crate) struct Data {
    /// Raw name.
    pub name: String,
    /// Its bytes (zeros for bss), as a range of the file, or `None` past the segment's bytes.
    pub bytes: Option<Range<usize>>,
    /// Its size.
    pub size: u32,
    /// Its link-time address.
    pub addr: u32,
    /// Alignment of its segment, as a power of two.
    pub p2align: u32,
    /// Relocations inside it.
    pub relocs: Vec<Reloc>,
}

/// One linked build with `--emit-relocs`.
#[derive(Debug)]
pub(crate) struct Obj<'a> {
    pub bytes: &'a [u8],
    pub types: Vec<FuncType>,
    /// Type index of every function, imports first.
    pub func_types: Vec<u32>,
    pub num_imported_funcs: u32,
    /// Import field names of the imported functions.
    pub import_names: Vec<String>,
    /// Defined functions, by index minus the imports.
    pub funcs: Vec<Func>,
    pub symbols: Vec<LinkSym<'a>>,
    /// Defined data, by symbol index.
    pub data: HashMap<u32, Data>,
    /// Defined functions by raw name: their position in `funcs`.
    func_names: HashMap<String, usize>,
    /// Defined data by raw name: the first symbol of that name.
    data_names: HashMap<String, u32>,
    /// Exported functions: name and function index.
    pub exports: Vec<(String, u32)>,
    /// Functions in element segments (their address is taken).
    pub in_table: Vec<u32>,
    /// Raw names of notrace functions (the kernel's `klp.notrace`).
    pub notrace: Vec<String>,
    /// Link-time start of the data image (lowest segment address, aligned down).
    pub image_start: u32,
    /// Whether the build imports its memory (a module) rather than defining it (the kernel).
    pub imports_memory: bool,
}

/// A data segment as read.
struct Segment {
    addr: u32,
    bytes: Range<usize>,
    /// Start of its bytes relative to the data section payload.
    rel_start: usize,
}

impl<'a> Obj<'a> {
    /// Reads a linked build.
    ///
    /// # Errors
    ///
    /// A message when the bytes are not wasm, not valid, or have no `linking` section.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if !bytes.starts_with(b"\0asm") {
            return Err("not a wasm module".into());
        }
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(bytes)
            .map_err(|e| {
                let message = e.to_string();
                let one_line: Vec<&str> = message.split_whitespace().collect();
                format!("not a valid wasm module: {}", one_line.join(" "))
            })?;
        let mut o = Obj {
            bytes,
            types: Vec::new(),
            func_types: Vec::new(),
            num_imported_funcs: 0,
            import_names: Vec::new(),
            funcs: Vec::new(),
            symbols: Vec::new(),
            data: HashMap::new(),
            func_names: HashMap::new(),
            data_names: HashMap::new(),
            exports: Vec::new(),
            in_table: Vec::new(),
            notrace: Vec::new(),
            image_start: 0,
            imports_memory: false,
        };
        let mut linking = None;
        let mut relocs: Vec<(u32, Vec<RelocationEntry>)> = Vec::new();
        let mut segments = Vec::new();
        let mut code: Option<(usize, u32)> = None;
        let mut data_section = None;
        let mut bodies = Vec::new();
        let mut section = 0u32;
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| e.to_string())?;
            let index = section;
            if payload.as_section().is_some() || matches!(payload, Payload::CustomSection(_)) {
                section += 1;
            }
            match payload {
                Payload::TypeSection(r) => {
                    for ty in r.into_iter_err_on_gc_types() {
                        o.types.push(ty.map_err(|e| e.to_string())?);
                    }
                }
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        let imp = imp.map_err(|e| e.to_string())?;
                        match imp.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                o.func_types.push(t);
                                o.import_names.push(imp.name.to_string());
                                o.num_imported_funcs += 1;
                            }
                            TypeRef::Memory(_) => o.imports_memory = true,
                            _ => {}
                        }
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        o.func_types.push(t.map_err(|e| e.to_string())?);
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.map_err(|e| e.to_string())?;
                        if e.kind == ExternalKind::Func {
                            o.exports.push((e.name.to_string(), e.index));
                        }
                    }
                }
                Payload::ElementSection(r) => {
                    for el in r {
                        let el = el.map_err(|e| e.to_string())?;
                        if let (ElementKind::Active { .. }, ElementItems::Functions(fs)) =
                            (el.kind, el.items)
                        {
                            for f in fs {
                                o.in_table.push(f.map_err(|e| e.to_string())?);
                            }
                        }
                    }
                }
                Payload::CodeSectionStart { range, .. } => code = Some((range.start, index)),
                Payload::CodeSectionEntry(body) => bodies.push(body.range()),
                Payload::DataSection(r) => {
                    data_section = Some(index);
                    let base = r.range().start;
                    for d in r {
                        let d = d.map_err(|e| e.to_string())?;
                        let DataKind::Active { offset_expr, .. } = &d.kind else {
                            return Err("passive data segment".into());
                        };
                        let addr = match offset_expr.get_operators_reader().read() {
                            Ok(Operator::I32Const { value }) => value as u32,
                            _ => return Err("data segment with a non-constant offset".into()),
                        };
                        let start = d.range.end - d.data.len();
                        segments.push(Segment {
                            addr,
                            bytes: start..d.range.end,
                            rel_start: start - base,
                        });
                    }
                }
                Payload::CustomSection(c) => match c.name() {
                    "linking" => linking = Some(LinkingInfo::parse(c.data(), c.data_offset())?),
                    n if n.starts_with("reloc.") => {
                        let r =
                            RelocSectionReader::new(BinaryReader::new(c.data(), c.data_offset()))
                                .map_err(|e| e.to_string())?;
                        let mut entries = Vec::new();
                        for e in r.entries() {
                            entries.push(e.map_err(|e| e.to_string())?);
                        }
                        relocs.push((r.section_index(), entries));
                    }
                    NOTRACE_SECTION => {
                        let text = std::str::from_utf8(c.data())
                            .map_err(|_| format!("{NOTRACE_SECTION} is not UTF-8"))?;
                        o.notrace = text.lines().map(str::to_string).collect();
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let linking =
            linking.ok_or("no linking section: not linked with --emit-relocs".to_string())?;
        o.symbols = linking.symbols;
        let mut code_relocs = Vec::new();
        let mut data_relocs = Vec::new();
        for (section, entries) in relocs {
            if code.is_some_and(|(_, i)| i == section) {
                code_relocs = entries;
            } else if data_section == Some(section) {
                data_relocs = entries;
            }
        }
        let code_start = code.map_or(0, |(s, _)| s);
        o.read_funcs(&bodies, code_start, &code_relocs)?;
        let p2aligns: Vec<u32> = linking.segments.iter().map(|s| s.p2align).collect();
        let align = p2aligns
            .iter()
            .map(|p| 1u32 << p.min(&16))
            .max()
            .unwrap_or(1);
        o.image_start = segments.iter().map(|s| s.addr).min().unwrap_or(0) & !(align - 1);
        o.read_data(&segments, &p2aligns, &data_relocs);
        for (i, f) in o.funcs.iter().enumerate() {
            o.func_names.entry(f.name.clone()).or_insert(i);
        }
        let mut data: Vec<(&u32, &Data)> = o.data.iter().collect();
        data.sort_by_key(|(sym, _)| **sym);
        for (sym, d) in data {
            o.data_names.entry(d.name.clone()).or_insert(*sym);
        }
        Ok(o)
    }

    fn read_funcs(
        &mut self,
        bodies: &[Range<usize>],
        code_start: usize,
        relocs: &[RelocationEntry],
    ) -> Result<(), String> {
        let nimp = self.num_imported_funcs;
        let mut names: HashMap<u32, &str> = HashMap::new();
        for s in self.symbols.iter().filter(|s| s.defined()) {
            if let (SymTarget::Func(f), Some(n)) = (s.target, s.name) {
                names.entry(f).or_insert(n);
            }
        }
        let mut sorted: Vec<&RelocationEntry> = relocs.iter().collect();
        sorted.sort_by_key(|e| e.offset);
        let mut next = 0;
        for (i, body) in bodies.iter().enumerate() {
            let index = nimp + i as u32;
            let (start, end) = (body.start - code_start, body.end - code_start);
            let mut own = Vec::new();
            while let Some(e) = sorted.get(next).filter(|e| (e.offset as usize) < end) {
                next += 1;
                let at = e.offset as usize;
                if at < start {
                    return Err(format!("code relocation at {at} outside every body"));
                }
                own.push(Reloc {
                    offset: (at - start) as u32,
                    ty: e.ty,
                    index: e.index,
                    addend: e.addend,
                });
            }
            let ty = *self
                .func_types
                .get(index as usize)
                .ok_or("more bodies than functions")?;
            self.funcs.push(Func {
                index,
                name: names
                    .get(&index)
                    .map_or_else(|| format!("func{index}"), |n| (*n).to_string()),
                ty,
                body: body.clone(),
                relocs: own,
            });
        }
        Ok(())
    }

    fn read_data(&mut self, segments: &[Segment], p2aligns: &[u32], relocs: &[RelocationEntry]) {
        for (i, s) in self.symbols.iter().enumerate() {
            let (SymTarget::Data(Some((seg, offset, size))), Some(name)) = (s.target, s.name)
            else {
                continue;
            };
            let Some(segment) = segments.get(seg as usize) else {
                continue;
            };
            let (off, len) = (offset as usize, size as usize);
            let bytes = (off + len <= segment.bytes.len())
                .then(|| segment.bytes.start + off..segment.bytes.start + off + len);
            let rel = segment.rel_start + off..segment.rel_start + off + len;
            let relocs = relocs
                .iter()
                .filter(|e| rel.contains(&(e.offset as usize)))
                .map(|e| Reloc {
                    offset: (e.offset as usize - rel.start) as u32,
                    ty: e.ty,
                    index: e.index,
                    addend: e.addend,
                })
                .collect();
            self.data.insert(
                i as u32,
                Data {
                    name: name.to_string(),
                    bytes,
                    size,
                    addr: segment.addr.wrapping_add(offset),
                    p2align: p2aligns.get(seg as usize).copied().unwrap_or(0),
                    relocs,
                },
            );
        }
    }

    /// The defined function of index `f`.
    pub(crate) fn func(&self, f: u32) -> Option<&Func> {
        f.checked_sub(self.num_imported_funcs)
            .and_then(|i| self.funcs.get(i as usize))
    }

    /// The bytes of a data symbol (zeros past its segment's bytes, as bss).
    pub(crate) fn data_bytes(&self, d: &Data) -> Vec<u8> {
        d.bytes
            .clone()
            .map_or_else(|| vec![0; d.size as usize], |r| self.bytes[r].to_vec())
    }

    /// The name a relocation's symbol goes by: its own, else the import's field name.
    pub(crate) fn symbol_name(&self, index: u32) -> Option<String> {
        let s = self.symbols.get(index as usize)?;
        if let Some(n) = s.name {
            return Some(n.to_string());
        }
        match s.target {
            SymTarget::Func(f) if f < self.num_imported_funcs => {
                self.import_names.get(f as usize).cloned()
            }
            _ => None,
        }
    }

    /// The defined function of raw name `name`.
    pub(crate) fn func_named(&self, name: &str) -> Option<&Func> {
        self.func_names.get(name).map(|&i| &self.funcs[i])
    }

    /// The defined data symbol of raw name `name`: its symbol index and its data.
    pub(crate) fn data_named(&self, name: &str) -> Option<(u32, &Data)> {
        let &sym = self.data_names.get(name)?;
        Some((sym, &self.data[&sym]))
    }
}
