//! Trampolines: functions that call the handlers, then the target; one module per update.

use crate::instrument::{FuncSig, ValType};
use klp_abi::HostOp;
use wasm_encoder::{
    CodeSection, ConstExpr, ElementSection, Elements, EntityType, Function, FunctionSection,
    ImportSection, Instruction, Module, NameMap, NameSection, RefType, TableType, TypeSection,
};

/// Prefix of trampoline names in backtraces.
pub const TRAMPOLINE_PREFIX: &str = "__klp_tramp_";

/// What a trampoline does around the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Call the entry handlers (function tracer, kprobes).
    pub entry: bool,
    /// Call the exit handlers with the return value (kretprobes).
    pub exit: bool,
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

/// Pushes the `n`th parameter as an `i32` handler argument (0 when absent or not an `i32`).
fn push_arg(f: &mut Function, sig: &FuncSig, n: usize) {
    if sig.params.get(n) == Some(&ValType::I32) {
        f.instruction(&Instruction::LocalGet(n as u32));
    } else {
        f.instruction(&Instruction::I32Const(0));
    }
}

/// Calls `klp.hostcall` with the four arguments on the stack and drops its result.
fn call_host(f: &mut Function) {
    f.instruction(&Instruction::Call(0));
    f.instruction(&Instruction::Drop);
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
    /// Which handlers it calls.
    pub shape: Shape,
}

/// The trampoline function of `spec`, calling through type `ty` (the hooked signature).
fn body(spec: &Spec, ty: u32) -> Function {
    let sig = &spec.sig;
    let nparams = sig.params.len() as u32;
    let result_locals: Vec<(u32, wasm_encoder::ValType)> =
        sig.results.iter().map(|t| (1, valtype(t))).collect();
    let mut f = Function::new(if spec.shape.exit {
        result_locals
    } else {
        Vec::new()
    });
    if spec.shape.entry {
        f.instruction(&Instruction::I32Const(HostOp::TraceEntry as i32));
        f.instruction(&Instruction::I32Const(spec.slot as i32));
        push_arg(&mut f, sig, 0);
        push_arg(&mut f, sig, 1);
        call_host(&mut f);
    }
    for i in 0..nparams {
        f.instruction(&Instruction::LocalGet(i));
    }
    f.instruction(&Instruction::I32Const((spec.base + 1) as i32));
    f.instruction(&Instruction::CallIndirect {
        type_index: ty,
        table_index: 0,
    });
    if spec.shape.exit {
        let n = sig.results.len() as u32;
        for r in (0..n).rev() {
            f.instruction(&Instruction::LocalSet(nparams + r));
        }
        f.instruction(&Instruction::I32Const(HostOp::TraceExit as i32));
        f.instruction(&Instruction::I32Const(spec.slot as i32));
        if sig.results.first() == Some(&ValType::I32) {
            f.instruction(&Instruction::LocalGet(nparams));
        } else {
            f.instruction(&Instruction::I32Const(0));
        }
        f.instruction(&Instruction::I32Const(0));
        call_host(&mut f);
        for r in 0..n {
            f.instruction(&Instruction::LocalGet(nparams + r));
        }
    }
    f.instruction(&Instruction::End);
    f
}

/// Builds one module holding the trampolines of `specs`: one instance, however many functions
/// an update hooks. Each is written to its `base` by its own element segment.
pub fn build(specs: &[Spec]) -> Vec<u8> {
    let i32t = wasm_encoder::ValType::I32;
    let mut types = TypeSection::new();
    types.ty().function([i32t; 4], [i32t]);
    let type_of = sig_types(&mut types, 1, specs.iter().map(|s| &s.sig));
    let mut imports = ImportSection::new();
    table_import(&mut imports, specs.iter().map(|s| u64::from(s.base) + 2));
    imports.import("klp", "hostcall", EntityType::Function(0));
    let mut names = NameMap::new();
    names.append(0, "klp_hostcall");
    let funcs = specs.iter().zip(type_of).map(|(spec, ty)| Generated {
        ty,
        body: body(spec, ty),
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
        let mut specs = Vec::new();
        for sig in &sigs {
            for (entry, exit) in [(true, false), (false, true), (true, true)] {
                let spec = Spec {
                    name: "f".into(),
                    slot: 7,
                    sig: sig.clone(),
                    base: 100 + 2 * specs.len() as u32,
                    shape: Shape { entry, exit },
                };
                let wasm = build(std::slice::from_ref(&spec));
                wasmparser::Validator::new()
                    .validate_all(&wasm)
                    .unwrap_or_else(|e| panic!("{sig}: {e}"));
                specs.push(spec);
            }
        }
        // All of them in one module: one type per distinct signature, one segment each.
        let wasm = build(&specs);
        wasmparser::Validator::new()
            .validate_all(&wasm)
            .expect("a batch of trampolines validates");
    }
}
