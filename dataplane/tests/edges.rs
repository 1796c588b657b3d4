//! Golden-packet tests of IPVS's behaviour at the edges (issue 8): TTL,
//! ICMP errors the director sends and their rate limit, removed reals,
//! expiry after a state change. Each expected value is worked out from the
//! kernel source the test names, not read back from l4vs.

use core::net::Ipv4Addr;
use l4vs_dataplane::conn::Timeouts;
use l4vs_dataplane::testpkt::{self, Hdr};
use l4vs_dataplane::testpkt::{real_addr as rip, real_mac as rmac};
use l4vs_dataplane::testpkt::{CLIENT, CLIENT_MAC, DIR_SERVER_SIDE, VIP};
use l4vs_dataplane::{
    Counters, DropReason, ForwardMethod, NeighborTable, PacketBuf, Protocol, Real, SchedulerKind,
    Service, ServiceOptions, Snapshot, VecPacket, Verdict, Worker, WorkerConfig,
};
use l4vs_wire::ethernet::Address as Mac;
use l4vs_wire::{icmp, ipv4, tcp, udp};
use std::sync::Arc;

const SYN: u8 = tcp::flags::SYN;
const ACK: u8 = tcp::flags::ACK;
const RST: u8 = tcp::flags::RST;

struct Rig {
    w: Worker,
    counters: Arc<Counters>,
}

/// One worker with a TCP service on VIP:80 and a UDP one on VIP:53, both
/// with `weights.len()` reals of `method`, `opts`, and every neighbour
/// known.
fn rig(method: ForwardMethod, weights: &[u32], opts: ServiceOptions, cfg: WorkerConfig) -> Rig {
    let reals = |port| {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Real {
                addr: rip(i),
                port,
                weight: *w,
                method,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect::<Vec<_>>()
    };
    let svc = |port, protocol| Service {
        name: format!("{protocol}-{port}"),
        vip: VIP,
        port,
        protocol,
        scheduler: SchedulerKind::Rr,
        reals: reals(port),
        options: opts,
    };
    let (ports, locals) = testpkt::lab_director();
    let snap = Snapshot::new(
        ports,
        locals,
        None,
        vec![svc(80, Protocol::Tcp), svc(53, Protocol::Udp)],
    )
    .unwrap();
    let neigh = Arc::new(NeighborTable::new(64));
    for i in 0..weights.len() {
        neigh.learn(rip(i), rmac(i), 0);
    }
    neigh.learn(CLIENT, CLIENT_MAC, 0);
    let counters = Arc::new(Counters::default());
    let w = Worker::new(
        Arc::new(snap),
        neigh,
        counters.clone(),
        WorkerConfig {
            conn_capacity: 1024,
            ..cfg
        },
    );
    Rig { w, counters }
}

/// A packet from real `i` back to the client (a NAT reply).
fn from_real(i: usize, ttl: u8) -> Hdr {
    testpkt::real_to_client(i, ttl)
}

fn client(ttl: u8) -> Hdr {
    testpkt::client_to_vip(ttl)
}

fn run(r: &mut Rig, frame: &[u8], now_ms: u64) -> (Verdict, VecPacket) {
    let mut p = VecPacket::new(frame);
    let v = r.w.process(0, &mut p, now_ms);
    (v, p)
}

fn ip_of(p: &VecPacket) -> ipv4::Packet<&[u8]> {
    ipv4::Packet::new_checked(&p.data()[14..]).unwrap()
}

/// Checks that `p` is an ICMP error `msg`/`code` from `from` to `to`,
/// quoting `quoted` (RFC 792; icmp_send quotes up to 576 bytes in all).
fn assert_icmp_error(
    p: &VecPacket,
    (msg, code): (icmp::Message, u8),
    from: Ipv4Addr,
    to: Ipv4Addr,
    quoted: &[u8],
) {
    let ip = ip_of(p);
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.ttl()),
        (from, to, ipv4::Protocol::Icmp, 64)
    );
    assert!(ip.verify_checksum());
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (msg, code));
    assert!(m.verify_checksum());
    assert_eq!(m.data(), quoted);
    assert_eq!(usize::from(ip.total_len()), 28 + quoted.len());
    assert_eq!(p.data().len(), 14 + 28 + quoted.len(), "nothing after it");
}

