//! `l4vs run`: boot EAL and the ports, start one pinned worker per
//! configured core, and run the control thread until SIGINT/SIGTERM.
//!
//! Each worker owns RX/TX queue `i` of every port and runs the dataplane's
//! lcore loop ([`l4vs_dataplane::lcore::Lcore`]) over them
//! ([`crate::port_io::DpdkIo`]). The control thread (the EAL main lcore)
//! owns the service table and publishes its changes (SIGHUP), injects what
//! it sends itself (ARP solicitations of the next hops) through a ring per
//! port that worker 0 transmits from, drains the workers' punt rings (traffic for the
//! director's own addresses, freed and counted until the exception path to
//! the kernel exists) and their event rings, and prints the table and the
//! counters on SIGUSR1/SIGUSR2. On a stop signal workers finish their
//! round, everything is flushed, and the final counters are printed.

use crate::admin::{AdminServer, ConnEntry, Request, Response, Ticket};
use crate::config::{self, Config};
use crate::exception::KernelPort;
use crate::health::{self, Checker};
use crate::metrics::{self, MetricsEndpoint};
use crate::plan;
use crate::port_io::DpdkIo;
use crate::sync::{SyncDaemon, Why};
use crate::table::{self, Change, Network, ServiceTable};
use crate::vrrp::{Router, State as VrrpState, Transition};
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use l4vs_dataplane::lcore::{Lcore, LcoreConfig, MAX_BURST};
use l4vs_dataplane::rings::{self, ControlEnd, Event, WorkerEnd};
use l4vs_dataplane::{
    Counters, DropReason, NeighborTable, PortInfo, Snapshot, Worker, WorkerConfig,
};
use l4vs_dpdk::{Eal, Mbuf, Mempool, Port, PortConfig, Ring, RingConsumer, RingProducer};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Empty polls before an idle worker starts sleeping.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 64;
/// Housekeeping (connection expiry, solicitation) interval.
const HOUSEKEEPING_MS: u64 = 100;
/// Slots of each worker-to-worker redirect ring.
const REDIRECT_RING_SIZE: u32 = 2048;
/// Slots of each worker's punt ring to the control thread.
const PUNT_RING_SIZE: u32 = 1024;
/// Slots of each port's inject ring (control thread to worker 0).
const INJECT_RING_SIZE: u32 = 512;
/// The most sync messages the control thread sends a tick (2 ms): 64 000
/// a second, some 2.5 M entries, within the inject ring.
const SYNC_MESSAGES_PER_TICK: usize = 128;
/// The most entries a backup keeps waiting for a worker's command ring,
/// per worker (a full resync of a large table at 2.5 M entries a second).
const SYNC_BACKLOG: usize = 1 << 20;
/// How often the control thread wakes up: also the most the exception
/// path adds to a packet's way to or from the kernel.
const CONTROL_TICK: Duration = Duration::from_millis(2);
/// How long the workers have to list their connections (`l4vsadm -c`)
/// before the listing is answered with an error.
const LISTING_TIMEOUT: Duration = Duration::from_secs(20);

/// A connection listing in progress: what the workers sent so far, and
/// who waits for it.
struct Listing {
    /// The admin clients waiting (a request that comes while a listing
    /// runs gets that listing, if it collects).
    waiting: Vec<Ticket>,
    /// Whether the entries are kept, for admin clients.
    collect: bool,
    /// Whether the sync daemon resends the entries (a resync).
    for_sync: bool,
    entries: Vec<ConnEntry>,
    /// Workers that have sent all of theirs.
    done: usize,
    started: Instant,
}

/// Everything a worker thread takes with it.
struct WorkerPlan {
    core: u32,
    io: DpdkIo,
    lcore: LcoreConfig,
    snapshot: Arc<ArcSwap<Snapshot>>,
    neighbors: Arc<NeighborTable>,
    counters: Arc<Counters>,
    worker: WorkerConfig,
    control: WorkerEnd,
}

/// What the control thread counts of its own work and of the workers'
/// events.
#[derive(Debug, Default)]
struct ControlCounts {
    /// Frames the control thread sent (ARP solicitations).
    injected: u64,
    /// Frames it could not send (no mbuf, or the inject ring was full).
    inject_dropped: u64,
    /// Packets the workers punted to the control thread.
    punted: u64,
    /// Connection events read from the workers: created, state changed,
    /// ended.
    events: [u64; 3],
    /// Punted packets handed to the kernel (exception path).
    to_kernel: u64,
    /// Frames the kernel sent, passed to the ports' inject rings.
    from_kernel: u64,
    /// Exception-path frames lost: the tap or an inject ring was full, or
    /// the port has no kernel interface (`exception_path: false`).
    kernel_dropped: u64,
}

/// The control thread's side of the ports and the workers.
struct ControlSide {
    pool: Arc<Mempool>,
    /// Frames to send, one ring per port, to worker 0, which transmits
    /// them on its queues (the virtual PMDs have no queue to spare for the
    /// control thread).
    inject: Vec<RingProducer>,
    punt: Vec<RingConsumer>,
    workers: Vec<ControlEnd>,
    counts: ControlCounts,
    listing: Option<Listing>,
    /// Each port's kernel interface, by config index (empty without the
    /// exception path).
    kernel: Vec<KernelPort>,
    /// Each config port's DPDK port id, to tell which port a punted
    /// packet came in on.
    port_ids: Vec<u16>,
    /// The connection sync daemon (`sync:`), if any.
    sync: Option<SyncDaemon>,
    /// The entries a backup took, waiting for room in their worker's
    /// command ring (a resync comes faster than a ring takes it).
    sync_backlog: Vec<std::collections::VecDeque<l4vs_dataplane::conn::Conn>>,
    /// Admin clients that asked for the connections while a resync's
    /// listing (which keeps no entries) ran: a listing starts for them
    /// when it ends.
    deferred: Vec<Ticket>,
    /// The VRRP instance (`vrrp:`), if any.
    vrrp: Option<Router>,
    /// The state changes of the VRRP instance not acted on yet.
    vrrp_transitions: Vec<Transition>,
}

impl ControlSide {
    /// Sends `frame` on `port`: a copy in a new mbuf, through the inject
    /// ring that worker 0 transmits from.
    fn inject(&mut self, port: u16, frame: &[u8]) -> bool {
        let sent = self.pool.alloc().and_then(|mut m| {
            if !m.append(frame.len()) {
                return None;
            }
            m.data_mut().copy_from_slice(frame);
            let mut one = [Some(m)];
            let ring = self.inject.get_mut(usize::from(port))?;
            (ring.enqueue_burst(&mut one) == 1).then_some(())
        });
        match sent {
            Some(()) => self.counts.injected += 1,
            None => self.counts.inject_dropped += 1,
        }
        sent.is_some()
    }

