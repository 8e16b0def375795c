//! The system calls the host makes: argument checks (`access_ok`), then the VFS and friends.
//!
//! Pointers are addresses in the kernel's linear memory, usually inside [`klp_user_buffer`];
//! results are values >= 0 or -errno, as in `docs/ABI.md`. A system call runs with preemption
//! off (`crate::preempt`): the VFS borrows its tables without locks.

use klp_abi::USER_BUFFER_SIZE;
use klp_abi::errno::EINVAL;
use klp_abi::new_utsname::SIZE as UTSNAME_SIZE;

use crate::preempt::preempt_disable;
use crate::printk;
use crate::sched::task::current;
use crate::sync::Global;
use crate::uaccess::{user_bytes, user_bytes_mut};
use crate::utsname;
use crate::vfs::{file, namei, stat};

/// The "user memory" of the kernel's one process.
static USER_BUFFER: Global<[u8; USER_BUFFER_SIZE as usize]> =
    Global::new([0; USER_BUFFER_SIZE as usize]);

/// The address of the scratch area (`USER_BUFFER_SIZE` bytes) the host copies arguments into.
#[unsafe(no_mangle)]
pub extern "C" fn klp_user_buffer() -> *mut u8 {
    USER_BUFFER.as_ptr().cast()
}

fn ret(result: Result<usize, i32>) -> i32 {
    match result {
        Ok(n) => n as i32,
        Err(errno) => -errno,
    }
}

fn ret0(result: Result<(), i32>) -> i32 {
    ret(result.map(|()| 0))
}

/// open(2): `flags` as in Linux ([`klp_abi::fcntl`]). Returns the descriptor.
#[unsafe(no_mangle)]
pub extern "C" fn sys_open(path: *const u8, len: usize, flags: i32) -> i32 {
    let _preempt = preempt_disable();
    ret(user_bytes(path, len)
        .and_then(|path| file::open(path, flags))
        .map(|fd| fd as usize))
}

/// read(2). Returns the bytes read.
#[unsafe(no_mangle)]
pub extern "C" fn sys_read(fd: i32, buf: *mut u8, len: usize) -> i32 {
    let _preempt = preempt_disable();
    ret(user_bytes_mut(buf, len).and_then(|buf| file::read(fd, buf)))
}

/// write(2). Returns the bytes written.
#[unsafe(no_mangle)]
pub extern "C" fn sys_write(fd: i32, buf: *const u8, len: usize) -> i32 {
    let _preempt = preempt_disable();
    ret(user_bytes(buf, len).and_then(|buf| file::write(fd, buf)))
}

/// close(2).
#[unsafe(no_mangle)]
pub extern "C" fn sys_close(fd: i32) -> i32 {
    let _preempt = preempt_disable();
    ret0(file::close(fd))
}

/// mkdir(2), mode 0755.
#[unsafe(no_mangle)]
pub extern "C" fn sys_mkdir(path: *const u8, len: usize) -> i32 {
    let _preempt = preempt_disable();
    ret0(user_bytes(path, len).and_then(namei::mkdir))
}

/// unlink(2): files only (`-EISDIR` for a directory).
#[unsafe(no_mangle)]
pub extern "C" fn sys_unlink(path: *const u8, len: usize) -> i32 {
    let _preempt = preempt_disable();
    ret0(user_bytes(path, len).and_then(namei::unlink))
}

/// rmdir(2): empty directories only.
#[unsafe(no_mangle)]
pub extern "C" fn sys_rmdir(path: *const u8, len: usize) -> i32 {
    let _preempt = preempt_disable();
    ret0(user_bytes(path, len).and_then(namei::rmdir))
}

/// getdents(2): records `ino: u32, reclen: u16, type: u8, name, NUL`, padded to 4 bytes,
/// starting with `.` and `..`. Returns the bytes written, 0 at the end.
#[unsafe(no_mangle)]
pub extern "C" fn sys_getdents(fd: i32, buf: *mut u8, len: usize) -> i32 {
    let _preempt = preempt_disable();
    ret(user_bytes_mut(buf, len).and_then(|buf| file::getdents(fd, buf)))
}

/// stat(2) into `statbuf`: `mode: u32, size: u32, nlink: u32, ino: u32` ([`klp_abi::stat`]).
#[unsafe(no_mangle)]
pub extern "C" fn sys_stat(path: *const u8, len: usize, statbuf: *mut u8) -> i32 {
    let _preempt = preempt_disable();
    ret0((|| {
        let out = user_bytes_mut(statbuf, klp_abi::stat::SIZE)?;
        let st = stat::stat(user_bytes(path, len)?)?;
        for (at, v) in [
            (klp_abi::stat::ST_MODE, st.mode),
            (klp_abi::stat::ST_SIZE, st.size),
            (klp_abi::stat::ST_NLINK, st.nlink),
            (klp_abi::stat::ST_INO, st.ino),
        ] {
            out[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    })())
}

/// uname(2): copies `struct new_utsname` (six 65-byte fields) to `buf`.
#[unsafe(no_mangle)]
pub extern "C" fn sys_uname(buf: *mut u8) -> i32 {
    let _preempt = preempt_disable();
    ret0(user_bytes_mut(buf, UTSNAME_SIZE).map(|out| {
        utsname::uname(out.try_into().expect("the slice has UTSNAME_SIZE bytes"));
    }))
}

/// syslog(2): 3 READ_ALL, 4 READ_CLEAR, 5 CLEAR, 10 SIZE_BUFFER.
#[unsafe(no_mangle)]
pub extern "C" fn sys_syslog(action: i32, buf: *mut u8, len: i32) -> i32 {
    let _preempt = preempt_disable();
    let Ok(len) = usize::try_from(len) else {
        return -EINVAL;
    };
    ret(user_bytes_mut(buf, len).and_then(|buf| printk::do_syslog(action, buf)))
}

/// getpid(2), `__x64_sys_getpid`: `current`'s thread group id. A traceable kernel function a
/// patch can replace (as Linux's `test_klp_syscall` does); user tasks call it through
/// `do_syscall_64` (no arguments, returns `i32`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn __x64_sys_getpid() -> i32 {
    // SAFETY: `current` is live.
    unsafe { (*current()).ts.tgid }
}

/// getpid(2) for the host and modules: calls [`__x64_sys_getpid`] through its ftrace slot.
#[unsafe(no_mangle)]
pub extern "C" fn sys_getpid() -> i32 {
    __x64_sys_getpid()
}
