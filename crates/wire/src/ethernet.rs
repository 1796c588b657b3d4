//! Ethernet II frames (IEEE 802.3) with an optional 802.1Q tag.
//!
//! ```text
//!  0                   6                   12      14
//! +-------------------+-------------------+-------+----------
//! |    destination    |      source       | type  | payload
//! +-------------------+-------------------+-------+----------
//!                      with 802.1Q:        | 8100  | TCI | type | payload
//! ```
//! Only one tag is parsed; a second tag (QinQ) is reported as the inner
//! EtherType 0x8100 and left to the caller to refuse.

use crate::{get_u16, set_u16, Error, Result};

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The all-zero address, used as "unknown" in ARP requests.
    pub const UNSPECIFIED: Address = Address([0; 6]);

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the group bit is set (broadcast included).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl core::fmt::Debug for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// EtherType values l4vs acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherType {
    /// 0x0800
    Ipv4,
    /// 0x0806
    Arp,
    /// 0x8100, an 802.1Q tag follows.
    Vlan,
    /// 0x86dd
    Ipv6,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const TYPE: usize = 12;
    pub const TCI: usize = 14;
    pub const INNER_TYPE: usize = 16;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of the 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The shortest frame IEEE 802.3 allows, without the 4-byte FCS
/// (Linux's `ETH_ZLEN`). Builders of short control frames (ARP, VRRP) pad
/// to it with zeros, since not every port pads in hardware.
pub const MIN_FRAME_LEN: usize = 60;

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after checking it holds the whole header, the 802.1Q
    /// tag included when present.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than the header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Frame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the header (and the tag, if any) fits in the buffer.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it does not.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::TYPE) == 0x8100 && b.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Address(a)
    }

    /// Source MAC.
    pub fn src_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Address(a)
    }

    /// The outer EtherType (0x8100 for a tagged frame).
    pub fn outer_ethertype(&self) -> EtherType {
        get_u16(self.buffer.as_ref(), field::TYPE).into()
    }

    /// The 802.1Q VLAN id, when the frame is tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        match self.outer_ethertype() {
            EtherType::Vlan => Some(get_u16(self.buffer.as_ref(), field::TCI) & 0x0fff),
            _ => None,
        }
    }

    /// The EtherType of the payload, after the tag if there is one.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        match self.outer_ethertype() {
            EtherType::Vlan => get_u16(self.buffer.as_ref(), field::INNER_TYPE).into(),
            t => t,
        }
    }

    /// Header length: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        match self.outer_ethertype() {
            EtherType::Vlan => HEADER_LEN + VLAN_TAG_LEN,
            _ => HEADER_LEN,
        }
    }

    /// The payload after the header (and tag).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    /// Sets the source MAC.
    pub fn set_src_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    /// Sets the outer EtherType.
    pub fn set_outer_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::TYPE, t.into());
    }

    /// The payload after the header (and tag), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNTAGGED: [u8; 16] = [
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0xaa, 0xbb,
    ];
    static TAGGED: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x0a, 0x08,
        0x06, 0xaa, 0xbb,
    ];

    #[test]
    fn deconstruct_untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), Address([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src_addr(), Address([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn deconstruct_tagged() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.vlan_id(), Some(10));
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Frame::new_checked(&TAGGED[..17]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn construct() {
        let mut buf = UNTAGGED;
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(Address([9; 6]));
        f.set_src_addr(Address([8; 6]));
        f.set_outer_ethertype(EtherType::Arp);
        assert_eq!(&buf[..14], &[9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 6]);
    }

    #[test]
    fn ethertype_unknown_roundtrip() {
        assert_eq!(EtherType::from(0x88cc), EtherType::Unknown(0x88cc));
        assert_eq!(u16::from(EtherType::Unknown(0x88cc)), 0x88cc);
    }
}
