//! grep: prints the lines that match GNU regular expressions or fixed strings.

use regex::bytes::{Regex, RegexBuilder};

use super::options::{OptionSpec, parse_options};
use super::posix_regex::{INVALID_REGEX, TOO_BIG, push_literal, translate};
use super::{ReadFile, Streams, input, lines, push_lossy};

/// The options grep accepts.
const GREP_OPTIONS: OptionSpec = OptionSpec {
    short: "EFGHce:hilnqsvx",
    long: &[
        ("basic-regexp", 'G'),
        ("count", 'c'),
        ("extended-regexp", 'E'),
        ("files-with-matches", 'l'),
        ("fixed-strings", 'F'),
        ("ignore-case", 'i'),
        ("invert-match", 'v'),
        ("line-number", 'n'),
        ("line-regexp", 'x'),
        ("no-filename", 'h'),
        ("no-messages", 's'),
        ("quiet", 'q'),
        ("regexp", 'e'),
        ("silent", 'q'),
        ("with-filename", 'H'),
    ],
};

/// What grep prints after a usage error.
const GREP_USAGE: &str =
    "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n";

/// How grep reads its patterns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// POSIX basic regular expressions (`-G`, the default).
    Basic,
    /// POSIX extended regular expressions (`-E`).
    Extended,
    /// Fixed strings (`-F`).
    Fixed,
}

/// Compiles grep's patterns into one matcher of single lines.
fn matcher(
    patterns: &[&str],
    syntax: Syntax,
    ignore_case: bool,
    whole_line: bool,
) -> Result<Regex, &'static str> {
    let mut alternatives = String::new();
    for (n, pattern) in patterns.iter().enumerate() {
        if n > 0 {
            alternatives.push('|');
        }
        alternatives.push_str("(?:");
        match syntax {
            Syntax::Fixed => pattern
                .bytes()
                .for_each(|b| push_literal(&mut alternatives, b)),
            Syntax::Basic => alternatives.push_str(&translate(pattern.as_bytes(), false)?),
            Syntax::Extended => alternatives.push_str(&translate(pattern.as_bytes(), true)?),
        }
        alternatives.push(')');
    }
    let regex = if whole_line {
        format!("^(?:{alternatives})$")
    } else {
        alternatives
    };
    RegexBuilder::new(&regex)
        .unicode(false)
        .case_insensitive(ignore_case)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => TOO_BIG,
            _ => INVALID_REGEX,
        })
}

