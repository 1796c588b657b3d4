//! VRRP version 3 advertisements over IPv4 ([RFC 5798]), as keepalived
//! sends and accepts them.
//!
//! The view covers the VRRP message, the IPv4 payload. All multi-byte
//! fields are big-endian (network order):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   IPv4 Address 1 .. Count                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Version 3, type 1 (ADVERTISEMENT, the only type), the VRID (1..=255),
//! the sender's priority, the address count, 4 reserved bits (zero on
//! send, ignored on receive, RFC 5798 section 5.2.6), the sender's
//! advertisement interval in **centiseconds** (12 bits, 1..=4095), the
//! checksum, then `count` IPv4 addresses. IPv6 VRRP is not handled: l4vs
//! directs IPv4.
//!
//! The sources that decide the details: RFC 5798 section 5 (format) and
//! 7.1 (receive checks); keepalived's `keepalived/vrrp/vrrp.c`
//! (`vrrp_build_ip4`, `vrrp_build_vrrp_v3`, `vrrp_check_packet`) and
//! `keepalived/include/vrrp.h`, quoted below by function name.
//! [RFC 9568] obsoleted RFC 5798 in April 2024; it keeps this format and
//! changes only the IPv4 checksum (next section).
//!
//! # The checksum
//!
//! RFC 5798 section 5.2.8 sums "the entire VRRP message starting with the
//! version field and a 'pseudo-header' as defined in Section 8.1 of
//! \[RFC2460\]" (an IPv6 pseudo-header). For IPv4 two readings are deployed,
//! so the mode is a parameter ([`ChecksumMode`]):
//!
//! - [`ChecksumMode::PseudoHeader`], the default: the VRRP message plus the
//!   IPv4 pseudo-header of RFC 768 (source, destination, zero, protocol
//!   112, VRRP length in bytes). keepalived has always sent and required
//!   this for VRRPv3 over IPv4 (`vrrp_build_vrrp_v3`, `vrrp_check_packet`),
//!   and Wireshark checks it by default.
//! - [`ChecksumMode::MessageOnly`]: the VRRP message alone, as VRRPv2
//!   (RFC 3768). RFC 9568 section 5.2.8 says this for IPv4; keepalived does
//!   it with `v3_checksum_as_v2` (its ChangeLog: for Cisco routers);
//!   Wireshark's preference `vrrp.v3_checksum_as_in_v2` checks it.
//!
//! keepalived does not accept both: an instance takes exactly its
//! configured form. Its length and sum stop after the last address; bytes
//! after it (keepalived's own HMAC trailer, `vrrp_auth_ext_t`) are not
//! summed. With unicast peers, keepalived before 1.3.6 summed the
//! multicast group as the destination (`old_unicast_checksum`, the
//! `unicast_chksum_compat` retry in `vrrp_check_packet`): pass
//! [`MULTICAST_GROUP`] as `dst` to speak to such a peer.
//!
//! # Receiving
//!
//! [`validate`] makes the discard checks of RFC 5798 section 7.1 that need
//! only the packet and its IPv4 header, and returns a checked view or the
//! first failed check as an [`RxError`]. The checks that need the local
//! configuration are the caller's: [`Packet::check_vrid`] (VRID configured,
//! local router not the owner) and, as RFC 7.1 allows ("MAY verify"),
//! [`Packet::same_addresses`].
//!
//! keepalived (`vrrp_check_packet` and the dispatcher in
//! `vrrp_scheduler.c`) checks more than the RFC; this module leaves it as
//! policy to the caller, and lists it here so a caller can match it:
//!
//! - Length: the IPv4 payload must be exactly the message (header and
//!   `count` addresses, plus its HMAC trailer when configured), Ethernet
//!   padding aside. [`validate`] accepts longer payloads and exposes the
//!   excess as [`Packet::trailer`].
//! - An unknown VRID is dropped (logged with `log_unknown_vrids`); a
//!   count that differs from the configured addresses, or a configured
//!   address missing from the list, is logged and counted
//!   (`addr_list_err`) but the advertisement is **still used**.
//! - A different advertisement interval is logged; the packet is used, and
//!   a backup adopts the master's interval (RFC 5798 section 6.4.2).
//! - A multicast destination when the instance has unicast peers, or the
//!   reverse, is dropped; unicast sources must be known peers when
//!   `check_unicast_src` is set.
//! - As the address owner (priority 255) keepalived drops advertisements
//!   only with `owner_ignore_adverts`; otherwise it processes them; two
//!   owners log a configuration error and one lowers itself to 254.
//! - Its default protocol is VRRPv2 (`vrrp_version 2`): a keepalived peer
//!   needs `vrrp_version 3` (global) or `version 3` (instance), or every
//!   advertisement fails here with [`RxError::Version`]`(2)`.
//! - It never sends an interval of 0 (configuration keeps it in 0.01 ..
//!   40.95 s) but accepts one. RFC 5798 says nothing about 0 either; a
//!   backup taking 0 as `Master_Adver_Interval` would declare the master
//!   down at once, so a caller should clamp it to at least 1 before use.
//!
//! # Sending
//!
//! [`Advertisement`] writes the message ([`Advertisement::emit`]), the
//! message behind its IPv4 header ([`Advertisement::emit_ipv4`]) or the
//! whole Ethernet frame ([`Advertisement::emit_frame`]) into a caller's
//! buffer, checksums filled. The IPv4 header is keepalived's
//! (`vrrp_build_ip4`): TOS 0xc0 (`IPTOS_PREC_INTERNETCONTROL`), no DF, TTL
//! 255 (RFC 5798 section 5.1.1.3), protocol 112, destination
//! [`MULTICAST_GROUP`]. keepalived leaves the identification 0 for the
//! kernel to fill (`IP_HDRINCL`); here the caller passes it. The Ethernet
//! source is the virtual router MAC ([`virtual_mac`], RFC 5798 section
//! 7.2); keepalived without `use_vmac` sends from the interface's own MAC
//! instead, which a caller can write over with
//! [`ethernet::Frame::set_src_addr`]. The gratuitous ARP that follows a
//! takeover is [`crate::arp::emit_gratuitous_request`].
//!
//! Nothing here allocates or does I/O. No function panics on any input
//! once [`Packet::new_checked`] or [`validate`] succeeded; the emitters
//! never write past the length they return.
//!
//! [RFC 5798]: https://www.rfc-editor.org/rfc/rfc5798
//! [RFC 9568]: https://www.rfc-editor.org/rfc/rfc9568

