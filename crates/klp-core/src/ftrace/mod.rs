//! ftrace: the only writer of the ftrace table; per slot, the IPMODIFY redirect and the hooks.

pub mod code;
pub mod dispatcher;
mod ops;
#[cfg(test)]
mod sync_tests;
mod table;
pub mod trampoline;
mod update;

use crate::errno::Errno;
use crate::instrument::{FtraceMap, FuncSig};
use crate::state::KernelState;
pub use dispatcher::{Current, Dispatcher};
use ops::Ops;
pub use ops::{Hook, Owner, Redirect, Transition};
use std::collections::BTreeMap;
use table::Layout;
pub use table::SlotInfo;
pub use update::{Trampoline, alloc_range, release_module, sync, sync_all};

/// A slot of the ftrace table: the table entry every call of one function goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u32);

impl Slot {
    /// The slot at table index `index` (a function's kallsyms address).
    pub const fn new(index: u32) -> Self {
        Slot(index)
    }

    /// Its table index.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// Why ftrace refuses a redirect or a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a function the hook reaches (unknown or notrace): `ftrace_set_filter_ip` fails.
    NotTraceable,
    /// The redirect's target is not a known function.
    BadTarget,
    /// The redirect's target has another type than the function.
    Type {
        /// The function's type.
        want: FuncSig,
        /// The target's type.
        got: FuncSig,
    },
    /// `ftrace_enabled` is 0: livepatch's ops are permanent and cannot register.
    Disabled,
    /// Another kind of user holds the IPMODIFY right.
    Busy(Owner),
    /// A transition on a function livepatch does not redirect.
    NotRedirected,
}

impl Refusal {
    /// The errno Linux returns for it.
    pub fn errno(&self) -> Errno {
        match self {
            Refusal::NotTraceable
            | Refusal::BadTarget
            | Refusal::Type { .. }
            | Refusal::NotRedirected => Errno::EINVAL,
            Refusal::Disabled | Refusal::Busy(_) => Errno::EBUSY,
        }
    }
}

/// Which kinds of users a slot has (`enabled_functions` counts them); hooks count only while
/// `ftrace_enabled` is 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Users {
    /// The function tracer.
    pub tracer: bool,
    /// At least one kprobe.
    pub kprobe: bool,
    /// At least one kretprobe.
    pub kretprobe: bool,
    /// A live patch redirects it.
    pub livepatch: bool,
}

/// The ftrace table and everything registered on it.
#[derive(Debug)]
pub struct Ftrace {
    layout: Layout,
    ops: Ops,
    trampolines: BTreeMap<Slot, Trampoline>,
    /// The dispatchers of the slots in transition.
    dispatchers: BTreeMap<Slot, Dispatcher>,
    /// Dispatchers of slots no longer in transition, kept for the slot's next transition: a
    /// transition then instantiates nothing, and a kernel whose tasks hold frames (so it cannot
    /// move to a fresh store) does not pile up instances, one per function ever in transition.
    parked: BTreeMap<Slot, Dispatcher>,
    /// Parked dispatchers no patch will need again, released at the next [`sync`].
    unparked: Vec<Dispatcher>,
    /// How many trampolines or dispatchers each generated instance holds (an update builds
    /// them together).
    refs: BTreeMap<u32, u32>,
    /// Where dispatchers read `current->patch_state`; none is built before it is set.
    current: Option<Current>,
    enabled: bool,
}

impl Ftrace {
    /// The kernel's slots, from the instrumentation pass; nothing registered, ftrace enabled.
    pub fn new(map: &FtraceMap) -> Self {
        Ftrace {
            layout: Layout::from_map(map),
            ops: Ops::default(),
            trampolines: BTreeMap::new(),
            dispatchers: BTreeMap::new(),
            parked: BTreeMap::new(),
            unparked: Vec::new(),
            refs: BTreeMap::new(),
            current: None,
            enabled: true,
        }
    }

    /// The slot's description, if it holds a known function.
    pub fn info(&self, slot: Slot) -> Option<&SlotInfo> {
        self.layout.info(slot)
    }

