//! The report of a build: changed, new, inlined and refused functions, per object.

use std::fmt;

/// What was decided for one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectReport {
    /// `vmlinux` or the module's name.
    pub name: String,
    /// Functions replaced (short names).
    pub changed: Vec<String>,
    /// Functions the patch adds.
    pub new: Vec<String>,
    /// Touched functions that were inlined, with the callers that changed with them.
    pub inlined: Vec<(String, Vec<String>)>,
    /// Changed functions that run at boot only: patching them has no effect.
    pub no_effect: Vec<String>,
    /// Why the object cannot be patched as changed (changed data, notrace functions).
    pub refused: Vec<String>,
    /// Changed data the user marked as handled.
    pub handled: Vec<String>,
    /// Unchanged module functions without state the patch carries copies of.
    pub copied: Vec<String>,
    /// The `.klp.sym` relocations the module carries.
    pub klp_relocs: Vec<String>,
    /// The callbacks found in the changed source.
    pub callbacks: Vec<String>,
}

/// What a build decided, per object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The patch module's name.
    pub name: String,
    /// One entry per object.
    pub objects: Vec<ObjectReport>,
}

impl Report {
    /// Why no module was generated: something refused, or no functional change.
    pub fn refusal(&self) -> Option<String> {
        let refused: Vec<&str> = self
            .objects
            .iter()
            .flat_map(|o| o.refused.iter().map(String::as_str))
            .collect();
        if !refused.is_empty() {
            return Some(refused.join("; "));
        }
        if self.objects.iter().all(|o| o.changed.is_empty()) {
            let boot_only = self.objects.iter().any(|o| !o.no_effect.is_empty());
            return Some(if boot_only {
                "only functions that run at boot changed: no effect on a running kernel".into()
            } else {
                "no functional changes found".into()
            });
        }
        None
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.objects {
            let n = &o.name;
            for name in &o.changed {
                writeln!(f, "{n}: changed function: {name}")?;
            }
            for name in &o.new {
                writeln!(f, "{n}: new function: {name}")?;
            }
            for (name, callers) in &o.inlined {
                writeln!(
                    f,
                    "{n}: inlined function: {name} (its callers changed: {})",
                    callers.join(", ")
                )?;
            }
            for name in &o.no_effect {
                writeln!(f, "{n}: no effect: {name} runs at boot only")?;
            }
            for name in &o.handled {
                writeln!(f, "{n}: changed data, handled: {name}")?;
            }
            for name in &o.copied {
                writeln!(f, "{n}: copied function: {name} (no module state)")?;
            }
            for name in &o.callbacks {
                writeln!(f, "{n}: callback: {name}")?;
            }
            for name in &o.klp_relocs {
                writeln!(f, "{n}: klp relocation: {name}")?;
            }
            for why in &o.refused {
                writeln!(f, "{n}: refused: {why}")?;
            }
        }
        let changed: usize = self.objects.iter().map(|o| o.changed.len()).sum();
        let new: usize = self.objects.iter().map(|o| o.new.len()).sum();
        match self.refusal() {
            Some(why) => writeln!(f, "{}: no patch: {why}", self.name),
            None => writeln!(
                f,
                "{}: {changed} changed, {new} new function(s) in {} object(s)",
                self.name,
                self.objects.len()
            ),
        }
    }
}
