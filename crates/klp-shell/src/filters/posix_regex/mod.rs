//! GNU basic and extended regular expressions rewritten in the `regex` crate's syntax.

mod bracket;
mod interval;

use bracket::bracket;
use interval::interval;

/// The error texts of GNU grep's regular expression compiler.
const UNMATCHED_PAREN: &str = r"Unmatched ( or \(";
const UNMATCHED_CLOSE: &str = r"Unmatched ) or \)";
const UNMATCHED_BRACKET: &str = "Unmatched [, [^, [:, [., or [=";
const UNMATCHED_BRACE: &str = r"Unmatched \{";
const INVALID_INTERVAL: &str = r"Invalid content of \{\}";
pub(super) const TOO_BIG: &str = "Regular expression too big";
const TRAILING_BACKSLASH: &str = "Trailing backslash";
const INVALID_CLASS: &str = "Invalid character class name";
const INVALID_RANGE: &str = "Invalid range end";
const INVALID_COLLATION: &str = "Invalid collation character";
const INVALID_BACKREF: &str = "Invalid back reference";
pub(super) const INVALID_REGEX: &str = "Invalid regular expression";
/// GNU checks an interval that follows an assertion (or, in an ERE, nothing) only in its own
/// matcher, which words these two errors so (and takes any other bad ERE interval for text).
const DFA_INVALID_INTERVAL: &str = r"invalid content of \{\}";
const DFA_TOO_BIG: &str = "regular expression too big";
const CLASS_SYNTAX: &str = "character class syntax is [[:space:]], not [:space:]";
/// Not GNU's: the `regex` crate has no back-references.
const NO_BACKREFS: &str = "back-references are not supported";

