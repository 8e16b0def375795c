//! The trace ring buffer: events the trampolines write into kernel memory, read by the host.
//!
//! One block of kernel memory (`kmalloc`ed when the first tracing hook is installed): a
//! [`HEADER`]-byte header, then [`ENTRIES`] events of [`EVENT`] bytes, written in overwrite
//! mode (event `n` goes to entry `n % ENTRIES`), as Linux's ring buffer does with
//! `overwrite` set. docs/ABI.md, "The trace ring buffer", has the layout.

use super::Tracing;
use crate::engine::{Callee, Engine, EngineError};
use crate::errno::Errno;
use crate::sys::SysResult;

/// Events the buffer holds (`buffer_size_kb` is `ENTRIES * EVENT / 1024`, 256).
pub const ENTRIES: u32 = 8192;
/// Bytes of the header: `written` (`u64`), `on` (`u32`), `ctx` (`u32`).
pub const HEADER: u32 = 16;
/// Bytes of one event.
pub const EVENT: u32 = 32;
/// Header: events written since the last reset (`u64`); the trampolines increment it.
pub const WRITTEN: u32 = 0;
/// Header: `tracing_on` (`u32`, 0 or 1); trampolines record nothing while it is 0.
pub const ON: u32 = 8;
/// Header: the current task's context id (`u32`), which the host keeps up to date.
pub const CTX: u32 = 12;
/// Event: the kernel clock (`klp.clock_ns`) at the event (`u64`).
pub const EV_TS: u32 = 0;
/// Event: [`FUNCTION`] or a kprobe's id (`u32`).
pub const EV_ID: u32 = 8;
/// Event: the traced function's slot (`u32`).
pub const EV_SLOT: u32 = 12;
/// Event: the caller's slot from `__klp_caller`, 0 for none (`u32`).
pub const EV_CALLER: u32 = 16;
/// Event: the context id of the task it ran in (`u32`).
pub const EV_CTX: u32 = 20;
/// Event: `$arg1` (kprobe) or `$retval` (kretprobe) (`i32`).
pub const EV_A: u32 = 24;
/// Event: `$arg2` (kprobe) (`i32`).
pub const EV_B: u32 = 28;
/// The event id of the function tracer; kprobes have ids from 1.
pub const FUNCTION: u32 = 0;

/// Where the ring buffer lives in kernel memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    base: u32,
}

impl Ring {
    /// The ring whose header is at `base`.
    pub(crate) fn at(base: u32) -> Ring {
        Ring { base }
    }

    /// Address of the header.
    pub fn base(self) -> u32 {
        self.base
    }

    /// Address of the first event.
    pub fn events(self) -> u32 {
        self.base + HEADER
    }

    /// The mask that turns an event number into its entry (`ENTRIES` is a power of two).
    pub const fn mask() -> u32 {
        ENTRIES - 1
    }
}

/// One recorded event, as the host reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Kernel clock at the event.
    pub ts: u64,
    /// [`FUNCTION`] or a kprobe id.
    pub id: u32,
    /// The traced function's slot.
    pub slot: u32,
    /// The caller's slot, 0 for none.
    pub caller: u32,
    /// The task's context id.
    pub ctx: u32,
    /// `$arg1` or `$retval`.
    pub a: i32,
    /// `$arg2`.
    pub b: i32,
}

impl Event {
    fn decode(raw: &[u8]) -> Event {
        let u32_at = |at: u32| {
            let at = at as usize;
            u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]])
        };
        Event {
            ts: u64::from(u32_at(EV_TS)) | (u64::from(u32_at(EV_TS + 4)) << 32),
            id: u32_at(EV_ID),
            slot: u32_at(EV_SLOT),
            caller: u32_at(EV_CALLER),
            ctx: u32_at(EV_CTX),
            a: u32_at(EV_A) as i32,
            b: u32_at(EV_B) as i32,
        }
    }
}

/// The ring buffer, allocated in kernel memory on first use (with `tracing_on` and the current
/// context written into its header).
///
/// # Errors
/// `ENOMEM` when the kernel cannot allocate it; a trap in `kmalloc`.
pub fn ensure(e: &mut impl Engine) -> SysResult<Ring> {
    if let Some(ring) = e.with_state(|s| s.tracing.ring) {
        return Ok(ring);
    }
    let size = HEADER + ENTRIES * EVENT;
    let base = e
        .call(Callee::Export("kmalloc"), &[size as i32, 0])?
        .unwrap_or(0) as u32;
    if base == 0 {
        return Err(Errno::ENOMEM.into());
    }
    let ring = Ring::at(base);
    let (on, ctx) = e.with_state(|s| {
        let current = s.current_task();
        let t = &mut s.tracing;
        t.ring = Some(ring);
        (t.tracing_on, t.context(current))
    });
    let mut header = [0u8; HEADER as usize];
    header[ON as usize..][..4].copy_from_slice(&u32::from(on).to_le_bytes());
    header[CTX as usize..][..4].copy_from_slice(&ctx.to_le_bytes());
    e.write(base, &header)?;
    Ok(ring)
}