/// decrement_ttl (ip_vs_xmit.c): every method forwards TTL - 1 with a
/// header checksum as if computed afresh; NAT replies too (ip_forward).
#[test]
fn every_method_decrements_the_ttl() {
    for method in [
        ForwardMethod::Nat,
        ForwardMethod::DirectRouting,
        ForwardMethod::Tunnel,
    ] {
        let mut r = rig(method, &[1], ServiceOptions::default(), Default::default());
        let (v, p) = run(&mut r, &testpkt::tcp(&client(64), 40000, 80, SYN, b""), 0);
        assert_eq!(v, Verdict::Forward { port: 0 }, "{method}");
        let ip = ip_of(&p);
        assert!(ip.verify_checksum(), "{method}");
        let inner = match method {
            ForwardMethod::Tunnel => {
                assert_eq!(ip.ttl(), 63, "outer TTL copies the decremented inner");
                ipv4::Packet::new_checked(ip.payload()).unwrap()
            }
            _ => ip,
        };
        assert_eq!(inner.ttl(), 63, "{method}");
        assert!(inner.verify_checksum(), "{method}");
        assert!(
            tcp::Packet::new_checked(inner.payload())
                .unwrap()
                .verify_checksum(inner.src_addr(), inner.dst_addr()),
            "{method}: the TTL is not in the pseudo-header"
        );
    }
    // A NAT reply leaves with TTL - 1 too.
    let mut r = rig(
        ForwardMethod::Nat,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    run(&mut r, &testpkt::tcp(&client(64), 40000, 80, SYN, b""), 0);
    let reply = testpkt::real_to_client(0, 2);
    let (v, p) = run(&mut r, &testpkt::tcp(&reply, 80, 40000, SYN | ACK, b""), 0);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!((ip_of(&p).src_addr(), ip_of(&p).ttl()), (VIP, 1));
    assert!(ip_of(&p).verify_checksum());
}

/// A packet that would leave with TTL 0 is dropped and answered with ICMP
/// time exceeded (type 11, code 0): a client's packet from the VIP it was
/// sent to, a real server's reply from the director's address on the way
/// back (icmp_send picks the outgoing address for a forwarded packet).
/// The quote is the packet as it arrived.
#[test]
fn ttl_1_is_answered_with_time_exceeded_in_every_mode() {
    for method in [
        ForwardMethod::Nat,
        ForwardMethod::DirectRouting,
        ForwardMethod::Tunnel,
    ] {
        let mut r = rig(method, &[1], ServiceOptions::default(), Default::default());
        for ttl in [1, 0] {
            let frame = testpkt::udp(&client(ttl), 5000 + u16::from(ttl), 53, b"query", true);
            let (v, p) = run(&mut r, &frame, 0);
            assert_eq!(v, Verdict::Forward { port: 0 }, "{method} ttl {ttl}");
            assert_eq!(p.data()[..6], CLIENT_MAC.0, "{method}: back to the client");
            assert_icmp_error(
                &p,
                (icmp::Message::TimeExceeded, icmp::CODE_TTL_EXCEEDED),
                VIP,
                CLIENT,
                &frame[14..],
            );
        }
        assert_eq!(r.counters.drops_of(DropReason::IpTtlExpired), 2);
        assert_eq!(r.counters.icmp_time_exceeded_sent.get(), 2);
    }
    let mut r = rig(
        ForwardMethod::Nat,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    run(&mut r, &testpkt::tcp(&client(64), 40000, 80, SYN, b""), 0);
    let reply = testpkt::tcp(&testpkt::real_to_client(0, 1), 80, 40000, SYN | ACK, b"");
    let (v, p) = run(&mut r, &reply, 0);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(p.data()[..6], rmac(0).0, "back to the real server");
    assert_icmp_error(
        &p,
        (icmp::Message::TimeExceeded, icmp::CODE_TTL_EXCEEDED),
        DIR_SERVER_SIDE,
        rip(0),
        &reply[14..],
    );
}

/// The quote stops where 576 bytes do (icmp_send), and Ethernet padding
/// after a short packet is not quoted.
#[test]
fn icmp_errors_quote_at_most_576_bytes_and_no_padding() {
    let mut r = rig(
        ForwardMethod::DirectRouting,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    let big = testpkt::udp(&client(1), 5000, 53, &[7u8; 1000], true);
    let (_, p) = run(&mut r, &big, 0);
    assert_icmp_error(
        &p,
        (icmp::Message::TimeExceeded, 0),
        VIP,
        CLIENT,
        &big[14..14 + 548],
    );
    let mut short = testpkt::udp(&client(1), 5001, 53, b"q", true);
    let ip_len = short.len() - 14;
    short.resize(60, 0xee); // padded to the Ethernet minimum
    let (_, p) = run(&mut r, &short, 0);
    assert_icmp_error(
        &p,
        (icmp::Message::TimeExceeded, 0),
        VIP,
        CLIENT,
        &short[14..14 + ip_len],
    );
}

/// icmp_global_allow: a burst of `icmp_msgs_burst`, then
/// `icmp_msgs_per_sec` a second; what is held back is counted, and the
/// packet's own drop reason is counted every time. Each source here is a
/// different host, so only the global limit applies.
#[test]
fn icmp_errors_are_rate_limited_and_counted() {
    let mut r = rig(
        ForwardMethod::DirectRouting,
        &[1],
        ServiceOptions::default(),
        WorkerConfig {
            icmp_msgs_per_sec: 100,
            icmp_msgs_burst: 5,
            ..Default::default()
        },
    );
    let from = |k: u16| Hdr {
        src: Ipv4Addr::new(198, 18, 1, 100 + k as u8),
        ..client(1)
    };
    let mut sent = 0;
    for k in 0..20u16 {
        let (v, _) = run(&mut r, &testpkt::udp(&from(k), 6000, 53, b"q", true), 0);
        match v {
            // Answered (the new hosts' MACs are not known yet: held for ARP).
            Verdict::Forward { .. } | Verdict::AwaitNeighbor { .. } => sent += 1,
            Verdict::Drop(DropReason::IpTtlExpired) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, 5, "the burst");
    assert_eq!(r.counters.icmp_rate_limited.get(), 15);
    assert_eq!(r.counters.drops_of(DropReason::IpTtlExpired), 20);
    // 100 ms later: 10 more tokens (100 a second), never past the burst.
    let mut later = 0;
    for k in 20..40u16 {
        let (v, _) = run(&mut r, &testpkt::udp(&from(k), 7000, 53, b"q", true), 100);
        later += u32::from(matches!(
            v,
            Verdict::Forward { .. } | Verdict::AwaitNeighbor { .. }
        ));
    }
    assert_eq!(later, 5);
    assert_eq!(r.counters.icmp_time_exceeded_sent.get(), 10);
}

/// icmpv4_xrlim_allow: one destination gets a burst of 6 errors, then one
/// a second (icmp_ratelimit), however many others may still get theirs;
/// fragmentation needed is never limited (icmpv4_mask_allow: PMTU
/// discovery must not be).
#[test]
fn one_host_gets_six_errors_then_one_a_second_but_every_frag_needed() {
    let mut r = rig(
        ForwardMethod::DirectRouting,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    let answered = |r: &mut Rig, n: u16, at: u64| {
        (0..n)
            .filter(|k| {
                let f = testpkt::udp(&client(1), 8000 + k, 53, b"q", true);
                matches!(run(r, &f, at).0, Verdict::Forward { .. })
            })
            .count()
    };
    assert_eq!(answered(&mut r, 20, 0), 6);
    assert_eq!(answered(&mut r, 20, 999), 0);
    assert_eq!(answered(&mut r, 20, 1999), 1);
    assert_eq!(answered(&mut r, 20, 5999), 4);
    // Another host is not held back by the first.
    let other = Hdr {
        src: Ipv4Addr::new(198, 18, 1, 77),
        ..client(1)
    };
    let (v, p) = run(&mut r, &testpkt::udp(&other, 1, 53, b"q", true), 5999);
    assert!(
        matches!(v, Verdict::AwaitNeighbor { .. }),
        "answered: {v:?}"
    );
    assert_eq!(ip_of(&p).protocol(), ipv4::Protocol::Icmp);
    // Fragmentation needed: every one answered.
    let big = testpkt::udp(&client(64), 9000, 53, &[0; 1600], true);
    let frag_needed = (0..50)
        .filter(|_| matches!(run(&mut r, &big, 6000).0, Verdict::Forward { .. }))
        .count();
    assert_eq!(frag_needed, 50);
    assert_eq!(r.counters.icmp_frag_needed_sent.get(), 50);
}

/// ip_vs_leave: a new connection that no real can take gets ICMP port
/// unreachable (type 3, code 3) from the VIP, for TCP and UDP; an ACK
/// without a connection is not scheduled and stays a silent drop.
#[test]
fn no_available_real_is_answered_with_port_unreachable() {
    for weights in [&[0u32, 0][..], &[][..]] {
        let mut r = rig(
            ForwardMethod::Nat,
            weights,
            ServiceOptions::default(),
            Default::default(),
        );
        let syn = testpkt::tcp(&client(64), 40000, 80, SYN, b"");
        let dgram = testpkt::udp(&client(64), 5000, 53, b"query", true);
        for frame in [&syn, &dgram] {
            let (v, p) = run(&mut r, frame, 0);
            assert_eq!(v, Verdict::Forward { port: 0 }, "weights {weights:?}");
            assert_eq!(p.data()[..6], CLIENT_MAC.0);
            assert_icmp_error(
                &p,
                (icmp::Message::DstUnreachable, icmp::CODE_PORT_UNREACHABLE),
                VIP,
                CLIENT,
                &frame[14..],
            );
        }
        assert_eq!(r.counters.drops_of(DropReason::NoRealServer), 2);
        assert_eq!(r.counters.icmp_port_unreachable_sent.get(), 2);
        assert_eq!(r.w.conns().len(), 0);
        let (v, _) = run(&mut r, &testpkt::tcp(&client(64), 40001, 80, ACK, b""), 0);
        assert_eq!(v, Verdict::Drop(DropReason::TcpNotSyn));
    }
}

/// set_tcp_state then __ip_vs_conn_put_timer: a connection whose timeout
/// got shorter expires at the new time. With tcp_close 2 s, a connection
/// reset at 9.8 s is gone by 11.8 s (the worker's clock counts whole
/// seconds, so at 11 s to 12 s), not 900 s later.
#[test]
fn a_reset_connection_expires_at_its_close_timeout() {
    let opts = ServiceOptions {
        timeouts: Timeouts {
            tcp_syn_recv: 600,
            tcp_close: 2,
            ..Timeouts::default()
        },
        ..Default::default()
    };
    let mut r = rig(ForwardMethod::Nat, &[1], opts, Default::default());
    run(&mut r, &testpkt::tcp(&client(64), 40000, 80, SYN, b""), 0);
    r.w.housekeeping(9_000);
    assert_eq!(r.w.conns().len(), 1);
    // The real's SYN-ACK and the client's ACK (ESTABLISHED, 900 s), then
    // the client's RST: CLOSE, 2 s.
    let reply = testpkt::real_to_client(0, 64);
    run(
        &mut r,
        &testpkt::tcp(&reply, 80, 40000, SYN | ACK, b""),
        9_500,
    );
    run(
        &mut r,
        &testpkt::tcp(&client(64), 40000, 80, ACK, b""),
        9_600,
    );
    run(
        &mut r,
        &testpkt::tcp(&client(64), 40000, 80, RST, b""),
        9_800,
    );
    r.w.housekeeping(10_900);
    assert_eq!(r.w.conns().len(), 1, "CLOSE for 2 s on a one-second clock");
    r.w.housekeeping(12_000);
    assert_eq!(r.w.conns().len(), 0, "gone at its close timeout");
    assert_eq!(r.counters.conns_expired.get(), 1);
    // The real no longer counts it (lc/wlc see the right numbers).
    let snap = r.w.snapshot().clone();
    let svc = snap.services().next().unwrap().1;
    assert_eq!((svc.stats[0].active(), svc.stats[0].inactive()), (0, 0));
}

/// The same for a UDP datagram answered with ICMP: nothing else changes a
/// UDP entry's time, so a UDP entry expires at its udp timeout.
#[test]
fn udp_entries_expire_at_their_timeout() {
    let opts = ServiceOptions {
        timeouts: Timeouts {
            udp: 3,
            ..Timeouts::default()
        },
        ..Default::default()
    };
    let mut r = rig(ForwardMethod::DirectRouting, &[1], opts, Default::default());
    let (v, p) = run(
        &mut r,
        &testpkt::udp(&client(64), 5000, 53, b"q", true),
        1_000,
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert!(udp::Packet::new_checked(ip_of(&p).payload()).is_ok());
    r.w.housekeeping(3_000);
    assert_eq!(r.w.conns().len(), 1);
    r.w.housekeeping(4_000);
    assert_eq!(r.w.conns().len(), 0);
}

/// One-packet scheduling (ipvsadm -o): six datagrams from one source port
/// go round the three reals (rr) and leave no entry; each is counted as a
/// connection and a packet on its real, as ip_vs_conn_new counts it.
#[test]
fn ops_schedules_every_datagram_and_keeps_no_entry() {
    for method in [ForwardMethod::DirectRouting, ForwardMethod::Tunnel] {
        let opts = ServiceOptions {
            ops: true,
            ..Default::default()
        };
        let mut r = rig(method, &[1, 1, 1], opts, Default::default());
        let mut went = vec![];
        for _ in 0..6 {
            let (v, p) = run(&mut r, &testpkt::udp(&client(64), 5000, 53, b"q", true), 0);
            assert_eq!(v, Verdict::Forward { port: 0 }, "{method}");
            went.push(Mac(p.data()[..6].try_into().unwrap()));
        }
        assert_eq!(
            went,
            [rmac(0), rmac(1), rmac(2), rmac(0), rmac(1), rmac(2)],
            "{method}"
        );
        assert_eq!(r.w.conns().len(), 0);
        assert_eq!(r.counters.ops_scheduled.get(), 6);
        assert_eq!(r.counters.conns_created.get(), 0, "no entry created");
        let snap = r.w.snapshot().clone();
        let (_, udp_svc) = snap.services().nth(1).unwrap();
        let totals = udp_svc.traffic.service_totals();
        assert_eq!((totals.conns, totals.inpkts), (6, 6));
        // A TCP service of the same options is not affected: its flows
        // keep their real (ops is for UDP only, as ip_vs_schedule has it).
        let (_, p1) = run(&mut r, &testpkt::tcp(&client(64), 40000, 80, SYN, b""), 0);
        let (_, p2) = run(&mut r, &testpkt::tcp(&client(64), 40000, 80, ACK, b""), 0);
        assert_eq!(p1.data()[..6], p2.data()[..6]);
        assert_eq!(r.w.conns().len(), 1);
    }
}

/// `frame` with DF cleared (checksum redone).
fn without_df(mut frame: Vec<u8>) -> Vec<u8> {
    let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
    ip.set_unfragmented(false);
    ip.fill_checksum();
    frame
}

/// ensure_mtu_is_adequate for NAT and DR: a packet larger than the egress
/// MTU (1500) with DF set is dropped and its sender told, quoting it as it
/// would have left before any rewrite (TTL already decremented, as
/// __ip_vs_get_out_rt checks the MTU after decrement_ttl): from the VIP to
/// a client, from the director's address to a real server (a NAT reply).
/// Without DF it goes on whole, for the lcore loop to fragment.
#[test]
fn packets_over_the_mtu_get_frag_needed_with_df_and_go_on_without() {
    for method in [ForwardMethod::Nat, ForwardMethod::DirectRouting] {
        let mut r = rig(method, &[1], ServiceOptions::default(), Default::default());
        let big = testpkt::udp(&client(64), 5000, 53, &[5u8; 1600 - 28], true);
        let (v, p) = run(&mut r, &big, 0);
        assert_eq!(v, Verdict::Forward { port: 0 }, "{method}");
        let mut quoted = big[14..14 + 548].to_vec();
        {
            let mut q = ipv4::Packet::new_unchecked(&mut quoted[..20]);
            q.set_ttl(63);
            q.fill_checksum();
        }
        assert_icmp_error(
            &p,
            (icmp::Message::DstUnreachable, icmp::CODE_FRAG_NEEDED),
            VIP,
            CLIENT,
            &quoted,
        );
        let ip = ip_of(&p);
        let m = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(m.next_hop_mtu(), 1500, "{method}");
        assert_eq!(r.counters.drops_of(DropReason::FragNeeded), 1);
        assert_eq!(r.counters.icmp_frag_needed_sent.get(), 1);
        // The same datagram without DF leaves whole (1600 bytes of IP),
        // rewritten, for the lcore loop to cut.
        let (v, p) = run(&mut r, &without_df(big.clone()), 0);
        assert_eq!(v, Verdict::Forward { port: 0 }, "{method}");
        assert_eq!(ip_of(&p).total_len(), 1600);
    }
    // A NAT reply over the MTU with DF: the real server is told, by the
    // director's own address on its side.
    let mut r = rig(
        ForwardMethod::Nat,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    run(&mut r, &testpkt::udp(&client(64), 5000, 53, b"q", true), 0);
    let reply = testpkt::udp(&from_real(0, 64), 53, 5000, &[6u8; 1700], true);
    let (_, p) = run(&mut r, &reply, 0);
    let ip = ip_of(&p);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (DIR_SERVER_SIDE, rip(0)));
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (m.msg_type(), m.code(), m.next_hop_mtu()),
        (icmp::Message::DstUnreachable, icmp::CODE_FRAG_NEEDED, 1500)
    );
    // ip_forward checks the MTU before it decrements: the quote has the
    // TTL the real sent, and its checksum holds.
    let quoted = ipv4::Packet::new_unchecked(&m.data()[..20]);
    assert_eq!(quoted.ttl(), 64);
    assert!(quoted.verify_checksum());
}

/// `frame` cut into the fragments a 1500-MTU link carries (testpkt, which
/// uses l4vs's own fragmenter, tested against the kernel's sizes in
/// frag.rs): a 2900-byte UDP datagram gives 1480 + 1428 payload bytes.
fn fragments(frame: &[u8]) -> Vec<Vec<u8>> {
    testpkt::fragments(frame, 1500)
}

/// The IP payloads of `pieces`, put back together by offset, as the real
/// server's kernel reassembles them; checks every piece's IP checksum.
fn reassemble(pieces: &[VecPacket]) -> (Ipv4Addr, Ipv4Addr, Vec<u8>) {
    let mut parts: Vec<(u16, Vec<u8>)> = vec![];
    let mut ends = None;
    for p in pieces {
        let ip = ip_of(p);
        assert!(ip.verify_checksum());
        ends = Some((ip.src_addr(), ip.dst_addr()));
        parts.push((ip.frag_offset(), ip.payload().to_vec()));
    }
    parts.sort();
    let mut whole = vec![];
    for (off, data) in parts {
        assert_eq!(usize::from(off), whole.len(), "no gap, no overlap");
        whole.extend_from_slice(&data);
    }
    let (s, d) = ends.unwrap();
    (s, d, whole)
}

/// A 2900-byte UDP datagram in two fragments reaches one real whole, in
/// order and out of order, in every mode: NAT rewrites the address of
/// both and the port and checksum in the first (so the reassembled
/// datagram checks out at the real); DR and IP-IP send both to the real
/// the first one's connection chose. A later fragment that comes first
/// waits (`AwaitFragment`) and goes on once the first has come.
#[test]
fn a_fragmented_datagram_reaches_one_real_whole() {
    let payload: Vec<u8> = (0..2900u32).map(|i| (i * 13) as u8).collect();
    for method in [
        ForwardMethod::Nat,
        ForwardMethod::DirectRouting,
        ForwardMethod::Tunnel,
    ] {
        for in_order in [true, false] {
            let mut r = rig(
                method,
                &[1, 1, 1],
                ServiceOptions::default(),
                Default::default(),
            );
            // Another client first, so the datagram's real is not real 0.
            run(
                &mut r,
                &testpkt::udp(
                    &Hdr {
                        src: Ipv4Addr::new(198, 18, 1, 99),
                        ..client(64)
                    },
                    1,
                    53,
                    b"x",
                    true,
                ),
                0,
            );
            let frame = testpkt::udp(&client(64), 5000, 53, &payload, true);
            let pieces = fragments(&frame);
            assert_eq!(pieces.len(), 2);
            let mut out = vec![];
            if in_order {
                for f in &pieces {
                    let (v, p) = run(&mut r, f, 0);
                    assert_eq!(v, Verdict::Forward { port: 0 }, "{method}");
                    out.push(p);
                }
            } else {
                let (v, mut second) = run(&mut r, &pieces[1], 0);
                assert_eq!(v, Verdict::AwaitFragment, "{method}");
                let (v, first) = run(&mut r, &pieces[0], 0);
                assert_eq!(v, Verdict::Forward { port: 0 });
                let key = l4vs_dataplane::fragtable::FragKey::of_header(&pieces[1][14..]).unwrap();
                assert!(r.w.fragment_known(&key, 0));
                assert_eq!(r.w.resume(0, &mut second, 0), Verdict::Forward { port: 0 });
                out.push(first);
                out.push(second);
                assert_eq!(r.counters.fragments_held.get(), 1);
            }
            assert_eq!(r.counters.fragments_in.get(), 2, "a held one counts once");
            // Both to the same real, the second one's.
            assert!(
                out.iter().all(|p| p.data()[..6] == rmac(1).0),
                "{method} {in_order}"
            );
            let inner: Vec<VecPacket> = out
                .iter()
                .map(|p| match method {
                    ForwardMethod::Tunnel => {
                        let outer = ip_of(p);
                        assert_eq!(outer.dst_addr(), rip(1));
                        let mut f = p.data()[..14].to_vec();
                        f.extend_from_slice(outer.payload());
                        VecPacket::new(&f)
                    }
                    _ => p.clone(),
                })
                .collect();
            let (src, dst, whole) = reassemble(&inner);
            let u = udp::Packet::new_checked(&whole[..]).unwrap();
            assert_eq!(&whole[8..], &payload[..], "{method}");
            match method {
                ForwardMethod::Nat => {
                    assert_eq!((src, dst), (CLIENT, rip(1)));
                    assert!(u.verify_checksum(CLIENT, rip(1)), "checksum of the whole");
                }
                _ => {
                    assert_eq!((src, dst), (CLIENT, VIP));
                    assert!(u.verify_checksum(CLIENT, VIP));
                }
            }
            assert_eq!(r.w.conns().len(), 2, "one entry for the datagram's flow");
        }
    }
}

/// A NAT real's fragmented reply goes back to the client as the VIP, both
/// fragments rewritten.
#[test]
fn a_fragmented_nat_reply_goes_back_as_the_vip() {
    let mut r = rig(
        ForwardMethod::Nat,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    run(&mut r, &testpkt::udp(&client(64), 5000, 53, b"q", true), 0);
    let reply = testpkt::udp(&from_real(0, 64), 53, 5000, &[3u8; 2500], true);
    let mut out = vec![];
    for f in fragments(&reply) {
        let (v, p) = run(&mut r, &f, 0);
        assert_eq!(v, Verdict::Forward { port: 0 });
        assert_eq!(p.data()[..6], CLIENT_MAC.0);
        out.push(p);
    }
    let (src, dst, whole) = reassemble(&out);
    assert_eq!((src, dst), (VIP, CLIENT));
    let u = udp::Packet::new_checked(&whole[..]).unwrap();
    assert_eq!(u.src_port(), 53);
    assert!(u.verify_checksum(VIP, CLIENT));
}

/// What fragments cannot do: ICMP and other protocols' fragments, and a
/// TCP fragment at offset 8 (RFC 1858), are dropped as `ip_fragment`; a
/// later fragment whose connection has gone is dropped as
/// `fragment_no_connection`; no ICMP error is ever sent about a later
/// fragment.
#[test]
fn fragments_that_cannot_be_followed_are_dropped_and_counted() {
    let mut r = rig(
        ForwardMethod::Nat,
        &[1],
        ServiceOptions::default(),
        Default::default(),
    );
    let set_frag = |mut f: Vec<u8>, off_units: u16, more: bool| {
        f[14 + 6..14 + 8].copy_from_slice(&((u16::from(more) << 13) | off_units).to_be_bytes());
        ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
        f
    };
    let echo = testpkt::icmp_echo(&client(64), 1, 1, &[0; 100]);
    assert_eq!(
        run(&mut r, &set_frag(echo, 0, true), 0).0,
        Verdict::Drop(DropReason::FragmentNotTcpUdp)
    );
    let tcp8 = testpkt::tcp(&client(64), 40000, 80, ACK, &[0; 100]);
    assert_eq!(
        run(&mut r, &set_frag(tcp8, 1, false), 0).0,
        Verdict::Drop(DropReason::TcpTinyFragment)
    );
    assert_eq!(r.counters.drops_of(DropReason::FragmentNotTcpUdp), 1);
    assert_eq!(r.counters.drops_of(DropReason::TcpTinyFragment), 1);
    // The datagram's entry outlives its connection: the later fragment
    // finds no connection.
    let pieces = fragments(&testpkt::udp(&client(64), 5000, 53, &[1; 2000], true));
    run(&mut r, &pieces[0], 0);
    r.w.housekeeping(301_000);
    assert_eq!(r.w.conns().len(), 0);
    let (v, _) = run(&mut r, &pieces[1], 1_000);
    assert_eq!(v, Verdict::Drop(DropReason::FragmentNoConnection));
    // TTL 1 on a later fragment: dropped, no time exceeded about it.
    let pieces = fragments(&testpkt::udp(&client(2), 5001, 53, &[1; 2000], true));
    run(&mut r, &pieces[0], 400_000);
    let mut late = pieces[1].clone();
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut late[14..]);
        ip.set_ttl(1);
        ip.fill_checksum();
    }
    let sent = r.counters.icmp_time_exceeded_sent.get();
    assert_eq!(
        run(&mut r, &late, 400_000).0,
        Verdict::Drop(DropReason::IpTtlExpired)
    );
    assert_eq!(r.counters.icmp_time_exceeded_sent.get(), sent);
}

/// One-packet scheduling keeps no connection, yet every fragment of a
/// datagram goes to the real its first fragment went to.
#[test]
fn ops_fragments_follow_their_first() {
    let opts = ServiceOptions {
        ops: true,
        ..Default::default()
    };
    let mut r = rig(
        ForwardMethod::DirectRouting,
        &[1, 1, 1],
        opts,
        Default::default(),
    );
    for (k, want) in [(0u16, 0usize), (1, 1), (2, 2)] {
        let pieces = fragments(&testpkt::udp(
            &client(64),
            5000,
            53,
            &vec![k as u8; 2000 + usize::from(k)],
            true,
        ));
        for f in &pieces {
            let (v, p) = run(&mut r, f, 0);
            assert_eq!(v, Verdict::Forward { port: 0 });
            assert_eq!(p.data()[..6], rmac(want).0, "datagram {k}");
        }
    }
    assert_eq!(r.w.conns().len(), 0);
}

/// TCP too: a 3000-byte segment in three fragments follows one NAT
/// connection; the first carries the header (and the state change), the
/// later ones only the address rewrite, and the segment put back together
/// checks out at the real.
#[test]
fn a_fragmented_tcp_segment_follows_its_connection() {
    let mut r = rig(
        ForwardMethod::Nat,
        &[1, 1],
        ServiceOptions::default(),
        Default::default(),
    );
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let syn = testpkt::tcp(&client(64), 40000, 80, SYN, &data);
    let mut out = vec![];
    for f in fragments(&syn) {
        let (v, p) = run(&mut r, &f, 0);
        assert_eq!(v, Verdict::Forward { port: 0 });
        out.push(p);
    }
    assert_eq!(out.len(), 3);
    let (src, dst, whole) = reassemble(&out);
    assert_eq!((src, dst), (CLIENT, rip(0)));
    let t = tcp::Packet::new_checked(&whole[..]).unwrap();
    assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
    assert!(t.verify_checksum(CLIENT, rip(0)));
    assert_eq!(&whole[20..], &data[..]);
    assert_eq!(r.w.conns().len(), 1);
    assert_eq!(r.counters.conns_created.get(), 1);
}
