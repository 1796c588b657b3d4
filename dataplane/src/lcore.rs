//! The run-to-completion loop of one worker lcore, generic over its
//! packet I/O.
//!
//! One poll round ([`Lcore::poll`]): receive a burst from each port,
//! prefetch the connection-table buckets of the whole burst, process each
//! packet and queue it by its verdict (transmit, hand to the owning
//! worker, punt to the control thread, or free); then the packets other
//! workers handed over; the frames the control thread injects; flush the
//! queues; pick up a newly published
//! snapshot; apply a few commands of the control thread; and, every
//! [`LcoreConfig::housekeeping_ms`], expire connections. The control
//! crate implements [`PacketIo`] over DPDK queues and rings; the
//! benchmarks over memory, so they time this same loop.
//!
//! Nothing here allocates after [`Lcore::new`], takes a lock or logs.

use crate::packet::PacketBuf;
use crate::rings::{Command, WorkerEnd};
use crate::snapshot::Snapshot;
use crate::verdict::Verdict;
use crate::worker::Worker;
use arc_swap::ArcSwap;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest burst a worker receives at once.
pub const MAX_BURST: usize = 256;
/// Commands applied at most per poll round, so that a flood of them (a
/// bulk connection sync) cannot hold a worker off its queues.
pub const COMMANDS_PER_ROUND: usize = 64;

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
            for p in self.pkts[..n].iter().flatten() {
                self.worker.prefetch(Io::bytes(p));
            }
            for i in 0..n {
                if let Some(p) = self.pkts[i].take() {
                    self.handle(port, p, now_ms);
                }
            }
        }
        let n = self.io.redirected_burst(&mut self.pkts[..burst]);
        received += n;
        for i in 0..n {
            if let Some(p) = self.pkts[i].take() {
                let port = Io::in_port(&p);
                self.handle(port, p, now_ms);
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
    fn handle(&mut self, port: u16, mut p: Io::Pkt, now_ms: u64) {
        let v = self.worker.process(port, &mut Io::view(&mut p), now_ms);
        match v {
            Verdict::Forward { port } => self.io.tx(port, p),
            Verdict::Redirect { worker } => self.io.redirect(worker, p),
            Verdict::ToControl => self.io.punt(p),
            // Dropping the packet frees it.
            Verdict::Drop(_) | Verdict::Consumed => {}
        }
    }

    /// What happens between bursts: a new snapshot, commands, expiry.
    fn between_bursts(&mut self, now_ms: u64) {
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
