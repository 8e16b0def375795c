//! The deliberate bugs reach exactly what docs/livepatch.md §8 says, and their fixes load after
//! them: the utsname overflow stays inside the namespace, a wrapped timeslice is repaired by
//! klp-fix-timeslice, and a poisoned kmalloc free list is a `kernel BUG` the allocator survives.

mod klp_bin;
mod scratch;
use klp_bin::klp;
use scratch::Scratch;

/// Runs `script` with `klp run --script` (lines too long for a command line): (status,
/// stdout, stderr).
fn run_script(tag: &str, script: &str) -> (i32, String, String) {
    let dir = Scratch::new(tag);
    let path = dir.0.join("script.sh");
    std::fs::write(&path, script).unwrap();
    klp(&["run", "--script", path.to_str().unwrap()])
}

/// After the overflow, the fix loads and the kernel works: files, directories, uname.
const AFTER_OVERFLOW: &str = "insmod klp-fix-hostname
uname -r
cat /proc/sys/kernel/hostname | wc -c
cat /proc/sys/kernel/domainname | wc -c
mkdir /tmp/d
echo works > /tmp/d/f
cat /tmp/d/f
ls /proc/sys/kernel | wc -l
lsmod | grep -c klp_fix_hostname
";

fn assert_fixed(status: i32, out: &str, err: &str) {
    assert!(
        !out.contains("Oops") && !err.contains("Segmentation"),
        "{out}{err}"
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.ends_with("6.12.0-klp\n65\n65\nworks\n10\n1\n"),
        "the fix loaded and repaired the release: {out}"
    );
}

#[test]
fn the_overflows_of_the_issue_leave_the_fix_loadable() {
    // 78 bytes into domainname and 340 into hostname corrupted kmalloc before: every later
    // allocation oopsed, the insmod of the fix too.
    let script = format!(
        "echo {} > /proc/sys/kernel/domainname\necho {} > /proc/sys/kernel/hostname\n\
         uname -r\n{AFTER_OVERFLOW}",
        "a".repeat(78),
        "b".repeat(340)
    );
    let (status, out, err) = run_script("issue", &script);
    assert!(
        out.starts_with(&format!("{}\n", "b".repeat(65))),
        "the release holds the host name's bytes 65..129: {out}"
    );
    assert_fixed(status, &out, &err);
}

#[test]
fn the_longest_overflow_stays_in_the_namespace() {
    // One write(2) of the shell carries at most 64 KiB: the overflow's whole reach.
    let long = "c".repeat(65536);
    let script = format!(
        "echo -n {long} > /proc/sys/kernel/hostname\necho -n {long} > /proc/sys/kernel/domainname\n\
         {AFTER_OVERFLOW}"
    );
    let (status, out, err) = run_script("longest", &script);
    assert_fixed(status, &out, &err);
}

#[test]
fn a_wrapped_timeslice_divides_by_zero_and_the_fix_repairs_it() {
    // 17179869 ms is 4294967250 jiffies * 1000 / HZ: the 32-bit product wraps and rounds to 0.
    let (status, out, err) = klp(&[
        "run",
        "-c",
        "echo 17179869 > /proc/sys/kernel/sched_rr_timeslice_ms; cat /proc/schedstat
         insmod klp-fix-timeslice; cat /proc/schedstat | head -1
         cat /proc/sys/kernel/sched_rr_timeslice_ms
         echo 17179869 > /proc/sys/kernel/sched_rr_timeslice_ms; cat /proc/schedstat | head -1",
    ]);
    assert!(err.contains(" panic_const_div_by_zero\n"), "{err}");
    assert!(err.ends_with("Segmentation fault\n"), "{err}");
    assert_eq!(out, "version 15\n100\nversion 15\n", "{err}");
    assert_eq!(status, 0, "{err}");
}

#[test]
fn a_poisoned_free_list_is_a_kernel_bug_and_the_allocator_goes_on() {
    let (status, out, err) = klp(&[
        "run",
        "-c",
        "insmod test_slub_freelist; echo status $?
         dmesg | grep -E 'cut here|kernel BUG|free list corrupt'
         insmod klp-fix-hostname; insmod hello; mkdir /tmp/d; echo works > /tmp/d/f
         cat /tmp/d/f; lsmod | wc -l; grep -c kB /proc/meminfo",
    ]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        err.starts_with("Oops: invalid opcode: 0000 [#1]\n"),
        "{err}"
    );
    assert!(err.contains("\n <TASK>\n bug\n"), "{err}");
    assert!(err.contains("\n kmalloc\n init_module\n"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "status 139", "{out}");
    let log: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with('['))
        .map(|l| l.split_once("] ").unwrap().1)
        .collect();
    assert_eq!(log.len(), 3, "{out}");
    assert!(
        log[0].starts_with("kmalloc: free list corrupt at 0x")
            && log[0].contains(": pointer 0x6b6b6b6b; rebuilt from the block headers: "),
        "{out}"
    );
    assert_eq!(
        &log[1..],
        [
            "------------[ cut here ]------------",
            "kernel BUG at mm/slub.c:449!"
        ]
    );
    assert!(out.ends_with("works\n3\n8\n"), "{out}");
}
