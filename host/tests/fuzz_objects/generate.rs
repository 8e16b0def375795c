//! Relocatable objects generated from `arbitrary` choices: functions, symbols, relocations, data.
//!
//! The objects have the shape lld gives a module (host/tests/loader_fuzz.rs drives them): a
//! `linking` section with a symbol table and segment info, `reloc.CODE` and `reloc.DATA`, padded
//! 5-byte LEB relocation sites, an imported memory. Most choices are the right ones, so that
//! most objects get past the parser and exercise the linker, the resolver, the instantiation and
//! init; each can also go wrong: a relocation of another type, against another or a missing
//! symbol, at another offset, with a wild addend; a symbol with other flags or indices; a segment
//! at a wild address or alignment; an `init_module` of the wrong type, one that fails, traps or
//! spins.

use arbitrary::{Result, Unstructured};
use wasm_encoder::Encode;

/// Function types every object declares: `() -> i32`, `()`, `(i32) -> i32`, `(i32, i32) -> i32`.
const TYPES: [(&[u8], &[u8]); 4] = [
    (&[], &[0x7f]),
    (&[], &[]),
    (&[0x7f], &[0x7f]),
    (&[0x7f, 0x7f], &[0x7f]),
];
const T_INIT: u32 = 0;
const T_VOID: u32 = 1;
const T_ONE: u32 = 2;
const T_TWO: u32 = 3;

const R_FUNCTION_INDEX_LEB: u8 = 0;
const R_TABLE_INDEX_SLEB: u8 = 1;
const R_TABLE_INDEX_I32: u8 = 2;
const R_MEMORY_ADDR_SLEB: u8 = 4;
const R_MEMORY_ADDR_I32: u8 = 5;
const R_TYPE_INDEX_LEB: u8 = 6;
const R_GLOBAL_INDEX_LEB: u8 = 7;
const R_TABLE_NUMBER_LEB: u8 = 20;

/// `WASM_SYM_BINDING_WEAK`.
pub const WEAK: u32 = 0x1;
/// `WASM_SYM_BINDING_LOCAL`.
pub const LOCAL: u32 = 0x2;
/// `WASM_SYM_VISIBILITY_HIDDEN`.
pub const HIDDEN: u32 = 0x4;
/// `WASM_SYM_UNDEFINED`.
pub const UNDEFINED: u32 = 0x10;
/// `WASM_SYM_EXPLICIT_NAME`.
pub const EXPLICIT_NAME: u32 = 0x40;

/// Functions an object may import, with the type it declares: kernel exports with their own
/// type or another, private symbols through `.klp.sym` (a wrong position, a wrong type), and
/// names the kernel does not export. None that resolves has side effects beyond the log (a call
/// through a relocation against the wrong symbol may reach any of them).
const IMPORTS: [(&str, u32); 9] = [
    ("printk", T_TWO),
    ("printk", T_INIT),
    ("klp_enable_patch", T_ONE),
    ("no_such_function", T_VOID),
    (".klp.sym.vmlinux.printk,0", T_TWO),
    (".klp.sym.vmlinux.cmdline_proc_show,0", T_VOID),
    (".klp.sym.vmlinux.cmdline_proc_show,7", T_TWO),
    (".klp.sym.nosuchmod.f,0", T_VOID),
    ("cmdline_proc_show", T_TWO),
];

/// Data an object may use without defining it.
const UNDEFINED_DATA: [&str; 3] = ["jiffies", "no_such_data", ".klp.sym.vmlinux.HEAP,0"];

/// Functions a generated live patch replaces (the `*_proc_show` and printk take two i32s;
/// `test_klp_mod_target_proc_show` is in a module).
const TARGETS: [&str; 7] = [
    "cmdline_proc_show",
    "version_proc_show",
    "uptime_proc_show",
    "printk",
    "bench_target_notrace",
    "no_such_function",
    "test_klp_mod_target_proc_show",
];

/// Objects a generated live patch names (`None` is vmlinux).
const OBJECTS: [Option<&str>; 4] = [
    None,
    Some("test_klp_mod_target"),
    Some("hello"),
    Some("no_such_module"),
];

/// A relocation: type, offset in its section payload, symbol (or type) index, addend.
pub type Reloc = (u8, u32, u32, i32);

/// Code of one function with its relocation sites relative to the body's start.
#[derive(Default)]
struct Body {
    bytes: Vec<u8>,
    relocs: Vec<Reloc>,
}