use crate::checksum;
use crate::ethernet::{self, Address, EtherType};
use crate::ipv4::{self, Protocol};
use crate::{get_addr, get_u16, set_addr, set_u16, Error, Ipv4Addr, Result};

/// The IP protocol number of VRRP (RFC 5798 section 5.1.1.4).
pub const PROTOCOL: u8 = 112;
/// The IPv4 multicast group advertisements go to, 224.0.0.18 (RFC 5798
/// section 5.1.1.2); link-local scope, never forwarded.
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The Ethernet address of [`MULTICAST_GROUP`], 01:00:5e:00:00:12
/// (01:00:5e and the group's low 23 bits, RFC 1112 section 6.4).
pub const MULTICAST_MAC: Address = Address([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
/// The IPv4 TTL of every advertisement; a receiver discards any other
/// (RFC 5798 section 5.1.1.3).
pub const TTL: u8 = 255;
/// The IPv4 TOS byte keepalived sends (`vrrp_build_ip4`: "internet network
/// control", `IPTOS_PREC_INTERNETCONTROL`, DSCP CS6). The RFC names none.
pub const TOS: u8 = 0xc0;
/// The protocol version this module speaks (RFC 5798 section 5.2.1).
pub const VERSION: u8 = 3;
/// The only packet type, ADVERTISEMENT (RFC 5798 section 5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Priority 0: the master stops participating (RFC 5798 section 5.2.4);
/// backups then wait only `Skew_Time` before taking over (section 6.4.2).
pub const PRIORITY_RELEASE: u8 = 0;
/// The default priority of a backup router (RFC 5798 section 5.2.4,
/// keepalived's `VRRP_PRIO_DFL`).
pub const PRIORITY_DEFAULT: u8 = 100;
/// The priority of the router that owns the virtual addresses (RFC 5798
/// section 5.2.4); backups use 1..=254.
pub const PRIORITY_OWNER: u8 = 255;
/// The default advertisement interval: 100 centiseconds, 1 s (RFC 5798
/// section 5.2.7).
pub const DEFAULT_ADVER_INT: u16 = 100;
/// The largest advertisement interval the 12-bit field holds, in
/// centiseconds (40.95 s, keepalived's limit too).
pub const MAX_ADVER_INT: u16 = 0x0fff;
/// Length of the fixed header before the addresses.
pub const HEADER_LEN: usize = 8;
/// Length of one IPv4 address in the list.
pub const ADDR_LEN: usize = 4;
/// The most addresses one advertisement carries (an 8-bit count).
pub const MAX_ADDRS: usize = 255;

const VERSION_SHIFT: u8 = 4;
const TYPE_MASK: u8 = 0x0f;
const ADVER_INT_MASK: u16 = 0x0fff;
const RESERVED_SHIFT: u16 = 12;

mod field {
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const RSVD_ADVER_INT: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const ADDRS: usize = 8;
}

/// The virtual router MAC address of `vrid`, 00-00-5E-00-01-{VRID}
/// (RFC 5798 section 7.3): the source of advertisements and the address
/// the virtual IPs answer ARP with.
pub const fn virtual_mac(vrid: u8) -> Address {
    Address([0x00, 0x00, 0x5e, 0x00, 0x01, vrid])
}

/// Length in bytes of a message with `addr_count` addresses: 8 + 4 each.
pub const fn message_len(addr_count: u8) -> usize {
    HEADER_LEN + addr_count as usize * ADDR_LEN
}

/// Length in bytes of an advertisement frame with `addr_count`
/// addresses: Ethernet, IPv4 and the message, padded to
/// [`ethernet::MIN_FRAME_LEN`].
pub const fn frame_len(addr_count: u8) -> usize {
    let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + message_len(addr_count);
    if len < ethernet::MIN_FRAME_LEN {
        ethernet::MIN_FRAME_LEN
    } else {
        len
    }
}

/// Which bytes the checksum covers over IPv4 (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumMode {
    /// The message and the IPv4 pseudo-header (source, destination, zero,
    /// protocol 112, message length): RFC 5798 section 5.2.8 as keepalived
    /// and Wireshark read it; keepalived's default.
    #[default]
    PseudoHeader,
    /// The message alone, as VRRPv2: RFC 9568 section 5.2.8 for IPv4;
    /// keepalived's `v3_checksum_as_v2`.
    MessageOnly,
}

/// A view of a VRRPv3 message over IPv4.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes after [`Packet::check_len`]. Version, type
    /// and checksum are not checked: that is [`validate`]'s work.
    ///
    /// # Errors
    /// See [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header and the `count` addresses it announces fit
    /// in the buffer, so that no getter can panic.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 8 bytes or than
    /// [`Packet::message_len`].
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < self.message_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (high 4 bits of byte 0); 3 for VRRPv3.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> VERSION_SHIFT
    }

    /// The type field (low 4 bits of byte 0); 1 for an advertisement.
    pub fn packet_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & TYPE_MASK
    }

    /// The virtual router id, 1..=255 when configured (0 is never valid).
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// The sender's priority: 255 owner, 1..=254 backup, 0 release.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// The number of addresses announced.
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// The 4 reserved bits before the interval; ignored on receive (RFC
    /// 5798 section 5.2.6).
    pub fn reserved(&self) -> u8 {
        (get_u16(self.buffer.as_ref(), field::RSVD_ADVER_INT) >> RESERVED_SHIFT) as u8
    }

    /// The sender's advertisement interval in centiseconds (the low 12
    /// bits, 0..=4095).
    pub fn max_adver_int(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::RSVD_ADVER_INT) & ADVER_INT_MASK
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The message length the header announces: 8 + 4 * `count` bytes.
    /// The checksum and its pseudo-header length cover exactly these.
    pub fn message_len(&self) -> usize {
        message_len(self.addr_count())
    }

    /// The announced addresses, in order.
    pub fn addresses(&self) -> Addresses<'_> {
        Addresses {
            chunks: self.buffer.as_ref()[field::ADDRS..self.message_len()].chunks_exact(ADDR_LEN),
        }
    }

    /// Bytes after the last address (empty for what keepalived and l4vs
    /// send without authentication). Not covered by the checksum.
    pub fn trailer(&self) -> &[u8] {
        &self.buffer.as_ref()[self.message_len()..]
    }

    /// The unfolded sum of the message with its checksum field counted as
    /// zero, plus the pseudo-header in [`ChecksumMode::PseudoHeader`].
    fn sum_without_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> u32 {
        let b = &self.buffer.as_ref()[..self.message_len()];
        let acc = match mode {
            // message_len <= 1028: the length fits 16 bits.
            ChecksumMode::PseudoHeader => {
                checksum::pseudo_header(src, dst, PROTOCOL, b.len() as u16)
            }
            ChecksumMode::MessageOnly => 0,
        };
        let acc = checksum::add(acc, &b[..field::CHECKSUM]);
        checksum::add(acc, &b[field::ADDRS..])
    }

    /// The checksum field value this message should carry when sent from
    /// `src` to `dst` (the IPv4 header's addresses) in `mode`.
    pub fn compute_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> u16 {
        !checksum::fold(self.sum_without_checksum(src, dst, mode))
    }

    /// True when the checksum is right for a message sent from `src` to
    /// `dst` in `mode` (RFC 5798 sections 5.2.8 and 7.1). Either zero of
    /// one's complement is accepted, as keepalived's `in_csum` test does.
    /// Under `cfg(fuzzing)` it is always true.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        let acc = self.sum_without_checksum(src, dst, mode) + u32::from(self.checksum());
        checksum::fold(acc) == 0xffff
    }

    /// The check of RFC 5798 section 7.1 that needs the local instance:
    /// "MUST verify that the VRID is configured on the receiving interface
    /// and the local router is not the IPvX address owner (Priority = 255
    /// (decimal))". `local_priority` is this router's priority for the
    /// instance.
    ///
    /// # Errors
    /// [`RxError::Vrid`] when the VRID is not `configured_vrid`;
    /// [`RxError::LocalOwner`] when `local_priority` is 255. keepalived
    /// drops the latter only with `owner_ignore_adverts` (see the module
    /// docs): a caller that follows keepalived may go on after it.
    pub fn check_vrid(
        &self,
        configured_vrid: u8,
        local_priority: u8,
    ) -> core::result::Result<(), RxError> {
        if self.vrid() != configured_vrid {
            return Err(RxError::Vrid(self.vrid()));
        }
        if local_priority == PRIORITY_OWNER {
            return Err(RxError::LocalOwner);
        }
        Ok(())
    }

    /// True when the advertisement lists the same addresses as
    /// `configured`, in any order: RFC 5798 section 7.1's optional check
    /// ("MAY verify that 'Count IPvX Addrs' and the list of IPvX
    /// address(es) match"). keepalived checks equal counts and every
    /// configured address present, its addresses being distinct; this also
    /// wants every listed address configured, so duplicates cannot hide a
    /// difference. On a mismatch the RFC and keepalived log it and still
    /// use the advertisement. Quadratic, for at most 255 addresses.
    pub fn same_addresses(&self, configured: &[Ipv4Addr]) -> bool {
        usize::from(self.addr_count()) == configured.len()
            && configured.iter().all(|c| self.addresses().any(|a| a == *c))
            && self.addresses().all(|a| configured.contains(&a))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version and type nibbles.
    pub fn set_version_and_type(&mut self, version: u8, packet_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] =
            (version << VERSION_SHIFT) | (packet_type & TYPE_MASK);
    }

    /// Sets the virtual router id.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count (the addresses themselves are
    /// [`Packet::set_address`]'s).
    pub fn set_addr_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// Sets the advertisement interval in centiseconds (only its low 12
    /// bits are kept) and clears the reserved bits, as RFC 5798 section
    /// 5.2.6 requires of a sender.
    pub fn set_max_adver_int(&mut self, centiseconds: u16) {
        set_u16(
            self.buffer.as_mut(),
            field::RSVD_ADVER_INT,
            centiseconds & ADVER_INT_MASK,
        );
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets address `index` (0-based) of the list.
    ///
    /// # Panics
    /// When the buffer ends before that address.
    pub fn set_address(&mut self, index: usize, addr: Ipv4Addr) {
        set_addr(self.buffer.as_mut(), field::ADDRS + index * ADDR_LEN, addr);
    }

    /// Computes and writes the checksum for a message sent from `src` to
    /// `dst` in `mode` (RFC 5798 section 7.2: "Compute the VRRP
    /// checksum"). Call it after every other field is set.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) {
        let c = self.compute_checksum(src, dst, mode);
        self.set_checksum(c);
    }
}

