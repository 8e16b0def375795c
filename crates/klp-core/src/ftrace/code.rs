//! Dynamic ftrace: which variant of the kernel's code runs, swapping it as hooks come and go.
//!
//! Linux leaves every `-fentry` site a NOP until a tracer or a live patch needs it. Here the
//! kernel boots **plain** (every direct call direct: an unused hook costs nothing). The first
//! hook swaps to the precompiled **full** variant (every call through its slot) at once, and
//! asks the engine to compile, in the background, the **selective** variant for the hooked
//! slots (only their call sites through the slots); [`poll`] swaps to it when it is ready.
//! When the last hook goes, the kernel swaps back to plain. After a swap the caller writes
//! every redirected entry again ([`super::sync`] does).
//!
//! A task that holds frames keeps running the code it started in. Frames of a plain or
//! selective code may call a function directly, past its slot: for the consistency model such
//! a frame counts as being inside every function it can reach that way ([`Code::reaching`]),
//! so a task that could still call a changed function directly does not switch.

use super::Slot;
use crate::engine::{CodeKey, Engine};
use crate::instrument::{self, CallGraph, FtraceMap, Variant, tasks::Switching};
use crate::kallsyms;
use crate::state::KernelState;
use crate::sys::SysResult;
use crate::tasks::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// How the kernel's calls reach their slots (`klp run --ftrace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// The kernel runs plain until a hook needs its slots (Linux's dynamic ftrace).
    #[default]
    Dynamic,
    /// Every call goes through its slot, always.
    Always,
}

/// Kernel time a variant runs before the kernel moves to its boot code ([`poll`]): hooks that
/// come and go faster than that (a tracer switched on for one command) cost no move.
const REHOME_AFTER_NS: u64 = 1_000_000_000;

/// Code modules built and kept for swapping back and forth (plain, full and the last
/// selective ones).
const KEPT: usize = 4;

/// The kernel's code variants, for a kernel running dynamic ftrace.
pub struct Code {
    /// The kernel as built (uninstrumented): every variant is made from it.
    source: Arc<[u8]>,
    switching: Option<Switching>,
    /// Direct calls of the kernel, with each function's slot (if traceable) and name.
    graph: Graph,
    /// The kernel's own slots are `1..slots` (the modules' come after its table).
    slots: u32,
    current: Variant,
    /// The variant whose boot code defines the state in the engine's store (the kernel boots
    /// plain; [`poll`] moves the kernel to the boot code of the variant running).
    boot: Variant,
    /// A move to the running variant's boot code failed: not tried again for this variant.
    rehome_failed: Option<Variant>,
    /// The kernel time (ns) the running variant started running.
    since: u64,
    /// Code modules built, most recent last.
    built: Vec<(CodeKey, Variant, Arc<[u8]>)>,
    /// The variant the engine is compiling for [`poll`] to swap to.
    /// The variant [`poll`] is to build, have compiled and swap to; `true` once the engine
    /// compiles it. Built there, not in the hook, so that the pass is not in the first hook's
    /// latency.
    pending: Option<(CodeKey, Variant, bool)>,
    /// Tasks holding frames of a code other than full: the variant they run.
    homes: BTreeMap<Pid, Variant>,
}

/// The call graph with what [`Code::reaching`] needs per function.
struct Graph {
    /// Per function index: its slot when traceable.
    slot: Vec<Option<u32>>,
    /// Per function index: its name as stacks show it.
    name: Vec<Option<String>>,
    /// Per function index: the functions calling it directly.
    callers: Vec<Vec<u32>>,
}

impl Graph {
    /// How many kernel functions are traceable.
    fn traceable(&self) -> usize {
        self.slot.iter().flatten().count()
    }

