//! One worker's packet pipeline: parse, classify, look up or schedule a
//! connection, rewrite, and decide.
//!
//! A [`Worker`] owns its connection table, its per-service scheduler state
//! and its counters; it reads the shared [`Snapshot`] and the lock-free
//! [`NeighborTable`]. [`Worker::process`] handles one packet in place and
//! returns its [`Verdict`]; the caller (the lcore loop, or a test) does the
//! I/O. Malformed input never panics: every early exit is a counted
//! [`DropReason`].
//!
//! The module follows the kernel's IPVS split: this file is dispatch and
//! connection lookup (`ip_vs_in` in ip_vs_core.c); `xmit` transmits, one
//! function per forwarding method (ip_vs_xmit.c); `icmp` relays ICMP
//! errors and answers echo requests (`ip_vs_in_icmp`, `ip_vs_out_icmp`);
//! `persist` keeps persistence templates (`ip_vs_sched_persist`); `arp`
//! answers ARP and solicits next hops.
//!
//! Choices where LVS leaves room, stated once here:
//! - Fragments are not reassembled: the first fragment of a TCP or UDP
//!   datagram is scheduled as any packet and its later fragments follow it
//!   ([`crate::fragtable`]); the real server reassembles. Fragments of
//!   other protocols are dropped (`fragment_not_tcp_udp`).
//! - TTL is decremented on every forwarded packet, as IPVS's
//!   `decrement_ttl` does; one that would leave with TTL 0 is answered with
//!   ICMP time exceeded (see `xmit`). IP-IP copies the decremented inner TTL
//!   to the outer header.
//! - A new connection that no real server can take is answered with ICMP
//!   port unreachable from the VIP (`ip_vs_leave`).
//! - A client's packet of a connection whose real server was removed is
//!   dropped (`real_server_removed`), or with `expire_nodest_conn` ends the
//!   connection and is scheduled afresh, as `ip_vs_in_hook` does; a
//!   quiescent (weight 0) real keeps its connections.
//! - A TCP packet without a connection creates one only if it is a SYN
//!   without ACK; a SYN that finds a CLOSE or TIME_WAIT entry is scheduled
//!   afresh (IPVS's conn_reuse behaviour).
//! - A packet whose next hop is not resolved yet is held, not lost: the
//!   verdict `AwaitNeighbor` asks the lcore loop to keep it in a bounded
//!   queue (the kernel's `unres_qlen`) and to send an ARP request
//!   (rate-limited per neighbour); it leaves when the reply comes, or is
//!   dropped as `neighbor_unresolved` after
//!   [`crate::lcore::NEIGHBOR_QUEUE_TIMEOUT_MS`].
//! - 802.1Q frames keep their tag.

use crate::conn::{self, Conn, ConnTable, Direction, Probe};
use crate::fragtable::{FragKey, FragRoute, FragTable, Inserted};
use crate::model::{ConnState, ForwardMethod, Real, Timeouts, Tuple};
use crate::neighbor::NeighborTable;
use crate::packet::PacketBuf;
use crate::rings::{Command, Event};
use crate::sched::RealStats;
use crate::sched::{SchedPacket, Scheduler};
use crate::snapshot::{CompiledService, Snapshot};
use crate::state::{self, Activity};
use crate::steer::Steering;
use crate::verdict::{Counters, DropReason, Verdict};
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::{self, Address as MacAddr, EtherType};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::{get_addr, get_u16, tcp, udp, Error as WireError};
use std::sync::Arc;

mod arp;
pub use arp::solicit_next_hops;
mod fast;
mod icmp;

/// Whether the fixed-offset fast path reads `frame` on a port whose MAC
/// is `port_mac` (for the differential check, [`crate::difftest`]).
pub(crate) fn fast_path_reads(frame: &[u8], port_mac: MacAddr) -> bool {
    fast::parse(frame, port_mac, None).is_some()
}
pub use icmp::{IcmpPeerLimit, IcmpRateLimit};
mod persist;
mod xmit;

/// Tunables of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Connection table capacity.
    pub conn_capacity: u32,
    /// State timeouts.
    pub timeouts: Timeouts,
    /// Hash seed of the connection table.
    pub seed: u64,
    /// Minimum interval between ARP requests for one neighbour that
    /// traffic is waiting for.
    pub arp_retry_ms: u64,
    /// Entries examined per housekeeping call for expiry.
    pub sweep_budget: usize,
    /// This worker's index among `workers`.
    pub worker_id: u16,
    /// Number of workers sharing the ports (see [`crate::steer`]).
    pub workers: u16,
    /// IPVS `expire_nodest_conn` (ip_vs_in_hook in ip_vs_core.c). Off (the
    /// default): a client's packet of a connection whose real server was
    /// removed from its service is dropped (`real_server_removed`), and the
    /// entry stays until it times out. On: that packet expires the
    /// connection and is scheduled afresh (a TCP packet that is not a SYN
    /// then finds no connection and is dropped); and a SYN on a
    /// connection whose real has weight 0 starts a new one (the
    /// `expire_nodest_conn` branch of ip_vs_in_hook's reuse check).
    /// Replies of a removed NAT real are still rewritten, as
    /// ip_vs_out_hook does not check the destination.
    pub expire_nodest_conn: bool,
    /// `net.ipv4.icmp_msgs_per_sec`: ICMP errors this worker may send a
    /// second (kernel default 1000).
    pub icmp_msgs_per_sec: u32,
    /// `net.ipv4.icmp_msgs_burst`: ICMP errors it may send at once (kernel
    /// default 50).
    pub icmp_msgs_burst: u32,
    /// `net.ipv4.icmp_ratelimit`: milliseconds between ICMP errors to one
    /// destination after a burst of 6 (kernel default 1000; 0: no limit
    /// per destination).
    pub icmp_ratelimit_ms: u32,
    /// Datagrams whose later fragments this worker can steer at once
    /// ([`crate::fragtable`]).
    pub frag_capacity: usize,
    /// Read the common frame (untagged Ethernet to the port's MAC, IPv4
    /// without options, not a fragment, TCP or UDP) at fixed offsets
    /// before the general parse (see `worker::fast`). On by default; off
    /// only to compare the two paths (the `fast_path` differential fuzz
    /// target and its property test): the verdicts and bytes are the same.
    pub fast_path: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            conn_capacity: 1 << 20,
            timeouts: Timeouts::default(),
            seed: 0x6c34_7673,
            arp_retry_ms: crate::neighbor::SOLICIT_BACKOFF_MS.0,
            sweep_budget: 256,
            worker_id: 0,
            workers: 1,
            expire_nodest_conn: false,
            icmp_msgs_per_sec: 1000,
            icmp_msgs_burst: 50,
            icmp_ratelimit_ms: 1000,
            frag_capacity: 4096,
            fast_path: true,
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
    /// Where connection events go (the control thread), if anywhere.
    events: Option<rtrb::Producer<Event>>,
    /// A flush in progress: what it removes and where it goes on from.
    flush: Option<(Flush, u32)>,
    /// A listing in progress ([`Command::ListConns`]): where it goes on
    /// from.
    listing: Option<u32>,
    conns: ConnTable,
    /// Where the later fragments of recent datagrams go.
    frags: FragTable,
    neigh: Arc<NeighborTable>,
    counters: Arc<Counters>,
    cfg: WorkerConfig,
    steer: Steering,
    ident: u16,
    icmp_limit: icmp::IcmpRateLimit,
    icmp_peers: icmp::IcmpPeerLimit,
    /// First fragments recorded so far (the lcore loop re-checks held
    /// later fragments when it moves).
    frag_generation: u64,
    /// Resolved next hops by destination ([`HopCache`]).
    hops: HopCache,
    /// While the lcore loop defers them ([`Worker::defer_reply_keys`]):
    /// the new NAT connections of this burst whose reply keys are still
    /// to be indexed, `deferred_len` of them.
    deferring: bool,
    deferred: Box<[u32]>,
    deferred_len: usize,
    /// The platform's cache hint ([`crate::lcore::PacketIo::prefetch`]).
    prefetch: fn(*const u8),
}

