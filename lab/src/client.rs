//! The lab's clients: sequential HTTP GETs each on a new TCP connection
//! (`l4vs-lab http-load`) and UDP echo probes (`l4vs-lab udp-probe`), plus
//! [`Distribution`], the per-real-server tally they print and the lab parses.
//!
//! Output format, one record per line, stable for scripts:
//!
//! ```text
//! served rs1 67
//! served rs2 66
//! failed 0
//! ```
//!
//! A failure is anything that did not yield a well-formed answer naming a
//! server: refused or timed-out connection, bad status, empty body. The
//! clients always exit 0 after printing; the caller judges the numbers.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How many answers each real server gave, and how many attempts failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    /// Answers per real server name.
    pub served: BTreeMap<String, u32>,
    /// Attempts that got no valid answer.
    pub failed: u32,
    /// What the client said on stderr about its failures (the first few),
    /// when the distribution came from a client process; empty otherwise.
    /// Not part of the text format.
    pub reasons: String,
}

impl Distribution {
    /// Sum of all answers.
    pub fn total_served(&self) -> u32 {
        self.served.values().sum()
    }

    /// Number of distinct real servers that answered at least once.
    pub fn servers(&self) -> usize {
        self.served.values().filter(|&&n| n > 0).count()
    }

    /// Answers from `name` (0 if it never answered).
    pub fn count(&self, name: &str) -> u32 {
        self.served.get(name).copied().unwrap_or(0)
    }

    /// Parses the clients' output (see the module docs). Lines that are not
    /// records are ignored; a `failed` line is required.
    ///
    /// # Errors
    /// On a malformed record or a missing `failed` line.
    pub fn parse(text: &str) -> Result<Self> {
        let mut dist = Distribution::default();
        let mut saw_failed = false;
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["served", name, n] => {
                    let n: u32 = n
                        .parse()
                        .with_context(|| format!("bad count in {line:?}"))?;
                    *dist.served.entry((*name).to_owned()).or_default() += n;
                }
                ["failed", n] => {
                    dist.failed = n
                        .parse()
                        .with_context(|| format!("bad count in {line:?}"))?;
                    saw_failed = true;
                }
                ["served", ..] | ["failed", ..] => bail!("malformed record {line:?}"),
                _ => {}
            }
        }
        if !saw_failed {
            bail!("no `failed N` line in client output: {text:?}");
        }
        Ok(dist)
    }

    /// A small human-readable table with shares, for the demo.
    pub fn table(&self) -> String {
        let total = self.total_served() + self.failed;
        let pct = |n: u32| {
            if total == 0 {
                0.0
            } else {
                f64::from(n) * 100.0 / f64::from(total)
            }
        };
        let mut s = format!("{:<12} {:>8} {:>7}\n", "real server", "answers", "share");
        for (name, &n) in &self.served {
            s += &format!("{name:<12} {n:>8} {:>6.1}%\n", pct(n));
        }
        s += &format!(
            "{:<12} {:>8} {:>6.1}%\n",
            "(failed)",
            self.failed,
            pct(self.failed)
        );
        s
    }
}

impl fmt::Display for Distribution {
    /// The machine-readable record format of the module docs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, n) in &self.served {
            writeln!(f, "served {name} {n}")?;
        }
        writeln!(f, "failed {}", self.failed)
    }
}

/// Failure reasons printed on stderr at most this many times per run.
const MAX_REPORTED_ERRORS: u32 = 5;

/// `count` sequential HTTP/1.0 GETs to `target`, each on a new connection,
/// with `timeout` for connecting and for the whole exchange. Unless `quiet`,
/// the first few failures are reported on stderr.
pub fn http_load(target: SocketAddrV4, count: u32, timeout: Duration, quiet: bool) -> Distribution {
    let mut dist = Distribution::default();
    for i in 0..count {
        match http_get(target, timeout) {
            Ok(name) => *dist.served.entry(name).or_default() += 1,
            Err(e) => {
                dist.failed += 1;
                if !quiet && dist.failed <= MAX_REPORTED_ERRORS {
                    eprintln!("http-load: request {i} to {target}: {e:#}");
                }
            }
        }
    }
    dist
}

/// One GET on a fresh connection; returns the server name from the body.
///
/// # Errors
/// On any connection, protocol or timeout failure.
pub fn http_get(target: SocketAddrV4, timeout: Duration) -> Result<String> {
    http_get_after(target, Duration::ZERO, timeout)
}

