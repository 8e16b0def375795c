//! Tasks that sleep inside kernel functions: a preemption budget, and `klp.yield` as a `suspend`
//! with a dispatcher (stack switching) or as the engine's own import (the browser's JSPI).
//!
//! When the kernel imports [`YIELD_MODULE`].[`YIELD_NAME`] (`[] -> []`, a point where the running
//! task gives up the CPU), [`super::instrument`] runs [`add_tasks`] on its output. With
//! [`Switching::Stacks`] every `call` of that import becomes `suspend $klp_yield` (a
//! `return_call` becomes `suspend $klp_yield; return`), and a task dispatcher built on the
//! WebAssembly stack-switching proposal is appended, as described below. With
//! [`Switching::Import`] the calls stay, and only the budget, the three globals and
//! `__klp_task_preempt` are added: the engine's import suspends the task (docs/ABI.md, "Tasks").
//! Nothing is removed or renumbered: the import stays (unused), and every type, function, table,
//! global and tag the rewrite adds comes after the kernel's own. The output needs [`FEATURES`]
//! beyond the hook's set (docs/ABI.md, "Tasks", is the contract):
//!
//! * `__klp_task_spawn(task, slot, arg)` prepares task `task` (`0..`[`MAX_TASKS`]) to run the
//!   kernel function `fn(i32)` in table-0 entry `slot` with `arg`, reusing the idle
//!   continuation of a task that finished in that task slot (wasmtime keeps every continuation's
//!   stack until the store drops, so a new one per task would run out of memory). It traps when
//!   the task slot still holds a task that has not finished.
//! * `__klp_task_resume(task, sp) -> i32` sets `__stack_pointer` to `sp` (the task's own shadow
//!   stack) and `__klp_task_current` to `task`, and runs the task until it yields, is preempted
//!   or finishes. It returns the task's stack pointer at that point (never 0) when the task
//!   stopped, or 0 when it finished, and restores both globals; `__klp_task_stop` says why:
//!   [`STOP_FINISHED`], [`STOP_YIELDED`] or [`STOP_PREEMPTED`]. Resuming an empty task slot
//!   traps before changing anything. A trap inside the task traps
//!   out of the resume and leaves the other tasks resumable; the host then restores the two
//!   globals itself.
//! * Preemption: every `loop` header of every kernel function decrements `__klp_task_budget`;
//!   once it is below zero, `__klp_task_preempt` suspends the task as preempted (or, outside a
//!   task, sets the budget back to `i32::MAX` and returns). The host sets the budget before each
//!   resume: a budget of `n` lets `n` loop headers pass.
//!
//! Exports and the name section name everything the rewrite adds ([`EXPORTS`]), so backtraces
//! show `__klp_task_entry` and `__klp_task_resume` under a task's frames.

mod dispatcher;
mod splice;
#[cfg(test)]
mod tests;

use wasm_encoder::{BlockType, CodeSection, Encode, Instruction, Module, RawSection};
use wasmparser::{
    ElementItems, ExternalKind, FunctionBody, Operator, Parser, Payload, TypeRef, WasmFeatures,
};

use super::InstrumentError;
use dispatcher::{Added, Switch, additions};
use splice::{CODE, append, names, payload_of, rank, section_data};

/// Module of the import that marks a yield point.
pub const YIELD_MODULE: &str = "klp";
/// Name of the import that marks a yield point, of type `[] -> []`.
pub const YIELD_NAME: &str = "yield";
/// Task slots: the size of the continuation tables (`task` is `0..MAX_TASKS`).
pub const MAX_TASKS: u32 = 4096;
/// The features a kernel with tasks needs beyond the hook's [`super::FEATURES`].
pub const FEATURES: WasmFeatures = WasmFeatures::STACK_SWITCHING
    .union(WasmFeatures::FUNCTION_REFERENCES)
    .union(WasmFeatures::EXCEPTIONS);

/// `__klp_task_stop` after a resume: the task finished (its entry function returned).
pub const STOP_FINISHED: i32 = 0;
/// `__klp_task_stop` after a resume: the task called `klp.yield`.
pub const STOP_YIELDED: i32 = 1;
/// `__klp_task_stop` after a resume: the task's budget ran out at a loop header.
pub const STOP_PREEMPTED: i32 = 2;

