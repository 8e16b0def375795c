//! The module's entry points, `init_module` and `cleanup_module`: defined functions of their types.

use super::linking::SymTarget;
use super::{ObjectError, ObjectFile, malformed};
use crate::instrument::{FuncSig, ValType};

/// `init_module`'s type, `int (*)(void)`.
fn init_sig() -> FuncSig {
    FuncSig {
        params: Vec::new(),
        results: vec![ValType::I32],
    }
}

/// Refuses an `init_module` or `cleanup_module` that is a data symbol or a function of another
/// type than `() -> i32` and `() -> ()`: the kernel calls them through function pointers of
/// those types, so either would be an oops at load or unload.
pub(super) fn check(o: &ObjectFile) -> Result<(), ObjectError> {
    for (name, want) in [
        ("init_module", init_sig()),
        ("cleanup_module", FuncSig::default()),
    ] {
        let is_data = o.symbols.iter().any(|s| {
            s.defined && s.name.as_deref() == Some(name) && matches!(s.target, SymTarget::Data(_))
        });
        if is_data {
            return Err(malformed(format!("{name} is data, not a function {want}")));
        }
        if let Some(f) = o.functions.iter().find(|f| f.name == name)
            && f.sig != want
        {
            return Err(malformed(format!(
                "{name} is a function {}, not {want}",
                f.sig
            )));
        }
    }
    Ok(())
}
