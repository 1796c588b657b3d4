//! The lcore loop over a memory packet I/O: what it sends where, the
//! snapshot it picks up, the commands it applies and the events it tells,
//! and what it counts when a ring is full.

use arc_swap::ArcSwap;
use core::net::Ipv4Addr;
use l4vs_dataplane::conn::Conn;
use l4vs_dataplane::lcore::{Lcore, LcoreConfig, PacketIo};
use l4vs_dataplane::model::{ConnState, Tuple};
use l4vs_dataplane::rings::{self, Command, ControlEnd, Event};
use l4vs_dataplane::testpkt::{self, Hdr, DIRECTOR_MAC};
use l4vs_dataplane::testpkt::{real_addr as rip, real_mac as rmac};
use l4vs_dataplane::testpkt::{CLIENT, CLIENT_MAC, DIR_SERVER_SIDE, VIP};
use l4vs_dataplane::{
    Counters, DropReason, ForwardMethod, NeighborTable, PacketBuf, Protocol, Real, SchedulerKind,
    Service, Snapshot, VecPacket, Worker, WorkerConfig,
};
use l4vs_wire::{ipv4, tcp};
use std::collections::VecDeque;
use std::sync::Arc;

/// Cycles per millisecond of the memory I/O's clock.
const CPM: u64 = 1000;

/// One port in memory: frames to receive, frames sent, frames punted; a
/// clock the test sets.
#[derive(Default)]
struct MemIo {
    rx: VecDeque<VecPacket>,
    sent: Vec<(u16, VecPacket)>,
    punted: Vec<VecPacket>,
    clock: u64,
}

impl PacketIo for MemIo {
    type Pkt = VecPacket;
    type View<'a> = &'a mut VecPacket;

    fn view(pkt: &mut VecPacket) -> &mut VecPacket {
        pkt
    }
    fn bytes(pkt: &VecPacket) -> &[u8] {
        pkt.data()
    }
    fn in_port(_: &VecPacket) -> u16 {
        0
    }
    fn ports(&self) -> u16 {
        1
    }
    fn rx_burst(&mut self, _port: u16, out: &mut [Option<VecPacket>]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(p) = self.rx.pop_front() else { break };
            out[n] = Some(p);
            n += 1;
        }
        n
    }
    fn redirected_burst(&mut self, _out: &mut [Option<VecPacket>]) -> usize {
        0
    }
    fn tx(&mut self, port: u16, pkt: VecPacket) {
        self.sent.push((port, pkt));
    }
    fn redirect(&mut self, _worker: u16, _pkt: VecPacket) {
        panic!("one worker redirects nothing");
    }
    fn punt(&mut self, pkt: VecPacket) {
        self.punted.push(pkt);
    }
    fn transmit_injected(&mut self) -> usize {
        0
    }
    fn flush(&mut self) {}
    fn cycles(&self) -> u64 {
        self.clock
    }
    fn alloc(&mut self, len: usize) -> Option<VecPacket> {
        Some(VecPacket::new(&vec![0xee; len]))
    }
}

