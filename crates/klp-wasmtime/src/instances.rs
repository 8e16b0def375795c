//! The store's instances: which are live, what each wrote into the table, and when to move.
//!
//! wasmtime frees an instance only with its whole `Store`. So every instance is recorded here
//! with its compiled module and the table entries its element segments wrote, and every table
//! entry with the instance function it holds (its origin: which instance wrote it at which
//! entry). That is enough to rebuild the kernel in a fresh store from its compiled modules
//! ([`crate::migrate`]), leaving the dead instances behind.

use klp_core::engine::{EngineError, InstanceId};
use std::collections::BTreeMap;
use wasmparser::{ElementItems, ElementKind, Operator, Parser, Payload};
use wasmtime::Module;

/// Dead instances the store may hold before the kernel moves to a fresh one.
pub const DEAD_MAX: usize = 256;

/// Bytes of dead modules' compiled code the store may hold before the kernel moves to a fresh
/// one.
pub const DEAD_BYTES_MAX: usize = 4 << 20;

/// Who wrote a table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// The kernel's own element segments.
    Kernel,
    /// A module instance.
    Module(InstanceId),
}

/// The function a table entry holds: the one `owner`'s element segments wrote at `entry`.
pub type Origin = (Owner, u32);

/// A live module instance: enough to instantiate it again.
pub struct Live {
    /// Its compiled module.
    pub module: Module,
    /// The table entries its element segments write, in order.
    pub placements: Vec<u32>,
    /// The size of its compiled code ([`code_size`]).
    size: usize,
}

/// Every instance of the kernel's store, and the origin of every table entry.
pub struct Instances {
    /// The compiled kernel.
    pub kernel: Module,
    /// The table entries the kernel's element segments write.
    pub kernel_placements: Vec<u32>,
    live: BTreeMap<InstanceId, Live>,
    /// The origin of every table entry; `None` for a null entry.
    origins: Vec<Option<Origin>>,
    next_id: InstanceId,
    /// Instances the store holds, live or dead (failed instantiations included), the kernel's
    /// included.
    in_store: usize,
    /// Compiled code of the dead instances the store holds, in bytes ([`code_size`]).
    dead_bytes: usize,
    /// How many times the kernel moved to a fresh store.
    moves: u64,
    /// Whether the origins are no longer known (a table write this registry did not see): the
    /// kernel then stays in its store.
    untracked: bool,
}

/// Counts for tests and reports: see [`crate::WasmtimeEngine::store_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Module instances the kernel uses (the kernel's own not counted).
    pub live: usize,
    /// Instances the store holds, live and dead, the kernel's included.
    pub in_store: usize,
    /// How many times the kernel moved to a fresh store.
    pub moves: u64,
}

impl Instances {
    /// The registry of the kernel compiled as `kernel` from `wasm`, before it is instantiated.
    ///
    /// # Errors
    /// [`EngineError::Compile`] when the element section cannot be read.
    pub fn new(kernel: Module, wasm: &[u8]) -> Result<Self, EngineError> {
        Ok(Instances {
            kernel,
            kernel_placements: placements(wasm)?,
            live: BTreeMap::new(),
            origins: Vec::new(),
            next_id: 0,
            in_store: 1,
            dead_bytes: 0,
            moves: 0,
            untracked: false,
        })
    }

    /// Records the kernel's instantiation in a table of `table_len` entries.
    pub fn kernel_instantiated(&mut self, table_len: u64) {
        self.origins = vec![None; usize::try_from(table_len).unwrap_or(0)];
        for i in 0..self.kernel_placements.len() {
            let entry = self.kernel_placements[i];
            self.set_origin(entry, Some((Owner::Kernel, entry)));
        }
    }

    /// Counts an instance of a kernel code variant: live, kept for swapping back to it.
    pub fn code_added(&mut self) {
        self.in_store += 1;
    }

