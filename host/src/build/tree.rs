//! The source side of `klp build --diff`: the kernel's tree, its copy in a work directory, the
//! objects a diff's files belong to, applying the diff and building an object.

use anyhow::{Context, Result, bail};
use klp_artifacts::guest_build;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The name of the guest workspace's directory in a tree (what `guest_build` builds).
const GUEST_DIR: &str = "guest-kernel";

/// The files beside the kernel's tree that a guest build reads: klp-abi, the manifest it
/// inherits from, the toolchain, and the livepatch modules (members of the guest workspace).
const BESIDE: &[&str] = &["abi", "Cargo.toml", "rust-toolchain.toml", "patches"];

/// A kernel source tree: `DIR` (`Cargo.toml`, `src/`, `modules/*`, `klp-guest/`) with
/// [`BESIDE`] in its parent directory.
pub struct Source {
    /// `DIR`, absolute.
    dir: PathBuf,
}

impl Source {
    /// Checks that `dir` is laid out as a kernel tree.
    ///
    /// # Errors
    ///
    /// When `dir` or a file a build needs is missing.
    pub fn open(dir: &Path) -> Result<Source> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--kernel-src {}", dir.display()))?;
        for needed in ["Cargo.toml", "src"] {
            if !dir.join(needed).exists() {
                bail!(
                    "--kernel-src {}: not a kernel source tree (no {needed})",
                    dir.display()
                );
            }
        }
        let parent = dir.parent().unwrap_or(&dir);
        for needed in BESIDE.iter().filter(|&&n| n != "patches") {
            if !parent.join(needed).exists() {
                bail!(
                    "--kernel-src {}: no {} beside it (a build needs {})",
                    dir.display(),
                    parent.join(needed).display(),
                    BESIDE.join(", ")
                );
            }
        }
        Ok(Source { dir })
    }

    /// The directory's own name, which a diff's paths may start with (`guest-kernel/src/…`).
    fn name(&self) -> &str {
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(GUEST_DIR)
    }

    /// A path of a diff, relative to the repository (`guest-kernel/src/utsname.rs`) or to
    /// the tree (`src/utsname.rs`), as (path relative to the tree, whether it was relative to
    /// the repository).
    ///
    /// # Errors
    ///
    /// For an absolute path or one with `..`.
    pub fn relative(&self, path: &str) -> Result<(String, bool)> {
        let plain = Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            bail!("{path}: not a relative path inside the tree");
        }
        for prefix in [GUEST_DIR, self.name()] {
            if let Some(rest) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                return Ok((rest.to_string(), true));
            }
        }
        Ok((path.to_string(), false))
    }

    /// Copies the tree and the files beside it into `tree` (`tree/guest-kernel`,
    /// `tree/abi`, ...), leaving out `target/` and `.git`.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or written.
    pub fn copy_to(&self, tree: &Path) -> Result<()> {
        copy(&self.dir, &tree.join(GUEST_DIR))?;
        let parent = self.dir.parent().unwrap_or(&self.dir);
        for name in BESIDE {
            let from = parent.join(name);
            if from.exists() {
                copy(&from, &tree.join(name))?;
            }
        }
        Ok(())
    }
}

/// Copies a file, or a directory recursively without `target/` and `.git`.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let context = || format!("copying {} to {}", from.display(), to.display());
    let meta = fs::metadata(from).with_context(context)?;
    if !meta.is_dir() {
        fs::copy(from, to).with_context(context)?;
        return Ok(());
    }
    fs::create_dir_all(to).with_context(context)?;
    for entry in fs::read_dir(from).with_context(context)? {
        let entry = entry.with_context(context)?;
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        copy(&entry.path(), &to.join(&name))?;
    }
    Ok(())
}

/// An object a diff changes: the kernel or one of its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether it is the kernel.
    pub kernel: bool,
    /// `vmlinux`, or the module's name (its package name with `-` as `_`).
    pub name: String,
    /// Its package in the guest workspace.
    pub package: String,
}