fn service(weight: u32) -> Service {
    Service {
        name: "web".into(),
        vip: VIP,
        port: 80,
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Rr,
        reals: (0..2)
            .map(|i| Real {
                addr: rip(i),
                port: 8080,
                weight,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect(),
        options: Default::default(),
    }
}

fn snapshot(weight: u32) -> Arc<Snapshot> {
    let (ports, locals) = testpkt::lab_director();
    Arc::new(Snapshot::new(ports, locals, None, vec![service(weight)]).unwrap())
}

struct Rig {
    lcore: Lcore<MemIo>,
    control: ControlEnd,
    published: Arc<ArcSwap<Snapshot>>,
    counters: Arc<Counters>,
}

fn rig(event_slots: usize) -> Rig {
    let neigh = Arc::new(NeighborTable::new(64));
    for i in 0..2 {
        neigh.set_static(rip(i), rmac(i), 0);
    }
    rig_with(event_slots, neigh)
}

/// As [`rig`], with only the client's MAC known.
fn rig_with(event_slots: usize, neigh: Arc<NeighborTable>) -> Rig {
    let published = Arc::new(ArcSwap::new(snapshot(1)));
    neigh.set_static(CLIENT, CLIENT_MAC, 0);
    let counters = Arc::new(Counters::default());
    let worker = Worker::new(
        published.load_full(),
        neigh,
        counters.clone(),
        WorkerConfig {
            conn_capacity: 1024,
            ..WorkerConfig::default()
        },
    );
    let (control, worker_end) = rings::pair(16, event_slots);
    let lcore = Lcore::new(
        worker,
        MemIo::default(),
        published.clone(),
        Some(worker_end),
        LcoreConfig {
            cycles_per_ms: CPM,
            ..LcoreConfig::default()
        },
    );
    Rig {
        lcore,
        control,
        published,
        counters,
    }
}

/// The client's packets to the VIP.
fn client_hdr() -> Hdr {
    testpkt::client_to_vip(64)
}

fn segment(sport: u16, flags: u8) -> VecPacket {
    let h = client_hdr();
    VecPacket::new(&testpkt::tcp(&h, sport, 80, flags, &[]))
}

fn events(control: &mut ControlEnd) -> Vec<Event> {
    let mut v = Vec::new();
    control.drain_events(|e| v.push(e));
    v
}

#[test]
fn the_loop_forwards_punts_and_tells_the_control_thread() {
    let mut r = rig(64);
    let io = r.lcore.io_mut();
    io.rx.push_back(segment(1000, tcp::flags::SYN));
    io.rx.push_back(segment(1000, tcp::flags::ACK));
    // A packet for the director's own address on a port it does not
    // serve: the control thread's.
    let h = Hdr {
        src_mac: CLIENT_MAC,
        dst_mac: DIRECTOR_MAC,
        src: CLIENT,
        dst: Ipv4Addr::new(198, 18, 1, 1),
        ttl: 64,
    };
    io.rx.push_back(VecPacket::new(&testpkt::tcp(
        &h,
        999,
        22,
        tcp::flags::SYN,
        &[],
    )));
    assert_eq!(r.lcore.poll(), 3);
    let io = r.lcore.io();
    assert_eq!(io.sent.len(), 2);
    let ip = ipv4::Packet::new_checked(&io.sent[0].1.data()[14..]).unwrap();
    assert_eq!(ip.dst_addr(), rip(0), "NAT to the first real");
    assert_eq!(io.punted.len(), 1);
    assert_eq!(r.counters.to_control.get(), 1);
    // Created (SYN_RECV), then ESTABLISHED.
    let ev = events(&mut r.control);
    assert!(matches!(ev[..], [Event::Created(c), Event::StateChanged(s)]
        if c.state == ConnState::SynRecv && s.state == ConnState::Established));
}

#[test]
fn a_published_snapshot_is_picked_up_between_bursts() {
    let mut r = rig(64);
    r.lcore.poll();
    // Every real quiescent: new connections have nowhere to go.
    r.published.store(snapshot(0));
    r.lcore.poll();
    r.lcore
        .io_mut()
        .rx
        .push_back(segment(2000, tcp::flags::SYN));
    r.lcore.poll();
    assert_eq!(r.counters.drops_of(DropReason::NoRealServer), 1);
    assert!(Arc::ptr_eq(
        r.lcore.worker().snapshot(),
        &r.published.load_full()
    ));
}

#[test]
fn commands_insert_and_flush_connections() {
    let mut r = rig(64);
    // A connection synced from a peer: an ACK with no SYN seen here is
    // forwarded, to the real the entry names.
    let t = Tuple {
        proto: 6,
        src: CLIENT,
        sport: 3000,
        dst: VIP,
        dport: 80,
    };
    let mut c = Conn::new(
        &t,
        rip(1),
        8080,
        0,
        1,
        ForwardMethod::Nat,
        ConnState::Established,
        900,
    );
    c.flags = 0;
    r.control.send(Command::InsertConn(c)).unwrap();
    r.lcore.poll();
    assert_eq!(r.lcore.worker().conns().len(), 1);
    let flags_now = |r: &Rig| {
        let table = r.lcore.worker().conns();
        let (i, _) = table.lookup(&t).unwrap();
        table.get(i).flags
    };
    // Flagged as synced, with the seconds it has left on the worker's
    // clock.
    assert_ne!(flags_now(&r) & l4vs_dataplane::conn::flags::SYNCED, 0);
    let stats = r
        .lcore
        .worker()
        .snapshot()
        .service(0)
        .unwrap()
        .stats
        .clone();
    assert_eq!(
        (stats[1].active(), stats[1].inactive()),
        (1, 0),
        "counted active"
    );
    r.lcore
        .io_mut()
        .rx
        .push_back(segment(3000, tcp::flags::ACK));
    r.lcore.poll();
    let sent = &r.lcore.io().sent;
    assert_eq!(sent.len(), 1);
    let ip = ipv4::Packet::new_checked(&sent[0].1.data()[14..]).unwrap();
    assert_eq!(ip.dst_addr(), rip(1));
    // A packet of it passed here: it is this director's now.
    assert_eq!(flags_now(&r) & l4vs_dataplane::conn::flags::SYNCED, 0);

    // Flush the service: the entry goes, the real's count with it.
    r.control
        .send(Command::FlushService { service: 0 })
        .unwrap();
    r.lcore.poll();
    // Housekeeping runs the flush; advance the clock past its interval.
    r.lcore.io_mut().clock += 200 * CPM;
    r.lcore.poll();
    assert_eq!(r.lcore.worker().conns().len(), 0);
    assert_eq!((stats[1].active(), stats[1].inactive()), (0, 0));
    let ev = events(&mut r.control);
    assert!(
        matches!(ev.last(), Some(Event::Ended(g)) if g.rip == rip(1)),
        "{ev:?}"
    );
    assert_eq!(r.counters.commands_applied.get(), 2);
}

#[test]
fn a_full_event_ring_drops_and_counts_never_blocks() {
    let mut r = rig(2);
    for k in 0..5 {
        r.lcore
            .io_mut()
            .rx
            .push_back(segment(4000 + k, tcp::flags::SYN));
    }
    r.lcore.poll();
    assert_eq!(r.lcore.io().sent.len(), 5, "every packet forwarded");
    assert_eq!(events(&mut r.control).len(), 2);
    assert_eq!(r.counters.events_dropped.get(), 3);
}

#[test]
fn a_full_command_ring_refuses_the_command() {
    let mut r = rig(4);
    let cmd = Command::FlushService { service: 0 };
    for _ in 0..16 {
        r.control.send(cmd).unwrap();
    }
    assert_eq!(r.control.send(cmd), Err(cmd));
}

#[test]
fn traffic_is_counted_per_service_and_real_as_ipvs_does() {
    let mut r = rig(64);
    r.lcore
        .io_mut()
        .rx
        .push_back(segment(5000, tcp::flags::SYN));
    r.lcore
        .io_mut()
        .rx
        .push_back(segment(5000, tcp::flags::ACK));
    // The real server's reply, back through the director.
    let h = testpkt::real_to_client(0, 64);
    r.lcore.io_mut().rx.push_back(VecPacket::new(&testpkt::tcp(
        &h,
        8080,
        5000,
        tcp::flags::ACK,
        &[0; 10],
    )));
    r.lcore.poll();
    assert_eq!(r.lcore.io().sent.len(), 3);
    let snap = r.lcore.worker().snapshot().clone();
    let t = &snap.service(0).unwrap().traffic;
    let expect = l4vs_dataplane::traffic::Totals {
        conns: 1,
        inpkts: 2,
        inbytes: 2 * 40,
        outpkts: 1,
        outbytes: 50,
    };
    assert_eq!(t.service_totals(), expect);
    assert_eq!(t.real_totals(0), expect);
    assert_eq!(t.real_totals(1), Default::default());
}

/// New NAT connections' reply keys are indexed at the end of their burst
/// (deferred, so that a burst's new connections wait for those cache
/// misses together): the real's replies find the connection in the next
/// round, and in the same one (as above) too.
#[test]
fn a_reply_in_the_next_round_finds_its_new_connection() {
    let mut r = rig(64);
    for sport in [6000, 6001, 6002] {
        r.lcore
            .io_mut()
            .rx
            .push_back(segment(sport, tcp::flags::SYN));
    }
    assert_eq!(r.lcore.poll(), 3);
    let h = testpkt::real_to_client(0, 64);
    let reply = |sport| VecPacket::new(&testpkt::tcp(&h, 8080, sport, tcp::flags::ACK, &[]));
    // rr over the two reals: the first and third connections are rs1's.
    for sport in [6000, 6002] {
        r.lcore.io_mut().rx.push_back(reply(sport));
    }
    assert_eq!(r.lcore.poll(), 2);
    let io = r.lcore.io();
    assert_eq!(io.sent.len(), 5, "three SYNs, two replies");
    for (_, p) in &io.sent[3..] {
        let ip = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT));
    }
    assert_eq!(r.counters.conns_created.get(), 3);
}

