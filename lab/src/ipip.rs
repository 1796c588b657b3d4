//! User-space IP-IP (RFC 2003) decapsulation for real servers whose kernel
//! has no `ipip` module.
//!
//! `l4vs-lab ipip-decap` runs inside a real server's namespace. It owns:
//!
//! * a raw IPv4 socket for protocol 4 (IPPROTO_IPIP). The kernel hands it
//!   every IP-IP datagram addressed to this host, outer header included, and
//!   because a raw socket consumed it, the kernel sends no ICMP protocol
//!   unreachable back to the director;
//! * a TUN device ([`TUN_DEV`], layer 3, no packet-information prefix, up, no
//!   address) with `rp_filter=0`, through which the inner packet re-enters
//!   the stack as if it had arrived on a tunnel interface. Its destination is
//!   the VIP held on `lo`, its source the client, so the real server's reply
//!   goes straight to the client (the point of the tunnel method).
//!
//! [`decapsulate`] is the whole packet logic, checked on byte buffers; the
//! helper loop around it only moves datagrams. A malformed datagram is
//! counted and dropped, never a panic.
//!
//! [`tunnel_udp_probe`] (`l4vs-lab ipip-probe`) is the other end, for tests
//! without a director: it sends UDP probes for the VIP encapsulated straight
//! to one real server, as a tunnel-mode director would, and counts the
//! echoes that real sends back directly.

use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::client::{await_echo, Distribution};
use crate::netns;
use crate::servers::READY_LINE;

/// Name of the TUN device the helper creates.
pub const TUN_DEV: &str = "ipip0";

/// IANA protocol number of IP-in-IP encapsulation (RFC 2003 §3).
pub const IPPROTO_IPIP: u8 = 4;

/// Why a datagram could not be decapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than a minimal IPv4 header, or than its own IHL / total length.
    Truncated,
    /// The outer header is not IPv4 or its IHL is below 5.
    BadOuterHeader,
    /// The outer protocol is not 4 (IP-IP).
    NotIpip,
    /// The inner packet is empty or not IPv4.
    BadInnerPacket,
}

impl DecapError {
    /// A short name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            DecapError::Truncated => "truncated",
            DecapError::BadOuterHeader => "bad-outer-header",
            DecapError::NotIpip => "not-ipip",
            DecapError::BadInnerPacket => "bad-inner-packet",
        }
    }
}

/// Returns the inner IPv4 packet of an IP-IP datagram `outer` (which starts
/// with the outer IPv4 header, as a raw socket delivers it): the bytes after
/// the outer header's IHL*4, bounded by the outer total length.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version|  IHL  |Type of Service|          Total Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   ... Protocol = 4 at byte 9, options up to IHL*4 ...         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      inner IPv4 packet                        |
/// ```
///
/// # Errors
/// See [`DecapError`].
pub fn decapsulate(outer: &[u8]) -> Result<&[u8], DecapError> {
    if outer.len() < 20 {
        return Err(DecapError::Truncated);
    }
    let version = outer[0] >> 4;
    let ihl = usize::from(outer[0] & 0x0f) * 4;
    if version != 4 || ihl < 20 {
        return Err(DecapError::BadOuterHeader);
    }
    let total = usize::from(u16::from_be_bytes([outer[2], outer[3]]));
    if total < ihl || outer.len() < total || outer.len() < ihl {
        return Err(DecapError::Truncated);
    }
    if outer[9] != IPPROTO_IPIP {
        return Err(DecapError::NotIpip);
    }
    let inner = &outer[ihl..total];
    if inner.is_empty() || inner[0] >> 4 != 4 {
        return Err(DecapError::BadInnerPacket);
    }
    Ok(inner)
}

