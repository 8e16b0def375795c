//! Shadow variables on the real kernel: the API's warnings and failures (called through the
//! kernel's exports), and the /dev/kmsg fix's shadow variables across the life of open files:
//! files opened before the patch, files left open while the patch module goes.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::sys;
use klp_core::sys::flags::O_RDONLY;
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options};

mod common;
use common::Recorder;

/// A booted kernel and a shell to run commands on it.
struct Kernel<E> {
    engine: E,
    shell: shell::Shell,
}

/// Boots the built kernel with the built-in modules.
fn boot() -> Kernel<impl Engine> {
    let engine = rt::boot(
        artifacts::KERNEL,
        "console=hvc0 root=/dev/ram0 rw",
        true,
        Options::default(),
    )
    .unwrap();
    Kernel {
        engine,
        shell: shell::Shell::new(shell::Options::default()),
    }
}

impl<E: Engine> Kernel<E> {
    /// Runs a shell command line; returns what it printed. It must succeed.
    fn run(&mut self, line: &str) -> String {
        let mut host = Recorder::default();
        let status = self.shell.run(&mut self.engine, &mut host, line);
        assert_eq!(status, 0, "{line}: {}", host.text);
        host.text
    }

    /// Calls a kernel export with `i32` arguments.
    fn call(&mut self, name: &str, args: &[i32]) -> i32 {
        sys::call(&mut self.engine, name, args).unwrap()
    }

    /// The kernel log.
    fn log(&mut self) -> String {
        sys::syslog_read_all(&mut self.engine).unwrap()
    }

    /// Opens /dev/kmsg for reading.
    fn open_kmsg(&mut self) -> i32 {
        sys::open(&mut self.engine, "/dev/kmsg", O_RDONLY).unwrap()
    }

    /// Reads every record left for the descriptor.
    fn read_all(&mut self, fd: i32) -> String {
        String::from_utf8(sys::read_to_end(&mut self.engine, fd).unwrap()).unwrap()
    }

