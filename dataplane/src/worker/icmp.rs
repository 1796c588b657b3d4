//! ICMP, as `ip_vs_in_icmp` / `ip_vs_out_icmp` (ip_vs_core.c) handle it:
//! echo requests to a VIP or a director address answered in place; errors
//! about one of our connections relayed to its other end, with the quoted
//! header rewritten for NAT.

use super::xmit::TunnelError;
use super::Worker;
use crate::conn::Direction;
use crate::model::{ForwardMethod, Tuple};
use crate::packet::PacketBuf;
use crate::verdict::{DropReason, Verdict};
use l4vs_wire::ethernet::{self};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::rewrite::End;
use l4vs_wire::{checksum, icmp, tcp};

impl Worker {
    /// ICMP: echo requests to a VIP or a local address are answered in
    /// place; errors are forwarded along the connection they concern;
    /// anything else for a local address goes to the control thread.
    pub(super) fn icmp<B: PacketBuf>(
        &mut self,
        in_port: u16,
        pkt: &mut B,
        l2: usize,
        now_ms: u64,
    ) -> Verdict {
        let msg = {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
            match icmp::Packet::new_checked(ip.payload()) {
                Ok(m) => m.msg_type(),
                Err(_) => return Verdict::Drop(DropReason::L4Truncated),
            }
        };
        match msg {
            icmp::Message::EchoRequest => self.echo_reply(in_port, pkt, l2),
            // Source quench (4) is deprecated but IPVS still relays it.
            icmp::Message::DstUnreachable
            | icmp::Message::TimeExceeded
            | icmp::Message::Unknown(4) => self.icmp_error(pkt, l2, now_ms),
            _ => {
                let dst = ipv4::Packet::new_unchecked(&pkt.data()[l2..]).dst_addr();
                if self.snap.is_local(dst) {
                    Verdict::ToControl
                } else {
                    Verdict::Drop(DropReason::IcmpUnhandled)
                }
            }
        }
    }

