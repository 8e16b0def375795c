//! The transition (kernel/livepatch/transition.c): init, start, complete, cancel, reverse, as
//! steps of a plan; the per-task switching is in `switch.rs`.

use super::klp_struct::{Api, KlpObject};
use super::plan::Draft;
use super::{Livepatch, PatchId, Pending, callbacks, patch};
use crate::ftrace::Slot;

/// The state a transition takes its patch to (`klp_target_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// KLP_PATCHED.
    Patched,
    /// KLP_UNPATCHED.
    Unpatched,
}

impl Target {
    /// `patching` or `unpatching`, as the messages say.
    pub fn verb(self) -> &'static str {
        match self {
            Target::Patched => "patching",
            Target::Unpatched => "unpatching",
        }
    }

    /// The `patch_state` a task has once switched (`KLP_TRANSITION_PATCHED`/`UNPATCHED`).
    pub fn state(self) -> i32 {
        match self {
            Target::Patched => klp_abi::task::KLP_TRANSITION_PATCHED,
            Target::Unpatched => klp_abi::task::KLP_TRANSITION_UNPATCHED,
        }
    }

    /// The other way.
    pub fn reversed(self) -> Self {
        match self {
            Target::Patched => Target::Unpatched,
            Target::Unpatched => Target::Patched,
        }
    }
}

/// Every function slot of a patch's patched objects.
pub(super) fn patch_slots(lp: &Livepatch, id: PatchId) -> Vec<Slot> {
    lp.get(id).map_or_else(Vec::new, |p| {
        p.objs
            .iter()
            .flat_map(|o| o.funcs.iter().filter_map(|f| f.old_func))
            .collect()
    })
}

fn name_of(d: &Draft, id: PatchId) -> String {
    d.lp.get(id).map(|p| p.name.clone()).unwrap_or_default()
}

/// The transition of one patch (`klp_transition_patch`), worked out on a draft.
#[derive(Debug)]
pub(super) struct Transition {
    draft: Draft,
    patch: PatchId,
    name: String,
    target: Target,
}

impl Transition {
    /// `klp_init_transition`: the patch is about to move to `target`; its functions are in
    /// transition from now on (their calls go through the dispatcher).
    pub(super) fn init(mut draft: Draft, patch: PatchId, target: Target) -> Self {
        let name = name_of(&draft, patch);
        draft.debug(format!(
            "'{name}': initializing {} transition",
            target.verb()
        ));
        draft.lp.transition = Some(Pending {
            patch,
            target,
            tries: 0,
        });
        for slot in patch_slots(&draft.lp, patch) {
            draft.touch(slot);
        }
        Transition {
            draft,
            patch,
            name,
            target,
        }
    }

    /// The plan to commit the transition as initialized so far.
    pub(super) fn finish(self) -> super::plan::Plan {
        self.draft.finish()
    }

    /// The transition in progress in `draft` (committed by an earlier plan), to go on with.
    pub(super) fn resume(draft: Draft) -> Option<Self> {
        let t = draft.lp.transition.as_ref()?;
        let (patch, target) = (t.patch, t.target);
        Some(Transition {
            name: name_of(&draft, patch),
            draft,
            patch,
            target,
        })
    }

    /// The draft: objects are patched on it between init and start.
    pub(super) fn draft(&mut self) -> &mut Draft {
        &mut self.draft
    }

    /// `klp_start_transition`: tasks may switch from now on (the core sets their
    /// TIF_PATCH_PENDING once the plan is committed).
    pub(super) fn start(mut self) -> Draft {
        let verb = self.target.verb();
        // Slots patched since init are in transition too.
        for slot in patch_slots(&self.draft.lp, self.patch) {
            self.draft.touch(slot);
        }
        self.draft
            .notice(format!("'{}': starting {verb} transition", self.name));
        self.draft
    }

    /// `klp_cancel_transition`: an enable failed before the transition started; everything it
    /// patched comes off again.
    pub(super) fn cancel(mut self, loaded: impl Fn(&KlpObject) -> bool) -> Draft {
        self.draft.debug(format!(
            "'{}': canceling patching transition, going to unpatch",
            self.name
        ));
        self.target = Target::Unpatched;
        if let Some(t) = self.draft.lp.transition.as_mut() {
            t.target = Target::Unpatched;
        }
        complete(self.draft, loaded)
    }
}

/// `klp_reverse_transition`: the patch in transition goes back the way it came; tasks already
/// switched switch back.
pub(super) fn reverse(mut d: Draft) -> Draft {
    let Some(t) = d.lp.transition.as_mut() else {
        return d;
    };
    let (id, from) = (t.patch, t.target);
    t.target = from.reversed();
    t.tries = 0;
    let to = t.target;
    let name = name_of(&d, id);
    d.debug(format!(
        "'{name}': reversing transition from {} to {}",
        from.verb(),
        to.verb()
    ));
    if let Some(p) = d.lp.get_mut(id) {
        p.enabled = !p.enabled;
    }
    d.notice(format!("'{name}': starting {} transition", to.verb()));
    d
}

/// `klp_complete_transition`: an atomic replace takes the patches it replaces off their
/// func_stacks and disables them; an unpatching transition takes its own patch off; the
/// functions leave the transition (their slots are direct again); then the patch's loaded
/// objects (`loaded`) get their `post_patch` or `post_unpatch` callbacks.
pub(super) fn complete(mut d: Draft, loaded: impl Fn(&KlpObject) -> bool) -> Draft {
    let Some(Pending {
        patch: id, target, ..
    }) = d.lp.transition.clone()
    else {
        return d;
    };
    let name = name_of(&d, id);
    let verb = target.verb();
    d.debug(format!("'{name}': completing {verb} transition"));
    for slot in patch_slots(&d.lp, id) {
        d.touch(slot);
    }
    let mut freed = Vec::new();
    match target {
        Target::Patched if d.lp.get(id).is_some_and(|p| p.replace) => {
            let replaced: Vec<PatchId> =
                d.lp.patches()
                    .filter(|p| p.enabled && p.id != id)
                    .map(|p| p.id)
                    .collect();
            for old in &replaced {
                patch::unpatch_objects(&mut d, *old);
                d.lp.set_enabled(*old, false);
            }
            freed = replaced;
        }
        Target::Patched => {}
        Target::Unpatched => {
            patch::unpatch_objects(&mut d, id);
            freed.push(id);
        }
    }
    let objs: Vec<usize> = d.lp.get(id).map_or_else(Vec::new, |p| {
        (0..p.objs.len()).filter(|&i| loaded(&p.objs[i])).collect()
    });
    for obj in objs {
        match target {
            Target::Patched => callbacks::post_patch(&mut d, id, obj),
            Target::Unpatched => callbacks::post_unpatch(&mut d, id, obj),
        }
    }
    d.notice(format!("'{name}': {verb} complete"));
    // The callbacks above still see the patch in transition and the patches it replaces (as
    // `klp_get_prev_state` needs); then `klp_transition_patch = NULL`, and
    // `klp_free_patch_async` of a disabled patch, `klp_free_replaced_patches_async`: what
    // klp_enable_patch() registered goes (the 2016 API's patches stay registered, disabled).
    let mut end = Draft::new(d.lp.clone());
    end.lp.transition = None;
    for slot in patch_slots(&end.lp, id) {
        end.touch(slot);
    }
    for id in freed {
        if end.lp.get(id).is_some_and(|p| p.api == Api::Enable) {
            for slot in end.lp.free(id) {
                end.touch(slot);
            }
        }
    }
    d.then(end.finish());
    d
}
