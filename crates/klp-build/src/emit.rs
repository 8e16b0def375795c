//! Carrying the decided functions into the module: each body copied with its relocations
//! re-aimed (included functions and data stay in the module, everything else becomes an import
//! or a `.klp.sym` data symbol), then the klp metadata and the entry points.

use std::collections::{HashMap, HashSet};

use klp_abi::{klp_callbacks, klp_func, klp_object, klp_patch};
use klp_passes::kallsyms::symbol_name;
use klp_passes::object::linking::SymTarget;
use wasmparser::{FuncType, RelocationType, SymbolFlags, ValType};

use crate::VMLINUX;
use crate::compare::is_anonymous;
use crate::module::{Module, OutFunc, OutReloc, Target};
use crate::object::Reloc;
use crate::plan::ObjectPlan;

/// The kernel function a live patch module's init calls.
const KLP_ENABLE_PATCH: &str = "klp_enable_patch";

/// Builds the module of `plans`.
struct Emitter<'p, 'a> {
    plans: &'p [ObjectPlan<'a>],
    module: Module,
    /// (object, patched function index) → defined function index.
    funcs: HashMap<(usize, u32), u32>,
    /// (object, patched data symbol) → data symbol index.
    data: HashMap<(usize, u32), u32>,
    /// The functions to emit, in order: (object, patched function index).
    queue: Vec<(usize, u32)>,
    /// Included data whose relocations are still to be re-aimed: (object, symbol, index).
    data_queue: Vec<(usize, u32, u32)>,
    /// Whether a module function and every function it calls use no named module data.
    stateless: HashMap<(usize, u32), bool>,
    /// Unchanged module functions copied into the patch, per object (short names).
    copied: Vec<Vec<String>>,
}

/// The generated module and the `.klp.sym` names it leaves for the loader.
pub(crate) struct Emitted {
    /// The module's bytes.
    pub wasm: Vec<u8>,
    /// Its `.klp.sym` imports and undefined data symbols.
    pub klp_relocs: Vec<String>,
    /// Unchanged module functions without state copied into the patch, per object.
    pub copied: Vec<Vec<String>>,
}

