//! The ftrace_ops on each slot: livepatch's redirect, the hooks, and the one IPMODIFY rule.

use super::Slot;
use std::collections::BTreeMap;

/// An entry or exit hook on a slot: an ftrace_ops whose handler the slot's trampoline calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// The function tracer, at entry.
    Tracer,
    /// A kprobe at the function's entry, by event name. It sits in the original function: a
    /// redirected call does not hit it.
    Kprobe(String),
    /// A kretprobe, by event name: an exit hook that changes where the call returns, so it needs
    /// IPMODIFY.
    Kretprobe(String),
}

impl Hook {
    /// Whether the hook needs the slot's IPMODIFY right (FTRACE_OPS_FL_IPMODIFY).
    fn ipmodify(&self) -> bool {
        matches!(self, Hook::Kretprobe(_))
    }
}

/// Who holds a slot's IPMODIFY right. Users of one kind share it (every live patch goes through
/// livepatch's ops, every kretprobe through the kprobes' ops); a user of the other kind gets
/// `EBUSY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// livepatch redirects the function; the patch whose function the slot reaches.
    Livepatch(String),
    /// A kretprobe hooks the function's return.
    Kretprobe(String),
}

/// Where livepatch sends a slot's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The patch whose function the slot reaches (the top of the func_stack).
    pub patch: String,
    /// The replacement's slot: calls reach it through its own slot, so its hooks run too.
    pub target: Slot,
    /// Set while the function is in a transition (`func->transition`): a task still
    /// `KLP_TRANSITION_UNPATCHED` goes to the alternative instead of `target`.
    pub transition: Option<Transition>,
}

/// The alternative of a redirect in transition: what `klp_ftrace_handler` picks for a task whose
/// `patch_state` is `KLP_TRANSITION_UNPATCHED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The next func_stack entry's `new_func` slot; `None`: the original function.
    pub alt: Option<Slot>,
}

/// The users registered on one slot (Linux's `dyn_ftrace` record and the ops that match it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rec {
    redirect: Option<Redirect>,
    /// Hooks in the order they were added.
    hooks: Vec<Hook>,
}

impl Rec {
    fn is_empty(&self) -> bool {
        self.redirect.is_none() && self.hooks.is_empty()
    }
}

/// Every slot's users.
#[derive(Debug, Default)]
pub(super) struct Ops {
    recs: BTreeMap<Slot, Rec>,
}

impl Ops {
    /// The IPMODIFY holder of `slot` that is not of the kind `wants` asks for: the one conflict
    /// check, for a live patch and a kretprobe alike, whichever comes first.
    pub(super) fn conflict(&self, slot: Slot, wants_livepatch: bool) -> Option<Owner> {
        let rec = self.recs.get(&slot)?;
        if wants_livepatch {
            rec.hooks.iter().find_map(|h| match h {
                Hook::Kretprobe(name) => Some(Owner::Kretprobe(name.clone())),
                _ => None,
            })
        } else {
            let r = rec.redirect.as_ref()?;
            Some(Owner::Livepatch(r.patch.clone()))
        }
    }

    /// The conflict a new hook would meet, if it needs IPMODIFY.
    pub(super) fn hook_conflict(&self, slot: Slot, hook: &Hook) -> Option<Owner> {
        if hook.ipmodify() {
            self.conflict(slot, false)
        } else {
            None
        }
    }

    /// Points `slot` at `target` for `patch`.
    ///
    /// # Errors
    /// The holder, when a kretprobe holds the slot.
    pub(super) fn set_redirect(
        &mut self,
        slot: Slot,
        patch: &str,
        target: Slot,
    ) -> Result<(), Owner> {
        if let Some(holder) = self.conflict(slot, true) {
            return Err(holder);
        }
        let rec = self.recs.entry(slot).or_default();
        let transition = rec.redirect.as_ref().and_then(|r| r.transition);
        rec.redirect = Some(Redirect {
            patch: patch.to_string(),
            target,
            transition,
        });
        Ok(())
    }

    /// Puts `slot`'s redirect in transition towards `alt`; returns whether it has a redirect.
    pub(super) fn set_transition(&mut self, slot: Slot, alt: Option<Slot>) -> bool {
        let redirect = self.recs.get_mut(&slot).and_then(|r| r.redirect.as_mut());
        redirect
            .map(|r| r.transition = Some(Transition { alt }))
            .is_some()
    }

    /// Ends `slot`'s transition; returns whether it had one.
    pub(super) fn clear_transition(&mut self, slot: Slot) -> bool {
        let redirect = self.recs.get_mut(&slot).and_then(|r| r.redirect.as_mut());
        redirect.and_then(|r| r.transition.take()).is_some()
    }

    /// Removes livepatch's redirect of `slot`; returns whether there was one.
    pub(super) fn clear_redirect(&mut self, slot: Slot) -> bool {
        let Some(rec) = self.recs.get_mut(&slot) else {
            return false;
        };
        let had = rec.redirect.take().is_some();
        self.drop_if_empty(slot);
        had
    }

