//! Plans and their driver: the state and the slots change first, the messages come last.

use super::{Level, Livepatch, Message};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::{self, Slot};
use crate::loader::{self, FirstError, first_or_trap, retried};
use crate::state::KernelState;
use crate::sys::{self, SysError, SysResult};
use crate::tasks;
use std::collections::BTreeSet;

/// A change being worked out on a copy of the livepatch state.
#[derive(Debug)]
pub(super) struct Draft {
    /// The state as it will be.
    pub(super) lp: Livepatch,
    /// The functions whose func_stack changed.
    slots: BTreeSet<Slot>,
    messages: Vec<Step>,
}

/// What a plan does once committed, in order: print a message, call a callback, or commit the
/// plan that follows.
#[derive(Debug)]
pub(super) enum Step {
    /// Print a message.
    Say(Message),
    /// Call a `void` livepatch callback (`post_patch`, `pre_unpatch`, `post_unpatch`) with the
    /// address of its `klp_object`.
    Call {
        /// The callback's slot.
        func: Slot,
        /// The `klp_object`.
        obj: u32,
    },
    /// Commit a plan worked out on the state this one leaves: the end of a step whose
    /// callbacks must run before it.
    Commit(Box<Plan>),
}

impl Draft {
    /// A draft starting from `lp`.
    pub(super) fn new(lp: Livepatch) -> Self {
        Draft {
            lp,
            slots: BTreeSet::new(),
            messages: Vec::new(),
        }
    }

    /// Notes that `slot`'s func_stack changed: its redirect follows the new top.
    pub(super) fn touch(&mut self, slot: Slot) {
        self.slots.insert(slot);
    }

    fn say(&mut self, level: Level, text: String) {
        self.messages.push(Step::Say(Message { level, text }));
    }

    /// Commits `plan` after the messages and callbacks so far.
    pub(super) fn then(&mut self, plan: Plan) {
        self.messages.push(Step::Commit(Box::new(plan)));
    }

    /// Calls the `void` callback `func` of the `klp_object` at `obj`, after the messages so far.
    pub(super) fn call(&mut self, func: Slot, obj: u32) {
        self.messages.push(Step::Call { func, obj });
    }

    /// `pr_err`.
    pub(super) fn err(&mut self, text: String) {
        self.say(Level::Err, text);
    }

    /// `pr_warn`.
    pub(super) fn warn(&mut self, text: String) {
        self.say(Level::Warning, text);
    }

    /// `pr_notice`.
    pub(super) fn notice(&mut self, text: String) {
        self.say(Level::Notice, text);
    }

    /// `pr_debug`.
    pub(super) fn debug(&mut self, text: String) {
        self.say(Level::Debug, text);
    }

    /// The plan to commit the draft.
    pub(super) fn finish(self) -> Plan {
        Plan {
            outcome: Ok(Box::new(self.lp)),
            slots: self.slots,
            messages: self.messages,
            fails: None,
        }
    }

    /// The plan to commit the draft, then fail with `errno`: an operation that changed things
    /// before it failed undoes them itself in the draft.
    pub(super) fn fail(self, errno: Errno) -> Plan {
        Plan {
            fails: Some(errno),
            ..self.finish()
        }
    }

    /// The plan of a refusal: nothing changes, the messages say why.
    pub(super) fn refuse(self, errno: Errno) -> Plan {
        Plan {
            outcome: Err(errno),
            slots: BTreeSet::new(),
            messages: self.messages,
            fails: None,
        }
    }
}

/// What an operation does: the state it leaves, the functions whose redirect changes, and what
/// it prints.
#[derive(Debug)]
pub(super) struct Plan {
    /// The state the plan leaves (boxed: a plan is passed around by value), or its refusal.
    outcome: Result<Box<Livepatch>, Errno>,
    slots: BTreeSet<Slot>,
    messages: Vec<Step>,
    /// The error of an operation that commits what it undid ([`Draft::fail`]).
    fails: Option<Errno>,
}

impl Plan {
    /// The transition the plan leaves in progress, if it commits.
    pub(super) fn transition(&self) -> Option<(super::PatchId, super::Target)> {
        self.outcome.as_ref().ok()?.transition()
    }

    /// Whether the plan commits and then fails ([`Draft::fail`]).
    pub(super) fn fails(&self) -> bool {
        self.outcome.is_ok() && self.fails.is_some()
    }

    /// A refusal without a message.
    pub(super) fn refused(errno: Errno) -> Plan {
        Plan {
            outcome: Err(errno),
            slots: BTreeSet::new(),
            messages: Vec::new(),
            fails: None,
        }
    }

    /// Installs the plan's state and redirects without an engine (no table, no reference
    /// counts); returns the refusal's errno.
    #[cfg(test)]
    pub(super) fn install(self, s: &mut KernelState) -> Result<(), Errno> {
        let after = self.outcome?;
        let installed = install(s, *after, &self.slots);
        assert!(installed.redirected.is_ok(), "ftrace took every redirect");
        for step in self.messages {
            if let Step::Commit(next) = step {
                next.install(s)?;
            }
        }
        self.fails.map_or(Ok(()), Err)
    }

