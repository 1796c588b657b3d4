//! In-process microbenchmarks of the dataplane: TSC cycles per packet of
//! the worker loop the director runs ([`Lcore::poll`]: a receive burst,
//! the prefetch pass, processing, transmit queueing, the checks between
//! bursts), over a memory [`PacketIo`] whose packets are already in
//! memory, so no device I/O is counted.
//!
//! The rig is one worker with one port, one TCP service (VIP
//! 198.18.0.100:80) over `reals` real servers whose MACs are in the
//! neighbour table, and a gateway for the clients (198.19.0.0/16, see
//! [`crate::traffic::flow_tuple`]).
//!
//! What a number includes, exactly:
//! - **Established flows**: a table of `1.25 × live` entries is first
//!   filled with `live` connections (one SYN, then one ACK per flow, so each is ESTABLISHED),
//!   then 64-byte ACK segments of flows drawn uniformly at random from the
//!   live ones are processed in batches of [`BATCH`]. Each batch is
//!   rebuilt from a pristine copy (`Worker::process` edits packets in
//!   place) *outside* the timed region and staged as the next receive
//!   burst; the timed region is one `Lcore::poll` round over the batch,
//!   between two `rdtsc` reads, minus the
//!   measured cost of an empty timed region. The rebuilt packets are in
//!   L1 when processed (as a received burst is after the driver touched
//!   it); the connection-table bucket and entry are wherever the random
//!   draw leaves them, which is the cost this measures.
//! - **New connections**: SYNs of tuples never seen before, into an empty
//!   table of twice their number, timed the same way; each creates a
//!   connection (scheduling, insert, rewrite).
//! - Each number is the median of [`PASSES`] timed passes (after an
//!   untimed warm-up pass over a quarter of the packets).
//! - Cycles are TSC ticks ([`crate::tsc`]); Mpps/core is the TSC frequency
//!   divided by cycles per packet: one core doing nothing but this.
//!
//! Adding a scheduler to the new-connection table is one line in
//! [`SCHEDULERS`].

use crate::results::{EstablishedRow, NewConnRow};
use crate::traffic::{self, Endpoints, Template, Traffic};
use arc_swap::ArcSwap;
use core::net::Ipv4Addr;
use l4vs_dataplane::lcore::{Lcore, LcoreConfig, PacketIo, MAX_BURST};
use l4vs_dataplane::testpkt::{self, Hdr, DIRECTOR_MAC, VIP};
use l4vs_dataplane::{
    Counters, ForwardMethod, LocalAddress, NeighborTable, PacketBuf, PortInfo, Protocol, Real,
    SchedulerKind, Service, Snapshot, VecPacket, Worker, WorkerConfig,
};
use l4vs_wire::ethernet::Address as MacAddr;
use l4vs_wire::tcp;
use std::sync::Arc;
use std::time::Instant;

/// Packets per timed batch (the director's default burst).
pub const BATCH: usize = 32;
/// Frame size of the timed packets (FCS included).
pub const FRAME: u16 = 64;

/// Forwarding modes of the established-flow table: NAT client-to-real,
/// NAT replies (real-to-client, rewritten back to the VIP), IP-IP and DR.
pub const MODES: &[(Mode, &str)] = &[
    (Mode::In(ForwardMethod::Nat), "nat"),
    (Mode::NatReply, "nat-reply"),
    (Mode::In(ForwardMethod::Tunnel), "tunnel"),
    (Mode::In(ForwardMethod::DirectRouting), "dr"),
];

/// Forwarding methods of the new-connection table.
pub const METHODS: &[(ForwardMethod, &str)] = &[
    (ForwardMethod::Nat, "nat"),
    (ForwardMethod::Tunnel, "tunnel"),
    (ForwardMethod::DirectRouting, "dr"),
];

/// Schedulers of the new-connection table, one line each. wlc and mh are
/// being written on another branch; when `SchedulerKind` has them, add
/// `(SchedulerKind::Wlc, "wlc"),` and `(SchedulerKind::Mh, "mh"),` here.
pub const SCHEDULERS: &[(SchedulerKind, &str)] = &[
    (SchedulerKind::Rr, "rr"),
    (SchedulerKind::Wrr, "wrr"),
    (SchedulerKind::Wlc, "wlc"),
    (
        SchedulerKind::Mh {
            table_size: l4vs_dataplane::sched::mh::DEFAULT_TABLE_SIZE,
            port: false,
            fallback: false,
        },
        "mh",
    ),
];

