//! kallsyms: the kernel's and modules' symbols (functions by slot, data by address), with sympos.
//!
//! Built from the name section and the `linking` symbol table of a kernel linked with
//! `--emit-relocs`; an instrumented kernel carries the same table in its `klp.kallsyms` section.
//! Names are shortened as `/proc/kallsyms` shows C names: Rust paths are demangled and only the
//! last segment is kept (`k::a::helper` → `helper`), so duplicates are told apart by `sympos`.

use std::collections::HashMap;
use std::fmt::Write as _;

use wasm_encoder::Encode;
use wasmparser::BinaryReader;

use crate::instrument::kernel::Kernel;
use crate::instrument::{FtraceMap, InstrumentError};
use crate::object::linking::SymTarget;

/// Name of the custom section holding the kernel's symbol table in an instrumented kernel.
pub const KALLSYMS_SECTION: &str = "klp.kallsyms";

/// Version of the `klp.kallsyms` encoding.
const KALLSYMS_VERSION: u32 = 1;

/// The object name that means the kernel itself.
pub const VMLINUX: &str = "vmlinux";

/// What a symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymKind {
    /// A function; its address is its slot in the ftrace table.
    Func,
    /// Initialized data (`.data`, `.rodata`).
    Data,
    /// Zero-initialized data (`.bss`).
    Bss,
}

/// One kallsyms entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Short name: demangled, last path segment, no hash or LLVM suffix.
    pub name: String,
    /// Function, data or bss.
    pub kind: SymKind,
    /// Global (or weak) binding; `false` for local (`static`) symbols.
    pub global: bool,
    /// Slot for functions, linear address for data.
    pub addr: u32,
    /// Size in bytes (the body size for functions).
    pub size: u32,
    /// 1-based position among the symbols of the same name in the same object, by address.
    pub sympos: u32,
    /// The module that defines it; `None` for the kernel.
    pub module: Option<String>,
    /// The function's index in its wasm module (functions only).
    pub func_index: Option<u32>,
}

impl Symbol {
    /// The `/proc/kallsyms` type letter: `t`/`T`, `d`/`D`, `b`/`B`.
    pub fn type_char(&self) -> char {
        let c = match self.kind {
            SymKind::Func => 't',
            SymKind::Data => 'd',
            SymKind::Bss => 'b',
        };
        if self.global {
            c.to_ascii_uppercase()
        } else {
            c
        }
    }
}

/// Why a lookup failed, or why a kernel's symbols could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KallsymsError {
    /// No symbol of that name in that object (or no such object).
    #[error("symbol not found")]
    NotFound,
    /// sympos 0 asks for a unique symbol, but the name occurs several times.
    #[error("symbol is ambiguous: {count} matches")]
    Ambiguous {
        /// How many symbols have the name.
        count: u32,
    },
    /// The name exists, but not at the requested position.
    #[error("no symbol at that position: {count} matches")]
    NoSuchPosition {
        /// How many symbols have the name.
        count: u32,
    },
    /// The kernel could not be read.
    #[error(transparent)]
    Kernel(#[from] InstrumentError),
}

/// The symbol table of the kernel and its loaded modules.
#[derive(Debug, Clone, Default)]
pub struct Kallsyms {
    /// Kernel symbols, sorted by address.
    kernel: Vec<Symbol>,
    /// Modules in load order, each sorted by address.
    modules: Vec<(String, Vec<Symbol>)>,
}