/// New NAT connections whose reply keys one burst may defer (a burst is
/// at most 256 packets); past it, a new connection's key is indexed at
/// once.
const DEFERRED_REPLY_KEYS: usize = 1024;

/// The resolved next hops of recent destinations, direct-mapped by a
/// hash of the destination: a connection's next hop does not change
/// while the snapshot (its routes) and the neighbour table (its MACs)
/// do not, so the route and neighbour lookups are skipped for a hit. An
/// entry holds the neighbour table's generation when it was filled; a
/// new snapshot empties the cache.
struct HopCache {
    entries: Box<[CachedHop; HOP_CACHE_SIZE]>,
}

/// One [`HopCache`] entry; `mac` None: empty.
#[derive(Clone, Copy, Default)]
struct CachedHop {
    toward: u32,
    next_hop: u32,
    generation: u64,
    port: u16,
    mac: Option<MacAddr>,
}

/// Entries of a worker's [`HopCache`] (a power of two).
const HOP_CACHE_SIZE: usize = 256;

impl core::fmt::Debug for HopCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let filled = self.entries.iter().filter(|e| e.mac.is_some()).count();
        write!(f, "HopCache {{ {filled} of {HOP_CACHE_SIZE} }}")
    }
}

impl HopCache {
    fn new() -> HopCache {
        HopCache {
            entries: Box::new([CachedHop::default(); HOP_CACHE_SIZE]),
        }
    }

    #[inline]
    fn slot(toward: Ipv4Addr) -> usize {
        (toward.to_bits().wrapping_mul(0x9e37_79b1) >> 24) as usize & (HOP_CACHE_SIZE - 1)
    }

    /// The hop to `toward` if it was resolved under `generation`.
    #[inline]
    fn get(&self, toward: Ipv4Addr, generation: u64) -> Option<NextHop> {
        let e = &self.entries[Self::slot(toward)];
        match e.mac {
            Some(mac) if e.toward == toward.to_bits() && e.generation == generation => {
                Some(NextHop {
                    port: e.port,
                    mac: Some(mac),
                    ip: Ipv4Addr::from_bits(e.next_hop),
                    solicit: false,
                })
            }
            _ => None,
        }
    }

    /// Remembers a resolved hop (one without a MAC is not kept).
    #[inline]
    fn put(&mut self, toward: Ipv4Addr, generation: u64, hop: &NextHop) {
        if hop.mac.is_some() {
            self.entries[Self::slot(toward)] = CachedHop {
                toward: toward.to_bits(),
                next_hop: hop.ip.to_bits(),
                generation,
                port: hop.port,
                mac: hop.mac,
            };
        }
    }

    fn clear(&mut self) {
        self.entries.fill(CachedHop::default());
    }
}

/// Where a packet's L2 next hop is.
struct NextHop {
    port: u16,
    /// None while ARP has not resolved `ip`: the packet is then finished
    /// and held (verdict `AwaitNeighbor`) rather than lost.
    mac: Option<MacAddr>,
    ip: Ipv4Addr,
    /// For an unresolved hop: an ARP request may be sent now.
    solicit: bool,
}

/// What the L4 header says, read once.
#[derive(Clone, Copy)]
struct L4 {
    sport: u16,
    dport: u16,
    tcp_flags: Option<u8>,
}

/// What the IPv4 and L4 headers of a TCP or UDP packet say, read once.
#[derive(Clone, Copy)]
struct Datagram {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: Protocol,
    /// The IPv4 total length, bytes.
    ip_len: u64,
    l4: L4,
    /// A fragment's datagram key, and whether it is the first fragment.
    frag: Option<(FragKey, bool)>,
    /// For a later fragment, what its first fragment recorded.
    frag_route: Option<FragRoute>,
}

/// Which connections a flush removes.
#[derive(Debug, Clone, Copy)]
enum Flush {
    Service(u16),
    Real(u16, Ipv4Addr, u16),
}

impl Flush {
    fn matches(self, c: &Conn) -> bool {
        match self {
            Flush::Service(s) => c.service == s,
            Flush::Real(s, addr, port) => c.service == s && c.rip == addr && c.rport == port,
        }
    }
}

