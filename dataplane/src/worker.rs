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

use crate::conn::{self, Conn, ConnTable, Direction};
use crate::model::{prefix_mask, ConnState, ForwardMethod, Persistence, Real, Timeouts, Tuple};
use crate::neighbor::NeighborTable;
use crate::packet::PacketBuf;
use crate::sched::RealStats;
use crate::sched::{SchedPacket, Scheduler};
use crate::snapshot::{CompiledService, Snapshot};
use crate::state::{self, Activity};
use crate::steer::Steering;
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
    /// Minimum interval between ARP requests for one neighbour, and the
    /// first interval of the solicitation back-off.
    pub arp_retry_ms: u64,
    /// Longest interval between unanswered solicitations of a configured
    /// next hop (the back-off doubles up to it).
    pub arp_solicit_cap_ms: u64,
    /// Entries examined per housekeeping call for expiry.
    pub sweep_budget: usize,
    /// This worker's index among `workers`.
    pub worker_id: u16,
    /// Number of workers sharing the ports (see [`crate::steer`]).
    pub workers: u16,
    /// IPVS `expire_nodest_conn`: a packet of a connection whose real
    /// server was removed from its service expires the connection and is
    /// dropped. Off (the IPVS default), such connections keep forwarding
    /// to their old real until they end.
    pub expire_nodest_conn: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            conn_capacity: 1 << 20,
            timeouts: Timeouts::default(),
            seed: 0x6c34_7673,
            arp_retry_ms: 1000,
            arp_solicit_cap_ms: 60_000,
            sweep_budget: 256,
            worker_id: 0,
            workers: 1,
            expire_nodest_conn: false,
        }
    }
}

/// A worker's dataplane state.
#[derive(Debug)]
pub struct Worker {
    snap: Arc<Snapshot>,
    /// Scheduler state per service slot of `snap` (None: a free slot).
    sched: Vec<Option<Scheduler>>,
    /// Snapshots taken so far; mixed into the seed of rebuilt schedulers.
    generation: u64,
    conns: ConnTable,
    neigh: Arc<NeighborTable>,
    counters: Arc<Counters>,
    cfg: WorkerConfig,
    steer: Steering,
    ident: u16,
}

