//! `l4vs run`: boot EAL and the ports, start one pinned worker per
//! configured core, and run the control loop until SIGINT/SIGTERM.
//!
//! Each worker owns RX/TX queue `i` of every port and a
//! [`l4vs_dataplane::Worker`]; it polls its queues, hands each mbuf to the
//! dataplane, batches forwarded packets per TX port and frees the rest.
//! The control thread (the EAL main lcore) only waits, so far: the slow
//! path (exception path to the kernel, health checks, sync) comes later.
//! On a stop signal workers finish their burst, everything is flushed, and
//! the final counters are printed.

use crate::config::{self, Config};
use crate::mbuf_packet::MbufPacket;
use crate::plan;
use crate::table::{Change, Network, ServiceTable};
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use l4vs_dataplane::{
    Counters, DropReason, NeighborTable, Snapshot, Verdict, Worker, WorkerConfig,
};
use l4vs_dpdk::{
    Eal, Mbuf, Mempool, Port, PortConfig, Ring, RingConsumer, RingProducer, RxQueue, TxQueue,
};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The largest burst a worker uses; `workers.burst` is at most this.
const MAX_BURST: usize = 256;
/// Empty polls before an idle worker starts sleeping.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 64;
/// Housekeeping (connection expiry) interval.
const HOUSEKEEPING_MS: u64 = 100;
/// Slots of each worker-to-worker redirect ring.
const REDIRECT_RING_SIZE: u32 = 2048;

/// Everything a worker thread takes with it.
struct WorkerPlan {
    core: u32,
    rx: Vec<(u16, RxQueue)>,
    tx: Vec<TxQueue>,
    burst: usize,
    idle_sleep: Duration,
    snapshot: Arc<ArcSwap<Snapshot>>,
    neighbors: Arc<NeighborTable>,
    counters: Arc<Counters>,
    pool: Arc<Mempool>,
    seed: u64,
    worker_id: u16,
    workers: u16,
    timeouts: l4vs_dataplane::conn::Timeouts,
    expire_nodest_conn: bool,
    conn_capacity: u32,
    /// Rings to the other workers, indexed by worker (None for itself).
    redirect_out: Vec<Option<RingProducer>>,
    /// Rings from the other workers.
    redirect_in: Vec<RingConsumer>,
}