/// Table indexes a listing examines per poll round at most.
const LIST_BUDGET: usize = 4096;

/// Entries a flush examines per housekeeping round.
const FLUSH_BUDGET: usize = 16_384;

/// Hands `e` to the control thread, or counts it lost when the ring is
/// full (never blocks).
#[inline]
fn emit(events: &mut Option<rtrb::Producer<Event>>, counters: &Counters, e: Event) {
    if let Some(p) = events {
        if p.push(e).is_err() {
            counters.events_dropped.inc();
        }
    }
}

impl Worker {
    /// A worker forwarding by `snap`.
    pub fn new(
        snap: Arc<Snapshot>,
        neigh: Arc<NeighborTable>,
        counters: Arc<Counters>,
        cfg: WorkerConfig,
    ) -> Worker {
        Worker::with_memory_advice(snap, neigh, counters, cfg, |_, _| {})
    }

    /// [`Worker::new`], with `advise` called on the connection table's
    /// arrays before they are first written
    /// ([`ConnTable::with_memory_advice`]): the platform's chance to back
    /// them with huge pages.
    pub fn with_memory_advice(
        snap: Arc<Snapshot>,
        neigh: Arc<NeighborTable>,
        counters: Arc<Counters>,
        cfg: WorkerConfig,
        advise: impl FnMut(*mut u8, usize),
    ) -> Worker {
        let mut w = Worker {
            snap: Arc::clone(&snap),
            sched: Vec::new(),
            generation: 0,
            events: None,
            flush: None,
            listing: None,
            conns: ConnTable::with_memory_advice(cfg.conn_capacity, cfg.seed, 0, advise),
            frags: FragTable::new(cfg.frag_capacity, cfg.seed ^ 0x6672_6167),
            neigh,
            counters,
            steer: Steering::new(cfg.worker_id, cfg.workers),
            icmp_limit: icmp::IcmpRateLimit::new(cfg.icmp_msgs_per_sec, cfg.icmp_msgs_burst),
            icmp_peers: icmp::IcmpPeerLimit::new(cfg.icmp_ratelimit_ms),
            ident: cfg.worker_id,
            frag_generation: 0,
            hops: HopCache::new(),
            deferring: false,
            deferred: vec![0; DEFERRED_REPLY_KEYS].into_boxed_slice(),
            deferred_len: 0,
            prefetch: |_| {},
            cfg,
        };
        w.sync_schedulers(&snap);
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

    /// The platform's cache hint, for what the worker can fetch ahead
    /// itself (the lcore loop gives [`crate::lcore::PacketIo::prefetch`]).
    pub fn set_prefetch(&mut self, prefetch: fn(*const u8)) {
        self.prefetch = prefetch;
    }

    /// From now until [`Worker::add_deferred_reply_keys`], a new NAT
    /// connection's reply key (its out tuple, which only the real server's
    /// replies look up) is indexed then rather than at once, its buckets
    /// prefetched meanwhile: a burst's new connections then wait for those
    /// cache misses together, not one after another. The lcore loop calls
    /// the two around each burst: nothing it forwards can be answered
    /// before the burst ends. A connection made meanwhile stays in the
    /// table until then (no packet of the same burst can end it).
    pub fn defer_reply_keys(&mut self) {
        self.deferring = true;
    }

    /// Indexes the reply keys deferred since [`Worker::defer_reply_keys`],
    /// and stops deferring. A connection whose key finds the index full
    /// ends at once (counted expired), as a failed insert would have
    /// refused it; its first packet has gone to its real server.
    #[inline]
    pub fn add_deferred_reply_keys(&mut self) {
        self.deferring = false;
        if self.deferred_len > 0 {
            self.index_deferred_reply_keys();
        }
    }

    /// Indexes the reply keys deferred so far (deferring goes on): for a
    /// lookup that must see every connection, as one for a packet that
    /// could be a reply when the burst carries one to what it opened (not
    /// on a network, where the opening packet has not left yet; in tests).
    #[inline(never)]
    fn index_deferred_reply_keys(&mut self) {
        for k in 0..self.deferred_len {
            let i = self.deferred[k];
            debug_assert!(self.conns.get(i).state != ConnState::Free);
            if !self.conns.insert_reply_key(i) {
                self.end_conn(i);
            }
        }
        self.deferred_len = 0;
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
        // Routes may have changed.
        self.hops.clear();
        self.sync_schedulers(&snap);
        self.snap = snap;
    }

    /// Fits the scheduler slots to `snap`, in place (no allocation unless
    /// the table grew): a slot keeps its state when it has one and its
    /// service is the same `Arc` as in the current snapshot; any other
    /// service gets fresh state; a free slot gets none.
    fn sync_schedulers(&mut self, snap: &Snapshot) {
        self.sched.resize_with(snap.slots().len(), || None);
        for (i, slot) in snap.slots().iter().enumerate() {
            let Some(new) = slot else {
                self.sched[i] = None;
                continue;
            };
            let kept = self.sched[i].is_some()
                && self
                    .snap
                    .slots()
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|prev| Arc::ptr_eq(prev, new));
            if !kept {
                self.sched[i] = Some(self.fresh_scheduler(i, new));
            }
        }
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

    /// True when the first fragment of `key`'s datagram has been seen (a
    /// held later fragment may go on).
    pub fn fragment_known(&self, key: &FragKey, now_ms: u64) -> bool {
        self.frags.lookup(key, now_ms).is_some()
    }

    /// Expires connections a few at a time, and goes on with a flush in
    /// progress; call between bursts.
    pub fn housekeeping(&mut self, now_ms: u64) {
        let (snap, events, counters) = (&self.snap, &mut self.events, &self.counters);
        let n = self
            .conns
            .expire((now_ms / 1000) as u32, self.cfg.sweep_budget, |c| {
                unbind(snap, c);
                emit(events, counters, Event::Ended(*c));
            });
        counters.conns_expired.add(n as u64);
        if let Some((what, from)) = self.flush {
            let next = self.conns.remove_where(
                from,
                FLUSH_BUDGET,
                |c| what.matches(c),
                |c| {
                    unbind(snap, c);
                    counters.conns_expired.inc();
                    emit(events, counters, Event::Ended(*c));
                },
            );
            self.flush = next.map(|n| (what, n));
        }
        counters.conn_entries.set(self.conns.len() as u64);
    }

    /// Sends connection events (created, state changed, ended) to `ring`
    /// from now on.
    pub fn set_event_ring(&mut self, ring: rtrb::Producer<Event>) {
        self.events = Some(ring);
    }

    /// Applies a command of the control thread (between bursts).
    pub fn apply(&mut self, cmd: Command) {
        self.counters.commands_applied.inc();
        match cmd {
            Command::InsertConn(c) => self.insert_synced(c),
            // A newer flush replaces one in progress, which starts over.
            Command::FlushService { service } => self.flush = Some((Flush::Service(service), 0)),
            Command::FlushReal {
                service,
                addr,
                port,
            } => self.flush = Some((Flush::Real(service, addr, port), 0)),
            Command::ListConns => self.listing = Some(0),
        }
    }

    /// Goes on with a listing in progress, if any: as many entries as the
    /// event ring has room for, keeping a quarter of it for the traffic's
    /// events, and at most [`LIST_BUDGET`] indexes examined. Call between
    /// bursts; costs one branch when no listing runs.
    #[inline]
    pub fn continue_listing(&mut self) {
        if self.listing.is_some() {
            self.list_some();
        }
    }

    fn list_some(&mut self) {
        let Some(from) = self.listing else { return };
        let Some(ring) = self.events.as_mut() else {
            self.listing = None;
            return;
        };
        // One slot more for ListDone.
        let keep = ring.buffer().capacity() / 4 + 1;
        let now = self.conns.clock();
        let next = self.conns.visit(from, LIST_BUDGET, |c| {
            if ring.slots() <= keep {
                return false;
            }
            let mut copy = *c;
            copy.expires = c.expires.saturating_sub(now);
            ring.push(Event::Listed(copy)).is_ok()
        });
        self.listing = match next {
            Some(n) => Some(n),
            // At the end: done once ListDone is in the ring, else the
            // next round tries again from the end.
            None => ring
                .push(Event::ListDone)
                .is_err()
                .then_some(self.conns.capacity() as u32),
        };
    }

    /// A connection entry from the control thread (connection sync): an
    /// existing entry of the same client tuple is replaced, counting it
    /// off its real server; the new one is counted on its real server, as
    /// active when its state is.
    fn insert_synced(&mut self, mut c: Conn) {
        c.expires = self.conns.clock().saturating_add(c.expires);
        c.flags |= conn::flags::SYNCED;
        if let Some((i, _)) = self.conns.lookup(&c.in_tuple()) {
            let gone = self.conns.remove(i);
            unbind(&self.snap, &gone);
            emit(&mut self.events, &self.counters, Event::Ended(gone));
        }
        if self.conns.insert(c).is_err() {
            self.counters.count_drop(DropReason::ConnTableFull);
            return;
        }
        if c.flags & conn::flags::TEMPLATE == 0 {
            if let Some((stats, real)) = real_stats(&self.snap, &c) {
                stats.conn_bound(real, c.flags & conn::flags::INACTIVE == 0);
            }
        }
        emit(&mut self.events, &self.counters, Event::Created(c));
    }

    /// Stage one of a burst's prefetch: hands `prefetch` (the platform's
    /// cache hint, [`crate::lcore::PacketIo::prefetch`]) the two
    /// connection-table buckets of a frame's tuple, and returns where its
    /// entry may be for stage two ([`Worker::prefetch_entries`]); None for
    /// a frame that is not TCP or UDP over IPv4. Call it for every packet
    /// of a burst, then stage two for every packet, then process them.
    #[inline]
    pub fn prefetch_buckets(&self, frame: &[u8], prefetch: impl Fn(*const u8)) -> Option<Probe> {
        let t = peek_tuple(frame)?;
        let (probe, lines) = self.conns.probe(&t);
        lines.into_iter().for_each(prefetch);
        Some(probe)
    }

    /// Stage two of a burst's prefetch: hands `prefetch` the entry whose
    /// signature matches `probe` (from [`Worker::prefetch_buckets`] in
    /// this poll round) in its buckets, which stage one brought in, and
    /// notes its slot in `probe` for the lookup.
    #[inline]
    pub fn prefetch_entries(&self, probe: &mut Probe, prefetch: impl Fn(*const u8)) {
        self.conns.prefetch_entries(probe, prefetch);
    }

    /// Handles one packet received on `in_port`, in place, and counts it.
    pub fn process<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, now_ms: u64) -> Verdict {
        self.process_probed(in_port, pkt, None, now_ms)
    }

