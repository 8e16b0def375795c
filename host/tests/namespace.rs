//! One file namespace, through the `klp` binary: insmod reads the kernel's VFS, never the host's;
//! host directories appear only where `--mount` or `--modules` put them, and cannot be escaped.

use std::path::{Path, PathBuf};
mod klp_bin;
use klp_bin::klp;

const MODULES: &str = "/lib/modules/6.12.0-klp";

/// A directory this test made under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("klp-ns-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn module(name: &str) -> &'static [u8] {
    klp_artifacts::module(name).expect("built by build.rs")
}

/// A file in the host's own `/tmp` that this test creates under a name nobody else uses, and
/// removes on drop.
struct HostTmpFile(PathBuf);

impl Drop for HostTmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn insmod_reads_the_kernels_tmp_whether_or_not_the_hosts_tmp_has_the_same_name() {
    let name = format!(
        "klp-ns-{}-{:?}.wasm",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "");
    let guest = format!("/tmp/{name}");
    let garbage = format!("echo garbage > {guest}; insmod {guest}");
    let expected =
        format!("insmod: ERROR: could not insert module {guest}: Invalid module format\n");
    let missing =
        format!("insmod: ERROR: could not load module {guest}: No such file or directory\n");

    let (status, _, err) = klp(&["run", "-c", &garbage]);
    assert_eq!((status, err.as_str()), (1, expected.as_str()));
    let (_, _, err) = klp(&["run", "-c", &format!("insmod {guest}")]);
    assert_eq!(err, missing);

    // The host's /tmp now holds a valid module of that name: nothing changes.
    assert!(Path::new("/tmp").is_dir());
    let host = HostTmpFile(PathBuf::from(&guest));
    std::fs::write(&host.0, module("livepatch-sample")).unwrap();
    let (status, _, err) = klp(&["run", "-c", &garbage]);
    assert_eq!((status, err.as_str()), (1, expected.as_str()));
    let (_, out, err) = klp(&["run", "-c", &format!("insmod {guest}; lsmod")]);
    assert_eq!(err, missing);
    assert!(!out.contains("livepatch_sample"), "{out}");
}

#[test]
fn the_modules_directory_lists_and_serves_the_built_modules() {
    let (status, out, err) = klp(&["run", "-c", &format!("uname -r; ls {MODULES}")]);
    assert_eq!(status, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("6.12.0-klp"));
    let listed: Vec<&str> = lines.collect();
    let mut built: Vec<String> = klp_artifacts::names()
        .into_iter()
        .map(|n| format!("{n}.wasm"))
        .collect();
    built.sort();
    assert_eq!(listed, built);

    let sample = module("livepatch-sample");
    let script = format!(
        "wc -c {MODULES}/livepatch-sample.wasm; cat {MODULES}/livepatch-sample.wasm | wc -c; \
         ls -l {MODULES}/livepatch-sample.wasm"
    );
    let (_, out, err) = klp(&["run", "-c", &script]);
    let size = sample.len();
    assert_eq!(
        out,
        format!(
            "{size} {MODULES}/livepatch-sample.wasm\n{}\n-r--r--r-- 1 root root {size} {MODULES}/livepatch-sample.wasm\n",
            // cat turns the binary into text (lossy UTF-8), so the pipe counts those bytes.
            String::from_utf8_lossy(sample).len()
        ),
        "{err}"
    );

    let (status, _, err) = klp(&[
        "run",
        "-c",
        &format!("echo x > {MODULES}/livepatch-sample.wasm; rm {MODULES}/hello.wasm; insmod nope"),
    ]);
    assert_eq!(status, 1);
    assert_eq!(
        err,
        format!(
            "sh: {MODULES}/livepatch-sample.wasm: Read-only file system\n\
             rm: cannot remove '{MODULES}/hello.wasm': Read-only file system\n\
             insmod: ERROR: could not load module nope: No such file or directory\n"
        )
    );
}

#[test]
fn a_mounted_host_directory_is_read_written_and_loaded_from() {
    let dir = Scratch::new("rw");
    dir.file("x.wasm", module("test_klp_livepatch"));
    dir.file("notes.txt", b"from the host\n");
    let spec = format!("{}:/mnt", dir.path());
    let script = "insmod /mnt/x.wasm && cat /proc/cmdline; cat /mnt/notes.txt; \
                  echo hi > /mnt/out; echo more >> /mnt/out; mkdir /mnt/d; ls /mnt; \
                  grep hostfs /proc/mounts";
    let (status, out, err) = klp(&["run", "--mount", &spec, "-c", script]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "test_klp_livepatch: this has been live patched\nfrom the host\nd\nnotes.txt\nout\nx.wasm\n{} /mnt hostfs rw 0 0\n",
            std::fs::canonicalize(&dir.0).unwrap().display()
        )
    );
    assert_eq!(std::fs::read(dir.0.join("out")).unwrap(), b"hi\nmore\n");
    assert!(dir.0.join("d").is_dir());
}

