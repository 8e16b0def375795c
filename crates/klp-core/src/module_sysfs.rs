//! `/sys/module`: each loaded module's `initstate`, `refcnt`, `holders/`, `taint`, `coresize`
//! and `parameters/`, as kernel/module/sysfs.c and kernel/params.c show them.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::hostfs::{Node, Tree};
use crate::loader::{LoadedModule, Param};
use crate::state::KernelState;
use crate::sys::SysResult;

/// Where the tree is mounted.
pub const ROOT: &str = "/sys/module";

/// The files of a module's directory, in the order `ls` shows them.
const FILES: [&str; 6] = [
    "coresize",
    "holders",
    "initstate",
    "parameters",
    "refcnt",
    "taint",
];

/// `/sys/module`.
pub struct SysModule;

/// The module and the rest of the path below its directory.
fn split<'a>(s: &'a KernelState, rel: &'a str) -> Option<(&'a LoadedModule, &'a str)> {
    let (name, rest) = rel.split_once('/').unwrap_or((rel, ""));
    Some((s.module(name)?, rest))
}

/// A parameter shown in sysfs (its permission is not 0).
fn param<'a>(m: &'a LoadedModule, name: &str) -> Option<&'a Param> {
    m.params.iter().find(|p| p.name == name && p.perm != 0)
}

/// The parameter at `rel` (`<module>/parameters/<name>`), if it is shown.
fn param_at<'a>(s: &'a KernelState, rel: &'a str) -> Option<&'a Param> {
    let (m, rest) = split(s, rel)?;
    param(m, rest.strip_prefix("parameters/")?)
}

impl Tree for SysModule {
    fn node(s: &KernelState, rel: &str) -> Option<Node> {
        if rel.is_empty() {
            let mut names: Vec<String> = s.modules.iter().map(|m| m.name.clone()).collect();
            names.sort();
            return Some(Node::Dir(names));
        }
        let (m, rest) = split(s, rel)?;
        match rest {
            "" => Some(Node::Dir(FILES.iter().map(|f| f.to_string()).collect())),
            "coresize" => Node::attr(0o444, format!("{}\n", m.data_size)),
            "initstate" => Node::attr(0o444, "live\n"),
            "refcnt" => Node::attr(0o444, format!("{}\n", m.refcnt)),
            "taint" => Node::attr(0o444, if m.livepatch { "K\n" } else { "\n" }),
            "holders" => {
                let mut holders: Vec<String> = s
                    .modules
                    .iter()
                    .filter(|other| other.uses.contains(&m.name))
                    .map(|other| other.name.clone())
                    .collect();
                holders.sort();
                Some(Node::Dir(holders))
            }
            "parameters" => Some(Node::Dir(
                m.params
                    .iter()
                    .filter(|p| p.perm != 0)
                    .map(|p| p.name.clone())
                    .collect(),
            )),
            rest => {
                if let Some(holder) = rest.strip_prefix("holders/") {
                    // Linux's holders are symlinks to the holder's directory; here empty files.
                    let holds = s.module(holder)?.uses.contains(&m.name);
                    return holds.then(|| Node::attr(0o444, "")).flatten();
                }
                // The value is filled in by `lookup`, which can read kernel memory.
                let p = param(m, rest.strip_prefix("parameters/")?)?;
                Some(Node::Attr {
                    mode: p.perm,
                    value: (p.perm & 0o444 != 0).then(String::new),
                })
            }
        }
    }

    /// A parameter reads as its `int` in the module's data (`param_get_int`).
    fn lookup(e: &mut impl Engine, rel: &str) -> Option<Node> {
        let node = e.with_state(|s| Self::node(s, rel))?;
        match (&node, e.with_state(|s| param_at(s, rel).map(|p| p.addr))) {
            (
                Node::Attr {
                    mode,
                    value: Some(_),
                },
                Some(addr),
            ) => {
                let mut word = [0u8; 4];
                e.read(addr, &mut word).ok()?;
                Node::attr(*mode, format!("{}\n", i32::from_le_bytes(word)))
            }
            _ => Some(node),
        }
    }

    /// Writing a parameter parses it as `param_set_int` does (`kstrtoint` in any base, one
    /// trailing newline): `EINVAL` for anything else, `ERANGE` beyond an `int`.
    fn store(e: &mut impl Engine, rel: &str, data: &[u8], _append: bool) -> SysResult<()> {
        let addr = e
            .with_state(|s| param_at(s, rel).map(|p| p.addr))
            .ok_or(Errno::EACCES)?;
        let value = kstrtoint(data)?;
        e.write(addr, &value.to_le_bytes())?;
        Ok(())
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
    use super::kstrtoint;
    use crate::errno::Errno;

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
}