    /// Drains the punt and event rings: sync messages go to the sync
    /// daemon, other punted frames to the kernel; connection events are
    /// counted, and a sync master notes them.
    fn drain(&mut self, snap: &Snapshot) {
        let now = Instant::now();
        let mut burst: [Option<Mbuf>; 64] = [const { None }; 64];
        // VRRP advertisements on the instance's port; sync messages on the
        // sync port only, as the kernel's receive socket is bound to its
        // interface (DPDK port ids).
        let vrrp_port = self
            .vrrp
            .as_ref()
            .and_then(|r| self.port_ids.get(r.config().port).copied());
        let sync_port = self
            .sync
            .as_ref()
            .and_then(|d| self.port_ids.get(d.config().port).copied());
        for r in &mut self.punt {
            loop {
                let n = r.dequeue_burst(&mut burst);
                if n == 0 {
                    break;
                }
                self.counts.punted += n as u64;
                for m in burst[..n].iter_mut() {
                    let Some(mbuf) = m.take() else { continue };
                    if let Some(r) = self.vrrp.as_mut().filter(|_| {
                        vrrp_port == Some(mbuf.port()) && Router::is_vrrp_frame(mbuf.data())
                    }) {
                        self.vrrp_transitions.extend(r.receive(mbuf.data(), now));
                        continue;
                    }
                    if let Some(d) = self
                        .sync
                        .as_mut()
                        .filter(|d| sync_port == Some(mbuf.port()) && d.is_sync_frame(mbuf.data()))
                    {
                        let backlog = &mut self.sync_backlog;
                        d.apply(mbuf.data(), snap, |w, c| {
                            backlog
                                .get_mut(usize::from(w))
                                .filter(|q| q.len() < SYNC_BACKLOG)
                                .map(|q| q.push_back(c))
                                .is_some()
                        });
                        continue;
                    }
                    let kernel = self
                        .port_ids
                        .iter()
                        .position(|id| *id == mbuf.port())
                        .and_then(|i| self.kernel.get_mut(i));
                    let mut one = [Some(mbuf)];
                    // What the kernel does not take is freed as `one` goes.
                    if kernel.is_some_and(|k| k.to_kernel(&mut one) == 1) {
                        self.counts.to_kernel += 1;
                    } else {
                        self.counts.kernel_dropped += 1;
                    }
                }
            }
        }
        // A VRRP backup sends nothing, as keepalived runs the backup sync
        // daemon only there: its idle copies would overwrite the master's
        // live entries.
        let sending = self.vrrp_allows_sending();
        let counts = &mut self.counts.events;
        let listing = &mut self.listing;
        let sync = &mut self.sync.as_mut().filter(|_| sending);
        for w in &mut self.workers {
            w.drain_events(|e| match e {
                Event::Created(c) => {
                    counts[0] += 1;
                    if let Some(d) = sync.as_mut() {
                        d.note(&c, Why::Created, snap, now);
                    }
                }
                Event::StateChanged(c) => {
                    counts[1] += 1;
                    if let Some(d) = sync.as_mut() {
                        d.note(&c, Why::Changed, snap, now);
                    }
                }
                Event::Ended(_) => counts[2] += 1,
                Event::Listed(c) => {
                    if let Some(l) = listing.as_mut() {
                        if l.collect {
                            l.entries.push(ConnEntry::of(&c));
                        }
                        if let Some(d) = sync.as_mut().filter(|_| l.for_sync) {
                            d.note(&c, Why::Listed, snap, now);
                        }
                    }
                }
                Event::ListDone => {
                    if let Some(l) = listing.as_mut() {
                        l.done += 1;
                    }
                }
            });
        }
    }

    /// Sends the sync messages that are due (all of them with `all`), at
    /// most [`SYNC_MESSAGES_PER_TICK`].
    fn send_sync(&mut self, all: bool) {
        let Some(d) = self.sync.as_mut() else { return };
        let port = d.config().port as u16;
        let most = if all {
            usize::MAX
        } else {
            SYNC_MESSAGES_PER_TICK
        };
        let frames = d.frames(Instant::now(), all, most);
        for (f, entries) in frames {
            let sent = self.inject(port, &f);
            if let Some(d) = self.sync.as_mut() {
                d.sent(entries, sent);
            }
        }
        // A backup's entries, to each worker as its command ring has room.
        for (q, ring) in self.sync_backlog.iter_mut().zip(&mut self.workers) {
            while let Some(c) = q.pop_front() {
                if let Err(rings::Command::InsertConn(c)) = ring.send(rings::Command::InsertConn(c))
                {
                    q.push_front(c);
                    break;
                }
            }
        }
    }

    /// `l4vsadm --start-daemon`: starts the sync daemon in `spec`'s role,
    /// or adds that role to the running daemon when its settings are the
    /// same (l4vs runs one daemon for both roles). Returns the log line,
    /// or the error in ipvsadm's words where it has them.
    fn start_daemon(
        &mut self,
        spec: &crate::admin::DaemonSpec,
        cfg: &config::Config,
        port_infos: &[PortInfo],
    ) -> Result<String, String> {
        use config::SyncRole;
        let Some(role) = SyncRole::of_daemon_state(&spec.state) else {
            return Err("illegal start-daemon parameter specified".to_owned());
        };
        let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
        let Some(port) = cfg.ports.iter().position(|p| p.name == spec.interface) else {
            return Err(format!(
                "No such device: no port named {} (ports: {}); --mcast-interface names one",
                config::echo(&spec.interface),
                names.join(", ")
            ));
        };
        let Some(source) = config::first_address(&cfg.addresses, port) else {
            return Err(format!(
                "Cannot assign requested address: port {} has no address of the director's to send the sync messages from",
                spec.interface
            ));
        };
        let group = spec.group.unwrap_or(l4vs_wire::ipvs_sync::GROUP);
        if !l4vs_wire::ipv4::is_local_network_control(group) {
            return Err(format!("Invalid operation: {group} is not a group of the local network control block (224.0.0.0/24), which l4vs takes sync messages on"));
        }
        let mtu = port_infos.get(port).map_or(1500, |p| p.mtu);
        let most = mtu.saturating_sub(l4vs_wire::ipvs_sync::IPV4_UDP_OVERHEAD as u16);
        let max_len = spec.maxlen.unwrap_or(most);
        if !(128..=most).contains(&max_len) {
            return Err(format!(
                "Invalid operation: --sync-maxlen {max_len} is not in 128..={most} (the port's MTU {mtu} less 28)"
            ));
        }
        let (udp_port, ttl) = (
            spec.port.unwrap_or(l4vs_wire::ipvs_sync::PORT),
            spec.ttl.unwrap_or(1),
        );
        if udp_port == 0 || ttl == 0 {
            return Err("Invalid operation: --mcast-port and --mcast-ttl take 1 and up".to_owned());
        }
        let new = config::Sync {
            role,
            syncid: spec.syncid,
            port,
            source,
            group,
            udp_port,
            ttl,
            max_len,
            resync_period: Some(Duration::from_secs(30)),
            auth: None,
            persist_mode: false,
            sync_ports: 1,
        };
        let settings = |s: &config::Sync| {
            format!(
                "port {}, syncid {}, {}:{}, TTL {}, messages up to {} bytes",
                cfg.ports[s.port].name, s.syncid, s.group, s.udp_port, s.ttl, s.max_len
            )
        };
        let line = format!("sync daemon {} started: {}", spec.state, settings(&new));
        match self.sync.as_mut() {
            Some(d) => {
                let cur = d.config();
                let has = if role == SyncRole::Master {
                    cur.role.sends()
                } else {
                    cur.role.receives()
                };
                if has {
                    return Err("Daemon has already run".to_owned());
                }
                let same = (
                    cur.port,
                    cur.syncid,
                    cur.group,
                    cur.udp_port,
                    cur.ttl,
                    cur.max_len,
                ) == (
                    new.port,
                    new.syncid,
                    new.group,
                    new.udp_port,
                    new.ttl,
                    new.max_len,
                );
                if !same {
                    return Err(format!(
                        "the {} sync daemon runs with other settings ({}), and l4vs's master and backup daemons share theirs: start this one with the same, or stop that one first",
                        cur.role.as_str(),
                        settings(cur)
                    ));
                }
                d.set_role(SyncRole::Both);
            }
            None => {
                let mac = port_infos.get(port).map_or([0; 6], |p| p.mac.0);
                self.sync = Some(SyncDaemon::new(new, mac, self.workers.len() as u16));
            }
        }
        Ok(line)
    }

    /// `l4vsadm --stop-daemon STATE`: a master sends what waits first.
    fn stop_daemon(&mut self, state: &str) -> Result<String, String> {
        use config::SyncRole;
        let Some(role) = self.sync.as_ref().map(|d| d.config().role) else {
            return Err("No daemon is running".to_owned());
        };
        let rest = SyncRole::of_daemon_state(state)
            .and_then(|stopped| role.stopping(stopped))
            .ok_or_else(|| "No daemon is running".to_owned())?;
        if state == "master" {
            self.send_sync(true);
        }
        match rest {
            Some(r) => {
                if let Some(d) = self.sync.as_mut() {
                    d.set_role(r);
                }
            }
            None => self.sync = None,
        }
        Ok(format!("sync daemon {state} stopped"))
    }

    /// False while the VRRP instance, if any, is backup: the sync daemon
    /// then takes what the master sends and sends nothing of its own.
    fn vrrp_allows_sending(&self) -> bool {
        self.vrrp
            .as_ref()
            .is_none_or(|r| r.state() == VrrpState::Master)
    }

