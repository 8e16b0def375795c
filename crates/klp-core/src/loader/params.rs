//! Module parameter types as kernel/params.c has them: `int`, `bool` and `array of int`, each
//! parsed (`param_set_*`) and shown (`param_get_*`) as Linux does.

use crate::errno::Errno;
use crate::hostfs::kstrtobool;

/// Bytes of an `int` element.
const INT: u32 = 4;

/// The type of a module parameter, from its `.modinfo` `parmtype` and its symbol's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `int`: 4 bytes.
    Int,
    /// `bool`: 1 byte, 0 or 1.
    Bool,
    /// `array of int`: the element count (`*nump`, a `u32`) then `max` ints, as klp-guest's
    /// `module_param_array!` lays it out.
    IntArray {
        /// Room for this many elements (`ARRAY_SIZE`).
        max: u32,
    },
}

impl ParamKind {
    /// The kind `.modinfo` gives parameter `param` (`parmtype=param:int`), checked against the
    /// size of its `__param_<param>` symbol. A parameter without a `parmtype` is an `int`.
    ///
    /// # Errors
    /// Why the type is unknown or does not fit the size (the module is malformed).
    pub fn from_modinfo(info: &[(String, String)], param: &str, size: u32) -> Result<Self, String> {
        let ty = info
            .iter()
            .filter(|(k, _)| k == "parmtype")
            .filter_map(|(_, v)| v.split_once(':'))
            .find(|(p, _)| *p == param)
            .map_or("int", |(_, ty)| ty);
        let kind = match ty {
            "int" => ParamKind::Int,
            "bool" => ParamKind::Bool,
            "array of int" if size > INT && size.is_multiple_of(INT) => ParamKind::IntArray {
                max: size / INT - 1,
            },
            "array of int" => {
                return Err(format!(
                    "parameter {param} is {size} bytes, not a count and at least one int"
                ));
            }
            other => return Err(format!("parameter {param} has unknown type '{other}'")),
        };
        if kind.size() != size {
            return Err(format!(
                "parameter {param} is {size} bytes, not {} ({ty})",
                kind.size()
            ));
        }
        Ok(kind)
    }

    /// Bytes the parameter occupies in the module's data.
    pub fn size(self) -> u32 {
        match self {
            ParamKind::Int => INT,
            ParamKind::Bool => 1,
            ParamKind::IntArray { max } => INT + max * INT,
        }
    }

    /// Whether `name` alone (no `=value`) sets it, as `KERNEL_PARAM_OPS_FL_NOARG` (bool: true).
    fn takes_no_value(self) -> bool {
        self == ParamKind::Bool
    }

    /// Parses `value` as the type's `set` op does and returns the bytes to write at the
    /// parameter's address (an array: its count and the elements given; later ones are kept).
    /// `None` is `name` without `=`.
    ///
    /// # Errors
    /// `EINVAL` for a value the type refuses (with [`Errno::ERANGE`] beyond an `int`, which
    /// Linux reports the same way), an array with too many elements or an empty one.
    pub fn set(self, value: Option<&[u8]>) -> Result<Vec<u8>, Errno> {
        let value = match value {
            Some(value) => value,
            None if self.takes_no_value() => b"1",
            None => return Err(Errno::EINVAL),
        };
        match self {
            ParamKind::Int => Ok(kstrtoint(value)?.to_le_bytes().to_vec()),
            ParamKind::Bool => Ok(vec![u8::from(kstrtobool(value)?)]),
            ParamKind::IntArray { max } => {
                // param_array: a comma-separated list of at least one and at most `max` ints.
                let mut out = vec![0; INT as usize];
                let mut num = 0u32;
                for elem in value.split(|&b| b == b',') {
                    if num == max {
                        return Err(Errno::EINVAL);
                    }
                    out.extend_from_slice(&kstrtoint(elem)?.to_le_bytes());
                    num += 1;
                }
                out[..INT as usize].copy_from_slice(&num.to_le_bytes());
                Ok(out)
            }
        }
    }