impl Body {
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// A 5-byte padded LEB (signed for `*_SLEB`) holding `value`, with its relocation.
    fn site(&mut self, reloc: (u8, u32, i32), value: u32) -> &mut Self {
        let (ty, index, addend) = reloc;
        self.relocs
            .push((ty, self.bytes.len() as u32, index, addend));
        self.bytes.extend(padded(value));
        self
    }
}

/// `value` as the 5-byte padded LEB lld leaves at a relocation site (its low 32 bits are read
/// the same signed or unsigned for the small values written here).
fn padded(value: u32) -> [u8; 5] {
    let mut out = [0; 5];
    for (i, b) in out.iter_mut().enumerate() {
        *b = ((value >> (7 * i)) & 0x7f) as u8 | if i < 4 { 0x80 } else { 0 };
    }
    out
}

fn leb(v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    s.encode(&mut out);
    out
}

/// A data segment's entry in the segment info: name, alignment (a power of two).
pub type SegInfo = (String, u32);

/// One symbol-table entry.
pub enum Sym {
    /// Flags, function index, name.
    Func(u32, u32, Option<String>),
    /// Flags, name, `(segment, offset, size)` when defined.
    Data(u32, String, Option<(u32, u32, u32)>),
    /// Flags, global index, name.
    Global(u32, u32, Option<String>),
    /// Flags, table index, name.
    Table(u32, u32, Option<String>),
    /// Flags, section index (rustc names custom sections this way; the loader ignores them).
    Section(u32, u32),
}

/// A data segment: address, bytes, relocations (offsets within the bytes), name, alignment.
struct Segment {
    addr: u32,
    bytes: Vec<u8>,
    relocs: Vec<Reloc>,
    name: &'static str,
    p2align: u32,
}

/// What one kind of call site calls: the function index written in the code (it must have the
/// site's type to validate) and the symbol the relocation names.
#[derive(Clone, Copy)]
struct Callee {
    func: u32,
    sym: u32,
}

/// An object under construction.
struct Object<'a, 'b> {
    u: &'b mut Unstructured<'a>,
    imports: Vec<(&'static str, u32)>,
    table: Option<u32>,
    stack_pointer: Option<u32>,
    /// Type of every function, imports first.
    func_types: Vec<u32>,
    bodies: Vec<Body>,
    exports: Vec<(String, u32)>,
    segments: Vec<Segment>,
    symbols: Vec<Sym>,
    /// Symbol of each function, by function index.
    func_syms: Vec<u32>,
    /// Defined data symbols: symbol, size, and whether it names its segment as it is.
    data_syms: Vec<(u32, u32, bool)>,
    undefined_data: Vec<u32>,
    modinfo: Vec<u8>,
    extra_relocs: Vec<(bool, Reloc)>,
}

impl<'a, 'b> Object<'a, 'b> {
    fn new(u: &'b mut Unstructured<'a>) -> Self {
        Object {
            u,
            imports: Vec::new(),
            table: None,
            stack_pointer: None,
            func_types: Vec::new(),
            bodies: Vec::new(),
            exports: Vec::new(),
            segments: Vec::new(),
            symbols: Vec::new(),
            func_syms: Vec::new(),
            data_syms: Vec::new(),
            undefined_data: Vec::new(),
            modinfo: b"license=GPL\0".to_vec(),
            extra_relocs: Vec::new(),
        }
    }

    /// True with probability `n` in 100.
    fn percent(&mut self, n: u32) -> Result<bool> {
        Ok(self.u.int_in_range(0..=99u32)? < n)
    }

    fn push_sym(&mut self, sym: Sym) -> u32 {
        self.symbols.push(sym);
        self.symbols.len() as u32 - 1
    }

    /// Symbol flags: `base` mostly, sometimes with a binding or visibility flag more.
    fn flags(&mut self, base: u32) -> Result<u32> {
        Ok(if self.percent(8)? {
            base ^ *self
                .u
                .choose(&[WEAK, LOCAL, HIDDEN, UNDEFINED, EXPLICIT_NAME])?
        } else {
            base
        })
    }

