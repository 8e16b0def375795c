//! Moving the kernel to a fresh store, which is how dead instances are freed.
//!
//! At a safe point (an outermost call: no guest frame is live, no task holds one), the kernel
//! is instantiated again in a new store from its compiled module, its memory grown to the old
//! size and every page that differs copied, its table grown and every entry set to the same
//! function of the re-instantiated owner, its stack pointer carried, and each live module
//! instantiated again from its compiled module. Then the core state moves over and the old
//! store, with every dead instance in it, is dropped. Nothing changes if any step fails.

use crate::code;
use crate::instances::{Origin, Owner};
use crate::{Handles, HostData, ModuleCache, link_kernel, module_imports, new_store};
use klp_core::engine::EngineError;
use std::collections::HashMap;
use wasmtime::{AsContextMut, Instance, Ref, Store};

/// Granule of the memory copy: pages equal in both memories are not touched.
const PAGE: usize = 4096;

/// Moves the kernel to a fresh store if enough instances are dead. A failed move leaves the
/// kernel where it is, and it stays there (instances are then bounded only by the store's
/// instance limit).
pub fn at_safe_point(store: &mut Store<HostData>) {
    let data = store.data_mut();
    // A task holding frames is a continuation in this store: it cannot move.
    let frames = data
        .state
        .as_ref()
        .is_some_and(|s| s.tasks.holding_frames());
    if data.running_since.is_some() || frames || !data.instances().move_due() {
        return;
    }
    if move_kernel(store).is_err() {
        store.data_mut().instances().hold();
    }
}

/// See the module's comment.
///
/// # Errors
/// A table whose origins are not known (the kernel then stays), or any instantiation or growth
/// failure in the fresh store; the old store is then untouched.
pub fn move_kernel(store: &mut Store<HostData>) -> Result<(), EngineError> {
    move_kernel_to(store, None)
}

/// [`move_kernel`]; with `rehome`, the compiled boot code of the variant running now (it
/// defines the state itself), which becomes the kernel's boot code in the fresh store, so the
/// running code no longer imports its state.
///
/// # Errors
/// As [`move_kernel`]; an unknown `rehome` code.
pub fn move_kernel_to(
    store: &mut Store<HostData>,
    rehome: Option<klp_core::engine::CodeKey>,
) -> Result<(), EngineError> {
    let rehome = match rehome {
        Some(key) => {
            let codes = store.data_mut().code.as_mut();
            let codes = codes.ok_or_else(|| EngineError::Instantiate("one code".into()))?;
            Some((key, codes.module(key)?))
        }
        None => None,
    };
    let table = store
        .data()
        .handles
        .as_ref()
        .expect("a running kernel has handles")
        .table;
    let len = table.size(&*store);
    let frames = store
        .data()
        .state
        .as_ref()
        .is_some_and(|s| s.tasks.holding_frames());
    if frames {
        // A continuation lives in this store: it cannot move.
        return Err(EngineError::Table("a task holds frames".into()));
    }
    if !store.data_mut().instances().tracks(len) {
        return Err(EngineError::Table(
            "written behind the engine's back".into(),
        ));
    }
    let old = store.data();
    let old_handles = old.handles.as_ref().expect("a running kernel has handles");
    let registry = old
        .instances
        .as_ref()
        .expect("a running kernel has a registry");
    let mut fresh = new_store(
        store.engine(),
        HostData {
            state: None,
            handles: None,
            instances: None,
            boot: old.boot,
            watchdog: None,
            running_since: None,
            limits: old.limits,
            cache: ModuleCache::default(),
            code: None,
        },
    );
    let fail = |what: &'static str| {
        move |e: wasmtime::Error| EngineError::Instantiate(format!("{what}: {e}"))
    };
    // A kernel with code variants running another than its boot code: the boot code first
    // (it defines the state), then the code running now.
    let boot = old
        .code
        .as_ref()
        .filter(|c| c.current != c.boot && rehome.is_none())
        .map(|c| {
            (
                c.state_module.clone(),
                registry.kernel_placements.as_slice(),
            )
        });
    let boot = boot.as_ref().map(|(m, p)| (m, *p));
    let kernel = rehome.as_ref().map_or(&registry.kernel, |(_, m)| m);
    let (handles, state, boot_record) = link_kernel(&mut fresh, kernel, boot)?;
    let current_record = code::Instantiated::of(
        &mut fresh.as_context_mut(),
        &handles,
        &registry.kernel_placements,
    );

    let table_len = old_handles.table.size(&*store);
    let delta = table_len.saturating_sub(handles.table.size(&fresh));
    handles
        .table
        .grow(&mut fresh, delta, Ref::Func(None))
        .map_err(fail("table"))?;
    let pages = old_handles.memory.size(&*store);
    let delta = pages.saturating_sub(handles.memory.size(&fresh));
    handles
        .memory
        .grow(&mut fresh, delta)
        .map_err(fail("memory"))?;

    // What each owner's element segments write, read right after its instantiation (a later
    // owner may write the same entries).
    let mut written: HashMap<Origin, Ref> = HashMap::new();
    capture(
        &mut fresh,
        &handles,
        Owner::Kernel,
        &registry.kernel_placements,
        &mut written,
    );
    for (id, live) in registry.live() {
        let imports = module_imports(&handles, &live.module)?;
        Instance::new(&mut fresh, &live.module, &imports).map_err(fail("module"))?;
        capture(
            &mut fresh,
            &handles,
            Owner::Module(id),
            &live.placements,
            &mut written,
        );
    }
    for (entry, origin) in registry.origins().iter().enumerate() {
        let func = match origin {
            None => Ref::Func(None),
            Some(origin) => written
                .get(origin)
                .cloned()
                .ok_or_else(|| EngineError::Instantiate(format!("no function for {origin:?}")))?,
        };
        handles
            .table
            .set(&mut fresh, entry as u64, func)
            .map_err(fail("table entry"))?;
    }

    copy_memory(
        old_handles.memory.data(&*store),
        handles.memory.data_mut(&mut fresh),
    );
    if let (Some(from), Some(to)) = (old_handles.stack_pointer, handles.stack_pointer) {
        let sp = from.get(&mut *store);
        to.set(&mut fresh, sp).map_err(fail("stack pointer"))?;
    }
    if let Some(from) = store.data().code.as_ref().map(|c| c.state) {
        copy_globals(store, from, &mut fresh, state).map_err(fail("global"))?;
    }

    let old = store.data_mut();
    let data = fresh.data_mut();
    data.state = old.state.take();
    data.watchdog = old.watchdog.take();
    data.instances = old.instances.take();
    data.cache = std::mem::take(&mut old.cache);
    data.code = old.code.take();
    if let Some((key, module)) = &rehome {
        data.instances().kernel = module.clone();
        if let Some(codes) = data.code.as_mut() {
            codes.rehomed(*key, module);
        }
    }
    if let Some(codes) = data.code.as_mut() {
        codes.moved(state, current_record, boot_record);
    }
    data.handles = Some(handles);
    data.instances().moved();
    // The old store goes, and every instance in it: the live ones run on in `fresh`.
    std::mem::swap(store, &mut fresh);
    Ok(())
}

