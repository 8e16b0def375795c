//! test_klp_state2: an atomic-replace patch that modifies the console loglevel (`klp_state` 1,
//! version 2) and takes over the change of an earlier patch (`klp_get_prev_state`), as Linux's
//! `lib/livepatch/test_klp_state2.c`.
#![no_std]

mod cumulative;