    /// Imports the functions `names` (indices into [`IMPORTS`]), the table and the stack pointer.
    fn import(&mut self, names: &[usize], table: bool, stack_pointer: bool) -> Result<()> {
        for &i in names {
            let (name, ty) = IMPORTS[i];
            let f = self.imports.len() as u32;
            self.imports.push((name, ty));
            self.func_types.push(ty);
            let explicit = self.percent(10)?;
            let flags = self.flags(UNDEFINED | if explicit { EXPLICIT_NAME } else { 0 })?;
            let sym = self.push_sym(Sym::Func(flags, f, explicit.then(|| name.to_string())));
            self.func_syms.push(sym);
        }
        if table {
            let flags = self.flags(UNDEFINED)?;
            self.table = Some(self.push_sym(Sym::Table(flags, 0, None)));
        }
        if stack_pointer {
            let flags = self.flags(UNDEFINED)?;
            self.stack_pointer = Some(self.push_sym(Sym::Global(flags, 0, None)));
        }
        Ok(())
    }

    /// Declares a defined function of type `ty` named `name` (exported too, sometimes); its body
    /// comes later, from [`Object::body`].
    fn declare(&mut self, ty: u32, name: Option<String>, global: bool) -> Result<u32> {
        let f = self.func_types.len() as u32;
        self.func_types.push(ty);
        let flags = self.flags(if global { 0 } else { LOCAL })?;
        if let Some(n) = &name
            && global
            && self.percent(70)?
        {
            self.exports.push((n.clone(), f));
        }
        let sym = self.push_sym(Sym::Func(flags, f, name));
        self.func_syms.push(sym);
        Ok(f)
    }

    /// A data segment holding `bytes`, at the next aligned address (or a wild one), with a symbol.
    fn segment(&mut self, name: &'static str, bytes: Vec<u8>, relocs: Vec<Reloc>) -> Result<u32> {
        let p2align = if self.percent(3)? {
            self.u.int_in_range(0..=40)?
        } else {
            2
        };
        let end = self
            .segments
            .last()
            .map_or(1024, |s| s.addr.wrapping_add(s.bytes.len() as u32));
        let addr = if self.percent(2)? {
            self.u.arbitrary()?
        } else {
            end.wrapping_add(15) & !15
        };
        let seg = self.segments.len();
        let size = bytes.len() as u32;
        self.segments.push(Segment {
            addr,
            bytes,
            relocs,
            name,
            p2align,
        });
        let sane = !self.percent(4)?;
        let (seg_index, offset, sym_size) = if !sane {
            (
                self.u.int_in_range(0..=4)?,
                self.u.arbitrary()?,
                self.u.arbitrary()?,
            )
        } else {
            (seg as u32, 0, size)
        };
        let flags = if sane { LOCAL } else { self.flags(LOCAL)? };
        let sym = self.push_sym(Sym::Data(
            flags,
            format!("{name}.{seg}"),
            Some((seg_index, offset, sym_size)),
        ));
        self.data_syms.push((sym, size, sane));
        Ok(sym)
    }

    /// The symbol a relocation names: `right` mostly, else any symbol or one past the end.
    fn sym_or(&mut self, right: u32) -> Result<u32> {
        if self.percent(96)? {
            return Ok(right);
        }
        let n = self.symbols.len() as u32;
        self.u.int_in_range(0..=n + 1)
    }

    /// A relocation's type: `right` mostly, else any type byte.
    fn ty_or(&mut self, right: u8) -> Result<u8> {
        if self.percent(98)? {
            Ok(right)
        } else {
            self.u.int_in_range(0..=26)
        }
    }

    /// An addend: 0 or within `size` mostly, else anything.
    fn addend(&mut self, size: u32) -> Result<i32> {
        if self.percent(95)? {
            Ok(self.u.int_in_range(0..=size.saturating_sub(4))? as i32 & !3)
        } else {
            self.u.arbitrary()
        }
    }

    /// A memory-address relocation site against a defined data symbol (or an undefined one, when
    /// `may_be_undefined`), for `i32.const`.
    /// A store (`exact`) names its own symbol of its own type, within the symbol's size: the
    /// code writes to the module's own data only.
    fn data_site(&mut self, may_be_undefined: bool, exact: bool) -> Result<Option<(u8, u32, i32)>> {
        if may_be_undefined && !self.undefined_data.is_empty() && self.percent(20)? {
            let sym = *self.u.choose(&self.undefined_data)?;
            let ty = self.ty_or(R_MEMORY_ADDR_SLEB)?;
            let sym = self.sym_or(sym)?;
            return Ok(Some((ty, sym, 0)));
        }
        if self.data_syms.is_empty() {
            return Ok(None);
        }
        let (sym, size, sane) = *self.u.choose(&self.data_syms)?;
        if exact {
            if !sane || size < 4 {
                return Ok(None);
            }
            let addend = self.u.int_in_range(0..=size.saturating_sub(4))? as i32 & !3;
            return Ok(Some((R_MEMORY_ADDR_SLEB, sym, addend)));
        }
        let ty = self.ty_or(R_MEMORY_ADDR_SLEB)?;
        let sym = self.sym_or(sym)?;
        let addend = self.addend(size)?;
        Ok(Some((ty, sym, addend)))
    }

