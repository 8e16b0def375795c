//! The shell's commands, each reporting errors the way the real tool does.

use super::Host;
use super::lexer::Command;
use crate::engine::Engine;
use crate::errno::Errno;
use crate::fs::{self, WriteError};
use crate::kernel::{TaskError, run_task};
use crate::loader;
use crate::sys::{self, Stat, SysError};

/// The commands `help` lists, with a one-line synopsis each.
const HELP: &[(&str, &str)] = &[
    ("cat FILE...", "print files"),
    (
        "echo [-n] TEXT... [> FILE | >> FILE]",
        "print text, or write it to a file",
    ),
    ("ls [-l] [PATH...]", "list directories"),
    ("mkdir [-p] DIR...", "create directories"),
    ("rm [-r] [-f] FILE...", "remove files"),
    ("rmdir DIR...", "remove empty directories"),
    ("dmesg [-C | -c]", "print (and clear) the kernel log"),
    ("uname [-asnrvm]", "print system information"),
    ("insmod NAME|PATH [param=value...]", "load a module"),
    ("rmmod NAME", "unload a module"),
    ("lsmod", "list loaded modules"),
    ("sleep SECONDS", "wait"),
    ("help", "this list"),
];

/// Collects standard output for a redirection; errors still reach the terminal.
struct Capture<'a> {
    inner: &'a mut dyn Host,
    text: String,
}

impl Host for Capture<'_> {
    fn out(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn err(&mut self, text: &str) {
        self.inner.err(text);
    }
    fn sleep(&mut self, seconds: f64) {
        self.inner.sleep(seconds);
    }
    fn module(&mut self, name_or_path: &str) -> Result<Vec<u8>, String> {
        self.inner.module(name_or_path)
    }
    fn module_names(&self) -> Vec<String> {
        self.inner.module_names()
    }
}

/// Runs one command and returns its exit status.
pub fn run(e: &mut impl Engine, host: &mut dyn Host, command: &Command) -> i32 {
    let name = command.words[0].as_str();
    let args: Vec<&str> = command.words[1..].iter().map(String::as_str).collect();
    let Some((path, append)) = &command.redirect else {
        return dispatch(e, host, name, &args);
    };
    let mut capture = Capture {
        inner: host,
        text: String::new(),
    };
    let status = dispatch(e, &mut capture, name, &args);
    let text = std::mem::take(&mut capture.text);
    let written = run_task(e, name, |e| {
        match fs::write_file(e, path, text.as_bytes(), *append) {
            Ok(()) => Ok(Ok(())),
            Err(WriteError::Open(SysError::Errno(errno))) => {
                Ok(Err(format!("sh: {path}: {errno}\n")))
            }
            Err(WriteError::Write(SysError::Errno(errno))) => {
                Ok(Err(format!("sh: {name}: write error: {errno}\n")))
            }
            Err(WriteError::Open(err) | WriteError::Write(err)) => Err(err),
        }
    });
    match written {
        Ok(Ok(())) => status,
        Ok(Err(message)) => {
            host.err(&message);
            1
        }
        Err(err) => report(host, name, path, err),
    }
}

fn dispatch(e: &mut impl Engine, host: &mut dyn Host, name: &str, args: &[&str]) -> i32 {
    match name {
        "cat" => cat(e, host, args),
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
        "sleep" => sleep(host, args),
        "help" => help(host),
        _ => {
            host.err(&format!("sh: {name}: not found\n"));
            127
        }
    }
}

/// Prints a failed operation as `tool: subject: reason`, or the oops and `Segmentation fault`.
fn report(host: &mut dyn Host, tool: &str, subject: &str, err: TaskError) -> i32 {
    match err {
        TaskError::Oops(oops) => {
            host.err(&format!("{}\nSegmentation fault\n", oops.report));
            139
        }
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

fn cat(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    if args.is_empty() {
        host.err("cat: missing operand\n");
        return 1;
    }
    let mut status = 0;
    for path in args {
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
    let kind = if fs::is_dir(stat) { 'd' } else { '-' };
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
            if !parents {
                return fs::mkdir(e, path);
            }
            let full = fs::normalize(path);
            let mut prefix = String::new();
            for part in full.split('/').filter(|p| !p.is_empty()) {
                prefix = format!("{prefix}/{part}");
                match fs::mkdir(e, &prefix) {
                    Err(SysError::Errno(Errno::EEXIST)) | Ok(()) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(())
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

fn dmesg(e: &mut impl Engine, host: &mut dyn Host, args: &[&str]) -> i32 {
    let (flags, _) = split_flags(args);
    if let Some(bad) = flags.chars().find(|c| !matches!(c, 'C' | 'c')) {
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
    match result {
        Ok(text) => {
            host.out(&text);
            0
        }
        Err(err) => report(host, "dmesg", "syslog", err),
    }
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
    let bytes = match host.module(target) {
        Ok(bytes) => bytes,
        Err(reason) => {
            host.err(&format!(
                "insmod: ERROR: could not load module {target}: {reason}\n"
            ));
            return 1;
        }
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

fn sleep(host: &mut dyn Host, args: &[&str]) -> i32 {
    let Some(arg) = args.first() else {
        host.err("sleep: missing operand\n");
        return 1;
    };
    match arg.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            host.sleep(seconds);
            0
        }
        _ => {
            host.err(&format!("sleep: invalid time interval '{arg}'\n"));
            1
        }
    }
}

fn help(host: &mut dyn Host) -> i32 {
    for (synopsis, what) in HELP {
        host.out(&format!("  {synopsis:<38} {what}\n"));
    }
    let modules = host.module_names();
    if !modules.is_empty() {
        host.out(&format!("modules: {}\n", modules.join(" ")));
    }
    0
}
