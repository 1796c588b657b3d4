//! Golden-packet tests of the worker pipeline: NAT, IP-IP and DR, ARP,
//! schedulers across connections, and every bad-input case with its
//! counted drop reason.

use core::net::Ipv4Addr;
use l4vs_dataplane::conn::Timeouts;
use l4vs_dataplane::neighbor::SOLICIT_BACKOFF_MS;
use l4vs_dataplane::testpkt::{self, Hdr};
use l4vs_dataplane::testpkt::{real_addr as rip, real_mac as rmac};
use l4vs_dataplane::testpkt::{
    CLIENT, CLIENT_MAC, DIRECTOR_MAC, DIR_CLIENT_SIDE, DIR_SERVER_SIDE, VIP,
};
use l4vs_dataplane::worker::solicit_next_hops;
use l4vs_dataplane::{
    Counters, DropReason, ForwardMethod, LocalAddress, NeighborTable, PacketBuf, PortInfo,
    Protocol, Real, SchedulerKind, Service, Snapshot, VecPacket, Verdict, Worker, WorkerConfig,
};
use l4vs_wire::arp::Operation;
use l4vs_wire::ethernet::{self, Address as Mac};
use l4vs_wire::{arp, icmp, ipv4, tcp, udp};
use rstest::rstest;
use std::sync::Arc;

const SYN: u8 = tcp::flags::SYN;
const ACK: u8 = tcp::flags::ACK;

struct Rig {
    worker: Worker,
    neigh: Arc<NeighborTable>,
    counters: Arc<Counters>,
}

fn rig_with(
    method: ForwardMethod,
    scheduler: SchedulerKind,
    weights: &[u32],
    cfg: WorkerConfig,
) -> Rig {
    let reals = weights
        .iter()
        .enumerate()
        .map(|(i, w)| Real {
            addr: rip(i),
            port: if method == ForwardMethod::Nat {
                8080
            } else {
                80
            },
            weight: *w,
            method,
            upper_threshold: 0,
            lower_threshold: 0,
        })
        .collect::<Vec<_>>();
    let tcp_svc = Service {
        name: "web".into(),
        vip: VIP,
        port: 80,
        protocol: Protocol::Tcp,
        scheduler,
        reals: reals.clone(),
        options: Default::default(),
    };
    let udp_svc = Service {
        name: "dns".into(),
        vip: VIP,
        port: 53,
        protocol: Protocol::Udp,
        scheduler,
        reals: reals
            .iter()
            .map(|r| Real {
                port: if method == ForwardMethod::Nat {
                    5353
                } else {
                    53
                },
                ..*r
            })
            .collect(),
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
                addr: DIR_CLIENT_SIDE,
                prefix_len: 24,
            },
            LocalAddress {
                port: 0,
                addr: DIR_SERVER_SIDE,
                prefix_len: 24,
            },
        ],
        None,
        vec![tcp_svc, udp_svc],
    )
    .unwrap();
    let neigh = Arc::new(NeighborTable::new(64));
    let counters = Arc::new(Counters::default());
    let worker = Worker::new(Arc::new(snap), neigh.clone(), counters.clone(), cfg);
    Rig {
        worker,
        neigh,
        counters,
    }
}

fn rig(method: ForwardMethod) -> Rig {
    let r = rig_with(
        method,
        SchedulerKind::Rr,
        &[1, 1, 1],
        WorkerConfig {
            conn_capacity: 1024,
            ..Default::default()
        },
    );
    for i in 0..3 {
        r.neigh.learn(rip(i), rmac(i), 0);
    }
    r.neigh.learn(CLIENT, CLIENT_MAC, 0);
    r
}

fn from_client() -> Hdr {
    testpkt::client_to_vip(64)
}

fn run(r: &mut Rig, frame: &[u8]) -> (Verdict, VecPacket) {
    let mut p = VecPacket::new(frame);
    let v = r.worker.process(0, &mut p, 1_000_000);
    (v, p)
}

fn ip_of(p: &VecPacket) -> ipv4::Packet<&[u8]> {
    ipv4::Packet::new_checked(&p.data()[ethernet::HEADER_LEN..]).unwrap()
}

fn eth_of(p: &VecPacket) -> ethernet::Frame<&[u8]> {
    ethernet::Frame::new_checked(p.data()).unwrap()
}

/// `frame` with its IP TTL set to `ttl` and the header checksum redone
/// from scratch: what a forwarded packet must look like.
fn with_ttl(frame: &[u8], ttl: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
    ip.set_ttl(ttl);
    ip.fill_checksum();
    f
}

#[test]
fn nat_rewrites_both_directions_with_valid_checksums() {
    let mut r = rig(ForwardMethod::Nat);
    let (v, p) = run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    assert_eq!(v, Verdict::Forward { port: 0 });
    let ip = ip_of(&p);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (CLIENT, rip(0)));
    assert!(ip.verify_checksum());
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((t.src_port(), t.dst_port()), (40000, 8080));
    assert!(t.verify_checksum(CLIENT, rip(0)));
    assert_eq!(
        (eth_of(&p).dst_addr(), eth_of(&p).src_addr()),
        (rmac(0), DIRECTOR_MAC)
    );

    // The real server's SYN-ACK goes back to the client from VIP:80.
    let reply = testpkt::real_to_client(0, 64);
    let (v, p) = run(&mut r, &testpkt::tcp(&reply, 8080, 40000, SYN | ACK, b""));
    assert_eq!(v, Verdict::Forward { port: 0 });
    let ip = ip_of(&p);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT));
    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
    assert!(t.verify_checksum(VIP, CLIENT));
    assert_eq!(eth_of(&p).dst_addr(), CLIENT_MAC);
    assert_eq!(r.counters.nat_in.get(), 1);
    assert_eq!(r.counters.nat_out.get(), 1);
}