/// The addresses of an advertisement ([`Packet::addresses`]).
#[derive(Debug, Clone)]
pub struct Addresses<'a> {
    chunks: core::slice::ChunksExact<'a, u8>,
}

impl Iterator for Addresses<'_> {
    type Item = Ipv4Addr;

    fn next(&mut self) -> Option<Ipv4Addr> {
        self.chunks.next().map(|c| get_addr(c, 0))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Addresses<'_> {}

impl core::iter::FusedIterator for Addresses<'_> {}

/// Why a received advertisement is discarded ([`validate`],
/// [`Packet::check_vrid`]). RFC 5798 section 7.1: when one of these checks
/// fails "the receiver MUST discard the packet, SHOULD log the event".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxError {
    /// The IPv4 TTL is not 255 (sections 5.1.1.3, 7.1: "MUST verify that
    /// the IPv4 TTL is 255"). Carries the TTL; anything else means the
    /// packet crossed a router.
    Ttl(u8),
    /// The version is not 3 (sections 5.2.1, 7.1: "MUST verify that the
    /// VRRP version is 3"). Carries it; 2 is a VRRPv2 peer, keepalived's
    /// default.
    Version(u8),
    /// The type is not 1, ADVERTISEMENT (section 5.2.2: "A packet with
    /// unknown type MUST be discarded"; RFC 9568 lists it in 7.1). Carries
    /// it.
    Type(u8),
    /// The packet is shorter than its 8-byte header and the `count`
    /// addresses it announces (section 7.1: "MUST verify that the received
    /// packet contains the complete VRRP packet (including fixed fields,
    /// and IPvX address(es))").
    Incomplete,
    /// The checksum is wrong for the [`ChecksumMode`] in use (sections
    /// 5.2.8, 7.1: "MUST verify the VRRP checksum").
    Checksum,
    /// The VRID is not the configured one (section 7.1: "MUST verify that
    /// the VRID is configured on the receiving interface"). Carries the
    /// received VRID.
    Vrid(u8),
    /// The local router owns the addresses (priority 255) (section 7.1:
    /// "... and the local router is not the IPvX address owner").
    LocalOwner,
}

