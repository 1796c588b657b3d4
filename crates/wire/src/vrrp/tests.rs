//! Golden advertisements written byte by byte from RFC 5798's layout with
//! checksums summed here independently, every receive error, the sender's
//! limits, round trips and a no-panic property.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIPS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 18, 0, 100),
    Ipv4Addr::new(198, 18, 0, 101),
];

/// VRID 51, priority 150, 1 s, two addresses; checksum with the IPv4
/// pseudo-header for 198.18.0.1 -> 224.0.0.18.
#[rustfmt::skip]
static GOLDEN: [u8; 16] = [
    0x31,                   // version 3, type 1 (ADVERTISEMENT)
    0x33,                   // VRID 51
    0x96,                   // priority 150
    0x02,                   // count IPvX addr
    0x00, 0x64,             // rsvd 0, max adver int 100 cs
    0x04, 0xd1,             // checksum (pseudo-header form)
    198, 18, 0, 100,        // address 1
    198, 18, 0, 101,        // address 2
];

/// GOLDEN's checksum in the message-only form (RFC 9568, `v3_checksum_as_v2`).
const GOLDEN_MESSAGE_ONLY_CHECKSUM: [u8; 2] = [0xab, 0x77];

/// GOLDEN as keepalived puts it on the wire, identification 42.
#[rustfmt::skip]
static GOLDEN_FRAME: [u8; 60] = [
    // Ethernet
    0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, // destination: 224.0.0.18's MAC
    0x00, 0x00, 0x5e, 0x00, 0x01, 0x33, // source: virtual router MAC, VRID 51
    0x08, 0x00,                         // IPv4
    // IPv4
    0x45,                               // version 4, IHL 5
    0xc0,                               // TOS: IPTOS_PREC_INTERNETCONTROL
    0x00, 0x24,                         // total length 36
    0x00, 0x2a,                         // identification 42
    0x00, 0x00,                         // no flags, offset 0
    0xff,                               // TTL 255
    0x70,                               // protocol 112
    0x14, 0x5a,                         // header checksum
    198, 18, 0, 1,                      // source
    224, 0, 0, 18,                      // destination
    // VRRP
    0x31, 0x33, 0x96, 0x02, 0x00, 0x64, 0x04, 0xd1,
    198, 18, 0, 100, 198, 18, 0, 101,
    // padding to 60 bytes
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn golden_adv() -> Advertisement<'static> {
    Advertisement {
        vrid: 51,
        priority: 150,
        max_adver_int: DEFAULT_ADVER_INT,
        addresses: &VIPS,
    }
}

fn facts() -> Ipv4Facts {
    Ipv4Facts {
        ttl: 255,
        src: SRC,
        dst: MULTICAST_GROUP,
    }
}

