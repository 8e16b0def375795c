//! The kernel's code variants on wasmtime: compiled in the background, swapped by rewriting the table.
//!
//! A kernel run with dynamic ftrace boots its plain code, which defines the kernel's state
//! (memory, table, globals, tags) and exports it; every other variant is a code module that
//! imports the state from module `kernel` (`instrument::split`). The code that runs when no
//! hook is used therefore reaches its state directly, at the speed of the kernel as built.
//! Every variant is instantiated at most once per store; what its element segments wrote is
//! remembered, so swapping back to it writes those entries again and instantiates nothing. A
//! task keeps the code it was spawned in: it is resumed through that instance's dispatcher.

use crate::tasks::TaskExports;
use crate::{GuestFunc, Handles, HostData, KernelExports};
use klp_core::engine::{CodeKey, EngineError};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use wasmtime::{Extern, Func, Instance, Module, Ref, StoreContextMut};

/// Compiled code variants kept: plain, full and a few selective ones.
const COMPILED_MAX: usize = 6;

/// A code module: compiled, being compiled on a worker thread, or refused.
enum Compiled {
    Ready(Module),
    Pending(JoinHandle<Result<Module, String>>),
    Failed(String),
}

/// A code variant instantiated in this store: the table entries it wrote, and its entry points.
pub(crate) struct Instantiated {
    entries: Vec<Ref>,
    exports: KernelExports,
    tasks: Option<TaskExports>,
}

impl Instantiated {
    /// The record of the code `handles` call (instantiated last): what it wrote at
    /// `placements`, its exports and task entry points.
    pub(crate) fn of(
        store: &mut StoreContextMut<'_, HostData>,
        handles: &Handles,
        placements: &[u32],
    ) -> Self {
        Instantiated {
            entries: written(store, handles.table, placements),
            exports: Arc::clone(&handles.exports),
            tasks: handles.tasks.clone(),
        }
    }
}

/// Records a code instance: the table entries its element segments wrote at `placements`
/// (read right after its instantiation), its exports and its task entry points (`state`
/// exports the globals).
pub(crate) fn record(
    store: &mut StoreContextMut<'_, HostData>,
    instance: &Instance,
    state: &Instance,
    table: wasmtime::Table,
    placements: &[u32],
) -> Instantiated {
    let entries = written(store, table, placements);
    let (exports, tasks) = exports(store, instance, state);
    Instantiated {
        entries,
        exports,
        tasks,
    }
}

/// The table entries the kernel's code wrote at `placements`, read right after its
/// instantiation.
pub(crate) fn written(
    store: &mut StoreContextMut<'_, HostData>,
    table: wasmtime::Table,
    placements: &[u32],
) -> Vec<Ref> {
    placements
        .iter()
        .map(|&p| {
            table
                .get(&mut *store, u64::from(p))
                .unwrap_or(Ref::Func(None))
        })
        .collect()
}

/// The kernel's state instance and every code variant compiled or instantiated.
pub(crate) struct Codes {
    /// The compiled boot code, which defines the state.
    pub(crate) state_module: Module,
    /// Its instance in this store.
    pub(crate) state: Instance,
    /// The boot code's key.
    pub(crate) boot: CodeKey,
    compiled: HashMap<CodeKey, Compiled>,
    /// The keys of `compiled`, oldest first.
    order: VecDeque<CodeKey>,
    instances: HashMap<CodeKey, Instantiated>,
    /// The code running now.
    pub(crate) current: CodeKey,
    /// The code each task slot holding a task was spawned in.
    homes: HashMap<u32, TaskExports>,
}

impl Codes {
    /// The codes of a kernel that booted `module` (its code `key`), instantiated as `state`
    /// and recorded as `boot`.
    pub(crate) fn new(module: Module, state: Instance, key: CodeKey, boot: Instantiated) -> Self {
        let mut codes = Codes {
            state_module: module.clone(),
            state,
            boot: key,
            compiled: HashMap::new(),
            order: VecDeque::from([key]),
            instances: HashMap::new(),
            current: key,
            homes: HashMap::new(),
        };
        codes.compiled.insert(key, Compiled::Ready(module));
        codes.instances.insert(key, boot);
        codes
    }