impl RxError {
    /// A short name for logs and counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            RxError::Ttl(_) => "ttl not 255",
            RxError::Version(_) => "version not 3",
            RxError::Type(_) => "type not advertisement",
            RxError::Incomplete => "incomplete packet",
            RxError::Checksum => "bad checksum",
            RxError::Vrid(_) => "vrid not configured",
            RxError::LocalOwner => "local router is the address owner",
        }
    }
}

impl core::fmt::Display for RxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`validate`] needs of a received packet's IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Facts {
    /// Time to live as received.
    pub ttl: u8,
    /// Source address: the sender's primary address, the master's
    /// identity in elections (RFC 5798 section 6.4.3).
    pub src: Ipv4Addr,
    /// Destination address, normally [`MULTICAST_GROUP`]; it enters the
    /// pseudo-header.
    pub dst: Ipv4Addr,
}

impl Ipv4Facts {
    /// The facts of a (checked) IPv4 packet.
    pub fn of<T: AsRef<[u8]>>(ip: &ipv4::Packet<T>) -> Ipv4Facts {
        Ipv4Facts {
            ttl: ip.ttl(),
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        }
    }
}

/// Checks a received advertisement as RFC 5798 section 7.1 says, in its
/// order: TTL, version, type, completeness, checksum. `payload` is the
/// IPv4 payload (up to the IPv4 total length, [`ipv4::Packet::payload`]);
/// the caller has seen protocol 112. Reserved bits, an interval of 0, a
/// count of 0 (the RFC's minimum is 1 but 7.1 does not discard) and bytes
/// after the addresses are accepted.
///
/// # Errors
/// The first failed check: [`RxError::Ttl`], [`RxError::Version`],
/// [`RxError::Type`], [`RxError::Incomplete`], [`RxError::Checksum`]. The
/// VRID and owner checks follow with [`Packet::check_vrid`].
pub fn validate<'a>(
    ip: &Ipv4Facts,
    payload: &'a [u8],
    mode: ChecksumMode,
) -> core::result::Result<Packet<&'a [u8]>, RxError> {
    if ip.ttl != TTL {
        return Err(RxError::Ttl(ip.ttl));
    }
    let Some(&ver_type) = payload.first() else {
        return Err(RxError::Incomplete);
    };
    if ver_type >> VERSION_SHIFT != VERSION {
        return Err(RxError::Version(ver_type >> VERSION_SHIFT));
    }
    if ver_type & TYPE_MASK != TYPE_ADVERTISEMENT {
        return Err(RxError::Type(ver_type & TYPE_MASK));
    }
    let p = Packet::new_checked(payload).map_err(|_| RxError::Incomplete)?;
    if !p.verify_checksum(ip.src, ip.dst, mode) {
        return Err(RxError::Checksum);
    }
    Ok(p)
}

