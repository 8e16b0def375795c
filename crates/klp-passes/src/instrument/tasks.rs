//! Tasks that sleep inside kernel functions: `klp.yield` becomes a `suspend`, plus the dispatcher.
//!
//! When the kernel imports [`YIELD_MODULE`].[`YIELD_NAME`] (`[] -> []`, a point where the running
//! task gives up the CPU), [`super::instrument`] runs [`add_tasks`] on its output: every `call`
//! of that import becomes `suspend $klp_yield` (a `return_call` becomes `suspend $klp_yield;
//! return`), and a task dispatcher built on the WebAssembly stack-switching proposal is appended.
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
//!   [`STOP_FINISHED`], [`STOP_YIELDED`] or [`STOP_PREEMPTED`]. A trap inside the task traps
//!   out of the resume and leaves the other tasks resumable; the host then restores the two
//!   globals itself.
//! * Preemption: every `loop` header of every kernel function decrements `__klp_task_budget`;
//!   once it is below zero, `__klp_task_preempt` suspends the task as preempted (or, outside a
//!   task, sets the budget back to `i32::MAX` and returns). The host sets the budget before each
//!   resume: a budget of `n` lets `n` loop headers pass.
//!
//! Exports and the name section name everything the rewrite adds ([`EXPORTS`]), so backtraces
//! show `__klp_task_entry` and `__klp_task_resume` under a task's frames.

use std::borrow::Cow;

use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ContType, ElementSection, Elements, Encode, ExportKind,
    ExportSection, Function, FunctionSection, GlobalSection, GlobalType, Handle, HeapType,
    Instruction, Module, NameMap, RawSection, RefType, TableSection, TableType, TagKind,
    TagSection, TagType, TypeSection, ValType,
};
use wasmparser::{
    BinaryReader, ElementItems, ExternalKind, FunctionBody, Operator, Parser, Payload, TypeRef,
    WasmFeatures,
};

use super::InstrumentError;
use crate::func_count::MAX_KERNEL_FUNCS;

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
/// Every export the rewrite adds.
pub const EXPORTS: [&str; 5] = [SPAWN, RESUME, BUDGET, CURRENT, STOP];

/// Name (name section) of the trampoline every task runs in.
pub const ENTRY_NAME: &str = "__klp_task_entry";
/// Name (name section) of the function a loop header calls when the budget runs out.
pub const PREEMPT_NAME: &str = "__klp_task_preempt";

/// Whether `wasm` imports `klp.yield`, or went through [`add_tasks`] already: whether an engine
/// needs [`FEATURES`] to run it.
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
                    }
                }
                _ => {}
            }
        }
        c.funcs += c.func_imports;
        Ok(c)
    }
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

/// Indices of everything the rewrite adds.
struct Added {
    t_void: u32,
    t_ct: u32,
    t_entry: u32,
    t_tramp: u32,
    t_ct_tramp: u32,
    t_exit: u32,
    t_resume: u32,
    t_spawn: u32,
    f_entry: u32,
    f_spawn: u32,
    f_resume: u32,
    f_preempt: u32,
    tab_conts: u32,
    tab_idle: u32,
    tag_yield: u32,
    tag_preempt: u32,
    tag_exit: u32,
    g_budget: u32,
    g_current: u32,
    g_stop: u32,
    stack_pointer: u32,
}

