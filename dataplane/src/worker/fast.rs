//! The fixed-offset parse of the common frame: untagged Ethernet II to the
//! port's own MAC, IPv4 with a 20-byte header (IHL 5), not a fragment, TCP
//! or UDP whose header fits in the datagram and whose datagram fits in
//! the frame, with a good header checksum (verified here, or taken from
//! the port's receive checksum offload when it verified it). Every field
//! sits at a constant offset, so the general parse's steps (a VLAN tag,
//! IHL, the error to report for each malformation, fragments) fall away.
//!
//! It accepts only frames the general parse (`Worker::classify` and
//! `Worker::ipv4`) accepts, and reads from them what that parse reads;
//! anything else returns None and takes the general path, which decides
//! how to report it. The differential fuzz target `fast_path`
//! (dataplane/fuzz) and the property test in dataplane/tests/fast_path.rs
//! hold the two to the same verdicts and bytes.

use super::{Datagram, L4};
use l4vs_wire::ethernet::{self, Address as MacAddr};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::{get_addr, get_u16, tcp, udp};

/// Offset of the IPv4 header: right after an untagged Ethernet header.
pub(super) const IP: usize = ethernet::HEADER_LEN;
/// Offset of the L4 header: after a 20-byte IPv4 header.
pub(super) const L4_AT: usize = IP + ipv4::HEADER_LEN;