/// Runs the director until a stop signal; prints final counters.
/// SIGHUP reloads `path` (see [`reload`]).
///
/// # Errors
/// EAL, mempool or port setup failures, with the DPDK error text.
pub fn run(cfg: &Config, path: &Path) -> Result<()> {
    let _port_locks = crate::startup::preflight(cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing the SIGHUP handler")?;
    // keepalived's habit: SIGUSR1 dumps the service table, SIGUSR2 the
    // statistics; neither stops the director.
    let usr1 = Arc::new(AtomicBool::new(false));
    let usr2 = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGUSR1, &usr1),
        (signal_hook::consts::SIGUSR2, &usr2),
    ] {
        signal_hook::flag::register(sig, flag.clone())
            .context("installing the SIGUSR1/SIGUSR2 handlers")?;
    }
    let eal = Eal::init(&cfg.eal_argv("l4vs")).context("EAL init")?;
    println!("l4vs: {} initialised", l4vs_dpdk::version());
    let pool = Arc::new(
        Mempool::create(
            "l4vs_mbufs",
            cfg.mbufs,
            256.min(cfg.mbufs / 2),
            l4vs_dpdk::DEFAULT_DATA_ROOM,
            -1,
        )
        .context("creating the mbuf pool")?,
    );

    let nworkers = cfg.workers.cores.len() as u16;
    let mut ports = Vec::new();
    let mut macs = Vec::new();
    for p in &cfg.ports {
        let port = Port::by_name(&p.device.name)
            .with_context(|| format!("port {}: device {}", p.name, p.device.name))?;
        let pc = PortConfig {
            rx_queues: nworkers,
            tx_queues: nworkers,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            rss: nworkers > 1,
            promiscuous: true,
        };
        port.configure(&pc, &pool)
            .with_context(|| format!("configuring port {}", p.name))?;
        port.start()
            .with_context(|| format!("starting port {}", p.name))?;
        let mac = port
            .mac_addr()
            .with_context(|| format!("port {} MAC", p.name))?;
        println!(
            "l4vs: port {} ({}) up, MAC {}",
            p.name,
            p.device.spec(),
            crate::config::format_mac(&mac)
        );
        ports.push(port);
        macs.push(mac);
    }
    let mut table = ServiceTable::from_config(cfg)
        .map_err(|(key, e)| anyhow::anyhow!("{}: {key}: {e}", path.display()))?;
    let snapshot = Arc::new(ArcSwap::from_pointee(
        plan::publish(&mut table, cfg, &macs).context("building the service snapshot")?,
    ));
    let neighbors = Arc::new(plan::neighbors(cfg));
    for (_, s) in snapshot.load().services() {
        println!(
            "l4vs: service {} {} scheduler {} -> {} real(s)",
            s.name,
            crate::table::ServiceKey::of(s),
            s.scheduler,
            s.reals.len()
        );
    }

    // One single-producer/single-consumer ring per ordered pair of workers
    // carries packets to the worker that owns their connection.
    let n = usize::from(nworkers);
    let mut redirect_out: Vec<Vec<Option<RingProducer>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut redirect_in: Vec<Vec<RingConsumer>> = (0..n).map(|_| Vec::new()).collect();
    for (from, outs) in redirect_out.iter_mut().enumerate() {
        for to in (0..n).filter(|t| *t != from) {
            let (p, c) = Ring::create(&format!("l4vs_rd_{from}_{to}"), REDIRECT_RING_SIZE)
                .with_context(|| format!("redirect ring {from}->{to}"))?;
            outs[to] = Some(p);
            redirect_in[to].push(c);
        }
    }
    let mut redirect_out = redirect_out.into_iter();
    let mut redirect_in = redirect_in.into_iter();

    let mut handles = Vec::new();
    let mut all_counters = Vec::new();
    for (i, core) in cfg.workers.cores.iter().enumerate() {
        let q = i as u16;
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for (pi, port) in ports.iter().enumerate() {
            rx.push((
                pi as u16,
                port.rx_queue(q).with_context(|| format!("RX queue {q}"))?,
            ));
            tx.push(port.tx_queue(q).with_context(|| format!("TX queue {q}"))?);
        }
        let counters = Arc::new(Counters::default());
        all_counters.push(counters.clone());
        let plan = WorkerPlan {
            core: *core,
            rx,
            tx,
            burst: usize::from(cfg.workers.burst).clamp(1, MAX_BURST),
            idle_sleep: Duration::from_micros(u64::from(cfg.workers.idle_sleep_us)),
            snapshot: snapshot.clone(),
            neighbors: neighbors.clone(),
            counters,
            seed: 0x6c34_7673_0000_0000 ^ (u64::from(q) << 16) ^ u64::from(std::process::id()),
            pool: pool.clone(),
            worker_id: q,
            workers: nworkers,
            timeouts: cfg.timeouts,
            expire_nodest_conn: cfg.expire_nodest_conn,
            conn_capacity: cfg.workers.connections,
            redirect_out: redirect_out.next().unwrap_or_default(),
            redirect_in: redirect_in.next().unwrap_or_default(),
        };
        let stop = stop.clone();
        let h = thread::Builder::new()
            .name(format!("l4vs-worker-{i}"))
            .spawn(move || worker_main(plan, &stop))
            .context("spawning a worker")?;
        handles.push(h);
    }
    let cores: Vec<String> = cfg.workers.cores.iter().map(u32::to_string).collect();
    println!(
        "l4vs: {} worker(s) on cores {}; running",
        handles.len(),
        cores.join(", ")
    );
    let _ = std::io::stdout().flush();

    let mut running = cfg.clone();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
        if handles.iter().any(|h| h.is_finished()) {
            stop.store(true, Ordering::Relaxed);
        }
        if usr1.swap(false, Ordering::Relaxed) {
            print_services(&snapshot.load());
        }
        if usr2.swap(false, Ordering::Relaxed) {
            print_workers(cfg, &ports, &all_counters, &neighbors);
        }
        if hup.swap(false, Ordering::Relaxed) {
            match reload(path, &running, &mut table, &macs, &snapshot, &neighbors) {
                Ok((new, changes)) => {
                    for line in change_lines(&changes) {
                        println!("l4vs: reload: {line}");
                    }
                    println!(
                        "l4vs: reloaded {}: {} service(s), {} change(s)",
                        path.display(),
                        table.len(),
                        changes.len()
                    );
                    running = new;
                }
                Err(e) => {
                    eprintln!("l4vs: reload rejected, keeping the running configuration: {e:#}")
                }
            }
            let _ = std::io::stdout().flush();
        }
    }
    let mut failed = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("{e:#}")),
            Err(_) => failed.push("a worker panicked".to_owned()),
        }
    }
    print_final(cfg, &ports, &all_counters, &neighbors, &snapshot.load());
    for p in &ports {
        let _ = p.stop();
        let _ = p.close();
    }
    drop(pool);
    drop(eal);
    if !failed.is_empty() {
        bail!("worker failure: {}", failed.join("; "));
    }
    Ok(())
}