    /// A call site for a function of type `ty`, if the object has one.
    fn callee(&mut self, ty: u32, defined_only: bool) -> Result<Option<Callee>> {
        let first = if defined_only { self.imports.len() } else { 0 };
        let candidates: Vec<u32> = (first..self.func_types.len())
            .filter(|&f| self.func_types[f] == ty)
            .map(|f| f as u32)
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let func = *self.u.choose(&candidates)?;
        let sym = self.sym_or(self.func_syms[func as usize])?;
        Ok(Some(Callee { func, sym }))
    }

    /// Appends one stack-neutral piece of code to `b`. Writes go to the module's own data only,
    /// so that a module that loads and unloads cleanly has nothing of the kernel to give back.
    fn snippet(
        &mut self,
        b: &mut Body,
        params: u32,
        may_spin: bool,
        may_print: bool,
    ) -> Result<()> {
        match self.u.int_in_range(0..=99u32)? {
            0..=29 => {
                // printk(message, len), or a defined function of printk's type.
                let call = if self.percent(80)? {
                    let sym = self.sym_or(self.func_syms[0])?;
                    Some(Callee { func: 0, sym })
                } else {
                    self.callee(T_TWO, true)?
                };
                let msg = self.data_site(false, false)?;
                if let (true, Some(msg), Some(call)) = (may_print, msg, call) {
                    let len = self.u.int_in_range(0..=16)?;
                    let ty = self.ty_or(R_FUNCTION_INDEX_LEB)?;
                    b.op(&[0x41]).site(msg, 0).op(&[0x41, len, 0x10]);
                    b.site((ty, call.sym, 0), call.func).op(&[0x1a]);
                }
            }
            30..=44 => {
                if let Some(at) = self.data_site(true, false)? {
                    b.op(&[0x41]).site(at, 0).op(&[0x28, 0x00, 0x00, 0x1a]);
                }
            }
            45..=59 => {
                if let Some(at) = self.data_site(false, true)? {
                    let v = self.u.int_in_range(0..=0x3f)?;
                    b.op(&[0x41]).site(at, 0).op(&[0x41, v, 0x36, 0x00, 0x00]);
                }
            }
            60..=69 => {
                if let Some(call) = self.callee(T_INIT, true)? {
                    let ty = self.ty_or(R_FUNCTION_INDEX_LEB)?;
                    b.op(&[0x10]).site((ty, call.sym, 0), call.func).op(&[0x1a]);
                }
            }
            70..=79 => {
                if let (Some(table), Some(callee)) = (self.table, self.callee(T_INIT, true)?) {
                    let ty = self.ty_or(R_TABLE_INDEX_SLEB)?;
                    let table = self.sym_or(table)?;
                    let ty_site = self.ty_or(R_TYPE_INDEX_LEB)?;
                    b.op(&[0x41]).site((ty, callee.sym, 0), 0).op(&[0x11]);
                    b.site((ty_site, T_INIT, 0), T_INIT)
                        .site((R_TABLE_NUMBER_LEB, table, 0), 0)
                        .op(&[0x1a]);
                }
            }
            80..=89 => {
                if let Some(sp) = self.stack_pointer {
                    let ty = self.ty_or(R_GLOBAL_INDEX_LEB)?;
                    let sp = self.sym_or(sp)?;
                    b.op(&[0x23]).site((ty, sp, 0), 0).op(&[0x23]);
                    b.site((R_GLOBAL_INDEX_LEB, sp, 0), 0).op(&[0x6a, 0x1a]);
                }
            }
            90..=95 => {
                if params > 0 {
                    b.op(&[0x20, 0x00, 0x1a]);
                }
            }
            96..=98 => {
                b.op(&[0x00]);
            }
            _ => {
                if may_spin {
                    b.op(&[0x03, 0x40, 0x0c, 0x00, 0x0b]);
                }
            }
        }
        Ok(())
    }

