//! `klp build`: a live patch module from a source diff (kpatch-build's analogue), or from two
//! prebuilt objects. The sources are copied, built before and after the diff as build.rs
//! builds the embedded guests, and compared by `klp_build` (docs/livepatch.md, "Generating a
//! patch from a diff").

mod patch;
mod tree;
mod work;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use tree::{Source, Target};
use work::Work;

/// `klp build`'s arguments.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// A unified diff (git's) against the kernel's source tree: paths relative to the
    /// repository (`a/guest-kernel/src/…`) or to the tree (`a/src/…`).
    #[arg(long, value_name = "FIX.patch", required_unless_present = "orig", conflicts_with_all = ["orig", "patched", "object"])]
    diff: Option<PathBuf>,
    /// The kernel's source tree the diff applies to (its Cargo.toml, src/, modules/, with
    /// abi/, Cargo.toml, rust-toolchain.toml and patches/ beside it). Default: the tree this
    /// klp was built from.
    #[arg(long, value_name = "DIR", requires = "diff")]
    kernel_src: Option<PathBuf>,
    /// The object as built from the running source (a linked wasm with relocations).
    #[arg(long, value_name = "A.wasm", requires = "patched")]
    orig: Option<PathBuf>,
    /// The object as built from the changed source.
    #[arg(long, value_name = "B.wasm", requires = "orig")]
    patched: Option<PathBuf>,
    /// The object `--orig` and `--patched` are: `vmlinux` or a module's name.
    #[arg(long, value_name = "NAME", requires = "orig", default_value = klp_build::VMLINUX)]
    object: String,
    /// Where to write the live patch module (its file name gives the module's name).
    #[arg(short, long, value_name = "FILE", required_unless_present = "dry_run")]
    output: Option<PathBuf>,
    /// The patch's name, which is the module's: its file's stem (`-` as `_`). Without `-o`,
    /// `livepatch_` and the diff's (or `--patched`'s) file stem.
    #[arg(long)]
    name: Option<String>,
    /// Atomic replace: the patch replaces every patch enabled before it.
    #[arg(long)]
    replace: bool,
    /// Print the report only; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// A changed data symbol the patch handles itself (shadow variables, a callback):
    /// reported instead of refused (repeatable).
    #[arg(long = "handled", value_name = "SYM")]
    handled: Vec<String>,
    /// Build in DIR (created, must be empty) and keep it: the copied tree, cargo's target
    /// directory, and each object's two builds in orig/ and patched/.
    #[arg(long, value_name = "DIR", requires = "diff")]
    keep_work: Option<PathBuf>,
}

/// What `klp build` needs to be given (clap checks it; this is the message should it not).
const NO_INPUT: &str = "give --diff FIX.patch, or --orig A.wasm and --patched B.wasm";

/// An object's two builds.
struct Built {
    /// `vmlinux` or the module's name.
    name: String,
    /// Before the change.
    orig: Vec<u8>,
    /// After it.
    patched: Vec<u8>,
}