/// Re-reads the config for SIGHUP and applies the difference to the
/// running service table, command by command (as `ipvsadm` would), then
/// publishes only the services that changed. Addresses, the gateway,
/// static neighbours, classifier rules and timeouts change in place; EAL,
/// workers, ports and mbufs need a restart, so a file that changes them is
/// refused, as is an invalid one: either way the running configuration
/// stays. Static neighbours that disappear from the file stay known until
/// ARP replaces them. Changes made at run time by other means are
/// overwritten by the file, as keepalived's reload does.
fn reload(
    path: &Path,
    running: &Config,
    table: &mut ServiceTable,
    macs: &[[u8; 6]],
    snapshot: &ArcSwap<Snapshot>,
    neighbors: &NeighborTable,
) -> Result<(Config, Vec<Change>)> {
    let new = config::load(path)?;
    if let Some(key) = config::restart_only_change(running, &new) {
        bail!(
            "{}: {key} changed, and eal, workers, ports and mbufs cannot change while running; restart l4vs for that",
            path.display()
        );
    }
    let target = ServiceTable::from_config(&new)
        .map_err(|(key, e)| anyhow::anyhow!("{}: {key}: {e}", path.display()))?;
    // Work on a copy: a refused command or snapshot leaves the running
    // table as it was.
    let mut next = table.clone();
    next.set_environment(Network::of(&new), new.expire_quiescent_template);
    let mut changes = Vec::new();
    for cmd in next.diff(&target) {
        changes.push(next.apply(cmd).context("applying the new configuration")?);
    }
    let snap = plan::publish(&mut next, &new, macs).context("building the service snapshot")?;
    plan::seed_neighbors(&new, neighbors);
    snapshot.store(Arc::new(snap));
    *table = next;
    Ok((new, changes))
}

/// One log line per service, its changes joined in order:
/// `service http: real 198.18.2.14:80 added; 198.18.2.12:80 weight 1 -> 3`.
fn change_lines(changes: &[Change]) -> Vec<String> {
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for c in changes {
        match lines.last_mut() {
            Some((svc, whats)) if *svc == c.service => whats.push(c.what.clone()),
            _ => lines.push((c.service.clone(), vec![c.what.clone()])),
        }
    }
    lines
        .into_iter()
        .map(|(svc, whats)| {
            if svc.is_empty() {
                whats.join("; ")
            } else {
                format!("service {svc}: {}", whats.join("; "))
            }
        })
        .collect()
}

