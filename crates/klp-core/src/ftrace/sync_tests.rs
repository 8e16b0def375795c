//! Unit tests of `sync` on a table model: which entries transitions, dispatchers and trampolines write.

use super::dispatcher::ENTRIES;
use super::*;
use crate::engine::{Callee, Engine, EngineError, InstanceId};
use crate::errno::Errno;
use crate::instrument::{FtraceEntry, ValType};
use crate::kallsyms::Kallsyms;
use crate::sys::{SysError, SysResult};
use wasmparser::{ElementKind, Operator, Parser, Payload};

/// What a table entry holds: a kernel function (by slot), or function `n` of a generated
/// instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Kernel(u32),
    Gen(InstanceId, u32),
}

/// A table and the instances written into it; no guest code runs.
struct Model {
    state: KernelState,
    table: Vec<Option<Entry>>,
    /// Every module instantiated, by instance id.
    modules: Vec<Vec<u8>>,
    released: Vec<InstanceId>,
    /// Fail the next instantiation.
    fail: bool,
}

/// Slots 1..=4: `f1`..`f4`, all `(i32) -> i32`.
const N: u32 = 5;
const F: Slot = Slot(1);
const NEW1: Slot = Slot(2);
const NEW2: Slot = Slot(3);
const G: Slot = Slot(4);
const CURRENT: u32 = 0x100;
const OFFSET: u32 = 24;
/// Where the model's `kmalloc` puts the trace ring buffer.
const RING: u32 = 0x1000;

impl Model {
    fn new() -> Self {
        let i2i = FuncSig {
            params: vec![ValType::I32],
            results: vec![ValType::I32],
        };
        let entries = (1..N)
            .map(|slot| FtraceEntry {
                func_index: slot,
                name: format!("f{slot}"),
                slot,
                notrace: false,
                sig: i2i.clone(),
            })
            .collect();
        let map = FtraceMap {
            nr_slots: N,
            entries,
        };
        let mut table = vec![None; 2 * N as usize];
        for slot in 1..N {
            table[slot as usize] = Some(Entry::Kernel(slot));
            table[(slot + N) as usize] = Some(Entry::Kernel(slot));
        }
        Model {
            state: KernelState::new(&map, Kallsyms::default(), ""),
            table,
            modules: Vec::new(),
            released: Vec::new(),
            fail: false,
        }
    }

    fn at(&self, index: u32) -> Option<Entry> {
        self.table.get(index as usize).copied().flatten()
    }

    fn ftrace(&mut self) -> &mut Ftrace {
        &mut self.state.ftrace
    }

    fn sync(&mut self, slots: &[Slot]) -> SysResult<()> {
        sync(self, slots.iter().copied())
    }
}

