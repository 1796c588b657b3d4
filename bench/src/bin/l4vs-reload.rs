//! `l4vs-reload`: how long a configuration change stops a busy worker.
//!
//! One worker thread forwards UDP packets of established NAT flows in
//! bursts of 32, as fast as it can, and picks up a newly published
//! snapshot between two bursts (as the director's worker loop does). The
//! main thread builds `--services` Maglev (`mh`) services of `--reals`
//! real servers each, lets the worker run, then publishes
//!
//! 1. a change of one real server's weight in one service, and
//! 2. a full reload of the same configuration,
//!
//! each built the way the director builds it on its control thread (the
//! service table's commands, then a publication that compiles only the
//! changed services; the reload diffs a table built afresh from the same
//! services against the running one). For
//! each it prints the longest gap between the starts of two consecutive
//! bursts of the worker in a window around the change (the worker's stall),
//! next to the longest gap in a quiet window of the same length before it.
//! Nothing here is asserted: it prints what it measured.

use clap::Parser;
use core::net::Ipv4Addr;
use l4vs_control::table::{Command, Network, RealSpec, ServiceKey, ServiceSpec, ServiceTable};
use l4vs_dataplane::testpkt::{self, Hdr, CLIENT_MAC, DIRECTOR_MAC};
use l4vs_dataplane::{
    Counters, ForwardMethod, NeighborTable, Protocol, SchedulerKind, Snapshot, VecPacket, Verdict,
    Worker, WorkerConfig,
};
use l4vs_wire::ethernet::Address as MacAddr;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Longest worker stall while a configuration change is published")]
struct Args {
    /// Virtual services (each mh, 65537-slot table).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Real servers per service.
    #[arg(long, default_value_t = 10)]
    reals: usize,
    /// Quiet and change windows, milliseconds.
    #[arg(long, default_value_t = 300)]
    window_ms: u64,
}

const BURST: usize = 32;

fn vip(i: usize) -> Ipv4Addr {
    // 198.18.100.0 and up, 60 000 ports each.
    Ipv4Addr::from_bits(0xc612_6400 + (i / 60_000) as u32)
}

fn vport(i: usize) -> u16 {
    1024 + (i % 60_000) as u16
}

fn real_addr(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 2, 11 + j as u8)
}

fn key(i: usize) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        vip: IpAddr::V4(vip(i)),
        port: vport(i),
    }
}