/// Runs the helper in the current namespace: opens the raw socket, creates
/// and configures [`TUN_DEV`], prints [`READY_LINE`] and then decapsulates
/// forever.
///
/// # Errors
/// If the socket or the device cannot be set up, or writing to the device
/// fails persistently.
pub fn run_decap(tun_name: &str) -> Result<()> {
    let mut sock = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_IPIP))),
    )
    .context("cannot open a raw IPv4 socket for protocol 4 (IPPROTO_IPIP)")?;
    let tun = tun_rs::DeviceBuilder::new()
        .name(tun_name)
        .packet_information(false)
        .enable(true)
        .build_sync()
        .with_context(|| format!("cannot create TUN device {tun_name}"))?;
    netns::run(std::process::Command::new("ip").args(["link", "set", "dev", tun_name, "up"]))?;
    netns::run(std::process::Command::new("sysctl").args([
        "-q",
        "-w",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        &format!("net.ipv4.conf.{tun_name}.rp_filter=0"),
    ]))?;

    let mut out = io::stdout().lock();
    writeln!(out, "{READY_LINE}").context("cannot write to stdout")?;
    out.flush().context("cannot flush stdout")?;
    drop(out);

    let mut buf = vec![0u8; 65536];
    let mut dropped: u64 = 0;
    let mut write_errors: u64 = 0;
    loop {
        let n = match sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading from the IP-IP raw socket"),
        };
        match decapsulate(&buf[..n]) {
            Ok(inner) => {
                if let Err(e) = tun.send(inner) {
                    write_errors += 1;
                    if write_errors <= 5 {
                        eprintln!("ipip-decap: writing to {tun_name}: {e}");
                    }
                }
            }
            Err(reason) => {
                dropped += 1;
                if dropped <= 5 {
                    eprintln!(
                        "ipip-decap: dropped a {n}-byte datagram: {}",
                        reason.as_str()
                    );
                }
            }
        }
    }
}