/// A plain RFC 1071 sum, written apart from crate::checksum: 16-bit
/// big-endian words, end-around carry, complemented. Even lengths only.
fn ones_complement(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        assert_eq!(part.len() % 2, 0);
        for w in part.chunks(2) {
            sum += (u32::from(w[0]) << 8) | u32::from(w[1]);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, PROTOCOL]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// Rewrites the checksum of `msg` in `mode`, with the sum above.
fn refill(msg: &mut [u8], mode: ChecksumMode) {
    msg[6] = 0;
    msg[7] = 0;
    let ph = pseudo(SRC, MULTICAST_GROUP, msg.len());
    let c = match mode {
        ChecksumMode::PseudoHeader => ones_complement(&[&ph, msg]),
        ChecksumMode::MessageOnly => ones_complement(&[msg]),
    };
    msg[6..8].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn golden_checksums_are_the_plain_sum() {
    let ph = pseudo(SRC, MULTICAST_GROUP, GOLDEN.len());
    // A right checksum makes the whole sum all ones: complemented, 0.
    assert_eq!(ones_complement(&[&ph, &GOLDEN]), 0);
    let mut zeroed = GOLDEN;
    zeroed[6..8].fill(0);
    assert_eq!(ones_complement(&[&ph, &zeroed]).to_be_bytes(), [0x04, 0xd1]);
    assert_eq!(
        ones_complement(&[&zeroed]).to_be_bytes(),
        GOLDEN_MESSAGE_ONLY_CHECKSUM
    );
    let ip = &GOLDEN_FRAME[14..34];
    assert_eq!(ones_complement(&[ip]), 0);
}

#[test]
fn deconstruct_golden() {
    let p = Packet::new_checked(&GOLDEN[..]).unwrap();
    assert_eq!(p.version(), 3);
    assert_eq!(p.packet_type(), TYPE_ADVERTISEMENT);
    assert_eq!(p.vrid(), 51);
    assert_eq!(p.priority(), 150);
    assert_eq!(p.addr_count(), 2);
    assert_eq!(p.reserved(), 0);
    assert_eq!(p.max_adver_int(), 100);
    assert_eq!(p.checksum(), 0x04d1);
    assert_eq!(p.message_len(), 16);
    assert_eq!(p.addresses().len(), 2);
    assert_eq!(p.addresses().collect::<Vec<_>>(), VIPS);
    assert!(p.trailer().is_empty());
    assert!(p.verify_checksum(SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader));
    assert!(!p.verify_checksum(SRC, MULTICAST_GROUP, ChecksumMode::MessageOnly));
    assert_eq!(
        p.compute_checksum(SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader),
        0x04d1
    );
}

#[test]
fn emit_golden() {
    let mut buf = [0xeeu8; 20];
    let n = golden_adv()
        .emit(&mut buf, SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader)
        .unwrap();
    assert_eq!(n, 16);
    assert_eq!(buf[..16], GOLDEN);
    assert_eq!(buf[16..], [0xee; 4]);

    let n = golden_adv()
        .emit(&mut buf, SRC, MULTICAST_GROUP, ChecksumMode::MessageOnly)
        .unwrap();
    let mut want = GOLDEN;
    want[6..8].copy_from_slice(&GOLDEN_MESSAGE_ONLY_CHECKSUM);
    assert_eq!(buf[..n], want);
}

#[test]
fn emit_golden_frame() {
    let adv = golden_adv();
    assert_eq!(adv.frame_len(), 60);
    assert_eq!(frame_len(2), 60);
    let mut buf = [0xeeu8; 64];
    let n = adv
        .emit_frame(&mut buf, SRC, 42, ChecksumMode::PseudoHeader)
        .unwrap();
    assert_eq!(n, 60);
    assert_eq!(buf[..60], GOLDEN_FRAME);
    assert_eq!(buf[60..], [0xee; 4]);

    let mut ip = [0u8; 36];
    let n = adv
        .emit_ipv4(&mut ip, SRC, 42, ChecksumMode::PseudoHeader)
        .unwrap();
    assert_eq!(n, 36);
    assert_eq!(ip, GOLDEN_FRAME[14..50]);

    let mut hdr = [0u8; 20];
    assert_eq!(emit_ipv4_header(&mut hdr, SRC, 42, 16), Ok(20));
    assert_eq!(hdr, GOLDEN_FRAME[14..34]);
}

#[test]
fn golden_frame_parses_back() {
    let eth = ethernet::Frame::new_checked(&GOLDEN_FRAME[..]).unwrap();
    assert_eq!(eth.src_addr(), virtual_mac(51));
    assert_eq!(eth.dst_addr(), MULTICAST_MAC);
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), Protocol::Unknown(PROTOCOL));
    assert_eq!(ip.tos(), TOS);
    assert!(!ip.dont_frag());
    let p = validate(
        &Ipv4Facts::of(&ip),
        ip.payload(),
        ChecksumMode::PseudoHeader,
    )
    .unwrap();
    assert_eq!(p.check_vrid(51, 100), Ok(()));
    assert_eq!(p.into_inner(), &GOLDEN[..]);
}

#[test]
fn long_frames_are_not_padded() {
    let vips: Vec<Ipv4Addr> = (0..10).map(|i| Ipv4Addr::new(198, 18, 1, i)).collect();
    let adv = Advertisement {
        addresses: &vips,
        ..golden_adv()
    };
    assert_eq!(adv.message_len(), 48);
    assert_eq!(adv.frame_len(), 14 + 20 + 48);
    assert_eq!(frame_len(10), 82);
    let mut buf = vec![0u8; 100];
    assert_eq!(
        adv.emit_frame(&mut buf, SRC, 1, ChecksumMode::PseudoHeader),
        Ok(82)
    );
}

