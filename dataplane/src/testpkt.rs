//! Packet builders for tests and benchmarks (not for the per-packet path:
//! they allocate).

use crate::frag::Plan;
use crate::packet::{PacketBuf, VecPacket};
use crate::snapshot::{LocalAddress, PortInfo};
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::{self, Address as MacAddr, EtherType};
use l4vs_wire::{arp, icmp, ipv4, tcp, udp};

/// Addresses of one packet.
#[derive(Debug, Clone, Copy)]
pub struct Hdr {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
}

fn ip_frame(h: &Hdr, proto: ipv4::Protocol, l4: &[u8]) -> Vec<u8> {
    let total = ipv4::HEADER_LEN + l4.len();
    let mut f = vec![0u8; ethernet::HEADER_LEN + total];
    let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(h.dst_mac);
    eth.set_src_addr(h.src_mac);
    eth.set_outer_ethertype(EtherType::Ipv4);
    let ipb = &mut f[ethernet::HEADER_LEN..];
    ipb[ipv4::HEADER_LEN..].copy_from_slice(l4);
    let mut ip = ipv4::Packet::new_unchecked(&mut ipb[..]);
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_total_len(total as u16);
    ip.set_ident(0x1234);
    ip.set_unfragmented(true);
    ip.set_ttl(h.ttl);
    ip.set_protocol(proto);
    ip.set_src_addr(h.src);
    ip.set_dst_addr(h.dst);
    ip.fill_checksum();
    f
}

/// An Ethernet/IPv4/TCP frame with valid checksums.
pub fn tcp(h: &Hdr, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; tcp::HEADER_LEN + payload.len()];
    seg[tcp::HEADER_LEN..].copy_from_slice(payload);
    let mut t = tcp::Packet::new_unchecked(&mut seg[..]);
    t.set_src_port(sport);
    t.set_dst_port(dport);
    t.set_header_len_and_flags(tcp::HEADER_LEN, flags);
    t.fill_checksum(h.src, h.dst);
    ip_frame(h, ipv4::Protocol::Tcp, &seg)
}

/// An Ethernet/IPv4/UDP frame; `with_checksum` false leaves the checksum 0.
pub fn udp(h: &Hdr, sport: u16, dport: u16, payload: &[u8], with_checksum: bool) -> Vec<u8> {
    let mut d = vec![0u8; udp::HEADER_LEN + payload.len()];
    d[udp::HEADER_LEN..].copy_from_slice(payload);
    let len = d.len() as u16;
    let mut u = udp::Packet::new_unchecked(&mut d[..]);
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len(len);
    if with_checksum {
        udp::Packet::new_unchecked(&mut d[..]).fill_checksum(h.src, h.dst);
    }
    ip_frame(h, ipv4::Protocol::Udp, &d)
}

/// An ICMP echo request.
pub fn icmp_echo(h: &Hdr, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; icmp::HEADER_LEN + payload.len()];
    m[icmp::HEADER_LEN..].copy_from_slice(payload);
    let mut p = icmp::Packet::new_unchecked(&mut m[..]);
    p.set_type_and_code(icmp::Message::EchoRequest, 0);
    p.set_rest_of_header(ident, seq);
    p.fill_checksum();
    ip_frame(h, ipv4::Protocol::Icmp, &m)
}

/// An ICMP error (`msg`, `code`, bytes 4..8 = `rest`) quoting `quoted`
/// (an IP packet: its header and the start of its payload).
pub fn icmp_error(
    h: &Hdr,
    msg: icmp::Message,
    code: u8,
    rest: (u16, u16),
    quoted: &[u8],
) -> Vec<u8> {
    let mut m = vec![0u8; icmp::HEADER_LEN + quoted.len()];
    m[icmp::HEADER_LEN..].copy_from_slice(quoted);
    let mut p = icmp::Packet::new_unchecked(&mut m[..]);
    p.set_type_and_code(msg, code);
    p.set_rest_of_header(rest.0, rest.1);
    p.fill_checksum();
    ip_frame(h, ipv4::Protocol::Icmp, &m)
}