fn real(j: usize, weight: u32) -> RealSpec {
    RealSpec {
        addr: IpAddr::V4(real_addr(j)),
        port: 53,
        weight,
        method: ForwardMethod::Nat,
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

/// A table of `n` mh services of `reals` reals each, by `-A` and `-a`.
fn table(n: usize, reals: usize) -> ServiceTable {
    let mut t = ServiceTable::new(Network {
        addresses: vec![
            (Ipv4Addr::new(198, 18, 1, 1), 24),
            (Ipv4Addr::new(198, 18, 2, 1), 24),
        ],
        ..Network::default()
    });
    for i in 0..n {
        t.apply(Command::AddService(ServiceSpec {
            key: key(i),
            name: Some(format!("svc{i}")),
            scheduler: SchedulerKind::mh(),
            persistence: None,
            timeouts: None,
            ops: false,
        }))
        .expect("-A");
        for j in 0..reals {
            t.apply(Command::AddReal(key(i), real(j, 1))).expect("-a");
        }
    }
    t
}

/// The snapshot of `t`, compiling what changed since the last call.
fn publish(t: &mut ServiceTable) -> Snapshot {
    let (ports, locals) = testpkt::lab_director();
    Snapshot::from_slots(ports, locals, None, t.compile().expect("compile"))
        .expect("benchmark snapshot")
}

/// What the worker thread shares with the main thread.
struct Shared {
    next: Mutex<Option<Arc<Snapshot>>>,
    published: AtomicU64,
    taken: AtomicU64,
    /// Longest gap between burst starts since the last reset, nanoseconds.
    max_gap_ns: AtomicU64,
    bursts: AtomicU64,
    /// How long the last snapshot swap took on the worker, nanoseconds.
    swap_ns: AtomicU64,
    stop: AtomicBool,
}

fn worker_thread(first: Arc<Snapshot>, shared: Arc<Shared>) {
    // The worker on a core of its own, as the director pins it.
    core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
    let neigh = Arc::new(NeighborTable::new(64));
    for j in 0..16 {
        neigh.set_static(real_addr(j), MacAddr([2, 0, 0, 0, 2, j as u8]), 0);
        neigh.set_static(
            Ipv4Addr::new(198, 18, 1, 10 + j as u8),
            MacAddr([2, 0, 0, 0, 1, j as u8]),
            0,
        );
    }
    let mut worker = Worker::new(
        first,
        neigh,
        Arc::new(Counters::default()),
        WorkerConfig {
            conn_capacity: 1 << 16,
            ..WorkerConfig::default()
        },
    );
    // Established flows to service 0 from 256 client ports.
    let templates: Vec<Vec<u8>> = (0..BURST * 8)
        .map(|k| {
            let h = Hdr {
                src_mac: CLIENT_MAC,
                dst_mac: DIRECTOR_MAC,
                src: Ipv4Addr::new(198, 18, 1, 10),
                dst: vip(0),
                ttl: 64,
            };
            testpkt::udp(&h, 10_000 + k as u16, vport(0), &[0u8; 18], true)
        })
        .collect();
    let mut pkts: Vec<VecPacket> = (0..BURST).map(|_| VecPacket::new(&templates[0])).collect();
    let mut seen = 0u64;
    let start = Instant::now();
    let mut last = start.elapsed().as_nanos() as u64;
    let mut round = 0usize;
    while !shared.stop.load(Ordering::Relaxed) {
        let t = start.elapsed().as_nanos() as u64;
        let gap = t - last;
        last = t;
        if gap > shared.max_gap_ns.load(Ordering::Relaxed) {
            shared.max_gap_ns.store(gap, Ordering::Relaxed);
        }
        for (k, p) in pkts.iter_mut().enumerate() {
            p.reset(&templates[(round * BURST + k) % templates.len()], 128);
        }
        round += 1;
        for p in &mut pkts {
            let v = worker.process(0, p, t / 1_000_000);
            debug_assert!(matches!(v, Verdict::Forward { .. }));
        }
        shared.bursts.fetch_add(1, Ordering::Relaxed);
        // Between bursts: a new snapshot, if one was published.
        let p = shared.published.load(Ordering::Acquire);
        if p != seen {
            let next = shared.next.lock().expect("lock").take();
            if let Some(s) = next {
                let t0 = Instant::now();
                worker.set_snapshot(s);
                shared
                    .swap_ns
                    .store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            seen = p;
            shared.taken.store(p, Ordering::Release);
        }
    }
}

fn main() {
    let args = Args::parse();
    core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    let window = Duration::from_millis(args.window_ms);
    let t0 = Instant::now();
    let mut running = table(args.services, args.reals);
    let first = Arc::new(publish(&mut running));
    println!(
        "l4vs-reload: {} mh services x {} reals built in {:.1} ms",
        args.services,
        args.reals,
        t0.elapsed().as_secs_f64() * 1e3
    );
    let shared = Arc::new(Shared {
        next: Mutex::new(None),
        published: AtomicU64::new(0),
        taken: AtomicU64::new(0),
        max_gap_ns: AtomicU64::new(0),
        bursts: AtomicU64::new(0),
        swap_ns: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let sh = shared.clone();
    let f = first.clone();
    let h = std::thread::spawn(move || worker_thread(f, sh));
    // Warm up: the worker builds its scheduler state at start.
    while shared.bursts.load(Ordering::Relaxed) < 1000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut gen = 0;
    let mut retired = vec![first.clone()];
    for (what, changed) in [
        ("one weight changed", Some(args.services / 2)),
        ("full reload, same config", None),
    ] {
        shared.max_gap_ns.store(0, Ordering::Relaxed);
        let b0 = shared.bursts.load(Ordering::Relaxed);
        std::thread::sleep(window);
        let quiet = shared.max_gap_ns.swap(0, Ordering::Relaxed);
        let quiet_bursts = shared.bursts.load(Ordering::Relaxed) - b0;
        // The control thread's work: change the table, build the snapshot.
        let c0 = Instant::now();
        match changed {
            Some(i) => {
                running
                    .apply(Command::EditReal(key(i), real(1, 3)))
                    .expect("-e");
            }
            None => {
                // The file as it now stands: the same services, with the
                // weight changed above.
                let mut file = table(args.services, args.reals);
                file.apply(Command::EditReal(key(args.services / 2), real(1, 3)))
                    .expect("-e");
                for cmd in running.diff(&file) {
                    running.apply(cmd).expect("reload command");
                }
            }
        }
        let next = Arc::new(publish(&mut running));
        // As the director does: the control thread keeps what it replaced,
        // so that the worker never frees a whole snapshot.
        retired.push(next.clone());
        let control_ms = c0.elapsed().as_secs_f64() * 1e3;
        shared.max_gap_ns.store(0, Ordering::Relaxed);
        *shared.next.lock().expect("lock") = Some(next);
        gen += 1;
        shared.published.store(gen, Ordering::Release);
        while shared.taken.load(Ordering::Acquire) != gen {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(window);
        let stall = shared.max_gap_ns.load(Ordering::Relaxed);
        println!(
            "l4vs-reload: {what}: longest gap between bursts {:.3} ms, of which the snapshot swap {:.3} ms (quiet window: {:.3} ms, {} bursts in {} ms); control thread built it in {:.1} ms",
            stall as f64 / 1e6,
            shared.swap_ns.load(Ordering::Relaxed) as f64 / 1e6,
            quiet as f64 / 1e6,
            quiet_bursts,
            args.window_ms,
            control_ms
        );
    }
    shared.stop.store(true, Ordering::Relaxed);
    h.join().expect("worker thread");
}