/// The first packets to a next hop that is not resolved are held, not
/// lost (the kernel's neighbour queue): the loop sends one ARP request in
/// a packet of its own, then the held packets in order once the reply is
/// learned; a packet whose next hop never answers is dropped after
/// NEIGHBOR_QUEUE_TIMEOUT_MS; a next hop holds at most
/// HOLD_QUEUE_PER_KEY packets, the oldest giving way.
#[test]
fn packets_wait_for_their_next_hop_and_leave_when_it_answers() {
    use l4vs_dataplane::lcore::{HOLD_QUEUE_PER_KEY, NEIGHBOR_QUEUE_TIMEOUT_MS};
    use l4vs_wire::arp;
    let neigh = Arc::new(NeighborTable::new(64));
    let mut r = rig_with(64, neigh.clone());
    let io = r.lcore.io_mut();
    io.rx.push_back(segment(1000, tcp::flags::SYN));
    io.rx.push_back(segment(1000, tcp::flags::ACK));
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 2);
    let sent: Vec<_> = r.lcore.io_mut().sent.drain(..).collect();
    assert_eq!(sent.len(), 1, "one ARP request, not one per packet");
    let req = arp::Packet::new_checked(&sent[0].1.data()[14..]).unwrap();
    assert_eq!(req.target_proto_addr(), rip(0));
    assert_eq!(sent[0].1.data().len(), 60);
    assert_eq!(r.counters.arp_requests.get(), 1);
    // Nothing changes while the next hop is silent; after the retry
    // interval (1 s) the held packets ask again, once.
    r.lcore.io_mut().clock += 999 * CPM;
    r.lcore.poll();
    assert_eq!((r.lcore.held(), r.lcore.io().sent.len()), (2, 0));
    r.lcore.io_mut().clock += 2 * CPM;
    r.lcore.poll();
    r.lcore.poll();
    let again: Vec<_> = r.lcore.io_mut().sent.drain(..).collect();
    assert_eq!(again.len(), 1, "a second ARP request");
    assert_eq!(r.counters.arp_requests.get(), 2);
    // The reply arrives: both leave, in order, addressed to the real.
    r.lcore.io_mut().rx.push_back(VecPacket::new(&testpkt::arp(
        arp::Operation::Reply,
        rmac(0),
        rip(0),
        DIRECTOR_MAC,
        DIR_SERVER_SIDE,
        DIRECTOR_MAC,
    )));
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 0);
    let sent: Vec<_> = r.lcore.io_mut().sent.drain(..).collect();
    assert_eq!(sent.len(), 2);
    for (i, (port, p)) in sent.iter().enumerate() {
        assert_eq!(*port, 0);
        assert_eq!(&p.data()[..6], &rmac(0).0);
        let ip = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
        assert_eq!(ip.dst_addr(), rip(0));
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        let want = if i == 0 {
            tcp::flags::SYN
        } else {
            tcp::flags::ACK
        };
        assert_eq!(
            t.flags() & (tcp::flags::SYN | tcp::flags::ACK),
            want,
            "in order"
        );
    }
    assert_eq!(r.counters.neighbor_released.get(), 2);

    // rip(1) never answers: its packets go after the timeout, counted.
    let io = r.lcore.io_mut();
    io.rx.push_back(segment(1001, tcp::flags::SYN));
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 1);
    r.lcore.io_mut().clock += (NEIGHBOR_QUEUE_TIMEOUT_MS - 1) * CPM;
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 1);
    r.lcore.io_mut().clock += CPM;
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 0);
    assert_eq!(r.counters.drops_of(DropReason::NeighborUnresolved), 1);

    // A burst for one silent next hop: at most HOLD_QUEUE_PER_KEY
    // held, the oldest dropped for the newest.
    let extra = 10;
    for k in 0..(HOLD_QUEUE_PER_KEY + extra) as u16 {
        // Every other new connection goes to rip(1) (rr over two reals
        // whose first is resolved now).
        r.lcore
            .io_mut()
            .rx
            .push_back(segment(2000 + k, tcp::flags::SYN));
    }
    while !r.lcore.io().rx.is_empty() {
        r.lcore.poll();
    }
    let to_rip1 = (HOLD_QUEUE_PER_KEY + extra) / 2;
    assert_eq!(r.lcore.held(), to_rip1.min(HOLD_QUEUE_PER_KEY));
    assert_eq!(
        r.counters.drops_of(DropReason::HoldQueueFull),
        to_rip1.saturating_sub(HOLD_QUEUE_PER_KEY) as u64
    );
}