    /// An ICMP error about a packet of one of our connections (ip_vs_in_icmp
    /// and ip_vs_out_icmp): find the connection from the quoted header and
    /// pass the error on to the other end — with the quoted header and the
    /// outer address rewritten for NAT.
    pub(super) fn icmp_error<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        now_ms: u64,
    ) -> Verdict {
        let (odst, hl, tl) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
            (ip.dst_addr(), ip.header_len(), usize::from(ip.total_len()))
        };
        let icmp_at = l2 + hl;
        let emb_at = icmp_at + icmp::HEADER_LEN;
        let (quoted, ehl) = match embedded_tuple(&pkt.data()[emb_at..l2 + tl]) {
            Ok(x) => x,
            Err(r) => return Verdict::Drop(r),
        };
        // The quoted packet travelled the other way from the connection's
        // packets that the error is about.
        let back = Tuple {
            proto: quoted.proto,
            src: quoted.dst,
            sport: quoted.dport,
            dst: quoted.src,
            dport: quoted.sport,
        };
        if self.steer.workers() > 1 {
            let client = if self.snap.is_vip(odst) {
                quoted.dst
            } else {
                odst
            };
            if let Some(owner) = self.foreign_owner(client) {
                return Verdict::Redirect { worker: owner };
            }
        }
        let Some((i, dir)) = self.conns.lookup(&back) else {
            return if self.snap.is_local(odst) {
                Verdict::ToControl
            } else {
                Verdict::Drop(DropReason::IcmpNoConnection)
            };
        };
        let c = *self.conns.get(i);
        let hop = match self.next_hop(pkt, l2, c.destination(dir), now_ms) {
            Ok(h) => h,
            Err(v) => return v,
        };
        match (c.method, dir) {
            (ForwardMethod::Nat, _) => {
                let d = pkt.data_mut();
                let (outer_new, emb_end, new_addr, new_port) = match dir {
                    // From the client's side, about VIP -> client: to the real.
                    Direction::In => (End::Dst, End::Src, c.rip, c.rport),
                    // From the real, about client -> RIP: back as the VIP.
                    Direction::Out => (End::Src, End::Dst, c.vip, c.vport),
                };
                let mut outer = ipv4::Packet::new_unchecked(&mut d[l2..l2 + tl]);
                match outer_new {
                    End::Dst => outer.rewrite_dst_addr(new_addr),
                    End::Src => outer.rewrite_src_addr(new_addr),
                }
                let emb = &mut d[emb_at..l2 + tl];
                let port_at = match emb_end {
                    End::Src => ehl,
                    End::Dst => ehl + 2,
                };
                let mut inner = ipv4::Packet::new_unchecked(&mut emb[..ehl]);
                match emb_end {
                    End::Src => inner.rewrite_src_addr(new_addr),
                    End::Dst => inner.rewrite_dst_addr(new_addr),
                }
                emb[port_at..port_at + 2].copy_from_slice(&new_port.to_be_bytes());
                icmp::Packet::new_unchecked(&mut d[icmp_at..l2 + tl]).fill_checksum();
            }
            (ForwardMethod::DirectRouting, _) => {}
            (ForwardMethod::Tunnel, _) => match self.encapsulate(pkt, l2, c.rip, &hop) {
                Ok(()) => {}
                Err(TunnelError::Drop(r)) => return Verdict::Drop(r),
                // Never answer an ICMP error with another one (RFC 1122).
                Err(TunnelError::TooBig { .. }) => return Verdict::Drop(DropReason::TunnelTooBig),
            },
        }
        self.counters.icmp_errors_forwarded.inc();
        self.send(pkt, &hop)
    }

    /// Answers an echo request to a VIP or a local address in place.
    pub(super) fn echo_reply<B: PacketBuf>(
        &mut self,
        in_port: u16,
        pkt: &mut B,
        l2: usize,
    ) -> Verdict {
        let d = pkt.data();
        let ip = ipv4::Packet::new_unchecked(&d[l2..]);
        let (src, dst, hl, tl) = (
            ip.src_addr(),
            ip.dst_addr(),
            ip.header_len(),
            usize::from(ip.total_len()),
        );
        let ours = self.snap.is_vip(dst) || self.snap.is_local(dst);
        let valid = icmp::Packet::new_checked(ip.payload()).is_ok_and(|m| m.verify_checksum());
        if !ours || !valid {
            return Verdict::Drop(DropReason::IcmpUnhandled);
        }
        let port_mac = self.snap.ports()[usize::from(in_port)].mac;
        let d = pkt.data_mut();
        let mut eth = ethernet::Frame::new_unchecked(&mut *d);
        let peer = eth.src_addr();
        eth.set_dst_addr(peer);
        eth.set_src_addr(port_mac);
        let ipb = &mut d[l2..l2 + tl];
        let mut ip = ipv4::Packet::new_unchecked(&mut *ipb);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(64);
        ip.fill_checksum();
        let m = &mut ipb[hl..];
        let old = u16::from_be_bytes([m[0], m[1]]);
        let new = u16::from(u8::from(icmp::Message::EchoReply)) << 8 | u16::from(m[1]);
        let c = checksum::update16(u16::from_be_bytes([m[2], m[3]]), old, new);
        m[0] = icmp::Message::EchoReply.into();
        m[2..4].copy_from_slice(&c.to_be_bytes());
        self.counters.icmp_echo_replies.inc();
        Verdict::Forward { port: in_port }
    }
}

/// The TCP/UDP tuple of the IP header quoted in an ICMP error, and the
/// quoted header's length. RFC 792 quotes the header and at least 8 bytes
/// of payload: enough for the ports, which is all that is read.
pub(super) fn embedded_tuple(emb: &[u8]) -> Result<(Tuple, usize), DropReason> {
    if emb.len() < ipv4::HEADER_LEN || emb[0] >> 4 != 4 {
        return Err(DropReason::IcmpBadEmbedded);
    }
    let ehl = usize::from(emb[0] & 0x0f) * 4;
    if ehl < ipv4::HEADER_LEN || emb.len() < ehl + 8 {
        return Err(DropReason::IcmpBadEmbedded);
    }
    let ip = ipv4::Packet::new_unchecked(&emb[..ehl]);
    let proto = ip.protocol();
    if !matches!(proto, Protocol::Tcp | Protocol::Udp) || ip.frag_offset() != 0 {
        return Err(DropReason::IcmpNoConnection);
    }
    let (sport, dport) = tcp::ports(&emb[ehl..]).ok_or(DropReason::IcmpBadEmbedded)?;
    Ok((
        Tuple {
            proto: proto.into(),
            src: ip.src_addr(),
            sport,
            dst: ip.dst_addr(),
            dport,
        },
        ehl,
    ))
}