    /// Starts compiling `wasm` as `key` on a worker thread, unless known.
    pub(crate) fn prepare(&mut self, engine: &wasmtime::Engine, key: CodeKey, wasm: &Arc<[u8]>) {
        if self.compiled.contains_key(&key) {
            return;
        }
        let (engine, wasm) = (engine.clone(), Arc::clone(wasm));
        let worker = std::thread::Builder::new()
            .name("klp-compile".into())
            .spawn(move || Module::new(&engine, &*wasm).map_err(|e| format!("{e:#}")));
        let compiled = match worker {
            Ok(handle) => Compiled::Pending(handle),
            Err(e) => Compiled::Failed(format!("no compile thread: {e}")),
        };
        self.compiled.insert(key, compiled);
        self.order.push_back(key);
        // The oldest variants neither running nor instantiated go (compiled again if needed).
        while self.compiled.len() > COMPILED_MAX {
            let Some(at) = self
                .order
                .iter()
                .position(|k| *k != self.current && !self.instances.contains_key(k))
            else {
                break;
            };
            if let Some(old) = self.order.remove(at) {
                self.compiled.remove(&old);
            }
        }
    }

    /// Whether `key` is compiled (a finished worker is joined here).
    pub(crate) fn ready(&mut self, key: CodeKey) -> bool {
        let finished =
            matches!(self.compiled.get(&key), Some(Compiled::Pending(h)) if h.is_finished());
        if finished {
            self.join(key);
        }
        matches!(self.compiled.get(&key), Some(Compiled::Ready(_)))
    }

    /// Waits for every worker.
    pub(crate) fn join_all(&mut self) {
        let pending: Vec<CodeKey> = self
            .compiled
            .iter()
            .filter(|(_, c)| matches!(c, Compiled::Pending(_)))
            .map(|(k, _)| *k)
            .collect();
        for key in pending {
            self.join(key);
        }
    }

    /// Waits for `key`'s worker, if it has one.
    fn join(&mut self, key: CodeKey) {
        if let Some(Compiled::Pending(_)) = self.compiled.get(&key) {
            let Some(Compiled::Pending(handle)) = self.compiled.remove(&key) else {
                return;
            };
            let done = match handle.join() {
                Ok(Ok(module)) => Compiled::Ready(module),
                Ok(Err(e)) => Compiled::Failed(e),
                Err(_) => Compiled::Failed("the compile thread panicked".into()),
            };
            self.compiled.insert(key, done);
        }
    }

    /// The compiled module of `key`, waiting for its worker if need be.
    pub(crate) fn module(&mut self, key: CodeKey) -> Result<Module, EngineError> {
        self.join(key);
        match self.compiled.get(&key) {
            Some(Compiled::Ready(m)) => Ok(m.clone()),
            Some(Compiled::Failed(e)) => Err(EngineError::Compile(e.clone())),
            Some(Compiled::Pending(_)) | None => Err(EngineError::Compile(format!(
                "code variant {key:#x} was never prepared"
            ))),
        }
    }

    /// The task entry points of the code task slot `task` was spawned in (the current code's
    /// for a slot without a task).
    pub(crate) fn home(&self, task: u32) -> Option<TaskExports> {
        self.homes.get(&task).cloned()
    }

    /// Task slot `task` now holds a task of the current code.
    pub(crate) fn spawned(&mut self, task: u32, exports: &TaskExports) {
        self.homes.insert(task, exports.clone());
    }

    /// The boot code is `module`, known as `key`, from the next [`Self::moved`] on: it runs.
    pub(crate) fn rehomed(&mut self, key: CodeKey, module: &Module) {
        self.state_module = module.clone();
        self.boot = key;
        self.current = key;
    }

    /// The codes in a fresh store: the boot code's instance `state`, the current code
    /// instantiated there as `current`, and the boot code's record when it is another one.
    pub(crate) fn moved(
        &mut self,
        state: Instance,
        current: Instantiated,
        boot: Option<Instantiated>,
    ) {
        self.state = state;
        self.homes.clear();
        self.instances.clear();
        self.instances.insert(self.current, current);
        if let Some(boot) = boot {
            self.instances.insert(self.boot, boot);
        }
    }
}

