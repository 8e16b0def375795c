//! The ftrace map: which slot of the ftrace table belongs to which kernel function (`klp.ftrace`).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use wasm_encoder::Encode;
use wasmparser::BinaryReader;

use super::InstrumentError;
use super::kernel::MAX_SLOTS;

/// Name of the custom section the instrument pass writes.
pub const FTRACE_SECTION: &str = "klp.ftrace";

/// Version of the `klp.ftrace` encoding.
const FTRACE_VERSION: u32 = 1;

/// Flag bit in an encoded entry: the function is notrace.
const FLAG_NOTRACE: u8 = 1;

/// A WebAssembly value type as it may appear in a kernel function signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `v128`
    V128,
    /// `funcref`
    FuncRef,
    /// `externref`
    ExternRef,
}

impl ValType {
    /// Converts a parsed value type; other reference types are not supported in signatures.
    pub(crate) fn from_wasm(ty: wasmparser::ValType) -> Result<Self, String> {
        Ok(match ty {
            wasmparser::ValType::I32 => Self::I32,
            wasmparser::ValType::I64 => Self::I64,
            wasmparser::ValType::F32 => Self::F32,
            wasmparser::ValType::F64 => Self::F64,
            wasmparser::ValType::V128 => Self::V128,
            wasmparser::ValType::Ref(r) if r == wasmparser::RefType::FUNCREF => Self::FuncRef,
            wasmparser::ValType::Ref(r) if r == wasmparser::RefType::EXTERNREF => Self::ExternRef,
            wasmparser::ValType::Ref(r) => return Err(format!("unsupported value type `{r}`")),
        })
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::V128 => "v128",
            Self::FuncRef => "funcref",
            Self::ExternRef => "externref",
        })
    }
}

/// A function signature: parameter and result types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FuncSig {
    /// Parameter types, in order.
    pub params: Vec<ValType>,
    /// Result types, in order.
    pub results: Vec<ValType>,
}

impl FuncSig {
    /// Converts a parsed function type.
    pub(crate) fn from_wasm(ty: &wasmparser::FuncType) -> Result<Self, String> {
        let conv = |tys: &[wasmparser::ValType]| {
            tys.iter()
                .map(|t| ValType::from_wasm(*t))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            params: conv(ty.params())?,
            results: conv(ty.results())?,
        })
    }
}

/// Prints like `(i32, i32) -> i32`; no results print as `-> ()`, several as `-> (i32, i64)`.
impl fmt::Display for FuncSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, tys: &[ValType]| -> fmt::Result {
            f.write_str("(")?;
            for (i, t) in tys.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            f.write_str(")")
        };
        list(f, &self.params)?;
        f.write_str(" -> ")?;
        match self.results.as_slice() {
            [one] => write!(f, "{one}"),
            many => list(f, many),
        }
    }
}

/// One defined kernel function and its slot in the ftrace table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtraceEntry {
    /// Index of the function in the kernel module's function index space.
    pub func_index: u32,
    /// Raw name, as in the name section (mangled); `func<index>` when the function has none.
    pub name: String,
    /// The function's slot: its index in table 0, and its kallsyms address.
    pub slot: u32,
    /// Calls to this function stay direct and it cannot be patched.
    pub notrace: bool,
    /// The function's signature.
    pub sig: FuncSig,
}

/// The slot assignment of an instrumented kernel.
///
/// Table 0 holds `2 * nr_slots` entries: slot `s` is the live entry, `s + nr_slots` the original.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FtraceMap {
    /// Number of slots; the orig entry of slot `s` is at `s + nr_slots`.
    pub nr_slots: u32,
    /// One entry per defined function, in function index order.
    pub entries: Vec<FtraceEntry>,
}

impl FtraceMap {
    /// Reads the map back from the `klp.ftrace` section of an instrumented kernel, and checks it
    /// against the kernel: see the errors.
    ///
    /// # Errors
    ///
    /// [`InstrumentError::NotInstrumented`] if there is no `klp.ftrace` section;
    /// [`InstrumentError::Parse`] or [`InstrumentError::Feature`] if the module does not validate
    /// with [`super::FEATURES`]; [`InstrumentError::Malformed`] if the section cannot be decoded
    /// or disagrees with the module (an entry that is not a defined function, a slot that is 0,
    /// not below `nr_slots` or taken twice, more than 2^20 slots, a table 0 that does not hold
    /// each function at its slot and at its orig entry); and [`InstrumentError::Unsupported`] or
    /// [`InstrumentError::Unhookable`] for what [`super::instrument`] refuses.
    pub fn from_instrumented(wasm: &[u8]) -> Result<Self, InstrumentError> {
        super::kernel::Kernel::parse(wasm)?.ftrace_map()
    }

