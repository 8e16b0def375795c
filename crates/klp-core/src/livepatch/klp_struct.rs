//! klp_patch, klp_object, klp_func (include/linux/livepatch.h), read out of module memory.

use super::PatchId;
use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::Slot;
use crate::sys::{self, SysError, SysResult};
use klp_abi::{klp_callbacks, klp_func, klp_object, klp_patch, klp_state};

/// Longest symbol or object name read from guest memory.
const MAX_NAME: usize = 512;
/// Most objects one patch may describe.
const MAX_OBJECTS: usize = 64;
/// Most system states one patch may modify.
pub(super) const MAX_STATES: usize = 64;
/// Most functions one patch may describe, all its objects together (objects may share one
/// `klp_func` array: each reference counts).
pub const MAX_PATCH_FUNCS: usize = 1 << 14;

/// One patched function (`struct klp_func`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlpFunc {
    /// Name of the function to replace.
    pub(super) old_name: String,
    /// Position among same-named symbols of the object; 0 means the name is unique.
    pub(super) old_sympos: u32,
    /// Slot (function pointer) of the replacement.
    pub(super) new_func: Slot,
    /// The original's slot, once its object is loaded and the name resolved.
    pub(super) old_func: Option<Slot>,
}

impl KlpFunc {
    /// The sysfs directory name, `old_name,sympos` (sympos 0 shows as 1, as in Linux).
    pub fn sysfs_name(&self) -> String {
        format!("{},{}", self.old_name, self.old_sympos.max(1))
    }
}

/// An object's callbacks (`struct klp_callbacks`): the slots of the module's functions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Callbacks {
    /// `pre_patch`: `fn(*mut klp_object) -> i32`.
    pub(super) pre_patch: Option<Slot>,
    /// `post_patch`: `fn(*mut klp_object)`.
    pub(super) post_patch: Option<Slot>,
    /// `pre_unpatch`: `fn(*mut klp_object)`.
    pub(super) pre_unpatch: Option<Slot>,
    /// `post_unpatch`: `fn(*mut klp_object)`.
    pub(super) post_unpatch: Option<Slot>,
}

impl Callbacks {
    /// Each callback with its name and whether it returns the `int` `pre_patch` returns.
    pub(super) fn each(&self) -> [(&'static str, Option<Slot>, bool); 4] {
        [
            ("pre_patch", self.pre_patch, true),
            ("post_patch", self.post_patch, false),
            ("pre_unpatch", self.pre_unpatch, false),
            ("post_unpatch", self.post_unpatch, false),
        ]
    }
}

/// One patched object (`struct klp_object`): vmlinux or a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlpObject {
    /// Module name, or `None` for vmlinux.
    pub(super) name: Option<String>,
    pub(super) funcs: Vec<KlpFunc>,
    /// Address of the `klp_object` in kernel memory: what its callbacks are given.
    pub(super) addr: u32,
    pub(super) callbacks: Callbacks,
    /// `callbacks.post_unpatch_enabled`: its `pre_patch` succeeded, so `post_unpatch` runs when
    /// it is unpatched.
    pub(super) post_unpatch_enabled: bool,
    /// Whether the object's functions are on their func_stacks.
    pub(super) patched: bool,
}

impl KlpObject {
    /// Module name, or `None` for vmlinux.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `vmlinux` or the module's name, as sysfs shows it.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("vmlinux")
    }

    /// The functions to patch in it.
    pub fn funcs(&self) -> &[KlpFunc] {
        &self.funcs
    }

    /// Whether the object's functions are on their func_stacks.
    pub fn patched(&self) -> bool {
        self.patched
    }

    /// Whether every function's original has been found.
    pub(super) fn resolved(&self) -> bool {
        self.funcs.iter().all(|f| f.old_func.is_some())
    }
}

/// A system state the patch modifies (`struct klp_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KlpState {
    /// Address of the `klp_state` in kernel memory (what `klp_get_state` returns).
    pub(super) addr: u32,
    /// The state's id.
    pub(super) id: u32,
    /// The version of the modification.
    pub(super) version: u32,
}