    /// The messages, as `level text`, and the callbacks, as `call <slot>`.
    #[cfg(test)]
    pub(super) fn lines(&self) -> Vec<String> {
        self.messages
            .iter()
            .flat_map(|step| match step {
                Step::Say(m) => vec![format!("{} {}", m.level as u8, m.text)],
                Step::Call { func, .. } => vec![format!("call {}", func.index())],
                Step::Commit(next) => next.lines(),
            })
            .collect()
    }
}

/// Commits a plan: the livepatch state and ftrace's redirects change, the table is written, the
/// reference counts follow; any failure there puts everything back. Then the messages are
/// printed, so a trap while printing leaves the change whole.
///
/// # Errors
/// The refusal's errno, the commit's error, or a trap while printing.
pub(super) fn commit(e: &mut impl Engine, plan: Plan) -> SysResult<()> {
    commit_with(e, plan, false)
}

/// [`commit`], undoing the change after a trap while printing when `undo_on_trap`: the code
/// just enabled may be what traps (a replacement of `printk`), and nothing may stay redirected
/// into code that failed to enable.
pub(super) fn commit_with(e: &mut impl Engine, plan: Plan, undo_on_trap: bool) -> SysResult<()> {
    let Plan {
        outcome,
        slots,
        messages,
        fails,
    } = plan;
    match outcome {
        // A failed switch was undone: there is nothing to report but its error.
        Ok(after) => {
            let before = switch(e, *after, &slots)?;
            match print(e, messages) {
                Err(err) if undo_on_trap => Err(first_or_trap(err, restore(e, before))),
                Ok(()) => fails.map_or(Ok(()), |errno| Err(errno.into())),
                printed => printed,
            }
        }
        Err(errno) => Err(first_or_trap(errno.into(), print(e, messages))),
    }
}

/// Prints the messages, calls the callbacks and commits the follow-up plans in order; stops at
/// a trap.
fn print(e: &mut impl Engine, steps: Vec<Step>) -> SysResult<()> {
    steps.into_iter().try_for_each(|step| match step {
        Step::Say(m) => sys::printk(e, &format!("\x01{}livepatch: {}", m.level as u8, m.text)),
        Step::Call { func, obj } => tasks::call_slot(e, func.index(), &[obj as i32]).map(drop),
        Step::Commit(next) => commit(e, *next),
    })
}

/// What [`install`] leaves for the driver to finish or undo.
struct Installed {
    /// The state before.
    before: Livepatch,
    /// Whether ftrace took every redirect.
    redirected: SysResult<()>,
    /// The reference counts to set: module, reference its own patch holds.
    refcnts: Vec<(String, u32)>,
}

/// Installs `after` as the livepatch state and has ftrace redirect `slots` to their new tops.
fn install(s: &mut KernelState, after: Livepatch, slots: &BTreeSet<Slot>) -> Installed {
    let before = std::mem::replace(&mut s.livepatch, after);
    let redirected = redirect(s, slots);
    let refcnts = refcnt_changes(&before, &s.livepatch);
    Installed {
        before,
        redirected,
        refcnts,
    }
}

/// Installs `after`, then writes the table and sets the reference counts that follow; returns
/// the state before.
fn switch(e: &mut impl Engine, after: Livepatch, slots: &BTreeSet<Slot>) -> SysResult<Livepatch> {
    let Installed {
        before,
        redirected,
        refcnts,
    } = e.with_state(|s| install(s, after, slots));
    let done = redirected
        .and_then(|()| ftrace::sync(e, slots.iter().copied()))
        .and_then(|()| release_undescribed(e, slots))
        .and_then(|()| {
            refcnts
                .iter()
                .try_for_each(|(module, own)| loader::set_refcnt(e, module, *own))
        });
    match done {
        Ok(()) => Ok(before),
        Err(err) => Err(first_or_trap(err, restore(e, before))),
    }
}

/// Whether a registered patch describes the function at `slot`.
fn described(lp: &Livepatch, slot: Slot) -> bool {
    lp.patches().any(|p| {
        p.objs
            .iter()
            .any(|o| o.funcs.iter().any(|f| f.old_func == Some(slot)))
    })
}

/// Releases the dispatchers [`ftrace::sync`] just parked for functions no registered patch
/// describes any more (a patch freed as its transition completed).
fn release_undescribed(e: &mut impl Engine, slots: &BTreeSet<Slot>) -> SysResult<()> {
    let gone: Vec<Slot> = e.with_state(|s| {
        let gone: Vec<Slot> = slots
            .iter()
            .copied()
            .filter(|&slot| !described(&s.livepatch, slot))
            .collect();
        gone.iter().for_each(|&slot| s.ftrace.drop_parked(slot));
        gone
    });
    if gone.is_empty() {
        return Ok(());
    }
    ftrace::sync(e, gone)
}

