//! Four workers behind an emulated NIC that spreads packets by a 4-tuple
//! Toeplitz hash, as RSS does: every NAT packet, replies included, must be
//! forwarded correctly whatever queue it lands on, and each connection
//! must live in exactly one worker's table.

use core::net::Ipv4Addr;
use l4vs_dataplane::steer::{toeplitz, RSS_KEY};
use l4vs_dataplane::testpkt::{self, Hdr};
use l4vs_dataplane::testpkt::{real_addr as rip, real_mac as rmac};
use l4vs_dataplane::testpkt::{DIRECTOR_MAC, VIP};
use l4vs_dataplane::{
    Counters, ForwardMethod, LocalAddress, NeighborTable, PacketBuf, PortInfo, Protocol, Real,
    SchedulerKind, Service, Snapshot, VecPacket, Verdict, Worker, WorkerConfig,
};
use l4vs_wire::ethernet::Address as Mac;
use l4vs_wire::{ipv4, tcp};
use std::sync::Arc;

const WORKERS: u16 = 4;

/// The queue a NIC hashing (src, dst, sport, dport) would pick.
fn rss_queue(frame: &[u8]) -> u16 {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    let (sp, dp) = tcp::ports(ip.payload()).unwrap();
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&ip.src_addr().octets());
    input[4..8].copy_from_slice(&ip.dst_addr().octets());
    input[8..10].copy_from_slice(&sp.to_be_bytes());
    input[10..].copy_from_slice(&dp.to_be_bytes());
    (toeplitz(&RSS_KEY, &input) % u32::from(WORKERS)) as u16
}

#[test]
fn nat_is_correct_on_any_queue() {
    let reals: Vec<Real> = (0..3)
        .map(|i| Real {
            addr: rip(i),
            port: 8080,
            weight: 1,
            method: ForwardMethod::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        })
        .collect();
    let svc = Service {
        name: "web".into(),
        vip: VIP,
        port: 80,
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Rr,
        reals,
        options: Default::default(),
    };
    let snap = Arc::new(
        Snapshot::new(
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
            None,
            vec![svc],
        )
        .unwrap(),
    );
    let neigh = Arc::new(NeighborTable::new(1024));
    for i in 0..3 {
        neigh.learn(rip(i), rmac(i), 0);
    }
    let counters: Vec<Arc<Counters>> = (0..WORKERS)
        .map(|_| Arc::new(Counters::default()))
        .collect();
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|w| {
            let cfg = WorkerConfig {
                conn_capacity: 4096,
                worker_id: w,
                workers: WORKERS,
                ..Default::default()
            };
            Worker::new(
                snap.clone(),
                neigh.clone(),
                counters[usize::from(w)].clone(),
                cfg,
            )
        })
        .collect();

    // Deliver a frame as the NIC would, follow redirects, return the result.
    let mut deliver = |frame: Vec<u8>| -> VecPacket {
        let mut w = rss_queue(&frame);
        let mut p = VecPacket::new(&frame);
        for _ in 0..2 {
            match workers[usize::from(w)].process(0, &mut p, 1000) {
                Verdict::Forward { port: 0 } => return p,
                Verdict::Redirect { worker } => {
                    assert_ne!(worker, w, "redirected to itself");
                    w = worker;
                }
                v => panic!("unexpected verdict {v:?}"),
            }
        }
        panic!("redirected twice");
    };

    let clients = 200u32;
    for c in 0..clients {
        let client = Ipv4Addr::from_bits(0xc612_6400 + c); // 198.18.100.x and up
        let cmac = Mac([2, 0, 0, 1, (c >> 8) as u8, c as u8]);
        neigh.learn(client, cmac, 0);
        let up = Hdr {
            src_mac: cmac,
            dst_mac: DIRECTOR_MAC,
            src: client,
            dst: VIP,
            ttl: 64,
        };
        let syn = deliver(testpkt::tcp(
            &up,
            30000 + c as u16,
            80,
            tcp::flags::SYN,
            b"",
        ));
        let ip = ipv4::Packet::new_checked(&syn.data()[14..]).unwrap();
        let real = ip.dst_addr();
        assert!((0..3).any(|i| rip(i) == real));
        // The real server answers from RIP:8080; the reply hashes elsewhere.
        let down_hdr = Hdr {
            src_mac: rmac(0),
            dst_mac: DIRECTOR_MAC,
            src: real,
            dst: client,
            ttl: 64,
        };
        let synack = deliver(testpkt::tcp(
            &down_hdr,
            8080,
            30000 + c as u16,
            tcp::flags::SYN | tcp::flags::ACK,
            b"",
        ));
        let ip = ipv4::Packet::new_checked(&synack.data()[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, client));
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(t.src_port(), 80);
        assert!(t.verify_checksum(VIP, client));
        // And the client's next segment reaches the same real.
        let ack = deliver(testpkt::tcp(
            &up,
            30000 + c as u16,
            80,
            tcp::flags::ACK,
            b"GET /",
        ));
        assert_eq!(
            ipv4::Packet::new_checked(&ack.data()[14..])
                .unwrap()
                .dst_addr(),
            real
        );
    }

    let in_tables: usize = workers.iter().map(|w| w.conns().len()).sum();
    assert_eq!(
        in_tables, clients as usize,
        "each connection in exactly one table"
    );
    let redirected: u64 = counters.iter().map(|c| c.redirected.get()).sum();
    let created: u64 = counters.iter().map(|c| c.conns_created.get()).sum();
    assert_eq!(created, u64::from(clients));
    // With 4-tuple RSS about 3/4 of packets land on a non-owner.
    assert!(
        redirected > u64::from(clients),
        "redirects exercised: {redirected}"
    );
    println!("{redirected} of {} packets redirected", 3 * clients);
}

