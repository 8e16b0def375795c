//! Applying `reloc.CODE` / `reloc.DATA` entries in place: padded LEBs and little-endian words.

use wasmparser::{RelocationEntry, RelocationType};

use super::{ObjectError, malformed};

/// How a relocated value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    /// 5-byte padded unsigned LEB128.
    Leb,
    /// 5-byte padded signed LEB128.
    Sleb,
    /// 4-byte little-endian.
    I32,
}

/// What a relocation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    /// A linear address of a data symbol, plus the addend.
    MemoryAddr,
    /// The table slot of a function symbol.
    TableIndex,
    /// An index the structural rewrite replaces (function, global, type, table number).
    Structural,
}

/// Classifies a relocation type, refusing the ones the linker does not handle.
pub(super) fn classify(ty: RelocationType) -> Result<(Value, Field), ObjectError> {
    use RelocationType as R;
    Ok(match ty {
        R::MemoryAddrLeb => (Value::MemoryAddr, Field::Leb),
        R::MemoryAddrSleb => (Value::MemoryAddr, Field::Sleb),
        R::MemoryAddrI32 => (Value::MemoryAddr, Field::I32),
        R::TableIndexSleb => (Value::TableIndex, Field::Sleb),
        R::TableIndexI32 => (Value::TableIndex, Field::I32),
        R::FunctionIndexLeb | R::GlobalIndexLeb | R::TypeIndexLeb | R::TableNumberLeb => {
            (Value::Structural, Field::Leb)
        }
        other => return Err(malformed(format!("unsupported relocation type {other:?}"))),
    })
}

/// Writes `value` at `at` in `buf` in the given form.
///
/// # Errors
///
/// The field does not fit in `buf`, or a LEB site is not a 5-byte LEB.
pub(super) fn write(
    buf: &mut [u8],
    at: usize,
    field: Field,
    value: u32,
    entry: &RelocationEntry,
) -> Result<(), ObjectError> {
    let len = if field == Field::I32 { 4 } else { 5 };
    let site = at
        .checked_add(len)
        .and_then(|end| buf.get_mut(at..end))
        .ok_or_else(|| {
            malformed(format!(
                "relocation {:?} at offset {} is out of range",
                entry.ty, entry.offset
            ))
        })?;
    match field {
        Field::I32 => site.copy_from_slice(&value.to_le_bytes()),
        Field::Leb | Field::Sleb => {
            // lld pads every relocation site to 5 bytes; anything else would corrupt the code.
            if site[..4].iter().any(|b| b & 0x80 == 0) || site[4] & 0x80 != 0 {
                return Err(malformed(format!(
                    "relocation {:?} at offset {} is not a padded LEB",
                    entry.ty, entry.offset
                )));
            }
            let wide = if field == Field::Sleb {
                // Sign-extend: the i32 bit pattern as a 35-bit signed value.
                i64::from(i32::from_ne_bytes(value.to_ne_bytes()))
            } else {
                i64::from(value)
            };
            for (i, b) in site.iter_mut().enumerate() {
                let part = ((wide >> (7 * i)) & 0x7f) as u8;
                *b = if i < 4 { part | 0x80 } else { part };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> RelocationEntry {
        RelocationEntry {
            ty: RelocationType::MemoryAddrLeb,
            offset: 0,
            index: 0,
            addend: 0,
        }
    }

    fn read_leb(b: &[u8]) -> u64 {
        wasmparser::BinaryReader::new(b, 0).read_var_u32().unwrap() as u64
    }

    fn read_sleb(b: &[u8]) -> i32 {
        wasmparser::BinaryReader::new(b, 0).read_var_i32().unwrap()
    }

    #[test]
    fn padded_lebs_are_rewritten_in_place() {
        let mut buf = [0x41, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b];
        write(&mut buf, 1, Field::Leb, 0x12_3456, &entry()).unwrap();
        assert_eq!(read_leb(&buf[1..6]), 0x12_3456);
        write(&mut buf, 1, Field::Sleb, 0xffff_fff0, &entry()).unwrap();
        assert_eq!(read_sleb(&buf[1..6]), -16);
        write(&mut buf, 1, Field::Sleb, 0x8000_0000, &entry()).unwrap();
        assert_eq!(read_sleb(&buf[1..6]), i32::MIN);
        write(&mut buf, 1, Field::Sleb, 100, &entry()).unwrap();
        assert_eq!(read_sleb(&buf[1..6]), 100);
        assert_eq!(buf[6], 0x0b);
    }

    #[test]
    fn little_endian_words_are_written() {
        let mut buf = [0u8; 6];
        write(&mut buf, 2, Field::I32, 0x0102_0304, &entry()).unwrap();
        assert_eq!(buf, [0, 0, 4, 3, 2, 1]);
    }

    #[test]
    fn out_of_range_or_unpadded_sites_are_errors() {
        let mut buf = [0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(write(&mut buf, 1, Field::Leb, 1, &entry()).is_err());
        assert!(write(&mut buf, usize::MAX, Field::I32, 1, &entry()).is_err());
        let mut short = [0x05, 0x0b, 0, 0, 0];
        assert!(write(&mut short, 0, Field::Leb, 1, &entry()).is_err());
    }

    #[test]
    fn unknown_relocation_types_are_refused() {
        assert!(classify(RelocationType::FunctionOffsetI32).is_err());
        assert!(classify(RelocationType::MemoryAddrLeb64).is_err());
        assert!(classify(RelocationType::TableIndexRelSleb).is_err());
        assert_eq!(
            classify(RelocationType::TableIndexI32).unwrap(),
            (Value::TableIndex, Field::I32)
        );
    }
}
