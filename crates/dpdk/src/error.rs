//! The crate's one error type: what was being done, and DPDK's errno with
//! its `rte_strerror` text.
//!
//! Some DPDK calls fail without setting `rte_errno` (several steps of
//! `rte_eal_init`, among them the lock on the runtime config that another
//! primary process holds, only log why). Their errno is 0, which
//! `rte_strerror` calls "Success"; such an error says instead that DPDK gave
//! no code and that its log lines hold the cause.

use std::ffi::CStr;
use std::fmt;

use l4vs_dpdk_sys as sys;

/// Linux errno values this crate reports on its own.
pub(crate) mod errno {
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOTSUP: i32 = 95;
    pub const EALREADY: i32 = 114;
}

/// What an [`Error`] with errno 0 says instead of `rte_strerror(0)`,
/// "Success".
const NO_CODE: &str = "failed without an error code (rte_errno 0); DPDK's log lines above say why";

/// A failed DPDK call.
///
/// Displays as `CONTEXT: MESSAGE (errno CODE)`, or `CONTEXT: MESSAGE` when
/// DPDK gave no code (`CODE` 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    context: String,
    code: i32,
    message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.message)?;
        if self.code != 0 {
            write!(f, " (errno {})", self.code)?;
        }
        Ok(())
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error for errno `code` (positive), with `rte_strerror`'s text;
    /// for 0 (DPDK failed without a code), a message saying so.
    pub fn new(context: impl Into<String>, code: i32) -> Error {
        if code == 0 {
            return Error {
                context: context.into(),
                code,
                message: NO_CODE.to_owned(),
            };
        }
        // SAFETY: rte_strerror accepts any value and returns a pointer to a
        // NUL-terminated string, static or in a per-thread buffer that lives
        // until the next call on this thread; it is copied out at once.
        let message = unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        Error {
            context: context.into(),
            code,
            message,
        }
    }

    /// An error from the calling thread's `rte_errno`, which may be 0 (see
    /// [`Error::new`]).
    pub(crate) fn last(context: impl Into<String>) -> Error {
        // SAFETY: reads this thread's rte_errno; no preconditions.
        let code = unsafe { sys::l4vs_errno() };
        Error::new(context, code)
    }

    /// `Ok(ret)` for `ret >= 0`; else the error for errno `-ret`, the
    /// convention of the ethdev API.
    pub(crate) fn check(context: &str, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Error::new(context, -ret))
        } else {
            Ok(ret)
        }
    }

    /// True for ENOTSUP: the driver does not offer the operation.
    pub fn is_not_supported(&self) -> bool {
        self.code() == errno::ENOTSUP
    }

    /// What was being done.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The errno value (positive), a libc or `RTE_MIN_ERRNO`-based code;
    /// 0 when DPDK failed without setting one.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// `rte_strerror(code)`, or what DPDK's log holds for code 0.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_context_text_and_code() {
        let e = Error::new("port by name \"x\"", errno::ENODEV);
        assert_eq!(e.code(), 19);
        assert_eq!(e.message(), "No such device");
        assert_eq!(
            e.to_string(),
            "port by name \"x\": No such device (errno 19)"
        );
    }

    #[test]
    fn check_maps_negative_returns() {
        assert_eq!(Error::check("ok", 3), Ok(3));
        let e = Error::check("start", -errno::EBUSY).unwrap_err();
        assert_eq!((e.context(), e.code()), ("start", errno::EBUSY));
    }

    /// `rte_eal_init` fails without setting `rte_errno` when another
    /// primary process holds the runtime config lock: the error must not
    /// read "Success (errno 0)".
    #[test]
    fn no_errno_is_not_success() {
        // A new thread's rte_errno is 0, as after such a failure.
        let e = std::thread::spawn(|| Error::last("EAL init"))
            .join()
            .unwrap();
        assert_eq!(e.code(), 0);
        assert_eq!(
            e.to_string(),
            "EAL init: failed without an error code (rte_errno 0); DPDK's log lines above say why"
        );
        assert!(!e.to_string().contains("Success"), "{e}");
    }

    #[test]
    fn rte_specific_codes_have_text() {
        // E_RTE_SECONDARY = RTE_MIN_ERRNO + 1, with RTE_MIN_ERRNO =
        // __ELASTERROR = 1000 (rte_errno.h): from rte_strerror's own table.
        let e = Error::new("x", 1001);
        assert!(e.message().contains("secondary"), "{}", e.message());
    }
}
