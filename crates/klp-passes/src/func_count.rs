//! The function-count caps, checked from the section headers before anything expensive.
//!
//! Validation, compiling and every per-function table cost time and memory in proportion to
//! the number of functions, and wasmtime compiles a trampoline for each function placed in the
//! table: the count is read from the import and function sections' headers (the code is not
//! read) and refused over the cap before anything else is done.

use wasmparser::{Parser, Payload, TypeRef};

/// Most functions (imports included) a kernel may have for `klp instrument` and `klp kallsyms`.
pub const MAX_KERNEL_FUNCS: u32 = 1 << 16;

/// Most functions a module may define for insmod.
pub const MAX_MODULE_FUNCS: u32 = 1 << 14;

/// How many functions a module imports and defines, read from the section headers only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FuncCount {
    /// Imported functions.
    pub imported: u32,
    /// Functions of the function section.
    pub defined: u32,
}

impl FuncCount {
    /// Imported and defined functions (saturating).
    pub fn total(&self) -> u32 {
        self.imported.saturating_add(self.defined)
    }
}

/// Counts the functions of `wasm` from its import and function sections, stopping at the code
/// section; nothing is validated (the caller validates afterwards).
///
/// # Errors
/// A decoding error in the header or in the import section.
pub fn count(wasm: &[u8]) -> Result<FuncCount, wasmparser::BinaryReaderError> {
    let mut n = FuncCount::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    if matches!(import?.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        n.imported = n.imported.saturating_add(1);
                    }
                }
            }
            Payload::FunctionSection(r) => n.defined = n.defined.saturating_add(r.count()),
            Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_counted_from_the_headers() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "f" (func))
                (import "env" "memory" (memory 1))
                (func) (func) (func (result i32) i32.const 1))"#,
        )
        .unwrap();
        let n = count(&wasm).unwrap();
        assert_eq!((n.imported, n.defined, n.total()), (1, 3, 4));
    }

    #[test]
    fn a_function_section_is_counted_from_its_header_alone() {
        // Function and code sections claiming 2^20 entries but holding one byte each: the
        // count comes from the headers, neither the entries nor the bodies are read.
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend([3, 4, 0x80, 0x80, 0x40, 0]);
        wasm.extend([10, 4, 0x80, 0x80, 0x40, 0xff]);
        assert_eq!(count(&wasm).unwrap().defined, 1 << 20);
    }
}
