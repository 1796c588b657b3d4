//! One worker's packet pipeline: parse, classify, look up or schedule a
//! connection, rewrite, and decide.
//!
//! A [`Worker`] owns its connection table, its per-service scheduler state
//! and its counters; it reads the shared [`Snapshot`] and the lock-free
//! [`NeighborTable`]. [`Worker::process`] handles one packet in place and
//! returns its [`Verdict`]; the caller (the DPDK port glue, or a test) does
//! the I/O. Malformed input never panics: every early exit is a counted
//! [`DropReason`].
//!
//! Choices where LVS leaves room, stated once here:
//! - Fragments are dropped (`ip_fragment`): the director does not reassemble,
//!   and a non-first fragment carries no ports to classify by.
//! - TTL is left alone for NAT and DR, as IPVS does on its LOCAL_IN path;
//!   IP-IP copies the inner TTL to the outer header and refuses TTL <= 1.
//! - A TCP packet without a connection creates one only if it is a SYN
//!   without ACK; a SYN that finds a CLOSE or TIME_WAIT entry is scheduled
//!   afresh (IPVS's conn_reuse behaviour).
//! - An unresolved next hop turns the packet itself into an ARP request
//!   (rate-limited per neighbour), so resolving allocates nothing; the
//!   original packet is counted as `neighbor_unresolved`.
//! - 802.1Q frames keep their tag.

use crate::conn::{Conn, ConnState, ConnTable, Direction, Timeouts, Tuple};
use crate::neighbor::NeighborTable;
use crate::packet::PacketBuf;
use crate::sched::{SchedPacket, Scheduler};
use crate::snapshot::{ForwardMethod, Snapshot};
use crate::verdict::{Counters, DropReason, Verdict};
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::{self, Address as MacAddr, EtherType};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::rewrite::{self, End};
use l4vs_wire::{arp, checksum, icmp, tcp, udp, Error as WireError};
use std::sync::Arc;

/// Tunables of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Connection table capacity.
    pub conn_capacity: u32,
    /// State timeouts.
    pub timeouts: Timeouts,
    /// Hash seed of the connection table.
    pub seed: u64,
    /// Minimum interval between ARP requests for one neighbour.
    pub arp_retry_ms: u64,
    /// Entries examined per housekeeping call for expiry.
    pub sweep_budget: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            conn_capacity: 1 << 20,
            timeouts: Timeouts::default(),
            seed: 0x6c34_7673,
            arp_retry_ms: 1000,
            sweep_budget: 256,
        }
    }
}

/// A worker's dataplane state.
#[derive(Debug)]
pub struct Worker {
    snap: Arc<Snapshot>,
    sched: Vec<Scheduler>,
    conns: ConnTable,
    neigh: Arc<NeighborTable>,
    counters: Arc<Counters>,
    cfg: WorkerConfig,
    ident: u16,
}

/// Where a packet's L2 next hop is.
struct NextHop {
    port: u16,
    mac: MacAddr,
}

/// What the L4 header says, read once.
#[derive(Clone, Copy)]
struct L4 {
    sport: u16,
    dport: u16,
    tcp_flags: Option<u8>,
}

