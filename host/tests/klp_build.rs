//! `klp build` through the real binary: the example diffs of `examples/klp-build/` become live
//! patch modules that load into the running kernel and behave as the hand-written patches do,
//! the refusals and the bad input say why and write nothing.

mod common;
mod klp_bin;
mod scratch;
mod transcript;

use klp_bin::klp;
use klp_core::ftrace::code::Mode;
use scratch::Scratch;
use std::path::{Path, PathBuf};

/// `examples/klp-build/NAME.patch`.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/klp-build/{name}.patch"))
}

/// `host/tests/transcripts/livepatch/NAME.sh`.
fn transcript_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/transcripts/livepatch/{name}.sh"))
}

impl Scratch {
    /// A path in the directory, as a string for the command line.
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// The directory's entries, sorted.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// `klp build --diff examples/klp-build/EXAMPLE.patch ARGS...`: (status, stdout, stderr).
fn build_example(example_name: &str, args: &[&str]) -> (i32, String, String) {
    let diff = example(example_name);
    let mut all = vec!["build", "--diff", diff.to_str().unwrap()];
    all.extend_from_slice(args);
    klp(&all)
}

/// Builds an example into `dir/FILE` (module name: FILE's stem), asserting success.
fn build_module(example_name: &str, dir: &Scratch, file: &str, extra: &[&str]) -> String {
    let output = dir.path(file);
    let mut args = vec!["-o", output.as_str()];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = build_example(example_name, &args);
    assert_eq!(status, 0, "klp build {example_name}: {stdout}{stderr}");
    assert!(
        stdout.contains(&format!("klp build: wrote {output} (")),
        "{stdout}"
    );
    stdout
}

/// `klp run --no-cache --modules DIR -c COMMANDS`: (status, stdout and stderr).
fn run_with(modules: &Scratch, commands: &str) -> (i32, String) {
    let (status, stdout, stderr) = klp(&[
        "run",
        "--no-cache",
        "--modules",
        modules.0.to_str().unwrap(),
        "-c",
        commands,
    ]);
    (status, stdout + &stderr)
}

/// Asserts that the transcript `NAME.sh`, run as transcripts.rs runs it but with `modules`
/// mounted as `klp run --modules` mounts it, prints its `.out`.
fn assert_transcript(name: &str, modules: &Scratch) {
    let script = transcript_script(name);
    let expected = std::fs::read_to_string(script.with_extension("out")).unwrap();
    let how = transcript::Run {
        hook: true,
        moving: false,
        mode: Mode::Dynamic,
        modules: Some(&modules.0),
    };
    let actual = transcript::run(&script, &how);
    assert_eq!(
        actual,
        expected,
        "{name}.sh with {:?}: differs from {name}.out",
        modules.entries()
    );
}

#[test]
fn the_transcript_runner_reproduces_the_hand_written_patches_transcripts() {
    // No module in --modules: insmod finds the built-in hand-written patches.
    let empty = Scratch::new("klp-build-none");
    assert_transcript("fix_hostname", &empty);
    assert_transcript("fix_timeslice", &empty);
}

#[test]
fn the_hostname_fix_built_from_a_diff_behaves_as_the_hand_written_patch() {
    let dir = Scratch::new("klp-build-hostname");
    let report = build_module(
        "fix-hostname",
        &dir,
        "klp-fix-hostname.wasm",
        &["--name", "klp_fix_hostname"],
    );
    assert!(
        report.contains("vmlinux: changed function: proc_do_uts_string"),
        "{report}"
    );
    assert!(
        report.contains("vmlinux: callback: klp_post_patch_callback"),
        "{report}"
    );
    assert_transcript("fix_hostname", &dir);
}

#[test]
fn the_timeslice_fix_built_from_a_diff_behaves_as_the_hand_written_patch() {
    let dir = Scratch::new("klp-build-timeslice");
    let report = build_module(
        "fix-timeslice",
        &dir,
        "klp-fix-timeslice.wasm",
        &["--name", "klp_fix_timeslice"],
    );
    assert!(
        report.contains("vmlinux: changed function: sched_rr_handler"),
        "{report}"
    );
    assert_transcript("fix_timeslice", &dir);
}

#[test]
fn a_diff_that_only_renames_a_local_variable_has_no_functional_change() {
    let dir = Scratch::new("klp-build-rename");
    let (status, stdout, stderr) = build_example("rename-local", &["-o", &dir.path("x.wasm")]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("no functional changes found"),
        "{stdout}{stderr}"
    );
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[test]
fn a_changed_static_initializer_is_refused_by_name_unless_handled() {
    let dir = Scratch::new("klp-build-static");
    let (status, stdout, stderr) =
        build_example("static-initializer", &["-o", &dir.path("x.wasm")]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("SYSCTL_SCHED_RR_TIMESLICE"),
        "{stdout}{stderr}"
    );
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());

    // Both tunables' initial values change (the default goes from 100 to 50 ms); marked as
    // handled, the changed handler is patched: a value <= 0 now resets the default, 50.
    let report = build_module(
        "static-initializer",
        &dir,
        "timeslice-default.wasm",
        &[
            "--handled",
            "SYSCTL_SCHED_RR_TIMESLICE",
            "--handled",
            "SCHED_RR_TIMESLICE",
        ],
    );
    assert!(
        report.contains("vmlinux: changed data, handled: SYSCTL_SCHED_RR_TIMESLICE"),
        "{report}"
    );
    assert!(
        report.contains("vmlinux: changed function: sched_rr_handler"),
        "{report}"
    );
    let (status, out) = run_with(
        &dir,
        "insmod timeslice-default; echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms; \
         cat /proc/sys/kernel/sched_rr_timeslice_ms",
    );
    assert_eq!((status, out.as_str()), (0, "50\n"));
}

#[test]
fn a_new_helper_function_is_included_and_runs() {
    let dir = Scratch::new("klp-build-helper");
    // The module, and so the patch, is named by its file.
    let report = build_module("add-helper", &dir, "livepatch-add-helper.wasm", &[]);
    assert!(
        report.contains("vmlinux: new function: puts_machine"),
        "{report}"
    );
    assert!(
        report.contains("vmlinux: changed function: version_proc_show"),
        "{report}"
    );
    let (status, out) = run_with(
        &dir,
        "cat /proc/version; insmod livepatch-add-helper; cat /proc/version; \
         cat /sys/kernel/livepatch/livepatch_add_helper/enabled",
    );
    assert_eq!(status, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(!lines[0].ends_with(" (wasm32)"), "{out}");
    assert_eq!(lines[1], format!("{} (wasm32)", lines[0]));
    assert_eq!(lines[2], "1");
}

#[test]
fn a_diff_to_an_inlined_function_names_the_callers_it_changes() {
    let dir = Scratch::new("klp-build-inlined");
    let report = build_module("inlined", &dir, "inlined.wasm", &[]);
    assert!(
        report.contains(
            "vmlinux: inlined function: show_val_kb (its callers changed: meminfo_proc_show)"
        ),
        "{report}"
    );
    // The kernel has no symbol of its own for show_val_kb: it lives in its callers.
    let (status, kallsyms, _) = klp(&["kallsyms"]);
    assert_eq!(status, 0);
    assert!(!kallsyms.contains(" show_val_kb\n"));
    let (status, out) = run_with(
        &dir,
        "grep MemTotal /proc/meminfo; insmod inlined; grep MemTotal /proc/meminfo",
    );
    assert_eq!(status, 0, "{out}");
    // 128 MiB: 131072 kB of 1024 bytes before, 134217 of 1000 after.
    assert_eq!(
        out,
        "MemTotal:         131072 kB\nMemTotal:         134217 kB\n"
    );
}

#[test]
fn a_diff_to_a_module_patches_the_module_when_it_loads_in_either_order() {
    let dir = Scratch::new("klp-build-module");
    let report = build_module("module-target", &dir, "module-target.wasm", &[]);
    assert!(
        report.contains("test_klp_mod_target: changed function: test_klp_mod_target_proc_show"),
        "{report}"
    );
    let (status, out) = run_with(
        &dir,
        "insmod module-target; insmod test_klp_mod_target; cat /proc/test_klp_mod_target; \
         rmmod test_klp_mod_target; insmod test_klp_mod_target; cat /proc/test_klp_mod_target",
    );
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        out,
        "test_klp_mod_target: patched by klp build\n".repeat(2),
        "patch first, then the module"
    );
    let (status, out) = run_with(
        &dir,
        "insmod test_klp_mod_target; cat /proc/test_klp_mod_target; insmod module-target; \
         cat /proc/test_klp_mod_target",
    );
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        out, "test_klp_mod_target: original output\ntest_klp_mod_target: patched by klp build\n",
        "the module first, then the patch"
    );
}

