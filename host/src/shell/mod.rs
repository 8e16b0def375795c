//! The `klp run` shell: a small sh whose every file access goes through the kernel.

mod commands;
pub mod lexer;

use crate::engine::Engine;

/// What the shell needs from its surroundings: a terminal, a clock to sleep on, and module files.
pub trait Host {
    /// Writes to standard output.
    fn out(&mut self, text: &str);
    /// Writes to standard error.
    fn err(&mut self, text: &str);
    /// Waits (the `sleep` command).
    fn sleep(&mut self, seconds: f64);
    /// Finds a module by name (`livepatch-sample`, `livepatch_sample`) or path.
    ///
    /// # Errors
    /// The strerror-style reason, e.g. `No such file or directory`.
    fn module(&mut self, name_or_path: &str) -> Result<Vec<u8>, String>;
    /// The names of the modules this host can load by name, for `help` and completion.
    fn module_names(&self) -> Vec<String>;
}

/// Options of a shell run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Stop at the first failing command (`sh -e`).
    pub errexit: bool,
}

/// Runs a script (commands separated by newlines or `;`) and returns the last command's status.
pub fn run_script(e: &mut impl Engine, host: &mut dyn Host, script: &str, options: Options) -> i32 {
    let commands = match lexer::parse(script) {
        Ok(commands) => commands,
        Err(err) => {
            host.err(&format!("sh: Syntax error: {}\n", err.0));
            return 2;
        }
    };
    let mut status = 0;
    for command in &commands {
        status = commands::run(e, host, command);
        if status != 0 && options.errexit {
            break;
        }
    }
    status
}