    /// The slot of the function with index `func_index`, if it is a defined function.
    pub fn slot_of(&self, func_index: u32) -> Option<u32> {
        self.entry_of(func_index).map(|e| e.slot)
    }

    /// The entry of the function with index `func_index`.
    pub fn entry_of(&self, func_index: u32) -> Option<&FtraceEntry> {
        self.entries
            .binary_search_by_key(&func_index, |e| e.func_index)
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The entry whose slot is `slot` (a linear search).
    pub fn entry_by_slot(&self, slot: u32) -> Option<&FtraceEntry> {
        self.entries.iter().find(|e| e.slot == slot)
    }

    /// Encodes the map as the payload of a `klp.ftrace` section.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 24);
        FTRACE_VERSION.encode(&mut out);
        self.nr_slots.encode(&mut out);
        // The entry count fits: the pass refuses more than `MAX_SLOTS` slots.
        u32::try_from(self.entries.len())
            .unwrap_or(u32::MAX)
            .encode(&mut out);
        for e in &self.entries {
            e.func_index.encode(&mut out);
            e.slot.encode(&mut out);
            out.push(if e.notrace { FLAG_NOTRACE } else { 0 });
            e.name.as_str().encode(&mut out);
        }
        out
    }
}

fn malformed(msg: String) -> InstrumentError {
    InstrumentError::Malformed(msg)
}

