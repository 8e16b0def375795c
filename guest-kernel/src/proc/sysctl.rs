//! /proc/sys: sysctl tables, their files, and the generic string and integer handlers.

use alloc::vec::Vec;
use core::fmt::Write;

use klp_abi::CtlTable;
use klp_abi::errno::{EINVAL, ENOMEM};
use klp_abi::stat::S_IFREG;

use crate::printk::{CONSOLE_PRINTK, LineBuf};
use crate::uaccess::kernel_bytes;
use crate::vfs::{self, FsType, Ino, Node};

/// `/proc/sys/kernel/printk`: the four console log levels.
static KERN_TABLE: [CtlTable; 1] = [CtlTable::new(
    c"printk",
    CONSOLE_PRINTK.as_ptr().cast(),
    size_of::<[i32; 4]>(),
    0o644,
    proc_dointvec,
)];

/// The directory `/proc/sys/<name>`, created on first use.
fn sysctl_dir(name: &[u8]) -> Result<Ino, i32> {
    let proc = super::proc_root();
    let sys = match vfs::lookup(proc, b"sys") {
        Some(sys) => sys,
        None => vfs::mkdir_in(proc, b"sys", FsType::Proc, 0o555)?,
    };
    match vfs::lookup(sys, name) {
        Some(dir) => Ok(dir),
        None => vfs::mkdir_in(sys, name, FsType::Proc, 0o555),
    }
}

/// Adds the files of `table` to `/proc/sys/<dir>`, as `register_sysctl` (at boot, when
/// memory cannot be short: an entry that cannot be allocated is left out).
pub fn register_sysctl(dir: &[u8], table: &'static [CtlTable]) {
    let Ok(dir) = sysctl_dir(dir) else { return };
    for entry in table {
        // SAFETY: table names are NUL-terminated C strings.
        let name = unsafe { core::ffi::CStr::from_ptr(entry.procname.cast()) }.to_bytes();
        let _ = vfs::create(
            dir,
            name,
            FsType::Proc,
            S_IFREG | entry.mode,
            Node::Sysctl(entry),
        );
    }
}

/// Creates `/proc/sys/kernel` with the kernel's generic entries.
pub fn init() {
    register_sysctl(b"kernel", &KERN_TABLE);
}

/// Reads a sysctl file at `pos` by calling its handler with `write` = 0.
///
/// # Errors
///
/// The handler's error.
pub fn read(table: &'static CtlTable, buf: &mut [u8], pos: u64) -> Result<usize, i32> {
    call_handler(table, false, buf.as_mut_ptr(), buf.len(), pos)
}

/// Writes a sysctl file by calling its handler with `write` = 1.
///
/// # Errors
///
/// The handler's error, such as `EINVAL` for a value it rejects.
pub fn write(table: &'static CtlTable, buf: &[u8], pos: u64) -> Result<usize, i32> {
    call_handler(table, true, buf.as_ptr().cast_mut(), buf.len(), pos)
}

/// Calls the handler on a kernel copy of the buffer, one byte longer and NUL-terminated, as
/// Linux's `proc_sys_call_handler` does (`kvzalloc(count + 1)`), and frees the copy after.
fn call_handler(
    table: &'static CtlTable,
    write: bool,
    buf: *mut u8,
    len: usize,
    pos: u64,
) -> Result<usize, i32> {
    let mut kbuf = Vec::new();
    kbuf.try_reserve_exact(len + 1).map_err(|_| ENOMEM)?;
    kbuf.resize(len + 1, 0);
    if write {
        // SAFETY: the caller passes a buffer of `len` bytes.
        kbuf[..len].copy_from_slice(unsafe { kernel_bytes(buf, len) });
    }
    let (mut count, mut ppos) = (len, pos as i64);
    // SAFETY: the handler gets the table it was registered with and a buffer of `len` bytes;
    // it is called through its pointer, so a livepatched handler runs the same way.
    let ret = unsafe {
        (table.proc_handler)(
            table,
            i32::from(write),
            kbuf.as_mut_ptr(),
            &mut count,
            &mut ppos,
        )
    };
    if ret < 0 {
        return Err(-ret);
    }
    if !write {
        let count = count.min(len);
        // SAFETY: as above; the handler filled at most `len` bytes of the copy.
        unsafe { core::ptr::copy_nonoverlapping(kbuf.as_ptr(), buf, count) };
    }
    Ok(count)
}

