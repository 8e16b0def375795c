//! The shell's text filters (grep, head, tail, wc, sort, uniq), behaving like GNU's under `LC_ALL=C`.

mod grep;
mod head_tail;
mod options;
mod posix_regex;
mod quote;
mod sort;
#[cfg(test)]
mod testing;
mod uniq;
mod wc;

use std::borrow::Cow;

pub use grep::grep;
pub use head_tail::{head, tail};
pub use sort::sort;
pub use uniq::uniq;
pub use wc::wc;

/// A filter's standard streams: what it reads when no file is named, and where it writes.
pub struct Streams<'a> {
    /// Standard input: the previous command's output in a pipeline, `None` when nothing is piped (then a filter with no file operand reads nothing, as from an empty terminal).
    pub stdin: Option<&'a str>,
    /// Standard output.
    pub out: &'a mut String,
    /// Standard error.
    pub err: &'a mut String,
}

/// Reads a named file's bytes; `Err` holds the strerror text, e.g. `No such file or directory`.
pub type ReadFile<'a> = dyn FnMut(&str) -> Result<Vec<u8>, String> + 'a;

/// Reads an operand's bytes: `-` is standard input, which the first read consumes; any other
/// name goes to `read`.
fn input<'a>(
    name: &str,
    stdin: &mut Option<&'a str>,
    read: &mut ReadFile<'_>,
) -> Result<Cow<'a, [u8]>, String> {
    if name == "-" {
        Ok(Cow::Borrowed(stdin.take().unwrap_or("").as_bytes()))
    } else {
        read(name).map(Cow::Owned)
    }
}

/// The lines of `text`, each without its newline (the last may lack one).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
}

/// Appends `bytes` to `out` as text, each invalid UTF-8 sequence as U+FFFD.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    out.push_str(&String::from_utf8_lossy(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_newlines_and_the_last_may_lack_one() {
        fn split(text: &[u8]) -> Vec<&[u8]> {
            lines(text).collect()
        }
        assert_eq!(split(b""), Vec::<&[u8]>::new());
        assert_eq!(split(b"\n"), [b""]);
        assert_eq!(split(b"a\n\nb"), [&b"a"[..], b"", b"b"]);
        assert_eq!(split(b"a\n\xff\n"), [&b"a"[..], b"\xff"]);
    }
}