/// Which packets an established-flow run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Client to VIP, every real using this method.
    In(ForwardMethod),
    /// NAT: the real servers' replies.
    NatReply,
}

impl Mode {
    fn method(self) -> ForwardMethod {
        match self {
            Mode::In(m) => m,
            Mode::NatReply => ForwardMethod::Nat,
        }
    }
}

const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0xfe]);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
const VPORT: u16 = 80;
const NAT_PORT: u16 = 8080;
const NOW_MS: u64 = 1_000;

/// Address of real server `i` (198.18.2.11 onwards, then 198.18.3.x ...).
pub fn real_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(Ipv4Addr::new(198, 18, 2, 11).to_bits() + i as u32)
}

fn real_mac(i: usize) -> MacAddr {
    let b = (i as u32).to_be_bytes();
    MacAddr([0x02, 0, 0x02, b[1], b[2], b[3]])
}

/// The benchmark's packet I/O: one port whose next receive burst the
/// benchmark stages; what the loop transmits is kept to be reused. Like a
/// PMD's, its queues are fixed arrays, and a packet is a boxed buffer, a
/// pointer as an mbuf is, so handing packets around the loop costs what it
/// costs with DPDK. Its clock stands still at [`NOW_MS`] (one cycle per
/// millisecond), the time the connections were opened at.
pub struct MemIo {
    staged: [Option<Box<VecPacket>>; MAX_BURST],
    staged_len: usize,
    sent: [Option<Box<VecPacket>>; MAX_BURST],
    sent_len: usize,
    clock: u64,
}

impl Default for MemIo {
    fn default() -> Self {
        MemIo {
            staged: [const { None }; MAX_BURST],
            staged_len: 0,
            sent: [const { None }; MAX_BURST],
            sent_len: 0,
            clock: 0,
        }
    }
}

impl MemIo {
    /// Queues `p` as part of the next receive burst; false when full.
    fn stage(&mut self, p: Box<VecPacket>) -> bool {
        if self.staged_len == MAX_BURST {
            return false;
        }
        self.staged[self.staged_len] = Some(p);
        self.staged_len += 1;
        true
    }

    /// Takes back what the loop sent.
    fn take_sent(&mut self) -> impl Iterator<Item = Box<VecPacket>> + '_ {
        let n = std::mem::take(&mut self.sent_len);
        self.sent[..n].iter_mut().filter_map(Option::take)
    }
}

impl PacketIo for MemIo {
    type Pkt = Box<VecPacket>;
    type View<'a> = &'a mut VecPacket;

    #[inline]
    fn view(pkt: &mut Box<VecPacket>) -> &mut VecPacket {
        pkt
    }
    #[inline]
    fn bytes(pkt: &Box<VecPacket>) -> &[u8] {
        pkt.data()
    }
    fn in_port(_: &Box<VecPacket>) -> u16 {
        0
    }
    fn ports(&self) -> u16 {
        1
    }
    #[inline]
    fn rx_burst(&mut self, _port: u16, out: &mut [Option<Box<VecPacket>>]) -> usize {
        let n = self.staged_len.min(out.len());
        for (o, s) in out[..n].iter_mut().zip(&mut self.staged[..n]) {
            *o = s.take();
        }
        // What did not fit waits for the next burst, in order.
        self.staged[..self.staged_len].rotate_left(n);
        self.staged_len -= n;
        n
    }
    fn redirected_burst(&mut self, _out: &mut [Option<Box<VecPacket>>]) -> usize {
        0
    }
    #[inline]
    fn tx(&mut self, _port: u16, pkt: Box<VecPacket>) {
        // Dropped (freed) when full, as a full TX queue does.
        if let Some(slot) = self.sent.get_mut(self.sent_len) {
            *slot = Some(pkt);
            self.sent_len += 1;
        }
    }
    fn redirect(&mut self, _worker: u16, _pkt: Box<VecPacket>) {}
    fn punt(&mut self, _pkt: Box<VecPacket>) {}
    fn transmit_injected(&mut self) -> usize {
        0
    }
    fn flush(&mut self) {}
    #[inline]
    fn cycles(&self) -> u64 {
        self.clock
    }
    /// The benchmarks resolve every next hop beforehand: nothing asks.
    fn alloc(&mut self, _len: usize) -> Option<Box<VecPacket>> {
        None
    }

