//! printk: the kernel log ring buffer, log levels, and syslog(2) as `dmesg` reads it.

use core::fmt::{self, Write};

use klp_abi::errno::EINVAL;
use klp_abi::syslog::{
    SYSLOG_ACTION_CLEAR, SYSLOG_ACTION_READ_ALL, SYSLOG_ACTION_READ_CLEAR,
    SYSLOG_ACTION_SIZE_BUFFER,
};

use crate::host;
use crate::preempt::preempt_disable;
use crate::sync::Global;
use crate::uaccess::kernel_bytes;

/// `KERN_EMERG`: system is unusable.
pub const LOGLEVEL_EMERG: u8 = 0;
/// `KERN_CRIT`: critical conditions.
pub const LOGLEVEL_CRIT: u8 = 2;
/// `KERN_ERR`: error conditions.
pub const LOGLEVEL_ERR: u8 = 3;
/// `KERN_WARNING`: warning conditions.
pub const LOGLEVEL_WARNING: u8 = 4;
/// `KERN_NOTICE`: normal but significant condition.
pub const LOGLEVEL_NOTICE: u8 = 5;
/// `KERN_INFO`: informational.
pub const LOGLEVEL_INFO: u8 = 6;

/// Logs a formatted message at a level, like Linux's `printk(KERN_x "...")`.
macro_rules! printk {
    ($level:expr, $($arg:tt)*) => {
        $crate::printk::log_fmt($level, format_args!($($arg)*))
    };
}

/// `pr_emerg`.
macro_rules! pr_emerg { ($($arg:tt)*) => { printk!($crate::printk::LOGLEVEL_EMERG, $($arg)*) }; }
/// `pr_crit`.
macro_rules! pr_crit { ($($arg:tt)*) => { printk!($crate::printk::LOGLEVEL_CRIT, $($arg)*) }; }
/// `pr_err`.
macro_rules! pr_err { ($($arg:tt)*) => { printk!($crate::printk::LOGLEVEL_ERR, $($arg)*) }; }
/// `pr_warn`.
macro_rules! pr_warn { ($($arg:tt)*) => { printk!($crate::printk::LOGLEVEL_WARNING, $($arg)*) }; }
/// `pr_notice`.
macro_rules! pr_notice { ($($arg:tt)*) => { printk!($crate::printk::LOGLEVEL_NOTICE, $($arg)*) }; }
/// `pr_info`.
macro_rules! pr_info { ($($arg:tt)*) => { printk!($crate::printk::LOGLEVEL_INFO, $($arg)*) }; }

/// Size of the log ring buffer (`CONFIG_LOG_BUF_SHIFT` = 16).
pub const LOG_BUF_LEN: usize = 1 << 16;
/// Longest record text; longer messages are truncated, as in Linux.
const LOG_LINE_MAX: usize = 1024 - 32;
/// Record header: `ts_nsec: u64, len: u16, text_len: u16, level: u8`, padded to 16 bytes.
const HDR: usize = 16;

/// `/proc/sys/kernel/printk`: console_loglevel, default_message_loglevel,
/// minimum_console_loglevel, default_console_loglevel. Exported to modules as Linux's
/// `console_printk` (`console_loglevel` is its first element).
#[unsafe(export_name = "console_printk")]
pub static CONSOLE_PRINTK: Global<[i32; 4]> = Global::new([7, 4, 1, 7]);

/// The ring buffer: variable-length records, the oldest overwritten first, as Linux's
/// log_buf before 5.10. A zero `len` header marks the wrap to the start of the buffer.
struct LogBuf {
    buf: [u8; LOG_BUF_LEN],
    first_idx: usize,
    first_seq: u64,
    next_idx: usize,
    next_seq: u64,
    clear_idx: usize,
    clear_seq: u64,
}

static LOG: Global<LogBuf> = Global::new(LogBuf {
    buf: [0; LOG_BUF_LEN],
    first_idx: 0,
    first_seq: 0,
    next_idx: 0,
    next_seq: 0,
    clear_idx: 0,
    clear_seq: 0,
});

/// One stored record, borrowed from the ring.
struct Record<'a> {
    ts_nsec: u64,
    level: u8,
    text: &'a [u8],
}

impl LogBuf {
    fn rec_len(&self, idx: usize) -> usize {
        u16::from_le_bytes([self.buf[idx + 8], self.buf[idx + 9]]) as usize
    }

