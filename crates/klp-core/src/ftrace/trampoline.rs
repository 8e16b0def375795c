//! Trampolines: functions that record trace events in the ring buffer around the call; one module per update.

use crate::instrument::{FuncSig, ValType};
use crate::tracing::ring::{self, Ring};
use wasm_encoder::{
    CodeSection, ConstExpr, ElementSection, Elements, EntityType, Function, FunctionSection,
    GlobalType, ImportSection, Instruction, MemArg, MemoryType, Module, NameMap, NameSection,
    RefType, TableType, TypeSection,
};

/// Prefix of trampoline names in backtraces.
pub const TRAMPOLINE_PREFIX: &str = "__klp_tramp_";

/// What a trampoline records around the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// A function tracer event at entry.
    pub tracer: bool,
    /// The ids of the kprobes recorded at entry, in order.
    pub kprobes: Vec<u32>,
    /// The ids of the kretprobes recorded at exit, in order.
    pub kretprobes: Vec<u32>,
}

impl Shape {
    /// The event ids recorded at entry: the tracer's, then the kprobes'.
    fn entry_events(&self) -> Vec<u32> {
        let tracer = self.tracer.then_some(ring::FUNCTION);
        tracer
            .into_iter()
            .chain(self.kprobes.iter().copied())
            .collect()
    }
}

/// The encoder's type for a signature's value type.
pub(super) fn valtype(t: &ValType) -> wasm_encoder::ValType {
    match t {
        ValType::I32 => wasm_encoder::ValType::I32,
        ValType::I64 => wasm_encoder::ValType::I64,
        ValType::F32 => wasm_encoder::ValType::F32,
        ValType::F64 => wasm_encoder::ValType::F64,
        ValType::V128 => wasm_encoder::ValType::V128,
        ValType::FuncRef => wasm_encoder::ValType::FUNCREF,
        ValType::ExternRef => wasm_encoder::ValType::EXTERNREF,
    }
}

/// Pushes the `n`th parameter as an `i32` event argument (0 when absent or not an `i32`).
fn push_arg(f: &mut Function, sig: &FuncSig, n: usize) {
    if sig.params.get(n) == Some(&ValType::I32) {
        f.instruction(&Instruction::LocalGet(n as u32));
    } else {
        f.instruction(&Instruction::I32Const(0));
    }
}

/// Index of the `klp.clock_ns` import.
const CLOCK: u32 = 0;
/// Index of the imported caller global.
const CALLER: u32 = 0;

/// A memory access at the absolute address `addr` (the trampolines address from 0).
fn at(addr: u32, align: u32) -> MemArg {
    MemArg {
        offset: u64::from(addr),
        align,
        memory_index: 0,
    }
}

/// The trampoline's locals after the parameters: the caller, the time, the event number, the
/// event's offset in the ring, then one per result (to hold them around the exit events).
struct Locals {
    caller: u32,
    ts: u32,
    n: u32,
    entry: u32,
    results: u32,
}

/// Records one event per id of `ids` into the ring if `tracing_on` is set: the kernel clock,
/// the id, `slot`, the caller, the current context, and the two `i32`s `arg` pushes (the
/// first for 0, the second for 1).
fn record(
    f: &mut Function,
    ring: Ring,
    slot: u32,
    ids: &[u32],
    l: &Locals,
    arg: &dyn Fn(&mut Function, usize),
) {
    if ids.is_empty() {
        return;
    }
    let (hdr, ev) = (ring.base(), ring.events());
    f.instruction(&Instruction::I32Const(0));
    f.instruction(&Instruction::I32Load(at(hdr + ring::ON, 2)));
    f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
    f.instruction(&Instruction::Call(CLOCK));
    f.instruction(&Instruction::LocalSet(l.ts));
    for &id in ids {
        // n = written; entry = events + (n & mask) * EVENT, the event's address.
        f.instruction(&Instruction::I32Const(0));
        f.instruction(&Instruction::I64Load(at(hdr + ring::WRITTEN, 3)));
        f.instruction(&Instruction::LocalTee(l.n));
        f.instruction(&Instruction::I32WrapI64);
        f.instruction(&Instruction::I32Const(Ring::mask() as i32));
        f.instruction(&Instruction::I32And);
        f.instruction(&Instruction::I32Const(ring::EVENT.trailing_zeros() as i32));
        f.instruction(&Instruction::I32Shl);
        f.instruction(&Instruction::I32Const(ev as i32));
        f.instruction(&Instruction::I32Add);
        f.instruction(&Instruction::LocalSet(l.entry));
        let field = |f: &mut Function, value: &dyn Fn(&mut Function), off: u32| {
            f.instruction(&Instruction::LocalGet(l.entry));
            value(f);
            f.instruction(&Instruction::I32Store(at(off, 2)));
        };
        f.instruction(&Instruction::LocalGet(l.entry));
        f.instruction(&Instruction::LocalGet(l.ts));
        f.instruction(&Instruction::I64Store(at(ring::EV_TS, 3)));
        let id = id as i32;
        let slot = slot as i32;
        field(
            f,
            &|f| {
                f.instruction(&Instruction::I32Const(id));
            },
            ring::EV_ID,
        );
        field(
            f,
            &|f| {
                f.instruction(&Instruction::I32Const(slot));
            },
            ring::EV_SLOT,
        );
        field(
            f,
            &|f| {
                f.instruction(&Instruction::LocalGet(l.caller));
            },
            ring::EV_CALLER,
        );
        field(
            f,
            &|f| {
                f.instruction(&Instruction::I32Const(0));
                f.instruction(&Instruction::I32Load(at(hdr + ring::CTX, 2)));
            },
            ring::EV_CTX,
        );
        field(f, &|f| arg(f, 0), ring::EV_A);
        field(f, &|f| arg(f, 1), ring::EV_B);
        // written = n + 1
        f.instruction(&Instruction::I32Const(0));
        f.instruction(&Instruction::LocalGet(l.n));
        f.instruction(&Instruction::I64Const(1));
        f.instruction(&Instruction::I64Add);
        f.instruction(&Instruction::I64Store(at(hdr + ring::WRITTEN, 3)));
    }
    f.instruction(&Instruction::End);
}

