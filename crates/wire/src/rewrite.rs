//! In-place rewriting of an IPv4 TCP/UDP tuple with incremental checksum
//! updates (RFC 1624), the core of NAT.
//!
//! Both functions take the IP packet (from its first header byte) already
//! validated by [`crate::ipv4::Packet::new_checked`], and refuse what they
//! cannot rewrite safely: other protocols, non-first fragments, and
//! transport headers too short to hold the checksum field. A UDP checksum
//! of 0 ("none") stays 0. The IP header checksum is updated too.

use crate::checksum;
use crate::ipv4::{self, Protocol};
use crate::{get_u16, set_u16, Error, Ipv4Addr, Result};

/// Which end of the tuple to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Source address and port.
    Src,
    /// Destination address and port.
    Dst,
}

/// Rewrites one end (address and port) of a TCP or UDP packet.
///
/// # Errors
/// [`Error::Unsupported`] for protocols other than TCP/UDP or a non-first
/// fragment; [`Error::Truncated`] when the transport header is too short.
pub fn rewrite(ip: &mut [u8], end: End, addr: Ipv4Addr, port: u16) -> Result<()> {
    let p = ipv4::Packet::new_unchecked(&*ip);
    let hl = p.header_len();
    let end_of_packet = usize::from(p.total_len());
    let proto = p.protocol();
    if p.frag_offset() != 0 {
        return Err(Error::Unsupported);
    }
    let (csum_at, udp) = match proto {
        Protocol::Tcp => (16, false),
        Protocol::Udp => (6, true),
        _ => return Err(Error::Unsupported),
    };
    if end_of_packet < hl + csum_at + 2 {
        return Err(Error::Truncated);
    }
    let (addr_at, port_at) = match end {
        End::Src => (12, hl),
        End::Dst => (16, hl + 2),
    };
    let old_addr = crate::get_addr(ip, addr_at);
    let old_port = get_u16(ip, port_at);
    let l4_field = get_u16(ip, hl + csum_at);
    let new_l4 = if udp {
        checksum::update_addr_port_udp(l4_field, old_addr, addr, old_port, port)
    } else {
        checksum::update_addr_port(l4_field, old_addr, addr, old_port, port)
    };
    set_u16(ip, hl + csum_at, new_l4);
    set_u16(ip, port_at, port);
    let mut p = ipv4::Packet::new_unchecked(&mut *ip);
    match end {
        End::Src => p.rewrite_src_addr(addr),
        End::Dst => p.rewrite_dst_addr(addr),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tcp, udp};
    use proptest::prelude::*;

    const TCP_HDR: usize = 20;

    fn build(
        proto: u8,
        payload: &[u8],
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u16, u16),
        buf: &mut [u8; 200],
    ) -> usize {
        let l4_hdr = if proto == 6 { TCP_HDR } else { 8 };
        let total = 20 + l4_hdr + payload.len();
        let b = &mut buf[..total];
        b.fill(0);
        let mut ip = ipv4::Packet::new_unchecked(&mut *b);
        ip.set_version_and_header_len(20);
        ip.set_total_len(total as u16);
        ip.set_ttl(64);
        ip.set_protocol(proto.into());
        ip.set_src_addr(src.into());
        ip.set_dst_addr(dst.into());
        ip.fill_checksum();
        let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
        let l4 = &mut b[20..];
        l4[l4_hdr..].copy_from_slice(payload);
        if proto == 6 {
            let mut t = tcp::Packet::new_unchecked(&mut *l4);
            t.set_src_port(ports.0);
            t.set_dst_port(ports.1);
            t.set_header_len_and_flags(TCP_HDR, tcp::flags::ACK);
            t.fill_checksum(s, d);
        } else {
            let mut u = udp::Packet::new_unchecked(&mut *l4);
            u.set_src_port(ports.0);
            u.set_dst_port(ports.1);
            u.set_len((8 + payload.len()) as u16);
            u.fill_checksum(s, d);
        }
        total
    }

    proptest! {
        /// The incremental update equals a full recomputation, for both
        /// ends, both protocols, any addresses, ports and payload.
        #[test]
        fn incremental_equals_full(
            tcp_or_udp in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..120),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            sport in any::<u16>(), dport in any::<u16>(),
            new_addr in any::<[u8; 4]>(), new_port in any::<u16>(),
            rewrite_src in any::<bool>(),
        ) {
            let proto = if tcp_or_udp { 6 } else { 17 };
            let mut a = [0u8; 200];
            let n = build(proto, &payload, src, dst, (sport, dport), &mut a);
            let end = if rewrite_src { End::Src } else { End::Dst };
            rewrite(&mut a[..n], end, new_addr.into(), new_port).unwrap();

            let (ns, nd, np) = if rewrite_src {
                (new_addr, dst, (new_port, dport))
            } else {
                (src, new_addr, (sport, new_port))
            };
            let mut b = [0u8; 200];
            build(proto, &payload, ns, nd, np, &mut b);
            prop_assert_eq!(&a[..n], &b[..n]);
            let ip = ipv4::Packet::new_checked(&a[..n]).unwrap();
            prop_assert!(ip.verify_checksum());
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut a = [0u8; 200];
        let n = build(
            17,
            b"hello",
            [198, 18, 1, 10],
            [198, 18, 0, 100],
            (5000, 53),
            &mut a,
        );
        a[26] = 0;
        a[27] = 0;
        rewrite(&mut a[..n], End::Dst, Ipv4Addr::new(198, 18, 2, 11), 5353).unwrap();
        assert_eq!(&a[26..28], &[0, 0]);
        assert_eq!(get_u16(&a, 22), 5353);
    }

    #[test]
    fn refuses_what_it_cannot_rewrite() {
        let mut a = [0u8; 200];
        let n = build(6, b"", [1, 1, 1, 1], [2, 2, 2, 2], (1, 2), &mut a);
        let mut frag = a;
        frag[7] = 1; // fragment offset 8
        assert_eq!(
            rewrite(&mut frag[..n], End::Dst, Ipv4Addr::LOCALHOST, 1),
            Err(Error::Unsupported)
        );
        let mut icmp = a;
        icmp[9] = 1;
        assert_eq!(
            rewrite(&mut icmp[..n], End::Dst, Ipv4Addr::LOCALHOST, 1),
            Err(Error::Unsupported)
        );
        // A TCP header cut before its checksum field.
        let mut short = a;
        short[3] = 30;
        assert_eq!(
            rewrite(&mut short[..30], End::Dst, Ipv4Addr::LOCALHOST, 1),
            Err(Error::Truncated)
        );
    }
}
