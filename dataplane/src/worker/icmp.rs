//! ICMP, as `ip_vs_in_icmp` / `ip_vs_out_icmp` (ip_vs_core.c) handle it:
//! echo requests to a VIP or a director address answered in place; errors
//! about one of our connections relayed to its other end, with the quoted
//! header rewritten for NAT. And the errors the director itself sends
//! about a packet it cannot forward (`icmp_send` in net/ipv4/icmp.c, as
//! IPVS calls it): time exceeded, port unreachable, fragmentation needed,
//! built in place from the packet and rate-limited.

use super::xmit::{decrement_ttl, TunnelError};
use super::Worker;
use crate::conn::Direction;
use crate::model::{ForwardMethod, Tuple};
use crate::packet::PacketBuf;
use crate::verdict::{DropReason, Verdict};
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::{self};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::rewrite::End;
use l4vs_wire::{checksum, icmp, tcp};

/// The kernel's ICMP limit per destination (`icmpv4_xrlim_allow`,
/// `inet_peer_xrlim_allow`, sysctl `net.ipv4.icmp_ratelimit` = 1000 ms):
/// a destination may get a burst of 6 errors, then one a second. Kept in
/// a fixed direct-mapped table of [`IcmpPeerLimit::SLOTS`] destinations;
/// a destination that takes another's slot starts with a full burst, as
/// a new inet_peer does.
#[derive(Debug)]
pub struct IcmpPeerLimit {
    slots: Box<[(Ipv4Addr, u64, u64)]>,
    interval_ms: u64,
}

impl IcmpPeerLimit {
    /// Destinations tracked at once.
    pub const SLOTS: usize = 1024;
    /// XRLIM_BURST_FACTOR: errors a destination may get at once.
    const BURST: u64 = 6;

    /// An empty table; `interval_ms` is `icmp_ratelimit`, the time between
    /// errors to one destination after its burst (0: no limit).
    pub fn new(interval_ms: u32) -> IcmpPeerLimit {
        IcmpPeerLimit {
            slots: vec![(Ipv4Addr::UNSPECIFIED, 0, 0); Self::SLOTS].into_boxed_slice(),
            interval_ms: u64::from(interval_ms),
        }
    }

    /// True, spending its share, when `to` may get an error at `now_ms`.
    pub fn allow(&mut self, to: Ipv4Addr, now_ms: u64) -> bool {
        if self.interval_ms == 0 {
            return true;
        }
        let h = to.to_bits().wrapping_mul(0x9e37_79b9) >> 22;
        let slot = &mut self.slots[h as usize % Self::SLOTS];
        let cap = Self::BURST * self.interval_ms;
        let tokens = if slot.0 == to {
            slot.1
                .saturating_add(now_ms.saturating_sub(slot.2))
                .min(cap)
        } else {
            cap
        };
        let (ok, left) = match tokens.checked_sub(self.interval_ms) {
            Some(left) => (true, left),
            None => (false, tokens),
        };
        *slot = (to, left, now_ms);
        ok
    }
}

/// An ICMP error the director sends about a packet it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IcmpError {
    /// Time exceeded in transit (type 11, code 0): the packet would leave
    /// with TTL 0 (`decrement_ttl` in ip_vs_xmit.c, `ip_forward`).
    TtlExceeded,
    /// Port unreachable (type 3, code 3): no real server can take a new
    /// connection (`ip_vs_leave` in ip_vs_core.c).
    PortUnreachable,
    /// Fragmentation needed (type 3, code 4) with the next-hop MTU in the
    /// header's second half (RFC 1191; `ensure_mtu_is_adequate`).
    FragNeeded {
        /// Next-hop MTU, bytes.
        mtu: u16,
    },
}

/// The longest ICMP error the kernel sends: `icmp_send` quotes as much of
/// the offending packet as fits in 576 bytes (RFC 1812 4.3.2.3).
const ICMP_ERROR_MAX: usize = 576;
/// Precedence of ICMP errors: `icmp_send` keeps the offending packet's TOS
/// bits (`RT_TOS`, IPTOS_TOS_MASK) and sets precedence "internetwork
/// control" (IPTOS_PREC_INTERNETCONTROL).
const ICMP_ERROR_PRECEDENCE: u8 = 0xc0;
/// IPTOS_TOS_MASK.
const IPTOS_TOS_MASK: u8 = 0x1e;

/// The kernel's global ICMP rate limit (`icmp_global_allow`, sysctls
/// `net.ipv4.icmp_msgs_per_sec` and `icmp_msgs_burst`): a token bucket
/// holding at most `burst` messages, refilled at `per_sec` a second. One
/// per worker, so a director sends at most `workers x per_sec` a second.
#[derive(Debug, Clone, Copy)]
pub struct IcmpRateLimit {
    per_sec: u32,
    burst: u32,
    credit: u32,
    stamp_ms: u64,
}

impl IcmpRateLimit {
    /// A full bucket: `per_sec` messages a second, `burst` at once. A
    /// `per_sec` of 0 sends none.
    pub fn new(per_sec: u32, burst: u32) -> IcmpRateLimit {
        IcmpRateLimit {
            per_sec,
            burst,
            credit: burst,
            stamp_ms: 0,
        }
    }