    /// Whether the hook reaches the slot: a known function that is not notrace.
    pub fn traceable(&self, slot: Slot) -> bool {
        self.info(slot).is_some_and(|i| !i.notrace)
    }

    /// Number of functions with a slot (kernel and modules).
    pub fn len(&self) -> usize {
        self.layout.len()
    }

    /// Whether no function has a slot.
    pub fn is_empty(&self) -> bool {
        self.layout.len() == 0
    }

    /// Every slot that holds a known function, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.layout.slots()
    }

    /// Total table entries on the free list.
    pub fn free_entries(&self) -> u32 {
        self.layout.free_entries()
    }

    /// Records a loaded module's functions: `sigs[i]` lives at `base + i`, its original at
    /// `base + n + i`. The module's instantiation has written both.
    pub fn add_module(&mut self, owner: &str, base: u32, sigs: &[FuncSig]) {
        self.layout.add_module(owner, base, sigs);
    }

    /// `/proc/sys/kernel/ftrace_enabled`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Switches every hook on or off; [`sync_all`] then rewrites the table.
    ///
    /// # Errors
    /// `EBUSY` when switching off while a live patch redirects a function (its ops are
    /// permanent).
    pub fn set_enabled(&mut self, on: bool) -> Result<(), Errno> {
        if !on && self.ops.redirects().next().is_some() {
            return Err(Errno::EBUSY);
        }
        self.enabled = on;
        Ok(())
    }

    /// Whether livepatch may point `slot` at `target`: the function is traceable, the target is
    /// a function of the same type, ftrace is on, and no kretprobe holds the slot.
    ///
    /// # Errors
    /// The first [`Refusal`] in that order.
    pub fn may_redirect(&self, slot: Slot, target: Slot) -> Result<(), Refusal> {
        let old = self
            .info(slot)
            .filter(|i| !i.notrace)
            .ok_or(Refusal::NotTraceable)?;
        let new = self.info(target).ok_or(Refusal::BadTarget)?;
        if old.sig != new.sig {
            return Err(Refusal::Type {
                want: old.sig.clone(),
                got: new.sig.clone(),
            });
        }
        if !self.enabled {
            return Err(Refusal::Disabled);
        }
        match self.ops.conflict(slot, true) {
            Some(holder) => Err(Refusal::Busy(holder)),
            None => Ok(()),
        }
    }

    /// Points `slot` at `target` for the live patch `patch` (livepatch's ops, with IPMODIFY);
    /// [`sync`] then writes the table.
    ///
    /// # Errors
    /// As [`Ftrace::may_redirect`]; nothing changes then.
    pub fn set_redirect(&mut self, slot: Slot, patch: &str, target: Slot) -> Result<(), Refusal> {
        self.may_redirect(slot, target)?;
        self.ops
            .set_redirect(slot, patch, target)
            .map_err(Refusal::Busy)
    }

    /// Puts `slot`'s redirect in transition (Linux's `func->transition`): while it lasts, the
    /// slot reaches a dispatcher that sends a task whose `patch_state` is
    /// `KLP_TRANSITION_UNPATCHED` to `alt` (the next func_stack entry's `new_func`; `None`: the
    /// original function) and every other task to the redirect's target, as
    /// `klp_ftrace_handler` does. A new redirect of the slot keeps it. [`sync`] then writes
    /// the table; it needs [`Ftrace::set_current`].
    ///
    /// # Errors
    /// [`Refusal::NotRedirected`]; [`Refusal::BadTarget`] or [`Refusal::Type`] for an `alt`
    /// that is not a function of the slot's type. Nothing changes then.
    pub fn set_transition(&mut self, slot: Slot, alt: Option<Slot>) -> Result<(), Refusal> {
        if self.redirect(slot).is_none() {
            return Err(Refusal::NotRedirected);
        }
        if let Some(alt) = alt {
            let want = self.info(slot).map(|i| &i.sig);
            let got = self.info(alt).ok_or(Refusal::BadTarget)?;
            if want != Some(&got.sig) {
                return Err(Refusal::Type {
                    want: want.cloned().unwrap_or_default(),
                    got: got.sig.clone(),
                });
            }
        }
        self.ops.set_transition(slot, alt);
        Ok(())
    }

    /// Ends `slot`'s transition: [`sync`] makes the slot direct again. Returns whether it had
    /// one.
    pub fn clear_transition(&mut self, slot: Slot) -> bool {
        self.ops.clear_transition(slot)
    }

    /// `slot`'s transition, if its redirect has one.
    pub fn transition(&self, slot: Slot) -> Option<Transition> {
        self.redirect(slot)?.transition
    }

    /// No patch will put `slot` in transition again (none describes its function any more): its
    /// parked dispatcher, if any, is released at the next [`sync`].
    pub fn drop_parked(&mut self, slot: Slot) {
        if let Some(d) = self.parked.remove(&slot) {
            self.unparked.push(d);
        }
    }

    /// Tells ftrace where `current` lives: the word at `current_ptr` holds the running task's
    /// `task_struct` address, whose `patch_state` (`i32`) is at `patch_state_offset`.
    /// Dispatchers built before read the old place until the next [`sync`] of their slot.
    pub fn set_current(&mut self, current_ptr: u32, patch_state_offset: u32) {
        self.current = Some(Current {
            current_ptr,
            patch_state_offset,
        });
    }

    /// Where dispatchers read `current->patch_state`, once set.
    pub fn current(&self) -> Option<Current> {
        self.current
    }

    /// Sends `slot`'s calls to the original again; returns whether it was redirected.
    pub fn clear_redirect(&mut self, slot: Slot) -> bool {
        self.ops.clear_redirect(slot)
    }

    /// Whether `hook` may be added to `slot`.
    ///
    /// # Errors
    /// [`Refusal::NotTraceable`]; [`Refusal::Busy`] for a kretprobe on a function a live patch
    /// redirects.
    pub fn may_add_hook(&self, slot: Slot, hook: &Hook) -> Result<(), Refusal> {
        if !self.traceable(slot) {
            return Err(Refusal::NotTraceable);
        }
        match self.ops.hook_conflict(slot, hook) {
            Some(holder) => Err(Refusal::Busy(holder)),
            None => Ok(()),
        }
    }

    /// Adds an entry or exit hook to `slot`; [`sync`] then writes the table.
    ///
    /// # Errors
    /// As [`Ftrace::may_add_hook`]; nothing changes then.
    pub fn add_hook(&mut self, slot: Slot, hook: Hook) -> Result<(), Refusal> {
        self.may_add_hook(slot, &hook)?;
        self.ops.add_hook(slot, hook).map_err(Refusal::Busy)
    }

    /// Removes a hook from `slot`; returns whether it was there.
    pub fn remove_hook(&mut self, slot: Slot, hook: &Hook) -> bool {
        self.ops.remove_hook(slot, hook)
    }

    /// livepatch's redirect of `slot`.
    pub fn redirect(&self, slot: Slot) -> Option<&Redirect> {
        self.ops.redirect(slot)
    }

    /// The hooks on `slot`, in the order they were added.
    pub fn hooks(&self, slot: Slot) -> &[Hook] {
        self.ops.hooks(slot)
    }

    /// Every slot with a hook or a redirect, in slot order.
    pub fn used_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.ops.slots()
    }

    /// The kinds of users of `slot`.
    pub fn users(&self, slot: Slot) -> Users {
        let on = self.enabled;
        let hooks = self.hooks(slot);
        let any = |f: fn(&Hook) -> bool| on && hooks.iter().any(f);
        Users {
            tracer: any(|h| matches!(h, Hook::Tracer)),
            kprobe: any(|h| matches!(h, Hook::Kprobe(_))),
            kretprobe: any(|h| matches!(h, Hook::Kretprobe(_))),
            livepatch: self.redirect(slot).is_some(),
        }
    }

    /// The trampoline installed in `slot`.
    pub fn trampoline(&self, slot: Slot) -> Option<&Trampoline> {
        self.trampolines.get(&slot)
    }

    /// Number of installed trampolines.
    pub fn trampolines(&self) -> usize {
        self.trampolines.len()
    }

    /// The dispatcher installed for `slot` (in transition).
    pub fn dispatcher(&self, slot: Slot) -> Option<&Dispatcher> {
        self.dispatchers.get(&slot)
    }

    /// Number of installed dispatchers.
    pub fn dispatchers(&self) -> usize {
        self.dispatchers.len()
    }

    /// Number of generated instances (trampolines and dispatchers) still referenced.
    pub fn instances(&self) -> usize {
        self.refs.len()
    }
}