    /// Adds a hook to `slot` (a hook already there stays once).
    ///
    /// # Errors
    /// The holder, when the hook needs IPMODIFY and a live patch holds the slot.
    pub(super) fn add_hook(&mut self, slot: Slot, hook: Hook) -> Result<(), Owner> {
        if let Some(holder) = self.hook_conflict(slot, &hook) {
            return Err(holder);
        }
        let rec = self.recs.entry(slot).or_default();
        if !rec.hooks.contains(&hook) {
            rec.hooks.push(hook);
        }
        Ok(())
    }

    /// Removes a hook from `slot`; returns whether it was there.
    pub(super) fn remove_hook(&mut self, slot: Slot, hook: &Hook) -> bool {
        let Some(rec) = self.recs.get_mut(&slot) else {
            return false;
        };
        let before = rec.hooks.len();
        rec.hooks.retain(|h| h != hook);
        let removed = rec.hooks.len() != before;
        self.drop_if_empty(slot);
        removed
    }

    fn drop_if_empty(&mut self, slot: Slot) {
        if self.recs.get(&slot).is_some_and(Rec::is_empty) {
            self.recs.remove(&slot);
        }
    }

    /// livepatch's redirect of `slot`.
    pub(super) fn redirect(&self, slot: Slot) -> Option<&Redirect> {
        self.recs.get(&slot)?.redirect.as_ref()
    }

    /// The hooks on `slot`, in the order they were added.
    pub(super) fn hooks(&self, slot: Slot) -> &[Hook] {
        self.recs.get(&slot).map_or(&[], |r| &r.hooks)
    }

    /// Every slot with a user, in slot order.
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.recs.keys().copied()
    }

    /// Every redirected slot with its redirect.
    pub(super) fn redirects(&self) -> impl Iterator<Item = (Slot, &Redirect)> {
        self.recs
            .iter()
            .filter_map(|(&slot, r)| Some((slot, r.redirect.as_ref()?)))
    }

    /// Forgets every user of the slots `range` (a module's functions are going away).
    pub(super) fn forget(&mut self, range: std::ops::Range<u32>) {
        self.recs.retain(|slot, _| !range.contains(&slot.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Slot = Slot(7);
    const NEW: Slot = Slot(40);

    fn kretprobe() -> Hook {
        Hook::Kretprobe("ret".into())
    }

    #[test]
    fn a_live_patch_on_a_kretprobed_function_is_busy() {
        let mut ops = Ops::default();
        ops.add_hook(F, kretprobe()).unwrap();
        assert_eq!(
            ops.set_redirect(F, "p", NEW),
            Err(Owner::Kretprobe("ret".into()))
        );
        assert!(ops.redirect(F).is_none());
    }

    #[test]
    fn a_kretprobe_on_a_patched_function_is_busy() {
        let mut ops = Ops::default();
        ops.set_redirect(F, "p", NEW).unwrap();
        assert_eq!(
            ops.add_hook(F, kretprobe()),
            Err(Owner::Livepatch("p".into()))
        );
        assert!(ops.hooks(F).is_empty());
    }

    #[test]
    fn users_of_one_kind_share_the_ipmodify_right() {
        let mut ops = Ops::default();
        ops.set_redirect(F, "a", NEW).unwrap();
        ops.set_redirect(F, "b", Slot(41)).unwrap();
        assert_eq!(ops.redirect(F).map(|r| r.patch.as_str()), Some("b"));
        ops.clear_redirect(F);
        ops.add_hook(F, kretprobe()).unwrap();
        ops.add_hook(F, Hook::Kretprobe("other".into())).unwrap();
        assert_eq!(ops.hooks(F).len(), 2);
    }

    #[test]
    fn entry_hooks_never_conflict_with_a_redirect() {
        let mut ops = Ops::default();
        ops.set_redirect(F, "p", NEW).unwrap();
        ops.add_hook(F, Hook::Tracer).unwrap();
        ops.add_hook(F, Hook::Kprobe("k".into())).unwrap();
        ops.add_hook(F, Hook::Tracer).unwrap();
        assert_eq!(ops.hooks(F), &[Hook::Tracer, Hook::Kprobe("k".into())][..]);
    }

    #[test]
    fn a_transition_needs_a_redirect_and_outlives_a_new_target() {
        let mut ops = Ops::default();
        assert!(!ops.set_transition(F, None));
        ops.set_redirect(F, "a", NEW).unwrap();
        assert!(ops.set_transition(F, Some(Slot(41))));
        ops.set_redirect(F, "b", Slot(42)).unwrap();
        let r = ops.redirect(F).unwrap();
        assert_eq!(
            r.transition,
            Some(Transition {
                alt: Some(Slot(41))
            })
        );
        assert!(ops.clear_transition(F));
        assert!(!ops.clear_transition(F));
        assert_eq!(ops.redirect(F).unwrap().transition, None);
    }

    #[test]
    fn a_slot_without_users_is_forgotten() {
        let mut ops = Ops::default();
        ops.add_hook(F, Hook::Tracer).unwrap();
        ops.set_redirect(F, "p", NEW).unwrap();
        assert!(ops.remove_hook(F, &Hook::Tracer));
        assert!(ops.clear_redirect(F));
        assert_eq!(ops.slots().count(), 0);
        assert!(!ops.remove_hook(F, &Hook::Tracer));
    }
}
