//! Ctrl-C in `klp run` interrupts the running command, not the session: a module whose init
//! spins is killed with its task (status 130) and not loaded, and the next command runs.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `klp run` reading commands from a pipe (watchdog off, so only Ctrl-C can stop a spin).
fn session() -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_klp"))
        .args([
            "run",
            "--no-cache",
            "--cmdline",
            "console=hvc0 watchdog_thresh=0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klp runs")
}

#[test]
fn ctrl_c_interrupts_a_spinning_insmod_and_the_session_goes_on() {
    let mut klp = session();
    let mut stdin = klp.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(klp.stdout.take().expect("stdout"));
    // A marker line says the session is up, then the spin starts.
    writeln!(
        stdin,
        "echo ready\ninsmod test_klp_lockup in_init=1\necho status $?"
    )
    .unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line");
    assert_eq!(line, "ready\n");
    // The insmod spins: nothing comes until the interrupt.
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    kill(Pid::from_raw(klp.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    line.clear();
    stdout.read_line(&mut line).expect("a line");
    assert_eq!(line, "status 130\n", "the insmod was killed by SIGINT");
    let latency = sent.elapsed();
    assert!(latency < Duration::from_secs(2), "took {latency:?}");
    writeln!(
        stdin,
        "grep -c test_klp_lockup /proc/modules\ndmesg | grep -c 'soft lockup'"
    )
    .unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "0\n0\n", "not loaded, and no lockup report");
    let status = klp.wait().expect("klp exits");
    assert_eq!(
        status.code(),
        Some(1),
        "the session ends with the last command's status"
    );
}

#[test]
fn ctrl_c_ends_a_sleep_early() {
    let mut klp = session();
    let mut stdin = klp.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(klp.stdout.take().expect("stdout"));
    writeln!(stdin, "echo ready\nsleep 30\necho awake").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    kill(Pid::from_raw(klp.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    line.clear();
    stdout.read_line(&mut line).expect("a line");
    assert_eq!(line, "awake\n");
    assert!(sent.elapsed() < Duration::from_secs(2));
    drop(stdin);
    klp.wait().expect("klp exits");
}
