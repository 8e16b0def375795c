//! Compiled modules by their bytes: loading a module the kernel has just loaded compiles nothing.
//!
//! A module unloaded and loaded again at the same place links to the same bytes, and a tracer
//! switched off and on builds the same trampolines: wasmtime's `Module` is shared code, so one
//! compilation serves every instance of it.

use klp_core::engine::EngineError;
use std::collections::VecDeque;
use wasmtime::Module;

/// The most modules kept.
const ENTRIES: usize = 16;

/// The most wasm bytes kept.
const BYTES: usize = 16 << 20;

/// The most recently compiled modules, newest first.
#[derive(Default)]
pub struct ModuleCache {
    entries: VecDeque<(Box<[u8]>, Module)>,
    bytes: usize,
}

impl ModuleCache {
    /// The compiled `wasm`: from the cache, or compiled by `engine` and kept.
    ///
    /// # Errors
    /// [`EngineError::Compile`] when `wasm` does not compile.
    pub fn get(&mut self, engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Module, EngineError> {
        if let Some(at) = self.entries.iter().position(|(bytes, _)| **bytes == *wasm) {
            let entry = self.entries.remove(at).expect("the entry found");
            let module = entry.1.clone();
            self.entries.push_front(entry);
            return Ok(module);
        }
        let module =
            Module::new(engine, wasm).map_err(|e| EngineError::Compile(format!("{e:#}")))?;
        if wasm.len() <= BYTES {
            self.bytes += wasm.len();
            self.entries.push_front((wasm.into(), module.clone()));
            while self.entries.len() > ENTRIES || self.bytes > BYTES {
                let (bytes, _) = self.entries.pop_back().expect("not empty");
                self.bytes -= bytes.len();
            }
        }
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module of one function returning `n`.
    fn module(n: u8) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend([1, 5, 1, 0x60, 0, 1, 0x7f]); // type: [] -> [i32]
        wasm.extend([3, 2, 1, 0]); // one function of type 0
        wasm.extend([10, 6, 1, 4, 0, 0x41, n & 0x3f, 0x0b]); // i32.const n
        wasm
    }

    #[test]
    fn the_same_bytes_give_the_same_compiled_module() {
        let engine = wasmtime::Engine::default();
        let mut cache = ModuleCache::default();
        let a = cache.get(&engine, &module(1)).expect("compiles");
        let b = cache.get(&engine, &module(1)).expect("compiles");
        let c = cache.get(&engine, &module(2)).expect("compiles");
        assert_eq!(a.image_range(), b.image_range());
        assert_ne!(a.image_range(), c.image_range());
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_modules() {
        let engine = wasmtime::Engine::default();
        let mut cache = ModuleCache::default();
        for n in 0..40 {
            cache.get(&engine, &module(n)).expect("compiles");
        }
        assert_eq!(cache.entries.len(), ENTRIES);
    }
}
