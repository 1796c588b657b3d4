//! The run-to-completion loop of one worker lcore, generic over its
//! packet I/O.
//!
//! One poll round ([`Lcore::poll`]): receive a burst from each port,
//! prefetch the connection table for the whole burst in two stages (every
//! packet's buckets, then the entries they point at; each packet's probe
//! goes on to its lookup), process each packet and queue it by its
//! verdict (transmit, hand to the owning worker, punt to the control
//! thread, or free), and index the reply keys of the burst's new NAT
//! connections together ([`Worker::defer_reply_keys`]); then the packets
//! other workers handed over; the frames the control thread injects;
//! flush the queues; pick up a newly published snapshot; apply a few
//! commands of the control thread; send the held packets whose next hop
//! ARP has resolved, and hand back the later fragments whose first has
//! come; and, every
//! [`LcoreConfig::housekeeping_ms`], expire connections. The control
//! crate implements [`PacketIo`] over DPDK queues and rings; the
//! benchmarks over memory, so they time this same loop.
//!
//! Nothing here allocates after [`Lcore::new`], takes a lock or logs.

use crate::conn::Probe;
use crate::frag;
use crate::fragtable::FragKey;
use crate::packet::PacketBuf;
use crate::rings::{Command, WorkerEnd};
use crate::snapshot::Snapshot;
use crate::verdict::DropReason;
use crate::verdict::Verdict;
use crate::worker::Worker;
use arc_swap::ArcSwap;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest burst a worker receives at once.
pub const MAX_BURST: usize = 256;
/// Commands applied at most per poll round, so that a flood of them (a
/// bulk connection sync) cannot hold a worker off its queues.
pub const COMMANDS_PER_ROUND: usize = 64;
/// Packets a worker holds, in all: for unresolved next hops, and later
/// fragments waiting for their first. A packet that finds the queue full
/// is dropped (`hold_queue_full`).
pub const HOLD_QUEUE_SLOTS: usize = 256;
/// Packets held for one next hop (or one datagram); the oldest is dropped
/// for a newer one (`hold_queue_full`), as the kernel's
/// `__neigh_event_send` does once `unres_qlen_bytes` (about a hundred
/// full-size frames) is reached.
pub const HOLD_QUEUE_PER_KEY: usize = 64;
/// How long a held packet waits for ARP before it is dropped
/// (`neighbor_unresolved`): the kernel gives up on a neighbour after
/// `mcast_solicit` (3) requests `retrans_time` (1 s) apart.
pub const NEIGHBOR_QUEUE_TIMEOUT_MS: u64 = 3000;

/// A worker's packet I/O: its receive queues, transmit queues and the
/// rings to other workers and to the control thread. Implementations
/// batch what they send and count what they lose (`tx_dropped`,
/// `redirect_dropped`, `punt_dropped`); `flush` sends the batches.
pub trait PacketIo {
    /// An owned packet (an mbuf); dropping it frees it.
    type Pkt;
    /// The packet as the dataplane edits it.
    type View<'a>: PacketBuf
    where
        Self: 'a;