/// A packet larger than the port's MTU (1500) without DF leaves in
/// fragments, in order, each within the MTU, that put back together give
/// the rewritten packet; the counters say so.
#[test]
fn packets_over_the_mtu_leave_in_fragments() {
    let mut r = rig(64);
    let h = client_hdr();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut frame = testpkt::tcp(&h, 1000, 80, tcp::flags::SYN, &payload);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
        ip.set_unfragmented(false);
        ip.fill_checksum();
    }
    r.lcore.io_mut().rx.push_back(VecPacket::new(&frame));
    r.lcore.poll();
    let sent: Vec<_> = r.lcore.io_mut().sent.drain(..).collect();
    assert_eq!(sent.len(), 3, "3020 bytes of IP: 1480 + 1480 + 40");
    let mut whole = Vec::new();
    for (k, (port, p)) in sent.iter().enumerate() {
        assert_eq!(*port, 0);
        let ip = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(ip.total_len() <= 1500);
        assert_eq!(ip.dst_addr(), rip(0), "rewritten before it was cut");
        assert_eq!(
            usize::from(ip.frag_offset()),
            whole.len(),
            "piece {k} in order"
        );
        assert_eq!(ip.more_frags(), k < 2);
        whole.extend_from_slice(ip.payload());
    }
    assert_eq!(whole.len(), 3020);
    let t = tcp::Packet::new_checked(&whole[..]).unwrap();
    assert_eq!(t.dst_port(), 8080);
    assert!(t.verify_checksum(CLIENT, rip(0)), "the L4 checksum holds");
    assert_eq!(&whole[20..], &payload[..]);
    assert_eq!(r.counters.fragmented.get(), 1);
    assert_eq!(r.counters.fragments_sent.get(), 3);

    // At the boundary: 1500 bytes of IP leave whole, 1501 to 1504 in two.
    for (extra, pieces) in [(0usize, 1usize), (1, 2), (2, 2), (3, 2), (4, 2)] {
        let mut f = testpkt::tcp(
            &h,
            2000 + extra as u16,
            80,
            tcp::flags::SYN,
            &vec![1u8; 1460 + extra],
        );
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
            ip.set_unfragmented(false);
            ip.fill_checksum();
        }
        r.lcore.io_mut().rx.push_back(VecPacket::new(&f));
        r.lcore.poll();
        let sent: Vec<_> = r.lcore.io_mut().sent.drain(..).collect();
        assert_eq!(sent.len(), pieces, "{} bytes of IP", 1500 + extra);
        for (_, p) in &sent {
            assert!(p.data().len() <= 1514);
        }
    }
}