/// One advertisement to send (RFC 5798 section 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertisement<'a> {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// This router's priority: 1..=254, 255 as owner, 0 to release.
    pub priority: u8,
    /// This router's advertisement interval in centiseconds, 1..=4095
    /// ([`DEFAULT_ADVER_INT`] is 1 s).
    pub max_adver_int: u16,
    /// The virtual addresses, 1..=255 of them.
    pub addresses: &'a [Ipv4Addr],
}

impl Advertisement<'_> {
    /// Checks the fields against what the RFC allows a sender.
    ///
    /// # Errors
    /// [`Error::Malformed`] for VRID 0 (section 5.2.3: "range 1-255"), no
    /// address (section 5.2.5: "The minimum value is 1") or more than 255,
    /// or an interval of 0 or above 4095 centiseconds (keepalived never
    /// sends those either).
    pub fn check(&self) -> Result<()> {
        if self.vrid == 0
            || self.addresses.is_empty()
            || self.addresses.len() > MAX_ADDRS
            || self.max_adver_int == 0
            || self.max_adver_int > MAX_ADVER_INT
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Length of the message in bytes: 8 + 4 per address.
    pub fn message_len(&self) -> usize {
        HEADER_LEN + self.addresses.len() * ADDR_LEN
    }

    /// Length of the frame [`Advertisement::emit_frame`] writes, padding
    /// included.
    pub fn frame_len(&self) -> usize {
        let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + self.message_len();
        len.max(ethernet::MIN_FRAME_LEN)
    }

    /// Writes the message into `buf` with its checksum for IPv4 source
    /// `src` and destination `dst` (normally [`MULTICAST_GROUP`]) in
    /// `mode`. Returns its length.
    ///
    /// # Errors
    /// [`Error::Malformed`] as [`Advertisement::check`];
    /// [`Error::Truncated`] when `buf` is shorter than the message. Nothing
    /// is written on error.
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<usize> {
        self.check()?;
        let len = self.message_len();
        let b = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let mut p = Packet::new_unchecked(b);
        p.set_version_and_type(VERSION, TYPE_ADVERTISEMENT);
        p.set_vrid(self.vrid);
        p.set_priority(self.priority);
        // check(): 1..=255 addresses.
        p.set_addr_count(self.addresses.len() as u8);
        p.set_max_adver_int(self.max_adver_int);
        for (i, a) in self.addresses.iter().enumerate() {
            p.set_address(i, *a);
        }
        p.fill_checksum(src, dst, mode);
        Ok(len)
    }

    /// Writes the IPv4 packet of the advertisement: the header of
    /// [`emit_ipv4_header`] (from `src` to [`MULTICAST_GROUP`],
    /// identification `ident`) and the message. Returns its length.
    ///
    /// # Errors
    /// As [`Advertisement::emit`], for the header and message together.
    pub fn emit_ipv4(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        ident: u16,
        mode: ChecksumMode,
    ) -> Result<usize> {
        self.check()?;
        let len = ipv4::HEADER_LEN + self.message_len();
        let b = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let (header, message) = b.split_at_mut(ipv4::HEADER_LEN);
        self.emit(message, src, MULTICAST_GROUP, mode)?;
        emit_ipv4_header(header, src, ident, self.message_len())?;
        Ok(len)
    }

    /// Writes the whole Ethernet frame: from [`virtual_mac`]`(vrid)` to
    /// [`MULTICAST_MAC`], untagged, then [`Advertisement::emit_ipv4`], then
    /// zero padding up to [`ethernet::MIN_FRAME_LEN`] (keepalived accepts
    /// padded frames, `vrrp_check_packet`). Returns the frame length,
    /// [`Advertisement::frame_len`].
    ///
    /// # Errors
    /// As [`Advertisement::emit`], for the padded frame.
    pub fn emit_frame(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        ident: u16,
        mode: ChecksumMode,
    ) -> Result<usize> {
        self.emit_frame_from(buf, virtual_mac(self.vrid), src, ident, mode)
    }

    /// [`Advertisement::emit_frame`] from the Ethernet source `src_mac`
    /// instead of the virtual router MAC: keepalived without `use_vmac`
    /// sends its advertisements from the interface's own MAC.
    ///
    /// # Errors
    /// As [`Advertisement::emit_frame`].
    pub fn emit_frame_from(
        &self,
        buf: &mut [u8],
        src_mac: Address,
        src: Ipv4Addr,
        ident: u16,
        mode: ChecksumMode,
    ) -> Result<usize> {
        self.check()?;
        let len = self.frame_len();
        let b = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let (eth, rest) = b.split_at_mut(ethernet::HEADER_LEN);
        let ip_len = self.emit_ipv4(rest, src, ident, mode)?;
        rest[ip_len..].fill(0);
        let mut f = ethernet::Frame::new_unchecked(eth);
        f.set_dst_addr(MULTICAST_MAC);
        f.set_src_addr(src_mac);
        f.set_outer_ethertype(EtherType::Ipv4);
        Ok(len)
    }
}

