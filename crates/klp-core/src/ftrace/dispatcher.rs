//! Transition dispatchers (klp_ftrace_handler during a transition): per task, the new function or the one below.

use super::trampoline::{Generated, assemble, sig_types, table_import};
use super::update::{alloc_range, unref_instance};
use super::{Slot, func_name};
use crate::engine::Engine;
use crate::instrument::FuncSig;
use crate::sys::SysResult;
use wasm_encoder::{
    EntityType, Function, ImportSection, Instruction, MemArg, MemoryType, NameMap, TypeSection,
};

/// Prefix of dispatcher names in backtraces.
pub const DISPATCHER_PREFIX: &str = "__klp_transition_";

/// Table entries a dispatcher takes: itself, the patched target, the unpatched target.
pub const ENTRIES: u32 = 3;

/// `task_struct::patch_state` of a task not yet switched: it runs the function below the top.
pub const KLP_TRANSITION_UNPATCHED: i32 = 0;
/// `task_struct::patch_state` of a switched task: it runs the top of the func_stack.
pub const KLP_TRANSITION_PATCHED: i32 = 1;
/// `task_struct::patch_state` outside a transition: like a switched task, it runs the top.
pub const KLP_TRANSITION_IDLE: i32 = -1;

/// Where a dispatcher finds `current->patch_state` in kernel memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Address of the word holding `current` (a `*mut task_struct`). It must point at a task
    /// whenever a dispatcher can run: a dispatcher does not test for NULL.
    pub current_ptr: u32,
    /// Offset of `patch_state` (an `i32`) inside `task_struct`.
    pub patch_state_offset: u32,
}

/// A dispatcher installed for a slot in transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatcher {
    /// Table entry of the dispatcher; `base + 1` holds the patched target (the redirect's
    /// target), `base + 2` the unpatched one (the alternative, or the original).
    pub base: u32,
    /// The engine instance.
    pub instance: u32,
    /// Where it reads `current->patch_state`.
    pub current: Current,
}

/// One dispatcher of a [`build`]: for the function `name` of signature `sig`, at table entry
/// `base`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The function's name, for backtraces.
    pub name: String,
    /// Its signature.
    pub sig: FuncSig,
    /// The dispatcher's own table entry; `base + 1` and `base + 2` hold its targets.
    pub base: u32,
}

/// The dispatcher of `spec`: `return_call_indirect` of entry `base + 2` when
/// `current->patch_state` is `KLP_TRANSITION_UNPATCHED`, else of `base + 1`.
fn body(spec: &Spec, ty: u32, current: Current) -> Function {
    let mut f = Function::new([]);
    for i in 0..spec.sig.params.len() as u32 {
        f.instruction(&Instruction::LocalGet(i));
    }
    let word = |offset: u32| MemArg {
        offset: u64::from(offset),
        align: 2,
        memory_index: 0,
    };
    f.instruction(&Instruction::I32Const((spec.base + 1) as i32));
    f.instruction(&Instruction::I32Const((spec.base + 2) as i32));
    f.instruction(&Instruction::I32Const(current.current_ptr as i32));
    f.instruction(&Instruction::I32Load(word(0)));
    f.instruction(&Instruction::I32Load(word(current.patch_state_offset)));
    // patch_state != UNPATCHED (0) selects base + 1.
    f.instruction(&Instruction::Select);
    f.instruction(&Instruction::ReturnCallIndirect {
        type_index: ty,
        table_index: 0,
    });
    f.instruction(&Instruction::End);
    f
}

