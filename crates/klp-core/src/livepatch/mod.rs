//! The livepatch core: registration, enabling, disabling and unregistration of patches, and
//! the func_stack of every patched function.
//!
//! A func_stack is the list of `klp_func`s that replace one function, oldest first. The
//! function's ftrace slot holds the newest entry's function, or the original when the stack is
//! empty. Every change happens inside one host operation, between two kernel calls, so a call
//! sees the old or the new function and never a torn slot.

pub mod patch;
mod transition;

use crate::engine::Engine;
use crate::errno::Errno;
use crate::kallsyms::KallsymsError;
use crate::sys::{self, SysResult};
pub use patch::{KlpFunc, KlpObject, KlpPatch};
use std::collections::BTreeMap;

/// One entry of a func_stack: which patch redirects the function, and to which slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEntry {
    /// The patch's name.
    pub patch: String,
    /// The replacement's slot.
    pub new_slot: u32,
}

/// Every registered patch and every func_stack.
#[derive(Debug, Default, Clone)]
pub struct Livepatch {
    /// Registered patches in stack order: a patch moves to the end when it is enabled.
    pub patches: Vec<KlpPatch>,
    /// The func_stack of every patched slot, oldest entry first.
    pub func_stacks: BTreeMap<u32, Vec<StackEntry>>,
}

impl Livepatch {
    /// The patch with this name.
    pub fn get(&self, name: &str) -> Option<&KlpPatch> {
        self.patches.iter().find(|p| p.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut KlpPatch> {
        self.patches.iter_mut().find(|p| p.name == name)
    }

    /// `stack_order` of a patch: its 1-based place in the list of patches.
    pub fn stack_order(&self, name: &str) -> Option<usize> {
        self.patches
            .iter()
            .position(|p| p.name == name)
            .map(|i| i + 1)
    }
}

/// Logs a livepatch message at `level` (3 error, 4 warning, 6 info).
pub(crate) fn log(e: &mut impl Engine, level: u8, msg: &str) -> SysResult<()> {
    sys::printk(e, &format!("\x01{level}livepatch: {msg}"))
}

/// The module whose init is running: the owner of a patch passed to `klp_*_patch`.
fn calling_module(e: &mut impl Engine) -> SysResult<String> {
    e.with_state(|s| s.loading.clone())
        .ok_or_else(|| Errno::EINVAL.into())
}

/// `klp_register_patch()`: reads the patch, resolves its loaded objects, adds it disabled.
///
/// # Errors
/// `EINVAL` for an unknown or ambiguous symbol, a notrace target or a type mismatch; `EEXIST`
/// when the module already registered a patch.
pub fn klp_register_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let name = calling_module(e)?;
    if e.with_state(|s| s.livepatch.get(&name).is_some()) {
        return Err(Errno::EEXIST.into());
    }
    let mut patch = patch::read_patch(e, addr, &name)?;
    for obj in &mut patch.objs {
        let loaded = transition::is_loaded(e, obj);
        if loaded {
            transition::resolve_object(e, &name, obj)?;
        }
    }
    e.with_state(|s| s.livepatch.patches.push(patch));
    Ok(())
}

/// `klp_enable_patch()`: registers the patch if needed, then enables it.
///
/// # Errors
/// As [`klp_register_patch`] and [`enable`]; a patch that fails to enable is unregistered again.
pub fn klp_enable_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let name = calling_module(e)?;
    let registered = e.with_state(|s| s.livepatch.get(&name).map(|p| p.addr));
    match registered {
        Some(a) if a == addr => enable(e, &name),
        Some(_) => Err(Errno::EINVAL.into()),
        None => {
            klp_register_patch(e, addr)?;
            let result = enable(e, &name);
            // A patch that failed to enable is unregistered again; one that was enabled and then
            // failed to report it stays.
            if result.is_err() {
                e.with_state(|s| s.livepatch.patches.retain(|p| p.name != name || p.enabled));
            }
            result
        }
    }
}

