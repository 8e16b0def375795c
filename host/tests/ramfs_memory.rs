//! ramfs and memory: one file can use the memory /proc/meminfo calls free, running out of
//! inodes and dentries is ENOMEM for the syscall that needed one, and meminfo's figures add up.

mod klp_bin;
mod scratch;
use klp_bin::klp;
use scratch::Scratch;

impl Scratch {
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

/// A value of /proc/meminfo in kB, from `cat /proc/meminfo` output.
fn meminfo(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(label)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix(" kB")?.parse().ok())
        .unwrap_or_else(|| panic!("no {label} in {out}"))
}

/// `cat /mnt/m /mnt/m ...` (`times` MiB) into `file`, with a 1 MiB host file mounted at /mnt.
fn fill(times: usize, file: &str) -> String {
    format!("cat {} > {file}", vec!["/mnt/m"; times].join(" "))
}

#[test]
fn one_file_can_use_the_memory_meminfo_calls_free() {
    // A file grew as one buffer, doubled by copying: ENOSPC at 32 MiB with 60 MiB free.
    let dir = Scratch::new("big");
    std::fs::write(dir.path("m"), vec![7u8; 1 << 20]).unwrap();
    let script = format!(
        "{}\nls -l /tmp\ncat /proc/meminfo\nrm /tmp/big\ncat /proc/meminfo",
        fill(48, "/tmp/big")
    );
    let mount = format!("{}:/mnt:ro", dir.0.to_str().unwrap());
    let (status, out, err) = klp(&[
        "run",
        "--cmdline",
        "console=hvc0 mem=64M",
        "--mount",
        &mount,
        "-c",
        &script,
    ]);
    assert_eq!((status, err.as_str()), (0, ""), "{out}");
    assert!(out.contains(" 50331648 big\n"), "{out}");
    let (full, empty) = out.split_at(out.rfind("MemTotal").unwrap());
    assert_eq!(meminfo(full, "MemTotal"), 65536);
    assert!(meminfo(full, "Cached") >= 48 << 10, "{full}");
    assert!(meminfo(full, "MemFree") < 16 << 10, "{full}");
    assert_eq!(meminfo(empty, "Cached"), 0, "{empty}");
    assert!(meminfo(empty, "MemFree") > 60 << 10, "{empty}");
}

#[test]
fn running_out_of_inodes_and_dentries_is_enomem_not_a_panic() {
    // With mem=8M a full ramfs made every later command a `Kernel panic - not syncing`.
    let dir = Scratch::new("dentries");
    std::fs::write(dir.path("m"), vec![0u8; 1 << 20]).unwrap();
    let dirs: Vec<String> = (0..2000).map(|i| format!("/tmp/d{i}")).collect();
    let script = format!(
        "{}\nmkdir {}\necho x > /tmp/x\nrm /tmp/big\nmkdir /tmp/after && echo made\n\
         cat /proc/cmdline\ndmesg | grep -c panic",
        fill(8, "/tmp/big"),
        dirs.join(" ")
    );
    let mount = format!("{}:/mnt:ro", dir.0.to_str().unwrap());
    let (status, out, err) = klp(&[
        "run",
        "--cmdline",
        "console=hvc0 mem=8M",
        "--mount",
        &mount,
        "-c",
        &script,
    ]);
    assert!(!err.contains("panic") && !err.contains("Oops"), "{err}");
    assert!(
        err.contains("mkdir: cannot create directory '/tmp/d1999': Cannot allocate memory\n"),
        "{err}"
    );
    assert!(
        err.contains("sh: cat: write error: No space left on device\n"),
        "{err}"
    );
    assert_eq!(out, "made\nconsole=hvc0 mem=8M\n0\n", "{err}");
    assert_eq!(status, 1, "grep -c found no panic");
}

#[test]
fn cached_is_part_of_memtotal_however_many_small_files() {
    // Each small file counted as a 4 KiB page it did not have: 2,500 of them showed
    // 10 MB Cached of 8 MB MemTotal.
    let dir = Scratch::new("cached");
    let mut script: String = (0..2500).map(|i| format!("echo x > /tmp/f{i}\n")).collect();
    script.push_str("rm /tmp/f0\nrm /tmp/f1\ncat /proc/meminfo\n");
    let path = dir.path("script.sh");
    std::fs::write(&path, script).unwrap();
    let (_, out, err) = klp(&["run", "--cmdline", "console=hvc0 mem=8M", "--script", &path]);
    assert!(!err.contains("panic") && !err.contains("Oops"), "{err}");
    let (total, free, cached, slab) = (
        meminfo(&out, "MemTotal"),
        meminfo(&out, "MemFree"),
        meminfo(&out, "Cached"),
        meminfo(&out, "Slab"),
    );
    assert_eq!(total, 8192);
    assert!(cached > 4096, "most of memory holds files: {out}");
    let (stack, data) = (meminfo(&out, "KernelStack"), meminfo(&out, "KernelData"));
    assert!(
        free + cached + slab + stack + data <= total,
        "the parts add up to at most MemTotal: {out}"
    );
}
