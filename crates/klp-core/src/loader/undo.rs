//! The loader's undo log: each step pushes its undo; a failure runs them all, newest first.

use super::{ModuleState, module_call, own_ref, set_state, write_refcnt};
use crate::engine::{Engine, EngineError};
use crate::ftrace;
use crate::livepatch::{self, Livepatch};
use crate::sys::{self, SysError, SysResult};
use crate::tracing;

/// The outcome of a best-effort sequence: every step runs, and the first error is kept, except
/// that a trap outranks any other error (see [`first_or_trap`]).
#[derive(Debug, Default)]
pub(crate) struct FirstError(Option<SysError>);

impl FirstError {
    /// Notes the result of one step.
    pub(crate) fn note<T, E: Into<SysError>>(&mut self, result: Result<T, E>) {
        if let Err(err) = result {
            let err = err.into();
            self.0 = Some(match self.0.take() {
                None => err,
                Some(first) => first_or_trap(first, Err(err)),
            });
        }
    }

    /// `Ok` when every step succeeded, else the error kept.
    pub(crate) fn finish(self) -> SysResult<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The error to report after `first` and the result of a later step (a rollback, a message):
/// `first`, unless only the later step trapped. A trap is an oops: it has to reach
/// [`crate::kernel::run_task`], which unwinds the kernel stack and reports it.
pub(crate) fn first_or_trap(first: SysError, later: SysResult<()>) -> SysError {
    let is_trap = |err: &SysError| matches!(err, SysError::Engine(EngineError::Trap(_)));
    match later {
        Err(trap) if is_trap(&trap) && !is_trap(&first) => trap,
        _ => first,
    }
}

/// Runs a kernel call that has to happen (an undo, or a step after the point of no return):
/// after a trap it is tried once more, and the trap is returned, since it is an oops to report
/// even when the second try does the work. Only calls that are harmless to repeat go through
/// here: taking a module off the list, freeing a block, setting a count or a state.
///
/// # Errors
/// The first error.
pub(crate) fn retried<E: Engine>(
    e: &mut E,
    mut step: impl FnMut(&mut E) -> SysResult<()>,
) -> SysResult<()> {
    match step(e) {
        Err(trap @ SysError::Engine(EngineError::Trap(_))) => {
            // The first trap is the one to report; the second try only has to do the work.
            let _ = step(e);
            Err(trap)
        }
        other => other,
    }
}

/// How to undo one step.
pub(super) enum Undo {
    /// Free the kmalloc block of the module's data.
    Kfree(u32),
    /// Have ftrace clear the module's table range `base..base + 2n`, forget its slots and give
    /// the range back.
    Slots { base: u32, n: u32 },
    /// Release the engine instance.
    Instance(u32),
    /// Forget the module's symbols.
    Symbols,
    /// Forget the probes and filter entries of the module's slots.
    Traced { base: u32, n: u32 },
    /// Take the module off the kernel's module list.
    Listed,
    /// Forget the host's record of the module.
    Recorded,
    /// Put a module's reference count back.
    Refcnt { module: String, count: u32 },
    /// Put a module's state back.
    State(ModuleState),
    /// Put the livepatch state (patches, func_stacks) back as it was, with the slots and the
    /// reference counts that follow from it.
    Livepatch(Box<Livepatch>),
    /// Revert the patches applied to the module as it came (`klp_module_going`).
    Coming,
    /// Disable the module's own patch if its init enabled it, and unregister it.
    OwnPatch,
    /// Undo a successful init: disable the module's own patch, then run its exit.
    Init { exit: Option<u32> },
}

/// The undo log of one module operation.
pub(super) struct Transaction<'a> {
    name: &'a str,
    log: Vec<Undo>,
}

impl<'a> Transaction<'a> {
    /// An empty log for an operation on module `name`.
    pub(super) fn new(name: &'a str) -> Self {
        Transaction {
            name,
            log: Vec::new(),
        }
    }

    /// Records the undo of a step just taken (or about to be taken, when undoing it is harmless
    /// if it did not happen).
    pub(super) fn push(&mut self, undo: Undo) {
        self.log.push(undo);
    }

    /// Undoes every step, newest first. Every undo runs even when one fails; the first error
    /// (a trap before any other) is returned.
    pub(super) fn rollback(self, e: &mut impl Engine) -> SysResult<()> {
        let mut errors = FirstError::default();
        for undo in self.log.into_iter().rev() {
            errors.note(run(e, self.name, undo));
        }
        errors.finish()
    }

    /// Rolls back after `err`; returns the error to report: `err`, or a trap of the rollback.
    pub(super) fn abort(self, e: &mut impl Engine, err: SysError) -> SysError {
        first_or_trap(err, self.rollback(e))
    }
}

/// Runs one undo.
fn run(e: &mut impl Engine, name: &str, undo: Undo) -> SysResult<()> {
    match undo {
        Undo::Kfree(addr) => retried(e, |e| sys::call(e, "kfree", &[addr as i32]).map(drop)),
        Undo::Slots { base, n } => ftrace::release_module(e, base, n),
        Undo::Instance(id) => {
            e.release(id);
            Ok(())
        }
        Undo::Symbols => {
            e.with_state(|s| s.kallsyms.remove_module(name));
            Ok(())
        }
        Undo::Traced { base, n } => {
            e.with_state(|s| tracing::module_going(s, base, n));
            Ok(())
        }
        Undo::Listed => retried(e, |e| module_call(e, "module_del", name, &[])),
        Undo::Recorded => {
            e.with_state(|s| s.modules.retain(|m| m.name != name));
            Ok(())
        }
        Undo::Refcnt { module, count } => retried(e, |e| write_refcnt(e, &module, count)),
        Undo::State(state) => retried(e, |e| set_state(e, name, state)),
        Undo::Livepatch(before) => livepatch::restore(e, *before),
        Undo::Coming => livepatch::module_going(e, name),
        Undo::OwnPatch => {
            let mut errors = FirstError::default();
            if own_ref(e, name) == 1 {
                errors.note(livepatch::disable(e, name));
            }
            errors.note(livepatch::forget(e, name));
            errors.finish()
        }
        Undo::Init { exit } => {
            let mut errors = FirstError::default();
            if own_ref(e, name) == 1 {
                errors.note(livepatch::disable(e, name));
            }
            if let Some(exit) = exit {
                errors.note(sys::call(e, "do_exit_call", &[exit as i32]));
            }
            errors.finish()
        }
    }
}
