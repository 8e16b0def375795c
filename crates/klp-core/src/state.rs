//! The core state of one running kernel: everything the host knows that the guest does not.

use crate::fs::mounts::Mounts;
use crate::ftrace::Ftrace;
use crate::instrument::FtraceMap;
use crate::kallsyms::Kallsyms;
use crate::livepatch::Livepatch;
use crate::loader::LoadedModule;
use crate::tasks::Tasks;
use crate::tracing::Tracing;

/// The engine-independent state of a booted kernel, kept inside the engine (see
/// [`crate::engine::Engine::with_state`]).
pub struct KernelState {
    /// The ftrace table: every slot (kernel and module functions), its users, its trampolines.
    pub ftrace: Ftrace,
    /// The kernel's and loaded modules' symbols.
    pub kallsyms: Kallsyms,
    /// Loaded modules, in load order.
    pub modules: Vec<LoadedModule>,
    /// Registered live patches and their func_stacks.
    pub livepatch: Livepatch,
    /// The function tracer and kprobes.
    pub tracing: Tracing,
    /// The command running now (the task name in traces and oopses).
    pub comm: String,
    /// The module whose `init_module` is running (`THIS_MODULE` for `klp_enable_patch`).
    pub loading: Option<String>,
    /// Address of the kernel's user buffer (set at boot).
    pub user_buffer: u32,
    /// The command line the kernel booted with.
    pub cmdline: String,
    /// File descriptors the current task opened and has not closed (closed when it dies).
    pub task_fds: Vec<i32>,
    /// Number of oopses so far (the `D` taint).
    pub oopses: u32,
    /// The host-backed mounts: the modules tree and host directories.
    pub mounts: Mounts,
    /// The soft lockup watchdog's threshold in seconds (`watchdog_thresh`; 0: off).
    pub watchdog_thresh: u32,
    /// The tasks, the run queue and the virtual clock.
    pub tasks: Tasks,
    /// The kernel's code variants, when it runs dynamic ftrace; `None`: one code, every call
    /// through its slot.
    pub code: Option<crate::ftrace::code::Code>,
}

impl KernelState {
    /// A state for a kernel about to boot.
    pub fn new(ftrace: &FtraceMap, kallsyms: Kallsyms, cmdline: &str) -> Self {
        let mut state = KernelState {
            ftrace: Ftrace::new(ftrace),
            kallsyms,
            modules: Vec::new(),
            livepatch: Livepatch::default(),
            tracing: Tracing::default(),
            comm: "swapper".to_string(),
            loading: None,
            user_buffer: 0,
            cmdline: cmdline.to_string(),
            task_fds: Vec::new(),
            oopses: 0,
            mounts: Mounts::default(),
            watchdog_thresh: 0,
            tasks: Tasks::default(),
            code: None,
        };
        state.watchdog_thresh = crate::watchdog::thresh_from_cmdline(&state);
        state
    }

    /// The value of `name=value` on the kernel command line (`1` for a bare `name`).
    pub fn cmdline_param(&self, name: &str) -> Option<&str> {
        self.cmdline
            .split_whitespace()
            .find_map(|word| match word.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if word == name => Some("1"),
                _ => None,
            })
    }

    /// The task running now, as traces name it (`comm`, pid): the task the scheduler runs, or
    /// else the command's; without tasks, the command with the shell's one pid.
    pub fn current_task(&self) -> (String, i32) {
        let t = &self.tasks;
        let pid = t.running().map(|p| p.get()).or_else(|| t.command_pid());
        match pid.and_then(|pid| t.by_pid(pid)) {
            Some(task) => (task.comm().to_string(), task.pid().get()),
            None => (self.comm.clone(), 1),
        }
    }

    /// A loaded module by name.
    pub fn module(&self, name: &str) -> Option<&LoadedModule> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// The `Tainted:` field of an oops: `Not tainted`, or `G` and the flags (`D` oops,
    /// `K` live patched) in the kernel's column order.
    pub fn taint_flags(&self) -> String {
        let oops = self.oopses > 0;
        let patched = self.modules.iter().any(|m| m.livepatch);
        if !oops && !patched {
            return "Not tainted".into();
        }
        format!(
            "G      {}      {}",
            if oops { 'D' } else { ' ' },
            if patched { 'K' } else { ' ' }
        )
    }
}