impl Kallsyms {
    /// Reads the kernel's symbols from a raw kernel (with a `linking` section) or an instrumented
    /// one (with `klp.kallsyms`). Function addresses are the slots [`crate::instrument`] assigns.
    ///
    /// # Errors
    ///
    /// [`KallsymsError::Kernel`] if the module is invalid or needs a feature the ftrace hook
    /// does not handle, its metadata cannot be decoded, or (instrumented) a symbol disagrees with
    /// the ftrace map (a function's address is not its slot, data ends beyond 4 GiB).
    pub fn from_kernel(wasm: &[u8]) -> Result<Self, KallsymsError> {
        let k = Kernel::parse(wasm)?;
        let kernel = if k.is_instrumented() {
            let (data, offset) = k.kallsyms_section.ok_or_else(|| {
                InstrumentError::Malformed(format!("no {KALLSYMS_SECTION} section"))
            })?;
            let mut syms = decode_symbols(data, offset)?;
            check_symbols(&syms, &k.ftrace_map()?)?;
            finish(&mut syms, None);
            syms
        } else {
            let plan = k.plan(&[])?;
            kernel_symbols(&k, &plan.map)?
        };
        Ok(Self {
            kernel,
            modules: Vec::new(),
        })
    }

    /// Finds `name` in `obj` (`None` or `"vmlinux"` for the kernel, else a module name).
    ///
    /// `sympos` 0 means the name must be unique; `n > 0` picks the n-th by address.
    ///
    /// # Errors
    ///
    /// [`KallsymsError::NotFound`], [`KallsymsError::Ambiguous`] (sympos 0, several matches),
    /// [`KallsymsError::NoSuchPosition`].
    pub fn lookup(
        &self,
        obj: Option<&str>,
        name: &str,
        sympos: u32,
    ) -> Result<&Symbol, KallsymsError> {
        let syms = self.object(obj).ok_or(KallsymsError::NotFound)?;
        let mut count = 0u32;
        let mut found = None;
        for s in syms.iter().filter(|s| s.name == name) {
            count += 1;
            if sympos == 0 || s.sympos == sympos {
                found.get_or_insert(s);
            }
        }
        match (found, count) {
            (_, 0) => Err(KallsymsError::NotFound),
            (Some(_), c) if sympos == 0 && c > 1 => Err(KallsymsError::Ambiguous { count: c }),
            (Some(s), _) => Ok(s),
            (None, count) => Err(KallsymsError::NoSuchPosition { count }),
        }
    }

    /// A global symbol of the kernel or, failing that, of a module (in load order).
    pub fn lookup_global(&self, name: &str) -> Option<&Symbol> {
        self.kernel
            .iter()
            .chain(self.modules.iter().flat_map(|(_, s)| s))
            .find(|s| s.global && s.name == name)
    }

    /// Adds (or replaces) a module's symbols; sets their `module` and recomputes `sympos`.
    pub fn add_module(&mut self, name: &str, mut symbols: Vec<Symbol>) {
        finish(&mut symbols, Some(name));
        self.remove_module(name);
        self.modules.push((name.to_string(), symbols));
    }

    /// Removes a module's symbols; returns whether it had any entry.
    pub fn remove_module(&mut self, name: &str) -> bool {
        let before = self.modules.len();
        self.modules.retain(|(n, _)| n != name);
        self.modules.len() != before
    }

    /// The function (kernel or module) whose slot is `slot`.
    pub fn func_by_slot(&self, slot: u32) -> Option<&Symbol> {
        std::iter::once(&self.kernel)
            .chain(self.modules.iter().map(|(_, s)| s))
            .find_map(|syms| {
                let from = syms.partition_point(|s| s.addr < slot);
                syms[from..]
                    .iter()
                    .take_while(|s| s.addr == slot)
                    .find(|s| s.kind == SymKind::Func)
            })
    }

    /// All symbols: the kernel's by address, then each module's by address, in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Symbol> {
        self.kernel
            .iter()
            .chain(self.modules.iter().flat_map(|(_, s)| s))
    }

    /// The table in `/proc/kallsyms` form: `%016x %c %s`, plus `\t[module]` for modules.
    pub fn format(&self) -> String {
        let mut out = String::new();
        for s in self.iter() {
            let _ = write!(out, "{:016x} {} {}", s.addr, s.type_char(), s.name);
            if let Some(m) = &s.module {
                let _ = write!(out, "\t[{m}]");
            }
            out.push('\n');
        }
        out
    }

    fn object(&self, obj: Option<&str>) -> Option<&[Symbol]> {
        match obj {
            None | Some(VMLINUX) => Some(&self.kernel),
            Some(m) => self
                .modules
                .iter()
                .find(|(n, _)| n == m)
                .map(|(_, s)| s.as_slice()),
        }
    }
}

