//! ftrace_ops on the ftrace table: the function tracer, kprobes and kretprobes share each
//! function's slot with livepatch, as in Linux they share the ftrace hook.
//!
//! A slot with only livepatch (or nothing) holds its target directly: the func_stack's top or the
//! original, at no cost. A slot with tracing users holds a trampoline built for the function's
//! signature, which calls the handlers through `klp.hostcall` and then the target, kept in the
//! table entry after the trampoline.

pub mod kprobes;
pub mod tracefs;
pub mod trampoline;

use crate::engine::Engine;
use crate::errno::Errno;
use crate::kallsyms;
use crate::sys::SysResult;
use kprobes::Kprobe;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use trampoline::{Shape, TRAMPOLINE_PREFIX};

/// Most entries the trace buffer keeps (older ones are overwritten, as in the ring buffer).
const BUFFER_ENTRIES: usize = 8192;

/// A trampoline installed in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trampoline {
    /// Table entry of the trampoline; `base + 1` holds its target.
    pub base: u32,
    /// The engine instance.
    pub instance: u32,
    /// What it calls.
    pub shape: Shape,
}

/// The tracing state: tracer settings, probes, the buffer and the installed trampolines.
#[derive(Debug)]
pub struct Tracing {
    /// `/proc/sys/kernel/ftrace_enabled`.
    pub ftrace_enabled: bool,
    /// `current_tracer` is `function`.
    pub function_tracer: bool,
    /// `tracing_on`.
    pub tracing_on: bool,
    /// `set_ftrace_filter`: the traced slots; empty means every traceable function.
    pub filter: BTreeSet<u32>,
    /// Defined kprobes and kretprobes.
    pub kprobes: Vec<Kprobe>,
    /// The trace buffer, oldest first.
    pub buffer: VecDeque<String>,
    /// Entries ever written (the buffer may have dropped some).
    pub written: u64,
    /// Installed trampolines by slot.
    pub trampolines: BTreeMap<u32, Trampoline>,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            ftrace_enabled: true,
            function_tracer: false,
            tracing_on: true,
            filter: BTreeSet::new(),
            kprobes: Vec::new(),
            buffer: VecDeque::new(),
            written: 0,
            trampolines: BTreeMap::new(),
        }
    }
}

impl Tracing {
    /// Empties the trace buffer and its counters (`echo > trace`).
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.written = 0;
    }
}

/// Who uses a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Users {
    /// The function tracer traces it.
    pub tracer: bool,
    /// An enabled kprobe is on it.
    pub kprobe: bool,
    /// An enabled kretprobe is on it.
    pub kretprobe: bool,
    /// A live patch redirects it.
    pub livepatch: bool,
}

impl Users {
    fn shape(self) -> Option<Shape> {
        let shape = Shape {
            entry: self.tracer || self.kprobe,
            exit: self.kretprobe,
        };
        (shape.entry || shape.exit).then_some(shape)
    }
}

/// Whether a slot holds a traceable function (known, not notrace).
fn traceable(s: &crate::state::KernelState, slot: u32) -> bool {
    s.ftrace.info(slot).is_some_and(|i| !i.notrace)
}

/// The users of a slot.
pub fn users(s: &crate::state::KernelState, slot: u32) -> Users {
    let t = &s.tracing;
    let on = t.ftrace_enabled;
    let probe = |ret: bool| {
        on && t
            .kprobes
            .iter()
            .any(|k| k.enabled && k.slot == slot && k.ret == ret)
    };
    Users {
        tracer: on
            && t.function_tracer
            && traceable(s, slot)
            && (t.filter.is_empty() || t.filter.contains(&slot)),
        kprobe: probe(false),
        kretprobe: probe(true),
        livepatch: s.livepatch.func_stacks.contains_key(&slot),
    }
}

