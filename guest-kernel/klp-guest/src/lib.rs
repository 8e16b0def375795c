//! The module side of the guest ABI: kernel functions, livepatch structures and helpers.
#![no_std]
