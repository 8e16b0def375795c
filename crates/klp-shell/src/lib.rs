//! klp-shell: the `klp run` shell; every file access goes through the kernel's namespace.

mod commands;
mod exec;
mod filters;
pub mod lexer;
pub mod parser;
pub mod ps;

use klp_core::engine::Engine;

/// The status of a command interrupted by the user (Ctrl-C): killed by SIGINT, 128 + 2.
pub const INTERRUPTED: i32 = 130;

/// What the shell needs from its surroundings: a terminal and a clock to sleep on. Files,
/// modules included, come from the kernel's namespace only.
pub trait Host {
    /// Writes to standard output.
    fn out(&mut self, text: &str);
    /// Writes to standard error.
    fn err(&mut self, text: &str);
    /// Waits (the `sleep` command).
    fn sleep(&mut self, seconds: f64);
}

/// Options of a shell run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Stop at the first failing command (`sh -e`).
    pub errexit: bool,
}

/// A shell session: options and the status `$?` reads, kept from one script to the next (an
/// interactive session runs each line as a script).
#[derive(Debug, Clone, Default)]
pub struct Shell {
    options: Options,
    status: i32,
}

impl Shell {
    /// A session with these options; `$?` starts at 0.
    pub fn new(options: Options) -> Shell {
        Shell { options, status: 0 }
    }

    /// The last status (`$?`).
    pub fn status(&self) -> i32 {
        self.status
    }

    /// Runs a script (and-or lists separated by newlines or `;`) and returns the last status.
    /// With `errexit`, stops at the first list that fails. As sh, it runs the complete commands
    /// before a syntax error, then stops with the error and status 2.
    pub fn run(&mut self, e: &mut impl Engine, host: &mut dyn Host, script: &str) -> i32 {
        let (lists, error) = parser::parse_until_error(script);
        for list in &lists {
            let failed = exec::and_or(e, host, list, &mut self.status);
            if failed && self.options.errexit {
                return self.status;
            }
        }
        if let Some(err) = error {
            host.err(&format!("sh: Syntax error: {}\n", err.0));
            self.status = 2;
        }
        self.status
    }
}

/// Runs a script in a new session (see [`Shell::run`]) and returns the last command's status.
pub fn run_script(e: &mut impl Engine, host: &mut dyn Host, script: &str, options: Options) -> i32 {
    Shell::new(options).run(e, host, script)
}
