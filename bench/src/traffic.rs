//! What the generator sends, checked before any port is touched.
//!
//! [`Params::validate`] turns command-line values into a checked [`Plan`]:
//! zero flows, frames smaller than their headers or larger than Ethernet
//! allows, and a fixed rate above the port's line rate are refused with a
//! [`ParamError`] that says what to change. [`Template`] builds the frames:
//! flow `i` of a run is the tuple `(SRC_BASE + i % 65536, 1024 + i / 65536)
//! -> (VIP, VPORT)`; each frame carries the TSC at which it was built (the
//! latency stamp), which [`read_stamp`] finds again in whatever the device
//! under test sends back (also behind an IP-IP outer header, or after a NAT
//! rewrite, since neither touches the stamp's place).
//!
//! Frame sizes follow RFC 2544: they count the Ethernet header and the
//! 4-byte FCS, so a 64-byte frame is 60 bytes in the mbuf (the device adds
//! the FCS). Bits per second are counted over those frame bytes; the wire
//! adds 20 bytes of preamble and inter-frame gap per frame, which is what
//! the line-rate check uses.
//!
//! Where the stamp lives: UDP frames carry 16 bytes of payload, the TSC
//! (8 bytes, little-endian), the magic [`MAGIC`] and the low 32 bits of the
//! flow number. TCP frames have no room for that at 64 bytes, so the TSC
//! goes into the sequence (high half) and acknowledgement (low half)
//! numbers, which no forwarding method rewrites, and the urgent pointer
//! (meaningless without URG) holds the low 16 bits of [`MAGIC`]. UDP is
//! sent without a checksum (0, allowed over IPv4 by RFC 768) to keep the
//! generator cheap; TCP checksums are kept valid incrementally.

use core::net::Ipv4Addr;
use l4vs_wire::checksum;
use l4vs_wire::ethernet::{self, Address as MacAddr, EtherType};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::{tcp, udp};
use std::fmt;
use std::time::Duration;

/// Smallest Ethernet frame (FCS included).
pub const MIN_FRAME: u16 = 64;
/// Largest untagged Ethernet frame at a 1500-byte MTU (FCS included).
pub const MAX_FRAME: u16 = 1518;
/// The frame check sequence the device appends.
pub const FCS: usize = 4;
/// Preamble, start delimiter and inter-frame gap per frame on the wire.
pub const WIRE_OVERHEAD: usize = 20;
/// Bytes of the UDP stamp: TSC, magic, flow.
pub const UDP_STAMP: usize = 16;
/// Marks the generator's UDP payloads ("l4vs").
pub const MAGIC: u32 = 0x6c34_7673;
/// Most flows of a UDP or TCP run: 2^24 (the issue asks for 1 to 10 M).
pub const MAX_FLOWS: u64 = 1 << 24;
/// Source addresses flows cycle through (a /16).
pub const SRC_ADDRS: u64 = 1 << 16;
/// First source port; flows use 1024..=65535.
pub const FIRST_SPORT: u64 = 1024;
/// Unique tuples a SYN flood can draw: every address times every port.
pub const TUPLE_SPACE: u64 = SRC_ADDRS * (65536 - FIRST_SPORT);
/// The clients: 198.19.0.0/16, inside the RFC 2544 range 198.18.0.0/15.
pub const SRC_BASE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);
/// Simple IMIX (7:4:1 of 64, 594 and 1518-byte frames), in the order sent.
pub const IMIX: [u16; 12] = [64, 594, 64, 64, 1518, 64, 594, 64, 64, 594, 64, 594];

/// What kind of traffic a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Traffic {
    /// UDP datagrams over `flows` flows.
    Udp,
    /// TCP: one SYN per flow first (opening the connections), then ACK
    /// segments over the established flows.
    Tcp,
    /// A SYN flood: every frame a SYN, tuple `k mod flows` for frame `k`,
    /// so each is a new connection until the flows wrap.
    Syn,
}