impl Added {
    fn after(c: &Counts) -> Result<Self, InstrumentError> {
        let stack_pointer = c
            .stack_pointer
            .ok_or_else(|| unsupported("the kernel exports no __stack_pointer"))?;
        if c.tables == 0 {
            return Err(unsupported("no table 0 to call task entries through"));
        }
        if c.funcs > MAX_KERNEL_FUNCS - 4 {
            return Err(unsupported(format!(
                "{} functions with the task dispatcher's 4, over the limit of {MAX_KERNEL_FUNCS}",
                c.funcs + 4
            )));
        }
        let t = c.types;
        Ok(Added {
            t_void: t,
            t_ct: t + 1,
            t_entry: t + 2,
            t_tramp: t + 3,
            t_ct_tramp: t + 4,
            t_exit: t + 5,
            t_resume: t + 6,
            t_spawn: t + 7,
            f_entry: c.funcs,
            f_spawn: c.funcs + 1,
            f_resume: c.funcs + 2,
            f_preempt: c.funcs + 3,
            tab_conts: c.tables,
            tab_idle: c.tables + 1,
            tag_yield: c.tags,
            tag_preempt: c.tags + 1,
            tag_exit: c.tags + 2,
            g_budget: c.globals,
            g_current: c.globals + 1,
            g_stop: c.globals + 2,
            stack_pointer,
        })
    }

    fn cont(&self, t: u32, nullable: bool) -> RefType {
        RefType {
            nullable,
            heap_type: HeapType::Concrete(t),
        }
    }
}

/// Section ids, and where a section goes in a module (the tag section sits between memory and
/// global).
const TYPE: u8 = 1;
const FUNCTION: u8 = 3;
const TABLE: u8 = 4;
const GLOBAL: u8 = 6;
const EXPORT: u8 = 7;
const ELEMENT: u8 = 9;
const CODE: u8 = 10;
const TAG: u8 = 13;

fn rank(id: u8) -> u8 {
    match id {
        1..=5 => id,
        TAG => 6,
        6..=9 => id + 1,
        12 => 11,
        10 | 11 => id + 2,
        _ => 0,
    }
}

/// Rewrites an instrumented kernel for tasks: see the [module documentation](self). The kernel
/// need not import `klp.yield` (then only the dispatcher and the loop checks are added).
///
/// # Errors
///
/// [`InstrumentError::Parse`] for input that does not decode; [`InstrumentError::Unsupported`]
/// for a `klp.yield` of another type than `[] -> []` or used other than by `call` and
/// `return_call` (a function pointer to it, an export), a kernel that already exports one of
/// [`EXPORTS`], has no table or exported `__stack_pointer`, or would pass
/// [`MAX_KERNEL_FUNCS`] with the dispatcher's functions.
pub fn add_tasks(wasm: &[u8]) -> Result<Vec<u8>, InstrumentError> {
    let counts = Counts::read(wasm)?;
    let a = Added::after(&counts)?;
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
            done.push(CODE);
            let data = append(&payload_of(&rewritten), &section_data(&additions, CODE))?;
            module.section(&RawSection {
                id: CODE,
                data: &data,
            });
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
        done.push(CODE);
        let data = append(&payload_of(&rewritten), &section_data(&additions, CODE))?;
        module.section(&RawSection {
            id: CODE,
            data: &data,
        });
    }
    emit_below(&mut module, u8::MAX, &mut done);
    Ok(module.finish())
}

/// The payload (count and entries) of an encoded section.
fn payload_of(section: &impl Encode) -> Vec<u8> {
    let mut bytes = Vec::new();
    section.encode(&mut bytes);
    let mut r = BinaryReader::new(&bytes, 0);
    let _ = r.read_var_u32();
    bytes[r.original_position()..].to_vec()
}

fn section_data(additions: &[(u8, Vec<u8>)], id: u8) -> Vec<u8> {
    additions
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, d)| d.clone())
        .unwrap_or_default()
}

