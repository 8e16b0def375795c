//! Writing the table (ftrace_update_code): a slot holds its target, or a trampoline for its hooks.

use super::trampoline::{self, Shape};
use super::{Slot, Users, func_name};
use crate::engine::Engine;
use crate::state::KernelState;
use crate::sys::SysResult;
use std::collections::{BTreeMap, BTreeSet};

/// A trampoline installed in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trampoline {
    /// Table entry of the trampoline; `base + 1` holds its target.
    pub base: u32,
    /// The engine instance.
    pub instance: u32,
    /// What it calls.
    pub shape: Shape,
}

impl Users {
    /// The trampoline the hooks need, if any.
    fn shape(self) -> Option<Shape> {
        let shape = Shape {
            entry: self.tracer || self.kprobe,
            exit: self.kretprobe,
        };
        (shape.entry || shape.exit).then_some(shape)
    }
}

/// The table entry a slot's calls should reach: livepatch's target slot, or the original.
fn target(s: &KernelState, slot: Slot) -> Option<u32> {
    let f = &s.ftrace;
    match f.redirect(slot) {
        Some(r) => Some(r.target.index()),
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

/// Writes what `slots` should hold, then every slot redirected to one of them (a redirected
/// slot holds a copy of its target's entry, which may just have changed).
///
/// # Errors
/// A table or instantiation error from the engine.
pub fn sync(e: &mut impl Engine, slots: impl IntoIterator<Item = Slot>) -> SysResult<()> {
    let dependents: BTreeMap<Slot, Vec<Slot>> = e.with_state(|s| {
        let mut map: BTreeMap<Slot, Vec<Slot>> = BTreeMap::new();
        for (slot, r) in s.ftrace.ops.redirects() {
            map.entry(r.target).or_default().push(slot);
        }
        map
    });
    let mut todo: Vec<Slot> = slots.into_iter().collect();
    let mut done = BTreeSet::new();
    while let Some(slot) = todo.pop() {
        if !done.insert(slot) {
            continue;
        }
        sync_one(e, slot)?;
        todo.extend(dependents.get(&slot).into_iter().flatten().copied());
    }
    Ok(())
}

/// [`sync`] for every slot with a user or a trampoline.
///
/// # Errors
/// As [`sync`].
pub fn sync_all(e: &mut impl Engine) -> SysResult<()> {
    let slots: BTreeSet<Slot> = e.with_state(|s| {
        let f = &s.ftrace;
        f.trampolines.keys().copied().chain(f.ops.slots()).collect()
    });
    sync(e, slots)
}

/// Takes a slot's trampoline out: clears its two entries and gives them back.
fn remove_trampoline(e: &mut impl Engine, slot: Slot) -> SysResult<()> {
    if let Some(old) = e.with_state(|s| s.ftrace.trampolines.remove(&slot)) {
        let cleared = e.table_clear(old.base, 2);
        e.release(old.instance);
        e.with_state(|s| s.ftrace.layout.give_back(old.base, 2));
        cleared?;
    }
    Ok(())
}

/// Builds and instantiates a trampoline for `slot`.
fn install_trampoline(e: &mut impl Engine, slot: Slot, shape: Shape) -> SysResult<Trampoline> {
    let base = alloc_range(e, 2)?;
    let (name, sig) = e.with_state(|s| {
        let sig = s
            .ftrace
            .info(slot)
            .map(|i| i.sig.clone())
            .unwrap_or_default();
        (func_name(s, slot), sig)
    });
    let wasm = trampoline::build(&name, slot.index(), &sig, base, shape);
    let instance = match e.instantiate(&wasm) {
        Ok(instance) => instance,
        Err(err) => {
            e.with_state(|s| s.ftrace.layout.give_back(base, 2));
            return Err(err.into());
        }
    };
    let t = Trampoline {
        base,
        instance,
        shape,
    };
    e.with_state(|s| s.ftrace.trampolines.insert(slot, t));
    Ok(t)
}

fn sync_one(e: &mut impl Engine, slot: Slot) -> SysResult<()> {
    let (shape, target, installed) = e.with_state(|s| {
        (
            s.ftrace.users(slot).shape(),
            target(s, slot),
            s.ftrace.trampolines.get(&slot).copied(),
        )
    });
    let Some(target) = target else {
        return remove_trampoline(e, slot);
    };
    let Some(shape) = shape else {
        remove_trampoline(e, slot)?;
        e.table_copy(slot.index(), target)?;
        return Ok(());
    };
    let tramp = match installed {
        Some(t) if t.shape == shape => t,
        _ => {
            remove_trampoline(e, slot)?;
            install_trampoline(e, slot, shape)?
        }
    };
    e.table_copy(tramp.base + 1, target)?;
    e.table_copy(slot.index(), tramp.base)?;
    Ok(())
}

/// A module's functions `base..base + n` are going away: their trampolines and users go, the
/// range `base..base + 2n` is cleared and given back. Every step runs even when one fails.
///
/// # Errors
/// The first table error.
pub fn release_module(e: &mut impl Engine, base: u32, n: u32) -> SysResult<()> {
    let range = base..base + n;
    let tramps: Vec<Slot> = e.with_state(|s| {
        let in_range = |slot: &&Slot| range.contains(&slot.index());
        s.ftrace
            .trampolines
            .keys()
            .filter(in_range)
            .copied()
            .collect()
    });
    let mut result = Ok(());
    for slot in tramps {
        let removed = remove_trampoline(e, slot);
        result = result.and(removed);
    }
    let cleared = e.table_clear(base, 2 * n).map_err(Into::into);
    e.with_state(|s| {
        s.ftrace.ops.forget(range.clone());
        s.ftrace.layout.remove_module(base, n);
    });
    result.and(cleared)
}