    /// The index the record at `idx` really starts at (0 after a wrap marker).
    fn resolve(&self, idx: usize) -> usize {
        if self.rec_len(idx) == 0 { 0 } else { idx }
    }

    fn next(&self, idx: usize) -> usize {
        let idx = self.resolve(idx);
        idx + self.rec_len(idx)
    }

    fn record(&self, idx: usize) -> Record<'_> {
        let idx = self.resolve(idx);
        let b = &self.buf[idx..idx + HDR];
        let ts_nsec = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let text_len = u16::from_le_bytes([b[10], b[11]]) as usize;
        Record {
            ts_nsec,
            level: b[12],
            text: &self.buf[idx + HDR..idx + HDR + text_len],
        }
    }

    fn has_space(&self, size: usize, empty: bool) -> bool {
        let free = if self.next_idx > self.first_idx || empty {
            (LOG_BUF_LEN - self.next_idx).max(self.first_idx)
        } else {
            self.first_idx - self.next_idx
        };
        // Room for a wrap marker is always kept after a record.
        free >= size + HDR
    }

    fn make_free_space(&mut self, size: usize) {
        while self.first_seq < self.next_seq && !self.has_space(size, false) {
            self.first_idx = self.next(self.first_idx);
            self.first_seq += 1;
        }
        if self.clear_seq < self.first_seq {
            self.clear_seq = self.first_seq;
            self.clear_idx = self.first_idx;
        }
    }

    fn store(&mut self, level: u8, ts_nsec: u64, text: &[u8]) {
        let text = &text[..text.len().min(LOG_LINE_MAX)];
        let size = (HDR + text.len()).next_multiple_of(8);
        self.make_free_space(size);
        if self.next_idx + size + HDR > LOG_BUF_LEN {
            self.buf[self.next_idx..self.next_idx + HDR].fill(0);
            self.next_idx = 0;
        }
        let idx = self.next_idx;
        let hdr = &mut self.buf[idx..idx + HDR];
        hdr[..8].copy_from_slice(&ts_nsec.to_le_bytes());
        hdr[8..10].copy_from_slice(&(size as u16).to_le_bytes());
        hdr[10..12].copy_from_slice(&(text.len() as u16).to_le_bytes());
        hdr[12] = level;
        self.buf[idx + HDR..idx + HDR + text.len()].copy_from_slice(text);
        self.next_idx = idx + size;
        self.next_seq += 1;
    }
}

/// A fixed-size text buffer that truncates instead of failing.
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Stores one record at `level`, stamped with the host clock.
pub fn log(level: u8, text: &[u8]) {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let ts = host::clock_ns();
    let _preempt = preempt_disable();
    // SAFETY: no other borrow of the log is alive; storing makes no outside calls.
    unsafe { LOG.get() }.store(level, ts, text);
}

/// Formats and stores one record (the body of the `pr_*!` macros).
pub fn log_fmt(level: u8, args: fmt::Arguments<'_>) {
    let mut line = LineBuf::<LOG_LINE_MAX>::new();
    // LineBuf never fails; a Display impl that fails leaves a truncated line.
    let _ = line.write_fmt(args);
    log(level, line.as_bytes());
}

/// The level used for messages without a `KERN_*` prefix (`default_message_loglevel`).
pub fn default_message_loglevel() -> u8 {
    // SAFETY: a short read of the sysctl array.
    let level = unsafe { CONSOLE_PRINTK.get() }[1];
    level.clamp(0, 7) as u8
}

/// Logs `len` bytes at `msg`; an optional `"\x01" + digit` prefix gives the level.
/// Returns `len`, like Linux's printk returns the number of bytes printed.
///
/// # Safety
///
/// `msg` must point at `len` readable bytes (or `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn printk(msg: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's contract.
    let text = unsafe { kernel_bytes(msg, len) };
    match text {
        [1, d @ b'0'..=b'7', rest @ ..] => log(d - b'0', rest),
        _ => log(default_message_loglevel(), text),
    }
    len as i32
}

/// Writes one record as syslog(2) returns it: `<6>[    5.123456] text`, the prefix repeated for
/// every line of a multi-line record (`dmesg` strips the `<level>`, `dmesg -x` decodes it).
fn print_record(rec: &Record<'_>, out: &mut impl Write) -> fmt::Result {
    let secs = rec.ts_nsec / 1_000_000_000;
    let micros = rec.ts_nsec % 1_000_000_000 / 1000;
    for line in rec.text.split(|&b| b == b'\n') {
        // syslog(2)'s format: `<facility * 8 + level>` (facility 0, kern), then the time.
        write!(out, "<{}>[{secs:5}.{micros:06}] ", rec.level)?;
        out.write_str(core::str::from_utf8(line).unwrap_or("<non-UTF-8 message>"))?;
        out.write_char('\n')?;
    }
    Ok(())
}

