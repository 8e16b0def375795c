//! Writing the table (ftrace_update_code): a slot holds its target, a trampoline for its hooks, or a dispatcher.

use super::dispatcher;
use super::trampoline::{self, Shape};
use super::{Slot, Users, func_name};
use crate::engine::Engine;
use crate::state::KernelState;
use crate::sys::SysResult;
use std::collections::{BTreeMap, BTreeSet};

/// A trampoline installed in a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trampoline {
    /// Table entry of the trampoline; `base + 1` holds its target.
    pub base: u32,
    /// The engine instance.
    pub instance: u32,
    /// What it records.
    pub shape: Shape,
}

/// The trampoline `slot`'s hooks need, if any: the tracer's event, and the events of the
/// kprobes and kretprobes whose hooks are on it, in the order they were defined. A kprobe sits
/// in the original function, which a live patch no longer runs: it records nothing then.
fn shape(s: &KernelState, slot: Slot) -> Option<Shape> {
    let users: Users = s.ftrace.users(slot);
    if !(users.tracer || users.kprobe || users.kretprobe) {
        return None;
    }
    let hooks = s.ftrace.hooks(slot);
    let probes = |ret: bool| -> Vec<u32> {
        s.tracing
            .kprobes
            .iter()
            .filter(|k| k.ret == ret && k.slot == slot && hooks.contains(&k.hook()))
            .map(|k| k.id)
            .collect()
    };
    Some(Shape {
        tracer: users.tracer,
        kprobes: if users.kprobe && !users.livepatch {
            probes(false)
        } else {
            Vec::new()
        },
        kretprobes: if users.kretprobe {
            probes(true)
        } else {
            Vec::new()
        },
    })
}

/// The table entry a slot's calls should reach: livepatch's target slot, or the original.
fn target(s: &KernelState, slot: Slot) -> Option<u32> {
    let f = &s.ftrace;
    match f.redirect(slot) {
        Some(r) => Some(r.target.index()),
        None => f.info(slot).map(|i| i.orig),
    }
}

/// The table entry a task still `KLP_TRANSITION_UNPATCHED` should reach, while `slot` is in
/// transition: the alternative's slot, or the original.
fn unpatched_target(s: &KernelState, slot: Slot) -> Option<u32> {
    let f = &s.ftrace;
    match f.transition(slot)?.alt {
        Some(alt) => Some(alt.index()),
        None => f.info(slot).map(|i| i.orig),
    }
}

/// Takes `len` consecutive table entries: a freed range (first fit), or new ones at the end.
///
/// # Errors
/// The engine's error when the table cannot grow.
pub fn alloc_range(e: &mut impl Engine, len: u32) -> SysResult<u32> {
    match e.with_state(|s| s.ftrace.layout.take_free(len)) {
        Some(base) => Ok(base),
        None => Ok(e.table_grow(len)?),
    }
}

/// Writes what `slots` should hold, then every slot redirected to one of them or having one of
/// them as its transition's alternative (a redirected slot holds a copy of its target's entry,
/// which may just have changed). The trampolines the update needs are built into one module,
/// and its dispatchers into another: one instance each per update, not per function.
///
/// # Errors
/// `EINVAL` when a slot is in transition but [`super::Ftrace::set_current`] was never called
/// (nothing changes then); a table or instantiation error from the engine.
pub fn sync(e: &mut impl Engine, slots: impl IntoIterator<Item = Slot>) -> SysResult<()> {
    // The code first: a swap overwrites every entry the kernel's code holds, so every
    // redirected one is written again below.
    let swapped = super::code::update(e)?;
    let mut slots: BTreeSet<Slot> = slots.into_iter().collect();
    if swapped {
        slots.extend(e.with_state(|s| written(s)));
    }
    let order = e.with_state(|s| {
        let mut dependents: BTreeMap<Slot, Vec<Slot>> = BTreeMap::new();
        for (slot, r) in s.ftrace.ops.redirects() {
            dependents.entry(r.target).or_default().push(slot);
            if let Some(alt) = r.transition.and_then(|t| t.alt) {
                dependents.entry(alt).or_default().push(slot);
            }
        }
        let mut todo: Vec<Slot> = slots.into_iter().collect();
        let mut done = BTreeSet::new();
        let mut order = Vec::new();
        while let Some(slot) = todo.pop() {
            if done.insert(slot) {
                order.push(slot);
                todo.extend(dependents.get(&slot).into_iter().flatten().copied());
            }
        }
        order
    });
    let replaced = dispatcher::install(e, &order)?;
    let result = install_trampolines(e, &order)
        .and_then(|()| order.iter().try_for_each(|&slot| sync_one(e, slot)));
    let released = dispatcher::release(e, &replaced);
    let unparked = e.with_state(|s| std::mem::take(&mut s.ftrace.unparked));
    let unparked = dispatcher::release(e, &unparked);
    result.and(released).and(unparked)
}