/// Writes the current task's context id into the header when it changed: the scheduler, a
/// command starting or ending, calls it whenever `current` changes.
///
/// # Errors
/// A fault writing kernel memory.
pub fn note_current(e: &mut impl Engine) -> Result<(), EngineError> {
    let changed = e.with_state(|s| {
        let ring = s.tracing.ring?;
        let current = s.current_task();
        let t = &mut s.tracing;
        let ctx = t.context(current);
        (t.written_ctx != Some(ctx)).then(|| {
            t.written_ctx = Some(ctx);
            (ring, ctx)
        })
    });
    match changed {
        Some((ring, ctx)) => e.write(ring.base + CTX, &ctx.to_le_bytes()),
        None => Ok(()),
    }
}

/// `tracing_on`: sets it and the header's copy the trampolines read.
///
/// # Errors
/// A fault writing kernel memory.
pub fn set_on(e: &mut impl Engine, on: bool) -> Result<(), EngineError> {
    let ring = e.with_state(|s| {
        s.tracing.tracing_on = on;
        s.tracing.ring
    });
    match ring {
        Some(ring) => e.write(ring.base + ON, &u32::from(on).to_le_bytes()),
        None => Ok(()),
    }
}

/// Empties the buffer (`echo > trace`, a new tracer): `written` goes to 0, and the host forgets
/// the contexts and removed probes no event refers to any more.
///
/// # Errors
/// A fault writing kernel memory.
pub fn reset(e: &mut impl Engine) -> Result<(), EngineError> {
    let (ring, ctx) = e.with_state(|s| {
        let current = s.current_task();
        let t: &mut Tracing = &mut s.tracing;
        t.forget_events();
        let ctx = t.context(current);
        t.written_ctx = Some(ctx);
        (t.ring, ctx)
    });
    let Some(ring) = ring else {
        return Ok(());
    };
    e.write(ring.base + WRITTEN, &0u64.to_le_bytes())?;
    e.write(ring.base + CTX, &ctx.to_le_bytes())
}

/// The events in the buffer, oldest first, and how many were written since the last reset
/// (more than the buffer holds once it has overwritten old ones: Linux's overruns).
///
/// # Errors
/// A fault reading kernel memory.
pub fn read(e: &mut impl Engine) -> Result<(Vec<Event>, u64), EngineError> {
    let Some(ring) = e.with_state(|s| s.tracing.ring) else {
        return Ok((Vec::new(), 0));
    };
    let mut written = [0u8; 8];
    e.read(ring.base + WRITTEN, &mut written)?;
    let written = u64::from_le_bytes(written);
    let held = written.min(u64::from(ENTRIES)) as u32;
    let mut raw = vec![0u8; (ENTRIES * EVENT) as usize];
    e.read(ring.events(), &mut raw)?;
    let first = written - u64::from(held);
    let events = (0..u64::from(held))
        .map(|n| {
            let entry = ((first + n) & u64::from(Ring::mask())) as usize;
            Event::decode(&raw[entry * EVENT as usize..][..EVENT as usize])
        })
        .collect();
    Ok((events, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode_from_their_documented_offsets() {
        let mut raw = [0u8; EVENT as usize];
        let put = |raw: &mut [u8], at: u32, v: u32| {
            raw[at as usize..][..4].copy_from_slice(&v.to_le_bytes());
        };
        put(&mut raw, EV_TS, 5);
        put(&mut raw, EV_TS + 4, 1);
        put(&mut raw, EV_ID, 3);
        put(&mut raw, EV_SLOT, 40);
        put(&mut raw, EV_CALLER, 41);
        put(&mut raw, EV_CTX, 2);
        put(&mut raw, EV_A, u32::MAX);
        put(&mut raw, EV_B, 7);
        assert_eq!(
            Event::decode(&raw),
            Event {
                ts: (1 << 32) | 5,
                id: 3,
                slot: 40,
                caller: 41,
                ctx: 2,
                a: -1,
                b: 7,
            }
        );
        assert!(ENTRIES.is_power_of_two());
    }
}
