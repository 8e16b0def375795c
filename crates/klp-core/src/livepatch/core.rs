//! The livepatch core (kernel/livepatch/core.c): registering, enabling, disabling, module events.

use super::PatchId;
use super::klp_struct::{self, KlpObject, KlpPatch, PatchDesc};
use super::patch;
use super::plan::{Draft, Plan, commit};
use super::switch::{reverse, run_transition};
use super::transition::{Target, Transition};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::{Ftrace, Hook, Slot, func_name};
use crate::kallsyms::{KallsymsError, SymKind};
use crate::state::KernelState;
use crate::sys::SysResult;
use std::collections::BTreeSet;

/// What the core reads besides its own state: ftrace, the symbols, the loaded modules and the
/// command line. Its own state it reads from the draft only.
struct Ctx<'a>(&'a KernelState);

impl Ctx<'_> {
    fn ftrace(&self) -> &Ftrace {
        &self.0.ftrace
    }

    /// Whether an object is loaded: vmlinux always, a module when it is in the module list.
    fn is_loaded(&self, obj: &KlpObject) -> bool {
        obj.name
            .as_deref()
            .is_none_or(|m| self.0.module(m).is_some())
    }

    /// `klp.strict_stacking=1`: only the last enabled patch can be disabled (the 2016 rule).
    fn strict(&self) -> bool {
        self.0.cmdline_param("klp.strict_stacking") == Some("1")
    }

    fn func_name(&self, slot: Slot) -> String {
        func_name(self.0, slot)
    }
}

/// Works out a plan on a draft of the current state, then commits it.
fn run(e: &mut impl Engine, planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan) -> SysResult<()> {
    let plan = e.with_state(|s| planner(Draft::new(s.livepatch.clone()), &Ctx(s)));
    commit(e, plan)
}

/// As [`run`] for a plan that enables a patch: a trap while printing its messages undoes it.
/// The transition it starts switches the tasks.
fn run_enable(e: &mut impl Engine, planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan) -> SysResult<()> {
    let plan = e.with_state(|s| planner(Draft::new(s.livepatch.clone()), &Ctx(s)));
    run_transition(e, plan, true)
}

/// As [`run`] for a plan that disables a patch: the transition it starts switches the tasks.
fn run_disable(
    e: &mut impl Engine,
    planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan,
) -> SysResult<()> {
    let plan = e.with_state(|s| planner(Draft::new(s.livepatch.clone()), &Ctx(s)));
    run_transition(e, plan, false)
}

/// Why a function of a loaded object has no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unresolved {
    /// The name is not a function.
    NotAFunction,
    /// kallsyms has no such symbol, or not a unique one.
    Lookup,
}

/// `klp_find_object_symbol`'s message for a failed lookup (`objname` is `None` for vmlinux,
/// which Linux prints as `(null)` in the ambiguity message).
fn lookup_message(err: &KallsymsError, name: &str, sympos: u32, objname: Option<&str>) -> String {
    match err {
        KallsymsError::Ambiguous { .. } => format!(
            "unresolvable ambiguity for symbol '{name}' in object '{}'",
            objname.unwrap_or("(null)")
        ),
        KallsymsError::NoSuchPosition { .. } => format!(
            "symbol position {sympos} for symbol '{name}' in object '{}' not found",
            objname.unwrap_or("vmlinux")
        ),
        _ => format!("symbol '{name}' not found in symbol table"),
    }
}

