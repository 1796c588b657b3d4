//! What a worker keeps when it swaps snapshots: the scheduler state of
//! every service whose compiled form did not change (rr positions, the
//! shared mh table), and fresh, per-worker random streams for those that
//! did. Also: ICMP errors go to the worker that owns the connection with
//! the persistence netmask applied, as the connection's own packets do.

use core::net::Ipv4Addr;
use l4vs_dataplane::testpkt::{self, Hdr, DIRECTOR_MAC};
use l4vs_dataplane::testpkt::{real_addr as rip, real_mac as rmac};
use l4vs_dataplane::testpkt::{CLIENT_MAC, VIP};
use l4vs_dataplane::{
    CompiledService, Counters, ForwardMethod, NeighborTable, PacketBuf, Persistence, Protocol,
    Real, SchedulerKind, Service, ServiceOptions, Snapshot, VecPacket, Verdict, Worker,
    WorkerConfig,
};
use l4vs_wire::{icmp, ipv4, tcp};
use std::sync::Arc;

fn service(port: u16, scheduler: SchedulerKind, options: ServiceOptions) -> Service {
    Service {
        name: format!("svc{port}"),
        vip: VIP,
        port,
        protocol: Protocol::Tcp,
        scheduler,
        reals: (0..3)
            .map(|i| Real {
                addr: rip(i),
                port,
                weight: 1,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect(),
        options,
    }
}

fn snapshot(slots: Vec<Option<Arc<CompiledService>>>) -> Arc<Snapshot> {
    let (ports, locals) = testpkt::lab_director();
    Arc::new(Snapshot::from_slots(ports, locals, None, slots).unwrap())
}

fn worker(snap: Arc<Snapshot>, seed: u64, id: u16, workers: u16) -> Worker {
    let neigh = Arc::new(NeighborTable::new(64));
    for i in 0..3 {
        neigh.set_static(rip(i), rmac(i), 0);
    }
    for c in 0..=255 {
        neigh.set_static(Ipv4Addr::new(198, 18, 1, c), CLIENT_MAC, 0);
    }
    Worker::new(
        snap,
        neigh,
        Arc::new(Counters::default()),
        WorkerConfig {
            conn_capacity: 4096,
            seed,
            worker_id: id,
            workers,
            ..WorkerConfig::default()
        },
    )
}

fn syn(client: u8, sport: u16, dport: u16) -> VecPacket {
    let h = Hdr {
        src_mac: CLIENT_MAC,
        dst_mac: DIRECTOR_MAC,
        src: Ipv4Addr::new(198, 18, 1, client),
        dst: VIP,
        ttl: 64,
    };
    VecPacket::new(&testpkt::tcp(&h, sport, dport, tcp::flags::SYN, &[]))
}

/// The real a new connection went to.
fn pick(w: &mut Worker, sport: u16, dport: u16) -> Ipv4Addr {
    let mut p = syn(10, sport, dport);
    assert_eq!(w.process(0, &mut p, 1000), Verdict::Forward { port: 0 });
    ipv4::Packet::new_checked(&p.data()[14..])
        .unwrap()
        .dst_addr()
}

#[test]
fn unchanged_services_keep_their_scheduler_state() {
    let rr = CompiledService::compile(service(80, SchedulerKind::Rr, Default::default())).unwrap();
    let mh =
        CompiledService::compile(service(443, SchedulerKind::mh(), Default::default())).unwrap();
    let wrr =
        CompiledService::compile(service(8080, SchedulerKind::Wrr, Default::default())).unwrap();
    let first = snapshot(vec![Some(rr.clone()), Some(mh.clone()), Some(wrr)]);
    let mut w = worker(first, 1, 0, 1);
    let mut other = worker(snapshot(vec![Some(rr.clone()), Some(mh.clone())]), 2, 0, 1);
    let table = w.scheduler(1).unwrap().shared_table_id().unwrap();
    // Both workers read the one table the control thread built.
    assert_eq!(other.scheduler(1).unwrap().shared_table_id(), Some(table));
    assert_eq!(pick(&mut w, 1000, 80), rip(0));
    assert_eq!(pick(&mut w, 1001, 80), rip(1));
    let _ = pick(&mut other, 1000, 80);

    // A change to the third service only: rr goes on where it was, and
    // the mh table is the same one.
    let mut changed = service(8080, SchedulerKind::Wrr, Default::default());
    changed.reals[0].weight = 5;
    let next = snapshot(vec![
        Some(rr.clone()),
        Some(mh.clone()),
        Some(CompiledService::compile(changed).unwrap()),
    ]);
    w.set_snapshot(next);
    assert_eq!(pick(&mut w, 1002, 80), rip(2), "rr position kept");
    assert_eq!(w.scheduler(1).unwrap().shared_table_id(), Some(table));

    // The rr service itself changed: its state starts afresh.
    let rr2 = CompiledService::compile(service(80, SchedulerKind::Rr, Default::default())).unwrap();
    w.set_snapshot(snapshot(vec![Some(rr2), Some(mh.clone()), None]));
    assert_eq!(
        pick(&mut w, 1003, 80),
        rip(0),
        "a changed service starts afresh"
    );
    assert!(w.scheduler(2).is_none(), "a freed slot has no scheduler");
    assert_eq!(w.scheduler(1).unwrap().shared_table_id(), Some(table));
}

#[test]
fn twos_streams_differ_between_workers_after_a_change() {
    let twos = |w: u32| {
        let mut s = service(80, SchedulerKind::Twos, Default::default());
        s.reals.iter_mut().for_each(|r| r.weight = w);
        CompiledService::compile(s).unwrap()
    };
    let mut a = worker(snapshot(vec![Some(twos(1))]), 11, 0, 1);
    let mut b = worker(snapshot(vec![Some(twos(1))]), 22, 0, 1);
    // The same change reaches both workers. Each gets its own compiled
    // copy, so that their connection counts (which twos also reads) evolve
    // apart from each other and only the random streams can tell them
    // apart.
    a.set_snapshot(snapshot(vec![Some(twos(2))]));
    b.set_snapshot(snapshot(vec![Some(twos(2))]));
    let picks = |w: &mut Worker| (0..64).map(|k| pick(w, 2000 + k, 80)).collect::<Vec<_>>();
    assert_ne!(
        picks(&mut a),
        picks(&mut b),
        "two workers drew the same twos sequence after a reload"
    );
}

#[test]
fn icmp_errors_reach_the_owner_chosen_with_the_persistence_netmask() {
    // Persistence over /24: every client of 198.18.1.0/24 belongs to one
    // worker, whatever its last octet.
    let persistent = ServiceOptions {
        persistence: Some(Persistence {
            timeout: 300,
            netmask: 24,
        }),
        ..Default::default()
    };
    let svc = CompiledService::compile(service(80, SchedulerKind::Rr, persistent)).unwrap();
    let snap = snapshot(vec![Some(svc)]);
    let workers: Vec<Worker> = (0..4).map(|i| worker(snap.clone(), 7, i, 4)).collect();
    let mut workers = workers;
    for client in 1..=40u8 {
        // The worker that owns the connection: where its SYN is not
        // redirected.
        let mut p = syn(client, 3000, 80);
        let owner = match workers[0].process(0, &mut p, 1000) {
            Verdict::Redirect { worker } => worker,
            Verdict::Forward { .. } => 0,
            v => panic!("{v:?}"),
        };
        // A router says the client is unreachable, about a packet of that
        // connection going VIP -> client; it lands on worker 0 or 1.
        let quoted = testpkt::tcp(
            &Hdr {
                src_mac: DIRECTOR_MAC,
                dst_mac: CLIENT_MAC,
                src: VIP,
                dst: Ipv4Addr::new(198, 18, 1, client),
                ttl: 64,
            },
            80,
            3000,
            tcp::flags::ACK,
            &[],
        );
        let err = testpkt::icmp_error(
            &Hdr {
                src_mac: CLIENT_MAC,
                dst_mac: DIRECTOR_MAC,
                src: Ipv4Addr::new(198, 18, 1, 254),
                dst: VIP,
                ttl: 64,
            },
            icmp::Message::DstUnreachable,
            1,
            (0, 0),
            &quoted[14..],
        );
        for first in [0usize, 1] {
            let mut p = VecPacket::new(&err);
            let v = workers[first].process(0, &mut p, 1000);
            let expected = if usize::from(owner) == first {
                // Not redirected: the owner handles it (no connection
                // here, so it is dropped as such, not redirected).
                !matches!(v, Verdict::Redirect { .. })
            } else {
                v == Verdict::Redirect { worker: owner }
            };
            assert!(
                expected,
                "client .{client}: worker {first} gave {v:?}, owner {owner}"
            );
        }
    }
}
