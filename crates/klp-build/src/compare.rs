//! The comparison, as create-diff-object's: functions and data of two builds, each reduced to
//! a key that holds its bytes with every relocated field blanked and what each field refers
//! to, so that a call to a function that moved, or data that moved, is not a change.

use std::collections::HashMap;
use std::fmt::Write as _;

use klp_passes::object::linking::SymTarget;
use wasmparser::{RelocationType, SymbolFlags};

use crate::object::{Func, Obj, Reloc};

/// How deep anonymous data referring to anonymous data is compared by content.
const MAX_DEPTH: u32 = 8;

/// Whether a raw symbol name is anonymous (compared by content, not by name).
pub(crate) fn is_anonymous(name: &str) -> bool {
    name.starts_with(".L")
}

/// The key of a function: its type, its bytes with the relocated fields blanked, and the
/// targets of its relocations.
pub(crate) fn func_key(o: &Obj<'_>, f: &Func) -> String {
    let mut key = format!("{:?}|", o.types.get(f.ty as usize));
    blanked(&o.bytes[f.body.clone()], &f.relocs, &mut key);
    for r in &f.relocs {
        let _ = write!(key, "|{}:{}", r.offset, target_key(o, r, 0));
    }
    key
}

/// The key of data symbol `sym`: its size, its bytes blanked, its relocations' targets.
pub(crate) fn data_key(o: &Obj<'_>, sym: u32, depth: u32) -> String {
    let Some(d) = o.data.get(&sym) else {
        return format!("?{sym}");
    };
    let mut key = format!("{}|", d.size);
    let mut bytes = o.data_bytes(d);
    if is_location(&bytes, &d.relocs) {
        // A panic location's line moves when lines are added above it: not a change (as
        // kpatch ignores __LINE__ in WARN and BUG).
        bytes[LOCATION_LINE].fill(0);
    }
    blanked(&bytes, &d.relocs, &mut key);
    for r in &d.relocs {
        let _ = write!(key, "|{}:{}", r.offset, target_key(o, r, depth));
    }
    key
}

/// The line field of a `core::panic::Location` (wasm32: file pointer, file length, line,
/// column).
const LOCATION_LINE: std::ops::Range<usize> = 8..12;

/// Whether anonymous data looks like a `core::panic::Location`: 16 bytes whose only relocation
/// is the file name's address at offset 0.
fn is_location(bytes: &[u8], relocs: &[Reloc]) -> bool {
    bytes.len() == 16
        && matches!(relocs, [r] if r.offset == 0 && r.ty == RelocationType::MemoryAddrI32)
}

/// `bytes` as hex, with the fields of `relocs` written as `__`.
fn blanked(bytes: &[u8], relocs: &[Reloc], out: &mut String) {
    let mut sites = vec![false; bytes.len()];
    for r in relocs {
        let start = r.offset as usize;
        for s in sites.iter_mut().skip(start).take(r.width()) {
            *s = true;
        }
    }
    for (b, blank) in bytes.iter().zip(sites) {
        if blank {
            out.push_str("__");
        } else {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// What a relocated field refers to, independent of where the linker put it.
fn target_key(o: &Obj<'_>, r: &Reloc, depth: u32) -> String {
    use RelocationType as R;
    let name = || {
        o.symbol_name(r.index)
            .unwrap_or_else(|| format!("#{}", r.index))
    };
    match r.ty {
        R::TypeIndexLeb => format!("type {:?}", o.types.get(r.index as usize)),
        R::TableNumberLeb => "table".into(),
        R::GlobalIndexLeb => format!("global {}", name()),
        R::FunctionIndexLeb | R::TableIndexSleb | R::TableIndexI32 => {
            format!("{:?} {}", r.ty, name())
        }
        _ => {
            let data = match o.symbols.get(r.index as usize).map(|s| s.target) {
                Some(SymTarget::Data(Some(_))) if is_anonymous(&name()) && depth < MAX_DEPTH => {
                    format!("anon[{}]", data_key(o, r.index, depth + 1))
                }
                _ => name(),
            };
            format!("{:?} {data}+{}", r.ty, r.addend)
        }
    }
}

/// A named data symbol whose key differs between the builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangedData {
    /// Raw name.
    pub name: String,
    /// What differs: the size or the initial value.
    pub what: &'static str,
}

/// Functions and data of `patched` compared with `orig`.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Function indices (in `patched`) whose key differs from the same-named one in `orig`.
    pub changed: Vec<u32>,
    /// Function indices (in `patched`) with no same-named function in `orig`.
    pub new: Vec<u32>,
    /// Named data of both builds that differs.
    pub changed_data: Vec<ChangedData>,
}

/// Compares two builds of one object.
pub(crate) fn compare(orig: &Obj<'_>, patched: &Obj<'_>) -> Comparison {
    let mut out = Comparison::default();
    for f in &patched.funcs {
        match orig.func_named(&f.name) {
            None => out.new.push(f.index),
            Some(old) if func_key(orig, old) != func_key(patched, f) => out.changed.push(f.index),
            Some(_) => {}
        }
    }
    let named = |o: &Obj<'_>| -> HashMap<String, u32> {
        o.data
            .iter()
            .filter(|(i, d)| {
                let flags = o.symbols[**i as usize].flags;
                !is_anonymous(&d.name) && d.size > 0 && !flags.contains(SymbolFlags::ABSOLUTE)
            })
            .map(|(i, d)| (d.name.clone(), *i))
            .collect()
    };
    let (old_data, new_data) = (named(orig), named(patched));
    let mut changed: Vec<ChangedData> = new_data
        .iter()
        .filter_map(|(name, &sym)| {
            let &old = old_data.get(name)?;
            let (a, b) = (&orig.data[&old], &patched.data[&sym]);
            let what = if a.size != b.size {
                "its size"
            } else if data_key(orig, old, 0) != data_key(patched, sym, 0) {
                "its initial value"
            } else {
                return None;
            };
            Some(ChangedData {
                name: name.clone(),
                what,
            })
        })
        .collect();
    changed.sort_by(|a, b| a.name.cmp(&b.name));
    out.changed_data = changed;
    out
}
