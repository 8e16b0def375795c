//! Files `klp` and insmod read are checked before they are read: regular files only, 64 MiB at most.

mod klp_bin;
mod scratch;
use klp_bin::klp;
use scratch::Scratch;
use std::path::Path;

impl Scratch {
    /// A FIFO nobody writes to: reading it would block forever.
    fn fifo(&self, name: &str) -> String {
        let path = self.0.join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        text(&path)
    }

    /// A sparse file one byte past the 64 MiB limit.
    fn huge(&self, name: &str) -> String {
        let path = self.0.join(name);
        let file = std::fs::File::create(&path).unwrap();
        file.set_len((64 << 20) + 1).unwrap();
        text(&path)
    }
}

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

#[test]
fn host_files_that_are_not_regular_are_refused_unread() {
    let tmp = Scratch::new("fifo");
    let fifo = tmp.fifo("pipe");
    let out = tmp.0.join("out.wasm");
    for args in [
        vec!["run", "--kernel", &fifo, "-c", "true"],
        vec!["run", "--script", &fifo],
        vec!["kallsyms", &fifo],
        vec!["instrument", &fifo, "-o", out.to_str().unwrap()],
    ] {
        let (status, _, err) = klp(&args);
        assert_eq!(status, 1, "{args:?}");
        assert_eq!(err, format!("klp: reading {fifo}: not a regular file\n"));
    }
}

#[test]
fn host_files_past_64_mib_are_file_too_large() {
    let tmp = Scratch::new("huge");
    let huge = tmp.huge("huge");
    let out = tmp.0.join("out.wasm");
    for args in [
        vec!["run", "--kernel", &huge, "-c", "true"],
        vec!["run", "--script", &huge],
        vec!["kallsyms", &huge],
        vec!["instrument", &huge, "-o", out.to_str().unwrap()],
    ] {
        let (status, _, err) = klp(&args);
        assert_eq!(status, 1, "{args:?}");
        assert_eq!(err, format!("klp: reading {huge}: File too large\n"));
    }
}

#[test]
fn insmod_from_a_host_mount_refuses_a_fifo_and_a_huge_file() {
    let tmp = Scratch::new("mount");
    tmp.fifo("pipe.wasm");
    tmp.huge("huge.wasm");
    let mount = format!("{}:/mnt", text(&tmp.0));
    let (status, out, err) = klp(&[
        "run",
        "--mount",
        &mount,
        "-c",
        "insmod /mnt/pipe.wasm; insmod /mnt/huge.wasm; cat /mnt/pipe.wasm; echo done",
    ]);
    assert_eq!((status, out.as_str()), (0, "done\n"), "{err}");
    assert_eq!(
        err,
        "insmod: ERROR: could not load module /mnt/pipe.wasm: Invalid argument\n\
         insmod: ERROR: could not load module /mnt/huge.wasm: File too large\n\
         cat: /mnt/pipe.wasm: Invalid argument\n"
    );
}
