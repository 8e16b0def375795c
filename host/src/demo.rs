//! The story `klp demo` tells: a bug, a live patch that fixes it, and its removal.

/// One step of the demo: narration, or a shell command to run and show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Text for the reader.
    Say(&'static str),
    /// A shell command, shown with a prompt and run.
    Run(&'static str),
}

/// Sets a hostname 8 bytes longer than the 64 the nodename field holds.
const SET_LONG_NAME: &str = "echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaOVERFLOW > /proc/sys/kernel/hostname";

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
            "The bug: the hostname writer has no bounds check. A 72-byte name runs past the\n65-byte nodename field into the next one, the kernel release.",
        ),
        Run(SET_LONG_NAME),
        Run("uname -a"),
        Run("cat /proc/sys/kernel/osrelease"),
        Say(
            "The fix, as a live patch: klp-fix-hostname replaces the buggy writer while the kernel\nruns; its init repairs the damaged release.",
        ),
        Run("insmod klp-fix-hostname"),
        Run("ls /sys/kernel/livepatch/klp_fix_hostname"),
        Run("cat /sys/kernel/livepatch/klp_fix_hostname/enabled"),
        Run(SET_LONG_NAME),
        Run("uname -a"),
        Say("The sample patch from samples/livepatch stacks on top, on another function."),
        Run("insmod livepatch-sample"),
        Run("cat /proc/cmdline"),
        Run("lsmod"),
        Say("Disable both patches through sysfs and unload them: the original functions are back."),
        Run("echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled"),
        Run("cat /proc/cmdline"),
        Run("echo 0 > /sys/kernel/livepatch/klp_fix_hostname/enabled"),
        Run("rmmod livepatch_sample klp_fix_hostname"),
        Run("lsmod"),
        Say("What the kernel logged:"),
        Run("dmesg"),
    ]
}
