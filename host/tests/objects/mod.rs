//! Hand-built relocatable wasm objects (the shape lld gives modules) for the insmod tests.

/// `R_WASM_FUNCTION_INDEX_LEB`: a call's function index.
pub const R_FUNCTION_INDEX_LEB: u8 = 0;
/// `R_WASM_TABLE_INDEX_I32`: a function pointer in data.
pub const R_TABLE_INDEX_I32: u8 = 2;
/// `R_WASM_MEMORY_ADDR_SLEB`: an address in an `i32.const`.
pub const R_MEMORY_ADDR_SLEB: u8 = 4;
/// `R_WASM_MEMORY_ADDR_I32`: an address in data.
pub const R_MEMORY_ADDR_I32: u8 = 5;

/// Where data starts in the object's own address space.
const DATA_ADDR: u32 = 1024;

/// A value type's byte.
pub const I32: u8 = 0x7f;

/// A relocation: type, offset (in a function body or in the data), symbol index.
type Reloc = (u8, u32, u32);

/// One defined function: name, parameter and result types, body code (no locals, with `end`),
/// and the relocations in that code.
struct Func {
    name: String,
    ty: u32,
    code: Vec<u8>,
    relocs: Vec<Reloc>,
}

/// A relocatable object under construction. Symbols are numbered imports first, then defined
/// functions, then data symbols.
#[derive(Default)]
pub struct Object {
    types: Vec<(Vec<u8>, Vec<u8>)>,
    imports: Vec<(String, u32)>,
    funcs: Vec<Func>,
    data: Vec<u8>,
    data_relocs: Vec<Reloc>,
    data_syms: Vec<(String, u32, u32)>,
}

