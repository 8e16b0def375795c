//! The soft lockup watchdog and Ctrl-C: epoch interruption, checked at every tick of a call.
//!
//! A thread advances the engine's epoch every [`TICK`]. Each outermost guest call gets a
//! deadline one tick ahead, and at each deadline wasmtime runs [`on_tick`]: the call goes on for
//! another tick unless the user interrupted it ([`Interrupter`]) or it has run past the soft
//! lockup timeout. Either way the call traps at its next function entry or loop back edge, and
//! [`Watchdog::take_stop`] says why.

use crate::{Context, HostData};
use klp_core::engine::{EngineError, Stop};
use klp_core::watchdog::soft_lockup_timeout;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::{AsContextMut, StoreContextMut, Trap, UpdateDeadline};

/// How often the watchdog thread advances the engine's epoch: the resolution of the deadline.
pub const TICK: Duration = Duration::from_millis(100);

/// The soft lockup watchdog and interrupt flag of one kernel.
pub struct Watchdog {
    /// Nanoseconds since boot as of the last tick, set by the watchdog thread: reading it costs
    /// a guest call one atomic load, where reading the clock would cost a clock read.
    coarse_ns: Arc<AtomicU64>,
    /// Set by an [`Interrupter`]: the running call stops at its next tick.
    interrupt: Arc<AtomicBool>,
    /// Why the last call was stopped, until [`Self::take_stop`] reads it.
    stopped: Option<Stop>,
}

/// Interrupts the command running in a kernel, from any thread (a Ctrl-C handler): its guest
/// call stops within a [`TICK`], as a [`Stop::Interrupted`] trap.
#[derive(Debug, Clone)]
pub struct Interrupter(Arc<AtomicBool>);

impl Interrupter {
    /// Interrupts the command running now: its guest call running now, or its next one (the
    /// host may be between two calls of the command).
    pub fn interrupt(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Drops an interrupt no call has taken (one made at the prompt, before a command starts).
    pub fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Watchdog {
    /// Starts the thread that, every [`TICK`] for as long as `engine` lives (the store and its
    /// modules hold it), advances its epoch and the coarse clock.
    pub fn start(engine: &wasmtime::Engine, boot: Instant) -> Result<Self, EngineError> {
        let coarse_ns = Arc::new(AtomicU64::new(0));
        let clock = Arc::clone(&coarse_ns);
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("klp-watchdog".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    clock.store(nanos(boot.elapsed()), Ordering::Relaxed);
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| EngineError::Instantiate(format!("watchdog thread: {e}")))?;
        Ok(Watchdog {
            coarse_ns,
            interrupt: Arc::new(AtomicBool::new(false)),
            stopped: None,
        })
    }

    /// A handle that interrupts this kernel's running command.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter(Arc::clone(&self.interrupt))
    }

    /// Takes an interrupt no guest call has taken.
    pub fn take_interrupt(&self) -> bool {
        self.interrupt.swap(false, Ordering::Relaxed)
    }

    /// Why the call that just trapped was stopped, if the watchdog or the user stopped it.
    pub fn take_stop(&mut self) -> Option<Stop> {
        self.stopped.take()
    }
}

/// The epoch deadline callback: another tick for the running call, or a trap that
/// [`Watchdog::take_stop`] explains.
pub fn on_tick(mut store: StoreContextMut<'_, HostData>) -> wasmtime::Result<UpdateDeadline> {
    let data = store.data_mut();
    let since = data.running_since.unwrap_or(0);
    // The sysctl may have changed since the call started: read it now.
    let timeout = data.state.as_ref().and_then(soft_lockup_timeout);
    // The interrupt is the command's: a task running for someone else (a kernel thread) goes
    // on, and the scheduler hands the interrupt to the command between two runs.
    let own = data_state_runs_command(&data.state);
    let Some(w) = data.watchdog.as_mut() else {
        return Ok(UpdateDeadline::Continue(1));
    };
    let now = w.coarse_ns.load(Ordering::Relaxed);
    let stuck = now.saturating_sub(since);
    let stop = if own && w.interrupt.swap(false, Ordering::Relaxed) {
        Stop::Interrupted
    } else if timeout.is_some_and(|timeout| stuck >= nanos(timeout)) {
        Stop::SoftLockup(Duration::from_nanos(stuck))
    } else {
        return Ok(UpdateDeadline::Continue(1));
    };
    w.stopped = Some(stop);
    Err(Trap::Interrupt.into())
}

/// Whether the guest code running now runs for the command: no task, or the command's own.
fn data_state_runs_command(state: &Option<klp_core::state::KernelState>) -> bool {
    state.as_ref().is_none_or(|s| {
        let running = s.tasks.running().map(|p| p.get());
        running.is_none() || running == s.tasks.command_pid()
    })
}

/// `d` in nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `f`, which enters the guest, under the watchdog. The outermost entry sets the deadline
/// and notes when it started; nested ones (from a host call) run under the outermost's.
pub fn watched<T: AsContextMut<Data = HostData>, R>(
    ctx: &mut Context<T>,
    f: impl FnOnce(&mut Context<T>) -> R,
) -> R {
    let mut store = ctx.as_context_mut();
    let data = store.data();
    let (Some(watchdog), None) = (&data.watchdog, data.running_since) else {
        return f(ctx);
    };
    let since = watchdog.coarse_ns.load(Ordering::Relaxed);
    store.set_epoch_deadline(1);
    store.data_mut().running_since = Some(since);
    let result = f(ctx);
    ctx.as_context_mut().data_mut().running_since = None;
    result
}
