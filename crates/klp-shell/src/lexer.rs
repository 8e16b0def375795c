//! Splits a shell script into tokens: words (quotes removed, `$?` kept apart), operators, ends.

/// A piece of a word: literal text, or `$?` (expanded when the command runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text, quotes already removed.
    Lit(String),
    /// `$?`: the exit status of the last pipeline.
    Status,
}

/// A word: its parts, joined when the command runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Word(pub Vec<Part>);

impl Word {
    /// A word of literal text.
    pub fn lit(text: &str) -> Word {
        Word(vec![Part::Lit(text.to_string())])
    }

    fn push(&mut self, c: char) {
        match self.0.last_mut() {
            Some(Part::Lit(text)) => text.push(c),
            _ => self.0.push(Part::Lit(c.to_string())),
        }
    }

    /// The word with `$?` replaced by `status`.
    pub fn expand(&self, status: i32) -> String {
        self.0
            .iter()
            .map(|part| match part {
                Part::Lit(text) => text.clone(),
                Part::Status => status.to_string(),
            })
            .collect()
    }
}

/// The kind of a redirection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// `> FILE`: truncate or create.
    Out,
    /// `>> FILE`: append.
    Append,
    /// `< FILE`: standard input from the file.
    In,
}

/// A token and the script line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A word.
    Word(Word),
    /// `>`, `>>` or `<`.
    Redirect(RedirectKind),
    /// `|`.
    Pipe,
    /// `&&`.
    And,
    /// `||`.
    Or,
    /// `;`.
    Semi,
    /// A newline, or the end of the script.
    Newline,
}

/// A syntax error, as sh reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

/// Reads the rest of a `$` expansion: `$?` is the status; a name or `${` is refused (this shell
/// has no variables); anything else leaves the `$` literal.
fn dollar(
    word: &mut Word,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<(), SyntaxError> {
    match chars.peek() {
        Some('?') => {
            chars.next();
            word.0.push(Part::Status);
            Ok(())
        }
        Some(&c) if c == '{' || c == '_' || c.is_ascii_alphanumeric() => Err(SyntaxError(
            "\"$\" variables are not supported by this shell (only $?)".into(),
        )),
        _ => {
            word.push('$');
            Ok(())
        }
    }
}

/// Splits a script into tokens, each with its 1-based line. The last token is always a
/// [`Token::Newline`].
///
/// # Errors
/// Unterminated quotes, and syntax this shell does not have (`&`, backquotes, subshells).
pub fn tokenize(script: &str) -> Result<Vec<(Token, usize)>, SyntaxError> {
    match tokenize_until_error(script) {
        (tokens, None) => Ok(tokens),
        (_, Some(err)) => Err(err),
    }
}

/// Splits a script into tokens up to its first lexical error, as sh reads it: the tokens before
/// the error (then a [`Token::Newline`] standing for the end), and the error.
pub fn tokenize_until_error(script: &str) -> (Vec<(Token, usize)>, Option<SyntaxError>) {
    let mut tokens = Vec::new();
    let error = lex(script, &mut tokens).err();
    let line = tokens.last().map_or(1, |(_, line)| *line);
    tokens.push((Token::Newline, line));
    (tokens, error)
}

/// Pushes the script's tokens onto `tokens`, except the final [`Token::Newline`], stopping at the
/// first error.
fn lex(script: &str, tokens: &mut Vec<(Token, usize)>) -> Result<(), SyntaxError> {
    let mut chars = script.chars().peekable();
    let mut word: Option<Word> = None;
    let mut line = 1;
    let mut start = 1;
    while let Some(c) = chars.next() {
        if word.is_none() {
            start = line;
        }
        match c {
            '\'' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => {
                            line += usize::from(ch == '\n');
                            w.push(ch);
                        }
                        None => return Err(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            w.push(chars.next().unwrap_or('\\'));
                        }
                        Some('$') => dollar(w, &mut chars)?,
                        Some(ch) => {
                            line += usize::from(ch == '\n');
                            w.push(ch);
                        }
                        None => return Err(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => line += 1,
                None => {}
                Some(ch) => word.get_or_insert_with(Word::default).push(ch),
            },
            '$' => dollar(word.get_or_insert_with(Word::default), &mut chars)?,
            '#' if word.is_none() => {
                while chars.peek().is_some_and(|&ch| ch != '\n') {
                    chars.next();
                }
            }
            '`' | '(' | ')' => {
                return Err(SyntaxError(format!(
                    "\"{c}\" is not supported by this shell"
                )));
            }
            '&' if chars.peek() != Some(&'&') => {
                return Err(SyntaxError(
                    "\"&\" (background jobs) is not supported by this shell".into(),
                ));
            }
            ' ' | '\t' | '\r' | ';' | '\n' | '>' | '<' | '|' | '&' => {
                if let Some(w) = word.take() {
                    tokens.push((Token::Word(w), start));
                }
                let mut twice = |ch: char| {
                    let yes = chars.peek() == Some(&ch);
                    if yes {
                        chars.next();
                    }
                    yes
                };
                let token = match c {
                    ';' => Token::Semi,
                    '\n' => Token::Newline,
                    '>' if twice('>') => Token::Redirect(RedirectKind::Append),
                    '>' => Token::Redirect(RedirectKind::Out),
                    '<' => Token::Redirect(RedirectKind::In),
                    '|' if twice('|') => Token::Or,
                    '|' => Token::Pipe,
                    '&' if twice('&') => Token::And,
                    _ => {
                        continue;
                    }
                };
                tokens.push((token, line));
                line += usize::from(c == '\n');
            }
            _ => word.get_or_insert_with(Word::default).push(c),
        }
    }
    if let Some(w) = word.take() {
        tokens.push((Token::Word(w), start));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(script: &str) -> Vec<Token> {
        tokenize(script)
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    fn word(text: &str) -> Token {
        Token::Word(Word::lit(text))
    }

    #[test]
    fn operators_need_no_spaces() {
        assert_eq!(
            kinds("a|b&&c||d>e>>f<g;h"),
            vec![
                word("a"),
                Token::Pipe,
                word("b"),
                Token::And,
                word("c"),
                Token::Or,
                word("d"),
                Token::Redirect(RedirectKind::Out),
                word("e"),
                Token::Redirect(RedirectKind::Append),
                word("f"),
                Token::Redirect(RedirectKind::In),
                word("g"),
                Token::Semi,
                word("h"),
                Token::Newline,
            ]
        );
    }

    #[test]
    fn status_expands_outside_single_quotes_only() {
        let tokens = kinds(r#"echo $? "x$?" '$?'"#);
        let Token::Word(w) = &tokens[1] else { panic!() };
        assert_eq!(w.expand(3), "3");
        let Token::Word(w) = &tokens[2] else { panic!() };
        assert_eq!(w.expand(0), "x0");
        assert_eq!(tokens[3], word("$?"));
        assert!(tokenize("echo $HOME").is_err());
        assert_eq!(kinds("echo a$")[1], word("a$"));
    }

    #[test]
    fn words_remember_their_line() {
        let tokens = tokenize("a\nb 'c\nd' e").unwrap();
        let lines: Vec<usize> = tokens.iter().map(|(_, l)| *l).collect();
        assert_eq!(lines, vec![1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn background_jobs_and_subshells_are_refused() {
        assert!(tokenize("sleep 1 &").is_err());
        assert!(tokenize("(ls)").is_err());
        assert!(tokenize("echo `ls`").is_err());
    }
}
