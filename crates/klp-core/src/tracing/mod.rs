//! Tracing users of the ftrace hook: the function tracer, kprobes and kretprobes.

pub mod kprobes;
pub mod tracefs;

use crate::engine::Engine;
use crate::ftrace::trampoline::TRAMPOLINE_PREFIX;
use crate::ftrace::{self, Hook, Slot, func_name};
use crate::kallsyms;
use crate::state::KernelState;
use crate::sys::SysResult;
use kprobes::Kprobe;
use std::collections::{BTreeSet, VecDeque};

/// Most entries the trace buffer keeps (older ones are overwritten, as in the ring buffer).
const BUFFER_ENTRIES: usize = 8192;

/// The tracing state: tracer settings, probes and the buffer.
#[derive(Debug)]
pub struct Tracing {
    /// `current_tracer` is `function`.
    pub function_tracer: bool,
    /// `tracing_on`.
    pub tracing_on: bool,
    /// `set_ftrace_filter`: the traced slots; empty means every traceable function.
    pub filter: BTreeSet<Slot>,
    /// Defined kprobes and kretprobes.
    pub kprobes: Vec<Kprobe>,
    /// The trace buffer, oldest first.
    pub buffer: VecDeque<String>,
    /// Entries ever written (the buffer may have dropped some).
    pub written: u64,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            function_tracer: false,
            tracing_on: true,
            filter: BTreeSet::new(),
            kprobes: Vec::new(),
            buffer: VecDeque::new(),
            written: 0,
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

/// The slots the function tracer should hook: none when it is off, the filter's, or every
/// traceable function when the filter is empty.
fn tracer_slots(s: &KernelState) -> BTreeSet<Slot> {
    let t = &s.tracing;
    match (t.function_tracer, t.filter.is_empty()) {
        (false, _) => BTreeSet::new(),
        (true, false) => t.filter.clone(),
        (true, true) => s
            .ftrace
            .slots()
            .filter(|&slot| s.ftrace.traceable(slot))
            .collect(),
    }
}

/// Registers the tracer's hook on the slots it should trace and takes it off the others, then
/// has ftrace rewrite the slots that changed.
///
/// # Errors
/// A table or instantiation error from the engine.
pub fn update_tracer(e: &mut impl Engine) -> SysResult<()> {
    let changed: Vec<Slot> = e.with_state(|s| {
        let want = tracer_slots(s);
        let have: BTreeSet<Slot> = s
            .ftrace
            .used_slots()
            .filter(|&slot| s.ftrace.hooks(slot).contains(&Hook::Tracer))
            .collect();
        let mut changed = Vec::new();
        for &slot in have.difference(&want) {
            s.ftrace.remove_hook(slot, &Hook::Tracer);
            changed.push(slot);
        }
        for &slot in want.difference(&have) {
            // The tracer's hook needs no IPMODIFY, and every slot here is traceable.
            if s.ftrace.add_hook(slot, Hook::Tracer).is_ok() {
                changed.push(slot);
            }
        }
        changed
    });
    ftrace::sync(e, changed)
}

/// Hooks a loading module's functions up to the tracer when it traces every function.
///
/// # Errors
/// As [`update_tracer`].
pub fn module_coming(e: &mut impl Engine, base: u32, n: u32) -> SysResult<()> {
    let hooked: Vec<Slot> = e.with_state(|s| {
        let every = s.tracing.function_tracer && s.tracing.filter.is_empty();
        let slots: Vec<Slot> = (base..base + n)
            .map(Slot::new)
            .filter(|&slot| every && s.ftrace.traceable(slot))
            .collect();
        slots
            .into_iter()
            .filter(|&slot| s.ftrace.add_hook(slot, Hook::Tracer).is_ok())
            .collect()
    });
    ftrace::sync(e, hooked)
}

/// Whether an enabled kprobe sits in a module's functions (it holds the module, as in Linux).
pub fn module_probed(s: &KernelState, base: u32, n: u32) -> bool {
    s.tracing
        .kprobes
        .iter()
        .any(|k| k.enabled && (base..base + n).contains(&k.slot.index()))
}

/// Forgets a going module's functions: its probes and filter entries (ftrace forgets their
/// hooks with the slots).
pub fn module_going(s: &mut KernelState, base: u32, n: u32) {
    let range = base..base + n;
    s.tracing
        .kprobes
        .retain(|k| !range.contains(&k.slot.index()));
    s.tracing
        .filter
        .retain(|slot| !range.contains(&slot.index()));
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
fn record(t: &mut Tracing, (comm, pid): (&str, i32), now_ns: u64, text: &str) {
    if !t.tracing_on {
        return;
    }
    let line = format!(
        "{comm:>16}-{pid:<7} [000] ..... {:>5}.{:06}: {text}",
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
    let slot = Slot::new(slot);
    let now = e.now_ns();
    // Naming the caller needs a backtrace, the costly part: take one only for the tracer.
    let wants_caller = e.with_state(|s| s.tracing.tracing_on && s.ftrace.users(slot).tracer);
    let frames = if wants_caller {
        e.backtrace()
    } else {
        Vec::new()
    };
    e.with_state(|s| {
        let users = s.ftrace.users(slot);
        let func = func_name(s, slot);
        let caller = caller(&frames);
        let (comm, pid) = s.current_task();
        let patched = users.livepatch;
        if users.tracer {
            let text = match &caller {
                Some(c) => format!("{func} <-{c}"),
                None => func.clone(),
            };
            record(&mut s.tracing, (&comm, pid), now, &text);
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
            record(&mut s.tracing, (&comm, pid), now, &text);
        }
    });
    Ok(())
}

/// A traced function returned (`klp.hostcall` from its trampoline).
///
/// # Errors
/// None today.
pub fn trace_exit(e: &mut impl Engine, slot: u32, retval: i32) -> SysResult<()> {
    let slot = Slot::new(slot);
    let now = e.now_ns();
    let frames = e.backtrace();
    e.with_state(|s| {
        let func = func_name(s, slot);
        let site = match caller(&frames) {
            Some(c) => format!("{c} <- {func}"),
            None => func.clone(),
        };
        let (comm, pid) = s.current_task();
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
            record(&mut s.tracing, (&comm, pid), now, &text);
        }
    });
    Ok(())
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
