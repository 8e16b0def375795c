//! The transition (kernel/livepatch/transition.c): init, start, try_complete, complete, cancel.

use super::PatchId;
use super::patch;
use super::plan::Draft;

/// The state a transition takes its patch to (`klp_target_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// KLP_PATCHED.
    Patched,
    /// KLP_UNPATCHED.
    Unpatched,
}

impl Target {
    fn verb(self) -> &'static str {
        match self {
            Target::Patched => "patching",
            Target::Unpatched => "unpatching",
        }
    }
}

/// The transition of one patch (`klp_transition_patch`), worked out on a draft.
///
/// Linux switches task by task and completes once no task runs a function being switched; here
/// the one task is never inside such a function when a transition runs (docs/livepatch.md §6),
/// so [`Transition::try_complete`] always completes at once and a transition is never left
/// pending (nothing to reverse or force).
#[derive(Debug)]
pub(super) struct Transition {
    draft: Draft,
    patch: PatchId,
    name: String,
    target: Target,
}

impl Transition {
    /// `klp_init_transition`: the patch is about to move to `target`.
    pub(super) fn init(mut draft: Draft, patch: PatchId, target: Target) -> Self {
        let name = draft
            .lp
            .get(patch)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        draft.debug(format!(
            "'{name}': initializing {} transition",
            target.verb()
        ));
        Transition {
            draft,
            patch,
            name,
            target,
        }
    }

    /// The draft: objects are patched on it between init and start.
    pub(super) fn draft(&mut self) -> &mut Draft {
        &mut self.draft
    }

    /// `klp_start_transition`: tasks may switch from now on.
    pub(super) fn start(&mut self) {
        let verb = self.target.verb();
        self.draft
            .notice(format!("'{}': starting {verb} transition", self.name));
    }

    /// `klp_try_complete_transition`: switches every task (the one task) and completes.
    pub(super) fn try_complete(self) -> Draft {
        self.complete()
    }

    /// `klp_cancel_transition`: an enable failed before the transition started; everything it
    /// patched comes off again.
    pub(super) fn cancel(mut self) -> Draft {
        self.draft.debug(format!(
            "'{}': canceling patching transition, going to unpatch",
            self.name
        ));
        self.target = Target::Unpatched;
        self.complete()
    }

    /// `klp_complete_transition`: an atomic replace takes the patches it replaces off their
    /// func_stacks and disables them; an unpatching transition takes its own patch off.
    fn complete(mut self) -> Draft {
        let verb = self.target.verb();
        let d = &mut self.draft;
        d.debug(format!("'{}': completing {verb} transition", self.name));
        let id = self.patch;
        match self.target {
            Target::Patched if d.lp.get(id).is_some_and(|p| p.replace) => {
                let replaced: Vec<PatchId> =
                    d.lp.patches()
                        .filter(|p| p.enabled && p.id != id)
                        .map(|p| p.id)
                        .collect();
                for old in replaced {
                    patch::unpatch_objects(d, old);
                    d.lp.set_enabled(old, false);
                }
            }
            Target::Patched => {}
            Target::Unpatched => patch::unpatch_objects(d, id),
        }
        d.notice(format!("'{}': {verb} complete", self.name));
        self.draft
    }
}