/// Two vector payloads (a count, then entries) as one.
fn append(old: &[u8], extra: &[u8]) -> Result<Vec<u8>, InstrumentError> {
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
                out.extend_from_slice(&raw[copied..at]);
                Instruction::Suspend(a.tag_yield).encode(out);
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

/// The payloads (count and entries) the rewrite adds to each section, by section id.
fn additions(a: &Added) -> Vec<(u8, Vec<u8>)> {
    let i32 = ValType::I32;
    let mut types = TypeSection::new();
    types.ty().function([], []); // t_void
    types.ty().cont(&ContType(a.t_void)); // t_ct
    types.ty().function([i32], []); // t_entry
    types.ty().function([i32, i32], []); // t_tramp
    types.ty().cont(&ContType(a.t_tramp)); // t_ct_tramp
    types.ty().function([], [i32, i32]); // t_exit
    types.ty().function([i32, i32], [i32]); // t_resume
    types.ty().function([i32, i32, i32], []); // t_spawn

    let mut functions = FunctionSection::new();
    functions.function(a.t_tramp);
    functions.function(a.t_spawn);
    functions.function(a.t_resume);
    functions.function(a.t_void);

    let mut tables = TableSection::new();
    for t in [a.t_ct, a.t_ct_tramp] {
        tables.table(TableType {
            element_type: a.cont(t, true),
            table64: false,
            minimum: u64::from(MAX_TASKS),
            maximum: Some(u64::from(MAX_TASKS)),
            shared: false,
        });
    }

    let mut tags = TagSection::new();
    for t in [a.t_void, a.t_void, a.t_exit] {
        tags.tag(TagType {
            kind: TagKind::Exception,
            func_type_idx: t,
        });
    }

    let mut globals = GlobalSection::new();
    let mut_i32 = GlobalType {
        val_type: i32,
        mutable: true,
        shared: false,
    };
    globals.global(mut_i32, &ConstExpr::i32_const(i32::MAX)); // budget
    globals.global(mut_i32, &ConstExpr::i32_const(-1)); // current
    globals.global(mut_i32, &ConstExpr::i32_const(STOP_FINISHED)); // stop

    let mut exports = ExportSection::new();
    exports.export(SPAWN, ExportKind::Func, a.f_spawn);
    exports.export(RESUME, ExportKind::Func, a.f_resume);
    exports.export(BUDGET, ExportKind::Global, a.g_budget);
    exports.export(CURRENT, ExportKind::Global, a.g_current);
    exports.export(STOP, ExportKind::Global, a.g_stop);

    let mut elements = ElementSection::new();
    elements.declared(Elements::Functions(Cow::Owned(vec![a.f_entry])));

    let mut code = CodeSection::new();
    code.function(&entry(a));
    code.function(&spawn(a));
    code.function(&resume(a));
    code.function(&preempt(a));

    vec![
        (TYPE, payload_of(&types)),
        (FUNCTION, payload_of(&functions)),
        (TABLE, payload_of(&tables)),
        (TAG, payload_of(&tags)),
        (GLOBAL, payload_of(&globals)),
        (EXPORT, payload_of(&exports)),
        (ELEMENT, payload_of(&elements)),
        (CODE, payload_of(&code)),
    ]
}

/// `__klp_task_entry(slot, arg)`: the bottom frame of every task. It calls the entry
/// `fn(i32)` through table 0, then suspends on `$klp_exit` instead of returning, so that its
/// continuation can be parked and resumed with the next task's `(slot, arg)`.
fn entry(a: &Added) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .loop_(BlockType::Empty)
        .local_get(1)
        .local_get(0)
        .call_indirect(0, a.t_entry)
        .suspend(a.tag_exit)
        .local_set(1)
        .local_set(0)
        .br(0)
        .end()
        .end();
    f
}

/// `__klp_task_spawn(task, slot, arg)`: binds `(slot, arg)` to the task slot's idle
/// continuation, or to a new one, and stores it in `conts[task]`; traps if the task slot holds a
/// task that has not finished.
fn spawn(a: &Added) -> Function {
    // local 3: the idle continuation
    let mut f = Function::new([(1, ValType::Ref(a.cont(a.t_ct_tramp, true)))]);
    f.instructions()
        .local_get(0)
        .table_get(a.tab_conts)
        .ref_is_null()
        .i32_eqz()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .local_get(0)
        .table_get(a.tab_idle)
        .local_set(3)
        .local_get(0)
        .ref_null(HeapType::Concrete(a.t_ct_tramp))
        .table_set(a.tab_idle)
        .local_get(0)
        .local_get(1)
        .local_get(2)
        .local_get(3)
        .ref_is_null()
        .if_(BlockType::Result(ValType::Ref(a.cont(a.t_ct_tramp, true))))
        .ref_func(a.f_entry)
        .cont_new(a.t_ct_tramp)
        .else_()
        .local_get(3)
        .end()
        .cont_bind(a.t_ct_tramp, a.t_ct)
        .table_set(a.tab_conts)
        .end();
    f
}