impl Traffic {
    /// "udp", "tcp" or "syn".
    pub fn as_str(self) -> &'static str {
        match self {
            Traffic::Udp => "udp",
            Traffic::Tcp => "tcp",
            Traffic::Syn => "syn",
        }
    }

    /// The smallest frame (FCS included) that holds this traffic's headers
    /// and stamp.
    pub fn min_frame(self) -> usize {
        let l4 = match self {
            Traffic::Udp => udp::HEADER_LEN + UDP_STAMP,
            Traffic::Tcp | Traffic::Syn => tcp::HEADER_LEN,
        };
        ethernet::HEADER_LEN + ipv4::HEADER_LEN + l4 + FCS
    }

    fn headers_text(self) -> &'static str {
        match self {
            Traffic::Udp => "Ethernet 14 + IPv4 20 + UDP 8 + stamp 16 + FCS 4",
            Traffic::Tcp | Traffic::Syn => "Ethernet 14 + IPv4 20 + TCP 20 + FCS 4",
        }
    }
}

/// Frame sizes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizes {
    /// Every frame this many bytes (FCS included).
    Fixed(u16),
    /// Simple IMIX: [`IMIX`].
    Imix,
}

impl Sizes {
    /// Parses "64".."1518" or "imix" (values are checked by validation).
    ///
    /// # Errors
    /// Text that is neither a number nor "imix".
    pub fn parse(s: &str) -> Result<Sizes, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Sizes::Imix);
        }
        s.parse::<u16>()
            .map(Sizes::Fixed)
            .map_err(|_| format!("{s:?} is not a frame size in bytes (64..=1518) nor \"imix\""))
    }

    /// The mean frame size, FCS included.
    pub fn mean(self) -> f64 {
        match self {
            Sizes::Fixed(n) => f64::from(n),
            Sizes::Imix => IMIX.iter().map(|s| f64::from(*s)).sum::<f64>() / IMIX.len() as f64,
        }
    }

    /// The distinct sizes.
    pub fn distinct(self) -> Vec<u16> {
        match self {
            Sizes::Fixed(n) => vec![n],
            Sizes::Imix => {
                let mut v = IMIX.to_vec();
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }

    /// The size of the `k`-th frame.
    #[inline]
    pub fn nth(self, k: u64) -> u16 {
        match self {
            Sizes::Fixed(n) => n,
            Sizes::Imix => IMIX[(k % IMIX.len() as u64) as usize],
        }
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sizes::Fixed(n) => write!(f, "{n}"),
            Sizes::Imix => f.write_str("imix"),
        }
    }
}

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the port takes frames.
    Max,
    /// This many frames per second.
    Pps(f64),
}

impl Rate {
    /// Parses "max", or a rate in frames/s with an optional k/M/G suffix
    /// ("2.5M").
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(s: &str) -> Result<Rate, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let (num, mult) = match s.as_bytes().last() {
            Some(b'k' | b'K') => (&s[..s.len() - 1], 1e3),
            Some(b'M' | b'm') => (&s[..s.len() - 1], 1e6),
            Some(b'G' | b'g') => (&s[..s.len() - 1], 1e9),
            _ => (s, 1.0),
        };
        match num.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Rate::Pps(v * mult)),
            _ => Err(format!(
                "{s:?} is not a rate: give frames per second (e.g. 500000, 2.5M) or \"max\""
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::Pps(p) => write!(f, "{p} pps"),
        }
    }
}

/// The generator's knobs, as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Traffic kind.
    pub traffic: Traffic,
    /// Flows (UDP, TCP) or unique tuples before wrapping (SYN).
    pub flows: u64,
    /// Frame sizes.
    pub sizes: Sizes,
    /// Sending rate.
    pub rate: Rate,
    /// Measured time (after warm-up).
    pub duration: Duration,
    /// Time sent before measuring.
    pub warmup: Duration,
    /// Line rate of the port in bit/s, if known.
    pub line_rate_bps: Option<f64>,
}