/// The headers of `frame`, received on a port whose MAC is `port_mac`,
/// when it is the common frame described above; None otherwise.
/// `rx_ip_checksum` is what the port found of the IPv4 header checksum
/// ([`crate::packet::PacketBuf::rx_ip_checksum`]): good is taken as it
/// is, bad goes the general way (which verifies and counts it), None is
/// verified here.
#[inline(always)]
pub(super) fn parse(
    frame: &[u8],
    port_mac: MacAddr,
    rx_ip_checksum: Option<bool>,
) -> Option<Datagram> {
    // The shortest common frame: a UDP header after the IPv4 header.
    let ip_room = frame.len().checked_sub(IP)?;
    if ip_room < ipv4::HEADER_LEN + udp::HEADER_LEN
        || frame[..6] != port_mac.0
        || get_u16(frame, 12) != 0x0800
        || frame[IP] != 0x45
    {
        return None;
    }
    let total = usize::from(get_u16(frame, IP + 2));
    // MF set or an offset: a fragment. (The reserved and DF bits do not
    // matter to the general path either.)
    if total > ip_room || get_u16(frame, IP + 6) & 0x3fff != 0 {
        return None;
    }
    let l4_len = total.checked_sub(ipv4::HEADER_LEN)?;
    let proto = Protocol::from(frame[IP + 9]);
    let l4_bytes = &frame[L4_AT..IP + total];
    let l4 = match proto {
        Protocol::Tcp => {
            if l4_len < tcp::HEADER_LEN {
                return None;
            }
            let t = tcp::Packet::new_unchecked(l4_bytes);
            let hl = t.header_len();
            if hl < tcp::HEADER_LEN || hl > l4_len {
                return None;
            }
            L4 {
                sport: t.src_port(),
                dport: t.dst_port(),
                tcp_flags: Some(t.flags()),
            }
        }
        Protocol::Udp => {
            if l4_len < udp::HEADER_LEN {
                return None;
            }
            let len = usize::from(get_u16(l4_bytes, 4));
            if len < udp::HEADER_LEN || len > l4_len {
                return None;
            }
            L4 {
                sport: get_u16(l4_bytes, 0),
                dport: get_u16(l4_bytes, 2),
                tcp_flags: None,
            }
        }
        _ => return None,
    };
    // Last, as it costs the most: a bad checksum goes the general way,
    // which counts it.
    let good = match rx_ip_checksum {
        Some(good) => good,
        None => frame[IP..L4_AT]
            .try_into()
            .is_ok_and(ipv4::verify_header_checksum),
    };
    if !good {
        return None;
    }
    Some(Datagram {
        src: get_addr(frame, IP + 12),
        dst: get_addr(frame, IP + 16),
        proto,
        ip_len: total as u64,
        l4,
        frag: None,
        frag_route: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{self, Hdr};
    use core::net::Ipv4Addr;

    const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn hdr() -> Hdr {
        Hdr {
            src_mac: MacAddr([2, 0, 0, 0, 0, 9]),
            dst_mac: PORT_MAC,
            src: Ipv4Addr::new(198, 18, 1, 10),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            ttl: 64,
        }
    }

    #[test]
    fn reads_a_tcp_and_a_udp_frame() {
        let f = testpkt::tcp(&hdr(), 40000, 80, tcp::flags::SYN, b"");
        let d = parse(&f, PORT_MAC, None).expect("common TCP frame");
        assert_eq!(
            (d.src, d.dst, d.proto),
            (hdr().src, hdr().dst, Protocol::Tcp)
        );
        assert_eq!(
            (d.l4.sport, d.l4.dport, d.l4.tcp_flags),
            (40000, 80, Some(tcp::flags::SYN))
        );
        assert_eq!(d.ip_len, 40);

        let f = testpkt::udp(&hdr(), 5000, 53, b"abcd", true);
        let d = parse(&f, PORT_MAC, None).expect("common UDP frame");
        assert_eq!((d.l4.sport, d.l4.dport, d.l4.tcp_flags), (5000, 53, None));
        assert_eq!(d.ip_len, 32);
    }

    #[test]
    fn leaves_the_rest_to_the_general_path() {
        let good = testpkt::tcp(&hdr(), 40000, 80, tcp::flags::ACK, b"xy");
        assert!(parse(&good, PORT_MAC, None).is_some());
        // One byte changed, and the IPv4 header checksum made right again
        // so that only the change itself can send the frame away.
        let changed = |from: &[u8], at: usize, v: u8| {
            let mut f = from.to_vec();
            f[at] = v;
            crate::difftest::refill_ipv4_checksum(&mut f);
            f
        };
        // Another MAC, a VLAN tag, IHL 6, a fragment (MF, an offset), ICMP,
        // a total length beyond the frame, a TCP header longer than the
        // datagram, a datagram too short for its L4 header.
        for f in [
            changed(&good, 0, 0xff),
            changed(&good, 12, 0x81),
            changed(&good, IP, 0x46),
            changed(&good, IP + 6, 0x20),
            changed(&good, IP + 7, 0x01),
            changed(&good, IP + 9, 1),
            changed(&good, IP + 3, 0xff),
            changed(&good, L4_AT + 12, 0xf0),
            changed(&good, IP + 3, 22),
        ] {
            assert!(parse(&f, PORT_MAC, None).is_none(), "{f:02x?}");
        }
        // DF does not matter, as on the general path.
        assert!(parse(&changed(&good, IP + 6, 0x40), PORT_MAC, None).is_some());
        // A bad checksum.
        let mut bad = good.clone();
        bad[IP + 10] = !bad[IP + 10];
        assert!(parse(&bad, PORT_MAC, None).is_none());
        // What the port's checksum offload found is taken as it is: good
        // (the header is not summed again), bad (the general path verifies
        // it and counts the drop).
        assert!(parse(&bad, PORT_MAC, Some(true)).is_some());
        assert!(parse(&good, PORT_MAC, Some(false)).is_none());
        assert!(parse(&good, PORT_MAC, Some(true)).is_some());
        let udp = testpkt::udp(&hdr(), 5000, 53, b"abcd", true);
        assert!(parse(&changed(&udp, IP + 3, 22), PORT_MAC, None).is_none());
        // A UDP length beyond the datagram, or under its header.
        assert!(parse(&changed(&udp, L4_AT + 5, 13), PORT_MAC, None).is_none());
        assert!(parse(&changed(&udp, L4_AT + 5, 7), PORT_MAC, None).is_none());
        // Ethernet padding after the datagram is not part of it.
        let mut padded = good.clone();
        padded.resize(good.len() + 6, 0);
        let d = parse(&padded, PORT_MAC, None).unwrap();
        assert_eq!(d.ip_len, (good.len() - IP) as u64);
        assert!(parse(&good[..good.len() - 3], PORT_MAC, None).is_none());
        assert!(parse(&good[..20], PORT_MAC, None).is_none());
    }
}