    /// Counts an instantiation attempt (the store keeps even a failed one).
    pub fn attempted(&mut self, size: usize) {
        self.in_store += 1;
        self.dead_bytes += size;
    }

    /// Records a successful instantiation of `module` (counted by [`Self::attempted`]) that
    /// wrote `placements`; returns its id.
    ///
    /// # Errors
    /// [`EngineError::Instantiate`] when the ids run out.
    pub fn add(
        &mut self,
        module: Module,
        placements: Vec<u32>,
        size: usize,
    ) -> Result<InstanceId, EngineError> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| EngineError::Instantiate("too many instances".into()))?;
        self.dead_bytes -= size;
        for &entry in &placements {
            self.set_origin(entry, Some((Owner::Module(id), entry)));
        }
        self.live.insert(
            id,
            Live {
                module,
                placements,
                size,
            },
        );
        Ok(id)
    }

    /// Forgets a live instance: it is dead, and goes with the store at the next move.
    pub fn release(&mut self, id: InstanceId) {
        if let Some(live) = self.live.remove(&id) {
            self.dead_bytes += live.size;
        }
    }

    /// The live instances, oldest first.
    pub fn live(&self) -> impl Iterator<Item = (InstanceId, &Live)> {
        self.live.iter().map(|(&id, live)| (id, live))
    }

    /// Whether enough is dead to move the kernel to a fresh store.
    pub fn move_due(&self) -> bool {
        let dead = self.in_store - 1 - self.live.len();
        !self.untracked && (dead >= DEAD_MAX || self.dead_bytes >= DEAD_BYTES_MAX)
    }

    /// The origin of every table entry.
    pub fn origins(&self) -> &[Option<Origin>] {
        &self.origins
    }

    /// Notes that the kernel moved to a fresh store holding only the live instances.
    pub fn moved(&mut self) {
        self.in_store = 1 + self.live.len();
        self.dead_bytes = 0;
        self.moves += 1;
    }

    /// Table entry `dst` now holds what `src` holds.
    pub fn copied(&mut self, dst: u32, src: u32) {
        let origin = self.origins.get(src as usize).copied().flatten();
        self.set_origin(dst, origin);
    }

    /// Table entries `start..start + len` are now null.
    pub fn cleared(&mut self, start: u32, len: u32) {
        for entry in start..start.saturating_add(len) {
            self.set_origin(entry, None);
        }
    }

    /// The table grew by `delta` null entries.
    pub fn grew(&mut self, delta: u32) {
        self.origins
            .resize(self.origins.len() + delta as usize, None);
    }

    /// Whether the origins describe a table of `table_len` entries; from now on not if it has
    /// another length (guest code grew it behind the registry's back).
    pub fn tracks(&mut self, table_len: u64) -> bool {
        if table_len != self.origins.len() as u64 {
            self.untracked = true;
        }
        !self.untracked
    }

    /// Keeps the kernel in this store from now on (a move failed).
    pub fn hold(&mut self) {
        self.untracked = true;
    }

    /// The counts [`StoreStats`] reports.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            live: self.live.len(),
            in_store: self.in_store,
            moves: self.moves,
        }
    }

    fn set_origin(&mut self, entry: u32, origin: Option<Origin>) {
        match self.origins.get_mut(entry as usize) {
            Some(o) => *o = origin,
            None => self.untracked = true,
        }
    }
}

/// The size of a compiled module's image: what a dead instance of it keeps alive.
pub fn code_size(module: &Module) -> usize {
    let image = module.image_range();
    image.end.addr() - image.start.addr()
}

