//! The `klp` command: boot the kernel, run its shell, instrument and inspect kernels.

mod build;
mod demo;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use klp_artifacts as artifacts;
use klp_core::fs::hostdir::StdDir;
use klp_shell::{self as shell, Host, Shell};
use klp_wasmtime::{self as rt, Options};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// Generate a live patch module from a source diff, as kpatch-build does, or from two
    /// builds of an object.
    Build(build::BuildArgs),
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
    /// Host directory of out-of-tree modules, mounted read-only at
    /// /lib/modules/<release>/extra (insmod NAME looks there first).
    #[arg(long, value_name = "DIR")]
    modules: Option<PathBuf>,
    /// Mount a host directory into the kernel's namespace (repeatable).
    #[arg(long = "mount", value_name = "HOST_DIR:GUEST_DIR[:ro]")]
    mounts: Vec<String>,
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
    /// Let wasmtime inline calls (direct calls inline; slot calls cannot). Not for a kernel
    /// with tasks (wasmtime cannot inline with stack switching).
    #[arg(long)]
    inline: bool,
    /// Run the kernel without tasks, as the page does today: no kernel threads or kworker,
    /// sleeps end by running the timers, transitions complete at once (and --inline works).
    #[arg(long)]
    no_tasks: bool,
    /// Seed of the scheduler's choices: the same seed replays the same interleaving of tasks.
    #[arg(long, value_name = "N", default_value_t = 1)]
    sched_seed: u64,
    /// How the kernel's calls reach their ftrace slots: `dynamic` boots the kernel plain and
    /// swaps in code that calls through the slots only while a hook needs them (Linux's
    /// dynamic ftrace); `always` calls through every slot all the time.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = FtraceMode::Dynamic)]
    ftrace: FtraceMode,
    /// Directory of wasmtime's compilation cache: a boot whose kernel, modules, wasmtime and
    /// CPU were seen before compiles nothing. Default: $XDG_CACHE_HOME/klp-wasm, else
    /// $HOME/.cache/klp-wasm. A cache that cannot be used is reported, and the boot compiles.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile the kernel and its modules afresh, without reading or filling a cache.
    #[arg(long)]
    no_cache: bool,
}

/// `--ftrace`: see [`klp_core::ftrace::code::Mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FtraceMode {
    /// Plain until a hook needs the slots.
    Dynamic,
    /// Every call through its slot.
    Always,
}

impl RunArgs {
    /// The compilation cache's directory: `--cache-dir`, else the default of
    /// [`default_cache_dir`]; none with `--no-cache`.
    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(|| default_cache_dir(|name| std::env::var_os(name)))
    }
}

/// `$XDG_CACHE_HOME/klp-wasm`, else `$HOME/.cache/klp-wasm`, with `var` reading the
/// environment; a variable that is unset, empty or relative counts as unset (as the XDG base
/// directory specification says), and with neither there is no cache.
fn default_cache_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let absolute = |name| var(name).map(PathBuf::from).filter(|dir| dir.is_absolute());
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("klp-wasm"))
}

/// The largest file `klp` reads (a kernel, a script, a kernel to instrument or list): 64 MiB.
const MAX_INPUT: u64 = 64 << 20;

/// Reads a regular file of at most [`MAX_INPUT`] bytes; a FIFO or a device is refused before it
/// is opened, and a file growing while it is read stops at the limit and one byte.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    let read = || -> Result<Vec<u8>> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            bail!("not a regular file");
        }
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() > MAX_INPUT {
            bail!("File too large");
        }
        let mut data = Vec::new();
        file.take(MAX_INPUT + 1).read_to_end(&mut data)?;
        if data.len() as u64 > MAX_INPUT {
            bail!("File too large");
        }
        Ok(data)
    };
    read().with_context(|| format!("reading {}", path.display()))
}

/// The shell's surroundings on a terminal.
#[derive(Default)]
struct Terminal {
    /// Set by the Ctrl-C handler, if one is installed: `sleep` ends early.
    sigint: Option<Arc<AtomicBool>>,
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
        let end = Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 3600.0));
        let slice = Duration::from_millis(20);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if self
                .sigint
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                break;
            }
            std::thread::sleep(left.min(slice));
        }
    }
}

