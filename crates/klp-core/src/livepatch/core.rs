//! The livepatch core (kernel/livepatch/core.c): registering, enabling, disabling, module events.

use super::klp_struct::{self, Api, KlpObject, KlpPatch, PatchDesc};
use super::patch;
use super::plan::{Draft, Plan, commit};
use super::switch::{reverse, run_transition, run_transition_from};
use super::transition::{Target, Transition};
use super::{Livepatch, PatchId, callbacks};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::{Ftrace, Hook, Slot, func_name};
use crate::kallsyms::{KallsymsError, SymKind};
use crate::loader::first_or_trap;
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

    /// Whether an object is loaded ([`object_loaded`]).
    fn is_loaded(&self, obj: &KlpObject) -> bool {
        object_loaded(self.0, obj)
    }

    /// `klp.strict_stacking=1`: only the last enabled patch can be disabled (the 2016 rule).
    fn strict(&self) -> bool {
        self.0.cmdline_param("klp.strict_stacking") == Some("1")
    }

    fn func_name(&self, slot: Slot) -> String {
        func_name(self.0, slot)
    }
}

/// Whether an object is loaded (`klp_is_object_loaded`): vmlinux always, a module when it is in
/// the module list.
pub(super) fn object_loaded(s: &KernelState, obj: &KlpObject) -> bool {
    obj.name.as_deref().is_none_or(|m| s.module(m).is_some())
}

/// Works out a plan on a draft of the current state, then commits it.
fn run(e: &mut impl Engine, planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan) -> SysResult<()> {
    let plan = e.with_state(|s| planner(Draft::new(s.livepatch.clone()), &Ctx(s)));
    commit(e, plan)
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
    api: Api,
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
        states: desc.states,
        api,
        enabled: false,
        forced: false,
    });
    if let Err(errno) = callbacks::check(&mut d, ctx.ftrace(), id) {
        return Err(d.refuse(errno));
    }
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

/// `__klp_enable_patch` up to its first object: the checks, `enabling patch`, and
/// `klp_init_transition`.
fn enable_begin(mut d: Draft, id: PatchId) -> Plan {
    if d.lp.transition.is_some() {
        return Plan::refused(Errno::EBUSY);
    }
    let name = match d.lp.get(id) {
        Some(p) if !p.enabled => p.name.clone(),
        _ => return Plan::refused(Errno::EINVAL),
    };
    d.notice(format!("enabling patch '{name}'"));
    Transition::init(d, id, Target::Patched).finish()
}

/// `__klp_enable_patch`'s failure: `failed to enable patch`, and `klp_cancel_transition`
/// (everything patched comes off, `post_unpatch` for the objects whose `pre_patch` ran; a patch
/// `klp_enable_patch()` registered is freed with it).
fn enable_failed(mut d: Draft, ctx: &Ctx<'_>, id: PatchId, errno: Errno) -> Plan {
    let name = d.lp.get(id).map(|p| p.name.clone()).unwrap_or_default();
    d.warn(format!("failed to enable patch '{name}'"));
    match Transition::resume(d) {
        Some(tr) => tr.cancel(|o| ctx.is_loaded(o)).fail(errno),
        None => Plan::refused(errno),
    }
}

/// `__klp_enable_patch` for one loaded object whose `pre_patch` returned `ret`: a failed
/// callback fails the enable, else the object is resolved if needed and patched
/// (`klp_patch_object`).
fn enable_object(mut d: Draft, ctx: &Ctx<'_>, id: PatchId, i: usize, ret: i32) -> Plan {
    let Some(obj) = d.lp.get(id).map(|p| p.objs[i].clone()) else {
        return Plan::refused(Errno::EINVAL);
    };
    if ret != 0 {
        d.warn(format!(
            "pre-patch callback failed for object '{}'",
            obj.display_name()
        ));
        return enable_failed(d, ctx, id, callbacks::errno_of(ret));
    }
    let resolved = if obj.resolved() {
        Ok(())
    } else {
        init_object(&mut d, ctx, id, i)
    };
    match resolved.and_then(|()| patch::patch_object(&mut d, ctx.ftrace(), id, i)) {
        Ok(()) => d.finish(),
        Err(errno) => {
            d.warn(format!("failed to patch object '{}'", obj.display_name()));
            enable_failed(d, ctx, id, errno)
        }
    }
}