    /// Shows the parameter's bytes (its whole [`size`](Self::size)) as the type's `get` op:
    /// `42\n`, `Y\n`, `1,2,3\n` (an empty array shows nothing).
    pub fn get(self, mem: &[u8]) -> String {
        let int = |at: usize| {
            mem.get(at..at + INT as usize)
                .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match self {
            ParamKind::Int => format!("{}\n", int(0)),
            ParamKind::Bool => {
                if mem.first().is_some_and(|&b| b != 0) {
                    "Y\n".into()
                } else {
                    "N\n".into()
                }
            }
            ParamKind::IntArray { max } => {
                // param_array_get: each element's "%d\n", the newlines between them made commas.
                let num = (int(0) as u32).min(max) as usize;
                let elems: Vec<String> = (1..=num)
                    .map(|i| int(i * INT as usize).to_string())
                    .collect();
                if elems.is_empty() {
                    String::new()
                } else {
                    format!("{}\n", elems.join(","))
                }
            }
        }
    }

    /// The lines the kernel logs when `set` fails for module `module`: param_array's own
    /// `name: can only take N arguments` for too many elements, then parse_args'
    /// `` module: `value' invalid for parameter `name' ``.
    pub fn error_lines(self, module: &str, name: &str, value: Option<&[u8]>) -> Vec<String> {
        let mut lines = Vec::new();
        if let ParamKind::IntArray { max } = self
            && value.is_some_and(|v| v.split(|&b| b == b',').count() > max as usize)
        {
            lines.push(format!("{name}: can only take {max} arguments"));
        }
        let text = String::from_utf8_lossy(value.unwrap_or_default());
        lines.push(format!("{module}: `{text}' invalid for parameter `{name}'"));
        lines
    }
}

/// The kernel's `kstrtoint(s, 0, ...)`: an optional sign, then decimal, `0x` hexadecimal or
/// `0` octal digits, and at most one trailing newline.
///
/// # Errors
/// `EINVAL` for anything else, `ERANGE` for a value outside `i32`.
pub fn kstrtoint(data: &[u8]) -> Result<i32, Errno> {
    let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(Errno::EINVAL);
    }
    let magnitude = i64::from_str_radix(digits, radix).map_err(|_| Errno::ERANGE)?;
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).map_err(|_| Errno::ERANGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kstrtoint_takes_what_the_kernel_takes() {
        assert_eq!(kstrtoint(b"42\n"), Ok(42));
        assert_eq!(kstrtoint(b"-7"), Ok(-7));
        assert_eq!(kstrtoint(b"0x1f"), Ok(31));
        assert_eq!(kstrtoint(b"010"), Ok(8));
        assert_eq!(kstrtoint(b"0"), Ok(0));
        assert_eq!(kstrtoint(b"2147483648"), Err(Errno::ERANGE));
        assert_eq!(kstrtoint(b"-2147483648"), Ok(i32::MIN));
        for bad in [&b""[..], b"\n", b"1 ", b"x", b"1\n\n", b"08", b"-", b"0x"] {
            assert_eq!(kstrtoint(bad), Err(Errno::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn the_type_comes_from_parmtype_and_must_fit_the_symbol() {
        let i = info(&[
            ("parmtype", "flag:bool"),
            ("parmtype", "pids:array of int"),
            ("parmtype", "n:int"),
            ("parmtype", "s:charp"),
        ]);
        assert_eq!(ParamKind::from_modinfo(&i, "n", 4), Ok(ParamKind::Int));
        assert_eq!(ParamKind::from_modinfo(&i, "old", 4), Ok(ParamKind::Int));
        assert_eq!(ParamKind::from_modinfo(&i, "flag", 1), Ok(ParamKind::Bool));
        assert_eq!(
            ParamKind::from_modinfo(&i, "pids", 4 + 64 * 4),
            Ok(ParamKind::IntArray { max: 64 })
        );
        for (name, size) in [("n", 2), ("flag", 4), ("pids", 4), ("pids", 10), ("old", 1)] {
            assert!(ParamKind::from_modinfo(&i, name, size).is_err(), "{name}");
        }
        let err = ParamKind::from_modinfo(&i, "s", 4).unwrap_err();
        assert!(err.contains("unknown type 'charp'"), "{err}");
    }

    #[test]
    fn int_parameters_use_kstrtoint() {
        assert_eq!(
            ParamKind::Int.set(Some(b"-3")),
            Ok((-3i32).to_le_bytes().to_vec())
        );
        assert_eq!(ParamKind::Int.set(Some(b"y")), Err(Errno::EINVAL));
        assert_eq!(ParamKind::Int.set(None), Err(Errno::EINVAL));
        assert_eq!(ParamKind::Int.get(&7i32.to_le_bytes()), "7\n");
    }

    #[test]
    fn bool_parameters_take_y_n_1_0_and_show_y_or_n() {
        for yes in [&b"Y"[..], b"y", b"1", b"1\n", b"yes"] {
            assert_eq!(ParamKind::Bool.set(Some(yes)), Ok(vec![1]), "{yes:?}");
        }
        for no in [&b"N"[..], b"n", b"0", b"N\n"] {
            assert_eq!(ParamKind::Bool.set(Some(no)), Ok(vec![0]), "{no:?}");
        }
        assert_eq!(
            ParamKind::Bool.set(None),
            Ok(vec![1]),
            "a bare name sets it"
        );
        for bad in [&b"bad"[..], b"", b"2"] {
            assert_eq!(
                ParamKind::Bool.set(Some(bad)),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        assert_eq!(ParamKind::Bool.get(&[1]), "Y\n");
        assert_eq!(ParamKind::Bool.get(&[0]), "N\n");
    }

    #[test]
    fn int_arrays_keep_their_count_and_show_commas() {
        let kind = ParamKind::IntArray { max: 3 };
        let bytes = kind.set(Some(b"1,2,3\n")).unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(kind.get(&bytes), "1,2,3\n");
        let short = kind.set(Some(b"-5")).unwrap();
        assert_eq!(short.len(), 8);
        let mut mem = bytes.clone();
        mem[..8].copy_from_slice(&short);
        assert_eq!(kind.get(&mem), "-5\n", "only the count is shown");
        assert_eq!(kind.set(Some(b"1,2,3,4")), Err(Errno::EINVAL));
        assert_eq!(kind.set(Some(b"1,,2")), Err(Errno::EINVAL));
        assert_eq!(kind.set(Some(b"")), Err(Errno::EINVAL));
        assert_eq!(kind.set(None), Err(Errno::EINVAL));
        assert_eq!(kind.get(&[0; 16]), "", "an empty array shows nothing");
        let mut huge = bytes;
        huge[..4].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(
            kind.get(&huge),
            "1,2,3\n",
            "the count is clamped to the room"
        );
    }

    #[test]
    fn errors_are_logged_as_parse_args_logs_them() {
        assert_eq!(
            ParamKind::Bool.error_lines("busy", "block_transition", Some(b"bad")),
            ["busy: `bad' invalid for parameter `block_transition'"]
        );
        assert_eq!(
            ParamKind::Int.error_lines("m", "replace", None),
            ["m: `' invalid for parameter `replace'"]
        );
        assert_eq!(
            ParamKind::IntArray { max: 2 }.error_lines("sys", "klp_pids", Some(b"1,2,3")),
            [
                "klp_pids: can only take 2 arguments",
                "sys: `1,2,3' invalid for parameter `klp_pids'"
            ]
        );
    }
}