/// A `--mount` argument: `HOST_DIR:GUEST_DIR[:ro|:rw]`.
struct MountSpec {
    host: PathBuf,
    guest: String,
    readonly: bool,
}

fn parse_mount(spec: &str) -> Result<MountSpec> {
    let (rest, readonly) = match spec.rsplit_once(':') {
        Some((rest, "ro")) => (rest, true),
        Some((rest, "rw")) => (rest, false),
        _ => (spec, false),
    };
    let Some((host, guest)) = rest.rsplit_once(':') else {
        bail!("--mount: '{spec}': expected HOST_DIR:GUEST_DIR[:ro]");
    };
    if host.is_empty() || !guest.starts_with('/') {
        bail!("--mount: '{spec}': expected HOST_DIR:GUEST_DIR[:ro] with an absolute GUEST_DIR");
    }
    Ok(MountSpec {
        host: PathBuf::from(host),
        guest: guest.to_string(),
        readonly,
    })
}

/// Mounts a host directory, or says why not as `klp: OPTION: ...`.
fn mount(engine: &mut rt::WasmtimeEngine, option: &str, spec: &MountSpec) -> Result<()> {
    let dir = StdDir::open(&spec.host)
        .map_err(|reason| anyhow!("{option}: {}: {reason}", spec.host.display()))?;
    let source = dir.root().display().to_string();
    klp_core::fs::mount_host(engine, Box::new(dir), &source, &spec.guest, spec.readonly)
        .map_err(|err| anyhow!("{option}: {}: {err}", spec.guest))
}

fn run(args: RunArgs) -> Result<i32> {
    let kernel = match &args.kernel {
        Some(path) => read_input(path)?,
        None => artifacts::KERNEL.to_vec(),
    };
    let mut engine = rt::boot(
        &kernel,
        &args.cmdline,
        !args.no_instrument,
        Options {
            inlining: args.inline,
            no_tasks: args.no_tasks,
            sched_seed: args.sched_seed,
            ftrace: match args.ftrace {
                FtraceMode::Dynamic => klp_core::ftrace::code::Mode::Dynamic,
                FtraceMode::Always => klp_core::ftrace::code::Mode::Always,
            },
            cache_dir: args.cache_dir(),
        },
    )?;
    let specs: Vec<MountSpec> = args
        .mounts
        .iter()
        .map(|spec| parse_mount(spec))
        .collect::<Result<_>>()?;
    if let Some(dir) = &args.modules {
        let extra = MountSpec {
            host: dir.clone(),
            guest: klp_core::fs::modules_dir(&mut engine) + "/extra",
            readonly: true,
        };
        mount(&mut engine, "--modules", &extra)?;
    }
    for spec in &specs {
        mount(&mut engine, "--mount", spec)?;
    }
    let mut host = Terminal::default();
    let mut shell = Shell::new(shell::Options {
        errexit: args.errexit,
    });
    if let Some(commands) = &args.commands {
        return Ok(shell.run(&mut engine, &mut host, commands));
    }
    if let Some(path) = &args.script {
        let script = String::from_utf8(read_input(path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(shell.run(&mut engine, &mut host, &script));
    }
    // Commands read from standard input: Ctrl-C (SIGINT) interrupts the running command, not
    // the session, as in an interactive shell.
    let sigint = Arc::new(AtomicBool::new(false));
    let interrupter = engine.interrupter();
    let (flag, handler) = (Arc::clone(&sigint), interrupter.clone());
    ctrlc::set_handler(move || {
        flag.store(true, Ordering::Relaxed);
        handler.interrupt();
    })
    .context("installing the Ctrl-C handler")?;
    host.sigint = Some(Arc::clone(&sigint));
    let interactive = std::io::stdin().is_terminal();
    let mut status = 0;
    let lines = read_lines();
    for number in 1.. {
        if interactive {
            host.out("# ");
        }
        let Some(bytes) = next_line(&lines, &mut engine, &sigint, &interrupter)? else {
            break;
        };
        // Lines are bytes: one that is not UTF-8 is an error for that line alone.
        let Ok(line) = std::str::from_utf8(&bytes) else {
            host.err(&format!("sh: {number}: invalid UTF-8 in the line\n"));
            status = 2;
            if args.errexit {
                break;
            }
            continue;
        };
        if line.trim() == "exit" {
            break;
        }
        sigint.store(false, Ordering::Relaxed);
        interrupter.clear();
        status = shell.run(&mut engine, &mut host, line);
        if status == shell::INTERRUPTED && interactive {
            host.out("\n");
        }
        if status != 0 && args.errexit {
            break;
        }
    }
    Ok(status)
}

/// How long the prompt waits for a line before it gives the kernel that much time.
const IDLE: Duration = Duration::from_millis(250);

/// Standard input's lines, read by a thread of their own so that the prompt can wait with a
/// timeout; `Err` for a read error, and the channel closes at the end of input.
fn read_lines() -> std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut bytes = Vec::new();
            match stdin.read_until(b'\n', &mut bytes) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.send(Ok(bytes)).is_err() {
                        break;
                    }
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                    break;
                }
            }
        }
    });
    rx
}

