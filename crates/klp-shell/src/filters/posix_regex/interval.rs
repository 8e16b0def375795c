//! Intervals, `{m,n}` in an ERE and `\{m,n\}` in a BRE.

use super::{INVALID_INTERVAL, TOO_BIG, UNMATCHED_BRACE};

/// POSIX's largest repetition count (`RE_DUP_MAX`).
const DUP_MAX: u32 = 0x7fff;

/// Reads the interval whose text starts at `start`, just after its `{` (ERE) or `\{` (BRE):
/// the `regex` crate's repetition and where the interval ends. `None` means an ERE brace that
/// does not open a valid interval, hence a literal.
pub(super) fn interval(
    pattern: &[u8],
    start: usize,
    extended: bool,
) -> Result<Option<(String, usize)>, &'static str> {
    let number = |i: &mut usize| {
        let mut value: Option<u32> = None;
        while let Some(&d) = pattern.get(*i).filter(|d| d.is_ascii_digit()) {
            value = Some((value.unwrap_or(0) * 10 + u32::from(d - b'0')).min(DUP_MAX + 1));
            *i += 1;
        }
        value
    };
    let mut i = start;
    let min = number(&mut i);
    let comma = pattern.get(i) == Some(&b',');
    if comma {
        i += 1;
    }
    let max = if comma { number(&mut i) } else { min };
    let end: &[u8] = if extended { b"}" } else { br"\}" };
    if !pattern[i..].starts_with(end) {
        if extended {
            return Ok(None);
        }
        let closed_later = pattern[i..].windows(2).any(|w| w == br"\}");
        return Err(if closed_later {
            INVALID_INTERVAL
        } else {
            UNMATCHED_BRACE
        });
    }
    i += end.len();
    if min.is_none() && !comma {
        return Err(INVALID_INTERVAL);
    }
    let min = min.unwrap_or(0);
    if max.is_some_and(|max| min > max) {
        return Err(INVALID_INTERVAL);
    }
    if max.unwrap_or(min) > DUP_MAX {
        return Err(TOO_BIG);
    }
    let repetition = match max {
        None => format!("{{{min},}}"),
        Some(max) if comma => format!("{{{min},{max}}}"),
        Some(max) => format!("{{{max}}}"),
    };
    Ok(Some((repetition, i)))
}

#[cfg(test)]
mod tests {
    use super::super::{DFA_INVALID_INTERVAL, DFA_TOO_BIG};
    use crate::filters::testing::{grep_error, grep_lines};

    #[test]
    fn grep_intervals_after_assertions_get_gnu_matcher_messages() {
        assert_eq!(
            grep_error(&[], r"a\b\{\}"),
            format!("grep: {DFA_INVALID_INTERVAL}\n")
        );
        assert_eq!(
            grep_error(&[], r"a\>\{1"),
            format!("grep: {DFA_INVALID_INTERVAL}\n")
        );
        assert_eq!(
            grep_error(&[], r"a\<\{99999\}"),
            format!("grep: {DFA_TOO_BIG}\n")
        );
        assert_eq!(
            grep_error(&["-E"], "{99999}"),
            format!("grep: {DFA_TOO_BIG}\n")
        );
        // In an ERE, an invalid interval there is text.
        assert_eq!(grep_lines(&["-E"], "^{}", "{}\nx{}\n"), "{}");
        assert_eq!(grep_lines(&["-E"], r"\b{2,1}", "{2,1}\n"), "");
        assert_eq!(grep_lines(&["-E"], "{2,1}", "{2,1}\n"), "{2,1}");
    }

    #[test]
    fn grep_ere_brace_that_opens_no_interval_is_literal() {
        let text = "a{\na{1\na{x}\na{1,x}\na\n";
        assert_eq!(grep_lines(&["-E"], "a{", text), "a{|a{1|a{x}|a{1,x}");
        assert_eq!(grep_lines(&["-E"], "a{1", text), "a{1|a{1,x}");
        assert_eq!(grep_lines(&["-E"], "a{x}", text), "a{x}");
        assert_eq!(grep_lines(&["-E"], "a{1,x}", text), "a{1,x}");
        assert_eq!(grep_lines(&["-Ex"], "a{,1}", text), "a");
    }
}
