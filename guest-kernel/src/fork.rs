//! Creating tasks, `kernel/fork.c`: `copy_process`, `task_fork` for the host, and the first
//! tasks at boot (`rest_init`: `init`, `kthreadd`).

use klp_abi::errno::{EAGAIN, ENOMEM, ENOSYS};
use klp_abi::task::{PF_KTHREAD, TASK_INTERRUPTIBLE, TASK_RUNNING, THREAD_SIZE, TIF_PATCH_PENDING};
use klp_abi::{HostOp, TaskStruct};

use crate::entry::do_syscall_64;
use crate::exit::free_task;
use crate::host::{self, hostcall};
use crate::kthread::kthreadd;
use crate::mm::{kfree, kmalloc};
use crate::proc::base::proc_pid_register;
use crate::sched::core::{set_tasks_supported, tasks_supported};
use crate::sched::task::{STACK_END_MAGIC, Task, attach_pid, idle_task};
use crate::uaccess::kernel_bytes;

/// The pid of init (the shell), the parent of user tasks.
pub const INIT_PID: i32 = 1;
/// The pid of `kthreadd`, the parent of kthreads.
pub const KTHREADD_PID: i32 = 2;
/// Stack alignment of wasm32's C ABI.
const STACK_ALIGN: usize = 16;

/// A task's entry, `extern "C" fn(*mut TaskStruct)`.
pub type TaskEntry = unsafe extern "C" fn(task: *mut TaskStruct);

/// `alloc_thread_stack_node`: `THREAD_SIZE` bytes, 16-aligned, with `STACK_END_MAGIC` at the
/// bottom. Returns (kmalloc block, stack base).
fn alloc_thread_stack() -> Option<(usize, usize)> {
    let block = kmalloc(THREAD_SIZE as usize + STACK_ALIGN, 0);
    if block.is_null() {
        return None;
    }
    let base = (block as usize).next_multiple_of(STACK_ALIGN);
    // SAFETY: the block holds THREAD_SIZE bytes from `base`.
    unsafe { (base as *mut u32).write(STACK_END_MAGIC) };
    Some((block as usize, base))
}

/// `klp_copy_process`: a new task starts in the patch state of `init_task`, with its
/// `TIF_PATCH_PENDING`.
fn klp_copy_process(child: *mut Task) {
    let parent = idle_task();
    // SAFETY: live tasks.
    unsafe {
        (*child).ts.patch_state = (*parent).ts.patch_state;
        (*child).ts.ti_flags = ((*child).ts.ti_flags & !TIF_PATCH_PENDING)
            | ((*parent).ts.ti_flags & TIF_PATCH_PENDING);
    }
}

/// `copy_process`: a new task named `comm` with `flags`, a stack, a pid and a slot, which
/// the host will start at `entry`; state `TASK_RUNNING`, not known to the host yet (see
/// [`wake_up_new_task`]). Its own reference is its only one.
///
/// # Errors
///
/// `ENOMEM`, `EAGAIN` (no slot or pid).
pub fn copy_process(
    comm: &[u8],
    flags: u32,
    entry: TaskEntry,
    ppid: i32,
) -> Result<*mut Task, i32> {
    let task: *mut Task = kmalloc(size_of::<Task>(), 0).cast();
    if task.is_null() {
        return Err(ENOMEM);
    }
    let Some((block, stack)) = alloc_thread_stack() else {
        kfree(task.cast());
        return Err(ENOMEM);
    };
    // SAFETY: a fresh, suitably aligned block of the right size.
    unsafe {
        task.write(Task::new(comm, flags));
        (*task).stack_block = block;
        (*task).ts.stack = stack as u32;
        (*task).ts.entry = entry as usize as i32;
        (*task).ts.ppid = ppid;
        (*task).start_time = host::clock_ns();
    }
    klp_copy_process(task);
    if let Err(errno) = attach_pid(task) {
        // SAFETY: not in the table.
        unsafe { free_task(task) };
        return Err(errno);
    }
    // SAFETY: a live task.
    let pid = unsafe { (*task).ts.pid };
    if let Err(errno) = proc_pid_register(pid) {
        pr_warn!("fork: no /proc/{pid} (-{errno})");
    }
    Ok(task)
}

/// `wake_up_new_task`: tells the host about a task from [`copy_process`], which queues it if
/// it is `TASK_RUNNING`. A task the host refuses is freed.
///
/// # Errors
///
/// What the host answered (`EAGAIN`; `ENOSYS` from a host without tasks).
pub fn wake_up_new_task(task: *mut Task) -> Result<(), i32> {
    match hostcall(HostOp::TaskNew, task as i32, 0, 0) {
        0 => Ok(()),
        ret => {
            crate::exit::release_task(task);
            Err(if ret < 0 { -ret } else { EAGAIN })
        }
    }
}

/// Forks a user task named `comm` (`len` bytes, cut to 15) for the host, which then runs its
/// system calls through `regs` and `do_syscall_64`. Returns the task, or 0 on failure.
///
/// # Safety
///
/// `comm` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn task_fork(comm: *const u8, len: usize) -> *mut TaskStruct {
    // SAFETY: the caller's contract.
    let comm = unsafe { kernel_bytes(comm, len) };
    let entry = do_syscall_64 as unsafe extern "C" fn(*mut TaskStruct);
    let Ok(task) = copy_process(comm, 0, entry, INIT_PID) else {
        return core::ptr::null_mut();
    };
    match wake_up_new_task(task) {
        Ok(()) => task.cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Records a boot task sleeping in `TASK_INTERRUPTIBLE`; kept when the host runs no tasks.
fn boot_task(comm: &[u8], flags: u32, entry: TaskEntry, ppid: i32) -> Option<*mut Task> {
    let task = copy_process(comm, flags, entry, ppid).ok()?;
    // SAFETY: the new task.
    unsafe { (*task).ts.state = TASK_INTERRUPTIBLE };
    let ret = hostcall(HostOp::TaskNew, task as i32, 0, 0);
    if ret == -ENOSYS {
        return Some(task);
    }
    set_tasks_supported(true);
    if ret != 0 {
        crate::exit::release_task(task);
        return None;
    }
    Some(task)
}

/// `rest_init`: `/proc/0` for `init_task`, then init (pid 1, `sh`: the shell, the parent of
/// its commands) and `kthreadd` (pid 2), both asleep. Tells whether the host runs tasks.
pub fn rest_init() {
    let idle = idle_task();
    if let Err(errno) = proc_pid_register(0) {
        pr_warn!("fork: no /proc/0 (-{errno})");
    }
    // SAFETY: boot; `init_task` is static.
    unsafe { (*idle).ts.state = TASK_RUNNING };
    let init = do_syscall_64 as unsafe extern "C" fn(*mut TaskStruct);
    let kthreadd = kthreadd as unsafe extern "C" fn(*mut TaskStruct);
    if boot_task(b"sh", 0, init, 0).is_none()
        || boot_task(b"kthreadd", PF_KTHREAD, kthreadd, 0).is_none()
    {
        pr_err!("fork: cannot create init and kthreadd");
    }
    if tasks_supported() {
        pr_info!(
            "sched: tasks run by the host, THREAD_SIZE {} KiB",
            THREAD_SIZE >> 10
        );
    } else {
        pr_info!("sched: the host runs no tasks: schedule() does not sleep");
    }
}
