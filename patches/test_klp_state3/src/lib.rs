//! test_klp_state3: the next cumulative patch, the same loglevel fix as test_klp_state2 (Linux's
//! `lib/livepatch/test_klp_state3.c` includes test_klp_state2.c).
#![no_std]

#[path = "../../test_klp_state2/src/cumulative.rs"]
mod cumulative;