/// The IPv4 header checksum (RFC 791, RFC 1071) of `header`, whose checksum
/// field must be zero.
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in header.chunks(2) {
        let word = match *pair {
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            [hi] => u16::from_be_bytes([hi, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above folded `sum` into 16 bits.
    !(sum as u16)
}

/// An IPv4/UDP packet from `src` to `dst` carrying `payload`, with a valid
/// IP header checksum and UDP checksum 0 ("none", RFC 768).
///
/// # Errors
/// If the packet would exceed 65535 bytes.
pub fn udp_packet(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    id: u16,
    payload: &[u8],
) -> Result<Vec<u8>> {
    let udp_len = u16::try_from(8 + payload.len()).context("UDP payload too long")?;
    let total = udp_len.checked_add(20).context("UDP payload too long")?;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]); // DF, TTL 64, UDP, checksum 0
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    let csum = ipv4_header_checksum(&p);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    Ok(p)
}

/// Sends `count` UDP echo probes for `target` (the VIP) from `src`, each
/// IP-IP encapsulated to the real server `rip` by the kernel (raw socket,
/// protocol 4), and counts the direct answers. Each probe uses a new source
/// port; the reply reaches a UDP socket bound to that port.
///
/// # Errors
/// If the raw socket cannot be opened; lost probes are counted, not errors.
pub fn tunnel_udp_probe(
    rip: Ipv4Addr,
    src: Ipv4Addr,
    target: SocketAddrV4,
    count: u32,
    timeout: Duration,
) -> Result<Distribution> {
    let raw = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_IPIP))),
    )
    .context("cannot open a raw IPv4 socket for protocol 4 (IPPROTO_IPIP)")?;
    let to = SockAddr::from(SocketAddrV4::new(rip, 0));
    let mut dist = Distribution::default();
    for i in 0..count {
        let result = (|| -> Result<String> {
            let sock = UdpSocket::bind(SocketAddrV4::new(src, 0))
                .with_context(|| format!("binding a UDP socket on {src}"))?;
            let port = sock.local_addr()?.port();
            let payload = format!("tunnel-probe-{i}");
            // The low bits of the probe number make a fine IP ID here.
            let inner = udp_packet(
                SocketAddrV4::new(src, port),
                target,
                i as u16,
                payload.as_bytes(),
            )?;
            raw.send_to(&inner, &to)
                .with_context(|| format!("sending an IP-IP datagram to {rip}"))?;
            await_echo(&sock, &payload, timeout)
        })();
        match result {
            Ok(name) => *dist.served.entry(name).or_default() += 1,
            Err(e) => {
                dist.failed += 1;
                if dist.failed <= 5 {
                    eprintln!("ipip-probe: probe {i} via {rip}: {e:#}");
                }
            }
        }
    }
    Ok(dist)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outer 198.18.0.1 -> 198.18.2.11 proto 4, inner UDP 198.18.1.10 -> VIP.
    fn encapsulated(outer_options: &[u8], inner: &[u8]) -> Vec<u8> {
        let ihl = 20 + outer_options.len();
        assert_eq!(ihl % 4, 0);
        let total = (ihl + inner.len()) as u16;
        let mut p = vec![
            0x40 | (ihl / 4) as u8,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            IPPROTO_IPIP,
            0,
            0,
            198,
            18,
            2,
            1,
            198,
            18,
            2,
            11,
        ];
        p.extend_from_slice(outer_options);
        p.extend_from_slice(inner);
        p
    }

    const INNER: [u8; 28] = [
        0x45, 0, 0, 28, 0, 2, 0, 0, 64, 17, 0, 0, 198, 18, 1, 10, 198, 18, 0, 100, // IPv4
        0x30, 0x39, 0, 53, 0, 8, 0, 0, // UDP, empty payload
    ];

    #[test]
    fn header_checksum_verifies() {
        // RFC 1071: summing a header including its checksum gives 0xffff,
        // i.e. the checksum over it is 0.
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 10), 12345);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 53);
        let p = udp_packet(src, dst, 7, b"hi").unwrap();
        assert_eq!(p.len(), 30);
        assert_eq!(ipv4_header_checksum(&p[..20]), 0);
        assert_eq!(&p[20..22], &12345u16.to_be_bytes());
        assert_eq!(&p[24..26], &10u16.to_be_bytes());
        // A known header (Wikipedia's IPv4 checksum example): checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(ipv4_header_checksum(&h), 0);
    }

    #[test]
    fn strips_the_outer_header() {
        let p = encapsulated(&[], &INNER);
        assert_eq!(decapsulate(&p), Ok(&INNER[..]));
    }

    #[test]
    fn honours_outer_options() {
        let p = encapsulated(&[1, 1, 1, 0], &INNER); // NOP NOP NOP EOL
        assert_eq!(decapsulate(&p), Ok(&INNER[..]));
    }

    #[test]
    fn ignores_trailing_padding() {
        let mut p = encapsulated(&[], &INNER);
        p.extend_from_slice(&[0; 6]);
        assert_eq!(decapsulate(&p), Ok(&INNER[..]));
    }

    #[test]
    fn rejects_malformed() {
        let p = encapsulated(&[], &INNER);
        assert_eq!(decapsulate(&p[..19]), Err(DecapError::Truncated));
        assert_eq!(decapsulate(&p[..30]), Err(DecapError::Truncated));

        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(decapsulate(&v6), Err(DecapError::BadOuterHeader));
        let mut short_ihl = p.clone();
        short_ihl[0] = 0x44;
        assert_eq!(decapsulate(&short_ihl), Err(DecapError::BadOuterHeader));

        let mut gre = p.clone();
        gre[9] = 47;
        assert_eq!(decapsulate(&gre), Err(DecapError::NotIpip));

        let empty = encapsulated(&[], &[]);
        assert_eq!(decapsulate(&empty), Err(DecapError::BadInnerPacket));
        let mut inner_v6 = p.clone();
        inner_v6[20] = 0x60;
        assert_eq!(decapsulate(&inner_v6), Err(DecapError::BadInnerPacket));

        let mut bad_total = p;
        bad_total[2] = 0;
        bad_total[3] = 10; // shorter than the header
        assert_eq!(decapsulate(&bad_total), Err(DecapError::Truncated));
    }
}
