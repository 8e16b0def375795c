//! `ps`: every task of the kernel's `/proc/<pid>/stat`, shown as procps `ps -e -o pid,stat,comm`.

use klp_core::engine::Engine;
use klp_core::errno::Errno;
use klp_core::fs;
use klp_core::sys::{SysError, SysResult};

/// The header line, as procps prints it for `-o pid,stat,comm`.
pub const HEADER: &str = "    PID STAT COMMAND\n";

/// One task of `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its pid.
    pub pid: u32,
    /// Its state letter (`R`, `S`, `D`, `I`, `X`, ...).
    pub state: char,
    /// Its command name.
    pub comm: String,
}

/// Parses `pid (comm) S ppid ...`; the comm may hold spaces and parentheses, so it ends at the
/// last `)`, as procps reads it.
pub fn parse_stat(stat: &[u8]) -> Option<Task> {
    let text = String::from_utf8_lossy(stat);
    let (pid, rest) = text.split_once(" (")?;
    let close = rest.rfind(')')?;
    let state = rest[close + 1..].trim_start().chars().next()?;
    Some(Task {
        pid: pid.trim().parse().ok()?,
        state,
        comm: rest[..close].to_string(),
    })
}

/// Whether a `/proc` entry is a task's directory (all digits).
pub fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// Reads the `stat` of each task directory among `entries` (names in `/proc`) with `read` and
/// returns the tasks sorted by pid. A task that exited between the listing and the read
/// (`ENOENT`, `ESRCH`) or whose `stat` does not parse is left out.
///
/// # Errors
/// Any other error of `read`.
pub fn tasks<E>(
    entries: &[String],
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    gone: impl Fn(&E) -> bool,
) -> Result<Vec<Task>, E> {
    let mut tasks = Vec::new();
    for name in entries.iter().filter(|n| is_pid(n)) {
        match read(&format!("/proc/{name}/stat")) {
            Ok(stat) => tasks.extend(parse_stat(&stat)),
            Err(err) if gone(&err) => {}
            Err(err) => return Err(err),
        }
    }
    tasks.sort_by_key(|t| t.pid);
    Ok(tasks)
}

/// Whether an errno means the task is gone.
pub fn is_gone(errno: Errno) -> bool {
    matches!(errno, Errno::ENOENT | Errno::ESRCH)
}

/// Every task of the kernel's `/proc`, sorted by pid ([`tasks`] on its entries, read through
/// the kernel's VFS; a task gone meanwhile is left out).
///
/// # Errors
/// Listing `/proc` or reading a `stat` failed otherwise.
pub fn list(e: &mut impl Engine) -> SysResult<Vec<Task>> {
    let entries: Vec<String> = fs::list_dir(e, "/proc")?
        .into_iter()
        .map(|en| en.name)
        .collect();
    let mut read = |path: &str| fs::read_file(e, path);
    tasks(
        &entries,
        &mut read,
        |err| matches!(err, SysError::Errno(errno) if is_gone(*errno)),
    )
}

/// The table: the header, then `    PID STAT COMMAND` columns for each task.
pub fn format(tasks: &[Task]) -> String {
    let mut out = String::from(HEADER);
    for t in tasks {
        out.push_str(&format!("{:>7} {:<4} {}\n", t.pid, t.state, t.comm));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn stat_lines_parse_up_to_the_last_parenthesis() {
        assert_eq!(
            parse_stat(b"2 (kthreadd) S 0 0 0 0 -1 2129984\n"),
            Some(Task {
                pid: 2,
                state: 'S',
                comm: "kthreadd".into()
            })
        );
        let odd = parse_stat(b"17 (a) b (c)) R 1 17").unwrap();
        assert_eq!(
            (odd.pid, odd.state, odd.comm.as_str()),
            (17, 'R', "a) b (c)")
        );
        for bad in [&b""[..], b"x (y) S", b"3 (no close S", b"4 (gone)"] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ps_reads_a_fake_proc_and_prints_tasks_by_pid() {
        let proc: HashMap<&str, &[u8]> = HashMap::from([
            ("/proc/10/stat", &b"10 (test_klp_call) R 2 10 0"[..]),
            ("/proc/2/stat", b"2 (kthreadd) S 0 0 0"),
            ("/proc/0/stat", b"0 (swapper/0) R 0 0 0"),
            ("/proc/3/stat", b"3 (kworker/0:0) I 2 0 0"),
        ]);
        let entries: Vec<String> = [
            "cmdline", "10", "2", "0", "3", "7", "self", "meminfo", "sys",
        ]
        .map(String::from)
        .to_vec();
        let mut read = |path: &str| proc.get(path).map(|s| s.to_vec()).ok_or(Errno::ENOENT);
        let tasks = tasks(&entries, &mut read, |&e| is_gone(e)).unwrap();
        assert_eq!(
            format(&tasks),
            "    PID STAT COMMAND\n      0 R    swapper/0\n      2 S    kthreadd\n      \
             3 I    kworker/0:0\n     10 R    test_klp_call\n"
        );
    }

    #[test]
    fn without_task_directories_only_the_header_is_printed() {
        let entries: Vec<String> = ["cmdline", "kallsyms"].map(String::from).to_vec();
        let mut read = |_: &str| -> Result<Vec<u8>, Errno> { panic!("nothing to read") };
        let tasks = tasks(&entries, &mut read, |&e| is_gone(e)).unwrap();
        assert_eq!(format(&tasks), HEADER);
    }

    #[test]
    fn an_error_other_than_a_gone_task_is_reported() {
        let entries: Vec<String> = ["1"].map(String::from).to_vec();
        let mut read = |_: &str| -> Result<Vec<u8>, Errno> { Err(Errno::EACCES) };
        assert_eq!(
            tasks(&entries, &mut read, |&e| is_gone(e)),
            Err(Errno::EACCES)
        );
    }
}