/// An Ethernet/ARP frame, padded to the 60-byte Ethernet minimum.
pub fn arp(
    op: arp::Operation,
    src_mac: MacAddr,
    sender: Ipv4Addr,
    target_mac: MacAddr,
    target: Ipv4Addr,
    eth_dst: MacAddr,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(eth_dst);
    eth.set_src_addr(src_mac);
    eth.set_outer_ethertype(EtherType::Arp);
    let mut a = arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
    a.set_header(op);
    a.set_sender(src_mac, sender);
    a.set_target(target_mac, target);
    f
}

/// Real server `i` (from 0) of the lab and the tests: 198.18.2.11 + i.
pub fn real_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 2, 11 + i as u8)
}

/// The MAC address tests give real server `i`: 02:00:00:00:02:(11 + i).
pub fn real_mac(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 2, 11 + i as u8])
}

/// The lab director's MAC address in tests and benchmarks.
pub const DIRECTOR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

/// The lab's virtual service address in tests and benchmarks.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

/// The client tests send from, on the director's client side.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);

/// [`CLIENT`]'s MAC address.
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 10]);

/// The lab director's address towards the clients (198.18.1.0/24).
pub const DIR_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

/// The lab director's address towards the real servers (198.18.2.0/24).
pub const DIR_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);

/// The addresses of a packet from the lab's client ([`CLIENT`]) to the
/// [`VIP`], through the director, with `ttl`.
pub fn client_to_vip(ttl: u8) -> Hdr {
    Hdr {
        src_mac: CLIENT_MAC,
        dst_mac: DIRECTOR_MAC,
        src: CLIENT,
        dst: VIP,
        ttl,
    }
}

/// The addresses of a packet from real server `i` ([`real_addr`]) back to
/// the client through the director (a NAT reply), with `ttl`.
pub fn real_to_client(i: usize, ttl: u8) -> Hdr {
    Hdr {
        src_mac: real_mac(i),
        dst_mac: DIRECTOR_MAC,
        src: real_addr(i),
        dst: CLIENT,
        ttl,
    }
}

/// The lab director's one port ([`DIRECTOR_MAC`], MTU 1500) and its two
/// addresses on it: [`DIR_CLIENT_SIDE`]/24 towards the clients and
/// [`DIR_SERVER_SIDE`]/24 towards the real servers.
pub fn lab_director() -> (Vec<PortInfo>, Vec<LocalAddress>) {
    let local = |addr| LocalAddress {
        port: 0,
        addr,
        prefix_len: 24,
    };
    (
        vec![PortInfo {
            mac: DIRECTOR_MAC,
            mtu: 1500,
        }],
        vec![local(DIR_CLIENT_SIDE), local(DIR_SERVER_SIDE)],
    )
}

/// `frame` with DF cleared, cut into the fragments a link of IP MTU `mtu`
/// carries ([`crate::frag`]), first to last.
///
/// # Panics
/// When the frame is not IPv4 or fits the MTU whole: a test's mistake.
pub fn fragments(frame: &[u8], mtu: u16) -> Vec<Vec<u8>> {
    let mut frame = frame.to_vec();
    let l2 = ethernet::Frame::new_checked(&frame[..])
        .expect("an Ethernet frame")
        .header_len();
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[l2..]);
        ip.set_unfragmented(false);
        ip.fill_checksum();
    }
    let plan = Plan::new(&frame, mtu)
        .expect("an IPv4 frame")
        .expect("larger than the MTU");
    let mut out = vec![Vec::new(); plan.count()];
    for (k, piece) in out.iter_mut().enumerate().skip(1) {
        piece.resize(plan.frame_len(k), 0);
        plan.write(&frame, k, piece);
    }
    let mut first = VecPacket::new(&frame);
    plan.write_first(&mut first);
    out[0] = first.data().to_vec();
    out
}
