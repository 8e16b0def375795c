//! /sys/kernel/tracing (tracer, kprobe events, enabled_functions), /proc/sys/kernel/ftrace_enabled.

use super::kprobes::{Command, Kprobe};
use super::{Tracing, format_event, glob, ring, update_tracer};
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::{self, Owner, Refusal, Slot, func_name};
use crate::hostfs::{Node, Tree, flag, switch};
use crate::state::KernelState;
use crate::sys::{self, SysResult};
use std::collections::BTreeSet;

/// Where tracefs is mounted.
pub const ROOT: &str = "/sys/kernel/tracing";
/// The sysctl that switches every ftrace user off.
pub const FTRACE_ENABLED: &str = "/proc/sys/kernel/ftrace_enabled";

const FILES: [&str; 10] = [
    "available_filter_functions",
    "available_tracers",
    "current_tracer",
    "dyn_ftrace_total_info",
    "enabled_functions",
    "events",
    "kprobe_events",
    "set_ftrace_filter",
    "trace",
    "tracing_on",
];

/// Traceable slots in slot order, with their display names (and `[module]`).
fn traceable_functions(s: &KernelState) -> Vec<(Slot, String)> {
    s.ftrace
        .slots()
        .filter(|&slot| s.ftrace.traceable(slot))
        .filter_map(|slot| {
            let sym = s.kallsyms.func_by_slot(slot.index())?;
            let label = match &sym.module {
                Some(m) => format!("{} [{m}]", sym.name),
                None => sym.name.clone(),
            };
            Some((slot, label))
        })
        .collect()
}

/// `trace`: the header, then one line per event in the ring buffer, oldest first.
fn trace(s: &KernelState, events: &[ring::Event], written: u64) -> String {
    let mut out = trace_header(s, events.len(), written);
    for ev in events {
        out.push_str(&format_event(s, ev));
        out.push('\n');
    }
    out
}

fn trace_header(s: &KernelState, held: usize, written: u64) -> String {
    let t = &s.tracing;
    format!(
        "# tracer: {}\n#\n# entries-in-buffer/entries-written: {}/{}   #P:1\n#\n\
         #                                _-----=> irqs-off/BH-disabled\n\
         #                               / _----=> need-resched\n\
         #                              | / _---=> hardirq/softirq\n\
         #                              || / _--=> preempt-depth\n\
         #                              ||| / _-=> migrate-disable\n\
         #                              |||| /     delay\n\
         #           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n\
         #              | |         |   |||||     |         |\n",
        if t.function_tracer { "function" } else { "nop" },
        held,
        written
    )
}