/// Appends a byte to a `regex` pattern as a literal (the pattern runs without Unicode, so `\xHH` is that byte).
pub(super) fn push_literal(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(char::from(b));
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push_str(r"\x");
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// One POSIX pattern being rewritten in the `regex` crate's syntax, token by token.
#[derive(Default)]
struct Translation {
    out: String,
    /// Where the last thing a repetition may apply to begins in `out`; `None` at the start of a
    /// branch or after an anchor, where a repetition is literal (BRE) or ignored (ERE).
    operand: Option<usize>,
    /// Whether that operand already carries a repetition (another one then applies to the whole).
    repeated: bool,
    /// Whether that operand is an assertion, after which GNU checks intervals differently.
    zero_width: bool,
    /// Where each open group begins in `out`.
    groups: Vec<usize>,
    /// How many groups are closed (a back-reference may name only those).
    closed: usize,
}

impl Translation {
    /// Appends an operand: a literal, `.`, a bracket expression, `\w` and the like.
    fn operand(&mut self, text: &str) {
        self.operand = Some(self.out.len());
        self.repeated = false;
        self.zero_width = false;
        self.out.push_str(text);
    }

    /// Appends a literal byte.
    fn literal(&mut self, b: u8) {
        self.operand = Some(self.out.len());
        self.repeated = false;
        self.zero_width = false;
        push_literal(&mut self.out, b);
    }

    /// Appends a zero-width assertion. An ERE may repeat it; so may a BRE, unless only
    /// assertions precede it in its branch (then a repetition stays literal).
    fn assertion(&mut self, text: &str, extended: bool) {
        if extended || self.operand.is_some() {
            self.operand(text);
            self.zero_width = true;
        } else {
            self.out.push_str(text);
        }
    }

    /// Appends a BRE anchor, `^` or `$`.
    fn anchor(&mut self, text: &str) {
        self.out.push_str(text);
        self.operand = None;
    }

    /// Applies a repetition (`*`, `+`, `?`, `{m,n}`) to the last operand; false if there is none.
    fn repeat(&mut self, repetition: &str) -> bool {
        let Some(start) = self.operand else {
            return false;
        };
        if self.repeated {
            // `a**` or `a*?`: POSIX repeats the repetition (the regex crate would read `*?` as lazy).
            self.out.insert_str(start, "(?:");
            self.out.push(')');
        }
        self.out.push_str(repetition);
        self.repeated = true;
        true
    }

    /// Opens a group.
    fn open(&mut self) {
        self.groups.push(self.out.len());
        self.out.push_str("(?:");
        self.operand = None;
    }

    /// Closes the innermost group; false if none is open.
    fn close(&mut self) -> bool {
        let Some(start) = self.groups.pop() else {
            return false;
        };
        self.out.push(')');
        self.operand = Some(start);
        self.repeated = false;
        self.zero_width = false;
        self.closed += 1;
        true
    }

    /// Starts another alternative.
    fn alternate(&mut self) {
        self.out.push('|');
        self.operand = None;
    }
}

/// Translates one GNU basic (or, if `extended`, extended) regular expression, read as bytes in
/// the C locale, into the `regex` crate's syntax; `Err` holds GNU grep's message.
pub(super) fn translate(pattern: &[u8], extended: bool) -> Result<String, &'static str> {
    let mut t = Translation::default();
    // At the start of the pattern, of a group or of an alternative (where a BRE `^` is an anchor).
    let mut branch_start = true;
    let mut i = 0;
    while let Some(&b) = pattern.get(i) {
        i += 1;
        let at_branch_start = std::mem::replace(&mut branch_start, false);
        match b {
            b'\\' => {
                let &c = pattern.get(i).ok_or(TRAILING_BACKSLASH)?;
                i += 1;
                match c {
                    b'(' if !extended => {
                        t.open();
                        branch_start = true;
                    }
                    b')' if !extended => {
                        if !t.close() {
                            return Err(UNMATCHED_CLOSE);
                        }
                    }
                    b'|' if !extended => {
                        t.alternate();
                        branch_start = true;
                    }
                    // At the start of a branch, `\{` is a literal brace.
                    b'{' if !extended && t.operand.is_some() => {
                        let found = interval(pattern, i, false).map_err(|error| {
                            match (t.zero_width, error) {
                                (false, error) => error,
                                (true, TOO_BIG) => DFA_TOO_BIG,
                                (true, _) => DFA_INVALID_INTERVAL,
                            }
                        })?;
                        let (repetition, next) = found.ok_or(UNMATCHED_BRACE)?;
                        t.repeat(&repetition);
                        i = next;
                    }
                    b'+' | b'?' if !extended => {
                        if !t.repeat(if c == b'+' { "+" } else { "?" }) {
                            t.literal(c);
                        }
                    }
                    b'1'..=b'9' => {
                        return Err(if usize::from(c - b'0') > t.closed {
                            INVALID_BACKREF
                        } else {
                            NO_BACKREFS
                        });
                    }
                    b'w' => t.operand(r"\w"),
                    b'W' => t.operand(r"\W"),
                    b's' => t.operand(r"\s"),
                    b'S' => t.operand(r"\S"),
                    // Assertions go in groups so that a following `{m,n}` reads as a repetition.
                    b'b' => t.assertion(r"(?:\b)", extended),
                    b'B' => t.assertion(r"(?:\B)", extended),
                    b'<' => t.assertion(r"(?:\b{start})", extended),
                    b'>' => t.assertion(r"(?:\b{end})", extended),
                    b'`' => t.assertion(r"(?:\A)", extended),
                    b'\'' => t.assertion(r"(?:\z)", extended),
                    _ => t.literal(c),
                }
            }
            b'[' => {
                let (class, next) = bracket(pattern, i)?;
                t.operand(&class);
                i = next;
            }
            b'.' => t.operand("."),
            b'*' => {
                if !t.repeat("*") && !extended {
                    t.literal(b'*');
                }
            }
            b'+' | b'?' if extended => {
                // With nothing to repeat GNU ignores it (and warns).
                t.repeat(if b == b'+' { "+" } else { "?" });
            }
            b'{' if extended => {
                let checked = t.operand.is_some() && !t.zero_width;
                match interval(pattern, i, true) {
                    Ok(Some((repetition, next))) => {
                        t.repeat(&repetition);
                        i = next;
                    }
                    Err(error) if checked => return Err(error),
                    Err(TOO_BIG) => return Err(DFA_TOO_BIG),
                    Ok(None) | Err(_) => t.literal(b'{'),
                }
            }
            b'(' if extended => {
                t.open();
                branch_start = true;
            }
            b')' if extended => {
                if !t.close() {
                    t.literal(b')');
                }
            }
            b'|' if extended => {
                t.alternate();
                branch_start = true;
            }
            // An ERE anchor may be repeated (`^*a` finds an `a` anywhere); a BRE one may not.
            b'^' if extended => t.assertion("(?:^)", true),
            b'$' if extended => t.assertion("(?:$)", true),
            b'^' if at_branch_start => t.anchor("^"),
            // GNU's matcher also takes `$` before a bare `)` or `|` (not last) for an anchor.
            b'$' if i == pattern.len()
                || pattern[i..].starts_with(br"\)")
                || pattern[i..].starts_with(br"\|")
                || (i + 1 < pattern.len() && matches!(pattern[i], b')' | b'|')) =>
            {
                t.anchor("$");
            }
            _ => t.literal(b),
        }
    }
    if t.groups.is_empty() {
        Ok(t.out)
    } else {
        Err(UNMATCHED_PAREN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{grep_error, grep_lines};

    #[test]
    fn grep_basic_regex_operators_are_backslashed_and_bare_ones_literal() {
        let text = "abc\nabbc\nab+c\na|b\n(a)\nab?c\n{1}\n";
        assert_eq!(grep_lines(&[], "ab+c", text), "ab+c");
        assert_eq!(grep_lines(&[], r"ab\+c", text), "abc|abbc");
        assert_eq!(grep_lines(&[], "ab?c", text), "ab?c");
        assert_eq!(grep_lines(&[], r"^ab\?c$", text), "abc");
        assert_eq!(grep_lines(&[], "a|b", text), "a|b");
        assert_eq!(grep_lines(&[], r"^\(abc\|(a)\)$", text), "abc|(a)");
        assert_eq!(grep_lines(&[], r"^a\(b\)\{2\}c$", text), "abbc");
        assert_eq!(grep_lines(&[], "{1}", text), "{1}");
        // At the start of a branch `\{` is a literal brace.
        assert_eq!(grep_lines(&[], r"\{1\}", text), "{1}");
        assert_eq!(grep_lines(&[], r"k\{,1\}x", "kkx\nx\n"), "kkx|x");
        assert_eq!(grep_lines(&[], r"^k\{2,\}$", "k\nkk\nkkk\n"), "kk|kkk");
    }

    #[test]
    fn grep_bre_star_is_literal_where_it_has_nothing_to_repeat() {
        let text = "*a\na\nb*\n";
        assert_eq!(grep_lines(&[], "*a", text), "*a");
        assert_eq!(grep_lines(&[], r"\(*a\)", text), "*a");
        assert_eq!(grep_lines(&[], "^*", text), "*a");
        assert_eq!(grep_lines(&[], r"x\|*a", text), "*a");
        assert_eq!(grep_lines(&[], r"\+a", "+a\na\n"), "+a");
        assert_eq!(grep_lines(&[], "b**", text), "*a|a|b*");
    }

    #[test]
    fn grep_bre_anchors_only_at_the_ends_of_a_branch() {
        assert_eq!(grep_lines(&[], "x^y", "x^y\nxy\n"), "x^y");
        assert_eq!(grep_lines(&[], "a$b", "a$b\nab\n"), "a$b");
        assert_eq!(grep_lines(&[], "^^", "^\nx\n"), "^");
        assert_eq!(grep_lines(&[], "x$$", "x$\nx\n"), "x$");
        assert_eq!(grep_lines(&[], r"\(^a\)", "a\nba\n"), "a");
        assert_eq!(grep_lines(&[], r"b\|^a", "a\nca\n"), "a");
        assert_eq!(grep_lines(&[], r"a$\|q", "a$\nba\n"), "ba");
        assert_eq!(grep_lines(&[], r"\(a$\)", "a$\nba\n"), "ba");
    }

    #[test]
    fn grep_bre_repetition_after_only_assertions_is_literal() {
        assert_eq!(grep_lines(&[], r"\`*", "a\n*a\n"), "*a");
        assert_eq!(grep_lines(&[], r"\b\+a", "+a\na+a\n"), "a+a");
        assert_eq!(grep_lines(&[], r"\`\{2\}", "{2}\nx{2}\n"), "{2}");
        // After an operand, an assertion may be repeated.
        assert_eq!(grep_lines(&[], r"a\b*", "a\nb\n"), "a");
        assert_eq!(grep_lines(&[], r"\>*", "a*\nb\n"), "a*");
    }

    #[test]
    fn grep_bre_dollar_before_a_bare_bar_or_paren_is_an_anchor_as_in_gnu() {
        assert_eq!(grep_lines(&[], "^$|*", "\n$|\na\n"), "");
        assert_eq!(grep_lines(&[], "a$)x", "a$)x\na\n"), "");
        assert_eq!(grep_lines(&[], "a$)", "a$)\na\n"), "a$)");
        assert_eq!(grep_lines(&[], "a$|", "a$|\n"), "a$|");
    }

    #[test]
    fn grep_extended_regex_operators_are_bare() {
        let text = "abc\nabbc\nab+c\na|b\n(a)\nkk\n";
        assert_eq!(grep_lines(&["-E"], "ab+c", text), "abc|abbc");
        assert_eq!(grep_lines(&["-E"], r"ab\+c", text), "ab+c");
        assert_eq!(grep_lines(&["-E"], "^(abc|kk)$", text), "abc|kk");
        assert_eq!(grep_lines(&["-E"], r"\(a\)", text), "(a)");
        assert_eq!(grep_lines(&["-E"], "k{2}", text), "kk");
        assert_eq!(grep_lines(&["-E"], "a)", "a)\na\n"), "a)");
        assert_eq!(grep_lines(&["-E"], "$a", "$a\n"), "");
    }

    #[test]
    fn grep_ere_repetition_with_nothing_to_repeat_is_ignored() {
        let text = "a\n*a\nb\n";
        assert_eq!(grep_lines(&["-E"], "*a", text), "a|*a");
        assert_eq!(grep_lines(&["-E"], "+a", text), "a|*a");
        assert_eq!(grep_lines(&["-E"], "(*a)", text), "a|*a");
        assert_eq!(grep_lines(&["-E"], "x|*a", text), "a|*a");
        assert_eq!(grep_lines(&["-E"], "{1}b", text), "b");
        // An anchor is repeatable: `^*a` finds an `a` anywhere.
        assert_eq!(grep_lines(&["-E"], "^*a", text), "a|*a");
    }

    #[test]
    fn grep_stacked_repetitions_repeat_rather_than_turn_lazy() {
        assert_eq!(grep_lines(&["-Ex"], "a+?", "\na\naa\nb\n"), "|a|aa");
        assert_eq!(grep_lines(&["-Ex"], "a{1}{2}", "a\naa\n"), "aa");
        assert_eq!(
            grep_lines(&["-x"], r"a\{1,2\}\{2\}", "a\naa\naaaa\naaaaa\n"),
            "aa|aaaa"
        );
        assert_eq!(grep_lines(&["-x"], "a**", "\naa\n"), "|aa");
    }

    #[test]
    fn grep_gnu_escapes_and_stray_backslashes() {
        let text = "foo bar\nfoobar\nd\nn\n";
        assert_eq!(grep_lines(&[], r"\bbar", text), "foo bar");
        assert_eq!(grep_lines(&[], r"\<bar", text), "foo bar");
        assert_eq!(grep_lines(&[], r"o\>", text), "foo bar");
        assert_eq!(grep_lines(&[], r"o\Bb", text), "foobar");
        assert_eq!(grep_lines(&[], r"^\w\+$", text), "foobar|d|n");
        assert_eq!(grep_lines(&[], r"\s", text), "foo bar");
        assert_eq!(grep_lines(&[], r"\`f", text), "foo bar|foobar");
        assert_eq!(grep_lines(&[], r"r\'", text), "foo bar|foobar");
        // Not the regex crate's digit class or newline: a stray backslash quotes the letter.
        assert_eq!(grep_lines(&[], r"\d", text), "d");
        assert_eq!(grep_lines(&["-E"], r"\n", text), "n");
        assert_eq!(grep_lines(&[], r"w\.x", "w.x\nwxx\n"), "w.x");
        assert_eq!(grep_lines(&[], "w.x", "w.x\nwxx\n"), "w.x|wxx");
    }

    #[test]
    fn grep_refuses_bad_patterns_with_gnu_messages() {
        for (pattern, message) in [
            (r"\(", UNMATCHED_PAREN),
            (r"a\)", UNMATCHED_CLOSE),
            ("[", INVALID_REGEX),
            ("[^", INVALID_REGEX),
            ("[a", UNMATCHED_BRACKET),
            ("[]", UNMATCHED_BRACKET),
            ("[[:alpha:]", UNMATCHED_BRACKET),
            ("[[:alpha", UNMATCHED_BRACKET),
            ("[a-", UNMATCHED_BRACKET),
            (r"a\{", UNMATCHED_BRACE),
            (r"a\{1", UNMATCHED_BRACE),
            (r"a\{1,x", UNMATCHED_BRACE),
            (r"a\{x\}", INVALID_INTERVAL),
            (r"a\{1x\}", INVALID_INTERVAL),
            (r"a\{\}", INVALID_INTERVAL),
            (r"a\{2,1\}", INVALID_INTERVAL),
            (r"a\{99999,1\}", INVALID_INTERVAL),
            (r"a\{99999\}", TOO_BIG),
            ("\\", TRAILING_BACKSLASH),
            ("[[:foo:]]", INVALID_CLASS),
            ("[[:ALPHA:]]", INVALID_CLASS),
            ("[z-a]", INVALID_RANGE),
            ("[a-c-e]", INVALID_RANGE),
            ("[[:alpha:]-z]", INVALID_RANGE),
            ("[z-[:alpha:]]", INVALID_RANGE),
            ("[[=a=]-c]", INVALID_RANGE),
            ("[[.ab.]]", INVALID_COLLATION),
            ("[[=ab=]]", INVALID_COLLATION),
            ("[:alpha:]", CLASS_SYNTAX),
            ("[^:alpha:]", CLASS_SYNTAX),
            (r"\1", INVALID_BACKREF),
            (r"\(a\)\2", INVALID_BACKREF),
            (r"\(a\1\)", INVALID_BACKREF),
        ] {
            assert_eq!(
                grep_error(&[], pattern),
                format!("grep: {message}\n"),
                "{pattern}"
            );
        }
        for (pattern, message) in [
            ("(", UNMATCHED_PAREN),
            ("((a)", UNMATCHED_PAREN),
            ("a{2,1}", INVALID_INTERVAL),
            ("a{}", INVALID_INTERVAL),
            ("a{99999}", TOO_BIG),
        ] {
            assert_eq!(
                grep_error(&["-E"], pattern),
                format!("grep: {message}\n"),
                "{pattern}"
            );
        }
    }

    #[test]
    fn grep_refuses_back_references_it_cannot_match() {
        let message = format!("grep: {NO_BACKREFS}\n");
        assert_eq!(grep_error(&[], r"\(a\)\1"), message);
        assert_eq!(grep_error(&["-E"], r"(a)\1"), message);
    }

    #[test]
    fn translate_writes_posix_patterns_in_regex_crate_syntax() {
        let bre = |pattern: &str| translate(pattern.as_bytes(), false);
        let ere = |pattern: &str| translate(pattern.as_bytes(), true);
        assert_eq!(bre(r"a\{2\}"), Ok("a{2}".into()));
        assert_eq!(bre(r"a\{,2\}"), Ok("a{0,2}".into()));
        assert_eq!(bre(r"\(a\|b\)*"), Ok("(?:a|b)*".into()));
        assert_eq!(bre("a+?|"), Ok(r"a\x2B\x3F\x7C".into()));
        assert_eq!(bre("*a**"), Ok(r"\x2A(?:a*)*".into()));
        assert_eq!(bre("^a$"), Ok("^a$".into()));
        assert_eq!(bre("[a-]"), Ok(r"[a\x2D]".into()));
        assert_eq!(bre("[^]a]"), Ok(r"[^\x5Da]".into()));
        assert_eq!(bre("[[:alpha:]0-9]"), Ok("[[:alpha:]0-9]".into()));
        assert_eq!(bre(r"\<\w"), Ok(r"(?:\b{start})\w".into()));
        assert_eq!(bre("é"), Ok(r"\xC3\xA9".into()));
        assert_eq!(ere("a+?"), Ok("(?:a+)?".into()));
        assert_eq!(ere("^*a"), Ok("(?:^)*a".into()));
        assert_eq!(ere("*a"), Ok("a".into()));
        assert_eq!(ere("a{,}"), Ok("a{0,}".into()));
        assert_eq!(ere(r"\{"), Ok(r"\x7B".into()));
    }
}