/// One trampoline of a [`build`]: the function at `slot`, named `name`, of signature `sig`.
/// The trampoline itself goes to table entry `base` and calls whatever entry `base + 1` holds
/// (the original or the replacement).
#[derive(Debug, Clone)]
pub struct Spec {
    /// The hooked function's name, for backtraces.
    pub name: String,
    /// The hooked function's slot, passed to the handlers.
    pub slot: u32,
    /// Its signature.
    pub sig: FuncSig,
    /// The trampoline's own table entry; `base + 1` holds its target.
    pub base: u32,
    /// What it records.
    pub shape: Shape,
}

/// The trampoline function of `spec`, calling through type `ty` (the hooked signature) and
/// recording into `ring`.
fn body(spec: &Spec, ty: u32, ring: Ring) -> Function {
    let sig = &spec.sig;
    let nparams = sig.params.len() as u32;
    let l = Locals {
        caller: nparams,
        ts: nparams + 1,
        n: nparams + 2,
        entry: nparams + 3,
        results: nparams + 4,
    };
    let i32t = wasm_encoder::ValType::I32;
    let i64t = wasm_encoder::ValType::I64;
    let mut locals = vec![(1, i32t), (2, i64t), (1, i32t)];
    let exit = !spec.shape.kretprobes.is_empty();
    if exit {
        locals.extend(sig.results.iter().map(|t| (1, valtype(t))));
    }
    let mut f = Function::new(locals);
    // The call site stored its caller's slot before calling the slot; read it before the
    // target's own calls overwrite it.
    f.instruction(&Instruction::GlobalGet(CALLER));
    f.instruction(&Instruction::LocalSet(l.caller));
    record(
        &mut f,
        ring,
        spec.slot,
        &spec.shape.entry_events(),
        &l,
        &|f, n| {
            push_arg(f, sig, n);
        },
    );
    for i in 0..nparams {
        f.instruction(&Instruction::LocalGet(i));
    }
    f.instruction(&Instruction::I32Const((spec.base + 1) as i32));
    f.instruction(&Instruction::CallIndirect {
        type_index: ty,
        table_index: 0,
    });
    if exit {
        let n = sig.results.len() as u32;
        for r in (0..n).rev() {
            f.instruction(&Instruction::LocalSet(l.results + r));
        }
        let retval = sig.results.first() == Some(&ValType::I32);
        record(
            &mut f,
            ring,
            spec.slot,
            &spec.shape.kretprobes,
            &l,
            &|f, n| {
                if retval && n == 0 {
                    f.instruction(&Instruction::LocalGet(l.results));
                } else {
                    f.instruction(&Instruction::I32Const(0));
                }
            },
        );
        for r in 0..n {
            f.instruction(&Instruction::LocalGet(l.results + r));
        }
    }
    f.instruction(&Instruction::End);
    f
}

