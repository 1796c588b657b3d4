//! Persistence templates (ipvsadm -p/-M), port-zero services and
//! firewall-mark services with the built-in classifier.

use core::net::Ipv4Addr;
use l4vs_dataplane::conn::Timeouts;
use l4vs_dataplane::testpkt::{self, Hdr};
use l4vs_dataplane::testpkt::{real_addr as rip, real_mac as rmac};
use l4vs_dataplane::testpkt::{DIRECTOR_MAC, VIP};
use l4vs_dataplane::{
    Counters, DropReason, ForwardMethod, LocalAddress, MarkRule, NeighborTable, PacketBuf,
    Persistence, PortInfo, Protocol, Real, SchedulerKind, Service, ServiceOptions, Snapshot,
    VecPacket, Verdict, Worker, WorkerConfig,
};
use l4vs_wire::ethernet::Address as Mac;
use l4vs_wire::{ipv4, tcp};
use std::sync::Arc;

const SYN: u8 = tcp::flags::SYN;

fn reals(method: ForwardMethod, weights: &[u32]) -> Vec<Real> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| Real {
            addr: rip(i),
            port: 8080,
            weight: *w,
            method,
            upper_threshold: 0,
            lower_threshold: 0,
        })
        .collect()
}

fn service(port: u16, protocol: Protocol, reals: Vec<Real>, options: ServiceOptions) -> Service {
    Service {
        name: format!("svc{port}"),
        vip: VIP,
        port,
        protocol,
        scheduler: SchedulerKind::Rr,
        reals,
        options,
    }
}

fn snapshot(services: Vec<Service>, marks: Vec<MarkRule>) -> Arc<Snapshot> {
    let snap = Snapshot::new(
        vec![PortInfo {
            mac: DIRECTOR_MAC,
            mtu: 1500,
        }],
        vec![
            LocalAddress {
                port: 0,
                addr: Ipv4Addr::new(198, 18, 1, 1),
                prefix_len: 16,
            },
            LocalAddress {
                port: 0,
                addr: Ipv4Addr::new(198, 18, 2, 1),
                prefix_len: 24,
            },
        ],
        None,
        services,
    )
    .unwrap();
    Arc::new(snap.with_marks(marks))
}

fn worker(snap: Arc<Snapshot>) -> (Worker, Arc<Counters>) {
    let neigh = Arc::new(NeighborTable::new(256));
    for i in 0..4 {
        neigh.learn(rip(i), rmac(i), 0);
    }
    for c in 0..=255u8 {
        neigh.learn(Ipv4Addr::new(198, 18, 1, c), Mac([2, 0, 0, 0, 1, c]), 0);
        neigh.learn(Ipv4Addr::new(198, 18, 5, c), Mac([2, 0, 0, 0, 5, c]), 0);
    }
    let counters = Arc::new(Counters::default());
    let w = Worker::new(
        snap,
        neigh,
        counters.clone(),
        WorkerConfig {
            conn_capacity: 4096,
            ..Default::default()
        },
    );
    (w, counters)
}

fn persistent(timeout: u32, netmask: u8) -> ServiceOptions {
    ServiceOptions {
        persistence: Some(Persistence { timeout, netmask }),
        ..Default::default()
    }
}

/// Sends a SYN; returns (real address, destination port) it was sent to.
fn syn(
    w: &mut Worker,
    client: Ipv4Addr,
    sport: u16,
    dport: u16,
    now_ms: u64,
) -> Result<(Ipv4Addr, u16), Verdict> {
    let h = Hdr {
        src_mac: Mac([2, 0, 0, 0, 1, 10]),
        dst_mac: DIRECTOR_MAC,
        src: client,
        dst: VIP,
        ttl: 64,
    };
    let mut p = VecPacket::new(&testpkt::tcp(&h, sport, dport, SYN, b""));
    match w.process(0, &mut p, now_ms) {
        Verdict::Forward { .. } => {
            let ip = ipv4::Packet::new_checked(&p.data()[14..]).unwrap();
            let (_, dp) = tcp::ports(ip.payload()).unwrap();
            Ok((ip.dst_addr(), dp))
        }
        v => Err(v),
    }
}