/// The table entries the active element segments of `wasm` write, in order.
///
/// # Errors
/// [`EngineError::Compile`] for an element section wasmtime would not have accepted, or an
/// offset that is not a constant (a kernel or module here has only constant offsets).
pub fn placements(wasm: &[u8]) -> Result<Vec<u32>, EngineError> {
    let bad = |what: &str| EngineError::Compile(format!("element segments: {what}"));
    let mut entries = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| bad(&e.to_string()))?;
        let Payload::ElementSection(reader) = payload else {
            continue;
        };
        for element in reader {
            let element = element.map_err(|e| bad(&e.to_string()))?;
            let ElementKind::Active {
                table_index,
                offset_expr,
            } = element.kind
            else {
                continue;
            };
            if table_index.unwrap_or(0) != 0 {
                return Err(bad("a segment of another table"));
            }
            let offset = match offset_expr.get_operators_reader().read() {
                Ok(Operator::I32Const { value }) => value as u32,
                _ => return Err(bad("an offset that is not an i32.const")),
            };
            let count = match element.items {
                ElementItems::Functions(f) => f.count(),
                ElementItems::Expressions(_, e) => e.count(),
            };
            entries.extend((0..count).map(|i| offset.wrapping_add(i)));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Module {
        let engine = wasmtime::Engine::default();
        Module::new(&engine, b"\0asm\x01\0\0\0").expect("an empty module compiles")
    }

    fn registry(table_len: u64) -> Instances {
        let mut reg = Instances::new(kernel(), b"\0asm\x01\0\0\0").expect("no elements");
        reg.kernel_instantiated(table_len);
        reg
    }

    #[test]
    fn copies_and_clears_follow_the_origin_of_each_entry() {
        let mut reg = registry(4);
        reg.grew(4);
        reg.attempted(10);
        let id = reg.add(kernel(), vec![4, 5], 10).expect("an id");
        reg.copied(1, 5);
        reg.cleared(4, 1);
        assert_eq!(reg.origins()[1], Some((Owner::Module(id), 5)));
        assert_eq!(reg.origins()[4], None);
        assert_eq!(reg.origins()[5], Some((Owner::Module(id), 5)));
    }

    #[test]
    fn a_move_is_due_after_enough_dead_instances() {
        let mut reg = registry(0);
        for _ in 0..DEAD_MAX {
            assert!(!reg.move_due());
            reg.attempted(1);
            let id = reg.add(kernel(), Vec::new(), 1).expect("an id");
            reg.release(id);
        }
        assert!(reg.move_due());
        reg.moved();
        assert!(!reg.move_due());
        assert_eq!(
            reg.stats(),
            StoreStats {
                live: 0,
                in_store: 1,
                moves: 1
            }
        );
    }

    #[test]
    fn a_table_write_out_of_view_keeps_the_kernel_in_its_store() {
        let mut reg = registry(2);
        assert!(!reg.tracks(3));
        for _ in 0..=DEAD_MAX {
            reg.attempted(1);
        }
        assert!(!reg.move_due());
        assert!(!reg.tracks(2), "once lost, the origins stay unknown");
    }

    #[test]
    fn placements_list_every_entry_of_every_active_segment() {
        let wasm = wat_module();
        assert_eq!(placements(&wasm).expect("valid"), vec![3, 4, 10]);
    }

    /// A module with two active segments (at 3 and 10) and a passive one.
    fn wat_module() -> Vec<u8> {
        use wasm_encoder::{
            ConstExpr, ElementSection, Elements, FunctionSection, Module, RefType, TableSection,
            TableType, TypeSection,
        };
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            minimum: 16,
            maximum: None,
            table64: false,
            shared: false,
        });
        let mut elems = ElementSection::new();
        elems.active(
            None,
            &ConstExpr::i32_const(3),
            Elements::Functions([0, 0].as_slice().into()),
        );
        elems.passive(Elements::Functions([0].as_slice().into()));
        elems.active(
            Some(0),
            &ConstExpr::i32_const(10),
            Elements::Functions([0].as_slice().into()),
        );
        let mut code = wasm_encoder::CodeSection::new();
        let mut f = wasm_encoder::Function::new([]);
        f.instruction(&wasm_encoder::Instruction::End);
        code.function(&f);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&funcs)
            .section(&tables)
            .section(&elems)
            .section(&code);
        module.finish()
    }
}