/// Why the generator refuses to run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// `--flows 0`.
    #[error("--flows must be at least 1 (got 0)")]
    ZeroFlows,
    /// More flows than the tuple space or the limit.
    #[error("--flows {flows} is more than the {max} {what} allows")]
    TooManyFlows {
        /// Asked.
        flows: u64,
        /// Allowed.
        max: u64,
        /// Which limit.
        what: &'static str,
    },
    /// A frame smaller than its headers.
    #[error(
        "--size {size}: a {traffic} frame needs at least {min} bytes ({headers}); \
         sizes count the FCS, as in RFC 2544"
    )]
    BelowHeaders {
        /// Asked.
        size: u16,
        /// Needed.
        min: usize,
        /// Traffic kind.
        traffic: &'static str,
        /// What the bytes are.
        headers: &'static str,
    },
    /// Holds the headers but is below the Ethernet minimum.
    #[error("--size {0}: below the Ethernet minimum frame of 64 bytes (FCS included)")]
    BelowEthernetMin(u16),
    /// Larger than an untagged 1500-byte-MTU frame.
    #[error("--size {0}: above 1518 bytes, the largest untagged frame at a 1500-byte MTU")]
    AboveMax(u16),
    /// Zero, negative or non-finite rate.
    #[error("--rate must be a positive number of frames per second or \"max\" (got {0})")]
    BadRate(f64),
    /// A fixed rate the port cannot carry.
    #[error(
        "--rate {pps:.0} pps of {mean:.1}-byte frames needs {need_gbps:.3} Gbit/s on the wire \
         (frame + 20 bytes preamble/gap), above the port's line rate of {line_gbps:.3} Gbit/s; \
         the most it can carry is {max_pps:.0} pps"
    )]
    AboveLineRate {
        /// Asked.
        pps: f64,
        /// Mean frame size.
        mean: f64,
        /// Wire bit rate needed.
        need_gbps: f64,
        /// Line rate.
        line_gbps: f64,
        /// Highest rate that fits.
        max_pps: f64,
    },
    /// `--duration 0`.
    #[error("--duration must be more than 0 s")]
    ZeroDuration,
}

/// A validated run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The parameters, all checked.
    pub params: Params,
    /// Frames per second, `None` for max.
    pub pps: Option<f64>,
}

/// Wire bits of one frame of `frame` bytes (FCS included).
pub fn wire_bits(frame: f64) -> f64 {
    (frame + WIRE_OVERHEAD as f64) * 8.0
}

impl Params {
    /// Checks every parameter; see [`ParamError`].
    ///
    /// # Errors
    /// The first impossible parameter.
    pub fn validate(self) -> Result<Plan, ParamError> {
        if self.flows == 0 {
            return Err(ParamError::ZeroFlows);
        }
        let (max, what) = match self.traffic {
            Traffic::Syn => (
                TUPLE_SPACE,
                "SYN flood's tuple space (65536 addresses × 64512 ports)",
            ),
            _ => (MAX_FLOWS, "generator (2^24)"),
        };
        if self.flows > max {
            return Err(ParamError::TooManyFlows {
                flows: self.flows,
                max,
                what,
            });
        }
        for size in self.sizes.distinct() {
            let min = self.traffic.min_frame();
            if usize::from(size) < min {
                return Err(ParamError::BelowHeaders {
                    size,
                    min,
                    traffic: self.traffic.as_str(),
                    headers: self.traffic.headers_text(),
                });
            }
            if size < MIN_FRAME {
                return Err(ParamError::BelowEthernetMin(size));
            }
            if size > MAX_FRAME {
                return Err(ParamError::AboveMax(size));
            }
        }
        if self.duration.is_zero() {
            return Err(ParamError::ZeroDuration);
        }
        let pps = match self.rate {
            Rate::Max => None,
            Rate::Pps(p) if !(p.is_finite() && p > 0.0) => return Err(ParamError::BadRate(p)),
            Rate::Pps(p) => Some(p),
        };
        if let (Some(pps), Some(line)) = (pps, self.line_rate_bps) {
            let mean = self.sizes.mean();
            let need = pps * wire_bits(mean);
            if need > line * (1.0 + 1e-9) {
                return Err(ParamError::AboveLineRate {
                    pps,
                    mean,
                    need_gbps: need / 1e9,
                    line_gbps: line / 1e9,
                    max_pps: (line / wire_bits(mean)).floor(),
                });
            }
        }
        Ok(Plan { params: self, pps })
    }
}

