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
    // The fixed part of the IPv4 header and the L4 header's first bytes
    // as arrays: each field below is read and written at a constant
    // offset with no bounds check of its own (two checks in all).
    let hl = usize::from(ip.first().ok_or(Error::Truncated)? & 0x0f) * 4;
    let (header, l4) = ip.split_at_mut_checked(hl).ok_or(Error::Truncated)?;
    let header: &mut [u8; ipv4::HEADER_LEN] = header
        .get_mut(..ipv4::HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::Truncated)?;
    let end_of_packet = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if u16::from_be_bytes([header[6], header[7]]) & 0x1fff != 0 {
        return Err(Error::Unsupported);
    }
    let (csum_at, udp) = match Protocol::from(header[9]) {
        Protocol::Tcp => (16, false),
        Protocol::Udp => (6, true),
        _ => return Err(Error::Unsupported),
    };
    if end_of_packet < hl + csum_at + 2 {
        return Err(Error::Truncated);
    }
    // TCP's checksum ends at byte 18 of its header, UDP's at 8.
    let l4: &mut [u8; 18] = match l4.get_mut(..18) {
        Some(l) => l.try_into().map_err(|_| Error::Truncated)?,
        None if udp => return rewrite_short_udp(header, l4, end, addr, port),
        None => return Err(Error::Truncated),
    };
    rewrite_fields(header, l4, csum_at, udp, end, addr, port);
    Ok(())
}

/// [`rewrite`] of a UDP datagram shorter than 18 bytes after its IPv4
/// header (its 8-byte header and under 10 bytes of payload).
#[cold]
fn rewrite_short_udp(
    header: &mut [u8; ipv4::HEADER_LEN],
    l4: &mut [u8],
    end: End,
    addr: Ipv4Addr,
    port: u16,
) -> Result<()> {
    if l4.len() < 8 {
        return Err(Error::Truncated);
    }
    let mut first = [0u8; 18];
    let n = l4.len().min(18);
    first[..n].copy_from_slice(&l4[..n]);
    rewrite_fields(header, &mut first, 6, true, end, addr, port);
    l4[..n].copy_from_slice(&first[..n]);
    Ok(())
}

/// The rewrite itself: `end`'s address in `header` and port in `l4`, the
/// L4 checksum at `l4[csum_at..]` (UDP's 0 stays 0) and the header
/// checksum, updated incrementally.
#[inline(always)]
fn rewrite_fields(
    header: &mut [u8; ipv4::HEADER_LEN],
    l4: &mut [u8; 18],
    csum_at: usize,
    udp: bool,
    end: End,
    addr: Ipv4Addr,
    port: u16,
) {
    let (addr_at, port_at) = match end {
        End::Src => (12, 0),
        End::Dst => (16, 2),
    };
    let old_addr = crate::get_addr(header, addr_at);
    let old_port = get_u16(l4, port_at);
    let l4_field = get_u16(l4, csum_at);
    let new_l4 = if udp {
        checksum::update_addr_port_udp(l4_field, old_addr, addr, old_port, port)
    } else {
        checksum::update_addr_port(l4_field, old_addr, addr, old_port, port)
    };
    set_u16(l4, csum_at, new_l4);
    set_u16(l4, port_at, port);
    let ip_field = get_u16(header, 10);
    set_u16(header, 10, checksum::update_addr(ip_field, old_addr, addr));
    crate::set_addr(header, addr_at, addr);
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
        // A UDP datagram whose length says more than the buffer holds:
        // the header is cut before its checksum field, nothing changes.
        let mut b = [0u8; 200];
        let n = build(17, b"abcd", [1, 1, 1, 1], [2, 2, 2, 2], (1, 2), &mut b);
        let before = b;
        assert_eq!(
            rewrite(&mut b[..24], End::Dst, Ipv4Addr::LOCALHOST, 1),
            Err(Error::Truncated)
        );
        assert_eq!(b[..n], before[..n]);
        // A whole short UDP datagram (under 18 bytes after the header) is
        // rewritten, as the property test checks against a recomputation.
        assert_eq!(
            rewrite(&mut b[..n], End::Dst, Ipv4Addr::LOCALHOST, 1),
            Ok(())
        );
    }
}