impl Engine for Model {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        f(&mut self.state)
    }

    /// Only `kmalloc`, for the trace ring buffer: it gets [`RING`].
    fn call(&mut self, callee: Callee<'_>, _: &[i32]) -> Result<Option<i32>, EngineError> {
        match callee {
            Callee::Export("kmalloc") => Ok(Some(RING as i32)),
            _ => Err(EngineError::NoExport("model".into())),
        }
    }

    fn read(&mut self, addr: u32, _: &mut [u8]) -> Result<(), EngineError> {
        Err(EngineError::Fault(addr))
    }

    /// Writes into the ring buffer's header succeed (and are dropped); others fault.
    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), EngineError> {
        let end = addr as usize + data.len();
        if addr >= RING && end <= (RING + crate::tracing::ring::HEADER) as usize {
            Ok(())
        } else {
            Err(EngineError::Fault(addr))
        }
    }

    fn table_len(&mut self) -> u32 {
        self.table.len() as u32
    }

    fn table_grow(&mut self, delta: u32) -> Result<u32, EngineError> {
        let old = self.table.len() as u32;
        self.table.resize((old + delta) as usize, None);
        Ok(old)
    }

    fn table_copy(&mut self, dst: u32, src: u32) -> Result<(), EngineError> {
        let len = self.table.len();
        let (d, s) = (dst as usize, src as usize);
        if d >= len || s >= len {
            return Err(EngineError::Table(format!("{dst} <- {src}")));
        }
        self.table[d] = self.table[s];
        Ok(())
    }

    fn table_clear(&mut self, start: u32, len: u32) -> Result<(), EngineError> {
        for i in start..start + len {
            self.table[i as usize] = None;
        }
        Ok(())
    }

    fn stack_pointer(&mut self) -> u32 {
        0
    }

    fn set_stack_pointer(&mut self, _: u32) {}

    fn instantiate(&mut self, wasm: &[u8]) -> Result<InstanceId, EngineError> {
        if std::mem::take(&mut self.fail) {
            return Err(EngineError::Instantiate("injected".into()));
        }
        wasmparser::Validator::new()
            .validate_all(wasm)
            .map_err(|e| EngineError::Compile(e.to_string()))?;
        let id = self.modules.len() as InstanceId + 1;
        let mut imported = 0;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.unwrap() {
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        let imp = imp.unwrap();
                        imported += u32::from(matches!(imp.ty, wasmparser::TypeRef::Func(_)));
                    }
                }
                Payload::ElementSection(r) => {
                    for el in r {
                        let el = el.unwrap();
                        let ElementKind::Active { offset_expr, .. } = el.kind else {
                            panic!("passive segment");
                        };
                        let Ok(Operator::I32Const { value }) =
                            offset_expr.get_operators_reader().read()
                        else {
                            panic!("offset");
                        };
                        let wasmparser::ElementItems::Functions(funcs) = el.items else {
                            panic!("expressions");
                        };
                        for (i, func) in (value as u32..).zip(funcs) {
                            self.table[i as usize] = Some(Entry::Gen(id, func.unwrap() - imported));
                        }
                    }
                }
                _ => {}
            }
        }
        self.modules.push(wasm.to_vec());
        Ok(id)
    }

    fn backtrace(&mut self) -> Vec<Option<String>> {
        Vec::new()
    }

    fn release(&mut self, id: InstanceId) {
        self.released.push(id);
    }
}

fn patched(m: &mut Model) {
    m.ftrace().set_redirect(F, "p2", NEW2).unwrap();
    m.sync(&[F]).unwrap();
}

#[test]
fn a_transition_without_current_is_einval_and_changes_nothing() {
    let mut m = Model::new();
    patched(&mut m);
    m.ftrace().set_transition(F, None).unwrap();
    let before = m.table.clone();
    let err = m.sync(&[F]).unwrap_err();
    assert!(matches!(err, SysError::Errno(Errno::EINVAL)), "{err:?}");
    assert_eq!(m.table, before);
    assert_eq!(m.state.ftrace.dispatchers(), 0);
    assert!(m.modules.is_empty());
}

#[test]
fn a_slot_in_transition_reaches_a_dispatcher_of_three_entries() {
    let mut m = Model::new();
    patched(&mut m);
    let len = m.table.len() as u32;
    m.ftrace().set_current(CURRENT, OFFSET);
    m.ftrace().set_transition(F, None).unwrap();
    m.sync(&[F]).unwrap();
    let d = *m.state.ftrace.dispatcher(F).expect("a dispatcher");
    assert_eq!(d.base, len, "three new entries at the end of the table");
    assert_eq!(m.table.len() as u32, len + ENTRIES);
    assert_eq!(m.at(F.index()), Some(Entry::Gen(d.instance, 0)));
    assert_eq!(m.at(d.base), Some(Entry::Gen(d.instance, 0)));
    assert_eq!(m.at(d.base + 1), Some(Entry::Kernel(NEW2.index())));
    assert_eq!(
        m.at(d.base + 2),
        Some(Entry::Kernel(F.index())),
        "the original"
    );
    assert_eq!(
        d.current,
        Current {
            current_ptr: CURRENT,
            patch_state_offset: OFFSET
        }
    );
    // The alternative: the previous func_stack entry's new_func.
    m.ftrace().set_transition(F, Some(NEW1)).unwrap();
    m.sync(&[F]).unwrap();
    assert_eq!(
        m.state.ftrace.dispatcher(F),
        Some(&d),
        "the same dispatcher"
    );
    assert_eq!(m.at(d.base + 2), Some(Entry::Kernel(NEW1.index())));
    assert_eq!(m.modules.len(), 1);
    // The end of the transition: the slot is direct; the dispatcher is parked for the slot's
    // next transition, its targets cleared, its instance kept.
    assert!(m.ftrace().clear_transition(F));
    m.sync(&[F]).unwrap();
    assert_eq!(m.at(F.index()), Some(Entry::Kernel(NEW2.index())));
    assert_eq!(m.state.ftrace.dispatchers(), 0);
    assert!(m.released.is_empty());
    assert_eq!(m.state.ftrace.instances(), 1);
    assert_eq!((m.at(d.base + 1), m.at(d.base + 2)), (None, None));
    // The next transition of F instantiates nothing: the same dispatcher comes back.
    m.ftrace().set_transition(F, None).unwrap();
    m.sync(&[F]).unwrap();
    assert_eq!(m.state.ftrace.dispatcher(F), Some(&d));
    assert_eq!(m.modules.len(), 1);
    assert_eq!(m.at(F.index()), m.at(d.base));
    assert_eq!(m.at(d.base + 2), Some(Entry::Kernel(F.index())));
}