/// The entry a slot's calls should reach: the func_stack's top (its slot, so the replacement's
/// own hook runs too), or the original.
fn target(s: &crate::state::KernelState, slot: u32) -> Option<u32> {
    let top = s
        .livepatch
        .func_stacks
        .get(&slot)
        .and_then(|stack| stack.last())
        .map(|en| en.new_slot);
    top.or_else(|| s.ftrace.info(slot).map(|i| i.orig))
}

/// Points a slot at its target, through a trampoline when tracing users want one, and then
/// every slot whose target is this one.
///
/// # Errors
/// A table or instantiation error from the engine.
pub fn sync_slot(e: &mut impl Engine, slot: u32) -> SysResult<()> {
    sync_slots(e, [slot])
}

/// [`sync_slot`] for many slots at once; the replacement→patched-slot map is built once.
///
/// # Errors
/// As [`sync_slot`].
pub fn sync_slots(e: &mut impl Engine, slots: impl IntoIterator<Item = u32>) -> SysResult<()> {
    let dependents: BTreeMap<u32, Vec<u32>> = e.with_state(|s| {
        let mut map: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (&slot, stack) in &s.livepatch.func_stacks {
            if let Some(top) = stack.last() {
                map.entry(top.new_slot).or_default().push(slot);
            }
        }
        map
    });
    let mut todo: Vec<u32> = slots.into_iter().collect();
    let mut done = BTreeSet::new();
    while let Some(slot) = todo.pop() {
        if !done.insert(slot) {
            continue;
        }
        sync_one(e, slot)?;
        todo.extend(dependents.get(&slot).into_iter().flatten().copied());
    }
    Ok(())
}

/// Syncs every slot that has, or had, a tracing user.
///
/// # Errors
/// As [`sync_slot`].
pub fn sync_all(e: &mut impl Engine) -> SysResult<()> {
    let slots: BTreeSet<u32> = e.with_state(|s| {
        let mut slots: BTreeSet<u32> = s.tracing.trampolines.keys().copied().collect();
        if s.tracing.function_tracer {
            slots.extend(s.ftrace.slots().filter(|&slot| traceable(s, slot)));
        }
        slots.extend(s.tracing.kprobes.iter().map(|k| k.slot));
        slots.extend(s.livepatch.func_stacks.keys().copied());
        slots
    });
    sync_slots(e, slots)
}

fn remove_trampoline(e: &mut impl Engine, slot: u32) -> SysResult<()> {
    if let Some(old) = e.with_state(|s| s.tracing.trampolines.remove(&slot)) {
        e.table_clear(old.base, 2)?;
        e.release(old.instance);
        e.with_state(|s| s.ftrace.give_back(old.base, 2));
    }
    Ok(())
}

fn sync_one(e: &mut impl Engine, slot: u32) -> SysResult<()> {
    let (shape, target, installed, sig) = e.with_state(|s| {
        (
            users(s, slot).shape(),
            target(s, slot),
            s.tracing.trampolines.get(&slot).copied(),
            s.ftrace.info(slot).map(|i| i.sig.clone()),
        )
    });
    let (Some(target), Some(sig)) = (target, sig) else {
        return remove_trampoline(e, slot);
    };
    let Some(shape) = shape else {
        remove_trampoline(e, slot)?;
        e.table_copy(slot, target)?;
        return Ok(());
    };
    let tramp = match installed {
        Some(t) if t.shape == shape => t,
        _ => {
            remove_trampoline(e, slot)?;
            let base = match e.with_state(|s| s.ftrace.take_free(2)) {
                Some(base) => base,
                None => e.table_grow(2)?,
            };
            let name = e.with_state(|s| func_name(s, slot));
            let wasm = trampoline::build(&name, slot, &sig, base, shape);
            let instance = match e.instantiate(&wasm) {
                Ok(instance) => instance,
                Err(err) => {
                    e.with_state(|s| s.ftrace.give_back(base, 2));
                    return Err(err.into());
                }
            };
            let t = Trampoline {
                base,
                instance,
                shape,
            };
            e.with_state(|s| s.tracing.trampolines.insert(slot, t));
            t
        }
    };
    e.table_copy(tramp.base + 1, target)?;
    e.table_copy(slot, tramp.base)?;
    Ok(())
}

