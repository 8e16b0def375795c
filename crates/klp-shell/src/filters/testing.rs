//! Helpers the filters' unit tests share: running a filter on given input and files.

use super::{ReadFile, Streams, grep};

/// A filter's signature.
type Filter = fn(&[&str], &mut Streams<'_>, &mut ReadFile<'_>) -> i32;

/// Runs `filter` with `stdin` and the named text `files`; returns status, output and errors.
pub(super) fn run(
    filter: Filter,
    args: &[&str],
    stdin: Option<&str>,
    files: &[(&str, &str)],
) -> (i32, String, String) {
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|&(name, text)| (name, text.as_bytes()))
        .collect();
    run_bytes(filter, args, stdin, &files)
}

/// Runs `filter` as [`run`] does, with files of any bytes.
pub(super) fn run_bytes(
    filter: Filter,
    args: &[&str],
    stdin: Option<&str>,
    files: &[(&str, &[u8])],
) -> (i32, String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    let mut io = Streams {
        stdin,
        out: &mut out,
        err: &mut err,
    };
    let mut read = |name: &str| {
        files
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, data)| data.to_vec())
            .ok_or_else(|| "No such file or directory".to_string())
    };
    let status = filter(args, &mut io, &mut read);
    (status, out, err)
}

/// Runs `filter` on piped `stdin` and returns its output, asserting it succeeded quietly.
pub(super) fn output(filter: Filter, args: &[&str], stdin: &str) -> String {
    let (status, out, err) = run(filter, args, Some(stdin), &[]);
    assert_eq!((status, err.as_str()), (0, ""), "{args:?}");
    out
}

/// The lines of `stdin` that `grep PATTERN` (with `options` first) selects, joined by `|`.
pub(super) fn grep_lines(options: &[&str], pattern: &str, stdin: &str) -> String {
    let args: Vec<&str> = options.iter().copied().chain(["--", pattern]).collect();
    let (status, out, err) = run(grep, &args, Some(stdin), &[]);
    assert_eq!(err, "", "{args:?}");
    assert_eq!(status, if out.is_empty() { 1 } else { 0 }, "{args:?}");
    out.lines().collect::<Vec<_>>().join("|")
}

/// The message grep gives for a pattern it refuses (status 2).
pub(super) fn grep_error(options: &[&str], pattern: &str) -> String {
    let args: Vec<&str> = options.iter().copied().chain(["--", pattern]).collect();
    let (status, out, err) = run(grep, &args, Some("a\n"), &[]);
    assert_eq!((status, out.as_str()), (2, ""), "{pattern}");
    err
}