/// Reads or writes the NUL-terminated string of `table->maxlen` bytes at `table->data`,
/// as Linux's `proc_dostring`: a write stops at a newline and is truncated to
/// `maxlen - 1` bytes; a read appends a newline.
///
/// # Safety
///
/// `table` must be a valid table entry, `buffer` must hold `*lenp` bytes, and `lenp` and
/// `ppos` must be valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn proc_dostring(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    // SAFETY: the caller's contract.
    let (table, lenp, ppos) = unsafe { (&*table, &mut *lenp, &mut *ppos) };
    let maxlen = table.maxlen.max(0) as usize;
    if table.data.is_null() || maxlen == 0 || *lenp == 0 {
        *lenp = 0;
        return 0;
    }
    // SAFETY: `data` holds `maxlen` bytes and `buffer` holds `*lenp` bytes.
    let (data, buffer) = unsafe {
        (
            core::slice::from_raw_parts_mut(table.data.cast::<u8>(), maxlen),
            core::slice::from_raw_parts_mut(buffer, *lenp),
        )
    };
    let cur = data.iter().position(|&b| b == 0).unwrap_or(maxlen);
    if write != 0 {
        // SYSCTL_WRITES_STRICT: a write continues the string at the file position.
        let Ok(mut len) = usize::try_from(*ppos) else {
            return 0;
        };
        if len > cur.min(maxlen - 1) {
            return 0;
        }
        *ppos += *lenp as i64;
        for &c in buffer.iter().take_while(|&&c| c != 0 && c != b'\n') {
            if len >= maxlen - 1 {
                break;
            }
            data[len] = c;
            len += 1;
        }
        data[len] = 0;
    } else {
        let Ok(start) = usize::try_from(*ppos) else {
            return 0;
        };
        if start > cur {
            *lenp = 0;
            return 0;
        }
        let mut len = (cur - start).min(buffer.len());
        buffer[..len].copy_from_slice(&data[start..start + len]);
        if len < buffer.len() {
            buffer[len] = b'\n';
            len += 1;
        }
        *lenp = len;
        *ppos += len as i64;
    }
    0
}

/// Parses one decimal integer (optional sign) at the start of `buf`, which must be followed
/// by the end of the buffer, whitespace or NUL. Stores it in `*val` and returns the number of
/// bytes consumed, or -EINVAL.
///
/// # Safety
///
/// `buf` must hold `len` bytes and `val` must be valid for writes.
#[inline(never)]
unsafe extern "C" fn parse_int(buf: *const u8, len: usize, val: *mut i32) -> i32 {
    // SAFETY: the caller's contract.
    let buf = unsafe { kernel_bytes(buf, len) };
    let (negative, digits_at) = match buf.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let digits = buf[digits_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = digits_at + digits;
    if digits == 0
        || buf
            .get(end)
            .is_some_and(|&b| b != 0 && !b.is_ascii_whitespace())
    {
        return -EINVAL;
    }
    let mut value: i64 = 0;
    for &d in &buf[digits_at..end] {
        value = value * 10 + i64::from(d - b'0');
        if value > i64::from(i32::MAX) + 1 {
            return -EINVAL;
        }
    }
    let value = if negative { -value } else { value };
    let Ok(value) = i32::try_from(value) else {
        return -EINVAL;
    };
    // SAFETY: the caller's contract.
    unsafe { val.write(value) };
    end as i32
}

/// Reads or writes the vector of `table->maxlen / 4` ints at `table->data`, as Linux's
/// `proc_dointvec`: reads print them tab-separated with a final newline; writes take
/// whitespace-separated decimal values.
///
/// # Safety
///
/// As [`proc_dostring`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn proc_dointvec(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    // SAFETY: the caller's contract.
    let (table, lenp, ppos) = unsafe { (&*table, &mut *lenp, &mut *ppos) };
    let count = table.maxlen.max(0) as usize / size_of::<i32>();
    if table.data.is_null() || count == 0 || *lenp == 0 || (*ppos != 0 && write == 0) {
        *lenp = 0;
        return 0;
    }
    // SAFETY: `data` holds `count` ints and `buffer` holds `*lenp` bytes.
    let (values, buffer) = unsafe {
        (
            core::slice::from_raw_parts_mut(table.data.cast::<i32>(), count),
            core::slice::from_raw_parts_mut(buffer, *lenp),
        )
    };
    if write != 0 {
        let mut parsed = [0i32; 8];
        let (mut n, mut at) = (0, 0);
        loop {
            at += buffer[at..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            if at == buffer.len() || buffer[at] == 0 || n == count.min(parsed.len()) {
                break;
            }
            // SAFETY: `buffer[at..]` is in bounds and `parsed[n]` is writable.
            let used =
                unsafe { parse_int(buffer[at..].as_ptr(), buffer.len() - at, &mut parsed[n]) };
            if used < 0 {
                return used;
            }
            at += used as usize;
            n += 1;
        }
        if n == 0 {
            return -EINVAL;
        }
        values[..n].copy_from_slice(&parsed[..n]);
        *ppos += *lenp as i64;
    } else {
        let mut text = LineBuf::<128>::new();
        for (i, v) in values.iter().enumerate() {
            let sep = if i == 0 { "" } else { "\t" };
            let _ = write!(text, "{sep}{v}");
        }
        let _ = text.write_char('\n');
        let len = text.as_bytes().len().min(buffer.len());
        buffer[..len].copy_from_slice(&text.as_bytes()[..len]);
        *lenp = len;
        *ppos += len as i64;
    }
    0
}
