//! Which functions run at boot (or module init) only: reached from that entry point and from
//! no other export nor function pointer. Changing them has no effect on a running kernel.

use std::collections::HashSet;

use klp_passes::object::linking::SymTarget;
use wasmparser::RelocationType;

use crate::object::Obj;

/// The kernel's boot entry point, called once by the host.
pub(crate) const KERNEL_BOOT: &str = "kernel_boot";
/// A module's init function, called once at load.
pub(crate) const MODULE_INIT: &str = "init_module";

/// Functions of `o` reached from export `entry` alone (none when `o` has no such export).
pub(crate) fn entry_only(o: &Obj<'_>, entry: &str) -> HashSet<u32> {
    let Some(&(_, root)) = o.exports.iter().find(|(n, _)| n == entry) else {
        return HashSet::new();
    };
    let mut others: Vec<u32> = o
        .exports
        .iter()
        .filter(|(n, _)| n != entry)
        .map(|&(_, f)| f)
        .chain(o.in_table.iter().copied())
        .collect();
    // Functions whose address is taken anywhere.
    let relocs = o
        .funcs
        .iter()
        .flat_map(|f| &f.relocs)
        .chain(o.data.values().flat_map(|d| &d.relocs));
    for r in relocs {
        if matches!(
            r.ty,
            RelocationType::TableIndexSleb | RelocationType::TableIndexI32
        ) && let Some(SymTarget::Func(f)) = o.symbols.get(r.index as usize).map(|s| s.target)
        {
            others.push(f);
        }
    }
    let from_entry = reach(o, &[root]);
    let from_others = reach(o, &others);
    from_entry.difference(&from_others).copied().collect()
}

/// Every function reached by calls from `roots`, the roots included.
fn reach(o: &Obj<'_>, roots: &[u32]) -> HashSet<u32> {
    let mut seen: HashSet<u32> = roots.iter().copied().collect();
    let mut work: Vec<u32> = roots.to_vec();
    while let Some(f) = work.pop() {
        let Some(func) = o.func(f) else { continue };
        for r in &func.relocs {
            if r.ty == RelocationType::FunctionIndexLeb
                && let Some(SymTarget::Func(callee)) =
                    o.symbols.get(r.index as usize).map(|s| s.target)
                && seen.insert(callee)
            {
                work.push(callee);
            }
        }
    }
    seen
}
