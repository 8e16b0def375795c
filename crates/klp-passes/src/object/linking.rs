//! The `linking` custom section, read into owned tables: symbols and segment info.

use wasmparser::{BinaryReader, Linking, LinkingSectionReader, SymbolFlags, SymbolInfo};

/// What a symbol of the symbol table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymTarget {
    /// A function, by function index (imports included).
    Func(u32),
    /// Data: `Some((segment, offset, size))` when defined.
    Data(Option<(u32, u32, u32)>),
    /// A global, by global index.
    Global(u32),
    /// A table, by table index.
    Table(u32),
    /// Sections, events and anything else the linker does not use.
    Other,
}

/// One entry of the symbol table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSym<'a> {
    /// The symbol's name; `None` for an undefined function, global or table named by its import.
    pub name: Option<&'a str>,
    /// What it names.
    pub target: SymTarget,
    /// `WASM_SYM_*` flags.
    pub flags: SymbolFlags,
}

impl LinkSym<'_> {
    /// Defined in this file (not an import, not an undefined data symbol).
    pub fn defined(&self) -> bool {
        !self.flags.contains(SymbolFlags::UNDEFINED)
    }

    /// Global or weak binding (visible to other objects).
    pub fn global(&self) -> bool {
        !self.flags.contains(SymbolFlags::BINDING_LOCAL)
    }
}

/// One entry of the segment info: the data segment's name and alignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegInfo<'a> {
    /// Name, such as `.rodata`, `.data` or `.bss`.
    pub name: &'a str,
    /// Alignment as a power of two.
    pub p2align: u32,
}

/// The symbol table and segment info of a `linking` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkingInfo<'a> {
    /// Symbols, by symbol index.
    pub symbols: Vec<LinkSym<'a>>,
    /// Segment info, by data segment index.
    pub segments: Vec<SegInfo<'a>>,
}

impl<'a> LinkingInfo<'a> {
    /// Reads a `linking` section payload that starts at `offset` in the file.
    ///
    /// # Errors
    ///
    /// A message for decoding errors, an unsupported version or a repeated subsection.
    pub fn parse(data: &'a [u8], offset: usize) -> Result<Self, String> {
        Self::read(data, offset).map_err(|e| format!("linking section: {e}"))
    }

    fn read(data: &'a [u8], offset: usize) -> Result<Self, String> {
        let reader = LinkingSectionReader::new(BinaryReader::new(data, offset))
            .map_err(|e| e.to_string())?;
        let mut info = Self::default();
        let (mut seen_symbols, mut seen_segments) = (false, false);
        for sub in reader.subsections() {
            match sub.map_err(|e| e.to_string())? {
                Linking::SymbolTable(map) => {
                    if std::mem::replace(&mut seen_symbols, true) {
                        return Err("repeated symbol table".into());
                    }
                    for sym in map {
                        info.symbols
                            .push(LinkSym::from(sym.map_err(|e| e.to_string())?));
                    }
                }
                Linking::SegmentInfo(map) => {
                    if std::mem::replace(&mut seen_segments, true) {
                        return Err("repeated segment info".into());
                    }
                    for seg in map {
                        let seg = seg.map_err(|e| e.to_string())?;
                        info.segments.push(SegInfo {
                            name: seg.name,
                            p2align: seg.alignment,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }
}

impl<'a> From<SymbolInfo<'a>> for LinkSym<'a> {
    fn from(sym: SymbolInfo<'a>) -> Self {
        let (name, target, flags) = match sym {
            SymbolInfo::Func { flags, index, name } => (name, SymTarget::Func(index), flags),
            SymbolInfo::Data {
                flags,
                name,
                symbol,
            } => (
                Some(name),
                SymTarget::Data(symbol.map(|d| (d.index, d.offset, d.size))),
                flags,
            ),
            SymbolInfo::Global { flags, index, name } => (name, SymTarget::Global(index), flags),
            SymbolInfo::Table { flags, index, name } => (name, SymTarget::Table(index), flags),
            SymbolInfo::Event { flags, name, .. } => (name, SymTarget::Other, flags),
            SymbolInfo::Section { flags, .. } => (None, SymTarget::Other, flags),
        };
        Self {
            name,
            target,
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{LinkingSection, SymbolTable};

    #[test]
    fn linking_section_symbols_and_segments_are_read() {
        let mut syms = SymbolTable::new();
        syms.function(SymbolTable::WASM_SYM_BINDING_LOCAL, 3, Some("f"));
        syms.data(
            0,
            "d",
            Some(wasm_encoder::DataSymbolDefinition {
                index: 1,
                offset: 8,
                size: 4,
            }),
        );
        syms.data(SymbolTable::WASM_SYM_UNDEFINED, "u", None);
        let mut linking = LinkingSection::new();
        linking.symbol_table(&syms);
        let mut module = wasm_encoder::Module::new();
        module.section(&linking);
        let wasm = module.finish();
        let (payload, offset) = wasmparser::Parser::new(0)
            .parse_all(&wasm)
            .find_map(|p| match p.unwrap() {
                wasmparser::Payload::CustomSection(c) => Some((c.data(), c.data_offset())),
                _ => None,
            })
            .unwrap();
        let info = LinkingInfo::parse(payload, offset).unwrap();
        assert_eq!(info.symbols.len(), 3);
        assert_eq!(info.symbols[0].target, SymTarget::Func(3));
        assert!(!info.symbols[0].global());
        assert_eq!(info.symbols[1].target, SymTarget::Data(Some((1, 8, 4))));
        assert!(info.symbols[1].global() && info.symbols[1].defined());
        assert!(!info.symbols[2].defined());
    }

    #[test]
    fn garbage_linking_section_is_an_error() {
        assert!(LinkingInfo::parse(&[2, 8, 5, 1, 0xff], 0).is_err());
        assert!(LinkingInfo::parse(&[1], 0).is_err());
        assert!(LinkingInfo::parse(&[], 0).is_err());
    }
}