#[test]
fn persistence_keeps_a_client_on_one_real_across_50_connections() {
    let snap = snapshot(
        vec![service(
            80,
            Protocol::Tcp,
            reals(ForwardMethod::Nat, &[1, 1, 1]),
            persistent(300, 32),
        )],
        vec![],
    );
    let (mut w, counters) = worker(snap);
    let a = Ipv4Addr::new(198, 18, 1, 10);
    let first = syn(&mut w, a, 20000, 80, 1000).unwrap().0;
    for k in 1..50 {
        assert_eq!(
            syn(&mut w, a, 20000 + k, 80, 1000 + u64::from(k))
                .unwrap()
                .0,
            first,
            "connection {k}"
        );
    }
    // Another client is scheduled (rr moves on) and sticks too.
    let b = Ipv4Addr::new(198, 18, 1, 11);
    let other = syn(&mut w, b, 30000, 80, 2000).unwrap().0;
    assert_ne!(other, first);
    assert_eq!(syn(&mut w, b, 30001, 80, 2000).unwrap().0, other);
    assert_eq!(counters.templates_created.get(), 2);
    assert_eq!(counters.conns_created.get(), 52);
}

#[test]
fn persistence_netmask_groups_clients() {
    let snap = snapshot(
        vec![service(
            80,
            Protocol::Tcp,
            reals(ForwardMethod::Nat, &[1, 1, 1]),
            persistent(300, 24),
        )],
        vec![],
    );
    let (mut w, _) = worker(snap);
    let one = syn(&mut w, Ipv4Addr::new(198, 18, 1, 10), 20000, 80, 0)
        .unwrap()
        .0;
    assert_eq!(
        syn(&mut w, Ipv4Addr::new(198, 18, 1, 200), 20000, 80, 0)
            .unwrap()
            .0,
        one,
        "same /24"
    );
    assert_ne!(
        syn(&mut w, Ipv4Addr::new(198, 18, 5, 1), 20000, 80, 0)
            .unwrap()
            .0,
        one,
        "other /24"
    );
}

#[test]
fn template_expires_after_its_timeout() {
    let snap = snapshot(
        vec![service(
            80,
            Protocol::Tcp,
            reals(ForwardMethod::Nat, &[1, 1]),
            persistent(60, 32),
        )],
        vec![],
    );
    let (mut w, _) = worker(snap);
    let a = Ipv4Addr::new(198, 18, 1, 10);
    let first = syn(&mut w, a, 20000, 80, 0).unwrap().0;
    // Renewed by a connection at 50 s: still bound at 100 s.
    assert_eq!(syn(&mut w, a, 20001, 80, 50_000).unwrap().0, first);
    assert_eq!(syn(&mut w, a, 20002, 80, 100_000).unwrap().0, first);
    // 60 s after the last use the template is gone: rr picks the next real.
    w.housekeeping(161_000);
    assert_ne!(syn(&mut w, a, 20003, 80, 161_000).unwrap().0, first);
}

#[test]
fn quiescent_real_keeps_or_loses_its_templates_as_configured() {
    for expire_quiescent in [false, true] {
        let opts = ServiceOptions {
            expire_quiescent_template: expire_quiescent,
            ..persistent(300, 32)
        };
        let (mut w, _) = worker(snapshot(
            vec![service(
                80,
                Protocol::Tcp,
                reals(ForwardMethod::Nat, &[1, 1]),
                opts,
            )],
            vec![],
        ));
        let a = Ipv4Addr::new(198, 18, 1, 10);
        assert_eq!(syn(&mut w, a, 20000, 80, 0).unwrap().0, rip(0));
        // The operator sets real 0's weight to 0.
        w.set_snapshot(snapshot(
            vec![service(
                80,
                Protocol::Tcp,
                reals(ForwardMethod::Nat, &[0, 1]),
                opts,
            )],
            vec![],
        ));
        let next = syn(&mut w, a, 20001, 80, 1000).unwrap().0;
        if expire_quiescent {
            assert_eq!(next, rip(1), "expire_quiescent_template: rescheduled");
        } else {
            assert_eq!(next, rip(0), "IPVS default: a template outlives quiescence");
        }
        // Either way a new client never lands on the quiescent real.
        assert_eq!(
            syn(&mut w, Ipv4Addr::new(198, 18, 1, 99), 1, 80, 1000)
                .unwrap()
                .0,
            rip(1)
        );
    }
}