    /// A body for function `f`: some snippets, then its result (0 mostly, else an errno or
    /// anything).
    fn body(&mut self, f: u32, may_spin: bool, may_print: bool) -> Result<Body> {
        let ty = self.func_types[f as usize];
        let params = TYPES[ty as usize].0.len() as u32;
        let mut b = Body::default();
        for _ in 0..self.u.int_in_range(0..=4)? {
            self.snippet(&mut b, params, may_spin, may_print)?;
        }
        if !TYPES[ty as usize].1.is_empty() {
            let ret: i32 = match self.u.int_in_range(0..=9)? {
                0..=6 => 0,
                7 => -12,
                8 => -22,
                _ => self.u.arbitrary()?,
            };
            b.op(&[0x41]);
            ret.encode(&mut b.bytes);
        }
        b.op(&[0x0b]);
        Ok(b)
    }

    /// Relocations with every field arbitrary, added to the code (`true`) or data relocations.
    fn junk_relocs(&mut self) -> Result<()> {
        if self.percent(5)? {
            let code = self.u.arbitrary()?;
            let r = (
                self.u.int_in_range(0..=26)?,
                self.u.int_in_range(0..=200)?,
                self.u.int_in_range(0..=self.symbols.len() as u32 + 1)?,
                self.u.arbitrary()?,
            );
            self.extra_relocs.push((code, r));
        }
        Ok(())
    }

    /// Encodes the object.
    fn finish(self) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        let mut section = |id: u8, data: &[u8]| {
            module.section(&wasm_encoder::RawSection { id, data });
        };
        let mut types = leb(TYPES.len() as u32);
        for (params, results) in TYPES {
            types.push(0x60);
            types.extend(leb(params.len() as u32));
            types.extend(params);
            types.extend(leb(results.len() as u32));
            types.extend(results);
        }
        section(1, &types);
        let mut imports = Vec::new();
        let mut count = 1;
        imports.extend(string("env"));
        imports.extend(string("memory"));
        imports.extend([0x02, 0x00, 0x01]);
        for (name, ty) in &self.imports {
            imports.extend(string("env"));
            imports.extend(string(name));
            imports.push(0x00);
            imports.extend(leb(*ty));
            count += 1;
        }
        if self.table.is_some() {
            imports.extend(string("env"));
            imports.extend(string("__indirect_function_table"));
            imports.extend([0x01, 0x70, 0x00, 0x00]);
            count += 1;
        }
        if self.stack_pointer.is_some() {
            imports.extend(string("env"));
            imports.extend(string("__stack_pointer"));
            imports.extend([0x03, 0x7f, 0x01]);
            count += 1;
        }
        let mut payload = leb(count);
        payload.extend(imports);
        section(2, &payload);
        let defined = &self.func_types[self.imports.len()..];
        let mut funcs = leb(defined.len() as u32);
        for ty in defined {
            funcs.extend(leb(*ty));
        }
        section(3, &funcs);
        let mut exports = leb(self.exports.len() as u32);
        for (name, f) in &self.exports {
            exports.extend(string(name));
            exports.push(0x00);
            exports.extend(leb(*f));
        }
        section(7, &exports);
        let mut code = leb(self.bodies.len() as u32);
        let mut code_relocs = Vec::new();
        for b in &self.bodies {
            let mut body = vec![0];
            body.extend_from_slice(&b.bytes);
            code.extend(leb(body.len() as u32));
            let start = code.len() as u32 + 1;
            code_relocs.extend(b.relocs.iter().map(|&(t, o, i, a)| (t, start + o, i, a)));
            code.extend(body);
        }
        section(10, &code);
        let mut data = leb(self.segments.len() as u32);
        let mut data_relocs = Vec::new();
        for s in &self.segments {
            data.extend([0x00, 0x41]);
            (s.addr as i32).encode(&mut data);
            data.push(0x0b);
            data.extend(leb(s.bytes.len() as u32));
            let start = data.len() as u32;
            data_relocs.extend(s.relocs.iter().map(|&(t, o, i, a)| (t, start + o, i, a)));
            data.extend(&s.bytes);
        }
        section(11, &data);
        for (in_code, r) in &self.extra_relocs {
            if *in_code {
                code_relocs.push(*r);
            } else {
                data_relocs.push(*r);
            }
        }
        // Sections: type 0, import 1, function 2, export 3, code 4, data 5.
        let custom = [
            ("linking", self.linking()),
            ("reloc.CODE", reloc_section(4, &code_relocs)),
            ("reloc.DATA", reloc_section(5, &data_relocs)),
            (".modinfo", self.modinfo.clone()),
        ];
        for (name, data) in &custom {
            module.section(&wasm_encoder::CustomSection {
                name: (*name).into(),
                data: data.into(),
            });
        }
        module.finish()
    }

