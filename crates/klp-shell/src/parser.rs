//! Builds the shell's syntax tree from tokens: and-or lists of pipelines of simple commands.

use super::lexer::{RedirectKind, SyntaxError, Token, Word, tokenize_until_error};

/// A redirection of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `>`, `>>` or `<`.
    pub kind: RedirectKind,
    /// The file.
    pub path: Word,
}

/// A simple command: words and redirections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command name and its arguments.
    pub words: Vec<Word>,
    /// Its redirections, in order.
    pub redirects: Vec<Redirect>,
    /// The script line it starts on (for `sh: LINE: NAME: not found`).
    pub line: usize,
}

/// Commands joined by `|`.
pub type Pipeline = Vec<Command>;

/// How a pipeline is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// `&&`: run when the previous status is 0.
    And,
    /// `||`: run when the previous status is not 0.
    Or,
}

/// Pipelines joined by `&&` and `||`; one entry of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndOr {
    /// The first pipeline.
    pub first: Pipeline,
    /// The others, with what joins each to the one before.
    pub rest: Vec<(Connector, Pipeline)>,
}

fn describe(token: &Token) -> &'static str {
    match token {
        Token::Word(_) => "word",
        Token::Redirect(RedirectKind::Out) => ">",
        Token::Redirect(RedirectKind::Append) => ">>",
        Token::Redirect(RedirectKind::In) => "<",
        Token::Pipe => "|",
        Token::And => "&&",
        Token::Or => "||",
        Token::Semi => ";",
        Token::Newline => "newline",
    }
}

fn unexpected(token: &Token, last: bool) -> SyntaxError {
    if last {
        SyntaxError("end of file unexpected".into())
    } else {
        SyntaxError(format!("\"{}\" unexpected", describe(token)))
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)].0
    }

    fn next(&mut self) -> (Token, usize) {
        let token = self.tokens[self.at.min(self.tokens.len() - 1)].clone();
        self.at += 1;
        token
    }

    fn at_end(&self) -> bool {
        self.at + 1 >= self.tokens.len()
    }

    fn skip_newlines(&mut self) {
        while *self.peek() == Token::Newline && !self.at_end() {
            self.at += 1;
        }
    }

    fn command(&mut self) -> Result<Command, SyntaxError> {
        let line = self.tokens[self.at.min(self.tokens.len() - 1)].1;
        let mut command = Command {
            words: Vec::new(),
            redirects: Vec::new(),
            line,
        };
        loop {
            match self.peek().clone() {
                Token::Word(w) => {
                    self.at += 1;
                    command.words.push(w);
                }
                Token::Redirect(kind) => {
                    self.at += 1;
                    let last = self.at_end();
                    match self.next().0 {
                        Token::Word(path) => command.redirects.push(Redirect { kind, path }),
                        other => return Err(unexpected(&other, last)),
                    }
                }
                other => {
                    if command.words.is_empty() {
                        return Err(if command.redirects.is_empty() {
                            unexpected(&other, self.at_end())
                        } else {
                            SyntaxError("redirection without a command".into())
                        });
                    }
                    return Ok(command);
                }
            }
        }
    }

    fn pipeline(&mut self) -> Result<Pipeline, SyntaxError> {
        let mut pipeline = vec![self.command()?];
        while *self.peek() == Token::Pipe {
            self.at += 1;
            self.skip_newlines();
            pipeline.push(self.command()?);
        }
        Ok(pipeline)
    }

    fn and_or(&mut self) -> Result<AndOr, SyntaxError> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        loop {
            let connector = match self.peek() {
                Token::And => Connector::And,
                Token::Or => Connector::Or,
                _ => break,
            };
            self.at += 1;
            self.skip_newlines();
            rest.push((connector, self.pipeline()?));
        }
        Ok(AndOr { first, rest })
    }
}

/// Parses a script into its and-or lists, in order; empty lines and comments give nothing.
///
/// # Errors
/// Unterminated quotes, an operator with no command on one side, a redirection without a file,
/// or syntax this shell does not have.
pub fn parse(script: &str) -> Result<Vec<AndOr>, SyntaxError> {
    match parse_until_error(script) {
        (lists, None) => Ok(lists),
        (_, Some(err)) => Err(err),
    }
}

