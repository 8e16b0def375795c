//! The cumulative console loglevel fix of test_klp_state2 and test_klp_state3: it allocates,
//! fixes, restores and frees the state only when no earlier patch did; otherwise it takes the
//! change over and passes it back.

use klp_guest::errno::{EINVAL, ENOMEM};
use klp_guest::livepatch::{
    CONSOLE_LOGLEVEL_MOTORMOUTH, callback_info, console_loglevel, klp_get_prev_state,
    klp_get_state, set_console_loglevel,
};
use klp_guest::{KlpCallbacks, KlpFunc, KlpObject, KlpPatch, KlpState, pr_info, sys};

/// The module's name (`test_klp_state2` or `test_klp_state3`), as `KBUILD_MODNAME`.
const MODNAME: &str = env!("CARGO_PKG_NAME");
/// The state's id.
const CONSOLE_LOGLEVEL_STATE: u32 = 1;
/// Version 2 supports migration.
const CONSOLE_LOGLEVEL_STATE_VERSION: u32 = 2;

/// This patch's loglevel state.
fn loglevel_state() -> Option<&'static mut KlpState> {
    // SAFETY: the kernel returns an element of `STATES` or NULL; the guest is single-threaded.
    unsafe { klp_get_state(&PATCH, CONSOLE_LOGLEVEL_STATE).as_mut() }
}

/// The loglevel state of the patches installed before this one.
fn prev_loglevel_state() -> Option<&'static mut KlpState> {
    // SAFETY: the kernel returns another patch's state or NULL; that patch stays while this
    // one's transition runs.
    unsafe { klp_get_prev_state(CONSOLE_LOGLEVEL_STATE).as_mut() }
}

/// Allocates room for the loglevel, unless an earlier patch has.
fn allocate_loglevel_state() -> i32 {
    if prev_loglevel_state().is_some() {
        pr_info!(
            "{}: allocate_loglevel_state: space to store console_loglevel already allocated",
            MODNAME
        );
        return 0;
    }
    let Some(state) = loglevel_state() else {
        return -EINVAL;
    };
    // SAFETY: kmalloc returns a zeroed block or NULL.
    let data = unsafe { sys::kmalloc(size_of::<i32>(), 0) };
    if data.is_null() {
        return -ENOMEM;
    }
    state.data = data.cast();
    pr_info!(
        "{}: allocate_loglevel_state: allocating space to store console_loglevel",
        MODNAME
    );
    0
}

/// Keeps the loglevel and makes the console print everything, or takes an earlier patch's
/// change over.
fn fix_console_loglevel() {
    let Some(state) = loglevel_state() else {
        return;
    };
    if let Some(prev) = prev_loglevel_state() {
        pr_info!(
            "{}: fix_console_loglevel: taking over the console_loglevel change",
            MODNAME
        );
        state.data = prev.data;
        return;
    }
    pr_info!("{}: fix_console_loglevel: fixing console_loglevel", MODNAME);
    // SAFETY: `data` is the block allocate_loglevel_state took.
    unsafe { *state.data.cast::<i32>() = console_loglevel() };
    set_console_loglevel(CONSOLE_LOGLEVEL_MOTORMOUTH);
}

/// Puts the kept loglevel back, or leaves the change to the earlier patch.
fn restore_console_loglevel() {
    if prev_loglevel_state().is_some() {
        pr_info!(
            "{}: restore_console_loglevel: passing the console_loglevel change back to the old livepatch",
            MODNAME
        );
        return;
    }
    let Some(state) = loglevel_state() else {
        return;
    };
    pr_info!(
        "{}: restore_console_loglevel: restoring console_loglevel",
        MODNAME
    );
    // SAFETY: `data` holds the loglevel kept when the change was made.
    set_console_loglevel(unsafe { *state.data.cast::<i32>() });
}

/// Frees the room, unless an earlier patch still uses it.
fn free_loglevel_state() {
    if prev_loglevel_state().is_some() {
        pr_info!(
            "{}: free_loglevel_state: keeping space to store console_loglevel",
            MODNAME
        );
        return;
    }
    let Some(state) = loglevel_state() else {
        return;
    };
    pr_info!(
        "{}: free_loglevel_state: freeing space for the stored console_loglevel",
        MODNAME
    );
    // SAFETY: the block allocated for the change.
    unsafe { sys::kfree(state.data.cast()) };
}

/// Executed on object patching (ie, patch enablement).
unsafe extern "C" fn pre_patch_callback(obj: *mut KlpObject) -> i32 {
    // SAFETY: the kernel passes the object being patched.
    unsafe { callback_info(MODNAME, "pre_patch_callback", obj) };
    allocate_loglevel_state()
}

/// Executed once the patching transition completed.
unsafe extern "C" fn post_patch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the patched object.
    unsafe { callback_info(MODNAME, "post_patch_callback", obj) };
    fix_console_loglevel();
}

/// Executed on object unpatching (ie, patch disablement), before the transition.
unsafe extern "C" fn pre_unpatch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the object being unpatched.
    unsafe { callback_info(MODNAME, "pre_unpatch_callback", obj) };
    restore_console_loglevel();
}

/// Executed once the unpatching transition completed.
unsafe extern "C" fn post_unpatch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the unpatched object.
    unsafe { callback_info(MODNAME, "post_unpatch_callback", obj) };
    free_loglevel_state();
}

static NO_FUNCS: [KlpFunc; 1] = [KlpFunc::END];
static OBJS: [KlpObject; 2] = [
    KlpObject::vmlinux(&NO_FUNCS).with_callbacks(KlpCallbacks {
        pre_patch: Some(pre_patch_callback),
        post_patch: Some(post_patch_callback),
        pre_unpatch: Some(pre_unpatch_callback),
        post_unpatch: Some(post_unpatch_callback),
    }),
    KlpObject::END,
];
/// Written by the callbacks (`data`), through `klp_get_state`.
static mut STATES: [KlpState; 2] = [
    KlpState::new(CONSOLE_LOGLEVEL_STATE, CONSOLE_LOGLEVEL_STATE_VERSION),
    KlpState::END,
];
static PATCH: KlpPatch = KlpPatch::new(&OBJS)
    .with_replace(true)
    .with_states((&raw const STATES).cast());

/// Enables the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_guest::klp_enable_patch(&PATCH)
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