/// A file's stem with `-` and anything else not in a module name as `_`, for a default name.
fn stem_as_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    stem.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Runs `klp build` and returns its exit status: 0 with a module written (or reported with
/// `--dry-run`), 1 when the build refuses.
///
/// # Errors
///
/// Bad input: unreadable files, a diff that does not apply or touches a file outside the
/// kernel and its modules, a failed compile, an object that is not a linked wasm.
pub fn run(args: BuildArgs) -> Result<i32> {
    let named_after = match (&args.diff, &args.patched) {
        (Some(path), _) | (None, Some(path)) => path,
        (None, None) => bail!(NO_INPUT),
    };
    // A module (and its patch) is named after its file, as insmod names it.
    let from_output =
        (args.output.as_deref()).map(|path| klp_core::loader::module_name(&path.to_string_lossy()));
    let name = match (&args.name, from_output) {
        (Some(name), Some(file)) if *name != file => bail!(
            "--name {name}: the module is named after its file ({file}); write it to \
             DIR/{name}.wasm"
        ),
        (Some(name), _) => name.clone(),
        (None, Some(file)) => file,
        (None, None) => format!("livepatch_{}", stem_as_name(named_after)),
    };
    if !klp_core::loader::valid_module_name(&name) {
        bail!("--name {name:?}: a patch's name is 1 to 55 letters, digits or `_`");
    }
    let (objects, touched) = match (&args.diff, &args.orig, &args.patched) {
        (Some(diff), _, _) => {
            let default = PathBuf::from(klp_artifacts::SOURCE_ROOT).join("guest-kernel");
            let source = Source::open(args.kernel_src.as_deref().unwrap_or(&default))?;
            from_diff(&source, diff, args.keep_work.as_deref())?
        }
        (None, Some(orig), Some(patched)) => {
            let built = Built {
                name: args.object.clone(),
                orig: crate::read_input(orig)?,
                patched: crate::read_input(patched)?,
            };
            (vec![built], Vec::new())
        }
        _ => bail!(NO_INPUT),
    };
    let options = klp_build::Options {
        name,
        replace: args.replace,
        handled: args.handled.clone(),
        touched,
    };
    let inputs: Vec<klp_build::Object<'_>> = objects
        .iter()
        .map(|o| klp_build::Object {
            name: &o.name,
            orig: &o.orig,
            patched: &o.patched,
        })
        .collect();
    let build = klp_build::build(&inputs, &options)?;
    print!("{}", build.report);
    let Some(wasm) = build.wasm else {
        let why = build
            .report
            .refusal()
            .unwrap_or_else(|| "no module generated".into());
        eprintln!("klp build: {why}");
        return Ok(1);
    };
    if let (false, Some(output)) = (args.dry_run, &args.output) {
        std::fs::write(output, &wasm).with_context(|| format!("writing {}", output.display()))?;
        println!(
            "klp build: wrote {} ({} bytes)",
            output.display(),
            wasm.len()
        );
    }
    Ok(0)
}

/// Copies the sources into a work directory, builds every object the diff touches before and
/// after applying it, and returns the builds with the functions the diff's lines are in.
fn from_diff(
    source: &Source,
    diff: &Path,
    keep_work: Option<&Path>,
) -> Result<(Vec<Built>, Vec<String>)> {
    let diff = std::path::absolute(diff).with_context(|| format!("--diff {}", diff.display()))?;
    let text = String::from_utf8(crate::read_input(&diff)?)
        .with_context(|| format!("reading {}: not UTF-8", diff.display()))?;
    let files = patch::parse(&text).with_context(|| format!("{}", diff.display()))?;

    // Every path relative to the kernel's tree, all written one way (`-p` of git apply).
    let mut from_repository = None;
    let mut relative = Vec::new();
    for file in &files {
        let mut ends = Vec::new();
        for path in file.paths() {
            let (rel, repo) = source.relative(path)?;
            if from_repository.replace(repo).is_some_and(|r| r != repo) {
                bail!(
                    "{}: paths relative to both the repository and the kernel's tree",
                    diff.display()
                );
            }
            ends.push(rel);
        }
        relative.push(ends);
    }
    let strip = if from_repository == Some(true) { 2 } else { 1 };

    let work = Work::new(keep_work)?;
    let tree_dir = work.tree();
    source.copy_to(&tree_dir)?;
    let mut targets: Vec<Target> = Vec::new();
    for path in relative.iter().flatten() {
        let target = tree::object_of(&tree_dir, path)?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets.sort_by_key(|t| (!t.kernel, t.name.clone()));
    tree::git_apply(&tree_dir, &diff, strip, true)?;

    let rustflags = klp_artifacts::guest_build::remap_flags(&tree_dir)
        .with_context(|| format!("listing {}", tree_dir.display()))?;
    let mut touched = Vec::new();
    for (file, paths) in files.iter().zip(&relative) {
        if let Some(text) = paths.first().and_then(|p| tree::read_source(&tree_dir, p)) {
            patch::functions_at(&text, &file.removed, &mut touched);
        }
    }
    let mut orig = Vec::new();
    for target in &targets {
        let wasm = tree::build(&tree_dir, &work.target(), &rustflags, target, "original")?;
        work.keep_build("orig", &target.name, &wasm)?;
        orig.push(wasm);
    }

    tree::git_apply(&tree_dir, &diff, strip, false)?;
    for (file, paths) in files.iter().zip(&relative) {
        if let Some(text) = paths.last().and_then(|p| tree::read_source(&tree_dir, p)) {
            patch::functions_at(&text, &file.added, &mut touched);
        }
    }
    let mut built = Vec::new();
    for (target, orig) in targets.iter().zip(orig) {
        let patched = tree::build(&tree_dir, &work.target(), &rustflags, target, "patched")?;
        work.keep_build("patched", &target.name, &patched)?;
        built.push(Built {
            name: target.name.clone(),
            orig,
            patched,
        });
    }
    Ok((built, touched))
}