/// [`sync`] for every slot with a user or a trampoline.
///
/// # Errors
/// As [`sync`].
pub fn sync_all(e: &mut impl Engine) -> SysResult<()> {
    let slots = e.with_state(|s| written(s));
    sync(e, slots)
}

/// Every slot with a user or a trampoline.
fn written(s: &KernelState) -> BTreeSet<Slot> {
    let f = &s.ftrace;
    let generated = f.trampolines.keys().chain(f.dispatchers.keys());
    generated.copied().chain(f.ops.slots()).collect()
}

/// Takes a slot's trampoline out: clears its two entries and gives them back. The instance goes
/// with the last trampoline it holds.
fn remove_trampoline(e: &mut impl Engine, slot: Slot) -> SysResult<()> {
    if let Some(old) = e.with_state(|s| s.ftrace.trampolines.remove(&slot)) {
        let cleared = e.table_clear(old.base, 2);
        e.with_state(|s| s.ftrace.layout.give_back(old.base, 2));
        unref_instance(e, old.instance);
        cleared?;
    }
    Ok(())
}

/// A trampoline or dispatcher of `instance` is gone: the instance goes with the last one.
pub(super) fn unref_instance(e: &mut impl Engine, instance: u32) {
    let last = e.with_state(|s| {
        let refs = s.ftrace.refs.entry(instance).or_insert(1);
        *refs -= 1;
        let last = *refs == 0;
        if last {
            s.ftrace.refs.remove(&instance);
        }
        last
    });
    if last {
        e.release(instance);
    }
}

/// Builds and instantiates, as one module, the trampolines that the slots of `order` need and
/// do not have (a slot whose trampoline has another shape loses it first).
fn install_trampolines(e: &mut impl Engine, order: &[Slot]) -> SysResult<()> {
    let wanted: Vec<(Slot, Shape)> = e.with_state(|s| {
        order
            .iter()
            .filter(|&&slot| target(s, slot).is_some())
            .filter_map(|&slot| {
                let shape = shape(s, slot)?;
                let installed = s.ftrace.trampolines.get(&slot).map(|t| &t.shape);
                (installed != Some(&shape)).then_some((slot, shape))
            })
            .collect()
    });
    if wanted.is_empty() {
        return Ok(());
    }
    let ring = crate::tracing::ring::ensure(e)?;
    let mut specs = Vec::with_capacity(wanted.len());
    let mut build = || -> SysResult<u32> {
        for (slot, shape) in &wanted {
            let (slot, shape) = (*slot, shape.clone());
            remove_trampoline(e, slot)?;
            let base = alloc_range(e, 2)?;
            specs.push(e.with_state(|s| {
                trampoline::Spec {
                    name: func_name(s, slot),
                    slot: slot.index(),
                    sig: s
                        .ftrace
                        .info(slot)
                        .map(|i| i.sig.clone())
                        .unwrap_or_default(),
                    base,
                    shape,
                }
            }));
        }
        Ok(e.instantiate(&trampoline::build(&specs, ring))?)
    };
    let instance = build();
    let instance = match instance {
        Ok(instance) => instance,
        Err(err) => {
            e.with_state(|s| {
                for spec in &specs {
                    s.ftrace.layout.give_back(spec.base, 2);
                }
            });
            return Err(err);
        }
    };
    e.with_state(|s| {
        let f = &mut s.ftrace;
        f.refs.insert(instance, specs.len() as u32);
        for ((slot, shape), spec) in wanted.into_iter().zip(&specs) {
            let t = Trampoline {
                base: spec.base,
                instance,
                shape,
            };
            f.trampolines.insert(slot, t);
        }
    });
    Ok(())
}