/// Asks ftrace to point each of `slots` at the top of its func_stack, or back at the original.
/// Every slot is visited even when ftrace refuses one.
fn redirect(s: &mut KernelState, slots: &BTreeSet<Slot>) -> SysResult<()> {
    let mut result = Ok(());
    for &slot in slots {
        if !described(&s.livepatch, slot) {
            s.ftrace.drop_parked(slot);
        }
        let top = s.livepatch.stacks.top(slot).map(|en| {
            let patch = s.livepatch.get(en.patch()).map(|p| p.name.clone());
            (patch.unwrap_or_default(), en.new_func())
        });
        let done = match top {
            Some((patch, target)) => s
                .ftrace
                .set_redirect(slot, &patch, target)
                .and_then(|()| dispatch(s, slot)),
            None => {
                s.ftrace.clear_redirect(slot);
                Ok(())
            }
        };
        if let Err(refusal) = done {
            result = result.and(Err(SysError::Errno(refusal.errno())));
        }
    }
    result
}

/// Puts `slot` behind a transition dispatcher while its top entry belongs to the patch in
/// transition (`func->transition`): a task still in the state the patch leaves reaches the
/// entry below, or the original. Without tasks (no `current`) no dispatcher is needed: a
/// transition completes before any task runs.
fn dispatch(s: &mut KernelState, slot: Slot) -> Result<(), crate::ftrace::Refusal> {
    let lp = &s.livepatch;
    let alt = match (lp.transition(), lp.stacks.get(slot)) {
        (Some((id, _)), Some([.., below, top])) if top.patch() == id => {
            Some(Some(below.new_func()))
        }
        (Some((id, _)), Some([top])) if top.patch() == id => Some(None),
        _ => None,
    };
    match alt {
        Some(alt) if s.ftrace.current().is_some() => s.ftrace.set_transition(slot, alt),
        _ => {
            s.ftrace.clear_transition(slot);
            Ok(())
        }
    }
}

/// The modules whose patch changed between enabled and disabled, with the reference their patch
/// now holds on them (1 or 0), by name.
fn refcnt_changes(before: &Livepatch, after: &Livepatch) -> Vec<(String, u32)> {
    let mut names: Vec<&str> = before
        .patches()
        .chain(after.patches())
        .map(|p| p.name.as_str())
        .filter(|name| before.holds_module(name) != after.holds_module(name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| (name.to_string(), u32::from(after.holds_module(name))))
        .collect()
}

/// Restores the livepatch state saved before a failed operation, then what follows from it:
/// every function whose func_stack differs is redirected to its top again, and every module
/// whose patch changed between enabled and disabled gets its reference count back. Every step
/// runs even when one fails.
///
/// # Errors
/// The first error (a trap before any other).
pub(crate) fn restore(e: &mut impl Engine, before: Livepatch) -> SysResult<()> {
    let (slots, redirected, refcnts) = e.with_state(|s| {
        let now = std::mem::replace(&mut s.livepatch, before);
        let was = &s.livepatch;
        let slots: BTreeSet<Slot> = now
            .stacks
            .iter()
            .chain(was.stacks.iter())
            .filter(|&(slot, _)| now.stacks.get(slot) != was.stacks.get(slot))
            .map(|(slot, _)| slot)
            .collect();
        let refcnts = refcnt_changes(&now, was);
        let redirected = redirect(s, &slots);
        (slots, redirected, refcnts)
    });
    let mut errors = FirstError::default();
    errors.note(redirected);
    errors.note(ftrace::sync(e, slots.iter().copied()));
    errors.note(release_undescribed(e, &slots));
    for (module, own) in &refcnts {
        errors.note(retried(e, |e| loader::set_refcnt(e, module, *own)));
    }
    errors.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::livepatch::{KlpPatch, PatchId};

    fn with(patches: &[(&str, bool)]) -> Livepatch {
        let patches = (0u32..)
            .zip(patches)
            .map(|(i, &(name, enabled))| KlpPatch {
                id: PatchId(i),
                name: name.into(),
                addr: i,
                replace: false,
                objs: Vec::new(),
                states: Vec::new(),
                api: crate::livepatch::klp_struct::Api::Enable,
                enabled,
                forced: false,
            })
            .collect();
        Livepatch {
            patches,
            ..Livepatch::default()
        }
    }

    #[test]
    fn reference_counts_follow_the_patches_that_changed_between_enabled_and_disabled() {
        let before = with(&[("a", true), ("b", false), ("c", true), ("gone", true)]);
        let after = with(&[("a", false), ("b", true), ("c", true), ("new", false)]);
        assert_eq!(
            refcnt_changes(&before, &after),
            [("a".into(), 0), ("b".into(), 1), ("gone".into(), 0)]
        );
    }
}