    fn linking(&self) -> Vec<u8> {
        let segments: Vec<SegInfo> = self
            .segments
            .iter()
            .map(|s| (s.name.to_string(), s.p2align))
            .collect();
        linking_section(&self.symbols, &segments)
    }
}

/// A `linking` section's payload: version 2, the symbol table, the segment info (name and
/// alignment of each data segment).
pub fn linking_section(symbols: &[Sym], segments: &[SegInfo]) -> Vec<u8> {
    let mut syms = leb(symbols.len() as u32);
    let named = |flags: u32| flags & UNDEFINED == 0 || flags & EXPLICIT_NAME != 0;
    for s in symbols {
        match s {
            Sym::Func(flags, index, name)
            | Sym::Global(flags, index, name)
            | Sym::Table(flags, index, name) => {
                syms.push(match s {
                    Sym::Func(..) => 0,
                    Sym::Global(..) => 2,
                    _ => 5,
                });
                syms.extend(leb(*flags));
                syms.extend(leb(*index));
                if named(*flags) {
                    let fallback = format!("sym{index}");
                    syms.extend(string(name.as_deref().unwrap_or(&fallback)));
                }
            }
            Sym::Section(flags, section) => {
                syms.push(3);
                syms.extend(leb(*flags));
                syms.extend(leb(*section));
            }
            Sym::Data(flags, name, def) => {
                syms.push(1);
                syms.extend(leb(*flags));
                syms.extend(string(name));
                if flags & UNDEFINED == 0 {
                    let (seg, offset, size) = def.unwrap_or_default();
                    syms.extend(leb(seg));
                    syms.extend(leb(offset));
                    syms.extend(leb(size));
                }
            }
        }
    }
    let mut segs = leb(segments.len() as u32);
    for (name, p2align) in segments {
        segs.extend(string(name));
        segs.extend(leb(*p2align));
        segs.extend(leb(0));
    }
    let mut out = leb(2);
    for (id, payload) in [(8u8, syms), (5, segs)] {
        out.push(id);
        out.extend(leb(payload.len() as u32));
        out.extend(payload);
    }
    out
}

/// A `reloc.*` section's payload: the section it applies to, then the entries.
pub fn reloc_section(section: u32, relocs: &[Reloc]) -> Vec<u8> {
    let mut out = leb(section);
    out.extend(leb(relocs.len() as u32));
    for &(ty, offset, index, addend) in relocs {
        out.push(ty);
        out.extend(leb(offset));
        out.extend(leb(index));
        if has_addend(ty) {
            addend.encode(&mut out);
        }
    }
    out
}

/// Whether a relocation of type `ty` carries an addend (the memory-address and offset types).
pub fn has_addend(ty: u8) -> bool {
    matches!(
        ty,
        3 | 4 | 5 | 8 | 9 | 11 | 14 | 15 | 16 | 17 | 21 | 22 | 23 | 25
    )
}

/// The message segment every object has: what its printk calls print.
fn message() -> Vec<u8> {
    b"generated module says hi\n\0\0\0\0\0\0\0".to_vec()
}

