//! The `klp` command: boot the kernel, run its shell, instrument and inspect kernels.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use klp::artifacts;
use klp::runtime::wasmtime::{self as rt, Options};
use klp::shell::{self, Host};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// The command line the kernel boots with unless `--cmdline` says otherwise.
const DEFAULT_CMDLINE: &str = "console=hvc0 root=/dev/ram0 rw";

#[derive(Parser)]
#[command(
    name = "klp",
    version,
    about = "Linux kernel livepatching on WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot the kernel and run its shell (interactive, `-c`, or `--script`).
    Run(RunArgs),
    /// Boot, show a bug, live patch it, show the fix, disable the patch, unload it.
    Demo,
    /// Instrument a kernel: one ftrace slot per function, calls through the slots.
    Instrument {
        /// The kernel to instrument.
        input: PathBuf,
        /// Where to write the instrumented kernel.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print a kernel's symbols like /proc/kallsyms (the built-in kernel by default).
    Kallsyms {
        /// A kernel .wasm (raw or instrumented).
        file: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kernel to boot instead of the built-in one.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = DEFAULT_CMDLINE)]
    cmdline: String,
    /// Directory searched first for modules named by insmod.
    #[arg(long)]
    modules: Option<PathBuf>,
    /// Commands to run, separated by `;` or newlines.
    #[arg(short = 'c')]
    commands: Option<String>,
    /// A file of commands to run.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Stop at the first failing command.
    #[arg(short = 'e')]
    errexit: bool,
    /// Boot the kernel as built, without the ftrace hook (nothing can be patched).
    #[arg(long)]
    no_instrument: bool,
    /// Let wasmtime inline calls (direct calls inline; slot calls cannot).
    #[arg(long)]
    inline: bool,
}

/// The shell's surroundings on a terminal.
struct Terminal {
    modules: Option<PathBuf>,
}

impl Host for Terminal {
    fn out(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (`klp run ... | head`) is not an error worth a panic.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
    fn err(&mut self, text: &str) {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    fn sleep(&mut self, seconds: f64) {
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds.min(3600.0)));
    }
    fn module(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let io_err = |e: std::io::Error| {
            e.raw_os_error()
                .map_or_else(|| e.to_string(), |n| klp::errno::Errno(n).strerror())
        };
        if name.contains('/') || name.ends_with(".wasm") || name.ends_with(".ko") {
            return std::fs::read(name).map_err(io_err);
        }
        if let Some(dir) = &self.modules {
            for candidate in [
                name.to_string(),
                name.replace('_', "-"),
                name.replace('-', "_"),
            ] {
                let path = dir.join(format!("{candidate}.wasm"));
                if path.exists() {
                    return std::fs::read(path).map_err(io_err);
                }
            }
        }
        artifacts::module(name)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "No such file or directory".into())
    }
    fn module_names(&self) -> Vec<String> {
        artifacts::names()
    }
}

fn run(args: RunArgs) -> Result<i32> {
    let kernel = match &args.kernel {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => artifacts::KERNEL.to_vec(),
    };
    let mut engine = rt::boot(
        &kernel,
        &args.cmdline,
        !args.no_instrument,
        Options {
            inlining: args.inline,
        },
    )?;
    let mut host = Terminal {
        modules: args.modules,
    };
    let options = shell::Options {
        errexit: args.errexit,
    };
    if let Some(commands) = &args.commands {
        return Ok(shell::run_script(&mut engine, &mut host, commands, options));
    }
    if let Some(path) = &args.script {
        let script =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(shell::run_script(&mut engine, &mut host, &script, options));
    }
    let interactive = std::io::stdin().is_terminal();
    let mut status = 0;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            host.out("# ");
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        if line.trim() == "exit" {
            break;
        }
        status = shell::run_script(&mut engine, &mut host, &line, options);
        if status != 0 && args.errexit {
            break;
        }
    }
    Ok(status)
}

fn demo() -> Result<i32> {
    let mut engine = rt::boot(artifacts::KERNEL, DEFAULT_CMDLINE, true, Options::default())?;
    let mut host = Terminal { modules: None };
    let mut status = 0;
    for step in klp::demo::steps() {
        match step {
            klp::demo::Step::Say(text) => println!("\n{text}"),
            klp::demo::Step::Run(command) => {
                println!("# {command}");
                status =
                    shell::run_script(&mut engine, &mut host, command, shell::Options::default());
            }
        }
    }
    Ok(status)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Run(args) => run(args)?,
        Command::Demo => demo()?,
        Command::Instrument { input, output } => {
            let wasm =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let out = klp::instrument::instrument(&wasm, &[])?;
            std::fs::write(&output, &out.wasm)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "{}: {} functions, {} slots, {} notrace",
                output.display(),
                out.ftrace.entries.len(),
                out.ftrace.nr_slots,
                out.ftrace.entries.iter().filter(|en| en.notrace).count()
            );
            0
        }
        Command::Kallsyms { file } => {
            let wasm = match file {
                Some(path) => {
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
                }
                None => artifacts::KERNEL.to_vec(),
            };
            let image = klp::kernel::prepare(&wasm, "", true)?;
            print!("{}", image.state.kallsyms.format());
            0
        }
    };
    if status > 255 {
        bail!("exit status {status}");
    }
    std::process::exit(status);
}