#[test]
fn a_transition_needs_a_redirect_and_an_alternative_of_the_same_type() {
    let mut m = Model::new();
    assert_eq!(
        m.ftrace().set_transition(F, None),
        Err(Refusal::NotRedirected)
    );
    patched(&mut m);
    assert_eq!(
        m.ftrace().set_transition(F, Some(Slot(99))),
        Err(Refusal::BadTarget)
    );
    assert_eq!(m.state.ftrace.transition(F), None);
    m.ftrace().set_transition(F, Some(NEW1)).unwrap();
    assert_eq!(
        m.state.ftrace.transition(F),
        Some(Transition { alt: Some(NEW1) })
    );
}

#[test]
fn dispatchers_of_one_update_share_an_instance_and_a_disabled_patch_clears_all() {
    let mut m = Model::new();
    m.ftrace().set_current(CURRENT, OFFSET);
    m.ftrace().set_redirect(F, "p", NEW1).unwrap();
    m.ftrace().set_redirect(G, "p", NEW2).unwrap();
    m.ftrace().set_transition(F, None).unwrap();
    m.ftrace().set_transition(G, None).unwrap();
    m.sync(&[F, G]).unwrap();
    let (df, dg) = (
        *m.state.ftrace.dispatcher(F).unwrap(),
        *m.state.ftrace.dispatcher(G).unwrap(),
    );
    assert_eq!(df.instance, dg.instance);
    assert_eq!(m.modules.len(), 1);
    assert_eq!(m.state.ftrace.instances(), 1);
    assert_ne!(df.base, dg.base);
    assert_eq!(m.at(F.index()), m.at(df.base));
    assert_eq!(m.at(G.index()), m.at(dg.base));
    assert_ne!(m.at(F.index()), m.at(G.index()));
    // The unpatching transition ends: no redirect, no transition, the originals again.
    m.ftrace().clear_redirect(F);
    m.sync(&[F]).unwrap();
    m.ftrace().clear_redirect(G);
    m.sync(&[G]).unwrap();
    assert!(m.released.is_empty(), "both dispatchers are parked");
    assert_eq!(m.at(F.index()), Some(Entry::Kernel(F.index())));
    assert_eq!(m.at(G.index()), Some(Entry::Kernel(G.index())));
    // The next transition reuses the parked dispatcher: no growth, no instance.
    let len = m.table.len();
    m.ftrace().set_redirect(F, "p", NEW1).unwrap();
    m.ftrace().set_transition(F, None).unwrap();
    m.sync(&[F]).unwrap();
    assert_eq!(m.table.len(), len);
    assert_eq!(m.modules.len(), 1);
    assert_eq!(*m.state.ftrace.dispatcher(F).unwrap(), df);
}