/// The fragments of one datagram, whatever queue they land on, end on the
/// worker that owns the client's address: a NIC hashing 4-tuples sees no
/// ports in a later fragment and puts it elsewhere, so every fragment is
/// steered by address alone.
#[test]
fn fragments_meet_on_the_owner_of_their_client() {
    let svc = Service {
        name: "dns".into(),
        vip: VIP,
        port: 53,
        protocol: Protocol::Udp,
        scheduler: SchedulerKind::Rr,
        reals: vec![Real {
            addr: rip(0),
            port: 53,
            weight: 1,
            method: ForwardMethod::DirectRouting,
            upper_threshold: 0,
            lower_threshold: 0,
        }],
        options: Default::default(),
    };
    let (ports, locals) = testpkt::lab_director();
    let snap = Arc::new(Snapshot::new(ports, locals, None, vec![svc]).unwrap());
    let neigh = Arc::new(NeighborTable::new(64));
    neigh.learn(rip(0), rmac(0), 0);
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|w| {
            Worker::new(
                snap.clone(),
                neigh.clone(),
                Arc::new(Counters::default()),
                WorkerConfig {
                    conn_capacity: 256,
                    worker_id: w,
                    workers: WORKERS,
                    ..Default::default()
                },
            )
        })
        .collect();
    let client = Hdr {
        src_mac: Mac([2, 0, 0, 0, 1, 10]),
        dst_mac: DIRECTOR_MAC,
        src: Ipv4Addr::new(198, 18, 1, 10),
        dst: VIP,
        ttl: 64,
    };
    let frame = testpkt::udp(&client, 5000, 53, &[4u8; 2900], true);
    // Each fragment arrives on every worker in turn: exactly one keeps it.
    let mut owners = vec![];
    for bytes in testpkt::fragments(&frame, 1500) {
        let mut kept = vec![];
        for (w, worker) in workers.iter_mut().enumerate() {
            let mut p = VecPacket::new(&bytes);
            match worker.process(0, &mut p, 0) {
                Verdict::Redirect { worker } => assert_ne!(usize::from(worker), w),
                Verdict::Forward { .. } => kept.push(w),
                v => panic!("worker {w}: {v:?}"),
            }
        }
        assert_eq!(kept.len(), 1);
        owners.push(kept[0]);
    }
    assert_eq!(owners[0], owners[1], "both on one worker");
}
