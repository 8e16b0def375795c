//! Formatted printk for modules: `pr_info!("fmt", args)` formats into a line on the stack and
//! logs it through the kernel's `printk`, and `%pGg` ([`GfpFlags`]).

use core::fmt::{self, Write};

use klp_abi::gfp::GFP_NAMES;

/// Longest line a module formats; longer ones are cut, as the kernel cuts its records.
const LINE_MAX: usize = 992;

/// A line being formatted: bytes past [`LINE_MAX`] are dropped.
struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(LINE_MAX - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats `args` (which may start with a `KERN_*` prefix) and logs the line.
pub fn printk_fmt(args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; LINE_MAX],
        len: 0,
    };
    // Line never fails; a Display impl that fails leaves a cut line.
    let _ = line.write_fmt(args);
    // SAFETY: the line's bytes are live.
    unsafe { crate::sys::printk(line.buf.as_ptr(), line.len) };
}

/// GFP flags as Linux's `%pGg` prints them: the names of `gfpflag_names` whose bits are all
/// set, first match first, joined by `|`, then any bits left as `0x..`; nothing for 0.
#[derive(Clone, Copy)]
pub struct GfpFlags(pub u32);

impl fmt::Display for GfpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut flags = self.0;
        for &(mask, name) in &GFP_NAMES {
            if flags == 0 {
                break;
            }
            if flags & mask == mask {
                f.write_str(name)?;
                flags &= !mask;
                if flags != 0 {
                    f.write_str("|")?;
                }
            }
        }
        if flags != 0 {
            write!(f, "{flags:#x}")?;
        }
        Ok(())
    }
}