    #[inline(always)]
    fn prefetch(addr: *const u8) {
        l4vs_dpdk::prefetch0(addr);
    }
}

/// A worker loop over one TCP service, ready to be benchmarked.
#[expect(clippy::vec_box, reason = "a packet is a pointer, as an mbuf is")]
pub struct Rig {
    lcore: Lcore<MemIo>,
    /// Buffers to stage the next batch in.
    spare: Vec<Box<VecPacket>>,
    counters: Arc<Counters>,
    reals: usize,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("reals", &self.reals)
            .finish_non_exhaustive()
    }
}

/// Real-server weights: all 1 for rr, 1..=5 cycling for the weighted
/// schedulers so they have real work to do.
fn weight(scheduler: SchedulerKind, i: usize) -> u32 {
    if scheduler == SchedulerKind::Rr {
        1
    } else {
        1 + (i % 5) as u32
    }
}

impl Rig {
    /// A worker with a table of `capacity` connections, one service with
    /// `reals` reals by `method` scheduled by `scheduler`.
    ///
    /// # Panics
    /// With more than 60,000 reals (they must fit one /16), or if the
    /// snapshot is refused (a bug here).
    pub fn new(
        method: ForwardMethod,
        scheduler: SchedulerKind,
        reals: usize,
        capacity: u32,
    ) -> Rig {
        assert!(reals > 0 && reals <= 60_000, "reals: {reals}");
        let real_list = (0..reals)
            .map(|i| Real {
                addr: real_addr(i),
                port: if method == ForwardMethod::Nat {
                    NAT_PORT
                } else {
                    VPORT
                },
                weight: weight(scheduler, i),
                method,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect::<Vec<_>>();
        let svc = Service {
            name: "bench".into(),
            vip: VIP,
            port: VPORT,
            protocol: Protocol::Tcp,
            scheduler,
            reals: real_list,
            options: Default::default(),
        };
        let snap = Snapshot::new(
            vec![PortInfo {
                mac: DIRECTOR_MAC,
                mtu: 1500,
            }],
            vec![
                LocalAddress {
                    port: 0,
                    addr: Ipv4Addr::new(198, 18, 1, 1),
                    prefix_len: 24,
                },
                LocalAddress {
                    port: 0,
                    addr: Ipv4Addr::new(198, 18, 2, 1),
                    prefix_len: 16,
                },
            ],
            Some((GATEWAY, 0)),
            vec![svc],
        )
        .expect("benchmark snapshot");
        let neigh = Arc::new(NeighborTable::new(reals + 16));
        for i in 0..reals {
            neigh.set_static(real_addr(i), real_mac(i), 0);
        }
        neigh.set_static(GATEWAY, GATEWAY_MAC, 0);
        let counters = Arc::new(Counters::default());
        let cfg = WorkerConfig {
            conn_capacity: capacity,
            ..WorkerConfig::default()
        };
        let snap = Arc::new(snap);
        // As the director does (control/src/director.rs).
        let worker =
            Worker::with_memory_advice(snap.clone(), neigh, counters.clone(), cfg, |a, n| {
                l4vs_dpdk::advise_huge_pages(a, n);
            });
        let mut lcore = Lcore::new(
            worker,
            MemIo::default(),
            Arc::new(ArcSwap::new(snap)),
            None,
            LcoreConfig {
                burst: BATCH,
                cycles_per_ms: 1,
                ..LcoreConfig::default()
            },
        );
        lcore.io_mut().clock = NOW_MS;
        Rig {
            lcore,
            spare: Vec::new(),
            counters,
            reals,
        }
    }

    /// Connections in the table.
    pub fn live(&self) -> u64 {
        self.lcore.worker().conns().len() as u64
    }

    /// Bytes allocated per connection of capacity.
    pub fn bytes_per_conn(&self) -> u64 {
        self.lcore.worker().conns().bytes_per_conn() as u64
    }

    /// The worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Opens flows `0..n` (SYN, then ACK); returns the seconds it took.
    pub fn fill(&mut self, n: u64) -> f64 {
        let t0 = Instant::now();
        let syn = client_template(tcp::flags::SYN);
        let ack = client_template(tcp::flags::ACK);
        let mut scratch = vec![0u8; syn.len()];
        let mut p = VecPacket::new(&scratch);
        for flow in 0..n {
            for t in [&syn, &ack] {
                t.write(&mut scratch, flow, 0);
                p.reset(&scratch, VecPacket::DEFAULT_HEADROOM);
                self.lcore.worker_mut().process(0, &mut p, NOW_MS);
            }
        }
        t0.elapsed().as_secs_f64()
    }
}

fn client_template(flags: u8) -> Template {
    let ep = Endpoints {
        src_mac: GATEWAY_MAC,
        dst_mac: DIRECTOR_MAC,
        vip: VIP,
        vport: VPORT,
    };
    Template::new(Traffic::Tcp, flags, FRAME, &ep)
}

/// Builds the packets of one batch.
trait Source {
    fn write(&mut self, p: &mut VecPacket, flow: u64);
}

struct ClientPackets {
    t: Template,
    scratch: Vec<u8>,
}

impl Source for ClientPackets {
    fn write(&mut self, p: &mut VecPacket, flow: u64) {
        self.t.write(&mut self.scratch, flow, 0);
        p.reset(&self.scratch, VecPacket::DEFAULT_HEADROOM);
    }
}

/// NAT replies: from the real rr gave flow `i` (real `i % reals`, since
/// the fill opened flows in order), to the client.
struct ReplyPackets {
    reals: usize,
}

impl Source for ReplyPackets {
    fn write(&mut self, p: &mut VecPacket, flow: u64) {
        let (client, cport) = traffic::flow_tuple(flow);
        let h = Hdr {
            src_mac: GATEWAY_MAC,
            dst_mac: DIRECTOR_MAC,
            src: real_addr((flow % self.reals as u64) as usize),
            dst: client,
            ttl: 64,
        };
        let mut f = testpkt::tcp(&h, NAT_PORT, cport, tcp::flags::ACK, &[0; 6]);
        f.truncate(usize::from(FRAME) - traffic::FCS);
        p.reset(&f, VecPacket::DEFAULT_HEADROOM);
    }
}

/// An instructions counter, when perf counters work here.
pub struct Instructions(perf_event::Counter);

impl std::fmt::Debug for Instructions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Instructions")
    }
}

