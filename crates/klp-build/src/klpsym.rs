//! Names for the symbols a patch leaves in the running object: `.klp.sym.<obj>.<name>,<pos>`
//! with kallsyms' short name and position, as the loader resolves them.

use std::collections::HashMap;

use klp_passes::kallsyms::{self, Kallsyms, SymKind, Symbol};
use klp_passes::object::ObjectFile;

use crate::VMLINUX;
use crate::object::{Data, Func, Obj};

/// The kallsyms of the original build of one object, by function index and by data address.
pub(crate) struct KlpSyms {
    object: String,
    funcs: HashMap<u32, Vec<(String, u32)>>,
    data: HashMap<u32, Vec<(String, u32)>>,
    counts: HashMap<String, u32>,
}

impl KlpSyms {
    /// The kallsyms of `orig`, the build of object `object` the running kernel has.
    ///
    /// # Errors
    ///
    /// A message when kallsyms cannot read the build.
    pub(crate) fn new(object: &str, orig: &Obj<'_>) -> Result<Self, String> {
        let syms: Vec<Symbol> = if object == VMLINUX {
            Kallsyms::from_kernel(orig.bytes)
                .map_err(|e| e.to_string())?
                .iter()
                .cloned()
                .collect()
        } else {
            ObjectFile::parse(orig.bytes)
                .map_err(|e| e.to_string())?
                .symbols(0, 0)
                .into_iter()
                .map(|mut s| {
                    // Module symbols count functions from the first defined one, and data
                    // from the image's start.
                    match s.kind {
                        SymKind::Func => {
                            s.func_index = s.func_index.map(|i| i + orig.num_imported_funcs);
                        }
                        _ => s.addr = s.addr.wrapping_add(orig.image_start),
                    }
                    s
                })
                .collect()
        };
        let mut out = Self {
            object: object.to_string(),
            funcs: HashMap::new(),
            data: HashMap::new(),
            counts: HashMap::new(),
        };
        for s in syms {
            *out.counts.entry(s.name.clone()).or_default() += 1;
            let entry = (s.name, s.sympos);
            match (s.kind, s.func_index) {
                (SymKind::Func, Some(f)) => out.funcs.entry(f).or_default().push(entry),
                (SymKind::Func, None) => {}
                _ => out.data.entry(s.addr).or_default().push(entry),
            }
        }
        Ok(out)
    }

    /// `(short name, sympos)` of a function, sympos 0 when the name is unique.
    pub(crate) fn func(&self, f: &Func) -> Option<(String, u32)> {
        self.pick(self.funcs.get(&f.index)?, &f.name)
    }

    /// `(short name, sympos)` of a data symbol.
    pub(crate) fn data(&self, d: &Data) -> Option<(String, u32)> {
        self.pick(self.data.get(&d.addr)?, &d.name)
    }

    fn pick(&self, entries: &[(String, u32)], raw: &str) -> Option<(String, u32)> {
        let short = kallsyms::symbol_name(raw)?;
        let (name, pos) = entries.iter().find(|(n, _)| *n == short)?;
        let unique = self.counts.get(name).copied() == Some(1);
        Some((name.clone(), if unique { 0 } else { *pos }))
    }

    /// The `.klp.sym` name of `(name, sympos)` in this object.
    pub(crate) fn klp_name(&self, (name, pos): &(String, u32)) -> String {
        format!(".klp.sym.{}.{name},{pos}", self.object)
    }
}