fn enabled_functions(s: &KernelState) -> String {
    let f = &s.ftrace;
    let mut out = String::new();
    for slot in f.used_slots() {
        let u = f.users(slot);
        let count = [u.tracer, u.kprobe, u.kretprobe, u.livepatch]
            .iter()
            .filter(|&&b| b)
            .count();
        if count == 0 {
            continue;
        }
        let regs = if u.livepatch || u.kprobe || u.kretprobe {
            " R"
        } else {
            "  "
        };
        let ipmodify = if u.livepatch || u.kretprobe {
            " I"
        } else {
            "  "
        };
        let mut line = format!("{} ({count}){regs}{ipmodify}   ", func_name(s, slot));
        if f.trampoline(slot).is_some() {
            line.push_str(&format!(
                "\ttramp: {}{}",
                ftrace::trampoline::TRAMPOLINE_PREFIX,
                func_name(s, slot)
            ));
        }
        if let Some(r) = f.redirect(slot) {
            line.push_str(&format!(" ->{}", func_name(s, r.target)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The /sys/kernel/tracing tree.
pub struct Tracefs;

impl Tree for Tracefs {
    /// `trace` shows the ring buffer, read from kernel memory (`print_trace_line` for each
    /// event); every other node is the state's.
    fn lookup(e: &mut impl Engine, rel: &str) -> Option<Node> {
        let node = e.with_state(|s| Self::node(s, rel))?;
        match node {
            Node::Attr { mode, .. } if rel.split('/').filter(|p| !p.is_empty()).eq(["trace"]) => {
                let (events, written) = ring::read(e).ok()?;
                e.with_state(|s| Node::attr(mode, trace(s, &events, written)))
            }
            node => Some(node),
        }
    }

    fn node(s: &KernelState, rel: &str) -> Option<Node> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let t: &Tracing = &s.tracing;
        match parts[..] {
            [] => Some(Node::Dir(FILES.map(String::from).into())),
            ["available_filter_functions"] => {
                let names: String = traceable_functions(s)
                    .into_iter()
                    .map(|(_, n)| n + "\n")
                    .collect();
                Node::attr(0o444, names)
            }
            ["available_tracers"] => Node::attr(0o444, "function nop\n"),
            ["current_tracer"] => Node::attr(
                0o644,
                if t.function_tracer {
                    "function\n"
                } else {
                    "nop\n"
                },
            ),
            ["enabled_functions"] => Node::attr(0o444, enabled_functions(s)),
            ["dyn_ftrace_total_info"] => Node::attr(0o444, crate::ftrace::code::total_info(s)),
            ["kprobe_events"] => Node::attr(
                0o644,
                t.kprobes
                    .iter()
                    .map(|k| k.definition() + "\n")
                    .collect::<String>(),
            ),
            ["set_ftrace_filter"] => {
                let text = if t.filter.is_empty() {
                    "#### all functions enabled ####\n".to_string()
                } else {
                    t.filter
                        .iter()
                        .map(|&slot| func_name(s, slot) + "\n")
                        .collect()
                };
                Node::attr(0o644, text)
            }
            // Its text is in kernel memory: `lookup` reads it.
            ["trace"] => Node::attr(0o644, String::new()),
            ["tracing_on"] => Node::attr(0o644, flag(t.tracing_on)),
            ["events"] => Some(Node::Dir(vec!["kprobes".into()])),
            ["events", "kprobes"] => Some(Node::Dir(
                t.kprobes.iter().map(|k| k.name.clone()).collect(),
            )),
            ["events", "kprobes", name] => t
                .kprobes
                .iter()
                .any(|k| k.name == name)
                .then(|| Node::Dir(vec!["enable".into()])),
            ["events", "kprobes", name, "enable"] => {
                let k = t.kprobes.iter().find(|k| k.name == name)?;
                Node::attr(0o644, flag(k.enabled))
            }
            _ => None,
        }
    }

    fn store(e: &mut impl Engine, rel: &str, data: &[u8], append: bool) -> SysResult<()> {
        let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        match parts[..] {
            ["current_tracer"] => {
                let function = match text.trim() {
                    "function" => true,
                    "nop" => false,
                    _ => return Err(Errno::EINVAL.into()),
                };
                ring::reset(e)?;
                let previous =
                    e.with_state(|s| std::mem::replace(&mut s.tracing.function_tracer, function));
                // A tracer that could not be set up is not the current one: the previous one
                // stays (its hooks put back as far as they can be), and the write fails.
                update_tracer(e).inspect_err(|_| {
                    e.with_state(|s| s.tracing.function_tracer = previous);
                    let _ = update_tracer(e);
                })
            }
            ["tracing_on"] => {
                let on = switch(data)?;
                Ok(ring::set_on(e, on)?)
            }
            ["trace"] => {
                if !append {
                    ring::reset(e)?;
                }
                Ok(())
            }
            ["set_ftrace_filter"] => set_filter(e, text, append),
            ["kprobe_events"] => kprobe_events(e, text, append),
            ["events", "kprobes", name, "enable"] => enable_kprobe(e, name, switch(data)?),
            _ => Err(Errno::EINVAL.into()),
        }
    }
}

fn set_filter(e: &mut impl Engine, text: &str, append: bool) -> SysResult<()> {
    e.with_state(|s| {
        let functions = traceable_functions(s);
        let mut filter = if append {
            s.tracing.filter.clone()
        } else {
            BTreeSet::new()
        };
        for word in text.split_whitespace() {
            let (remove, pattern) = match word.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, word),
            };
            let matched: Vec<Slot> = functions
                .iter()
                .filter(|(_, label)| glob(pattern, label.split(' ').next().unwrap_or(label)))
                .map(|&(slot, _)| slot)
                .collect();
            if matched.is_empty() && !remove {
                return Err(Errno::EINVAL);
            }
            for slot in matched {
                if remove {
                    filter.remove(&slot);
                } else {
                    filter.insert(slot);
                }
            }
        }
        s.tracing.filter = filter;
        Ok(())
    })?;
    update_tracer(e)
}

fn kprobe_events(e: &mut impl Engine, text: &str, append: bool) -> SysResult<()> {
    if !append {
        if e.with_state(|s| s.tracing.kprobes.iter().any(|k| k.enabled)) {
            return Err(Errno::EBUSY.into());
        }
        e.with_state(|s| s.tracing.remove_probes());
    }
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match super::kprobes::parse_line(line)? {
            Command::Remove(name) => e.with_state(|s| {
                let k = s
                    .tracing
                    .kprobes
                    .iter()
                    .position(|k| k.name == name)
                    .ok_or(Errno::ENOENT)?;
                if s.tracing.kprobes[k].enabled {
                    return Err(Errno::EBUSY);
                }
                s.tracing.remove_probe(k);
                Ok(())
            })?,
            Command::Add {
                ret,
                name,
                func,
                fetch,
            } => e.with_state(|s| {
                let (module, sym) = match func.split_once(':') {
                    Some((m, f)) => (Some(m), f),
                    None => (None, func.as_str()),
                };
                let found = s.kallsyms.lookup(module, sym, 0).map_err(|err| match err {
                    crate::kallsyms::KallsymsError::NotFound => Errno::ENOENT,
                    _ => Errno::EINVAL,
                })?;
                let slot = Slot::new(found.addr);
                if found.kind != crate::kallsyms::SymKind::Func || !s.ftrace.traceable(slot) {
                    return Err(Errno::EINVAL);
                }
                let name =
                    name.unwrap_or_else(|| format!("{}_{sym}_0", if ret { 'r' } else { 'p' }));
                if s.tracing.kprobes.iter().any(|k| k.name == name) {
                    return Err(Errno::EEXIST);
                }
                let id = s.tracing.new_probe_id();
                s.tracing.kprobes.push(Kprobe {
                    name,
                    func: sym.to_string(),
                    slot,
                    ret,
                    fetch,
                    enabled: false,
                    id,
                });
                Ok(())
            })?,
        }
    }
    Ok(())
}

fn enable_kprobe(e: &mut impl Engine, name: &str, on: bool) -> SysResult<()> {
    let (probe, checked) = e
        .with_state(|s| {
            let k = s.tracing.kprobes.iter().find(|k| k.name == name)?;
            let checked = s.ftrace.may_add_hook(k.slot, &k.hook());
            Some((k.clone(), checked))
        })
        .ok_or(Errno::ENOENT)?;
    let func = &probe.func;
    if on {
        match checked {
            Err(Refusal::Busy(Owner::Livepatch(patch))) => {
                sys::printk(
                    e,
                    &format!(
                        "\x013trace_kprobe: kretprobe '{name}' conflicts with livepatch '{patch}' on '{func}' (-16)"
                    ),
                )?;
                return Err(Errno::EBUSY.into());
            }
            Err(refusal) => return Err(refusal.errno().into()),
            Ok(()) => {}
        }
        let patch = e.with_state(|s| s.ftrace.redirect(probe.slot).map(|r| r.patch.clone()));
        if let Some(patch) = patch {
            sys::printk(
                e,
                &format!(
                    "\x014trace_kprobe: kprobe '{name}' on '{func}' will not be hit: livepatch '{patch}' redirects the function"
                ),
            )?;
        }
    }
    e.with_state(|s| {
        let hook = probe.hook();
        if on {
            s.ftrace.add_hook(probe.slot, hook)
        } else {
            s.ftrace.remove_hook(probe.slot, &hook);
            Ok(())
        }
        .map(|()| {
            if let Some(k) = s.tracing.kprobes.iter_mut().find(|k| k.name == name) {
                k.enabled = on;
            }
        })
    })
    .map_err(|refusal: Refusal| refusal.errno())?;
    ftrace::sync(e, [probe.slot])
}

/// /proc/sys/kernel/ftrace_enabled.
pub struct FtraceEnabled;

impl Tree for FtraceEnabled {
    const ATTR_SIZE: u32 = 0;

    fn node(s: &KernelState, rel: &str) -> Option<Node> {
        rel.is_empty().then(|| Node::Attr {
            mode: 0o644,
            value: Some(flag(s.ftrace.enabled())),
        })
    }

    /// Writing 0 stops every hook; ftrace refuses it with `EBUSY` while a live patch uses the
    /// hook, as livepatch's ftrace_ops are permanent.
    fn store(e: &mut impl Engine, _rel: &str, data: &[u8], _append: bool) -> SysResult<()> {
        let on = switch(data)?;
        e.with_state(|s| s.ftrace.set_enabled(on))?;
        ftrace::sync_all(e)
    }
}