/// `klp_init_object_loaded`: finds the slot of every function of a loaded object.
fn init_object_loaded(
    d: &mut Draft,
    ctx: &Ctx<'_>,
    id: PatchId,
    obj: usize,
) -> Result<(), Unresolved> {
    // Resolved on a borrow of the object: the patch is not copied.
    let Some(object) = d.lp.get(id).map(|p| &p.objs[obj]) else {
        return Err(Unresolved::Lookup);
    };
    let resolved: Result<Vec<Slot>, (String, Unresolved)> = object
        .funcs
        .iter()
        .map(|func| {
            let (name, sympos) = (&func.old_name, func.old_sympos);
            match ctx.0.kallsyms.lookup(object.name(), name, sympos) {
                Ok(sym) if sym.kind == SymKind::Func => Ok(Slot::new(sym.addr)),
                Ok(_) => Err((
                    format!("symbol '{name}' not found in symbol table"),
                    Unresolved::NotAFunction,
                )),
                Err(err) => Err((
                    lookup_message(&err, name, sympos, object.name()),
                    Unresolved::Lookup,
                )),
            }
        })
        .collect();
    let slots = match resolved {
        Ok(slots) => slots,
        Err((message, why)) => {
            d.err(message);
            return Err(why);
        }
    };
    if let Some(p) = d.lp.get_mut(id) {
        for (func, slot) in p.objs[obj].funcs.iter_mut().zip(slots) {
            func.old_func = Some(slot);
        }
    }
    Ok(())
}

/// Resolves an object as registration and enabling do: a name that is not found also says
/// which patch and object failed.
fn init_object(d: &mut Draft, ctx: &Ctx<'_>, id: PatchId, obj: usize) -> Result<(), Errno> {
    init_object_loaded(d, ctx, id, obj).map_err(|why| {
        if why == Unresolved::Lookup
            && let Some(p) = d.lp.get(id)
        {
            let text = format!(
                "failed to initialize patch '{}' object '{}'",
                p.name,
                p.objs[obj].display_name()
            );
            d.warn(text);
        }
        Errno::EINVAL
    })
}

/// `klp_init_patch`: adds the patch at the end of the list, disabled, with its loaded objects
/// resolved.
fn init_patch(
    mut d: Draft,
    ctx: &Ctx<'_>,
    name: &str,
    desc: PatchDesc,
) -> Result<(Draft, PatchId), Plan> {
    let id = PatchId(d.lp.next_id);
    d.lp.next_id += 1;
    let loaded: Vec<bool> = desc.objs.iter().map(|o| ctx.is_loaded(o)).collect();
    d.lp.patches.push(KlpPatch {
        id,
        name: name.to_string(),
        addr: desc.addr,
        replace: desc.replace,
        objs: desc.objs,
        enabled: false,
        forced: false,
    });
    for (obj, _) in loaded.iter().enumerate().filter(|(_, l)| **l) {
        if let Err(errno) = init_object(&mut d, ctx, id, obj) {
            return Err(d.refuse(errno));
        }
    }
    Ok((d, id))
}

/// Warns about kprobes in functions the patch now redirects: they sit in the originals, which
/// calls no longer reach.
fn warn_bypassed_kprobes(d: &mut Draft, ctx: &Ctx<'_>, id: PatchId) {
    let Some(p) = d.lp.get(id) else {
        return;
    };
    let name = p.name.clone();
    let slots: BTreeSet<Slot> = p
        .objs
        .iter()
        .filter(|o| o.patched)
        .flat_map(|o| o.funcs.iter().filter_map(|f| f.old_func))
        .collect();
    for slot in slots {
        let func = ctx.func_name(slot);
        for hook in ctx.ftrace().hooks(slot) {
            if let Hook::Kprobe(probe) = hook {
                d.warn(format!(
                    "'{name}': kprobe '{probe}' on '{func}' will not be hit while the function is patched"
                ));
            }
        }
    }
}

/// `__klp_enable_patch`: patches every loaded object and runs the patching transition; when
/// an object cannot be patched, the transition is canceled and nothing changes.
fn enable_patch(mut d: Draft, ctx: &Ctx<'_>, id: PatchId) -> Plan {
    if d.lp.transition.is_some() {
        return Plan::refused(Errno::EBUSY);
    }
    let (name, objs) = match d.lp.get(id) {
        Some(p) if !p.enabled => (p.name.clone(), p.objs.clone()),
        _ => return Plan::refused(Errno::EINVAL),
    };
    d.notice(format!("enabling patch '{name}'"));
    let mut tr = Transition::init(d, id, Target::Patched);
    for (i, obj) in objs.iter().enumerate() {
        if !ctx.is_loaded(obj) {
            continue;
        }
        let d = tr.draft();
        let resolved = if obj.resolved() {
            Ok(())
        } else {
            init_object(d, ctx, id, i)
        };
        if let Err(errno) = resolved.and_then(|()| patch::patch_object(d, ctx.ftrace(), id, i)) {
            d.warn(format!("failed to patch object '{}'", obj.display_name()));
            d.warn(format!("failed to enable patch '{name}'"));
            return tr.cancel().refuse(errno);
        }
    }
    let mut d = tr.start();
    d.lp.set_enabled(id, true);
    warn_bypassed_kprobes(&mut d, ctx, id);
    d.finish()
}