/// `__klp_task_resume(task, sp) -> i32`: see the [module documentation](self).
fn resume(a: &Added) -> Function {
    // locals: 2 the caller's sp, 3 the caller's current task, 4 the task, 5 a finished task's
    // continuation
    let mut f = Function::new([
        (2, ValType::I32),
        (1, ValType::Ref(a.cont(a.t_ct, true))),
        (1, ValType::Ref(a.cont(a.t_ct_tramp, true))),
    ]);
    let suspended = BlockType::Result(ValType::Ref(a.cont(a.t_ct, false)));
    f.instructions()
        .global_get(a.stack_pointer)
        .local_set(2)
        .global_get(a.g_current)
        .local_set(3)
        .local_get(1)
        .global_set(a.stack_pointer)
        .local_get(0)
        .global_set(a.g_current)
        // Take the task out of its slot: after a trap the slot is empty, not consumed.
        .local_get(0)
        .table_get(a.tab_conts)
        .local_set(4)
        .local_get(0)
        .ref_null(HeapType::Concrete(a.t_ct))
        .table_set(a.tab_conts)
        .block(suspended) // $suspended
        .block(BlockType::Result(ValType::Ref(a.cont(a.t_ct_tramp, false)))) // $finished
        .block(suspended) // $preempted
        .block(suspended) // $yielded
        .local_get(4)
        .resume(
            a.t_ct,
            [
                Handle::OnLabel {
                    tag: a.tag_yield,
                    label: 0,
                },
                Handle::OnLabel {
                    tag: a.tag_preempt,
                    label: 1,
                },
                Handle::OnLabel {
                    tag: a.tag_exit,
                    label: 2,
                },
            ],
        )
        .unreachable() // __klp_task_entry never returns
        .end()
        .i32_const(STOP_YIELDED)
        .global_set(a.g_stop)
        .br(2)
        .end()
        .i32_const(STOP_PREEMPTED)
        .global_set(a.g_stop)
        .br(1)
        .end()
        // Finished: park the continuation for the next spawn into this task slot.
        .local_set(5)
        .local_get(0)
        .local_get(5)
        .table_set(a.tab_idle)
        .i32_const(STOP_FINISHED)
        .global_set(a.g_stop)
        .local_get(2)
        .global_set(a.stack_pointer)
        .local_get(3)
        .global_set(a.g_current)
        .i32_const(0)
        .return_()
        .end()
        // Stopped: keep the continuation, return the task's sp.
        .local_set(4)
        .local_get(0)
        .local_get(4)
        .table_set(a.tab_conts)
        .global_get(a.stack_pointer)
        .local_get(2)
        .global_set(a.stack_pointer)
        .local_get(3)
        .global_set(a.g_current)
        .end();
    f
}

/// `__klp_task_preempt()`: suspends the running task as preempted; outside a task, turns
/// preemption off until the host sets a budget.
fn preempt(a: &Added) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .global_get(a.g_current)
        .i32_const(0)
        .i32_lt_s()
        .if_(BlockType::Empty)
        .i32_const(i32::MAX)
        .global_set(a.g_budget)
        .return_()
        .end()
        .suspend(a.tag_preempt)
        .end();
    f
}

