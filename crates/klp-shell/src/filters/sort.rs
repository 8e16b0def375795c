//! sort: sorts lines by their bytes or leading numbers.

use std::cmp::Ordering;

use super::options::{OptionSpec, parse_options};
use super::quote::quote;
use super::{ReadFile, Streams, input, lines, push_lossy};

/// The options sort accepts.
const SORT_OPTIONS: OptionSpec = OptionSpec {
    short: "nru",
    long: &[("numeric-sort", 'n'), ("reverse", 'r'), ("unique", 'u')],
};

/// The number a line starts with, as `sort -n` reads it in the C locale: after blanks, an
/// optional `-`, digits, and a `.` with more digits. Returns the sign (-1, 0 or 1), the integer
/// digits without leading zeros and the fraction digits without trailing zeros.
fn leading_number(line: &[u8]) -> (i8, &[u8], &[u8]) {
    let blanks = line
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let (negative, text) = match line[blanks..].strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, &line[blanks..]),
    };
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let zeros = text[..digits].iter().take_while(|&&b| b == b'0').count();
    let integer = &text[zeros..digits];
    let fraction = text[digits..]
        .strip_prefix(b".")
        .map_or(&[][..], |fraction| {
            let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            let zeros = fraction[..digits].iter().rev().take_while(|&&b| b == b'0');
            &fraction[..digits - zeros.count()]
        });
    let sign = match (integer.is_empty() && fraction.is_empty(), negative) {
        (true, _) => 0,
        (false, true) => -1,
        (false, false) => 1,
    };
    (sign, integer, fraction)
}

/// Compares the numbers two lines start with (a line without one counts as 0).
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let (a_sign, a_integer, a_fraction) = leading_number(a);
    let (b_sign, b_integer, b_fraction) = leading_number(b);
    let magnitude = a_integer
        .len()
        .cmp(&b_integer.len())
        .then_with(|| a_integer.cmp(b_integer))
        .then_with(|| a_fraction.cmp(b_fraction));
    a_sign.cmp(&b_sign).then(if a_sign < 0 {
        magnitude.reverse()
    } else {
        magnitude
    })
}

/// `sort [-nru] [FILE...]`: sorts lines in byte order, or by their leading number with `-n`.
pub fn sort(args: &[&str], io: &mut Streams<'_>, read: &mut ReadFile<'_>) -> i32 {
    let line = match parse_options(&SORT_OPTIONS, args) {
        Ok(line) => line,
        Err(error) => {
            let message = error.message();
            io.err.push_str(&format!(
                "sort: {message}\nTry 'sort --help' for more information.\n"
            ));
            return 2;
        }
    };
    let has = |c: char| line.options.iter().any(|&(o, _)| o == c);
    let (numeric, reverse, unique) = (has('n'), has('r'), has('u'));
    let files = if line.operands.is_empty() {
        &["-"][..]
    } else {
        line.operands.as_slice()
    };
    let mut texts = Vec::new();
    for &file in files {
        match input(file, &mut io.stdin, read) {
            Ok(text) => texts.push(text),
            Err(error) => {
                io.err.push_str(&format!(
                    "sort: cannot read: {}: {error}\n",
                    quote(file, false)
                ));
                return 2;
            }
        }
    }
    // As GNU: the key, then (unless -u, which keeps the first of equal keys) the whole line;
    // -r reverses both.
    let order = |a: &&[u8], b: &&[u8]| {
        let key = if numeric {
            compare_numbers(a, b)
        } else {
            a.cmp(b)
        };
        let order = if unique {
            key
        } else {
            key.then_with(|| a.cmp(b))
        };
        if reverse { order.reverse() } else { order }
    };
    let mut lines: Vec<&[u8]> = texts.iter().flat_map(|text| lines(text)).collect();
    lines.sort_by(order);
    if unique {
        lines.dedup_by(|later, earlier| order(later, earlier) == Ordering::Equal);
    }
    for text_line in lines {
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
    fn sort_orders_lines_by_bytes() {
        assert_eq!(
            output(sort, &[], "b\na\nB\n\n_\n10\n9"),
            "\n10\n9\nB\n_\na\nb\n"
        );
        assert_eq!(output(sort, &["-r"], "b\na\nB\n"), "b\na\nB\n");
        assert_eq!(output(sort, &["-u"], "b\na\nb\na\n"), "a\nb\n");
        assert_eq!(
            output(sort, &["--reverse", "--unique"], "b\na\nb\n"),
            "b\na\n"
        );
        assert_eq!(output(sort, &[], ""), "");
        assert_eq!(run(sort, &[], None, &[]), (0, "".into(), "".into()));
    }

    #[test]
    fn sort_numeric_reads_the_leading_number_and_breaks_ties_by_bytes() {
        let text = "10\n9\n-1\n1b\n1a\nb\n\n-0\n0\n+5\n1.50\n1.5\n.5\n-.5\n007\n 3\n1e3\n";
        let sorted = "-1|-.5||+5|-0|0|b|.5|1a|1b|1e3|1.5|1.50| 3|007|9|10";
        assert_eq!(
            output(sort, &["-n"], text)
                .lines()
                .collect::<Vec<_>>()
                .join("|"),
            sorted
        );
        let reversed = "10|9|007| 3|1.50|1.5|1e3|1b|1a|.5|b|0|-0|+5||-.5|-1";
        assert_eq!(
            output(sort, &["-rn"], text)
                .lines()
                .collect::<Vec<_>>()
                .join("|"),
            reversed
        );
        let big = "12345678901234567891\n12345678901234567890\n-12345678901234567890\n";
        let sorted = "-12345678901234567890\n12345678901234567890\n12345678901234567891\n";
        assert_eq!(output(sort, &["-n"], big), sorted);
    }

    #[test]
    fn sort_numeric_unique_keeps_the_first_line_of_each_number() {
        let text = "1b\nb\n1a\n\n2\n02.0\n";
        assert_eq!(output(sort, &["-nu"], text), "b\n1b\n2\n");
        assert_eq!(output(sort, &["-nru"], text), "2\n1b\nb\n");
    }

    #[test]
    fn sort_merges_files_and_reads_standard_input_once() {
        let files = [("f", "c\na")];
        assert_eq!(
            run(sort, &["f", "-", "-"], Some("b\n"), &files),
            (0, "a\nb\nc\n".into(), "".into())
        );
    }

    #[test]
    fn sort_errors_exit_2_without_output() {
        let files = [("f", "a\n")];
        let missing = "sort: cannot read: nofile: No such file or directory\n";
        assert_eq!(
            run(sort, &["f", "nofile"], None, &files),
            (2, "".into(), missing.into())
        );
        let invalid = "sort: invalid option -- 'k'\nTry 'sort --help' for more information.\n";
        assert_eq!(
            run(sort, &["-k1"], None, &files),
            (2, "".into(), invalid.into())
        );
    }
}