/// The next line of input, `None` at its end. While the prompt waits the kernel runs, as a
/// machine's does: every [`IDLE`] without a line gives it that much time (its kernel threads,
/// timers and the livepatch transition work; a Ctrl-C then just ends the wait).
fn next_line(
    lines: &std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    engine: &mut rt::WasmtimeEngine,
    sigint: &AtomicBool,
    interrupter: &rt::Interrupter,
) -> Result<Option<Vec<u8>>> {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match lines.recv_timeout(IDLE) {
            Ok(line) => return Ok(Some(line.context("reading standard input")?)),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                // An interrupted wait, or an oops reported in the log, is no error of the
                // session's.
                let _ = klp_core::tasks::run_for(engine, IDLE);
                sigint.store(false, Ordering::Relaxed);
                interrupter.clear();
            }
        }
    }
}

fn demo() -> Result<i32> {
    let mut engine = rt::boot(artifacts::KERNEL, DEFAULT_CMDLINE, true, Options::default())?;
    let mut host = Terminal::default();
    let mut status = 0;
    for step in demo::steps() {
        match step {
            demo::Step::Say(text) => println!("\n{text}"),
            demo::Step::Run(command) => {
                println!("# {command}");
                status =
                    shell::run_script(&mut engine, &mut host, command, shell::Options::default());
            }
        }
    }
    Ok(status)
}

/// An error and its causes on one line, `outer: inner`, leaving out a cause whose words the
/// line already holds (an error that prints its source and also chains it).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

fn main() {
    match try_main() {
        Ok(status) => std::process::exit(status),
        Err(err) => {
            eprintln!("klp: {}", one_line(&err));
            std::process::exit(1);
        }
    }
}

/// Runs the command line and returns the exit status.
fn try_main() -> Result<i32> {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Run(args) => run(args)?,
        Command::Demo => demo()?,
        Command::Build(args) => build::run(args).unwrap_or_else(|err| {
            eprintln!("klp build: {}", one_line(&err));
            1
        }),
        Command::Instrument { input, output } => {
            let wasm = read_input(&input)?;
            let out = klp_passes::instrument::instrument(&wasm, &[])?;
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
                Some(path) => read_input(&path)?,
                None => artifacts::KERNEL.to_vec(),
            };
            let image = klp_core::kernel::prepare(&wasm, "", true)?;
            print!("{}", image.state.kallsyms.format());
            0
        }
    };
    if status > 255 {
        bail!("exit status {status}");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::default_cache_dir;
    use std::ffi::OsString;
    use std::path::PathBuf;

    /// [`default_cache_dir`] on an environment of `(name, value)` pairs.
    fn cache_dir_with(env: &[(&str, &str)]) -> Option<PathBuf> {
        default_cache_dir(|name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        })
    }

    #[test]
    fn the_cache_goes_under_xdg_cache_home_else_home_else_nowhere() {
        let both = [("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/u")];
        assert_eq!(cache_dir_with(&both), Some("/xdg/klp-wasm".into()));
        let home = [("HOME", "/home/u")];
        assert_eq!(
            cache_dir_with(&home),
            Some("/home/u/.cache/klp-wasm".into())
        );
        let relative = [("XDG_CACHE_HOME", "xdg"), ("HOME", "")];
        assert_eq!(cache_dir_with(&relative), None);
        assert_eq!(cache_dir_with(&[]), None);
    }
}