/// [`http_get`] on a connection that is opened, then held idle for `hold`
/// before the request is sent: the connection outlives whatever happens
/// meanwhile (a configuration reload, say).
///
/// # Errors
/// As [`http_get`].
pub fn http_get_after(target: SocketAddrV4, hold: Duration, timeout: Duration) -> Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&target.into(), timeout).context("connect failed")?;
    std::thread::sleep(hold);
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(remaining()))?;
    let request = format!("GET / HTTP/1.0\r\nHost: {target}\r\nUser-Agent: l4vs-lab\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .context("sending the request")?;
    let mut response = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        stream.set_read_timeout(Some(remaining()))?;
        let n = stream.read(&mut chunk).context("reading the response")?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() > 64 * 1024 {
            bail!("response longer than 64 KiB");
        }
    }
    parse_http_response(&response)
}

/// Extracts the server name from a response produced by
/// [`crate::servers`]: status 200 and a one-line body.
///
/// # Errors
/// On a non-200 status, a missing head terminator or an empty body.
pub fn parse_http_response(response: &[u8]) -> Result<String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("incomplete response ({} bytes)", response.len()))?;
    let status = head.lines().next().unwrap_or_default();
    let mut parts = status.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("bad status line {status:?}");
    };
    if !version.starts_with("HTTP/") || code != "200" {
        bail!("unexpected status line {status:?}");
    }
    let name = body.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!("unexpected body {body:?}");
    }
    Ok(name.to_owned())
}

/// How UDP probes are sent, beyond the defaults (a short payload, the
/// system's TTL, one datagram through the kernel).
#[derive(Debug, Clone, Default)]
pub struct ProbeShape {
    /// Pad each probe's payload to this many bytes: past the MTU (1472
    /// bytes of UDP payload on 1500) the kernel sends it in fragments.
    pub size: Option<usize>,
    /// The probes' IP TTL.
    pub ttl: Option<u32>,
    /// Send each probe as IP fragments of at most 1500 bytes, made here and
    /// sent last first on a raw socket, from this address (the client's);
    /// the answer comes to a UDP socket bound to the same port.
    pub reverse_fragments_from: Option<Ipv4Addr>,
    /// Send from this local address instead of the one the route picks.
    pub bind: Option<Ipv4Addr>,
}

/// The payload of probe `i`: `probe-i`, padded with `.` to `size` bytes.
fn probe_payload(i: u32, size: Option<usize>) -> String {
    let mut p = format!("probe-{i}");
    if let Some(n) = size {
        while p.len() < n {
            p.push('.');
        }
    }
    p
}

/// `count` UDP echo probes to `target`, each waiting up to `timeout` for its
/// answer. With `new_socket_each`, every probe comes from a new socket (a new
/// source port, hence a new connection for the director); otherwise all
/// share one socket (one connection: they should all stick to one server).
pub fn udp_probe(
    target: SocketAddrV4,
    count: u32,
    timeout: Duration,
    new_socket_each: bool,
) -> Distribution {
    udp_probe_shaped(
        target,
        count,
        timeout,
        new_socket_each,
        &ProbeShape::default(),
    )
}