    fn new(calls: &CallGraph, map: &FtraceMap) -> Self {
        let n = calls.funcs.len();
        let mut callers = vec![Vec::new(); n];
        for (f, (_, callees)) in calls.funcs.iter().enumerate() {
            for &g in callees {
                if let Some(c) = callers.get_mut(g as usize) {
                    c.push(f as u32);
                }
            }
        }
        Graph {
            slot: (0..n as u32)
                .map(|f| map.entry_of(f).filter(|e| !e.notrace).map(|e| e.slot))
                .collect(),
            name: calls
                .funcs
                .iter()
                .map(|(raw, _)| {
                    raw.as_deref()
                        .map(|r| kallsyms::symbol_name(r).unwrap_or_else(|| r.to_string()))
                })
                .collect(),
            callers,
        }
    }
}

/// The key of a variant's code module, which imports the kernel's state
/// ([`Engine::swap_code`]).
pub fn code_key(v: &Variant) -> CodeKey {
    key_in(v, false)
}

/// The key of a variant's boot code, which defines the kernel's state.
pub fn boot_key(v: &Variant) -> CodeKey {
    key_in(v, true)
}

fn key_in(v: &Variant, boot: bool) -> CodeKey {
    let mut h = std::hash::DefaultHasher::new();
    (v, boot).hash(&mut h);
    h.finish()
}

/// Whether `v`'s code calls every slot of `hooked` through the slot.
fn covers(v: &Variant, hooked: &BTreeSet<u32>) -> bool {
    match v {
        Variant::Full => true,
        Variant::Selective(set) => hooked.is_subset(set),
        Variant::Plain => hooked.is_empty(),
    }
}

/// A variant's short name (`dyn_ftrace_total_info`, the log).
pub fn variant_name(v: &Variant) -> &'static str {
    match v {
        Variant::Plain => "plain",
        Variant::Selective(_) => "selective",
        Variant::Full => "full",
    }
}

impl Code {
    /// The variants of `source` (the kernel as built), instrumented as `map` says, for an
    /// engine switching tasks as `switching` says; the kernel boots plain.
    pub fn new(
        source: Arc<[u8]>,
        switching: Option<Switching>,
        calls: &CallGraph,
        map: &FtraceMap,
    ) -> Self {
        Code {
            source,
            switching,
            graph: Graph::new(calls, map),
            slots: map.nr_slots,
            current: Variant::Plain,
            boot: Variant::Plain,
            rehome_failed: None,
            since: 0,
            built: Vec::new(),
            pending: None,
            homes: BTreeMap::new(),
        }
    }

    /// The variant running now.
    pub fn current(&self) -> &Variant {
        &self.current
    }

    /// The key of the module that runs `v` in the engine's store: its boot code when `v`
    /// defines the state there, else its code module.
    pub fn key_of(&self, v: &Variant) -> CodeKey {
        key_in(v, *v == self.boot)
    }

    /// The key of the code running now.
    pub fn current_key(&self) -> CodeKey {
        self.key_of(&self.current)
    }

    /// Remembers `code` as the module known as `k`, of variant `v`: the boot code at boot.
    pub fn add_built(&mut self, k: CodeKey, v: Variant, code: Arc<[u8]>) {
        self.built.retain(|(b, _, _)| *b != k);
        self.built.push((k, v, code));
        if self.built.len() > KEPT {
            // Plain and full stay: they are swapped to without waiting.
            if let Some(at) = self
                .built
                .iter()
                .position(|(_, v, _)| matches!(v, Variant::Selective(_)))
            {
                self.built.remove(at);
            }
        }
    }

    /// `v`'s boot code (`boot`) or code module: built before, or built now.
    fn code_of(&mut self, v: &Variant, boot: bool) -> SysResult<(CodeKey, Arc<[u8]>)> {
        let k = key_in(v, boot);
        if let Some((_, _, code)) = self.built.iter().find(|(b, _, _)| *b == k) {
            return Ok((k, Arc::clone(code)));
        }
        let out = instrument::instrument_variant(&self.source, &[], self.switching, v)
            .and_then(|out| instrument::split(&out.wasm))
            .map_err(|_| crate::errno::Errno::ENOMEM)?;
        let code: Arc<[u8]> = if boot { out.boot } else { out.code }.into();
        self.add_built(k, v.clone(), Arc::clone(&code));
        Ok((k, code))
    }

