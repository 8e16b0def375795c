//! The shell's input as sh reads it: stdin lines are bytes, a script runs up to its syntax error.

mod klp_bin;
use klp_bin::klp;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `klp run` with `input` on its standard input: (status, stdout, stderr).
fn klp_stdin(input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klp"))
        .args(["run", "--no-cache"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klp runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input)
        .expect("klp reads its input");
    let out = child.wait_with_output().expect("klp exits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_stdin_line_that_is_not_utf8_is_an_error_for_that_line_alone() {
    let (status, out, err) = klp_stdin(b"echo one\necho \xff\xfe\necho two\n");
    assert_eq!((status, out.as_str()), (0, "one\ntwo\n"), "{err}");
    assert_eq!(err, "sh: 2: invalid UTF-8 in the line\n");
}

#[test]
fn a_script_runs_its_commands_up_to_a_syntax_error_and_stops_there_with_2() {
    let dir = std::env::temp_dir().join(format!(
        "klp-shell-input-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("s.sh");
    std::fs::write(
        &script,
        "echo one\necho two; echo three\necho four; echo 'open\necho never\n",
    )
    .unwrap();
    let (status, out, err) = klp(&["run", "--script", script.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((status, out.as_str()), (2, "one\ntwo\nthree\n"));
    assert_eq!(err, "sh: Syntax error: Unterminated quoted string\n");
    let (status, out, err) = klp(&["run", "-c", "echo before\ndmesg |"]);
    assert_eq!((status, out.as_str()), (2, "before\n"));
    assert_eq!(err, "sh: Syntax error: end of file unexpected\n");
}
