//! utsname: the kernel's name, release and host name, uname(2) and their /proc/sys files.

use core::ops::Deref;

use klp_abi::new_utsname::{FIELD_LEN, SIZE as UTSNAME_SIZE};
use klp_abi::{CtlTable, NEW_UTS_LEN, NewUtsname, USER_BUFFER_SIZE};

use crate::proc::sysctl::{proc_dostring, register_sysctl};
use crate::sync::Global;
use crate::uaccess::kernel_bytes;

/// The kernel release, `uname -r`.
pub const UTS_RELEASE: &str = "6.12.0-klp";
/// The build version, `uname -v`.
pub const UTS_VERSION: &str = "#1 SMP PREEMPT_DYNAMIC Tue Nov 24 00:00:00 UTC 2026";

const fn field(s: &str) -> [u8; FIELD_LEN] {
    let mut out = [0; FIELD_LEN];
    let mut i = 0;
    while i < s.len() && i < NEW_UTS_LEN {
        out[i] = s.as_bytes()[i];
        i += 1;
    }
    out
}

/// `struct uts_namespace`: the name, then the room an overflow of the name runs into.
#[repr(C)]
struct UtsNamespace {
    /// `init_uts_ns.name`, what uname(2) copies.
    name: NewUtsname,
    /// Bytes nobody reads. Linux's namespace goes on with `user_ns`, `ucounts` and `ns`;
    /// here the name is followed by room for the longest write the deliberate overflow in
    /// [`proc_do_uts_string`] can make (one `write(2)`, at most `USER_BUFFER_SIZE` bytes,
    /// plus its NUL), so that it reaches the same bytes in every build and no other kernel
    /// data, whatever the linker places next (docs/livepatch.md §8).
    overflow_room: [u8; USER_BUFFER_SIZE as usize],
}

/// The initial (and only) UTS namespace, `init_uts_ns`.
static INIT_UTS_NS: Global<UtsNamespace> = Global::new(UtsNamespace {
    name: NewUtsname {
        sysname: field("Linux"),
        nodename: field("(none)"),
        release: field(UTS_RELEASE),
        version: field(UTS_VERSION),
        machine: field("wasm32"),
        domainname: field("(none)"),
    },
    overflow_room: [0; USER_BUFFER_SIZE as usize],
});

/// A field of the utsname.
#[derive(Clone, Copy)]
pub enum Field {
    /// `uname -s`.
    Sysname,
    /// `uname -r`.
    Release,
    /// `uname -v`.
    Version,
}

/// A copy of one field, up to its first NUL.
pub struct UtsField {
    buf: [u8; FIELD_LEN],
    len: usize,
}

impl Deref for UtsField {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Reads a field (at most 65 bytes, stopping at the NUL).
pub fn utsname_field(which: Field) -> UtsField {
    // SAFETY: a short read of the namespace.
    let uts = unsafe { &INIT_UTS_NS.get().name };
    let buf = match which {
        Field::Sysname => uts.sysname,
        Field::Release => uts.release,
        Field::Version => uts.version,
    };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(FIELD_LEN);
    UtsField { buf, len }
}

/// uname(2): copies the whole `struct new_utsname`.
pub fn uname(out: &mut [u8; UTSNAME_SIZE]) {
    // SAFETY: `NewUtsname` is plain bytes of exactly UTSNAME_SIZE.
    let bytes = unsafe { &*INIT_UTS_NS.as_ptr().cast::<[u8; UTSNAME_SIZE]>() };
    out.copy_from_slice(bytes);
}

/// The `hostname=` boot parameter: sets the node name, truncated to 64 bytes.
pub fn set_hostname(name: &[u8]) {
    // SAFETY: a short write of the namespace.
    let uts = unsafe { &mut INIT_UTS_NS.get().name };
    let len = name.len().min(NEW_UTS_LEN);
    uts.nodename = [0; FIELD_LEN];
    uts.nodename[..len].copy_from_slice(&name[..len]);
}

/// Reads and writes the utsname fields from `/proc/sys/kernel`.
///
/// Reads go through [`proc_dostring`]. Writes store straight into the field the table
/// points at, up to the first newline. **Deliberate bug (missing bounds check):** unlike
/// Linux, which copies through a `__NEW_UTS_LEN + 1` byte buffer with `proc_dostring`, the
/// write is not limited to `table->maxlen`, so a host name longer than 64 bytes runs into the
/// next fields (`release` first), visible in `uname -a`, `/proc/version` and
/// `/proc/sys/kernel/osrelease`, and past the name into the namespace's unused room, never
/// further (docs/livepatch.md §8 has every offset). Fixed by the `klp-fix-hostname` livepatch.
///
/// # Safety
///
/// As [`proc_dostring`].
#[inline(never)]
unsafe extern "C" fn proc_do_uts_string(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    if write == 0 {
        // SAFETY: the caller's contract.
        return unsafe { proc_dostring(table, write, buffer, lenp, ppos) };
    }
    // SAFETY: the caller's contract.
    let (table, len, ppos) = unsafe { (&*table, *lenp, &mut *ppos) };
    // SAFETY: `buffer` holds `len` bytes.
    let input = unsafe { kernel_bytes(buffer, len) };
    let n = input
        .iter()
        .position(|&c| c == b'\n' || c == 0)
        .unwrap_or(len);
    let data = table.data.cast::<u8>();
    // SAFETY: none for n >= maxlen -- this is the bug.
    unsafe {
        core::ptr::copy_nonoverlapping(input.as_ptr(), data, n);
        data.add(n).write(0);
    }
    *ppos += len as i64;
    0
}

/// `/proc/sys/kernel/{ostype,osrelease,version,hostname,domainname}`.
static UTS_KERN_TABLE: [CtlTable; 5] = {
    let uts = INIT_UTS_NS.as_ptr();
    // SAFETY: only the field's address is taken.
    let uts = unsafe { &raw mut (*uts).name };
    // SAFETY: only field addresses are taken; nothing is read.
    unsafe {
        [
            CtlTable::new(
                c"ostype",
                (&raw mut (*uts).sysname).cast(),
                FIELD_LEN,
                0o444,
                proc_do_uts_string,
            ),
            CtlTable::new(
                c"osrelease",
                (&raw mut (*uts).release).cast(),
                FIELD_LEN,
                0o444,
                proc_do_uts_string,
            ),
            CtlTable::new(
                c"version",
                (&raw mut (*uts).version).cast(),
                FIELD_LEN,
                0o444,
                proc_do_uts_string,
            ),
            CtlTable::new(
                c"hostname",
                (&raw mut (*uts).nodename).cast(),
                FIELD_LEN,
                0o644,
                proc_do_uts_string,
            ),
            CtlTable::new(
                c"domainname",
                (&raw mut (*uts).domainname).cast(),
                FIELD_LEN,
                0o644,
                proc_do_uts_string,
            ),
        ]
    }
};

/// Registers the utsname files under `/proc/sys/kernel`.
pub fn init() {
    register_sysctl(b"kernel", &UTS_KERN_TABLE);
}
