//! The [`Engine`] on the browser's own WebAssembly: `WebAssembly.Module`/`Instance`, the kernel's
//! `Memory`, `Table` and `__stack_pointer` global.
//!
//! The core state lives in an `Rc<RefCell<..>>` shared by every handle; it is borrowed only inside
//! [`Engine::with_state`], whose closure cannot call the guest, so a guest call that comes back
//! through `klp.hostcall` never meets a live borrow. JS objects (exports, memory, table) are cloned
//! out of their cell before any call into the guest.

use crate::tasks::{self, Outcome, TaskGlobals};
use js_sys::{ArrayBuffer, Object, Reflect, Uint8Array, WebAssembly};
use klp_core::engine::{Callee, Engine, EngineError, GuestTrap, InstanceId, Resumed};
use klp_core::hostcall;
use klp_core::state::KernelState;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen(module = "/src/glue.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn call_fn(f: &JsValue, args: &[i32]) -> Result<JsValue, JsValue>;
    fn wrap_hostcall(f: &Closure<HostcallFn>) -> JsValue;
    fn make_clock() -> JsValue;
    fn make_virtual_clock(now_ns: &Closure<dyn Fn() -> f64>) -> JsValue;
    fn stack_now() -> String;
    fn error_kind(e: &JsValue) -> String;
    fn error_message(e: &JsValue) -> String;
    fn error_stack(e: &JsValue) -> String;
    fn make_error(message: &str) -> JsValue;
    fn same(a: &JsValue, b: &JsValue) -> bool;
}

/// `klp.hostcall` as Rust sees it: a number for the guest, or an Error to throw.
type HostcallFn = dyn Fn(i32, i32, i32, i32) -> JsValue;

/// The JS objects of the running kernel. The memory and table are the kernel instance's own,
/// created without a maximum: unlike klp-wasmtime's limiter, only the browser bounds their growth.
#[derive(Clone)]
struct Handles {
    exports: Object,
    memory: WebAssembly::Memory,
    table: WebAssembly::Table,
    stack_pointer: WebAssembly::Global,
    /// The caller global (`__klp_caller`) the kernel's call sites store their caller's slot in.
    caller: JsValue,
    hostcall: JsValue,
    clock: JsValue,
    /// The tasks rewrite's globals, for a kernel with tasks.
    tasks: Option<TaskGlobals>,
}

struct Inner {
    state: RefCell<KernelState>,
    handles: RefCell<Option<Handles>>,
    instances: RefCell<Vec<Option<WebAssembly::Instance>>>,
    /// What a nested host call failed with, for the guest call that catches its exception.
    pending: RefCell<Option<EngineError>>,
    /// Module names from the instances' name sections: V8 prefixes frames with `<module>.`.
    module_names: RefCell<Vec<String>>,
    /// Keeps the `klp.hostcall` closure alive as long as the kernel.
    hostcall: RefCell<Option<Closure<HostcallFn>>>,
    /// Keeps the virtual clock's closure alive as long as the kernel.
    clock: RefCell<Option<Closure<dyn Fn() -> f64>>>,
    /// Host calls in progress: guest frames are live below this handle.
    host_calls: Cell<u32>,
}

/// A handle on a kernel running in the browser's engine; clones share the kernel.
#[derive(Clone)]
pub struct WebEngine(Rc<Inner>);