impl Instructions {
    /// A user-space instructions counter for this thread.
    ///
    /// # Errors
    /// Why it cannot be opened (no PMU in the VM, perf_event_paranoid ...).
    pub fn open() -> Result<Instructions, String> {
        perf_event::Builder::new(perf_event::events::Hardware::INSTRUCTIONS)
            .exclude_kernel(true)
            .exclude_hv(true)
            .build()
            .map(Instructions)
            .map_err(|e| format!("perf_event_open(instructions): {e}"))
    }
}

/// Timed passes per measurement; the median is reported.
pub const PASSES: usize = 3;

/// Packets an established-flow measurement of `samples` runs through the
/// timed loop: a warm-up of a quarter of them, then [`PASSES`] passes
/// (without the instructions pass). Callgrind's count of the loop divided
/// by this is instructions per packet.
pub fn timed_packets(samples: u64) -> u64 {
    samples / 4 + PASSES as u64 * samples
}

/// The pass with the median cycles per packet.
fn median(passes: &mut [Pass]) -> Pass {
    passes.sort_by(|a, b| a.cycles_per_packet.total_cmp(&b.cycles_per_packet));
    passes[passes.len() / 2]
}

/// What one timed pass measured.
#[derive(Debug, Clone, Copy)]
struct Pass {
    cycles_per_packet: f64,
    instructions_per_packet: Option<f64>,
    forwarded: u64,
}

/// Mean cost of an empty timed region, in cycles.
fn timer_overhead() -> f64 {
    let n = 10_000u64;
    let mut total = 0u64;
    for _ in 0..n {
        let t0 = l4vs_dpdk::rdtsc();
        let t1 = l4vs_dpdk::rdtsc();
        total += t1.wrapping_sub(t0);
    }
    total as f64 / n as f64
}

/// Stages the next batch of `flows` as the loop's receive burst, taking
/// buffers back from what the loop sent (allocating only to make up for
/// dropped ones, outside the timed region).
fn stage(rig: &mut Rig, src: &mut dyn Source, chunk: &[u64]) {
    let io = rig.lcore.io_mut();
    rig.spare.extend(io.take_sent());
    for f in chunk {
        let mut p = rig
            .spare
            .pop()
            .unwrap_or_else(|| Box::new(VecPacket::new(&[0; 64])));
        src.write(&mut p, *f);
        io.stage(p);
    }
}