/// Decodes a `klp.ftrace` payload whose entries must be functions of `defined`; `sig_of`
/// supplies each function's signature.
///
/// Every number is checked: `nr_slots` is at most [`MAX_SLOTS`] (so `slot + nr_slots` fits),
/// the count at most the number of defined functions, function indices increase within
/// `defined`, slots are distinct, not 0 (NULL) and below `nr_slots`, and flags are known.
pub(super) fn decode(
    data: &[u8],
    offset: usize,
    defined: Range<u32>,
    sig_of: impl Fn(u32) -> Result<FuncSig, InstrumentError>,
) -> Result<FtraceMap, InstrumentError> {
    let mut r = BinaryReader::new(data, offset);
    let bad = |e: wasmparser::BinaryReaderError| malformed(format!("{FTRACE_SECTION}: {e}"));
    let version = r.read_var_u32().map_err(bad)?;
    if version != FTRACE_VERSION {
        return Err(malformed(format!(
            "{FTRACE_SECTION}: unsupported version {version}"
        )));
    }
    let nr_slots = r.read_var_u32().map_err(bad)?;
    if nr_slots > MAX_SLOTS {
        return Err(malformed(format!(
            "{FTRACE_SECTION}: {nr_slots} slots exceed the limit of {MAX_SLOTS}"
        )));
    }
    let count = r.read_var_u32().map_err(bad)?;
    let nr_defined = defined.end.saturating_sub(defined.start);
    if count > nr_defined {
        return Err(malformed(format!(
            "{FTRACE_SECTION}: {count} entries, but the kernel defines {nr_defined} functions"
        )));
    }
    let mut entries: Vec<FtraceEntry> = Vec::with_capacity(count as usize);
    let mut taken = HashSet::with_capacity(count as usize);
    for _ in 0..count {
        let func_index = r.read_var_u32().map_err(bad)?;
        let slot = r.read_var_u32().map_err(bad)?;
        let flags = r.read_u8().map_err(bad)?;
        let name = r.read_unlimited_string().map_err(bad)?.to_string();
        if !defined.contains(&func_index) {
            return Err(malformed(format!(
                "{FTRACE_SECTION}: `{name}` is function {func_index}, not one of the defined \
                 functions {}..{}",
                defined.start, defined.end
            )));
        }
        if entries.last().is_some_and(|e| e.func_index >= func_index) {
            return Err(malformed(format!(
                "{FTRACE_SECTION}: entries not in function index order"
            )));
        }
        if slot == 0 || slot >= nr_slots {
            return Err(malformed(format!(
                "{FTRACE_SECTION}: slot {slot} of `{name}` is not in 1..{nr_slots}"
            )));
        }
        if !taken.insert(slot) {
            return Err(malformed(format!(
                "{FTRACE_SECTION}: slot {slot} of `{name}` is taken twice"
            )));
        }
        if flags & !FLAG_NOTRACE != 0 {
            return Err(malformed(format!(
                "{FTRACE_SECTION}: unknown flags {flags:#04x} for `{name}`"
            )));
        }
        entries.push(FtraceEntry {
            func_index,
            name,
            slot,
            notrace: flags & FLAG_NOTRACE != 0,
            sig: sig_of(func_index)?,
        });
    }
    if !r.eof() {
        return Err(malformed(format!("{FTRACE_SECTION}: trailing bytes")));
    }
    Ok(FtraceMap { nr_slots, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(params: &[ValType], results: &[ValType]) -> FuncSig {
        FuncSig {
            params: params.to_vec(),
            results: results.to_vec(),
        }
    }

    #[test]
    fn func_sig_displays_like_wat() {
        use ValType::*;
        assert_eq!(sig(&[I32, I32], &[I32]).to_string(), "(i32, i32) -> i32");
        assert_eq!(sig(&[], &[]).to_string(), "() -> ()");
        assert_eq!(sig(&[F64], &[I32, I64]).to_string(), "(f64) -> (i32, i64)");
    }

    #[test]
    fn ftrace_section_roundtrips() {
        let map = FtraceMap {
            nr_slots: 4,
            entries: vec![
                FtraceEntry {
                    func_index: 1,
                    name: "a".into(),
                    slot: 3,
                    notrace: false,
                    sig: FuncSig::default(),
                },
                FtraceEntry {
                    func_index: 2,
                    name: "klp_b".into(),
                    slot: 1,
                    notrace: true,
                    sig: FuncSig::default(),
                },
            ],
        };
        let bytes = map.encode();
        let back = decode(&bytes, 0, 0..4, |_| Ok(FuncSig::default())).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.slot_of(2), Some(1));
        assert_eq!(back.entry_by_slot(3).map(|e| e.name.as_str()), Some("a"));
        assert_eq!(back.slot_of(0), None);
    }

    #[test]
    fn truncated_ftrace_section_is_an_error() {
        let map = FtraceMap {
            nr_slots: 2,
            entries: vec![FtraceEntry {
                func_index: 0,
                name: "f".into(),
                slot: 1,
                notrace: false,
                sig: FuncSig::default(),
            }],
        };
        let bytes = map.encode();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], 0, 0..4, |_| Ok(FuncSig::default())).is_err());
        }
    }

    /// An instrumented-looking kernel: an import, `a` and `b` at slots 1 and 2 of 3, their orig
    /// entries at 4 and 5, and `items` added.
    fn kernel(table: u32, origs: &str, items: &str) -> String {
        format!(
            r#"(module (import "klp" "clock" (func $clock)) (table {table} funcref)
                (func $a) (func $b) {items}
                (elem (i32.const 1) func $a $b) (elem (i32.const 4) func {origs}))"#
        )
    }

    fn entry(func_index: u32, name: &str, slot: u32) -> FtraceEntry {
        FtraceEntry {
            func_index,
            name: name.into(),
            slot,
            notrace: false,
            sig: FuncSig::default(),
        }
    }

    fn good_map() -> FtraceMap {
        FtraceMap {
            nr_slots: 3,
            entries: vec![entry(1, "a", 1), entry(2, "b", 2)],
        }
    }

    /// `wat` with a `klp.ftrace` section holding `payload` appended, read back.
    fn read_back(wat: &str, payload: &[u8]) -> Result<FtraceMap, InstrumentError> {
        let mut wasm = wat::parse_str(wat).unwrap();
        let mut section = Vec::new();
        FTRACE_SECTION.encode(&mut section);
        section.extend_from_slice(payload);
        wasm.push(0); // custom section
        section.len().encode(&mut wasm);
        wasm.extend_from_slice(&section);
        FtraceMap::from_instrumented(&wasm)
    }

    fn error(wat: &str, payload: &[u8]) -> String {
        read_back(wat, payload).unwrap_err().to_string()
    }

    #[test]
    fn ftrace_map_is_checked_against_its_kernel() {
        let good = kernel(6, "$a $b", "");
        assert_eq!(read_back(&good, &good_map().encode()).unwrap(), good_map());
        assert_eq!(
            error(&kernel(5, "$a", ""), &good_map().encode()),
            "malformed kernel: klp.ftrace: table 0 has 5 entries, fewer than 2 * nr_slots (6)"
        );
        assert_eq!(
            error(&kernel(6, "$b $a", ""), &good_map().encode()),
            "malformed kernel: klp.ftrace: table entry 4 does not hold `a` (function 1)"
        );
        let two_tables = kernel(6, "$a $b", "(table 1 funcref)");
        assert!(
            error(&two_tables, &good_map().encode()).contains("2 tables"),
            "a second table is refused as when instrumenting"
        );
    }

    #[test]
    fn corrupt_ftrace_numbers_are_errors() {
        let good = kernel(6, "$a $b", "");
        let prefix = "malformed kernel: klp.ftrace: ";
        type Corrupt = fn(&mut FtraceMap);
        let cases: [(Corrupt, &str); 8] = [
            (
                |m| m.nr_slots = u32::MAX,
                "4294967295 slots exceed the limit of 1048576",
            ),
            (
                |m| m.entries[0].func_index = 0,
                "`a` is function 0, not one of the defined functions 1..3",
            ),
            (
                |m| m.entries[1].func_index = 7,
                "`b` is function 7, not one of the defined functions 1..3",
            ),
            (
                |m| m.entries.swap(0, 1),
                "entries not in function index order",
            ),
            (|m| m.entries[0].slot = 0, "slot 0 of `a` is not in 1..3"),
            (|m| m.entries[1].slot = 3, "slot 3 of `b` is not in 1..3"),
            (|m| m.entries[1].slot = 1, "slot 1 of `b` is taken twice"),
            (
                |m| m.entries.push(entry(3, "c", 3)),
                "3 entries, but the kernel defines 2 functions",
            ),
        ];
        for (corrupt, msg) in cases {
            let mut map = good_map();
            corrupt(&mut map);
            assert_eq!(error(&good, &map.encode()), format!("{prefix}{msg}"));
        }
        // Hand-made: version 1, 3 slots, 1 entry: function 1, slot 1, flags 0x80, name "a".
        assert_eq!(
            error(&good, &[1, 3, 1, 1, 1, 0x80, 1, b'a']),
            format!("{prefix}unknown flags 0x80 for `a`")
        );
        assert_eq!(
            error(&good, &[1, 3, 0, 0]),
            format!("{prefix}trailing bytes")
        );
        // Decoding errors name the section too (offsets are in the file).
        let overlong = error(&good, &[1, 3, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(
            overlong.starts_with(&format!("{prefix}invalid var_u32: integer too large")),
            "{overlong}"
        );
        let not_utf8 = error(&good, &[1, 3, 1, 1, 1, 0, 1, 0xc0]);
        assert!(
            not_utf8.starts_with(&format!("{prefix}malformed UTF-8 encoding")),
            "{not_utf8}"
        );
    }

    #[test]
    fn code_of_an_instrumented_kernel_is_checked_like_the_pass_checks_it() {
        let writer = kernel(
            6,
            "$a $b",
            "(func $w i32.const 1 ref.null func table.set 0)",
        );
        assert_eq!(
            error(&writer, &good_map().encode()),
            "function `w` uses `table.set 0`, which writes the ftrace table behind the host's back"
        );
        let leak = kernel(
            6,
            "$a $b",
            "(func $leak (result funcref) ref.func $b) (elem declare func $b)",
        );
        assert_eq!(
            error(&leak, &good_map().encode()),
            "function `leak` uses `ref.func 2`, which makes a reference to a traceable function \
             that bypasses its ftrace slot"
        );
        let mut map = good_map();
        map.entries[1].notrace = true;
        assert_eq!(read_back(&leak, &map.encode()).unwrap(), map);
    }
}
