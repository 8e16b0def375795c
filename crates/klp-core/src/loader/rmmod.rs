//! rmmod: refusals first, undoable steps up to the exit, then a teardown that never stops early.

use super::undo::{FirstError, Transaction, Undo, retried};
use super::{LoadedModule, ModuleState, module_call, own_ref, set_state, users, write_refcnt};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace;
use crate::livepatch;
use crate::sys::{self, SysResult};
use crate::tracing;

/// Unloads a module: `rmmod NAME`.
///
/// Every refusal comes before the first change. The module's state and the references it holds
/// change next, and are put back if its exit cannot be called. Once the exit has run the module
/// cannot come back: every remaining step is taken even when one fails, and the first error is
/// returned.
///
/// # Errors
/// `ENOENT` when it is not loaded; `EBUSY` while its patch is enabled, another module uses it or
/// a kprobe sits in it; a trap.
pub fn unload_module(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let Some(module) = e.with_state(|s| s.module(name).cloned()) else {
        return Err(Errno::ENOENT.into());
    };
    let busy = e.with_state(|s| {
        module.refcnt > 0
            || s.livepatch.holds_module(name)
            || tracing::module_probed(s, module.slot_base, module.nr_funcs)
    });
    if busy {
        return Err(Errno::EBUSY.into());
    }
    let mut tx = Transaction::new(name);
    if let Err(err) = exit(e, &module, &mut tx) {
        return Err(tx.abort(e, err));
    }
    teardown(e, &module)
}

/// Marks the module going, drops the references it holds on the modules it uses, and runs its
/// exit: the last step that can fail and be undone.
fn exit(e: &mut impl Engine, module: &LoadedModule, tx: &mut Transaction<'_>) -> SysResult<()> {
    let name = module.name.as_str();
    set_state(e, name, ModuleState::Going)?;
    tx.push(Undo::State(ModuleState::Live));
    for used in &module.uses {
        let Some((count, others)) = e.with_state(|s| {
            s.module(used)
                .map(|m| (m.refcnt, users(s, used, Some(name))))
        }) else {
            continue;
        };
        let own = own_ref(e, used);
        write_refcnt(e, used, others + own)?;
        tx.push(Undo::Refcnt {
            module: used.clone(),
            count,
        });
    }
    if let Some(exit) = module.exit {
        sys::call(e, "do_exit_call", &[exit as i32])?;
    }
    Ok(())
}

/// Takes every step left once the exit has run, even when one fails. The kernel's module list
/// entry and the module's memory have to go: a trap removing them is reported and the removal
/// tried once more ([`retried`]).
fn teardown(e: &mut impl Engine, module: &LoadedModule) -> SysResult<()> {
    let name = module.name.as_str();
    let (base, n) = (module.slot_base, module.nr_funcs);
    let mut errors = FirstError::default();
    if e.with_state(|s| s.livepatch.by_name(name).is_some()) {
        errors.note(livepatch::unregister(e, name));
    }
    errors.note(livepatch::module_going(e, name));
    errors.note(retried(e, |e| module_call(e, "module_del", name, &[])));
    e.with_state(|s| tracing::module_going(s, base, n));
    errors.note(ftrace::release_module(e, base, n));
    e.with_state(|s| {
        s.kallsyms.remove_module(name);
        s.modules.retain(|m| m.name != name);
    });
    e.release(module.instance);
    if module.data_alloc != 0 {
        let block = module.data_alloc as i32;
        errors.note(retried(e, |e| sys::call(e, "kfree", &[block]).map(drop)));
    }
    errors.finish()
}