/// Enables a registered, disabled patch (`echo 1 > enabled`).
///
/// # Errors
/// `EINVAL` when it is already enabled or a function cannot be patched.
pub fn enable(e: &mut impl Engine, name: &str) -> SysResult<()> {
    match e.with_state(|s| s.livepatch.get(name).map(|p| p.enabled)) {
        None | Some(true) => Err(Errno::EINVAL.into()),
        Some(false) => transition::enable_registered(e, name),
    }
}

/// Disables an enabled patch (`echo 0 > enabled`, `klp_disable_patch()`).
///
/// # Errors
/// `EINVAL` when it is not enabled; `EBUSY` under `klp.strict_stacking=1` when a later patch is
/// still enabled (the 2016 rule: disable in exactly the reverse order of enabling).
pub fn disable(e: &mut impl Engine, name: &str) -> SysResult<()> {
    let (enabled, strict, later_enabled) = e.with_state(|s| {
        let strict = s.cmdline_param("klp.strict_stacking") == Some("1");
        let pos = s.livepatch.patches.iter().position(|p| p.name == name);
        let later = pos.is_some_and(|i| s.livepatch.patches[i + 1..].iter().any(|p| p.enabled));
        (s.livepatch.get(name).map(|p| p.enabled), strict, later)
    });
    match enabled {
        None | Some(false) => return Err(Errno::EINVAL.into()),
        Some(true) => {}
    }
    if strict && later_enabled {
        log(
            e,
            3,
            &format!("'{name}': only the last enabled patch can be disabled (strict stacking)"),
        )?;
        return Err(Errno::EBUSY.into());
    }
    transition::disable_enabled(e, name)
}

/// `klp_disable_patch()` from a module, by structure address.
///
/// # Errors
/// As [`disable`].
pub fn klp_disable_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let name = patch_at(e, addr)?;
    disable(e, &name)
}

/// `klp_unregister_patch()`: removes a disabled patch.
///
/// # Errors
/// `EBUSY` when it is enabled, `EINVAL` when it is not registered.
pub fn klp_unregister_patch(e: &mut impl Engine, addr: u32) -> SysResult<()> {
    let name = patch_at(e, addr)?;
    unregister(e, &name)
}

/// Removes a disabled patch from the list (its sysfs directory goes with it).
///
/// # Errors
/// `EBUSY` when it is enabled, `EINVAL` when it is not registered.
pub fn unregister(e: &mut impl Engine, name: &str) -> SysResult<()> {
    e.with_state(|s| match s.livepatch.get(name).map(|p| p.enabled) {
        None => Err(Errno::EINVAL.into()),
        Some(true) => Err(Errno::EBUSY.into()),
        Some(false) => {
            s.livepatch.patches.retain(|p| p.name != name);
            Ok(())
        }
    })
}

fn patch_at(e: &mut impl Engine, addr: u32) -> SysResult<String> {
    e.with_state(|s| {
        s.livepatch
            .patches
            .iter()
            .find(|p| p.addr == addr)
            .map(|p| p.name.clone())
    })
    .ok_or_else(|| Errno::EINVAL.into())
}

/// A module is loading: apply every enabled patch that has an object for it, before its init.
///
/// # Errors
/// `EINVAL` when a patch's function cannot be found in the module; nothing stays applied then.
pub fn module_coming(e: &mut impl Engine, module: &str) -> SysResult<()> {
    transition::module_coming(e, module)
}

/// Restores the livepatch state saved before a failed operation: patches, func_stacks, the slots
/// and the reference counts that follow from them.
///
/// # Errors
/// The first error (a trap before any other); every step runs regardless.
pub(crate) fn restore(e: &mut impl Engine, before: Livepatch) -> SysResult<()> {
    transition::restore(e, before)
}

/// A module is going away: revert every patch applied to it.
///
/// # Errors
/// Only a trap while logging.
pub fn module_going(e: &mut impl Engine, module: &str) -> SysResult<()> {
    transition::module_going(e, module)
}

/// The message for a failed symbol lookup, as Linux prints it.
fn lookup_message(err: &KallsymsError, name: &str, obj: &str) -> String {
    match err {
        KallsymsError::Ambiguous { .. } | KallsymsError::NoSuchPosition { .. } => {
            format!("unresolvable ambiguity for symbol '{name}' in object '{obj}'")
        }
        _ => format!("symbol '{name}' not found in symbol table"),
    }
}