#[test]
fn port_zero_service_takes_every_port_and_keeps_it() {
    let snap = snapshot(
        vec![service(
            0,
            Protocol::Tcp,
            reals(ForwardMethod::Nat, &[1, 1]),
            persistent(300, 32),
        )],
        vec![],
    );
    let (mut w, _) = worker(snap);
    let a = Ipv4Addr::new(198, 18, 1, 10);
    let (r80, p80) = syn(&mut w, a, 20000, 80, 0).unwrap();
    let (r443, p443) = syn(&mut w, a, 20001, 443, 0).unwrap();
    assert_eq!((p80, p443), (80, 443), "the packet's own port");
    assert_eq!(r80, r443, "one template for every port of the VIP");
}

fn web_marks() -> Vec<MarkRule> {
    vec![MarkRule {
        dst: VIP,
        prefix_len: 32,
        protocol: Some(Protocol::Tcp),
        ports: vec![(80, 80), (443, 443)],
        mark: 1,
    }]
}

#[test]
fn fwmark_service_groups_http_and_https_with_persistence() {
    let svc = Service {
        name: "web-mark".into(),
        vip: Ipv4Addr::UNSPECIFIED,
        port: 0,
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Rr,
        reals: reals(ForwardMethod::Nat, &[1, 1, 1]),
        options: ServiceOptions {
            fwmark: 1,
            ..persistent(300, 32)
        },
    };
    let (mut w, counters) = worker(snapshot(vec![svc], web_marks()));
    for (i, client) in [Ipv4Addr::new(198, 18, 1, 10), Ipv4Addr::new(198, 18, 1, 11)]
        .into_iter()
        .enumerate()
    {
        let (r80, p80) = syn(&mut w, client, 20000, 80, 0).unwrap();
        let (r443, p443) = syn(&mut w, client, 20001, 443, 0).unwrap();
        assert_eq!(r80, r443, "client {i}: HTTP and HTTPS on one real");
        assert_eq!(
            (p80, p443),
            (80, 443),
            "fwmark services keep the packet's port"
        );
        assert_eq!(r80, rip(i), "one template per client, rr between them");
    }
    assert_eq!(counters.templates_created.get(), 2);
    // Port 22 of the VIP is not marked and has no service.
    assert_eq!(
        syn(&mut w, Ipv4Addr::new(198, 18, 1, 10), 20002, 22, 0),
        Err(Verdict::Drop(DropReason::NoService))
    );
}

/// Overlapping rules: the first that matches decides, as iptables rules
/// in order do; a packet matching a rule whose mark has no service falls
/// back to the address lookup.
#[test]
fn overlapping_mark_rules_first_match_wins() {
    let mk = |mark, real: usize, port| Service {
        name: format!("mark{mark}"),
        vip: Ipv4Addr::UNSPECIFIED,
        port: 0,
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Rr,
        reals: vec![Real {
            addr: rip(real),
            port,
            weight: 1,
            method: ForwardMethod::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }],
        options: ServiceOptions {
            fwmark: mark,
            ..Default::default()
        },
    };
    let rules = vec![
        MarkRule {
            dst: VIP,
            prefix_len: 32,
            protocol: Some(Protocol::Tcp),
            ports: vec![(80, 80)],
            mark: 2,
        },
        MarkRule {
            dst: Ipv4Addr::new(198, 18, 0, 0),
            prefix_len: 24,
            protocol: None,
            ports: vec![],
            mark: 1,
        },
        MarkRule {
            dst: VIP,
            prefix_len: 32,
            protocol: Some(Protocol::Tcp),
            ports: vec![(8000, 8999)],
            mark: 3,
        },
    ];
    let by_addr = service(
        8080,
        Protocol::Tcp,
        vec![Real {
            addr: rip(3),
            port: 8080,
            weight: 1,
            method: ForwardMethod::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }],
        ServiceOptions::default(),
    );
    let (mut w, _) = worker(snapshot(vec![mk(1, 0, 0), mk(2, 1, 0), by_addr], rules));
    let a = Ipv4Addr::new(198, 18, 1, 10);
    assert_eq!(
        syn(&mut w, a, 1000, 80, 0).unwrap().0,
        rip(1),
        "rule 1 (mark 2) before the broader rule 2"
    );
    assert_eq!(
        syn(&mut w, a, 1001, 443, 0).unwrap().0,
        rip(0),
        "rule 2 (mark 1)"
    );
    assert_eq!(
        syn(&mut w, a, 1002, 8080, 0).unwrap().0,
        rip(0),
        "rule 2 shadows rule 3 and the address service"
    );
    // Another address of the marked /24 is a VIP too (ARP, steering).
    assert_eq!(syn(&mut w, a, 1003, 25, 0).unwrap().0, rip(0));
}