#[test]
fn hooks_and_a_transition_chain_slot_trampoline_dispatcher_targets() {
    let mut m = Model::new();
    m.ftrace().set_current(CURRENT, OFFSET);
    patched(&mut m);
    m.ftrace().add_hook(F, Hook::Tracer).unwrap();
    m.ftrace().set_transition(F, Some(NEW1)).unwrap();
    m.sync(&[F]).unwrap();
    let t = m.state.ftrace.trampoline(F).unwrap().clone();
    let d = *m.state.ftrace.dispatcher(F).unwrap();
    assert_ne!(
        t.instance, d.instance,
        "a trampoline module and a dispatcher module"
    );
    assert_eq!(m.at(F.index()), Some(Entry::Gen(t.instance, 0)));
    assert_eq!(m.at(t.base + 1), Some(Entry::Gen(d.instance, 0)));
    assert_eq!(m.at(d.base + 1), Some(Entry::Kernel(NEW2.index())));
    assert_eq!(m.at(d.base + 2), Some(Entry::Kernel(NEW1.index())));
    // The transition ends: the trampoline calls the target directly.
    m.ftrace().clear_transition(F);
    m.sync(&[F]).unwrap();
    assert_eq!(m.at(F.index()), Some(Entry::Gen(t.instance, 0)));
    assert_eq!(m.at(t.base + 1), Some(Entry::Kernel(NEW2.index())));
    assert!(m.released.is_empty(), "the dispatcher is parked");
    // And the tracer goes: the slot is direct; only the parked dispatcher's instance is left.
    m.ftrace().remove_hook(F, &Hook::Tracer);
    m.sync(&[F]).unwrap();
    assert_eq!(m.at(F.index()), Some(Entry::Kernel(NEW2.index())));
    assert_eq!(m.released, [t.instance]);
    assert_eq!(m.state.ftrace.instances(), 1);
}

#[test]
fn a_hook_on_the_alternative_reaches_the_dispatchers_unpatched_entry() {
    let mut m = Model::new();
    m.ftrace().set_current(CURRENT, OFFSET);
    patched(&mut m);
    m.ftrace().set_transition(F, Some(NEW1)).unwrap();
    m.sync(&[F]).unwrap();
    let d = *m.state.ftrace.dispatcher(F).unwrap();
    // Syncing the alternative's slot rewrites the slots that dispatch to it.
    m.ftrace().add_hook(NEW1, Hook::Tracer).unwrap();
    m.sync(&[NEW1]).unwrap();
    let t = m.state.ftrace.trampoline(NEW1).unwrap().clone();
    assert_eq!(m.at(d.base + 2), Some(Entry::Gen(t.instance, 0)));
    assert_eq!(m.at(d.base + 1), Some(Entry::Kernel(NEW2.index())));
}

#[test]
fn a_new_current_rebuilds_the_dispatchers_and_a_failed_build_changes_nothing() {
    let mut m = Model::new();
    m.ftrace().set_current(CURRENT, OFFSET);
    patched(&mut m);
    m.ftrace().set_transition(F, None).unwrap();
    m.sync(&[F]).unwrap();
    let old = *m.state.ftrace.dispatcher(F).unwrap();
    m.ftrace().set_current(CURRENT + 4, OFFSET);
    m.fail = true;
    let before = m.table.clone();
    assert!(m.sync(&[F]).is_err());
    assert_eq!(m.table[..before.len()], before[..]);
    assert_eq!(m.state.ftrace.dispatcher(F), Some(&old));
    m.sync(&[F]).unwrap();
    let new = *m.state.ftrace.dispatcher(F).unwrap();
    assert_ne!(new.instance, old.instance);
    assert_eq!(new.current.current_ptr, CURRENT + 4);
    assert_eq!(m.at(F.index()), Some(Entry::Gen(new.instance, 0)));
    assert_eq!(m.released, [old.instance]);
    assert_eq!(m.at(old.base), None);
}

#[test]
fn release_module_takes_the_dispatchers_of_its_slots() {
    let mut m = Model::new();
    m.ftrace().set_current(CURRENT, OFFSET);
    let base = m.table.len() as u32;
    m.table_grow(4).unwrap();
    let sig = m.state.ftrace.info(F).unwrap().sig.clone();
    m.ftrace().add_module("mod", base, &[sig.clone(), sig]);
    m.table[base as usize] = Some(Entry::Kernel(100));
    m.table[base as usize + 2] = Some(Entry::Kernel(100));
    let slot = Slot(base);
    m.ftrace().set_redirect(slot, "p", Slot(base + 1)).unwrap();
    m.ftrace().set_transition(slot, None).unwrap();
    m.sync(&[slot]).unwrap();
    let d = *m.state.ftrace.dispatcher(slot).unwrap();
    release_module(&mut m, base, 2).unwrap();
    assert_eq!(m.state.ftrace.dispatchers(), 0);
    assert_eq!(m.released, [d.instance]);
    assert_eq!(m.state.ftrace.free_entries(), ENTRIES + 4);
}
