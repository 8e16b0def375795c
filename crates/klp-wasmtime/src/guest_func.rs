//! Guest functions typed once for the signatures the core calls, and the exports' hash.

use std::hash::Hasher;
use wasmtime::{AsContext, AsContextMut, Func, TypedFunc, Val};

/// FNV-1a: export names are short and come from the core, so a simple hash beats SipHash on
/// the lookup every export call makes.
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A guest function (a kernel export or a slot's function), typed for the signatures the core
/// calls (up to three `i32`s, returning one or nothing): calling it checks no types and
/// allocates nothing.
pub(crate) enum GuestFunc {
    Void0(TypedFunc<(), ()>),
    Int0(TypedFunc<(), i32>),
    Void1(TypedFunc<i32, ()>),
    Int1(TypedFunc<i32, i32>),
    Void2(TypedFunc<(i32, i32), ()>),
    Int2(TypedFunc<(i32, i32), i32>),
    Void3(TypedFunc<(i32, i32, i32), ()>),
    Int3(TypedFunc<(i32, i32, i32), i32>),
    /// Any other signature (more arguments, other types): checked and called per call.
    Other(Func),
}

impl GuestFunc {
    /// Types `func` by its signature.
    pub(crate) fn new(store: impl AsContext, func: Func) -> GuestFunc {
        let store = store.as_context();
        let ty = func.ty(&store);
        if !ty.params().all(|p| p.is_i32()) || ty.results().len() > 1 {
            return GuestFunc::Other(func);
        }
        let returns = match ty.results().next() {
            None => false,
            Some(r) if r.is_i32() => true,
            Some(_) => return GuestFunc::Other(func),
        };
        let typed = match (ty.params().len(), returns) {
            (0, false) => func.typed(&store).map(GuestFunc::Void0),
            (0, true) => func.typed(&store).map(GuestFunc::Int0),
            (1, false) => func.typed(&store).map(GuestFunc::Void1),
            (1, true) => func.typed(&store).map(GuestFunc::Int1),
            (2, false) => func.typed(&store).map(GuestFunc::Void2),
            (2, true) => func.typed(&store).map(GuestFunc::Int2),
            (3, false) => func.typed(&store).map(GuestFunc::Void3),
            (3, true) => func.typed(&store).map(GuestFunc::Int3),
            _ => return GuestFunc::Other(func),
        };
        typed.unwrap_or(GuestFunc::Other(func))
    }

    /// The untyped function.
    pub(crate) fn func(&self) -> Func {
        match self {
            GuestFunc::Void0(f) => *f.func(),
            GuestFunc::Int0(f) => *f.func(),
            GuestFunc::Void1(f) => *f.func(),
            GuestFunc::Int1(f) => *f.func(),
            GuestFunc::Void2(f) => *f.func(),
            GuestFunc::Int2(f) => *f.func(),
            GuestFunc::Void3(f) => *f.func(),
            GuestFunc::Int3(f) => *f.func(),
            GuestFunc::Other(f) => *f,
        }
    }

    /// Calls the function; `None` when `args` do not fit its signature.
    pub(crate) fn call(
        &self,
        mut store: impl AsContextMut,
        args: &[i32],
    ) -> Option<wasmtime::Result<Option<i32>>> {
        let none = |()| None;
        Some(match (self, args) {
            (GuestFunc::Void0(f), []) => f.call(store, ()).map(none),
            (GuestFunc::Int0(f), []) => f.call(store, ()).map(Some),
            (GuestFunc::Void1(f), &[a]) => f.call(store, a).map(none),
            (GuestFunc::Int1(f), &[a]) => f.call(store, a).map(Some),
            (GuestFunc::Void2(f), &[a, b]) => f.call(store, (a, b)).map(none),
            (GuestFunc::Int2(f), &[a, b]) => f.call(store, (a, b)).map(Some),
            (GuestFunc::Void3(f), &[a, b, c]) => f.call(store, (a, b, c)).map(none),
            (GuestFunc::Int3(f), &[a, b, c]) => f.call(store, (a, b, c)).map(Some),
            (GuestFunc::Other(f), args) => {
                let ty = f.ty(&store);
                if ty.params().len() != args.len()
                    || ty.results().len() > 1
                    || !ty.params().chain(ty.results()).all(|t| t.is_i32())
                {
                    return None;
                }
                let params: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
                let mut results = [Val::I32(0)];
                let results = &mut results[..ty.results().len()];
                f.call(&mut store, &params, results)
                    .map(|()| results.first().and_then(Val::i32))
            }
            _ => return None,
        })
    }
}
