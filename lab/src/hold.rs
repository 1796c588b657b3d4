//! `l4vs-lab hold-echo`: long-lived TCP connections through the director,
//! each sending a little every interval to the real servers' echo service,
//! and a stream of new connections beside them. What a failover must not
//! break: the report says how many connections lived through the run and
//! the longest time no echo came back on any of them (the takeover time
//! as the client sees it).
//!
//! Output, one record per line, stable for scripts ([`HoldReport`]):
//!
//! ```text
//! opened 500
//! survived 500
//! broken 0
//! max_gap_ms 412
//! max_gap_at_ms 3120
//! new_ok 95
//! new_failed 0
//! ```
//!
//! `max_gap_ms` is the longest wait between two consecutive echoes of the
//! whole run, all connections together, counted from when the last
//! connection opened; `max_gap_at_ms` is when it began, in milliseconds
//! since the start. Reasons of broken connections go to stderr.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Bytes of each message (a sequence number and padding).
const MESSAGE_LEN: usize = 16;

/// What to run.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    /// The echo service (the VIP's).
    pub target: SocketAddrV4,
    /// Long-lived connections.
    pub connections: usize,
    /// Between two messages of one connection.
    pub interval: Duration,
    /// How long the connections live.
    pub duration: Duration,
    /// New connections a second beside them (one message each).
    pub new_per_sec: u32,
    /// How long a connect or an echo may take before the connection
    /// counts as broken: longer than any takeover.
    pub timeout: Duration,
}

/// What [`run`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldReport {
    /// Long-lived connections opened.
    pub opened: u32,
    /// Of those, the ones that echoed every message to the end.
    pub survived: u32,
    /// Connections that broke or never opened.
    pub broken: u32,
    /// The longest wait between two consecutive echoes, in milliseconds.
    pub max_gap_ms: u64,
    /// When that wait began, in milliseconds since the start.
    pub max_gap_at_ms: u64,
    /// New connections that echoed their message.
    pub new_ok: u32,
    /// New connections that did not.
    pub new_failed: u32,
}

impl fmt::Display for HoldReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "opened {}", self.opened)?;
        writeln!(f, "survived {}", self.survived)?;
        writeln!(f, "broken {}", self.broken)?;
        writeln!(f, "max_gap_ms {}", self.max_gap_ms)?;
        writeln!(f, "max_gap_at_ms {}", self.max_gap_at_ms)?;
        writeln!(f, "new_ok {}", self.new_ok)?;
        writeln!(f, "new_failed {}", self.new_failed)
    }
}

impl HoldReport {
    /// Reads the text [`HoldReport`]'s Display writes.
    ///
    /// # Errors
    /// A line that is not `key number` of a known key, or a missing key.
    pub fn parse(text: &str) -> Result<HoldReport> {
        let mut r = HoldReport::default();
        let mut seen = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once(' ')
                .with_context(|| format!("not `key value`: {line:?}"))?;
            let n: u64 = value
                .trim()
                .parse()
                .with_context(|| format!("not a number: {line:?}"))?;
            let small = || u32::try_from(n).context("too large");
            match key {
                "opened" => r.opened = small()?,
                "survived" => r.survived = small()?,
                "broken" => r.broken = small()?,
                "max_gap_ms" => r.max_gap_ms = n,
                "max_gap_at_ms" => r.max_gap_at_ms = n,
                "new_ok" => r.new_ok = small()?,
                "new_failed" => r.new_failed = small()?,
                _ => anyhow::bail!("unknown key in {line:?}"),
            }
            seen += 1;
        }
        anyhow::ensure!(seen == 7, "a report has 7 lines, this one {seen}: {text:?}");
        Ok(r)
    }
}

/// One long-lived connection: the times its echoes came back, or why it
/// broke.
fn hold_one(
    target: SocketAddr,
    start_after: Duration,
    interval: Duration,
    until: Instant,
    timeout: Duration,
) -> std::result::Result<Vec<Instant>, String> {
    thread::sleep(start_after);
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .and_then(|()| s.set_nodelay(true))
        .map_err(|e| format!("socket options: {e}"))?;
    let mut echoes = Vec::new();
    let mut next = Instant::now();
    let mut seq = 0u64;
    while Instant::now() < until {
        let mut msg = [b'.'; MESSAGE_LEN];
        msg[..8].copy_from_slice(&seq.to_be_bytes());
        msg[MESSAGE_LEN - 1] = b'\n';
        s.write_all(&msg).map_err(|e| format!("send #{seq}: {e}"))?;
        let mut back = [0u8; MESSAGE_LEN];
        s.read_exact(&mut back)
            .map_err(|e| format!("echo #{seq}: {e}"))?;
        if back != msg {
            return Err(format!("echo #{seq}: other bytes came back"));
        }
        echoes.push(Instant::now());
        seq += 1;
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    Ok(echoes)
}

/// One short connection: connect, one echo, close.
fn once(target: SocketAddr, timeout: Duration) -> std::result::Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| format!("socket options: {e}"))?;
    let msg = [b'n'; MESSAGE_LEN];
    s.write_all(&msg).map_err(|e| format!("send: {e}"))?;
    let mut back = [0u8; MESSAGE_LEN];
    s.read_exact(&mut back).map_err(|e| format!("echo: {e}"))?;
    Ok(())
}