/// How the rewritten kernel's tasks leave the CPU: what an engine can switch stacks with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switching {
    /// The WebAssembly stack-switching proposal (wasmtime): yields become suspends, and the
    /// kernel gets the dispatcher, `__klp_task_spawn` and `__klp_task_resume`.
    Stacks,
    /// The engine's own `klp.yield` import switches (the browser's JS Promise Integration, a
    /// `WebAssembly.Suspending` import): yields stay calls, and `__klp_task_preempt` sets
    /// `__klp_task_stop` to [`STOP_PREEMPTED`] and calls the import too. The kernel gets the
    /// budget, current and stop globals only; the engine spawns and resumes tasks itself.
    Import,
}

/// Export name of `__klp_task_spawn(task, slot, arg)`.
pub const SPAWN: &str = "__klp_task_spawn";
/// Export name of `__klp_task_resume(task, sp) -> i32`.
pub const RESUME: &str = "__klp_task_resume";
/// Export name of the budget global (mutable i32).
pub const BUDGET: &str = "__klp_task_budget";
/// Export name of the running task's global (mutable i32, -1 outside a task).
pub const CURRENT: &str = "__klp_task_current";
/// Export name of the global saying why the last resume returned (mutable i32).
pub const STOP: &str = "__klp_task_stop";
/// Every export the rewrite adds ([`Switching::Import`]: the three globals).
pub const EXPORTS: [&str; 5] = [SPAWN, RESUME, BUDGET, CURRENT, STOP];

/// Name (name section) of the trampoline every task runs in.
pub const ENTRY_NAME: &str = "__klp_task_entry";
/// Name (name section) of the function a loop header calls when the budget runs out.
pub const PREEMPT_NAME: &str = "__klp_task_preempt";

/// Whether `wasm` went through [`add_tasks`]: whether an engine needs [`FEATURES`] to run it.
/// (A kernel that imports `klp.yield` without the rewrite runs on any engine.)
///
/// # Errors
///
/// [`InstrumentError::Parse`] when the export section does not decode.
pub fn has_tasks(wasm: &[u8]) -> Result<bool, InstrumentError> {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ExportSection(r) => {
                for e in r {
                    if e?.name == RESUME {
                        return Ok(true);
                    }
                }
            }
            Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Ok(false)
}

/// Whether `wasm` imports `klp.yield`, or went through [`add_tasks`] already: whether the pass
/// gives it tasks.
///
/// # Errors
///
/// [`InstrumentError::Parse`] when the import or export section does not decode.
pub fn uses_tasks(wasm: &[u8]) -> Result<bool, InstrumentError> {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp?;
                    if imp.module == YIELD_MODULE && imp.name == YIELD_NAME {
                        return Ok(true);
                    }
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    if e?.name == RESUME {
                        return Ok(true);
                    }
                }
            }
            Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Ok(false)
}

/// Whether `wasm` is an instrumented kernel that went through [`add_tasks`] (it has a
/// `klp.ftrace` section and exports [`RESUME`]): one that may use [`FEATURES`].
pub(crate) fn is_rewritten(wasm: &[u8]) -> bool {
    let (mut ftrace, mut resume) = (false, false);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::ExportSection(r)) => {
                resume = r.into_iter().any(|e| e.is_ok_and(|e| e.name == RESUME));
            }
            Ok(Payload::CustomSection(c)) if c.name() == super::FTRACE_SECTION => ftrace = true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    ftrace && resume
}

/// Validates a kernel with tasks: the hook's features and [`FEATURES`].
///
/// # Errors
///
/// [`InstrumentError::Parse`] when it does not validate.
pub(crate) fn validate(wasm: &[u8]) -> Result<(), InstrumentError> {
    wasmparser::Validator::new_with_features(super::FEATURES | FEATURES).validate_all(wasm)?;
    Ok(())
}

/// What the rewrite needs to know of its input.
#[derive(Default)]
struct Counts {
    types: u32,
    func_imports: u32,
    funcs: u32,
    tables: u32,
    tags: u32,
    globals: u32,
    yield_func: Option<u32>,
    stack_pointer: Option<u32>,
    /// The exported caller global (`__klp_caller`), when the ftrace pass added one.
    caller: Option<u32>,
}

