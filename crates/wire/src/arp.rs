//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! ```text
//!  0       2       4   5   6       8            14         18           24         28
//! +-------+-------+---+---+-------+------------+----------+------------+----------+
//! | htype | ptype |hln|pln|  op   | sender MAC | sender IP| target MAC | target IP|
//! +-------+-------+---+---+-------+------------+----------+------------+----------+
//! ```
//! `new_checked` accepts only htype 1 (Ethernet), ptype 0x0800, hlen 6,
//! plen 4: other combinations are [`Error::Unsupported`].
//!
//! [`emit_gratuitous_request`] writes the whole Ethernet frame of a
//! gratuitous ARP request, which moves an address to a MAC on the
//! neighbours' caches (VRRP's takeover, RFC 5798 section 6.4.2).

use crate::ethernet::{self, Address, EtherType};
use crate::{get_addr, get_u16, set_addr, set_u16, Error, Ipv4Addr, Result};

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(o) => o,
        }
    }
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking its length and hardware/protocol types.
    ///
    /// # Errors
    /// [`Error::Truncated`] below 28 bytes; [`Error::Unsupported`] for
    /// anything but Ethernet/IPv4.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::HTYPE) != 1
            || get_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(Packet { buffer })
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        get_u16(self.buffer.as_ref(), field::OPER).into()
    }

    fn mac(&self, at: usize) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[at..at + 6]);
        Address(a)
    }

    /// Sender hardware address.
    pub fn sender_hw_addr(&self) -> Address {
        self.mac(field::SHA)
    }

    /// Sender protocol address.
    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    pub fn target_hw_addr(&self) -> Address {
        self.mac(field::THA)
    }

    /// Target protocol address.
    pub fn target_proto_addr(&self) -> Ipv4Addr {
        get_addr(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 header fields and the operation.
    pub fn set_header(&mut self, op: Operation) {
        let b = self.buffer.as_mut();
        set_u16(b, field::HTYPE, 1);
        set_u16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        set_u16(b, field::OPER, op.into());
    }

    /// Sets the sender's addresses.
    pub fn set_sender(&mut self, mac: Address, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::SHA..field::SHA + 6].copy_from_slice(&mac.0);
        set_addr(b, field::SPA, ip);
    }

    /// Sets the target's addresses.
    pub fn set_target(&mut self, mac: Address, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::THA..field::THA + 6].copy_from_slice(&mac.0);
        set_addr(b, field::TPA, ip);
    }
}

/// Length of an Ethernet frame holding an ARP packet, before padding.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

/// Writes a gratuitous ARP request frame saying that `ip` is at `mac`, as
/// keepalived's `send_gratuitous_arp_immediate` (vrrp/vrrp_arp.c) builds
/// it: Ethernet broadcast from `mac`; operation request; sender `mac` and
/// `ip`; target MAC ff:ff:ff:ff:ff:ff and target IP `ip`. Zero padding up
/// to [`ethernet::MIN_FRAME_LEN`] follows. Returns the frame length (60).
///
/// RFC 5798 section 6.4.2 asks a new VRRP master for "a gratuitous ARP
/// request ... containing the virtual router MAC address" per address; it
/// does not fix the target MAC. RFC 5227's announcements use zeros there;
/// receivers ignore it either way, and the broadcast keepalived writes is
/// what the peers of an l4vs pair already see.
///
/// # Errors
/// [`Error::Truncated`] when `buf` is shorter than 60 bytes; nothing is
/// written then.
pub fn emit_gratuitous_request(buf: &mut [u8], mac: Address, ip: Ipv4Addr) -> Result<usize> {
    let frame = buf
        .get_mut(..ethernet::MIN_FRAME_LEN)
        .ok_or(Error::Truncated)?;
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(Address::BROADCAST);
    eth.set_src_addr(mac);
    eth.set_outer_ethertype(EtherType::Arp);
    let mut arp = Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..FRAME_LEN]);
    arp.set_header(Operation::Request);
    arp.set_sender(mac, ip);
    arp.set_target(Address::BROADCAST, ip);
    frame[FRAME_LEN..].fill(0);
    Ok(ethernet::MIN_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUEST: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0x10, 198, 18, 1, 10, 0, 0, 0, 0, 0, 0, 198, 18, 1,
        1,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.sender_hw_addr(), Address([2, 0, 0, 0, 0, 0x10]));
        assert_eq!(p.sender_proto_addr(), Ipv4Addr::new(198, 18, 1, 10));
        assert_eq!(p.target_hw_addr(), Address::UNSPECIFIED);
        assert_eq!(p.target_proto_addr(), Ipv4Addr::new(198, 18, 1, 1));
    }

    #[test]
    fn construct_matches_parse() {
        let mut buf = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_header(Operation::Request);
        p.set_sender(
            Address([2, 0, 0, 0, 0, 0x10]),
            Ipv4Addr::new(198, 18, 1, 10),
        );
        p.set_target(Address::UNSPECIFIED, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn gratuitous_request_frame() {
        #[rustfmt::skip]
        let want: [u8; 60] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
            0x00, 0x00, 0x5e, 0x00, 0x01, 0x33, // source: VRRP virtual MAC, VRID 51
            0x08, 0x06,                         // EtherType ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4, hlen 6, plen 4
            0x00, 0x01,                         // request
            0x00, 0x00, 0x5e, 0x00, 0x01, 0x33, // sender MAC
            198, 18, 0, 100,                    // sender IP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // target MAC, as keepalived
            198, 18, 0, 100,                    // target IP = sender IP
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
        ];
        let mac = Address([0x00, 0x00, 0x5e, 0x00, 0x01, 0x33]);
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        let mut buf = [0xaau8; 64];
        assert_eq!(emit_gratuitous_request(&mut buf, mac, ip), Ok(60));
        assert_eq!(buf[..60], want);
        assert_eq!(buf[60..], [0xaa; 4]);
        let p = Packet::new_checked(&buf[14..42]).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.sender_proto_addr(), p.target_proto_addr());

        let mut short = [0xaau8; 59];
        assert_eq!(
            emit_gratuitous_request(&mut short, mac, ip),
            Err(Error::Truncated)
        );
        assert_eq!(short, [0xaa; 59]);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        let mut ipv6ish = REQUEST;
        ipv6ish[3] = 0xdd;
        assert_eq!(
            Packet::new_checked(&ipv6ish[..]).unwrap_err(),
            Error::Unsupported
        );
        let mut hlen = REQUEST;
        hlen[4] = 8;
        assert_eq!(
            Packet::new_checked(&hlen[..]).unwrap_err(),
            Error::Unsupported
        );
    }
}
