//! `/lib/modules/<release>/`: the built-in kernel and livepatch modules as read-only files, and
//! how `insmod NAME` finds a module file there, as modprobe does.

use crate::errno::Errno;
use crate::sys::{S_IFDIR, Stat};

const S_IFREG: u32 = 0o100000;

/// Where modules live: `/lib/modules/<release>` (`uname -r`).
pub fn dir(release: &str) -> String {
    format!("/lib/modules/{release}")
}

/// Where `klp run --modules DIR` mounts DIR: Linux's place for out-of-tree modules.
pub fn extra_dir(release: &str) -> String {
    format!("{}/extra", dir(release))
}

/// The paths `insmod NAME` tries, in order: `extra/` first, then the built-in modules, each with
/// the name as given and with `_` and `-` exchanged (`livepatch_sample` finds
/// `livepatch-sample.wasm`).
pub fn candidates(release: &str, name: &str) -> Vec<String> {
    let mut stems = vec![name.to_string()];
    for variant in [name.replace('_', "-"), name.replace('-', "_")] {
        if !stems.contains(&variant) {
            stems.push(variant);
        }
    }
    [extra_dir(release), dir(release)]
        .iter()
        .flat_map(|d| stems.iter().map(move |s| format!("{d}/{s}.wasm")))
        .collect()
}

/// The module files of the tree, by file stem.
#[derive(Debug, Clone, Default)]
pub struct ModuleFiles {
    files: Vec<(String, &'static [u8])>,
}

impl ModuleFiles {
    /// Module files embedded in the program, as (file stem, wasm) pairs: the built-in modules
    /// klp-artifacts embeds (`klp_artifacts::MODULES`).
    pub fn embedded(modules: &[(&str, &'static [u8])]) -> ModuleFiles {
        let mut files = ModuleFiles::default();
        for &(stem, wasm) in modules {
            files.add(stem, wasm);
        }
        files
    }

    /// Adds a module file, or replaces the one of the same stem.
    pub fn add(&mut self, stem: &str, wasm: &'static [u8]) {
        self.files.retain(|(s, _)| s != stem);
        self.files.push((stem.to_string(), wasm));
        self.files.sort_by(|a, b| a.0.cmp(&b.0));
    }

    fn file(&self, rel: &str) -> Option<&[u8]> {
        let stem = rel.strip_suffix(".wasm")?;
        self.files
            .iter()
            .find(|(s, _)| s == stem)
            .map(|&(_, wasm)| wasm)
    }

    /// A file's contents.
    ///
    /// # Errors
    /// `EISDIR` for the directory, `ENOENT`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, Errno> {
        if rel.is_empty() {
            return Err(Errno::EISDIR);
        }
        self.file(rel).map(<[u8]>::to_vec).ok_or(Errno::ENOENT)
    }

    /// `stat`: the directory, or a read-only file.
    ///
    /// # Errors
    /// `ENOENT`.
    pub fn stat(&self, rel: &str) -> Result<Stat, Errno> {
        if rel.is_empty() {
            return Ok(Stat {
                mode: S_IFDIR | 0o555,
                size: 0,
                nlink: 2,
                ino: 0,
            });
        }
        let file = self.file(rel).ok_or(Errno::ENOENT)?;
        Ok(Stat {
            mode: S_IFREG | 0o444,
            size: u32::try_from(file.len()).unwrap_or(u32::MAX),
            nlink: 1,
            ino: 0,
        })
    }

    /// The directory's entries: `NAME.wasm` for every module.
    ///
    /// # Errors
    /// `ENOTDIR` below the directory, `ENOENT`.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, Errno> {
        if !rel.is_empty() {
            return Err(if self.file(rel).is_some() {
                Errno::ENOTDIR
            } else {
                Errno::ENOENT
            });
        }
        Ok(self
            .files
            .iter()
            .map(|(stem, _)| format!("{stem}.wasm"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insmod_names_try_extra_first_and_both_spellings() {
        assert_eq!(
            candidates("6.12.0-klp", "livepatch_sample"),
            vec![
                "/lib/modules/6.12.0-klp/extra/livepatch_sample.wasm",
                "/lib/modules/6.12.0-klp/extra/livepatch-sample.wasm",
                "/lib/modules/6.12.0-klp/livepatch_sample.wasm",
                "/lib/modules/6.12.0-klp/livepatch-sample.wasm",
            ]
        );
        assert_eq!(candidates("r", "hello").len(), 2);
    }

    #[test]
    fn embedded_modules_are_read_only_wasm_files() {
        const SAMPLE: &[u8] = b"\0asm\x01\0\0\0";
        let files = ModuleFiles::embedded(&[("livepatch-sample", SAMPLE), ("hello", SAMPLE)]);
        assert_eq!(
            files.list("").unwrap(),
            ["hello.wasm", "livepatch-sample.wasm"]
        );
        let wasm = files.read("livepatch-sample.wasm").unwrap();
        assert!(wasm.starts_with(b"\0asm"));
        let stat = files.stat("livepatch-sample.wasm").unwrap();
        assert_eq!(
            (stat.mode, stat.size as usize),
            (S_IFREG | 0o444, wasm.len())
        );
        assert_eq!(files.read("livepatch-sample"), Err(Errno::ENOENT));
        assert_eq!(files.read(""), Err(Errno::EISDIR));
        assert_eq!(files.list("livepatch-sample.wasm"), Err(Errno::ENOTDIR));
    }
}
