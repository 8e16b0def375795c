//! /sys/kernel/livepatch, served from the livepatch core with Linux's files, modes and errors.

use crate::engine::Engine;
use crate::errno::Errno;
use crate::hostfs::{Node, Tree, flag, kstrtobool};
use crate::livepatch;
use crate::state::KernelState;
use crate::sys::SysResult;

/// Where the tree is mounted.
pub const ROOT: &str = "/sys/kernel/livepatch";

/// The /sys/kernel/livepatch tree.
pub struct Livepatch;

impl Tree for Livepatch {
    fn node(s: &KernelState, rel: &str) -> Option<Node> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let lp = &s.livepatch;
        let Some((&name, rest)) = parts.split_first() else {
            return Some(Node::Dir(
                lp.patches().map(|p| p.name().to_string()).collect(),
            ));
        };
        let patch = lp.by_name(name)?;
        match rest {
            [] => {
                let mut names: Vec<String> =
                    ["enabled", "force", "replace", "stack_order", "transition"]
                        .map(String::from)
                        .into();
                names.extend(patch.objs().iter().map(|o| o.display_name().to_string()));
                Some(Node::Dir(names))
            }
            ["enabled"] => Node::attr(0o644, flag(patch.enabled())),
            ["transition"] => Node::attr(0o444, flag(lp.in_transition(patch.id()))),
            ["force"] => Some(Node::Attr {
                mode: 0o200,
                value: None,
            }),
            ["replace"] => Node::attr(0o444, flag(patch.replace())),
            ["stack_order"] => Node::attr(0o444, format!("{}\n", lp.stack_order(name)?)),
            [obj, more @ ..] => {
                let obj = patch.objs().iter().find(|o| o.display_name() == *obj)?;
                match more {
                    [] => {
                        let mut names = vec!["patched".to_string()];
                        names.extend(obj.funcs().iter().map(|f| f.sysfs_name()));
                        Some(Node::Dir(names))
                    }
                    ["patched"] => Node::attr(0o444, flag(obj.patched())),
                    [func] if obj.funcs().iter().any(|f| f.sysfs_name() == *func) => {
                        Some(Node::Dir(Vec::new()))
                    }
                    _ => None,
                }
            }
        }
    }

    /// `enabled` enables or disables the patch, or reverses its transition; `force` forces the
    /// patch's transition (`EINVAL` for a patch not in transition, as Linux).
    fn store(e: &mut impl Engine, rel: &str, data: &[u8], _append: bool) -> SysResult<()> {
        let parts: Vec<&str> = rel.split('/').collect();
        let [patch, attr] = parts[..] else {
            return Err(Errno::EACCES.into());
        };
        let (enabled, in_transition) = e
            .with_state(|s| {
                let lp = &s.livepatch;
                let p = lp.by_name(patch)?;
                Some((p.enabled(), lp.in_transition(p.id())))
            })
            .ok_or(Errno::ENOENT)?;
        match attr {
            "enabled" => {
                let wanted = kstrtobool(data)?;
                match (enabled, wanted) {
                    (now, wanted) if now == wanted => Err(Errno::EINVAL.into()),
                    _ if in_transition => livepatch::reverse_transition(e, patch, wanted),
                    (false, true) => livepatch::enable(e, patch),
                    (true, false) => livepatch::disable(e, patch),
                    _ => Err(Errno::EINVAL.into()),
                }
            }
            // As force_store: the value first, 0 does nothing, 1 needs the patch in transition.
            "force" => match kstrtobool(data)? {
                false => Ok(()),
                true if !in_transition => Err(Errno::EINVAL.into()),
                true => livepatch::force(e, patch),
            },
            _ => Err(Errno::EINVAL.into()),
        }
    }
}