/// Sets every mutable global `to` exports to its value in `from`: the kernel's state.
fn copy_globals(
    store: &mut Store<HostData>,
    from: Instance,
    fresh: &mut Store<HostData>,
    to: Instance,
) -> wasmtime::Result<()> {
    let globals: Vec<(String, wasmtime::Global)> = from
        .exports(&mut *store)
        .filter_map(|e| {
            let name = e.name().to_string();
            e.into_global().map(|g| (name, g))
        })
        .collect();
    for (name, global) in globals {
        if global.ty(&*store).mutability() == wasmtime::Mutability::Var
            && let Some(dst) = to.get_global(&mut *fresh, &name)
        {
            let value = global.get(&mut *store);
            dst.set(&mut *fresh, value)?;
        }
    }
    Ok(())
}

/// Records the function at each of `placements` as written by `owner`.
fn capture(
    store: &mut Store<HostData>,
    handles: &Handles,
    owner: Owner,
    placements: &[u32],
    written: &mut HashMap<Origin, Ref>,
) {
    for &entry in placements {
        if let Some(func) = handles.table.get(&mut *store, u64::from(entry)) {
            written.insert((owner, entry), func);
        }
    }
}

/// Copies `from` into `to` (at least as long) page by page, skipping pages already equal.
fn copy_memory(from: &[u8], to: &mut [u8]) {
    for (src, dst) in from.chunks(PAGE).zip(to.chunks_mut(PAGE)) {
        let dst = &mut dst[..src.len()];
        if src != dst {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_memory;

    #[test]
    fn the_copy_makes_the_new_memory_equal_to_the_old() {
        let from: Vec<u8> = (0..3 * super::PAGE + 5).map(|i| (i % 251) as u8).collect();
        let mut to = vec![0u8; from.len() + super::PAGE];
        to[..super::PAGE].copy_from_slice(&from[..super::PAGE]);
        copy_memory(&from, &mut to);
        assert_eq!(&to[..from.len()], &from[..]);
        assert!(to[from.len()..].iter().all(|&b| b == 0));
    }
}
