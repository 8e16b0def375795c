//! `/proc/<pid>/`, `fs/proc/base.c`: one directory per task with `comm`, `stat`, `status`
//! and `patch_state`. (`/proc/<pid>/stack` is served by the host, which records stacks.)

use core::ffi::c_void;
use core::fmt::Write;

use klp_abi::errno::{EEXIST, ESRCH};
use klp_abi::stat::S_IFREG;

use super::array::{proc_pid_stat, proc_pid_status};
use super::proc_root;
use crate::preempt::preempt_disable;
use crate::sched::task::{Task, find_task_by_vpid};
use crate::seq_file::{SeqFile, ShowFn};
use crate::vfs::{self, FsType, Node};

/// The task a `/proc/<pid>` file is about: `v` is its pid.
pub fn pid_task(v: *mut c_void) -> Result<*mut Task, i32> {
    find_task_by_vpid(v as usize as i32).ok_or(ESRCH)
}

/// `/proc/<pid>/comm`: the task's name and a newline.
#[inline(never)]
unsafe extern "C" fn comm_show(m: *mut SeqFile, v: *mut c_void) -> i32 {
    let task = match pid_task(v) {
        Ok(task) => task,
        Err(errno) => return -errno,
    };
    // SAFETY: procfs passes the seq_file being filled; the task is live.
    let (m, task) = unsafe { (&mut *m, &*task) };
    m.puts(task.comm());
    m.puts(b"\n");
    0
}

/// `/proc/<pid>/patch_state`: `-1`, `0` or `1` (`KLP_TRANSITION_*`) and a newline.
#[inline(never)]
unsafe extern "C" fn proc_pid_patch_state(m: *mut SeqFile, v: *mut c_void) -> i32 {
    let task = match pid_task(v) {
        Ok(task) => task,
        Err(errno) => return -errno,
    };
    // SAFETY: as above.
    let (m, task) = unsafe { (&mut *m, &*task) };
    let _ = writeln!(m, "{}", task.ts.patch_state);
    0
}

/// The files of a `/proc/<pid>` directory.
const PID_ENTRIES: [(&[u8], ShowFn); 4] = [
    (b"comm", comm_show),
    (b"stat", proc_pid_stat),
    (b"status", proc_pid_status),
    (b"patch_state", proc_pid_patch_state),
];

/// The decimal name of a pid directory.
fn pid_name(pid: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut n = pid.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Creates `/proc/<pid>/` and its files.
///
/// # Errors
///
/// `EEXIST` (a module's entry of that name), `ENOMEM`.
pub fn proc_pid_register(pid: i32) -> Result<(), i32> {
    let _preempt = preempt_disable();
    let mut buf = [0; 12];
    let name = pid_name(pid, &mut buf);
    let root = proc_root();
    if vfs::lookup(root, name).is_some() {
        return Err(EEXIST);
    }
    let dir = vfs::mkdir_in(root, name, FsType::Proc, 0o555)?;
    for (file, show) in PID_ENTRIES {
        let node = Node::Seq(show, pid as u32 as usize);
        if let Err(errno) = vfs::create(dir, file, FsType::Proc, S_IFREG | 0o444, node) {
            proc_pid_unregister(pid);
            return Err(errno);
        }
    }
    Ok(())
}

/// The name of the first entry of `dir`, copied into `buf` (entries here are short).
fn first_entry(dir: vfs::Ino, buf: &mut [u8; 32]) -> Option<usize> {
    match &vfs::inode(dir)?.node {
        Node::Dir(entries) => {
            let name = &entries.first()?.name;
            let len = name.len().min(buf.len());
            buf[..len].copy_from_slice(&name[..len]);
            Some(len)
        }
        _ => None,
    }
}

/// Removes `/proc/<pid>/` and everything in it (open files live on until closed).
pub fn proc_pid_unregister(pid: i32) {
    let _preempt = preempt_disable();
    let mut buf = [0; 12];
    let name = pid_name(pid, &mut buf);
    let root = proc_root();
    let Some(dir) = vfs::lookup(root, name) else {
        return;
    };
    if !vfs::inode(dir).is_some_and(|i| i.is_dir() && i.fs == FsType::Proc) {
        return;
    }
    let mut entry = [0; 32];
    while let Some(len) = first_entry(dir, &mut entry) {
        vfs::remove(dir, &entry[..len]);
    }
    vfs::remove(root, name);
}