    /// Runs the VRRP instance's timers and sends its advertisements;
    /// returns the state changes since the last call.
    fn vrrp_poll(&mut self, now: Instant) -> Vec<Transition> {
        let Some(r) = self.vrrp.as_mut() else {
            return Vec::new();
        };
        self.vrrp_transitions.extend(r.poll(now));
        let port = r.config().port as u16;
        for f in r.take_frames() {
            self.inject(port, &f);
        }
        std::mem::take(&mut self.vrrp_transitions)
    }

    /// Sends `repeat` gratuitous ARP requests for each VIP of `snap` and
    /// each virtual address, each on the port whose subnet holds it, else
    /// on the VRRP instance's port, from that port's MAC.
    fn send_gratuitous_arps(&mut self, snap: &Snapshot, vrrp: &config::Vrrp) {
        let mut addrs: Vec<std::net::Ipv4Addr> = vrrp.addresses.clone();
        for (_, s) in snap.services() {
            if s.options.fwmark == 0 && !addrs.contains(&s.vip) {
                addrs.push(s.vip);
            }
        }
        for a in addrs {
            let port = snap
                .locals()
                .iter()
                .find(|l| l.contains(a))
                .map_or(vrrp.port as u16, |l| l.port);
            let Some(info) = snap.ports().get(usize::from(port)) else {
                continue;
            };
            let frame = crate::vrrp::gratuitous_arp(info.mac.0, a);
            for _ in 0..vrrp.garp_repeat {
                self.inject(port, &frame);
            }
        }
    }

    /// Passes what the kernel sent on each port's interface to that port's
    /// inject ring (worker 0 transmits it).
    fn relay_from_kernel(&mut self) {
        let mut burst: [Option<Mbuf>; 32] = [const { None }; 32];
        for (i, k) in self.kernel.iter_mut().enumerate() {
            loop {
                let n = k.from_kernel(&mut burst);
                if n == 0 {
                    break;
                }
                let sent = match self.inject.get_mut(i) {
                    Some(ring) => ring.enqueue_burst(&mut burst[..n]),
                    None => 0,
                };
                self.counts.from_kernel += sent as u64;
                self.counts.kernel_dropped += (n - sent) as u64;
                burst[..n].iter_mut().for_each(|m| drop(m.take()));
            }
        }
    }

    /// Asks every worker for its connections, for the admin client of
    /// `ticket`; a listing already running takes it on instead.
    ///
    /// # Errors
    /// A worker's command ring is full (it is behind): nothing was asked
    /// of any worker that is still waited for.
    fn start_listing(&mut self, ticket: Ticket) -> Result<(), String> {
        match self.listing.as_mut() {
            Some(l) if l.collect => l.waiting.push(ticket),
            Some(_) => self.deferred.push(ticket),
            None => {
                self.ask_workers()?;
                self.listing = Some(Listing {
                    waiting: vec![ticket],
                    collect: true,
                    for_sync: false,
                    entries: Vec::new(),
                    done: 0,
                    started: Instant::now(),
                });
            }
        }
        Ok(())
    }

    /// Starts the listing the admin clients asked for while a resync's
    /// ran, once no listing runs; returns them with an error when the
    /// workers cannot take the request.
    fn start_deferred(&mut self) -> Option<(Vec<Ticket>, Response)> {
        if self.listing.is_some() || self.deferred.is_empty() {
            return None;
        }
        let waiting = std::mem::take(&mut self.deferred);
        match self.ask_workers() {
            Ok(()) => {
                self.listing = Some(Listing {
                    waiting,
                    collect: true,
                    for_sync: false,
                    entries: Vec::new(),
                    done: 0,
                    started: Instant::now(),
                });
                None
            }
            Err(message) => Some((
                waiting,
                Response::Error {
                    command: None,
                    message,
                },
            )),
        }
    }

    /// Starts a resync: the sync daemon resends every entry the workers
    /// list, from a listing of its own or the one running.
    fn start_resync(&mut self) {
        if !self.vrrp_allows_sending() {
            return;
        }
        if let Some(l) = self.listing.as_mut() {
            l.for_sync = true;
            return;
        }
        if self.ask_workers().is_ok() {
            self.listing = Some(Listing {
                waiting: Vec::new(),
                collect: false,
                for_sync: true,
                entries: Vec::new(),
                done: 0,
                started: Instant::now(),
            });
        }
    }

    /// Asks every worker to list its connections.
    ///
    /// # Errors
    /// A worker's command ring is full (it is behind).
    fn ask_workers(&mut self) -> Result<(), String> {
        for w in &mut self.workers {
            if w.send(l4vs_dataplane::rings::Command::ListConns).is_err() {
                return Err("the workers are busy: try again".into());
            }
        }
        Ok(())
    }

    /// The finished listing (or its timeout error) and who waits for it,
    /// once every worker is done or [`LISTING_TIMEOUT`] has passed.
    fn finished_listing(&mut self) -> Option<(Vec<Ticket>, Response)> {
        let l = self.listing.as_ref()?;
        let complete = l.done >= self.workers.len();
        if !complete && l.started.elapsed() < LISTING_TIMEOUT {
            return None;
        }
        let l = self.listing.take()?;
        if let Some(d) = self.sync.as_mut().filter(|_| l.for_sync) {
            d.flush_soon(Instant::now());
        }
        if l.waiting.is_empty() {
            return self.start_deferred();
        }
        let response = if complete {
            Response::Connections { entries: l.entries }
        } else {
            Response::Error {
                command: None,
                message: format!(
                    "{} of {} workers listed their connections within {} s",
                    l.done,
                    self.workers.len(),
                    LISTING_TIMEOUT.as_secs()
                ),
            }
        };
        Some((l.waiting, response))
    }
}

