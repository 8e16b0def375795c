//! The ftrace map: which slot of the ftrace table belongs to which kernel function (`klp.ftrace`).

use std::fmt;

use wasm_encoder::Encode;
use wasmparser::{BinaryReader, Parser, Payload, TypeRef};

use super::InstrumentError;

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
    /// Reads the map back from the `klp.ftrace` section of an instrumented kernel.
    ///
    /// # Errors
    ///
    /// [`InstrumentError::NotInstrumented`] if there is no `klp.ftrace` section, and
    /// [`InstrumentError::Malformed`] or [`InstrumentError::Parse`] if the module or the section
    /// cannot be decoded.
    pub fn from_instrumented(wasm: &[u8]) -> Result<Self, InstrumentError> {
        let mut types: Vec<Option<wasmparser::FuncType>> = Vec::new();
        let mut func_types: Vec<u32> = Vec::new();
        let mut section = None;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload? {
                Payload::TypeSection(r) => {
                    for ty in r.into_iter_err_on_gc_types() {
                        types.push(Some(ty?));
                    }
                }
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        if let TypeRef::Func(t) = imp?.ty {
                            func_types.push(t);
                        }
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        func_types.push(t?);
                    }
                }
                Payload::CustomSection(c) if c.name() == FTRACE_SECTION => {
                    section = Some((c.data(), c.data_offset()));
                }
                _ => {}
            }
        }
        let (data, offset) = section.ok_or(InstrumentError::NotInstrumented)?;
        let sig_of = |func_index: u32| -> Result<FuncSig, InstrumentError> {
            let ty = func_types
                .get(func_index as usize)
                .and_then(|t| types.get(*t as usize))
                .and_then(Option::as_ref)
                .ok_or_else(|| malformed(format!("klp.ftrace: no function {func_index}")))?;
            FuncSig::from_wasm(ty).map_err(InstrumentError::Malformed)
        };
        decode(data, offset, sig_of)
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

/// Decodes a `klp.ftrace` payload; `sig_of` supplies each function's signature.
fn decode(
    data: &[u8],
    offset: usize,
    sig_of: impl Fn(u32) -> Result<FuncSig, InstrumentError>,
) -> Result<FtraceMap, InstrumentError> {
    let mut r = BinaryReader::new(data, offset);
    let version = r.read_var_u32()?;
    if version != FTRACE_VERSION {
        return Err(malformed(format!(
            "klp.ftrace: unsupported version {version}"
        )));
    }
    let nr_slots = r.read_var_u32()?;
    let count = r.read_var_u32()?;
    let mut entries: Vec<FtraceEntry> = Vec::new();
    for _ in 0..count {
        let func_index = r.read_var_u32()?;
        let slot = r.read_var_u32()?;
        let flags = r.read_u8()?;
        let name = r.read_unlimited_string()?.to_string();
        if slot >= nr_slots {
            return Err(malformed(format!(
                "klp.ftrace: slot {slot} of `{name}` is not below nr_slots {nr_slots}"
            )));
        }
        if entries.last().is_some_and(|e| e.func_index >= func_index) {
            return Err(malformed(
                "klp.ftrace: entries not in function index order".into(),
            ));
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
        return Err(malformed("klp.ftrace: trailing bytes".into()));
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
        let back = decode(&bytes, 0, |_| Ok(FuncSig::default())).unwrap();
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
            assert!(decode(&bytes[..len], 0, |_| Ok(FuncSig::default())).is_err());
        }
    }
}
