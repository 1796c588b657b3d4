//! The crate's one error type: what was being done, and DPDK's errno with
//! its `rte_strerror` text.

use std::ffi::CStr;

use l4vs_dpdk_sys as sys;

/// Linux errno values this crate reports on its own.
pub(crate) mod errno {
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOTSUP: i32 = 95;
    pub const EALREADY: i32 = 114;
}

/// A failed DPDK call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {message} (errno {code})")]
pub struct Error {
    context: String,
    code: i32,
    message: String,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error for errno `code` (positive), with `rte_strerror`'s text.
    pub fn new(context: impl Into<String>, code: i32) -> Error {
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

    /// An error from the calling thread's `rte_errno`.
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

    /// What was being done.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The errno value (positive), a libc or `RTE_MIN_ERRNO`-based code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// `rte_strerror(code)`.
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

    #[test]
    fn rte_specific_codes_have_text() {
        // E_RTE_SECONDARY = RTE_MIN_ERRNO + 1, with RTE_MIN_ERRNO =
        // __ELASTERROR = 1000 (rte_errno.h): from rte_strerror's own table.
        let e = Error::new("x", 1001);
        assert!(e.message().contains("secondary"), "{}", e.message());
    }
}