    /// [`Worker::process`], with where the packet's connection may be
    /// from [`Worker::prefetch_buckets`] on this same frame in this poll
    /// round: a frame the fast path reads is then looked up without
    /// hashing its tuple again (the general path hashes anyway: its tuple
    /// may not be the one the prefetch read, as for a later fragment).
    #[inline]
    pub fn process_probed<B: PacketBuf>(
        &mut self,
        in_port: u16,
        pkt: &mut B,
        probe: Option<Probe>,
        now_ms: u64,
    ) -> Verdict {
        self.counters.rx.inc();
        self.decide::<B, false>(in_port, pkt, probe, now_ms)
    }

    /// Handles a packet again that an earlier verdict held
    /// (`AwaitFragment`: a later fragment whose first one has come since);
    /// counts its verdict but not its arrival.
    #[inline(never)]
    pub fn resume<B: PacketBuf>(&mut self, in_port: u16, pkt: &mut B, now_ms: u64) -> Verdict {
        self.decide::<B, true>(in_port, pkt, None, now_ms)
    }

    /// The next IP identification for a packet this worker builds (an
    /// IP-IP outer header, an ICMP error): workers count in steps of their
    /// number from their own index, so no two send the same ID to a real
    /// at once (the outer packets may be fragmented and reassembled).
    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(self.steer.workers().max(1));
        self.ident
    }

    /// First fragments recorded so far: when it moves, held later
    /// fragments may go on ([`Worker::fragment_known`]).
    pub fn frag_generation(&self) -> u64 {
        self.frag_generation
    }

    /// `AGAIN`: the packet was held and comes back (its arrival is counted
    /// already). A constant, so that `process` and `resume` each get their
    /// own copy of the pipeline, inlined.
    #[inline(always)]
    fn decide<B: PacketBuf, const AGAIN: bool>(
        &mut self,
        in_port: u16,
        pkt: &mut B,
        probe: Option<Probe>,
        now_ms: u64,
    ) -> Verdict {
        let v = self.classify::<B, AGAIN>(in_port, pkt, probe, now_ms);
        match v {
            Verdict::Forward { .. } => self.counters.forwarded.inc(),
            Verdict::Drop(r) => self.counters.count_drop(r),
            Verdict::ToControl => self.counters.to_control.inc(),
            Verdict::Consumed => self.counters.consumed.inc(),
            Verdict::Redirect { .. } => self.counters.redirected.inc(),
            Verdict::AwaitNeighbor { .. } => self.counters.neighbor_held.inc(),
            Verdict::AwaitFragment => self.counters.fragments_held.inc(),
        }
        v
    }

    #[inline(always)]
    fn classify<B: PacketBuf, const AGAIN: bool>(
        &mut self,
        in_port: u16,
        pkt: &mut B,
        probe: Option<Probe>,
        now_ms: u64,
    ) -> Verdict {
        let Some(port) = self.snap.ports().get(usize::from(in_port)) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let port_mac = port.mac;
        if self.cfg.fast_path {
            if let Some(d) = fast::parse(pkt.data(), port_mac, pkt.rx_ip_checksum()) {
                // As the general path, after the checksum (ipv4()).
                if self.snap.standby() && !self.snap.is_local(d.dst) && !is_local_control(d.dst) {
                    return Verdict::Drop(DropReason::Standby);
                }
                return self.datagram(pkt, ethernet::HEADER_LEN, d, probe, now_ms);
            }
        }
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
            EtherType::Ipv4 => self.ipv4::<B, AGAIN>(in_port, pkt, l2, now_ms),
            _ => Verdict::Drop(DropReason::EthUnknownType),
        }
    }

    #[inline(always)]
    fn ipv4<B: PacketBuf, const AGAIN: bool>(
        &mut self,
        in_port: u16,
        pkt: &mut B,
        l2: usize,
        now_ms: u64,
    ) -> Verdict {
        let data = pkt.data();
        let ip = match ipv4::Packet::new_checked(&data[l2..]) {
            Ok(ip) => ip,
            Err(WireError::Truncated) => return Verdict::Drop(DropReason::IpTruncated),
            Err(_) => return Verdict::Drop(DropReason::IpMalformed),
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::IpBadChecksum);
        }
        let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
        // A VRRP backup forwards nothing (ipvs's backup_only); what is
        // the director's own (sync messages, VRRP adverts) goes on.
        if self.snap.standby() && !self.snap.is_local(dst) && !is_local_control(dst) {
            return Verdict::Drop(DropReason::Standby);
        }
        let ip_len = u64::from(ip.total_len());
        // Fragments (see crate::fragtable): the first is scheduled as any
        // packet and records its ports; later ones follow them.
        let (frag, frag_route) = if ip.is_fragment() {
            match self.fragment_of(&ip, now_ms, AGAIN) {
                Ok(f) => f,
                Err(v) => return v,
            }
        } else {
            (None, None)
        };
        let l4 = match (frag_route, proto) {
            (Some(r), _) => L4 {
                sport: r.sport,
                dport: r.dport,
                tcp_flags: None,
            },
            (None, proto) => match proto {
                Protocol::Tcp => match tcp::Packet::new_checked(ip.payload()) {
                    Ok(t) => L4 {
                        sport: t.src_port(),
                        dport: t.dst_port(),
                        tcp_flags: Some(t.flags()),
                    },
                    Err(_) => return Verdict::Drop(DropReason::L4Truncated),
                },
                // A first fragment holds the UDP header but not the whole
                // datagram its length field counts.
                Protocol::Udp if frag.is_some() => {
                    let header = ip.payload().get(..udp::HEADER_LEN);
                    match header.and_then(tcp::ports) {
                        Some((sport, dport)) => L4 {
                            sport,
                            dport,
                            tcp_flags: None,
                        },
                        None => return Verdict::Drop(DropReason::L4Truncated),
                    }
                }
                Protocol::Udp => match udp::Packet::new_checked(ip.payload()) {
                    Ok(u) => L4 {
                        sport: u.src_port(),
                        dport: u.dst_port(),
                        tcp_flags: None,
                    },
                    Err(_) => return Verdict::Drop(DropReason::L4Truncated),
                },
                Protocol::Icmp => return self.icmp(in_port, pkt, l2, now_ms),
                // The director's own, and the local network control
                // block (VRRP, routing protocols): the control thread's,
                // or the kernel's.
                _ if self.snap.is_local(dst) || is_local_control(dst) => return Verdict::ToControl,
                _ => return Verdict::Drop(DropReason::L4Unsupported),
            },
        };
        let d = Datagram {
            src,
            dst,
            proto,
            ip_len,
            l4,
            frag,
            frag_route,
        };
        self.datagram(pkt, l2, d, None, now_ms)
    }

    /// A TCP or UDP datagram (or a fragment of one), its headers read by
    /// the general or the fixed-offset parse: steered to its owner, then
    /// its connection's (or a new one's) forwarding.
    #[inline(always)]
    fn datagram<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        d: Datagram,
        probe: Option<Probe>,
        now_ms: u64,
    ) -> Verdict {
        let Datagram {
            src,
            dst,
            proto,
            ip_len,
            l4,
            frag,
            frag_route,
        } = d;
        let later = frag_route.is_some();
        let first_fragment = match frag {
            Some((key, true)) => Some(key),
            _ => None,
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

        let mut found = match probe {
            Some(p) => self.conns.lookup_probed(&tuple, p),
            None => self.conns.lookup(&tuple),
        };
        // A packet that is not to a VIP may be a reply to a connection
        // whose reply key is deferred (new connections' packets, to a VIP,
        // do not make the keys wait).
        if found.is_none() && self.deferred_len > 0 {
            found = self.lookup_with_deferred(&tuple);
        }

        if let Some((i, dir)) = found {
            let mut c = *self.conns.get(i);
            // IPVS conn_reuse_mode: a fresh SYN on a TIME_WAIT or CLOSE
            // entry is a new connection, scheduled afresh.
            let fresh_syn = dir == Direction::In
                && is_syn(l4.tcp_flags)
                && matches!(c.state, ConnState::Close | ConnState::TimeWait);
            // ip_vs_in_hook: is the connection's real server still there?
            let (real_at, quiescent) = match dir {
                Direction::In => match self.snap.service(c.service) {
                    Some(svc) => {
                        let r = real_position(svc, &c);
                        (r, r.is_some_and(|r| svc.reals[r].weight == 0))
                    }
                    None => (None, false),
                },
                Direction::Out => (Some(usize::from(c.real)), false),
            };
            let resched_quiescent =
                quiescent && self.cfg.expire_nodest_conn && is_syn(l4.tcp_flags);
            if let Some(r) = real_at.filter(|r| *r != usize::from(c.real)) {
                // A removal moved it: point the entry at its new position,
                // so its packets count on it.
                self.conns.get_mut(i).real = r as u16;
                c.real = r as u16;
            }
            let expired = c.expires <= now_s;
            // The reuse check comes first in the kernel: a fresh SYN on a
            // closed entry is scheduled whether its real is there or not.
            if real_at.is_none() && !expired && !fresh_syn && !self.cfg.expire_nodest_conn {
                return Verdict::Drop(DropReason::NoDestination);
            }
            if real_at.is_none() || resched_quiescent || expired || fresh_syn {
                self.end_conn(i);
                if later {
                    return Verdict::Drop(DropReason::FragmentNoConnection);
                }
            } else {
                let before_expires = c.expires;
                let svc = self.snap.service(c.service);
                // By reference: the timeouts are not copied per packet.
                let timeouts = svc.map_or(&self.cfg.timeouts, |s| &s.options.timeouts);
                let entry = self.conns.get_mut(i);
                // A packet of it passed here: a synced entry is this
                // director's now, for its sync daemon to send.
                entry.flags &= !conn::flags::SYNCED;
                // A later fragment has no flags: the first one moved the
                // state, as the whole datagram does in the kernel.
                let activity = if later {
                    Activity::Unchanged
                } else {
                    state::transition(entry, dir, l4.tcp_flags, now_s, timeouts)
                };
                let before = c.state;
                // What the transition may have changed, not a second copy
                // of the whole entry.
                (c.expires, c.state, c.flags) = (entry.expires, entry.state, entry.flags);
                debug_assert_eq!(c, *entry);
                // A shorter timeout (RST -> CLOSE, FIN -> TIME_WAIT) takes
                // effect now, as __ip_vs_conn_put_timer re-arms the timer.
                if c.expires < before_expires {
                    self.conns.refile(i);
                }
                if let Some(svc) = svc {
                    count_packet(svc, self.cfg.worker_id, &c, dir, ip_len);
                }
                if c.state != before {
                    emit(&mut self.events, &self.counters, Event::StateChanged(c));
                }
                if activity != Activity::Unchanged {
                    if let Some((stats, _)) = real_stats(&self.snap, &c) {
                        match activity {
                            Activity::Activated => stats.conn_activated(),
                            _ => stats.conn_deactivated(),
                        }
                    }
                }
                if let Some(key) = first_fragment {
                    self.note_first_fragment(key, l4, None, now_ms);
                }
                return self.forward(pkt, l2, &c, dir, now_ms);
            }
        }
        if later {
            return self
                .later_fragment_without_connection(pkt, l2, &tuple, frag_route, ip_len, now_ms);
        }

        // No connection: only a packet to a service may open one.
        let Some(sid) = self.snap.classify(dst, l4.dport, proto.into()) else {
            return if self.snap.is_vip(dst) {
                Verdict::Drop(DropReason::NoService)
            } else if self.snap.is_local(dst) || is_local_control(dst) {
                // The local network control block (the sync daemon's
                // messages, and what the kernel joined there) goes the
                // control thread's way; other multicast is not for us.
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
            // ip_vs_leave: no TCP socket to send a reset from, so ICMP port
            // unreachable from the VIP, for TCP and UDP alike.
            return self.reply_icmp_error(
                pkt,
                l2,
                icmp::IcmpError::PortUnreachable,
                Some(dst),
                DropReason::NoRealServer,
                now_ms,
            );
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
        if let Some(key) = first_fragment {
            let ops = (svc.options.ops && proto == Protocol::Udp).then_some((sid, ri as u16));
            self.note_first_fragment(key, l4, ops, now_ms);
        }
        if svc.options.ops && proto == Protocol::Udp {
            return self.one_packet(pkt, l2, svc, &c, ip_len, now_ms);
        }
        // ip_vs_in: the packet that created the connection sets its state.
        let activity = state::transition(
            &mut c,
            Direction::In,
            l4.tcp_flags,
            now_s,
            &svc.options.timeouts,
        );
        if self.insert_new(c).is_err() {
            return Verdict::Drop(DropReason::ConnTableFull);
        }
        // ip_vs_bind_dest counts every new connection inactive; then its
        // first packet's state change (a SYN: SYN_RECV) may activate it.
        svc.stats[ri].conn_bound(real, false);
        if activity == Activity::Activated {
            svc.stats[ri].conn_activated();
        }
        let w = self.cfg.worker_id;
        count_conn(svc, w, ri);
        count_packet(svc, w, &c, Direction::In, ip_len);
        self.counters.conns_created.inc();
        emit(&mut self.events, &self.counters, Event::Created(c));
        self.forward(pkt, l2, &c, Direction::In, now_ms)
    }

    /// What a fragment is (kept out of line: fragments are rare): its
    /// datagram's key and whether it is the first, and for a later one the
    /// route its first recorded; or the verdict that ends it here (dropped,
    /// handed to its owner, or held until its first comes).
    #[cold]
    #[inline(never)]
    #[allow(clippy::type_complexity)]
    fn fragment_of(
        &mut self,
        ip: &ipv4::Packet<&[u8]>,
        now_ms: u64,
        again: bool,
    ) -> Result<(Option<(FragKey, bool)>, Option<FragRoute>), Verdict> {
        let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
        let first = ip.frag_offset() == 0;
        if !matches!(proto, Protocol::Tcp | Protocol::Udp) {
            return Err(Verdict::Drop(DropReason::FragmentNotTcpUdp));
        }
        // RFC 1858: a TCP fragment at offset 8 could overwrite the flags of
        // the header the first one carried.
        if proto == Protocol::Tcp && ip.frag_offset() == 8 {
            return Err(Verdict::Drop(DropReason::TcpTinyFragment));
        }
        // A piece ending past 64 KiB belongs to no datagram (the kernel's
        // reassembly refuses it: "Oversized IP packet").
        if usize::from(ip.frag_offset()) + ip.payload().len() > usize::from(u16::MAX) {
            return Err(Verdict::Drop(DropReason::IpMalformed));
        }
        // All fragments of a datagram to one worker, by address alone,
        // before anything else (a later one has no ports to look at).
        if self.steer.workers() > 1 {
            let client = if self.snap.is_vip(dst) { src } else { dst };
            if let Some(owner) = self.foreign_owner(client) {
                return Err(Verdict::Redirect { worker: owner });
            }
        }
        if !again {
            self.counters.fragments_in.inc();
        }
        let key = FragKey {
            src,
            dst,
            proto: proto.into(),
            ident: ip.ident(),
        };
        if first {
            return Ok((Some((key, true)), None));
        }
        match self.frags.lookup(&key, now_ms) {
            Some(r) => Ok((Some((key, false)), Some(r))),
            None => Err(Verdict::AwaitFragment),
        }
    }

    /// ip_vs_schedule with IP_VS_SVC_F_ONEPACKET: a connection that lives
    /// for this one datagram. It is counted (ip_vs_conn_new counts it on the
    /// service and real) but not kept, so the next datagram of the same
    /// flow is scheduled on its own. Out of line, so that the common path
    /// keeps one call to `forward` it can inline.
    #[inline(never)]
    fn one_packet<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        svc: &CompiledService,
        c: &Conn,
        ip_len: u64,
        now_ms: u64,
    ) -> Verdict {
        let w = self.cfg.worker_id;
        count_conn(svc, w, usize::from(c.real));
        count_packet(svc, w, c, Direction::In, ip_len);
        self.counters.ops_scheduled.inc();
        self.forward(pkt, l2, c, Direction::In, now_ms)
    }

    /// Records where the datagram of a first fragment goes, for its later
    /// fragments; counts an entry that took another datagram's place.
    #[cold]
    #[inline(never)]
    fn note_first_fragment(&mut self, key: FragKey, l4: L4, ops: Option<(u16, u16)>, now_ms: u64) {
        let route = FragRoute {
            sport: l4.sport,
            dport: l4.dport,
            ops,
        };
        if self.frags.insert(key, route, now_ms) == Inserted::Evicted {
            self.counters.frag_entries_evicted.inc();
        }
        self.frag_generation = self.frag_generation.wrapping_add(1);
    }

    /// A later fragment whose datagram has no connection entry: one of a
    /// one-packet-scheduling service goes to the real its first fragment
    /// went to; any other is dropped (its connection ended, or its first
    /// fragment was refused).
    #[cold]
    #[inline(never)]
    fn later_fragment_without_connection<B: PacketBuf>(
        &mut self,
        pkt: &mut B,
        l2: usize,
        tuple: &Tuple,
        route: Option<FragRoute>,
        ip_len: u64,
        now_ms: u64,
    ) -> Verdict {
        let Some((sid, ri)) = route.and_then(|r| r.ops) else {
            return Verdict::Drop(DropReason::FragmentNoConnection);
        };
        let snap = self.snap.clone();
        let Some((svc, real)) = snap
            .service(sid)
            .and_then(|s| Some((s, s.reals.get(usize::from(ri))?)))
        else {
            return Verdict::Drop(DropReason::FragmentNoConnection);
        };
        let c = Conn::new(
            tuple,
            real.addr,
            tuple.dport,
            sid,
            ri,
            real.method,
            ConnState::Udp,
            (now_ms / 1000) as u32,
        );
        count_packet(svc, self.cfg.worker_id, &c, Direction::In, ip_len);
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

    /// [`ConnTable::lookup`] that also sees connections whose reply keys
    /// are deferred (indexing them first when `t` is not found).
    fn lookup_all(&mut self, t: &Tuple) -> Option<(u32, Direction)> {
        let found = self.conns.lookup(t);
        if found.is_some() || self.deferred_len == 0 {
            return found;
        }
        self.index_deferred_reply_keys();
        self.conns.lookup(t)
    }

    /// A second lookup of `t`, which was not found while reply keys are
    /// deferred: when it is not to a VIP it may be a reply to one of
    /// those connections, so they are indexed first (a packet to a VIP,
    /// as new connections' are, does not make them wait).
    #[cold]
    #[inline(never)]
    fn lookup_with_deferred(&mut self, t: &Tuple) -> Option<(u32, Direction)> {
        if self.snap.is_vip(t.dst) {
            return None;
        }
        self.index_deferred_reply_keys();
        self.conns.lookup(t)
    }

    /// Inserts a connection the worker scheduled, its reply key deferred
    /// while [`Worker::defer_reply_keys`] holds and there is room to.
    #[inline(never)]
    fn insert_new(&mut self, c: Conn) -> Result<u32, conn::InsertError> {
        if !self.deferring || self.deferred_len == self.deferred.len() {
            return self.conns.insert(c);
        }
        let (i, reply_key) = self.conns.insert_but_reply_key(c)?;
        if reply_key {
            self.conns
                .reply_key_lines(i)
                .into_iter()
                .for_each(self.prefetch);
            self.deferred[self.deferred_len] = i;
            self.deferred_len += 1;
        }
        Ok(i)
    }

    /// Removes connection `i` before its time (expired on a packet, reused
    /// by a new SYN, or its real server gone): counted and told.
    fn end_conn(&mut self, i: u32) {
        let gone = self.conns.remove(i);
        unbind(&self.snap, &gone);
        self.counters.conns_expired.inc();
        emit(&mut self.events, &self.counters, Event::Ended(gone));
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
}

/// A SYN without ACK: the packet that may open a TCP connection.
#[inline]
fn is_syn(tcp_flags: Option<u8>) -> bool {
    tcp_flags.is_some_and(|f| f & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN)
}

/// The position of connection `c`'s real server in `svc`: the one at its
/// index when it is the same real, else found by address (and port); None
/// when it is not there.
#[inline(always)]
fn real_position(svc: &CompiledService, c: &Conn) -> Option<usize> {
    let i = usize::from(c.real);
    match svc.reals.get(i) {
        Some(r) if is_conn_real(r, c) => Some(i),
        _ => real_moved(svc, c),
    }
}

/// [`real_position`] when the real is not at the connection's index: a
/// change moved or removed it.
#[cold]
#[inline(never)]
fn real_moved(svc: &CompiledService, c: &Conn) -> Option<usize> {
    svc.reals.iter().position(|r| is_conn_real(r, c))
}

/// True when `r` is the real server connection `c` was bound to, as IPVS
/// identifies a destination (address and port): a NAT real by the port it
/// rewrites to, or any port when it has none (a firewall-mark or
/// port-zero service keeps the packet's own, which the entry holds); a DR
/// or tunnel real by its address (its port is the service's).
#[inline]
fn is_conn_real(r: &Real, c: &Conn) -> bool {
    r.addr == c.rip && (r.method != ForwardMethod::Nat || r.port == 0 || r.port == c.rport)
}

/// Counts a new connection to real `ri` on worker `w`'s row of it (the
/// service's own row when there is none), as ip_vs_conn_new counts it.
#[inline]
fn count_conn(svc: &CompiledService, w: u16, ri: usize) {
    if let Some(row) = svc.traffic.real(w, ri).or(svc.traffic.service(w)) {
        row.conn();
    }
}

/// Counts a packet of `bytes` IP bytes of connection `c` on worker `w`'s
/// row of its real server (`ip_vs_in_stats`, `ip_vs_out_stats`; the
/// service's counters are the sum of its rows, see [`crate::traffic`]).
/// The real is the one at the connection's index, or the service's own row
/// when there is none. After a change removed a real before it, the
/// client's next packet moves the index (see `real_position`); a NAT reply
/// that comes first counts on the neighbour, a counting error IPVS does
/// not have (it points at the destination) and that checking here would
/// cost every reply.
#[inline(always)]
fn count_packet(svc: &CompiledService, w: u16, c: &Conn, dir: Direction, bytes: u64) {
    let Some(row) = svc.traffic.real_or_service(w, c.real) else {
        return;
    };
    match dir {
        Direction::In => row.packet_in(bytes),
        Direction::Out => row.packet_out(bytes),
    }
}

/// The shared statistics and the configuration of a connection's real
/// server, if the snapshot still has it (a reload may have removed it).
fn real_stats<'a>(snap: &'a Snapshot, c: &Conn) -> Option<(&'a RealStats, &'a Real)> {
    let svc = snap.service(c.service)?;
    let i = real_position(svc, c)?;
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

/// The tuple of a TCP or UDP frame, without any validation beyond what
/// reading it needs (checksums and lengths are checked by `process`).
/// The common frame (untagged, a 20-byte IPv4 header) is read at fixed
/// offsets, the offsets `fast::parse` reads it at.
#[inline]
fn peek_tuple(frame: &[u8]) -> Option<Tuple> {
    use fast::{IP, L4_AT as L4};
    if frame.len() >= L4 + 4 && get_u16(frame, 12) == 0x0800 && frame[IP] == 0x45 {
        let proto = frame[IP + 9];
        return matches!(Protocol::from(proto), Protocol::Tcp | Protocol::Udp).then(|| Tuple {
            proto,
            src: get_addr(frame, IP + 12),
            sport: get_u16(frame, L4),
            dst: get_addr(frame, IP + 16),
            dport: get_u16(frame, L4 + 2),
        });
    }
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

/// Whether `a` is in the local network control block
/// ([`ipv4::is_local_network_control`]), which the director's control
/// thread and kernel take. Other multicast is not for the director.
#[inline]
fn is_local_control(a: Ipv4Addr) -> bool {
    ipv4::is_local_network_control(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{self, CLIENT, VIP};

    /// The prefetch stage's tuple: at fixed offsets for the common frame,
    /// through the parse for a tagged frame or one with IPv4 options,
    /// none for what is not TCP or UDP or too short to hold the ports.
    #[test]
    fn peek_tuple_reads_common_and_other_frames_alike() {
        let h = testpkt::client_to_vip(64);
        let tcp = testpkt::tcp(&h, 40000, 80, tcp::flags::ACK, b"");
        let udp = testpkt::udp(&h, 5000, 53, b"abcd", true);
        let want = |proto: u8, sport, dport| Tuple {
            proto,
            src: CLIENT,
            sport,
            dst: VIP,
            dport,
        };
        assert_eq!(peek_tuple(&tcp), Some(want(6, 40000, 80)));
        assert_eq!(peek_tuple(&udp), Some(want(17, 5000, 53)));
        // An 802.1Q tag before the EtherType.
        let mut tagged = tcp.clone();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        assert_eq!(peek_tuple(&tagged), Some(want(6, 40000, 80)));
        // IHL 6: four bytes of options before the ports.
        let mut options = tcp.clone();
        options[14] = 0x46;
        options.splice(34..34, [1, 1, 1, 0]);
        let total = u16::from_be_bytes([options[16], options[17]]) + 4;
        options[16..18].copy_from_slice(&total.to_be_bytes());
        assert_eq!(peek_tuple(&options), Some(want(6, 40000, 80)));
        let icmp = testpkt::icmp_echo(&h, 1, 1, b"");
        assert_eq!(peek_tuple(&icmp), None);
        assert_eq!(peek_tuple(&tcp[..37]), None, "no room for both ports");
        assert_eq!(peek_tuple(&tcp[..38]), Some(want(6, 40000, 80)));
    }
}