/// Runs the director until a stop signal; prints final counters.
/// SIGHUP reloads `path` (see [`reload`]).
///
/// # Errors
/// EAL, mempool or port setup failures, with the DPDK error text.
pub fn run(cfg: &Config, path: &Path) -> Result<()> {
    let _port_locks = crate::startup::preflight(cfg)?;
    // Before EAL and the ports: a second director in this namespace on the
    // same admin socket stops here, having touched nothing.
    let admin_path = cfg
        .admin_socket
        .clone()
        .unwrap_or_else(crate::admin::default_path);
    let mut admin = AdminServer::bind(&admin_path)
        .with_context(|| format!("admin socket {}", config::shown_path(&admin_path)))?;
    let metrics = match cfg.metrics_listen {
        Some(addr) => Some(MetricsEndpoint::start(addr).with_context(|| {
            format!(
                "metrics endpoint {addr}: set metrics_listen to a free address and port, or off"
            )
        })?),
        None => None,
    };
    // A stop signal ends the control loop; the workers stop after it has
    // sent what must leave (the sync daemon's last messages).
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let workers_stop = Arc::new(AtomicBool::new(false));
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
    // DPDK's own lines (EAL, drivers) go through the director's log.
    if let Err(e) = l4vs_dpdk::route_log(crate::logging::dpdk_line) {
        warn!(target: "l4vs", "DPDK's log stays on stderr: {e}");
    }
    let eal = Eal::init(&cfg.eal_argv("l4vs")).context("EAL init")?;
    info!(target: "l4vs", "{} initialised", l4vs_dpdk::version());
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
    let mut port_infos = Vec::new();
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
            rx_ip_checksum: true,
        };
        port.configure(&pc, &pool)
            .with_context(|| format!("configuring port {}", p.name))?;
        // The configured MTU is the one l4vs forwards by (it fragments and
        // answers frag-needed itself); the device is set to it when its
        // driver can be (net_pcap, for one, cannot).
        if let Some(mtu) = p.mtu {
            match port.set_mtu(mtu) {
                Ok(()) => {}
                Err(e) if e.is_not_supported() => info!(
                    target: "l4vs",
                    "port {}: the device cannot set its MTU; l4vs forwards by mtu {mtu} all the same",
                    p.name
                ),
                Err(e) => {
                    return Err(e).with_context(|| format!("port {}: setting mtu {mtu}", p.name))
                }
            }
        }
        port.start()
            .with_context(|| format!("starting port {}", p.name))?;
        let mac = port
            .mac_addr()
            .with_context(|| format!("port {} MAC", p.name))?;
        let mtu = match p.mtu {
            Some(mtu) => mtu,
            None => port
                .mtu()
                .with_context(|| format!("port {} MTU", p.name))?
                .clamp(crate::config::MIN_MTU, crate::config::MAX_MTU),
        };
        // Where the device verifies IPv4 header checksums, the workers
        // take its word for them instead of summing each header.
        let checksums = match port.rx_ip_checksum_offloaded() {
            Ok(true) => "IPv4 checksums verified by the device",
            _ => "IPv4 checksums verified by the workers",
        };
        info!(
            target: "l4vs",
            "port {} ({}) up, MAC {}, MTU {mtu}, {checksums}",
            p.name,
            p.device.spec(),
            crate::config::format_mac(&mac)
        );
        ports.push(port);
        port_infos.push(PortInfo {
            mac: l4vs_wire::ethernet::Address(mac),
            mtu,
        });
    }
    let mut kernel = Vec::new();
    if cfg.exception_path {
        for (i, (p, info)) in cfg.ports.iter().zip(&port_infos).enumerate() {
            let iface = config::kernel_interface_name(&p.name);
            let addresses: Vec<(std::net::Ipv4Addr, u8)> = cfg
                .addresses
                .iter()
                .filter(|a| a.port == i)
                .map(|a| (a.address, a.prefix_len))
                .collect();
            kernel.push(KernelPort::open(
                i,
                &iface,
                info.mac.0,
                info.mtu,
                &addresses,
                crate::startup::iface_arg(&p.device),
                &pool,
            )?);
            let listed: Vec<String> = addresses.iter().map(|(a, l)| format!("{a}/{l}")).collect();
            info!(
                target: "l4vs",
                "port {}: kernel interface {iface} ({})",
                p.name,
                if listed.is_empty() {
                    "no address".to_owned()
                } else {
                    listed.join(", ")
                }
            );
        }
    }
    let mut table = table_of(cfg, path)?;
    table.set_workers(usize::from(nworkers));
    // With VRRP, a director starts as backup (RFC 5798 section 6.4.1):
    // it forwards once it is master.
    let snapshot = Arc::new(ArcSwap::from_pointee(
        plan::publish(&mut table, cfg, &port_infos)
            .context("building the service snapshot")?
            .with_high_availability(
                cfg.vrrp.is_some(),
                cfg.vrrp
                    .as_ref()
                    .map(|v| v.addresses.clone())
                    .unwrap_or_default(),
            ),
    ));
    let neighbors = Arc::new(plan::neighbors(cfg));
    for (_, s) in snapshot.load().services() {
        info!(
            target: "l4vs",
            "service {} {} scheduler {} -> {} real(s)",
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

    let mut inject_in = Vec::new();
    let mut inject_out = Vec::new();
    for (pi, p) in cfg.ports.iter().enumerate() {
        let (tx, rx) = Ring::create(&format!("l4vs_inject_{pi}"), INJECT_RING_SIZE)
            .with_context(|| format!("inject ring of port {}", p.name))?;
        inject_in.push(tx);
        inject_out.push(rx);
    }
    let mut inject_out = Some(inject_out);
    let mut control = ControlSide {
        pool: pool.clone(),
        inject: inject_in,
        punt: Vec::new(),
        workers: Vec::new(),
        counts: ControlCounts::default(),
        listing: None,
        kernel,
        port_ids: ports.iter().map(Port::id).collect(),
        deferred: Vec::new(),
        sync_backlog: vec![std::collections::VecDeque::new(); cfg.workers.cores.len()],
        sync: cfg.sync.clone().map(|s| {
            let mac = port_infos[s.port].mac.0;
            SyncDaemon::new(s, mac, cfg.workers.cores.len() as u16)
        }),
        vrrp: cfg.vrrp.clone().map(|v| {
            let mac = port_infos[v.port].mac.0;
            let now = Instant::now();
            Router::new(v.clone(), mac, now, now + preempt_hold_off(cfg, &v))
        }),
        vrrp_transitions: Vec::new(),
    };
    let cycles_per_ms = (l4vs_dpdk::tsc_hz() / 1000).max(1);
    // Before any worker polls: the requests wait in worker 0's inject ring
    // and leave at its first poll, and the hops count as asked for, so
    // the first packets to them do not ask again (then every housekeeping
    // round).
    solicit_next_hops(&mut control, &snapshot.load(), &neighbors, Duration::ZERO);
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawning = Instant::now();
    let mut all_counters = Vec::new();
    for (i, core) in cfg.workers.cores.iter().enumerate() {
        let q = i as u16;
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for port in &ports {
            rx.push(port.rx_queue(q).with_context(|| format!("RX queue {q}"))?);
            tx.push(port.tx_queue(q).with_context(|| format!("TX queue {q}"))?);
        }
        let (punt_in, punt_out) = Ring::create(&format!("l4vs_punt_{i}"), PUNT_RING_SIZE)
            .with_context(|| format!("punt ring of worker {i}"))?;
        control.punt.push(punt_out);
        let (control_end, worker_end) = rings::pair(rings::COMMAND_SLOTS, rings::EVENT_SLOTS);
        control.workers.push(control_end);
        let counters = Arc::new(Counters::default());
        all_counters.push(counters.clone());
        let io = DpdkIo::new(
            rx,
            tx,
            redirect_out.next().unwrap_or_default(),
            redirect_in.next().unwrap_or_default(),
            punt_in,
            if i == 0 {
                inject_out.take().unwrap_or_default()
            } else {
                Vec::new()
            },
            pool.clone(),
            counters.clone(),
        );
        let plan = WorkerPlan {
            core: *core,
            io,
            lcore: LcoreConfig {
                burst: usize::from(cfg.workers.burst).clamp(1, MAX_BURST),
                housekeeping_ms: HOUSEKEEPING_MS,
                idle_sleep: Duration::from_micros(u64::from(cfg.workers.idle_sleep_us)),
                idle_polls_before_sleep: IDLE_POLLS_BEFORE_SLEEP,
                cycles_per_ms,
            },
            snapshot: snapshot.clone(),
            neighbors: neighbors.clone(),
            counters,
            worker: WorkerConfig {
                seed: 0x6c34_7673_0000_0000 ^ (u64::from(q) << 16) ^ u64::from(std::process::id()),
                worker_id: q,
                workers: nworkers,
                timeouts: cfg.timeouts,
                expire_nodest_conn: cfg.expire_nodest_conn,
                icmp_msgs_per_sec: cfg.icmp.msgs_per_sec,
                icmp_msgs_burst: cfg.icmp.msgs_burst,
                icmp_ratelimit_ms: cfg.icmp.ratelimit_ms,
                conn_capacity: cfg.workers.connections,
                ..WorkerConfig::default()
            },
            control: worker_end,
        };
        let stop = workers_stop.clone();
        let ready = ready_tx.clone();
        let h = thread::Builder::new()
            .name(format!("l4vs-worker-{i}"))
            .spawn(move || worker_main(plan, &stop, &ready))
            .context("spawning a worker")?;
        handles.push(h);
    }
    // Not running before every worker polls: a worker first builds its
    // connection table (tens of MiB, faulted in page by page, and with
    // huge pages perhaps compacted for), and until it polls nothing is
    // received — a VRRP backup would hear no master and take over.
    drop(ready_tx);
    for _ in 0..handles.len() {
        // Err: a worker ended before it was ready; the loop below finds
        // it finished and reports its error.
        if ready_rx.recv().is_err() {
            break;
        }
    }
    let cores: Vec<String> = cfg.workers.cores.iter().map(u32::to_string).collect();
    info!(
        target: "l4vs",
        "admin socket {}",
        crate::printable::printable(&config::shown_path(admin.path()))
    );
    if let Some(m) = &metrics {
        info!(target: "l4vs", "metrics at http://{}/metrics", m.local_addr());
    }
    if let Some(s) = &cfg.sync {
        info!(
            target: "l4vs",
            "sync daemon {}, syncid {}, on port {}: {}:{} from {}, TTL {}, messages up to {} bytes, {}, {}",
            s.role.as_str(),
            s.syncid,
            cfg.ports[s.port].name,
            s.group,
            s.udp_port,
            s.source,
            s.ttl,
            s.max_len,
            s.resync_period
                .map_or("no resync".to_owned(), |p| format!("resync every {} s", p.as_secs())),
            s.auth
                .as_ref()
                .map_or("no authentication".to_owned(), |a| format!("HMAC-SHA256 key id {}", a.key_id))
        );
        // A backup's entries live by their timeout until the next resync
        // refreshes them (l4vs does not resend on traffic as the kernel's
        // sync_period does).
        if let Some(p) = s.resync_period.filter(|_| s.role.sends()) {
            for svc in &cfg.services {
                let t = &svc.timeouts;
                let shortest = t.tcp_established.min(t.udp);
                if u64::from(shortest) * 1000 <= p.as_millis() as u64 * 2 {
                    warn!(
                        target: "l4vs",
                        "sync: service {}: a connection idle for its timeout ({} s) may expire on the backup before the next resync ({} s): set sync.resync_period below half of it",
                        svc.name.clone().unwrap_or_else(|| table::key_of(svc).to_string()),
                        shortest,
                        p.as_secs()
                    );
                }
            }
        }
    }
    let started = Instant::now();
    info!(
        target: "l4vs",
        "{} worker(s) on cores {}; running (the workers polled {} ms after they were started)",
        handles.len(),
        cores.join(", "),
        spawning.elapsed().as_millis()
    );
    // systemd (Type=notify): the ports are up and the workers forward.
    notify_service_manager(&[sd_notify::NotifyState::Ready]);

    let mut next_housekeeping = Duration::from_millis(HOUSEKEEPING_MS);
    let mut next_estimate = crate::estimator::INTERVAL;
    // What the sync daemon had refused when it last said so.
    let mut reported = (0u64, 0u64, 0u64);
    let mut next_sync_report = Duration::from_secs(60);
    // The first resync comes one period after the start.
    let mut next_resync = cfg
        .sync
        .as_ref()
        .and_then(|s| s.resync_period)
        .unwrap_or_default();
    // Snapshots replaced by a reload, until every worker has let go.
    let mut retired: Vec<Arc<Snapshot>> = Vec::new();
    let mut running = cfg.clone();
    let plan = health::Plan::of(cfg, &|k, r| table.health_of(k, *r.ip(), r.port()));
    // Verdicts of checks a reload replaced are ignored: their reals' new
    // tasks started from the table's state.
    let mut planned: std::collections::HashSet<health::Target> =
        plan.targets.iter().map(|(t, _)| t.clone()).collect();
    install_vip_routes(&plan);
    let checker = Checker::start(plan).context("starting the health checks")?;
    // The second round of gratuitous ARPs after becoming VRRP master.
    let mut garp_again: Option<Duration> = None;
    if let Some(v) = &cfg.vrrp {
        info!(
            target: "l4vs",
            "VRRP instance vrid {} ({}) on port {} from {}: priority {}, advertisements every {} ms, {}, virtual addresses {}; BACKUP until the master is down{}",
            v.vrid,
            v.name,
            cfg.ports[v.port].name,
            v.source,
            v.priority,
            u32::from(v.advert_int_cs) * 10,
            if v.preempt { "preempts" } else { "does not preempt" },
            v.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            match preempt_hold_off(cfg, v) {
                d if d.is_zero() || !v.preempt => String::new(),
                d => format!(" (no preemption in the first {} ms)", d.as_millis()),
            }
        );
        vrrp_notify(&checker, v, VrrpState::Backup);
    }
    // A quorum the configuration does not meet from the start (reals of
    // weight 0): said once, and its quorum_down run, as for a check's.
    for (key, name, met) in table.quorums() {
        if !met {
            warn!(target: "l4vs", "service {name}: quorum lost at start: the weights of its reals do not reach it (the sorry server, if any, stands in)");
            run_quorum_command(&checker, cfg, key, &name, false);
        }
    }
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(CONTROL_TICK);
        if handles.iter().any(|h| h.is_finished()) {
            stop.store(true, Ordering::Relaxed);
        }
        control.drain(&snapshot.load());
        control.send_sync(false);
        control.relay_from_kernel();
        if let Some(r) = control.vrrp.as_mut() {
            for n in r.take_notices() {
                warn!(target: "l4vs", "{n}");
            }
        }
        for t in control.vrrp_poll(Instant::now()) {
            vrrp_transition(&mut control, &t, &snapshot, &mut retired, &checker);
            if t.to == VrrpState::Master {
                garp_again = running
                    .vrrp
                    .as_ref()
                    .filter(|v| !v.garp_delay.is_zero())
                    .map(|v| started.elapsed() + v.garp_delay);
            } else {
                garp_again = None;
                // What the new master has not heard of yet leaves now,
                // not within the 2 s a message may wait.
                control.send_sync(true);
            }
        }
        retired.retain(|s| Arc::strong_count(s) > 1);
        let now = started.elapsed();
        if garp_again.is_some_and(|at| now >= at) {
            garp_again = None;
            if let Some(v) = &running.vrrp {
                control.send_gratuitous_arps(&snapshot.load(), v);
            }
        }
        if now >= next_housekeeping {
            solicit_next_hops(&mut control, &snapshot.load(), &neighbors, now);
            next_housekeeping = now + Duration::from_millis(HOUSEKEEPING_MS);
        }
        if now >= next_estimate {
            table.sample_rates();
            next_estimate = now + crate::estimator::INTERVAL;
        }
        for v in checker.verdicts() {
            let t = &v.target;
            if !planned.contains(t) {
                continue;
            }
            let quorum_before = table.quorum_met(t.service);
            let cmd = table::Command::SetHealth {
                service: t.service,
                addr: std::net::IpAddr::V4(*t.real.ip()),
                port: t.real.port(),
                up: v.up,
                weight: v.weight,
                inhibit: t.inhibit,
            };
            match publish_changes(
                &mut table,
                &running,
                &port_infos,
                &snapshot,
                &mut retired,
                |_| vec![cmd],
            ) {
                Ok(changes) => {
                    for line in change_lines(&changes) {
                        if v.up {
                            info!(target: "l4vs", "health: {line}: {}", v.why);
                        } else {
                            warn!(target: "l4vs", "health: {line}: {}", v.why);
                        }
                    }
                    let quorum_after = table.quorum_met(t.service);
                    if let (Some(before), Some(met)) = (quorum_before, quorum_after) {
                        if before != met {
                            run_quorum_command(&checker, &running, t.service, &t.service_name, met);
                        }
                    }
                }
                // The real was taken out by l4vsadm meanwhile.
                Err((_, e)) => debug!(
                    target: "l4vs",
                    "health: service {}: real {}: {e:#}",
                    t.service_name,
                    t.real
                ),
            }
        }
        if let Some((waiting, response)) = control
            .finished_listing()
            .or_else(|| control.start_deferred())
        {
            for t in waiting {
                admin.answer(t, &response);
            }
        }
        // What the sync daemon refused, in words, once a minute at most
        // (the kernel logs "Dropping buffer" rate-limited).
        if now >= next_sync_report {
            if let Some(d) = &control.sync {
                let c = d.counts;
                let (m, a, e) = (
                    c.rejected_messages - reported.0,
                    c.rejected_auth - reported.1,
                    c.rejected_conns - reported.2,
                );
                if m + e > 0 {
                    warn!(
                        target: "l4vs",
                        "sync: rejected {m} message(s) ({a} failed authentication: no MAC, another key, a wrong MAC or a replay; the others malformed or of another syncid) and {e} entr(y/ies) (a service or real this director lacks, malformed, or its worker's backlog full) in the last minute"
                    );
                }
                reported = (c.rejected_messages, c.rejected_auth, c.rejected_conns);
            }
            next_sync_report = now + Duration::from_secs(60);
        }
        // The running daemon's (the config's, or l4vsadm's).
        if let Some(period) = control
            .sync
            .as_ref()
            .map(SyncDaemon::config)
            .filter(|s| s.role.sends())
            .and_then(|s| s.resync_period)
        {
            if now >= next_resync {
                control.start_resync();
                next_resync = now + period;
            }
        }
        admin.poll(|req, ticket| match req {
            Request::Connections => match control.start_listing(ticket) {
                Ok(()) => None,
                Err(message) => Some(Response::Error {
                    command: None,
                    message,
                }),
            },
            Request::Yaml => Some(Response::Yaml {
                text: {
                    // The sync daemon that runs, l4vsadm's too.
                    let mut c = table.to_config(&running);
                    c.sync = control.sync.as_ref().map(|d| d.config().clone());
                    config::to_yaml(&c)
                },
            }),
            Request::StartDaemon { daemon } => Some(daemon_response(control.start_daemon(
                &daemon,
                &running,
                &port_infos,
            ))),
            Request::StopDaemon { state } => Some(daemon_response(control.stop_daemon(&state))),
            Request::List => Some(Response::Listing {
                size: u32::try_from(
                    u64::from(cfg.workers.connections) * cfg.workers.cores.len() as u64,
                )
                .unwrap_or(u32::MAX),
                timeouts: {
                    let t = table.timeouts();
                    [t.tcp_established, t.tcp_fin_wait, t.udp]
                },
                services: table.report(),
                daemons: control
                    .sync
                    .as_ref()
                    .map(|d| d.info(&cfg.ports[d.config().port].name))
                    .unwrap_or_default(),
                vrrp: control.vrrp.as_ref().map(|r| {
                    let v = r.config();
                    crate::admin::VrrpInfo {
                        state: r.state().as_str().to_owned(),
                        interface: cfg.ports[v.port].name.clone(),
                        vrid: v.vrid,
                        priority: v.priority,
                        advert_int_ms: u32::from(v.advert_int_cs) * 10,
                        addresses: v.addresses.clone(),
                        master: r.master().filter(|_| r.state() == VrrpState::Backup),
                    }
                }),
            }),
            Request::Apply { commands } => Some(
                match publish_changes(
                    &mut table,
                    &running,
                    &port_infos,
                    &snapshot,
                    &mut retired,
                    |_| commands,
                ) {
                    Ok(changes) => {
                        let lines = change_lines(&changes);
                        for line in &lines {
                            info!(target: "l4vs", "admin: {line}");
                        }
                        Response::Applied { changes: lines }
                    }
                    Err((command, e)) => Response::Error {
                        command,
                        message: e.to_string(),
                    },
                },
            ),
        });
        if let Some(m) = &metrics {
            m.serve(|| {
                let c = &control.counts;
                let ports: Vec<metrics::PortView> = ports
                    .iter()
                    .zip(&cfg.ports)
                    .map(|(p, pc)| metrics::PortView {
                        name: pc.name.clone(),
                        stats: p.stats().ok(),
                    })
                    .collect();
                metrics::render(&metrics::View {
                    services: &table.report(),
                    health: &table.health(),
                    quorums: &table.quorums(),
                    sync: control.sync.as_ref().map(|d| d.counts),
                    sync_lag: control.sync.as_ref().map(|d| d.lag(Instant::now())),
                    vrrp: control.vrrp.as_ref().map(|r| (r.state(), r.counts)),
                    workers: &all_counters,
                    conn_capacity: cfg.workers.connections,
                    ports: &ports,
                    control: metrics::ControlView {
                        injected: c.injected,
                        inject_dropped: c.inject_dropped,
                        punted: c.punted,
                        to_kernel: c.to_kernel,
                        from_kernel: c.from_kernel,
                        kernel_dropped: c.kernel_dropped,
                        events: c.events,
                    },
                    tsc_hz: l4vs_dpdk::tsc_hz(),
                })
            });
        }
        if usr1.swap(false, Ordering::Relaxed) {
            print_services(&mut table);
        }
        if usr2.swap(false, Ordering::Relaxed) {
            print_workers(cfg, &ports, &all_counters, &control.counts, &neighbors);
        }
        if hup.swap(false, Ordering::Relaxed) {
            // systemd >= 253 wants the monotonic time with RELOADING=1.
            let mut reloading = vec![sd_notify::NotifyState::Reloading];
            reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
            notify_service_manager(&reloading);
            let quorums_before = table.quorums();
            match reload(
                path,
                &running,
                &mut table,
                &port_infos,
                &snapshot,
                &mut retired,
                &neighbors,
            ) {
                Ok((new, changes)) => {
                    for line in change_lines(&changes) {
                        info!(target: "l4vs", "reload: {line}");
                    }
                    for line in health::check_changes(&running, &new) {
                        info!(target: "l4vs", "reload: {line}");
                    }
                    info!(
                        target: "l4vs",
                        "reloaded {}: {} service(s), {} change(s)",
                        crate::printable::printable(&config::shown_path(path)),
                        table.len(),
                        changes.len()
                    );
                    if running.vrrp != new.vrrp {
                        if let Some(v) = &new.vrrp {
                            vrrp_reload(&mut control, v, &snapshot, &mut retired);
                        }
                    }
                    running = new;
                    let plan =
                        health::Plan::of(&running, &|k, r| table.health_of(k, *r.ip(), r.port()));
                    // A real no longer checked is up again; a real down
                    // takes a new inhibit_on_failure.
                    let fixes = table.health_fixes(&|k, a, p| {
                        plan.targets
                            .iter()
                            .find(|(t, _)| {
                                t.service == k && *t.real.ip() == a && t.real.port() == p
                            })
                            .map(|(t, _)| t.inhibit)
                    });
                    if !fixes.is_empty() {
                        match publish_changes(
                            &mut table,
                            &running,
                            &port_infos,
                            &snapshot,
                            &mut retired,
                            |_| fixes,
                        ) {
                            Ok(changes) => {
                                for line in change_lines(&changes) {
                                    info!(target: "l4vs", "reload: health: {line}: its check changed");
                                }
                            }
                            Err((_, e)) => {
                                warn!(target: "l4vs", "reload: the reals' health after the checks changed: {e:#}")
                            }
                        }
                    }
                    // keepalived's quorum commands, for a quorum the reload
                    // lost or brought back.
                    for (key, name, met) in table.quorums() {
                        if quorums_before
                            .iter()
                            .any(|(k, _, was)| *k == key && *was != met)
                        {
                            run_quorum_command(&checker, &running, key, &name, met);
                        }
                    }
                    planned = plan.targets.iter().map(|(t, _)| t.clone()).collect();
                    install_vip_routes(&plan);
                    checker.set_plan(plan);
                }
                Err(e) => {
                    error!(
                        target: "l4vs",
                        "reload rejected, keeping the running configuration: {}",
                        crate::printable::printable(&format!("{e:#}"))
                    )
                }
            }
            notify_service_manager(&[sd_notify::NotifyState::Ready]);
        }
    }
    notify_service_manager(&[sd_notify::NotifyState::Stopping]);
    info!(target: "l4vs", "stopping");
    // The sync daemon's last messages, while worker 0 still transmits the
    // inject ring; then the workers stop.
    if control.sync.is_some() {
        control.drain(&snapshot.load());
        control.send_sync(true);
    }
    // A VRRP master's last advertisement, of priority 0 (RFC 5798
    // section 6.4.3): its backup takes over after Skew_Time.
    if let Some(r) = control.vrrp.as_mut() {
        let port = r.config().port as u16;
        let was_master = r.shutdown(Instant::now());
        for f in r.take_frames() {
            control.inject(port, &f);
        }
        if was_master {
            info!(target: "l4vs", "VRRP: released MASTER (advertised priority 0)");
        }
    }
    if control.sync.is_some() || control.vrrp.is_some() {
        thread::sleep(CONTROL_TICK * 10);
    }
    if let Some(v) = &running.vrrp {
        run_stop_commands(v);
    }
    workers_stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("{e:#}")),
            Err(_) => failed.push("a worker panicked".to_owned()),
        }
    }
    control.drain(&snapshot.load());
    if let Some(d) = &control.sync {
        let c = d.counts;
        info!(
            target: "l4vs",
            "sync daemon: sent {} connection(s) in {} message(s); received {} message(s), applied {} connection(s), rejected {} message(s) and {} connection(s)",
            c.sent_conns,
            c.sent_messages,
            c.received_messages,
            c.applied,
            c.rejected_messages,
            c.rejected_conns
        );
    }
    print_final(
        cfg,
        &ports,
        &all_counters,
        &control.counts,
        &neighbors,
        &mut table,
    );
    drop(checker);
    crate::exception::clear_vip_routes();
    for k in control.kernel.drain(..) {
        k.close();
    }
    drop(control);
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

