//! Running a transcript (`tests/transcripts/**/*.sh`, compared with the `.out` beside it): the
//! script's commands run one line at a time on a freshly booted kernel, each echoed as
//! `# line`, `[exit N]` after one that fails, timestamps masked.

use crate::common::Recorder;
use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs::hostdir::StdDir;
use klp_core::ftrace::code::Mode;
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options};
use std::path::Path;

/// How to run a script.
pub struct Run<'a> {
    /// Boot the kernel instrumented (with the ftrace hook).
    pub hook: bool,
    /// Move the kernel to a fresh store before each line.
    pub moving: bool,
    /// Dynamic ftrace, or every call through its slot.
    pub mode: Mode,
    /// A host directory mounted as `klp run --modules` mounts it (read-only at
    /// `/lib/modules/<release>/extra`, where `insmod NAME` looks first).
    pub modules: Option<&'a Path>,
}

/// Runs the script at `path` and returns its transcript.
pub fn run(path: &Path, how: &Run<'_>) -> String {
    let script = std::fs::read_to_string(path).unwrap();
    let options = Options {
        ftrace: how.mode,
        ..Options::default()
    };
    let mut engine = rt::boot(artifacts::KERNEL, cmdline(&script), how.hook, options).unwrap();
    if let Some(dir) = how.modules {
        let dir = StdDir::open(dir).unwrap();
        let source = dir.root().display().to_string();
        let extra = klp_core::fs::modules_dir(&mut engine) + "/extra";
        klp_core::fs::mount_host(&mut engine, Box::new(dir), &source, &extra, true).unwrap();
    }
    let mut host = Recorder::default();
    let mut shell = shell::Shell::new(shell::Options::default());
    for line in commands(&script) {
        host.text.push_str(&echo(line));
        // A kernel moves whenever no task holds frames (kernel threads sleeping in their
        // functions hold some: then it cannot, by design, and stays).
        if how.moving && !engine.with_state(|s| s.tasks.holding_frames()) {
            engine.move_now().expect("the kernel moves");
        }
        let status = shell.run(&mut engine, &mut host, line);
        host.text.push_str(&exit(status));
    }
    mask_timestamps(&host.text)
}

/// The kernel command line a script asks for (`#! cmdline: ...`), else the default one.
fn cmdline(script: &str) -> &str {
    script
        .lines()
        .find_map(|l| l.strip_prefix("#! cmdline: "))
        .unwrap_or("console=hvc0 root=/dev/ram0 rw")
}

/// The command lines of a script: every line but blank ones and `#` comments.
fn commands(script: &str) -> impl Iterator<Item = &str> {
    script.lines().filter(|line| {
        let trimmed = line.trim();
        !trimmed.is_empty() && !trimmed.starts_with('#')
    })
}

/// A command line as the transcript shows it before its output.
fn echo(line: &str) -> String {
    format!("# {line}\n")
}

/// What the transcript shows after a command's output: `[exit N]` if it failed.
fn exit(status: i32) -> String {
    if status == 0 {
        String::new()
    } else {
        format!("[exit {status}]\n")
    }
}

/// Replaces `[    1.234567]` log timestamps by `[    T]` and `  1.234567:` trace timestamps by
/// `  T:`.
pub fn mask_timestamps(text: &str) -> String {
    mask_trace_stamps(&mask_log_stamps(text))
}

/// Replaces `<digits>.<6 digits>:` by `T:`.
fn mask_trace_stamps(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let masked = line.find(": ").and_then(|colon| {
            let start = line[..colon].rfind(' ')? + 1;
            let (secs, micros) = line[start..colon].split_once('.')?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (digits(secs) && micros.len() == 6 && digits(micros) && line.contains("] ....."))
                .then(|| format!("{}T{}", &line[..start], &line[colon..]))
        });
        out.push_str(masked.as_deref().unwrap_or(line));
    }
    out
}

/// Replaces `[    1.234567]` timestamps by `[    T]`.
fn mask_log_stamps(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find(']');
        let is_stamp = close.is_some_and(|c| {
            let inner = after[..c].trim_start();
            let (secs, micros) = inner.split_once('.').unwrap_or(("", ""));
            !secs.is_empty()
                && micros.len() == 6
                && (secs.bytes().chain(micros.bytes())).all(|b| b.is_ascii_digit())
        });
        match (is_stamp, close) {
            (true, Some(c)) => {
                out.push_str("[    T]");
                rest = &after[c + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