    /// The editable view of `pkt`.
    fn view(pkt: &mut Self::Pkt) -> Self::View<'_>;
    /// The bytes of `pkt`, from its Ethernet header.
    fn bytes(pkt: &Self::Pkt) -> &[u8];
    /// The port `pkt` was received on.
    fn in_port(pkt: &Self::Pkt) -> u16;
    /// Number of ports (port ids are `0..ports()`).
    fn ports(&self) -> u16;
    /// Receives up to `out.len()` packets from `port` into `out[..n]`;
    /// returns `n`.
    fn rx_burst(&mut self, port: u16, out: &mut [Option<Self::Pkt>]) -> usize;
    /// Takes up to `out.len()` packets other workers handed to this one.
    fn redirected_burst(&mut self, out: &mut [Option<Self::Pkt>]) -> usize;
    /// Queues `pkt` for transmission on `port`.
    fn tx(&mut self, port: u16, pkt: Self::Pkt);
    /// Queues `pkt` for worker `worker`, which owns its connection.
    fn redirect(&mut self, worker: u16, pkt: Self::Pkt);
    /// Queues `pkt` for the control thread.
    fn punt(&mut self, pkt: Self::Pkt);
    /// Moves the frames the control thread asked this worker to send
    /// (its inject path) to the transmit queues; returns how many. The
    /// worker does not look at them.
    fn transmit_injected(&mut self) -> usize;
    /// Sends everything queued.
    fn flush(&mut self);
    /// The time-stamp counter, in cycles.
    fn cycles(&self) -> u64;
    /// A new packet of `len` bytes (contents unspecified) for a frame the
    /// worker originates (an ARP request), or None when none is free.
    fn alloc(&mut self, len: usize) -> Option<Self::Pkt>;
    /// Asks the CPU to bring the cache line at `addr` into cache (DPDK's
    /// `rte_prefetch0`): a hint that reads nothing and cannot fault, used
    /// for the connection table ahead of a burst. The default does
    /// nothing (this crate has no `unsafe`; the platform's crate has the
    /// instruction).
    #[inline(always)]
    fn prefetch(addr: *const u8) {
        let _ = addr;
    }
}

/// Fragments a packet may be cut into at most: a 2048-byte frame (the
/// largest an mbuf holds, 20 more for an IP-IP header) on the smallest MTU
/// (68: 48 bytes a fragment).
const MAX_FRAGMENTS: usize = 48;

/// How long a later fragment waits for its datagram's first fragment
/// before it is dropped (`ip_fragment_timeout`). Fragments of a datagram
/// arrive within milliseconds of each other; the kernel's 30 s
/// (`ipfrag_time`) bounds reassembly memory, which l4vs does not keep.
pub const FRAGMENT_HOLD_MS: u64 = 1000;

/// Later fragments held at most, of [`HOLD_QUEUE_SLOTS`]: fragments
/// whose first never comes cannot crowd out packets waiting for ARP.
pub const HOLD_QUEUE_FRAGMENTS: usize = HOLD_QUEUE_SLOTS / 2;
/// How often held packets are looked at when nothing happened that could
/// release them (for timeouts), milliseconds.
const HOLD_CHECK_MS: u64 = 10;

/// What a held packet waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// ARP to resolve this next hop, reached through this port.
    Neighbor(Ipv4Addr, u16),
    /// The first fragment of this datagram.
    Fragment(FragKey),
}

/// How a held packet leaves the queue, once what it waited for happened.
enum Release {
    /// Its next hop is resolved (and the packet addressed): send it on
    /// this port.
    Send(u16),
    /// Its datagram's first fragment has come: run it through the worker
    /// again.
    Resume,
}

/// A packet held until what it waits for happens.
struct Held<P> {
    pkt: P,
    wait: Wait,
    since_ms: u64,
}

/// How a worker loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LcoreConfig {
    /// Packets received per port per round, 1..=[`MAX_BURST`].
    pub burst: usize,
    /// Interval of connection expiry and flushes, milliseconds.
    pub housekeeping_ms: u64,
    /// Sleep this long between empty rounds once idle for
    /// [`LcoreConfig::idle_polls_before_sleep`] rounds; zero busy-polls.
    pub idle_sleep: Duration,
    /// Empty rounds before sleeping.
    pub idle_polls_before_sleep: u32,
    /// Time-stamp counter cycles per millisecond.
    pub cycles_per_ms: u64,
}

impl Default for LcoreConfig {
    fn default() -> Self {
        LcoreConfig {
            burst: 32,
            housekeeping_ms: 100,
            idle_sleep: Duration::ZERO,
            idle_polls_before_sleep: 64,
            cycles_per_ms: 1_000_000,
        }
    }
}