/// `__klp_disable_patch`: the unpatching transition.
fn disable_patch(mut d: Draft, ctx: &Ctx<'_>, id: PatchId) -> Plan {
    let Some(pos) = d.lp.patches.iter().position(|p| p.id == id && p.enabled) else {
        return Plan::refused(Errno::EINVAL);
    };
    if d.lp.transition.is_some() {
        return Plan::refused(Errno::EBUSY);
    }
    let later_enabled = d.lp.patches[pos + 1..].iter().any(|p| p.enabled);
    if ctx.strict() && later_enabled {
        let name = &d.lp.patches[pos].name;
        let text =
            format!("'{name}': only the last enabled patch can be disabled (strict stacking)");
        d.err(text);
        return d.refuse(Errno::EBUSY);
    }
    let mut d = Transition::init(d, id, Target::Unpatched).start();
    d.lp.set_enabled(id, false);
    d.finish()
}

/// Removes a disabled patch from the list.
fn unregister_patch(mut d: Draft, id: PatchId) -> Plan {
    match d.lp.get(id).map(|p| p.enabled || d.lp.in_transition(id)) {
        None => Plan::refused(Errno::EINVAL),
        Some(true) => Plan::refused(Errno::EBUSY),
        Some(false) => {
            // Its functions' parked dispatchers go with it (redirect sees no patch for them).
            for slot in super::transition::patch_slots(&d.lp, id) {
                d.touch(slot);
            }
            d.lp.patches.retain(|p| p.id != id);
            d.finish()
        }
    }
}

/// Each patch's first object named `module`, in list order: (patch, name, object index).
fn objects_for(d: &Draft, module: &str, enabled_only: bool) -> Vec<(PatchId, String, usize)> {
    d.lp.patches
        .iter()
        .filter(|p| p.enabled || !enabled_only)
        .filter_map(|p| {
            let i = p.objs.iter().position(|o| o.name() == Some(module))?;
            Some((p.id, p.name.clone(), i))
        })
        .collect()
}

/// `klp_module_coming`: every enabled patch with an object for the module is applied to it; if
/// one cannot be, the module is refused and nothing changes.
fn module_coming_plan(mut d: Draft, ctx: &Ctx<'_>, module: &str) -> Plan {
    let mut applied: Vec<String> = Vec::new();
    for (id, patch, i) in objects_for(&d, module, true) {
        let failed = match init_object_loaded(&mut d, ctx, id, i) {
            Err(_) => {
                d.warn(format!(
                    "failed to initialize patch '{patch}' for module '{module}' (-22)"
                ));
                Some(Errno::EINVAL)
            }
            Ok(()) => {
                d.notice(format!(
                    "applying patch '{patch}' to loading module '{module}'"
                ));
                match patch::patch_object(&mut d, ctx.ftrace(), id, i) {
                    Ok(()) => None,
                    Err(errno) => {
                        d.warn(format!(
                            "failed to apply patch '{patch}' to module '{module}' (-{})",
                            errno.0
                        ));
                        Some(errno)
                    }
                }
            }
        };
        if let Some(errno) = failed {
            d.warn(format!(
                "patch '{patch}' failed for module '{module}', refusing to load module '{module}'"
            ));
            for done in applied {
                d.notice(format!(
                    "reverting patch '{done}' on unloading module '{module}'"
                ));
            }
            return d.refuse(errno);
        }
        applied.push(patch);
    }
    d.finish()
}

