//! Reading a unified diff: the files it changes, its hunks' lines, and the functions they touch.

use anyhow::{Result, bail};

/// One file of a diff: its paths with the first component (`a/`, `b/`) stripped, as
/// `git apply -p1` reads them, and the lines its hunks change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FilePatch {
    /// The path before the change; `None` for a new file.
    pub old: Option<String>,
    /// The path after the change; `None` for a deleted file.
    pub new: Option<String>,
    /// Line numbers (1-based) of the removed lines, in the original file.
    pub removed: Vec<usize>,
    /// Line numbers (1-based) of the added lines, in the changed file.
    pub added: Vec<usize>,
}

impl FilePatch {
    /// Every path the file goes by, old then new, without repeats.
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.old.iter().map(String::as_str).collect();
        if let Some(new) = &self.new
            && self.old.as_ref() != Some(new)
        {
            paths.push(new);
        }
        paths
    }
}

/// A path of a `---`/`+++`/`diff --git` header without its first component; `None` for
/// `/dev/null`. A tab ends the path (`diff -u` puts the time after one).
fn header_path(text: &str) -> Option<String> {
    let path = text
        .split('\t')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    if path == "/dev/null" || path.is_empty() {
        return None;
    }
    let stripped = path.split_once('/').map_or(path, |(_, rest)| rest);
    Some(stripped.to_string())
}

/// `@@ -OLD[,N] +NEW[,M] @@`: (old start, old count, new start, new count).
fn hunk_header(line: &str) -> Option<(usize, usize, usize, usize)> {
    let mut words = line.strip_prefix("@@ ")?.split_whitespace();
    let range = |word: Option<&str>, sign: char| -> Option<(usize, usize)> {
        let word = word?.strip_prefix(sign)?;
        match word.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((word.parse().ok()?, 1)),
        }
    };
    let (old, old_count) = range(words.next(), '-')?;
    let (new, new_count) = range(words.next(), '+')?;
    Some((old, old_count, new, new_count))
}