#[test]
fn dry_run_prints_the_report_and_writes_nothing() {
    let dir = Scratch::new("klp-build-dry");
    let (status, stdout, stderr) =
        build_example("add-helper", &["--dry-run", "-o", &dir.path("x.wasm")]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("new function: puts_machine"), "{stdout}");
    assert!(!stdout.contains("wrote"), "{stdout}");
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
    // -o is not needed with --dry-run.
    let (status, stdout, stderr) = build_example("add-helper", &["--dry-run"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
}

#[test]
fn replace_makes_an_atomic_replace_patch() {
    let dir = Scratch::new("klp-build-replace");
    build_module("add-helper", &dir, "first.wasm", &["--name", "first"]);
    build_module(
        "inlined",
        &dir,
        "second.wasm",
        &["--name", "second", "--replace"],
    );
    let (status, out) = run_with(
        &dir,
        "insmod first; insmod second; cat /sys/kernel/livepatch/second/replace; \
         ls /sys/kernel/livepatch; grep -c wasm32 /proc/version",
    );
    // The first patch is replaced: gone from sysfs, /proc/version as built.
    assert_eq!((status, out.as_str()), (1, "1\nsecond\n0\n"));
}

#[test]
fn prebuilt_objects_give_the_same_module_as_the_diff() {
    let dir = Scratch::new("klp-build-objects");
    // Cargo cannot build below a path with a `:` (Scratch's names have some).
    let work = Scratch(
        std::env::temp_dir().join(format!("klp-build-objects-work-{}", std::process::id())),
    );
    let work = &work.0;
    build_module(
        "fix-timeslice",
        &dir,
        "from-diff.wasm",
        &["--keep-work", work.to_str().unwrap()],
    );
    let orig = work.join("orig/vmlinux.wasm");
    let patched = work.join("patched/vmlinux.wasm");
    let output = dir.path("from-objects.wasm");
    let (status, stdout, stderr) = klp(&[
        "build",
        "--orig",
        orig.to_str().unwrap(),
        "--patched",
        patched.to_str().unwrap(),
        "-o",
        &output,
    ]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read(dir.0.join("from-diff.wasm")).unwrap(),
        std::fs::read(&output).unwrap()
    );
}

/// `klp build --diff DIFF -o DIR/x.wasm` with a diff written into `dir`: (status, stderr),
/// asserting that nothing was written.
fn build_bad_diff(dir: &Scratch, diff: &str) -> (i32, String) {
    let path = dir.0.join("bad.patch");
    std::fs::write(&path, diff).unwrap();
    let output = dir.path("x.wasm");
    let (status, stdout, stderr) = klp(&["build", "--diff", path.to_str().unwrap(), "-o", &output]);
    assert!(!Path::new(&output).exists(), "{stdout}{stderr}");
    (status, stderr)
}

#[test]
fn a_diff_that_does_not_apply_is_refused_with_gits_reason() {
    let dir = Scratch::new("klp-build-noapply");
    let diff = std::fs::read_to_string(example("fix-timeslice"))
        .unwrap()
        .replace(" use klp_abi::CtlTable;", " use klp_abi::CtlTableX;");
    let (status, stderr) = build_bad_diff(&dir, &diff);
    assert_eq!(status, 1, "{stderr}");
    assert!(
        stderr.starts_with("klp build: ") && stderr.contains("does not apply"),
        "{stderr}"
    );
}

#[test]
fn a_diff_outside_the_kernel_and_its_modules_is_refused_naming_the_file() {
    let dir = Scratch::new("klp-build-outside");
    let diff = "diff --git a/guest-kernel/klp-guest/src/lib.rs b/guest-kernel/klp-guest/src/lib.rs\n\
                --- a/guest-kernel/klp-guest/src/lib.rs\n\
                +++ b/guest-kernel/klp-guest/src/lib.rs\n\
                @@ -1,1 +1,1 @@\n-a\n+b\n";
    let (status, stderr) = build_bad_diff(&dir, diff);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("klp-guest/src/lib.rs"), "{stderr}");
}

#[test]
fn garbage_instead_of_a_diff_is_refused() {
    let dir = Scratch::new("klp-build-garbage");
    let (status, stderr) = build_bad_diff(&dir, "this is not a diff\n");
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("not a unified diff"), "{stderr}");
    let (status, _, stderr) = build_example("nonexistent", &["-o", &dir.path("x.wasm")]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("nonexistent.patch"), "{stderr}");
    assert_eq!(dir.entries(), ["bad.patch"]);
}

