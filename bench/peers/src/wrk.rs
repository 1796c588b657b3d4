//! The HTTP client: `wrk` (the Debian package), one thread, a fixed number
//! of connections, either keep-alive (request throughput) or with
//! `Connection: close` on every request (each request a new TCP connection,
//! so its requests/s is the new connections/s).
//!
//! This module only builds the argument list and reads wrk's summary; the
//! caller runs it in the client namespace.

use anyhow::{Context, Result};

/// How the client uses its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMode {
    /// HTTP/1.1 keep-alive: requests/s over long-lived connections.
    KeepAlive,
    /// `Connection: close`: one request per TCP connection.
    Close,
}

/// wrk's arguments for one run against `url`.
pub fn args(mode: HttpMode, connections: u32, seconds: u32, url: &str) -> Vec<String> {
    let mut a = vec![
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--timeout".to_owned(),
        "2s".to_owned(),
    ];
    if mode == HttpMode::Close {
        a.push("-H".to_owned());
        a.push("Connection: close".to_owned());
    }
    a.push(url.to_owned());
    a
}

/// What wrk printed, the parts the report uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WrkResult {
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// `N requests in ...`.
    pub requests: u64,
    /// Sum of the `Socket errors:` counts (connect, read, write, timeout).
    pub socket_errors: u64,
    /// `Non-2xx or 3xx responses:`.
    pub bad_status: u64,
}

/// Reads wrk's text summary.
///
/// ```text
///   230242 requests in 5.00s, 33.59MB read
///   Socket errors: connect 0, read 3, write 0, timeout 0
///   Non-2xx or 3xx responses: 12
/// Requests/sec:  46043.42
/// ```
///
/// # Errors
/// If `Requests/sec:` or the request count is missing or malformed.
pub fn parse(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut saw_rate = false;
    let mut saw_count = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v
                .trim()
                .parse()
                .with_context(|| format!("bad wrk line {line:?}"))?;
            saw_rate = true;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 3, write 0, timeout 0"
            for part in v.split(',') {
                let n = part.split_whitespace().nth(1).unwrap_or("0");
                r.socket_errors += n
                    .parse::<u64>()
                    .with_context(|| format!("bad wrk line {line:?}"))?;
            }
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.bad_status = v
                .trim()
                .parse()
                .with_context(|| format!("bad wrk line {line:?}"))?;
        } else if line.contains(" requests in ") {
            let n = line.split_whitespace().next().unwrap_or_default();
            r.requests = n
                .parse()
                .with_context(|| format!("bad wrk line {line:?}"))?;
            saw_count = true;
        }
    }
    if !saw_rate || !saw_count {
        anyhow::bail!("no wrk summary in its output: {:?}", text.trim());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 5s test @ http://198.18.0.100:8080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   693.85us  220.59us   4.74ms   78.98%
    Req/Sec    46.27k     2.61k   50.29k    80.00%
  230242 requests in 5.00s, 33.59MB read
Requests/sec:  46043.42
Transfer/sec:      6.72MB
";

    const ERRORS: &str = "Running 5s test @ http://198.18.0.100:8080/
  1 threads and 32 connections
  50321 requests in 5.10s, 7.01MB read
  Socket errors: connect 2, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:   9866.86
Transfer/sec:      1.37MB
";

    #[test]
    fn clean_run() {
        let r = parse(CLEAN).unwrap();
        assert_eq!(r.requests, 230_242);
        assert!((r.requests_per_sec - 46_043.42).abs() < 1e-6);
        assert_eq!(r.socket_errors, 0);
        assert_eq!(r.bad_status, 0);
    }

    #[test]
    fn errors_are_summed() {
        let r = parse(ERRORS).unwrap();
        assert_eq!(r.requests, 50_321);
        assert_eq!(r.socket_errors, 12);
        assert_eq!(r.bad_status, 12);
    }

    #[test]
    fn missing_summary_is_an_error() {
        assert!(parse("unable to connect to 198.18.0.100:8080 Connection refused\n").is_err());
        assert!(parse("Requests/sec: fast\n  1 requests in 1s\n").is_err());
    }

    #[test]
    fn arguments() {
        assert_eq!(
            args(HttpMode::KeepAlive, 32, 5, "http://x/"),
            ["-t1", "-c32", "-d5s", "--timeout", "2s", "http://x/"]
        );
        let close = args(HttpMode::Close, 32, 5, "http://x/");
        assert!(close.windows(2).any(|w| w == ["-H", "Connection: close"]));
    }
}