/// `klp_module_going`: every patch applied to the module comes off it, and its functions'
/// slots are forgotten.
fn module_going_plan(mut d: Draft, module: &str) -> Plan {
    for (id, patch, i) in objects_for(&d, module, false) {
        if d.lp.get(id).is_some_and(|p| p.objs[i].patched) {
            d.notice(format!(
                "reverting patch '{patch}' on unloading module '{module}'"
            ));
        }
        patch::unpatch_object(&mut d, id, i);
        if let Some(p) = d.lp.get_mut(id) {
            p.objs[i].funcs.iter_mut().for_each(|f| f.old_func = None);
        }
    }
    d.finish()
}

/// The module whose init is running: the owner of a patch passed to `klp_*_patch`.
fn calling_module(e: &mut impl Engine) -> SysResult<String> {
    e.with_state(|s| s.loading.clone())
        .ok_or_else(|| Errno::EINVAL.into())
}

/// The id of the patch a module registered.
fn id_of(e: &mut impl Engine, name: &str) -> SysResult<PatchId> {
    e.with_state(|s| s.livepatch.by_name(name).map(KlpPatch::id))
        .ok_or_else(|| Errno::EINVAL.into())
}

/// The id of the patch whose `klp_patch` is at `addr`.
fn id_at(e: &mut impl Engine, addr: u32) -> SysResult<PatchId> {
    e.with_state(|s| {
        s.livepatch
            .patches()
            .find(|p| p.addr == addr)
            .map(KlpPatch::id)
    })
    .ok_or_else(|| Errno::EINVAL.into())
}

/// `klp_register_patch()`: reads the patch, resolves its loaded objects, adds it disabled.
///
/// # Errors
/// `EINVAL` for an unknown or ambiguous symbol; `EEXIST` when the module already registered a
/// patch; `EFAULT`/`EINVAL` for a malformed `klp_patch`.
pub fn klp_register_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let name = calling_module(e)?;
    if e.with_state(|s| s.livepatch.by_name(&name).is_some()) {
        return Err(Errno::EEXIST.into());
    }
    let desc = klp_struct::read_patch(e, &name, addr)?;
    run(e, |d, ctx| match init_patch(d, ctx, &name, desc) {
        Ok((d, _)) => d.finish(),
        Err(plan) => plan,
    })
}

/// `klp_enable_patch()`: registers the patch if needed, then enables it; a patch that cannot be
/// enabled is not registered either.
///
/// # Errors
/// As [`klp_register_patch`] and [`enable`].
pub fn klp_enable_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let name = calling_module(e)?;
    let registered = e.with_state(|s| s.livepatch.by_name(&name).map(|p| (p.id, p.addr)));
    match registered {
        Some((id, at)) if at == addr => run_enable(e, |d, ctx| enable_patch(d, ctx, id)),
        Some(_) => Err(Errno::EINVAL.into()),
        None => {
            let desc = klp_struct::read_patch(e, &name, addr)?;
            run_enable(e, |d, ctx| match init_patch(d, ctx, &name, desc) {
                Ok((d, id)) => enable_patch(d, ctx, id),
                Err(plan) => plan,
            })
        }
    }
}

/// Enables a registered, disabled patch (`echo 1 > enabled`).
///
/// # Errors
/// `EINVAL` when it is not registered, already enabled, or a function cannot be patched;
/// `EBUSY` when ftrace gives a function to another user.
pub fn enable(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let id = id_of(e, name)?;
    run_enable(e, |d, ctx| enable_patch(d, ctx, id))
}

/// Disables an enabled patch (`echo 0 > enabled`, `klp_disable_patch()`).
///
/// # Errors
/// `EINVAL` when it is not enabled; `EBUSY` under `klp.strict_stacking=1` when a later patch is
/// still enabled (the 2016 rule: disable in exactly the reverse order of enabling).
pub fn disable(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let id = id_of(e, name)?;
    run_disable(e, |d, ctx| disable_patch(d, ctx, id))
}

/// `echo 0|1 > enabled` for the patch in transition: the transition reverses
/// (`klp_reverse_transition`).
///
/// # Errors
/// `EINVAL` when `name` is not in transition or `enabled` already reads `enable`.
pub fn reverse_transition(e: &mut impl Engine, name: &str, enable: bool) -> SysResult<()> {
    let id = id_of(e, name)?;
    let ok = e.with_state(|s| {
        let lp = &s.livepatch;
        lp.in_transition(id) && lp.get(id).is_some_and(|p| p.enabled != enable)
    });
    if !ok {
        return Err(Errno::EINVAL.into());
    }
    reverse(e)
}

