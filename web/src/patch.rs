//! `klp build --orig --patched` in the page: a live patch module from two builds of an object.

use wasm_bindgen::prelude::*;

/// What [`build_patch`] gave: the report, and the module or why there is none.
#[wasm_bindgen]
pub struct PatchBuild {
    report: String,
    error: Option<String>,
    wasm: Option<Vec<u8>>,
}

#[wasm_bindgen]
impl PatchBuild {
    /// The report, line for line what `klp build` prints (empty when an object could not be
    /// read).
    #[wasm_bindgen(getter)]
    pub fn report(&self) -> String {
        self.report.clone()
    }

    /// Why no module was generated: a bad name, an object that is not a linked wasm with
    /// relocations, a refusal, or no functional change. `undefined` when there is a module.
    #[wasm_bindgen(getter)]
    pub fn error(&self) -> Option<String> {
        self.error.clone()
    }

    /// The live patch module (a `Uint8Array`), `undefined` when [`PatchBuild::error`] says why
    /// not.
    #[wasm_bindgen(getter)]
    pub fn wasm(&self) -> Option<Vec<u8>> {
        self.wasm.clone()
    }
}

/// Compares the original and the patched build of `object` (`vmlinux` or a module's name) and
/// generates the live patch module `name` (atomic replace with `replace`), as `klp build --orig
/// ORIG --patched PATCHED --object OBJECT --name NAME` does; `handled` names the changed data
/// the patch handles itself (`--handled`), separated by spaces or commas. Runs no kernel code.
#[wasm_bindgen]
pub fn build_patch(
    object: &str,
    name: &str,
    replace: bool,
    handled: &str,
    orig: &[u8],
    patched: &[u8],
) -> PatchBuild {
    let failed = |error: String| PatchBuild {
        report: String::new(),
        error: Some(error),
        wasm: None,
    };
    let is_name = klp_core::loader::valid_module_name;
    if !is_name(name) {
        return failed(format!(
            "patch name {name:?}: a patch's name is 1 to 55 letters, digits or `_`"
        ));
    }
    if !is_name(object) {
        return failed(format!(
            "object {object:?}: `vmlinux` or a module's name (1 to 55 letters, digits or `_`)"
        ));
    }
    let objects = [klp_build::Object {
        name: object,
        orig,
        patched,
    }];
    let options = klp_build::Options {
        name: name.to_string(),
        replace,
        handled: handled
            .split([' ', ',', '\t', '\n'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        touched: Vec::new(),
    };
    match klp_build::build(&objects, &options) {
        Ok(build) => PatchBuild {
            error: match build.wasm {
                Some(_) => None,
                None => Some(
                    build
                        .report
                        .refusal()
                        .unwrap_or_else(|| "no module generated".into()),
                ),
            },
            report: build.report.to_string(),
            wasm: build.wasm,
        },
        Err(err) => failed(err.to_string()),
    }
}