#[test]
fn nat_udp_without_checksum_keeps_zero() {
    let mut r = rig(ForwardMethod::Nat);
    let (v, p) = run(&mut r, &testpkt::udp(&from_client(), 5000, 53, b"q", false));
    assert_eq!(v, Verdict::Forward { port: 0 });
    let ip = ip_of(&p);
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (ip.dst_addr(), u.dst_port(), u.checksum()),
        (rip(0), 5353, 0)
    );
    let (_, p) = run(&mut r, &testpkt::udp(&from_client(), 5001, 53, b"q", true));
    let ip = ip_of(&p);
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert!(u.checksum() != 0 && u.verify_checksum(CLIENT, rip(1)));
}

#[test]
fn direct_routing_rewrites_only_the_mac() {
    let mut r = rig(ForwardMethod::DirectRouting);
    let frame = testpkt::tcp(&from_client(), 40000, 80, SYN, b"");
    let (v, p) = run(&mut r, &frame);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        &p.data()[12..],
        &with_ttl(&frame, 63)[12..],
        "IP packet untouched but for the TTL"
    );
    assert_eq!(
        (eth_of(&p).dst_addr(), eth_of(&p).src_addr()),
        (rmac(0), DIRECTOR_MAC)
    );
}

#[test]
fn tunnel_prepends_an_outer_header() {
    let mut r = rig(ForwardMethod::Tunnel);
    let mut frame = testpkt::tcp(&from_client(), 40000, 80, SYN, b"hello");
    frame.extend_from_slice(&[0u8; 6]); // Ethernet padding must not be tunnelled
    let (v, p) = run(&mut r, &frame);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let outer = ip_of(&p);
    assert_eq!(outer.protocol(), ipv4::Protocol::IpIp);
    assert_eq!(
        (outer.src_addr(), outer.dst_addr()),
        (DIR_SERVER_SIDE, rip(0))
    );
    assert_eq!(outer.ttl(), 63, "the decremented inner TTL");
    assert!(outer.dont_frag());
    assert!(outer.verify_checksum());
    let inner_len = frame.len() - 6 - ethernet::HEADER_LEN;
    assert_eq!(usize::from(outer.total_len()), inner_len + 20);
    assert_eq!(
        outer.payload(),
        &with_ttl(&frame, 63)[ethernet::HEADER_LEN..frame.len() - 6],
        "inner packet untouched but for its TTL"
    );
    assert_eq!(p.data().len(), ethernet::HEADER_LEN + 20 + inner_len);
    assert_eq!(eth_of(&p).dst_addr(), rmac(0));
}

#[test]
fn tunnel_answers_oversize_with_frag_needed() {
    let mut r = rig(ForwardMethod::Tunnel);
    // 1500 bytes with DF: no room for the outer header.
    let big = vec![0xabu8; 1500 - 40];
    let frame = testpkt::tcp(&from_client(), 40001, 80, SYN, &big);
    let (v, p) = run(&mut r, &frame);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let ip = ip_of(&p);
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.tos()),
        (VIP, CLIENT, ipv4::Protocol::Icmp, 0xc0)
    );
    assert!(ip.verify_checksum());
    assert_eq!(ip.total_len(), 576, "quoted as far as 576 bytes go");
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (m.msg_type(), m.code()),
        (icmp::Message::DstUnreachable, icmp::CODE_FRAG_NEEDED)
    );
    assert_eq!(m.next_hop_mtu(), 1480);
    assert!(m.verify_checksum());
    // The quote carries the decremented TTL: the kernel checks the MTU
    // after decrement_ttl.
    assert_eq!(m.data(), &with_ttl(&frame, 63)[14..14 + 548]);
    assert_eq!(eth_of(&p).dst_addr(), CLIENT_MAC);
    assert_eq!(r.counters.drops_of(DropReason::TunnelTooBig), 1);
    assert_eq!(r.counters.icmp_frag_needed_sent.get(), 1);

    // Without DF the outer packet is built too big, with DF clear, for
    // the lcore loop to fragment (ip_vs_tunnel_xmit, then ip_fragment).
    let mut no_df = frame.clone();
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut no_df[14..]);
        ip.set_unfragmented(false);
        ip.fill_checksum();
    }
    let (v, p) = run(&mut r, &no_df);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let outer = ip_of(&p);
    assert_eq!(outer.protocol(), ipv4::Protocol::IpIp);
    assert_eq!((outer.total_len(), outer.dont_frag()), (1520, false));
}

/// The IP packet inside a frame (what an ICMP error quotes).
fn ip_bytes(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

#[test]
fn icmp_error_from_the_client_side_reaches_the_real_server() {
    let mut r = rig(ForwardMethod::Nat);
    run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    // What the client saw from the director: VIP:80 -> client:40000.
    let sent = testpkt::tcp(
        &Hdr {
            src_mac: DIRECTOR_MAC,
            dst_mac: CLIENT_MAC,
            src: VIP,
            dst: CLIENT,
            ttl: 64,
        },
        80,
        40000,
        SYN | ACK,
        b"",
    );
    let router = Ipv4Addr::new(198, 18, 1, 254);
    let err = testpkt::icmp_error(
        &Hdr {
            src_mac: CLIENT_MAC,
            dst_mac: DIRECTOR_MAC,
            src: router,
            dst: VIP,
            ttl: 64,
        },
        icmp::Message::DstUnreachable,
        icmp::CODE_FRAG_NEEDED,
        (0, 1400),
        &ip_bytes(&sent)[..28],
    );
    let (v, p) = run(&mut r, &err);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(eth_of(&p).dst_addr(), rmac(0));
    let ip = ip_of(&p);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (router, rip(0)));
    assert!(ip.verify_checksum());
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum());
    assert_eq!(m.next_hop_mtu(), 1400);
    let inner = ipv4::Packet::new_unchecked(&m.data()[..20]);
    assert_eq!(
        (inner.src_addr(), inner.dst_addr()),
        (rip(0), CLIENT),
        "quoted header as the real sent it"
    );
    assert!(inner.verify_checksum());
    assert_eq!(tcp::ports(&m.data()[20..]), Some((8080, 40000)));
    assert_eq!(r.counters.icmp_errors_forwarded.get(), 1);
}