/// A kernel module: imports (printk first), functions with `init_module` and `cleanup_module`
/// present or not and of their type or not, data with relocations, perhaps a parameter.
/// Returns the object and the insmod parameters to pass.
pub fn module(u: &mut Unstructured<'_>) -> Result<(Vec<u8>, String)> {
    let mut o = Object::new(u);
    let mut names = vec![0];
    if o.percent(25)? {
        names.push(o.u.int_in_range(0..=IMPORTS.len() - 1)?);
    }
    let (table, sp) = (o.percent(50)?, o.percent(50)?);
    o.import(&names, table, sp)?;
    if o.percent(10)? {
        let name = *o.u.choose(&UNDEFINED_DATA)?;
        let flags = o.flags(UNDEFINED)?;
        let sym = o.push_sym(Sym::Data(flags, name.to_string(), None));
        o.undefined_data.push(sym);
    }
    o.segment(".rodata", message(), Vec::new())?;
    let mut params = String::new();
    if o.percent(25)? {
        let size = if o.percent(90)? {
            4
        } else {
            o.u.int_in_range(0..=9)?
        };
        let seg = o.segments.len() as u32;
        o.segment(".data", vec![0; 8], Vec::new())?;
        let offset = if o.percent(90)? { 0 } else { o.u.arbitrary()? };
        o.push_sym(Sym::Data(
            0,
            "__param_level".into(),
            Some((seg, offset, size)),
        ));
        if o.percent(70)? {
            let v: i32 = o.u.int_in_range(-5..=5)?;
            params = format!("level={v}");
        }
    }
    // Functions: init_module (usually), cleanup_module (often), helpers.
    let mut funcs = Vec::new();
    let mut exit = None;
    if o.percent(85)? {
        let ty = if o.percent(92)? {
            T_INIT
        } else {
            o.u.int_in_range(0..=3)?
        };
        funcs.push(o.declare(ty, Some("init_module".into()), true)?);
    }
    if o.percent(60)? {
        let ty = if o.percent(92)? {
            T_VOID
        } else {
            o.u.int_in_range(0..=3)?
        };
        let f = o.declare(ty, Some("cleanup_module".into()), true)?;
        exit = Some(f);
        funcs.push(f);
    }
    for i in 0..o.u.int_in_range(0..=3)? {
        let ty = o.u.int_in_range(0..=3)?;
        let global = o.percent(30)?;
        let name = (!o.percent(10)?).then(|| format!("fz_helper_{i}"));
        funcs.push(o.declare(ty, name, global)?);
    }
    // A data segment of function pointers and data pointers.
    if o.percent(40)? && !funcs.is_empty() {
        let mut relocs = Vec::new();
        for i in 0..o.u.int_in_range(1..=3)? {
            let f = *o.u.choose(&funcs)?;
            let ty = o.ty_or(R_TABLE_INDEX_I32)?;
            let sym = o.sym_or(o.func_syms[f as usize])?;
            relocs.push((ty, 8 * i, sym, 0));
            let (dsym, size, _) = o.data_syms[0];
            let ty = o.ty_or(R_MEMORY_ADDR_I32)?;
            let dsym = o.sym_or(dsym)?;
            let addend = o.addend(size)?;
            relocs.push((ty, 8 * i + 4, dsym, addend));
        }
        let len = 8 * relocs.len() as u32 / 2;
        o.segment(".data.rel.ro", vec![0; len as usize], relocs)?;
    }
    if o.percent(20)? {
        let size = o.u.int_in_range(0..=64)?;
        o.segment(".bss", vec![0; size], Vec::new())?;
    }
    for &f in &funcs {
        // A spinning exit leaves the module loaded for good: rarer than a spinning init.
        let may_spin = exit != Some(f) || o.percent(20)?;
        let body = o.body(f, may_spin, true)?;
        o.bodies.push(body);
    }
    if o.percent(5)? {
        o.modinfo.extend(b"livepatch=Y\0");
    }
    o.junk_relocs()?;
    Ok((o.finish(), params))
}