#[test]
fn per_service_timeouts_apply() {
    let short = ServiceOptions {
        timeouts: Timeouts {
            udp: 5,
            ..Timeouts::default()
        },
        ..Default::default()
    };
    let snap = snapshot(
        vec![service(
            53,
            Protocol::Udp,
            reals(ForwardMethod::Nat, &[1]),
            short,
        )],
        vec![],
    );
    let (mut w, counters) = worker(snap);
    let h = Hdr {
        src_mac: Mac([2, 0, 0, 0, 1, 10]),
        dst_mac: DIRECTOR_MAC,
        src: Ipv4Addr::new(198, 18, 1, 10),
        dst: VIP,
        ttl: 64,
    };
    let mut p = VecPacket::new(&testpkt::udp(&h, 5000, 53, b"q", true));
    assert!(matches!(w.process(0, &mut p, 0), Verdict::Forward { .. }));
    w.housekeeping(4_000);
    assert_eq!(w.conns().len(), 1);
    w.housekeeping(5_000);
    assert_eq!(w.conns().len(), 0);
    assert_eq!(counters.conns_expired.get(), 1);
}

/// ip_vs_in_hook on a connection whose real server was removed: with
/// `expire_nodest_conn` off (the default) the client's packet is dropped
/// and the entry stays; on, the entry ends and the packet is scheduled
/// afresh: a UDP datagram goes to a remaining real, a TCP segment that is
/// not a SYN finds no connection and is dropped. Replies of the removed
/// NAT real are still rewritten (ip_vs_out_hook does not check).
#[test]
fn removed_real_drops_or_reschedules_as_configured() {
    for (protocol, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 53)] {
        for expire_nodest in [false, true] {
            let snap = snapshot(
                vec![service(
                    port,
                    protocol,
                    reals(ForwardMethod::Nat, &[1, 1]),
                    ServiceOptions::default(),
                )],
                vec![],
            );
            let neigh = Arc::new(NeighborTable::new(64));
            for i in 0..2 {
                neigh.learn(rip(i), rmac(i), 0);
            }
            neigh.learn(Ipv4Addr::new(198, 18, 1, 10), Mac([2, 0, 0, 0, 1, 10]), 0);
            let counters = Arc::new(Counters::default());
            let cfg = WorkerConfig {
                conn_capacity: 64,
                expire_nodest_conn: expire_nodest,
                ..Default::default()
            };
            let mut w = Worker::new(snap, neigh, counters.clone(), cfg);
            let a = Ipv4Addr::new(198, 18, 1, 10);
            let h = Hdr {
                src_mac: Mac([2, 0, 0, 0, 1, 10]),
                dst_mac: DIRECTOR_MAC,
                src: a,
                dst: VIP,
                ttl: 64,
            };
            let frame = |flags: u8| match protocol {
                Protocol::Tcp => testpkt::tcp(&h, 20000, port, flags, b"x"),
                Protocol::Udp => testpkt::udp(&h, 20000, port, b"x", true),
            };
            let dst_of = |p: &VecPacket| {
                ipv4::Packet::new_checked(&p.data()[14..])
                    .unwrap()
                    .dst_addr()
            };
            let mut p = VecPacket::new(&frame(tcp::flags::SYN));
            assert!(matches!(w.process(0, &mut p, 0), Verdict::Forward { .. }));
            assert_eq!(dst_of(&p), rip(0));
            // Real 0 is removed from the service.
            let only_1 = vec![Real {
                addr: rip(1),
                port: 8080,
                weight: 1,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            }];
            w.set_snapshot(snapshot(
                vec![service(port, protocol, only_1, ServiceOptions::default())],
                vec![],
            ));
            // The removed real's reply is still rewritten back to the VIP.
            let reply = Hdr {
                src_mac: rmac(0),
                dst_mac: DIRECTOR_MAC,
                src: rip(0),
                dst: a,
                ttl: 64,
            };
            let mut r = VecPacket::new(&match protocol {
                Protocol::Tcp => testpkt::tcp(&reply, 8080, 20000, tcp::flags::ACK, b"y"),
                Protocol::Udp => testpkt::udp(&reply, 8080, 20000, b"y", true),
            });
            assert!(matches!(w.process(0, &mut r, 500), Verdict::Forward { .. }));
            let ip = ipv4::Packet::new_checked(&r.data()[14..]).unwrap();
            assert_eq!(ip.src_addr(), VIP);

            let mut p = VecPacket::new(&frame(tcp::flags::ACK));
            let v = w.process(0, &mut p, 1000);
            match (expire_nodest, protocol) {
                (false, _) => {
                    assert_eq!(v, Verdict::Drop(DropReason::NoDestination));
                    assert_eq!(w.conns().len(), 1, "the entry stays until it times out");
                }
                (true, Protocol::Tcp) => {
                    assert_eq!(v, Verdict::Drop(DropReason::TcpNotSyn));
                    assert_eq!(w.conns().len(), 0);
                }
                (true, Protocol::Udp) => {
                    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
                    assert_eq!(dst_of(&p), rip(1), "scheduled afresh");
                    assert_eq!(w.conns().len(), 1);
                    assert_eq!(counters.conns_created.get(), 2);
                }
            }
        }
    }
}

