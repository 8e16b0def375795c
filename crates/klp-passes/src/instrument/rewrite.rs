//! Rewriting call targets in function bodies: `call f` → `i32.const slot; call_indirect`.
//!
//! Bodies are copied byte for byte; only the instructions whose indices change are re-encoded,
//! so a body without calls to rewrite costs one decoding pass and one copy. With a caller
//! global ([`CodeMap::caller`]), every call through table 0 (a slot or a function pointer) is
//! preceded by `i32.const caller; global.set $__klp_caller`: the function tracer's trampolines
//! read it to name the caller (docs/ABI.md, "The caller global").

use wasm_encoder::Encode;
use wasmparser::{FunctionBody, Operator, OperatorsReaderAllocations};

use super::InstrumentError;

/// Where a `call` (or `return_call`) to a function goes after rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallTarget {
    /// A direct call to this function index (of the output module).
    Direct(u32),
    /// `i32.const slot; call_indirect (type type_index) 0`.
    ViaSlot {
        /// Index in table 0.
        slot: u32,
        /// Type index (of the output module) of the callee.
        type_index: u32,
    },
}

/// The index changes applied to function bodies.
pub(crate) struct CodeMap<'m> {
    /// Target of a call, by function index of the input module.
    pub calls: &'m [CallTarget],
    /// Target of a call in the full variant, by input function index: a `ref.func` of a function
    /// reached through its slot there is refused (so every variant refuses the same code);
    /// `None` decides by [`CodeMap::calls`].
    pub full_calls: Option<&'m [CallTarget]>,
    /// New index for `ref.func`, by input function index; `None` keeps indices as they are.
    pub ref_funcs: Option<&'m [Option<u32>]>,
    /// New global index, by input global index; `None` keeps indices as they are.
    pub globals: Option<&'m [u32]>,
    /// Whether `memory.init`, `data.drop`, `table.init` and `elem.drop` may stay (they refer to
    /// segments the output keeps).
    pub keep_segments: bool,
    /// The output index of the `__klp_caller` global that calls through table 0 store their
    /// caller's id in; `None` stores nothing.
    pub caller: Option<u32>,
}

/// Rewrites function bodies with one [`CodeMap`], reusing the parser's allocations.
pub(crate) struct Rewriter<'m> {
    map: CodeMap<'m>,
    allocs: OperatorsReaderAllocations,
}

const OP_CALL: u8 = 0x10;
const OP_CALL_INDIRECT: u8 = 0x11;
const OP_RETURN_CALL: u8 = 0x12;
const OP_RETURN_CALL_INDIRECT: u8 = 0x13;
const OP_GLOBAL_GET: u8 = 0x23;
const OP_GLOBAL_SET: u8 = 0x24;
const OP_I32_CONST: u8 = 0x41;
const OP_REF_FUNC: u8 = 0xd2;

impl<'m> Rewriter<'m> {
    /// A rewriter applying `map`.
    pub(crate) fn new(map: CodeMap<'m>) -> Self {
        Self {
            map,
            allocs: OperatorsReaderAllocations::default(),
        }
    }

    /// Whether a `ref.func` of `f` must be refused: in a kernel (whose references the map does
    /// not renumber) when calls to `f` go through its slot in the full variant.
    fn slotted_ref(&self, f: u32) -> bool {
        self.map.ref_funcs.is_none()
            && matches!(
                self.map
                    .full_calls
                    .unwrap_or(self.map.calls)
                    .get(f as usize),
                Some(CallTarget::ViaSlot { .. })
            )
    }