#[test]
fn a_compile_error_in_the_patched_tree_shows_cargos_error() {
    let dir = Scratch::new("klp-build-compile");
    let diff = std::fs::read_to_string(example("add-helper"))
        .unwrap()
        .replace("+    puts_machine(m);", "+    puts_machine(m, 1);");
    let (status, stderr) = build_bad_diff(&dir, &diff);
    assert_eq!(status, 1, "{stderr}");
    assert!(
        stderr.contains("error[E0061]") && stderr.contains("building the patched guest-kernel"),
        "{stderr}"
    );
}

#[test]
fn an_object_that_is_not_wasm_is_refused() {
    let dir = Scratch::new("klp-build-notwasm");
    let text = dir.0.join("a.wasm");
    std::fs::write(&text, "not wasm").unwrap();
    let output = dir.path("x.wasm");
    let a = text.to_str().unwrap();
    let (status, stdout, stderr) = klp(&["build", "--orig", a, "--patched", a, "-o", &output]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(stderr.contains("not a wasm module"), "{stderr}");
    assert!(!Path::new(&output).exists());
}

#[test]
fn a_diff_relative_to_the_kernel_tree_builds_as_one_relative_to_the_repository() {
    let dir = Scratch::new("klp-build-relative");
    let from_repository = std::fs::read_to_string(example("module-target")).unwrap();
    let from_tree = from_repository
        .replace(" a/guest-kernel/", " a/")
        .replace(" b/guest-kernel/", " b/");
    assert!(from_tree.contains("+++ b/modules/test_klp_mod_target/src/lib.rs"));
    let path = dir.0.join("module-target.patch");
    std::fs::write(&path, from_tree).unwrap();
    let kernel_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kernel");
    let (status, stdout, stderr) = klp(&[
        "build",
        "--diff",
        path.to_str().unwrap(),
        "--kernel-src",
        kernel_src.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert_eq!(stdout, build_example("module-target", &["--dry-run"]).1);
}

#[test]
fn a_diff_whose_changes_run_at_boot_only_has_no_effect() {
    let dir = Scratch::new("klp-build-boot");
    let (status, stdout, stderr) = build_example("boot-only", &["-o", &dir.path("x.wasm")]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("vmlinux: no effect: kernel_boot runs at boot only"),
        "{stdout}"
    );
    assert!(
        stdout.contains("inlined function: parse_early_params (its callers changed: kernel_boot)"),
        "{stdout}"
    );
    assert!(stderr.contains("no effect on a running kernel"), "{stderr}");
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[test]
fn a_name_other_than_the_output_files_is_refused() {
    let dir = Scratch::new("klp-build-name");
    let (status, stdout, stderr) = build_example(
        "fix-timeslice",
        &["--name", "other", "-o", &dir.path("fix.wasm")],
    );
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("the module is named after its file (fix)"),
        "{stderr}"
    );
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[test]
fn a_diff_to_the_kernel_and_a_module_gives_one_patch_of_two_objects() {
    let dir = Scratch::new("klp-build-both");
    let both = std::fs::read_to_string(example("fix-timeslice")).unwrap()
        + &std::fs::read_to_string(example("module-target")).unwrap();
    let diff = dir.0.join("both.patch");
    std::fs::write(&diff, both).unwrap();
    let output = dir.path("both.wasm");
    let (status, stdout, stderr) = klp(&["build", "--diff", diff.to_str().unwrap(), "-o", &output]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("both: 2 changed, 0 new function(s) in 2 object(s)"),
        "{stdout}"
    );
    std::fs::remove_file(&diff).unwrap();
    let (status, out) = run_with(
        &dir,
        "insmod both; insmod test_klp_mod_target; cat /proc/test_klp_mod_target; \
         ls /sys/kernel/livepatch/both | grep -v -e enabled -e force -e replace -e stack_order \
         -e transition; echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms",
    );
    assert_eq!(
        (status, out.as_str()),
        (
            1,
            "test_klp_mod_target: patched by klp build\ntest_klp_mod_target\nvmlinux\n\
             sh: echo: write error: Invalid argument\n"
        )
    );
}

#[test]
fn a_diff_to_a_notrace_function_is_refused() {
    let dir = Scratch::new("klp-build-notrace");
    let (status, stdout, stderr) = build_example("notrace", &["-o", &dir.path("x.wasm")]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("function `panic` changed, but it is notrace: it cannot be patched"),
        "{stderr}"
    );
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}
