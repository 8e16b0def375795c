//! File names quoted for messages as GNU tools quote them.

use std::borrow::Cow;

/// A file name quoted as GNU tools quote it in messages (gnulib's shell-escape style): bare if
/// `always` is false and the name means itself to a shell, otherwise in quotes.
pub(super) fn quote(name: &str, always: bool) -> Cow<'_, str> {
    let unprintable = |b: u8| !(0x20..0x7f).contains(&b);
    let special = name.is_empty()
        || name.starts_with(['#', '~'])
        || name == "{"
        || name == "}"
        || name
            .bytes()
            .any(|b| unprintable(b) || b" !\"$&'()*;<=>?[\\^`|".contains(&b));
    if !special {
        return if always {
            Cow::Owned(format!("'{name}'"))
        } else {
            Cow::Borrowed(name)
        };
    }
    if !name.bytes().any(unprintable) {
        return if name.contains('\'') && !name.contains(['"', '$', '`', '\\', '!']) {
            Cow::Owned(format!("\"{name}\""))
        } else {
            Cow::Owned(format!("'{}'", name.replace('\'', r"'\''")))
        };
    }
    // Unprintable bytes go in $'...' segments between single-quoted runs.
    let mut quoted = String::from("'");
    let mut in_dollar = false;
    for b in name.bytes() {
        if unprintable(b) {
            if !in_dollar {
                quoted.push_str("'$'");
                in_dollar = true;
            }
            match b {
                0x07 => quoted.push_str(r"\a"),
                0x08 => quoted.push_str(r"\b"),
                b'\t' => quoted.push_str(r"\t"),
                b'\n' => quoted.push_str(r"\n"),
                0x0b => quoted.push_str(r"\v"),
                0x0c => quoted.push_str(r"\f"),
                b'\r' => quoted.push_str(r"\r"),
                _ => quoted.push_str(&format!("\\{b:03o}")),
            }
        } else {
            if in_dollar {
                quoted.push_str("''");
                in_dollar = false;
            }
            if b == b'\'' {
                quoted.push_str(r"'\''");
            } else {
                quoted.push(char::from(b));
            }
        }
    }
    quoted.push('\'');
    Cow::Owned(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_names_as_gnu_messages_do() {
        for (name, when_needed, always) in [
            ("f", "f", "'f'"),
            (
                "a,b%c+d@e:f.g/h_-]{x}",
                "a,b%c+d@e:f.g/h_-]{x}",
                "'a,b%c+d@e:f.g/h_-]{x}'",
            ),
            ("a~b#", "a~b#", "'a~b#'"),
            ("~a", "'~a'", "'~a'"),
            ("#a", "'#a'", "'#a'"),
            ("{", "'{'", "'{'"),
            ("a b", "'a b'", "'a b'"),
            ("a=b", "'a=b'", "'a=b'"),
            ("x$y", "'x$y'", "'x$y'"),
            ("a\"b", "'a\"b'", "'a\"b'"),
            ("it's", "\"it's\"", "\"it's\""),
            ("it's!", r"'it'\''s!'", r"'it'\''s!'"),
            ("a\tb", r"'a'$'\t''b'", r"'a'$'\t''b'"),
            ("a\nb", r"'a'$'\n''b'", r"'a'$'\n''b'"),
            ("é", r"''$'\303\251'", r"''$'\303\251'"),
            ("\x01", r"''$'\001'", r"''$'\001'"),
            ("", "''", "''"),
        ] {
            assert_eq!(quote(name, false), when_needed, "{name:?}");
            assert_eq!(quote(name, true), always, "{name:?}");
        }
    }
}
