//! Runs the `klp` binary that cargo built for these tests: (status, stdout, stderr).

use std::process::Command;

/// Runs `klp ARGS...` to completion.
pub fn klp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_klp"))
        .args(args)
        .output()
        .expect("klp runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
