//! Runs the `klp` binary that cargo built for these tests: (status, stdout, stderr).

use std::process::Command;

/// Runs `klp ARGS...` to completion, with neither `XDG_CACHE_HOME` nor `HOME` in its
/// environment: a `klp run` here has no default compilation cache, so it neither reads nor
/// fills the user's (a test that wants a cache passes `--cache-dir`).
pub fn klp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_klp"))
        .args(args)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME")
        .output()
        .expect("klp runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
