//! A live patch whose enabling fails, through the `klp` binary: nothing stays redirected into it,
//! a replacement from a third module pins that module, and an oops in a patch's code has its
//! call trace.

mod klp_bin;
use klp_bin::klp;

const TRAP: &str = "/sys/kernel/livepatch/test_klp_trap_printk";

#[test]
fn a_patch_whose_printk_replacement_traps_is_undone_and_printk_works_again() {
    let (status, out, err) = klp(&[
        "run",
        "-c",
        "insmod test_klp_trap_printk; echo insmod=$?; cat /proc/cmdline; echo cat=$?; \
         ls /sys/kernel/livepatch; lsmod; dmesg | tail -n 1; echo dmesg=$?; \
         insmod livepatch-sample; cat /proc/cmdline",
    ]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("insmod=139"), "{out}{err}");
    assert!(
        err.contains("Call Trace:\n <TASK>\n trap_printk\n"),
        "{err}"
    );
    assert!(err.contains(" init_module\n"), "{err}");
    assert!(
        !err.contains("error while executing"),
        "reported as an oops: {err}"
    );
    assert!(out.contains("cat=0"), "{out}{err}");
    assert!(out.contains("dmesg=0"), "{out}{err}");
    assert!(
        !out.contains("test_klp_trap_printk"),
        "no patch and no module left: {out}"
    );
    assert!(
        out.ends_with("this has been live patched\n"),
        "patching still works: {out}{err}"
    );
}

#[test]
fn enabling_a_trapping_printk_replacement_through_sysfs_is_undone() {
    let script = format!(
        "insmod test_klp_trap_printk register_only=1; echo 1 > {TRAP}/enabled; echo echo=$?; \
         cat {TRAP}/enabled; rmmod test_klp_trap_printk; echo rmmod=$?; lsmod; \
         insmod livepatch-sample; echo insmod=$?; cat /proc/cmdline"
    );
    let (status, out, err) = klp(&["run", "-c", &script]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(err.contains("Comm: echo"), "{err}");
    assert!(
        err.contains("Call Trace:\n <TASK>\n trap_printk\n"),
        "{err}"
    );
    assert!(
        out.starts_with("echo=139\n0\nrmmod=0\n"),
        "disabled, not pinned: {out}{err}"
    );
    assert!(!out.contains("test_klp_trap_printk"), "{out}");
    assert!(
        out.ends_with("insmod=0\nthis has been live patched\n"),
        "printk no longer traps: {out}{err}"
    );
}

#[test]
fn a_patch_module_that_removes_itself_from_the_module_list_leaves_nothing_behind() {
    for params in ["", "after_enable=1"] {
        let script = format!(
            "insmod test_klp_self_del {params}; echo insmod=$?; cat /proc/cmdline; \
             ls /sys/kernel/livepatch; lsmod; grep self_del /proc/kallsyms; echo grep=$?; \
             insmod livepatch-sample; cat /proc/cmdline"
        );
        let (status, out, err) = klp(&["run", "-c", &script]);
        assert_eq!(status, 0, "{params}: {out}{err}");
        assert!(
            out.starts_with("insmod=1\nconsole=hvc0"),
            "{params}: {out}{err}"
        );
        assert!(
            !out.contains("test_klp_self_del") && out.contains("grep=1"),
            "{params}: no patch, module or symbol left: {out}"
        );
        assert!(
            out.ends_with("this has been live patched\n"),
            "{params}: {out}{err}"
        );
    }
}

#[test]
fn a_replacement_from_a_third_module_pins_that_module_until_the_patch_is_removed() {
    let (status, out, err) = klp(&[
        "run",
        "-c",
        "insmod test_klp_provider; insmod test_klp_provider_patch; cat /proc/cmdline; \
         rmmod test_klp_provider; echo rmmod=$?; cat /proc/cmdline; \
         echo 0 > /sys/kernel/livepatch/test_klp_provider_patch/enabled; \
         rmmod test_klp_provider; echo disabled=$?; \
         rmmod test_klp_provider_patch; rmmod test_klp_provider; echo removed=$?; lsmod; \
         cat /proc/cmdline",
    ]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(
        out,
        "provided by test_klp_provider\nrmmod=1\nprovided by test_klp_provider\n\
         disabled=1\nremoved=0\nModule                  Size  Used by\n\
         console=hvc0 root=/dev/ram0 rw\n"
    );
    assert_eq!(
        err,
        "rmmod: ERROR: Module test_klp_provider is in use\n\
         rmmod: ERROR: Module test_klp_provider is in use\n"
    );
}

#[test]
fn an_oops_in_an_enabled_patchs_replacement_reports_its_call_trace() {
    let script = format!(
        "insmod test_klp_trap_printk show=1; cat /proc/cmdline; echo cat=$?; \
         echo 0 > {TRAP}/enabled; cat /proc/cmdline; rmmod test_klp_trap_printk; echo rmmod=$?"
    );
    let (status, out, err) = klp(&["run", "-c", &script]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(err.starts_with("Oops: "), "{err}");
    assert!(err.contains("Comm: cat"), "{err}");
    assert!(
        err.contains("Call Trace:\n <TASK>\n trap_cmdline_proc_show\n seq_show\n"),
        "{err}"
    );
    assert!(!err.contains("error while executing"), "{err}");
    assert_eq!(out, "cat=139\nconsole=hvc0 root=/dev/ram0 rw\nrmmod=0\n");
}