/// Builds one module holding the dispatchers of `specs`, reading `current` (needs the
/// tail-call feature). It imports `env.memory` and `env.__indirect_function_table`; each
/// dispatcher is written to its `base` by its own element segment.
pub fn build(specs: &[Spec], current: Current) -> Vec<u8> {
    let mut types = TypeSection::new();
    let type_of = sig_types(&mut types, 0, specs.iter().map(|s| &s.sig));
    let mut imports = ImportSection::new();
    let memory = MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    };
    imports.import("env", "memory", EntityType::Memory(memory));
    table_import(
        &mut imports,
        specs.iter().map(|s| u64::from(s.base) + u64::from(ENTRIES)),
    );
    let funcs = specs.iter().zip(type_of).map(|(spec, ty)| Generated {
        ty,
        body: body(spec, ty, current),
        base: spec.base,
        name: format!("{DISPATCHER_PREFIX}{}", spec.name),
    });
    assemble(&types, &imports, 0, NameMap::new(), funcs)
}

/// Takes a slot's dispatcher out of use: its two targets are cleared and it is parked for the
/// slot's next transition (released by [`unpark`], or once no patch describes the function).
pub(super) fn remove(e: &mut impl Engine, slot: Slot) -> SysResult<()> {
    match e.with_state(|s| s.ftrace.dispatchers.remove(&slot)) {
        Some(old) => {
            // Parked for the slot's next transition; its targets are cleared, so it holds no
            // function of anything that may go away.
            let cleared = e.table_clear(old.base + 1, ENTRIES - 1);
            e.with_state(|s| s.ftrace.parked.insert(slot, old));
            Ok(cleared?)
        }
        None => Ok(()),
    }
}

/// Releases the parked dispatcher of `slot` (its function goes away).
pub(super) fn unpark(e: &mut impl Engine, slot: Slot) -> SysResult<()> {
    match e.with_state(|s| s.ftrace.parked.remove(&slot)) {
        Some(old) => release(e, &[old]),
        None => Ok(()),
    }
}

