//! Patching and unpatching transitions: checking, switching slots, and the kernel's messages.

use super::{KlpObject, StackEntry, log, lookup_message};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::kallsyms::SymKind;
use crate::loader::{self, FirstError, first_or_trap};
use crate::sys::{SysError, SysResult};
use crate::tracing;
use std::collections::BTreeSet;

/// Resolves every function of a loaded object to its slot.
///
/// # Errors
/// `EINVAL` for a name that is missing, ambiguous, or not a function.
pub(super) fn resolve_object(
    e: &mut impl Engine,
    patch: &str,
    obj: &mut KlpObject,
) -> SysResult<()> {
    let objname = obj.display_name().to_string();
    for func in &mut obj.funcs {
        let found = e.with_state(|s| {
            s.kallsyms
                .lookup(obj.name.as_deref(), &func.old_name, func.old_sympos)
                .map(|sym| (sym.kind == SymKind::Func).then_some(sym.addr))
        });
        match found {
            Ok(Some(slot)) => func.old_slot = Some(slot),
            Ok(None) => {
                log(
                    e,
                    3,
                    &format!("symbol '{}' not found in symbol table", func.old_name),
                )?;
                return Err(Errno::EINVAL.into());
            }
            Err(err) => {
                log(e, 3, &lookup_message(&err, &func.old_name, &objname))?;
                log(
                    e,
                    4,
                    &format!("failed to initialize patch '{patch}' object '{objname}'"),
                )?;
                return Err(Errno::EINVAL.into());
            }
        }
    }
    Ok(())
}

/// Checks that every resolved function of `obj` can be redirected to its replacement: it is
/// traceable, the hook is free for a live patch (ftrace on, no kretprobe holding it), and the
/// types match.
fn check_object(e: &mut impl Engine, obj: &KlpObject) -> SysResult<()> {
    for func in &obj.funcs {
        let Some(old_slot) = func.old_slot else {
            continue;
        };
        let (old, new, hook) = e.with_state(|s| {
            (
                s.ftrace.info(old_slot).cloned(),
                s.ftrace.info(func.new_slot).cloned(),
                tracing::check_livepatch(s, old_slot),
            )
        });
        let name = &func.old_name;
        let (errno, message) = match (old, new) {
            (None, _) => (
                Errno::EINVAL,
                format!("failed to set ftrace filter for function '{name}' (-22)"),
            ),
            (Some(old), _) if old.notrace => (
                Errno::EINVAL,
                format!("failed to set ftrace filter for function '{name}' (-22)"),
            ),
            (Some(_), None) => (
                Errno::EINVAL,
                format!("invalid replacement for function '{name}'"),
            ),
            (Some(old), Some(new)) if old.sig != new.sig => (
                Errno::EINVAL,
                format!(
                    "replacement for function '{name}' has type {} instead of {}",
                    new.sig, old.sig
                ),
            ),
            _ => match hook {
                Ok(()) => continue,
                Err((errno, holder)) => {
                    if let Some(probe) = holder {
                        log(
                            e,
                            3,
                            &format!("function '{name}' is held by kretprobe '{probe}'"),
                        )?;
                    }
                    (
                        errno,
                        format!(
                            "failed to register ftrace handler for function '{name}' (-{})",
                            errno.0
                        ),
                    )
                }
            },
        };
        log(e, 3, &message)?;
        return Err(errno.into());
    }
    Ok(())
}

fn sync_slots(e: &mut impl Engine, slots: &BTreeSet<u32>) -> SysResult<()> {
    tracing::sync_slots(e, slots.iter().copied())
}

/// Removes every func_stack entry of `patch` for the slots of `obj`; returns those slots.
fn pop_object(stacks: &mut super::Livepatch, patch: &str, obj_index: usize) -> BTreeSet<u32> {
    let Some(p) = stacks.patches.iter_mut().find(|p| p.name == patch) else {
        return BTreeSet::new();
    };
    let obj = &mut p.objs[obj_index];
    obj.patched = false;
    let slots: BTreeSet<u32> = obj.funcs.iter().filter_map(|f| f.old_slot).collect();
    for slot in &slots {
        if let Some(stack) = stacks.func_stacks.get_mut(slot) {
            stack.retain(|en| en.patch != patch);
            if stack.is_empty() {
                stacks.func_stacks.remove(slot);
            }
        }
    }
    slots
}

/// Pushes the entries of `patch`'s object onto the func_stacks; returns the slots.
fn push_object(stacks: &mut super::Livepatch, patch: &str, obj_index: usize) -> BTreeSet<u32> {
    let Some(p) = stacks.patches.iter_mut().find(|p| p.name == patch) else {
        return BTreeSet::new();
    };
    let obj = &mut p.objs[obj_index];
    obj.patched = true;
    let mut slots = BTreeSet::new();
    for func in &obj.funcs {
        if let Some(slot) = func.old_slot {
            stacks
                .func_stacks
                .entry(slot)
                .or_default()
                .push(StackEntry {
                    patch: patch.to_string(),
                    new_slot: func.new_slot,
                });
            slots.insert(slot);
        }
    }
    slots
}