    /// Appends the rewritten `body` (locals and code, without the size prefix) to `out`; its
    /// calls through table 0 store `caller` (the body's own slot) when the map has a caller
    /// global.
    ///
    /// # Errors
    ///
    /// A decoding error, an index outside the maps, an instruction the map cannot express, or
    /// one [`bypass`] refuses.
    pub(crate) fn rewrite(
        &mut self,
        body: &FunctionBody<'_>,
        caller: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), InstrumentError> {
        let store = self.map.caller.map(|global| (caller, global));
        let raw = body.as_bytes();
        let base = body.range().start;
        let reader = body.get_binary_reader_for_operators()?;
        let mut ops =
            wasmparser::OperatorsReader::new_with_allocs(reader, std::mem::take(&mut self.allocs));
        // Bytes of `raw` before `copied` are already in `out`.
        let mut copied = 0usize;
        let result = (|| {
            while !ops.eof() {
                let (op, at) = ops.read_with_offset()?;
                if let Some(err) = bypass(&op, |f| self.slotted_ref(f)) {
                    return Err(err);
                }
                let at = at - base;
                let flush = |out: &mut Vec<u8>, copied: &mut usize| {
                    out.extend_from_slice(raw.get(*copied..at).unwrap_or_default());
                    *copied = at;
                };
                match op {
                    Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                        let tail = matches!(op, Operator::ReturnCall { .. });
                        let target = self
                            .map
                            .calls
                            .get(function_index as usize)
                            .ok_or_else(|| bad_index("function", function_index))?;
                        if *target == CallTarget::Direct(function_index) {
                            continue;
                        }
                        flush(out, &mut copied);
                        if let CallTarget::ViaSlot { .. } = target {
                            encode_caller_store(store, out);
                        }
                        encode_call(*target, tail, out);
                    }
                    Operator::CallIndirect { table_index: 0, .. }
                    | Operator::ReturnCallIndirect { table_index: 0, .. }
                        if store.is_some() =>
                    {
                        // A call through a function pointer: the store goes in front, the
                        // call itself is copied as it is.
                        flush(out, &mut copied);
                        encode_caller_store(store, out);
                        continue;
                    }
                    Operator::RefFunc { function_index } => {
                        let Some(map) = self.map.ref_funcs else {
                            continue;
                        };
                        let new = map
                            .get(function_index as usize)
                            .copied()
                            .flatten()
                            .ok_or_else(|| {
                                InstrumentError::Unsupported(format!(
                                    "ref.func {function_index} has no counterpart in the output"
                                ))
                            })?;
                        flush(out, &mut copied);
                        out.push(OP_REF_FUNC);
                        new.encode(out);
                    }
                    Operator::GlobalGet { global_index } | Operator::GlobalSet { global_index } => {
                        let Some(map) = self.map.globals else {
                            continue;
                        };
                        let new = *map
                            .get(global_index as usize)
                            .ok_or_else(|| bad_index("global", global_index))?;
                        flush(out, &mut copied);
                        out.push(if matches!(op, Operator::GlobalGet { .. }) {
                            OP_GLOBAL_GET
                        } else {
                            OP_GLOBAL_SET
                        });
                        new.encode(out);
                    }
                    Operator::MemoryInit { .. }
                    | Operator::DataDrop { .. }
                    | Operator::TableInit { .. }
                    | Operator::ElemDrop { .. }
                        if !self.map.keep_segments =>
                    {
                        return Err(InstrumentError::Unsupported(format!(
                            "{op:?} refers to a segment that is not kept"
                        )));
                    }
                    _ => continue,
                }
                copied = ops.original_position() - base;
            }
            ops.finish()?;
            Ok(())
        })();
        out.extend_from_slice(raw.get(copied..).unwrap_or_default());
        self.allocs = ops.into_allocations();
        result
    }
}

/// The refusal for an instruction that cannot be hooked, if `op` is one: a `ref.func` of a
/// function `traceable` says must be reached through its slot (the reference would call the
/// function itself), or any write to table 0, the ftrace table (it would change slots behind the
/// host's back, or copy entries that then miss later patches). A kernel or module has no other
/// table of functions ([`super::kernel::Kernel::check_tables`], the module parser): any other
/// table is a continuation table of a kernel with tasks ([`super::tasks`]).
///
/// Function references cannot be called without a table (`call_ref` needs the
/// function-references feature, outside [`super::FEATURES`]), so with table writes refused what
/// `table.get` reads can neither be called nor stored where a call would find it. A notrace
/// function's `ref.func` may stay: calls to it are direct anyway.
pub(crate) fn bypass(
    op: &Operator<'_>,
    traceable: impl Fn(u32) -> bool,
) -> Option<InstrumentError> {
    const WRITES: &str = "writes the ftrace table behind the host's back";
    let (instruction, why) = match *op {
        Operator::RefFunc { function_index } if traceable(function_index) => (
            format!("ref.func {function_index}"),
            "makes a reference to a traceable function that bypasses its ftrace slot",
        ),
        Operator::TableSet { table: 0 } => ("table.set 0".to_string(), WRITES),
        Operator::TableGrow { table: 0 } => ("table.grow 0".to_string(), WRITES),
        Operator::TableFill { table: 0 } => ("table.fill 0".to_string(), WRITES),
        Operator::TableCopy {
            dst_table,
            src_table,
        } if dst_table == 0 || src_table == 0 => {
            (format!("table.copy {dst_table} {src_table}"), WRITES)
        }
        Operator::TableInit {
            elem_index,
            table: 0,
        } => (format!("table.init 0 {elem_index}"), WRITES),
        _ => return None,
    };
    Some(InstrumentError::Unhookable {
        function: None,
        instruction,
        why,
    })
}