    /// A task starts running the code that runs now.
    pub fn spawned(&mut self, pid: Pid) {
        if self.current == Variant::Full {
            self.homes.remove(&pid);
        } else {
            self.homes.insert(pid, self.current.clone());
        }
    }

    /// A task holds no frames any more.
    pub fn left(&mut self, pid: Pid) {
        self.homes.remove(&pid);
    }

    /// The variant task `pid` runs, when it holds frames of a code other than full.
    pub fn home(&self, pid: Pid) -> Option<&Variant> {
        self.homes.get(&pid)
    }

    /// The names of the functions a frame of which may call one of `targets` (by name, as
    /// stacks show them) without passing its slot, in `v`'s code: `targets` themselves and
    /// every function reaching one by direct calls `v` leaves direct.
    pub fn reaching(&self, v: &Variant, targets: &BTreeSet<String>) -> BTreeSet<String> {
        let g = &self.graph;
        let direct = |callee: usize| match (v, g.slot[callee]) {
            (_, None) | (Variant::Plain, _) => true,
            (Variant::Full, Some(_)) => false,
            (Variant::Selective(set), Some(slot)) => !set.contains(&slot),
        };
        let mut seen = vec![false; g.name.len()];
        let mut todo: Vec<usize> = (0..g.name.len())
            .filter(|&f| g.name[f].as_ref().is_some_and(|n| targets.contains(n)))
            .collect();
        for &f in &todo {
            seen[f] = true;
        }
        while let Some(f) = todo.pop() {
            if !direct(f) {
                continue;
            }
            for &c in &g.callers[f] {
                if !std::mem::replace(&mut seen[c as usize], true) {
                    todo.push(c as usize);
                }
            }
        }
        let mut names = targets.clone();
        names.extend(
            (0..seen.len())
                .filter(|&f| seen[f])
                .filter_map(|f| g.name[f].clone()),
        );
        names
    }
}

/// The kernel slots whose calls must go through the slot: every slot with a user (a redirect,
/// in transition or not, or a hook), as the ops say before the table is written.
fn hooked(s: &KernelState) -> Option<BTreeSet<u32>> {
    let code = s.code.as_ref()?;
    let slots = s
        .ftrace
        .ops
        .slots()
        .map(Slot::index)
        .filter(|&i| i > 0 && i < code.slots)
        .collect();
    Some(slots)
}

/// Starts compiling the full variant, which the first hook swaps to without waiting.
///
/// # Errors
/// `ENOMEM` when the pass fails on the kernel it already instrumented once.
pub fn init(e: &mut impl Engine) -> SysResult<()> {
    if !e.swaps_code() {
        return Ok(());
    }
    if e.with_state(|s| s.code.is_none()) {
        return Ok(());
    }
    let (k, code) = running(e, &Variant::Full)?;
    e.prepare_code(k, &code);
    Ok(())
}

/// Chooses the code for the slots ftrace is about to write: the plain variant when none is
/// hooked, else the selective variant for the hooked slots when it is compiled, else the full
/// variant (at once) while the selective one compiles. Returns whether the code changed: the
/// caller must then write every redirected entry again.
///
/// # Errors
/// A failed swap (the code stays as it was).
pub fn update(e: &mut impl Engine) -> SysResult<bool> {
    let Some((hooked, current)) =
        e.with_state(|s| Some((hooked(s)?, s.code.as_ref()?.current.clone())))
    else {
        return Ok(false);
    };
    let all = e.with_state(|s| s.code.as_ref().map_or(0, |c| c.graph.traceable()));
    let want = if hooked.is_empty() {
        Variant::Plain
    } else if hooked.len() >= all {
        // The function tracer on every function: the full variant is that selective one.
        Variant::Full
    } else {
        Variant::Selective(hooked.clone())
    };
    if want == current || !e.swaps_code() {
        e.with_state(|s| s.code.as_mut().map(|c| c.pending = None));
        return Ok(false);
    }
    if want == Variant::Plain {
        // At once, always: compiled already but for a cache that dropped it, then compiled
        // now (so the log says when the last hook went, whatever compiles in the background).
        let (k, code) = running(e, &want)?;
        e.prepare_code(k, &code);
        swap(e, want, k)?;
        return Ok(true);
    }
    let k = e.with_state(|s| s.code.as_ref().map(|c| c.key_of(&want)));
    let k = k.expect("checked above");
    if e.code_ready(k) {
        swap(e, want, k)?;
        return Ok(true);
    }
    e.with_state(|s| {
        let c = s.code.as_mut()?;
        if c.pending.as_ref().is_none_or(|p| p.0 != k) {
            c.pending = Some((k, want, false));
        }
        Some(())
    });
    if covers(&current, &hooked) {
        return Ok(false);
    }
    let (full, code) = running(e, &Variant::Full)?;
    e.prepare_code(full, &code);
    swap(e, Variant::Full, full)?;
    Ok(true)
}