/// The kallsyms name of a raw symbol name, or `None` for compiler-internal `.L*` symbols.
///
/// Rust-mangled names are demangled, the hash dropped and only the last path segment kept;
/// LLVM suffixes (`.0`, `.llvm.123`) are dropped; other names stay as they are.
pub fn symbol_name(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.starts_with(".L") {
        return None;
    }
    let name = match rustc_demangle::try_demangle(raw) {
        Ok(d) => last_segment(&format!("{d:#}")).to_string(),
        Err(_) => raw.to_string(),
    };
    Some(strip_suffix(&name).to_string())
}

/// The last `::`-separated segment outside `<>`, `()` and `[]`.
fn last_segment(path: &str) -> &str {
    let (mut depth, mut start) = (0i32, 0);
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' | b'{' => depth += 1,
            b'>' | b')' | b']' | b'}' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    &path[start..]
}

/// Drops `.llvm.*` and trailing `.N` suffixes.
fn strip_suffix(name: &str) -> &str {
    let mut name = match name.find(".llvm.") {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    };
    while let Some((head, tail)) = name.rsplit_once('.') {
        if head.is_empty() || tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        name = head;
    }
    name
}

/// Sorts by address, sets `module` and assigns `sympos`.
pub(crate) fn finish(syms: &mut [Symbol], module: Option<&str>) {
    syms.sort_by(|a, b| (a.addr, &a.name).cmp(&(b.addr, &b.name)));
    let mut seen: HashMap<String, u32> = HashMap::new();
    for s in syms.iter_mut() {
        let n = seen.entry(s.name.clone()).or_default();
        *n += 1;
        s.sympos = *n;
        s.module = module.map(str::to_string);
    }
}

/// Whether a data segment name is zero-initialized data.
pub(crate) fn is_bss(segment: &str) -> bool {
    segment.starts_with(".bss") || segment.starts_with(".tbss")
}

/// The kernel's symbols: functions at their slots in `map`, data at their linear addresses.
///
/// Functions without a symbol table entry come from the name section; they count as global
/// unless their name is Rust-mangled.
pub(crate) fn kernel_symbols(
    k: &Kernel<'_>,
    map: &FtraceMap,
) -> Result<Vec<Symbol>, InstrumentError> {
    let mut out = Vec::new();
    let mut covered = vec![false; map.entries.len()];
    let nimp = k.num_imported_funcs;
    let body_size = |f: u32| {
        f.checked_sub(nimp)
            .and_then(|i| k.bodies.get(i as usize))
            .map_or(0, |b| b.range().len() as u32)
    };
    let func = |name: String, global: bool, f: u32, slot: u32| Symbol {
        name,
        kind: SymKind::Func,
        global,
        addr: slot,
        size: body_size(f),
        sympos: 0,
        module: None,
        func_index: Some(f),
    };
    for sym in k.linking.iter().flat_map(|l| &l.symbols) {
        if !sym.defined() {
            continue;
        }
        let Some(name) = sym.name.and_then(symbol_name) else {
            continue;
        };
        match sym.target {
            SymTarget::Func(f) => {
                let Some(slot) = map.slot_of(f) else { continue };
                if let Some(c) = f
                    .checked_sub(nimp)
                    .and_then(|i| covered.get_mut(i as usize))
                {
                    *c = true;
                }
                out.push(func(name, sym.global(), f, slot));
            }
            SymTarget::Data(Some((seg, offset, size))) => {
                let Some(addr) = k
                    .data_segs
                    .get(seg as usize)
                    .filter(|s| offset.checked_add(size).is_some_and(|end| end <= s.len))
                    .and_then(|s| s.addr)
                else {
                    continue;
                };
                let seg_name = k
                    .linking
                    .as_ref()
                    .and_then(|l| l.segments.get(seg as usize))
                    .map(|s| s.name)
                    .or_else(|| k.data_names.get(&seg).copied())
                    .unwrap_or_default();
                let addr = addr
                    .checked_add(offset)
                    .filter(|a| within_4gib(*a, size))
                    .ok_or_else(|| {
                        InstrumentError::Malformed(format!(
                            "linking section: data symbol `{name}` (segment {seg} at {addr:#x}, \
                             offset {offset}, size {size}) lies beyond 4 GiB"
                        ))
                    })?;
                out.push(Symbol {
                    name,
                    kind: if is_bss(seg_name) {
                        SymKind::Bss
                    } else {
                        SymKind::Data
                    },
                    global: sym.global(),
                    addr,
                    size,
                    sympos: 0,
                    module: None,
                    func_index: None,
                });
            }
            _ => {}
        }
    }
    for (e, covered) in map.entries.iter().zip(covered) {
        if covered {
            continue;
        }
        let Some(name) = symbol_name(&e.name) else {
            continue;
        };
        let global = rustc_demangle::try_demangle(&e.name).is_err();
        out.push(func(name, global, e.func_index, e.slot));
    }
    finish(&mut out, None);
    Ok(out)
}

/// Encodes symbols as the payload of a `klp.kallsyms` section.
pub(crate) fn encode_symbols(syms: &[Symbol]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + syms.len() * 24);
    KALLSYMS_VERSION.encode(&mut out);
    syms.len().encode(&mut out);
    for s in syms {
        s.name.as_str().encode(&mut out);
        out.push(match s.kind {
            SymKind::Func => 0,
            SymKind::Data => 1,
            SymKind::Bss => 2,
        });
        out.push(u8::from(s.global));
        s.addr.encode(&mut out);
        s.size.encode(&mut out);
        s.func_index
            .map_or(0, |f| f.wrapping_add(1))
            .encode(&mut out);
    }
    out
}