/// [`udp_probe`], sent as `shape` says.
pub fn udp_probe_shaped(
    target: SocketAddrV4,
    count: u32,
    timeout: Duration,
    new_socket_each: bool,
    shape: &ProbeShape,
) -> Distribution {
    let mut dist = Distribution::default();
    let mut shared: Option<UdpSocket> = None;
    for i in 0..count {
        let result = (|| -> Result<String> {
            let sock = match (&shared, new_socket_each) {
                (Some(s), false) => s.try_clone()?,
                _ => {
                    let local = SocketAddrV4::new(shape.bind.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
                    let s = UdpSocket::bind(local).context("binding a UDP socket")?;
                    if let Some(ttl) = shape.ttl {
                        s.set_ttl(ttl).context("setting the probe's TTL")?;
                    }
                    if !new_socket_each {
                        shared = Some(s.try_clone()?);
                    }
                    s
                }
            };
            let payload = probe_payload(i, shape.size);
            match shape.reverse_fragments_from {
                Some(src) => {
                    let port = sock.local_addr()?.port();
                    send_reverse_fragments(SocketAddrV4::new(src, port), target, i, &payload)?;
                    await_echo(&sock, &payload, timeout)
                }
                None => udp_exchange(&sock, target, &payload, timeout),
            }
        })();
        match result {
            Ok(name) => *dist.served.entry(name).or_default() += 1,
            Err(e) => {
                dist.failed += 1;
                if dist.failed <= MAX_REPORTED_ERRORS {
                    eprintln!("udp-probe: probe {i} to {target}: {e:#}");
                }
            }
        }
    }
    dist
}

/// Sends the UDP datagram `src` -> `dst` carrying `payload` as hand-made
/// IPv4 fragments of at most 1500 bytes (1480-byte pieces, IP ID from
/// `id`, never 0), the last one first, on a raw socket: what a network that
/// reorders delivers. UDP checksum 0 ("none", RFC 768).
///
/// # Errors
/// If the raw socket cannot be opened or a fragment cannot be sent.
pub fn send_reverse_fragments(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    id: u32,
    payload: &str,
) -> Result<()> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    // IPPROTO_RAW: the kernel sends our headers as they are (IP_HDRINCL).
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .context("cannot open a raw IPv4 socket (IPPROTO_RAW)")?;
    // Never ID 0: for IP_HDRINCL the kernel replaces a zero ID with one of
    // its own, per packet, which would split the datagram's fragments.
    let ident = (id as u16).wrapping_add(0x1000).max(1);
    let whole = crate::ipip::udp_packet(src, dst, ident, payload.as_bytes())?;
    let data = &whole[20..];
    const PIECE: usize = 1480;
    let pieces: Vec<&[u8]> = data.chunks(PIECE).collect();
    let to = SockAddr::from(SocketAddrV4::new(*dst.ip(), 0));
    for (k, piece) in pieces.iter().enumerate().rev() {
        let mut h = whole[..20].to_vec();
        let total = u16::try_from(20 + piece.len()).context("fragment too long")?;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let more = u16::from(k + 1 < pieces.len());
        let off = (k * PIECE / 8) as u16;
        h[6..8].copy_from_slice(&((more << 13) | off).to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let csum = crate::ipip::ipv4_header_checksum(&h);
        h[10..12].copy_from_slice(&csum.to_be_bytes());
        h.extend_from_slice(piece);
        raw.send_to(&h, &to)
            .with_context(|| format!("sending fragment {k} to {dst}"))?;
    }
    Ok(())
}

/// Sends `payload` and waits for `"<name> <payload>"`, skipping late answers
/// to earlier probes. Returns `name`.
///
/// # Errors
/// On a send error or when no matching answer arrives within `timeout`.
pub fn udp_exchange(
    sock: &UdpSocket,
    target: SocketAddrV4,
    payload: &str,
    timeout: Duration,
) -> Result<String> {
    sock.send_to(payload.as_bytes(), target)
        .context("sending the probe")?;
    await_echo(sock, payload, timeout)
}

/// Waits on `sock` for the echo `"<name> <payload>"` of a probe sent by any
/// means, skipping late answers to earlier probes. Returns `name`.
///
/// # Errors
/// When no matching answer arrives within `timeout`, or on a socket error.
pub fn await_echo(sock: &UdpSocket, payload: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no answer within {timeout:?}");
        }
        sock.set_read_timeout(Some(left))?;
        let (n, _from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no answer within {timeout:?}")
            }
            Err(e) => return Err(e).context("receiving the answer"),
        };
        let answer = String::from_utf8_lossy(&buf[..n]);
        if let Some((name, echoed)) = answer.split_once(' ') {
            if echoed == payload && !name.is_empty() {
                return Ok(name.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_round_trip() {
        let mut d = Distribution::default();
        d.served.insert("rs1".into(), 67);
        d.served.insert("rs2".into(), 66);
        d.failed = 1;
        let text = d.to_string();
        assert_eq!(text, "served rs1 67\nserved rs2 66\nfailed 1\n");
        assert_eq!(Distribution::parse(&text).unwrap(), d);
        assert_eq!(d.total_served(), 133);
        assert_eq!(d.servers(), 2);
        assert_eq!(d.count("rs3"), 0);
    }

    #[test]
    fn distribution_parse_errors() {
        assert!(Distribution::parse("served rs1 1\n").is_err());
        assert!(Distribution::parse("served rs1 x\nfailed 0\n").is_err());
        assert!(Distribution::parse("served rs1\nfailed 0\n").is_err());
        let d = Distribution::parse("noise\nfailed 3\n").unwrap();
        assert_eq!(d.failed, 3);
        assert!(d.served.is_empty());
    }

    #[test]
    fn http_response_parsing() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nrs2\n";
        assert_eq!(parse_http_response(ok).unwrap(), "rs2");
        assert!(parse_http_response(b"HTTP/1.0 503 Busy\r\n\r\nrs2\n").is_err());
        assert!(parse_http_response(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_http_response(b"HTTP/1.0 200 OK\r\n\r\n\n").is_err());
    }

    #[test]
    fn table_lists_every_server() {
        let d = Distribution::parse("served rs1 1\nserved rs2 3\nfailed 0\n").unwrap();
        let t = d.table();
        assert!(t.contains("rs1"));
        assert!(t.contains("75.0%"));
    }
}
