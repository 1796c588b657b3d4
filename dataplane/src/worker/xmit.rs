//! Transmit, one function per forwarding method, as ip_vs_xmit.c has
//! them: `nat_xmit` (ip_vs_nat_xmit), `tunnel_xmit` (ip_vs_tunnel_xmit),
//! `dr_xmit` (ip_vs_dr_xmit); and the route and neighbour lookup they share.

use super::arp::arp_request_frame;
use super::icmp::IcmpError;
use super::{NextHop, Worker};
use crate::conn::{Conn, Direction};
use crate::model::ForwardMethod;
use crate::packet::PacketBuf;
use crate::verdict::{DropReason, Verdict};
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::{self};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::rewrite::{self, End};

impl Worker {
    /// Sends a packet of connection `c` travelling `dir` by the
    /// connection's forwarding method. Each transmit function looks its
    /// next hop up itself: hoisting the lookup here measured 35 to 46
    /// instructions a packet more under callgrind (it changes what the
    /// compiler inlines), so the three lookups stay.
    ///
    /// First the TTL, as the kernel does for every packet it forwards:
    /// the client's packets in `decrement_ttl` (ip_vs_xmit.c, called from
    /// `__ip_vs_get_out_rt` by the NAT, tunnel and DR transmitters), NAT
    /// replies in `ip_forward`. A packet that would leave with TTL 0 is
    /// dropped (`ip_ttl_expired`) and its source gets ICMP time exceeded
    /// (type 11, code 0): from the VIP for a client's packet, which was
    /// addressed to it, and from the director's own address for a real
    /// server's reply. IP-IP decrements the inner TTL, then copies it to
    /// the outer header (ip_vs_tunnel_xmit).
    pub(super) fn forward<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        c: &Conn,
        dir: Direction,
        now_ms: u64,
    ) -> Verdict {
        if !decrement_ttl(pkt, l2) {
            let from = (dir == Direction::In).then_some(c.vip);
            return self.reply_icmp_error(
                pkt,
                l2,
                IcmpError::TtlExceeded,
                from,
                DropReason::IpTtlExpired,
                now_ms,
            );
        }
        match c.method {
            ForwardMethod::Nat => self.nat_xmit(pkt, l2, c, dir, now_ms),
            ForwardMethod::Tunnel => self.tunnel_xmit(pkt, l2, c, now_ms),
            ForwardMethod::DirectRouting => self.dr_xmit(pkt, l2, c, now_ms),
        }
    }

    /// ip_vs_nat_xmit / ip_vs_nat_xmit's reply side (`handle_response`):
    /// towards the real, the destination becomes the real's address and
    /// port; back from it, the source becomes the VIP and virtual port;
    /// IP and L4 checksums are updated incrementally.
    fn nat_xmit<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        c: &Conn,
        dir: Direction,
        now_ms: u64,
    ) -> Verdict {
        let hop = match dir {
            Direction::In => self.next_hop_to_real(c.rip, now_ms),
            Direction::Out => self.next_hop(c.client, now_ms),
        };
        let hop = match hop {
            Ok(h) => h,
            Err(v) => return v,
        };
        if let Some(v) = self.ensure_mtu(pkt, l2, &hop, c, dir, now_ms) {
            return v;
        }
        let frame = pkt.data_mut();
        let ip = &mut frame[l2..];
        let (end, addr, port) = match dir {
            Direction::In => (End::Dst, c.rip, c.rport),
            Direction::Out => (End::Src, c.vip, c.vport),
        };
        if ipv4::Packet::new_unchecked(&*ip).frag_offset() != 0 {
            // A later fragment carries no ports: only the address changes
            // (the first fragment's L4 checksum covers the rest).
            let mut p = ipv4::Packet::new_unchecked(ip);
            match end {
                End::Dst => p.rewrite_dst_addr(addr),
                End::Src => p.rewrite_src_addr(addr),
            }
        } else if rewrite::rewrite(ip, end, addr, port).is_err() {
            return Verdict::Drop(DropReason::L4Truncated);
        }
        match dir {
            Direction::In => self.counters.nat_in.inc(),
            Direction::Out => self.counters.nat_out.inc(),
        }
        self.send_frame(frame, &hop)
    }

    /// ip_vs_tunnel_xmit: an outer IPv4 header to the real server (RFC
    /// 2003); a packet too big for the tunnel with DF set is answered with
    /// fragmentation needed.
    fn tunnel_xmit<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        c: &Conn,
        now_ms: u64,
    ) -> Verdict {
        let hop = match self.next_hop_to_real(c.rip, now_ms) {
            Ok(h) => h,
            Err(v) => return v,
        };
        match self.encapsulate(pkt, l2, c.rip, &hop) {
            Ok(()) => self.counters.tunnel.inc(),
            Err(TunnelError::Drop(r)) => return Verdict::Drop(r),
            Err(TunnelError::TooBig { mtu }) => {
                // The quote carries the decremented TTL: the kernel checks
                // the MTU after decrement_ttl (__ip_vs_get_out_rt).
                return self.reply_icmp_error(
                    pkt,
                    l2,
                    IcmpError::FragNeeded { mtu },
                    Some(c.vip),
                    DropReason::TunnelTooBig,
                    now_ms,
                );
            }
        }
        self.send(pkt, &hop)
    }

    /// ip_vs_dr_xmit: the packet as it is, to the real server's MAC.
    fn dr_xmit<B: PacketBuf>(&mut self, pkt: &mut B, l2: usize, c: &Conn, now_ms: u64) -> Verdict {
        let hop = match self.next_hop_to_real(c.rip, now_ms) {
            Ok(h) => h,
            Err(v) => return v,
        };
        if let Some(v) = self.ensure_mtu(pkt, l2, &hop, c, Direction::In, now_ms) {
            return v;
        }
        self.counters.direct.inc();
        self.send(pkt, &hop)
    }

    /// ensure_mtu_is_adequate (ip_vs_xmit.c) for NAT and DR, before any
    /// rewrite: a packet larger than the egress port's MTU with DF set is
    /// dropped (`frag_needed`) and its sender gets ICMP fragmentation
    /// needed with that MTU: from the VIP for a client's packet, from the
    /// director for a real server's reply (where `ip_forward` checks it).
    /// Without DF it goes on, and the lcore loop fragments it on its way
    /// out ([`crate::frag`]). One comparison for a packet that fits,
    /// inlined; the rest is not.
    #[inline(always)]
    fn ensure_mtu<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        hop: &NextHop,
        c: &Conn,
        dir: Direction,
        now_ms: u64,
    ) -> Option<Verdict> {
        let mtu = self.snap.ports().get(usize::from(hop.port))?.mtu;
        // The frame holds the whole IP packet: one that fits the MTU
        // fits it (the common case, one comparison).
        if pkt.data().len() <= l2 + usize::from(mtu) {
            return None;
        }
        self.exceeds_mtu(pkt, l2, mtu, c, dir, now_ms)
    }

    /// [`Worker::ensure_mtu`] of a frame longer than the MTU.
    #[cold]
    #[inline(never)]
    fn exceeds_mtu<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        mtu: u16,
        c: &Conn,
        dir: Direction,
        now_ms: u64,
    ) -> Option<Verdict> {
        let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
        if ip.total_len() <= mtu || !ip.dont_frag() {
            return None;
        }
        if dir == Direction::Out {
            // ip_forward checks the MTU before it decrements the TTL: the
            // quote carries the TTL the real server sent.
            let mut ip = ipv4::Packet::new_unchecked(&mut pkt.data_mut()[l2..]);
            ip.set_ttl(ip.ttl().wrapping_add(1));
            ip.fill_checksum();
        }
        let from = (dir == Direction::In).then_some(c.vip);
        Some(self.reply_icmp_error(
            pkt,
            l2,
            IcmpError::FragNeeded { mtu },
            from,
            DropReason::FragNeeded,
            now_ms,
        ))
    }

    /// Route and resolve `toward`: its next hop (perhaps not resolved yet),
    /// or the verdict for a packet that cannot leave (no route).
    pub(super) fn next_hop(&mut self, toward: Ipv4Addr, now_ms: u64) -> Result<NextHop, Verdict> {
        let Some((next_hop, port)) = self.snap.route(toward) else {
            return Err(Verdict::Drop(DropReason::NoRoute));
        };
        self.resolve(next_hop, port, now_ms)
    }

    /// [`Worker::next_hop`] towards a real server, through the worker's
    /// [`super::HopCache`]: a service has few reals, so their hops stay
    /// cached. (Towards clients, thousands of them, a small cache would
    /// only thrash: measured, NAT replies cost 50 instructions more.)
    /// The hit is inlined into the transmit functions, the miss is not.
    #[inline]
    pub(super) fn next_hop_to_real(
        &mut self,
        real: Ipv4Addr,
        now_ms: u64,
    ) -> Result<NextHop, Verdict> {
        let generation = self.neigh.generation();
        if let Some(hop) = self.hops.get(real, generation) {
            return Ok(hop);
        }
        self.next_hop_to_real_missed(real, generation, now_ms)
    }

    /// [`Worker::next_hop_to_real`] when the cache does not have it:
    /// route, resolve, and cache the hop under `generation`.
    #[cold]
    #[inline(never)]
    fn next_hop_to_real_missed(
        &mut self,
        real: Ipv4Addr,
        generation: u64,
        now_ms: u64,
    ) -> Result<NextHop, Verdict> {
        let hop = self.next_hop(real, now_ms)?;
        self.hops.put(real, generation, &hop);
        Ok(hop)
    }

    /// Addresses the frame to `hop` and forwards it; a frame whose hop is
    /// not resolved yet is held (`AwaitNeighbor`).
    #[inline]
    pub(super) fn send<B: PacketBuf>(&self, pkt: &mut B, hop: &NextHop) -> Verdict {
        self.send_frame(pkt.data_mut(), hop)
    }

    /// [`Worker::send`] of the packet's bytes, `frame`, where the caller
    /// has them at hand.
    #[inline(always)]
    fn send_frame(&self, frame: &mut [u8], hop: &NextHop) -> Verdict {
        let Some(mac) = hop.mac else {
            return Verdict::AwaitNeighbor {
                port: hop.port,
                next_hop: hop.ip,
                solicit: hop.solicit,
            };
        };
        let src_mac = self.snap.ports()[usize::from(hop.port)].mac;
        let mut eth = ethernet::Frame::new_unchecked(frame);
        eth.set_dst_addr(mac);
        eth.set_src_addr(src_mac);
        Verdict::Forward { port: hop.port }
    }

    /// The MAC of `next_hop`, or, when it is not known yet, a hop without
    /// one, which [`Worker::send`] turns into `AwaitNeighbor` once the
    /// packet is finished (asking for an ARP request when the per-neighbour
    /// rate limit allows one). A next hop the director has no address
    /// towards cannot be asked: the packet is dropped as
    /// `neighbor_unresolved`.
    pub(super) fn resolve(
        &mut self,
        next_hop: Ipv4Addr,
        port: u16,
        now_ms: u64,
    ) -> Result<NextHop, Verdict> {
        if let Some(n) = self.neigh.lookup(next_hop) {
            return Ok(NextHop {
                port: n.port,
                mac: Some(n.mac),
                ip: next_hop,
                solicit: false,
            });
        }
        if self.snap.source_address(port, next_hop).is_none() {
            return Err(Verdict::Drop(DropReason::NeighborUnresolved));
        }
        let solicit = self
            .neigh
            .should_request(next_hop, now_ms, self.cfg.arp_retry_ms);
        Ok(NextHop {
            port,
            mac: None,
            ip: next_hop,
            solicit,
        })
    }

    /// The ARP request for `next_hop` that a packet held on `port` waits
    /// for (a 60-byte broadcast frame from the port's MAC and the
    /// director's address towards `next_hop`); None when the director has
    /// no address towards it. The caller counts it (`arp_requests`) once
    /// it is sent.
    pub fn arp_request(&self, port: u16, next_hop: Ipv4Addr) -> Option<[u8; 60]> {
        arp_request_frame(&self.snap, port, next_hop)
    }

    /// True when a packet held for `next_hop` may ask again now (one ARP
    /// request per neighbour per `arp_retry_ms`, as the kernel's
    /// `retrans_time` paces its `mcast_solicit` requests).
    pub fn should_solicit_again(&self, next_hop: Ipv4Addr, now_ms: u64) -> bool {
        self.neigh
            .should_request(next_hop, now_ms, self.cfg.arp_retry_ms)
    }

    /// The IP MTU of `port` (the Ethernet 1500 for a port the snapshot does
    /// not have).
    #[inline]
    pub fn port_mtu(&self, port: u16) -> u16 {
        self.snap
            .ports()
            .get(usize::from(port))
            .map_or(1500, |p| p.mtu)
    }

    /// Addresses a held packet to its next hop, now that ARP resolved it:
    /// its port and MAC from the neighbour table, the port's own MAC as
    /// source. Returns the port to send it on, or None while `next_hop` is
    /// still unresolved.
    pub fn readdress<B: PacketBuf>(&self, pkt: &mut B, next_hop: Ipv4Addr) -> Option<u16> {
        let n = self.neigh.lookup(next_hop)?;
        let hop = NextHop {
            port: n.port,
            mac: Some(n.mac),
            ip: next_hop,
            solicit: false,
        };
        match self.send(pkt, &hop) {
            Verdict::Forward { port } => Some(port),
            _ => None,
        }
    }

    /// RFC 2003 encapsulation: an outer header to the real server, inner
    /// packet untouched; outer TTL and DF copied from the inner header (its
    /// TTL already decremented by the caller).
    pub(super) fn encapsulate<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        rip: Ipv4Addr,
        hop: &NextHop,
    ) -> Result<(), TunnelError> {
        let (tl, ttl, df, tos) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
            (
                usize::from(ip.total_len()),
                ip.ttl(),
                ip.dont_frag(),
                ip.tos(),
            )
        };
        let mtu = usize::from(self.snap.ports()[usize::from(hop.port)].mtu);
        if tl + ipv4::HEADER_LEN > mtu && df {
            // ip_vs_tunnel_xmit: DF set -> fragmentation needed with the
            // MTU the tunnel leaves. Without DF the outer packet (DF clear,
            // copied from the inner) is built too big and the lcore loop
            // fragments it on the way out, as ip_fragment does after
            // ip_vs_tunnel_xmit: the real server reassembles the outer
            // packet, then decapsulates the whole inner one.
            // Below 68 (RFC 791's minimum) the kernel gives up on the
            // tunnel without telling the sender ("mtu less than 68").
            let inner_mtu = mtu.saturating_sub(ipv4::HEADER_LEN);
            if inner_mtu < 68 {
                return Err(TunnelError::Drop(DropReason::TunnelTooBig));
            }
            return Err(TunnelError::TooBig {
                mtu: inner_mtu as u16,
            });
        }
        let src = self
            .snap
            .source_address(hop.port, hop.ip)
            .ok_or(TunnelError::Drop(DropReason::NoRoute))?;
        pkt.truncate(l2 + tl);
        if !pkt.prepend(ipv4::HEADER_LEN) {
            return Err(TunnelError::Drop(DropReason::TunnelNoHeadroom));
        }
        let d = pkt.data_mut();
        d.copy_within(ipv4::HEADER_LEN..ipv4::HEADER_LEN + l2, 0);
        let ident = self.next_ident();
        let mut outer = ipv4::Packet::new_unchecked(&mut d[l2..l2 + ipv4::HEADER_LEN]);
        outer.set_version_and_header_len(ipv4::HEADER_LEN);
        outer.set_tos(tos);
        outer.set_total_len((tl + ipv4::HEADER_LEN) as u16);
        outer.set_ident(ident);
        outer.set_unfragmented(df);
        outer.set_ttl(ttl);
        outer.set_protocol(Protocol::IpIp);
        outer.set_src_addr(src);
        outer.set_dst_addr(rip);
        outer.fill_checksum();
        Ok(())
    }
}

/// decrement_ttl (ip_vs_xmit.c): the IPv4 packet at `l2` leaves with one
/// hop less, its checksum updated; false, the packet unchanged, when it
/// would leave with TTL 0. The caller has validated the IP header.
#[inline(always)]
pub(super) fn decrement_ttl<B: PacketBuf>(pkt: &mut B, l2: usize) -> bool {
    let mut ip = ipv4::Packet::new_unchecked(&mut pkt.data_mut()[l2..]);
    if ip.ttl() <= 1 {
        return false;
    }
    ip.decrement_ttl();
    true
}

/// Why a packet could not be tunnelled.
pub(super) enum TunnelError {
    Drop(DropReason),
    /// Too big with DF set: answer with fragmentation needed at this MTU.
    TooBig {
        mtu: u16,
    },
}