/// One worker lcore: its [`Worker`], its I/O, and its links to the
/// control thread.
pub struct Lcore<Io: PacketIo> {
    worker: Worker,
    io: Io,
    snapshot: Arc<ArcSwap<Snapshot>>,
    commands: Option<rtrb::Consumer<Command>>,
    cfg: LcoreConfig,
    pkts: Box<[Option<Io::Pkt>]>,
    /// Where each received packet's connection may be, from the first
    /// prefetch stage, for the second.
    probes: Box<[Option<Probe>]>,
    /// Packets waiting for their next hop's MAC or their first fragment;
    /// `held_count` are Some, `held_fragments` of them fragments.
    held: Box<[Option<Held<Io::Pkt>>]>,
    held_count: usize,
    held_fragments: usize,
    /// The worker's fragment generation when held packets were last
    /// looked at, and when they are next looked at anyway.
    seen_frag_generation: u64,
    next_hold_check_ms: u64,
    start: u64,
    next_housekeeping_ms: u64,
    idle_polls: u32,
}

impl<Io: PacketIo> Lcore<Io> {
    /// A loop for `worker` over `io`, following the snapshots published
    /// in `snapshot`; `control` carries commands and events (`None`: no
    /// control thread, as in benchmarks). Allocates the receive array.
    pub fn new(
        mut worker: Worker,
        io: Io,
        snapshot: Arc<ArcSwap<Snapshot>>,
        control: Option<WorkerEnd>,
        cfg: LcoreConfig,
    ) -> Lcore<Io> {
        // Events come from inside the worker; commands are taken here.
        let commands = control.map(|WorkerEnd { commands, events }| {
            worker.set_event_ring(events);
            commands
        });
        worker.set_prefetch(Io::prefetch);
        let start = io.cycles();
        let cfg = LcoreConfig {
            burst: cfg.burst.clamp(1, MAX_BURST),
            cycles_per_ms: cfg.cycles_per_ms.max(1),
            ..cfg
        };
        Lcore {
            worker,
            io,
            snapshot,
            commands,
            cfg,
            pkts: (0..MAX_BURST).map(|_| None).collect(),
            probes: vec![None; MAX_BURST].into_boxed_slice(),
            held: (0..HOLD_QUEUE_SLOTS).map(|_| None).collect(),
            held_count: 0,
            held_fragments: 0,
            seen_frag_generation: 0,
            next_hold_check_ms: 0,
            start,
            next_housekeeping_ms: 0,
            idle_polls: 0,
        }
    }

    /// The worker.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The worker, mutable (benchmarks fill its table directly).
    pub fn worker_mut(&mut self) -> &mut Worker {
        &mut self.worker
    }

    /// The I/O.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// The I/O, mutable (benchmarks refill their packets through it).
    pub fn io_mut(&mut self) -> &mut Io {
        &mut self.io
    }

    /// One round of the loop; returns the packets received (from ports
    /// and other workers).
    pub fn poll(&mut self) -> usize {
        let t0 = self.io.cycles();
        let now_ms = t0.wrapping_sub(self.start) / self.cfg.cycles_per_ms;
        let burst = self.cfg.burst;
        let mut received = 0;
        for port in 0..self.io.ports() {
            let n = self.io.rx_burst(port, &mut self.pkts[..burst]);
            received += n;
            // The connection table ahead of the burst, in two stages as
            // rte_hash's bulk lookup: every packet's buckets, then the
            // entries they point at (the buckets have come by then).
            for (p, probe) in self.pkts[..n].iter().zip(self.probes.iter_mut()) {
                *probe = p
                    .as_ref()
                    .and_then(|p| self.worker.prefetch_buckets(Io::bytes(p), Io::prefetch));
            }
            for probe in self.probes[..n].iter_mut().flatten() {
                self.worker.prefetch_entries(probe, Io::prefetch);
            }
            // New NAT connections' reply keys are indexed after the
            // burst, together (their buckets prefetched meanwhile): no
            // reply to what the burst forwards can be received before.
            self.worker.defer_reply_keys();
            for i in 0..n {
                if let Some(p) = self.pkts[i].take() {
                    self.handle(port, p, self.probes[i], now_ms);
                }
            }
            self.worker.add_deferred_reply_keys();
        }
        let n = self.io.redirected_burst(&mut self.pkts[..burst]);
        received += n;
        for i in 0..n {
            if let Some(p) = self.pkts[i].take() {
                let port = Io::in_port(&p);
                self.handle(port, p, None, now_ms);
            }
        }
        self.io.transmit_injected();
        self.io.flush();
        self.between_bursts(now_ms);
        let t1 = self.io.cycles();
        let counters = self.worker.counters();
        if received > 0 {
            counters.busy_cycles.add(t1.wrapping_sub(t0));
            self.idle_polls = 0;
        } else {
            counters.idle_cycles.add(t1.wrapping_sub(t0));
            self.idle_polls = self.idle_polls.saturating_add(1);
        }
        received
    }

