//! While `klp run` waits at its prompt the kernel runs, as a machine does: kernel time passes,
//! and a transition's retries complete it without a command.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Writes `line` to the session and returns the next line it prints.
fn ask(stdin: &mut impl Write, stdout: &mut impl BufRead, line: &str) -> String {
    writeln!(stdin, "{line}").unwrap();
    let mut out = String::new();
    stdout.read_line(&mut out).expect("a line");
    out
}

#[test]
fn kernel_time_passes_and_a_transition_completes_while_the_prompt_waits() {
    let mut klp = Command::new(env!("CARGO_BIN_EXE_klp"))
        .args(["run", "--no-cache"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klp runs");
    let mut stdin = klp.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(klp.stdout.take().expect("stdout"));
    let uptime = |s: &str| -> f64 { s.split(' ').next().unwrap().parse().unwrap() };
    let before = uptime(&ask(&mut stdin, &mut stdout, "cat /proc/uptime"));
    // The busy target's work sleeps in the function the demo patches: the transition waits.
    let transition = "cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition";
    let busy = "insmod test_klp_callbacks_busy block_transition=Y; insmod test_klp_callbacks_demo";
    assert_eq!(
        ask(&mut stdin, &mut stdout, &format!("{busy}; {transition}")),
        "1\n"
    );
    // The work returns: the next retry (every second of kernel time) completes the transition,
    // with no command running.
    writeln!(
        stdin,
        "echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let after = uptime(&ask(&mut stdin, &mut stdout, "cat /proc/uptime"));
    assert!(after - before >= 1.0, "uptime {before} -> {after}");
    let log = "dmesg | grep -c 'test_klp_callbacks_demo.: patching complete'";
    assert_eq!(ask(&mut stdin, &mut stdout, log), "1\n");
    drop(stdin);
    assert!(klp.wait().expect("klp exits").success());
}