#[test]
fn constants() {
    assert_eq!(
        virtual_mac(1),
        Address([0x00, 0x00, 0x5e, 0x00, 0x01, 0x01])
    );
    assert_eq!(virtual_mac(255).0[5], 0xff);
    assert_eq!(u32::from(MULTICAST_GROUP), 0xe000_0012);
    // 01:00:5e followed by the group's low 23 bits.
    let g = MULTICAST_GROUP.octets();
    assert_eq!(MULTICAST_MAC.0[3..], [g[1] & 0x7f, g[2], g[3]]);
    assert_eq!((PROTOCOL, TTL, TOS), (112, 255, 0xc0));
    assert_eq!(
        (PRIORITY_RELEASE, PRIORITY_DEFAULT, PRIORITY_OWNER),
        (0, 100, 255)
    );
    assert_eq!((DEFAULT_ADVER_INT, MAX_ADVER_INT), (100, 4095));
    assert_eq!(message_len(0), 8);
    assert_eq!(message_len(255), 1028);
}

#[test]
fn rx_ttl() {
    for ttl in [0, 1, 64, 254] {
        let f = Ipv4Facts { ttl, ..facts() };
        assert_eq!(
            validate(&f, &GOLDEN, ChecksumMode::PseudoHeader).unwrap_err(),
            RxError::Ttl(ttl)
        );
    }
}

#[test]
fn rx_version() {
    // A VRRPv2 advertisement (keepalived's default protocol): version 2,
    // auth type 0, interval 1 s, checksum over the message, auth data.
    #[rustfmt::skip]
    let v2: [u8; 20] = [
        0x21, 0x33, 0x96, 0x01, 0x00, 0x01, 0x00, 0x00,
        198, 18, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let err = validate(&facts(), &v2, ChecksumMode::PseudoHeader).unwrap_err();
    assert_eq!(err, RxError::Version(2));
    for v in [0u8, 1, 4, 15] {
        let mut m = GOLDEN;
        m[0] = (v << 4) | 1;
        assert_eq!(
            validate(&facts(), &m, ChecksumMode::PseudoHeader).unwrap_err(),
            RxError::Version(v)
        );
    }
}

#[test]
fn rx_type() {
    for t in [0u8, 2, 15] {
        let mut m = GOLDEN;
        m[0] = 0x30 | t;
        refill(&mut m, ChecksumMode::PseudoHeader);
        assert_eq!(
            validate(&facts(), &m, ChecksumMode::PseudoHeader).unwrap_err(),
            RxError::Type(t)
        );
    }
}

#[test]
fn rx_incomplete() {
    for len in 0..GOLDEN.len() {
        let got = validate(&facts(), &GOLDEN[..len], ChecksumMode::PseudoHeader);
        // One byte is enough to check the version and type.
        assert_eq!(got.unwrap_err(), RxError::Incomplete, "{len} bytes");
    }
    // Three addresses announced, two sent.
    let mut m = GOLDEN;
    m[3] = 3;
    refill(&mut m, ChecksumMode::MessageOnly);
    assert_eq!(
        validate(&facts(), &m, ChecksumMode::MessageOnly).unwrap_err(),
        RxError::Incomplete
    );
    assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Truncated);
    assert_eq!(Packet::new_checked(&m[..7]).unwrap_err(), Error::Truncated);
}

#[test]
fn rx_checksum() {
    let pseudo = ChecksumMode::PseudoHeader;
    // The other form, another source or destination, a flipped bit.
    assert_eq!(
        validate(&facts(), &GOLDEN, ChecksumMode::MessageOnly).unwrap_err(),
        RxError::Checksum
    );
    let other_src = Ipv4Facts {
        src: Ipv4Addr::new(198, 18, 0, 2),
        ..facts()
    };
    assert_eq!(
        validate(&other_src, &GOLDEN, pseudo).unwrap_err(),
        RxError::Checksum
    );
    let unicast = Ipv4Facts {
        dst: Ipv4Addr::new(198, 18, 0, 3),
        ..facts()
    };
    assert_eq!(
        validate(&unicast, &GOLDEN, pseudo).unwrap_err(),
        RxError::Checksum
    );
    let mut m = GOLDEN;
    m[15] ^= 1;
    assert_eq!(
        validate(&facts(), &m, pseudo).unwrap_err(),
        RxError::Checksum
    );
    // The message-only form validates in its own mode.
    let mut m = GOLDEN;
    m[6..8].copy_from_slice(&GOLDEN_MESSAGE_ONLY_CHECKSUM);
    assert!(validate(&facts(), &m, ChecksumMode::MessageOnly).is_ok());
    assert_eq!(
        validate(&facts(), &m, pseudo).unwrap_err(),
        RxError::Checksum
    );
}