fn worker_main(plan: WorkerPlan, stop: &AtomicBool) -> Result<()> {
    if !core_affinity::set_for_current(core_affinity::CoreId {
        id: plan.core as usize,
    }) {
        eprintln!(
            "l4vs: warning: could not pin a worker to core {}",
            plan.core
        );
    }
    l4vs_dpdk::register_thread().context("registering the worker with DPDK")?;
    let WorkerPlan {
        mut rx,
        tx,
        burst,
        idle_sleep,
        snapshot,
        neighbors,
        counters,
        pool,
        seed,
        worker_id,
        workers,
        timeouts,
        expire_nodest_conn,
        conn_capacity,
        redirect_out,
        mut redirect_in,
        ..
    } = plan;
    let cfg = WorkerConfig {
        seed,
        worker_id,
        workers,
        timeouts,
        expire_nodest_conn,
        conn_capacity,
        ..WorkerConfig::default()
    };
    let mut worker = Worker::new(snapshot.load_full(), neighbors, counters.clone(), cfg);
    let mut out = Outputs {
        tx_batches: tx.iter().map(|_| Batch::new()).collect(),
        tx,
        redirect_batches: redirect_out.iter().map(|_| Batch::new()).collect(),
        redirect_out,
        counters: counters.clone(),
    };

    let hz = l4vs_dpdk::tsc_hz().max(1);
    let cycles_per_ms = (hz / 1000).max(1);
    let start = l4vs_dpdk::rdtsc();
    let mut burst_buf: [Option<Mbuf>; MAX_BURST] = [const { None }; MAX_BURST];
    let mut idle_polls = 0u32;
    let mut next_housekeeping = 0u64;

    while !stop.load(Ordering::Relaxed) {
        let t0 = l4vs_dpdk::rdtsc();
        let now_ms = (t0 - start) / cycles_per_ms;
        let mut received = 0;
        for (port, q) in rx.iter_mut() {
            let n = q.burst(&mut burst_buf[..burst]);
            received += n;
            for m in burst_buf[..n].iter().flatten() {
                worker.prefetch(m.data());
            }
            for slot in &mut burst_buf[..n] {
                if let Some(mut m) = slot.take() {
                    let v = worker.process(*port, &mut MbufPacket(&mut m), now_ms);
                    out.dispatch(m, v);
                }
            }
        }
        // Packets other workers received for connections this one owns.
        for ring in redirect_in.iter_mut() {
            let n = ring.dequeue_burst(&mut burst_buf[..burst]);
            received += n;
            for slot in &mut burst_buf[..n] {
                if let Some(mut m) = slot.take() {
                    let port = m.port();
                    let v = worker.process(port, &mut MbufPacket(&mut m), now_ms);
                    out.dispatch(m, v);
                }
            }
        }
        out.flush();
        // A change publishes a new snapshot; pick it up between bursts.
        // Unchanged services keep their scheduler state (see
        // Worker::set_snapshot), so this costs little even for big tables.
        {
            let current = snapshot.load();
            if !Arc::ptr_eq(&current, worker.snapshot()) {
                worker.set_snapshot(Arc::clone(&current));
            }
        }
        if now_ms >= next_housekeeping {
            worker.housekeeping(now_ms);
            if worker_id == 0 {
                worker.solicit_next_hops(now_ms, |port, frame| {
                    if let Some(mut m) = pool.alloc() {
                        if m.append(frame.len()) {
                            m.data_mut().copy_from_slice(frame);
                            out.dispatch(m, Verdict::Forward { port });
                        }
                    }
                });
            }
            next_housekeeping = now_ms + HOUSEKEEPING_MS;
        }
        let t1 = l4vs_dpdk::rdtsc();
        if received > 0 {
            counters.busy_cycles.add(t1 - t0);
            idle_polls = 0;
        } else {
            counters.idle_cycles.add(t1 - t0);
            idle_polls = idle_polls.saturating_add(1);
            if !idle_sleep.is_zero() && idle_polls > IDLE_POLLS_BEFORE_SLEEP {
                thread::sleep(idle_sleep);
            }
        }
    }
    out.flush();
    drop(rx);
    drop(out);
    drop(redirect_in);
    l4vs_dpdk::unregister_thread();
    Ok(())
}

/// Where a worker's packets leave: TX queues and redirect rings, each
/// behind a batch flushed once per poll round.
struct Outputs {
    tx: Vec<TxQueue>,
    tx_batches: Vec<Batch>,
    redirect_out: Vec<Option<RingProducer>>,
    redirect_batches: Vec<Batch>,
    counters: Arc<Counters>,
}

impl Outputs {
    /// Queues a packet by its verdict; anything not forwarded or
    /// redirected is freed here (dropping the mbuf frees it).
    #[inline]
    fn dispatch(&mut self, m: Mbuf, v: Verdict) {
        match v {
            Verdict::Forward { port } => {
                let p = usize::from(port);
                if self.tx_batches[p].push(m) {
                    let q = &mut self.tx[p];
                    let lost = self.tx_batches[p].flush_with(|pkts| q.burst(pkts));
                    self.counters.tx_dropped.add(lost);
                }
            }
            Verdict::Redirect { worker } => {
                let w = usize::from(worker);
                match self.redirect_out.get_mut(w) {
                    Some(Some(ring)) => {
                        if self.redirect_batches[w].push(m) {
                            let lost = self.redirect_batches[w]
                                .flush_with(|pkts| ring.enqueue_burst(pkts));
                            self.counters.redirect_dropped.add(lost);
                        }
                    }
                    _ => self.counters.redirect_dropped.inc(),
                }
            }
            Verdict::Drop(_) | Verdict::ToControl | Verdict::Consumed => {}
        }
    }