/// How a patch was registered, which decides when the core frees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `klp_enable_patch()` (today's API): the patch is freed once it is disabled (its
    /// unpatching transition completed) or replaced (the replacing transition completed), or
    /// when enabling it fails.
    Enable,
    /// `klp_register_patch()` (the 2016 split API): the patch stays registered, disabled, until
    /// `klp_unregister_patch()` or its module's removal.
    Register,
}

/// One live patch (`struct klp_patch`); its name is the name of its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlpPatch {
    pub(super) id: PatchId,
    /// The patch module's name.
    pub(super) name: String,
    /// Address of the `klp_patch` structure in kernel memory (`klp_disable_patch()` finds the
    /// patch by it).
    pub(super) addr: u32,
    pub(super) replace: bool,
    pub(super) objs: Vec<KlpObject>,
    /// The system states it modifies.
    pub(super) states: Vec<KlpState>,
    /// Which API registered it.
    pub(super) api: Api,
    pub(super) enabled: bool,
    /// A transition of this patch was forced: its module can never be removed (its code may
    /// still run on some task's stack).
    pub(super) forced: bool,
}

impl KlpPatch {
    /// The patch's identity while it is registered.
    pub fn id(&self) -> PatchId {
        self.id
    }

    /// The patch module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Atomic replace: every function of older patches that this one does not patch reverts.
    pub fn replace(&self) -> bool {
        self.replace
    }

    /// The objects it patches.
    pub fn objs(&self) -> &[KlpObject] {
        &self.objs
    }

    /// Whether it is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// What a module's `klp_patch` says, before the patch is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PatchDesc {
    /// Address of the `klp_patch` structure in kernel memory (identifies the patch).
    pub(super) addr: u32,
    /// `klp_patch.replace`.
    pub(super) replace: bool,
    /// The objects, with their functions unresolved.
    pub(super) objs: Vec<KlpObject>,
    /// `klp_patch.states`.
    pub(super) states: Vec<KlpState>,
}

/// A word of the patch's structures; a bad address is the module's fault (`EFAULT`).
fn read_u32(e: &mut impl Engine, addr: u32) -> SysResult<u32> {
    e.read_u32(addr).map_err(|_| SysError::Errno(Errno::EFAULT))
}

