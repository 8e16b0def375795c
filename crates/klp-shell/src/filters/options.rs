//! Command lines split into options and operands as GNU getopt splits them.

/// The options a tool accepts: short letters (a `:` after one that takes an argument) and long names for them.
pub(super) struct OptionSpec {
    pub(super) short: &'static str,
    pub(super) long: &'static [(&'static str, char)],
}

impl OptionSpec {
    /// Whether option `c` takes an argument; `None` if there is no such option.
    fn takes_argument(&self, c: char) -> Option<bool> {
        let at = self.short.find(c).filter(|_| c != ':')?;
        Some(self.short[at + c.len_utf8()..].starts_with(':'))
    }
}

/// A command line split as GNU getopt does (options may follow operands until `--`).
pub(super) struct CommandLine<'a> {
    /// The options in order, each as its short letter and its argument (`""` for none).
    pub(super) options: Vec<(char, &'a str)>,
    /// The operands in order.
    pub(super) operands: Vec<&'a str>,
}

/// Why getopt refused a command line.
pub(super) enum OptionError {
    Invalid(char),
    MissingArgument(char),
    Unrecognized(String),
    Ambiguous(String, Vec<&'static str>),
    LongMissingArgument(&'static str),
    LongExtraArgument(&'static str),
}

impl OptionError {
    /// The message as glibc's getopt words it, without the tool's name and newline.
    pub(super) fn message(&self) -> String {
        match self {
            Self::Invalid(c) => format!("invalid option -- '{c}'"),
            Self::MissingArgument(c) => format!("option requires an argument -- '{c}'"),
            Self::Unrecognized(arg) => format!("unrecognized option '{arg}'"),
            Self::Ambiguous(arg, names) => {
                let mut text = format!("option '{arg}' is ambiguous; possibilities:");
                for name in names {
                    text.push_str(&format!(" '--{name}'"));
                }
                text
            }
            Self::LongMissingArgument(name) => format!("option '--{name}' requires an argument"),
            Self::LongExtraArgument(name) => format!("option '--{name}' doesn't allow an argument"),
        }
    }
}

/// Splits `args` into options and operands.
pub(super) fn parse_options<'a>(
    spec: &OptionSpec,
    args: &[&'a str],
) -> Result<CommandLine<'a>, OptionError> {
    let mut line = CommandLine {
        options: Vec::new(),
        operands: Vec::new(),
    };
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        if arg == "--" {
            line.operands.extend(rest);
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let (long, c) = match spec.long.iter().find(|(long, _)| *long == name) {
                Some(&found) => found,
                None => {
                    let matches: Vec<_> = spec
                        .long
                        .iter()
                        .filter(|(long, _)| long.starts_with(name))
                        .collect();
                    match matches.first() {
                        None => return Err(OptionError::Unrecognized(arg.to_string())),
                        Some(&&(long, c)) if matches.iter().all(|&&(_, d)| d == c) => (long, c),
                        Some(_) => {
                            let names = matches.iter().map(|&&(long, _)| long).collect();
                            return Err(OptionError::Ambiguous(arg.to_string(), names));
                        }
                    }
                }
            };
            let argument = match (spec.takes_argument(c) == Some(true), value) {
                (true, Some(value)) => value,
                (true, None) => rest
                    .next()
                    .copied()
                    .ok_or(OptionError::LongMissingArgument(long))?,
                (false, Some(_)) => return Err(OptionError::LongExtraArgument(long)),
                (false, None) => "",
            };
            line.options.push((c, argument));
        } else if let Some(cluster) = arg.strip_prefix('-').filter(|cluster| !cluster.is_empty()) {
            for (at, c) in cluster.char_indices() {
                match spec.takes_argument(c) {
                    None => return Err(OptionError::Invalid(c)),
                    Some(false) => line.options.push((c, "")),
                    Some(true) => {
                        let attached = &cluster[at + c.len_utf8()..];
                        let argument = if attached.is_empty() {
                            rest.next()
                                .copied()
                                .ok_or(OptionError::MissingArgument(c))?
                        } else {
                            attached
                        };
                        line.options.push((c, argument));
                        break;
                    }
                }
            }
        } else {
            line.operands.push(arg);
        }
    }
    Ok(line)
}