#[test]
fn icmp_error_from_a_real_server_goes_back_as_the_vip() {
    let mut r = rig(ForwardMethod::Nat);
    run(&mut r, &testpkt::udp(&from_client(), 5000, 53, b"q", true));
    // The real received client:5000 -> RIP:5353 and says port unreachable.
    let got = testpkt::udp(
        &Hdr {
            src_mac: DIRECTOR_MAC,
            dst_mac: rmac(0),
            src: CLIENT,
            dst: rip(0),
            ttl: 64,
        },
        5000,
        5353,
        b"q",
        true,
    );
    let err = testpkt::icmp_error(
        &testpkt::real_to_client(0, 64),
        icmp::Message::DstUnreachable,
        3,
        (0, 0),
        &ip_bytes(&got),
    );
    let (v, p) = run(&mut r, &err);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(eth_of(&p).dst_addr(), CLIENT_MAC);
    let ip = ip_of(&p);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT));
    assert!(ip.verify_checksum());
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum());
    let inner = ipv4::Packet::new_unchecked(&m.data()[..20]);
    assert_eq!((inner.src_addr(), inner.dst_addr()), (CLIENT, VIP));
    assert!(inner.verify_checksum());
    assert_eq!(tcp::ports(&m.data()[20..]), Some((5000, 53)));
}

#[test]
fn icmp_error_for_direct_routing_is_relayed_unchanged() {
    let mut r = rig(ForwardMethod::DirectRouting);
    run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    let sent = testpkt::tcp(
        &Hdr {
            src: VIP,
            dst: CLIENT,
            ..from_client()
        },
        80,
        40000,
        SYN | ACK,
        b"",
    );
    let err = testpkt::icmp_error(
        &Hdr {
            dst: VIP,
            src: Ipv4Addr::new(198, 18, 1, 254),
            ..from_client()
        },
        icmp::Message::TimeExceeded,
        0,
        (0, 0),
        &ip_bytes(&sent)[..28],
    );
    let (v, p) = run(&mut r, &err);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(eth_of(&p).dst_addr(), rmac(0));
    assert_eq!(&p.data()[14..], &with_ttl(&err, 63)[14..]);
}

#[test]
fn icmp_errors_with_bad_or_unrelated_quotes_are_dropped_and_counted() {
    let mut r = rig(ForwardMethod::Nat);
    run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    let router = Hdr {
        dst: VIP,
        src: Ipv4Addr::new(198, 18, 1, 254),
        ..from_client()
    };
    let sent = testpkt::tcp(
        &Hdr {
            src: VIP,
            dst: CLIENT,
            ..from_client()
        },
        80,
        40000,
        ACK,
        b"",
    );
    let quoted = ip_bytes(&sent);
    let unreach =
        |q: &[u8]| testpkt::icmp_error(&router, icmp::Message::DstUnreachable, 1, (0, 0), q);
    let mut ihl_big = quoted.clone();
    ihl_big[0] = 0x4f;
    let other = testpkt::tcp(
        &Hdr {
            src: VIP,
            dst: CLIENT,
            ..from_client()
        },
        80,
        40001,
        ACK,
        b"",
    );
    let echo = testpkt::icmp_echo(
        &Hdr {
            src: VIP,
            dst: CLIENT,
            ..from_client()
        },
        1,
        1,
        b"",
    );
    let cases = [
        (
            "quote shorter than an IP header",
            unreach(&quoted[..12]),
            DropReason::IcmpBadEmbedded,
        ),
        (
            "quote without the 8 payload bytes",
            unreach(&quoted[..24]),
            DropReason::IcmpBadEmbedded,
        ),
        (
            "quoted IHL beyond the quote",
            unreach(&ihl_big[..28]),
            DropReason::IcmpBadEmbedded,
        ),
        (
            "quote of an unknown connection",
            unreach(&ip_bytes(&other)[..28]),
            DropReason::IcmpNoConnection,
        ),
        (
            "quote of an ICMP packet",
            unreach(&ip_bytes(&echo)[..28]),
            DropReason::IcmpNoConnection,
        ),
        (
            "ICMP header cut",
            unreach(&[])[..14 + 20 + 4].to_vec(),
            DropReason::IpTruncated,
        ),
    ];
    for (what, frame, reason) in cases {
        let before = r.counters.drops_of(reason);
        assert_eq!(run(&mut r, &frame).0, Verdict::Drop(reason), "{what}");
        assert_eq!(r.counters.drops_of(reason), before + 1, "{what}");
    }
    assert_eq!(r.counters.icmp_errors_forwarded.get(), 0);
}

