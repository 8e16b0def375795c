//! The ftrace table's layout: what each slot is, where its original lives, and the free ranges.

use super::Slot;
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
pub(super) struct Layout {
    slots: BTreeMap<Slot, SlotInfo>,
    free: Vec<(u32, u32)>,
}

impl Layout {
    /// The kernel's slots, from the instrumentation pass.
    ///
    /// An entry whose orig entry `slot + nr_slots` would not be a table index is left out (its
    /// slot is not a known function). A map the pass made or read back
    /// ([`FtraceMap::from_instrumented`]) has none: its slots are below `nr_slots` and
    /// `nr_slots` is at most 2^20.
    pub(super) fn from_map(map: &FtraceMap) -> Self {
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
                Some((Slot(en.slot), info))
            })
            .collect();
        Layout {
            slots,
            free: Vec::new(),
        }
    }

    /// The slot's description, if it holds a known function.
    pub(super) fn info(&self, slot: Slot) -> Option<&SlotInfo> {
        self.slots.get(&slot)
    }

    /// Number of functions with a slot (kernel and modules).
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Records a module's functions: `sigs[i]` lives at `base + i`, its original at `base + n + i`.
    pub(super) fn add_module(&mut self, owner: &str, base: u32, sigs: &[FuncSig]) {
        let n = sigs.len() as u32;
        for (i, sig) in (0u32..).zip(sigs) {
            let info = SlotInfo {
                orig: base + n + i,
                sig: sig.clone(),
                notrace: false,
                owner: Some(owner.to_string()),
            };
            self.slots.insert(Slot(base + i), info);
        }
    }

    /// Forgets a module's slots and returns its range `base..base + 2n` to the free list.
    pub(super) fn remove_module(&mut self, base: u32, n: u32) {
        for slot in base..base + n {
            self.slots.remove(&Slot(slot));
        }
        self.give_back(base, 2 * n);
    }

    /// Every slot that holds a known function, in slot order.
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots.keys().copied()
    }

    /// Returns `len` entries from `start` to the free list.
    pub(super) fn give_back(&mut self, start: u32, len: u32) {
        if len > 0 {
            self.free.push((start, len));
        }
    }

    /// Takes `len` consecutive free entries if a freed range has room (first fit).
    pub(super) fn take_free(&mut self, len: u32) -> Option<u32> {
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
    pub(super) fn free_entries(&self) -> u32 {
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
        let t = Layout::from_map(&map);
        assert_eq!(t.info(Slot(1)).map(|i| i.orig), Some(u32::MAX));
        assert!(t.info(Slot(2)).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn freed_module_range_is_reused_first_fit() {
        let mut t = Layout::default();
        t.add_module("m", 100, &[FuncSig::default(), FuncSig::default()]);
        assert_eq!(t.info(Slot(101)).unwrap().orig, 103);
        t.remove_module(100, 2);
        assert!(t.info(Slot(100)).is_none());
        assert_eq!(t.take_free(3), Some(100));
        assert_eq!(t.take_free(1), Some(103));
        assert_eq!(t.take_free(1), None);
    }
}