/// Processes `flows` in batches, one loop round each; times only the
/// rounds.
fn timed_pass(rig: &mut Rig, src: &mut dyn Source, flows: &[u64]) -> Pass {
    let overhead = timer_overhead();
    let mut cycles = 0u64;
    let mut batches = 0u64;
    let mut forwarded = 0u64;
    for chunk in flows.chunks(BATCH) {
        stage(rig, src, chunk);
        let t0 = l4vs_dpdk::rdtsc();
        rig.lcore.poll();
        let t1 = l4vs_dpdk::rdtsc();
        forwarded += rig.lcore.io().sent_len as u64;
        cycles += t1.wrapping_sub(t0);
        batches += 1;
    }
    let n = flows.len().max(1) as f64;
    let cycles_per_packet = ((cycles as f64 - overhead * batches as f64) / n).max(0.0);
    Pass {
        cycles_per_packet,
        instructions_per_packet: None,
        forwarded,
    }
}

/// A second pass with the counter enabled around each batch's loop round
/// only, less the count of an empty enable/disable pair.
fn count_instructions(
    rig: &mut Rig,
    src: &mut dyn Source,
    flows: &[u64],
    c: &mut Instructions,
) -> Option<f64> {
    let c = &mut c.0;
    let empty = {
        c.reset().ok()?;
        for _ in 0..1000 {
            c.enable().ok()?;
            c.disable().ok()?;
        }
        c.read().ok()? as f64 / 1000.0
    };
    c.reset().ok()?;
    let mut batches = 0u64;
    for chunk in flows.chunks(BATCH) {
        stage(rig, src, chunk);
        c.enable().ok()?;
        rig.lcore.poll();
        c.disable().ok()?;
        batches += 1;
    }
    let total = c.read().ok()? as f64;
    Some(((total - empty * batches as f64) / flows.len().max(1) as f64).max(0.0))
}

/// Established-flow cost of `mode` with `live` connections, over `samples`
/// packets of random live flows (after a warm-up of a quarter as many).
///
/// # Errors
/// When the rig does not behave (a timed packet not forwarded, the table
/// refusing connections): then the number would be meaningless.
pub fn established(
    mode: Mode,
    name: &str,
    live: u64,
    samples: u64,
    tsc_hz: u64,
    perf: Option<&mut Instructions>,
) -> Result<EstablishedRow, String> {
    // A quarter of headroom: a table filled to every entry refuses a few
    // inserts (its probe window fills first; see conn.rs), and a director
    // is sized with headroom anyway.
    let capacity =
        u32::try_from(live + live / 4).map_err(|_| format!("{live} connections: too many"))?;
    let reals = 100;
    let mut rig = Rig::new(mode.method(), SchedulerKind::Rr, reals, capacity);
    let fill_seconds = rig.fill(live);
    if rig.live() != live {
        return Err(format!(
            "{name}: the table took {} of {live} connections",
            rig.live()
        ));
    }
    let mut rng = fastrand::Rng::with_seed(0x6c34_7673 ^ live);
    let flows: Vec<u64> = (0..samples).map(|_| rng.u64(0..live)).collect();
    let mut src: Box<dyn Source> = match mode {
        Mode::NatReply => Box::new(ReplyPackets { reals }),
        Mode::In(_) => {
            let t = client_template(tcp::flags::ACK);
            let scratch = vec![0; t.len()];
            Box::new(ClientPackets { t, scratch })
        }
    };
    let warm = &flows[..flows.len() / 4];
    timed_pass(&mut rig, src.as_mut(), warm);
    let mut passes: Vec<Pass> = (0..PASSES)
        .map(|_| timed_pass(&mut rig, src.as_mut(), &flows))
        .collect();
    let mut pass = median(&mut passes);
    pass.instructions_per_packet =
        perf.and_then(|c| count_instructions(&mut rig, src.as_mut(), &flows, c));
    if passes.iter().any(|p| p.forwarded != samples) {
        return Err(format!(
            "{name}: {} of {samples} timed packets were forwarded",
            pass.forwarded
        ));
    }
    Ok(EstablishedRow {
        mode: name.to_owned(),
        live_target: live,
        live: rig.live(),
        capacity: u64::from(capacity),
        bytes_per_conn: rig.bytes_per_conn(),
        packets: samples,
        cycles_per_packet: pass.cycles_per_packet,
        mpps_per_core: tsc_hz as f64 / pass.cycles_per_packet.max(1e-9) / 1e6,
        instructions_per_packet: pass.instructions_per_packet,
        fill_seconds,
    })
}