impl WebEngine {
    /// Compiles and instantiates an instrumented kernel with `klp.clock_ns`, `klp.hostcall`
    /// and `klp.yield`. A kernel with tasks (the pass's `Switching::Import`) reads the
    /// scheduler's virtual clock and switches tasks in its `klp.yield`; one without reads the
    /// page's clock, and its yield returns at once.
    ///
    /// # Errors
    /// Compilation or instantiation failures, or a kernel without the expected exports.
    pub fn instantiate_kernel(wasm: &[u8], state: KernelState) -> Result<Self, EngineError> {
        let inner = Rc::new(Inner {
            state: RefCell::new(state),
            handles: RefCell::new(None),
            instances: RefCell::new(Vec::new()),
            pending: RefCell::new(None),
            module_names: RefCell::new(Vec::new()),
            hostcall: RefCell::new(None),
            clock: RefCell::new(None),
            host_calls: Cell::new(0),
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        let closure =
            Closure::<HostcallFn>::new(move |op: i32, a: i32, b: i32, c: i32| -> JsValue {
                let Some(inner) = weak.upgrade() else {
                    return make_error("kernel is gone");
                };
                let mut engine = WebEngine(inner);
                let depth = engine.0.host_calls.get();
                engine.0.host_calls.set(depth + 1);
                let result = hostcall::dispatch(&mut engine, op, [a, b, c]);
                engine.0.host_calls.set(depth);
                match result {
                    Ok(v) => JsValue::from(v),
                    Err(err) => {
                        let message = err.to_string();
                        *engine.0.pending.borrow_mut() = Some(err);
                        make_error(&message)
                    }
                }
            });
        let hostcall = wrap_hostcall(&closure);
        *inner.hostcall.borrow_mut() = Some(closure);
        let module = compile(wasm)?;
        let with_tasks = WebAssembly::Module::exports(&module).iter().any(|e| {
            Reflect::get(&e, &JsValue::from_str("name"))
                .ok()
                .and_then(|n| n.as_string())
                .is_some_and(|n| n == klp_passes::instrument::tasks::BUDGET)
        });
        let clock = if with_tasks {
            let weak = Rc::downgrade(&inner);
            let now = Closure::<dyn Fn() -> f64>::new(move || {
                weak.upgrade()
                    .map_or(0.0, |inner| inner.state.borrow().tasks.now_ns() as f64)
            });
            let clock = make_virtual_clock(&now);
            *inner.clock.borrow_mut() = Some(now);
            clock
        } else {
            make_clock()
        };
        inner.note_module_name(wasm);
        let klp = Object::new();
        set(&klp, "hostcall", &hostcall);
        set(&klp, "clock_ns", &clock);
        if with_tasks {
            set(&klp, "yield", &tasks::yield_import());
        } else {
            // A kernel without tasks has nobody else to run: its yield returns at once.
            set(&klp, "yield", &js_sys::Function::new_no_args(""));
        }
        let imports = Object::new();
        set(&imports, "klp", &klp);
        let instance = WebAssembly::Instance::new(&module, &imports)
            .map_err(|e| EngineError::Instantiate(error_message(&e)))?;
        let exports = instance.exports();
        let export = |name: &str| {
            Reflect::get(&exports, &JsValue::from_str(name))
                .ok()
                .filter(|v| !v.is_undefined())
                .ok_or_else(|| EngineError::NoExport(name.to_string()))
        };
        let table: WebAssembly::Table = export("__indirect_function_table")?.unchecked_into();
        let stack_pointer: WebAssembly::Global = export("__stack_pointer")?.unchecked_into();
        let caller = export(klp_passes::instrument::CALLER_GLOBAL)?;
        let tasks = if with_tasks {
            tasks::attach(&exports, &table, &stack_pointer)
        } else {
            None
        };
        let handles = Handles {
            memory: export("memory")?.unchecked_into(),
            table,
            stack_pointer,
            caller,
            exports,
            hostcall,
            clock,
            tasks,
        };
        *inner.handles.borrow_mut() = Some(handles);
        Ok(WebEngine(inner))
    }

    fn handles(&self) -> Handles {
        self.with_handles(Handles::clone)
    }

    /// `f` on the handles, borrowed, not cloned (a clone copies every JS reference): `f` must
    /// not call the guest.
    fn with_handles<R>(&self, f: impl FnOnce(&Handles) -> R) -> R {
        f(self
            .0
            .handles
            .borrow()
            .as_ref()
            .expect("kernel instantiated before use"))
    }

    /// The function a table entry holds (`null` when empty).
    fn entry(&self, index: u32) -> JsValue {
        self.with_handles(|h| h.table.get_raw(index).unwrap_or(JsValue::NULL))
    }

    /// Whether table entries `a` and `b` hold the same function (both non-null).
    pub fn same_entry(&self, a: u32, b: u32) -> bool {
        let (x, y) = (self.entry(a), self.entry(b));
        !x.is_null() && same(&x, &y)
    }

    /// The guest frames of a V8 stack trace, with V8's `<module>.` prefix removed.
    fn frames(&self, stack: &str) -> Vec<Option<String>> {
        let modules = self.0.module_names.borrow();
        frames(stack)
            .into_iter()
            .map(|f| {
                f.map(|name| {
                    modules
                        .iter()
                        .find_map(|m| name.strip_prefix(m.as_str())?.strip_prefix('.'))
                        .map_or(name.clone(), str::to_string)
                })
            })
            .collect()
    }

    /// Turns an exception from a guest call into an [`EngineError`].
    fn trap(&self, err: &JsValue) -> EngineError {
        let frames = self.frames(&error_stack(err));
        if let Some(pending) = self.0.pending.borrow_mut().take() {
            return match pending {
                EngineError::Trap(trap) => EngineError::Trap(trap),
                other => EngineError::Trap(GuestTrap {
                    message: other.to_string(),
                    frames,
                    stop: None,
                }),
            };
        }
        let message = match error_kind(err).as_str() {
            "trap" => trap_message(&error_message(err)),
            "stack" => "wasm trap: call stack exhausted".to_string(),
            _ => error_message(err),
        };
        EngineError::Trap(GuestTrap {
            message,
            frames,
            stop: None,
        })
    }
}

impl Inner {
    /// Remembers the module name of a wasm file's name section, if it has one.
    fn note_module_name(&self, wasm: &[u8]) {
        use wasmparser::{KnownCustom, Name, Parser, Payload};
        for payload in Parser::new(0).parse_all(wasm).filter_map(Result::ok) {
            let Payload::CustomSection(section) = payload else {
                continue;
            };
            let KnownCustom::Name(reader) = section.as_known() else {
                continue;
            };
            for name in reader.into_iter().filter_map(Result::ok) {
                if let Name::Module { name, .. } = name {
                    let mut names = self.module_names.borrow_mut();
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                        // Longest first, so `a.wasm.x` never strips as `a`.
                        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
                    }
                }
            }
        }
    }
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn compile(wasm: &[u8]) -> Result<WebAssembly::Module, EngineError> {
    WebAssembly::Module::new(&Uint8Array::from(wasm).into())
        .map_err(|e| EngineError::Compile(error_message(&e)))
}

/// V8's trap messages in wasmtime's words (`wasm trap: ...`), so an oops reads as on the CLI.
fn trap_message(v8: &str) -> String {
    let words = match v8 {
        "unreachable" => "wasm `unreachable` instruction executed",
        "memory access out of bounds" => "out of bounds memory access",
        "divide by zero" | "remainder by zero" => "integer divide by zero",
        "divide result unrepresentable" => "integer overflow",
        "float unrepresentable in integer range" => "invalid conversion to integer",
        "table index is out of bounds" => "undefined element: out of bounds table access",
        other => other,
    };
    format!("wasm trap: {words}")
}

/// The guest frames of a V8 stack trace, innermost first: lines of instances compiled from
/// bytes (`wasm://wasm/…:wasm-function[N]:0x…`), named by the name section where V8 shows it.
pub fn frames(stack: &str) -> Vec<Option<String>> {
    stack
        .lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("at ")?;
            if !line.contains("wasm://wasm/") {
                return None;
            }
            Some(match line.split_once(" (wasm://wasm/") {
                Some((name, _)) => {
                    let name = name.trim_start_matches('$');
                    (!name.is_empty()).then(|| name.to_string())
                }
                None => None,
            })
        })
        .collect()
}