/// Runs the connections (a thread each, their starts spread over one
/// interval) and the stream of new ones, and reports. Broken connections'
/// reasons go to stderr, the first 10 of each kind.
pub fn run(cfg: &HoldConfig) -> HoldReport {
    let start = Instant::now();
    let until = start + cfg.duration;
    let target = SocketAddr::V4(cfg.target);
    let n = cfg.connections.max(1) as u32;
    let held: Vec<_> = (0..cfg.connections)
        .map(|i| {
            let after = cfg.interval * i as u32 / n;
            let (interval, timeout) = (cfg.interval, cfg.timeout);
            thread::spawn(move || hold_one(target, after, interval, until, timeout))
        })
        .collect();
    let new_ok = Arc::new(AtomicU32::new(0));
    let new_failed = Arc::new(AtomicU32::new(0));
    let stream = (cfg.new_per_sec > 0).then(|| {
        let (ok, failed, timeout) = (new_ok.clone(), new_failed.clone(), cfg.timeout);
        let gap = Duration::from_secs(1) / cfg.new_per_sec;
        thread::spawn(move || {
            let mut tries = Vec::new();
            let mut next = Instant::now();
            while next < until {
                let (ok, failed) = (ok.clone(), failed.clone());
                tries.push(thread::spawn(move || match once(target, timeout) {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 10 {
                            eprintln!("hold-echo: a new connection: {e}");
                        }
                        0
                    }
                }));
                next += gap;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            for t in tries {
                let _ = t.join();
            }
        })
    });
    let mut report = HoldReport::default();
    let mut all: Vec<Instant> = Vec::new();
    let mut last_opened = start;
    for h in held {
        match h.join() {
            Ok(Ok(echoes)) => {
                report.opened += 1;
                report.survived += 1;
                if let Some(first) = echoes.first() {
                    last_opened = last_opened.max(*first);
                }
                all.extend(echoes);
            }
            Ok(Err(why)) => {
                if !why.starts_with("connect") {
                    report.opened += 1;
                }
                report.broken += 1;
                if report.broken <= 10 {
                    eprintln!("hold-echo: a long-lived connection broke: {why}");
                }
            }
            Err(_) => report.broken += 1,
        }
    }
    if let Some(s) = stream {
        let _ = s.join();
    }
    all.sort_unstable();
    let (gap, at) = all
        .windows(2)
        .filter(|w| w[0] >= last_opened)
        .map(|w| (w[1] - w[0], w[0]))
        .max()
        .unwrap_or((Duration::ZERO, start));
    report.max_gap_ms = gap.as_millis() as u64;
    report.max_gap_at_ms = at
        .checked_duration_since(start)
        .unwrap_or_default()
        .as_millis() as u64;
    report.new_ok = new_ok.load(Ordering::Relaxed);
    report.new_failed = new_failed.load(Ordering::Relaxed);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back() {
        let r = HoldReport {
            opened: 500,
            survived: 499,
            broken: 1,
            max_gap_ms: 412,
            max_gap_at_ms: 3120,
            new_ok: 95,
            new_failed: 2,
        };
        assert_eq!(HoldReport::parse(&r.to_string()).unwrap(), r);
        assert!(HoldReport::parse("opened 5\n").is_err());
        assert!(HoldReport::parse("opened x\n").is_err());
    }

    #[test]
    fn connections_to_a_local_echo_server_survive_and_count() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let r = run(&HoldConfig {
            target: addr,
            connections: 5,
            interval: Duration::from_millis(20),
            duration: Duration::from_millis(300),
            new_per_sec: 20,
            timeout: Duration::from_secs(2),
        });
        assert_eq!((r.opened, r.survived, r.broken), (5, 5, 0), "{r}");
        assert!(r.new_ok > 0 && r.new_failed == 0, "{r}");
        // A closed port: every connection broken, none opened.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(gone) = closed.local_addr().unwrap() else {
            unreachable!()
        };
        drop(closed);
        let r = run(&HoldConfig {
            target: gone,
            connections: 3,
            interval: Duration::from_millis(20),
            duration: Duration::from_millis(100),
            new_per_sec: 0,
            timeout: Duration::from_secs(1),
        });
        assert_eq!((r.opened, r.survived, r.broken), (0, 0, 3), "{r}");
    }
}
