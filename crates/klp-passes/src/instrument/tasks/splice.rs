//! Splicing into a module: entries appended to a section or a name subsection, the rest copied.

use wasm_encoder::{Encode, NameMap};
use wasmparser::BinaryReader;

use super::dispatcher::{Added, Switch};
use super::{BUDGET, CURRENT, RESUME, SPAWN, STOP};
use super::{ENTRY_NAME, InstrumentError, PREEMPT_NAME, unsupported};

/// Section ids, and where a section goes in a module (the tag section sits between memory and
/// global).
pub(super) const TYPE: u8 = 1;
pub(super) const FUNCTION: u8 = 3;
pub(super) const TABLE: u8 = 4;
pub(super) const GLOBAL: u8 = 6;
pub(super) const EXPORT: u8 = 7;
pub(super) const ELEMENT: u8 = 9;
pub(super) const CODE: u8 = 10;
pub(super) const TAG: u8 = 13;

pub(super) fn rank(id: u8) -> u8 {
    match id {
        1..=5 => id,
        TAG => 6,
        6..=9 => id + 1,
        12 => 11,
        10 | 11 => id + 2,
        _ => 0,
    }
}

/// The payload (count and entries) of an encoded section.
pub(super) fn payload_of(section: &impl Encode) -> Vec<u8> {
    let mut bytes = Vec::new();
    section.encode(&mut bytes);
    let mut r = BinaryReader::new(&bytes, 0);
    let _ = r.read_var_u32();
    bytes[r.original_position()..].to_vec()
}

pub(super) fn section_data(additions: &[(u8, Vec<u8>)], id: u8) -> Vec<u8> {
    additions
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, d)| d.clone())
        .unwrap_or_default()
}

/// Two vector payloads (a count, then entries) as one.
pub(super) fn append(old: &[u8], extra: &[u8]) -> Result<Vec<u8>, InstrumentError> {
    let mut a = BinaryReader::new(old, 0);
    let mut b = BinaryReader::new(extra, 0);
    let count = a
        .read_var_u32()?
        .checked_add(b.read_var_u32()?)
        .ok_or_else(|| unsupported("section count overflows"))?;
    let mut out = Vec::with_capacity(old.len() + extra.len() + 5);
    count.encode(&mut out);
    out.extend_from_slice(&old[a.original_position()..]);
    out.extend_from_slice(&extra[b.original_position()..]);
    Ok(out)
}

/// The name section with the names of what the rewrite adds: functions (1), tables (5),
/// globals (7) and tags (11), each appended to its subsection, or a subsection added in order.
pub(super) fn names(data: &[u8], offset: usize, a: &Added) -> Result<Vec<u8>, InstrumentError> {
    let map = |entries: &[(u32, &str)]| {
        let mut m = NameMap::new();
        for (i, n) in entries {
            m.append(*i, n);
        }
        let mut out = Vec::new();
        m.encode(&mut out);
        out
    };
    let globals = (
        7,
        map(&[
            (a.g_budget, BUDGET),
            (a.g_current, CURRENT),
            (a.g_stop, STOP),
        ]),
    );
    let mut extra: Vec<(u8, Vec<u8>)> = match &a.switch {
        Switch::Import(_) => vec![(1, map(&[(a.f_preempt, PREEMPT_NAME)])), globals],
        Switch::Stacks(s) => vec![
            (
                1,
                map(&[
                    (s.f_entry, ENTRY_NAME),
                    (s.f_spawn, SPAWN),
                    (s.f_resume, RESUME),
                    (a.f_preempt, PREEMPT_NAME),
                ]),
            ),
            (
                5,
                map(&[
                    (s.tab_conts, "__klp_task_conts"),
                    (s.tab_idle, "__klp_task_idle"),
                ]),
            ),
            globals,
            (
                11,
                map(&[
                    (s.tag_yield, "klp_yield"),
                    (s.tag_preempt, "klp_preempt"),
                    (s.tag_exit, "klp_exit"),
                ]),
            ),
        ],
    };
    let mut out = Vec::with_capacity(data.len() + 256);
    let sub = |out: &mut Vec<u8>, id: u8, bytes: &[u8]| {
        out.push(id);
        (bytes.len() as u32).encode(out);
        out.extend_from_slice(bytes);
    };
    let mut r = BinaryReader::new(data, offset);
    while !r.eof() {
        let id = r.read_u8()?;
        let len = r.read_var_u32()? as usize;
        let bytes = r.read_bytes(len)?;
        for (eid, e) in extra.extract_if(.., |(eid, _)| *eid < id) {
            sub(&mut out, eid, &e);
        }
        match extra.iter().position(|(eid, _)| *eid == id) {
            Some(i) => {
                let (_, e) = extra.remove(i);
                sub(&mut out, id, &append(bytes, &e)?);
            }
            None => sub(&mut out, id, bytes),
        }
    }
    for (eid, e) in extra {
        sub(&mut out, eid, &e);
    }
    Ok(out)
}