impl Counts {
    fn read(wasm: &[u8]) -> Result<Self, InstrumentError> {
        let mut c = Counts::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload? {
                Payload::TypeSection(r) => {
                    for group in r {
                        c.types += group?.types().len() as u32;
                    }
                }
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        let imp = imp?;
                        match imp.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                if imp.module == YIELD_MODULE && imp.name == YIELD_NAME {
                                    check_yield_type(wasm, t)?;
                                    c.yield_func = Some(c.func_imports);
                                }
                                c.func_imports += 1;
                            }
                            TypeRef::Table(_) => c.tables += 1,
                            TypeRef::Global(_) => c.globals += 1,
                            TypeRef::Tag(_) => c.tags += 1,
                            TypeRef::Memory(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(r) => c.funcs += r.count(),
                Payload::TableSection(r) => c.tables += r.count(),
                Payload::TagSection(r) => c.tags += r.count(),
                Payload::GlobalSection(r) => c.globals += r.count(),
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e?;
                        if EXPORTS.contains(&e.name) {
                            return Err(unsupported(format!(
                                "the kernel already exports `{}`",
                                e.name
                            )));
                        }
                        if e.kind == ExternalKind::Global && e.name == "__stack_pointer" {
                            c.stack_pointer = Some(e.index);
                        }
                        if e.kind == ExternalKind::Global && e.name == super::CALLER_GLOBAL {
                            c.caller = Some(e.index);
                        }
                    }
                }
                // A kernel as the linker left it does not export its stack pointer: the name
                // section names it.
                Payload::CustomSection(r) if c.stack_pointer.is_none() => {
                    if let wasmparser::KnownCustom::Name(names) = r.as_known() {
                        c.stack_pointer = named_global(names, "__stack_pointer");
                    }
                }
                _ => {}
            }
        }
        c.funcs += c.func_imports;
        Ok(c)
    }
}

/// The index of the global the name section calls `name`.
fn named_global(names: wasmparser::NameSectionReader<'_>, name: &str) -> Option<u32> {
    names.into_iter().flatten().find_map(|sub| match sub {
        wasmparser::Name::Global(map) => map
            .into_iter()
            .flatten()
            .find(|naming| naming.name == name)
            .map(|naming| naming.index),
        _ => None,
    })
}

/// Refuses a `klp.yield` import whose type is not `[] -> []`.
fn check_yield_type(wasm: &[u8], type_index: u32) -> Result<(), InstrumentError> {
    let mut i = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::TypeSection(r) = payload? {
            for ty in r.into_iter_err_on_gc_types() {
                let ty = ty?;
                if i == type_index {
                    if ty.params().is_empty() && ty.results().is_empty() {
                        return Ok(());
                    }
                    return Err(unsupported(format!(
                        "{YIELD_MODULE}.{YIELD_NAME} has type {ty}, not [] -> []"
                    )));
                }
                i += 1;
            }
        }
    }
    Err(unsupported(format!("type {type_index} out of range")))
}

fn unsupported(msg: impl Into<String>) -> InstrumentError {
    InstrumentError::Unsupported(msg.into())
}

/// Rewrites an instrumented kernel for tasks: see the [module documentation](self). With
/// [`Switching::Stacks`] the kernel need not import `klp.yield` (then only the dispatcher and
/// the loop checks are added); with [`Switching::Import`] it must.
///
/// # Errors
///
/// [`InstrumentError::Parse`] for input that does not decode; [`InstrumentError::Unsupported`]
/// for a `klp.yield` of another type than `[] -> []` or used other than by `call` and
/// `return_call` (a function pointer to it, an export), a kernel that already exports one of
/// [`EXPORTS`], has no table or `__stack_pointer` (exported, or named in the name section), or
/// would pass
/// [`MAX_KERNEL_FUNCS`](crate::func_count::MAX_KERNEL_FUNCS) with the dispatcher's functions;
/// with [`Switching::Import`], a kernel without `klp.yield`.
pub fn add_tasks(wasm: &[u8], switching: Switching) -> Result<Vec<u8>, InstrumentError> {
    let counts = Counts::read(wasm)?;
    let a = Added::after(&counts, switching)?;
    let additions = additions(&a);
    let mut module = Module::new();
    let mut done: Vec<u8> = Vec::new();
    let emit_below = |module: &mut Module, r: u8, done: &mut Vec<u8>| {
        for (id, data) in &additions {
            if rank(*id) < r && !done.contains(id) {
                done.push(*id);
                module.section(&RawSection { id: *id, data });
            }
        }
    };
    // The rewritten code section, with the dispatcher's bodies appended, once its last entry
    // has been read.
    let emit_code = |module: &mut Module, rewritten: CodeSection, done: &mut Vec<u8>| {
        done.push(CODE);
        let data = append(&payload_of(&rewritten), &section_data(&additions, CODE))?;
        module.section(&RawSection {
            id: CODE,
            data: &data,
        });
        Ok::<(), InstrumentError>(())
    };
    let mut code: Option<CodeSection> = None;
    let mut allocs = wasmparser::OperatorsReaderAllocations::default();
    let mut body = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if let Payload::CodeSectionEntry(b) = &payload {
            body.clear();
            allocs = rewrite_body(b, &counts, &a, &mut body, allocs)?;
            code.get_or_insert_with(CodeSection::new).raw(&body);
            continue;
        }
        if let Some(rewritten) = code.take() {
            emit_code(&mut module, rewritten, &mut done)?;
        }
        match &payload {
            Payload::CustomSection(c) if c.name() == "name" => {
                let data = names(c.data(), c.data_offset(), &a)?;
                module.section(&wasm_encoder::CustomSection {
                    name: "name".into(),
                    data: data.into(),
                });
                continue;
            }
            Payload::CustomSection(c) => {
                module.section(&wasm_encoder::CustomSection {
                    name: c.name().into(),
                    data: c.data().into(),
                });
                continue;
            }
            Payload::ElementSection(r) => refuse_yield_in_elements(r.clone(), &counts)?,
            Payload::CodeSectionStart { .. } => {
                emit_below(&mut module, rank(CODE), &mut done);
                code = Some(CodeSection::new());
                continue;
            }
            _ => {}
        }
        let Some((id, range)) = payload.as_section() else {
            continue;
        };
        emit_below(&mut module, rank(id), &mut done);
        let data = &wasm[range];
        if additions.iter().any(|(i, _)| *i == id) {
            done.push(id);
            let data = append(data, &section_data(&additions, id))?;
            module.section(&RawSection { id, data: &data });
        } else {
            module.section(&RawSection { id, data });
        }
    }
    if let Some(rewritten) = code.take() {
        emit_code(&mut module, rewritten, &mut done)?;
    }
    emit_below(&mut module, u8::MAX, &mut done);
    Ok(module.finish())
}

