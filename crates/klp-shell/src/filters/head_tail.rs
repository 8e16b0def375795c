//! head and tail: print the first or last lines of files.

use super::options::{OptionError, OptionSpec, parse_options};
use super::quote::quote;
use super::{ReadFile, Streams, input, lines, push_lossy};

/// Why a count was refused.
enum CountError {
    /// Not a number.
    Invalid,
    /// Beyond `u64`.
    Overflow,
}

/// Parses a line count as GNU's `xstrtoumax` with the suffixes `bkKmMGTPEZYRQ` (each optionally
/// followed by `B` for powers of 1000 or `iB` for powers of 1024).
fn parse_count(text: &str) -> Result<u64, CountError> {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    let (number, suffix) = unsigned.split_at(digits);
    let mut value = Some(1u64);
    if !number.is_empty() {
        value = number.bytes().try_fold(0u64, |value, d| {
            value.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
    } else if suffix.is_empty() {
        return Err(CountError::Invalid);
    }
    if let Some(unit) = suffix.chars().next() {
        let base: u64 = match &suffix[1..] {
            "" | "iB" => 1024,
            "B" | "D" => 1000,
            _ => return Err(CountError::Invalid),
        };
        let (base, power) = match unit {
            'b' => (512, 1),
            'k' | 'K' => (base, 1),
            'm' | 'M' => (base, 2),
            'G' => (base, 3),
            'T' => (base, 4),
            'P' => (base, 5),
            'E' => (base, 6),
            'Z' => (base, 7),
            'Y' => (base, 8),
            'R' => (base, 9),
            'Q' => (base, 10),
            _ => return Err(CountError::Invalid),
        };
        value = value.and_then(|value| value.checked_mul(base.checked_pow(power)?));
    }
    value.ok_or(CountError::Overflow)
}

/// Parses the argument of head's or tail's `-n`, or reports it as GNU does and returns `None`.
fn line_count(tool: &str, text: &str, err: &mut String) -> Option<usize> {
    match parse_count(text) {
        Ok(count) => Some(usize::try_from(count).unwrap_or(usize::MAX)),
        Err(error) => {
            let reason = match error {
                CountError::Invalid => "",
                CountError::Overflow => ": Value too large for defined data type",
            };
            err.push_str(&format!(
                "{tool}: invalid number of lines: '{text}'{reason}\n"
            ));
            None
        }
    }
}

/// The byte length of the first `count` lines of `text` (the last line may lack its newline).
fn lines_len(text: &[u8], count: usize) -> usize {
    text.split_inclusive(|&b| b == b'\n')
        .take(count)
        .map(<[u8]>::len)
        .sum()
}

/// Runs head or tail over its files: `select` picks the part of each to print.
fn head_or_tail(
    tool: &str,
    files: &[&str],
    io: &mut Streams<'_>,
    read: &mut ReadFile<'_>,
    select: impl Fn(&[u8]) -> &[u8],
) -> i32 {
    let files = if files.is_empty() { &["-"][..] } else { files };
    let mut status = 0;
    let mut first = true;
    for &file in files {
        match input(file, &mut io.stdin, read) {
            Ok(text) => {
                if files.len() > 1 {
                    let name = if file == "-" { "standard input" } else { file };
                    let separator = if first { "" } else { "\n" };
                    io.out.push_str(&format!("{separator}==> {name} <==\n"));
                    first = false;
                }
                push_lossy(io.out, select(&text));
            }
            Err(error) => {
                let name = quote(file, true);
                io.err.push_str(&format!(
                    "{tool}: cannot open {name} for reading: {error}\n"
                ));
                status = 1;
            }
        }
    }
    status
}

/// The options head accepts.
const HEAD_OPTIONS: OptionSpec = OptionSpec {
    short: "n:",
    long: &[("lines", 'n')],
};

/// `head [-n [-]N] [-N] [FILE...]`: prints the first 10 (or N) lines of each file, or all but
/// the last N with `-n -N`.
pub fn head(args: &[&str], io: &mut Streams<'_>, read: &mut ReadFile<'_>) -> i32 {
    const TRY: &str = "Try 'head --help' for more information.\n";
    let (mut count, mut all_but) = (10, false);
    let mut args = args;
    // The obsolete `head -N`, first only.
    if let Some((first, rest)) = args.split_first()
        && let Some(number) = first
            .strip_prefix('-')
            .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
    {
        let digits = number.bytes().take_while(u8::is_ascii_digit).count();
        if let Some(c) = number[digits..].chars().next() {
            io.err
                .push_str(&format!("head: invalid trailing option -- {c}\n{TRY}"));
            return 1;
        }
        let Some(n) = line_count("head", number, io.err) else {
            return 1;
        };
        count = n;
        args = rest;
    }
    let line = match parse_options(&HEAD_OPTIONS, args) {
        Ok(line) => line,
        Err(OptionError::Invalid(c)) if c.is_ascii_digit() => {
            io.err
                .push_str(&format!("head: invalid trailing option -- {c}\n{TRY}"));
            return 1;
        }
        Err(error) => {
            io.err
                .push_str(&format!("head: {}\n{TRY}", error.message()));
            return 1;
        }
    };
    for &(_, argument) in &line.options {
        all_but = argument.starts_with('-');
        let Some(n) = line_count(
            "head",
            argument.strip_prefix('-').unwrap_or(argument),
            io.err,
        ) else {
            return 1;
        };
        count = n;
    }
    head_or_tail("head", &line.operands, io, read, |text| {
        let keep = if all_but {
            lines(text).count().saturating_sub(count)
        } else {
            count
        };
        &text[..lines_len(text, keep)]
    })
}

/// The options tail accepts.
const TAIL_OPTIONS: OptionSpec = OptionSpec {
    short: "n:",
    long: &[("lines", 'n')],
};

/// `tail [-n [+]N] [-N] [FILE...]`: prints the last 10 (or N) lines of each file, or all from
/// line N on with `+N`.
pub fn tail(args: &[&str], io: &mut Streams<'_>, read: &mut ReadFile<'_>) -> i32 {
    let (mut count, mut from_start) = (10, false);
    let mut args = args;
    // The obsolete `tail -N` or `tail +N`, only followed by at most one file.
    let obsolete = match args {
        [_] => true,
        [_, file] => !(file.starts_with('-') && file.len() > 1),
        _ => false,
    };
    if obsolete
        && let Some((first, rest)) = args.split_first()
        && let Some(number) = first.strip_prefix(['-', '+'])
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        let Ok(n) = parse_count(number) else {
            let reason = "Numerical result out of range";
            io.err
                .push_str(&format!("tail: invalid number: '{first}': {reason}\n"));
            return 1;
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        (count, from_start) = (n, first.starts_with('+'));
        args = rest;
    }
    let line = match parse_options(&TAIL_OPTIONS, args) {
        Ok(line) => line,
        Err(OptionError::Invalid(c)) if c.is_ascii_digit() => {
            io.err
                .push_str(&format!("tail: option used in invalid context -- {c}\n"));
            return 1;
        }
        Err(error) => {
            let message = error.message();
            io.err.push_str(&format!(
                "tail: {message}\nTry 'tail --help' for more information.\n"
            ));
            return 1;
        }
    };
    for &(_, argument) in &line.options {
        from_start = argument.starts_with('+');
        let Some(n) = line_count(
            "tail",
            argument.strip_prefix('-').unwrap_or(argument),
            io.err,
        ) else {
            return 1;
        };
        count = n;
    }
    head_or_tail("tail", &line.operands, io, read, |text| {
        let skip = if from_start {
            count.saturating_sub(1)
        } else {
            lines(text).count().saturating_sub(count)
        };
        &text[lines_len(text, skip)..]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{output, run};

    #[test]
    fn head_prints_the_first_lines() {
        let text: String = (1..=12).map(|n| format!("{n}\n")).collect();
        assert_eq!(output(head, &[], &text), "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
        for args in [
            &["-n", "3"][..],
            &["-n3"],
            &["-3"],
            &["--lines=3"],
            &["--lines", "3"],
            &["-n", "+3"],
        ] {
            assert_eq!(output(head, args, &text), "1\n2\n3\n", "{args:?}");
        }
        assert_eq!(output(head, &["-n", "0"], &text), "");
        assert_eq!(output(head, &["-n1", "-n2"], &text), "1\n2\n");
        assert_eq!(output(head, &["-2", "-n1"], &text), "1\n");
        assert_eq!(output(head, &["-n", " 2"], &text), "1\n2\n");
        assert_eq!(output(head, &["-n", "1k"], &text), text);
    }

    #[test]
    fn head_with_a_negative_count_prints_all_but_the_last_lines() {
        assert_eq!(output(head, &["-n", "-2"], "1\n2\n3\n4\n"), "1\n2\n");
        assert_eq!(output(head, &["-n", "-2"], "1\n2\n3\n4"), "1\n2\n");
        assert_eq!(output(head, &["-n", "-9"], "1\n2\n"), "");
    }

    #[test]
    fn head_and_tail_keep_a_missing_final_newline() {
        assert_eq!(output(head, &[], "a\nb"), "a\nb");
        assert_eq!(output(tail, &["-n", "1"], "a\nb"), "b");
        assert_eq!(output(tail, &["-n", "1"], "\n\n"), "\n");
        assert_eq!(output(head, &[], ""), "");
        assert_eq!(run(head, &[], None, &[]), (0, "".into(), "".into()));
    }

    #[test]
    fn head_and_tail_print_a_header_per_file_when_several() {
        let files = [("n", "1\n2\n3"), ("f", "a\n")];
        let expected = "==> n <==\n1\n\n==> standard input <==\nx\n\n==> f <==\na\n";
        assert_eq!(
            run(head, &["-n1", "n", "-", "f"], Some("x\ny\n"), &files),
            (0, expected.into(), "".into())
        );
        // The separator is one newline, even after a file without a final one.
        let expected = "==> n <==\n3\n==> f <==\na\n";
        assert_eq!(
            run(tail, &["-n1", "n", "f"], None, &files),
            (0, expected.into(), "".into())
        );
        // An unreadable file gets no header; the first header gets no separator.
        let missing = "head: cannot open 'nofile' for reading: No such file or directory\n";
        let expected = "==> f <==\na\n";
        assert_eq!(
            run(head, &["nofile", "f"], None, &files),
            (1, expected.into(), missing.into())
        );
    }

    #[test]
    fn head_and_tail_report_unreadable_files_in_quotes() {
        let message = |tool: &str, name: &str| {
            format!("{tool}: cannot open {name} for reading: No such file or directory\n")
        };
        assert_eq!(
            run(head, &["nofile"], None, &[]),
            (1, "".into(), message("head", "'nofile'"))
        );
        assert_eq!(
            run(tail, &["a b"], None, &[]),
            (1, "".into(), message("tail", "'a b'"))
        );
        assert_eq!(
            run(tail, &["it's"], None, &[]),
            (1, "".into(), message("tail", "\"it's\""))
        );
    }

    #[test]
    fn head_refuses_bad_counts_and_options() {
        const TRY: &str = "Try 'head --help' for more information.\n";
        let error = |args: &[&str]| run(head, args, Some("a\n"), &[]);
        let invalid = |count: &str| format!("head: invalid number of lines: '{count}'\n");
        assert_eq!(error(&["-n", "x"]), (1, "".into(), invalid("x")));
        assert_eq!(error(&["-n", ""]), (1, "".into(), invalid("")));
        assert_eq!(error(&["-n", "2x"]), (1, "".into(), invalid("2x")));
        assert_eq!(error(&["-n", "1g"]), (1, "".into(), invalid("1g")));
        assert_eq!(error(&["-n", "-x"]), (1, "".into(), invalid("x")));
        let huge = "99999999999999999999999";
        let overflow = format!(
            "head: invalid number of lines: '{huge}': Value too large for defined data type\n"
        );
        assert_eq!(error(&["-n", huge]), (1, "".into(), overflow));
        let invalid = format!("head: invalid option -- 'x'\n{TRY}");
        assert_eq!(error(&["-x"]), (1, "".into(), invalid));
        let missing = format!("head: option requires an argument -- 'n'\n{TRY}");
        assert_eq!(error(&["-n"]), (1, "".into(), missing));
        let trailing = format!("head: invalid trailing option -- n\n{TRY}");
        assert_eq!(error(&["-3n"]), (1, "".into(), trailing));
        let trailing = format!("head: invalid trailing option -- 2\n{TRY}");
        assert_eq!(error(&["f", "-2"]), (1, "".into(), trailing));
    }

    #[test]
    fn parse_count_takes_gnu_suffixes() {
        let count = |text: &str| parse_count(text).ok();
        assert_eq!(count("12"), Some(12));
        assert_eq!(count("+12"), Some(12));
        assert_eq!(count(" 12"), Some(12));
        assert_eq!(count("3b"), Some(1536));
        assert_eq!(count("1k"), Some(1024));
        assert_eq!(count("1K"), Some(1024));
        assert_eq!(count("1kB"), Some(1000));
        assert_eq!(count("1KiB"), Some(1024));
        assert_eq!(count("2M"), Some(2 << 20));
        assert_eq!(count("1G"), Some(1 << 30));
        assert_eq!(count("k"), Some(1024));
        assert_eq!(count("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "x", "-1", "1g", "1kb", "1 ", "+"] {
            assert!(
                matches!(parse_count(bad), Err(CountError::Invalid)),
                "{bad}"
            );
        }
        for big in ["18446744073709551616", "1Z", "1Q"] {
            assert!(
                matches!(parse_count(big), Err(CountError::Overflow)),
                "{big}"
            );
        }
    }

    #[test]
    fn tail_prints_the_last_lines_or_from_a_line_on() {
        let text: String = (1..=12).map(|n| format!("{n}\n")).collect();
        assert_eq!(
            output(tail, &[], &text),
            "3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"
        );
        for args in [
            &["-n", "2"][..],
            &["-n2"],
            &["-2"],
            &["-n", "-2"],
            &["--lines=2"],
        ] {
            assert_eq!(output(tail, args, &text), "11\n12\n", "{args:?}");
        }
        assert_eq!(output(tail, &["-n", "+11"], &text), "11\n12\n");
        assert_eq!(output(tail, &["+11"], &text), "11\n12\n");
        assert_eq!(output(tail, &["-n", "+0"], "a\nb\n"), "a\nb\n");
        assert_eq!(output(tail, &["-n", "+1"], "a\nb\n"), "a\nb\n");
        assert_eq!(output(tail, &["-n", "0"], "a\nb\n"), "");
        assert_eq!(output(tail, &["-n", "+5"], "a\nb\n"), "");
    }

    #[test]
    fn tail_takes_the_obsolete_count_only_before_at_most_one_file() {
        let files = [("f", "1\n2\n3\n"), ("g", "x\n")];
        assert_eq!(
            run(tail, &["-1", "f"], None, &files),
            (0, "3\n".into(), "".into())
        );
        assert_eq!(
            run(tail, &["+2", "f"], None, &files),
            (0, "2\n3\n".into(), "".into())
        );
        assert_eq!(
            run(tail, &["-1", "-"], Some("a\nb\n"), &files),
            (0, "b\n".into(), "".into())
        );
        let context = "tail: option used in invalid context -- 1\n";
        assert_eq!(
            run(tail, &["-1", "f", "g"], None, &files),
            (1, "".into(), context.into())
        );
        assert_eq!(
            run(tail, &["-1", "-n2", "f"], None, &files),
            (1, "".into(), context.into())
        );
        // With two files, `+2` is a file name.
        let missing = "tail: cannot open '+2' for reading: No such file or directory\n";
        let expected = "==> f <==\n1\n2\n3\n\n==> g <==\nx\n";
        assert_eq!(
            run(tail, &["+2", "f", "g"], None, &files),
            (1, expected.into(), missing.into())
        );
    }

    #[test]
    fn tail_refuses_bad_counts_and_options() {
        let error = |args: &[&str]| run(tail, args, Some("a\n"), &[]);
        let invalid = |count: &str| format!("tail: invalid number of lines: '{count}'\n");
        assert_eq!(error(&["-n", "x"]), (1, "".into(), invalid("x")));
        assert_eq!(error(&["-n", "+"]), (1, "".into(), invalid("+")));
        assert_eq!(error(&["-n", "-"]), (1, "".into(), invalid("")));
        let help = "Try 'tail --help' for more information.\n";
        assert_eq!(
            error(&["-x"]),
            (1, "".into(), format!("tail: invalid option -- 'x'\n{help}"))
        );
        let huge = "-99999999999999999999999";
        let range = format!("tail: invalid number: '{huge}': Numerical result out of range\n");
        assert_eq!(error(&[huge]), (1, "".into(), range));
    }
}
