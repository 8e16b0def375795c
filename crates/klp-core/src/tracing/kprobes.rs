//! kprobe_events: `p:NAME FUNC [args]` and `r:NAME FUNC [$retval]` at function entry.

use crate::errno::Errno;
use crate::ftrace::{Hook, Slot};

/// What an argument fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// `$arg1` or `$arg2` (the first two `i32` parameters).
    Arg(u8),
    /// `$retval`, for return probes.
    Retval,
}

/// One kprobe or kretprobe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kprobe {
    /// Event name (in the `kprobes` group).
    pub name: String,
    /// The probed function.
    pub func: String,
    /// Its slot.
    pub slot: Slot,
    /// A return probe (kretprobe).
    pub ret: bool,
    /// The fetched arguments, with their names.
    pub fetch: Vec<(String, Fetch)>,
    /// `events/kprobes/NAME/enable`.
    pub enabled: bool,
    /// The id its events carry in the ring buffer.
    pub id: u32,
}

impl Kprobe {
    /// The hook it registers with ftrace while enabled.
    pub fn hook(&self) -> Hook {
        if self.ret {
            Hook::Kretprobe(self.name.clone())
        } else {
            Hook::Kprobe(self.name.clone())
        }
    }

    /// The line kprobe_events shows for it.
    pub fn definition(&self) -> String {
        let mut line = format!(
            "{}:kprobes/{} {}",
            if self.ret { 'r' } else { 'p' },
            self.name,
            self.func
        );
        for (name, fetch) in &self.fetch {
            let arg = match fetch {
                Fetch::Arg(n) => format!("$arg{n}"),
                Fetch::Retval => "$retval".to_string(),
            };
            line.push_str(&format!(" {name}={arg}"));
        }
        line
    }

    /// ` name=0x..` for each fetched argument.
    pub fn format_args(&self, args: [i32; 2], retval: i32) -> String {
        self.fetch
            .iter()
            .map(|(name, fetch)| {
                let value = match fetch {
                    Fetch::Arg(n) => args[usize::from(*n) - 1],
                    Fetch::Retval => retval,
                };
                format!(" {name}={:#x}", value as u32)
            })
            .collect()
    }
}

/// A parsed line of kprobe_events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Define a probe: return probe, optional name, function, fetch arguments.
    Add {
        /// `r` rather than `p`.
        ret: bool,
        /// The event name, if given.
        name: Option<String>,
        /// The function to probe.
        func: String,
        /// Fetch arguments.
        fetch: Vec<(String, Fetch)>,
    },
    /// `-:NAME`: remove a probe.
    Remove(String),
}

/// Splits `[GRP/]NAME`; only the `kprobes` group exists.
fn event_name(spec: &str) -> Result<String, Errno> {
    let name = match spec.split_once('/') {
        Some(("kprobes", name)) => name,
        Some(_) => return Err(Errno::EINVAL),
        None => spec,
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(name.to_string())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Parses one line of kprobe_events.
///
/// # Errors
/// `EINVAL` for anything the kernel's parser would refuse here.
pub fn parse_line(line: &str) -> Result<Command, Errno> {
    let mut words = line.split_whitespace();
    let head = words.next().ok_or(Errno::EINVAL)?;
    let (kind, name) = match head.split_once(':') {
        Some((kind, spec)) => (kind, Some(event_name(spec)?)),
        None => (head, None),
    };
    if kind == "-" {
        let name = name.ok_or(Errno::EINVAL)?;
        return if words.next().is_none() {
            Ok(Command::Remove(name))
        } else {
            Err(Errno::EINVAL)
        };
    }
    let ret = match kind {
        "p" => false,
        "r" => true,
        _ => return Err(Errno::EINVAL),
    };
    let func = words.next().ok_or(Errno::EINVAL)?.to_string();
    let mut fetch = Vec::new();
    for (i, word) in words.enumerate() {
        let (label, arg) = match word.split_once('=') {
            Some((label, arg)) => (event_name(label)?, arg),
            None => (format!("arg{}", i + 1), word),
        };
        let what = match arg {
            "$arg1" => Fetch::Arg(1),
            "$arg2" => Fetch::Arg(2),
            "$retval" if ret => Fetch::Retval,
            _ => return Err(Errno::EINVAL),
        };
        fetch.push((label, what));
    }
    Ok(Command::Add {
        ret,
        name,
        func,
        fetch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_parse_like_kprobetrace() {
        assert_eq!(
            parse_line("p:myprobe cmdline_proc_show $arg1 m=$arg2"),
            Ok(Command::Add {
                ret: false,
                name: Some("myprobe".into()),
                func: "cmdline_proc_show".into(),
                fetch: vec![("arg1".into(), Fetch::Arg(1)), ("m".into(), Fetch::Arg(2))],
            })
        );
        assert_eq!(
            parse_line("r:kprobes/ret sys_read ret=$retval"),
            Ok(Command::Add {
                ret: true,
                name: Some("ret".into()),
                func: "sys_read".into(),
                fetch: vec![("ret".into(), Fetch::Retval)]
            })
        );
        assert_eq!(
            parse_line("-:myprobe"),
            Ok(Command::Remove("myprobe".into()))
        );
    }

    #[test]
    fn bad_probe_lines_are_invalid() {
        for line in [
            "x:a f",
            "p:a",
            "p:a f $retval",
            "p:a f $arg9",
            "p:other/a f",
            "p:1a f",
            "-:",
            "-:a extra",
        ] {
            assert_eq!(parse_line(line), Err(Errno::EINVAL), "{line}");
        }
    }

    #[test]
    fn definitions_and_arguments_print_like_linux() {
        let k = Kprobe {
            name: "myprobe".into(),
            func: "cmdline_proc_show".into(),
            slot: Slot::new(3),
            ret: false,
            fetch: vec![("arg1".into(), Fetch::Arg(1))],
            enabled: true,
            id: 1,
        };
        assert_eq!(
            k.definition(),
            "p:kprobes/myprobe cmdline_proc_show arg1=$arg1"
        );
        assert_eq!(k.format_args([-1, 0], 0), " arg1=0xffffffff");
    }
}