#[test]
fn rx_negative_zero_checksum_is_accepted() {
    // Choose the last address word so that the message sums to all ones:
    // its checksum is then 0. Sent as 0xffff, the other zero of one's
    // complement, it must pass too (keepalived's in_csum accepts both).
    let mut m = GOLDEN;
    m[6..8].fill(0);
    m[14..16].fill(0);
    let sum = !ones_complement(&[&m]);
    m[14..16].copy_from_slice(&(0xffff - sum).to_be_bytes());
    refill(&mut m, ChecksumMode::MessageOnly);
    assert_eq!(m[6..8], [0, 0]);
    assert!(validate(&facts(), &m, ChecksumMode::MessageOnly).is_ok());
    m[6..8].copy_from_slice(&[0xff, 0xff]);
    assert!(validate(&facts(), &m, ChecksumMode::MessageOnly).is_ok());
}

#[test]
fn rx_vrid_and_owner() {
    let p = validate(&facts(), &GOLDEN, ChecksumMode::PseudoHeader).unwrap();
    assert_eq!(p.check_vrid(51, 254), Ok(()));
    assert_eq!(p.check_vrid(52, 100), Err(RxError::Vrid(51)));
    assert_eq!(p.check_vrid(51, PRIORITY_OWNER), Err(RxError::LocalOwner));
    // The VRID check comes first: another router's VRID is no owner matter.
    assert_eq!(p.check_vrid(7, PRIORITY_OWNER), Err(RxError::Vrid(51)));
}

#[test]
fn rx_accepts_what_the_rfc_does_not_discard() {
    let pseudo = ChecksumMode::PseudoHeader;
    // Reserved bits set: ignored on reception (5.2.6), still summed.
    let mut m = GOLDEN;
    m[4] |= 0xf0;
    refill(&mut m, pseudo);
    let p = validate(&facts(), &m, pseudo).unwrap();
    assert_eq!((p.reserved(), p.max_adver_int()), (0xf, 100));

    // Interval 0: the RFC is silent, keepalived accepts it.
    let mut m = GOLDEN;
    m[5] = 0;
    refill(&mut m, pseudo);
    assert_eq!(validate(&facts(), &m, pseudo).unwrap().max_adver_int(), 0);

    // Priority 0, the master's release.
    let mut m = GOLDEN;
    m[2] = PRIORITY_RELEASE;
    refill(&mut m, pseudo);
    assert_eq!(validate(&facts(), &m, pseudo).unwrap().priority(), 0);

    // No address at all (keepalived sends that for an instance without VIPs).
    let mut m = [0x31, 0x33, 0x96, 0x00, 0x00, 0x64, 0, 0];
    refill(&mut m, pseudo);
    let p = validate(&facts(), &m, pseudo).unwrap();
    assert_eq!(p.addresses().count(), 0);

    // Bytes after the addresses: exposed, not summed.
    let mut long = GOLDEN.to_vec();
    long.extend_from_slice(&[0xaa; 28]);
    let p = validate(&facts(), &long, pseudo).unwrap();
    assert_eq!(p.trailer(), &[0xaa; 28]);
    assert_eq!(p.addresses().collect::<Vec<_>>(), VIPS);
}

#[test]
fn rx_error_names() {
    let all = [
        RxError::Ttl(1),
        RxError::Version(2),
        RxError::Type(2),
        RxError::Incomplete,
        RxError::Checksum,
        RxError::Vrid(9),
        RxError::LocalOwner,
    ];
    let names: Vec<_> = all.iter().map(RxError::as_str).collect();
    for (i, n) in names.iter().enumerate() {
        assert!(!n.is_empty());
        assert!(!names[..i].contains(n), "{n} twice");
    }
    assert_eq!(std::format!("{}", RxError::Checksum), "bad checksum");
}

#[test]
fn same_addresses_as_keepalived() {
    let p = Packet::new_checked(&GOLDEN[..]).unwrap();
    assert!(p.same_addresses(&VIPS));
    assert!(p.same_addresses(&[VIPS[1], VIPS[0]]));
    assert!(!p.same_addresses(&VIPS[..1]));
    assert!(!p.same_addresses(&[VIPS[0], VIPS[0]]));
    let mut dup = GOLDEN;
    dup.copy_within(8..12, 12);
    let d = Packet::new_checked(&dup[..]).unwrap();
    assert!(!d.same_addresses(&VIPS));
    assert!(d.same_addresses(&[VIPS[0], VIPS[0]]));
    assert!(!p.same_addresses(&[VIPS[0], Ipv4Addr::new(198, 18, 0, 102)]));
}