/// Whether an object is loaded: vmlinux always, a module when it is in the module list.
pub(super) fn is_loaded(e: &mut impl Engine, obj: &KlpObject) -> bool {
    obj.name
        .as_ref()
        .is_none_or(|m| e.with_state(|s| s.module(m).is_some()))
}

/// The patching transition of a registered, disabled patch.
///
/// # Errors
/// `EINVAL` when a function cannot be patched; nothing is switched then.
pub(super) fn enable_registered(e: &mut impl Engine, name: &str) -> SysResult<()> {
    log(e, 5, &format!("enabling patch '{name}'"))?;
    log(e, 6, &format!("'{name}': initializing patching transition"))?;
    let Some(mut patch) = e.with_state(|s| s.livepatch.get(name).cloned()) else {
        return Err(Errno::EINVAL.into());
    };
    let mut checked = Ok(());
    for obj in &mut patch.objs {
        if !is_loaded(e, obj) {
            continue;
        }
        if obj.funcs.iter().any(|f| f.old_slot.is_none()) {
            checked = resolve_object(e, name, obj);
        }
        if checked.is_ok() {
            checked = check_object(e, obj);
        }
        if checked.is_err() {
            log(
                e,
                4,
                &format!("failed to patch object '{}'", obj.display_name()),
            )?;
            break;
        }
    }
    if let Err(err) = checked {
        log(e, 4, &format!("failed to enable patch '{name}'"))?;
        log(
            e,
            6,
            &format!("'{name}': canceling patching transition, going to unpatch"),
        )?;
        log(e, 6, &format!("'{name}': completing unpatching transition"))?;
        log(e, 5, &format!("'{name}': unpatching complete"))?;
        return Err(err);
    }
    log(e, 6, &format!("'{name}': starting patching transition"))?;
    let loaded: Vec<bool> = patch.objs.iter().map(|o| is_loaded(e, o)).collect();
    let before = e.with_state(|s| s.livepatch.clone());
    let (slots, replaced) = e.with_state(|s| {
        let lp = &mut s.livepatch;
        let mut slots = BTreeSet::new();
        let mut replaced = Vec::new();
        if patch.replace {
            let others: Vec<(String, usize)> = lp
                .patches
                .iter()
                .filter(|p| p.enabled && p.name != name)
                .flat_map(|p| (0..p.objs.len()).map(|i| (p.name.clone(), i)))
                .collect();
            for (other, i) in others {
                slots.extend(pop_object(lp, &other, i));
                if !replaced.contains(&other) {
                    replaced.push(other);
                }
            }
            for p in lp.patches.iter_mut().filter(|p| replaced.contains(&p.name)) {
                p.enabled = false;
            }
        }
        if let Some(pos) = lp.patches.iter().position(|p| p.name == name) {
            let mut moved = lp.patches.remove(pos);
            moved.objs = patch.objs.clone();
            moved.enabled = true;
            lp.patches.push(moved);
        }
        for (i, _) in loaded.iter().enumerate().filter(|(_, l)| **l) {
            slots.extend(push_object(lp, name, i));
        }
        (slots, replaced)
    });
    let switched = sync_slots(e, &slots)
        .and_then(|()| loader::set_refcnt(e, name, 1))
        .and_then(|()| {
            replaced
                .iter()
                .try_for_each(|other| loader::set_refcnt(e, other, 0))
        });
    if let Err(err) = switched {
        return Err(undo(e, before, err));
    }
    // The patch is enabled: what follows only reports it.
    tracing::tracefs::warn_redirected(e, name, &slots)?;
    log(e, 6, &format!("'{name}': completing patching transition"))?;
    log(e, 5, &format!("'{name}': patching complete"))?;
    Ok(())
}

/// Puts the livepatch state back to `before` after a failed switch; returns the error to
/// report.
fn undo(e: &mut impl Engine, before: super::Livepatch, err: SysError) -> SysError {
    first_or_trap(err, restore(e, before))
}

/// Restores the livepatch state (patches and func_stacks) to `before`, then what follows from
/// it: every slot whose func_stack differs is pointed at its top again, and every module whose
/// patch changed between enabled and disabled gets its reference count back. Every step runs
/// even when one fails.
///
/// # Errors
/// The first error (a trap before any other).
pub(super) fn restore(e: &mut impl Engine, before: super::Livepatch) -> SysResult<()> {
    let (slots, changed) = e.with_state(|s| {
        let now = std::mem::replace(&mut s.livepatch, before);
        let was = &s.livepatch;
        let slots: BTreeSet<u32> = now
            .func_stacks
            .iter()
            .chain(&was.func_stacks)
            .filter(|(slot, _)| now.func_stacks.get(slot) != was.func_stacks.get(slot))
            .map(|(slot, _)| *slot)
            .collect();
        let enabled = |lp: &super::Livepatch, p: &str| lp.get(p).is_some_and(|p| p.enabled);
        let mut changed: Vec<String> = now
            .patches
            .iter()
            .chain(&was.patches)
            .map(|p| p.name.clone())
            .filter(|p| enabled(&now, p) != enabled(was, p))
            .collect();
        changed.sort();
        changed.dedup();
        (slots, changed)
    });
    let mut errors = FirstError::default();
    errors.note(sync_slots(e, &slots));
    for module in &changed {
        let own = e.with_state(|s| u32::from(s.livepatch.get(module).is_some_and(|p| p.enabled)));
        errors.note(loader::retried(e, |e| loader::set_refcnt(e, module, own)));
    }
    errors.finish()
}