    fn flush(&mut self) {
        for (b, q) in self.tx_batches.iter_mut().zip(self.tx.iter_mut()) {
            let lost = b.flush_with(|pkts| q.burst(pkts));
            self.counters.tx_dropped.add(lost);
        }
        for (b, r) in self
            .redirect_batches
            .iter_mut()
            .zip(self.redirect_out.iter_mut())
        {
            if let Some(r) = r {
                let lost = b.flush_with(|pkts| r.enqueue_burst(pkts));
                self.counters.redirect_dropped.add(lost);
            }
        }
    }
}

/// Packets waiting for one TX queue or ring.
struct Batch {
    pkts: [Option<Mbuf>; MAX_BURST],
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            pkts: [const { None }; MAX_BURST],
            len: 0,
        }
    }

    /// Queues a packet; true when the batch is full and must be flushed.
    #[inline]
    fn push(&mut self, m: Mbuf) -> bool {
        self.pkts[self.len] = Some(m);
        self.len += 1;
        self.len == MAX_BURST
    }

    /// Hands the queued packets to `send`, which takes ownership of the
    /// first N and returns N; frees the rest and returns how many.
    #[inline]
    fn flush_with(&mut self, send: impl FnOnce(&mut [Option<Mbuf>]) -> usize) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let sent = send(&mut self.pkts[..self.len]);
        let mut lost = 0;
        for slot in &mut self.pkts[sent..self.len] {
            if slot.take().is_some() {
                lost += 1;
            }
        }
        self.len = 0;
        lost
    }
}

fn print_final(
    cfg: &Config,
    ports: &[Port],
    workers: &[Arc<Counters>],
    neighbors: &NeighborTable,
    snap: &Snapshot,
) {
    println!("l4vs: stopping; final counters");
    print_services(snap);
    print_workers(cfg, ports, workers, neighbors);
}

/// The services and their reals with live connection counts (SIGUSR1, and
/// at exit).
fn print_services(snap: &Snapshot) {
    for (_, s) in snap.services() {
        for (r, st) in s.reals.iter().zip(s.stats.iter()) {
            println!(
                "  service {} real {}:{} weight={} activeconns={} inactconns={}{}",
                s.name,
                r.addr,
                r.port,
                r.weight,
                st.active(),
                st.inactive(),
                if st.is_overloaded() {
                    " overloaded"
                } else {
                    ""
                }
            );
        }
    }
    let _ = std::io::stdout().flush();
}

/// Every worker's counters and drops, the ports' counters and the
/// neighbours (SIGUSR2, and at exit).
fn print_workers(
    cfg: &Config,
    ports: &[Port],
    workers: &[Arc<Counters>],
    neighbors: &NeighborTable,
) {
    for (i, c) in workers.iter().enumerate() {
        let named: Vec<String> = c
            .named()
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  worker {i}: {}", named.join(" "));
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| c.drops_of(**r) != 0)
            .map(|r| format!("{}={}", r.as_str(), c.drops_of(*r)))
            .collect();
        if !drops.is_empty() {
            println!("  worker {i} drops: {}", drops.join(" "));
        }
    }
    for (p, pc) in ports.iter().zip(&cfg.ports) {
        if let Ok(s) = p.stats() {
            println!(
                "  port {}: ipackets={} opackets={} ibytes={} obytes={} imissed={} ierrors={} oerrors={} rx_nombuf={}",
                pc.name, s.ipackets, s.opackets, s.ibytes, s.obytes, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf
            );
        }
    }
    let learned: Vec<String> = neighbors
        .entries()
        .map(|(ip, n, st)| format!("{ip}={}{}", n.mac, if st { "(static)" } else { "" }))
        .collect();
    println!("  neighbours: {}", learned.join(" "));
    let _ = std::io::stdout().flush();
}