impl Worker {
    /// A worker forwarding by `snap`.
    pub fn new(
        snap: Arc<Snapshot>,
        neigh: Arc<NeighborTable>,
        counters: Arc<Counters>,
        cfg: WorkerConfig,
    ) -> Worker {
        // Each worker's random stream (twos) differs: seed by worker and
        // service.
        let sched = snap
            .services()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Scheduler::with_seed(s.scheduler, &s.reals, cfg.seed ^ ((i as u64) << 48))
            })
            .collect();
        Worker {
            snap,
            sched,
            conns: ConnTable::new(cfg.conn_capacity, cfg.seed),
            neigh,
            counters,
            cfg,
            ident: 0,
        }
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// This worker's connection table.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// Expires connections a few at a time; call between bursts.
    pub fn housekeeping(&mut self, now_ms: u64) {
        // TODO(state): expired connections must call conn_unbound on their
        // real's stats (the sweep needs to hand them back).
        let n = self
            .conns
            .sweep((now_ms / 1000) as u32, self.cfg.sweep_budget);
        self.counters.conns_expired.add(n as u64);
    }

    /// Handles one packet received on `in_port`, in place, and counts it.
    pub fn process<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, now_ms: u64) -> Verdict {
        self.counters.rx.inc();
        let v = self.classify(in_port, pkt, now_ms);
        match v {
            Verdict::Forward { .. } => self.counters.forwarded.inc(),
            Verdict::Drop(r) => self.counters.count_drop(r),
            Verdict::ToControl => self.counters.to_control.inc(),
            Verdict::Consumed => self.counters.consumed.inc(),
        }
        v
    }

    fn classify<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, now_ms: u64) -> Verdict {
        let Some(port) = self.snap.ports().get(usize::from(in_port)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let port_mac = port.mac;
        let (l2, ethertype) = {
            let Ok(eth) = ethernet::Frame::new_checked(pkt.data()) else {
                return Verdict::Drop(DropReason::EthTruncated);
            };
            let dst = eth.dst_addr();
            if !dst.is_multicast() && dst != port_mac {
                return Verdict::Drop(DropReason::EthOtherHost);
            }
            (eth.header_len(), eth.ethertype())
        };
        match ethertype {
            EtherType::Arp => self.arp(in_port, port_mac, pkt, l2),
            EtherType::Ipv4 => self.ipv4(in_port, pkt, l2, now_ms),
            _ => Verdict::Drop(DropReason::EthUnknownType),
        }
    }

    fn arp<B: PacketBuf>(
        &mut self,
        in_port: u16,
        port_mac: MacAddr,
        pkt: &mut B,
        l2: usize,
    ) -> Verdict {
        let (op, sha, spa, tpa) = match arp::Packet::new_checked(&pkt.data()[l2..]) {
            Ok(a) => (
                a.operation(),
                a.sender_hw_addr(),
                a.sender_proto_addr(),
                a.target_proto_addr(),
            ),
            Err(_) => return Verdict::Drop(DropReason::ArpMalformed),
        };
        let ours = self.snap.local_on_port(in_port, tpa).is_some() || self.snap.is_vip(tpa);
        match op {
            arp::Operation::Request if ours => {
                // RFC 826: the requester is now known; answer in place.
                self.neigh.learn(spa, sha, in_port);
                let d = pkt.data_mut();
                let mut eth = ethernet::Frame::new_unchecked(&mut *d);
                eth.set_dst_addr(sha);
                eth.set_src_addr(port_mac);
                let mut a = arp::Packet::new_unchecked(&mut d[l2..]);
                a.set_header(arp::Operation::Reply);
                a.set_sender(port_mac, tpa);
                a.set_target(sha, spa);
                self.counters.arp_replies.inc();
                Verdict::Forward { port: in_port }
            }
            arp::Operation::Reply if ours => {
                self.neigh.learn(spa, sha, in_port);
                Verdict::Consumed
            }
            arp::Operation::Request | arp::Operation::Reply => {
                // Gratuitous ARP refreshes a neighbour we already know.
                if spa == tpa && self.neigh.lookup(spa).is_some() {
                    self.neigh.learn(spa, sha, in_port);
                    return Verdict::Consumed;
                }
                Verdict::Drop(DropReason::ArpNotForUs)
            }
            arp::Operation::Unknown(_) => Verdict::Drop(DropReason::ArpUnknownOp),
        }
    }

    fn ipv4<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, l2: usize, now_ms: u64) -> Verdict {
        let data = pkt.data();
        let ip = match ipv4::Packet::new_checked(&data[l2..]) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Verdict::Drop(DropReason::IpTruncated),
            Err(_) => return Verdict::Drop(DropReason::IpMalformed),
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::IpBadChecksum);
        }
        if ip.is_fragment() {
            return Verdict::Drop(DropReason::IpFragment);
        }
        let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
        let l4 = match proto {
            Protocol::Tcp => match tcp::Packet::new_checked(ip.payload()) {
                Ok(t) => L4 {
                    sport: t.src_port(),
                    dport: t.dst_port(),
                    tcp_flags: Some(t.flags()),
                },
                Err(_) => return Verdict::Drop(DropReason::L4Truncated),
            },
            Protocol::Udp => match udp::Packet::new_checked(ip.payload()) {
                Ok(u) => L4 {
                    sport: u.src_port(),
                    dport: u.dst_port(),
                    tcp_flags: None,
                },
                Err(_) => return Verdict::Drop(DropReason::L4Truncated),
            },
            Protocol::Icmp => return self.icmp(in_port, pkt, l2),
            _ if self.snap.is_local(dst) => return Verdict::ToControl,
            _ => return Verdict::Drop(DropReason::L4Unsupported),
        };
        let tuple = Tuple {
            proto: proto.into(),
            src,
            sport: l4.sport,
            dst,
            dport: l4.dport,
        };
        let now_s = (now_ms / 1000) as u32;

        if let Some((i, dir)) = self.conns.lookup(&tuple) {
            let c = *self.conns.get(i);
            let fresh_syn = dir == Direction::In
                && l4
                    .tcp_flags
                    .is_some_and(|f| f & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN)
                && matches!(c.state, ConnState::Close | ConnState::TimeWait);
            if c.expires <= now_s || fresh_syn {
                // TODO(state): call conn_unbound(real, was_active) on the
                // stats of c.service / c.real here and in the sweep.
                self.conns.remove(i);
                self.counters.conns_expired.inc();
            } else {
                let c = self.conns.get_mut(i);
                // TODO(state): call conn_activated / conn_deactivated when
                // the state enters or leaves Established.
                update_state(c, dir, l4.tcp_flags, now_s, &self.cfg.timeouts);
                let c = *c;
                return self.forward(pkt, l2, &c, dir, now_ms);
            }
        }

        // No connection: only a packet to a service may open one.
        let Some(sid) = self.snap.service_id(dst, l4.dport, proto.into()) else {
            return if self.snap.is_vip(dst) {
                Verdict::Drop(DropReason::NoService)
            } else if self.snap.is_local(dst) {
                Verdict::ToControl
            } else {
                Verdict::Drop(DropReason::IpNotForUs)
            };
        };
        if let Some(f) = l4.tcp_flags {
            if f & (tcp::flags::SYN | tcp::flags::ACK | tcp::flags::RST) != tcp::flags::SYN {
                return Verdict::Drop(DropReason::TcpNotSyn);
            }
        }
        let svc = &self.snap.services()[usize::from(sid)];
        let opening = SchedPacket {
            src,
            sport: l4.sport,
            dst,
            dport: l4.dport,
            proto: proto.into(),
        };
        let Some(ri) =
            self.sched[usize::from(sid)].schedule(&svc.reals, &svc.stats, &opening, now_s)
        else {
            return Verdict::Drop(DropReason::NoRealServer);
        };
        let real = &svc.reals[ri];
        let state = if l4.tcp_flags.is_some() {
            ConnState::SynRecv
        } else {
            ConnState::Udp
        };
        let c = Conn {
            client: src,
            vip: dst,
            rip: real.addr,
            expires: now_s.saturating_add(self.cfg.timeouts.of(state)),
            cport: l4.sport,
            vport: l4.dport,
            rport: if real.method == ForwardMethod::Nat && real.port != 0 {
                real.port
            } else {
                l4.dport
            },
            service: sid,
            real: ri as u16,
            proto: proto.into(),
            method: real.method,
            state,
        };
        if self.conns.insert(c).is_err() {
            return Verdict::Drop(DropReason::ConnTableFull);
        }
        // ip_vs_bind_dest: every new connection starts inactive (TCP in
        // SYN_RECV, and UDP for good).
        svc.stats[ri].conn_bound(real, false);
        self.counters.conns_created.inc();
        self.forward(pkt, l2, &c, Direction::In, now_ms)
    }

    fn forward<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        c: &Conn,
        dir: Direction,
        now_ms: u64,
    ) -> Verdict {
        let toward = match dir {
            Direction::In => c.rip,
            Direction::Out => c.client,
        };
        let Some((next_hop, port)) = self.snap.route(toward) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let hop = match self.resolve(pkt, l2, next_hop, port, now_ms) {
            Ok(h) => h,
            Err(v) => return v,
        };
        let ip = &mut pkt.data_mut()[l2..];
        match (c.method, dir) {
            (ForwardMethod::Nat, Direction::In) => {
                if rewrite::rewrite(ip, End::Dst, c.rip, c.rport).is_err() {
                    return Verdict::Drop(DropReason::L4Truncated);
                }
                self.counters.nat_in.inc();
            }
            (ForwardMethod::Nat, Direction::Out) => {
                if rewrite::rewrite(ip, End::Src, c.vip, c.vport).is_err() {
                    return Verdict::Drop(DropReason::L4Truncated);
                }
                self.counters.nat_out.inc();
            }
            (ForwardMethod::DirectRouting, _) => self.counters.direct.inc(),
            (ForwardMethod::Tunnel, _) => {
                if let Err(r) = self.encapsulate(pkt, l2, c.rip, port, next_hop) {
                    return Verdict::Drop(r);
                }
                self.counters.tunnel.inc();
            }
        }
        let src_mac = self.snap.ports()[usize::from(port)].mac;
        let mut eth = ethernet::Frame::new_unchecked(pkt.data_mut());
        eth.set_dst_addr(hop.mac);
        eth.set_src_addr(src_mac);
        Verdict::Forward { port: hop.port }
    }

    /// The MAC of `next_hop`, or the verdict for a packet that became an
    /// ARP request (or was dropped) because it is not known yet.
    fn resolve<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        next_hop: Ipv4Addr,
        port: u16,
        now_ms: u64,
    ) -> Result<NextHop, Verdict> {
        if let Some(n) = self.neigh.lookup(next_hop) {
            return Ok(NextHop {
                port: n.port,
                mac: n.mac,
            });
        }
        let src_ip = self.snap.source_address(port, next_hop);
        let enough_room = pkt.data().len() >= l2 + arp::PACKET_LEN;
        match src_ip {
            Some(sip)
                if enough_room
                    && self
                        .neigh
                        .should_request(next_hop, now_ms, self.cfg.arp_retry_ms) =>
            {
                let mac = self.snap.ports()[usize::from(port)].mac;
                pkt.truncate(l2 + arp::PACKET_LEN);
                let d = pkt.data_mut();
                let mut eth = ethernet::Frame::new_unchecked(&mut *d);
                eth.set_dst_addr(MacAddr::BROADCAST);
                eth.set_src_addr(mac);
                d[l2 - 2..l2].copy_from_slice(&u16::from(EtherType::Arp).to_be_bytes());
                let mut a = arp::Packet::new_unchecked(&mut d[l2..]);
                a.set_header(arp::Operation::Request);
                a.set_sender(mac, sip);
                a.set_target(MacAddr::UNSPECIFIED, next_hop);
                self.counters.arp_requests.inc();
                // The original packet is lost: count it here, since the
                // buffer itself leaves as the request.
                self.counters.count_drop(DropReason::NeighborUnresolved);
                Err(Verdict::Forward { port })
            }
            _ => Err(Verdict::Drop(DropReason::NeighborUnresolved)),
        }
    }

    /// RFC 2003 encapsulation: an outer header to the real server, inner
    /// packet untouched; outer TTL and DF copied from the inner header.
    fn encapsulate<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        rip: Ipv4Addr,
        port: u16,
        next_hop: Ipv4Addr,
    ) -> Result<(), DropReason> {
        let (tl, ttl, df, tos) = {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[l2..]);
            (
                usize::from(ip.total_len()),
                ip.ttl(),
                ip.dont_frag(),
                ip.tos(),
            )
        };
        if ttl <= 1 {
            return Err(DropReason::IpTtlExpired);
        }
        let mtu = usize::from(self.snap.ports()[usize::from(port)].mtu);
        if tl + ipv4::HEADER_LEN > mtu {
            return Err(DropReason::TunnelTooBig);
        }
        let src = self
            .snap
            .source_address(port, next_hop)
            .ok_or(DropReason::NoRoute)?;
        pkt.truncate(l2 + tl);
        if !pkt.prepend(ipv4::HEADER_LEN) {
            return Err(DropReason::TunnelNoHeadroom);
        }
        let d = pkt.data_mut();
        d.copy_within(ipv4::HEADER_LEN..ipv4::HEADER_LEN + l2, 0);
        self.ident = self.ident.wrapping_add(1);
        let mut outer = ipv4::Packet::new_unchecked(&mut d[l2..l2 + ipv4::HEADER_LEN]);
        outer.set_version_and_header_len(ipv4::HEADER_LEN);
        outer.set_tos(tos);
        outer.set_total_len((tl + ipv4::HEADER_LEN) as u16);
        outer.set_ident(self.ident);
        outer.set_unfragmented(df);
        outer.set_ttl(ttl);
        outer.set_protocol(Protocol::IpIp);
        outer.set_src_addr(src);
        outer.set_dst_addr(rip);
        outer.fill_checksum();
        Ok(())
    }

    /// Echo requests to a VIP or a local address are answered in place;
    /// other ICMP to local addresses goes to the control thread.
    fn icmp<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, l2: usize) -> Verdict {
        let d = pkt.data();
        let ip = ipv4::Packet::new_unchecked(&d[l2..]);
        let (src, dst, hl, tl) = (
            ip.src_addr(),
            ip.dst_addr(),
            ip.header_len(),
            usize::from(ip.total_len()),
        );
        let ours = self.snap.is_vip(dst) || self.snap.is_local(dst);
        let echo = match icmp::Packet::new_checked(ip.payload()) {
            Ok(m) => m.msg_type() == icmp::Message::EchoRequest && m.verify_checksum(),
            Err(_) => return Verdict::Drop(DropReason::L4Truncated),
        };
        if !ours {
            return Verdict::Drop(DropReason::IcmpUnhandled);
        }
        if !echo {
            return Verdict::ToControl;
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

/// A simplified IPVS TCP state machine; see [`ConnState`].
fn update_state(c: &mut Conn, dir: Direction, tcp_flags: Option<u8>, now_s: u32, t: &Timeouts) {
    if let Some(f) = tcp_flags {
        let syn = f & tcp::flags::SYN != 0;
        let ack = f & tcp::flags::ACK != 0;
        let fin = f & tcp::flags::FIN != 0;
        c.state = if f & tcp::flags::RST != 0 {
            ConnState::Close
        } else {
            match (c.state, dir) {
                (ConnState::SynRecv, Direction::In) if fin => ConnState::FinWait,
                (ConnState::SynRecv, Direction::In) if ack && !syn => ConnState::Established,
                (ConnState::Established, _) if fin => ConnState::FinWait,
                (ConnState::FinWait, Direction::Out) if fin => ConnState::TimeWait,
                (ConnState::SynRecv, Direction::Out) if fin => ConnState::FinWait,
                (s, _) => s,
            }
        };
    }
    c.expires = now_s.saturating_add(t.of(c.state));
}