    /// Processes one packet and queues it by its verdict.
    #[inline]
    fn handle(&mut self, port: u16, mut p: Io::Pkt, probe: Option<Probe>, now_ms: u64) {
        let v = self
            .worker
            .process_probed(port, &mut Io::view(&mut p), probe, now_ms);
        self.dispatch(v, p, now_ms);
    }

    /// Queues a processed packet by its verdict.
    #[inline(always)]
    fn dispatch(&mut self, v: Verdict, p: Io::Pkt, now_ms: u64) {
        match v {
            Verdict::Forward { port } => Self::transmit(&mut self.io, &self.worker, port, p),
            Verdict::Redirect { worker } => self.io.redirect(worker, p),
            Verdict::ToControl => self.io.punt(p),
            Verdict::AwaitNeighbor {
                port,
                next_hop,
                solicit,
            } => {
                if solicit {
                    Self::solicit(&mut self.io, &self.worker, port, next_hop);
                }
                self.hold(p, Wait::Neighbor(next_hop, port), now_ms);
            }
            Verdict::AwaitFragment => match fragment_key(Io::bytes(&p)) {
                Some(key) => self.hold(p, Wait::Fragment(key), now_ms),
                None => self
                    .worker
                    .counters()
                    .count_drop(DropReason::FragmentTimeout),
            },
            // Dropping the packet frees it.
            Verdict::Drop(_) | Verdict::Consumed => {}
        }
    }

    /// Sends `p` on `port`, in fragments when it is larger than the port's
    /// MTU (one comparison for a frame that fits). Takes the I/O and the
    /// worker apart, so that it can run while a held slot is borrowed.
    #[inline(always)]
    fn transmit(io: &mut Io, worker: &Worker, port: u16, p: Io::Pkt) {
        let mtu = worker.port_mtu(port);
        // 14: an untagged Ethernet header. Longer frames (tagged ones
        // among them, and Ethernet padding never comes this long) are
        // checked exactly by the fragmenter, which sends one that fits.
        if Io::bytes(&p).len() <= usize::from(mtu) + 14 {
            io.tx(port, p);
        } else {
            Self::fragment(io, worker, port, mtu, p);
        }
    }

    /// Cuts `p` into fragments for `port` ([`crate::frag`]) and sends them
    /// in order; what cannot be fragmented (DF set, which the worker
    /// answers before, or no buffer for a piece) is dropped and counted as
    /// `frag_failed`.
    #[cold]
    fn fragment(io: &mut Io, worker: &Worker, port: u16, mtu: u16, mut p: Io::Pkt) {
        let counters = worker.counters();
        let plan = match frag::Plan::new(Io::bytes(&p), mtu) {
            Ok(None) => return io.tx(port, p),
            Ok(Some(plan)) if plan.count() <= MAX_FRAGMENTS => plan,
            _ => return counters.count_drop(DropReason::FragFailed),
        };
        let mut rest: [Option<Io::Pkt>; MAX_FRAGMENTS] = core::array::from_fn(|_| None);
        for (k, slot) in rest.iter_mut().enumerate().take(plan.count()).skip(1) {
            let Some(mut f) = io.alloc(plan.frame_len(k)) else {
                // Dropping the pieces made so far frees them.
                return counters.count_drop(DropReason::FragFailed);
            };
            plan.write(Io::bytes(&p), k, Io::view(&mut f).data_mut());
            *slot = Some(f);
        }
        plan.write_first(&mut Io::view(&mut p));
        io.tx(port, p);
        for f in rest.iter_mut().filter_map(Option::take) {
            io.tx(port, f);
        }
        counters.fragmented.inc();
        counters.fragments_sent.add(plan.count() as u64);
    }