/// A firewall-mark NAT service keeps the packet's port (its reals have
/// none): when a reload removes an earlier real, the connections of the
/// later ones are still theirs, found by address, and keep forwarding;
/// only the removed real's connections drop.
#[test]
fn removing_a_real_of_a_fwmark_service_keeps_the_others_connections() {
    let portless = |n: usize| {
        (0..n)
            .map(|i| Real {
                addr: rip(i),
                port: 0,
                weight: 1,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect::<Vec<_>>()
    };
    let svc = |reals| Service {
        name: "web-mark".into(),
        vip: Ipv4Addr::UNSPECIFIED,
        port: 0,
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Rr,
        reals,
        options: ServiceOptions {
            fwmark: 1,
            ..Default::default()
        },
    };
    let (mut w, _) = worker(snapshot(vec![svc(portless(2))], web_marks()));
    let a = Ipv4Addr::new(198, 18, 1, 10);
    assert_eq!(syn(&mut w, a, 20000, 80, 0).unwrap(), (rip(0), 80));
    assert_eq!(syn(&mut w, a, 20001, 443, 0).unwrap(), (rip(1), 443));
    let mut only_1 = portless(2);
    only_1.remove(0);
    w.set_snapshot(snapshot(vec![svc(only_1)], web_marks()));
    let ack = |w: &mut Worker, sport, dport| {
        let h = Hdr {
            src_mac: Mac([2, 0, 0, 0, 1, 10]),
            dst_mac: DIRECTOR_MAC,
            src: a,
            dst: VIP,
            ttl: 64,
        };
        let mut p = VecPacket::new(&testpkt::tcp(&h, sport, dport, tcp::flags::ACK, b"x"));
        let v = w.process(0, &mut p, 1000);
        (
            v,
            ipv4::Packet::new_checked(&p.data()[14..])
                .unwrap()
                .dst_addr(),
        )
    };
    assert_eq!(
        ack(&mut w, 20001, 443),
        (Verdict::Forward { port: 0 }, rip(1)),
        "moved to index 0, still its real"
    );
    assert_eq!(
        ack(&mut w, 20000, 80).0,
        Verdict::Drop(DropReason::NoDestination)
    );
}
