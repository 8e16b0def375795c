//! The work directory of `klp build --diff`: a fresh one under the system's temp directory,
//! removed when done, or one the user keeps (`--keep-work`).

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};

/// The directory: `tree/` (the copy of the sources), `target/` (cargo's), `orig/` and
/// `patched/` (the two builds of each object).
pub struct Work {
    /// Its absolute path.
    dir: PathBuf,
    /// Whether to leave it in place.
    keep: bool,
}

impl Work {
    /// `keep` (created if missing, and empty), or a new directory under the temp directory.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created, or `keep` holds something already.
    pub fn new(keep: Option<&Path>) -> Result<Work> {
        let (dir, keep) = match keep {
            Some(dir) => {
                fs::create_dir_all(dir)
                    .with_context(|| format!("--keep-work {}", dir.display()))?;
                let used = fs::read_dir(dir)
                    .with_context(|| format!("--keep-work {}", dir.display()))?
                    .next()
                    .is_some();
                if used {
                    bail!("--keep-work {}: not empty", dir.display());
                }
                (dir.to_path_buf(), true)
            }
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let dir =
                    std::env::temp_dir().join(format!("klp-build-{}-{nanos}", std::process::id()));
                fs::create_dir(&dir)
                    .with_context(|| format!("creating the work directory {}", dir.display()))?;
                (dir, false)
            }
        };
        let work = Work {
            dir: dir.canonicalize()?,
            keep,
        };
        // Cargo puts its target directory into a `:`-separated search path.
        if work.dir.to_string_lossy().contains(':') {
            bail!(
                "cannot build in {}: cargo cannot build below a path with a `:`",
                work.dir.display()
            );
        }
        for sub in ["tree", "orig", "patched"] {
            fs::create_dir(work.dir.join(sub))?;
        }
        Ok(work)
    }

    /// The copy of the sources.
    pub fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }

    /// Cargo's target directory, shared by both builds.
    pub fn target(&self) -> PathBuf {
        self.dir.join("target")
    }

    /// Keeps a build of an object: `orig/NAME.wasm` or `patched/NAME.wasm`.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn keep_build(&self, which: &str, name: &str, wasm: &[u8]) -> Result<()> {
        let path = self.dir.join(which).join(format!("{name}.wasm"));
        fs::write(&path, wasm).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("klp build: work directory kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