#[test]
fn a_read_only_mount_refuses_every_change_and_the_host_keeps_its_files() {
    let dir = Scratch::new("ro");
    dir.file("notes.txt", b"keep\n");
    let spec = format!("{}:/mnt/host:ro", dir.path());
    let script = "echo x > /mnt/host/notes.txt; echo x > /mnt/host/new; rm /mnt/host/notes.txt; \
                  mkdir /mnt/host/d; rmdir /mnt/host; cat /mnt/host/notes.txt";
    let (status, out, err) = klp(&["run", "--mount", &spec, "-c", script]);
    assert_eq!((status, out.as_str()), (0, "keep\n"));
    assert_eq!(
        err,
        "sh: /mnt/host/notes.txt: Read-only file system\n\
         sh: /mnt/host/new: Read-only file system\n\
         rm: cannot remove '/mnt/host/notes.txt': Read-only file system\n\
         mkdir: cannot create directory '/mnt/host/d': Read-only file system\n\
         rmdir: failed to remove '/mnt/host': Device or resource busy\n"
    );
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(names.len(), 1);
    assert_eq!(std::fs::read(dir.0.join("notes.txt")).unwrap(), b"keep\n");
}

#[cfg(unix)]
#[test]
fn no_path_leads_out_of_a_mount() {
    let outside = Scratch::new("outside");
    outside.file("secret", b"host secret\n");
    let dir = Scratch::new("escape");
    std::os::unix::fs::symlink(outside.0.join("secret"), dir.0.join("abs")).unwrap();
    std::os::unix::fs::symlink("..", dir.0.join("up")).unwrap();
    std::os::unix::fs::symlink(outside.0.join("planted"), dir.0.join("dangling")).unwrap();
    let spec = format!("{}:/mnt", dir.path());
    let up = format!(
        "/mnt/up/{}/secret",
        outside.0.file_name().unwrap().to_str().unwrap()
    );
    let script = format!(
        "cat /mnt/abs; cat /mnt/../mnt/../{}; cat {up}; echo x > {up}; echo x > /mnt/dangling; \
         ls /mnt/up",
        outside.path().trim_start_matches('/')
    );
    let (_, out, err) = klp(&["run", "--mount", &spec, "-c", &script]);
    assert!(!out.contains("host secret"), "{out}");
    assert_eq!(
        err,
        format!(
            "cat: /mnt/abs: Permission denied\n\
             cat: /mnt/../mnt/../{}: No such file or directory\n\
             cat: {up}: Permission denied\n\
             sh: {up}: Permission denied\n\
             sh: /mnt/dangling: No such file or directory\n\
             ls: cannot access '/mnt/up': Permission denied\n",
            outside.path().trim_start_matches('/')
        )
    );
    assert_eq!(
        std::fs::read(outside.0.join("secret")).unwrap(),
        b"host secret\n"
    );
    assert!(!outside.0.join("planted").exists());
}

#[test]
fn modules_option_mounts_extra_which_insmod_searches_first() {
    let dir = Scratch::new("extra");
    // An out-of-tree module under a built-in module's name wins over the built-in one.
    dir.file("hello.wasm", module("test_klp_livepatch"));
    dir.file("my-fix.wasm", module("livepatch-sample"));
    let script = format!(
        "ls {MODULES}/extra; insmod hello && cat /proc/cmdline; insmod my_fix; lsmod | grep -c my_fix; \
         echo x > {MODULES}/extra/new"
    );
    let (status, out, err) = klp(&["run", "--modules", dir.path(), "-c", &script]);
    assert_eq!(status, 1);
    assert_eq!(
        out, "hello.wasm\nmy-fix.wasm\ntest_klp_livepatch: this has been live patched\n1\n",
        "{err}"
    );
    assert!(
        err.ends_with(&format!("sh: {MODULES}/extra/new: Read-only file system\n")),
        "{err}"
    );
}

#[test]
fn bad_mount_options_are_clear_errors_that_boot_nothing() {
    let dir = Scratch::new("bad");
    let missing = dir.0.join("missing");
    let file = dir.file("f", b"");
    let cases = [
        (
            format!("{}:/mnt", missing.display()),
            format!(
                "klp: --mount: {}: No such file or directory\n",
                missing.display()
            ),
        ),
        (
            format!("{}:/mnt", file.display()),
            format!("klp: --mount: {}: Not a directory\n", file.display()),
        ),
        (
            "nocolon".to_string(),
            "klp: --mount: 'nocolon': expected HOST_DIR:GUEST_DIR[:ro]\n".to_string(),
        ),
        (
            format!("{}:relative", dir.path()),
            format!(
                "klp: --mount: '{}:relative': expected HOST_DIR:GUEST_DIR[:ro] with an absolute GUEST_DIR\n",
                dir.path()
            ),
        ),
        (
            format!("{}:/proc/cmdline", dir.path()),
            "klp: --mount: /proc/cmdline: Not a directory\n".to_string(),
        ),
    ];
    for (spec, expected) in cases {
        let (status, out, err) = klp(&["run", "--mount", &spec, "-c", "echo booted"]);
        assert_eq!(
            (status, out.as_str(), err.as_str()),
            (1, "", expected.as_str())
        );
    }
    let (status, _, err) = klp(&["run", "--modules", missing.to_str().unwrap(), "-c", "true"]);
    assert_eq!(status, 1);
    assert_eq!(
        err,
        format!(
            "klp: --modules: {}: No such file or directory\n",
            missing.display()
        )
    );
}
