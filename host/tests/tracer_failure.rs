//! A tracer that fails to start is not left as the current tracer.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_wasmtime::{self as rt, Options};

mod spy;
use spy::{Faults, Spy};

const CURRENT_TRACER: &str = "/sys/kernel/tracing/current_tracer";

fn read(e: &mut impl Engine, path: &str) -> String {
    String::from_utf8(fs::read_file(e, path).expect("readable")).expect("text")
}

#[test]
fn a_function_tracer_that_fails_to_start_leaves_current_tracer_nop() {
    let mut kernel =
        rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("boots");
    // The third table write fails: a fault while ftrace updates a slot.
    let faults = Faults {
        table_copy: Some(3),
        ..Faults::default()
    };
    let mut e = Spy::new(&mut kernel, faults);
    let written = fs::write_file(&mut e, CURRENT_TRACER, b"function\n", false);
    assert!(written.is_err(), "{written:?}");
    assert_eq!(read(&mut kernel, CURRENT_TRACER), "nop\n");
    assert_eq!(
        read(&mut kernel, "/sys/kernel/tracing/enabled_functions"),
        ""
    );
    // Without the fault it starts, and stops again.
    fs::write_file(&mut kernel, CURRENT_TRACER, b"function\n", false).expect("starts");
    assert_eq!(read(&mut kernel, CURRENT_TRACER), "function\n");
    fs::write_file(&mut kernel, CURRENT_TRACER, b"nop\n", false).expect("stops");
    assert_eq!(
        read(&mut kernel, "/sys/kernel/tracing/enabled_functions"),
        ""
    );
}