/// The key and module of `v`'s boot code (`boot`) or code module ([`Code::code_of`]).
fn built(e: &mut impl Engine, v: &Variant, boot: bool) -> SysResult<(CodeKey, Arc<[u8]>)> {
    e.with_state(|s| s.code.as_mut().map(|c| c.code_of(v, boot)))
        .unwrap_or(Err(crate::errno::Errno::EINVAL.into()))
}

/// The key and module that run `v` in the engine's store ([`Code::key_of`]).
fn running(e: &mut impl Engine, v: &Variant) -> SysResult<(CodeKey, Arc<[u8]>)> {
    let boot = e.with_state(|s| s.code.as_ref().is_some_and(|c| *v == c.boot));
    built(e, v, boot)
}

/// Builds the selective variant [`update`] asked for and has the engine compile it in the
/// background, or swaps to it once it is compiled: called by the scheduler between two
/// slices, where no guest frame is live, and before every top-level operation.
///
/// # Errors
/// A failed swap or table write.
pub fn poll(e: &mut impl Engine) -> SysResult<()> {
    let Some((k, v, compiling)) = e.with_state(|s| s.code.as_ref()?.pending.clone()) else {
        return rehome(e);
    };
    if !compiling {
        let (k, code) = running(e, &v)?;
        e.prepare_code(k, &code);
        e.with_state(|s| s.code.as_mut().map(|c| c.pending = Some((k, v, true))));
        return Ok(());
    }
    if e.code_ready(k) && update(e)? {
        super::sync_all(e)?;
    }
    Ok(())
}

/// Moves the kernel to a fresh store whose boot code is the running variant's, so that the
/// code running defines the kernel's state instead of importing it (an imported state costs
/// wasmtime a load more per access): once the variant has run for [`REHOME_AFTER_NS`] of
/// kernel time, at a safe point where no task holds frames, and once that boot code is
/// compiled (in the background, asked for here). A failed move is not tried again for the same
/// variant.
fn rehome(e: &mut impl Engine) -> SysResult<()> {
    let wanted = e.with_state(|s| {
        let c = s.code.as_ref()?;
        let due = c.current != c.boot
            && c.rehome_failed.as_ref() != Some(&c.current)
            && s.tasks.now_ns().saturating_sub(c.since) >= REHOME_AFTER_NS
            && !s.tasks.holding_frames();
        due.then(|| c.current.clone())
    });
    let Some(v) = wanted else {
        return Ok(());
    };
    if e.in_host_call() {
        return Ok(());
    }
    let (k, code) = built(e, &v, true)?;
    e.prepare_code(k, &code);
    let mut ready = e.code_ready(k);
    if v != Variant::Plain {
        // Plain then imports the state: compiled before the move, so that the last hook's
        // going still swaps back to it at once.
        let (plain, code) = built(e, &Variant::Plain, false)?;
        e.prepare_code(plain, &code);
        ready &= e.code_ready(plain);
    }
    if !ready {
        return Ok(());
    }
    let moved = e.rehome_code(k).is_ok();
    e.with_state(|s| {
        if let Some(c) = s.code.as_mut() {
            if moved {
                c.boot = v;
            } else {
                c.rehome_failed = Some(v);
            }
        }
    });
    Ok(())
}