/// The imports of a code module: the state's exports (from `state`, the boot code's instance)
/// and the host functions.
pub(crate) fn imports(
    store: &mut StoreContextMut<'_, HostData>,
    state: Option<&Instance>,
    hostcall: &Func,
    clock: &Func,
    module: &Module,
) -> Result<Vec<Extern>, EngineError> {
    let mut out = Vec::new();
    for import in module.imports() {
        let ext = match (import.module(), import.name()) {
            ("kernel", name) => state
                .and_then(|state| state.get_export(&mut *store, name))
                .ok_or_else(|| EngineError::Instantiate(format!("the state has no {name}")))?,
            ("klp", "hostcall") => (*hostcall).into(),
            ("klp", "clock_ns") => (*clock).into(),
            (m, n)
                if (m, n)
                    == (
                        klp_passes::instrument::tasks::YIELD_MODULE,
                        klp_passes::instrument::tasks::YIELD_NAME,
                    ) =>
            {
                // Every call of it became a suspend: nothing calls it.
                Func::wrap(&mut *store, || {}).into()
            }
            (m, n) => return Err(EngineError::Instantiate(format!("unknown import {m}.{n}"))),
        };
        out.push(ext);
    }
    Ok(out)
}

/// The functions and task entry points a code instance exports.
pub(crate) fn exports(
    store: &mut StoreContextMut<'_, HostData>,
    code: &Instance,
    state: &Instance,
) -> (KernelExports, Option<TaskExports>) {
    let funcs: Vec<(Box<str>, Func)> = code
        .exports(&mut *store)
        .filter_map(|export| {
            let name = export.name().into();
            export.into_func().map(|func| (name, func))
        })
        .collect();
    let exports = funcs
        .into_iter()
        .map(|(name, func)| (name, GuestFunc::new(&*store, func)))
        .collect();
    let tasks = TaskExports::find(store, code, state);
    (Arc::new(exports), tasks)
}

/// Swaps the running code to `key` (see [`klp_core::engine::Engine::swap_code`]).
pub(crate) fn swap(
    store: &mut StoreContextMut<'_, HostData>,
    key: CodeKey,
) -> Result<(), EngineError> {
    let data = store.data_mut();
    let codes = data
        .code
        .as_mut()
        .ok_or_else(|| EngineError::Instantiate("the kernel has one code".into()))?;
    if codes.current == key {
        return Ok(());
    }
    let module = codes.module(key)?;
    let placements = data.instances().kernel_placements.clone();
    let h = data.handles.as_ref().expect("a running kernel has handles");
    let (table, hostcall, clock) = (h.table, h.hostcall, h.clock);
    let known = store
        .data()
        .code
        .as_ref()
        .is_some_and(|c| c.instances.contains_key(&key));
    if !known {
        let state = store.data().code.as_ref().expect("checked").state;
        let imports = imports(store, Some(&state), &hostcall, &clock, &module)?;
        store.data_mut().instances().code_added();
        // No start function: instantiating runs no guest code.
        let instance = Instance::new(&mut *store, &module, &imports)
            .map_err(|e| EngineError::Instantiate(format!("{e:#}")))?;
        let recorded = record(store, &instance, &state, table, &placements);
        let codes = store.data_mut().code.as_mut().expect("checked");
        codes.instances.insert(key, recorded);
    } else {
        let entries = store.data().code.as_ref().expect("checked").instances[&key]
            .entries
            .clone();
        for (&p, func) in placements.iter().zip(entries) {
            table
                .set(&mut *store, u64::from(p), func)
                .map_err(|e| EngineError::Table(e.to_string()))?;
        }
    }
    let data = store.data_mut();
    let codes = data.code.as_mut().expect("checked");
    codes.current = key;
    let inst = &codes.instances[&key];
    let (exports, tasks) = (Arc::clone(&inst.exports), inst.tasks.clone());
    data.instances().kernel = module;
    let h = data.handles.as_mut().expect("a running kernel has handles");
    h.exports = exports;
    h.tasks = tasks;
    Ok(())
}