/// Reads a NUL-terminated string of at most [`MAX_NAME`] bytes.
fn read_cstr(e: &mut impl Engine, addr: u32) -> SysResult<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64];
    while bytes.len() < MAX_NAME {
        let at = addr.checked_add(bytes.len() as u32).ok_or(Errno::EFAULT)?;
        // Read byte-wise near the end of memory, where a whole chunk may not fit.
        let n = if e.read(at, &mut chunk).is_ok() {
            chunk.len()
        } else {
            e.read(at, &mut chunk[..1])
                .map_err(|_| SysError::Errno(Errno::EFAULT))?;
            1
        };
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return String::from_utf8(bytes).map_err(|_| Errno::EINVAL.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    Err(Errno::EINVAL.into())
}

/// Reads the `klp_patch` of the patch module `name` and everything it points to, once.
///
/// # Errors
/// `EFAULT` for pointers outside memory, `EINVAL` for unterminated or oversized tables or names;
/// more than [`MAX_PATCH_FUNCS`] functions are `EINVAL` with a message, refused as soon as the
/// count passes the limit.
pub(super) fn read_patch(e: &mut impl Engine, name: &str, addr: u32) -> SysResult<PatchDesc> {
    let objs_addr = read_u32(e, addr + klp_patch::OBJS)?;
    let replace = read_u32(e, addr + klp_patch::REPLACE)? != 0;
    let states = read_states(e, addr)?;
    let mut objs: Vec<KlpObject> = Vec::new();
    let mut total = 0;
    for i in 0..=MAX_OBJECTS {
        if i == MAX_OBJECTS {
            return Err(Errno::EINVAL.into());
        }
        let obj = objs_addr
            .checked_add(klp_object::SIZE * i as u32)
            .ok_or(Errno::EFAULT)?;
        let name_ptr = read_u32(e, obj + klp_object::NAME)?;
        let funcs_ptr = read_u32(e, obj + klp_object::FUNCS)?;
        if funcs_ptr == 0 {
            break;
        }
        let callback = |e: &mut _, at: u32| -> SysResult<Option<Slot>> {
            let ptr = read_u32(e, obj + klp_object::CALLBACKS + at)?;
            Ok((ptr != 0).then(|| Slot::new(ptr)))
        };
        let callbacks = Callbacks {
            pre_patch: callback(e, klp_callbacks::PRE_PATCH)?,
            post_patch: callback(e, klp_callbacks::POST_PATCH)?,
            pre_unpatch: callback(e, klp_callbacks::PRE_UNPATCH)?,
            post_unpatch: callback(e, klp_callbacks::POST_UNPATCH)?,
        };
        let obj_name = if name_ptr == 0 {
            None
        } else {
            Some(read_cstr(e, name_ptr)?)
        };
        let Some(funcs) = read_funcs(e, funcs_ptr, MAX_PATCH_FUNCS - total)? else {
            sys::printk(
                e,
                &format!(
                    "\x013livepatch: patch '{name}' has more than {MAX_PATCH_FUNCS} functions"
                ),
            )?;
            return Err(Errno::EINVAL.into());
        };
        total += funcs.len();
        objs.push(KlpObject {
            name: obj_name,
            funcs,
            addr: obj,
            callbacks,
            post_unpatch_enabled: false,
            patched: false,
        });
    }
    // An object without functions is there for its callbacks, as Linux allows.
    if objs.is_empty() {
        return Err(Errno::EINVAL.into());
    }
    Ok(PatchDesc {
        addr,
        replace,
        objs,
        states,
    })
}

/// Reads the `klp_state` array of the `klp_patch` at `patch` (`klp_for_each_state`), as it is
/// in memory now.
///
/// # Errors
/// `EFAULT` for a pointer outside memory, `EINVAL` for more than [`MAX_STATES`] states.
pub(super) fn read_states(e: &mut impl Engine, patch: u32) -> SysResult<Vec<KlpState>> {
    let base = read_u32(
        e,
        patch.checked_add(klp_patch::STATES).ok_or(Errno::EFAULT)?,
    )?;
    let mut states = Vec::new();
    if base == 0 {
        return Ok(states);
    }
    for i in 0..=MAX_STATES {
        let at = base
            .checked_add(klp_state::SIZE * i as u32)
            .ok_or(Errno::EFAULT)?;
        let id = read_u32(e, at + klp_state::ID)?;
        if id == 0 {
            return Ok(states);
        }
        if i == MAX_STATES {
            break;
        }
        let version = read_u32(e, at + klp_state::VERSION)?;
        states.push(KlpState {
            addr: at,
            id,
            version,
        });
    }
    Err(Errno::EINVAL.into())
}

/// Reads a `klp_func` array of at most `room` entries; `None` when it has more.
fn read_funcs(e: &mut impl Engine, addr: u32, room: usize) -> SysResult<Option<Vec<KlpFunc>>> {
    let mut funcs = Vec::new();
    for i in 0..=room {
        let f = addr
            .checked_add(klp_func::SIZE * i as u32)
            .ok_or(Errno::EFAULT)?;
        let name_ptr = read_u32(e, f + klp_func::OLD_NAME)?;
        if name_ptr == 0 {
            return Ok(Some(funcs));
        }
        if i == room {
            return Ok(None);
        }
        funcs.push(KlpFunc {
            old_name: read_cstr(e, name_ptr)?,
            new_func: Slot::new(read_u32(e, f + klp_func::NEW_FUNC)?),
            old_sympos: read_u32(e, f + klp_func::OLD_SYMPOS)?,
            old_func: None,
        });
    }
    Ok(None)
}