/// Hooks a loading module's functions up to the tracers that want them (an empty filter
/// traces every function, module functions included).
///
/// # Errors
/// As [`sync_slot`].
pub fn module_coming(e: &mut impl Engine, base: u32, n: u32) -> SysResult<()> {
    let traced: Vec<u32> = e.with_state(|s| {
        (base..base + n)
            .filter(|&slot| users(s, slot).shape().is_some())
            .collect()
    });
    traced.into_iter().try_for_each(|slot| sync_slot(e, slot))
}

/// Whether an enabled kprobe sits in a module's functions (it holds the module, as in Linux).
pub fn module_probed(s: &crate::state::KernelState, base: u32, n: u32) -> bool {
    s.tracing
        .kprobes
        .iter()
        .any(|k| k.enabled && (base..base + n).contains(&k.slot))
}

/// Forgets a going module's functions: their trampolines, disabled probes and filter entries.
///
/// # Errors
/// A table error from the engine.
pub fn module_going(e: &mut impl Engine, base: u32, n: u32) -> SysResult<()> {
    for slot in base..base + n {
        remove_trampoline(e, slot)?;
    }
    e.with_state(|s| {
        let range = base..base + n;
        s.tracing.kprobes.retain(|k| !range.contains(&k.slot));
        s.tracing.filter.retain(|slot| !range.contains(slot));
    });
    Ok(())
}

/// The display name of the function at a slot.
pub fn func_name(s: &crate::state::KernelState, slot: u32) -> String {
    s.kallsyms
        .func_by_slot(slot)
        .map_or_else(|| format!("slot{slot}"), |sym| sym.name.clone())
}

/// The caller of the traced function from a backtrace taken in the handler (innermost first:
/// the trampoline, then its caller). Host entries (thunks) and unnamed frames give `None`.
fn caller(frames: &[Option<String>]) -> Option<String> {
    let is_tramp = |f: &Option<String>| {
        f.as_deref()
            .is_some_and(|n| n.starts_with(TRAMPOLINE_PREFIX))
    };
    let at = frames.iter().position(is_tramp)?;
    // A replacement is called from the trampoline of the function it replaces: its caller is
    // that function's caller.
    let raw = frames[at..].iter().find(|f| !is_tramp(f))?.as_deref()?;
    if raw.starts_with(crate::instrument::THUNK_PREFIX) {
        return None;
    }
    kallsyms::symbol_name(raw)
}

/// Appends a line to the trace buffer, with the task, CPU, flags and timestamp columns.
fn record(t: &mut Tracing, comm: &str, now_ns: u64, text: &str) {
    if !t.tracing_on {
        return;
    }
    let line = format!(
        "{comm:>16}-{:<7} [000] ..... {:>5}.{:06}: {text}",
        1,
        now_ns / 1_000_000_000,
        (now_ns / 1000) % 1_000_000
    );
    if t.buffer.len() == BUFFER_ENTRIES {
        t.buffer.pop_front();
    }
    t.buffer.push_back(line);
    t.written += 1;
}

/// A traced function was entered (`klp.hostcall` from its trampoline).
///
/// # Errors
/// None today; the signature leaves room for handlers that call the kernel.
pub fn trace_entry(e: &mut impl Engine, slot: u32, args: [i32; 2]) -> SysResult<()> {
    let now = e.now_ns();
    // Naming the caller needs a backtrace, the costly part: take one only for the tracer.
    let wants_caller = e.with_state(|s| s.tracing.tracing_on && users(s, slot).tracer);
    let frames = if wants_caller {
        e.backtrace()
    } else {
        Vec::new()
    };
    e.with_state(|s| {
        let users = users(s, slot);
        let func = func_name(s, slot);
        let caller = caller(&frames);
        let comm = s.comm.clone();
        let patched = users.livepatch;
        if users.tracer {
            let text = match &caller {
                Some(c) => format!("{func} <-{c}"),
                None => func.clone(),
            };
            record(&mut s.tracing, &comm, now, &text);
        }
        if !users.kprobe || patched {
            // A kprobe sits in the original function, which a live patch no longer runs.
            return;
        }
        let probes: Vec<String> = s
            .tracing
            .kprobes
            .iter_mut()
            .filter(|k| k.enabled && !k.ret && k.slot == slot)
            .map(|k| {
                k.hits += 1;
                format!("{}: ({func}+0x0/0x0){}", k.name, k.format_args(args, 0))
            })
            .collect();
        for text in probes {
            record(&mut s.tracing, &comm, now, &text);
        }
    });
    Ok(())
}