/// The display name of the function at a slot.
pub fn func_name(s: &KernelState, slot: Slot) -> String {
    s.kallsyms
        .func_by_slot(slot.index())
        .map_or_else(|| format!("slot{}", slot.index()), |sym| sym.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::{FtraceEntry, ValType};

    /// A kernel of four functions: 0 and 1 of type `(i32) -> i32`, 2 of type `()`, 3 notrace.
    fn ftrace() -> Ftrace {
        let sig = |params: Vec<ValType>, results| FuncSig { params, results };
        let entry = |slot: u32, sig: FuncSig, notrace| FtraceEntry {
            func_index: slot,
            name: format!("f{slot}"),
            slot,
            notrace,
            sig,
        };
        let i2i = sig(vec![ValType::I32], vec![ValType::I32]);
        Ftrace::new(&FtraceMap {
            nr_slots: 4,
            entries: vec![
                entry(0, i2i.clone(), false),
                entry(1, i2i.clone(), false),
                entry(2, sig(vec![], vec![]), false),
                entry(3, i2i, true),
            ],
        })
    }

    #[test]
    fn a_redirect_needs_a_traceable_function_and_a_target_of_its_type() {
        let f = ftrace();
        assert_eq!(f.may_redirect(Slot(0), Slot(1)), Ok(()));
        assert_eq!(f.may_redirect(Slot(3), Slot(1)), Err(Refusal::NotTraceable));
        assert_eq!(f.may_redirect(Slot(9), Slot(1)), Err(Refusal::NotTraceable));
        assert_eq!(f.may_redirect(Slot(0), Slot(9)), Err(Refusal::BadTarget));
        assert!(matches!(
            f.may_redirect(Slot(0), Slot(2)),
            Err(Refusal::Type { .. })
        ));
    }

    #[test]
    fn kretprobe_and_live_patch_exclude_each_other_in_either_order() {
        let mut f = ftrace();
        let ret = Hook::Kretprobe("r".into());
        f.add_hook(Slot(0), ret.clone()).unwrap();
        let busy = f.set_redirect(Slot(0), "p", Slot(1)).unwrap_err();
        assert_eq!(busy, Refusal::Busy(Owner::Kretprobe("r".into())));
        assert_eq!(busy.errno(), Errno::EBUSY);
        f.remove_hook(Slot(0), &ret);
        f.set_redirect(Slot(0), "p", Slot(1)).unwrap();
        let busy = f.add_hook(Slot(0), ret).unwrap_err();
        assert_eq!(busy, Refusal::Busy(Owner::Livepatch("p".into())));
        assert_eq!(busy.errno(), Errno::EBUSY);
    }

    #[test]
    fn ftrace_enabled_cannot_go_off_under_a_live_patch_nor_a_patch_come_while_off() {
        let mut f = ftrace();
        f.set_redirect(Slot(0), "p", Slot(1)).unwrap();
        assert_eq!(f.set_enabled(false), Err(Errno::EBUSY));
        f.clear_redirect(Slot(0));
        f.set_enabled(false).unwrap();
        assert_eq!(
            f.set_redirect(Slot(0), "p", Slot(1)),
            Err(Refusal::Disabled)
        );
    }

    #[test]
    fn hooks_count_as_users_only_while_ftrace_is_enabled() {
        let mut f = ftrace();
        f.add_hook(Slot(0), Hook::Tracer).unwrap();
        f.add_hook(Slot(0), Hook::Kprobe("k".into())).unwrap();
        assert!(f.users(Slot(0)).tracer && f.users(Slot(0)).kprobe);
        f.set_enabled(false).unwrap();
        assert_eq!(f.users(Slot(0)), Users::default());
        assert_eq!(
            f.add_hook(Slot(3), Hook::Tracer),
            Err(Refusal::NotTraceable)
        );
    }
}