#[rstest]
fn every_packet_of_a_connection_goes_to_one_real(
    #[values(
        ForwardMethod::Nat,
        ForwardMethod::Tunnel,
        ForwardMethod::DirectRouting
    )]
    method: ForwardMethod,
) {
    let mut r = rig(method);
    let first = run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b"")).1;
    for flags in [ACK, ACK | tcp::flags::PSH, ACK | tcp::flags::FIN] {
        // Other connections in between move the scheduler on.
        run(
            &mut r,
            &testpkt::tcp(&from_client(), 41000 + u16::from(flags), 80, SYN, b""),
        );
        let p = run(
            &mut r,
            &testpkt::tcp(&from_client(), 40000, 80, flags, b"x"),
        )
        .1;
        assert_eq!(eth_of(&p).dst_addr(), eth_of(&first).dst_addr());
    }
}

#[rstest]
#[case(SchedulerKind::Rr, &[1, 1, 1], &[0, 1, 2, 0, 1, 2])]
#[case(SchedulerKind::Wrr, &[3, 1], &[0, 0, 0, 1, 0, 0, 0, 1])]
#[case(SchedulerKind::Rr, &[1, 0, 1], &[0, 2, 0, 2])]
// wlc sees the connections the worker binds: 2:1 from zero.
#[case(SchedulerKind::Wlc, &[2, 1], &[0, 1, 0, 0, 1, 0])]
// lc: equal shares, whatever the weights.
#[case(SchedulerKind::Lc, &[5, 1, 1], &[0, 1, 2, 0, 1, 2])]
// fo: everything to the heaviest real.
#[case(SchedulerKind::Fo, &[1, 3, 2], &[1, 1, 1, 1])]
fn new_connections_follow_the_scheduler(
    #[case] kind: SchedulerKind,
    #[case] weights: &[u32],
    #[case] expected: &[usize],
) {
    let mut r = rig_with(
        ForwardMethod::DirectRouting,
        kind,
        weights,
        WorkerConfig::default(),
    );
    for i in 0..weights.len() {
        r.neigh.learn(rip(i), rmac(i), 0);
    }
    let got: Vec<usize> = (0..expected.len())
        .map(|k| {
            let p = run(
                &mut r,
                &testpkt::tcp(&from_client(), 30000 + k as u16, 80, SYN, b""),
            )
            .1;
            usize::from(eth_of(&p).dst_addr().0[5] - 11)
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn arp_requests_for_our_addresses_and_vips_are_answered() {
    let mut r = rig(ForwardMethod::Nat);
    for target in [DIR_CLIENT_SIDE, DIR_SERVER_SIDE, VIP] {
        let req = testpkt::arp(
            Operation::Request,
            CLIENT_MAC,
            CLIENT,
            Mac::UNSPECIFIED,
            target,
            Mac::BROADCAST,
        );
        let (v, p) = run(&mut r, &req);
        assert_eq!(v, Verdict::Forward { port: 0 });
        assert_eq!(
            (eth_of(&p).dst_addr(), eth_of(&p).src_addr()),
            (CLIENT_MAC, DIRECTOR_MAC)
        );
        let a = arp::Packet::new_checked(&p.data()[14..]).unwrap();
        assert_eq!(a.operation(), Operation::Reply);
        assert_eq!(
            (a.sender_hw_addr(), a.sender_proto_addr()),
            (DIRECTOR_MAC, target)
        );
        assert_eq!(
            (a.target_hw_addr(), a.target_proto_addr()),
            (CLIENT_MAC, CLIENT)
        );
    }
    let other = testpkt::arp(
        Operation::Request,
        CLIENT_MAC,
        CLIENT,
        Mac::UNSPECIFIED,
        rip(0),
        Mac::BROADCAST,
    );
    assert_eq!(
        run(&mut r, &other).0,
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    assert_eq!(r.counters.arp_replies.get(), 3);
}

#[test]
fn unknown_next_hop_is_resolved_by_arp_then_forwarded() {
    let mut r = rig_with(
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        &[1],
        WorkerConfig::default(),
    );
    // The packet is ready but for the next hop's MAC: the worker asks for
    // it to be held and for an ARP request.
    let (v, mut held) = run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    assert_eq!(
        v,
        Verdict::AwaitNeighbor {
            port: 0,
            next_hop: rip(0),
            solicit: true
        }
    );
    assert_eq!(ip_of(&held).dst_addr(), rip(0), "already rewritten");
    let frame = r
        .worker
        .arp_request(0, rip(0))
        .expect("an address towards it");
    assert_eq!(&frame[..6], &Mac::BROADCAST.0);
    let a = arp::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(a.operation(), Operation::Request);
    assert_eq!(
        (
            a.sender_hw_addr(),
            a.sender_proto_addr(),
            a.target_proto_addr()
        ),
        (DIRECTOR_MAC, DIR_SERVER_SIDE, rip(0))
    );
    assert_eq!(r.counters.neighbor_held.get(), 1);
    // A retransmission within the retry interval is held too, with no
    // second request.
    let (v, _) = run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    assert_eq!(
        v,
        Verdict::AwaitNeighbor {
            port: 0,
            next_hop: rip(0),
            solicit: false
        }
    );
    assert_eq!(r.worker.readdress(&mut held, rip(0)), None, "not yet");
    // The real server answers: the held packet is addressed to it.
    let reply = testpkt::arp(
        Operation::Reply,
        rmac(0),
        rip(0),
        DIRECTOR_MAC,
        DIR_SERVER_SIDE,
        DIRECTOR_MAC,
    );
    // Learned here, and passed on to the kernel's interface (the
    // exception path), which may have asked too.
    assert_eq!(run(&mut r, &reply).0, Verdict::ToControl);
    assert_eq!(r.worker.readdress(&mut held, rip(0)), Some(0));
    assert_eq!(
        (eth_of(&held).dst_addr(), eth_of(&held).src_addr()),
        (rmac(0), DIRECTOR_MAC)
    );
    assert!(ip_of(&held).verify_checksum());
}

#[test]
fn echo_to_vip_is_answered() {
    let mut r = rig(ForwardMethod::Nat);
    let (v, p) = run(&mut r, &testpkt::icmp_echo(&from_client(), 7, 1, b"ping"));
    assert_eq!(v, Verdict::Forward { port: 0 });
    let ip = ip_of(&p);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT));
    assert!(ip.verify_checksum());
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), icmp::Message::EchoReply);
    assert!(m.verify_checksum());
    assert_eq!(
        (m.echo_ident(), m.echo_seq(), m.data()),
        (7, 1, &b"ping"[..])
    );
}