/// A TCP segment of `len` payload bytes from the client, DF clear, cut
/// into 1500-MTU fragments (frag.rs).
fn fragmented_segment(sport: u16, len: usize) -> Vec<VecPacket> {
    let h = client_hdr();
    let mut frame = testpkt::tcp(&h, sport, 80, tcp::flags::SYN, &vec![7u8; len]);
    ipv4::Packet::new_unchecked(&mut frame[14..]).set_ident(sport);
    testpkt::fragments(&frame, 1500)
        .iter()
        .map(|f| VecPacket::new(f))
        .collect()
}

/// Out of order: the later fragment is held until its first has been
/// seen, then leaves right after it, in the same round; a later fragment
/// whose first never comes is dropped after FRAGMENT_HOLD_MS, counted; a
/// flood of them fills the hold queue and no more (hold_queue_full).
#[test]
fn later_fragments_wait_for_their_first() {
    use l4vs_dataplane::lcore::{FRAGMENT_HOLD_MS, HOLD_QUEUE_FRAGMENTS, HOLD_QUEUE_SLOTS};
    let mut r = rig(64);
    let pieces = fragmented_segment(1000, 2000);
    assert_eq!(pieces.len(), 2);
    r.lcore.io_mut().rx.push_back(pieces[1].clone());
    r.lcore.poll();
    assert_eq!((r.lcore.held(), r.lcore.io().sent.len()), (1, 0));
    r.lcore.io_mut().rx.push_back(pieces[0].clone());
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 0);
    let sent: Vec<_> = r.lcore.io_mut().sent.drain(..).collect();
    assert_eq!(sent.len(), 2);
    for (_, p) in &sent {
        let ip = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
        assert_eq!(ip.dst_addr(), rip(0), "both NATed to the same real");
    }
    assert_eq!(r.counters.rx.get(), 2, "a held packet counts in once");

    // A lone later fragment times out.
    let lone = fragmented_segment(2000, 2000);
    r.lcore.io_mut().rx.push_back(lone[1].clone());
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 1);
    r.lcore.io_mut().clock += FRAGMENT_HOLD_MS * CPM;
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 0);
    assert_eq!(r.counters.drops_of(DropReason::FragmentTimeout), 1);

    // A flood of later fragments that never complete: bounded, to half the
    // queue, so packets waiting for ARP still find room.
    let n = HOLD_QUEUE_SLOTS + 100;
    for k in 0..n {
        let p = fragmented_segment(3000 + k as u16, 1600);
        r.lcore.io_mut().rx.push_back(p[1].clone());
    }
    while !r.lcore.io().rx.is_empty() {
        r.lcore.poll();
    }
    assert_eq!(r.lcore.held(), HOLD_QUEUE_FRAGMENTS);
    assert_eq!(
        r.counters.drops_of(DropReason::HoldQueueFull),
        (n - HOLD_QUEUE_FRAGMENTS) as u64
    );
    r.lcore.io_mut().clock += FRAGMENT_HOLD_MS * CPM;
    r.lcore.poll();
    assert_eq!(r.lcore.held(), 0);
    assert_eq!(
        r.counters.drops_of(DropReason::FragmentTimeout),
        1 + HOLD_QUEUE_FRAGMENTS as u64
    );
}