/// Builds and instantiates, as one module, the dispatchers that the slots of `order` in
/// transition need and do not have (or have reading another `current`). Returns the replaced
/// dispatchers, for [`release`] once the slots are rewritten; a failed build changes nothing.
///
/// # Errors
/// `EINVAL` when a slot is in transition and [`super::Ftrace::set_current`] was never called;
/// a table or instantiation error from the engine.
pub(super) fn install(e: &mut impl Engine, order: &[Slot]) -> SysResult<Vec<Dispatcher>> {
    let (current, wanted) = e.with_state(|s| {
        let f = &s.ftrace;
        let wanted: Vec<Slot> = order
            .iter()
            .copied()
            .filter(|&slot| f.redirect(slot).is_some_and(|r| r.transition.is_some()))
            .filter(|slot| {
                let installed = f.dispatchers.get(slot).map(|d| d.current);
                f.current.is_none() || installed != f.current
            })
            .collect();
        (f.current, wanted)
    });
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let current = current.ok_or(crate::errno::Errno::EINVAL)?;
    // A slot's parked dispatcher reading the same `current` comes back without a new instance.
    let wanted: Vec<Slot> = e.with_state(|s| {
        let f = &mut s.ftrace;
        wanted
            .into_iter()
            .filter(|slot| match f.parked.remove(slot) {
                Some(d) if d.current == current && !f.dispatchers.contains_key(slot) => {
                    f.dispatchers.insert(*slot, d);
                    false
                }
                Some(d) => {
                    f.parked.insert(*slot, d);
                    true
                }
                None => true,
            })
            .collect()
    });
    let stale: Vec<Slot> = e.with_state(|s| {
        let f = &s.ftrace;
        wanted
            .iter()
            .copied()
            .filter(|slot| f.parked.contains_key(slot))
            .collect()
    });
    for slot in stale {
        unpark(e, slot)?;
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut specs = Vec::with_capacity(wanted.len());
    let mut build = || -> SysResult<u32> {
        for &slot in &wanted {
            let base = alloc_range(e, ENTRIES)?;
            specs.push(e.with_state(|s| {
                Spec {
                    name: func_name(s, slot),
                    sig: s
                        .ftrace
                        .info(slot)
                        .map(|i| i.sig.clone())
                        .unwrap_or_default(),
                    base,
                }
            }));
        }
        Ok(e.instantiate(&build(&specs, current))?)
    };
    let instance = match build() {
        Ok(instance) => instance,
        Err(err) => {
            e.with_state(|s| {
                for spec in &specs {
                    s.ftrace.layout.give_back(spec.base, ENTRIES);
                }
            });
            return Err(err);
        }
    };
    e.with_state(|s| {
        let f = &mut s.ftrace;
        f.refs.insert(instance, specs.len() as u32);
        let mut replaced = Vec::new();
        for (&slot, spec) in wanted.iter().zip(&specs) {
            let new = Dispatcher {
                base: spec.base,
                instance,
                current,
            };
            replaced.extend(f.dispatchers.insert(slot, new));
        }
        Ok(replaced)
    })
}

/// Clears and gives back dispatchers replaced by [`install`], once no slot reaches them.
pub(super) fn release(e: &mut impl Engine, old: &[Dispatcher]) -> SysResult<()> {
    let mut result = Ok(());
    for d in old {
        let cleared = e.table_clear(d.base, ENTRIES);
        e.with_state(|s| s.ftrace.layout.give_back(d.base, ENTRIES));
        unref_instance(e, d.instance);
        result = result.and(cleared.map_err(Into::into));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::ValType;

    #[test]
    fn dispatchers_validate_for_every_signature_in_one_module() {
        let sigs = [
            FuncSig {
                params: vec![ValType::I32, ValType::I32],
                results: vec![ValType::I32],
            },
            FuncSig::default(),
            FuncSig {
                params: vec![ValType::I64, ValType::F32],
                results: vec![ValType::I64, ValType::I32],
            },
        ];
        let current = Current {
            current_ptr: 0x1000,
            patch_state_offset: 24,
        };
        let specs: Vec<Spec> = (0u32..)
            .zip(sigs.iter().chain(&sigs))
            .map(|(i, sig)| Spec {
                name: format!("f{i}"),
                sig: sig.clone(),
                base: 100 + ENTRIES * i,
            })
            .collect();
        for spec in &specs {
            let wasm = build(std::slice::from_ref(spec), current);
            wasmparser::Validator::new()
                .validate_all(&wasm)
                .unwrap_or_else(|e| panic!("{}: {e}", spec.sig));
        }
        let wasm = build(&specs, current);
        wasmparser::Validator::new()
            .validate_all(&wasm)
            .expect("a batch of dispatchers validates");
        // One type per distinct signature, one element segment per dispatcher.
        let mut types = 0;
        let mut segments = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
            match payload.unwrap() {
                wasmparser::Payload::TypeSection(r) => types = r.count(),
                wasmparser::Payload::ElementSection(r) => {
                    segments.extend(r.into_iter().map(|el| match el.unwrap().kind {
                        wasmparser::ElementKind::Active { offset_expr, .. } => {
                            match offset_expr.get_operators_reader().read().unwrap() {
                                wasmparser::Operator::I32Const { value } => value,
                                op => panic!("{op:?}"),
                            }
                        }
                        _ => panic!("passive segment"),
                    }))
                }
                _ => {}
            }
        }
        assert_eq!(types, 3);
        assert_eq!(segments, [100, 103, 106, 109, 112, 115]);
    }

    #[test]
    fn without_tail_calls_a_dispatcher_does_not_validate() {
        let spec = Spec {
            name: "f".into(),
            sig: FuncSig::default(),
            base: 10,
        };
        let current = Current {
            current_ptr: 8,
            patch_state_offset: 4,
        };
        let wasm = build(&[spec], current);
        let features = wasmparser::WasmFeatures::default() - wasmparser::WasmFeatures::TAIL_CALL;
        assert!(
            wasmparser::Validator::new_with_features(features)
                .validate_all(&wasm)
                .is_err()
        );
    }
}