fn table_err(e: &JsValue) -> EngineError {
    EngineError::Table(error_message(e))
}

impl Engine for WebEngine {
    fn with_state<R>(&mut self, f: impl FnOnce(&mut KernelState) -> R) -> R {
        f(&mut self.0.state.borrow_mut())
    }

    fn call(&mut self, callee: Callee<'_>, args: &[i32]) -> Result<Option<i32>, EngineError> {
        let h = self.handles();
        let func = match callee {
            Callee::Export(name) => Reflect::get(&h.exports, &JsValue::from_str(name))
                .ok()
                .filter(JsValue::is_function)
                .ok_or_else(|| EngineError::NoExport(name.to_string()))?,
            Callee::Slot(slot) => match h.table.get_raw(slot) {
                Ok(f) if f.is_function() => f,
                _ => return Err(EngineError::Table(format!("slot {slot} holds no function"))),
            },
        };
        let arity = Reflect::get(&func, &JsValue::from_str("length"))
            .ok()
            .and_then(|n| n.as_f64());
        if arity != Some(args.len() as f64) {
            return Err(EngineError::NoExport(format!(
                "{callee:?} takes {arity:?} arguments, not {}",
                args.len()
            )));
        }
        let result = match h.tasks.as_ref().filter(|_| self.0.host_calls.get() > 0) {
            Some(t) => t.atomic(|| call_fn(&func, args)),
            None => call_fn(&func, args),
        }
        .map_err(|e| self.trap(&e))?;
        if result.is_undefined() {
            return Ok(None);
        }
        match result.as_f64() {
            Some(v) => Ok(Some(v as i32)),
            None => Err(EngineError::NoExport(format!(
                "{callee:?} does not return an i32"
            ))),
        }
    }

    fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), EngineError> {
        let memory: ArrayBuffer = self.with_handles(|h| h.memory.buffer()).unchecked_into();
        if u64::from(addr) + buf.len() as u64 > u64::from(memory.byte_length()) {
            return Err(EngineError::Fault(addr));
        }
        Uint8Array::new_with_byte_offset_and_length(&memory, addr, buf.len() as u32).copy_to(buf);
        Ok(())
    }

    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), EngineError> {
        let memory: ArrayBuffer = self.with_handles(|h| h.memory.buffer()).unchecked_into();
        if u64::from(addr) + data.len() as u64 > u64::from(memory.byte_length()) {
            return Err(EngineError::Fault(addr));
        }
        Uint8Array::new_with_byte_offset_and_length(&memory, addr, data.len() as u32)
            .copy_from(data);
        Ok(())
    }

    fn table_len(&mut self) -> u32 {
        self.with_handles(|h| h.table.length())
    }

    fn table_grow(&mut self, delta: u32) -> Result<u32, EngineError> {
        self.with_handles(|h| h.table.grow(delta))
            .map_err(|e| table_err(&e))
    }

    fn table_copy(&mut self, dst: u32, src: u32) -> Result<(), EngineError> {
        let table = self.handles().table;
        let f = table.get_raw(src).map_err(|e| table_err(&e))?;
        table.set_raw(dst, &f).map_err(|e| table_err(&e))
    }

    fn table_clear(&mut self, start: u32, len: u32) -> Result<(), EngineError> {
        let table = self.handles().table;
        if u64::from(start) + u64::from(len) > u64::from(table.length()) {
            return Err(EngineError::Table(format!(
                "entries {start}..{} out of bounds",
                u64::from(start) + u64::from(len)
            )));
        }
        for i in start..start + len {
            table
                .set_raw(i, &JsValue::NULL)
                .map_err(|e| table_err(&e))?;
        }
        Ok(())
    }

    fn stack_pointer(&mut self) -> u32 {
        self.with_handles(|h| h.stack_pointer.value())
            .as_f64()
            .map_or(0, |v| v as i32 as u32)
    }

    fn set_stack_pointer(&mut self, sp: u32) {
        self.with_handles(|h| h.stack_pointer.set_value(&JsValue::from(sp as i32)));
    }

    fn instantiate(&mut self, wasm: &[u8]) -> Result<InstanceId, EngineError> {
        let h = self.handles();
        let module = compile(wasm)?;
        self.0.note_module_name(wasm);
        let env = Object::new();
        let klp = Object::new();
        for import in WebAssembly::Module::imports(&module).iter() {
            let field = |k: &str| {
                Reflect::get(&import, &JsValue::from_str(k))
                    .ok()
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            let (m, n) = (field("module"), field("name"));
            let (obj, value): (&Object, &JsValue) = match (m.as_str(), n.as_str()) {
                ("env", "memory") => (&env, &h.memory),
                ("env", "__indirect_function_table") => (&env, &h.table),
                ("env", "__stack_pointer") => (&env, &h.stack_pointer),
                ("env", klp_passes::instrument::CALLER_GLOBAL) => (&env, &h.caller),
                ("klp", "hostcall") => (&klp, &h.hostcall),
                ("klp", "clock_ns") => (&klp, &h.clock),
                _ => return Err(EngineError::Instantiate(format!("unknown import {m}.{n}"))),
            };
            set(obj, &n, value);
        }
        let imports = Object::new();
        set(&imports, "env", &env);
        set(&imports, "klp", &klp);
        let instance = WebAssembly::Instance::new(&module, &imports)
            .map_err(|e| EngineError::Instantiate(error_message(&e)))?;
        // A released instance's slot is reused: the list stays as long as the most modules
        // ever loaded at once (the browser frees an instance once nothing refers to it).
        let mut instances = self.0.instances.borrow_mut();
        let id = match instances.iter().position(Option::is_none) {
            Some(free) => {
                instances[free] = Some(instance);
                free
            }
            None => {
                instances.push(Some(instance));
                instances.len() - 1
            }
        };
        u32::try_from(id).map_err(|_| EngineError::Instantiate("too many instances".into()))
    }

    fn has_tasks(&mut self) -> bool {
        self.with_handles(|h| h.tasks.is_some())
    }

    fn in_host_call(&mut self) -> bool {
        self.0.host_calls.get() > 0
    }

    fn task_spawn(&mut self, task: u32, entry: u32, arg: i32) -> Result<(), EngineError> {
        tasks::spawn(task, entry, arg)
    }

    fn task_resume(&mut self, task: u32, sp: u32, budget: i32) -> Result<Resumed, EngineError> {
        match tasks::resume(task, sp, budget) {
            Outcome::Stopped(stop, used) => Ok(Resumed { stop, used }),
            Outcome::Trapped(err) => Err(self.trap(&err)),
        }
    }

    fn backtrace(&mut self) -> Vec<Option<String>> {
        // The JS stack now: from a host call, the guest frames below it are its callers.
        self.frames(&stack_now())
    }

    fn release(&mut self, id: InstanceId) {
        if let Some(slot) = self.0.instances.borrow_mut().get_mut(id as usize) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_guest_lines_only() {
        let stack = "RuntimeError: unreachable\n    at panic (wasm://wasm/0a1b:wasm-function[3]:0x10)\n    at wasm://wasm/0a1b:wasm-function[9]:0x20\n    at klp_web::f (http://127.0.0.1/klp_web_bg.wasm:wasm-function[1]:0x5)\n    at call_fn (http://127.0.0.1/snippets/glue.js:6:10)";
        assert_eq!(frames(stack), vec![Some("panic".to_string()), None]);
    }
}
