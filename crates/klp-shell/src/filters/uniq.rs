//! uniq: prints each run of equal adjacent lines once.

use super::options::{OptionSpec, parse_options};
use super::quote::quote;
use super::{ReadFile, Streams, input, lines, push_lossy};

/// The options uniq accepts.
const UNIQ_OPTIONS: OptionSpec = OptionSpec {
    short: "cdu",
    long: &[("count", 'c'), ("repeated", 'd'), ("unique", 'u')],
};

/// `uniq [-cdu] [INPUT [-]]`: prints each run of equal adjacent lines once.
///
/// An OUTPUT operand other than `-` (standard output) is refused: filters write no files.
pub fn uniq(args: &[&str], io: &mut Streams<'_>, read: &mut ReadFile<'_>) -> i32 {
    const TRY: &str = "Try 'uniq --help' for more information.\n";
    let line = match parse_options(&UNIQ_OPTIONS, args) {
        Ok(line) => line,
        Err(error) => {
            io.err
                .push_str(&format!("uniq: {}\n{TRY}", error.message()));
            return 1;
        }
    };
    let has = |c: char| line.options.iter().any(|&(o, _)| o == c);
    let (count, repeated, unrepeated) = (has('c'), has('d'), has('u'));
    let file = match line.operands.as_slice() {
        [] => "-",
        [file] | [file, "-"] => *file,
        [_, extra] | [_, _, extra, ..] => {
            io.err
                .push_str(&format!("uniq: extra operand '{extra}'\n{TRY}"));
            return 1;
        }
    };
    let text = match input(file, &mut io.stdin, read) {
        Ok(text) => text,
        Err(error) => {
            io.err
                .push_str(&format!("uniq: {}: {error}\n", quote(file, false)));
            return 1;
        }
    };
    let mut lines = lines(&text).peekable();
    while let Some(text_line) = lines.next() {
        let mut n = 1;
        while lines.next_if_eq(&text_line).is_some() {
            n += 1;
        }
        if (repeated && n == 1) || (unrepeated && n > 1) {
            continue;
        }
        if count {
            io.out.push_str(&format!("{n:7} "));
        }
        push_lossy(io.out, text_line);
        io.out.push('\n');
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{output, run};

    #[test]
    fn uniq_collapses_adjacent_equal_lines() {
        let text = "a\na\nb\nc\nc\nc\na\n\n\nd";
        assert_eq!(output(uniq, &[], text), "a\nb\nc\na\n\nd\n");
        let counted = "      2 a\n      1 b\n      3 c\n      1 a\n      2 \n      1 d\n";
        assert_eq!(output(uniq, &["-c"], text), counted);
        assert_eq!(output(uniq, &["-d"], text), "a\nc\n\n");
        assert_eq!(output(uniq, &["-u"], text), "b\na\nd\n");
        assert_eq!(
            output(uniq, &["-cd"], text),
            "      2 a\n      3 c\n      2 \n"
        );
        assert_eq!(output(uniq, &["-du"], text), "");
        assert_eq!(
            output(uniq, &["--count", "--repeated"], "x\nx\n"),
            "      2 x\n"
        );
        assert_eq!(output(uniq, &[], ""), "");
        assert_eq!(run(uniq, &[], None, &[]), (0, "".into(), "".into()));
    }

    #[test]
    fn uniq_reads_one_file_and_writes_only_to_standard_output() {
        const TRY: &str = "Try 'uniq --help' for more information.\n";
        let files = [("f", "x\nx\n")];
        assert_eq!(
            run(uniq, &["f"], None, &files),
            (0, "x\n".into(), "".into())
        );
        assert_eq!(
            run(uniq, &["f", "-"], None, &files),
            (0, "x\n".into(), "".into())
        );
        assert_eq!(
            run(uniq, &["-", "-"], Some("y\n"), &files),
            (0, "y\n".into(), "".into())
        );
        let missing = "uniq: nofile: No such file or directory\n";
        assert_eq!(
            run(uniq, &["nofile"], None, &files),
            (1, "".into(), missing.into())
        );
        let extra = format!("uniq: extra operand 'g'\n{TRY}");
        assert_eq!(
            run(uniq, &["f", "-", "g"], None, &files),
            (1, "".into(), extra.clone())
        );
        assert_eq!(run(uniq, &["f", "g"], None, &files), (1, "".into(), extra));
        let invalid = format!("uniq: invalid option -- 'x'\n{TRY}");
        assert_eq!(run(uniq, &["-x"], None, &files), (1, "".into(), invalid));
    }
}