/// `v` as a LEB128.
fn leb(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `v` as a 5-byte padded LEB128, as lld leaves relocation sites.
pub fn padded_leb(v: u32) -> [u8; 5] {
    let mut out = [0x80; 5];
    for (i, b) in out.iter_mut().enumerate() {
        *b = ((v >> (7 * i)) & 0x7f) as u8 | if i < 4 { 0x80 } else { 0 };
    }
    out
}

fn name(s: &str) -> Vec<u8> {
    let mut out = leb(s.len() as u32);
    out.extend_from_slice(s.as_bytes());
    out
}

fn section(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(leb(payload.len() as u32));
    out.extend_from_slice(payload);
    out
}

fn custom(title: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = name(title);
    body.extend_from_slice(payload);
    section(0, &body)
}

/// A vector: its count, then its items.
fn vec_of(items: impl ExactSizeIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = leb(items.len() as u32);
    out.extend(items.flatten());
    out
}

impl Object {
    /// The index of the type `params -> results`, added if new.
    fn ty(&mut self, params: &[u8], results: &[u8]) -> u32 {
        let ty = (params.to_vec(), results.to_vec());
        match self.types.iter().position(|t| *t == ty) {
            Some(i) => i as u32,
            None => {
                self.types.push(ty);
                self.types.len() as u32 - 1
            }
        }
    }

    /// Imports a function of the kernel; returns its symbol (and function) index. Call before
    /// defining functions.
    pub fn import(&mut self, func: &str, params: &[u8], results: &[u8]) -> u32 {
        assert!(self.funcs.is_empty(), "imports come first");
        let ty = self.ty(params, results);
        self.imports.push((func.to_string(), ty));
        self.imports.len() as u32 - 1
    }

    /// Defines a global function; `code` is its body after the locals (ending in `end`), with
    /// `relocs` at offsets into `code`. Returns its function index.
    pub fn func(
        &mut self,
        name: &str,
        params: &[u8],
        results: &[u8],
        code: &[u8],
        relocs: &[Reloc],
    ) -> u32 {
        let ty = self.ty(params, results);
        self.funcs.push(Func {
            name: name.to_string(),
            ty,
            code: code.to_vec(),
            relocs: relocs.to_vec(),
        });
        (self.imports.len() + self.funcs.len()) as u32 - 1
    }

    /// Appends `bytes` to the data and gives them a global data symbol; returns its offset in
    /// the data. Symbol indices of data come after every function's: add data last.
    pub fn data(&mut self, name: &str, bytes: &[u8]) -> u32 {
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        self.data_syms
            .push((name.to_string(), offset, bytes.len() as u32));
        offset
    }

    /// A relocation at `offset` in the data.
    pub fn data_reloc(&mut self, ty: u8, offset: u32, symbol: u32) {
        self.data_relocs.push((ty, offset, symbol));
    }

    /// The symbol index of the data symbol `name`.
    pub fn data_symbol(&self, name: &str) -> u32 {
        let i = self.data_syms.iter().position(|(n, ..)| n == name).unwrap();
        (self.imports.len() + self.funcs.len() + i) as u32
    }

    /// The object's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        let types = self.types.iter().map(|(p, r)| {
            let mut t = vec![0x60];
            t.extend(leb(p.len() as u32));
            t.extend(p);
            t.extend(leb(r.len() as u32));
            t.extend(r);
            t
        });
        out.extend(section(1, &vec_of(types)));
        let mut imports = vec![[name("env"), name("memory"), vec![0x02, 0x00, 0x00]].concat()];
        for (func, ty) in &self.imports {
            imports.push([name("env"), name(func), vec![0x00], leb(*ty)].concat());
        }
        out.extend(section(2, &vec_of(imports.into_iter())));
        out.extend(section(3, &vec_of(self.funcs.iter().map(|f| leb(f.ty)))));
        // Code: each body is its size, no locals, the code; relocations are section-relative.
        let mut code = leb(self.funcs.len() as u32);
        let mut code_relocs = Vec::new();
        for f in &self.funcs {
            code.extend(leb(f.code.len() as u32 + 1));
            code.push(0);
            let start = code.len() as u32;
            code_relocs.extend(f.relocs.iter().map(|&(t, o, s)| (t, start + o, s)));
            code.extend(&f.code);
        }
        out.extend(section(10, &code));
        let mut data = vec![1, 0x00, 0x41];
        data.extend(padded_leb(DATA_ADDR));
        data.push(0x0b);
        data.extend(leb(self.data.len() as u32));
        let start = data.len() as u32;
        let data_relocs: Vec<Reloc> = self
            .data_relocs
            .iter()
            .map(|&(t, o, s)| (t, start + o, s))
            .collect();
        data.extend(&self.data);
        out.extend(section(11, &data));
        out.extend(custom("linking", &self.linking()));
        // Sections: type, import, function, code (3), data (4), then the custom ones.
        out.extend(custom("reloc.CODE", &reloc_section(3, &code_relocs)));
        out.extend(custom("reloc.DATA", &reloc_section(4, &data_relocs)));
        out
    }

    /// The `linking` section: version 2, the symbol table and the segment info.
    fn linking(&self) -> Vec<u8> {
        let imports = (0..self.imports.len() as u32).map(|i| [vec![0, 0x10], leb(i)].concat());
        let base = self.imports.len() as u32;
        let funcs = self
            .funcs
            .iter()
            .enumerate()
            .map(|(i, f)| [vec![0, 0], leb(base + i as u32), name(&f.name)].concat());
        let data = self.data_syms.iter().map(|(n, offset, size)| {
            [vec![1, 0], name(n), leb(0), leb(*offset), leb(*size)].concat()
        });
        let symbols: Vec<Vec<u8>> = imports.chain(funcs).chain(data).collect();
        let symtab = vec_of(symbols.into_iter());
        let seginfo = [leb(1), name(".data"), leb(2), leb(0)].concat();
        let mut out = leb(2);
        for (id, payload) in [(8u8, symtab), (5, seginfo)] {
            out.push(id);
            out.extend(leb(payload.len() as u32));
            out.extend(payload);
        }
        out
    }
}

/// A `reloc.*` section for section `index`; memory relocations carry a zero addend.
fn reloc_section(index: u32, relocs: &[Reloc]) -> Vec<u8> {
    let mut out = leb(index);
    out.extend(leb(relocs.len() as u32));
    for &(ty, offset, symbol) in relocs {
        out.push(ty);
        out.extend(leb(offset));
        out.extend(leb(symbol));
        if matches!(ty, R_MEMORY_ADDR_SLEB | R_MEMORY_ADDR_I32) {
            out.push(0);
        }
    }
    out
}

/// An object defining `n` empty functions `f0`, `f1`, ... of type `() -> ()`.
pub fn empty_functions(n: u32) -> Vec<u8> {
    let mut o = Object::default();
    for i in 0..n {
        o.func(&format!("f{i}"), &[], &[], &[0x0b], &[]);
    }
    o.finish()
}
