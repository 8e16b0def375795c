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

    /// A parameter reads as its type's `get` op shows its bytes (`param_attr_show`).
    fn lookup(e: &mut impl Engine, rel: &str) -> Option<Node> {
        let node = e.with_state(|s| Self::node(s, rel))?;
        match (&node, e.with_state(|s| param_at(s, rel).cloned())) {
            (
                Node::Attr {
                    mode,
                    value: Some(_),
                },
                Some(p),
            ) => {
                let mut mem = vec![0u8; p.kind.size() as usize];
                e.read(p.addr, &mut mem).ok()?;
                Node::attr(*mode, p.kind.get(&mem))
            }
            _ => Some(node),
        }
    }

    /// Writing a parameter parses it as its type's `set` op (`param_attr_store`): `EINVAL` for
    /// what the type refuses, `ERANGE` beyond an `int`.
    fn store(e: &mut impl Engine, rel: &str, data: &[u8], _append: bool) -> SysResult<()> {
        let p = e
            .with_state(|s| param_at(s, rel).cloned())
            .ok_or(Errno::EACCES)?;
        let bytes = p.kind.set(Some(data))?;
        e.write(p.addr, &bytes)?;
        Ok(())
    }
}
