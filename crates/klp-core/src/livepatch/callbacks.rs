//! The callbacks (kernel/livepatch/core.h's `klp_*_callback`): which run, and whether
//! `post_unpatch` may.

use super::klp_struct::KlpObject;
use super::plan::Draft;
use super::{Livepatch, PatchId};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::Ftrace;
use crate::sys::SysResult;
use crate::tasks;

/// The object `obj` of patch `id` in the draft.
fn object(d: &Draft, id: PatchId, obj: usize) -> Option<&KlpObject> {
    d.lp.get(id).and_then(|p| p.objs.get(obj))
}

/// `klp_post_patch_callback`.
pub(super) fn post_patch(d: &mut Draft, id: PatchId, obj: usize) {
    if let Some((func, addr)) =
        object(d, id, obj).and_then(|o| Some((o.callbacks.post_patch?, o.addr)))
    {
        d.call(func, addr);
    }
}

/// `klp_pre_unpatch_callback`.
pub(super) fn pre_unpatch(d: &mut Draft, id: PatchId, obj: usize) {
    if let Some((func, addr)) =
        object(d, id, obj).and_then(|o| Some((o.callbacks.pre_unpatch?, o.addr)))
    {
        d.call(func, addr);
    }
}

/// `klp_post_unpatch_callback`: only when the object's `pre_patch` succeeded, and once.
pub(super) fn post_unpatch(d: &mut Draft, id: PatchId, obj: usize) {
    let Some(o) = d.lp.get_mut(id).and_then(|p| p.objs.get_mut(obj)) else {
        return;
    };
    let enabled = std::mem::take(&mut o.post_unpatch_enabled);
    if let (true, Some(func)) = (enabled, o.callbacks.post_unpatch) {
        let addr = o.addr;
        d.call(func, addr);
    }
}

/// `klp_pre_patch_callback`: runs the object's `pre_patch` now (a call into the patch module)
/// and returns what it returned (0 without one); `post_unpatch` is enabled when it succeeded.
///
/// # Errors
/// A trap in the callback.
pub(super) fn pre_patch(e: &mut impl Engine, id: PatchId, obj: usize) -> SysResult<i32> {
    let found = e.with_state(|s| {
        let o = s.livepatch.get(id)?.objs.get(obj)?;
        Some((o.callbacks.pre_patch, o.addr))
    });
    let ret = match found {
        Some((Some(func), addr)) => tasks::call_slot(e, func.index(), &[addr as i32])?.unwrap_or(0),
        _ => 0,
    };
    e.with_state(|s| pre_patch_returned(&mut s.livepatch, id, obj, ret));
    Ok(ret)
}

/// What `klp_pre_patch_callback` records once the callback returned `ret`: `post_unpatch` runs
/// later only if it succeeded.
pub(super) fn pre_patch_returned(lp: &mut Livepatch, id: PatchId, obj: usize, ret: i32) {
    if let Some(o) = lp.get_mut(id).and_then(|p| p.objs.get_mut(obj)) {
        o.post_unpatch_enabled = ret == 0;
    }
}

/// The errno a failed `pre_patch` returned (`-ENODEV` is `ENODEV`).
pub(super) fn errno_of(ret: i32) -> Errno {
    Errno(ret.saturating_abs())
}

/// Checks that every callback of the patch's objects is a function of its type:
/// `int (*)(struct klp_object *)` for `pre_patch`, `void (*)(struct klp_object *)` for the
/// others (Linux would call whatever the pointer holds; here a wrong one is refused up front).
///
/// # Errors
/// `EINVAL`, with a message in the draft.
pub(super) fn check(d: &mut Draft, ftrace: &Ftrace, id: PatchId) -> Result<(), Errno> {
    use crate::instrument::ValType;
    let Some(p) = d.lp.get(id) else {
        return Ok(());
    };
    let bad = p.objs.iter().find_map(|o| {
        o.callbacks
            .each()
            .into_iter()
            .find_map(|(what, slot, returns)| {
                let slot = slot?;
                let ok = ftrace.info(slot).is_some_and(|i| {
                    i.sig.params == [ValType::I32]
                        && i.sig.results == if returns { vec![ValType::I32] } else { vec![] }
                });
                (!ok).then(|| format!("invalid {what} callback for object '{}'", o.display_name()))
            })
    });
    match bad {
        Some(text) => {
            d.err(text);
            Err(Errno::EINVAL)
        }
        None => Ok(()),
    }
}