/// Tells systemd (`NOTIFY_SOCKET`, Type=notify) how the director is;
/// nothing without systemd. A failure is logged and changes nothing else.
fn notify_service_manager(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(target: "l4vs", "cannot notify systemd: {e}");
    }
}

/// Re-reads the config for SIGHUP and applies the difference to the
/// running service table, command by command (as `ipvsadm` would), then
/// publishes only the services that changed. Addresses, the gateway,
/// static neighbours, classifier rules and timeouts change in place; what
/// the workers and ports take at start ([`config::restart_only_change`])
/// needs a restart, so a file that changes it is refused, as is an
/// invalid one: either way the running configuration
/// stays. Static neighbours that disappear from the file stay known until
/// ARP replaces them. Changes made at run time by other means are
/// overwritten by the file, as keepalived's reload does.
fn reload(
    path: &Path,
    running: &Config,
    table: &mut ServiceTable,
    port_infos: &[PortInfo],
    snapshot: &ArcSwap<Snapshot>,
    retired: &mut Vec<Arc<Snapshot>>,
    neighbors: &NeighborTable,
) -> Result<(Config, Vec<Change>)> {
    let new = config::load(path)?;
    if let Some(key) = config::restart_only_change(running, &new) {
        bail!(
            "{}: {key} changed, and it cannot change while l4vs runs (the workers and ports take it at start): restart l4vs to apply it",
            config::shown_path(path)
        );
    }
    let target = table_of(&new, path)?;
    let changes = publish_changes(table, &new, port_infos, snapshot, retired, |next| {
        next.set_environment(Network::of(&new), new.expire_quiescent_template);
        next.diff(&target)
    })
    .map_err(|(at, e)| match at {
        Some(_) => e.context("applying the new configuration"),
        None => e.context("building the service snapshot"),
    })?;
    plan::seed_neighbors(&new, neighbors);
    Ok((new, changes))
}

