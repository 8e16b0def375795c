//! `/proc/<pid>/stack`: a task's kernel stack as recorded when it last slept, one function a line.

use super::Frames;
use crate::engine::Engine;
use crate::errno::Errno;
use crate::hostfs::{Node, Tree};
use crate::kallsyms;
use crate::state::KernelState;
use crate::sys::SysResult;

/// The pid directory a path names the stack file of: `/proc/<pid>/stack` → `<pid>`.
pub fn stack_pid(path: &str) -> Option<&str> {
    let pid = path.strip_prefix("/proc/")?.strip_suffix("/stack")?;
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(pid)
}

/// Whether `dir` is a `/proc/<pid>` directory, where the host adds `stack`.
pub fn is_pid_dir(dir: &str) -> bool {
    dir.strip_prefix("/proc/")
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// `/proc/<pid>/stack`, served at the pid (the tree's `rel`).
pub struct TaskStack;

/// The file's text: Linux's format (`[<0>] function+0x0/0x0` per frame, innermost first; the
/// offsets are not known here, so they read 0), nothing for a task that holds no frames, and
/// only the frames of kernel code (the tasks' machinery is left out).
fn text(s: &KernelState, pid: i32) -> Option<String> {
    let task = s.tasks.by_pid(pid);
    let Some(task) = task else {
        // The idle task and tasks the host does not run (init_task) have no kernel stack.
        return (pid == 0).then(String::new);
    };
    let frames = match (task.frames, task.stack.as_deref()) {
        (Frames::Suspended(_), Some(frames)) => frames,
        _ => &[],
    };
    let mut out = String::new();
    for raw in frames
        .iter()
        .flatten()
        .filter(|raw| !super::is_machinery(raw))
    {
        let name = kallsyms::symbol_name(raw).unwrap_or_else(|| raw.clone());
        out.push_str(&format!("[<0>] {name}+0x0/0x0\n"));
    }
    Some(out)
}

impl Tree for TaskStack {
    const ATTR_SIZE: u32 = 0;

    fn node(s: &KernelState, rel: &str) -> Option<Node> {
        let pid: i32 = rel.parse().ok()?;
        Some(Node::Attr {
            mode: 0o400,
            value: Some(text(s, pid)?),
        })
    }

    fn store(_e: &mut impl Engine, _rel: &str, _data: &[u8], _append: bool) -> SysResult<()> {
        Err(Errno::EACCES.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_numeric_pid_directory_has_a_stack_file() {
        assert_eq!(stack_pid("/proc/12/stack"), Some("12"));
        assert_eq!(stack_pid("/proc/self/stack"), None);
        assert_eq!(stack_pid("/proc//stack"), None);
        assert_eq!(stack_pid("/proc/12/stat"), None);
        assert!(is_pid_dir("/proc/3") && !is_pid_dir("/proc/sys"));
    }
}