/// The files of a unified diff (git's or `diff -u`'s), in order.
///
/// # Errors
///
/// When no file header is found, or a hunk comes before one or is malformed.
pub fn parse(text: &str) -> Result<Vec<FilePatch>> {
    let mut files: Vec<FilePatch> = Vec::new();
    // Lines of the current hunk still to come: (old, new), and the next line numbers.
    let (mut old_left, mut new_left) = (0usize, 0usize);
    let (mut old_line, mut new_line) = (0usize, 0usize);
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if old_left > 0 || new_left > 0 {
            match line.as_bytes().first() {
                Some(b'-') => {
                    let file = files.last_mut().expect("a hunk follows a header");
                    file.removed.push(old_line);
                    (old_line, old_left) = (old_line + 1, old_left.saturating_sub(1));
                }
                Some(b'+') => {
                    let file = files.last_mut().expect("a hunk follows a header");
                    file.added.push(new_line);
                    (new_line, new_left) = (new_line + 1, new_left.saturating_sub(1));
                }
                Some(b'\\') => {}
                Some(b' ') | None => {
                    (old_line, old_left) = (old_line + 1, old_left.saturating_sub(1));
                    (new_line, new_left) = (new_line + 1, new_left.saturating_sub(1));
                }
                Some(_) => bail!("line {number}: not a line of a hunk: {line:?}"),
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("diff --git ") {
            let mut paths = rest.split_whitespace();
            files.push(FilePatch {
                old: paths.next().and_then(header_path),
                new: paths.next().and_then(header_path),
                ..FilePatch::default()
            });
        } else if let Some(rest) = line.strip_prefix("--- ") {
            // `diff -u` has no `diff --git` line: the `---` header starts the file.
            let starts_file = files
                .last()
                .is_none_or(|f| !f.removed.is_empty() || !f.added.is_empty());
            if starts_file {
                files.push(FilePatch::default());
            }
            let file = files.last_mut().expect("pushed above");
            file.old = header_path(rest);
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            let Some(file) = files.last_mut() else {
                bail!("line {number}: `+++` without a `---` header before it");
            };
            file.new = header_path(rest);
        } else if line.starts_with("@@") {
            let Some((old, old_count, new, new_count)) = hunk_header(line) else {
                bail!("line {number}: malformed hunk header {line:?}");
            };
            if files.is_empty() {
                bail!("line {number}: a hunk before any file header");
            }
            (old_line, old_left, new_line, new_left) = (old, old_count, new, new_count);
        }
    }
    files.retain(|f| f.old.is_some() || f.new.is_some());
    if files.is_empty() {
        bail!("no file headers (`--- a/PATH`, `+++ b/PATH`): not a unified diff");
    }
    Ok(files)
}

/// The function a line declares: `fn NAME` after `pub`, `pub(crate)`, `unsafe`, `const`,
/// `async`, `extern "C"` and the like.
pub fn declared_fn(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    loop {
        let word = words.next()?;
        if word == "fn" {
            let name = words.next()?;
            let end = name
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(name.len());
            return (end > 0).then(|| &name[..end]);
        }
        let qualifier = word.starts_with("pub")
            || word.starts_with('"')
            || ["unsafe", "const", "async", "extern", "default"].contains(&word);
        if !qualifier {
            return None;
        }
    }
}

/// The function around each of `lines` (1-based) of `text`: the nearest line at or before it
/// that declares one. Blank and comment lines change no code and count for none. Added to
/// `names` unless there.
pub fn functions_at(text: &str, lines: &[usize], names: &mut Vec<String>) {
    let all: Vec<&str> = text.lines().collect();
    for &line in lines {
        let Some(current) = line.checked_sub(1).and_then(|i| all.get(i)) else {
            continue;
        };
        let current = current.trim();
        if current.is_empty() || current.starts_with("//") {
            continue;
        }
        if let Some(name) = all[..line].iter().rev().find_map(|l| declared_fn(l))
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "\
diff --git a/guest-kernel/src/x.rs b/guest-kernel/src/x.rs
index 1..2 100644
--- a/guest-kernel/src/x.rs
+++ b/guest-kernel/src/x.rs
@@ -2,3 +2,3 @@ fn a() {
 fn b() {
--- not a header
+++ not one either
     c();
@@ -10 +10,2 @@
-x
+y
+z
";

    #[test]
    fn hunk_lines_that_look_like_headers_are_lines() {
        let files = parse(DIFF).unwrap();
        assert_eq!(
            files,
            [FilePatch {
                old: Some("guest-kernel/src/x.rs".into()),
                new: Some("guest-kernel/src/x.rs".into()),
                removed: vec![3, 10],
                added: vec![3, 10, 11],
            }]
        );
    }

    #[test]
    fn plain_diff_u_headers_and_new_files_are_read() {
        let text = "--- a/src/a.rs\t2026-01-01\n+++ b/src/a.rs\t2026-01-01\n@@ -1 +1 @@\n-a\n+b\n\
                    --- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+c\n";
        let files = parse(text).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].paths(), ["src/a.rs"]);
        assert_eq!(files[1].old, None);
        assert_eq!(files[1].paths(), ["src/new.rs"]);
    }

    #[test]
    fn garbage_is_not_a_diff() {
        assert!(parse("hello\nworld\n").is_err());
        assert!(parse("@@ -1 +1 @@\n-a\n+b\n").is_err());
        assert!(parse("--- a/x\n+++ b/x\n@@ -1 +1 @@\nnonsense\n").is_err());
        assert!(parse("--- a/x\n+++ b/x\n@@ what @@\n").is_err());
    }

    #[test]
    fn declarations_are_found_after_their_qualifiers() {
        assert_eq!(declared_fn("pub fn init() {"), Some("init"));
        assert_eq!(
            declared_fn("    pub(crate) unsafe extern \"C\" fn show<T>(m: *mut u8) -> i32 {"),
            Some("show")
        );
        assert_eq!(declared_fn("const fn msecs(ms: i32) -> i32"), Some("msecs"));
        assert_eq!(declared_fn("// fn commented()"), None);
        assert_eq!(declared_fn("let f = fn_pointer;"), None);
    }

    #[test]
    fn a_changed_line_belongs_to_the_function_before_it() {
        let text = "fn a() {\n    1;\n}\n\n/// b\nfn b() {\n    2; // two\n}\n";
        let mut names = Vec::new();
        functions_at(text, &[2, 7, 6, 8], &mut names);
        assert_eq!(names, ["a", "b"]);
        let mut names = Vec::new();
        functions_at(text, &[0, 4, 5, 99], &mut names);
        assert!(names.is_empty(), "{names:?}");
    }
}
