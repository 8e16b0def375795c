//! The shell's commands, each reporting errors the way the real tool does.

use super::Host;
use super::filters::{self, ReadFile, Streams};
use crate::INTERRUPTED;
use crate::ps;
use klp_core::engine::Engine;
use klp_core::errno::Errno;
use klp_core::fs;
use klp_core::kernel::{TaskError, run_task};
use klp_core::loader;
use klp_core::sys::{self, Stat, SysError};

/// The commands `help` lists, with a one-line synopsis each.
const HELP: &[(&str, &str)] = &[
    ("cat [FILE...]", "print files (or standard input)"),
    ("echo [-n] TEXT...", "print text"),
    ("ls [-l] [PATH...]", "list directories"),
    ("mkdir [-p] DIR...", "create directories"),
    ("rm [-r] [-f] FILE...", "remove files"),
    ("rmdir DIR...", "remove empty directories"),
    (
        "dmesg [-C | -c] [-r | -x]",
        "print (and clear) the kernel log; raw or with levels",
    ),
    ("uname [-asnrvm]", "print system information"),
    ("insmod NAME|PATH [param=value...]", "load a module"),
    ("rmmod NAME", "unload a module"),
    ("lsmod", "list loaded modules"),
    ("ps", "list every task: pid, state, command"),
    ("grep [-vciEFqn] PATTERN [FILE...]", "print matching lines"),
    ("head [-n N] [FILE...]", "print the first lines"),
    ("tail [-n N] [FILE...]", "print the last lines"),
    ("wc [-lwc] [FILE...]", "count lines, words, bytes"),
    ("sort [-rnu] [FILE...]", "sort lines"),
    ("uniq [-cdu] [FILE]", "drop repeated lines"),
    ("true, false", "succeed, fail"),
    ("sleep SECONDS", "wait"),
    ("help", "this list"),
];

/// What `help` says about the shell's syntax and its one file namespace.
const NAMESPACE: &str = "\
syntax: CMD; CMD   CMD | CMD   CMD && CMD   CMD || CMD   > FILE  >> FILE  < FILE   $?   # comment
files: every path is in the kernel's namespace (ramfs /, /proc, /sys); host directories appear
  only where mounted (klp run --mount HOST_DIR:DIR[:ro], --modules DIR; see /proc/mounts).
insmod NAME finds NAME.wasm in /lib/modules/<release>/extra, then /lib/modules/<release>.
";

/// Runs one command with its standard input (`None` when nothing is piped or redirected in)
/// and returns its exit status. `line` is the script line, for sh's own messages.
pub(super) fn run(
    e: &mut impl Engine,
    host: &mut dyn Host,
    name: &str,
    args: &[&str],
    stdin: Option<&str>,
    line: usize,
) -> i32 {
    // A command is one process: every kernel call it makes runs in its task, under one pid.
    let ran =
        klp_core::tasks::with_command(e, name, |e| Ok(dispatch(e, host, name, args, stdin, line)));
    match ran {
        Ok(status) => status,
        Err(err) => {
            host.err(&format!("sh: {name}: {err}\n"));
            1
        }
    }
}

/// Runs the command `name` in the process [`run`] made for it.
fn dispatch(
    e: &mut impl Engine,
    host: &mut dyn Host,
    name: &str,
    args: &[&str],
    stdin: Option<&str>,
    line: usize,
) -> i32 {
    match name {
        "cat" => cat(e, host, args, stdin),
        "echo" => echo(host, args),
        "ls" => ls(e, host, args),
        "mkdir" => mkdir(e, host, args),
        "rm" => rm(e, host, args),
        "rmdir" => rmdir(e, host, args),
        "dmesg" => dmesg(e, host, args),
        "uname" => uname(e, host, args),
        "insmod" => insmod(e, host, args),
        "rmmod" => rmmod(e, host, args),
        "lsmod" => lsmod(e, host),
        "ps" => ps(e, host),
        "sleep" => sleep(e, host, args),
        "help" => help(e, host),
        "true" => 0,
        "false" => 1,
        "grep" => filter(e, host, filters::grep, args, stdin),
        "head" => filter(e, host, filters::head, args, stdin),
        "tail" => filter(e, host, filters::tail, args, stdin),
        "wc" => filter(e, host, filters::wc, args, stdin),
        "sort" => filter(e, host, filters::sort, args, stdin),
        "uniq" => filter(e, host, filters::uniq, args, stdin),
        _ => {
            host.err(&format!("sh: {line}: {name}: not found\n"));
            127
        }
    }
}