    /// Sends the ARP request a held packet waits for, in a new packet.
    fn solicit(io: &mut Io, worker: &Worker, port: u16, next_hop: Ipv4Addr) {
        let Some(frame) = worker.arp_request(port, next_hop) else {
            return;
        };
        if let Some(mut req) = io.alloc(frame.len()) {
            {
                let mut v = Io::view(&mut req);
                let n = v.data().len().min(frame.len());
                v.data_mut()[..n].copy_from_slice(&frame[..n]);
                v.truncate(frame.len());
            }
            io.tx(port, req);
            worker.counters().arp_requests.inc();
        }
    }

    /// Queues `p` until `wait` is over: in a free slot, or in place of
    /// the oldest packet waiting for the same thing once it holds
    /// [`HOLD_QUEUE_PER_KEY`]; dropped when every slot is taken.
    fn hold(&mut self, p: Io::Pkt, wait: Wait, now_ms: u64) {
        let fragment = matches!(wait, Wait::Fragment(_));
        if fragment && self.held_fragments >= HOLD_QUEUE_FRAGMENTS {
            return self.worker.counters().count_drop(DropReason::HoldQueueFull);
        }
        let mut same = 0;
        // The oldest packet of the same wait: (slot, since).
        let mut oldest: Option<(usize, u64)> = None;
        let mut free: Option<usize> = None;
        for (i, h) in self.held.iter().enumerate() {
            match h {
                Some(h) if h.wait == wait => {
                    same += 1;
                    if oldest.is_none_or(|(_, since)| since > h.since_ms) {
                        oldest = Some((i, h.since_ms));
                    }
                }
                Some(_) => {}
                None => {
                    if free.is_none() {
                        free = Some(i);
                    }
                }
            }
        }
        let counters = self.worker.counters();
        let slot = match (same >= HOLD_QUEUE_PER_KEY, oldest, free) {
            (true, Some((o, _)), _) => {
                // Dropping the old packet frees it.
                self.held[o] = None;
                self.held_count -= 1;
                self.held_fragments -= usize::from(fragment);
                counters.count_drop(DropReason::HoldQueueFull);
                o
            }
            (_, _, Some(f)) => f,
            _ => {
                counters.count_drop(DropReason::HoldQueueFull);
                return;
            }
        };
        self.held[slot] = Some(Held {
            pkt: p,
            wait,
            since_ms: now_ms,
        });
        self.held_count += 1;
        self.held_fragments += usize::from(fragment);
    }

