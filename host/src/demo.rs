//! The story `klp demo` tells: a bug, a live patch that fixes it, and its removal.

/// One step of the demo: narration, or a shell command to run and show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Text for the reader.
    Say(&'static str),
    /// A shell command, shown with a prompt and run.
    Run(&'static str),
}

/// The demo, in order.
pub fn steps() -> Vec<Step> {
    use Step::{Run, Say};
    vec![
        Say(
            "A WebAssembly kernel booted. Every kernel function is entered through its ftrace slot.",
        ),
        Run("uname -a"),
        Run("cat /proc/cmdline"),
        Say(
            "The bug: the hostname writer has no bounds check. A 70-byte name runs past the 65-byte\nnodename field into domainname.",
        ),
        Run(
            "echo 'klp-demo-host-with-a-name-that-is-far-too-long-for-the-uts-nodename-field' > /proc/sys/kernel/hostname",
        ),
        Run("cat /proc/sys/kernel/domainname"),
        Run("echo '(none)' > /proc/sys/kernel/domainname"),
        Say(
            "The fix, as a live patch: klp-fix-hostname replaces the writer while the kernel runs.",
        ),
        Run("insmod klp-fix-hostname"),
        Run("ls /sys/kernel/livepatch/klp_fix_hostname"),
        Run("cat /sys/kernel/livepatch/klp_fix_hostname/enabled"),
        Run(
            "echo 'klp-demo-host-with-a-name-that-is-far-too-long-for-the-uts-nodename-field' > /proc/sys/kernel/hostname",
        ),
        Run("cat /proc/sys/kernel/domainname"),
        Run("uname -n"),
        Say("The sample patch from samples/livepatch stacks on top, on another function."),
        Run("insmod livepatch-sample"),
        Run("cat /proc/cmdline"),
        Run("lsmod"),
        Say("Disable both patches through sysfs and unload them: the original functions are back."),
        Run("echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled"),
        Run("echo 0 > /sys/kernel/livepatch/klp_fix_hostname/enabled"),
        Run("rmmod livepatch_sample"),
        Run("rmmod klp_fix_hostname"),
        Run("cat /proc/cmdline"),
        Run("lsmod"),
        Say("What the kernel logged:"),
        Run("dmesg"),
    ]
}