/// Checks that no instruction of `body` is one [`bypass`] refuses.
///
/// # Errors
///
/// The refusal, or a decoding error.
pub(crate) fn check_body(
    body: &FunctionBody<'_>,
    traceable: impl Fn(u32) -> bool,
) -> Result<(), InstrumentError> {
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        if let Some(err) = bypass(&ops.read()?, &traceable) {
            return Err(err);
        }
    }
    Ok(())
}

fn bad_index(what: &str, index: u32) -> InstrumentError {
    InstrumentError::Malformed(format!("{what} index {index} out of range"))
}

/// Emits `i32.const id; global.set global` for a `store` of `(id, global)`; nothing for `None`.
/// The pair leaves the operand stack as it was, so it may go right before any call.
pub(crate) fn encode_caller_store(store: Option<(u32, u32)>, out: &mut Vec<u8>) {
    if let Some((id, global)) = store {
        out.push(OP_I32_CONST);
        i32::from_ne_bytes(id.to_ne_bytes()).encode(out);
        out.push(OP_GLOBAL_SET);
        global.encode(out);
    }
}

/// Emits a call to `target`; `tail` selects the `return_call` forms.
pub(crate) fn encode_call(target: CallTarget, tail: bool, out: &mut Vec<u8>) {
    match target {
        CallTarget::Direct(f) => {
            out.push(if tail { OP_RETURN_CALL } else { OP_CALL });
            f.encode(out);
        }
        CallTarget::ViaSlot { slot, type_index } => {
            out.push(OP_I32_CONST);
            // Table indices are i32 operands; slots above 2^31 wrap as wasm's i32 does.
            i32::from_ne_bytes(slot.to_ne_bytes()).encode(out);
            out.push(if tail {
                OP_RETURN_CALL_INDIRECT
            } else {
                OP_CALL_INDIRECT
            });
            type_index.encode(out);
            out.push(0); // table 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    fn bodies(wasm: &[u8]) -> Vec<FunctionBody<'_>> {
        Parser::new(0)
            .parse_all(wasm)
            .filter_map(|p| match p.unwrap() {
                Payload::CodeSectionEntry(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn rewrite_all(wasm: &[u8], map: CodeMap<'_>) -> Result<Vec<Vec<u8>>, InstrumentError> {
        let mut rw = Rewriter::new(map);
        bodies(wasm)
            .iter()
            .map(|b| {
                let mut out = Vec::new();
                rw.rewrite(b, 3, &mut out).map(|()| out)
            })
            .collect()
    }

    const TWO_FUNCS: &str = r#"(module
        (type $t (func (param i32) (result i32)))
        (table 1 funcref)
        (global $g (mut i32) (i32.const 0))
        (func $a (type $t) (local i64) local.get 0 call $b global.get $g i32.add)
        (func $b (type $t) local.get 0 return_call $a))"#;

    #[test]
    fn identity_map_copies_bodies_byte_for_byte() {
        let wasm = wat::parse_str(TWO_FUNCS).unwrap();
        let calls = [CallTarget::Direct(0), CallTarget::Direct(1)];
        let out = rewrite_all(
            &wasm,
            CodeMap {
                calls: &calls,
                full_calls: None,
                ref_funcs: None,
                globals: None,
                keep_segments: true,
                caller: None,
            },
        )
        .unwrap();
        let orig: Vec<&[u8]> = bodies(&wasm).iter().map(|b| b.as_bytes()).collect();
        assert_eq!(out, orig);
    }

    #[test]
    fn calls_via_slot_become_call_indirect() {
        let wasm = wat::parse_str(TWO_FUNCS).unwrap();
        let calls = [
            CallTarget::ViaSlot {
                slot: 200,
                type_index: 0,
            },
            CallTarget::ViaSlot {
                slot: 7,
                type_index: 0,
            },
        ];
        let globals = [5];
        let out = rewrite_all(
            &wasm,
            CodeMap {
                calls: &calls,
                full_calls: None,
                ref_funcs: None,
                globals: Some(&globals),
                keep_segments: true,
                caller: None,
            },
        )
        .unwrap();
        // $a: 1 local decl (1 x i64), local.get 0, i32.const 7, call_indirect 0 0,
        // global.get 5, i32.add, end
        assert_eq!(
            out[0],
            [
                1, 1, 0x7e, 0x20, 0, 0x41, 7, 0x11, 0, 0, 0x23, 5, 0x6a, 0x0b
            ]
        );
        // $b: return_call_indirect through slot 200 (signed LEB 0xc8 0x01)
        assert_eq!(out[1], [0, 0x20, 0, 0x41, 0xc8, 0x01, 0x13, 0, 0, 0x0b]);
    }

    #[test]
    fn calls_through_table_0_store_their_caller_first() {
        let wasm = wat::parse_str(
            r#"(module
            (type $t (func (param i32) (result i32)))
            (table 1 funcref)
            (func $a (type $t) local.get 0 call $a)
            (func $b (type $t) local.get 0 i32.const 0 call_indirect (type $t)))"#,
        )
        .unwrap();
        let calls = [
            CallTarget::ViaSlot {
                slot: 9,
                type_index: 0,
            },
            CallTarget::Direct(1),
        ];
        let out = rewrite_all(
            &wasm,
            CodeMap {
                calls: &calls,
                full_calls: None,
                ref_funcs: None,
                globals: None,
                keep_segments: true,
                caller: Some(4),
            },
        )
        .unwrap();
        // i32.const 3 (the caller given to `rewrite`), global.set 4, then the call.
        assert_eq!(
            out[0],
            [0, 0x20, 0, 0x41, 3, 0x24, 4, 0x41, 9, 0x11, 0, 0, 0x0b]
        );
        assert_eq!(
            out[1],
            [0, 0x20, 0, 0x41, 0, 0x41, 3, 0x24, 4, 0x11, 0, 0, 0x0b]
        );
    }

    #[test]
    fn call_outside_the_map_is_an_error() {
        let wasm = wat::parse_str(TWO_FUNCS).unwrap();
        let calls = [CallTarget::Direct(0)];
        let err = rewrite_all(
            &wasm,
            CodeMap {
                calls: &calls,
                full_calls: None,
                ref_funcs: None,
                globals: None,
                keep_segments: true,
                caller: None,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("function index 1"), "{err}");
    }

    #[test]
    fn dropped_segments_refuse_data_drop() {
        let wasm = wat::parse_str(r#"(module (memory 1) (data "x") (func data.drop 0))"#).unwrap();
        let calls = [CallTarget::Direct(0)];
        let err = rewrite_all(
            &wasm,
            CodeMap {
                calls: &calls,
                full_calls: None,
                ref_funcs: None,
                globals: None,
                keep_segments: false,
                caller: None,
            },
        )
        .unwrap_err();
        assert!(matches!(err, InstrumentError::Unsupported(_)));
    }

    #[test]
    fn truncated_body_is_an_error_not_a_panic() {
        let wasm = wat::parse_str(TWO_FUNCS).unwrap();
        let body = &bodies(&wasm)[0];
        let raw = body.as_bytes();
        let calls = [CallTarget::Direct(0), CallTarget::Direct(1)];
        let mut rw = Rewriter::new(CodeMap {
            calls: &calls,
            full_calls: None,
            ref_funcs: None,
            globals: None,
            keep_segments: true,
            caller: None,
        });
        for len in 0..raw.len() {
            let b = FunctionBody::new(wasmparser::BinaryReader::new(&raw[..len], 0));
            assert!(rw.rewrite(&b, 0, &mut Vec::new()).is_err(), "len {len}");
        }
    }
}
