//! Structure-aware mutations of real module objects: relocations, symbols, data words, sections.

use arbitrary::{Result, Unstructured};
use wasmparser::{
    BinaryReader, DataSectionReader, Linking, LinkingSectionReader, Parser, SymbolInfo,
};

use super::generate::{
    EXPLICIT_NAME, HIDDEN, LOCAL, Reloc, SegInfo, Sym, UNDEFINED, WEAK, has_addend,
    linking_section, reloc_section,
};

/// A module as its sections: id, custom name (for id 0), payload.
struct Sections(Vec<(u8, String, Vec<u8>)>);

impl Sections {
    fn parse(wasm: &[u8]) -> Sections {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload.expect("a built module parses");
            if let wasmparser::Payload::CustomSection(c) = &payload {
                out.push((0, c.name().to_string(), c.data().to_vec()));
            } else if let Some((id, range)) = payload.as_section() {
                out.push((id, String::new(), wasm[range].to_vec()));
            }
        }
        Sections(out)
    }

    fn find(&self, id: u8, name: &str) -> Option<usize> {
        self.0.iter().position(|(i, n, _)| *i == id && n == name)
    }

    fn encode(&self) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        for (id, name, data) in &self.0 {
            if *id == 0 {
                module.section(&wasm_encoder::CustomSection {
                    name: name.into(),
                    data: data.into(),
                });
            } else {
                module.section(&wasm_encoder::RawSection { id: *id, data });
            }
        }
        module.finish()
    }
}

/// Reads an unsigned LEB128 at `*at`.
fn read_leb(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A relocation section decoded: target section and entries (type, offset, index, addend).
fn decode_relocs(data: &[u8]) -> Option<(u32, Vec<Reloc>)> {
    let mut at = 0;
    let section = read_leb(data, &mut at)? as u32;
    let count = read_leb(data, &mut at)?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let ty = *data.get(at)?;
        at += 1;
        let offset = read_leb(data, &mut at)? as u32;
        let index = read_leb(data, &mut at)? as u32;
        let addend = if has_addend(ty) {
            let mut r = BinaryReader::new(data.get(at..)?, 0);
            let v = r.read_var_i32().ok()?;
            at += r.original_position();
            v
        } else {
            0
        };
        entries.push((ty, offset, index, addend));
    }
    Some((section, entries))
}

/// A value worth trying where a word, index or addend was.
fn interesting(u: &mut Unstructured<'_>, was: u32) -> Result<u32> {
    Ok(match u.int_in_range(0..=9)? {
        0 => 0,
        1 => 1,
        2 => u32::MAX,
        3 => 0x7fff_ffff,
        4 => 0x8000_0000,
        5 => was.wrapping_add(u.int_in_range(1..=16)?),
        6 => was.wrapping_sub(u.int_in_range(1..=16)?),
        7 => was ^ (1 << u.int_in_range(0..=31)?),
        8 => u.int_in_range(0..=64)?,
        _ => u.arbitrary()?,
    })
}

/// Changes one field of one entry of a relocation section (or adds a copy of the entry).
fn mutate_reloc(u: &mut Unstructured<'_>, data: &mut Vec<u8>) -> Result<()> {
    let Some((section, mut entries)) = decode_relocs(data) else {
        return flip_bytes(u, data);
    };
    if entries.is_empty() {
        return Ok(());
    }
    let i = u.choose_index(entries.len())?;
    let e = &mut entries[i];
    match u.int_in_range(0..=4)? {
        0 => e.0 = u.int_in_range(0..=26)?,
        1 => e.1 = interesting(u, e.1)?,
        2 => e.2 = interesting(u, e.2)?,
        3 => e.3 = interesting(u, e.3 as u32)? as i32,
        _ => {
            let dup = *e;
            entries.push(dup);
        }
    }
    *data = reloc_section(section, &entries);
    Ok(())
}

