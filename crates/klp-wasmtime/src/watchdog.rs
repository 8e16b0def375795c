//! The soft lockup watchdog: epoch interruption with a deadline per outermost guest call.

use crate::{Context, HostData};
use klp_core::engine::EngineError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::AsContextMut;

/// How often the watchdog thread advances the engine's epoch: the resolution of the deadline.
pub const TICK: Duration = Duration::from_millis(100);

/// The soft lockup watchdog of one kernel.
pub(crate) struct Watchdog {
    /// The deadline of an outermost guest call, in ticks.
    pub(crate) ticks: u64,
    /// Nanoseconds since boot as of the last tick, set by the watchdog thread: reading it costs
    /// a guest call one atomic load, where reading the clock would cost a clock read.
    pub(crate) coarse_ns: Arc<AtomicU64>,
}

impl Watchdog {
    /// Starts the thread that, every [`TICK`] for as long as `engine` lives (the store and its
    /// modules hold it), advances its epoch and the coarse clock.
    pub(crate) fn start(
        engine: &wasmtime::Engine,
        ticks: u64,
        boot: Instant,
    ) -> Result<Self, EngineError> {
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
        Ok(Watchdog { ticks, coarse_ns })
    }
}

/// `d` in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `f`, which enters the guest, under the watchdog. The outermost entry sets the deadline
/// and notes when it started; nested ones (from a host call) run under the outermost's deadline.
/// Returns `f`'s result and when the outermost entry started (nanoseconds since boot, to the
/// [`TICK`]; 0 with the watchdog off).
pub(crate) fn watched<T: AsContextMut<Data = HostData>, R>(
    ctx: &mut Context<T>,
    f: impl FnOnce(&mut Context<T>) -> R,
) -> (R, u64) {
    let mut store = ctx.as_context_mut();
    let data = store.data();
    let (Some(watchdog), None) = (&data.watchdog, data.running_since) else {
        let since = data.running_since.unwrap_or(0);
        return (f(ctx), since);
    };
    let (ticks, since) = (watchdog.ticks, watchdog.coarse_ns.load(Ordering::Relaxed));
    store.set_epoch_deadline(ticks);
    store.data_mut().running_since = Some(since);
    let result = f(ctx);
    ctx.as_context_mut().data_mut().running_since = None;
    (result, since)
}
