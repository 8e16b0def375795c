//! The objects host/tests/loader_fuzz.rs feeds the loader: generated, and mutated built-in ones.

pub mod generate;
pub mod mutate;
