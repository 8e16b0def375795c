//! klp-build: create-diff-object for WebAssembly. Compares two builds of the kernel (or of a
//! module) function by function, bodies compared modulo relocation targets, and generates the
//! live patch module the loader accepts: the changed and new functions, their data, `klp_patch`
//! / `klp_object` / `klp_func` metadata, `.klp.sym` relocations for the symbols it leaves in
//! the running kernel, and `.modinfo livepatch=Y` (docs/livepatch.md, "Generating a patch from
//! a diff").

mod callgraph;
mod compare;
mod emit;
mod klpsym;
mod module;
mod object;
mod plan;
mod report;

pub use report::{ObjectReport, Report};

/// The kernel's object name, in `klp_object`s and `.klp.sym.<obj>.` names.
pub const VMLINUX: &str = "vmlinux";

/// Two builds of one object: the kernel or a module, before and after the source change.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// [`VMLINUX`], or the module's name (`test_klp_mod_target`).
    pub name: &'a str,
    /// The build of the running source: a linked wasm with `--emit-relocs`.
    pub orig: &'a [u8],
    /// The build of the changed source, linked the same way.
    pub patched: &'a [u8],
}

/// What to generate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The live patch module's name, for the report (a module, and its `klp_patch`, is named
    /// after its file).
    pub name: String,
    /// Atomic replace (`klp_patch.replace`).
    pub replace: bool,
    /// Data symbols (short names) whose change the patch handles itself, with shadow variables
    /// or a callback: reported, not refused.
    pub handled: Vec<String>,
    /// The functions the source diff touches (short names), to tell which were inlined.
    pub touched: Vec<String>,
}

/// The outcome: the report, and the module unless something was refused or nothing changed.
#[derive(Debug, Clone)]
pub struct Build {
    /// What was decided, per object.
    pub report: Report,
    /// The live patch module; `None` when [`Report::refusal`] says why not.
    pub wasm: Option<Vec<u8>>,
}

/// An object that cannot be read as a linked wasm with relocations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {message}")]
pub struct BuildError {
    /// The object's name.
    pub object: String,
    /// What is wrong with it.
    pub message: String,
}

/// Compares every object's two builds and generates the live patch.
///
/// # Errors
///
/// [`BuildError`] for an object that is not a linked wasm with a `linking` section and
/// relocations, or whose code the generator cannot carry into a module.
pub fn build(objects: &[Object<'_>], options: &Options) -> Result<Build, BuildError> {
    let mut plans = Vec::with_capacity(objects.len());
    for object in objects {
        plans.push(plan::ObjectPlan::new(object, options)?);
    }
    let mut report = Report {
        name: options.name.clone(),
        objects: plans.iter().map(|p| p.report.clone()).collect(),
    };
    if report.refusal().is_some() {
        return Ok(Build { report, wasm: None });
    }
    match emit::emit(&plans, options.replace) {
        Ok(emit::Emitted {
            wasm,
            klp_relocs,
            copied,
        }) => {
            for (o, copied) in report.objects.iter_mut().zip(copied) {
                o.copied = copied;
                let prefix = format!(".klp.sym.{}.", o.name);
                o.klp_relocs = klp_relocs
                    .iter()
                    .filter(|n| n.starts_with(&prefix))
                    .cloned()
                    .collect();
            }
            // The loader's own parser must accept what was generated.
            klp_passes::object::ObjectFile::parse(&wasm).map_err(|e| BuildError {
                object: options.name.clone(),
                message: format!("generated module is invalid: {e}"),
            })?;
            Ok(Build {
                report,
                wasm: Some(wasm),
            })
        }
        Err(why) => {
            report.objects[0].refused.push(why);
            Ok(Build { report, wasm: None })
        }
    }
}

#[cfg(test)]
mod tests;