#[test]
fn sender_limits() {
    let vips: Vec<Ipv4Addr> = (0..256u32)
        .map(|i| Ipv4Addr::from(0xc612_0000 + i))
        .collect();
    let bad = [
        Advertisement {
            vrid: 0,
            ..golden_adv()
        },
        Advertisement {
            addresses: &[],
            ..golden_adv()
        },
        Advertisement {
            addresses: &vips,
            ..golden_adv()
        },
        Advertisement {
            max_adver_int: 0,
            ..golden_adv()
        },
        Advertisement {
            max_adver_int: MAX_ADVER_INT + 1,
            ..golden_adv()
        },
    ];
    let mut buf = [0xeeu8; 2000];
    for adv in bad {
        assert_eq!(adv.check(), Err(Error::Malformed));
        let m = ChecksumMode::PseudoHeader;
        assert_eq!(
            adv.emit(&mut buf, SRC, MULTICAST_GROUP, m),
            Err(Error::Malformed)
        );
        assert_eq!(adv.emit_ipv4(&mut buf, SRC, 0, m), Err(Error::Malformed));
        assert_eq!(adv.emit_frame(&mut buf, SRC, 0, m), Err(Error::Malformed));
    }
    assert!(buf.iter().all(|&b| b == 0xee));

    let edge = Advertisement {
        vrid: 255,
        priority: 255,
        max_adver_int: MAX_ADVER_INT,
        addresses: &vips[..255],
    };
    assert_eq!(edge.check(), Ok(()));
    let n = edge
        .emit_frame(&mut buf, SRC, 0, ChecksumMode::PseudoHeader)
        .unwrap();
    assert_eq!(n, 14 + 20 + 1028);
    assert_eq!(buf[n], 0xee);
}

#[test]
fn short_buffers_are_refused_untouched() {
    let adv = golden_adv();
    let m = ChecksumMode::PseudoHeader;
    for len in 0..16 {
        let mut b = vec![0xeeu8; len];
        assert_eq!(
            adv.emit(&mut b, SRC, MULTICAST_GROUP, m),
            Err(Error::Truncated)
        );
        assert!(b.iter().all(|&x| x == 0xee));
    }
    for len in 0..36 {
        let mut b = vec![0xeeu8; len];
        assert_eq!(adv.emit_ipv4(&mut b, SRC, 0, m), Err(Error::Truncated));
        assert!(b.iter().all(|&x| x == 0xee));
    }
    for len in 0..60 {
        let mut b = vec![0xeeu8; len];
        assert_eq!(adv.emit_frame(&mut b, SRC, 0, m), Err(Error::Truncated));
        assert!(b.iter().all(|&x| x == 0xee));
    }
    let mut b = [0u8; 19];
    assert_eq!(emit_ipv4_header(&mut b, SRC, 0, 16), Err(Error::Truncated));
    let mut b = [0u8; 20];
    assert_eq!(
        emit_ipv4_header(&mut b, SRC, 0, 65516),
        Err(Error::Malformed)
    );
    assert_eq!(
        emit_ipv4_header(&mut b, SRC, 0, usize::MAX),
        Err(Error::Malformed)
    );
}

#[test]
fn setters_round_trip() {
    let mut b = [0u8; 12];
    let mut p = Packet::new_unchecked(&mut b[..]);
    p.set_version_and_type(VERSION, TYPE_ADVERTISEMENT);
    p.set_vrid(9);
    p.set_priority(PRIORITY_OWNER);
    p.set_addr_count(1);
    p.set_max_adver_int(0xf123); // only the low 12 bits are kept
    p.set_address(0, VIPS[0]);
    p.fill_checksum(SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader);
    assert_eq!((p.reserved(), p.max_adver_int()), (0, 0x123));
    assert!(validate(&facts(), &b, ChecksumMode::PseudoHeader).is_ok());
}

fn arb_mode() -> impl Strategy<Value = ChecksumMode> {
    prop_oneof![
        Just(ChecksumMode::PseudoHeader),
        Just(ChecksumMode::MessageOnly)
    ]
}

fn arb_addrs() -> impl Strategy<Value = Vec<Ipv4Addr>> {
    prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..=MAX_ADDRS)
}