/// A live patch: `init_module` enables a `klp_patch` whose objects and functions come from
/// [`OBJECTS`] and [`TARGETS`], with replacements defined here; sympos, `replace`, the array
/// terminators and the pointers are right mostly, and arbitrary sometimes.
pub fn patch(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut o = Object::new(u);
    // printk, klp_enable_patch.
    let stack_pointer = o.percent(30)?;
    o.import(&[0, 2], false, stack_pointer)?;
    o.segment(".rodata", message(), Vec::new())?;
    o.declare(T_INIT, Some("init_module".into()), true)?;
    let exit = if o.percent(80)? {
        Some(o.declare(T_VOID, Some("cleanup_module".into()), true)?)
    } else {
        None
    };
    let mut replacements = Vec::new();
    for i in 0..o.u.int_in_range(1..=3)? {
        let ty = if o.percent(90)? {
            T_TWO
        } else {
            o.u.int_in_range(0..=3)?
        };
        replacements.push(o.declare(ty, Some(format!("fz_replacement_{i}")), false)?);
    }
    // Names: every target and object name, NUL-terminated, in one segment.
    let mut names = Vec::new();
    let at = |s: &str, names: &mut Vec<u8>| {
        let offset = names.len() as i32;
        names.extend(s.as_bytes());
        names.push(0);
        offset
    };
    let targets: Vec<i32> = TARGETS.iter().map(|t| at(t, &mut names)).collect();
    let objects: Vec<Option<i32>> = OBJECTS
        .iter()
        .map(|n| n.map(|n| at(n, &mut names)))
        .collect();
    let names_sym = o.segment(".rodata.str", names, Vec::new())?;
    // The klp arrays' own pointers name the next segment's symbol.
    let seg_sym = o.symbols.len() as u32;
    // klp_func arrays, then klp_object array, then klp_patch, all in one segment.
    let mut data = Vec::new();
    let mut relocs = Vec::new();
    let word = |data: &mut Vec<u8>, v: u32| data.extend(v.to_le_bytes());
    let nobjs = if o.percent(90)? {
        o.u.int_in_range(1..=2)?
    } else {
        0
    };
    let mut obj_entries = Vec::new();
    for _ in 0..nobjs {
        let func_array = data.len() as u32;
        let nfuncs = if o.percent(90)? {
            o.u.int_in_range(1..=3)?
        } else {
            0
        };
        for _ in 0..nfuncs {
            let target = *o.u.choose(&targets)?;
            let repl = *o.u.choose(&replacements)?;
            let ty = o.ty_or(R_MEMORY_ADDR_I32)?;
            let sym = o.sym_or(names_sym)?;
            let addend = if o.percent(97)? {
                target
            } else {
                o.u.arbitrary()?
            };
            relocs.push((ty, data.len() as u32, sym, addend));
            word(&mut data, 0);
            let ty = o.ty_or(R_TABLE_INDEX_I32)?;
            let sym = o.sym_or(o.func_syms[repl as usize])?;
            relocs.push((ty, data.len() as u32, sym, 0));
            word(&mut data, 0);
            let sympos = if o.percent(85)? {
                0
            } else {
                o.u.int_in_range(0..=3)?
            };
            word(&mut data, sympos);
        }
        if o.percent(97)? {
            data.extend([0; 12]);
        }
        let object = *o.u.choose(&objects)?;
        obj_entries.push((object, func_array));
    }
    let objs = data.len() as u32;
    for (name, funcs) in obj_entries {
        if let Some(name) = name {
            relocs.push((R_MEMORY_ADDR_I32, data.len() as u32, names_sym, name));
        }
        word(&mut data, 0);
        relocs.push((R_MEMORY_ADDR_I32, data.len() as u32, seg_sym, funcs as i32));
        word(&mut data, 0);
        // No callbacks.
        data.extend([0; 16]);
    }
    if o.percent(97)? {
        data.extend([0; 24]);
    }
    let patch = data.len() as u32;
    relocs.push((R_MEMORY_ADDR_I32, patch, seg_sym, objs as i32));
    word(&mut data, 0);
    let replace = if o.percent(80)? { 0 } else { o.u.arbitrary()? };
    word(&mut data, replace);
    // No states.
    word(&mut data, 0);
    let size = data.len() as u32;
    o.segment(".data", data, relocs)?;
    // init_module: return klp_enable_patch(&PATCH), after some other code perhaps.
    let mut b = Body::default();
    for _ in 0..o.u.int_in_range(0..=1)? {
        o.snippet(&mut b, 0, false, true)?;
    }
    let ty = o.ty_or(R_MEMORY_ADDR_SLEB)?;
    let sym = o.sym_or(seg_sym)?;
    let addend = if o.percent(97)? {
        patch as i32
    } else {
        o.addend(size)?
    };
    let call = o.sym_or(o.func_syms[1])?;
    b.op(&[0x41]).site((ty, sym, addend), 0).op(&[0x10]);
    b.site((R_FUNCTION_INDEX_LEB, call, 0), 1).op(&[0x0b]);
    o.bodies.push(b);
    if let Some(exit) = exit {
        let body = o.body(exit, false, true)?;
        o.bodies.push(body);
    }
    // A replacement may replace printk: it does not print, or each message would recurse.
    for &r in &replacements {
        let body = o.body(r, false, false)?;
        o.bodies.push(body);
    }
    o.modinfo.extend(b"livepatch=Y\0");
    o.junk_relocs()?;
    Ok(o.finish())
}