/// The client end of flow `flow`.
#[inline]
pub fn flow_tuple(flow: u64) -> (Ipv4Addr, u16) {
    let ip = Ipv4Addr::from_bits(SRC_BASE.to_bits() + (flow % SRC_ADDRS) as u32);
    let port = (FIRST_SPORT + (flow / SRC_ADDRS) % (65536 - FIRST_SPORT)) as u16;
    (ip, port)
}

/// Where a template's variable fields are.
#[derive(Debug, Clone, Copy)]
struct Offsets {
    ip: usize,
    l4: usize,
}

/// One frame size of one traffic kind, ready to be copied and stamped.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    off: Offsets,
    traffic: Traffic,
    flags: u8,
    base_src: Ipv4Addr,
    base_sport: u16,
}

/// Addresses every frame of a run shares.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// Generator port MAC.
    pub src_mac: MacAddr,
    /// MAC of the device under test.
    pub dst_mac: MacAddr,
    /// Virtual IP.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
}

impl Template {
    /// A frame of `size` bytes (FCS included, so `size - 4` in memory) for
    /// `traffic` with TCP flags `flags` (ignored for UDP). `size` must be
    /// valid for the traffic kind ([`Params::validate`] checks it).
    pub fn new(traffic: Traffic, flags: u8, size: u16, ep: &Endpoints) -> Template {
        let len = usize::from(size) - FCS;
        let mut f = vec![0u8; len];
        let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(ep.dst_mac);
        eth.set_src_addr(ep.src_mac);
        eth.set_outer_ethertype(EtherType::Ipv4);
        let ip_off = ethernet::HEADER_LEN;
        let l4_off = ip_off + ipv4::HEADER_LEN;
        let (src, sport) = flow_tuple(0);
        let proto = match traffic {
            Traffic::Udp => Protocol::Udp,
            Traffic::Tcp | Traffic::Syn => Protocol::Tcp,
        };
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut f[ip_off..]);
            ip.set_version_and_header_len(ipv4::HEADER_LEN);
            ip.set_total_len((len - ip_off) as u16);
            ip.set_ident(0);
            ip.set_unfragmented(true);
            ip.set_ttl(64);
            ip.set_protocol(proto);
            ip.set_src_addr(src);
            ip.set_dst_addr(ep.vip);
            ip.fill_checksum();
        }
        match traffic {
            Traffic::Udp => {
                let d = &mut f[l4_off..];
                let ulen = d.len() as u16;
                let mut u = udp::Packet::new_unchecked(&mut *d);
                u.set_src_port(sport);
                u.set_dst_port(ep.vport);
                u.set_len(ulen);
                u.set_checksum(0);
                d[udp::HEADER_LEN + 8..udp::HEADER_LEN + 12].copy_from_slice(&MAGIC.to_le_bytes());
            }
            Traffic::Tcp | Traffic::Syn => {
                let d = &mut f[l4_off..];
                let mut t = tcp::Packet::new_unchecked(&mut *d);
                t.set_src_port(sport);
                t.set_dst_port(ep.vport);
                t.set_header_len_and_flags(tcp::HEADER_LEN, flags);
                // Window 64 KiB - 1, urgent pointer = the magic's low half.
                d[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
                d[18..20].copy_from_slice(&(MAGIC as u16).to_be_bytes());
                tcp::Packet::new_unchecked(&mut *d).fill_checksum(src, ep.vip);
            }
        }
        Template {
            bytes: f,
            off: Offsets {
                ip: ip_off,
                l4: l4_off,
            },
            traffic,
            flags,
            base_src: src,
            base_sport: sport,
        }
    }

    /// Bytes in memory (the frame without FCS).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a template holds at least its headers.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// TCP flags of the template.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Writes the frame for `flow` stamped with `tsc` into `out`, which
    /// must be [`Template::len`] bytes.
    #[inline]
    pub fn write(&self, out: &mut [u8], flow: u64, tsc: u64) {
        out.copy_from_slice(&self.bytes);
        let (src, sport) = flow_tuple(flow);
        let ip = self.off.ip;
        let l4 = self.off.l4;
        out[ip + 12..ip + 16].copy_from_slice(&src.octets());
        let c = u16::from_be_bytes([out[ip + 10], out[ip + 11]]);
        let c = checksum::update_addr(c, self.base_src, src);
        out[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        out[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        match self.traffic {
            Traffic::Udp => {
                let p = l4 + udp::HEADER_LEN;
                out[p..p + 8].copy_from_slice(&tsc.to_le_bytes());
                out[p + 12..p + 16].copy_from_slice(&(flow as u32).to_le_bytes());
            }
            Traffic::Tcp | Traffic::Syn => {
                let (hi, lo) = ((tsc >> 32) as u32, tsc as u32);
                out[l4 + 4..l4 + 8].copy_from_slice(&hi.to_be_bytes());
                out[l4 + 8..l4 + 12].copy_from_slice(&lo.to_be_bytes());
                let mut c = u16::from_be_bytes([out[l4 + 16], out[l4 + 17]]);
                c = checksum::update_addr(c, self.base_src, src);
                c = checksum::update16(c, self.base_sport, sport);
                c = checksum::update32(c, 0, hi);
                c = checksum::update32(c, 0, lo);
                out[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
            }
        }
    }
}

/// The TSC stamp of a frame the generator built, as it came back: behind
/// an optional 802.1Q tag and an optional IP-IP outer header. `None` for
/// anything else.
#[inline]
pub fn read_stamp(frame: &[u8]) -> Option<u64> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    if et == 0x8100 {
        off += 4;
        et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    if et != u16::from(EtherType::Ipv4) {
        return None;
    }
    let mut ip = off + 2;
    let (mut proto, mut ihl) = ip_header(frame, ip)?;
    if proto == 4 {
        ip += ihl;
        (proto, ihl) = ip_header(frame, ip)?;
    }
    let l4 = ip + ihl;
    match proto {
        17 => {
            let p = frame.get(l4 + udp::HEADER_LEN..l4 + udp::HEADER_LEN + UDP_STAMP)?;
            (p[8..12] == MAGIC.to_le_bytes())
                .then(|| u64::from_le_bytes(p[..8].try_into().unwrap_or_default()))
        }
        6 => {
            let t = frame.get(l4..l4 + tcp::HEADER_LEN)?;
            if t[18..20] != (MAGIC as u16).to_be_bytes() {
                return None;
            }
            let hi = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            let lo = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
            Some(u64::from(hi) << 32 | u64::from(lo))
        }
        _ => None,
    }
}

fn ip_header(frame: &[u8], at: usize) -> Option<(u8, usize)> {
    let vihl = *frame.get(at)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < ipv4::HEADER_LEN {
        return None;
    }
    Some((*frame.get(at + 9)?, ihl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            traffic: Traffic::Udp,
            flows: 1000,
            sizes: Sizes::Fixed(64),
            rate: Rate::Max,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            line_rate_bps: Some(10e9),
        }
    }

    const EP: Endpoints = Endpoints {
        src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        vip: Ipv4Addr::new(198, 18, 0, 100),
        vport: 53,
    };

    #[test]
    fn zero_flows_rejected() {
        let e = Params {
            flows: 0,
            ..params()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e, ParamError::ZeroFlows);
        assert_eq!(e.to_string(), "--flows must be at least 1 (got 0)");
    }

    #[test]
    fn too_many_flows_rejected() {
        let e = Params {
            flows: MAX_FLOWS + 1,
            ..params()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, ParamError::TooManyFlows { .. }), "{e}");
        let syn = Params {
            traffic: Traffic::Syn,
            flows: MAX_FLOWS + 1,
            ..params()
        };
        assert!(syn.validate().is_ok(), "a SYN flood may use more tuples");
        let e = Params {
            flows: TUPLE_SPACE + 1,
            ..syn
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("tuple space"), "{e}");
    }

    #[test]
    fn sizes_below_headers_rejected() {
        let e = Params {
            sizes: Sizes::Fixed(40),
            ..params()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, ParamError::BelowHeaders { min: 62, .. }), "{e}");
        assert!(e.to_string().contains("at least 62 bytes"), "{e}");
        let tcp = Params {
            traffic: Traffic::Tcp,
            sizes: Sizes::Fixed(57),
            ..params()
        };
        let e = tcp.validate().unwrap_err();
        assert!(matches!(e, ParamError::BelowHeaders { min: 58, .. }), "{e}");
        // Holds the TCP headers, but is not a legal Ethernet frame.
        let e = Params {
            sizes: Sizes::Fixed(60),
            ..tcp
        }
        .validate()
        .unwrap_err();
        assert_eq!(e, ParamError::BelowEthernetMin(60));
        let e = Params {
            sizes: Sizes::Fixed(1519),
            ..params()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e, ParamError::AboveMax(1519));
        for s in [64, 65, 594, 1518] {
            assert!(Params {
                sizes: Sizes::Fixed(s),
                ..params()
            }
            .validate()
            .is_ok());
        }
        assert!(Params {
            sizes: Sizes::Imix,
            ..params()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn rate_above_line_rate_rejected() {
        // 10 Gbit/s at 64 bytes carries 14,880,952 frames/s.
        let p = Params {
            rate: Rate::Pps(14_880_952.0),
            ..params()
        };
        assert!(p.validate().is_ok());
        let e = Params {
            rate: Rate::Pps(15e6),
            ..params()
        }
        .validate()
        .unwrap_err();
        let ParamError::AboveLineRate {
            max_pps, need_gbps, ..
        } = e
        else {
            panic!("{e}");
        };
        assert_eq!(max_pps, 14_880_952.0);
        assert!((need_gbps - 10.08).abs() < 1e-9, "{need_gbps}");
        assert!(
            e.to_string()
                .contains("above the port's line rate of 10.000 Gbit/s"),
            "{e}"
        );
        // Unknown line rate: nothing to check against.
        let p = Params {
            rate: Rate::Pps(15e6),
            line_rate_bps: None,
            ..params()
        };
        assert!(p.validate().is_ok());
        // IMIX is checked at its mean size.
        let p = Params {
            rate: Rate::Pps(3.5e6),
            sizes: Sizes::Imix,
            ..params()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn bad_rates_and_durations_rejected() {
        for r in [0.0, -1.0, f64::NAN] {
            let e = Params {
                rate: Rate::Pps(r),
                ..params()
            }
            .validate()
            .unwrap_err();
            assert!(matches!(e, ParamError::BadRate(_)), "{e}");
        }
        let e = Params {
            duration: Duration::ZERO,
            ..params()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e, ParamError::ZeroDuration);
    }

    #[test]
    fn parse_rates_and_sizes() {
        assert_eq!(Rate::parse("max"), Ok(Rate::Max));
        assert_eq!(Rate::parse("2.5M"), Ok(Rate::Pps(2.5e6)));
        assert_eq!(Rate::parse("100k"), Ok(Rate::Pps(1e5)));
        assert_eq!(Rate::parse("1000"), Ok(Rate::Pps(1000.0)));
        assert!(Rate::parse("fast").is_err());
        assert_eq!(Sizes::parse("IMIX"), Ok(Sizes::Imix));
        assert_eq!(Sizes::parse("128"), Ok(Sizes::Fixed(128)));
        assert!(Sizes::parse("-1").is_err());
        assert!((Sizes::Imix.mean() - 4342.0 / 12.0).abs() < 1e-9);
    }

    #[test]
    fn flows_map_to_unique_tuples() {
        assert_eq!(flow_tuple(0), (Ipv4Addr::new(198, 19, 0, 0), 1024));
        assert_eq!(flow_tuple(65537), (Ipv4Addr::new(198, 19, 0, 1), 1025));
        let mut seen = std::collections::HashSet::new();
        for f in (0..10_000_000u64).step_by(997) {
            assert!(seen.insert(flow_tuple(f)));
        }
        assert_eq!(flow_tuple(TUPLE_SPACE), flow_tuple(0));
    }

    #[test]
    fn udp_frames_are_valid_and_stamped() {
        let t = Template::new(Traffic::Udp, 0, 64, &EP);
        assert_eq!(t.len(), 60);
        let mut f = vec![0; t.len()];
        t.write(&mut f, 70_000, 0x0123_4567_89ab_cdef);
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), Ipv4Addr::new(198, 19, 17, 112));
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.checksum()), (1025, 53, 0));
        assert_eq!(read_stamp(&f), Some(0x0123_4567_89ab_cdef));
    }

    #[test]
    fn tcp_frames_are_valid_and_stamped() {
        for (traffic, flags) in [
            (Traffic::Tcp, tcp::flags::ACK),
            (Traffic::Syn, tcp::flags::SYN),
        ] {
            for size in [64, 1518] {
                let t = Template::new(traffic, flags, size, &EP);
                let mut f = vec![0; t.len()];
                t.write(&mut f, 123_456, 0xfedc_ba98_7654_3210);
                let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
                assert!(ip.verify_checksum());
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                let tp = tcp::Packet::new_checked(ip.payload()).unwrap();
                assert!(tp.verify_checksum(src, dst), "{traffic:?} {size}");
                assert_eq!(tp.flags(), flags);
                assert_eq!(read_stamp(&f), Some(0xfedc_ba98_7654_3210));
            }
        }
    }

    #[test]
    fn stamps_survive_ip_ip_and_ignore_foreign_frames() {
        let t = Template::new(Traffic::Udp, 0, 128, &EP);
        let mut f = vec![0; t.len()];
        t.write(&mut f, 5, 42);
        // Insert an outer IPv4 header with protocol 4, as IP-IP does.
        let mut enc = f[..14].to_vec();
        let mut outer = vec![0u8; 20];
        outer[0] = 0x45;
        outer[9] = 4;
        enc.extend_from_slice(&outer);
        enc.extend_from_slice(&f[14..]);
        assert_eq!(read_stamp(&enc), Some(42));
        // Not ours: wrong magic, ARP, truncated.
        let mut g = f.clone();
        g[14 + 20 + 8 + 8] ^= 1;
        assert_eq!(read_stamp(&g), None);
        g = f.clone();
        g[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(read_stamp(&g), None);
        assert_eq!(read_stamp(&f[..40]), None);
        assert_eq!(read_stamp(&[]), None);
    }

    #[test]
    fn imix_order_is_7_4_1() {
        let count = |s| IMIX.iter().filter(|x| **x == s).count();
        assert_eq!((count(64), count(594), count(1518)), (7, 4, 1));
        assert_eq!(Sizes::Imix.distinct(), vec![64, 594, 1518]);
        assert_eq!(Sizes::Imix.nth(4), 1518);
    }
}