/// A text filter of [`filters`].
type Filter = fn(&[&str], &mut Streams<'_>, &mut ReadFile<'_>) -> i32;

/// Runs a filter whose file operands are read through the kernel's namespace.
fn filter(
    e: &mut impl Engine,
    host: &mut dyn Host,
    f: Filter,
    args: &[&str],
    stdin: Option<&str>,
) -> i32 {
    let (mut out, mut err) = (String::new(), String::new());
    let mut oopses = String::new();
    let status = {
        let mut read = |path: &str| match run_task(e, "sh", |e| fs::read_file(e, path)) {
            Ok(data) => Ok(data),
            Err(TaskError::Sys(SysError::Errno(errno))) => Err(errno.strerror()),
            Err(TaskError::Sys(SysError::Engine(err))) => Err(err.to_string()),
            Err(TaskError::Oops(oops)) => {
                oopses.push_str(&format!("{}\n", oops.report));
                Err("Segmentation fault".into())
            }
            Err(TaskError::Interrupted) => Err("Interrupted".into()),
        };
        let mut streams = Streams {
            stdin,
            out: &mut out,
            err: &mut err,
        };
        f(args, &mut streams, &mut read)
    };
    host.err(&oopses);
    host.out(&out);
    host.err(&err);
    status
}

/// Prints a failed operation as `tool: subject: reason`, or the oops and `Segmentation fault`.
fn report(host: &mut dyn Host, tool: &str, subject: &str, err: TaskError) -> i32 {
    match err {
        TaskError::Oops(oops) => {
            host.err(&format!("{}\nSegmentation fault\n", oops.report));
            139
        }
        // Killed by SIGINT: the shell prints nothing, the status is 128 + 2.
        TaskError::Interrupted => INTERRUPTED,
        TaskError::Sys(SysError::Errno(errno)) => {
            host.err(&format!("{tool}: {subject}: {errno}\n"));
            1
        }
        TaskError::Sys(SysError::Engine(err)) => {
            host.err(&format!("{tool}: {subject}: {err}\n"));
            1
        }
    }
}

/// Splits leading `-xyz` flags from operands.
fn split_flags<'a>(args: &[&'a str]) -> (String, Vec<&'a str>) {
    let mut flags = String::new();
    let mut rest = Vec::new();
    let mut operands_only = false;
    for &arg in args {
        if !operands_only && arg == "--" {
            operands_only = true;
        } else if !operands_only && arg.len() > 1 && arg.starts_with('-') {
            flags.push_str(&arg[1..]);
        } else {
            rest.push(arg);
        }
    }
    (flags, rest)
}

fn cat(e: &mut impl Engine, host: &mut dyn Host, args: &[&str], stdin: Option<&str>) -> i32 {
    let args = match (args.is_empty(), stdin) {
        (true, None) => {
            host.err("cat: missing operand\n");
            return 1;
        }
        (true, Some(_)) => &["-"][..],
        (false, _) => args,
    };
    let mut status = 0;
    for path in args {
        if *path == "-" {
            host.out(stdin.unwrap_or(""));
            continue;
        }
        match run_task(e, "cat", |e| fs::read_file(e, path)) {
            Ok(data) => host.out(&String::from_utf8_lossy(&data)),
            Err(err) => status = report(host, "cat", path, err),
        }
    }
    status
}

