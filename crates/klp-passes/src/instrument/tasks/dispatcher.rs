//! The task dispatcher the rewrite appends: where each new item goes, and the items themselves.

use std::borrow::Cow;

use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ContType, ElementSection, Elements, ExportKind,
    ExportSection, Function, FunctionSection, GlobalSection, GlobalType, Handle, HeapType, RefType,
    TableSection, TableType, TagKind, TagSection, TagType, TypeSection, ValType,
};

use super::splice::{CODE, ELEMENT, EXPORT, FUNCTION, GLOBAL, TABLE, TAG, TYPE, payload_of};
use super::{
    BUDGET, CURRENT, Counts, InstrumentError, MAX_TASKS, RESUME, SPAWN, STOP, STOP_FINISHED,
    STOP_PREEMPTED, STOP_YIELDED, Switching, unsupported,
};
use crate::func_count::MAX_KERNEL_FUNCS;

/// Indices of everything the rewrite adds: the preemption check's globals and function, and,
/// for [`Switching::Stacks`], the stack-switching dispatcher.
pub(super) struct Added {
    pub(super) t_void: u32,
    pub(super) f_preempt: u32,
    pub(super) g_budget: u32,
    pub(super) g_current: u32,
    pub(super) g_stop: u32,
    /// How a task leaves the CPU.
    pub(super) switch: Switch,
}

/// How a task of the rewritten kernel leaves the CPU.
pub(super) enum Switch {
    /// [`Switching::Stacks`]: a suspend, and the dispatcher's indices.
    Stacks(Stacks),
    /// [`Switching::Import`]: a call of the `klp.yield` import, at this function index.
    Import(u32),
}

/// The stack-switching dispatcher's indices.
pub(super) struct Stacks {
    pub(super) t_ct: u32,
    pub(super) t_entry: u32,
    pub(super) t_tramp: u32,
    pub(super) t_ct_tramp: u32,
    pub(super) t_exit: u32,
    pub(super) t_resume: u32,
    pub(super) t_spawn: u32,
    pub(super) f_entry: u32,
    pub(super) f_spawn: u32,
    pub(super) f_resume: u32,
    pub(super) tab_conts: u32,
    pub(super) tab_idle: u32,
    pub(super) tag_yield: u32,
    pub(super) tag_preempt: u32,
    pub(super) tag_exit: u32,
    pub(super) stack_pointer: u32,
    /// The caller global, cleared before a task's entry function is called (the scheduler,
    /// not a kernel function, calls it).
    pub(super) caller: Option<u32>,
}

impl Added {
    pub(super) fn after(c: &Counts, switching: Switching) -> Result<Self, InstrumentError> {
        let (g_budget, g_current, g_stop) = (c.globals, c.globals + 1, c.globals + 2);
        let t = c.types;
        Ok(match switching {
            Switching::Import => {
                let yield_func = c.yield_func.ok_or_else(|| {
                    unsupported("no klp.yield import for the engine to switch tasks with")
                })?;
                if c.funcs > MAX_KERNEL_FUNCS - 1 {
                    return Err(unsupported(format!(
                        "{} functions with the preemption check, over the limit of \
                         {MAX_KERNEL_FUNCS}",
                        c.funcs + 1
                    )));
                }
                Added {
                    t_void: t,
                    f_preempt: c.funcs,
                    g_budget,
                    g_current,
                    g_stop,
                    switch: Switch::Import(yield_func),
                }
            }
            Switching::Stacks => {
                let stack_pointer = c
                    .stack_pointer
                    .ok_or_else(|| unsupported("the kernel exports no __stack_pointer"))?;
                if c.tables == 0 {
                    return Err(unsupported("no table 0 to call task entries through"));
                }
                if c.funcs > MAX_KERNEL_FUNCS - 4 {
                    return Err(unsupported(format!(
                        "{} functions with the task dispatcher's 4, over the limit of \
                         {MAX_KERNEL_FUNCS}",
                        c.funcs + 4
                    )));
                }
                Added {
                    t_void: t,
                    f_preempt: c.funcs + 3,
                    g_budget,
                    g_current,
                    g_stop,
                    switch: Switch::Stacks(Stacks {
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
                        tab_conts: c.tables,
                        tab_idle: c.tables + 1,
                        tag_yield: c.tags,
                        tag_preempt: c.tags + 1,
                        tag_exit: c.tags + 2,
                        stack_pointer,
                        caller: c.caller,
                    }),
                }
            }
        })
    }
}