/// New-connection cost: `syns` SYNs of unique tuples into an empty table
/// of `2 * syns` entries, `reals` reals by `method`, scheduled by
/// `scheduler`. Instructions, when asked, come from a second table.
///
/// # Errors
/// When SYNs are not forwarded (a bug in the rig).
#[allow(clippy::too_many_arguments)]
pub fn new_conns(
    method: ForwardMethod,
    mode: &str,
    scheduler: SchedulerKind,
    sched_name: &str,
    reals: usize,
    syns: u64,
    tsc_hz: u64,
    perf: Option<&mut Instructions>,
) -> Result<NewConnRow, String> {
    let capacity = u32::try_from(syns * 2).map_err(|_| format!("{syns} SYNs: too many"))?;
    let flows: Vec<u64> = (0..syns).collect();
    let t = client_template(tcp::flags::SYN);
    let scratch = vec![0; t.len()];
    let mut src = ClientPackets { t, scratch };
    let mut passes = Vec::new();
    let mut created = 0;
    for _ in 0..PASSES {
        // Each pass into a fresh, empty table.
        let mut rig = Rig::new(method, scheduler, reals, capacity);
        passes.push(timed_pass(&mut rig, &mut src, &flows));
        created = created.max(rig.counters().conns_created.get());
    }
    let pass = median(&mut passes);
    if passes.iter().any(|p| p.forwarded != syns) {
        return Err(format!(
            "{mode}/{sched_name}: {} of {syns} SYNs forwarded ({created} connections created)",
            pass.forwarded
        ));
    }
    let instructions_per_conn = match perf {
        Some(c) => {
            let mut again = Rig::new(method, scheduler, reals, capacity);
            count_instructions(&mut again, &mut src, &flows, c)
        }
        None => None,
    };
    Ok(NewConnRow {
        mode: mode.to_owned(),
        scheduler: sched_name.to_owned(),
        reals: reals as u64,
        syns,
        created,
        capacity: u64::from(capacity),
        cycles_per_conn: pass.cycles_per_packet,
        conns_per_sec_per_core: tsc_hz as f64 / pass.cycles_per_packet.max(1e-9),
        instructions_per_conn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Small sizes: these check that the rig forwards what it times and
    // counts what it should, never how fast.

    #[test]
    fn every_mode_forwards_every_timed_packet() {
        for (mode, name) in MODES {
            let r = established(*mode, name, 500, 2000, 1_000_000_000, None).unwrap();
            assert_eq!((r.live, r.packets), (500, 2000), "{name}");
            assert!(r.cycles_per_packet > 0.0, "{name}");
            assert!(r.bytes_per_conn > 0);
        }
    }

    #[test]
    fn every_scheduler_creates_one_connection_per_syn() {
        for (kind, sname) in SCHEDULERS {
            for (method, mname) in METHODS {
                let r = new_conns(*method, mname, *kind, sname, 100, 1000, 1_000_000_000, None)
                    .unwrap();
                assert_eq!(
                    (r.created, r.syns, r.reals),
                    (1000, 1000, 100),
                    "{mname}/{sname}"
                );
            }
        }
    }

    #[test]
    fn nat_replies_are_rewritten_back() {
        let mut rig = Rig::new(ForwardMethod::Nat, SchedulerKind::Rr, 7, 64);
        rig.fill(20);
        let mut src = ReplyPackets { reals: 7 };
        let flows: Vec<u64> = (0..20).collect();
        let pass = timed_pass(&mut rig, &mut src, &flows);
        assert_eq!(pass.forwarded, 20);
        assert_eq!(rig.counters().nat_out.get(), 20);
    }

    #[test]
    fn weighted_schedulers_get_uneven_weights() {
        assert_eq!(weight(SchedulerKind::Rr, 3), 1);
        assert_eq!(
            (0..5)
                .map(|i| weight(SchedulerKind::Wrr, i))
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }
}