/// A function pointer to `klp.yield` would call the unused import instead of suspending.
fn refuse_yield_in_elements(
    r: wasmparser::ElementSectionReader<'_>,
    c: &Counts,
) -> Result<(), InstrumentError> {
    let Some(y) = c.yield_func else {
        return Ok(());
    };
    for e in r {
        if let ElementItems::Functions(fs) = e?.items {
            for f in fs {
                if f? == y {
                    return Err(unsupported(format!(
                        "a function pointer to {YIELD_MODULE}.{YIELD_NAME}: only calls to it \
                         can become suspends"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Appends the rewritten `body` to `out`: yields become suspends, loop headers get the budget
/// check. Bytes are copied as they are between the instructions that change.
fn rewrite_body(
    body: &FunctionBody<'_>,
    c: &Counts,
    a: &Added,
    out: &mut Vec<u8>,
    allocs: wasmparser::OperatorsReaderAllocations,
) -> Result<wasmparser::OperatorsReaderAllocations, InstrumentError> {
    let raw = body.as_bytes();
    let base = body.range().start;
    let mut ops = wasmparser::OperatorsReader::new_with_allocs(
        body.get_binary_reader_for_operators()?,
        allocs,
    );
    let mut copied = 0usize;
    while !ops.eof() {
        let (op, at) = ops.read_with_offset()?;
        let at = at - base;
        let next = ops.original_position() - base;
        match op {
            Operator::Call { function_index } | Operator::ReturnCall { function_index }
                if Some(function_index) == c.yield_func =>
            {
                // With Switching::Import the call stays.
                let Switch::Stacks(s) = &a.switch else {
                    continue;
                };
                out.extend_from_slice(&raw[copied..at]);
                Instruction::Suspend(s.tag_yield).encode(out);
                if matches!(op, Operator::ReturnCall { .. }) {
                    Instruction::Return.encode(out);
                }
            }
            Operator::RefFunc { function_index } if Some(function_index) == c.yield_func => {
                return Err(unsupported(format!(
                    "ref.func of {YIELD_MODULE}.{YIELD_NAME}: only calls to it can become \
                     suspends"
                )));
            }
            Operator::Loop { .. } => {
                out.extend_from_slice(&raw[copied..next]);
                budget_check(a, out);
            }
            _ => continue,
        }
        copied = next;
    }
    ops.finish()?;
    out.extend_from_slice(&raw[copied..]);
    Ok(ops.into_allocations())
}

/// At a loop header: `budget -= 1; if budget < 0 { __klp_task_preempt() }`.
fn budget_check(a: &Added, out: &mut Vec<u8>) {
    for i in [
        Instruction::GlobalGet(a.g_budget),
        Instruction::I32Const(1),
        Instruction::I32Sub,
        Instruction::GlobalSet(a.g_budget),
        Instruction::GlobalGet(a.g_budget),
        Instruction::I32Const(0),
        Instruction::I32LtS,
        Instruction::If(BlockType::Empty),
        Instruction::Call(a.f_preempt),
        Instruction::End,
    ] {
        i.encode(out);
    }
}