/// A traced function returned (`klp.hostcall` from its trampoline).
///
/// # Errors
/// None today.
pub fn trace_exit(e: &mut impl Engine, slot: u32, retval: i32) -> SysResult<()> {
    let now = e.now_ns();
    let frames = e.backtrace();
    e.with_state(|s| {
        let func = func_name(s, slot);
        let site = match caller(&frames) {
            Some(c) => format!("{c} <- {func}"),
            None => func.clone(),
        };
        let comm = s.comm.clone();
        let probes: Vec<String> = s
            .tracing
            .kprobes
            .iter_mut()
            .filter(|k| k.enabled && k.ret && k.slot == slot)
            .map(|k| {
                k.hits += 1;
                format!("{}: ({site}){}", k.name, k.format_args([0, 0], retval))
            })
            .collect();
        for text in probes {
            record(&mut s.tracing, &comm, now, &text);
        }
    });
    Ok(())
}

/// Whether a live patch may redirect this slot: ftrace must be on and no kretprobe may hold the
/// function (both need to modify the return path; the first user wins, as the seed says).
///
/// # Errors
/// `EBUSY`, with the user that holds it.
pub fn check_livepatch(
    s: &crate::state::KernelState,
    slot: u32,
) -> Result<(), (Errno, Option<String>)> {
    if !s.tracing.ftrace_enabled {
        return Err((Errno::EBUSY, None));
    }
    match s
        .tracing
        .kprobes
        .iter()
        .find(|k| k.enabled && k.ret && k.slot == slot)
    {
        Some(k) => Err((Errno::EBUSY, Some(k.name.clone()))),
        None => Ok(()),
    }
}

/// Enabled kprobes (entry) on a slot, by name: a live patch makes them miss.
pub fn kprobes_on(s: &crate::state::KernelState, slot: u32) -> Vec<String> {
    s.tracing
        .kprobes
        .iter()
        .filter(|k| k.enabled && !k.ret && k.slot == slot)
        .map(|k| k.name.clone())
        .collect()
}

/// Matches a shell-style glob with `*` and `?` (set_ftrace_filter's patterns).
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_set_ftrace_filter() {
        assert!(glob("cmdline_proc_show", "cmdline_proc_show"));
        assert!(glob("*_proc_show", "meminfo_proc_show"));
        assert!(glob("sys_*", "sys_read"));
        assert!(glob("*proc*", "cmdline_proc_show"));
        assert!(glob("sys_rea?", "sys_read"));
        assert!(!glob("sys_*", "do_sys_read"));
        assert!(!glob("cmdline", "cmdline_proc_show"));
    }

    #[test]
    fn caller_is_the_frame_after_the_trampoline_unless_the_host_called() {
        let frames = |v: &[&str]| v.iter().map(|s| Some((*s).to_string())).collect::<Vec<_>>();
        assert_eq!(
            caller(&frames(&["__klp_tramp_f", "seq_show", "sys_read"])),
            Some("seq_show".into())
        );
        assert_eq!(
            caller(&frames(&["__klp_tramp_f", "__klp_thunk_sys_read"])),
            None
        );
        assert_eq!(caller(&frames(&["__klp_tramp_f"])), None);
        assert_eq!(
            caller(&frames(&["__klp_tramp_new", "__klp_tramp_old", "seq_show"])),
            Some("seq_show".into())
        );
    }
}
