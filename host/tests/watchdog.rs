//! The soft lockup watchdog, through the `klp` binary: a guest call spinning past twice
//! `watchdog_thresh` is interrupted and reported like Linux, the command fails, the kernel goes on.

use std::time::{Duration, Instant};
mod klp_bin;
use klp_bin::klp;

/// Runs `script` on a kernel booted with `watchdog_thresh=1` (a lockup after 2 s).
fn run(script: &str) -> (i32, String, String, Duration) {
    let start = Instant::now();
    let (status, out, err) = klp(&["run", "--cmdline", "watchdog_thresh=1", "-c", script]);
    (status, out, err, start.elapsed())
}

/// The report's first line, with the seconds the task was stuck.
fn lockup_line(err: &str) -> &str {
    err.lines()
        .find(|l| l.starts_with("watchdog: BUG: soft lockup - CPU#0 stuck for "))
        .unwrap_or_else(|| panic!("no soft lockup report in {err}"))
}

#[test]
fn an_init_that_spins_is_a_soft_lockup_and_the_module_is_not_loaded() {
    let (status, out, err, took) = run(
        "insmod test_klp_lockup in_init=1; echo insmod=$?; lsmod; grep init_module /proc/kallsyms; \
         insmod hello; lsmod; dmesg | grep -c 'soft lockup'",
    );
    assert_eq!(status, 0, "{out}{err}");
    let line = lockup_line(&err);
    assert!(line.contains("s! [insmod:"), "{line}");
    let secs: u64 = line["watchdog: BUG: soft lockup - CPU#0 stuck for ".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=3).contains(&secs), "{line}");
    assert!(
        err.contains("Comm: insmod") && err.contains("Call Trace:\n <TASK>\n"),
        "{err}"
    );
    assert!(err.contains(" init_module\n"), "{err}");
    assert!(out.contains("insmod=139"), "{out}");
    assert!(
        !out.contains("test_klp_lockup"),
        "neither listed nor its symbols left: {out}"
    );
    assert!(out.contains("hello"), "loading still works: {out}");
    assert!(
        out.trim_end().ends_with('1'),
        "the log has the report: {out}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn an_exit_that_spins_is_a_soft_lockup_and_rmmod_fails() {
    let (status, out, err, took) = run(
        "insmod test_klp_lockup in_exit=1; rmmod test_klp_lockup; echo rmmod=$?; lsmod; \
         insmod hello; rmmod hello; echo hello=$?",
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(lockup_line(&err).contains("s! [rmmod:"), "{err}");
    assert!(out.contains("rmmod=139"), "{out}");
    assert!(
        out.contains("test_klp_lockup"),
        "an exit that never finished leaves the module loaded: {out}"
    );
    assert!(out.contains("hello=0"), "the kernel goes on: {out}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn watchdog_thresh_zero_turns_the_watchdog_off() {
    let (status, out, err) = klp(&[
        "run",
        "--cmdline",
        "watchdog_thresh=0",
        "-c",
        "insmod test_klp_lockup; rmmod test_klp_lockup; cat /proc/cmdline",
    ]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(out, "watchdog_thresh=0\n");
}

#[test]
fn a_patch_that_spins_locks_up_each_caller_until_it_is_disabled() {
    let (status, out, err, took) = run(
        "insmod test_klp_lockup_patch; cat /proc/cmdline; echo cat=$?; \
         echo 0 > /sys/kernel/livepatch/test_klp_lockup_patch/enabled; cat /proc/cmdline",
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(lockup_line(&err).contains("s! [cat:"), "{err}");
    assert!(
        err.contains(" lockup_cmdline_proc_show\n seq_show\n"),
        "{err}"
    );
    assert!(out.contains("cat=139"), "{out}");
    assert!(
        out.ends_with("watchdog_thresh=1\n"),
        "the original is back: {out}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn the_watchdog_thresh_sysctl_changes_the_deadline_at_once() {
    let start = Instant::now();
    let (status, out, err) = klp(&[
        "run",
        "-c",
        "cat /proc/sys/kernel/watchdog_thresh; echo 61 > /proc/sys/kernel/watchdog_thresh; \
         echo 1 > /proc/sys/kernel/watchdog_thresh; cat /proc/sys/kernel/watchdog_thresh; \
         insmod test_klp_lockup in_init=1; echo insmod=$?",
    ]);
    let took = start.elapsed();
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(out, "2\n1\ninsmod=139\n", "{err}");
    assert!(
        err.starts_with("sh: echo: write error: Invalid argument\n"),
        "{err}"
    );
    assert!(lockup_line(&err).contains("stuck for 2s!"), "{err}");
    assert!(
        took < Duration::from_secs(4),
        "the 4 s default did not apply: {took:?}"
    );
}