/// A `linking` section decoded: its symbols and segment info; `None` when it holds something
/// [`linking_section`] does not write (event symbols, init functions, comdats).
fn decode_linking(data: &[u8]) -> Option<(Vec<Sym>, Vec<SegInfo>)> {
    let reader = LinkingSectionReader::new(BinaryReader::new(data, 0)).ok()?;
    let (mut symbols, mut segments) = (Vec::new(), Vec::new());
    for sub in reader.subsections() {
        match sub.ok()? {
            Linking::SymbolTable(map) => {
                for sym in map {
                    symbols.push(match sym.ok()? {
                        SymbolInfo::Func { flags, index, name } => {
                            Sym::Func(flags.bits(), index, name.map(str::to_string))
                        }
                        SymbolInfo::Global { flags, index, name } => {
                            Sym::Global(flags.bits(), index, name.map(str::to_string))
                        }
                        SymbolInfo::Table { flags, index, name } => {
                            Sym::Table(flags.bits(), index, name.map(str::to_string))
                        }
                        SymbolInfo::Data {
                            flags,
                            name,
                            symbol,
                        } => Sym::Data(
                            flags.bits(),
                            name.to_string(),
                            symbol.map(|d| (d.index, d.offset, d.size)),
                        ),
                        SymbolInfo::Section { flags, section } => {
                            Sym::Section(flags.bits(), section)
                        }
                        _ => return None,
                    });
                }
            }
            Linking::SegmentInfo(map) => {
                for seg in map {
                    let seg = seg.ok()?;
                    segments.push((seg.name.to_string(), seg.alignment));
                }
            }
            _ => return None,
        }
    }
    Some((symbols, segments))
}

/// Names a mutated symbol may take: the loader's special names, a kernel export, nothing.
const NAMES: [&str; 7] = [
    "init_module",
    "cleanup_module",
    "__param_level",
    "__stack_pointer",
    "printk",
    ".klp.sym.vmlinux.printk,0",
    "",
];

/// Changes one symbol (a flag, its index, its name, its data definition) or one segment's
/// alignment or name, keeping the encoding well-formed.
fn mutate_linking(u: &mut Unstructured<'_>, data: &mut Vec<u8>) -> Result<()> {
    let Some((mut symbols, mut segments)) = decode_linking(data) else {
        return flip_bytes(u, data);
    };
    if !segments.is_empty() && u.ratio(1, 5)? {
        let i = u.choose_index(segments.len())?;
        if u.arbitrary()? {
            segments[i].1 = u.int_in_range(0..=20)?;
        } else {
            segments[i].0 = (*u.choose(&[".bss", ".data", ".rodata", "", ".tbss"])?).into();
        }
    } else if !symbols.is_empty() {
        let i = u.choose_index(symbols.len())?;
        let flip = *u.choose(&[WEAK, LOCAL, HIDDEN, UNDEFINED, EXPLICIT_NAME])?;
        let what = u.int_in_range(0..=3)?;
        let name = (*u.choose(&NAMES)?).to_string();
        match &mut symbols[i] {
            Sym::Func(flags, index, sym_name)
            | Sym::Global(flags, index, sym_name)
            | Sym::Table(flags, index, sym_name) => match what {
                0 => *flags ^= flip,
                1 => *index = interesting(u, *index)?,
                _ => *sym_name = Some(name),
            },
            Sym::Data(flags, sym_name, def) => match (what, def) {
                (0, _) => *flags ^= flip,
                (1, Some((seg, _, _))) => *seg = interesting(u, *seg)?,
                (2, Some((_, offset, size))) => {
                    *offset = interesting(u, *offset)?;
                    *size = interesting(u, *size)?;
                }
                _ => *sym_name = name,
            },
            Sym::Section(flags, section) => match what {
                0 => *flags ^= flip,
                _ => *section = interesting(u, *section)?,
            },
        }
    }
    *data = linking_section(&symbols, &segments);
    Ok(())
}

