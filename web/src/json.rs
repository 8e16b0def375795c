//! A tiny JSON writer for the page's getters (a few flat shapes; no serde needed).

use std::fmt::Write as _;

/// Builds one JSON value; commas and closing brackets are placed by the writer.
pub struct Json {
    out: String,
    /// Open containers: the closing character and whether the next element is the first.
    open: Vec<(char, bool)>,
    /// A key was just written: the next value takes no comma.
    after_key: bool,
}

impl Json {
    fn root(c: char) -> Self {
        let mut j = Json {
            out: String::new(),
            open: Vec::new(),
            after_key: false,
        };
        j.open(c);
        j
    }

    /// A writer whose root is an object.
    pub fn object_root() -> Self {
        Self::root('{')
    }

    /// A writer whose root is an array.
    pub fn array_root() -> Self {
        Self::root('[')
    }

    fn sep(&mut self) {
        if std::mem::take(&mut self.after_key) {
            return;
        }
        if let Some((_, first)) = self.open.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
    }

    fn open(&mut self, c: char) -> &mut Self {
        self.sep();
        self.out.push(c);
        self.open.push((if c == '{' { '}' } else { ']' }, true));
        self
    }

    /// Opens a nested object.
    pub fn object(&mut self) -> &mut Self {
        self.open('{')
    }

    /// Opens a nested array.
    pub fn array(&mut self) -> &mut Self {
        self.open('[')
    }

    /// Closes the innermost container.
    pub fn end(&mut self) -> &mut Self {
        if let Some((close, _)) = self.open.pop() {
            self.out.push(close);
        }
        self
    }

    /// Writes an object key.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.str(k);
        self.out.push(':');
        self.after_key = true;
        self
    }

    /// Writes a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.sep();
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        self
    }

    /// Writes a number.
    pub fn num(&mut self, n: impl Into<f64>) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{}", n.into());
        self
    }

    /// Writes a boolean.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    /// Writes `null`.
    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    /// Closes what is still open and returns the text.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.end();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn nested_values_get_commas_and_escapes() {
        let mut j = Json::object_root();
        j.key("a").num(1u32).key("b").array();
        j.object().key("s").str("x\"\n\\").end();
        j.null().bool(true);
        j.end().key("c").object().end();
        assert_eq!(
            j.finish(),
            r#"{"a":1,"b":[{"s":"x\"\n\\"},null,true],"c":{}}"#
        );
    }
}