    /// `MemFree` of /proc/meminfo, in kB.
    fn mem_free(&mut self) -> u64 {
        let meminfo = self.run("cat /proc/meminfo");
        let line = meminfo.lines().find(|l| l.starts_with("MemFree:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The address (the slot) kallsyms gives a kernel function.
    fn slot(&mut self, name: &str) -> i32 {
        let kallsyms = self.run("cat /proc/kallsyms");
        let line = kallsyms
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap();
        i32::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
    }
}

/// GFP flags for the calls: the kernel's allocator takes any (test_klp_shadow_vars passes
/// `GFP_KERNEL`).
const GFP: i32 = 0;

/// `klp_shadow_alloc(obj, id, size, GFP, ctor, ctor_data)`.
fn alloc<E: Engine>(k: &mut Kernel<E>, obj: i32, id: i32, size: i32, ctor: i32, data: i32) -> i32 {
    k.call("klp_shadow_alloc", &[obj, id, size, GFP, ctor, data])
}

#[test]
fn the_shadow_api_zeroes_warns_on_duplicates_and_reports_constructor_failures() {
    let mut k = boot();
    assert_eq!(k.call("klp_shadow_get", &[0x1000, 7]), 0);
    let data = alloc(&mut k, 0x1000, 7, 16, 0, 0);
    assert_ne!(data, 0);
    let mut bytes = [0xff; 16];
    k.engine.read(data as u32, &mut bytes).unwrap();
    assert_eq!(bytes, [0; 16], "new shadow data is zeroed");
    assert_eq!(k.call("klp_shadow_get", &[0x1000, 7]), data);
    assert_eq!(k.call("klp_shadow_get", &[0x1000, 8]), 0);
    assert_eq!(k.call("klp_shadow_get", &[0x1001, 7]), 0);

    // A second klp_shadow_alloc of the same <obj, id> is Linux's WARN and NULL.
    assert!(!k.log().contains("Duplicate shadow variable"));
    assert_eq!(alloc(&mut k, 0x1000, 7, 16, 0, 0), 0);
    let log = k.log();
    let warn: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.ends_with("------------[ cut here ]------------"))
        .take(5)
        .map(|l| l.split_once("] ").unwrap().1)
        .collect();
    assert_eq!(warn[1], "Duplicate shadow variable <0000000000001000, 7>");
    assert!(
        warn[2].starts_with("WARNING: CPU: 0 PID: ")
            && warn[2].contains(" at guest-kernel/src/livepatch/shadow.rs:")
            && warn[2].ends_with(" __klp_shadow_get_or_alloc"),
        "{log}"
    );
    assert!(warn[3].contains("Tainted: G        W"), "{log}");
    assert_eq!(warn[4], "---[ end trace 0000000000000000 ]---");
    assert_eq!(k.run("cat /proc/sys/kernel/tainted"), "512\n");

    // klp_shadow_get_or_alloc returns the existing variable, without a warning.
    let warnings = k.log().matches("Duplicate").count();
    let got = k.call("klp_shadow_get_or_alloc", &[0x1000, 7, 16, GFP, 0, 0]);
    assert_eq!(got, data);
    assert_eq!(k.log().matches("Duplicate").count(), warnings);

    // A constructor that fails fails the allocation, with Linux's message. sys_getdents has
    // the constructor's type and fails with -EBADF for the "descriptor" 5000.
    let failing_ctor = k.slot("sys_getdents");
    assert_eq!(alloc(&mut k, 5000, 8, 4, failing_ctor, 16), 0);
    assert!(
        k.log()
            .contains("livepatch: Failed to construct shadow variable <0000000000001388, 8> (-9)"),
        "{}",
        k.log()
    );
    assert_eq!(k.call("klp_shadow_get", &[5000, 8]), 0);

    // klp_shadow_free takes one variable; klp_shadow_free_all every one of an id.
    k.call("klp_shadow_free", &[0x1000, 7, 0]);
    assert_eq!(k.call("klp_shadow_get", &[0x1000, 7]), 0);
    for obj in 1..=100 {
        assert_ne!(alloc(&mut k, obj * 4096, 9, 8, 0, 0), 0);
        assert_ne!(alloc(&mut k, obj * 4096, 10, 8, 0, 0), 0);
    }
    k.call("klp_shadow_free_all", &[9, 0]);
    for obj in 1..=100 {
        assert_eq!(k.call("klp_shadow_get", &[obj * 4096, 9]), 0);
        assert_ne!(k.call("klp_shadow_get", &[obj * 4096, 10]), 0);
    }
    k.call("klp_shadow_free_all", &[10, 0]);
    assert_eq!(k.call("klp_shadow_get", &[4096, 10]), 0);
}

#[test]
fn files_opened_before_the_fix_keep_the_shared_position() {
    let mut k = boot();
    sys::printk(&mut k.engine, "marker before the patch").unwrap();
    let (old_a, old_b) = (k.open_kmsg(), k.open_kmsg());
    // The bug: the first reader takes every record, the second finds none left.
    assert!(k.read_all(old_a).contains(";marker before the patch\n"));
    assert_eq!(k.read_all(old_b), "");

    k.run("insmod klp-fix-kmsg");
    // Files opened before the patch have no shadow variable: they go on sharing the one
    // position, which moved past the records logged before the patch.
    let old = k.read_all(old_a);
    assert!(!old.contains("marker before the patch"), "{old}");
    assert!(
        old.contains(";livepatch: 'klp_fix_kmsg': patching complete\n"),
        "{old}"
    );
    assert_eq!(k.read_all(old_b), "");

    // Files opened under the patch each start at the oldest record.
    let (new_a, new_b) = (k.open_kmsg(), k.open_kmsg());
    let all = k.read_all(new_a);
    assert!(all.contains(";marker before the patch\n"), "{all}");
    assert_eq!(k.read_all(new_b), all);
    sys::printk(&mut k.engine, "marker under the patch").unwrap();
    assert!(k.read_all(new_a).ends_with(";marker under the patch\n"));
    assert!(k.read_all(new_b).ends_with(";marker under the patch\n"));
    assert!(k.read_all(old_b).ends_with(";marker under the patch\n"));
    assert_eq!(k.read_all(old_a), "");

    for fd in [old_a, old_b, new_a, new_b] {
        sys::close(&mut k.engine, fd).unwrap();
    }
    k.run("echo 0 > /sys/kernel/livepatch/klp_fix_kmsg/enabled");
    k.run("rmmod klp_fix_kmsg");
}

#[test]
fn shadow_variables_of_files_left_open_go_with_the_patch_module() {
    let mut k = boot();
    // First 200 files opened and closed under the patch: the shadow hash table (allocated at
    // the first allocation) and the descriptor table (grown to 200) stay.
    k.run("insmod klp-fix-kmsg");
    let fds: Vec<i32> = (0..200).map(|_| k.open_kmsg()).collect();
    for fd in fds {
        sys::close(&mut k.engine, fd).unwrap();
    }
    k.run("echo 0 > /sys/kernel/livepatch/klp_fix_kmsg/enabled");
    k.run("rmmod klp_fix_kmsg");
    let before = k.mem_free();

    k.run("insmod klp-fix-kmsg");
    let fds: Vec<i32> = (0..200).map(|_| k.open_kmsg()).collect();
    k.run("echo 0 > /sys/kernel/livepatch/klp_fix_kmsg/enabled");
    // The module's exit frees the 200 variables (klp_shadow_free_all)...
    k.run("rmmod klp_fix_kmsg");
    // ...and the unpatched release frees the files' devkmsg_user.
    for fd in fds {
        sys::close(&mut k.engine, fd).unwrap();
    }
    assert_eq!(k.mem_free(), before, "200 shadow variables are 6 kB");
}