fn echo(host: &mut dyn Host, args: &[&str]) -> i32 {
    let (newline, words) = match args.first() {
        Some(&"-n") => (false, &args[1..]),
        _ => (true, args),
    };
    host.out(&words.join(" "));
    if newline {
        host.out("\n");
    }
    0
}

fn mode_string(stat: &Stat) -> String {
    let kind = match stat.mode & sys::S_IFMT {
        sys::S_IFDIR => 'd',
        sys::S_IFCHR => 'c',
        _ => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (stat.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn ls(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (flags, mut paths) = split_flags(args);
    let long = flags.contains('l');
    if paths.is_empty() {
        paths.push("/");
    }
    let mut status = 0;
    let many = paths.len() > 1;
    for (i, path) in paths.iter().enumerate() {
        let listing = run_task(e, "ls", |e| {
            let stat = fs::stat(e, path)?;
            if fs::is_dir(&stat) {
                Ok((true, fs::list_dir(e, path)?))
            } else {
                Ok((
                    false,
                    vec![fs::Entry {
                        name: (*path).to_string(),
                        stat,
                    }],
                ))
            }
        });
        let (is_dir, entries) = match listing {
            Ok(listing) => listing,
            Err(TaskError::Sys(SysError::Errno(errno))) => {
                host.err(&format!("ls: cannot access '{path}': {errno}\n"));
                status = 2;
                continue;
            }
            Err(err) => {
                status = report(host, "ls", path, err);
                continue;
            }
        };
        if many && is_dir {
            host.out(&format!("{}{path}:\n", if i > 0 { "\n" } else { "" }));
        }
        if long {
            if is_dir {
                host.out("total 0\n");
            }
            let links = entries
                .iter()
                .map(|en| en.stat.nlink.to_string().len())
                .max()
                .unwrap_or(1);
            let sizes = entries
                .iter()
                .map(|en| en.stat.size.to_string().len())
                .max()
                .unwrap_or(1);
            for entry in &entries {
                host.out(&format!(
                    "{} {:>links$} root root {:>sizes$} {}\n",
                    mode_string(&entry.stat),
                    entry.stat.nlink,
                    entry.stat.size,
                    entry.name
                ));
            }
        } else {
            for entry in &entries {
                host.out(&format!("{}\n", entry.name));
            }
        }
    }
    status
}

fn mkdir(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (flags, paths) = split_flags(args);
    let parents = flags.contains('p');
    if paths.is_empty() {
        host.err("mkdir: missing operand\n");
        return 1;
    }
    let mut status = 0;
    for path in paths {
        let result = run_task(e, "mkdir", |e| {
            if parents {
                fs::mkdir_all(e, path)
            } else {
                fs::mkdir(e, path)
            }
        });
        match result {
            Ok(()) => {}
            Err(TaskError::Sys(SysError::Errno(errno))) => {
                host.err(&format!(
                    "mkdir: cannot create directory '{path}': {errno}\n"
                ));
                status = 1;
            }
            Err(err) => status = report(host, "mkdir", path, err),
        }
    }
    status
}

fn remove_tree(e: &mut impl Engine, path: &str) -> Result<(), SysError> {
    let stat = fs::stat(e, path)?;
    if fs::is_dir(&stat) {
        for entry in fs::list_dir(e, path)? {
            remove_tree(e, &format!("{}/{}", fs::normalize(path), entry.name))?;
        }
        fs::rmdir(e, path)
    } else {
        fs::unlink(e, path)
    }
}

fn rm(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (flags, paths) = split_flags(args);
    let (recursive, force) = (
        flags.contains('r') || flags.contains('R'),
        flags.contains('f'),
    );
    if paths.is_empty() && !force {
        host.err("rm: missing operand\n");
        return 1;
    }
    let mut status = 0;
    for path in paths {
        let result = run_task(e, "rm", |e| {
            if recursive {
                remove_tree(e, path)
            } else {
                fs::unlink(e, path)
            }
        });
        match result {
            Ok(()) => {}
            Err(TaskError::Sys(SysError::Errno(Errno::ENOENT))) if force => {}
            Err(TaskError::Sys(SysError::Errno(errno))) => {
                host.err(&format!("rm: cannot remove '{path}': {errno}\n"));
                status = 1;
            }
            Err(err) => status = report(host, "rm", path, err),
        }
    }
    status
}

fn rmdir(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    if args.is_empty() {
        host.err("rmdir: missing operand\n");
        return 1;
    }
    let mut status = 0;
    for path in args {
        match run_task(e, "rmdir", |e| fs::rmdir(e, path)) {
            Ok(()) => {}
            Err(TaskError::Sys(SysError::Errno(errno))) => {
                host.err(&format!("rmdir: failed to remove '{path}': {errno}\n"));
                status = 1;
            }
            Err(err) => status = report(host, "rmdir", path, err),
        }
    }
    status
}

/// util-linux's names of the log levels, for `dmesg -x`.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

fn dmesg(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (flags, _) = split_flags(args);
    if let Some(bad) = flags.chars().find(|c| !matches!(c, 'C' | 'c' | 'r' | 'x')) {
        host.err(&format!("dmesg: invalid option -- '{bad}'\n"));
        return 1;
    }
    let result = run_task(e, "dmesg", |e| {
        let text = if flags.contains('C') {
            String::new()
        } else {
            sys::syslog_read_all(e)?
        };
        if flags.contains('C') || flags.contains('c') {
            sys::syslog_clear(e)?;
        }
        Ok(text)
    });
    let raw = match result {
        Ok(text) => text,
        Err(err) => return report(host, "dmesg", "syslog", err),
    };
    if flags.contains('r') {
        host.out(&raw);
        return 0;
    }
    for line in raw.lines() {
        let (level, text) = sys::syslog_line(line);
        match level {
            Some(level) if flags.contains('x') => {
                let name = LEVELS[usize::from(level)];
                host.out(&format!("kern  :{name:<6}: {text}\n"));
            }
            _ => host.out(&format!("{text}\n")),
        }
    }
    0
}

fn uname(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (flags, _) = split_flags(args);
    let uts = match run_task(e, "uname", sys::uname) {
        Ok(uts) => uts,
        Err(err) => return report(host, "uname", "uname", err),
    };
    let order = ['s', 'n', 'r', 'v', 'm'];
    let wanted: Vec<usize> = if flags.contains('a') {
        (0..5).collect()
    } else if flags.is_empty() {
        vec![0]
    } else if let Some(bad) = flags.chars().find(|c| !order.contains(c)) {
        host.err(&format!("uname: invalid option -- '{bad}'\n"));
        return 1;
    } else {
        (0..5).filter(|&i| flags.contains(order[i])).collect()
    };
    let fields: Vec<&str> = wanted.iter().map(|&i| uts.fields[i].as_str()).collect();
    host.out(&format!("{}\n", fields.join(" ")));
    0
}

fn insmod(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let Some((&target, params)) = args.split_first() else {
        host.err("insmod: ERROR: missing filename.\n");
        return 1;
    };
    // finit_module: the module file is read from the kernel's namespace.
    let bytes = match run_task(e, "insmod", |e| fs::read_module(e, target)) {
        Ok(bytes) => bytes,
        Err(TaskError::Sys(SysError::Errno(errno))) => {
            host.err(&format!(
                "insmod: ERROR: could not load module {target}: {errno}\n"
            ));
            return 1;
        }
        Err(err) => return report(host, "insmod", target, err),
    };
    let name = loader::module_name(target);
    match run_task(e, "insmod", |e| {
        loader::load_module(e, &name, &bytes, params)
    }) {
        Ok(()) => 0,
        Err(TaskError::Sys(SysError::Errno(errno))) => {
            host.err(&format!(
                "insmod: ERROR: could not insert module {target}: {}\n",
                insmod_strerror(errno)
            ));
            1
        }
        Err(err) => report(host, "insmod", target, err),
    }
}

/// kmod's `mod_strerror`: insmod's own texts for a few errnos.
fn insmod_strerror(errno: Errno) -> String {
    match errno {
        Errno::ENOEXEC => "Invalid module format".into(),
        Errno::ENOENT => "Unknown symbol in module".into(),
        Errno::ESRCH => "Module has wrong symbol version".into(),
        Errno::EINVAL => "Invalid parameters".into(),
        other => other.strerror(),
    }
}

fn rmmod(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (_, names) = split_flags(args);
    if names.is_empty() {
        host.err("rmmod: ERROR: missing module name.\n");
        return 1;
    }
    let mut status = 0;
    for target in names {
        let name = loader::module_name(target);
        match run_task(e, "rmmod", |e| loader::unload_module(e, &name)) {
            Ok(()) => {}
            Err(TaskError::Sys(SysError::Errno(Errno::ENOENT))) => {
                host.err(&format!(
                    "rmmod: ERROR: Module {name} is not currently loaded\n"
                ));
                status = 1;
            }
            Err(TaskError::Sys(SysError::Errno(Errno::EBUSY))) => {
                host.err(&format!("rmmod: ERROR: Module {name} is in use\n"));
                status = 1;
            }
            Err(TaskError::Sys(SysError::Errno(errno))) => {
                host.err(&format!(
                    "rmmod: ERROR: could not remove module {name}: {errno}\n"
                ));
                status = 1;
            }
            Err(err) => status = report(host, "rmmod", &name, err),
        }
    }
    status
}

fn lsmod(e: &mut impl Engine, host: &mut dyn Host) -> i32 {
    let text = match run_task(e, "lsmod", |e| fs::read_file(e, "/proc/modules")) {
        Ok(data) => String::from_utf8_lossy(&data).into_owned(),
        Err(err) => return report(host, "lsmod", "/proc/modules", err),
    };
    host.out("Module                  Size  Used by\n");
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, size, refcnt, deps, ..] = fields[..] {
            let deps = deps.trim_end_matches(',');
            let deps = if deps == "-" { "" } else { deps };
            host.out(format!("{name:<19} {size:>8}  {refcnt} {deps}").trim_end());
            host.out("\n");
        }
    }
    0
}

/// `ps`: the tasks of `/proc/<pid>/stat`, as procps `ps -e -o pid,stat,comm` shows them.
fn ps(e: &mut impl Engine, host: &mut dyn Host) -> i32 {
    let listing = run_task(e, "ps", ps::list);
    match listing {
        Ok(tasks) => {
            host.out(&ps::format(&tasks));
            0
        }
        Err(err) => report(host, "ps", "/proc", err),
    }
}

/// `sleep`: on a kernel with tasks, the kernel runs meanwhile (its virtual time passes, kernel
/// threads and timers run); otherwise the host waits.
fn sleep(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let Some(arg) = args.first() else {
        host.err("sleep: missing operand\n");
        return 1;
    };
    match arg.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            if !e.has_tasks() {
                host.sleep(seconds);
                return 0;
            }
            let d = core::time::Duration::from_secs_f64(seconds.min(1e9));
            match run_task(e, "sleep", |e| klp_core::tasks::run_for(e, d)) {
                Ok(()) => 0,
                Err(err) => report(host, "sleep", arg, err),
            }
        }
        _ => {
            host.err(&format!("sleep: invalid time interval '{arg}'\n"));
            1
        }
    }
}

fn help(e: &mut impl Engine, host: &mut dyn Host) -> i32 {
    for (synopsis, what) in HELP {
        host.out(&format!("  {synopsis:<40} {what}\n"));
    }
    host.out(NAMESPACE);
    let dir = fs::modules_dir(e);
    let listing = run_task(e, "help", |e| fs::list_dir(e, &dir));
    if let Ok(entries) = listing {
        let names: Vec<&str> = entries
            .iter()
            .filter_map(|en| en.name.strip_suffix(".wasm"))
            .collect();
        host.out(&format!("modules in {dir}: {}\n", names.join(" ")));
    }
    0
}