/// A frame over the MTU that may not be fragmented (DF) and reaches the
/// transmit path — an echo reply answered in place — is dropped and
/// counted (`frag_failed`), never sent over the MTU.
#[test]
fn a_df_frame_over_the_mtu_is_never_sent() {
    let mut r = rig(64);
    let h = client_hdr();
    r.lcore
        .io_mut()
        .rx
        .push_back(VecPacket::new(&testpkt::icmp_echo(&h, 1, 1, &[0; 1600])));
    r.lcore.poll();
    assert_eq!(r.lcore.io().sent.len(), 0);
    assert_eq!(r.counters.drops_of(DropReason::FragFailed), 1);
}

/// `ListConns` sends a copy of every entry with the seconds it has left,
/// then `ListDone`, paced by the event ring: a ring far smaller than the
/// table still carries every entry, over several rounds, and none is
/// dropped; the traffic keeps a quarter of the ring.
#[test]
fn a_listing_sends_every_entry_paced_by_the_event_ring() {
    let mut r = rig(16);
    for sport in 3000..3050u16 {
        let t = Tuple {
            proto: 6,
            src: CLIENT,
            sport,
            dst: VIP,
            dport: 80,
        };
        let c = Conn::new(
            &t,
            rip(1),
            80,
            0,
            1,
            ForwardMethod::Nat,
            ConnState::Established,
            900,
        );
        r.control.send(Command::InsertConn(c)).unwrap();
        if sport % 10 == 9 {
            r.lcore.poll();
        }
    }
    assert_eq!(r.lcore.worker().conns().len(), 50);
    let _ = events(&mut r.control);
    let dropped_before = r.counters.events_dropped.get();
    r.control.send(Command::ListConns).unwrap();
    let mut listed = Vec::new();
    let mut rounds = 0;
    let mut done = false;
    while !done {
        r.lcore.poll();
        rounds += 1;
        assert!(
            rounds < 100,
            "the listing never ended: {} listed",
            listed.len()
        );
        let ev = events(&mut r.control);
        // 16 slots, 4 kept for the traffic and 1 for ListDone: at most 11
        // entries a round.
        assert!(ev.len() <= 12, "{} events in one round", ev.len());
        for e in ev {
            match e {
                Event::Listed(c) => listed.push(c),
                Event::ListDone => done = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(rounds >= 5, "50 entries in {rounds} rounds of at most 11");
    assert_eq!(r.counters.events_dropped.get(), dropped_before);
    listed.sort_by_key(|c| c.cport);
    let ports: Vec<u16> = listed.iter().map(|c| c.cport).collect();
    assert_eq!(ports, (3000..3050).collect::<Vec<_>>());
    // Inserted with 900 s to live on the worker's clock, which has not
    // moved: 900 s left each.
    assert!(listed.iter().all(|c| c.expires == 900 && c.rip == rip(1)));
    // Nothing more once done.
    r.lcore.poll();
    assert!(events(&mut r.control).is_empty());
}