/// Changes the running table and publishes it to the workers, or leaves
/// both as they were: `commands` gets a copy of the table (to prepare, and
/// to diff against) and returns the operations, which are applied to the
/// copy in order; the copy's snapshot is published and the copy becomes
/// the table. The old snapshot is freed later, on the control thread, once
/// no worker holds it (see `retired` in `run`), never on a worker. SIGHUP
/// and the admin socket (`l4vsadm`) both change the table this way; the
/// admin socket's changes last until the next SIGHUP, which makes the
/// table the file's again, as keepalived's reload overwrites ipvsadm's
/// edits.
///
/// # Errors
/// The index of the refused operation and why, or no index when the
/// snapshot could not be built.
fn publish_changes(
    table: &mut ServiceTable,
    cfg: &Config,
    port_infos: &[PortInfo],
    snapshot: &ArcSwap<Snapshot>,
    retired: &mut Vec<Arc<Snapshot>>,
    commands: impl FnOnce(&mut ServiceTable) -> Vec<table::Command>,
) -> Result<Vec<Change>, (Option<usize>, anyhow::Error)> {
    let mut next = table.clone();
    let mut changes = Vec::new();
    for (i, cmd) in commands(&mut next).into_iter().enumerate() {
        changes.push(next.apply(cmd).map_err(|e| (Some(i), e.into()))?);
    }
    let snap = plan::publish(&mut next, cfg, port_infos).map_err(|e| (None, e.into()))?;
    // The VRRP state is the running one's.
    let running = snapshot.load();
    let snap = snap.with_high_availability(running.standby(), running.virtual_addresses().to_vec());
    retired.push(snapshot.swap(Arc::new(snap)));
    *table = next;
    Ok(changes)
}

