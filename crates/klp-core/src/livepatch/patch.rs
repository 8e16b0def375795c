//! func_stacks (kernel/livepatch/patch.c): push and pop per function, and where a slot leads.

use super::plan::Draft;
use super::{Livepatch, PatchId};
use crate::errno::Errno;
use crate::ftrace::{Ftrace, Owner, Refusal, Slot};
use std::collections::BTreeMap;

/// One `klp_func` on a func_stack: which patch redirects the function, and to which slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEntry {
    patch: PatchId,
    new_func: Slot,
}

impl StackEntry {
    /// The patch.
    pub fn patch(&self) -> PatchId {
        self.patch
    }

    /// The replacement's slot.
    pub fn new_func(&self) -> Slot {
        self.new_func
    }
}

/// Every func_stack (Linux's `klp_ops` list), by the patched function's slot, oldest entry
/// first: the newest entry's function is the one calls reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuncStacks(BTreeMap<Slot, Vec<StackEntry>>);

impl FuncStacks {
    /// The func_stack of a patched function.
    pub fn get(&self, slot: Slot) -> Option<&[StackEntry]> {
        self.0.get(&slot).map(Vec::as_slice)
    }

    /// What calls through `slot` should reach: the newest entry; `None` means the original.
    pub fn top(&self, slot: Slot) -> Option<&StackEntry> {
        self.0.get(&slot)?.last()
    }

    /// Every patched function with its func_stack, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &[StackEntry])> {
        self.0.iter().map(|(&slot, stack)| (slot, stack.as_slice()))
    }

    /// Number of patched functions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no function is patched.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pushes `patch`'s replacement on `slot`'s stack (`klp_patch_func`).
    fn push(&mut self, slot: Slot, patch: PatchId, new_func: Slot) {
        self.0
            .entry(slot)
            .or_default()
            .push(StackEntry { patch, new_func });
    }

    /// Takes `patch`'s entries off `slot`'s stack (`klp_unpatch_func`); an empty stack goes.
    fn pop(&mut self, slot: Slot, patch: PatchId) {
        if let Some(stack) = self.0.get_mut(&slot) {
            stack.retain(|en| en.patch != patch);
            if stack.is_empty() {
                self.0.remove(&slot);
            }
        }
    }
}

/// The message for a function ftrace will not redirect, as livepatch prints it.
fn refusal_messages(d: &mut Draft, name: &str, refusal: &Refusal) {
    match refusal {
        Refusal::NotTraceable => {
            d.err(format!(
                "failed to set ftrace filter for function '{name}' (-22)"
            ));
        }
        Refusal::BadTarget => d.err(format!("invalid replacement for function '{name}'")),
        Refusal::NotRedirected => d.err(format!("function '{name}' is not patched")),
        Refusal::Type { want, got } => d.err(format!(
            "replacement for function '{name}' has type {got} instead of {want}"
        )),
        Refusal::Disabled | Refusal::Busy(_) => {
            if let Refusal::Busy(Owner::Kretprobe(probe)) = refusal {
                d.err(format!("function '{name}' is held by kretprobe '{probe}'"));
            }
            d.err(format!(
                "failed to register ftrace handler for function '{name}' (-{})",
                refusal.errno().0
            ));
        }
    }
}

/// `klp_patch_object`: pushes every resolved function of object `obj` of `id` on its
/// func_stack, once ftrace agrees to redirect it; on a refusal the object's entries come off
/// again.
///
/// # Errors
/// The refusal's errno, with its message in the draft.
pub(super) fn patch_object(
    d: &mut Draft,
    ftrace: &Ftrace,
    id: PatchId,
    obj: usize,
) -> Result<(), Errno> {
    // The resolved functions' slots and index, not a copy of the object.
    let Some(funcs) = d.lp.get(id).map(|p| {
        let funcs = p.objs[obj].funcs.iter().enumerate();
        funcs
            .filter_map(|(i, f)| f.old_func.map(|slot| (slot, f.new_func, i)))
            .collect::<Vec<_>>()
    }) else {
        return Err(Errno::EINVAL);
    };
    for (slot, new_func, i) in funcs {
        if let Err(refusal) = ftrace.may_redirect(slot, new_func) {
            let name =
                d.lp.get(id)
                    .map(|p| p.objs[obj].funcs[i].old_name.clone())
                    .unwrap_or_default();
            refusal_messages(d, &name, &refusal);
            unpatch_object(d, id, obj);
            return Err(refusal.errno());
        }
        d.lp.stacks.push(slot, id, new_func);
        d.touch(slot);
    }
    set_patched(&mut d.lp, id, obj, true);
    Ok(())
}

/// `klp_unpatch_object`: takes the object's entries off their func_stacks.
pub(super) fn unpatch_object(d: &mut Draft, id: PatchId, obj: usize) {
    let Some(slots) = d.lp.get(id).map(|p| {
        let funcs = &p.objs[obj].funcs;
        funcs.iter().filter_map(|f| f.old_func).collect::<Vec<_>>()
    }) else {
        return;
    };
    for slot in slots {
        d.lp.stacks.pop(slot, id);
        d.touch(slot);
    }
    set_patched(&mut d.lp, id, obj, false);
}

/// `klp_unpatch_objects`: every patched object of the patch.
pub(super) fn unpatch_objects(d: &mut Draft, id: PatchId) {
    let patched: Vec<usize> = d.lp.get(id).map_or_else(Vec::new, |p| {
        (0..p.objs.len()).filter(|&i| p.objs[i].patched).collect()
    });
    for obj in patched {
        unpatch_object(d, id, obj);
    }
}

fn set_patched(lp: &mut Livepatch, id: PatchId, obj: usize, patched: bool) {
    if let Some(p) = lp.get_mut(id) {
        p.objs[obj].patched = patched;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_entry_is_the_top_and_popping_keeps_the_others_in_order() {
        let (f, a, b, c) = (Slot::new(1), PatchId(0), PatchId(1), PatchId(2));
        let mut stacks = FuncStacks::default();
        stacks.push(f, a, Slot::new(10));
        stacks.push(f, b, Slot::new(11));
        stacks.push(f, c, Slot::new(12));
        assert_eq!(stacks.top(f).map(StackEntry::new_func), Some(Slot::new(12)));
        stacks.pop(f, b);
        assert_eq!(stacks.top(f).map(StackEntry::patch), Some(c));
        stacks.pop(f, c);
        assert_eq!(stacks.top(f).map(StackEntry::patch), Some(a));
        stacks.pop(f, a);
        assert!(stacks.top(f).is_none() && stacks.is_empty());
    }
}
