//! Linking a module: resolve, relocate in place, then rewrite into a module of the kernel's table.

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, ConstExpr, ElementSection, Elements, EntityType, FunctionSection, GlobalSection,
    GlobalType, ImportSection, MemoryType, Module, NameMap, NameSection, RefType, TableType,
    TypeSection, ValType,
};
use wasmparser::{BinaryReader, CodeSectionReader, RelocationEntry, Validator, WasmFeatures};

use super::reloc::{self, Value};
use super::{LinkPlan, Linked, ObjectError, ObjectFile, StackPointer, Undefined, malformed};
use crate::instrument::rewrite::{CallTarget, CodeMap, Rewriter};
use crate::object::linking::SymTarget;

/// The global index a module imports the kernel's caller global (`env.__klp_caller`) at.
const CALLER_IMPORT: u32 = 1;

/// Prefix of module parameter symbols.
const PARAM_PREFIX: &str = "__param_";

/// See [`ObjectFile::link`].
pub(super) fn link(
    o: &ObjectFile,
    plan: &LinkPlan,
    resolve: &mut dyn FnMut(&Undefined) -> Result<u32, ObjectError>,
) -> Result<Linked, ObjectError> {
    let resolved = o
        .undefined
        .iter()
        .map(&mut *resolve)
        .collect::<Result<Vec<u32>, _>>()?;
    let n = u32::try_from(o.functions.len()).map_err(|_| malformed("too many functions"))?;
    let table_min = n
        .checked_mul(2)
        .and_then(|x| x.checked_add(plan.slot_base))
        .ok_or_else(|| malformed("slots beyond the table's index space"))?;
    let cx = Context { o, plan, resolved };

    let mut data = vec![0u8; o.image_size as usize];
    for s in &o.segments {
        let at = (s.addr - o.image_start) as usize;
        let src = o.bytes.get(s.bytes.clone()).unwrap_or_default();
        data.get_mut(at..at + src.len())
            .ok_or_else(|| malformed("data segment outside the image"))?
            .copy_from_slice(src);
    }
    for e in &o.data_relocs {
        let (kind, field) = reloc::classify(e.ty)?;
        if kind == Value::Structural {
            return Err(malformed(format!("{:?} relocation in data", e.ty)));
        }
        let at = cx.image_offset(e)?;
        reloc::write(&mut data, at, field, cx.value(e, kind)?, e)?;
    }

    let mut code = CodeSection::new();
    let mut functions = FunctionSection::new();
    if let Some((range, _)) = &o.code {
        let mut buf = o.bytes.get(range.clone()).unwrap_or_default().to_vec();
        for e in &o.code_relocs {
            let (kind, field) = reloc::classify(e.ty)?;
            if kind == Value::Structural {
                continue;
            }
            reloc::write(&mut buf, e.offset as usize, field, cx.value(e, kind)?, e)?;
        }
        cx.rewrite_code(&buf, &mut code)?;
        for t in &o.func_types[o.num_imported_funcs as usize..] {
            functions.function(*t);
        }
    }

    let mut re = RoundtripReencoder;
    let mut types = TypeSection::new();
    for ty in &o.types {
        let params = ty
            .params()
            .iter()
            .map(|t| re.val_type(*t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| malformed(e.to_string()))?;
        let results = ty
            .results()
            .iter()
            .map(|t| re.val_type(*t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| malformed(e.to_string()))?;
        types.ty().function(params, results);
    }
    let mut imports = ImportSection::new();
    imports.import(
        "env",
        "memory",
        EntityType::Memory(MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        }),
    );
    imports.import(
        "env",
        "__indirect_function_table",
        EntityType::Table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: u64::from(table_min),
            maximum: None,
            shared: false,
        }),
    );
    imports.import(
        "env",
        "__stack_pointer",
        EntityType::Global(GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        }),
    );
    imports.import(
        "env",
        crate::instrument::CALLER_GLOBAL,
        EntityType::Global(GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        }),
    );
    let mut globals = GlobalSection::new();
    for (i, g) in o.globals.iter().enumerate() {
        if cx.is_stack_pointer(o.num_imported_globals + i as u32) {
            continue;
        }
        let ty = re.global_type(g.ty).map_err(|e| malformed(e.to_string()))?;
        globals.global(ty, &g.init);
    }
    // One segment, the orig entries `slot_base + n..`: the loader has ftrace copy them into
    // the slots. A second N-entry segment for the slots would cost wasmtime about a third more
    // compile time and memory.
    let mut elements = ElementSection::new();
    if n > 0 {
        let funcs: Vec<u32> = (0..n).collect();
        let orig = plan.slot_base + n;
        elements.active(
            None,
            &ConstExpr::i32_const(i32::from_ne_bytes(orig.to_ne_bytes())),
            Elements::Functions(funcs.as_slice().into()),
        );
    }

    let mut module = Module::new();
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&globals);
    module.section(&elements);
    module.section(&code);
    module.section(&cx.names());
    let wasm = module.finish();
    Validator::new_with_features(WasmFeatures::default())
        .validate_all(&wasm)
        .map_err(|e| malformed(format!("linked module does not validate: {e}")))?;

    let slot_of = |name: &str| {
        o.functions
            .iter()
            .find(|f| f.name == name)
            .map(|f| plan.slot_base + f.index)
    };
    Ok(Linked {
        wasm,
        data,
        init: slot_of("init_module"),
        exit: slot_of("cleanup_module"),
        params: cx.params()?,
    })
}

