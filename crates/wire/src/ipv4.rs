//! IPv4 headers (RFC 791), options included.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! `new_checked` guarantees version 4, 5 <= IHL, header within the buffer,
//! and header length <= total length <= buffer length. The buffer may be
//! longer than the total length (Ethernet padding); [`Packet::payload`] ends
//! at the total length.

use crate::checksum;
use crate::{get_addr, get_u16, set_addr, set_u16, Error, Ipv4Addr, Result};

/// IP protocol numbers l4vs acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// 1
    Icmp,
    /// 4, IP-in-IP (RFC 2003)
    IpIp,
    /// 6
    Tcp,
    /// 17
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Self {
        match v {
            1 => Protocol::Icmp,
            4 => Protocol::IpIp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            o => Protocol::Unknown(o),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(v: Protocol) -> u8 {
        match v {
            Protocol::Icmp => 1,
            Protocol::IpIp => 4,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(o) => o,
        }
    }
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// The IPv4 packet an Ethernet frame carries (untagged or 802.1Q-tagged),
/// checked as [`Packet::new_checked`] does; None for another EtherType or
/// a frame or header too short or malformed.
pub fn in_frame(frame: &[u8]) -> Option<Packet<&[u8]>> {
    let eth = crate::ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != crate::ethernet::EtherType::Ipv4 {
        return None;
    }
    Packet::new_checked(frame.get(eth.header_len()..)?).ok()
}

/// Whether the checksum of `header`, an IPv4 header without options, is
/// right ([`Packet::verify_checksum`] at a fixed length; fuzzing builds
/// take every checksum as right, as there).
#[inline(always)]
pub fn verify_header_checksum(header: &[u8; HEADER_LEN]) -> bool {
    cfg!(fuzzing) || checksum::sums_to_ones_20(header)
}

/// Whether `a` is in 224.0.0.0/24, the local network control block
/// (RFC 5771: never forwarded; VRRP's 224.0.0.18, IPVS sync's 224.0.0.81,
/// routing protocols).
#[inline]
pub fn is_local_network_control(a: Ipv4Addr) -> bool {
    a.octets()[..3] == [224, 0, 0]
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes after [`Packet::check_len`].
    ///
    /// # Errors
    /// See [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header for sanity against the buffer.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 20 bytes, the
    /// IHL or the total length; [`Error::Malformed`] for a version other
    /// than 4, IHL < 5, or a total length smaller than the header.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::Malformed);
        }
        if tl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP/ECN byte.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total length in bytes, header included.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }

    /// True for any fragment, first or not.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The payload's protocol.
    pub fn protocol(&self) -> Protocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::DST)
    }

    /// The options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// True when the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        checksum::sum(self.header()) == 0xffff
    }

    /// The payload, from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets flags and fragment offset: DF as given, MF clear, offset 0.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        let v = if dont_frag { FLAG_DF } else { 0 };
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::SRC, a);
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::DST, a);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// Rewrites the destination address and updates the header checksum
    /// incrementally (RFC 1624).
    pub fn rewrite_dst_addr(&mut self, a: Ipv4Addr) {
        let c = checksum::update_addr(self.checksum(), self.dst_addr(), a);
        self.set_dst_addr(a);
        self.set_checksum(c);
    }

    /// Rewrites the source address and updates the header checksum.
    pub fn rewrite_src_addr(&mut self, a: Ipv4Addr) {
        let c = checksum::update_addr(self.checksum(), self.src_addr(), a);
        self.set_src_addr(a);
        self.set_checksum(c);
    }

    /// Decrements the TTL and updates the header checksum. The caller has
    /// checked that the TTL is above 1.
    ///
    /// The checksum is updated as the kernel's `ip_decrease_ttl` does (RFC
    /// 1141): the TTL is the high byte of its 16-bit word, so the one's
    /// complement sum gains 0x0100, with the end-around carry.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        b[field::TTL] -= 1;
        let check = u32::from(get_u16(b, field::CHECKSUM)) + 0x0100;
        let check = check + u32::from(check >= 0xffff);
        set_u16(b, field::CHECKSUM, check as u16);
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 198.18.1.10 -> 198.18.0.100, TCP, total length 40, DF, TTL 64.
    pub(crate) static HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 18, 1, 10,
        198, 18, 0, 100,
    ];

    fn packet_with_payload() -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..20].copy_from_slice(&HEADER);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        b
    }

    #[test]
    fn deconstruct() {
        let b = packet_with_payload();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), Protocol::Tcp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 100));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 20);
        assert!(p.options().is_empty());
    }

    #[test]
    fn padding_beyond_total_len_is_not_payload() {
        let mut b = [0u8; 60];
        b[..40].copy_from_slice(&packet_with_payload());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn options_are_header() {
        let mut b = [0u8; 48];
        b[..20].copy_from_slice(&HEADER);
        b[0] = 0x46;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_total_len(48);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 24);
        assert!(p.verify_checksum());
    }

    #[test]
    fn malformed() {
        let b = packet_with_payload();
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        let mut v6 = b;
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::Malformed);
        let mut ihl4 = b;
        ihl4[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&ihl4[..]).unwrap_err(),
            Error::Malformed
        );
        let mut ihl_beyond = b;
        ihl_beyond[0] = 0x4f; // 60 bytes of header in a 40-byte buffer
        assert_eq!(
            Packet::new_checked(&ihl_beyond[..]).unwrap_err(),
            Error::Truncated
        );
        let mut long = b;
        long[3] = 41;
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Error::Truncated
        );
        let mut short = b;
        short[3] = 19;
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn fragments() {
        let mut b = packet_with_payload();
        b[6] = 0x00;
        b[7] = 0x03; // offset 3 * 8
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 24);
        assert!(p.is_fragment());
        b[6] = 0x20;
        b[7] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 0);
    }

    #[test]
    fn rewrite_keeps_checksum_valid() {
        let mut b = packet_with_payload();
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.rewrite_dst_addr(Ipv4Addr::new(198, 18, 2, 11));
        p.rewrite_src_addr(Ipv4Addr::new(198, 18, 2, 1));
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
    }

    /// The incremental update gives the checksum a recomputation gives
    /// (the two zeros of one's complement aside), for every TTL and a
    /// spread of header sums, the wrap-around cases included.
    #[test]
    fn decrement_ttl_matches_a_full_recomputation() {
        for ident in (0..=u16::MAX).step_by(251).chain([0xfeff, 0xff00, 0xffff]) {
            for ttl in 2..=255u8 {
                let mut b = packet_with_payload();
                let mut p = Packet::new_unchecked(&mut b[..]);
                p.set_ident(ident);
                p.set_ttl(ttl);
                p.fill_checksum();
                p.decrement_ttl();
                assert_eq!(p.ttl(), ttl - 1);
                assert!(p.verify_checksum(), "ident {ident:#x} ttl {ttl}");
                let got = p.checksum();
                p.fill_checksum();
                let want = p.checksum();
                assert!(
                    got == want || (got, want) == (0xffff, 0) || (got, want) == (0, 0xffff),
                    "ident {ident:#x} ttl {ttl}: {got:#x} vs {want:#x}"
                );
            }
        }
    }
}
