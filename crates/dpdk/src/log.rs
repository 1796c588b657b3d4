//! DPDK's own log (`rte_log`: EAL, drivers, libraries) handed to a Rust
//! function, line by line with its level, so that the application logs
//! it with its own timestamps and levels instead of DPDK writing to
//! stderr and syslog beside it.

use std::ffi::c_char;
use std::sync::OnceLock;

use l4vs_dpdk_sys as sys;

use crate::error::{Error, Result};

/// DPDK's log levels (`rte_log.h`: `RTE_LOG_EMERG` 1 to `RTE_LOG_DEBUG`
/// 8), syslog's eight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `RTE_LOG_EMERG`.
    Emergency,
    /// `RTE_LOG_ALERT`.
    Alert,
    /// `RTE_LOG_CRIT`.
    Critical,
    /// `RTE_LOG_ERR`.
    Error,
    /// `RTE_LOG_WARNING`.
    Warning,
    /// `RTE_LOG_NOTICE`.
    Notice,
    /// `RTE_LOG_INFO`, and a level DPDK did not say.
    Info,
    /// `RTE_LOG_DEBUG`.
    Debug,
}

impl LogLevel {
    /// The level of `rte_log_cur_msg_loglevel`'s value; unknown values
    /// (0, out of range) count as info.
    pub fn from_raw(level: u32) -> LogLevel {
        match level {
            1 => LogLevel::Emergency,
            2 => LogLevel::Alert,
            3 => LogLevel::Critical,
            4 => LogLevel::Error,
            5 => LogLevel::Warning,
            6 => LogLevel::Notice,
            8 => LogLevel::Debug,
            _ => LogLevel::Info,
        }
    }
}

/// Where DPDK's lines go: one line (no newline), with its level.
pub type LogSink = fn(LogLevel, &str);

static SINK: OnceLock<LogSink> = OnceLock::new();

/// Every line of `text` that is not blank, without its line ending.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
}

extern "C" fn write_to_sink(level: u32, text: *const c_char, len: usize) {
    let Some(sink) = SINK.get() else { return };
    if text.is_null() {
        return;
    }
    // SAFETY: the shim passes the buffer stdio is flushing, `len` bytes
    // long and valid for the duration of this call; it is only read here.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
    let text = String::from_utf8_lossy(bytes);
    let level = LogLevel::from_raw(level);
    // A panic must not unwind into C (it would abort the process); a
    // line lost is the lesser harm.
    let _ = std::panic::catch_unwind(|| {
        for line in lines(&text) {
            sink(level, line);
        }
    });
}

/// Sends DPDK's log to `sink` from now on, for the whole process. Call it
/// before [`crate::Eal::init`] to have EAL's own lines too. The sink runs
/// on whichever thread logs, while DPDK holds the log stream's lock: it
/// must not call DPDK.
///
/// # Errors
/// `EALREADY` when the log was routed before (one sink per process), or
/// the errno of creating the stream.
pub fn route_log(sink: LogSink) -> Result<()> {
    SINK.set(sink)
        .map_err(|_| Error::new("routing the DPDK log", crate::error::errno::EALREADY))?;
    // SAFETY: write_to_sink matches l4vs_log_sink and lives for the whole
    // program; the shim only stores it and calls it from stdio writes.
    let ret = unsafe { sys::l4vs_log_route(Some(write_to_sink)) };
    if ret < 0 {
        return Err(Error::new("routing the DPDK log", -ret));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_lines_are_read_as_dpdk_writes_them() {
        assert_eq!(LogLevel::from_raw(4), LogLevel::Error);
        assert_eq!(LogLevel::from_raw(5), LogLevel::Warning);
        assert_eq!(LogLevel::from_raw(8), LogLevel::Debug);
        assert_eq!(LogLevel::from_raw(0), LogLevel::Info);
        assert_eq!(LogLevel::from_raw(99), LogLevel::Info);
        let got: Vec<&str> = lines("EAL: one\r\n\nEAL: two\n  \n").collect();
        assert_eq!(got, ["EAL: one", "EAL: two"]);
    }
}