/// What relocation and rewriting need.
struct Context<'a> {
    o: &'a ObjectFile,
    plan: &'a LinkPlan,
    /// Value of every undefined symbol, in [`ObjectFile::undefined`] order.
    resolved: Vec<u32>,
}

impl Context<'_> {
    /// The value a `MemoryAddr` or `TableIndex` relocation stores.
    fn value(&self, e: &RelocationEntry, kind: Value) -> Result<u32, ObjectError> {
        let o = self.o;
        let sym = o.symbols.get(e.index as usize).ok_or_else(|| {
            malformed(format!(
                "relocation against symbol {} out of range",
                e.index
            ))
        })?;
        let wrong = || {
            malformed(format!(
                "{:?} relocation against {} symbol {}",
                e.ty,
                if sym.defined { "defined" } else { "undefined" },
                sym.name.as_deref().unwrap_or("?")
            ))
        };
        match (kind, sym.target) {
            (Value::MemoryAddr, SymTarget::Data(def)) => {
                let base = match def {
                    Some((seg, offset, _)) => {
                        if seg as usize >= o.segments.len() {
                            return Err(wrong());
                        }
                        o.data_addr(self.plan.data_base, seg, offset)
                    }
                    None => *o
                        .undef_of_data
                        .get(&e.index)
                        .and_then(|u| self.resolved.get(*u))
                        .ok_or_else(wrong)?,
                };
                // Addends are 32-bit; wasm32 address arithmetic wraps.
                Ok(base.wrapping_add(e.addend as i32 as u32))
            }
            (Value::TableIndex, SymTarget::Func(f)) => self.slot_of(f).ok_or_else(wrong),
            _ => Err(wrong()),
        }
    }

    /// The slot calls to function `f` (input index) go through.
    fn slot_of(&self, f: u32) -> Option<u32> {
        let nimp = self.o.num_imported_funcs;
        if f < nimp {
            let u = *self.o.undef_of_import.get(f as usize)?;
            self.resolved.get(u).copied()
        } else if ((f - nimp) as usize) < self.o.functions.len() {
            Some(self.plan.slot_base + (f - nimp))
        } else {
            None
        }
    }

    /// Where a `reloc.DATA` entry lands in the image.
    fn image_offset(&self, e: &RelocationEntry) -> Result<usize, ObjectError> {
        let segs = &self.o.segments;
        let off = e.offset as usize;
        let i = segs.partition_point(|s| s.rel_start <= off);
        i.checked_sub(1)
            .and_then(|i| segs.get(i))
            .filter(|s| off - s.rel_start < s.bytes.len())
            .map(|s| (s.addr - self.o.image_start) as usize + (off - s.rel_start))
            .ok_or_else(|| {
                malformed(format!(
                    "data relocation at offset {off} is outside every segment"
                ))
            })
    }

    fn is_stack_pointer(&self, g: u32) -> bool {
        matches!(self.o.stack_pointer,
            StackPointer::Defined(s) | StackPointer::Imported(s) if s == g)
    }

    /// Output index of every input global: the stack pointer becomes import 0, and the others
    /// follow the kernel's caller global, import 1.
    fn global_map(&self) -> Vec<u32> {
        let total = self.o.num_imported_globals as usize + self.o.globals.len();
        let mut next = CALLER_IMPORT + 1;
        (0..total as u32)
            .map(|g| {
                if self.is_stack_pointer(g) {
                    0
                } else {
                    next += 1;
                    next - 1
                }
            })
            .collect()
    }

    fn rewrite_code(&self, buf: &[u8], code: &mut CodeSection) -> Result<(), ObjectError> {
        let o = self.o;
        let nimp = o.num_imported_funcs;
        let mut calls = Vec::with_capacity(o.func_types.len());
        for (f, t) in o.func_types.iter().enumerate() {
            let slot = self
                .slot_of(f as u32)
                .ok_or_else(|| malformed(format!("function {f} has no slot")))?;
            calls.push(CallTarget::ViaSlot {
                slot,
                type_index: *t,
            });
        }
        let ref_funcs: Vec<Option<u32>> = (0..o.func_types.len() as u32)
            .map(|f| f.checked_sub(nimp))
            .collect();
        let globals = self.global_map();
        let mut rewriter = Rewriter::new(CodeMap {
            calls: &calls,
            full_calls: None,
            ref_funcs: Some(&ref_funcs),
            globals: Some(&globals),
            keep_segments: false,
            caller: Some(CALLER_IMPORT),
        });
        let mut body = Vec::new();
        for (i, b) in CodeSectionReader::new(BinaryReader::new(buf, 0))?
            .into_iter()
            .enumerate()
        {
            body.clear();
            // Every function of the module has a slot: its calls name it.
            let caller = self.plan.slot_base + i as u32;
            rewriter.rewrite(&b?, caller, &mut body).map_err(|e| {
                let name = o.functions.get(i).map_or_else(
                    || format!("func{}", nimp as usize + i),
                    |f| format!("{:#}", rustc_demangle::demangle(&f.name)),
                );
                malformed(e.in_function(name).to_string())
            })?;
            code.raw(&body);
        }
        Ok(())
    }

    fn names(&self) -> NameSection {
        let o = self.o;
        let mut names = NameSection::new();
        if let Some(m) = &o.module_name {
            names.module(m);
        }
        let mut funcs = NameMap::new();
        for f in &o.functions {
            funcs.append(f.index, &f.name);
        }
        names.functions(&funcs);
        let map = self.global_map();
        let mut sorted: Vec<(u32, &str)> = o
            .global_names
            .iter()
            .filter_map(|(g, n)| map.get(*g as usize).map(|i| (*i, n.as_str())))
            .collect();
        sorted.sort_unstable();
        sorted.dedup_by_key(|(i, _)| *i);
        let mut globals = NameMap::new();
        for (i, n) in sorted {
            globals.append(i, n);
        }
        names.globals(&globals);
        names
    }

    /// `__param_<name>` symbols: name, address and size (the loader checks the size against
    /// the parameter's type).
    fn params(&self) -> Result<Vec<(String, u32, u32)>, ObjectError> {
        let mut out = Vec::new();
        for s in self.o.symbols.iter().filter(|s| s.defined && s.global) {
            let (Some(name), SymTarget::Data(Some((seg, offset, size)))) = (&s.name, s.target)
            else {
                continue;
            };
            let Some(param) = name.strip_prefix(PARAM_PREFIX) else {
                continue;
            };
            if size == 0 {
                return Err(malformed(format!("parameter {name} is 0 bytes")));
            }
            out.push((
                param.to_string(),
                self.o.data_addr(self.plan.data_base, seg, offset),
                size,
            ));
        }
        Ok(out)
    }
}
