//! The livepatch core, shaped like kernel/livepatch: registered patches, func_stacks, transitions.

mod callbacks;
mod core;
mod klp_struct;
mod patch;
mod plan;
mod state;
mod switch;
mod transition;

pub(crate) use self::core::forget;
pub use self::core::{
    disable, enable, klp_disable_patch, klp_enable_patch, klp_register_patch, klp_unregister_patch,
    module_coming, module_going, reverse_transition, unregister,
};
pub use klp_struct::{KlpFunc, KlpObject, KlpPatch};
pub use patch::{FuncStacks, StackEntry};
pub(crate) use plan::restore;
pub use state::{klp_get_prev_state, klp_get_state};
pub use switch::{force, sched_try_switch, transition_work};
pub use transition::Target;

use std::collections::BTreeSet;

/// A registered patch's identity; the core hands them out, nothing else can make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatchId(u32);

/// Every registered patch and every func_stack. Only the core changes them; everyone else reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Livepatch {
    /// Registered patches in stack order: a patch moves to the end when it is enabled.
    patches: Vec<KlpPatch>,
    /// The func_stack of every patched function.
    stacks: FuncStacks,
    /// The id the next registered patch gets.
    next_id: u32,
    /// The transition in progress (`klp_transition_patch`, `klp_target_state`).
    transition: Option<Pending>,
    /// Modules whose patch was freed after a forced transition: their code may still run, so
    /// they keep the patch's reference for ever (Linux skips `module_put` for a forced patch).
    pinned: BTreeSet<String>,
}

/// A transition in progress: its patch, where it goes, and how often it has been retried.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    patch: PatchId,
    target: Target,
    /// `klp_signals_cnt`: tries since the transition started; every 15th signals the tasks.
    tries: u32,
}

impl Livepatch {
    /// Registered patches in stack order.
    pub fn patches(&self) -> impl Iterator<Item = &KlpPatch> {
        self.patches.iter()
    }

    /// The registered patch of a module.
    pub fn by_name(&self, name: &str) -> Option<&KlpPatch> {
        self.patches.iter().find(|p| p.name == name)
    }

    /// A registered patch.
    pub fn get(&self, id: PatchId) -> Option<&KlpPatch> {
        self.patches.iter().find(|p| p.id == id)
    }

    /// Whether the module's patch is registered and enabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.by_name(name).is_some_and(|p| p.enabled)
    }

    /// Whether the patch holds its module (Linux's `try_module_get` at enable, put when the
    /// patch is freed): while enabled, while in transition, and for ever once forced (also
    /// after it was freed).
    pub fn holds_module(&self, name: &str) -> bool {
        self.pinned.contains(name)
            || self
                .by_name(name)
                .is_some_and(|p| p.enabled || p.forced || self.in_transition(p.id))
    }

    /// Frees a patch (`klp_free_patch_*`): it leaves the list (its sysfs directory goes), its
    /// functions' parked dispatchers go with it; a forced patch's module stays held.
    fn free(&mut self, id: PatchId) -> Vec<crate::ftrace::Slot> {
        let slots = transition::patch_slots(self, id);
        if let Some(p) = self.get(id)
            && p.forced
        {
            self.pinned.insert(p.name.clone());
        }
        self.patches.retain(|p| p.id != id);
        slots
    }

    /// The patch in transition and where it goes (`klp_transition_patch`, `klp_target_state`).
    pub fn transition(&self) -> Option<(PatchId, Target)> {
        self.transition.as_ref().map(|t| (t.patch, t.target))
    }

    /// Whether `id` is the patch in transition (its `transition` file reads 1).
    pub fn in_transition(&self, id: PatchId) -> bool {
        self.transition.as_ref().is_some_and(|t| t.patch == id)
    }

    /// `stack_order` of a patch: its 1-based place in the list of patches.
    pub fn stack_order(&self, name: &str) -> Option<usize> {
        self.patches
            .iter()
            .position(|p| p.name == name)
            .map(|i| i + 1)
    }

    /// Every func_stack.
    pub fn func_stacks(&self) -> &FuncStacks {
        &self.stacks
    }

    fn get_mut(&mut self, id: PatchId) -> Option<&mut KlpPatch> {
        self.patches.iter_mut().find(|p| p.id == id)
    }

    /// Marks a patch enabled or disabled; an enabled patch moves to the end of the list, the
    /// top of the stack order.
    fn set_enabled(&mut self, id: PatchId, on: bool) {
        if on && let Some(i) = self.patches.iter().position(|p| p.id == id) {
            let p = self.patches.remove(i);
            self.patches.push(p);
        }
        if let Some(p) = self.get_mut(id) {
            p.enabled = on;
        }
    }
}

/// A printk level, as the kernel's `pr_*` macros use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `pr_err`.
    Err = 3,
    /// `pr_warn`.
    Warning = 4,
    /// `pr_notice`.
    Notice = 5,
    /// `pr_debug`: kept visible, as with livepatch's dynamic debug on (how Linux's selftests run).
    Debug = 7,
}

/// One line for the kernel log, `livepatch: ` prefixed when printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    level: Level,
    text: String,
}
