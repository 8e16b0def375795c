//! klp-artifacts: the guest kernel and modules, built from source by `build.rs` and embedded.
//!
//! `build.rs` compiles every crate of the guest workspace (`guest-kernel/Cargo.toml`) for
//! `wasm32-unknown-unknown` (see `docs/ABI.md`); the same files are left in
//! `target/guest/wasm32-unknown-unknown/release/`. Only bytes: the crate depends on nothing.
//! [`guest_build`] is how they are built, for `klp build`, which builds a changed copy of the
//! tree at [`SOURCE_ROOT`] the same way.
//!
//! ```
//! let sample = klp_artifacts::module("livepatch-sample").expect("built by build.rs");
//! assert_eq!(klp_artifacts::module("livepatch_sample"), Some(sample));
//! assert!(klp_artifacts::KERNEL.starts_with(b"\0asm"));
//! ```

pub mod guest_build;

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// A built module by file stem (`livepatch-sample`) or module name (`livepatch_sample`):
/// dashes and underscores are the same, as for `modprobe`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    let canonical = |c: u8| if c == b'-' { b'_' } else { c };
    MODULES
        .iter()
        .find(|(stem, _)| {
            stem.len() == name.len()
                && stem
                    .bytes()
                    .zip(name.bytes())
                    .all(|(a, b)| canonical(a) == canonical(b))
        })
        .map(|&(_, wasm)| wasm)
}

/// The file stems of every built module, for `help` and the shell's hosts.
pub fn names() -> Vec<String> {
    MODULES
        .iter()
        .map(|(stem, _)| (*stem).to_string())
        .collect()
}