/// The object `path` (relative to the tree `tree/guest-kernel`) belongs to: `src/**` is the
/// kernel, `modules/<dir>/**` that module.
///
/// # Errors
///
/// For any other file (klp-guest, manifests, ...): a live patch can only change the kernel's
/// and its modules' code.
pub fn object_of(tree: &Path, path: &str) -> Result<Target> {
    let guest = tree.join(GUEST_DIR);
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("src"), Some(_), _) => Ok(Target {
            kernel: true,
            name: klp_build::VMLINUX.to_string(),
            package: guest_build::package_name(&guest.join("Cargo.toml"))?,
        }),
        (Some("modules"), Some(dir), Some(_)) => {
            let manifest = guest.join("modules").join(dir).join("Cargo.toml");
            if !manifest.is_file() {
                bail!("{path}: modules/{dir} is not one of the kernel's modules");
            }
            let package = guest_build::package_name(&manifest)?;
            Ok(Target {
                kernel: false,
                name: package.replace('-', "_"),
                package,
            })
        }
        _ => bail!(
            "{path}: not the kernel's or a module's source (a live patch changes src/ and \
             modules/<module>/ only)"
        ),
    }
}

/// The file `path` (relative to the kernel's tree) of the copy, if it exists.
pub fn read_source(tree: &Path, path: &str) -> Option<String> {
    fs::read_to_string(tree.join(GUEST_DIR).join(path)).ok()
}

/// `git apply` of `diff` to the copy in `tree`, whose paths have `strip` leading components
/// before the kernel tree's own (`-p`); with `check`, only whether it applies. Git never looks
/// for a repository above `tree`'s parent: it patches plain files, wherever the work directory is.
///
/// # Errors
///
/// When git cannot run or the diff does not apply (with git's message).
pub fn git_apply(tree: &Path, diff: &Path, strip: usize, check: bool) -> Result<()> {
    let ceiling = tree.parent().unwrap_or(tree);
    let mut git = Command::new("git");
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
        git.env_remove(var);
    }
    git.env("GIT_CEILING_DIRECTORIES", ceiling)
        .current_dir(tree)
        .arg("apply")
        .arg(format!("-p{strip}"))
        .arg(format!("--directory={GUEST_DIR}"))
        .arg("--whitespace=nowarn");
    if check {
        git.arg("--check");
    }
    let out = git
        .arg(diff)
        .output()
        .context("running git (klp build applies the diff with `git apply`)")?;
    if !out.status.success() {
        bail!(
            "{} does not apply to the kernel's source: {}",
            diff.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Builds `target` of `tree` into `target_dir` as build.rs builds the embedded guests
/// (`which`: "original" or "patched", for messages) and returns its wasm. Cargo's output is
/// shown only when the build fails.
///
/// # Errors
///
/// When cargo cannot run, the build fails, or its output is missing.
pub fn build(
    tree: &Path,
    target_dir: &Path,
    rustflags: &str,
    target: &Target,
    which: &str,
) -> Result<Vec<u8>> {
    let out = guest_build::cargo_rustc(tree, target_dir, rustflags, &target.package, target.kernel)
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("building the {which} {} failed", target.package);
    }
    let wasm = guest_build::output(target_dir, &target.package);
    fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_paths_may_be_relative_to_the_repository_or_the_tree() {
        let source = Source {
            dir: PathBuf::from("/repo/guest-kernel"),
        };
        assert_eq!(
            source.relative("guest-kernel/src/sched.rs").unwrap(),
            ("src/sched.rs".to_string(), true)
        );
        assert_eq!(
            source.relative("src/sched.rs").unwrap(),
            ("src/sched.rs".to_string(), false)
        );
        assert!(source.relative("../etc/passwd").is_err());
        assert!(source.relative("/etc/passwd").is_err());
    }

    #[test]
    fn only_the_kernel_and_its_modules_are_objects() {
        let tree = Path::new(klp_artifacts::SOURCE_ROOT);
        let kernel = object_of(tree, "src/utsname.rs").unwrap();
        assert_eq!((kernel.name.as_str(), kernel.kernel), ("vmlinux", true));
        let module = object_of(tree, "modules/test_klp_mod_target/src/lib.rs").unwrap();
        assert_eq!(module.name, "test_klp_mod_target");
        for outside in [
            "klp-guest/src/lib.rs",
            "Cargo.toml",
            "abi/src/lib.rs",
            "modules/nonexistent/src/lib.rs",
        ] {
            let err = object_of(tree, outside).unwrap_err().to_string();
            assert!(err.contains(outside), "{err}");
        }
    }
}