/// The end of `__klp_enable_patch`: `klp_start_transition`, and the patch is enabled.
fn enable_start(d: Draft, ctx: &Ctx<'_>, id: PatchId) -> Plan {
    let Some(tr) = Transition::resume(d) else {
        return Plan::refused(Errno::EINVAL);
    };
    let mut d = tr.start();
    d.lp.set_enabled(id, true);
    warn_bypassed_kprobes(&mut d, ctx, id);
    d.finish()
}

/// `__klp_enable_patch` (after `klp_init_patch` for a patch `prepare` registers), step by step
/// as Linux runs it: the transition is initialized; each loaded object's `pre_patch` callback
/// runs, then the object is patched; the transition starts and the tasks switch. A failed
/// callback or object cancels the transition and returns its error; a trap undoes the whole
/// operation.
fn enable_steps(
    e: &mut impl Engine,
    prepare: impl FnOnce(Draft, &Ctx<'_>) -> Result<(Draft, PatchId), Plan>,
) -> SysResult<()> {
    let before = e.with_state(|s| s.livepatch.clone());
    let (plan, id) = e.with_state(
        |s| match prepare(Draft::new(s.livepatch.clone()), &Ctx(s)) {
            Ok((d, id)) => (enable_begin(d, id), Some(id)),
            Err(plan) => (plan, None),
        },
    );
    let (Some(id), Some((_, target))) = (id, plan.transition()) else {
        return commit(e, plan);
    };
    // Undoes what the enable committed so far, after `err`.
    let abort = |e: &mut _, err| {
        let undone = super::plan::restore(e, before.clone());
        first_or_trap(err, undone.and(super::switch::idle_tasks(e)))
    };
    super::switch::init_tasks(e, target)?;
    if let Err(err) = commit(e, plan) {
        return Err(abort(e, err));
    }
    let nobjs = e.with_state(|s| s.livepatch.get(id).map_or(0, |p| p.objs.len()));
    for i in 0..nobjs {
        if !e.with_state(|s| {
            s.livepatch
                .get(id)
                .is_some_and(|p| object_loaded(s, &p.objs[i]))
        }) {
            continue;
        }
        let ret = match callbacks::pre_patch(e, id, i) {
            Ok(ret) => ret,
            Err(err) => return Err(abort(e, err)),
        };
        let plan =
            e.with_state(|s| enable_object(Draft::new(s.livepatch.clone()), &Ctx(s), id, i, ret));
        let failed = plan.fails();
        match commit(e, plan) {
            Ok(()) => {}
            // The enable failed and was canceled: the tasks go back to idle.
            Err(err) if failed => return Err(first_or_trap(err, super::switch::idle_tasks(e))),
            Err(err) => return Err(abort(e, err)),
        }
    }
    let plan = e.with_state(|s| enable_start(Draft::new(s.livepatch.clone()), &Ctx(s), id));
    run_transition_from(e, plan, true, before)
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
    let mut tr = Transition::init(d, id, Target::Unpatched);
    let d = tr.draft();
    let patched: Vec<usize> = d.lp.patches[pos]
        .objs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.patched)
        .map(|(i, _)| i)
        .collect();
    for i in patched {
        callbacks::pre_unpatch(d, id, i);
    }
    let mut d = tr.start();
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
            for slot in d.lp.free(id) {
                d.touch(slot);
            }
            d.finish()
        }
    }
}

/// Each patch's first object named `module`, in list order: (patch, name, object index); with
/// `active_only`, only the patches Linux's `klp_patches` lists: enabled or in transition.
fn objects_for(lp: &Livepatch, module: &str, active_only: bool) -> Vec<(PatchId, String, usize)> {
    lp.patches
        .iter()
        .filter(|p| !active_only || p.enabled || lp.in_transition(p.id))
        .filter_map(|p| {
            let i = p.objs.iter().position(|o| o.name() == Some(module))?;
            Some((p.id, p.name.clone(), i))
        })
        .collect()
}

/// `klp_free_object_loaded`: the object's functions are no longer resolved.
fn free_object_loaded(d: &mut Draft, id: PatchId, i: usize) {
    if let Some(p) = d.lp.get_mut(id) {
        p.objs[i].funcs.iter_mut().for_each(|f| f.old_func = None);
    }
}

