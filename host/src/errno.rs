//! Linux errno values and their strerror texts.

use std::fmt;

/// A Linux error number, as the kernel returns it negated from a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $num:expr, $text:expr;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($num);
            )*

            /// The symbolic name (`ENOENT`), or `E<n>` for an unknown number.
            pub fn name(self) -> String {
                match self.0 {
                    $($num => stringify!($name).to_string(),)*
                    n => format!("E{n}"),
                }
            }

            /// The text `strerror(3)` gives for this error.
            pub fn strerror(self) -> String {
                match self.0 {
                    $($num => $text.to_string(),)*
                    n => format!("Unknown error {n}"),
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    ENOEXEC = 8, "Exec format error";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    EXDEV = 18, "Invalid cross-device link";
    ENODEV = 19, "No such device";
    ENOTDIR = 20, "Not a directory";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    EMFILE = 24, "Too many open files";
    EFBIG = 27, "File too large";
    ENOSPC = 28, "No space left on device";
    ESPIPE = 29, "Illegal seek";
    EROFS = 30, "Read-only file system";
    ERANGE = 34, "Numerical result out of range";
    ENAMETOOLONG = 36, "File name too long";
    ENOSYS = 38, "Function not implemented";
    ENOTEMPTY = 39, "Directory not empty";
    ELOOP = 40, "Too many levels of symbolic links";
    ENOTSUP = 95, "Operation not supported";
}

impl Errno {
    /// Decodes a syscall return value: negative values are errors.
    ///
    /// # Errors
    /// Returns the errno when `ret` is negative.
    pub fn check(ret: i32) -> Result<i32, Errno> {
        if ret < 0 { Err(Errno(-ret)) } else { Ok(ret) }
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
        assert_eq!(Errno::EINVAL.name(), "EINVAL");
    }
}