/// Where a packet's L2 next hop is.
struct NextHop {
    port: u16,
    mac: MacAddr,
    ip: Ipv4Addr,
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
        let mut w = Worker {
            snap: Arc::clone(&snap),
            sched: Vec::new(),
            generation: 0,
            conns: ConnTable::new(cfg.conn_capacity, cfg.seed, 0),
            neigh,
            counters,
            steer: Steering::new(cfg.worker_id, cfg.workers),
            cfg,
            ident: 0,
        };
        w.sched = snap
            .slots()
            .iter()
            .enumerate()
            .map(|(i, s)| s.as_ref().map(|s| w.fresh_scheduler(i, s)))
            .collect();
        w
    }

    /// New per-worker scheduler state for the service in slot `slot`. Its
    /// random stream (twos) is seeded by worker, slot and snapshot
    /// generation, so that no two workers, and no two rebuilds, draw the
    /// same sequence.
    fn fresh_scheduler(&self, slot: usize, svc: &CompiledService) -> Scheduler {
        let seed = self.cfg.seed
            ^ ((slot as u64) << 48)
            ^ self.generation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Scheduler::with_tables(svc.scheduler, &svc.reals, svc.tables(), seed)
    }

    /// Switches to a new snapshot between bursts. A service whose compiled
    /// form is the same `Arc` in the same slot as before keeps its
    /// scheduler state (rr/wrr positions, lblc/lblcr caches, twos's random
    /// stream, its shared mh table); only changed or new services get new
    /// state, built from the tables the control thread compiled. Costs a
    /// pointer comparison per slot plus the per-worker state of the
    /// changed services. Established connections keep their real servers
    /// (their entries carry what forwarding needs).
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>) {
        self.generation = self.generation.wrapping_add(1);
        let mut old = core::mem::take(&mut self.sched);
        let mut sched = Vec::with_capacity(snap.slots().len());
        for (i, slot) in snap.slots().iter().enumerate() {
            let Some(new) = slot else {
                sched.push(None);
                continue;
            };
            let unchanged = self
                .snap
                .slots()
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|prev| Arc::ptr_eq(prev, new));
            let kept = if unchanged {
                old.get_mut(i).and_then(Option::take)
            } else {
                None
            };
            sched.push(Some(kept.unwrap_or_else(|| self.fresh_scheduler(i, new))));
        }
        self.sched = sched;
        self.snap = snap;
    }

    /// The scheduler state of the service in slot `sid`, if any (tests
    /// use it to check what a snapshot swap kept).
    pub fn scheduler(&self, sid: u16) -> Option<&Scheduler> {
        self.sched.get(usize::from(sid))?.as_ref()
    }

    /// The snapshot this worker forwards by.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
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
        let snap = &self.snap;
        let n = self
            .conns
            .expire((now_ms / 1000) as u32, self.cfg.sweep_budget, |c| {
                unbind(snap, c)
            });
        self.counters.conns_expired.add(n as u64);
    }

    /// Emits an ARP request (a 60-byte frame, with the port to send it on)
    /// for each configured next hop — real servers and the gateway — that
    /// is not resolved, backing off exponentially per neighbour from
    /// `arp_retry_ms` to `arp_solicit_cap_ms` while it does not answer. Run
    /// it from housekeeping on one worker, so that neighbours are known
    /// before the first packet to them, which would otherwise be lost to
    /// resolution.
    pub fn solicit_next_hops(&mut self, now_ms: u64, mut emit: impl FnMut(u16, &[u8; 60])) {
        let snap = self.snap.clone();
        let reals = snap
            .services()
            .flat_map(|(_, s)| s.reals.iter().map(|r| r.addr));
        for target in reals.chain(snap.gateway()) {
            let Some((next_hop, port)) = snap.route(target) else {
                continue;
            };
            if self.neigh.lookup(next_hop).is_some() {
                continue;
            }
            let Some(sip) = snap.source_address(port, next_hop) else {
                continue;
            };
            if !self.neigh.should_solicit(
                next_hop,
                now_ms,
                self.cfg.arp_retry_ms,
                self.cfg.arp_solicit_cap_ms,
            ) {
                continue;
            }
            let mac = snap.ports()[usize::from(port)].mac;
            let mut frame = [0u8; 60];
            write_arp_request(&mut frame, ethernet::HEADER_LEN, mac, sip, next_hop);
            self.counters.arp_requests.inc();
            emit(port, &frame);
        }
    }

    /// Loads the connection-table bucket of a frame's tuple into cache.
    /// Call it for every packet of a burst before processing the burst.
    #[inline]
    pub fn prefetch(&self, frame: &[u8]) {
        if let Some(t) = peek_tuple(frame) {
            self.conns.prefetch(&t);
        }
    }

    /// Processes a burst: prefetches every packet's bucket, then handles
    /// each packet; `verdicts[i]` is packet i's.
    pub fn process_burst<B: PacketBuf>(
        &mut self,
        in_port: u16,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        for p in pkts.iter() {
            self.prefetch(p.data());
        }
        for (p, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
            *v = self.process(in_port, p, now_ms);
        }
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
            Verdict::Redirect { .. } => self.counters.redirected.inc(),
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
            Protocol::Icmp => return self.icmp(in_port, pkt, l2, now_ms),
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
        // The client side of the tuple decides the owning worker.
        if self.steer.workers() > 1 {
            let client = if self.snap.is_vip(dst) { src } else { dst };
            if let Some(owner) = self.foreign_owner(client) {
                return Verdict::Redirect { worker: owner };
            }
        }
        let now_s = (now_ms / 1000) as u32;

        if let Some((i, dir)) = self.conns.lookup(&tuple) {
            let c = *self.conns.get(i);
            // IPVS conn_reuse_mode: a fresh SYN on a TIME_WAIT or CLOSE
            // entry is a new connection, scheduled afresh.
            let fresh_syn = dir == Direction::In
                && l4
                    .tcp_flags
                    .is_some_and(|f| f & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN)
                && matches!(c.state, ConnState::Close | ConnState::TimeWait);
            if self.cfg.expire_nodest_conn && !self.real_exists(&c) {
                let gone = self.conns.remove(i);
                unbind(&self.snap, &gone);
                self.counters.conns_expired.inc();
                return Verdict::Drop(DropReason::NoDestination);
            }
            if c.expires <= now_s || fresh_syn {
                let gone = self.conns.remove(i);
                unbind(&self.snap, &gone);
                self.counters.conns_expired.inc();
            } else {
                let timeouts = self.timeouts_of(c.service);
                let c = self.conns.get_mut(i);
                let activity = state::transition(c, dir, l4.tcp_flags, now_s, &timeouts);
                let c = *c;
                if activity != Activity::Unchanged {
                    if let Some((stats, _)) = real_stats(&self.snap, &c) {
                        match activity {
                            Activity::Activated => stats.conn_activated(),
                            _ => stats.conn_deactivated(),
                        }
                    }
                }
                return self.forward(pkt, l2, &c, dir, now_ms);
            }
        }

        // No connection: only a packet to a service may open one.
        let Some(sid) = self.snap.classify(dst, l4.dport, proto.into()) else {
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
        let snap = self.snap.clone();
        let Some(svc) = snap.service(sid) else {
            return Verdict::Drop(DropReason::NoService);
        };
        let opening = SchedPacket {
            src,
            sport: l4.sport,
            dst,
            dport: l4.dport,
            proto: proto.into(),
        };
        let chosen = match svc.options.persistence {
            Some(p) => self.persistent_real(sid, svc, &opening, p, now_s),
            None => self.schedule(sid, svc, &opening, now_s),
        };
        let Some(ri) = chosen else {
            return Verdict::Drop(DropReason::NoRealServer);
        };
        let real = &svc.reals[ri];
        // NAT may change the port; fwmark and port-zero services keep the
        // packet's own, and tunnel/DR cannot change it.
        let keeps_port = svc.options.fwmark != 0 || svc.port == 0;
        let rport = if real.method == ForwardMethod::Nat && real.port != 0 && !keeps_port {
            real.port
        } else {
            l4.dport
        };
        let mut c = Conn::new(
            &tuple,
            real.addr,
            rport,
            sid,
            ri as u16,
            real.method,
            ConnState::None,
            now_s,
        );
        // ip_vs_in: the packet that created the connection sets its state.
        let activity = state::transition(
            &mut c,
            Direction::In,
            l4.tcp_flags,
            now_s,
            &svc.options.timeouts,
        );
        if self.conns.insert(c).is_err() {
            return Verdict::Drop(DropReason::ConnTableFull);
        }
        // ip_vs_bind_dest counts every new connection inactive; then its
        // first packet's state change (a SYN: SYN_RECV) may activate it.
        svc.stats[ri].conn_bound(real, false);
        if activity == Activity::Activated {
            svc.stats[ri].conn_activated();
        }
        self.counters.conns_created.inc();
        self.forward(pkt, l2, &c, Direction::In, now_ms)
    }

    /// The worker owning `client`, when it is not this one. Clients are
    /// masked by the widest persistence netmask first, so all clients that
    /// share a persistence template share a worker.
    #[inline]
    fn foreign_owner(&self, client: Ipv4Addr) -> Option<u16> {
        let key = Ipv4Addr::from_bits(client.to_bits() & self.snap.owner_mask());
        let owner = self.steer.owner(key);
        (owner != self.steer.me()).then_some(owner)
    }

    /// Runs the scheduler of the service in slot `sid`.
    #[inline]
    fn schedule(
        &mut self,
        sid: u16,
        svc: &CompiledService,
        pkt: &SchedPacket,
        now_s: u32,
    ) -> Option<usize> {
        self.sched
            .get_mut(usize::from(sid))?
            .as_mut()?
            .schedule(&svc.reals, &svc.stats, pkt, now_s)
    }

    /// True when the connection's real server is still in its service.
    fn real_exists(&self, c: &Conn) -> bool {
        real_stats(&self.snap, c).is_some_and(|(_, r)| r.method == c.method)
    }

    /// The timeouts of a service's connections (the worker's defaults for
    /// a connection whose service is gone).
    #[inline]
    fn timeouts_of(&self, sid: u16) -> Timeouts {
        self.snap
            .service(sid)
            .map_or(self.cfg.timeouts, |s| s.options.timeouts)
    }

    /// ip_vs_sched_persist: the real of the client's template if it has a
    /// live one whose real can still take connections (renewing it), else
    /// a freshly scheduled real, recorded in a new template.
    ///
    /// A template is a table entry that no packet can match: protocol 0,
    /// the masked client address, the service's protocol number as client
    /// port, and the VIP and port — or, for a fwmark service, the mark as
    /// address and port 0, so every port and address of the mark shares it.
    fn persistent_real(
        &mut self,
        sid: u16,
        svc: &CompiledService,
        t: &SchedPacket,
        p: Persistence,
        now_s: u32,
    ) -> Option<usize> {
        let masked = Ipv4Addr::from_bits(t.src.to_bits() & prefix_mask(p.netmask));
        let key = if svc.options.fwmark != 0 {
            Tuple {
                proto: 0,
                src: masked,
                sport: 0,
                dst: Ipv4Addr::from_bits(svc.options.fwmark),
                dport: 0,
            }
        } else {
            Tuple {
                proto: 0,
                src: masked,
                sport: u16::from(t.proto),
                dst: svc.vip,
                dport: svc.port,
            }
        };
        if let Some((ti, _)) = self.conns.lookup(&key) {
            let tpl = *self.conns.get(ti);
            let real = svc
                .reals
                .get(usize::from(tpl.real))
                .filter(|r| r.addr == tpl.rip);
            let usable =
                real.is_some_and(|r| r.weight > 0 || !svc.options.expire_quiescent_template);
            if tpl.expires > now_s && tpl.service == sid && usable {
                self.conns.get_mut(ti).expires = now_s.saturating_add(p.timeout);
                return Some(usize::from(tpl.real));
            }
            self.conns.remove(ti);
        }
        let ri = self.schedule(sid, svc, t, now_s)?;
        let real = &svc.reals[ri];
        let mut tpl = Conn::new(
            &key,
            real.addr,
            real.port,
            sid,
            ri as u16,
            real.method,
            ConnState::None,
            now_s.saturating_add(p.timeout),
        );
        tpl.flags = conn::flags::TEMPLATE;
        // A full table only costs persistence for this client, not the
        // connection: the connection's own insert decides that.
        if self.conns.insert(tpl).is_ok() {
            self.counters.templates_created.inc();
        }
        Some(ri)
    }

    fn forward<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        c: &Conn,
        dir: Direction,
        now_ms: u64,
    ) -> Verdict {
        let hop = match self.next_hop(pkt, l2, c.destination(dir), now_ms) {
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
            (ForwardMethod::Tunnel, _) => match self.encapsulate(pkt, l2, c.rip, &hop) {
                Ok(()) => self.counters.tunnel.inc(),
                Err(TunnelError::Drop(r)) => return Verdict::Drop(r),
                Err(TunnelError::TooBig { mtu }) => {
                    return self.frag_needed(pkt, l2, c, mtu, now_ms)
                }
            },
        }
        self.send(pkt, &hop)
    }

    /// Route and resolve `toward`: its next hop, or the verdict for a packet
    /// that had to become an ARP request (or be dropped) on the way.
    fn next_hop<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        toward: Ipv4Addr,
        now_ms: u64,
    ) -> Result<NextHop, Verdict> {
        let Some((next_hop, port)) = self.snap.route(toward) else {
            return Err(Verdict::Drop(DropReason::NoRoute));
        };
        self.resolve(pkt, l2, next_hop, port, now_ms)
    }

    /// Addresses the frame to `hop` and forwards it.
    fn send<B: PacketBuf>(&self, pkt: &mut B, hop: &NextHop) -> Verdict {
        let src_mac = self.snap.ports()[usize::from(hop.port)].mac;
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
                ip: next_hop,
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
                write_arp_request(pkt.data_mut(), l2, mac, sip, next_hop);
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
        if ttl <= 1 {
            return Err(TunnelError::Drop(DropReason::IpTtlExpired));
        }
        let mtu = usize::from(self.snap.ports()[usize::from(hop.port)].mtu);
        if tl + ipv4::HEADER_LEN > mtu {
            // IPVS (ip_vs_tunnel_xmit): DF set -> fragmentation needed with
            // the MTU the tunnel leaves; without DF the packet would need
            // fragmenting, which l4vs does not do.
            return Err(if df {
                TunnelError::TooBig {
                    mtu: (mtu - ipv4::HEADER_LEN) as u16,
                }
            } else {
                TunnelError::Drop(DropReason::TunnelTooBig)
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

    /// Turns a packet too big for the tunnel into ICMP "fragmentation
    /// needed" (RFC 1191, next-hop MTU `mtu`) from the VIP back to the
    /// client, quoting the IP header and 8 bytes of payload (RFC 792).
    fn frag_needed<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        c: &Conn,
        mtu: u16,
        now_ms: u64,
    ) -> Verdict {
        let hop = match self.next_hop(pkt, l2, c.client, now_ms) {
            Ok(h) => h,
            Err(v) => return v,
        };
        // The original packet is lost either way; count it as too big.
        self.counters.count_drop(DropReason::TunnelTooBig);
        let hl = ipv4::Packet::new_unchecked(&pkt.data()[l2..]).header_len();
        let quote = hl + 8;
        let total = ipv4::HEADER_LEN + icmp::HEADER_LEN + quote;
        let d = pkt.data_mut();
        d.copy_within(l2..l2 + quote, l2 + ipv4::HEADER_LEN + icmp::HEADER_LEN);
        self.ident = self.ident.wrapping_add(1);
        let mut ip = ipv4::Packet::new_unchecked(&mut d[l2..l2 + total]);
        ip.set_version_and_header_len(ipv4::HEADER_LEN);
        ip.set_tos(0);
        ip.set_total_len(total as u16);
        ip.set_ident(self.ident);
        ip.set_unfragmented(false);
        ip.set_ttl(64);
        ip.set_protocol(Protocol::Icmp);
        ip.set_src_addr(c.vip);
        ip.set_dst_addr(c.client);
        ip.fill_checksum();
        let mut m = icmp::Packet::new_unchecked(&mut d[l2 + ipv4::HEADER_LEN..l2 + total]);
        m.set_type_and_code(icmp::Message::DstUnreachable, icmp::CODE_FRAG_NEEDED);
        m.set_rest_of_header(0, mtu);
        m.fill_checksum();
        pkt.truncate(l2 + total);
        self.counters.icmp_frag_needed_sent.inc();
        self.send(pkt, &hop)
    }

    /// ICMP: echo requests to a VIP or a local address are answered in
    /// place; errors are forwarded along the connection they concern;
    /// anything else for a local address goes to the control thread.
    fn icmp<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, l2: usize, now_ms: u64) -> Verdict {
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
    fn icmp_error<B: PacketBuf>(&mut self, pkt: &mut B, l2: usize, now_ms: u64) -> Verdict {
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
    fn echo_reply<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, l2: usize) -> Verdict {
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

/// Writes a broadcast ARP request for `target` from (`mac`, `sip`) into
/// `frame`, whose L2 header is `l2` bytes long (an 802.1Q tag is kept: only
/// the EtherType before the payload changes).
fn write_arp_request(frame: &mut [u8], l2: usize, mac: MacAddr, sip: Ipv4Addr, target: Ipv4Addr) {
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(MacAddr::BROADCAST);
    eth.set_src_addr(mac);
    frame[l2 - 2..l2].copy_from_slice(&u16::from(EtherType::Arp).to_be_bytes());
    let mut a = arp::Packet::new_unchecked(&mut frame[l2..]);
    a.set_header(arp::Operation::Request);
    a.set_sender(mac, sip);
    a.set_target(MacAddr::UNSPECIFIED, target);
}

/// The shared statistics and the configuration of a connection's real
/// server, if the snapshot still has it (a reload may have removed it).
fn real_stats<'a>(snap: &'a Snapshot, c: &Conn) -> Option<(&'a RealStats, &'a Real)> {
    let svc = snap.service(c.service)?;
    let i = usize::from(c.real);
    let i = match svc.reals.get(i) {
        Some(r) if r.addr == c.rip => i,
        // A change removed reals before this one since the connection was
        // scheduled, so its index moved: find it by address (and, for
        // NAT, the port it rewrites to). Runs on connection events only.
        _ => svc.reals.iter().position(|r| {
            r.addr == c.rip && (r.method != ForwardMethod::Nat || r.port == c.rport)
        })?,
    };
    Some((svc.stats.get(i)?, &svc.reals[i]))
}

/// ip_vs_unbind_dest for a connection leaving the table: its real server
/// counts one active or inactive connection less. Templates were never
/// counted.
fn unbind(snap: &Snapshot, c: &Conn) {
    if c.flags & conn::flags::TEMPLATE != 0 {
        return;
    }
    if let Some((stats, real)) = real_stats(snap, c) {
        stats.conn_unbound(real, c.flags & conn::flags::INACTIVE == 0);
    }
}

/// Why a packet could not be tunnelled.
enum TunnelError {
    Drop(DropReason),
    /// Too big with DF set: answer with fragmentation needed at this MTU.
    TooBig {
        mtu: u16,
    },
}

/// The TCP/UDP tuple of the IP header quoted in an ICMP error, and the
/// quoted header's length. RFC 792 quotes the header and at least 8 bytes
/// of payload: enough for the ports, which is all that is read.
fn embedded_tuple(emb: &[u8]) -> Result<(Tuple, usize), DropReason> {
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

/// The tuple of a TCP or UDP frame, without any validation beyond what
/// reading it needs (checksums and lengths are checked by `process`).
#[inline]
fn peek_tuple(frame: &[u8]) -> Option<Tuple> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let proto = ip.protocol();
    if !matches!(proto, Protocol::Tcp | Protocol::Udp) {
        return None;
    }
    let (sport, dport) = tcp::ports(ip.payload())?;
    Some(Tuple {
        proto: proto.into(),
        src: ip.src_addr(),
        sport,
        dst: ip.dst_addr(),
        dport,
    })
}
