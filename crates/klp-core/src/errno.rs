//! Linux errno values and their strerror texts.

use std::fmt;

/// A Linux error number, as the kernel returns it negated from a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// The errnos the host knows by name: numbers from `klp_abi::errno`, texts as glibc's.
macro_rules! errnos {
    ($($name:ident, $text:expr;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno(klp_abi::errno::$name);
            )*

            /// The symbolic name (`ENOENT`), or `E<n>` for an unknown number.
            pub fn name(self) -> String {
                match self.0 {
                    $(klp_abi::errno::$name => stringify!($name).to_string(),)*
                    n => format!("E{n}"),
                }
            }

            /// The text `strerror(3)` gives for this error.
            pub fn strerror(self) -> String {
                match self.0 {
                    $(klp_abi::errno::$name => $text.to_string(),)*
                    n => format!("Unknown error {n}"),
                }
            }
        }
    };
}

errnos! {
    EPERM, "Operation not permitted";
    ENOENT, "No such file or directory";
    ESRCH, "No such process";
    EINTR, "Interrupted system call";
    EIO, "Input/output error";
    ENXIO, "No such device or address";
    E2BIG, "Argument list too long";
    ENOEXEC, "Exec format error";
    EBADF, "Bad file descriptor";
    EAGAIN, "Resource temporarily unavailable";
    ENOMEM, "Cannot allocate memory";
    EACCES, "Permission denied";
    EFAULT, "Bad address";
    EBUSY, "Device or resource busy";
    EEXIST, "File exists";
    EXDEV, "Invalid cross-device link";
    ENODEV, "No such device";
    ENOTDIR, "Not a directory";
    EISDIR, "Is a directory";
    EINVAL, "Invalid argument";
    EMFILE, "Too many open files";
    EFBIG, "File too large";
    ENOSPC, "No space left on device";
    ESPIPE, "Illegal seek";
    EROFS, "Read-only file system";
    ERANGE, "Numerical result out of range";
    ENAMETOOLONG, "File name too long";
    ENOSYS, "Function not implemented";
    ENOTEMPTY, "Directory not empty";
    ELOOP, "Too many levels of symbolic links";
    ENOTSUP, "Operation not supported";
}

/// The largest errno a return value can carry (`MAX_ERRNO` in Linux's `include/linux/err.h`).
const MAX_ERRNO: i32 = 4095;

impl Errno {
    /// Decodes a syscall return value as Linux's `IS_ERR_VALUE` does: -4095..=-1 are errors, any
    /// other value (a large address, a stray negative number) is a value.
    ///
    /// # Errors
    /// Returns the errno when `ret` is in -4095..=-1.
    pub fn check(ret: i32) -> Result<i32, Errno> {
        if (-MAX_ERRNO..0).contains(&ret) {
            Err(Errno(-ret))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.strerror())
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_matches_glibc_text() {
        assert_eq!(Errno::ENOENT.strerror(), "No such file or directory");
        assert_eq!(Errno::EBUSY.to_string(), "Device or resource busy");
        assert_eq!(Errno(4095).strerror(), "Unknown error 4095");
    }

    #[test]
    fn check_splits_negative_returns_into_errors() {
        assert_eq!(Errno::check(3), Ok(3));
        assert_eq!(Errno::check(-22), Err(Errno::EINVAL));
        assert_eq!(Errno::check(-4095), Err(Errno(4095)));
        assert_eq!(Errno::check(-4096), Ok(-4096));
        assert_eq!(Errno::check(i32::MIN), Ok(i32::MIN));
        assert_eq!(Errno::EINVAL.name(), "EINVAL");
    }
}
