//! klp-fix-hostname: fixes the missing bounds check in the kernel's `proc_do_uts_string`.
//!
//! The replacement is Linux's own: copy the field into a `__NEW_UTS_LEN + 1` byte buffer,
//! let `proc_dostring` read or write that (it truncates to 64 bytes), copy it back. After
//! enabling, the init also repairs the fields an earlier overflow may have overwritten, and
//! ends the host and domain names at 64 bytes, reaching the kernel's local `INIT_UTS_NS`
//! through a `.klp.sym` relocation. It cannot repair kernel data past the namespace
//! (docs/livepatch.md §8).
#![no_std]

use core::ptr::addr_of_mut;

use klp_guest::{
    CtlTable, KlpFunc, KlpObject, KlpPatch, NewUtsname, klp_enable_patch, sys::proc_dostring,
};

/// What this kernel build's utsname fields after the host name hold.
const RELEASE: &[u8] = b"6.12.0-klp";
const VERSION: &[u8] = b"#1 SMP PREEMPT_DYNAMIC Tue Nov 24 00:00:00 UTC 2026";
const MACHINE: &[u8] = b"wasm32";

unsafe extern "C" {
    /// The kernel's `static INIT_UTS_NS` (utsname.rs), a unique local symbol.
    #[link_name = ".klp.sym.vmlinux.INIT_UTS_NS,0"]
    static mut INIT_UTS_NS: NewUtsname;
}

/// `proc_do_uts_string` with the bounds check: at most 64 bytes reach the field.
unsafe extern "C" fn livepatch_proc_do_uts_string(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    let mut tmp = [0u8; 65];
    // SAFETY: the kernel passes one of its utsname tables, whose data is a 65-byte field.
    let field = unsafe { &mut *(*table).data.cast::<[u8; 65]>() };
    tmp.copy_from_slice(field);
    // SAFETY: as above.
    let uts_table = CtlTable {
        data: tmp.as_mut_ptr().cast(),
        maxlen: 65,
        ..unsafe { *table }
    };
    // SAFETY: `uts_table` describes `tmp`; the rest is the kernel's arguments.
    let ret = unsafe { proc_dostring(&uts_table, write, buffer, lenp, ppos) };
    if write != 0 {
        field.copy_from_slice(&tmp);
    }
    ret
}

/// Rewrites `field` to `value` unless it already holds exactly that.
fn repair(field: &mut [u8; 65], value: &[u8]) {
    if field[..value.len()] != *value || field[value.len()] != 0 {
        field.fill(0);
        field[..value.len()].copy_from_slice(value);
    }
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(
        c"proc_do_uts_string",
        livepatch_proc_do_uts_string as *const (),
    ),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Enables the fix, then repairs release, version and machine and terminates the names.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let ret = klp_enable_patch(&PATCH);
    if ret == 0 {
        // SAFETY: the kernel is single-threaded and nothing else holds the namespace now.
        let uts = unsafe { &mut *addr_of_mut!(INIT_UTS_NS) };
        repair(&mut uts.release, RELEASE);
        repair(&mut uts.version, VERSION);
        repair(&mut uts.machine, MACHINE);
        uts.nodename[64] = 0;
        uts.domainname[64] = 0;
    }
    ret
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