impl Stacks {
    pub(super) fn cont(&self, t: u32, nullable: bool) -> RefType {
        RefType {
            nullable,
            heap_type: HeapType::Concrete(t),
        }
    }
}

/// The payloads (count and entries) the rewrite adds to each section, by section id.
pub(super) fn additions(a: &Added) -> Vec<(u8, Vec<u8>)> {
    let i32 = ValType::I32;
    let mut types = TypeSection::new();
    types.ty().function([], []); // t_void
    let mut functions = FunctionSection::new();
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
    exports.export(BUDGET, ExportKind::Global, a.g_budget);
    exports.export(CURRENT, ExportKind::Global, a.g_current);
    exports.export(STOP, ExportKind::Global, a.g_stop);
    let mut code = CodeSection::new();

    let Switch::Stacks(s) = &a.switch else {
        functions.function(a.t_void);
        code.function(&preempt(a));
        return vec![
            (TYPE, payload_of(&types)),
            (FUNCTION, payload_of(&functions)),
            (GLOBAL, payload_of(&globals)),
            (EXPORT, payload_of(&exports)),
            (CODE, payload_of(&code)),
        ];
    };
    types.ty().cont(&ContType(a.t_void)); // t_ct
    types.ty().function([i32], []); // t_entry
    types.ty().function([i32, i32], []); // t_tramp
    types.ty().cont(&ContType(s.t_tramp)); // t_ct_tramp
    types.ty().function([], [i32, i32]); // t_exit
    types.ty().function([i32, i32], [i32]); // t_resume
    types.ty().function([i32, i32, i32], []); // t_spawn

    functions.function(s.t_tramp);
    functions.function(s.t_spawn);
    functions.function(s.t_resume);
    functions.function(a.t_void);

    let mut tables = TableSection::new();
    for t in [s.t_ct, s.t_ct_tramp] {
        tables.table(TableType {
            element_type: s.cont(t, true),
            table64: false,
            minimum: u64::from(MAX_TASKS),
            maximum: Some(u64::from(MAX_TASKS)),
            shared: false,
        });
    }

    let mut tags = TagSection::new();
    for t in [a.t_void, a.t_void, s.t_exit] {
        tags.tag(TagType {
            kind: TagKind::Exception,
            func_type_idx: t,
        });
    }

    exports.export(SPAWN, ExportKind::Func, s.f_spawn);
    exports.export(RESUME, ExportKind::Func, s.f_resume);

    let mut elements = ElementSection::new();
    elements.declared(Elements::Functions(Cow::Owned(vec![s.f_entry])));

    code.function(&entry(s));
    code.function(&spawn(s));
    code.function(&resume(a, s));
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

/// `__klp_task_entry(slot, arg)`: the bottom frame of every task. It clears the caller global
/// (no kernel function calls a task's entry) and calls the entry `fn(i32)` through table 0,
/// then suspends on `$klp_exit` instead of returning, so that its
/// continuation can be parked and resumed with the next task's `(slot, arg)`.
fn entry(s: &Stacks) -> Function {
    let mut f = Function::new([]);
    let mut code = f.instructions();
    code.loop_(BlockType::Empty);
    if let Some(caller) = s.caller {
        code.i32_const(0).global_set(caller);
    }
    code.local_get(1)
        .local_get(0)
        .call_indirect(0, s.t_entry)
        .suspend(s.tag_exit)
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
fn spawn(s: &Stacks) -> Function {
    // local 3: the idle continuation
    let mut f = Function::new([(1, ValType::Ref(s.cont(s.t_ct_tramp, true)))]);
    f.instructions()
        .local_get(0)
        .table_get(s.tab_conts)
        .ref_is_null()
        .i32_eqz()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .local_get(0)
        .table_get(s.tab_idle)
        .local_set(3)
        .local_get(0)
        .ref_null(HeapType::Concrete(s.t_ct_tramp))
        .table_set(s.tab_idle)
        .local_get(0)
        .local_get(1)
        .local_get(2)
        .local_get(3)
        .ref_is_null()
        .if_(BlockType::Result(ValType::Ref(s.cont(s.t_ct_tramp, true))))
        .ref_func(s.f_entry)
        .cont_new(s.t_ct_tramp)
        .else_()
        .local_get(3)
        .end()
        .cont_bind(s.t_ct_tramp, s.t_ct)
        .table_set(s.tab_conts)
        .end();
    f
}

/// `__klp_task_resume(task, sp) -> i32`: see the [tasks module documentation](super).
fn resume(a: &Added, s: &Stacks) -> Function {
    // locals: 2 the caller's sp, 3 the caller's current task, 4 the task, 5 a finished task's
    // continuation
    let mut f = Function::new([
        (2, ValType::I32),
        (1, ValType::Ref(s.cont(s.t_ct, true))),
        (1, ValType::Ref(s.cont(s.t_ct_tramp, true))),
    ]);
    let suspended = BlockType::Result(ValType::Ref(s.cont(s.t_ct, false)));
    f.instructions()
        // No task in the slot (or none such): trap before anything changes.
        .local_get(0)
        .table_get(s.tab_conts)
        .local_tee(4)
        .ref_is_null()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        // Take the task out of its slot: after a trap inside it the slot is empty, not consumed.
        .local_get(0)
        .ref_null(HeapType::Concrete(s.t_ct))
        .table_set(s.tab_conts)
        .global_get(s.stack_pointer)
        .local_set(2)
        .global_get(a.g_current)
        .local_set(3)
        .local_get(1)
        .global_set(s.stack_pointer)
        .local_get(0)
        .global_set(a.g_current)
        .block(suspended) // $suspended
        .block(BlockType::Result(ValType::Ref(s.cont(s.t_ct_tramp, false)))) // $finished
        .block(suspended) // $preempted
        .block(suspended) // $yielded
        .local_get(4)
        .resume(
            s.t_ct,
            [
                Handle::OnLabel {
                    tag: s.tag_yield,
                    label: 0,
                },
                Handle::OnLabel {
                    tag: s.tag_preempt,
                    label: 1,
                },
                Handle::OnLabel {
                    tag: s.tag_exit,
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
        .table_set(s.tab_idle)
        .i32_const(STOP_FINISHED)
        .global_set(a.g_stop)
        .local_get(2)
        .global_set(s.stack_pointer)
        .local_get(3)
        .global_set(a.g_current)
        .i32_const(0)
        .return_()
        .end()
        // Stopped: keep the continuation, return the task's sp.
        .local_set(4)
        .local_get(0)
        .local_get(4)
        .table_set(s.tab_conts)
        .global_get(s.stack_pointer)
        .local_get(2)
        .global_set(s.stack_pointer)
        .local_get(3)
        .global_set(a.g_current)
        .end();
    f
}

/// `__klp_task_preempt()`: stops the running task as preempted; outside a task, turns
/// preemption off until the host sets a budget. With stack switching it suspends the task;
/// with [`Switching::Import`] it says why in `__klp_task_stop` and calls `klp.yield`, whose
/// engine reads it.
fn preempt(a: &Added) -> Function {
    let mut f = Function::new([]);
    let mut i = f.instructions();
    i.global_get(a.g_current)
        .i32_const(0)
        .i32_lt_s()
        .if_(BlockType::Empty)
        .i32_const(i32::MAX)
        .global_set(a.g_budget)
        .return_()
        .end();
    match &a.switch {
        Switch::Stacks(s) => {
            i.suspend(s.tag_preempt);
        }
        Switch::Import(y) => {
            i.i32_const(STOP_PREEMPTED).global_set(a.g_stop).call(*y);
        }
    }
    i.end();
    f
}