/// Every getter, as a caller would use a checked view.
fn read_all(p: &Packet<&[u8]>) -> usize {
    let _ = (p.version(), p.packet_type(), p.vrid(), p.priority());
    let _ = (p.reserved(), p.max_adver_int(), p.checksum(), p.trailer());
    let _ = p.compute_checksum(SRC, MULTICAST_GROUP, ChecksumMode::PseudoHeader);
    let _ = p.same_addresses(&VIPS);
    let _ = p.check_vrid(1, 100);
    p.addresses().count()
}

proptest! {
    #[test]
    fn frame_round_trip(
        vrid in 1..=255u8,
        priority in any::<u8>(),
        max_adver_int in 1..=MAX_ADVER_INT,
        addrs in arb_addrs(),
        src in any::<u32>().prop_map(Ipv4Addr::from),
        ident in any::<u16>(),
        mode in arb_mode(),
    ) {
        let adv = Advertisement { vrid, priority, max_adver_int, addresses: &addrs };
        let mut buf = vec![0u8; 1100];
        let n = adv.emit_frame(&mut buf, src, ident, mode).unwrap();
        prop_assert_eq!(n, adv.frame_len());
        prop_assert_eq!(n, frame_len(addrs.len() as u8));
        let eth = ethernet::Frame::new_checked(&buf[..n]).unwrap();
        prop_assert_eq!(eth.src_addr(), virtual_mac(vrid));
        prop_assert_eq!(eth.dst_addr(), MULTICAST_MAC);
        prop_assert_eq!(eth.ethertype(), EtherType::Ipv4);
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!(ip.ident(), ident);
        prop_assert_eq!(ip.ttl(), TTL);
        prop_assert_eq!(ip.dst_addr(), MULTICAST_GROUP);
        let p = validate(&Ipv4Facts::of(&ip), ip.payload(), mode).unwrap();
        prop_assert_eq!(p.vrid(), vrid);
        prop_assert_eq!(p.priority(), priority);
        prop_assert_eq!(p.max_adver_int(), max_adver_int);
        prop_assert_eq!(p.reserved(), 0);
        prop_assert_eq!(p.addresses().collect::<Vec<_>>(), addrs.clone());
        prop_assert!(p.trailer().is_empty());
        prop_assert!(p.same_addresses(&addrs));
        prop_assert_eq!(p.check_vrid(vrid, 1), Ok(()));
        // The message also checks out under the plain sum of this file.
        let msg = ip.payload();
        let ph = pseudo(src, MULTICAST_GROUP, msg.len());
        let sum = match mode {
            ChecksumMode::PseudoHeader => ones_complement(&[&ph, msg]),
            ChecksumMode::MessageOnly => ones_complement(&[msg]),
        };
        prop_assert_eq!(sum, 0);
    }

    /// A one's-complement sum changes with every single-bit change, so no
    /// flipped bit of a sent message passes validation.
    #[test]
    fn any_flipped_bit_is_refused(
        addrs in prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..8),
        bit in any::<prop::sample::Index>(),
        mode in arb_mode(),
    ) {
        let adv = Advertisement { addresses: &addrs, ..golden_adv() };
        let mut buf = vec![0u8; 64];
        let n = adv.emit(&mut buf, SRC, MULTICAST_GROUP, mode).unwrap();
        let bit = bit.index(n * 8);
        buf[bit / 8] ^= 0x80 >> (bit % 8);
        prop_assert!(validate(&facts(), &buf[..n], mode).is_err());
    }

    #[test]
    fn no_panic_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..1100),
        ttl in prop_oneof![Just(255u8), any::<u8>()],
        src in any::<u32>().prop_map(Ipv4Addr::from),
        mode in arb_mode(),
        fix_header in any::<bool>(),
    ) {
        let mut bytes = bytes;
        // Often make the first checks pass, to reach the later ones.
        if fix_header && !bytes.is_empty() {
            bytes[0] = 0x31;
        }
        let f = Ipv4Facts { ttl, src, dst: MULTICAST_GROUP };
        if let Ok(p) = validate(&f, &bytes, mode) {
            prop_assert_eq!(read_all(&p), usize::from(p.addr_count()));
            prop_assert!(p.message_len() <= bytes.len());
        }
        if let Ok(p) = Packet::new_checked(&bytes[..]) {
            prop_assert_eq!(read_all(&p), usize::from(p.addr_count()));
            let _ = p.verify_checksum(src, MULTICAST_GROUP, mode);
        }
    }
}
