//! System states (kernel/livepatch/state.c): `klp_get_state`, `klp_get_prev_state`, and whether
//! a new patch is compatible with the states the installed ones modified.

use super::Livepatch;
use super::klp_struct::{self, KlpState, PatchDesc};
use super::plan::{Draft, Plan};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::sys::SysResult;

/// `klp_get_state(patch, id)`: the address of the state `id` of the `klp_patch` at `patch`, as
/// its memory says now, 0 when it has none.
///
/// # Errors
/// `EFAULT`/`EINVAL` for a malformed state array.
pub fn klp_get_state(e: &mut impl Engine, patch: u32, id: u32) -> SysResult<i32> {
    let states = klp_struct::read_states(e, patch)?;
    Ok(states
        .iter()
        .find(|s| s.id == id)
        .map_or(0, |s| s.addr as i32))
}

/// `klp_get_prev_state(id)`: the address of the state `id` of the newest patch before the one
/// in transition that modifies it, 0 when none does or no transition runs.
pub fn klp_get_prev_state(lp: &Livepatch, id: u32) -> i32 {
    let Some((transition, _)) = lp.transition() else {
        return 0;
    };
    lp.patches()
        .take_while(|p| p.id != transition)
        .filter_map(|p| p.states.iter().find(|s| s.id == id))
        .last()
        .map_or(0, |s| s.addr as i32)
}

/// `klp_is_state_compatible`: a patch that replaces must carry every modified state, at the
/// same version or later; one that does not may carry it at any later version too.
fn state_compatible(new: &PatchDesc, old: &KlpState) -> bool {
    match new.states.iter().find(|s| s.id == old.id) {
        None => !new.replace,
        Some(state) => state.version >= old.version,
    }
}

/// `klp_is_patch_compatible`, checked before `klp_enable_patch` registers `desc`: every state of
/// every installed patch must stay handled. Otherwise Linux's error and `EINVAL`.
///
/// # Errors
/// The refusal, as a plan with its message.
pub(super) fn check_compatible(mut d: Draft, name: &str, desc: &PatchDesc) -> Result<Draft, Plan> {
    let lp = &d.lp;
    let compatible = lp
        .patches()
        .filter(|p| p.enabled || lp.in_transition(p.id))
        .all(|p| p.states.iter().all(|old| state_compatible(desc, old)));
    if compatible {
        return Ok(d);
    }
    d.err(format!(
        "Livepatch patch ({name}) is not compatible with the already installed livepatches."
    ));
    Err(d.refuse(Errno::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: u32, version: u32) -> KlpState {
        KlpState {
            addr: 100 * id + version,
            id,
            version,
        }
    }

    fn desc(replace: bool, states: &[KlpState]) -> PatchDesc {
        PatchDesc {
            addr: 0,
            replace,
            objs: Vec::new(),
            states: states.to_vec(),
        }
    }

    #[test]
    fn a_replacing_patch_must_carry_every_state_at_the_same_version_or_later() {
        let old = state(1, 2);
        assert!(state_compatible(&desc(true, &[state(1, 2)]), &old));
        assert!(state_compatible(&desc(true, &[state(1, 3)]), &old));
        assert!(!state_compatible(&desc(true, &[state(1, 1)]), &old));
        assert!(!state_compatible(&desc(true, &[]), &old));
        assert!(state_compatible(&desc(false, &[]), &old));
        assert!(!state_compatible(&desc(false, &[state(1, 1)]), &old));
    }
}
