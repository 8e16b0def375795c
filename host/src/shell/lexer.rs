//! Splits a shell script into commands: words, quotes, `;`, newlines, `#` comments, `>`/`>>`.

/// One command: its words and an optional output redirection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command name and its arguments, quotes removed.
    pub words: Vec<String>,
    /// `> path` (false) or `>> path` (true).
    pub redirect: Option<(String, bool)>,
}

/// A syntax error, as sh reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Redirect { append: bool },
    End,
}

fn tokenize(script: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut tokens = Vec::new();
    let mut chars = script.chars().peekable();
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => w.push(ch),
                        None => return Err(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            w.extend(chars.next());
                        }
                        Some(ch) => w.push(ch),
                        None => return Err(SyntaxError("Unterminated quoted string".into())),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(ch) => word.get_or_insert_with(String::new).push(ch),
            },
            '#' if word.is_none() => {
                while chars.peek().is_some_and(|&ch| ch != '\n') {
                    chars.next();
                }
            }
            '|' | '&' | '<' | '`' | '$' | '(' | ')' => {
                return Err(SyntaxError(format!(
                    "\"{c}\" is not supported by this shell"
                )));
            }
            ' ' | '\t' | '\r' | ';' | '\n' | '>' => {
                if let Some(w) = word.take() {
                    tokens.push(Token::Word(w));
                }
                match c {
                    ';' | '\n' => tokens.push(Token::End),
                    '>' => {
                        let append = chars.peek() == Some(&'>');
                        if append {
                            chars.next();
                        }
                        tokens.push(Token::Redirect { append });
                    }
                    _ => {}
                }
            }
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word.take() {
        tokens.push(Token::Word(w));
    }
    tokens.push(Token::End);
    Ok(tokens)
}

/// Parses a script into its commands; empty commands are dropped.
///
/// # Errors
/// Unterminated quotes, a redirection without a file name, or `;` with no command before it.
pub fn parse(script: &str) -> Result<Vec<Command>, SyntaxError> {
    let mut commands = Vec::new();
    let mut current = Command {
        words: Vec::new(),
        redirect: None,
    };
    let mut tokens = tokenize(script)?.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            Token::Word(w) => current.words.push(w),
            Token::Redirect { append } => match tokens.next() {
                Some(Token::Word(path)) => current.redirect = Some((path, append)),
                Some(Token::Redirect { .. }) => {
                    return Err(SyntaxError("redirection unexpected".into()));
                }
                _ => return Err(SyntaxError("newline unexpected".into())),
            },
            Token::End => {
                if current.words.is_empty() {
                    if current.redirect.is_some() {
                        // `> file` alone truncates the file in sh; here it is an error.
                        return Err(SyntaxError("redirection without a command".into()));
                    }
                    continue;
                }
                commands.push(std::mem::replace(
                    &mut current,
                    Command {
                        words: Vec::new(),
                        redirect: None,
                    },
                ));
            }
        }
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Vec<Vec<String>> {
        parse(script)
            .unwrap()
            .into_iter()
            .map(|c| c.words)
            .collect()
    }

    #[test]
    fn semicolons_and_newlines_separate_commands() {
        assert_eq!(
            words("cat /a; ls\n\ndmesg"),
            vec![vec!["cat", "/a"], vec!["ls"], vec!["dmesg"]]
        );
    }

    #[test]
    fn quotes_keep_spaces_and_semicolons() {
        assert_eq!(
            words(r#"echo 'a; b' "c  d" e\ f"#),
            vec![vec!["echo", "a; b", "c  d", "e f"]]
        );
        assert_eq!(
            words(r#"echo "say \"hi\"""#),
            vec![vec!["echo", r#"say "hi""#]]
        );
    }

    #[test]
    fn comments_run_to_end_of_line_but_not_inside_words() {
        assert_eq!(
            words("# setup\necho a#b # trailing"),
            vec![vec!["echo", "a#b"]]
        );
    }

    #[test]
    fn redirections_are_parsed_with_or_without_spaces() {
        let cmds = parse("echo 1 > /sys/x; echo 2>>/tmp/y").unwrap();
        assert_eq!(cmds[0].redirect, Some(("/sys/x".into(), false)));
        assert_eq!(cmds[1].words, vec!["echo", "2"]);
        assert_eq!(cmds[1].redirect, Some(("/tmp/y".into(), true)));
    }

    #[test]
    fn unterminated_quote_is_a_syntax_error() {
        assert!(parse("echo 'oops").is_err());
        assert!(parse("echo >").is_err());
        assert!(parse("dmesg | tail").is_err());
    }
}