#[test]
fn closed_connection_is_rescheduled_by_a_new_syn() {
    let mut r = rig(ForwardMethod::DirectRouting);
    let first =
        eth_of(&run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b"")).1).dst_addr();
    // SYN -> SYN_RECV, ACK -> ESTABLISHED, RST -> CLOSE (IPVS INPUT-ONLY).
    run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, ACK, b""));
    run(
        &mut r,
        &testpkt::tcp(&from_client(), 40000, 80, tcp::flags::RST, b""),
    );
    let second =
        eth_of(&run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b"")).1).dst_addr();
    assert_ne!(first, second, "rr moves on for the fresh connection");
    assert_eq!(r.counters.conns_created.get(), 2);
}

#[test]
fn a_syn_retransmission_keeps_its_real() {
    // RST in SYN_RECV keeps SYN_RECV (IPVS), so the next SYN is not a
    // new connection: it stays on the first real.
    let mut r = rig(ForwardMethod::DirectRouting);
    let syn = testpkt::tcp(&from_client(), 40000, 80, SYN, b"");
    let first = eth_of(&run(&mut r, &syn).1).dst_addr();
    run(
        &mut r,
        &testpkt::tcp(&from_client(), 40000, 80, tcp::flags::RST, b""),
    );
    assert_eq!(eth_of(&run(&mut r, &syn).1).dst_addr(), first);
    assert_eq!(r.counters.conns_created.get(), 1);
}

#[test]
fn connections_expire() {
    let mut r = rig(ForwardMethod::DirectRouting);
    let mut p = VecPacket::new(&testpkt::udp(&from_client(), 5000, 53, b"q", true));
    r.worker.process(0, &mut p, 0);
    assert_eq!(r.worker.conns().len(), 1);
    r.worker.housekeeping(299_000);
    assert_eq!(r.worker.conns().len(), 1);
    r.worker
        .housekeeping(u64::from(Timeouts::default().udp) * 1000);
    assert_eq!(r.worker.conns().len(), 0);
    assert_eq!(r.counters.conns_expired.get(), 1);
}

#[test]
fn syn_flood_fills_the_table_but_established_flows_survive() {
    let mut r = rig_with(
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        &[1, 1],
        WorkerConfig {
            conn_capacity: 64,
            ..Default::default()
        },
    );
    for i in 0..2 {
        r.neigh.learn(rip(i), rmac(i), 0);
    }
    let est = testpkt::tcp(&from_client(), 40000, 80, SYN, b"");
    assert_eq!(run(&mut r, &est).0, Verdict::Forward { port: 0 });
    let mut full = 0;
    for k in 0..500u32 {
        let h = Hdr {
            src: Ipv4Addr::from_bits(0x0a00_0000 + k),
            ..from_client()
        };
        if run(&mut r, &testpkt::tcp(&h, 1024 + k as u16, 80, SYN, b"")).0
            == Verdict::Drop(DropReason::ConnTableFull)
        {
            full += 1;
        }
    }
    assert!(full >= 500 - 64, "{full} refused");
    assert_eq!(r.counters.drops_of(DropReason::ConnTableFull), full);
    let (v, p) = run(
        &mut r,
        &testpkt::tcp(&from_client(), 40000, 80, ACK, b"data"),
    );
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(ip_of(&p).dst_addr(), rip(0));
}

