//! The soft lockup watchdog's setting: `watchdog_thresh`, from the command line and sysctl.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::hostfs::{Node, Tree};
use crate::state::KernelState;
use crate::sys::SysResult;
use core::time::Duration;

/// The sysctl, as in Linux.
pub const WATCHDOG_THRESH: &str = "/proc/sys/kernel/watchdog_thresh";

/// `watchdog_thresh` when the command line does not set it. Linux's is 10 (a soft lockup after
/// 20 s); every command here takes milliseconds, so a guest call still running after 4 s is stuck,
/// and a student should not wait 20 s to be told. 4 s is still far above any real call, even on a
/// loaded machine.
pub const DEFAULT_WATCHDOG_THRESH: u32 = 2;

/// The largest value the sysctl takes, as Linux's `proc_watchdog_thresh` bounds it.
const MAX_WATCHDOG_THRESH: u32 = 60;

/// `watchdog_thresh=N` from the command line, or the default; a value that is not a number is
/// ignored, one above 60 is 60.
pub fn thresh_from_cmdline(state: &KernelState) -> u32 {
    state
        .cmdline_param("watchdog_thresh")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_WATCHDOG_THRESH, |v| {
            v.min(u64::from(MAX_WATCHDOG_THRESH)) as u32
        })
}

/// How long one guest call may run before the watchdog reports a soft lockup: twice
/// `watchdog_thresh` seconds, as in Linux; `None` when it is 0 (the watchdog is off). Engines
/// read it at every tick of a running call, so a write to the sysctl takes effect at once.
pub fn soft_lockup_timeout(state: &KernelState) -> Option<Duration> {
    let thresh = state.watchdog_thresh;
    (thresh > 0).then(|| Duration::from_secs(u64::from(thresh) * 2))
}

/// `/proc/sys/kernel/watchdog_thresh`.
pub struct WatchdogThresh;

impl Tree for WatchdogThresh {
    const ATTR_SIZE: u32 = 0;

    fn node(s: &KernelState, rel: &str) -> Option<Node> {
        rel.is_empty().then(|| Node::Attr {
            mode: 0o644,
            value: Some(format!("{}\n", s.watchdog_thresh)),
        })
    }

    /// A number from 0 (off) to 60, as `proc_dointvec_minmax` takes it; anything else is
    /// `EINVAL` and changes nothing.
    fn store(e: &mut impl Engine, _rel: &str, data: &[u8], _append: bool) -> SysResult<()> {
        let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
        let value: u32 = text.trim().parse().map_err(|_| Errno::EINVAL)?;
        if value > MAX_WATCHDOG_THRESH {
            return Err(Errno::EINVAL.into());
        }
        e.with_state(|s| s.watchdog_thresh = value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::FtraceMap;
    use crate::kallsyms::Kallsyms;

    fn state(cmdline: &str) -> KernelState {
        KernelState::new(&FtraceMap::default(), Kallsyms::default(), cmdline)
    }

    #[test]
    fn the_command_line_sets_the_threshold_and_zero_turns_the_watchdog_off() {
        assert_eq!(
            soft_lockup_timeout(&state("")),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            soft_lockup_timeout(&state("watchdog_thresh=5")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(soft_lockup_timeout(&state("watchdog_thresh=0")), None);
        assert_eq!(state("watchdog_thresh=999").watchdog_thresh, 60);
        assert_eq!(
            state("watchdog_thresh=x").watchdog_thresh,
            DEFAULT_WATCHDOG_THRESH
        );
    }
}