/// Builds one module holding the trampolines of `specs`, recording into `ring`: one instance,
/// however many functions an update hooks. Each is written to its `base` by its own element
/// segment. It imports the kernel's table, `klp.clock_ns`, memory and caller global.
pub fn build(specs: &[Spec], ring: Ring) -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([], [wasm_encoder::ValType::I64]);
    let type_of = sig_types(&mut types, 1, specs.iter().map(|s| &s.sig));
    let mut imports = ImportSection::new();
    table_import(&mut imports, specs.iter().map(|s| u64::from(s.base) + 2));
    imports.import("klp", "clock_ns", EntityType::Function(0));
    imports.import(
        "env",
        "memory",
        MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        },
    );
    imports.import(
        "env",
        crate::instrument::CALLER_GLOBAL,
        GlobalType {
            val_type: wasm_encoder::ValType::I32,
            mutable: true,
            shared: false,
        },
    );
    let mut names = NameMap::new();
    names.append(CLOCK, "klp_clock_ns");
    let funcs = specs.iter().zip(type_of).map(|(spec, ty)| Generated {
        ty,
        body: body(spec, ty, ring),
        base: spec.base,
        name: format!("{TRAMPOLINE_PREFIX}{}", spec.name),
    });
    assemble(&types, &imports, 1, names, funcs)
}

/// Adds one function type per distinct signature of `sigs` to `types`, after the `first` it
/// already holds; returns each signature's type index, in order.
pub(super) fn sig_types<'a>(
    types: &mut TypeSection,
    first: u32,
    sigs: impl IntoIterator<Item = &'a FuncSig>,
) -> Vec<u32> {
    let mut seen: Vec<&FuncSig> = Vec::new();
    let mut type_of = Vec::new();
    for sig in sigs {
        let ty = match seen.iter().position(|s| *s == sig) {
            Some(i) => i,
            None => {
                seen.push(sig);
                types.ty().function(
                    sig.params.iter().map(valtype),
                    sig.results.iter().map(valtype),
                );
                seen.len() - 1
            }
        };
        type_of.push(ty as u32 + first);
    }
    type_of
}

/// Imports the kernel's table (`env.__indirect_function_table`), at least as large as the
/// largest of `ends` (each one past the last entry a generated function uses).
pub(super) fn table_import(imports: &mut ImportSection, ends: impl Iterator<Item = u64>) {
    let table = TableType {
        element_type: RefType::FUNCREF,
        minimum: ends.max().unwrap_or(0),
        maximum: None,
        table64: false,
        shared: false,
    };
    imports.import("env", "__indirect_function_table", table);
}

/// One generated function: its type, its body, the table entry it is written to, its name.
pub(super) struct Generated {
    pub(super) ty: u32,
    pub(super) body: Function,
    pub(super) base: u32,
    pub(super) name: String,
}

/// A module of generated functions, each written to its `base` by its own element segment and
/// named in the name section (after `names`, which names the `first` imported functions).
pub(super) fn assemble(
    types: &TypeSection,
    imports: &ImportSection,
    first: u32,
    mut names: NameMap,
    generated: impl Iterator<Item = Generated>,
) -> Vec<u8> {
    let mut funcs = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut elems = ElementSection::new();
    for (index, g) in (first..).zip(generated) {
        funcs.function(g.ty);
        code.function(&g.body);
        elems.active(
            Some(0),
            &ConstExpr::i32_const(g.base as i32),
            Elements::Functions(std::borrow::Cow::Owned(vec![index])),
        );
        names.append(index, &g.name);
    }
    let mut name_section = NameSection::new();
    name_section.functions(&names);
    let mut module = Module::new();
    module
        .section(types)
        .section(imports)
        .section(&funcs)
        .section(&elems)
        .section(&code)
        .section(&name_section);
    module.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampolines_validate_for_every_shape_and_signature() {
        let sigs = [
            FuncSig {
                params: vec![ValType::I32, ValType::I32],
                results: vec![ValType::I32],
            },
            FuncSig {
                params: vec![],
                results: vec![],
            },
            FuncSig {
                params: vec![ValType::I64, ValType::F32],
                results: vec![ValType::I64, ValType::I32],
            },
        ];
        let shapes = [
            Shape {
                tracer: true,
                ..Shape::default()
            },
            Shape {
                kretprobes: vec![3],
                ..Shape::default()
            },
            Shape {
                tracer: true,
                kprobes: vec![1, 2],
                kretprobes: vec![3, 4],
            },
            Shape::default(),
        ];
        let ring = Ring::at(0x1000);
        let mut specs = Vec::new();
        for sig in &sigs {
            for shape in &shapes {
                let spec = Spec {
                    name: "f".into(),
                    slot: 7,
                    sig: sig.clone(),
                    base: 100 + 2 * specs.len() as u32,
                    shape: shape.clone(),
                };
                let wasm = build(std::slice::from_ref(&spec), ring);
                wasmparser::Validator::new()
                    .validate_all(&wasm)
                    .unwrap_or_else(|e| panic!("{sig}: {e}"));
                specs.push(spec);
            }
        }
        // All of them in one module: one type per distinct signature, one segment each.
        let wasm = build(&specs, ring);
        wasmparser::Validator::new()
            .validate_all(&wasm)
            .expect("a batch of trampolines validates");
    }
}