/// Each malformed input ends in its own counted drop, never a panic.
#[test]
fn bad_input_is_dropped_with_a_reason() {
    let mut r = rig(ForwardMethod::Tunnel);
    let good = testpkt::tcp(&from_client(), 40000, 80, SYN, b"");
    let mut cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("short frame", good[..10].to_vec(), DropReason::EthTruncated),
        (
            "IP header cut",
            good[..14 + 12].to_vec(),
            DropReason::IpTruncated,
        ),
    ];
    let mut ihl4 = good.clone();
    ihl4[14] = 0x44;
    cases.push(("IHL < 5", ihl4, DropReason::IpMalformed));
    let mut ihl_beyond = good.clone();
    ihl_beyond[14] = 0x4f;
    cases.push(("IHL beyond the frame", ihl_beyond, DropReason::IpTruncated));
    let mut long_total = good.clone();
    long_total[16..18].copy_from_slice(&200u16.to_be_bytes());
    cases.push((
        "total length beyond the frame",
        long_total,
        DropReason::IpTruncated,
    ));
    let mut v6 = good.clone();
    v6[14] = 0x65;
    cases.push(("IP version 6 in an IPv4 frame", v6, DropReason::IpMalformed));
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0xff;
    cases.push(("bad IP checksum", bad_sum, DropReason::IpBadChecksum));
    let mut frag = good.clone();
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut frag[14..]);
        ip.set_unfragmented(false);
        frag[14 + 7] = 0x01; // offset 8 bytes: over the TCP flags
        let mut ip = ipv4::Packet::new_unchecked(&mut frag[14..]);
        ip.fill_checksum();
    }
    cases.push((
        "TCP fragment at offset 8 (RFC 1858)",
        frag,
        DropReason::TcpTinyFragment,
    ));
    let mut lldp = good.clone();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    cases.push(("unknown EtherType", lldp, DropReason::EthUnknownType));
    let mut ipv6 = good.clone();
    ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    cases.push(("IPv6", ipv6, DropReason::EthUnknownType));
    cases.push((
        "ARP for another host",
        testpkt::arp(
            Operation::Request,
            CLIENT_MAC,
            CLIENT,
            Mac::UNSPECIFIED,
            Ipv4Addr::new(198, 18, 1, 99),
            Mac::BROADCAST,
        ),
        DropReason::ArpNotForUs,
    ));
    let mut short_arp = testpkt::arp(
        Operation::Request,
        CLIENT_MAC,
        CLIENT,
        Mac::UNSPECIFIED,
        VIP,
        Mac::BROADCAST,
    );
    short_arp.truncate(14 + 20);
    cases.push(("truncated ARP", short_arp, DropReason::ArpMalformed));
    let mut other_host = good.clone();
    other_host[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    cases.push((
        "unicast to another MAC",
        other_host,
        DropReason::EthOtherHost,
    ));
    let mut tcp_cut = good.clone();
    tcp_cut.truncate(14 + 20 + 10);
    tcp_cut[16..18].copy_from_slice(&30u16.to_be_bytes());
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut tcp_cut[14..]);
        ip.fill_checksum();
    }
    cases.push(("TCP header cut", tcp_cut, DropReason::L4Truncated));
    cases.push((
        "UDP to a VIP port with no service",
        testpkt::udp(&from_client(), 5000, 54, b"x", true),
        DropReason::NoService,
    ));
    cases.push((
        "TCP to a VIP port with no service",
        testpkt::tcp(&from_client(), 5000, 443, SYN, b""),
        DropReason::NoService,
    ));
    cases.push((
        "ACK without a connection",
        testpkt::tcp(&from_client(), 40009, 80, ACK, b""),
        DropReason::TcpNotSyn,
    ));
    cases.push((
        "RST without a connection",
        testpkt::tcp(&from_client(), 40010, 80, tcp::flags::RST, b""),
        DropReason::TcpNotSyn,
    ));
    cases.push((
        "FIN without a connection",
        testpkt::tcp(&from_client(), 40011, 80, tcp::flags::FIN | ACK, b""),
        DropReason::TcpNotSyn,
    ));
    cases.push((
        "SYN+RST without a connection",
        testpkt::tcp(&from_client(), 40012, 80, SYN | tcp::flags::RST, b""),
        DropReason::TcpNotSyn,
    ));
    cases.push((
        "not for us",
        testpkt::tcp(
            &Hdr {
                dst: Ipv4Addr::new(198, 18, 9, 9),
                ..from_client()
            },
            1,
            2,
            SYN,
            b"",
        ),
        DropReason::IpNotForUs,
    ));

    for (what, frame, reason) in &cases {
        let before = r.counters.drops_of(*reason);
        let (v, _) = run(&mut r, frame);
        assert_eq!(v, Verdict::Drop(*reason), "{what}");
        assert_eq!(r.counters.drops_of(*reason), before + 1, "{what} counted");
    }
    assert_eq!(r.counters.forwarded.get(), 0);
}

/// Every prefix of valid frames, and random bytes, end in a verdict.
#[test]
fn truncation_at_every_length_never_panics() {
    for method in [
        ForwardMethod::Nat,
        ForwardMethod::Tunnel,
        ForwardMethod::DirectRouting,
    ] {
        let mut r = rig(method);
        let frames = [
            testpkt::tcp(&from_client(), 40000, 80, SYN, b"payload"),
            testpkt::udp(&from_client(), 5000, 53, b"payload", true),
            testpkt::icmp_echo(&from_client(), 1, 1, b"ping"),
            testpkt::arp(
                Operation::Request,
                CLIENT_MAC,
                CLIENT,
                Mac::UNSPECIFIED,
                VIP,
                Mac::BROADCAST,
            ),
        ];
        for f in &frames {
            for n in 0..f.len() {
                let (v, _) = run(&mut r, &f[..n]);
                assert!(
                    !matches!(v, Verdict::Forward { .. }) || n >= 42,
                    "{method:?} prefix {n} forwarded"
                );
            }
        }
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_frames_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), ethertype in prop_oneof![Just(0x0800u16), Just(0x0806), any::<u16>()]) {
            if bytes.len() >= 14 {
                bytes[..6].copy_from_slice(&DIRECTOR_MAC.0);
                bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
            }
            let mut r = rig(ForwardMethod::Nat);
            let _ = run(&mut r, &bytes);
            prop_assert_eq!(r.counters.rx.get(), 1);
        }
    }
}

#[test]
fn next_hops_are_solicited_before_traffic() {
    let r = rig_with(
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        &[1, 1],
        WorkerConfig::default(),
    );
    r.neigh.learn(rip(1), rmac(1), 0);
    let mut sent = Vec::new();
    let solicit = |r: &Rig, now, emit: &mut dyn FnMut(u16, &[u8; 60])| {
        solicit_next_hops(r.worker.snapshot(), &r.neigh, now, SOLICIT_BACKOFF_MS, emit)
    };
    solicit(&r, 5000, &mut |port, frame| sent.push((port, *frame)));
    assert_eq!(sent.len(), 1, "only the unresolved real");
    let (port, frame) = &sent[0];
    assert_eq!(*port, 0);
    let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
    assert!(eth.dst_addr().is_broadcast());
    let a = arp::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(a.operation(), Operation::Request);
    assert_eq!(
        (a.sender_hw_addr(), a.sender_proto_addr()),
        (DIRECTOR_MAC, DIR_SERVER_SIDE)
    );
    assert_eq!(a.target_proto_addr(), rip(0));
    // Within the retry interval: nothing new.
    sent.clear();
    solicit(&r, 5500, &mut |port, frame| sent.push((port, *frame)));
    assert!(sent.is_empty());
    // Resolved: nothing to ask.
    r.neigh.learn(rip(0), rmac(0), 0);
    solicit(&r, 9000, &mut |port, frame| sent.push((port, *frame)));
    assert!(sent.is_empty());
}

