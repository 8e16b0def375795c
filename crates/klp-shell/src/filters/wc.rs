//! wc: counts the newlines, words and bytes of files.

use std::borrow::Cow;

use super::options::{OptionSpec, parse_options};
use super::quote::quote;
use super::{ReadFile, Streams, input};

/// The options wc accepts.
const WC_OPTIONS: OptionSpec = OptionSpec {
    short: "clw",
    long: &[("bytes", 'c'), ("lines", 'l'), ("words", 'w')],
};

/// Counts newlines, words and bytes as GNU wc (9.6 on) does in the C locale: a word is a run of
/// bytes other than the six of `isspace`.
fn wc_counts(text: &[u8]) -> [u64; 3] {
    let (mut lines, mut words, mut in_word) = (0, 0, false);
    for &b in text {
        if b == b'\n' {
            lines += 1;
        }
        let space = matches!(b, b' ' | b'\t'..=b'\r');
        if !space && !in_word {
            words += 1;
        }
        in_word = !space;
    }
    [lines, words, text.len() as u64]
}

/// `wc [-clw] [FILE...]`: prints newline, word and byte counts, with a total for several files.
pub fn wc(args: &[&str], io: &mut Streams<'_>, read: &mut ReadFile<'_>) -> i32 {
    let line = match parse_options(&WC_OPTIONS, args) {
        Ok(line) => line,
        Err(error) => {
            let message = error.message();
            io.err.push_str(&format!(
                "wc: {message}\nTry 'wc --help' for more information.\n"
            ));
            return 1;
        }
    };
    let mut shown = [false; 3];
    for &(c, _) in &line.options {
        let k = match c {
            'l' => 0,
            'w' => 1,
            _ => 2,
        };
        shown[k] = true;
    }
    if shown == [false; 3] {
        shown = [true; 3];
    }
    let named = !line.operands.is_empty();
    let files = if named {
        line.operands.as_slice()
    } else {
        &["-"][..]
    };
    let mut status = 0;
    let mut results = Vec::new();
    for &file in files {
        match input(file, &mut io.stdin, read) {
            Ok(text) => results.push((file, wc_counts(&text))),
            Err(error) => {
                io.err
                    .push_str(&format!("wc: {}: {error}\n", quote(file, false)));
                status = 1;
            }
        }
    }
    // GNU sizes the columns before reading: by the total size of the regular files, at least
    // 7 wide when standard input (a pipe or terminal) is among them; a single count of a
    // single input is not padded at all.
    let width = if files.len() == 1 && shown.iter().filter(|&&s| s).count() == 1 {
        1
    } else {
        let regular: u64 = results
            .iter()
            .filter(|(file, _)| *file != "-")
            .map(|(_, c)| c[2])
            .sum();
        let stdin_width = if files.contains(&"-") { 7 } else { 1 };
        regular.to_string().len().max(stdin_width)
    };
    let mut total = [0; 3];
    let print = |out: &mut String, counts: [u64; 3], name: Option<&str>| {
        let columns: Vec<String> = (0..3)
            .filter(|&k| shown[k])
            .map(|k| format!("{:>width$}", counts[k]))
            .collect();
        out.push_str(&columns.join(" "));
        if let Some(name) = name {
            out.push(' ');
            out.push_str(name);
        }
        out.push('\n');
    };
    for &(file, counts) in &results {
        for k in 0..3 {
            total[k] += counts[k];
        }
        // GNU quotes only a name that would break the line.
        let name = if file.contains('\n') {
            quote(file, false)
        } else {
            Cow::Borrowed(file)
        };
        print(io.out, counts, named.then_some(&*name));
    }
    if files.len() > 1 {
        print(io.out, total, Some("total"));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{output, run, run_bytes};

    #[test]
    fn wc_from_standard_input() {
        let text = "hello world\nfoo\n";
        assert_eq!(output(wc, &[], text), "      2       3      16\n");
        assert_eq!(output(wc, &["-l"], text), "2\n");
        assert_eq!(output(wc, &["-w"], text), "3\n");
        assert_eq!(output(wc, &["-c"], text), "16\n");
        assert_eq!(output(wc, &["-cl"], text), "      2      16\n");
        assert_eq!(output(wc, &["-l", "-"], text), "2 -\n");
        assert_eq!(output(wc, &["-"], text), "      2       3      16 -\n");
        assert_eq!(
            run(wc, &[], None, &[]),
            (0, "      0       0       0\n".into(), "".into())
        );
    }

    #[test]
    fn wc_sizes_columns_by_the_total_bytes_of_the_files() {
        let big = "a\n".repeat(500);
        let files = [
            ("w", "hello world\nfoo\n"),
            ("f", "a\nb\n"),
            ("big", big.as_str()),
        ];
        let run = |args: &[&str]| run(wc, args, Some("x\n"), &files);
        assert_eq!(run(&["w"]), (0, " 2  3 16 w\n".into(), "".into()));
        assert_eq!(run(&["-l", "w"]), (0, "2 w\n".into(), "".into()));
        assert_eq!(
            run(&["-l", "w", "f"]),
            (0, " 2 w\n 2 f\n 4 total\n".into(), "".into())
        );
        let expected = " 2  3 16 w\n 2  2  4 f\n 4  5 20 total\n";
        assert_eq!(run(&["w", "f"]), (0, expected.into(), "".into()));
        // Even the line counts take the width of the byte total.
        let expected = "   2 f\n 500 big\n 502 total\n";
        assert_eq!(run(&["-w", "f", "big"]), (0, expected.into(), "".into()));
        // Standard input, a pipe, makes it at least 7.
        let expected = "      1 -\n      2 f\n      3 total\n";
        assert_eq!(run(&["-l", "-", "f"]), (0, expected.into(), "".into()));
    }

    #[test]
    fn wc_quotes_only_a_name_that_would_break_its_line() {
        let files = [("a\nb", "x\n"), ("a b", "y\n")];
        let expected = "1 'a'$'\\n''b'\n1 a b\n2 total\n";
        assert_eq!(
            run(wc, &["-l", "a\nb", "a b"], None, &files),
            (0, expected.into(), "".into())
        );
    }

    #[test]
    fn wc_reports_unreadable_files_and_still_totals() {
        let files = [("w", "hello world\nfoo\n")];
        let missing = "wc: nofile: No such file or directory\n";
        let expected = " 2  3 16 w\n 2  3 16 total\n";
        assert_eq!(
            run(wc, &["nofile", "w"], None, &files),
            (1, expected.into(), missing.into())
        );
        assert_eq!(
            run(wc, &["-l", "nofile"], None, &files),
            (1, "".into(), missing.into())
        );
        let quoted = "wc: 'a b': No such file or directory\n";
        assert_eq!(
            run(wc, &["a b"], None, &files),
            (1, "".into(), quoted.into())
        );
        let invalid = "wc: invalid option -- 'x'\nTry 'wc --help' for more information.\n";
        assert_eq!(
            run(wc, &["-x"], None, &files),
            (1, "".into(), invalid.into())
        );
    }

    #[test]
    fn wc_words_are_runs_of_non_space_bytes() {
        assert_eq!(output(wc, &["-w"], "a\x0bb c\x0cd\re\x01f é x"), "7\n");
        assert_eq!(output(wc, &["-w"], "\x01 \x7f\n"), "2\n");
        assert_eq!(
            output(wc, &["-lwc"], "a\tb  c\n\n d"),
            "      2       4      10\n"
        );
        assert_eq!(
            output(wc, &["--lines", "--words", "--bytes"], "é\n"),
            "      1       1       3\n"
        );
    }

    #[test]
    fn wc_counts_the_raw_bytes_of_a_file_that_is_not_utf8() {
        // Each invalid byte counts once, not as the three bytes of U+FFFD.
        let files: [(&str, &[u8]); 1] = [("bin", b"\0asm\x01\0\0\0\xff\xfe\n\x80 x")];
        assert_eq!(
            run_bytes(wc, &["-c", "bin"], None, &files),
            (0, "14 bin\n".into(), "".into())
        );
        assert_eq!(
            run_bytes(wc, &["bin"], None, &files),
            (0, " 1  3 14 bin\n".into(), "".into())
        );
    }
}