/// Generates the live patch module for `plans` (its name is its file's, as for any module).
///
/// # Errors
///
/// A message naming what cannot be carried into a module (a call of the kernel's host
/// imports, a global other than the stack pointer, an unknown relocation type, a symbol the
/// running object's kallsyms lacks).
pub(crate) fn emit(plans: &[ObjectPlan<'_>], replace: bool) -> Result<Emitted, String> {
    let mut e = Emitter {
        plans,
        module: Module::default(),
        funcs: HashMap::new(),
        data: HashMap::new(),
        queue: Vec::new(),
        data_queue: Vec::new(),
        stateless: HashMap::new(),
        copied: vec![Vec::new(); plans.len()],
    };
    for (o, plan) in plans.iter().enumerate() {
        for &f in &plan.include {
            e.enqueue(o, f);
        }
    }
    // Functions are emitted in queue order; copying a module's helper appends to the queue,
    // and included data (whose relocations may include more) to the data queue: both are
    // drained without recursion, however long a chain of references is.
    let (mut done, mut data_done) = (0, 0);
    loop {
        if let Some(&(o, sym, i)) = e.data_queue.get(data_done) {
            data_done += 1;
            e.relocate_data(o, sym, i)?;
            continue;
        }
        let Some(&(o, f)) = e.queue.get(done) else {
            break;
        };
        done += 1;
        let plan = &plans[o];
        let func = plan.patched.func(f).expect("an included function");
        let body = plan.patched.bytes[func.body.clone()].to_vec();
        let mut relocs = Vec::new();
        for r in &func.relocs {
            relocs.push(e.reloc(o, r)?);
        }
        if let Some(r) = func.relocs.iter().find(|r| r.end() > body.len()) {
            return Err(format!(
                "relocation at {} past the end of {}",
                r.offset, func.name
            ));
        }
        let ty = e.module.ty(&plan.patched.types[func.ty as usize]);
        e.module.funcs.push(OutFunc {
            name: func.name.clone(),
            ty,
            body,
            relocs,
            exported: false,
        });
    }
    let patch = e.metadata(replace)?;
    e.entry_points(patch);
    e.module.modinfo = vec!["livepatch=Y".into()];
    let klp_relocs = (e.module.imports.iter().map(|(n, _)| n))
        .chain(&e.module.undef_data)
        .filter(|n| n.starts_with(".klp.sym."))
        .cloned()
        .collect();
    Ok(Emitted {
        wasm: e.module.encode(),
        klp_relocs,
        copied: e.copied,
    })
}

impl Emitter<'_, '_> {
    /// Queues function `f` of object `o`; its defined function index.
    fn enqueue(&mut self, o: usize, f: u32) -> u32 {
        *self.funcs.entry((o, f)).or_insert_with(|| {
            self.queue.push((o, f));
            self.queue.len() as u32 - 1
        })
    }

    /// Whether function `f` of module object `o` and all it calls touch no named module data
    /// and no global but the stack pointer: code (a library helper) the patch can carry a
    /// copy of, so that it loads before the module as well as after.
    fn is_stateless(&mut self, o: usize, f: u32) -> bool {
        if let Some(&known) = self.stateless.get(&(o, f)) {
            return known;
        }
        let obj = &self.plans[o].patched;
        // Every function reached by calls and function pointers, walked without recursion.
        let mut seen = HashSet::from([f]);
        let mut work = vec![f];
        let mut ok = true;
        while let Some(g) = work.pop() {
            // An import is the kernel's, resolved by name.
            let Some(func) = obj.func(g) else { continue };
            for r in &func.relocs {
                let target = obj
                    .symbols
                    .get(r.index as usize)
                    .map(|s| (s.target, s.name));
                match (r.ty, target) {
                    (RelocationType::TypeIndexLeb | RelocationType::TableNumberLeb, _) => {}
                    (RelocationType::GlobalIndexLeb, Some((_, name))) => {
                        ok &= name == Some("__stack_pointer");
                    }
                    (_, Some((SymTarget::Func(h), _))) => {
                        if seen.insert(h) {
                            work.push(h);
                        }
                    }
                    (_, Some((SymTarget::Data(Some(_)), Some(name)))) => ok &= is_anonymous(name),
                    (_, Some((SymTarget::Data(None), _))) => {}
                    _ => ok = false,
                }
            }
        }
        self.stateless.insert((o, f), ok);
        ok
    }

    /// Re-aims relocation `r` of object `o`'s patched build.
    fn reloc(&mut self, o: usize, r: &Reloc) -> Result<OutReloc, String> {
        use RelocationType as R;
        let plan = &self.plans[o];
        let obj = &plan.patched;
        let target = match r.ty {
            R::TypeIndexLeb => {
                let ty = obj
                    .types
                    .get(r.index as usize)
                    .ok_or("type index out of range")?;
                Target::Type(self.module.ty(ty))
            }
            R::TableNumberLeb => Target::Table,
            R::GlobalIndexLeb => match obj.symbol_name(r.index).as_deref() {
                Some("__stack_pointer") => Target::StackPointer,
                other => {
                    return Err(format!(
                        "the changed code uses global `{}`; only __stack_pointer is shared \
                         with modules",
                        other.unwrap_or("?")
                    ));
                }
            },
            R::FunctionIndexLeb | R::TableIndexSleb | R::TableIndexI32 => self.func_target(o, r)?,
            R::MemoryAddrLeb | R::MemoryAddrSleb | R::MemoryAddrI32 => self.data_target(o, r)?,
            other => return Err(format!("unsupported relocation type {other:?}")),
        };
        Ok(OutReloc {
            offset: r.offset,
            ty: r.ty,
            target,
            addend: r.addend,
        })
    }

    fn func_target(&mut self, o: usize, r: &Reloc) -> Result<Target, String> {
        let plan = &self.plans[o];
        let obj = &plan.patched;
        let Some(SymTarget::Func(f)) = obj.symbols.get(r.index as usize).map(|s| s.target) else {
            return Err(format!("relocation {:?} against a non-function", r.ty));
        };
        if let Some(&i) = self.funcs.get(&(o, f)) {
            return Ok(Target::Func(i));
        }
        let ty = sig(obj, f)?;
        if let Some(func) = obj.func(f) {
            if plan.name != VMLINUX && self.is_stateless(o, f) {
                if !self.funcs.contains_key(&(o, f)) {
                    let short = symbol_name(&func.name).unwrap_or_else(|| func.name.clone());
                    self.copied[o].push(short);
                }
                return Ok(Target::Func(self.enqueue(o, f)));
            }
            let old = plan
                .orig
                .func_named(&func.name)
                .map(|old| plan.syms.func(old))
                .ok_or_else(|| format!("`{}` is in neither build", func.name))?
                .ok_or_else(|| format!("`{}` has no kallsyms entry", func.name))?;
            let name = plan.syms.klp_name(&old);
            return Ok(Target::Import(self.module.import(&name, &ty)));
        }
        let name = obj.symbol_name(r.index).unwrap_or_default();
        if plan.name == VMLINUX {
            let name = symbol_name(&name).unwrap_or(name);
            return Err(format!(
                "the changed code calls the kernel's host import `{name}`, which a module \
                 cannot import"
            ));
        }
        Ok(Target::Import(self.module.import(&name, &ty)))
    }

    fn data_target(&mut self, o: usize, r: &Reloc) -> Result<Target, String> {
        let plan = &self.plans[o];
        let obj = &plan.patched;
        let sym = obj.symbols.get(r.index as usize).ok_or("bad symbol")?;
        let name = sym.name.unwrap_or_default();
        match sym.target {
            SymTarget::Data(Some(_)) if sym.flags.contains(SymbolFlags::ABSOLUTE) => {
                // A linker-defined address (`__heap_base`): the running build's value.
                let value = plan
                    .orig
                    .data_named(name)
                    .map(|(old, _)| &plan.orig.symbols[old as usize])
                    .filter(|s| s.flags.contains(SymbolFlags::ABSOLUTE))
                    .and_then(|s| match s.target {
                        SymTarget::Data(Some((_, offset, _))) => Some(offset),
                        _ => None,
                    })
                    .ok_or_else(|| format!("`{name}` is not in the original build"))?;
                Ok(Target::Absolute(value))
            }
            SymTarget::Data(Some(_)) => {
                let old = (!is_anonymous(name))
                    .then(|| plan.orig.data_named(name).map(|(_, d)| d))
                    .flatten();
                match old {
                    Some(old) => {
                        let klp = plan
                            .syms
                            .data(old)
                            .ok_or_else(|| format!("`{name}` has no kallsyms entry"))?;
                        let klp = plan.syms.klp_name(&klp);
                        Ok(Target::UndefData(self.module.undef_data(&klp)))
                    }
                    None => Ok(Target::Data(self.include_data(o, r.index)?)),
                }
            }
            SymTarget::Data(None) if plan.name != VMLINUX => {
                Ok(Target::UndefData(self.module.undef_data(name)))
            }
            _ => Err(format!("memory relocation against `{name}`, not data")),
        }
    }

    /// Copies data symbol `sym` of object `o`'s patched build into the module.
    fn include_data(&mut self, o: usize, sym: u32) -> Result<u32, String> {
        if let Some(&i) = self.data.get(&(o, sym)) {
            return Ok(i);
        }
        let obj = &self.plans[o].patched;
        let d = obj.data.get(&sym).ok_or("undefined data")?;
        let bytes = obj.data_bytes(d);
        if let Some(r) = d.relocs.iter().find(|r| r.end() > bytes.len()) {
            return Err(format!(
                "relocation at {} past the end of {}",
                r.offset, d.name
            ));
        }
        let i = self
            .module
            .add_data(d.name.clone(), &bytes, 1 << d.p2align.min(3));
        self.data.insert((o, sym), i);
        self.data_queue.push((o, sym, i));
        Ok(i)
    }

    /// Re-aims the relocations of included data symbol `sym` of object `o`, data symbol `i`
    /// of the module.
    fn relocate_data(&mut self, o: usize, sym: u32, i: u32) -> Result<(), String> {
        let d = &self.plans[o].patched.data[&sym];
        let base = self.module.data_syms[i as usize].offset;
        for r in d.relocs.clone() {
            let mut out = self.reloc(o, &r)?;
            out.offset += base;
            self.module.data_relocs.push(out);
        }
        Ok(())
    }

    /// Adds a NUL-terminated string; its data symbol.
    fn string(&mut self, name: String, s: &str) -> u32 {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.module.add_data(name, &bytes, 1)
    }

    /// A pointer field at `offset` of data symbol `at` to `target`.
    fn pointer(&mut self, at: u32, offset: u32, ty: RelocationType, target: Target) {
        let base = self.module.data_syms[at as usize].offset;
        self.module.data_relocs.push(OutReloc {
            offset: base + offset,
            ty,
            target,
            addend: 0,
        });
    }

    /// The `klp_func` arrays, `klp_object`s and the `klp_patch`; the patch's data symbol.
    fn metadata(&mut self, replace: bool) -> Result<u32, String> {
        let mut objects = Vec::new();
        for (o, plan) in self.plans.iter().enumerate() {
            if plan.replaces.is_empty() && plan.callbacks.iter().all(Option::is_none) {
                continue;
            }
            let n = plan.replaces.len() as u32;
            let mut funcs = vec![0u8; ((n + 1) * klp_func::SIZE) as usize];
            for (j, (_, (_, pos))) in plan.replaces.iter().enumerate() {
                let at = j * klp_func::SIZE as usize + klp_func::OLD_SYMPOS as usize;
                funcs[at..at + 4].copy_from_slice(&pos.to_le_bytes());
            }
            let array = self
                .module
                .add_data(format!("__klp_funcs_{}", plan.name), &funcs, 4);
            for (j, (f, (old, _))) in plan.replaces.clone().into_iter().enumerate() {
                let s = self.string(format!("__klp_old_name_{}_{j}", plan.name), &old);
                let at = j as u32 * klp_func::SIZE;
                self.pointer(
                    array,
                    at + klp_func::OLD_NAME,
                    RelocationType::MemoryAddrI32,
                    Target::Data(s),
                );
                let new = self.funcs[&(o, f)];
                self.pointer(
                    array,
                    at + klp_func::NEW_FUNC,
                    RelocationType::TableIndexI32,
                    Target::Func(new),
                );
            }
            let name = (plan.name != VMLINUX)
                .then(|| self.string(format!("__klp_obj_name_{}", plan.name), plan.name));
            let callbacks: Vec<Option<u32>> = plan
                .callbacks
                .iter()
                .map(|c| c.map(|f| self.funcs[&(o, f)]))
                .collect();
            objects.push((array, name, callbacks));
        }
        if objects.is_empty() {
            return Err("nothing to patch".into());
        }
        let objs = self.module.add_data(
            "__klp_objs".into(),
            &vec![0u8; (objects.len() + 1) * klp_object::SIZE as usize],
            4,
        );
        for (k, (array, name, callbacks)) in objects.into_iter().enumerate() {
            let at = k as u32 * klp_object::SIZE;
            if let Some(name) = name {
                self.pointer(
                    objs,
                    at + klp_object::NAME,
                    RelocationType::MemoryAddrI32,
                    Target::Data(name),
                );
            }
            self.pointer(
                objs,
                at + klp_object::FUNCS,
                RelocationType::MemoryAddrI32,
                Target::Data(array),
            );
            let slots = [
                klp_callbacks::PRE_PATCH,
                klp_callbacks::POST_PATCH,
                klp_callbacks::PRE_UNPATCH,
                klp_callbacks::POST_UNPATCH,
            ];
            for (slot, cb) in slots.into_iter().zip(callbacks) {
                if let Some(f) = cb {
                    self.pointer(
                        objs,
                        at + klp_object::CALLBACKS + slot,
                        RelocationType::TableIndexI32,
                        Target::Func(f),
                    );
                }
            }
        }
        let mut patch = vec![0u8; klp_patch::SIZE as usize];
        let at = klp_patch::REPLACE as usize;
        patch[at..at + 4].copy_from_slice(&u32::from(replace).to_le_bytes());
        let patch = self.module.add_data("__klp_patch".into(), &patch, 4);
        self.pointer(
            patch,
            klp_patch::OBJS,
            RelocationType::MemoryAddrI32,
            Target::Data(objs),
        );
        Ok(patch)
    }

    /// `init_module` (enables the patch) and `cleanup_module` (nothing: the core frees it).
    fn entry_points(&mut self, patch: u32) {
        let enable = FuncType::new([ValType::I32], [ValType::I32]);
        let enable = self.module.import(KLP_ENABLE_PATCH, &enable);
        let init_ty = self.module.ty(&FuncType::new([], [ValType::I32]));
        let exit_ty = self.module.ty(&FuncType::new([], []));
        // No locals; i32.const <patch>; call klp_enable_patch; end.
        let mut body = vec![0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x00];
        body.extend_from_slice(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b]);
        self.module.funcs.push(OutFunc {
            name: "init_module".into(),
            ty: init_ty,
            body,
            relocs: vec![
                OutReloc {
                    offset: 2,
                    ty: RelocationType::MemoryAddrSleb,
                    target: Target::Data(patch),
                    addend: 0,
                },
                OutReloc {
                    offset: 8,
                    ty: RelocationType::FunctionIndexLeb,
                    target: Target::Import(enable),
                    addend: 0,
                },
            ],
            exported: true,
        });
        self.module.funcs.push(OutFunc {
            name: "cleanup_module".into(),
            ty: exit_ty,
            body: vec![0x00, 0x0b],
            relocs: Vec::new(),
            exported: true,
        });
    }
}

/// The type of function `f` of `obj`.
fn sig(obj: &crate::object::Obj<'_>, f: u32) -> Result<FuncType, String> {
    obj.func_types
        .get(f as usize)
        .and_then(|t| obj.types.get(*t as usize))
        .cloned()
        .ok_or_else(|| format!("function {f} has no type"))
}