/// The unpatching transition of an enabled patch.
///
/// # Errors
/// Only a trap while logging or a table error.
pub(super) fn disable_enabled(e: &mut impl Engine, name: &str) -> SysResult<()> {
    log(
        e,
        6,
        &format!("'{name}': initializing unpatching transition"),
    )?;
    log(e, 6, &format!("'{name}': starting unpatching transition"))?;
    let before = e.with_state(|s| s.livepatch.clone());
    let slots = e.with_state(|s| {
        let lp = &mut s.livepatch;
        let n = lp.get(name).map_or(0, |p| p.objs.len());
        let mut slots = BTreeSet::new();
        for i in 0..n {
            slots.extend(pop_object(lp, name, i));
        }
        if let Some(p) = lp.get_mut(name) {
            p.enabled = false;
        }
        slots
    });
    let switched = sync_slots(e, &slots).and_then(|()| loader::set_refcnt(e, name, 0));
    if let Err(err) = switched {
        return Err(undo(e, before, err));
    }
    // The patch is disabled: what follows only reports it.
    log(e, 6, &format!("'{name}': completing unpatching transition"))?;
    log(e, 5, &format!("'{name}': unpatching complete"))?;
    Ok(())
}

/// Patches with an object named `module`: (patch name, object index), in stack order.
fn objects_for(e: &mut impl Engine, module: &str, enabled_only: bool) -> Vec<(String, usize)> {
    e.with_state(|s| {
        s.livepatch
            .patches
            .iter()
            .filter(|p| p.enabled || !enabled_only)
            .flat_map(|p| {
                p.objs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.name.as_deref() == Some(module))
                    .map(|(i, _)| (p.name.clone(), i))
            })
            .collect()
    })
}

/// Applies enabled patches to a loading module (`klp_module_coming`).
///
/// # Errors
/// `EINVAL` when a function cannot be found or patched, or a trap; what was applied is reverted.
pub(super) fn module_coming(e: &mut impl Engine, module: &str) -> SysResult<()> {
    let before = e.with_state(|s| s.livepatch.clone());
    match apply_to_coming(e, module) {
        Ok(()) => Ok(()),
        Err(err) => Err(undo(e, before, err)),
    }
}

/// Applies each enabled patch's object for `module` in turn; stops at the first failure.
fn apply_to_coming(e: &mut impl Engine, module: &str) -> SysResult<()> {
    for (patch, i) in objects_for(e, module, true) {
        log(
            e,
            6,
            &format!("applying patch '{patch}' to loading module '{module}'"),
        )?;
        let Some(mut obj) = e.with_state(|s| s.livepatch.get(&patch).map(|p| p.objs[i].clone()))
        else {
            continue;
        };
        let result = match resolve_object(e, &patch, &mut obj) {
            Ok(()) => check_object(e, &obj),
            err => err,
        };
        if let Err(err) = result {
            let logged = log(
                e,
                4,
                &format!("failed to apply patch '{patch}' to module '{module}' (-22)"),
            );
            return Err(first_or_trap(err, logged));
        }
        let slots = e.with_state(|s| {
            if let Some(p) = s.livepatch.get_mut(&patch) {
                p.objs[i] = obj;
            }
            push_object(&mut s.livepatch, &patch, i)
        });
        sync_slots(e, &slots)?;
    }
    Ok(())
}

/// Reverts patches applied to an unloading module (`klp_module_going`). Every patch's entries
/// go even when logging fails.
///
/// # Errors
/// Only a trap while logging.
pub(super) fn module_going(e: &mut impl Engine, module: &str) -> SysResult<()> {
    let mut errors = FirstError::default();
    for (patch, i) in objects_for(e, module, false) {
        let patched = e.with_state(|s| s.livepatch.get(&patch).is_some_and(|p| p.objs[i].patched));
        if patched {
            errors.note(log(
                e,
                6,
                &format!("reverting patch '{patch}' on unloading module '{module}'"),
            ));
        }
        // The module's slots are about to be freed: the stacks go, no slot is switched back.
        e.with_state(|s| {
            pop_object(&mut s.livepatch, &patch, i);
            if let Some(p) = s.livepatch.get_mut(&patch) {
                p.objs[i].funcs.iter_mut().for_each(|f| f.old_slot = None);
            }
        });
    }
    errors.finish()
}