/// The service table of `cfg`, loaded from the file at `path` (named in
/// the error, with the key path of the service or real it refused).
fn table_of(cfg: &Config, path: &Path) -> Result<ServiceTable> {
    ServiceTable::from_config(cfg)
        .map_err(|(key, e)| anyhow::anyhow!("{}: {key}: {e}", config::shown_path(path)))
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

/// Neighbour solicitation: ARP requests for the next hops of every real
/// server (and the default gateway) not yet resolved, through the
/// workers' inject path, so that they are known before the first packet
/// to them needs them. `now` is on the control loop's clock (from its
/// start); the neighbour table's back-off spaces the requests.
fn solicit_next_hops(
    control: &mut ControlSide,
    snap: &Snapshot,
    neighbors: &NeighborTable,
    now: Duration,
) {
    let now_ms = now.as_millis() as u64 + 1;
    l4vs_dataplane::worker::solicit_next_hops(
        snap,
        neighbors,
        now_ms,
        l4vs_dataplane::neighbor::SOLICIT_BACKOFF_MS,
        |port, frame| {
            control.inject(port, frame);
        },
    );
}

/// One worker thread: pinned, registered with DPDK, its worker built;
/// says so on `ready`, then polls until `stop`.
fn worker_main(
    plan: WorkerPlan,
    stop: &AtomicBool,
    ready: &std::sync::mpsc::Sender<()>,
) -> Result<()> {
    if !core_affinity::set_for_current(core_affinity::CoreId {
        id: plan.core as usize,
    }) {
        warn!(
            target: "l4vs",
            "could not pin a worker to core {}",
            plan.core
        );
    }
    l4vs_dpdk::register_thread().context("registering the worker with DPDK")?;
    // The connection table is touched at random: huge pages spare most of
    // its TLB misses (the kernel ignores the advice with THP `never`).
    let worker = Worker::with_memory_advice(
        plan.snapshot.load_full(),
        plan.neighbors,
        plan.counters,
        plan.worker,
        |addr, len| {
            l4vs_dpdk::advise_huge_pages(addr, len);
        },
    );
    let mut lcore = Lcore::new(
        worker,
        plan.io,
        plan.snapshot,
        Some(plan.control),
        plan.lcore,
    );
    // The director waits for this before it says it runs (and starts VRRP).
    let _ = ready.send(());
    lcore.run(stop);
    // The queues and rings go before the thread leaves DPDK.
    drop(lcore);
    l4vs_dpdk::unregister_thread();
    Ok(())
}

fn print_final(
    cfg: &Config,
    ports: &[Port],
    workers: &[Arc<Counters>],
    control: &ControlCounts,
    neighbors: &NeighborTable,
    table: &mut ServiceTable,
) {
    println!("l4vs: stopping; final counters");
    print_services(table);
    print_workers(cfg, ports, workers, control, neighbors);
}

/// The services and their reals with live connection counts (SIGUSR1, and
/// at exit).
fn print_services(table: &mut ServiceTable) {
    println!("l4vs: services (conns, packets and bytes since the start or -Z; rates per second)");
    let counters = |c: &crate::stats::Counted| {
        let (t, r) = (c.totals, c.rates);
        format!(
            "conns={} inpkts={} outpkts={} inbytes={} outbytes={} cps={} inpps={} outpps={} inbps={} outbps={}",
            t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes, r.cps, r.inpps, r.outpps, r.inbps, r.outbps
        )
    };
    for s in table.report() {
        println!(
            "  service {} {} scheduler {}: {}",
            s.name,
            s.key,
            s.scheduler,
            counters(&s.counted)
        );
        for r in &s.reals {
            println!(
                "  service {} real {}:{} {} weight={} activeconns={} inactconns={} {}",
                s.name,
                r.real.addr,
                r.real.port,
                r.real.method.ipvsadm_name(),
                r.real.weight,
                r.active,
                r.inactive,
                counters(&r.counted)
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
    control: &ControlCounts,
    neighbors: &NeighborTable,
) {
    println!("l4vs: counters of the control thread, the workers and the ports");
    let [created, changed, ended] = control.events;
    println!(
        "  control: arp_requests={} inject_dropped={} punted={} to_kernel={} from_kernel={} kernel_dropped={} conn_events_created={created} conn_events_state={changed} conn_events_ended={ended}",
        control.injected, control.inject_dropped, control.punted, control.to_kernel, control.from_kernel, control.kernel_dropped
    );
    for (i, c) in workers.iter().enumerate() {
        let named: Vec<String> = c
            .named()
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "  worker {i}: {} conn_entries={}",
            named.join(" "),
            c.conn_entries.get()
        );
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
    println!("  neighbors: {}", learned.join(" "));
    let _ = std::io::stdout().flush();
}

/// Runs the `quorum_up` (`met`) or `quorum_down` command of service `key`
/// (called `name`) in `running`, if it has one, with `L4VS_SERVICE` and `L4VS_QUORUM`
/// (`UP` or `DOWN`) in its environment (keepalived's quorum notify
/// commands, check/ipwrapper.c `update_quorum_state`).
fn run_quorum_command(
    checker: &health::Checker,
    running: &config::Config,
    key: table::ServiceKey,
    name: &str,
    met: bool,
) {
    let Some(service) = running.services.iter().find(|s| table::key_of(s) == key) else {
        return;
    };
    let command = if met {
        &service.quorum_up
    } else {
        &service.quorum_down
    };
    if let Some(command) = command {
        checker.run_command(
            command.clone(),
            vec![
                ("L4VS_SERVICE", name.to_owned()),
                ("L4VS_QUORUM", (if met { "UP" } else { "DOWN" }).to_owned()),
            ],
        );
    }
}

/// The answer to `--start-daemon` or `--stop-daemon`: the change,
/// logged, or the error in ipvsadm's words.
fn daemon_response(result: Result<String, String>) -> Response {
    match result {
        Ok(line) => {
            info!(target: "l4vs", "admin: {line}");
            Response::Applied {
                changes: vec![line],
            }
        }
        Err(message) => Response::Error {
            command: None,
            message,
        },
    }
}

/// How long after its start a VRRP director does not preempt: its
/// `preempt_delay_ms` or, with a sync daemon that receives and resyncs,
/// a resync period, a flush ([`crate::sync::FLUSH_TIME`]) and 1 s for
/// the master's listing, whichever is longer: by then its peer has sent
/// it every connection (see [`crate::vrrp`]).
fn preempt_hold_off(cfg: &config::Config, v: &config::Vrrp) -> Duration {
    let resync = cfg
        .sync
        .as_ref()
        .filter(|s| s.role.receives())
        .and_then(|s| s.resync_period)
        .map_or(Duration::ZERO, |p| {
            p + crate::sync::FLUSH_TIME + Duration::from_secs(1)
        });
    v.preempt_delay.max(resync)
}

/// Publishes the running snapshot again with the VRRP state `standby`
/// and the virtual addresses `addrs` (the services unchanged).
fn publish_high_availability(
    snapshot: &ArcSwap<Snapshot>,
    retired: &mut Vec<Arc<Snapshot>>,
    standby: bool,
    addrs: Vec<std::net::Ipv4Addr>,
) {
    let next = (**snapshot.load())
        .clone()
        .with_high_availability(standby, addrs);
    retired.push(snapshot.swap(Arc::new(next)));
}

/// Acts on a VRRP state change: the workers forward (master) or stop
/// (backup) with the next snapshot; a new master announces the VIPs and
/// virtual addresses by gratuitous ARP; the notify commands run.
fn vrrp_transition(
    control: &mut ControlSide,
    t: &Transition,
    snapshot: &ArcSwap<Snapshot>,
    retired: &mut Vec<Arc<Snapshot>>,
    checker: &Checker,
) {
    let Some(v) = control.vrrp.as_ref().map(|r| r.config().clone()) else {
        return;
    };
    publish_high_availability(
        snapshot,
        retired,
        t.to == VrrpState::Backup,
        v.addresses.clone(),
    );
    match t.to {
        VrrpState::Master => {
            warn!(target: "l4vs", "VRRP: entering MASTER state ({}): forwarding", t.why);
            control.send_gratuitous_arps(&snapshot.load(), &v);
        }
        VrrpState::Backup => {
            warn!(target: "l4vs", "VRRP: entering BACKUP state ({}): not forwarding", t.why)
        }
    }
    vrrp_notify(checker, &v, t.to);
}

/// A reload's VRRP settings (the instance is the same: its identity is
/// restart-only): the router takes them, the workers' snapshot the new
/// virtual addresses, and a master announces added ones.
fn vrrp_reload(
    control: &mut ControlSide,
    v: &config::Vrrp,
    snapshot: &ArcSwap<Snapshot>,
    retired: &mut Vec<Arc<Snapshot>>,
) {
    let Some(r) = control.vrrp.as_mut() else {
        return;
    };
    for line in r.reconfigure(v.clone(), Instant::now()) {
        info!(target: "l4vs", "reload: VRRP instance {}: {line}", v.name);
    }
    let master = r.state() == VrrpState::Master;
    let port = v.port as u16;
    for f in r.take_frames() {
        control.inject(port, &f);
    }
    let (standby, same) = {
        let current = snapshot.load();
        (
            current.standby(),
            current.virtual_addresses() == v.addresses.as_slice(),
        )
    };
    if !same {
        publish_high_availability(snapshot, retired, standby, v.addresses.clone());
        if master {
            control.send_gratuitous_arps(&snapshot.load(), v);
        }
    }
}

/// The environment of a VRRP notify command.
fn vrrp_env(v: &config::Vrrp, state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("L4VS_VRRP_STATE", state.to_owned()),
        ("L4VS_VRRP_INSTANCE", v.name.clone()),
        ("L4VS_VRRP_VRID", v.vrid.to_string()),
        ("L4VS_VRRP_PRIORITY", v.priority.to_string()),
    ]
}

/// keepalived's arguments of a `notify` script: `INSTANCE`, the
/// instance's name, the state, the priority.
fn notify_args(v: &config::Vrrp, state: &str) -> Vec<String> {
    vec![
        "INSTANCE".to_owned(),
        v.name.clone(),
        state.to_owned(),
        v.priority.to_string(),
    ]
}

/// Runs `notify_master` or `notify_backup`, and `notify` (with
/// keepalived's arguments), for `state` (keepalived's order), in the
/// background.
fn vrrp_notify(checker: &Checker, v: &config::Vrrp, state: VrrpState) {
    let own = match state {
        VrrpState::Master => &v.notify_master,
        VrrpState::Backup => &v.notify_backup,
    };
    if let Some(cmd) = own {
        checker.run_command(cmd.clone(), vrrp_env(v, state.as_str()));
    }
    if let Some(cmd) = &v.notify {
        checker.run_command_with_args(
            cmd.clone(),
            vrrp_env(v, state.as_str()),
            notify_args(v, state.as_str()),
        );
    }
}

/// Runs `notify_stop` and `notify` (with keepalived's arguments) with
/// state `STOP` as l4vs stops, each waited for up to 5 s and then killed.
fn run_stop_commands(v: &config::Vrrp) {
    let with_args = v.notify.as_ref().map(|c| (c, notify_args(v, "STOP")));
    let own = v.notify_stop.as_ref().map(|c| (c, Vec::new()));
    for (cmd, args) in [own, with_args].into_iter().flatten() {
        let child = std::process::Command::new("/bin/sh")
            .args(health::sh_args(cmd, &args))
            .envs(vrrp_env(v, "STOP"))
            .stdin(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                warn!(target: "l4vs", "VRRP: notify command `{cmd}`: {e}");
                continue;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if let Ok(Some(status)) = child.try_wait() {
            if !status.success() {
                warn!(target: "l4vs", "VRRP: notify command `{cmd}`: {}", health::exit_words(status));
            }
        }
        if matches!(child.try_wait(), Ok(None)) {
            warn!(target: "l4vs", "VRRP: notify command `{cmd}` still ran after 5 s: killed");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Installs the policy routes of `plan`'s `through_vip` checks (and
/// removes those of before). A failure is logged: the checks it concerns
/// then fail, and their reals go down, which the log says too.
fn install_vip_routes(plan: &health::Plan) {
    if plan.routes.is_empty() {
        crate::exception::clear_vip_routes();
        return;
    }
    match crate::exception::set_vip_routes(&plan.routes) {
        Ok(()) => {
            for r in &plan.routes {
                debug!(target: "l4vs", "health: checks marked {:#x} reach {} by way of {}", r.mark, r.vip, r.real);
            }
        }
        Err(e) => error!(target: "l4vs", "health: the routes of through_vip checks: {e:#}"),
    }
}