/// Writes the 20-byte IPv4 header of an advertisement whose message is
/// `message_len` bytes long, as keepalived's `vrrp_build_ip4`: version 4,
/// IHL 5, TOS [`TOS`], total length, identification `ident`, no flags,
/// offset 0, TTL [`TTL`], protocol [`PROTOCOL`], source `src` (RFC 5798
/// section 7.2: the interface's primary address), destination
/// [`MULTICAST_GROUP`], and the header checksum. Returns 20.
///
/// # Errors
/// [`Error::Truncated`] when `buf` is shorter than 20 bytes;
/// [`Error::Malformed`] when the total length would pass 65535.
pub fn emit_ipv4_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    ident: u16,
    message_len: usize,
) -> Result<usize> {
    let total = message_len
        .checked_add(ipv4::HEADER_LEN)
        .and_then(|t| u16::try_from(t).ok())
        .ok_or(Error::Malformed)?;
    let b = buf.get_mut(..ipv4::HEADER_LEN).ok_or(Error::Truncated)?;
    let mut ip = ipv4::Packet::new_unchecked(b);
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_tos(TOS);
    ip.set_total_len(total);
    ip.set_ident(ident);
    ip.set_unfragmented(false);
    ip.set_ttl(TTL);
    ip.set_protocol(Protocol::Unknown(PROTOCOL));
    ip.set_src_addr(src);
    ip.set_dst_addr(MULTICAST_GROUP);
    ip.fill_checksum();
    Ok(ipv4::HEADER_LEN)
}

#[cfg(test)]
mod tests;