/// Parses a script as sh reads one, a complete command (the and-or lists up to a newline) at a
/// time: the lists of every complete command before the first syntax error, and that error.
/// sh runs those commands, then stops with the error; the command holding it runs no part.
pub fn parse_until_error(script: &str) -> (Vec<AndOr>, Option<SyntaxError>) {
    let (tokens, lex_error) = tokenize_until_error(script);
    // Where the tokens stop: the end of the script, or the lexical error.
    let stop = tokens.len() - 1;
    let mut p = Parser { tokens, at: 0 };
    let mut complete = Vec::new();
    let mut command = Vec::new();
    let parse_error = loop {
        p.skip_newlines();
        if p.at_end() {
            if lex_error.is_none() {
                complete.append(&mut command);
            }
            break None;
        }
        match p.and_or() {
            Ok(list) => command.push(list),
            Err(err) => break Some(err),
        }
        match p.next().0 {
            Token::Semi => {}
            Token::Newline if p.at <= stop || lex_error.is_none() => {
                complete.append(&mut command);
            }
            Token::Newline => break None,
            other => break Some(unexpected(&other, false)),
        }
    };
    // A parse error before the lexical one is the first error; one at the place the tokens
    // stopped only says they stopped.
    let error = match (parse_error, lex_error) {
        (Some(err), Some(lex)) if p.at >= stop || err.0 == "end of file unexpected" => Some(lex),
        (Some(err), _) => Some(err),
        (None, lex) => lex,
    };
    (complete, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(command: &Command) -> Vec<String> {
        command.words.iter().map(|w| w.expand(0)).collect()
    }

    #[test]
    fn semicolons_and_newlines_separate_lists() {
        let lists = parse("cat /a; ls\n\ndmesg").unwrap();
        assert_eq!(lists.len(), 3);
        assert_eq!(words(&lists[0].first[0]), vec!["cat", "/a"]);
        assert_eq!(lists[2].first[0].line, 3);
    }

    #[test]
    fn pipes_bind_tighter_than_and_or() {
        let lists = parse("a | b && c || d | e").unwrap();
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].first.len(), 2);
        assert_eq!(lists[0].rest[0].0, Connector::And);
        assert_eq!(lists[0].rest[1].0, Connector::Or);
        assert_eq!(lists[0].rest[1].1.len(), 2);
    }

    #[test]
    fn quotes_keep_spaces_and_operators() {
        let lists = parse(r#"echo 'a; b | c' "c  d" e\ f"#).unwrap();
        assert_eq!(
            words(&lists[0].first[0]),
            vec!["echo", "a; b | c", "c  d", "e f"]
        );
    }

    #[test]
    fn comments_run_to_end_of_line_but_not_inside_words() {
        let lists = parse("# setup\necho a#b # trailing").unwrap();
        assert_eq!(words(&lists[0].first[0]), vec!["echo", "a#b"]);
    }

    #[test]
    fn redirections_are_parsed_with_or_without_spaces() {
        let lists = parse("echo 1 > /sys/x; echo 2>>/tmp/y; grep a </z").unwrap();
        let r = &lists[0].first[0].redirects[0];
        assert_eq!(
            (r.kind, r.path.expand(0)),
            (RedirectKind::Out, "/sys/x".into())
        );
        assert_eq!(words(&lists[1].first[0]), vec!["echo", "2"]);
        assert_eq!(lists[1].first[0].redirects[0].kind, RedirectKind::Append);
        assert_eq!(lists[2].first[0].redirects[0].kind, RedirectKind::In);
    }

    #[test]
    fn a_pipe_may_continue_on_the_next_line() {
        let lists = parse("dmesg |\n grep x").unwrap();
        assert_eq!(lists[0].first.len(), 2);
        assert_eq!(lists[0].first[1].line, 2);
    }

    #[test]
    fn commands_before_a_syntax_error_are_parsed_and_its_own_line_is_not() {
        let first = |script: &str| {
            let (lists, err) = parse_until_error(script);
            let names: Vec<String> = lists
                .iter()
                .map(|l| words(&l.first[0])[0].clone())
                .collect();
            (names, err.map(|e| e.0))
        };
        let eof = Some("end of file unexpected".to_string());
        assert_eq!(
            first("a; b\nc\nd |"),
            (vec!["a".into(), "b".into(), "c".into()], eof)
        );
        assert_eq!(
            first("a\nb; 'open"),
            (vec!["a".into()], Some("Unterminated quoted string".into()))
        );
        assert_eq!(
            first("a\nb |\n c ("),
            (
                vec!["a".into()],
                Some("\"(\" is not supported by this shell".into())
            )
        );
        assert_eq!(
            first("a\n; ;\n ("),
            (vec!["a".into()], Some("\";\" unexpected".into()))
        );
        assert_eq!(first("a; b"), (vec!["a".into(), "b".into()], None));
        assert_eq!(first("a; b;"), (vec!["a".into(), "b".into()], None));
        assert_eq!(
            first("a; b; 'open"),
            (vec![], Some("Unterminated quoted string".into()))
        );
    }

    #[test]
    fn operators_without_commands_are_syntax_errors() {
        assert!(parse("echo 'oops").is_err());
        assert!(parse("echo >").is_err());
        assert!(parse("| tail").is_err());
        assert!(parse("dmesg |").is_err());
        assert!(parse("a && ; b").is_err());
        assert!(parse("> /tmp/x").is_err());
        assert_eq!(
            parse("dmesg |"),
            Err(SyntaxError("end of file unexpected".into()))
        );
        assert_eq!(
            parse("ls ; ; ls"),
            Err(SyntaxError("\";\" unexpected".into()))
        );
    }
}