/// Absent real servers are solicited with an exponential back-off, not
/// once a second for ever: 100 of them over one housekeeping minute cost
/// 6 requests each (1, 2, 4, 8, 16 s apart), not 60.
#[test]
fn absent_reals_are_solicited_with_a_back_off() {
    let weights = vec![1; 100];
    let r = rig_with(
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        &weights,
        WorkerConfig::default(),
    );
    let mut sent = 0usize;
    for tick in 0..600u64 {
        // Housekeeping every 100 ms for a minute.
        solicit_next_hops(
            r.worker.snapshot(),
            &r.neigh,
            1000 + tick * 100,
            SOLICIT_BACKOFF_MS,
            |_, _| sent += 1,
        );
    }
    assert_eq!(sent, 100 * 6, "requests per absent real in 60 s");
}

/// The per-real counts the least-connection schedulers read follow each
/// connection: inactive when bound, active from SYN_RECV, inactive again
/// when it closes, gone when it expires (IPVS's activeconns/inactconns).
#[test]
fn per_real_counts_follow_connection_state() {
    let mut r = rig(ForwardMethod::Nat);
    let stats = |r: &Rig| {
        let snap = r.worker.snapshot().clone();
        let s = &snap.service(0).unwrap().stats[0];
        (s.active(), s.inactive())
    };
    run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, SYN, b""));
    assert_eq!(stats(&r), (1, 0), "SYN_RECV is active");
    let reply = testpkt::real_to_client(0, 64);
    run(&mut r, &testpkt::tcp(&reply, 8080, 40000, SYN | ACK, b""));
    run(&mut r, &testpkt::tcp(&from_client(), 40000, 80, ACK, b""));
    assert_eq!(stats(&r), (1, 0), "ESTABLISHED");
    run(
        &mut r,
        &testpkt::tcp(&reply, 8080, 40000, tcp::flags::FIN | ACK, b""),
    );
    assert_eq!(stats(&r), (0, 1), "FIN_WAIT is inactive");
    // TIME_WAIT/FIN_WAIT expire after 120 s; the connection unbinds.
    r.worker.housekeeping(1_000_000 + 121_000);
    assert_eq!(stats(&r), (0, 0));
    assert_eq!(r.worker.conns().len(), 0);
}

#[test]
fn wlc_passes_over_busy_reals() {
    let mut r = rig_with(
        ForwardMethod::Nat,
        SchedulerKind::Wlc,
        &[1, 1, 1],
        WorkerConfig::default(),
    );
    for i in 0..3 {
        r.neigh.learn(rip(i), rmac(i), 0);
    }
    r.neigh.learn(CLIENT, CLIENT_MAC, 0);
    let real_of = |p: &VecPacket| ip_of(p).dst_addr();
    // Two long connections, established.
    let a = real_of(&run(&mut r, &testpkt::tcp(&from_client(), 1000, 80, SYN, b"")).1);
    let b = real_of(&run(&mut r, &testpkt::tcp(&from_client(), 1001, 80, SYN, b"")).1);
    assert_ne!(a, b);
    // Short connections: handshake, request, server closes, client closes.
    for k in 0..10u16 {
        let port = 2000 + k;
        let real = real_of(&run(&mut r, &testpkt::tcp(&from_client(), port, 80, SYN, b"")).1);
        assert!(
            real != a && real != b,
            "short connection {k} went to a busy real"
        );
        let reply = Hdr {
            src_mac: rmac(2),
            dst_mac: DIRECTOR_MAC,
            src: real,
            dst: CLIENT,
            ttl: 64,
        };
        run(&mut r, &testpkt::tcp(&reply, 8080, port, SYN | ACK, b""));
        run(
            &mut r,
            &testpkt::tcp(&from_client(), port, 80, ACK, b"GET /"),
        );
        run(
            &mut r,
            &testpkt::tcp(
                &reply,
                8080,
                port,
                tcp::flags::FIN | ACK | tcp::flags::PSH,
                b"rs3",
            ),
        );
        run(
            &mut r,
            &testpkt::tcp(&from_client(), port, 80, tcp::flags::FIN | ACK, b""),
        );
        run(&mut r, &testpkt::tcp(&reply, 8080, port, ACK, b""));
    }
}

/// The local network control block (224.0.0.0/24: the sync daemon's
/// messages, VRRP) goes to the control thread; other multicast is not for
/// us.
#[test]
fn multicast_goes_to_the_control_thread() {
    let mut r = rig(ForwardMethod::Nat);
    let group = |dst: Ipv4Addr| Hdr {
        dst,
        dst_mac: Mac([0x01, 0x00, 0x5e, 0x00, 0x00, dst.octets()[3]]),
        ..from_client()
    };
    let sync = testpkt::udp(
        &group(Ipv4Addr::new(224, 0, 0, 81)),
        8848,
        8848,
        b"msg",
        true,
    );
    assert_eq!(run(&mut r, &sync).0, Verdict::ToControl);
    let other = testpkt::udp(&group(Ipv4Addr::new(239, 1, 2, 3)), 5000, 5000, b"x", true);
    assert_eq!(run(&mut r, &other).0, Verdict::Drop(DropReason::IpNotForUs));
    assert_eq!(r.counters.forwarded.get(), 0);
}