    /// True, taking a token, when a message may be sent at `now_ms`. The
    /// bucket is refilled at most every 20 ms, as the kernel does (HZ/50),
    /// and its time stamp moves only when a token was added.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        let delta = now_ms.saturating_sub(self.stamp_ms);
        if delta >= 20 {
            let add = delta.saturating_mul(u64::from(self.per_sec)) / 1000;
            if add > 0 {
                self.credit = u64::from(self.credit)
                    .saturating_add(add)
                    .min(u64::from(self.burst)) as u32;
                self.stamp_ms = now_ms;
            }
        }
        if self.credit == 0 {
            return false;
        }
        self.credit -= 1;
        true
    }
}

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
        let Some((i, dir)) = self.lookup_all(&back) else {
            return if self.snap.is_local(odst) {
                Verdict::ToControl
            } else {
                Verdict::Drop(DropReason::IcmpNoConnection)
            };
        };
        let c = *self.conns.get(i);
        // Relayed errors are forwarded packets too (ip_vs_icmp_xmit goes
        // through __ip_vs_get_out_rt); one whose TTL runs out is dropped
        // without an answer, as no ICMP error is sent about another.
        if !decrement_ttl(pkt, l2) {
            return Verdict::Drop(DropReason::IpTtlExpired);
        }
        let hop = match self.next_hop(c.destination(dir), now_ms) {
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

    /// Drops the IPv4 packet at `l2` for `why` and, as `icmp_send` does,
    /// answers its source with the ICMP error `err` from `from` (None: the
    /// director's address on the way back), built in place: the frame
    /// keeps its Ethernet header (and VLAN tag), a new IP and ICMP header
    /// go in front of the offending packet, which is quoted up to 576 bytes
    /// in all. Sent only when the source is a unicast address, the
    /// packet's header has room in front (28 bytes of headroom), and the
    /// worker's ICMP rate limit allows (else `icmp_rate_limited`); in every
    /// case `why` is counted once. The caller has validated the IP header.
    #[cold]
    #[inline(never)]
    pub(super) fn reply_icmp_error<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        err: IcmpError,
        from: Option<Ipv4Addr>,
        why: DropReason,
        now_ms: u64,
    ) -> Verdict {
        let (to, tl, later_fragment, tos) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
            (
                ip.src_addr(),
                usize::from(ip.total_len()),
                ip.frag_offset() != 0,
                ip.tos(),
            )
        };
        // icmp_send: never about a later fragment, nor to a source that is
        // not one host.
        if later_fragment || to.is_unspecified() || to.is_broadcast() || to.is_multicast() {
            return Verdict::Drop(why);
        }
        let Some((next_hop, port)) = self.snap.route(to) else {
            return Verdict::Drop(why);
        };
        let Some(src) = from.or_else(|| self.snap.source_address(port, next_hop)) else {
            return Verdict::Drop(why);
        };
        // icmpv4_mask_allow: PMTU discovery is never limited; the others
        // pass the global limit, then the one per destination.
        let allowed = matches!(err, IcmpError::FragNeeded { .. })
            || (self.icmp_limit.allow(now_ms) && self.icmp_peers.allow(to, now_ms));
        if !allowed {
            self.counters.icmp_rate_limited.inc();
            return Verdict::Drop(why);
        }
        let head = ipv4::HEADER_LEN + icmp::HEADER_LEN;
        let quote = tl.min(ICMP_ERROR_MAX - head);
        pkt.truncate(l2 + quote);
        if !pkt.prepend(head) {
            return Verdict::Drop(why);
        }
        let d = pkt.data_mut();
        d.copy_within(head..head + l2, 0);
        let ident = self.next_ident();
        let total = head + quote;
        let mut ip = ipv4::Packet::new_unchecked(&mut d[l2..l2 + ipv4::HEADER_LEN]);
        ip.set_version_and_header_len(ipv4::HEADER_LEN);
        ip.set_tos((tos & IPTOS_TOS_MASK) | ICMP_ERROR_PRECEDENCE);
        ip.set_total_len(total as u16);
        ip.set_ident(ident);
        ip.set_unfragmented(false);
        ip.set_ttl(64);
        ip.set_protocol(Protocol::Icmp);
        ip.set_src_addr(src);
        ip.set_dst_addr(to);
        ip.fill_checksum();
        let mut m = icmp::Packet::new_unchecked(&mut d[l2 + ipv4::HEADER_LEN..l2 + total]);
        let (msg, code, mtu) = match err {
            IcmpError::TtlExceeded => (icmp::Message::TimeExceeded, icmp::CODE_TTL_EXCEEDED, 0),
            IcmpError::PortUnreachable => (
                icmp::Message::DstUnreachable,
                icmp::CODE_PORT_UNREACHABLE,
                0,
            ),
            IcmpError::FragNeeded { mtu } => {
                (icmp::Message::DstUnreachable, icmp::CODE_FRAG_NEEDED, mtu)
            }
        };
        m.set_type_and_code(msg, code);
        m.set_rest_of_header(0, mtu);
        m.fill_checksum();
        self.counters.count_drop(why);
        match err {
            IcmpError::TtlExceeded => self.counters.icmp_time_exceeded_sent.inc(),
            IcmpError::PortUnreachable => self.counters.icmp_port_unreachable_sent.inc(),
            IcmpError::FragNeeded { .. } => self.counters.icmp_frag_needed_sent.inc(),
        }
        match self.resolve(next_hop, port, now_ms) {
            Ok(hop) => self.send(pkt, &hop),
            Err(v) => v,
        }
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