/// Reverts object `i` of patch `id` from the unloading `module`, with its callbacks
/// (`klp_cleanup_module_patches_limited`, for one patch): `pre_unpatch` unless the patch is in
/// transition, `reverting patch`, the object unpatched, `post_unpatch`.
fn revert_object(d: &mut Draft, id: PatchId, i: usize, module: &str) {
    let Some(patch) = d.lp.get(id).map(|p| p.name.clone()) else {
        return;
    };
    if !d.lp.in_transition(id) {
        callbacks::pre_unpatch(d, id, i);
    }
    d.notice(format!(
        "reverting patch '{patch}' on unloading module '{module}'"
    ));
    patch::unpatch_object(d, id, i);
    callbacks::post_unpatch(d, id, i);
    free_object_loaded(d, id, i);
}

/// `klp_module_coming`'s failure for patch `id`'s object `i`: `refusing to load module`, and
/// the patches already `applied` to the module are reverted from it.
fn refuse_module(
    mut d: Draft,
    module: &str,
    (id, i): (PatchId, usize),
    applied: &[(PatchId, usize)],
    errno: Errno,
) -> Plan {
    let patch = d.lp.get(id).map(|p| p.name.clone()).unwrap_or_default();
    d.warn(format!(
        "patch '{patch}' failed for module '{module}', refusing to load module '{module}'"
    ));
    free_object_loaded(&mut d, id, i);
    for &(done, j) in applied {
        revert_object(&mut d, done, j, module);
    }
    d.fail(errno)
}

/// `klp_module_coming` for patch `id`'s object `i`, up to its `pre_patch` callback: the
/// object's functions are resolved in the module (`klp_init_object_loaded`), `applying patch`.
fn coming_begin(
    mut d: Draft,
    ctx: &Ctx<'_>,
    module: &str,
    (id, i): (PatchId, usize),
    applied: &[(PatchId, usize)],
) -> Plan {
    let patch = d.lp.get(id).map(|p| p.name.clone()).unwrap_or_default();
    if init_object_loaded(&mut d, ctx, id, i).is_err() {
        d.warn(format!(
            "failed to initialize patch '{patch}' for module '{module}' (-22)"
        ));
        return refuse_module(d, module, (id, i), applied, Errno::EINVAL);
    }
    d.notice(format!(
        "applying patch '{patch}' to loading module '{module}'"
    ));
    d.finish()
}

/// `klp_module_coming` for patch `id`'s object `i` whose `pre_patch` returned `ret`: the object
/// is patched, and unless the patch is in transition its `post_patch` runs.
fn coming_patch(
    mut d: Draft,
    ctx: &Ctx<'_>,
    module: &str,
    (id, i): (PatchId, usize),
    ret: i32,
    applied: &[(PatchId, usize)],
) -> Plan {
    let patch = d.lp.get(id).map(|p| p.name.clone()).unwrap_or_default();
    if ret != 0 {
        d.warn(format!("pre-patch callback failed for object '{module}'"));
        return refuse_module(d, module, (id, i), applied, callbacks::errno_of(ret));
    }
    if let Err(errno) = patch::patch_object(&mut d, ctx.ftrace(), id, i) {
        d.warn(format!(
            "failed to apply patch '{patch}' to module '{module}' (-{})",
            errno.0
        ));
        callbacks::post_unpatch(&mut d, id, i);
        return refuse_module(d, module, (id, i), applied, errno);
    }
    if !d.lp.in_transition(id) {
        callbacks::post_patch(&mut d, id, i);
    }
    d.finish()
}

