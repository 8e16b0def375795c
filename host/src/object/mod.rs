//! Relocatable modules (the `.ko` analogue): parsing, relocation and linking into the kernel.
pub(crate) mod linking;
