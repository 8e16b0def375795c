//! Resolving a module's undefined symbols: exported names and `.klp.sym.<obj>.<name>,<pos>`.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::ftrace::Slot;
use crate::kallsyms::SymKind;
use crate::object::{UndefKind, Undefined};

/// What a symbol resolves to, and which module (if any) provides it.
pub(super) struct Resolved {
    /// The symbol's address (data) or slot (function).
    pub value: u32,
    /// The module defining it; `None` for vmlinux.
    pub provider: Option<String>,
}

/// Splits `.klp.sym.<objname>.<name>,<sympos>`.
fn klp_sym(name: &str) -> Option<(&str, &str, u32)> {
    let rest = name.strip_prefix(".klp.sym.")?;
    let (obj, sym) = rest.split_once('.')?;
    let (sym, pos) = sym.rsplit_once(',')?;
    Some((obj, sym, pos.parse().ok()?))
}

/// Resolves one undefined symbol of `module`. Only a live patch (`livepatch=Y`) may name private
/// symbols as `.klp.sym.<obj>.<name>,<pos>`: Linux applies those relocations for livepatch
/// modules alone, so in any other module such a name is an unknown symbol.
///
/// # Errors
/// `ENOENT` for an unknown symbol; `EINVAL` for one of the wrong kind or type, or one the module
/// would provide itself.
pub(super) fn resolve(
    e: &mut impl Engine,
    module: &str,
    undef: &Undefined,
    livepatch: bool,
) -> Result<Resolved, Errno> {
    let found = e.with_state(|s| {
        let sym = match klp_sym(&undef.name).filter(|_| livepatch) {
            Some((obj, name, pos)) => {
                let obj = (obj != "vmlinux").then_some(obj);
                s.kallsyms.lookup(obj, name, pos).ok()
            }
            None => s.kallsyms.lookup_global(&undef.name),
        }?;
        let sig = (sym.kind == SymKind::Func)
            .then(|| s.ftrace.info(Slot::new(sym.addr)).map(|i| i.sig.clone()))
            .flatten();
        Some((sym.addr, sym.kind, sym.module.clone(), sig))
    });
    let Some((value, kind, provider, sig)) = found else {
        return Err(Errno::ENOENT);
    };
    let fits = match (&undef.kind, kind) {
        (UndefKind::Func(want), SymKind::Func) => sig.as_ref() == Some(want),
        (UndefKind::Data, SymKind::Data | SymKind::Bss) => true,
        _ => false,
    };
    if fits && provider.as_deref() != Some(module) {
        Ok(Resolved { value, provider })
    } else {
        Err(Errno::EINVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klp_sym_names_split_into_object_name_and_position() {
        assert_eq!(
            klp_sym(".klp.sym.vmlinux.show_value,2"),
            Some(("vmlinux", "show_value", 2))
        );
        assert_eq!(
            klp_sym(".klp.sym.test_klp_mod_target.x.y,0"),
            Some(("test_klp_mod_target", "x.y", 0))
        );
        assert_eq!(klp_sym("printk"), None);
        assert_eq!(klp_sym(".klp.sym.vmlinux.bad,pos"), None);
    }
}
