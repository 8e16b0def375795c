//! The ftrace table as the host sees it: what each slot is, where its original lives, and which
//! table ranges are free for modules.

use crate::instrument::{FtraceMap, FuncSig};
use std::collections::BTreeMap;

/// What the host knows of one slot of the ftrace table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// The table entry that keeps the original function.
    pub orig: u32,
    /// The function's type.
    pub sig: FuncSig,
    /// notrace: calls to it are direct, it cannot be patched.
    pub notrace: bool,
    /// The module the function belongs to, `None` for vmlinux.
    pub owner: Option<String>,
}

/// Every slot of the ftrace table, kernel and modules, and the free ranges of the table.
#[derive(Debug, Default)]
pub struct FtraceTable {
    slots: BTreeMap<u32, SlotInfo>,
    free: Vec<(u32, u32)>,
}

impl FtraceTable {
    /// The kernel's slots, from the instrumentation pass.
    ///
    /// An entry whose orig entry `slot + nr_slots` would not be a table index is left out (its
    /// slot is not a known function). A map the pass made or read back
    /// ([`FtraceMap::from_instrumented`]) has none: its slots are below `nr_slots` and
    /// `nr_slots` is at most 2^20.
    pub fn from_map(map: &FtraceMap) -> Self {
        let slots = map
            .entries
            .iter()
            .filter_map(|en| {
                let info = SlotInfo {
                    orig: en.slot.checked_add(map.nr_slots)?,
                    sig: en.sig.clone(),
                    notrace: en.notrace,
                    owner: None,
                };
                Some((en.slot, info))
            })
            .collect();
        FtraceTable {
            slots,
            free: Vec::new(),
        }
    }

    /// The slot's description, if it holds a known function.
    pub fn info(&self, slot: u32) -> Option<&SlotInfo> {
        self.slots.get(&slot)
    }

    /// Number of functions with a slot (kernel and modules).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no function has a slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Records a module's functions: `sigs[i]` lives at `base + i`, its original at `base + n + i`.
    pub fn add_module(&mut self, owner: &str, base: u32, sigs: &[FuncSig]) {
        let n = sigs.len() as u32;
        for (i, sig) in (0u32..).zip(sigs) {
            let info = SlotInfo {
                orig: base + n + i,
                sig: sig.clone(),
                notrace: false,
                owner: Some(owner.to_string()),
            };
            self.slots.insert(base + i, info);
        }
    }

    /// Forgets a module's slots and returns its range `base..base + 2n` to the free list.
    pub fn remove_module(&mut self, base: u32, n: u32) {
        for slot in base..base + n {
            self.slots.remove(&slot);
        }
        if n > 0 {
            self.free.push((base, 2 * n));
        }
    }

    /// Every slot that holds a known function, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.keys().copied()
    }

    /// Returns `len` entries from `start` to the free list.
    pub fn give_back(&mut self, start: u32, len: u32) {
        if len > 0 {
            self.free.push((start, len));
        }
    }

    /// Takes `len` consecutive free entries if a freed range has room (first fit).
    pub fn take_free(&mut self, len: u32) -> Option<u32> {
        let i = self.free.iter().position(|&(_, l)| l >= len)?;
        let (start, l) = self.free[i];
        if l == len {
            self.free.remove(i);
        } else {
            self.free[i] = (start + len, l - len);
        }
        Some(start)
    }

    /// Total entries on the free list.
    pub fn free_entries(&self) -> u32 {
        self.free.iter().map(|&(_, l)| l).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::FtraceEntry;

    #[test]
    fn orig_entry_beyond_the_table_index_space_is_left_out() {
        let entry = |func_index, slot| FtraceEntry {
            func_index,
            name: format!("f{func_index}"),
            slot,
            notrace: false,
            sig: FuncSig::default(),
        };
        let map = FtraceMap {
            nr_slots: u32::MAX - 1,
            entries: vec![entry(0, 1), entry(1, 2)],
        };
        let t = FtraceTable::from_map(&map);
        assert_eq!(t.info(1).map(|i| i.orig), Some(u32::MAX));
        assert!(t.info(2).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn freed_module_range_is_reused_first_fit() {
        let mut t = FtraceTable::default();
        t.add_module("m", 100, &[FuncSig::default(), FuncSig::default()]);
        assert_eq!(t.info(101).unwrap().orig, 103);
        t.remove_module(100, 2);
        assert!(t.info(100).is_none());
        assert_eq!(t.take_free(3), Some(100));
        assert_eq!(t.take_free(1), Some(103));
        assert_eq!(t.take_free(1), None);
    }
}