/// Counts bytes instead of storing them.
struct Counter(usize);

impl Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Copies into a slice; fails when it is full.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn printed_len(rec: &Record<'_>) -> usize {
    let mut count = Counter(0);
    let _ = print_record(rec, &mut count);
    count.0
}

/// `syslog_print_all`: the newest records since the last clear that fit into `buf`.
fn print_all(log: &mut LogBuf, buf: &mut [u8], clear: bool) -> usize {
    let (mut seq, mut idx) = (log.clear_seq, log.clear_idx);
    let mut len = 0;
    while seq < log.next_seq {
        len += printed_len(&log.record(idx));
        idx = log.next(idx);
        seq += 1;
    }
    (seq, idx) = (log.clear_seq, log.clear_idx);
    while len > buf.len() && seq < log.next_seq {
        len -= printed_len(&log.record(idx));
        idx = log.next(idx);
        seq += 1;
    }
    let mut out = SliceWriter { buf, len: 0 };
    while seq < log.next_seq {
        if print_record(&log.record(idx), &mut out).is_err() {
            break;
        }
        idx = log.next(idx);
        seq += 1;
    }
    if clear {
        log.clear_seq = log.next_seq;
        log.clear_idx = log.next_idx;
    }
    out.len
}

/// Writes one record as `/dev/kmsg` gives it (`info_print_ext_header` and
/// `msg_print_ext_body`): `level,seq,usec,-;text` and a newline, the bytes of the text below
/// `' '`, from 127 up and `\\` escaped as `\xNN` (so a record is one line).
fn print_ext_record(rec: &Record<'_>, seq: u64, out: &mut impl Write) -> fmt::Result {
    write!(out, "{},{seq},{},-;", rec.level, rec.ts_nsec / 1000)?;
    for &c in rec.text {
        if !(b' '..127).contains(&c) || c == b'\\' {
            write!(out, "\\x{c:02x}")?;
        } else {
            out.write_char(char::from(c))?;
        }
    }
    out.write_char('\n')
}

/// Copies the record at `*seq` into `buf` in `/dev/kmsg`'s format and moves `*seq` past it;
/// a position older than the oldest record moves to the oldest first (the records between
/// were overwritten). Returns the bytes written, 0 when there is no record at `*seq` yet.
///
/// # Errors
///
/// `EINVAL` when the record does not fit in `buf` (`*seq` stays), as Linux's `devkmsg_read`.
pub fn read_ext_record(seq: &mut u64, buf: &mut [u8]) -> Result<usize, i32> {
    let _preempt = preempt_disable();
    // SAFETY: formatting makes no outside calls, so the borrow stays exclusive.
    let log = unsafe { LOG.get() };
    *seq = (*seq).max(log.first_seq);
    if *seq >= log.next_seq {
        return Ok(0);
    }
    let mut idx = log.first_idx;
    for _ in log.first_seq..*seq {
        idx = log.next(idx);
    }
    let mut out = SliceWriter { buf, len: 0 };
    print_ext_record(&log.record(idx), *seq, &mut out).map_err(|_| EINVAL)?;
    *seq += 1;
    Ok(out.len)
}

/// syslog(2): READ_ALL (3), READ_CLEAR (4), CLEAR (5), SIZE_BUFFER (10).
///
/// # Errors
///
/// `EINVAL` for an unknown action.
pub fn do_syslog(action: i32, buf: &mut [u8]) -> Result<usize, i32> {
    let _preempt = preempt_disable();
    // SAFETY: formatting makes no outside calls, so the borrow stays exclusive.
    let log = unsafe { LOG.get() };
    match action {
        SYSLOG_ACTION_READ_ALL => Ok(print_all(log, buf, false)),
        SYSLOG_ACTION_READ_CLEAR => Ok(print_all(log, buf, true)),
        SYSLOG_ACTION_CLEAR => {
            log.clear_seq = log.next_seq;
            log.clear_idx = log.next_idx;
            Ok(0)
        }
        SYSLOG_ACTION_SIZE_BUFFER => Ok(LOG_BUF_LEN),
        _ => Err(EINVAL),
    }
}
