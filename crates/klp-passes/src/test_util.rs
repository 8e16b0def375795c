//! Helpers the unit tests share: validating output and reading function bodies back.

use wasmparser::{Operator, Parser, Payload, Validator, WasmFeatures};

/// Panics unless `wasm` validates with the default features.
pub fn validate(wasm: &[u8]) {
    Validator::new_with_features(WasmFeatures::default())
        .validate_all(wasm)
        .unwrap();
}

/// Operators of every function body, in order.
pub fn bodies(wasm: &[u8]) -> Vec<Vec<Operator<'_>>> {
    Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| match p.unwrap() {
            Payload::CodeSectionEntry(b) => Some(
                b.get_operators_reader()
                    .unwrap()
                    .into_iter()
                    .map(Result::unwrap)
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