/// `klp_disable_patch()` from a module, by structure address.
///
/// # Errors
/// As [`disable`].
pub fn klp_disable_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let id = id_at(e, addr)?;
    run_disable(e, |d, ctx| disable_patch(d, ctx, id))
}

/// `klp_unregister_patch()`: removes a disabled patch.
///
/// # Errors
/// `EBUSY` when it is enabled, `EINVAL` when it is not registered.
pub fn klp_unregister_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let id = id_at(e, addr)?;
    run(e, |d, _| unregister_patch(d, id))
}

/// Removes a disabled patch from the list (its sysfs directory goes with it).
///
/// # Errors
/// `EBUSY` when it is enabled, `EINVAL` when it is not registered.
pub fn unregister(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let id = id_of(e, name)?;
    run(e, |d, _| unregister_patch(d, id))
}

/// Forgets the patch a module registered, enabled or not, without a transition: the module's
/// load is being undone. Its func_stack entries go and the functions follow.
///
/// # Errors
/// A table error, or a trap setting the module's reference count.
pub(crate) fn forget(e: &mut impl Engine, module: &str) -> SysResult<()> {
    let Ok(id) = id_of(e, module) else {
        return Ok(());
    };
    let in_transition = e.with_state(|s| s.livepatch.in_transition(id));
    run(e, |mut d, _| {
        if in_transition {
            d.lp.transition = None;
        }
        for slot in super::transition::patch_slots(&d.lp, id) {
            d.touch(slot);
        }
        patch::unpatch_objects(&mut d, id);
        d.lp.patches.retain(|p| p.id != id);
        d.finish()
    })?;
    if in_transition {
        super::switch::idle_tasks(e)?;
    }
    Ok(())
}

/// A module is loading: apply every enabled patch that has an object for it, before its init.
///
/// # Errors
/// `EINVAL` when a patch's function cannot be found in the module, `EBUSY` when ftrace gives one
/// to another user; nothing is applied then.
pub fn module_coming(e: &mut impl Engine, module: &str) -> SysResult<()> {
    run(e, |d, ctx| module_coming_plan(d, ctx, module))
}

