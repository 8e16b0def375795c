//! Runs the syntax tree: and-or lists, pipelines (each command's output is the next one's
//! input), redirections through the kernel's namespace, and `$?`.

use super::commands;
use super::lexer::RedirectKind;
use super::parser::{AndOr, Command, Connector};
use super::{Host, INTERRUPTED};
use klp_core::engine::Engine;
use klp_core::fs::{self, WriteError};
use klp_core::kernel::{TaskError, run_task};
use klp_core::sys::SysError;

/// Collects standard output for a pipe or a redirection; errors still reach the terminal.
pub(super) struct Capture<'a> {
    pub(super) inner: &'a mut dyn Host,
    pub(super) text: String,
}

impl Host for Capture<'_> {
    fn out(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn err(&mut self, text: &str) {
        self.inner.err(text);
    }
    fn sleep(&mut self, seconds: f64) {
        self.inner.sleep(seconds);
    }
}

/// Runs an and-or list, updating `status` (`$?`) after each pipeline. Returns whether the list
/// failed in the way `sh -e` stops for: its last pipeline ran and failed.
pub(super) fn and_or(
    e: &mut impl Engine,
    host: &mut dyn Host,
    list: &AndOr,
    status: &mut i32,
) -> bool {
    *status = pipeline(e, host, &list.first, *status);
    let mut last_ran = list.rest.is_empty();
    for (i, (connector, next)) in list.rest.iter().enumerate() {
        let run = match connector {
            Connector::And => *status == 0,
            Connector::Or => *status != 0,
        };
        last_ran = run && i + 1 == list.rest.len();
        if run {
            *status = pipeline(e, host, next, *status);
        }
    }
    *status != 0 && last_ran
}

/// Runs the commands of a pipeline one after the other, each reading what the one before wrote;
/// the status is the last command's.
fn pipeline(e: &mut impl Engine, host: &mut dyn Host, commands: &[Command], last: i32) -> i32 {
    let mut input: Option<String> = None;
    let mut status = 0;
    for (i, command) in commands.iter().enumerate() {
        let piped = i + 1 < commands.len();
        let (s, output) = simple(e, host, command, input.take(), piped, last);
        status = s;
        input = output;
    }
    status
}

/// Runs one command. Its output goes to the terminal, or is returned when `piped`; a `>`
/// redirection writes it to a file instead (the next command then reads nothing).
fn simple(
    e: &mut impl Engine,
    host: &mut dyn Host,
    command: &Command,
    mut stdin: Option<String>,
    piped: bool,
    last: i32,
) -> (i32, Option<String>) {
    let words: Vec<String> = command.words.iter().map(|w| w.expand(last)).collect();
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let name = words[0].as_str();
    let mut out_file = None;
    for redirect in &command.redirects {
        let path = redirect.path.expand(last);
        match redirect.kind {
            RedirectKind::In => match run_task(e, "sh", |e| fs::read_file(e, &path)) {
                Ok(data) => stdin = Some(String::from_utf8_lossy(&data).into_owned()),
                Err(err) => {
                    let reason = match err {
                        TaskError::Sys(SysError::Errno(errno)) => errno.strerror(),
                        TaskError::Sys(SysError::Engine(err)) => err.to_string(),
                        TaskError::Oops(oops) => format!("{}\nSegmentation fault", oops.report),
                        TaskError::Interrupted => return (INTERRUPTED, piped.then(String::new)),
                    };
                    host.err(&format!(
                        "sh: {}: cannot open {path}: {reason}\n",
                        command.line
                    ));
                    return (2, piped.then(String::new));
                }
            },
            RedirectKind::Out | RedirectKind::Append => {
                out_file = Some((path, redirect.kind == RedirectKind::Append));
            }
        }
    }
    let stdin = stdin.as_deref();
    if out_file.is_none() && !piped {
        return (
            commands::run(e, host, name, &args, stdin, command.line),
            None,
        );
    }
    let mut capture = Capture {
        inner: host,
        text: String::new(),
    };
    let status = commands::run(e, &mut capture, name, &args, stdin, command.line);
    let text = capture.text;
    let Some((path, append)) = out_file else {
        return (status, Some(text));
    };
    let status = match write(e, name, &path, text.as_bytes(), append) {
        Ok(()) => status,
        Err(message) => {
            host.err(&message);
            if message.ends_with("Segmentation fault\n") {
                139
            } else {
                1
            }
        }
    };
    (status, piped.then(String::new))
}

/// Writes a redirection's file; the error is the message sh prints.
fn write(
    e: &mut impl Engine,
    name: &str,
    path: &str,
    data: &[u8],
    append: bool,
) -> Result<(), String> {
    let written = run_task(e, name, |e| match fs::write_file(e, path, data, append) {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::Open(SysError::Errno(errno))) => Ok(Err(format!("sh: {path}: {errno}\n"))),
        Err(WriteError::Write(SysError::Errno(errno))) => {
            Ok(Err(format!("sh: {name}: write error: {errno}\n")))
        }
        Err(WriteError::Open(err) | WriteError::Write(err)) => Err(err),
    });
    match written {
        Ok(result) => result,
        Err(TaskError::Oops(oops)) => Err(format!("{}\nSegmentation fault\n", oops.report)),
        Err(TaskError::Interrupted) => Err(String::new()),
        Err(TaskError::Sys(err)) => Err(format!("sh: {path}: {err}\n")),
    }
}