/// Writes one slot: the dispatcher's two targets (in transition), then the trampoline's target
/// (with hooks), then the slot; a dispatcher no longer needed goes after.
fn sync_one(e: &mut impl Engine, slot: Slot) -> SysResult<()> {
    let (shape, target, unpatched, installed, disp) = e.with_state(|s| {
        (
            shape(s, slot),
            target(s, slot),
            unpatched_target(s, slot),
            s.ftrace.trampolines.get(&slot).cloned(),
            s.ftrace.dispatchers.get(&slot).copied(),
        )
    });
    let Some(patched) = target else {
        remove_trampoline(e, slot)?;
        return dispatcher::remove(e, slot);
    };
    let target = match (unpatched, disp) {
        (Some(unpatched), Some(d)) => {
            e.table_copy(d.base + 1, patched)?;
            e.table_copy(d.base + 2, unpatched)?;
            d.base
        }
        // [`dispatcher::install`] installed every dispatcher the update needs.
        (Some(_), None) => return Err(crate::errno::Errno::EINVAL.into()),
        (None, _) => patched,
    };
    match (shape, installed) {
        (Some(shape), Some(tramp)) if tramp.shape == shape => {
            e.table_copy(tramp.base + 1, target)?;
            e.table_copy(slot.index(), tramp.base)?;
        }
        // [`install_trampolines`] installed every trampoline the update needs.
        (Some(_), _) => return Err(crate::errno::Errno::EINVAL.into()),
        (None, _) => {
            remove_trampoline(e, slot)?;
            e.table_copy(slot.index(), target)?;
        }
    }
    if unpatched.is_none() {
        dispatcher::remove(e, slot)?;
    }
    Ok(())
}

/// A module's functions `base..base + n` are going away: their trampolines, dispatchers and users go, the
/// range `base..base + 2n` is cleared and given back. Every step runs even when one fails.
///
/// # Errors
/// The first table error.
pub fn release_module(e: &mut impl Engine, base: u32, n: u32) -> SysResult<()> {
    let range = base..base + n;
    let (tramps, disps): (Vec<Slot>, Vec<Slot>) = e.with_state(|s| {
        let in_range = |slot: &&Slot| range.contains(&slot.index());
        let f = &s.ftrace;
        (
            f.trampolines.keys().filter(in_range).copied().collect(),
            f.dispatchers.keys().filter(in_range).copied().collect(),
        )
    });
    let mut result = Ok(());
    for slot in tramps {
        let removed = remove_trampoline(e, slot);
        result = result.and(removed);
    }
    for slot in disps {
        let removed = dispatcher::remove(e, slot);
        result = result.and(removed);
    }
    // Every dispatcher of the module's functions is parked now: release them.
    let parked: Vec<Slot> = e.with_state(|s| {
        let in_range = |slot: &&Slot| range.contains(&slot.index());
        s.ftrace.parked.keys().filter(in_range).copied().collect()
    });
    for slot in parked {
        let released = dispatcher::unpark(e, slot);
        result = result.and(released);
    }
    let cleared = e.table_clear(base, 2 * n).map_err(Into::into);
    e.with_state(|s| {
        s.ftrace.ops.forget(range.clone());
        s.ftrace.layout.remove_module(base, n);
    });
    result.and(cleared)
}