/// Runs `v` (code `k`) from now on, and says so in the log when hooks come or go.
fn swap(e: &mut impl Engine, v: Variant, k: CodeKey) -> SysResult<()> {
    e.swap_code(k)?;
    let was = e.with_state(|s| {
        let now = s.tasks.now_ns();
        let c = s.code.as_mut().expect("a kernel with code variants");
        c.since = now;
        c.pending = c.pending.take().filter(|p| p.0 != k);
        std::mem::replace(&mut c.current, v.clone())
    });
    let line = match (&was, &v) {
        (Variant::Plain, _) => "ftrace: hooks in use: kernel calls go through their slots",
        (_, Variant::Plain) => "ftrace: no hook in use: the kernel runs plain",
        _ => return Ok(()),
    };
    crate::sys::printk(e, &format!("\x016{line}"))
}

/// `/sys/kernel/tracing/dyn_ftrace_total_info`: the traceable functions, and which code runs.
pub fn total_info(s: &KernelState) -> String {
    let functions = s
        .ftrace
        .slots()
        .filter_map(|slot| s.ftrace.info(slot))
        .filter(|i| i.owner.is_none() && !i.notrace)
        .count();
    let (mode, variant, through) = match &s.code {
        // A kernel run as built has no slots at all.
        None if functions == 0 => ("none", "as built", Some(0)),
        None => ("always", "full", None),
        Some(c) => (
            "dynamic",
            variant_name(&c.current),
            match &c.current {
                Variant::Selective(set) => Some(set.len()),
                Variant::Plain => Some(0),
                Variant::Full => None,
            },
        ),
    };
    let through = through.map_or_else(|| "all".to_string(), |n| n.to_string());
    let boot = s.code.as_ref().map_or(variant, |c| variant_name(&c.boot));
    format!(
        "{functions} pages:0 groups: 0\nmode: {mode}\nvariant: {variant} (calls to {through} of {functions} functions through their slots)\nboot code: {boot}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::{Code, Variant};
    use crate::instrument;
    use std::collections::BTreeSet;

    /// `top` calls `mid` calls `leaf`; `other` calls nothing; `run` (exported) calls `top`.
    fn code() -> (Code, u32) {
        let kernel = wat::parse_str(
            r#"(module
                (global $__stack_pointer (mut i32) (i32.const 65536))
                (memory 1)
                (func $leaf (result i32) i32.const 1)
                (func $mid (result i32) call $leaf)
                (func $top (result i32) call $mid)
                (func $other (result i32) i32.const 2)
                (func $run (export "run") (result i32) call $top))"#,
        )
        .expect("wat");
        let out = instrument::instrument_variant(&kernel, &[], None, &Variant::Plain).unwrap();
        let mid = out.ftrace.slot_of(1).expect("mid has a slot");
        let code = Code::new(kernel.into(), None, &out.calls, &out.ftrace);
        (code, mid)
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn in_plain_code_every_direct_caller_reaches_the_changed_function() {
        let (code, _) = code();
        assert_eq!(
            code.reaching(&Variant::Plain, &names(&["leaf"])),
            names(&["leaf", "mid", "top", "run"])
        );
    }

    #[test]
    fn in_full_code_only_the_changed_function_itself_counts() {
        let (code, _) = code();
        assert_eq!(
            code.reaching(&Variant::Full, &names(&["leaf"])),
            names(&["leaf"])
        );
    }

    #[test]
    fn in_selective_code_a_hooked_slot_stops_the_direct_path() {
        let (code, mid) = code();
        let selective = Variant::Selective([mid].into());
        assert_eq!(
            code.reaching(&selective, &names(&["leaf"])),
            names(&["leaf", "mid"])
        );
    }
}