/// Decodes a `klp.kallsyms` payload starting at `offset` in the file.
fn decode_symbols(data: &[u8], offset: usize) -> Result<Vec<Symbol>, InstrumentError> {
    let mut r = BinaryReader::new(data, offset);
    let bad = |e: wasmparser::BinaryReaderError| {
        InstrumentError::Malformed(format!("{KALLSYMS_SECTION}: {e}"))
    };
    let version = r.read_var_u32().map_err(bad)?;
    if version != KALLSYMS_VERSION {
        return Err(InstrumentError::Malformed(format!(
            "{KALLSYMS_SECTION}: unsupported version {version}"
        )));
    }
    let count = r.read_var_u32().map_err(bad)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let name = r.read_unlimited_string().map_err(bad)?.to_string();
        let kind = match r.read_u8().map_err(bad)? {
            0 => SymKind::Func,
            1 => SymKind::Data,
            2 => SymKind::Bss,
            k => {
                return Err(InstrumentError::Malformed(format!(
                    "{KALLSYMS_SECTION}: unknown symbol kind {k}"
                )));
            }
        };
        let global = match r.read_u8().map_err(bad)? {
            0 => false,
            1 => true,
            g => {
                return Err(InstrumentError::Malformed(format!(
                    "{KALLSYMS_SECTION}: binding {g} of `{name}` is neither local (0) nor global (1)"
                )));
            }
        };
        let addr = r.read_var_u32().map_err(bad)?;
        let size = r.read_var_u32().map_err(bad)?;
        let func_index = r.read_var_u32().map_err(bad)?.checked_sub(1);
        out.push(Symbol {
            name,
            kind,
            global,
            addr,
            size,
            sympos: 0,
            module: None,
            func_index,
        });
    }
    if !r.eof() {
        return Err(InstrumentError::Malformed(format!(
            "{KALLSYMS_SECTION}: trailing bytes"
        )));
    }
    Ok(out)
}

/// Whether `size` bytes from `addr` end within the 32-bit address space.
fn within_4gib(addr: u32, size: u32) -> bool {
    u64::from(addr) + u64::from(size) <= 1 << 32
}