/// The name section with the names of what the rewrite adds: functions (1), tables (5),
/// globals (7) and tags (11), each appended to its subsection, or a subsection added in order.
fn names(data: &[u8], offset: usize, a: &Added) -> Result<Vec<u8>, InstrumentError> {
    let map = |entries: &[(u32, &str)]| {
        let mut m = NameMap::new();
        for (i, n) in entries {
            m.append(*i, n);
        }
        let mut out = Vec::new();
        m.encode(&mut out);
        out
    };
    let mut extra: Vec<(u8, Vec<u8>)> = vec![
        (
            1,
            map(&[
                (a.f_entry, ENTRY_NAME),
                (a.f_spawn, SPAWN),
                (a.f_resume, RESUME),
                (a.f_preempt, PREEMPT_NAME),
            ]),
        ),
        (
            5,
            map(&[
                (a.tab_conts, "__klp_task_conts"),
                (a.tab_idle, "__klp_task_idle"),
            ]),
        ),
        (
            7,
            map(&[
                (a.g_budget, BUDGET),
                (a.g_current, CURRENT),
                (a.g_stop, STOP),
            ]),
        ),
        (
            11,
            map(&[
                (a.tag_yield, "klp_yield"),
                (a.tag_preempt, "klp_preempt"),
                (a.tag_exit, "klp_exit"),
            ]),
        ),
    ];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::instrument;
    use crate::test_util::bodies;
    use wasmparser::{Name, Validator};

    /// A kernel-like module: a shadow stack, a function table, a sleeping path through
    /// `schedule`, a loop that never yields, a tail call to the yield point.
    const KERNEL: &str = r#"(module
        (import "klp" "yield" (func $klp_yield))
        (global $__stack_pointer (mut i32) (i32.const 65536))
        (memory 1)
        (table 4 funcref)
        (elem (i32.const 1) $sleeper $spinner)
        (func $schedule call $klp_yield)
        (func $cond_resched return_call $klp_yield)
        (func $sleeper (param i32)
            (loop $l
                call $schedule
                local.get 0 i32.const 1 i32.sub local.tee 0
                br_if $l))
        (func $spinner (param i32)
            (block $out (loop $l (loop $inner br $out))))
        (func $run (export "run") (result i32) i32.const 7))"#;

    fn task_kernel() -> Vec<u8> {
        instrument(&wat::parse_str(KERNEL).unwrap(), &[])
            .unwrap()
            .wasm
    }

    fn validate_tasks(wasm: &[u8]) {
        validate(wasm).unwrap();
    }

    fn export(wasm: &[u8], name: &str) -> Option<(ExternalKind, u32)> {
        Parser::new(0)
            .parse_all(wasm)
            .find_map(|p| match p.unwrap() {
                Payload::ExportSection(r) => r
                    .into_iter()
                    .map(Result::unwrap)
                    .find(|e| e.name == name)
                    .map(|e| (e.kind, e.index)),
                _ => None,
            })
    }

    fn names(wasm: &[u8], which: u8) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::CustomSection(c) = p.unwrap()
                && let wasmparser::KnownCustom::Name(r) = c.as_known()
            {
                for sub in r {
                    let m = match (sub.unwrap(), which) {
                        (Name::Function(m), 1)
                        | (Name::Table(m), 5)
                        | (Name::Global(m), 7)
                        | (Name::Tag(m), 11) => m,
                        _ => continue,
                    };
                    out.extend(m.into_iter().map(|n| {
                        let n = n.unwrap();
                        (n.index, n.name.to_string())
                    }));
                }
            }
        }
        out
    }

    #[test]
    fn a_kernel_importing_yield_gets_a_valid_dispatcher() {
        let wasm = task_kernel();
        validate_tasks(&wasm);
        assert!(uses_tasks(&wasm).unwrap());
        assert!(matches!(
            export(&wasm, SPAWN),
            Some((ExternalKind::Func, _))
        ));
        assert!(matches!(
            export(&wasm, RESUME),
            Some((ExternalKind::Func, _))
        ));
        for g in [BUDGET, CURRENT, STOP] {
            assert!(
                matches!(export(&wasm, g), Some((ExternalKind::Global, _))),
                "{g}"
            );
        }
        // Without the stack-switching features it does not validate.
        assert!(
            Validator::new_with_features(super::super::FEATURES)
                .validate_all(&wasm)
                .is_err()
        );
    }

    #[test]
    fn the_ftrace_map_and_kallsyms_read_back_from_a_kernel_with_tasks() {
        let raw = wat::parse_str(KERNEL).unwrap();
        let out = instrument(&raw, &[]).unwrap();
        assert!(is_rewritten(&out.wasm));
        assert!(!is_rewritten(&raw));
        assert_eq!(
            crate::instrument::FtraceMap::from_instrumented(&out.wasm).unwrap(),
            out.ftrace
        );
        let syms = crate::kallsyms::Kallsyms::from_kernel(&out.wasm).unwrap();
        assert!(syms.lookup_global("sleeper").is_some());
        assert!(matches!(
            instrument(&out.wasm, &[]),
            Err(InstrumentError::AlreadyInstrumented)
        ));
        // A raw kernel still gets the hook's features only, yield or not.
        let sneaky = wat::parse_str(KERNEL.replace(
            "(func $run",
            "(type $t (func)) (func $target (type $t)) (elem declare func $target) (func $run",
        ).replace(
            "(func $schedule call $klp_yield)",
            "(func $schedule call $klp_yield ref.func $target call_ref $t)",
        ))
        .unwrap();
        assert!(matches!(
            instrument(&sneaky, &[]),
            Err(InstrumentError::Feature { .. })
        ));
    }

    #[test]
    fn yields_become_suspends_and_nothing_else_calls_the_import() {
        let wasm = task_kernel();
        let b = bodies(&wasm);
        let calls = |op: &Operator<'_>| {
            matches!(
                op,
                Operator::Call { function_index: 0 } | Operator::ReturnCall { function_index: 0 }
            )
        };
        assert!(!b.iter().flatten().any(calls));
        // $schedule: suspend; $cond_resched: suspend; return. Tag 0 is $klp_yield.
        assert!(matches!(b[0][0], Operator::Suspend { tag_index: 0 }));
        assert!(matches!(
            b[1][..2],
            [Operator::Suspend { tag_index: 0 }, Operator::Return]
        ));
        // The import is still there, so no index moved.
        let ex = export(&wasm, "run").unwrap().1;
        let fnames = names(&wasm, 1);
        assert!(
            fnames.contains(&(ex, "__klp_thunk_run".into())),
            "{fnames:?}"
        );
    }

    #[test]
    fn every_loop_header_of_the_kernel_checks_the_budget() {
        let wasm = task_kernel();
        let budget = export(&wasm, BUDGET).unwrap().1;
        let preempt = names(&wasm, 1)
            .into_iter()
            .find(|(_, n)| n == PREEMPT_NAME)
            .unwrap()
            .0;
        let b = bodies(&wasm);
        let kernel_bodies = &b[..b.len() - 4];
        let mut loops = 0;
        for body in kernel_bodies {
            for (i, op) in body.iter().enumerate() {
                if !matches!(op, Operator::Loop { .. }) {
                    continue;
                }
                loops += 1;
                let check = &body[i + 1..i + 11];
                assert!(
                    matches!(
                        check,
                        [
                            Operator::GlobalGet { global_index: g1 },
                            Operator::I32Const { value: 1 },
                            Operator::I32Sub,
                            Operator::GlobalSet { global_index: g2 },
                            Operator::GlobalGet { global_index: g3 },
                            Operator::I32Const { value: 0 },
                            Operator::I32LtS,
                            Operator::If { .. },
                            Operator::Call { function_index: p },
                            Operator::End,
                        ] if [*g1, *g2, *g3] == [budget; 3] && *p == preempt
                    ),
                    "{check:?}"
                );
            }
        }
        assert_eq!(loops, 3);
        // The dispatcher's own loop (the task entry) has no check.
        let entry = &b[b.len() - 4];
        assert!(!entry.iter().any(|op| matches!(op, Operator::Call { .. })));
    }

    #[test]
    fn names_the_dispatcher_in_the_name_section() {
        let wasm = task_kernel();
        let fnames: Vec<String> = names(&wasm, 1).into_iter().map(|(_, n)| n).collect();
        for n in [
            ENTRY_NAME,
            SPAWN,
            RESUME,
            PREEMPT_NAME,
            "schedule",
            "sleeper",
        ] {
            assert!(fnames.iter().any(|f| f == n), "{n} in {fnames:?}");
        }
        let globals: Vec<String> = names(&wasm, 7).into_iter().map(|(_, n)| n).collect();
        assert!(
            globals.ends_with(&[BUDGET.into(), CURRENT.into(), STOP.into()]),
            "{globals:?}"
        );
        assert_eq!(names(&wasm, 5).len(), 2);
        let tags: Vec<String> = names(&wasm, 11).into_iter().map(|(_, n)| n).collect();
        assert_eq!(tags, ["klp_yield", "klp_preempt", "klp_exit"]);
    }

    #[test]
    fn a_kernel_without_yield_is_left_as_the_hook_makes_it() {
        let raw = wat::parse_str(KERNEL.replace(
            r#"(import "klp" "yield" (func $klp_yield))"#,
            r#"(import "klp" "other" (func $klp_yield))"#,
        ))
        .unwrap();
        assert!(!uses_tasks(&raw).unwrap());
        let out = instrument(&raw, &[]).unwrap().wasm;
        assert!(!uses_tasks(&out).unwrap());
        assert_eq!(export(&out, RESUME), None);
        crate::test_util::validate(&out);
        // The real rustc kernel test data has no yield either: its output needs no new feature.
        let rustc = instrument(include_bytes!("../../tests/data/exp_kernel.wasm"), &[]).unwrap();
        crate::test_util::validate(&rustc.wasm);
        assert!(!uses_tasks(&rustc.wasm).unwrap());
    }

    #[test]
    fn add_tasks_to_a_kernel_without_yield_adds_the_dispatcher_only() {
        let raw = wat::parse_str(KERNEL.replace(
            r#"(import "klp" "yield" (func $klp_yield))"#,
            r#"(import "klp" "other" (func $klp_yield))"#,
        ))
        .unwrap();
        let out = add_tasks(&instrument(&raw, &[]).unwrap().wasm).unwrap();
        validate_tasks(&out);
        assert!(
            bodies(&out)[0]
                .iter()
                .any(|op| matches!(op, Operator::Call { function_index: 0 }))
        );
    }

    #[test]
    fn uses_of_yield_other_than_calls_are_refused() {
        for (from, to) in [
            (
                "(elem (i32.const 1) $sleeper $spinner)",
                "(elem (i32.const 1) $sleeper $klp_yield)",
            ),
            (
                "(func $schedule call $klp_yield)",
                "(func $schedule (drop (ref.func $klp_yield)))
                (elem declare func $klp_yield)",
            ),
        ] {
            let raw = wat::parse_str(KERNEL.replace(from, to)).unwrap();
            let err = instrument(&raw, &[]).unwrap_err();
            assert!(err.to_string().contains("klp.yield: only calls"), "{err}");
        }
        let raw = wat::parse_str(
            KERNEL
                .replace("(func $klp_yield)", "(func $klp_yield (param i32))")
                .replace(
                    "return_call $klp_yield",
                    "i32.const 0 return_call $klp_yield",
                )
                .replace("(func $schedule call", "(func $schedule i32.const 0 call"),
        )
        .unwrap();
        let err = instrument(&raw, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kernel: klp.yield has type (func (param i32)), not [] -> []"
        );
        let raw =
            wat::parse_str(KERNEL.replace("(export \"run\")", "(export \"__klp_task_spawn\")"))
                .unwrap();
        let err = instrument(&raw, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported kernel: the kernel already exports `__klp_task_spawn`"
        );
    }
}
