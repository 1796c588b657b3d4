//! The UDP client (`l4vs-peers udp-flood`, run in the client namespace): a
//! closed-loop echo load over many flows, measuring answered datagrams/s.
//!
//! Each flow is its own connected socket (its own source port, so its own
//! 5-tuple: directors spread flows, not packets) and keeps `window`
//! datagrams in flight; every answer sends the next one. One thread, epoll
//! through `mio`, no busy waiting, so the client leaves the CPU it shares
//! with the servers to them when it has nothing to do.
//!
//! A flow that heard nothing for [`STALL`] has lost its window somewhere
//! (a full queue on the way): its window is sent again and the stall is
//! counted. Answers are counted only inside the measured interval, after a
//! warm-up. The output, one `key value` per line, is stable for the parent:
//!
//! ```text
//! replies 1234567
//! seconds 5.000
//! stalls 0
//! errors 0
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

/// Silence after which a flow's window is presumed lost and re-sent.
pub const STALL: Duration = Duration::from_millis(200);
/// Payload of every request: small, like a DNS query, constant.
const PAYLOAD: &[u8] = b"l4vs-peers udp probe 0123456789";

/// What one flood does.
#[derive(Debug, Clone, Copy)]
pub struct FloodConfig {
    /// The echo service (a VIP or a real server).
    pub target: SocketAddr,
    /// Concurrent flows (sockets, source ports).
    pub flows: u32,
    /// Datagrams in flight per flow.
    pub window: u32,
    /// Time before counting starts.
    pub warmup: Duration,
    /// The measured interval.
    pub duration: Duration,
}

/// What a flood measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FloodResult {
    /// Answers received inside the measured interval.
    pub replies: u64,
    /// Length of the measured interval.
    pub seconds: f64,
    /// Windows re-sent after a [`STALL`].
    pub stalls: u64,
    /// Send/receive errors (e.g. ICMP port unreachable surfacing as ECONNREFUSED).
    pub errors: u64,
}

impl FloodResult {
    /// Answered datagrams per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.replies as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Parses the [`fmt::Display`] form.
    ///
    /// # Errors
    /// If `replies` or `seconds` is missing, or a value is malformed.
    pub fn parse(text: &str) -> Result<FloodResult> {
        let mut r = FloodResult::default();
        let (mut replies, mut seconds) = (false, false);
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(key), Some(value), None) = (w.next(), w.next(), w.next()) else {
                continue;
            };
            let bad = || format!("bad udp-flood line {line:?}");
            match key {
                "replies" => {
                    r.replies = value.parse().with_context(bad)?;
                    replies = true;
                }
                "seconds" => {
                    r.seconds = value.parse().with_context(bad)?;
                    seconds = true;
                }
                "stalls" => r.stalls = value.parse().with_context(bad)?,
                "errors" => r.errors = value.parse().with_context(bad)?,
                _ => {}
            }
        }
        if !replies || !seconds {
            bail!("no udp-flood result in {:?}", text.trim());
        }
        Ok(r)
    }
}

impl fmt::Display for FloodResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "replies {}", self.replies)?;
        writeln!(f, "seconds {:.3}", self.seconds)?;
        writeln!(f, "stalls {}", self.stalls)?;
        writeln!(f, "errors {}", self.errors)
    }
}

struct Flow {
    sock: UdpSocket,
    in_flight: u32,
    last_heard: Instant,
}

impl Flow {
    /// Sends until `window` are in flight; a send that fails is an error
    /// and simply not in flight (the stall timer covers it).
    fn fill(&mut self, window: u32, errors: &mut u64) {
        while self.in_flight < window {
            match self.sock.send(PAYLOAD) {
                Ok(_) => self.in_flight += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    *errors += 1;
                    break;
                }
            }
        }
    }
}

/// Runs the flood and returns what it measured.
///
/// # Errors
/// If a socket cannot be created, bound, connected or registered.
pub fn flood(cfg: &FloodConfig) -> Result<FloodResult> {
    if cfg.flows == 0 || cfg.window == 0 {
        bail!("flows and window must be at least 1");
    }
    let mut poll = Poll::new().context("creating the poller")?;
    let bind: SocketAddr = match cfg.target {
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(_) => "[::]:0",
    }
    .parse()
    .context("wildcard address")?;
    let now = Instant::now();
    let mut flows = Vec::new();
    for i in 0..cfg.flows {
        let sock = UdpSocket::bind(bind).context("binding a UDP socket")?;
        sock.connect(cfg.target)
            .with_context(|| format!("connecting a UDP socket to {}", cfg.target))?;
        let mut flow = Flow {
            sock,
            in_flight: 0,
            last_heard: now,
        };
        poll.registry()
            .register(&mut flow.sock, Token(i as usize), Interest::READABLE)
            .context("registering a UDP socket")?;
        flows.push(flow);
    }

    let mut result = FloodResult::default();
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    for f in &mut flows {
        f.fill(cfg.window, &mut result.errors);
    }
    let mut events = Events::with_capacity(flows.len().max(16));
    let mut buf = [0u8; 2048];
    let mut next_stall_check = start + STALL / 4;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let timeout = (end - now).min(STALL / 4);
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("polling the UDP sockets"),
        }
        let now = Instant::now();
        let counting = now >= measure_from && now < end;
        for ev in events.iter() {
            let Some(flow) = flows.get_mut(ev.token().0) else {
                continue;
            };
            // Edge-triggered: drain until WouldBlock.
            loop {
                match flow.sock.recv(&mut buf) {
                    Ok(_) => {
                        flow.in_flight = flow.in_flight.saturating_sub(1);
                        flow.last_heard = now;
                        if counting {
                            result.replies += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => result.errors += 1,
                }
            }
            flow.fill(cfg.window, &mut result.errors);
        }
        if now >= next_stall_check {
            next_stall_check = now + STALL / 4;
            for flow in &mut flows {
                if now.duration_since(flow.last_heard) >= STALL {
                    result.stalls += 1;
                    flow.in_flight = 0;
                    flow.last_heard = now;
                    flow.fill(cfg.window, &mut result.errors);
                }
            }
        }
    }
    result.seconds = end.duration_since(measure_from).as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket as StdUdp;
    use std::thread;

    #[test]
    fn result_round_trip() {
        let r = FloodResult {
            replies: 123,
            seconds: 2.5,
            stalls: 1,
            errors: 2,
        };
        assert_eq!(FloodResult::parse(&r.to_string()).unwrap(), r);
        assert!((r.rate() - 49.2).abs() < 1e-9);
        assert!(FloodResult::parse("stalls 0\n").is_err());
        assert!(FloodResult::parse("replies x\nseconds 1\n").is_err());
    }

    /// A real flood against an echo thread on loopback: bounded, and only
    /// that answers were counted (never how fast).
    #[test]
    fn floods_a_loopback_echo() {
        let server = StdUdp::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Ends once the client has gone quiet.
            while let Ok((n, peer)) = server.recv_from(&mut buf) {
                let _ = server.send_to(&buf[..n], peer);
            }
        });
        let r = flood(&FloodConfig {
            target,
            flows: 4,
            window: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
        })
        .unwrap();
        echo.join().unwrap();
        assert!(r.replies > 0, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
    }

    #[test]
    fn refuses_an_empty_flood() {
        let cfg = FloodConfig {
            target: "127.0.0.1:9".parse().unwrap(),
            flows: 0,
            window: 1,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
        };
        assert!(flood(&cfg).is_err());
    }
}