/// Checks decoded `klp.kallsyms` symbols against the kernel's ftrace map: a function symbol is
/// at its function's slot, a data symbol names no function and ends within 4 GiB.
fn check_symbols(syms: &[Symbol], map: &FtraceMap) -> Result<(), InstrumentError> {
    for s in syms {
        let ok = match (s.kind, s.func_index) {
            (SymKind::Func, Some(f)) => map.slot_of(f) == Some(s.addr),
            (SymKind::Data | SymKind::Bss, None) => within_4gib(s.addr, s.size),
            _ => false,
        };
        if !ok {
            let what = s
                .func_index
                .map_or_else(|| "no function".to_string(), |f| format!("function {f}"));
            return Err(InstrumentError::Malformed(format!(
                "{KALLSYMS_SECTION}: symbol `{}` ({:?} at {:#x}, size {}, {what}) does not match \
                 the kernel",
                s.name, s.kind, s.addr, s.size
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, kind: SymKind, global: bool, addr: u32) -> Symbol {
        Symbol {
            name: name.into(),
            kind,
            global,
            addr,
            size: 4,
            sympos: 0,
            module: None,
            func_index: None,
        }
    }

    #[test]
    fn rust_names_are_demangled_to_their_last_segment() {
        assert_eq!(
            symbol_name("_ZN1k1a6helper17hcdb7061e983b62bfE").as_deref(),
            Some("helper")
        );
        assert_eq!(
            symbol_name("_ZN1k1a7COUNTER17h104617c8877146ecE.0").as_deref(),
            Some("COUNTER")
        );
        assert_eq!(
            symbol_name("_ZN1k4show17h0123456789abcdefE.llvm.1234567").as_deref(),
            Some("show")
        );
        assert_eq!(
            symbol_name(
                "_ZN4core3ptr42drop_in_place$LT$alloc..string..String$GT$17h0123456789abcdefE"
            )
            .as_deref(),
            Some("drop_in_place<alloc::string::String>")
        );
        assert_eq!(
            symbol_name(
                "_ZN45_$LT$k..Foo$u20$as$u20$core..fmt..Display$GT$3fmt17h0123456789abcdefE"
            )
            .as_deref(),
            Some("fmt")
        );
    }

    #[test]
    fn plain_names_stay_and_internal_labels_are_skipped() {
        assert_eq!(symbol_name("printk").as_deref(), Some("printk"));
        assert_eq!(
            symbol_name("cmdline_proc_show").as_deref(),
            Some("cmdline_proc_show")
        );
        assert_eq!(symbol_name("counter.12").as_deref(), Some("counter"));
        assert_eq!(
            symbol_name(".Lanon.c448d17477692149050223ba41523510.0"),
            None
        );
        assert_eq!(symbol_name(".L.str"), None);
        assert_eq!(symbol_name(""), None);
    }

    fn table() -> Kallsyms {
        let mut kernel = vec![
            sym("helper", SymKind::Func, false, 2),
            sym("helper", SymKind::Func, false, 1),
            sym("run", SymKind::Func, true, 3),
            sym("COUNTER", SymKind::Data, false, 0x100008),
            sym("ZEROS", SymKind::Bss, true, 0x100010),
        ];
        finish(&mut kernel, None);
        Kallsyms {
            kernel,
            modules: Vec::new(),
        }
    }

    #[test]
    fn duplicate_local_names_get_sympos_in_address_order() {
        let ks = table();
        assert!(matches!(
            ks.lookup(None, "helper", 0),
            Err(KallsymsError::Ambiguous { count: 2 })
        ));
        assert_eq!(ks.lookup(None, "helper", 1).unwrap().addr, 1);
        assert_eq!(ks.lookup(Some("vmlinux"), "helper", 2).unwrap().addr, 2);
        assert!(matches!(
            ks.lookup(None, "helper", 3),
            Err(KallsymsError::NoSuchPosition { count: 2 })
        ));
        assert_eq!(ks.lookup(None, "run", 0).unwrap().addr, 3);
        assert_eq!(ks.lookup(None, "run", 1).unwrap().addr, 3);
        assert!(matches!(
            ks.lookup(None, "nope", 0),
            Err(KallsymsError::NotFound)
        ));
        assert!(matches!(
            ks.lookup(Some("mod"), "run", 0),
            Err(KallsymsError::NotFound)
        ));
    }

    #[test]
    fn modules_are_added_looked_up_and_removed() {
        let mut ks = table();
        ks.add_module(
            "m",
            vec![
                sym("init_module", SymKind::Func, true, 10),
                sym("helper", SymKind::Func, false, 11),
                sym("state", SymKind::Bss, false, 0x200000),
            ],
        );
        let h = ks.lookup(Some("m"), "helper", 0).unwrap();
        assert_eq!((h.addr, h.sympos, h.module.as_deref()), (11, 1, Some("m")));
        assert_eq!(ks.lookup_global("init_module").unwrap().addr, 10);
        assert_eq!(ks.lookup_global("run").unwrap().addr, 3);
        assert!(ks.lookup_global("helper").is_none());
        assert_eq!(ks.func_by_slot(11).unwrap().name, "helper");
        assert_eq!(ks.func_by_slot(3).unwrap().name, "run");
        assert!(ks.func_by_slot(0x100008).is_none());
        assert!(ks.remove_module("m"));
        assert!(!ks.remove_module("m"));
        assert!(ks.func_by_slot(11).is_none());
    }

    #[test]
    fn format_matches_proc_kallsyms() {
        let mut ks = table();
        ks.add_module("m", vec![sym("init_module", SymKind::Func, true, 10)]);
        assert_eq!(
            ks.format(),
            "0000000000000001 t helper\n\
             0000000000000002 t helper\n\
             0000000000000003 T run\n\
             0000000000100008 d COUNTER\n\
             0000000000100010 B ZEROS\n\
             000000000000000a T init_module\t[m]\n"
        );
    }

    const RUSTC_KERNEL: &[u8] = include_bytes!("../tests/data/exp_kernel.wasm");

    #[test]
    fn rustc_kernel_symbols_have_slots_addresses_and_sympos() {
        let ks = Kallsyms::from_kernel(RUSTC_KERNEL).unwrap();
        assert_eq!(
            ks.format(),
            "0000000000000001 t helper\n\
             0000000000000002 t helper\n\
             0000000000000003 T exported_fn\n\
             0000000000000004 T run\n\
             0000000000000005 T touch\n\
             0000000000100000 d TABLE\n\
             0000000000100008 d COUNTER\n\
             000000000010000c d COUNTER\n\
             0000000000100010 b ZEROS\n"
        );
        let b_counter = ks.lookup(None, "COUNTER", 2).unwrap();
        assert_eq!(
            (b_counter.addr, b_counter.size, b_counter.global),
            (0x10000c, 4, false)
        );
        assert_eq!(ks.lookup(None, "helper", 2).unwrap().func_index, Some(1));
        assert_eq!(ks.func_by_slot(4).unwrap().name, "run");
    }

    #[test]
    fn instrumented_kernel_has_the_same_symbols() {
        let raw = Kallsyms::from_kernel(RUSTC_KERNEL).unwrap();
        let out = crate::instrument::instrument(RUSTC_KERNEL, &[]).unwrap();
        let inst = Kallsyms::from_kernel(&out.wasm).unwrap();
        assert_eq!(inst.kernel, raw.kernel);
    }

    #[test]
    fn kernel_without_linking_section_lists_functions_from_names() {
        let wasm = wat::parse_str(
            r#"(module (func $_ZN1k4priv17h0123456789abcdefE) (func $pub_fn)
                (elem declare func 0))"#,
        )
        .unwrap();
        let ks = Kallsyms::from_kernel(&wasm).unwrap();
        assert_eq!(
            ks.format(),
            "0000000000000001 t priv\n0000000000000002 T pub_fn\n"
        );
    }

    #[test]
    fn kallsyms_section_roundtrips_and_rejects_truncation() {
        let ks = table();
        let bytes = encode_symbols(&ks.kernel);
        let mut back = decode_symbols(&bytes, 0).unwrap();
        finish(&mut back, None);
        assert_eq!(back, ks.kernel);
        for len in 0..bytes.len() {
            assert!(decode_symbols(&bytes[..len], 0).is_err(), "len {len}");
        }
    }

    #[test]
    fn corrupt_kallsyms_numbers_are_errors() {
        // Version 1, one symbol "f": kind, binding, addr 1, size 2, function index + 1.
        let section = |kind: u8, binding: u8| vec![1, 1, 1, b'f', kind, binding, 1, 2, 3];
        assert!(decode_symbols(&section(0, 1), 0).is_ok());
        let err = |bytes: &[u8]| decode_symbols(bytes, 0).unwrap_err().to_string();
        assert_eq!(
            err(&section(3, 1)),
            "malformed kernel: klp.kallsyms: unknown symbol kind 3"
        );
        assert_eq!(
            err(&section(0, 2)),
            "malformed kernel: klp.kallsyms: binding 2 of `f` is neither local (0) nor global (1)"
        );
        assert_eq!(
            err(&[2, 0]),
            "malformed kernel: klp.kallsyms: unsupported version 2"
        );
        // A count far beyond the bytes that follow ends at the end of the section.
        assert_eq!(
            err(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            "malformed kernel: klp.kallsyms: unexpected end-of-file (at offset 0x6)"
        );
    }

    #[test]
    fn kallsyms_that_disagree_with_the_ftrace_map_are_errors() {
        let map = FtraceMap {
            nr_slots: 3,
            entries: vec![crate::instrument::FtraceEntry {
                func_index: 1,
                name: "f".into(),
                slot: 2,
                notrace: false,
                sig: crate::instrument::FuncSig::default(),
            }],
        };
        let func = |addr, func_index| Symbol {
            func_index,
            ..sym("f", SymKind::Func, true, addr)
        };
        assert!(check_symbols(&[func(2, Some(1))], &map).is_ok());
        for bad in [func(1, Some(1)), func(2, Some(0)), func(2, None)] {
            assert!(check_symbols(&[bad], &map).is_err());
        }
        let data = |addr, size, func_index| Symbol {
            size,
            func_index,
            ..sym("d", SymKind::Data, true, addr)
        };
        assert!(check_symbols(&[data(0x1000, 4, None)], &map).is_ok());
        assert!(check_symbols(&[data(u32::MAX - 3, 4, None)], &map).is_ok());
        let err = check_symbols(&[data(u32::MAX - 1, 4, None)], &map).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed kernel: klp.kallsyms: symbol `d` (Data at 0xfffffffe, size 4, no \
             function) does not match the kernel"
        );
        assert!(check_symbols(&[data(0x1000, 4, Some(1))], &map).is_err());
    }

    #[test]
    fn data_symbol_beyond_4_gib_is_an_error() {
        use wasm_encoder::{
            ConstExpr, DataSection, DataSymbolDefinition, LinkingSection, MemorySection,
            MemoryType, Module, SymbolTable,
        };
        let mut memory = MemorySection::new();
        memory.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(-2), [0u8; 4]);
        let mut syms = SymbolTable::new();
        let def = |offset| DataSymbolDefinition {
            index: 0,
            offset,
            size: 1,
        };
        syms.data(0, "top", Some(def(1)));
        let mut linking = LinkingSection::new();
        linking.symbol_table(&syms);
        let build = |linking: &LinkingSection| {
            let mut module = Module::new();
            module.section(&memory).section(&data).section(linking);
            module.finish()
        };
        let ks = Kallsyms::from_kernel(&build(&linking)).unwrap();
        assert_eq!(ks.lookup(None, "top", 0).unwrap().addr, u32::MAX);
        syms.data(0, "beyond", Some(def(2)));
        let mut linking = LinkingSection::new();
        linking.symbol_table(&syms);
        let err = Kallsyms::from_kernel(&build(&linking)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed kernel: linking section: data symbol `beyond` (segment 0 at \
             0xfffffffe, offset 2, size 1) lies beyond 4 GiB"
        );
    }
}
