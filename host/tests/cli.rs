//! The `klp` binary end to end: `run -c`, `demo`, `instrument`, `kallsyms`.

mod klp_bin;
use klp_bin::klp;

#[test]
fn run_prints_the_command_line_the_kernel_booted_with() {
    let (status, out, _) = klp(&[
        "run",
        "--cmdline",
        "console=hvc0 quiet",
        "-c",
        "cat /proc/cmdline",
    ]);
    assert_eq!((status, out.as_str()), (0, "console=hvc0 quiet\n"));
}

#[test]
fn run_patches_and_unpatches_cmdline_with_the_kernel_messages() {
    let script = "cat /proc/cmdline; insmod livepatch-sample; cat /proc/cmdline; \
                  echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled; cat /proc/cmdline; \
                  rmmod livepatch_sample; dmesg";
    let (status, out, err) = klp(&["run", "-c", script]);
    assert_eq!(status, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "console=hvc0 root=/dev/ram0 rw",
            "this has been live patched",
            "console=hvc0 root=/dev/ram0 rw"
        ]
    );
    for message in [
        "livepatch: enabling patch 'livepatch_sample'",
        "livepatch: 'livepatch_sample': initializing patching transition",
        "livepatch: 'livepatch_sample': starting patching transition",
        "livepatch: 'livepatch_sample': completing patching transition",
        "livepatch: 'livepatch_sample': patching complete",
        "livepatch: 'livepatch_sample': initializing unpatching transition",
        "livepatch: 'livepatch_sample': unpatching complete",
    ] {
        assert!(out.contains(message), "missing {message:?} in\n{out}");
    }
}

#[test]
fn run_exits_with_the_last_status_and_stops_early_with_e() {
    let (status, out, err) = klp(&["run", "-c", "cat /nope; echo after"]);
    assert_eq!((status, out.as_str()), (0, "after\n"));
    assert_eq!(err, "cat: /nope: No such file or directory\n");
    let (status, out, _) = klp(&["run", "-e", "-c", "cat /nope; echo after"]);
    assert_eq!((status, out.as_str()), (1, ""));
}

#[test]
fn run_reads_a_script_file() {
    let dir = std::env::temp_dir().join(format!("klp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("s.klp");
    std::fs::write(&script, "# a comment\necho 'a b' > /tmp/f\ncat /tmp/f\n").unwrap();
    let (status, out, _) = klp(&["run", "--script", script.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((status, out.as_str()), (0, "a b\n"));
}

#[test]
fn demo_shows_the_bug_the_fix_and_the_removal() {
    let (status, out, err) = klp(&["demo"]);
    assert_eq!(status, 0, "{err}");
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("missing {needle:?} in\n{out}"))
    };
    assert!(
        at("\nVERFLOW\n") < at("# insmod klp-fix-hostname"),
        "the overflow shows before the fix"
    );
    assert!(
        at("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 6.12.0-klp")
            > at("# insmod klp-fix-hostname")
    );
    assert!(out.contains("this has been live patched"));
    assert!(out.contains("livepatch: 'klp_fix_hostname': unpatching complete"));
    assert!(err.is_empty(), "{err}");
}

#[test]
fn instrument_writes_a_valid_kernel_and_kallsyms_reads_it() {
    let dir = std::env::temp_dir().join(format!("klp-cli-i-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join("vmlinux.wasm");
    std::fs::write(&raw, klp_artifacts::KERNEL).unwrap();
    let out = dir.join("vmlinux.instrumented.wasm");
    let (status, _, err) = klp(&[
        "instrument",
        raw.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    let wasm = std::fs::read(&out).unwrap();
    // The kernel imports klp.yield: the output has tasks, on stack switching.
    let features = wasmparser::WasmFeatures::default() | klp_passes::instrument::tasks::FEATURES;
    wasmparser::Validator::new_with_features(features)
        .validate_all(&wasm)
        .expect("valid");
    let (status, listing, _) = klp(&["kallsyms", out.to_str().unwrap()]);
    assert_eq!(status, 0);
    assert!(
        listing.lines().any(|l| l.ends_with(" t cmdline_proc_show")),
        "{listing}"
    );
    let (_, builtin, _) = klp(&["kallsyms"]);
    assert_eq!(
        listing, builtin,
        "the built-in kernel lists the same symbols"
    );
    let (status, _, err) = klp(&[
        "run",
        "--kernel",
        out.to_str().unwrap(),
        "-c",
        "insmod livepatch-sample; cat /proc/cmdline",
    ]);
    assert_eq!(status, 0, "{err}");
}

#[test]
fn bad_kernel_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("klp-cli-b-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0garbage").unwrap();
    let (status, _, err) = klp(&["run", "--kernel", bad.to_str().unwrap(), "-c", "true"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(status, 0);
    assert!(err.starts_with("klp: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