/// `grep [-EFGHchilnqsvx] [-e PATTERN]... [PATTERN] [FILE...]`: prints the lines that match.
///
/// Exits 0 if a line was selected, 1 if none, 2 on an error (unless `-q` found a match).
pub fn grep(args: &[&str], io: &mut Streams<'_>, read: &mut ReadFile<'_>) -> i32 {
    let line = match parse_options(&GREP_OPTIONS, args) {
        Ok(line) => line,
        Err(error) => {
            io.err
                .push_str(&format!("grep: {}\n{GREP_USAGE}", error.message()));
            return 2;
        }
    };
    let mut syntax = None;
    let mut patterns: Option<Vec<&str>> = None;
    let (mut ignore_case, mut invert, mut count, mut quiet) = (false, false, false, false);
    let (mut numbers, mut whole_line, mut list, mut silent) = (false, false, false, false);
    let mut with_filename = None;
    for &(c, argument) in &line.options {
        match c {
            'E' | 'F' | 'G' => {
                let chosen = match c {
                    'E' => Syntax::Extended,
                    'F' => Syntax::Fixed,
                    _ => Syntax::Basic,
                };
                if syntax.is_some_and(|s| s != chosen) {
                    io.err.push_str("grep: conflicting matchers specified\n");
                    return 2;
                }
                syntax = Some(chosen);
            }
            'e' => patterns
                .get_or_insert_with(Vec::new)
                .extend(argument.split('\n')),
            'H' => with_filename = Some(true),
            'h' => with_filename = Some(false),
            'c' => count = true,
            'i' => ignore_case = true,
            'l' => list = true,
            'n' => numbers = true,
            'q' => quiet = true,
            's' => silent = true,
            'v' => invert = true,
            _ => whole_line = true,
        }
    }
    let mut operands = line.operands.as_slice();
    let patterns = match patterns {
        Some(patterns) => patterns,
        None => match operands.split_first() {
            Some((pattern, files)) => {
                operands = files;
                pattern.split('\n').collect()
            }
            None => {
                io.err.push_str(GREP_USAGE);
                return 2;
            }
        },
    };
    // GNU's shortcut: `grep -v ''` cannot select a line, so it reads nothing and prints nothing.
    if invert && !whole_line && patterns == [""] {
        return 1;
    }
    let regex = match matcher(
        &patterns,
        syntax.unwrap_or(Syntax::Basic),
        ignore_case,
        whole_line,
    ) {
        Ok(regex) => regex,
        Err(message) => {
            io.err.push_str(&format!("grep: {message}\n"));
            return 2;
        }
    };
    let files = if operands.is_empty() {
        &["-"][..]
    } else {
        operands
    };
    let with_filename = with_filename.unwrap_or(files.len() > 1);
    let (mut matched, mut failed) = (false, false);
    for &file in files {
        let text = match input(file, &mut io.stdin, read) {
            Ok(text) => text,
            Err(error) => {
                if !silent {
                    io.err.push_str(&format!("grep: {file}: {error}\n"));
                }
                failed = true;
                continue;
            }
        };
        let name = if file == "-" {
            "(standard input)"
        } else {
            file
        };
        // GNU prints no lines of a file with a NUL byte, only that it matches.
        let binary = text.contains(&0);
        let mut selected = 0;
        for (n, text_line) in lines(&text).enumerate() {
            if regex.is_match(text_line) == invert {
                continue;
            }
            selected += 1;
            if quiet {
                return 0;
            }
            if list {
                break;
            }
            if count {
                continue;
            }
            if binary {
                io.err
                    .push_str(&format!("grep: {name}: binary file matches\n"));
                break;
            }
            if with_filename {
                io.out.push_str(name);
                io.out.push(':');
            }
            if numbers {
                io.out.push_str(&format!("{}:", n + 1));
            }
            push_lossy(io.out, text_line);
            io.out.push('\n');
        }
        matched |= selected > 0;
        if quiet {
            continue;
        }
        if list {
            if selected > 0 {
                io.out.push_str(name);
                io.out.push('\n');
            }
        } else if count {
            if with_filename {
                io.out.push_str(name);
                io.out.push(':');
            }
            io.out.push_str(&format!("{selected}\n"));
        }
    }
    if failed {
        2
    } else if matched {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{grep_lines, output, run, run_bytes};

    const USAGE: &str =
        "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n";

    #[test]
    fn grep_prints_selected_lines_each_ending_in_a_newline() {
        assert_eq!(
            run(grep, &["b"], Some("abc\nxyz\nb"), &[]),
            (0, "abc\nb\n".into(), "".into())
        );
        assert_eq!(
            run(grep, &["q"], Some("abc\n"), &[]),
            (1, "".into(), "".into())
        );
    }

    #[test]
    fn grep_matches_bytes_as_the_c_locale_does() {
        assert_eq!(grep_lines(&[], "^..$", "é\ne\n"), "é");
        assert_eq!(grep_lines(&[], "^.$", "é\ne\n"), "e");
        assert_eq!(grep_lines(&["-i"], "É", "é\n"), "");
        assert_eq!(grep_lines(&["-i"], "[[:upper:]]x", "ax\n"), "ax");
    }

    #[test]
    fn grep_matches_the_raw_bytes_of_a_file_and_prints_them_lossily() {
        let files: [(&str, &[u8]); 1] = [("f", b"\xff\nab\n\xfe\xfe\n")];
        assert_eq!(
            run_bytes(grep, &["-x", ".", "f"], None, &files),
            (0, "\u{fffd}\n".into(), "".into())
        );
        assert_eq!(
            run_bytes(grep, &["-c", "^..$", "f"], None, &files),
            (0, "2\n".into(), "".into())
        );
    }

    #[test]
    fn grep_options_invert_count_number_ignore_case_whole_line() {
        let text = "a\nB\nab\nc\n";
        assert_eq!(output(grep, &["-v", "a"], text), "B\nc\n");
        assert_eq!(output(grep, &["-c", "a"], text), "2\n");
        assert_eq!(output(grep, &["-vc", "a"], text), "2\n");
        assert_eq!(output(grep, &["-n", "a"], text), "1:a\n3:ab\n");
        assert_eq!(output(grep, &["-vn", "a"], text), "2:B\n4:c\n");
        assert_eq!(output(grep, &["-i", "b"], text), "B\nab\n");
        assert_eq!(output(grep, &["-x", "a"], text), "a\n");
        assert_eq!(output(grep, &["-nc", "a"], text), "2\n");
        assert_eq!(
            run(grep, &["-c", "z"], Some(text), &[]),
            (1, "0\n".into(), "".into())
        );
    }

    #[test]
    fn grep_fixed_strings_match_literally() {
        let text = "a.b\naxb\n*\n[x]\n";
        assert_eq!(grep_lines(&["-F"], "a.b", text), "a.b");
        assert_eq!(grep_lines(&["-F"], "*", text), "*");
        assert_eq!(grep_lines(&["-F"], "[x]", text), "[x]");
        assert_eq!(grep_lines(&["-F"], "\\", "\\\n"), "\\");
        assert_eq!(grep_lines(&["-Fi"], "A.B", text), "a.b");
        assert_eq!(grep_lines(&["-Fx"], "a", "a\nab\n"), "a");
    }

    #[test]
    fn grep_takes_several_patterns() {
        let text = "a\nb\nc\n";
        assert_eq!(output(grep, &["-e", "a", "-e", "b"], text), "a\nb\n");
        assert_eq!(output(grep, &["-ea", "--regexp=c"], text), "a\nc\n");
        assert_eq!(output(grep, &["a\nc"], text), "a\nc\n");
        // An empty pattern matches every line.
        assert_eq!(output(grep, &["-e", "x", "-e", ""], text), "a\nb\nc\n");
        assert_eq!(output(grep, &["x\n"], text), "a\nb\nc\n");
    }

    #[test]
    fn grep_names_files_when_searching_several() {
        let files = [("f1", "a\nb\n"), ("f2", "ab\n")];
        let run = |args: &[&str]| run(grep, args, Some("a\n"), &files);
        assert_eq!(run(&["a", "f1"]), (0, "a\n".into(), "".into()));
        assert_eq!(
            run(&["a", "f1", "f2"]),
            (0, "f1:a\nf2:ab\n".into(), "".into())
        );
        assert_eq!(
            run(&["-n", "b", "f1", "f2"]),
            (0, "f1:2:b\nf2:1:ab\n".into(), "".into())
        );
        assert_eq!(
            run(&["-c", "b", "f1", "f2"]),
            (0, "f1:1\nf2:1\n".into(), "".into())
        );
        assert_eq!(
            run(&["-h", "a", "f1", "f2"]),
            (0, "a\nab\n".into(), "".into())
        );
        assert_eq!(run(&["-H", "a", "f1"]), (0, "f1:a\n".into(), "".into()));
        assert_eq!(
            run(&["a", "-", "f2"]),
            (0, "(standard input):a\nf2:ab\n".into(), "".into())
        );
        assert_eq!(
            run(&["-l", "b", "f1", "-", "f2"]),
            (0, "f1\nf2\n".into(), "".into())
        );
        assert_eq!(
            run(&["-lc", "a", "f1", "f2"]),
            (0, "f1\nf2\n".into(), "".into())
        );
    }

    #[test]
    fn grep_reads_standard_input_once_and_nothing_without_it() {
        assert_eq!(
            run(grep, &["-c", "a", "-", "-"], Some("a\n"), &[]).1,
            "(standard input):1\n(standard input):0\n"
        );
        assert_eq!(run(grep, &["a"], None, &[]), (1, "".into(), "".into()));
        assert_eq!(
            run(grep, &["-c", "a"], None, &[]),
            (1, "0\n".into(), "".into())
        );
    }

    #[test]
    fn grep_goes_on_past_an_unreadable_file_and_exits_2() {
        let files = [("f1", "a\n")];
        let missing = "grep: nofile: No such file or directory\n";
        assert_eq!(
            run(grep, &["a", "nofile", "f1"], None, &files),
            (2, "f1:a\n".into(), missing.into())
        );
        assert_eq!(
            run(grep, &["-c", "a", "f1", "nofile"], None, &files),
            (2, "f1:1\n".into(), missing.into())
        );
        assert_eq!(
            run(grep, &["-s", "a", "nofile", "f1"], None, &files),
            (2, "f1:a\n".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-s", "a", "nofile"], None, &files),
            (2, "".into(), "".into())
        );
    }

    #[test]
    fn grep_quiet_prints_nothing_and_a_match_beats_errors() {
        let files = [("f1", "a\n")];
        let missing = "grep: nofile: No such file or directory\n";
        assert_eq!(
            run(grep, &["-q", "a", "f1"], None, &files),
            (0, "".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-q", "z", "f1"], None, &files),
            (1, "".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-qc", "z", "f1"], None, &files),
            (1, "".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-q", "a", "nofile", "f1"], None, &files),
            (0, "".into(), missing.into())
        );
        // It stops at the first match: the missing file after it is never opened.
        assert_eq!(
            run(grep, &["-q", "a", "f1", "nofile"], None, &files),
            (0, "".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-q", "z", "f1", "nofile"], None, &files),
            (2, "".into(), missing.into())
        );
    }

    #[test]
    fn grep_reports_a_matching_binary_file_instead_of_its_lines() {
        let files = [("bin", "a\0b\na\n"), ("f1", "a\n")];
        let binary = "grep: bin: binary file matches\n";
        assert_eq!(
            run(grep, &["a", "bin", "f1"], None, &files),
            (0, "f1:a\n".into(), binary.into())
        );
        assert_eq!(
            run(grep, &["-c", "a", "bin"], None, &files),
            (0, "2\n".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-l", "a", "bin"], None, &files),
            (0, "bin\n".into(), "".into())
        );
        assert_eq!(
            run(grep, &["z", "bin"], None, &files),
            (1, "".into(), "".into())
        );
        let stdin = "grep: (standard input): binary file matches\n";
        assert_eq!(
            run(grep, &["a"], Some("\0a\n"), &[]),
            (0, "".into(), stdin.into())
        );
    }

    #[test]
    fn grep_takes_options_anywhere_before_a_double_dash() {
        let files = [("f1", "a\nb\n"), ("-v", "x-v\n")];
        assert_eq!(run(grep, &["a", "f1", "-n"], None, &files).1, "1:a\n");
        assert_eq!(run(grep, &["--", "-v", "-v"], None, &files).1, "x-v\n");
        assert_eq!(
            run(grep, &["-e", "-v", "--", "-v"], None, &files).1,
            "x-v\n"
        );
        assert_eq!(
            run(grep, &["-ei", "f1"], None, &files),
            (1, "".into(), "".into())
        );
    }

    #[test]
    fn grep_long_options_and_their_unambiguous_prefixes() {
        let text = "a\nB\n";
        assert_eq!(output(grep, &["--invert-match", "a"], text), "B\n");
        assert_eq!(output(grep, &["--ignore-case", "b"], text), "B\n");
        assert_eq!(output(grep, &["--count", "a"], text), "1\n");
        assert_eq!(output(grep, &["--cou", "a"], text), "1\n");
        assert_eq!(output(grep, &["--line-number", "B"], text), "2:B\n");
        assert_eq!(output(grep, &["--extended-regexp", "a|B"], text), "a\nB\n");
        assert_eq!(output(grep, &["--fixed-strings", "a|"], "a|B\n"), "a|B\n");
        assert_eq!(output(grep, &["--basic-regexp", r"a\|B"], text), "a\nB\n");
        assert_eq!(output(grep, &["--line-regexp", "a"], "a\nab\n"), "a\n");
        assert_eq!(output(grep, &["--regexp", "a"], text), "a\n");
        assert_eq!(output(grep, &["--quiet", "a"], text), "");
        assert_eq!(output(grep, &["--silent", "a"], text), "");
    }

    #[test]
    fn grep_usage_errors_exit_2() {
        let error = |args: &[&str]| run(grep, args, Some("a\n"), &[]);
        assert_eq!(error(&[]), (2, "".into(), USAGE.into()));
        assert_eq!(error(&["-i"]), (2, "".into(), USAGE.into()));
        let invalid = format!("grep: invalid option -- 'Z'\n{USAGE}");
        assert_eq!(error(&["-Z", "a"]), (2, "".into(), invalid));
        let missing = format!("grep: option requires an argument -- 'e'\n{USAGE}");
        assert_eq!(error(&["-e"]), (2, "".into(), missing));
        let unknown = format!("grep: unrecognized option '--foo=1'\n{USAGE}");
        assert_eq!(error(&["--foo=1", "a"]), (2, "".into(), unknown));
        let ambiguous =
            "grep: option '--no' is ambiguous; possibilities: '--no-filename' '--no-messages'";
        assert_eq!(
            error(&["--no", "a"]),
            (2, "".into(), format!("{ambiguous}\n{USAGE}"))
        );
        let extra = format!("grep: option '--count' doesn't allow an argument\n{USAGE}");
        assert_eq!(error(&["--count=3", "a"]), (2, "".into(), extra));
        let needs = format!("grep: option '--regexp' requires an argument\n{USAGE}");
        assert_eq!(error(&["--regexp"]), (2, "".into(), needs));
        let conflict = "grep: conflicting matchers specified\n";
        assert_eq!(error(&["-E", "-F", "a"]), (2, "".into(), conflict.into()));
        assert_eq!(error(&["-E", "-E", "a"]), (0, "a\n".into(), "".into()));
    }

    #[test]
    fn grep_invert_of_the_empty_pattern_reads_nothing() {
        assert_eq!(
            run(grep, &["-vc", ""], Some("a\n"), &[]),
            (1, "".into(), "".into())
        );
        assert_eq!(
            run(grep, &["-v", "", "nofile"], None, &[]),
            (1, "".into(), "".into())
        );
        assert_eq!(output(grep, &["-vx", ""], "a\n\n"), "a\n");
    }
}
