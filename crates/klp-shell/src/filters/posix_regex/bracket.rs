//! Bracket expressions, `[...]`, in the C locale.

use super::{
    CLASS_SYNTAX, INVALID_CLASS, INVALID_COLLATION, INVALID_RANGE, INVALID_REGEX,
    UNMATCHED_BRACKET, push_literal,
};

/// The bracket expression classes of the C locale.
const CLASSES: &[&str] = &[
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit",
];

/// One element of a bracket expression.
enum Element {
    /// A byte, written as itself or `[.c.]`: may bound a range.
    Byte(u8),
    /// `[=c=]`: in the C locale the byte itself, but no range bound.
    Equivalent(u8),
    /// `[:name:]`.
    Class(&'static str),
}

/// Reads the bracket element at `i`; returns it and where it ends.
fn element(pattern: &[u8], i: usize) -> Result<(Element, usize), &'static str> {
    let kind = pattern
        .get(i + 1)
        .copied()
        .filter(|k| [b':', b'.', b'='].contains(k));
    let (Some(b'['), Some(kind)) = (pattern.get(i), kind) else {
        return Ok((Element::Byte(pattern[i]), i + 1));
    };
    let body = i + 2;
    let len = pattern[body..]
        .windows(2)
        .position(|w| w == [kind, b']'])
        .ok_or(UNMATCHED_BRACKET)?;
    let name = &pattern[body..body + len];
    let element = match (kind, name) {
        (b':', _) => Element::Class(
            CLASSES
                .iter()
                .find(|class| class.as_bytes() == name)
                .ok_or(INVALID_CLASS)?,
        ),
        (b'.', &[c]) => Element::Byte(c),
        (b'=', &[c]) => Element::Equivalent(c),
        _ => return Err(INVALID_COLLATION),
    };
    Ok((element, body + len + 2))
}

/// Translates the bracket expression whose text starts at `start`, just after its `[`; returns
/// the `regex` crate's class and where the expression ends.
pub(super) fn bracket(pattern: &[u8], start: usize) -> Result<(String, usize), &'static str> {
    let negated = pattern.get(start) == Some(&b'^');
    let body = start + usize::from(negated);
    if body == pattern.len() {
        return Err(INVALID_REGEX);
    }
    let mut class = String::from(if negated { "[^" } else { "[" });
    // Whether a `-` at `at` makes a range (it is literal just before the closing `]`).
    let dash = |at: usize| {
        pattern.get(at) == Some(&b'-') && pattern.get(at + 1).is_some_and(|&c| c != b']')
    };
    let mut i = body;
    loop {
        match pattern.get(i) {
            None => return Err(UNMATCHED_BRACKET),
            Some(b']') if i > body => break,
            Some(_) => {}
        }
        let (first, next) = element(pattern, i)?;
        i = next;
        if dash(i) {
            let (Element::Byte(low), (Element::Byte(high), next)) =
                (first, element(pattern, i + 1)?)
            else {
                return Err(INVALID_RANGE);
            };
            // `[a-c-e]`: a range cannot start another.
            if high < low || dash(next) {
                return Err(INVALID_RANGE);
            }
            push_literal(&mut class, low);
            class.push('-');
            push_literal(&mut class, high);
            i = next;
        } else {
            match first {
                Element::Byte(b) | Element::Equivalent(b) => push_literal(&mut class, b),
                Element::Class(name) => {
                    class.push_str("[:");
                    class.push_str(name);
                    class.push_str(":]");
                }
            }
        }
    }
    // GNU refuses `[:alpha:]`, a common slip for `[[:alpha:]]`.
    let inner = &pattern[body..i];
    if inner.len() > 1
        && inner.first() == Some(&b':')
        && inner.last() == Some(&b':')
        && inner.iter().any(|&c| c != b':')
    {
        return Err(CLASS_SYNTAX);
    }
    class.push(']');
    Ok((class, i + 1))
}

#[cfg(test)]
mod tests {
    use crate::filters::testing::grep_lines;

    #[test]
    fn grep_bracket_expressions_follow_posix() {
        let text = "]\n\\\na\nB\n-\n5\n:\n";
        assert_eq!(grep_lines(&[], "[]x]", text), "]");
        assert_eq!(grep_lines(&["-x"], "[^]a]", text), "\\|B|-|5|:");
        assert_eq!(grep_lines(&[], r"[\]", text), "\\");
        assert_eq!(grep_lines(&[], "[[:upper:]]", text), "B");
        assert_eq!(grep_lines(&[], "[[:digit:][:punct:]]", text), "]|\\|-|5|:");
        assert_eq!(grep_lines(&[], "[a-]", text), "a|-");
        assert_eq!(grep_lines(&[], "[--/]", text), "-");
        assert_eq!(grep_lines(&[], "[[.-.]]", text), "-");
        assert_eq!(grep_lines(&[], "[[=a=]]", text), "a");
        assert_eq!(grep_lines(&[], "[[.a.]-c]", text), "a");
        assert_eq!(grep_lines(&[], "[::]", text), ":");
        assert_eq!(grep_lines(&["-E"], "[+|(]", "+\n|\n(\nx\n"), "+|||(");
    }
}
