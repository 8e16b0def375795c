//! insmod refuses module names Linux could not name and parameters outside the module's data;
//! paths with a NUL byte are refused before they reach the kernel.

mod klp_bin;
mod scratch;
use klp_bin::klp;
use scratch::Scratch;

impl Scratch {
    /// `--mount` for this directory at /mnt.
    fn mount(&self) -> String {
        format!("{}:/mnt", self.0.display())
    }
}

fn module(name: &str) -> &'static [u8] {
    klp_artifacts::module(name).expect("built by build.rs")
}

#[test]
fn module_files_whose_stem_is_no_module_name_are_invalid_module_format() {
    let tmp = Scratch::new("names");
    let long = format!("{}.wasm", "m".repeat(56));
    for file in ["...wasm", "a b.wasm", "a.b.wasm", &long] {
        std::fs::write(tmp.0.join(file), module("hello")).unwrap();
    }
    let script = format!(
        "insmod /mnt/...wasm; insmod '/mnt/a b.wasm'; insmod /mnt/a.b.wasm; insmod /mnt/{long}; \
         lsmod; ls /sys/kernel/livepatch"
    );
    let (status, out, err) = klp(&["run", "--mount", &tmp.mount(), "-c", &script]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, "Module                  Size  Used by\n");
    assert_eq!(
        err,
        format!(
            "insmod: ERROR: could not insert module /mnt/...wasm: Invalid module format\n\
             insmod: ERROR: could not insert module /mnt/a b.wasm: Invalid module format\n\
             insmod: ERROR: could not insert module /mnt/a.b.wasm: Invalid module format\n\
             insmod: ERROR: could not insert module /mnt/{long}: Invalid module format\n"
        )
    );
    let (_, out, _) = klp(&[
        "run",
        "--mount",
        &tmp.mount(),
        "-c",
        "insmod /mnt/...wasm; dmesg",
    ]);
    assert!(out.contains("module name \"..\" is invalid"), "{out}");
}

/// `module`'s bytes with the offset of its `__param_NAME` data symbol (a one-byte LEB in the
/// linking section's symbol table) moved 64 KiB on, and the sizes around it fixed up.
fn param_moved(module: &[u8], param: &str) -> Vec<u8> {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    }
    fn put_leb(out: &mut Vec<u8>, mut value: usize) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    // kind 1 (data), flags 0, the name, segment, offset 0, size 4.
    let name = format!("__param_{param}");
    let mut symbol = vec![1, 0, name.len() as u8];
    symbol.extend_from_slice(name.as_bytes());
    let mut out = module[..8].to_vec();
    let mut at = 8;
    while at < module.len() {
        let id = module[at];
        at += 1;
        let size = leb(module, &mut at);
        let mut payload = module[at..at + size].to_vec();
        at += size;
        if id == 0 && payload.starts_with(b"\x07linking") {
            let found = payload
                .windows(symbol.len())
                .position(|w| w == symbol.as_slice())
                .expect("the parameter's symbol");
            let offset_at = found + symbol.len() + 1;
            assert_eq!(payload[offset_at..offset_at + 2], [0, 4]);
            // The subsection holding it: walk them from after the name and the version.
            let mut sub = 8 + 1;
            loop {
                let start = sub;
                sub += 1;
                let sub_size = leb(&payload, &mut sub);
                if offset_at < sub + sub_size {
                    payload.splice(offset_at..=offset_at, [0x80, 0x80, 0x04]);
                    let mut header = vec![payload[start]];
                    put_leb(&mut header, sub_size + 2);
                    payload.splice(start..sub, header);
                    break;
                }
                sub += sub_size;
            }
        }
        out.push(id);
        put_leb(&mut out, payload.len());
        out.extend_from_slice(&payload);
    }
    out
}

#[test]
fn a_parameter_outside_the_modules_data_is_invalid_module_format() {
    let tmp = Scratch::new("param");
    let original = module("test_klp_atomic_replace");
    std::fs::write(tmp.0.join("ok.wasm"), original).unwrap();
    std::fs::write(tmp.0.join("moved.wasm"), param_moved(original, "replace")).unwrap();
    let script = "insmod /mnt/moved.wasm replace=1094795585; uname -r; lsmod; dmesg | grep moved";
    let (status, out, err) = klp(&["run", "--mount", &tmp.mount(), "-c", script]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        err,
        "insmod: ERROR: could not insert module /mnt/moved.wasm: Invalid module format\n"
    );
    assert!(!out.contains("AAAA"), "{out}");
    assert!(
        out.contains(
            "moved: invalid module format: parameter replace lies outside the module's data"
        ),
        "{out}"
    );
    // The same module with its parameter in place still loads.
    let (status, _, err) = klp(&[
        "run",
        "--mount",
        &tmp.mount(),
        "-c",
        "insmod /mnt/ok.wasm replace=1",
    ]);
    assert_eq!((status, err.as_str()), (0, ""));
}

#[test]
fn a_path_with_a_nul_byte_is_invalid_argument_and_leaves_its_directory_listable() {
    let tmp = Scratch::new("nul");
    let script = tmp.0.join("nul.sh");
    std::fs::write(&script, "echo x > /tmp/a\0b\nls /tmp\necho listed\n").unwrap();
    let (status, out, err) = klp(&["run", "--script", script.to_str().unwrap()]);
    assert_eq!((status, out.as_str()), (0, "listed\n"), "{err}");
    assert_eq!(err, "sh: /tmp/a\0b: Invalid argument\n");
}