/// A module is going away: revert every patch applied to it.
///
/// # Errors
/// A table error, or a trap while logging (the patches are reverted all the same).
pub fn module_going(e: &mut impl Engine, module: &str) -> SysResult<()> {
    run(e, |d, _| module_going_plan(d, module))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftrace::{Owner, Refusal};
    use crate::instrument::{FtraceMap, FuncSig};
    use crate::kallsyms::{Kallsyms, Symbol};
    use crate::livepatch::klp_struct::KlpFunc;
    use crate::loader::LoadedModule;

    /// `f` and `g` of the module `target`.
    const F: Slot = Slot::new(10);
    const G: Slot = Slot::new(11);

    /// The replacement `func` (0 for `f`, 1 for `g`) of patch `p1`, `p2` or `p3`.
    fn new_func(patch: u32, func: u32) -> Slot {
        Slot::new(20 + 4 * (patch - 1) + func)
    }

    /// A kernel with the patch modules' replacements; `target` is loaded when `loaded`.
    fn kernel(cmdline: &str, loaded: bool) -> KernelState {
        let map = FtraceMap {
            nr_slots: 0,
            entries: Vec::new(),
        };
        let mut s = KernelState::new(&map, Kallsyms::default(), cmdline);
        for p in 1..=3 {
            let base = new_func(p, 0).index();
            s.ftrace.add_module(
                &format!("p{p}"),
                base,
                &[FuncSig::default(), FuncSig::default()],
            );
        }
        if loaded {
            load_target(&mut s);
        }
        s
    }

    fn load_target(s: &mut KernelState) {
        let sym = |name: &str, slot: Slot| Symbol {
            name: name.into(),
            kind: SymKind::Func,
            global: true,
            addr: slot.index(),
            size: 4,
            sympos: 0,
            module: None,
            func_index: None,
        };
        s.ftrace.add_module(
            "target",
            F.index(),
            &[FuncSig::default(), FuncSig::default()],
        );
        s.kallsyms
            .add_module("target", vec![sym("f", F), sym("g", G)]);
        s.modules.push(LoadedModule {
            name: "target".into(),
            data_base: 0,
            data_size: 0,
            data_alloc: 0,
            slot_base: F.index(),
            nr_funcs: 2,
            instance: 0,
            exit: None,
            uses: Vec::new(),
            refcnt: 0,
            livepatch: false,
            params: Vec::new(),
        });
    }

    /// Patch `p<patch>` for `target`, replacing `funcs`.
    fn desc(patch: u32, funcs: &[&str], replace: bool) -> PatchDesc {
        let funcs = (0u32..)
            .zip(funcs)
            .map(|(i, name)| KlpFunc {
                old_name: (*name).into(),
                old_sympos: 0,
                new_func: new_func(patch, i),
                old_func: None,
            })
            .collect();
        PatchDesc {
            addr: 1000 + patch,
            replace,
            objs: vec![KlpObject {
                name: Some("target".into()),
                funcs,
                patched: false,
            }],
        }
    }

    /// Plans on `s`, installs the plan (state and redirects); returns the outcome and the
    /// messages as `level text`.
    fn apply(
        s: &mut KernelState,
        planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan,
    ) -> (Result<(), Errno>, Vec<String>) {
        let plan = planner(Draft::new(s.livepatch.clone()), &Ctx(s));
        let mut lines = plan.lines();
        let starts = plan.transition().is_some();
        let result = plan.install(s);
        // No task here: a transition completes as soon as it is tried.
        if starts && result.is_ok() {
            let done =
                crate::livepatch::transition::complete(Draft::new(s.livepatch.clone())).finish();
            lines.extend(done.lines());
            done.install(s).unwrap();
        }
        (result, lines)
    }

    /// `klp_enable_patch()` of a new patch.
    fn enable_new(s: &mut KernelState, desc: PatchDesc) -> (Result<(), Errno>, Vec<String>) {
        let name = format!("p{}", desc.addr - 1000);
        apply(s, |d, ctx| match init_patch(d, ctx, &name, desc) {
            Ok((d, id)) => enable_patch(d, ctx, id),
            Err(plan) => plan,
        })
    }

    fn id(s: &KernelState, name: &str) -> PatchId {
        s.livepatch.by_name(name).map(KlpPatch::id).unwrap()
    }

    fn disable_named(s: &mut KernelState, name: &str) -> (Result<(), Errno>, Vec<String>) {
        let id = id(s, name);
        apply(s, |d, ctx| disable_patch(d, ctx, id))
    }

    /// The patch whose replacement calls through `slot` reach, and ftrace's target for it.
    fn top(s: &KernelState, slot: Slot) -> Option<(String, Slot)> {
        let en = s.livepatch.func_stacks().top(slot)?;
        let name = s.livepatch.get(en.patch())?.name().to_string();
        let redirect = s
            .ftrace
            .redirect(slot)
            .expect("ftrace redirects a patched slot");
        assert_eq!(redirect.patch, name, "ftrace names the top patch");
        Some((name, redirect.target))
    }

    #[test]
    fn enabling_and_disabling_print_linux_messages_at_linux_levels() {
        let mut s = kernel("", true);
        let (result, lines) = enable_new(&mut s, desc(1, &["f"], false));
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines,
            [
                "5 enabling patch 'p1'",
                "7 'p1': initializing patching transition",
                "5 'p1': starting patching transition",
                "7 'p1': completing patching transition",
                "5 'p1': patching complete",
            ]
        );
        let (result, lines) = disable_named(&mut s, "p1");
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines,
            [
                "7 'p1': initializing unpatching transition",
                "5 'p1': starting unpatching transition",
                "7 'p1': completing unpatching transition",
                "5 'p1': unpatching complete",
            ]
        );
        assert!(s.ftrace.redirect(F).is_none());
    }

    #[test]
    fn stacked_patches_lead_to_the_newest_and_disable_in_any_order() {
        let mut s = kernel("", true);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        enable_new(&mut s, desc(2, &["f"], false)).0.unwrap();
        assert_eq!(top(&s, F), Some(("p2".into(), new_func(2, 0))));
        disable_named(&mut s, "p1").0.unwrap();
        assert_eq!(top(&s, F), Some(("p2".into(), new_func(2, 0))));
        let p1 = id(&s, "p1");
        apply(&mut s, |d, ctx| enable_patch(d, ctx, p1)).0.unwrap();
        assert_eq!(top(&s, F), Some(("p1".into(), new_func(1, 0))));
        assert_eq!(s.livepatch.stack_order("p1"), Some(2));
        disable_named(&mut s, "p1").0.unwrap();
        assert_eq!(top(&s, F), Some(("p2".into(), new_func(2, 0))));
        disable_named(&mut s, "p2").0.unwrap();
        assert_eq!(top(&s, F), None);
        assert!(s.livepatch.func_stacks().is_empty());
        assert!(s.ftrace.redirect(F).is_none());
    }

    #[test]
    fn strict_stacking_disables_only_the_last_enabled_patch() {
        let mut s = kernel("klp.strict_stacking=1", true);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        enable_new(&mut s, desc(2, &["f"], false)).0.unwrap();
        let before = s.livepatch.clone();
        let (result, lines) = disable_named(&mut s, "p1");
        assert_eq!(result, Err(Errno::EBUSY));
        assert_eq!(
            lines,
            ["3 'p1': only the last enabled patch can be disabled (strict stacking)"]
        );
        assert_eq!(s.livepatch, before, "a refusal changes nothing");
        disable_named(&mut s, "p2").0.unwrap();
        disable_named(&mut s, "p1").0.unwrap();
        assert!(s.livepatch.func_stacks().is_empty());
    }

    #[test]
    fn atomic_replace_reverts_what_it_does_not_patch_and_disables_the_replaced() {
        let mut s = kernel("", true);
        enable_new(&mut s, desc(1, &["f", "g"], false)).0.unwrap();
        enable_new(&mut s, desc(2, &["f"], true)).0.unwrap();
        assert_eq!(top(&s, F), Some(("p2".into(), new_func(2, 0))));
        assert_eq!(top(&s, G), None);
        assert!(s.ftrace.redirect(G).is_none());
        assert!(!s.livepatch.is_enabled("p1"));
        assert!(s.livepatch.is_enabled("p2"));
        assert_eq!(s.livepatch.func_stacks().get(F).map(<[_]>::len), Some(1));
    }

    #[test]
    fn a_patch_for_a_module_is_applied_when_it_comes_and_reverted_when_it_goes() {
        let mut s = kernel("", false);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        assert!(s.livepatch.func_stacks().is_empty(), "target is not loaded");
        load_target(&mut s);
        let (result, lines) = apply(&mut s, |d, ctx| module_coming_plan(d, ctx, "target"));
        assert_eq!(result, Ok(()));
        assert_eq!(lines, ["5 applying patch 'p1' to loading module 'target'"]);
        assert_eq!(top(&s, F), Some(("p1".into(), new_func(1, 0))));
        let (result, lines) = apply(&mut s, |d, _| module_going_plan(d, "target"));
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines,
            ["5 reverting patch 'p1' on unloading module 'target'"]
        );
        assert!(s.livepatch.func_stacks().is_empty());
        assert!(s.ftrace.redirect(F).is_none());
        let obj = &s.livepatch.by_name("p1").unwrap().objs()[0];
        assert!(!obj.patched() && obj.funcs()[0].old_func.is_none());
    }

    #[test]
    fn a_module_one_patch_cannot_be_applied_to_is_refused_and_nothing_changes() {
        let mut s = kernel("", false);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        enable_new(&mut s, desc(2, &["nope"], false)).0.unwrap();
        load_target(&mut s);
        let before = s.livepatch.clone();
        let (result, lines) = apply(&mut s, |d, ctx| module_coming_plan(d, ctx, "target"));
        assert_eq!(result, Err(Errno::EINVAL));
        assert_eq!(
            lines,
            [
                "5 applying patch 'p1' to loading module 'target'",
                "3 symbol 'nope' not found in symbol table",
                "4 failed to initialize patch 'p2' for module 'target' (-22)",
                "4 patch 'p2' failed for module 'target', refusing to load module 'target'",
                "5 reverting patch 'p1' on unloading module 'target'",
            ]
        );
        assert_eq!(s.livepatch, before);
        assert!(s.ftrace.redirect(F).is_none());
    }

    #[test]
    fn a_live_patch_on_a_kretprobed_function_is_busy_and_changes_nothing() {
        let mut s = kernel("", true);
        s.ftrace.add_hook(F, Hook::Kretprobe("r".into())).unwrap();
        let (result, lines) = enable_new(&mut s, desc(1, &["f"], false));
        assert_eq!(result, Err(Errno::EBUSY));
        assert_eq!(
            lines,
            [
                "5 enabling patch 'p1'",
                "7 'p1': initializing patching transition",
                "3 function 'f' is held by kretprobe 'r'",
                "3 failed to register ftrace handler for function 'f' (-16)",
                "4 failed to patch object 'target'",
                "4 failed to enable patch 'p1'",
                "7 'p1': canceling patching transition, going to unpatch",
                "7 'p1': completing unpatching transition",
                "5 'p1': unpatching complete",
            ]
        );
        assert_eq!(s.livepatch.patches().count(), 0, "not registered either");
        assert!(s.ftrace.redirect(F).is_none());
    }

    #[test]
    fn a_kretprobe_on_a_patched_function_is_busy() {
        let mut s = kernel("", true);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        assert_eq!(
            s.ftrace.add_hook(F, Hook::Kretprobe("r".into())),
            Err(Refusal::Busy(Owner::Livepatch("p1".into())))
        );
        assert!(s.ftrace.add_hook(G, Hook::Kretprobe("r".into())).is_ok());
    }

    #[test]
    fn a_kprobe_in_a_patched_function_is_reported_as_bypassed() {
        let mut s = kernel("", true);
        s.ftrace.add_hook(F, Hook::Kprobe("k".into())).unwrap();
        let (result, lines) = enable_new(&mut s, desc(1, &["f"], false));
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines[2..4],
            [
                "5 'p1': starting patching transition",
                "4 'p1': kprobe 'k' on 'f' will not be hit while the function is patched",
            ]
        );
    }

    #[test]
    fn unknown_and_unpatchable_functions_refuse_registration_or_enabling() {
        let mut s = kernel("", true);
        let (result, lines) = enable_new(&mut s, desc(1, &["nope"], false));
        assert_eq!(result, Err(Errno::EINVAL));
        assert_eq!(
            lines,
            [
                "3 symbol 'nope' not found in symbol table",
                "4 failed to initialize patch 'p1' object 'target'",
            ]
        );
        let mut bad = desc(2, &["f"], false);
        bad.objs[0].funcs[0].new_func = Slot::new(999);
        let (result, lines) = enable_new(&mut s, bad);
        assert_eq!(result, Err(Errno::EINVAL));
        assert_eq!(lines[2], "3 invalid replacement for function 'f'");
        assert_eq!(s.livepatch.patches().count(), 0);
    }

    #[test]
    fn failed_lookups_print_klp_find_object_symbol_texts() {
        let ambiguous = KallsymsError::Ambiguous { count: 2 };
        let position = KallsymsError::NoSuchPosition { count: 1 };
        assert_eq!(
            lookup_message(&ambiguous, "parse_int", 0, None),
            "unresolvable ambiguity for symbol 'parse_int' in object '(null)'"
        );
        assert_eq!(
            lookup_message(&ambiguous, "show", 0, Some("m")),
            "unresolvable ambiguity for symbol 'show' in object 'm'"
        );
        assert_eq!(
            lookup_message(&position, "parse_int", 3, None),
            "symbol position 3 for symbol 'parse_int' in object 'vmlinux' not found"
        );
        assert_eq!(
            lookup_message(&KallsymsError::NotFound, "x", 0, None),
            "symbol 'x' not found in symbol table"
        );
    }
}