/// `klp_module_going`: every patch applied to the module comes off it, with its callbacks, and
/// its functions' slots are forgotten.
fn module_going_plan(mut d: Draft, module: &str) -> Plan {
    for (id, _, i) in objects_for(&d.lp, module, false) {
        if d.lp.get(id).is_some_and(|p| p.objs[i].patched) {
            revert_object(&mut d, id, i, module);
        } else {
            // Not applied (its patch is disabled): nothing to revert, no callback.
            free_object_loaded(&mut d, id, i);
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
    run(e, |d, ctx| {
        match init_patch(d, ctx, &name, desc, Api::Register) {
            Ok((d, _)) => d.finish(),
            Err(plan) => plan,
        }
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
        Some((id, at)) if at == addr => enable_steps(e, |d, _| Ok((d, id))),
        Some(_) => Err(Errno::EINVAL.into()),
        None => {
            let desc = klp_struct::read_patch(e, &name, addr)?;
            enable_steps(e, |d, ctx| {
                let d = super::state::check_compatible(d, &name, &desc)?;
                init_patch(d, ctx, &name, desc, Api::Enable)
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
    enable_steps(e, |d, _| Ok((d, id)))
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

/// A module is loading (`klp_module_coming`): every active patch with an object for it is
/// applied to it, before its init, one after the other, each object's `pre_patch` callback
/// first.
///
/// # Errors
/// `EINVAL` when a patch's function cannot be found in the module, `EBUSY` when ftrace gives one
/// to another user, a failed `pre_patch`'s error; the patches applied before are reverted
/// then.
pub fn module_coming(e: &mut impl Engine, module: &str) -> SysResult<()> {
    let objects = e.with_state(|s| objects_for(&s.livepatch, module, true));
    let mut applied: Vec<(PatchId, usize)> = Vec::new();
    for (id, _, i) in objects {
        let plan = e.with_state(|s| {
            coming_begin(
                Draft::new(s.livepatch.clone()),
                &Ctx(s),
                module,
                (id, i),
                &applied,
            )
        });
        commit(e, plan)?;
        let ret = callbacks::pre_patch(e, id, i)?;
        let plan = e.with_state(|s| {
            let d = Draft::new(s.livepatch.clone());
            coming_patch(d, &Ctx(s), module, (id, i), ret, &applied)
        });
        commit(e, plan)?;
        applied.push((id, i));
    }
    Ok(())
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
            states: Vec::new(),
            objs: vec![KlpObject {
                name: Some("target".into()),
                funcs,
                addr: 2000 + patch,
                callbacks: Default::default(),
                post_unpatch_enabled: false,
                patched: false,
            }],
        }
    }

    /// Plans on `s` and installs the plan (state and redirects), leaving a transition it starts
    /// in progress; returns the outcome and the messages as `level text`.
    fn install(
        s: &mut KernelState,
        planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan,
    ) -> (Result<(), Errno>, Vec<String>) {
        let plan = planner(Draft::new(s.livepatch.clone()), &Ctx(s));
        let lines = plan.lines();
        (plan.install(s), lines)
    }

    /// As [`install`], and a transition the plan starts completes at once (no task here).
    fn apply(
        s: &mut KernelState,
        planner: impl FnOnce(Draft, &Ctx<'_>) -> Plan,
    ) -> (Result<(), Errno>, Vec<String>) {
        let (result, mut lines) = install(s, planner);
        if result.is_ok() && s.livepatch.transition().is_some() {
            let d = Draft::new(s.livepatch.clone());
            let done = {
                let state = &*s;
                crate::livepatch::transition::complete(d, |o| object_loaded(state, o)).finish()
            };
            lines.extend(done.lines());
            done.install(s).unwrap();
        }
        (result, lines)
    }

    /// [`enable_steps`] without an engine: every `pre_patch` returns 0.
    fn enable_with(
        s: &mut KernelState,
        prepare: impl FnOnce(Draft, &Ctx<'_>) -> Result<(Draft, PatchId), Plan>,
    ) -> (Result<(), Errno>, Vec<String>) {
        enable_returning(s, prepare, 0)
    }

    /// [`enable_steps`] without an engine, every `pre_patch` callback returning `ret` (as
    /// `call <slot>` in the lines).
    fn enable_returning(
        s: &mut KernelState,
        prepare: impl FnOnce(Draft, &Ctx<'_>) -> Result<(Draft, PatchId), Plan>,
        ret: i32,
    ) -> (Result<(), Errno>, Vec<String>) {
        let mut id = None;
        let (result, mut lines) = install(s, |d, ctx| match prepare(d, ctx) {
            Ok((d, new)) => {
                id = Some(new);
                enable_begin(d, new)
            }
            Err(plan) => plan,
        });
        let Some(id) = id.filter(|_| result.is_ok()) else {
            return (result, lines);
        };
        let nobjs = s.livepatch.get(id).map_or(0, |p| p.objs.len());
        for i in 0..nobjs {
            if !object_loaded(s, &s.livepatch.get(id).unwrap().objs[i]) {
                continue;
            }
            let pre = s.livepatch.get(id).unwrap().objs[i].callbacks.pre_patch;
            let ret = match pre {
                Some(slot) => {
                    lines.push(format!("call {}", slot.index()));
                    ret
                }
                None => 0,
            };
            callbacks::pre_patch_returned(&mut s.livepatch, id, i, ret);
            let (result, more) = install(s, |d, ctx| enable_object(d, ctx, id, i, ret));
            lines.extend(more);
            if result.is_err() {
                return (result, lines);
            }
        }
        let (result, more) = apply(s, |d, ctx| enable_start(d, ctx, id));
        lines.extend(more);
        (result, lines)
    }

    /// `klp_enable_patch()` of a new patch.
    fn enable_new(s: &mut KernelState, desc: PatchDesc) -> (Result<(), Errno>, Vec<String>) {
        let name = format!("p{}", desc.addr - 1000);
        enable_with(s, |d, ctx| init_patch(d, ctx, &name, desc, Api::Enable))
    }

    /// `klp_register_patch()` then enabling, the 2016 API.
    fn register_and_enable(s: &mut KernelState, desc: PatchDesc) {
        let name = format!("p{}", desc.addr - 1000);
        let (result, _) = enable_with(s, |d, ctx| init_patch(d, ctx, &name, desc, Api::Register));
        result.unwrap();
    }

    /// `klp_module_coming` without an engine: every `pre_patch` returns 0.
    fn coming(s: &mut KernelState, module: &str) -> (Result<(), Errno>, Vec<String>) {
        let mut lines = Vec::new();
        let mut applied = Vec::new();
        for (id, _, i) in objects_for(&s.livepatch, module, true) {
            for phase in 0..2 {
                let (result, more) = install(s, |d, ctx| match phase {
                    0 => coming_begin(d, ctx, module, (id, i), &applied),
                    _ => coming_patch(d, ctx, module, (id, i), 0, &applied),
                });
                lines.extend(more);
                if result.is_err() {
                    return (result, lines);
                }
            }
            applied.push((id, i));
        }
        (Ok(()), lines)
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

    /// Patch `p1` for `target` replacing `f`, with all four callbacks (slots 40 to 43 of the
    /// module `cbs`).
    fn with_callbacks(s: &mut KernelState) -> PatchDesc {
        use crate::instrument::ValType::I32;
        let pre = FuncSig {
            params: vec![I32],
            results: vec![I32],
        };
        let void = FuncSig {
            params: vec![I32],
            results: Vec::new(),
        };
        s.ftrace
            .add_module("cbs", 40, &[pre, void.clone(), void.clone(), void]);
        let mut d = desc(1, &["f"], false);
        d.objs[0].callbacks = super::super::klp_struct::Callbacks {
            pre_patch: Some(Slot::new(40)),
            post_patch: Some(Slot::new(41)),
            pre_unpatch: Some(Slot::new(42)),
            post_unpatch: Some(Slot::new(43)),
        };
        d
    }

    #[test]
    fn callbacks_run_where_linux_runs_them() {
        let mut s = kernel("", true);
        let d = with_callbacks(&mut s);
        let (result, lines) =
            enable_with(&mut s, |dr, ctx| init_patch(dr, ctx, "p1", d, Api::Enable));
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines,
            [
                "5 enabling patch 'p1'",
                "7 'p1': initializing patching transition",
                "call 40",
                "5 'p1': starting patching transition",
                "7 'p1': completing patching transition",
                "call 41",
                "5 'p1': patching complete",
            ]
        );
        let (result, lines) = disable_named(&mut s, "p1");
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines,
            [
                "7 'p1': initializing unpatching transition",
                "call 42",
                "5 'p1': starting unpatching transition",
                "7 'p1': completing unpatching transition",
                "call 43",
                "5 'p1': unpatching complete",
            ]
        );
        assert!(s.livepatch.by_name("p1").is_none(), "freed");
    }

    #[test]
    fn a_failed_pre_patch_cancels_the_enable_without_post_unpatch() {
        let mut s = kernel("", true);
        let d = with_callbacks(&mut s);
        let (result, lines) = enable_returning(
            &mut s,
            |dr, ctx| init_patch(dr, ctx, "p1", d, Api::Enable),
            -19,
        );
        assert_eq!(result, Err(Errno::ENODEV));
        assert_eq!(
            lines,
            [
                "5 enabling patch 'p1'",
                "7 'p1': initializing patching transition",
                "call 40",
                "4 pre-patch callback failed for object 'target'",
                "4 failed to enable patch 'p1'",
                "7 'p1': canceling patching transition, going to unpatch",
                "7 'p1': completing unpatching transition",
                "5 'p1': unpatching complete",
            ]
        );
        assert_eq!(s.livepatch.patches().count(), 0);
        assert!(s.livepatch.transition().is_none());
        assert!(s.ftrace.redirect(F).is_none());
    }

    #[test]
    fn a_module_coming_during_its_patch_s_transition_gets_no_post_patch() {
        let mut s = kernel("", false);
        let d = with_callbacks(&mut s);
        enable_with(&mut s, |dr, ctx| init_patch(dr, ctx, "p1", d, Api::Enable))
            .0
            .unwrap();
        // A transition of p1 in progress (as when a task blocks it).
        let p1 = id(&s, "p1");
        s.livepatch.transition = Some(super::super::Pending {
            patch: p1,
            target: Target::Patched,
            tries: 0,
        });
        load_target(&mut s);
        let (id1, _, i) = objects_for(&s.livepatch, "target", true)[0].clone();
        let (_, lines) = install(&mut s, |d, ctx| {
            coming_begin(d, ctx, "target", (id1, i), &[])
        });
        assert_eq!(lines, ["5 applying patch 'p1' to loading module 'target'"]);
        callbacks::pre_patch_returned(&mut s.livepatch, id1, i, 0);
        let (_, lines) = install(&mut s, |d, ctx| {
            coming_patch(d, ctx, "target", (id1, i), 0, &[])
        });
        assert!(lines.is_empty(), "no post_patch in transition: {lines:?}");
        let (_, lines) = install(&mut s, |d, _| module_going_plan(d, "target"));
        assert_eq!(
            lines,
            [
                "5 reverting patch 'p1' on unloading module 'target'",
                "call 43"
            ],
            "no pre_unpatch in transition, post_unpatch after a successful pre_patch"
        );
    }

    #[test]
    fn stacked_patches_lead_to_the_newest_and_disable_in_any_order() {
        let mut s = kernel("", true);
        register_and_enable(&mut s, desc(1, &["f"], false));
        register_and_enable(&mut s, desc(2, &["f"], false));
        assert_eq!(top(&s, F), Some(("p2".into(), new_func(2, 0))));
        disable_named(&mut s, "p1").0.unwrap();
        assert_eq!(top(&s, F), Some(("p2".into(), new_func(2, 0))));
        let p1 = id(&s, "p1");
        enable_with(&mut s, |d, _| Ok((d, p1))).0.unwrap();
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
        assert!(s.livepatch.by_name("p1").is_none(), "replaced, so freed");
        assert!(s.livepatch.is_enabled("p2"));
        assert_eq!(s.livepatch.func_stacks().get(F).map(<[_]>::len), Some(1));
    }

    #[test]
    fn today_s_patches_are_freed_when_disabled_and_the_2016_api_s_stay_registered() {
        let mut s = kernel("", true);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        register_and_enable(&mut s, desc(2, &["g"], false));
        assert!(s.livepatch.holds_module("p1") && s.livepatch.holds_module("p2"));
        disable_named(&mut s, "p1").0.unwrap();
        assert!(
            s.livepatch.by_name("p1").is_none(),
            "klp_enable_patch's patch is freed"
        );
        assert!(!s.livepatch.holds_module("p1"), "its module can go");
        disable_named(&mut s, "p2").0.unwrap();
        let p2 = s
            .livepatch
            .by_name("p2")
            .expect("the split API's patch stays");
        assert!(!p2.enabled() && !s.livepatch.holds_module("p2"));
        assert!(s.livepatch.func_stacks().is_empty());
    }

    #[test]
    fn a_forced_patch_freed_keeps_its_module() {
        let mut s = kernel("", true);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        if let Some(p) = s.livepatch.patches.iter_mut().find(|p| p.name == "p1") {
            p.forced = true;
        }
        disable_named(&mut s, "p1").0.unwrap();
        assert!(s.livepatch.by_name("p1").is_none());
        assert!(s.livepatch.holds_module("p1"), "its code may still run");
    }

    #[test]
    fn a_patch_for_a_module_is_applied_when_it_comes_and_reverted_when_it_goes() {
        let mut s = kernel("", false);
        enable_new(&mut s, desc(1, &["f"], false)).0.unwrap();
        assert!(s.livepatch.func_stacks().is_empty(), "target is not loaded");
        load_target(&mut s);
        let (result, lines) = coming(&mut s, "target");
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
        let (result, lines) = coming(&mut s, "target");
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