    /// Sends the held packets whose next hop has been resolved, hands
    /// back the later fragments whose first fragment has come, and drops
    /// those that waited too long ([`NEIGHBOR_QUEUE_TIMEOUT_MS`],
    /// [`FRAGMENT_HOLD_MS`]).
    fn release_held(&mut self, now_ms: u64) {
        for i in 0..self.held.len() {
            let Some(h) = self.held[i].as_mut() else {
                continue;
            };
            let (ready, timeout, reason) = match h.wait {
                Wait::Neighbor(next_hop, port) => {
                    let ready = self
                        .worker
                        .readdress(&mut Io::view(&mut h.pkt), next_hop)
                        .map(Release::Send);
                    // Ask again while it waits (the kernel sends up to
                    // mcast_solicit requests, retrans_time apart).
                    if ready.is_none() && self.worker.should_solicit_again(next_hop, now_ms) {
                        Self::solicit(&mut self.io, &self.worker, port, next_hop);
                    }
                    (
                        ready,
                        NEIGHBOR_QUEUE_TIMEOUT_MS,
                        DropReason::NeighborUnresolved,
                    )
                }
                Wait::Fragment(key) => (
                    self.worker
                        .fragment_known(&key, now_ms)
                        .then_some(Release::Resume),
                    FRAGMENT_HOLD_MS,
                    DropReason::FragmentTimeout,
                ),
            };
            let waited = now_ms.saturating_sub(h.since_ms);
            if ready.is_none() && waited < timeout {
                continue;
            }
            let Some(h) = self.held[i].take() else {
                continue;
            };
            self.held_count -= 1;
            self.held_fragments -= usize::from(matches!(h.wait, Wait::Fragment(_)));
            let counters = self.worker.counters();
            match ready {
                Some(Release::Send(port)) => {
                    counters.neighbor_released.inc();
                    counters.forwarded.inc();
                    Self::transmit(&mut self.io, &self.worker, port, h.pkt);
                }
                Some(Release::Resume) => {
                    // Its datagram is known now: the packet goes through the
                    // pipeline as it would have, and may be held again (for
                    // ARP) in the slot it left.
                    let mut p = h.pkt;
                    let in_port = Io::in_port(&p);
                    let v = self.worker.resume(in_port, &mut Io::view(&mut p), now_ms);
                    self.dispatch(v, p, now_ms);
                }
                // Dropping the packet frees it.
                None => counters.count_drop(reason),
            }
        }
    }

    /// Packets held now (for unresolved next hops, and later fragments
    /// waiting for their first).
    pub fn held(&self) -> usize {
        self.held_count
    }

    /// What happens between bursts: held packets, a new snapshot,
    /// commands, expiry.
    fn between_bursts(&mut self, now_ms: u64) {
        // Held packets are looked at when something may have released
        // them (a next hop could be learned any time; a first fragment was
        // recorded), and every HOLD_CHECK_MS for their timeouts, so that
        // a queue full of fragments whose first never comes costs little.
        if self.held_count > 0 {
            let generation = self.worker.frag_generation();
            if self.held_count > self.held_fragments
                || generation != self.seen_frag_generation
                || now_ms >= self.next_hold_check_ms
            {
                self.seen_frag_generation = generation;
                self.next_hold_check_ms = now_ms + HOLD_CHECK_MS;
                self.release_held(now_ms);
                self.io.flush();
            }
        }
        {
            let current = self.snapshot.load();
            if !Arc::ptr_eq(&current, self.worker.snapshot()) {
                self.worker.set_snapshot(Arc::clone(&current));
            }
        }
        if let Some(c) = self.commands.as_mut() {
            for _ in 0..COMMANDS_PER_ROUND {
                let Ok(cmd) = c.pop() else { break };
                self.worker.apply(cmd);
            }
        }
        self.worker.continue_listing();
        if now_ms >= self.next_housekeeping_ms {
            self.worker.housekeeping(now_ms);
            self.next_housekeeping_ms = now_ms + self.cfg.housekeeping_ms;
        }
    }

    /// Polls until `stop` is set, sleeping between empty rounds as
    /// configured; flushes on the way out.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.poll();
            if !self.cfg.idle_sleep.is_zero() && self.idle_polls > self.cfg.idle_polls_before_sleep
            {
                std::thread::sleep(self.cfg.idle_sleep);
            }
        }
        self.io.flush();
    }
}

/// The datagram key of an IPv4 frame (802.1Q tag or not).
fn fragment_key(frame: &[u8]) -> Option<FragKey> {
    let l2 = l4vs_wire::ethernet::Frame::new_checked(frame)
        .ok()?
        .header_len();
    FragKey::of_header(frame.get(l2..)?)
}