/// Flips, sets or deletes a few bytes of `data`.
fn flip_bytes(u: &mut Unstructured<'_>, data: &mut Vec<u8>) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    for _ in 0..u.int_in_range(1..=3)? {
        let at = u.choose_index(data.len())?;
        match u.int_in_range(0..=2)? {
            0 => data[at] ^= 1 << u.int_in_range(0..=7)?,
            1 => data[at] = u.arbitrary()?,
            _ => {
                data.remove(at);
                if data.is_empty() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Replaces one aligned word inside a data segment (a pointer, a size, a flag of the module's
/// statics: for a live patch, its `klp_patch`, `klp_object` and `klp_func` fields and names).
fn mutate_data_word(u: &mut Unstructured<'_>, data: &mut [u8]) -> Result<()> {
    let Ok(reader) = DataSectionReader::new(BinaryReader::new(data, 0)) else {
        return Ok(());
    };
    let segments: Vec<(usize, usize)> = reader
        .into_iter()
        .filter_map(|d| d.ok())
        .map(|d| (d.range.end - d.data.len(), d.data.len()))
        .filter(|&(_, len)| len >= 4)
        .collect();
    if segments.is_empty() {
        return Ok(());
    }
    let (start, len) = *u.choose(&segments)?;
    let at = start + 4 * u.choose_index(len / 4)?;
    let was = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    let now = interesting(u, was)?;
    data[at..at + 4].copy_from_slice(&now.to_le_bytes());
    Ok(())
}

/// A built-in module mutated 1 to 3 times: mostly where the loader reads structure (relocations,
/// the symbol table decoded and re-encoded, data words), sometimes raw bytes anywhere.
pub fn module(u: &mut Unstructured<'_>, wasm: &[u8]) -> Result<Vec<u8>> {
    let mut s = Sections::parse(wasm);
    for _ in 0..u.int_in_range(1..=3)? {
        match u.int_in_range(0..=99)? {
            0..=34 => {
                let relocs: Vec<usize> = (0..s.0.len())
                    .filter(|&i| s.0[i].1.starts_with("reloc."))
                    .collect();
                if !relocs.is_empty() {
                    let i = *u.choose(&relocs)?;
                    mutate_reloc(u, &mut s.0[i].2)?;
                }
            }
            35..=46 => {
                if let Some(i) = s.find(0, "linking") {
                    mutate_linking(u, &mut s.0[i].2)?;
                }
            }
            47..=54 => {
                if let Some(i) = s.find(0, "linking") {
                    flip_bytes(u, &mut s.0[i].2)?;
                }
            }
            55..=74 => {
                if let Some(i) = s.find(11, "") {
                    mutate_data_word(u, &mut s.0[i].2)?;
                }
            }
            75..=82 => {
                if let Some(i) = s.find(10, "") {
                    flip_bytes(u, &mut s.0[i].2)?;
                }
            }
            83..=87 => {
                // .modinfo: claim to be a live patch, or stop claiming it.
                match s.find(0, ".modinfo") {
                    Some(i) if u.arbitrary()? => {
                        s.0.remove(i);
                    }
                    Some(i) => s.0[i].2.extend(b"livepatch=Y\0"),
                    None => s.0.push((0, ".modinfo".into(), b"livepatch=Y\0".to_vec())),
                }
            }
            88..=93 => {
                let i = u.choose_index(s.0.len())?;
                s.0.remove(i);
            }
            94..=96 => {
                let i = u.choose_index(s.0.len())?;
                let dup = s.0[i].clone();
                s.0.insert(i, dup);
            }
            _ => {
                let i = u.choose_index(s.0.len())?;
                flip_bytes(u, &mut s.0[i].2)?;
            }
        }
    }
    Ok(s.encode())
}

/// A live patch's metadata mutated: words of its data (the `klp_*` structures and the names they
/// point to) and its data relocations (the pointers between them).
pub fn patch(u: &mut Unstructured<'_>, wasm: &[u8]) -> Result<Vec<u8>> {
    let mut s = Sections::parse(wasm);
    for _ in 0..u.int_in_range(1..=2)? {
        if u.ratio(1, 2)? {
            if let Some(i) = s.find(11, "") {
                mutate_data_word(u, &mut s.0[i].2)?;
            }
        } else if let Some(i) = s.find(0, "reloc.DATA") {
            mutate_reloc(u, &mut s.0[i].2)?;
        }
    }
    Ok(s.encode())
}
