//! The WebAssembly features the pass handles, and naming the one a module needs beyond them.

use wasmparser::{BinaryReaderError, Parser, Payload, TypeRef, Validator, WasmFeatures};

use super::InstrumentError;

/// The WebAssembly features the pass and the module linker accept: WebAssembly 2.0, which is
/// what rustc's `wasm32-unknown-unknown` output uses (mutable globals, sign extension,
/// non-trapping float-to-int, bulk memory, multi-value, reference types for the funcref table,
/// and SIMD), plus tail calls, whose `return_call` the pass routes through the callee's slot like
/// `call`.
///
/// Everything else is refused, function references and GC above all: `call_ref` and
/// `return_call_ref` call a function reference that never passes an ftrace slot.
pub const FEATURES: WasmFeatures = WasmFeatures::WASM2.union(WasmFeatures::TAIL_CALL);

/// Validates `wasm` with [`FEATURES`].
///
/// # Errors
///
/// [`InstrumentError::Feature`] when `wasm` is valid WebAssembly that needs a feature outside
/// [`FEATURES`], and [`InstrumentError::Parse`] when it is not valid at all.
pub(crate) fn validate(wasm: &[u8]) -> Result<(), InstrumentError> {
    let Err(err) = Validator::new_with_features(FEATURES).validate_all(wasm) else {
        return Ok(());
    };
    let valid_with = |f: WasmFeatures| Validator::new_with_features(f).validate_all(wasm).is_ok();
    if !valid_with(WasmFeatures::all()) {
        return Err(err.into());
    }
    let others: Vec<(&str, WasmFeatures)> = WasmFeatures::all()
        .iter_names()
        .filter(|(_, f)| !FEATURES.contains(*f))
        .collect();
    // Features that each would be enough, else those it cannot do without.
    let enough: Vec<String> = others
        .iter()
        .filter(|(_, f)| valid_with(FEATURES.union(*f)))
        .map(|(n, _)| feature_name(n))
        .collect();
    let feature = if enough.is_empty() {
        let needed: Vec<String> = others
            .iter()
            .filter(|(_, f)| !valid_with(WasmFeatures::all().difference(*f)))
            .map(|(n, _)| feature_name(n))
            .collect();
        needed.join(" and ")
    } else {
        enough.join(" or ")
    };
    let (function, instruction) = locate(wasm, &err).unzip();
    Err(InstrumentError::Feature {
        feature,
        function,
        instruction: instruction.flatten(),
        detail: err.to_string(),
    })
}

/// `FUNCTION_REFERENCES` → `function-references`.
fn feature_name(flag: &str) -> String {
    flag.to_ascii_lowercase().replace('_', "-")
}

/// The function (demangled name) whose body holds the offset `err` points at, and the
/// instruction there if it decodes.
fn locate(wasm: &[u8], err: &BinaryReaderError) -> Option<(String, Option<String>)> {
    let at = err.offset();
    let (mut imported, mut nth) = (0u32, 0u32);
    let (mut hit, mut names) = (None, None);
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ImportSection(r) => {
                for imp in r.into_imports().flatten() {
                    if matches!(imp.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                if body.range().contains(&at) {
                    hit = Some((nth, instruction_at(&body, at)));
                }
                nth += 1;
            }
            Payload::CustomSection(c) if c.name() == "name" => {
                names = Some((c.data(), c.data_offset()));
            }
            _ => {}
        }
    }
    let (nth, instruction) = hit?;
    let index = imported.checked_add(nth)?;
    let raw = names
        .and_then(|(data, offset)| function_name(data, offset, index))
        .unwrap_or_else(|| format!("func{index}"));
    Some((format!("{:#}", rustc_demangle::demangle(&raw)), instruction))
}

/// The name of the last instruction of `body` that starts at or before `at`.
fn instruction_at(body: &wasmparser::FunctionBody<'_>, at: usize) -> Option<String> {
    let mut ops = body.get_operators_reader().ok()?;
    let mut last = None;
    while !ops.eof() {
        match ops.read_with_offset() {
            Ok((op, offset)) if offset <= at => last = Some(op_name(&op)),
            _ => break,
        }
    }
    last
}

/// The name of function `index` in a name section payload.
fn function_name(data: &[u8], offset: usize, index: u32) -> Option<String> {
    let reader = wasmparser::NameSectionReader::new(wasmparser::BinaryReader::new(data, offset));
    for sub in reader {
        if let wasmparser::Name::Function(map) = sub.ok()? {
            for naming in map {
                let naming = naming.ok()?;
                if naming.index == index {
                    return Some(naming.name.to_string());
                }
            }
        }
    }
    None
}

/// An instruction's name from its operator: `CallRef { .. }` → `call_ref`.
pub(crate) fn op_name(op: &wasmparser::Operator<'_>) -> String {
    let debug = format!("{op:?}");
    let variant = debug.split([' ', '{', '(']).next().unwrap_or_default();
    let mut out = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature_error(wat: &str) -> (String, Option<String>, Option<String>) {
        match validate(&wat::parse_str(wat).unwrap()) {
            Err(InstrumentError::Feature {
                feature,
                function,
                instruction,
                ..
            }) => (feature, function, instruction),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rustc_output_needs_no_feature_beyond_the_set() {
        validate(include_bytes!("../../tests/data/exp_kernel.wasm")).unwrap();
        validate(include_bytes!("../../tests/data/exp_module.wasm")).unwrap();
    }

    #[test]
    fn call_ref_is_refused_naming_feature_function_and_instruction() {
        let (feature, function, instruction) = feature_error(
            r#"(module (import "klp" "f" (func)) (type $t (func))
                (func $f (type $t)) (elem declare func $f)
                (func $_ZN1k6caller17h0123456789abcdefE ref.func $f call_ref $t))"#,
        );
        assert_eq!(feature, "function-references");
        assert_eq!(function.as_deref(), Some("k::caller"));
        assert_eq!(instruction.as_deref(), Some("call_ref"));
        let (_, function, instruction) = feature_error(
            r#"(module (type $t (func)) (func $f (type $t)) (elem declare func $f)
                (func ref.func $f return_call_ref $t))"#,
        );
        assert_eq!(function.as_deref(), Some("func1"));
        assert_eq!(instruction.as_deref(), Some("return_call_ref"));
    }

    #[test]
    fn features_outside_code_are_named_without_a_function() {
        let (feature, function, _) = feature_error("(module (memory 1) (memory 1))");
        assert_eq!(feature, "multi-memory");
        assert_eq!(function, None);
        assert_eq!(feature_error("(module (memory i64 1))").0, "memory64");
        let (feature, _, instruction) =
            feature_error("(module (memory 1 1) (func (result i32) i32.const 0 i32.atomic.load))");
        assert_eq!(feature, "threads");
        assert_eq!(instruction.as_deref(), Some("i32_atomic_load"));
        let typed = "(module (type $t (func)) (func (param (ref $t))))";
        assert_eq!(feature_error(typed).0, "function-references or gc");
    }

    #[test]
    fn invalid_wasm_stays_a_parse_error() {
        let wasm = wat::parse_str("(module (func (result i32)))").unwrap();
        assert!(matches!(validate(&wasm), Err(InstrumentError::Parse(_))));
        assert!(matches!(
            validate(&wasm[..wasm.len() - 1]),
            Err(InstrumentError::Parse(_))
        ));
    }
}
