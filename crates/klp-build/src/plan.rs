//! What the patch does to one object, as create-diff-object decides it: the changed functions
//! it replaces, the new ones it adds, and what it refuses (changed data, notrace functions) or
//! reports (inlined functions, functions that run at boot only, callbacks).

use std::collections::{BTreeSet, HashSet};

use klp_passes::kallsyms::symbol_name;

use crate::callgraph::{self, KERNEL_BOOT, MODULE_INIT};
use crate::compare::compare;
use crate::klpsym::KlpSyms;
use crate::object::Obj;
use crate::{BuildError, Object, ObjectReport, Options, VMLINUX};

/// The names of the callbacks a changed source may define (kpatch's `KLP_*_CALLBACK`s): new
/// exported functions of these names become the object's `klp_callbacks`, in this order.
pub(crate) const CALLBACKS: [&str; 4] = [
    "klp_pre_patch_callback",
    "klp_post_patch_callback",
    "klp_pre_unpatch_callback",
    "klp_post_unpatch_callback",
];

/// One object's two builds and what the patch does to it.
pub(crate) struct ObjectPlan<'a> {
    /// `vmlinux` or the module's name.
    pub name: &'a str,
    pub orig: Obj<'a>,
    pub patched: Obj<'a>,
    /// The original build's kallsyms, for `.klp.sym` names.
    pub syms: KlpSyms,
    /// Functions of `patched` the module carries: replacements, then new functions.
    pub include: Vec<u32>,
    /// Replacements: function of `patched`, and the (name, sympos) it replaces.
    pub replaces: Vec<(u32, (String, u32))>,
    /// Callback functions of `patched`, by [`CALLBACKS`] order.
    pub callbacks: [Option<u32>; 4],
    /// What the report says about this object.
    pub report: ObjectReport,
}

impl<'a> ObjectPlan<'a> {
    /// Compares the two builds of `object` and decides.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when a build cannot be read.
    pub(crate) fn new(object: &Object<'a>, options: &Options) -> Result<Self, BuildError> {
        let err = |message: String| BuildError {
            object: object.name.to_string(),
            message,
        };
        let orig = Obj::parse(object.orig).map_err(|e| err(format!("original build: {e}")))?;
        let patched = Obj::parse(object.patched).map_err(|e| err(format!("patched build: {e}")))?;
        let syms = KlpSyms::new(object.name, &orig).map_err(err)?;
        let mut plan = ObjectPlan {
            name: object.name,
            orig,
            patched,
            syms,
            include: Vec::new(),
            replaces: Vec::new(),
            callbacks: [None; 4],
            report: ObjectReport {
                name: object.name.to_string(),
                ..ObjectReport::default()
            },
        };
        plan.decide(options);
        Ok(plan)
    }

    fn decide(&mut self, options: &Options) {
        let cmp = compare(&self.orig, &self.patched);
        let short = |raw: &str| symbol_name(raw).unwrap_or_else(|| raw.to_string());
        let entry = if self.name == VMLINUX {
            KERNEL_BOOT
        } else {
            MODULE_INIT
        };
        let entry_only = callgraph::entry_only(&self.orig, entry);
        let report = &mut self.report;
        // Builds made at different paths differ in the hash of every Rust symbol of the crate:
        // few of the original's hashed names are found again.
        let hashed = |name: &&&str| name.starts_with("_ZN") && name.contains("17h");
        let before: Vec<&str> = self.orig.funcs.iter().map(|f| f.name.as_str()).collect();
        let after: HashSet<&str> = self.patched.funcs.iter().map(|f| f.name.as_str()).collect();
        let total = before.iter().filter(hashed).count();
        let found = before
            .iter()
            .filter(hashed)
            .filter(|n| after.contains(*n))
            .count();
        if found * 2 < total {
            report.refused.push(format!(
                "only {found} of the original build's {total} Rust symbols are in the patched \
                 build: build both from the same path (a crate's symbol hashes depend on it)"
            ));
            return;
        }
        for d in &cmp.changed_data {
            let name = short(&d.name);
            if options.handled.iter().any(|h| *h == name || *h == d.name) {
                report.handled.push(name);
            } else {
                report.refused.push(format!(
                    "data `{name}` changed ({}): a live patch cannot change data; handle it \
                     with a shadow variable or a callback and pass --handled {name}",
                    d.what
                ));
            }
        }
        for &f in &cmp.changed {
            let func = self.patched.func(f).expect("a defined function");
            let name = short(&func.name);
            let old = self
                .orig
                .func_named(&func.name)
                .expect("a changed function");
            if self.orig.notrace.contains(&func.name) {
                report.refused.push(format!(
                    "function `{name}` changed, but it is notrace: it cannot be patched"
                ));
                continue;
            }
            let (before, after) = (
                self.orig.types.get(old.ty as usize),
                self.patched.types.get(func.ty as usize),
            );
            if before != after {
                report.refused.push(format!(
                    "function `{name}` changed its type: a replacement must keep the original's \
                     signature (its callers are not patched)"
                ));
                continue;
            }
            if entry_only.contains(&old.index) {
                report.no_effect.push(name);
                continue;
            }
            match self.syms.func(old) {
                Some(sym) => {
                    report.changed.push(name);
                    self.include.push(f);
                    self.replaces.push((f, sym));
                }
                None => report.refused.push(format!(
                    "function `{name}` changed, but the running object has no kallsyms entry \
                     for it"
                )),
            }
        }
        for &f in &cmp.new {
            let func = self.patched.func(f).expect("a defined function");
            self.include.push(f);
            match CALLBACKS.iter().position(|c| *c == func.name) {
                Some(i) => {
                    self.callbacks[i] = Some(f);
                    report.callbacks.push(func.name.clone());
                }
                None => report.new.push(short(&func.name)),
            }
        }
        // Touched functions with no function of their own in the build were inlined: the
        // changed functions the diff does not touch are their callers.
        let present: HashSet<String> = self.patched.funcs.iter().map(|f| short(&f.name)).collect();
        let touched: BTreeSet<&String> = options.touched.iter().collect();
        let untouched_changed: Vec<String> = (report.changed.iter())
            .chain(&report.no_effect)
            .filter(|n| !touched.contains(n))
            .cloned()
            .collect();
        if !untouched_changed.is_empty() {
            for t in touched.iter().filter(|t| !present.contains(**t)) {
                report
                    .inlined
                    .push(((*t).clone(), untouched_changed.clone()));
            }
        }
    }
}
