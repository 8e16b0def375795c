//! Tracing users of the ftrace hook: the function tracer, kprobes and kretprobes.

pub mod kprobes;
pub mod ring;
pub mod tracefs;

use crate::engine::Engine;
use crate::ftrace::{self, Hook, Slot, func_name};
use crate::state::KernelState;
use crate::sys::SysResult;
use kprobes::Kprobe;
use ring::{Event, FUNCTION, Ring};
use std::collections::{BTreeSet, HashMap};

/// The tracing state: tracer settings, probes, and what the host needs to format the ring
/// buffer's events.
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
    /// The ring buffer in kernel memory, once a tracing hook needed it.
    pub ring: Option<Ring>,
    /// Task (comm, pid) by context id: events record the id (Linux's saved_cmdlines).
    contexts: Vec<(String, i32)>,
    context_ids: HashMap<(String, i32), u32>,
    /// The context id in the ring's header.
    written_ctx: Option<u32>,
    /// Probes removed since the last reset: events in the buffer may still name them.
    retired: Vec<Kprobe>,
    /// The id the next kprobe gets.
    next_probe: u32,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            function_tracer: false,
            tracing_on: true,
            filter: BTreeSet::new(),
            kprobes: Vec::new(),
            ring: None,
            contexts: Vec::new(),
            context_ids: HashMap::new(),
            written_ctx: None,
            retired: Vec::new(),
            next_probe: FUNCTION + 1,
        }
    }
}

impl Tracing {
    /// The context id of a task (comm, pid), given one if it has none.
    fn context(&mut self, task: (String, i32)) -> u32 {
        if let Some(&id) = self.context_ids.get(&task) {
            return id;
        }
        let id = self.contexts.len() as u32;
        self.contexts.push(task.clone());
        self.context_ids.insert(task, id);
        id
    }

    /// The buffer was emptied: contexts and removed probes are no longer referred to.
    fn forget_events(&mut self) {
        self.contexts.clear();
        self.context_ids.clear();
        self.written_ctx = None;
        self.retired.clear();
    }

    /// A new kprobe's event id.
    pub fn new_probe_id(&mut self) -> u32 {
        let id = self.next_probe;
        self.next_probe += 1;
        id
    }

    /// Removes the kprobe at `index` of [`Tracing::kprobes`]; its events stay readable until
    /// the buffer is reset.
    pub fn remove_probe(&mut self, index: usize) {
        let k = self.kprobes.remove(index);
        self.retired.push(k);
    }

    /// Removes every kprobe, as [`Tracing::remove_probe`].
    pub fn remove_probes(&mut self) {
        let all = std::mem::take(&mut self.kprobes);
        self.retired.extend(all);
    }

    /// The probe whose events have id `id`.
    fn probe(&self, id: u32) -> Option<&Kprobe> {
        self.kprobes
            .iter()
            .chain(&self.retired)
            .find(|k| k.id == id)
    }
}

/// One line of `trace` for `ev`: task, CPU, flags, timestamp, then the tracer's or probe's
/// text, as Linux prints them.
fn format_event(s: &KernelState, ev: &Event) -> String {
    let t = &s.tracing;
    let (comm, pid) = t
        .contexts
        .get(ev.ctx as usize)
        .map_or(("<...>", 0), |(c, p)| (c.as_str(), *p));
    let func = func_name(s, Slot::new(ev.slot));
    let caller = (ev.caller != 0).then(|| func_name(s, Slot::new(ev.caller)));
    let text = match t.probe(ev.id) {
        None if ev.id == FUNCTION => match &caller {
            Some(c) => format!("{func} <-{c}"),
            None => func,
        },
        None => format!("Unknown type {}", ev.id),
        Some(k) if k.ret => {
            let site = match &caller {
                Some(c) => format!("{c} <- {func}"),
                None => func,
            };
            format!("{}: ({site}){}", k.name, k.format_args([0, 0], ev.a))
        }
        Some(k) => format!(
            "{}: ({func}+0x0/0x0){}",
            k.name,
            k.format_args([ev.a, ev.b], 0)
        ),
    };
    format!(
        "{comm:>16}-{pid:<7} [000] ..... {:>5}.{:06}: {text}",
        ev.ts / 1_000_000_000,
        (ev.ts / 1000) % 1_000_000
    )
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
}
