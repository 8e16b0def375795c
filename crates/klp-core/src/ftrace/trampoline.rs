//! Trampolines: a wasm module per hooked function that calls the handlers, then the target.

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

fn valtype(t: &ValType) -> wasm_encoder::ValType {
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

/// Builds the trampoline for the function at `slot`. The trampoline itself goes to table entry
/// `base` and calls whatever entry `base + 1` holds (the original or the replacement).
pub fn build(name: &str, slot: u32, sig: &FuncSig, base: u32, shape: Shape) -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function(
        sig.params.iter().map(valtype),
        sig.results.iter().map(valtype),
    );
    let i32t = wasm_encoder::ValType::I32;
    types.ty().function([i32t; 4], [i32t]);
    let mut imports = ImportSection::new();
    let table = TableType {
        element_type: RefType::FUNCREF,
        minimum: u64::from(base) + 2,
        maximum: None,
        table64: false,
        shared: false,
    };
    imports.import("env", "__indirect_function_table", table);
    imports.import("klp", "hostcall", EntityType::Function(1));
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let nparams = sig.params.len() as u32;
    let result_locals: Vec<(u32, wasm_encoder::ValType)> =
        sig.results.iter().map(|t| (1, valtype(t))).collect();
    let mut f = Function::new(if shape.exit {
        result_locals
    } else {
        Vec::new()
    });
    if shape.entry {
        f.instruction(&Instruction::I32Const(HostOp::TraceEntry as i32));
        f.instruction(&Instruction::I32Const(slot as i32));
        push_arg(&mut f, sig, 0);
        push_arg(&mut f, sig, 1);
        call_host(&mut f);
    }
    for i in 0..nparams {
        f.instruction(&Instruction::LocalGet(i));
    }
    f.instruction(&Instruction::I32Const((base + 1) as i32));
    f.instruction(&Instruction::CallIndirect {
        type_index: 0,
        table_index: 0,
    });
    if shape.exit {
        let n = sig.results.len() as u32;
        for r in (0..n).rev() {
            f.instruction(&Instruction::LocalSet(nparams + r));
        }
        f.instruction(&Instruction::I32Const(HostOp::TraceExit as i32));
        f.instruction(&Instruction::I32Const(slot as i32));
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
    let mut code = CodeSection::new();
    code.function(&f);
    let mut elems = ElementSection::new();
    elems.active(
        Some(0),
        &ConstExpr::i32_const(base as i32),
        Elements::Functions(std::borrow::Cow::Borrowed(&[1])),
    );
    let mut names = NameMap::new();
    names.append(0, "klp_hostcall");
    names.append(1, &format!("{TRAMPOLINE_PREFIX}{name}"));
    let mut name_section = NameSection::new();
    name_section.functions(&names);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
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
        for sig in &sigs {
            for (entry, exit) in [(true, false), (false, true), (true, true)] {
                let wasm = build("f", 7, sig, 100, Shape { entry, exit });
                wasmparser::Validator::new()
                    .validate_all(&wasm)
                    .unwrap_or_else(|e| panic!("{sig}: {e}"));
            }
        }
    }
}