/// A director that is VRRP backup (`Snapshot::standby`) forwards nothing,
/// answers ARP only for its own addresses, and still hands the control
/// thread what is its own (sync messages, VRRP advertisements); as master
/// again it forwards the same connection to the same real.
#[test]
fn a_vrrp_backup_forwards_nothing_and_answers_arp_for_its_own_addresses_only() {
    let gateway = Ipv4Addr::new(198, 18, 2, 254);
    let mut r = rig(ForwardMethod::Nat);
    let syn = testpkt::tcp(&from_client(), 40000, 80, SYN, b"");
    assert_eq!(run(&mut r, &syn).0, Verdict::Forward { port: 0 });
    let ha = |r: &mut Rig, standby: bool| {
        let snap = (**r.worker.snapshot())
            .clone()
            .with_high_availability(standby, vec![gateway]);
        r.worker.set_snapshot(Arc::new(snap));
    };
    let arp_for = |target: Ipv4Addr| {
        testpkt::arp(
            Operation::Request,
            CLIENT_MAC,
            CLIENT,
            Mac::UNSPECIFIED,
            target,
            Mac::BROADCAST,
        )
    };
    ha(&mut r, true);
    let ack = testpkt::tcp(&from_client(), 40000, 80, ACK, b"data");
    assert_eq!(run(&mut r, &ack).0, Verdict::Drop(DropReason::Standby));
    let other_syn = testpkt::tcp(&from_client(), 40001, 80, SYN, b"");
    assert_eq!(
        run(&mut r, &other_syn).0,
        Verdict::Drop(DropReason::Standby)
    );
    let echo = testpkt::icmp_echo(&from_client(), 7, 1, b"ping");
    assert_eq!(run(&mut r, &echo).0, Verdict::Drop(DropReason::Standby));
    for target in [VIP, gateway] {
        assert_eq!(
            run(&mut r, &arp_for(target)).0,
            Verdict::Drop(DropReason::ArpNotForUs),
            "{target}"
        );
    }
    assert_eq!(
        run(&mut r, &arp_for(DIR_SERVER_SIDE)).0,
        Verdict::Forward { port: 0 }
    );
    let sync = testpkt::udp(
        &Hdr {
            dst: Ipv4Addr::new(224, 0, 0, 81),
            dst_mac: Mac([0x01, 0x00, 0x5e, 0x00, 0x00, 81]),
            ..from_client()
        },
        8848,
        8848,
        b"msg",
        true,
    );
    assert_eq!(run(&mut r, &sync).0, Verdict::ToControl);
    let adv = l4vs_wire::vrrp::Advertisement {
        vrid: 51,
        priority: 100,
        max_adver_int: 10,
        addresses: &[VIP],
    };
    let mut vrrp = vec![0u8; adv.frame_len()];
    adv.emit_frame(
        &mut vrrp,
        CLIENT,
        1,
        l4vs_wire::vrrp::ChecksumMode::PseudoHeader,
    )
    .unwrap();
    assert_eq!(run(&mut r, &vrrp).0, Verdict::ToControl);
    assert_eq!(r.counters.drops_of(DropReason::Standby), 3);

    // Master again: the gateway is answered for, the connection goes on.
    ha(&mut r, false);
    for target in [VIP, gateway] {
        let (v, p) = run(&mut r, &arp_for(target));
        assert_eq!(v, Verdict::Forward { port: 0 }, "{target}");
        let a = arp::Packet::new_checked(&p.data()[14..]).unwrap();
        assert_eq!(
            (a.sender_hw_addr(), a.sender_proto_addr()),
            (DIRECTOR_MAC, target)
        );
    }
    let (v, p) = run(&mut r, &ack);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(ip_of(&p).dst_addr(), rip(0));
}

/// A worker remembers resolved next hops, and follows a neighbour whose
/// MAC changes (a real server replaced, a gratuitous ARP) at the next
/// packet.
#[test]
fn a_next_hop_whose_mac_changes_is_followed_at_once() {
    let mut r = rig(ForwardMethod::Nat);
    let syn = testpkt::tcp(&from_client(), 40000, 80, SYN, b"");
    let (v, p) = run(&mut r, &syn);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(eth_of(&p).dst_addr(), rmac(0));
    let ack = testpkt::tcp(&from_client(), 40000, 80, ACK, b"x");
    assert_eq!(eth_of(&run(&mut r, &ack).1).dst_addr(), rmac(0));
    let moved = Mac([2, 0, 0, 0, 0x99, 0x01]);
    r.neigh.learn(rip(0), moved, 0);
    let (v, p) = run(&mut r, &ack);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(eth_of(&p).dst_addr(), moved);
    // A static entry too.
    let fixed = Mac([2, 0, 0, 0, 0x99, 0x02]);
    r.neigh.set_static(rip(0), fixed, 0);
    assert_eq!(eth_of(&run(&mut r, &ack).1).dst_addr(), fixed);
    // And the replies' next hop, the client.
    let reply = testpkt::real_to_client(0, 64);
    let back = testpkt::tcp(&reply, 8080, 40000, SYN | ACK, b"");
    assert_eq!(eth_of(&run(&mut r, &back).1).dst_addr(), CLIENT_MAC);
    let client_moved = Mac([2, 0, 0, 0, 0x99, 0x03]);
    r.neigh.learn(CLIENT, client_moved, 0);
    let back = testpkt::tcp(&reply, 8080, 40000, ACK, b"y");
    assert_eq!(eth_of(&run(&mut r, &back).1).dst_addr(), client_moved);
}
