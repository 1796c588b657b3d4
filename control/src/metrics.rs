//! The Prometheus metrics endpoint: `GET /metrics` over HTTP/1.1, in the
//! Prometheus text exposition format 0.0.4 (`prometheus-client`'s
//! `prometheus_text` encoder), which Prometheus scrapes as it does any
//! exporter and `promtool check metrics` accepts.
//!
//! The endpoint runs on its own thread (a single-threaded tokio runtime
//! with hyper), started by the control thread and sharing its core. It owns
//! no statistics: a scrape is a message to the control thread, which
//! renders the text from what it keeps anyway (the service table with its
//! counters and rates, the workers' counters, the ports' DPDK statistics)
//! on its next tick, at most 10 ms later. So a scrape costs the control
//! side only, and no worker ever sees it.
//!
//! Bounds: at most [`MAX_CLIENTS`] connections are served at once (more
//! wait in the listen backlog until one ends, so clients that connect and
//! send nothing delay a scrape by at most [`HEADER_TIMEOUT`], never shut
//! it out), a request's headers must arrive within [`HEADER_TIMEOUT`], a
//! connection lives at most [`CONNECTION_TIMEOUT`], and a scrape the
//! control thread does not answer within [`SCRAPE_TIMEOUT`] gets 503.
//!
//! What is exported, by name (every name starts with `l4vs_`; counters end
//! in `_total`, byte counters in `_bytes_total`):
//! - per virtual service (labels `service`, `protocol`, `vip`, `port`,
//!   `fwmark`) and per real server (the same plus `real`, `real_port`,
//!   `forward`): connections, packets and bytes in each direction, as
//!   `ipvsadm -L --stats` counts them (since the start or the last `-Z`);
//!   per real also active and inactive connections, the weight, and
//!   the sync daemon's messages and entries (`l4vs_sync_*`);
//!   whether its health check finds it up (`l4vs_real_up`); per service
//!   whether its quorum is met (`l4vs_service_quorum_up`);
//! - per worker (label `worker`): every counter of
//!   [`l4vs_dataplane::Counters`] (received, forwarded, redirected, busy
//!   and idle TSC cycles...), drops by reason, and the connection table's
//!   occupancy and capacity;
//! - per DPDK port (label `port`): `rte_eth_stats` (packets, bytes,
//!   imissed, ierrors, oerrors, rx_nombuf);
//! - the control thread's own counters and the TSC frequency, to turn
//!   cycles into seconds.

use crate::table::{RealHealth, ServiceKey, ServiceReport};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use l4vs_dataplane::{Counters, DropReason};
use l4vs_dpdk::PortStats;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// Connections served at once; more wait to be accepted.
pub const MAX_CLIENTS: usize = 64;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection (keep-alive included) may last.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scrape waits for the control thread before it gets 503.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The content type of the exposition: Prometheus text 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A scrape waiting for the control thread: where the text goes.
struct Scrape(oneshot::Sender<String>);

/// The running endpoint. Dropping it stops the thread.
pub struct MetricsEndpoint {
    scrapes: Receiver<Scrape>,
    local: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` (here, so that a taken port fails the start) and starts
    /// serving on a thread of its own.
    ///
    /// # Errors
    /// The bind error (address in use, not an address of this host,
    /// permission), or the runtime's or the thread's creation error.
    pub fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (to_control, scrapes) = mpsc::sync_channel(MAX_CLIENTS);
        let (shutdown, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("l4vs-metrics".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => serve(l, to_control, stopped).await,
                        Err(e) => tracing::error!(target: "l4vs", "metrics endpoint: {e}"),
                    }
                });
            })?;
        Ok(MetricsEndpoint {
            scrapes,
            local,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port filled in when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Answers the scrapes waiting, if any, with one rendering of
    /// `render` (called only when some wait). Never blocks.
    pub fn serve(&self, render: impl FnOnce() -> String) {
        let waiting: Vec<Scrape> = self.scrapes.try_iter().collect();
        if waiting.is_empty() {
            return;
        }
        let text = render();
        for Scrape(reply) in waiting {
            // The client may have gone (timed out); nothing to do then.
            let _ = reply.send(text.clone());
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts until `stopped`; one task per connection, at most
/// [`MAX_CLIENTS`].
async fn serve(
    listener: tokio::net::TcpListener,
    to_control: SyncSender<Scrape>,
    mut stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        // A free slot first: while every slot is taken, new connections
        // wait in the kernel's backlog rather than being turned away.
        let slot = tokio::select! {
            _ = &mut stopped => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors and the like: wait instead of
                    // spinning on the error.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let to_control = to_control.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, to_control.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(slot);
        });
    }
}

/// One HTTP request: `/metrics` asks the control thread for the text.
async fn answer(
    req: Request<Incoming>,
    to_control: SyncSender<Scrape>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let (reply, text) = oneshot::channel();
            if to_control.try_send(Scrape(reply)).is_err() {
                return Ok(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "l4vs: too many scrapes waiting\n",
                ));
            }
            match tokio::time::timeout(SCRAPE_TIMEOUT, text).await {
                Ok(Ok(text)) => {
                    let mut r = Response::new(Full::new(Bytes::from(text)));
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
                    );
                    r
                }
                _ => plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "l4vs: the control thread did not answer\n",
                ),
            }
        }
        (&Method::GET | &Method::HEAD, "/") => plain(StatusCode::OK, "l4vs metrics: /metrics\n"),
        (_, "/metrics" | "/") => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "l4vs: GET or HEAD only\n");
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            r
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "l4vs: not found; metrics are at /metrics\n",
        ),
    })
}

/// A DPDK port's statistics as a scrape sees them (`None`: DPDK refused
/// to give them; the port is left out).
#[derive(Debug, Clone)]
pub struct PortView {
    /// The port's name in the configuration.
    pub name: String,
    /// `rte_eth_stats_get`.
    pub stats: Option<PortStats>,
}

/// The control thread's own counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlView {
    /// Frames it sent (ARP solicitations).
    pub injected: u64,
    /// Frames it could not send.
    pub inject_dropped: u64,
    /// Packets the workers punted to it.
    pub punted: u64,
    /// Punted packets handed to the kernel (exception path).
    pub to_kernel: u64,
    /// Frames from the kernel passed on to the ports.
    pub from_kernel: u64,
    /// Exception-path frames lost.
    pub kernel_dropped: u64,
    /// Connection events read: created, state changed, ended.
    pub events: [u64; 3],
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The services, their reals and their counters (`ServiceTable::report`).
    pub services: &'a [ServiceReport],
    /// Every configured real's health (`ServiceTable::health`).
    pub health: &'a [RealHealth],
    /// Each service's quorum (`ServiceTable::quorums`): its key, name,
    /// and whether the quorum is met.
    pub quorums: &'a [(ServiceKey, String, bool)],
    /// The sync daemon's counts, if one runs.
    pub sync: Option<crate::sync::SyncCounts>,
    /// How far behind the sync daemon is, if one runs.
    pub sync_lag: Option<crate::sync::SyncLag>,
    /// The VRRP instance's state and counts, if one runs.
    pub vrrp: Option<(crate::vrrp::State, crate::vrrp::VrrpCounts)>,
    /// Each worker's counters, in worker order.
    pub workers: &'a [Arc<Counters>],
    /// Connection-table entries each worker has room for.
    pub conn_capacity: u32,
    /// The ports, in configuration order.
    pub ports: &'a [PortView],
    /// The control thread's counters.
    pub control: ControlView,
    /// TSC cycles per second (to turn the cycle counters into seconds).
    pub tsc_hz: u64,
}

type Labels = Vec<(&'static str, String)>;

/// Help text of each worker counter of [`Counters::named`]; a test checks
/// that every counter has one.
const WORKER_COUNTER_HELP: &[(&str, &str)] = &[
    (
        "rx",
        "Packets processed: from the worker's RX queues and redirected to it",
    ),
    ("forwarded", "Packets forwarded"),
    ("tx_dropped", "Forwarded packets the TX queue refused"),
    ("to_control", "Packets handed to the control thread"),
    (
        "consumed",
        "Packets consumed by the worker (gratuitous ARP learned)",
    ),
    (
        "redirected",
        "Packets handed to the worker owning their connection",
    ),
    (
        "redirect_dropped",
        "Redirected packets dropped on a full ring",
    ),
    ("arp_replies", "ARP requests answered"),
    ("arp_requests", "ARP requests sent for unresolved next hops"),
    (
        "neighbor_held",
        "Packets held until their next hop resolved",
    ),
    (
        "neighbor_released",
        "Held packets sent once their next hop resolved",
    ),
    ("icmp_echo_replies", "ICMP echo requests answered"),
    (
        "icmp_errors_forwarded",
        "ICMP errors forwarded to their connection's peer",
    ),
    ("icmp_frag_needed_sent", "ICMP fragmentation needed sent"),
    ("icmp_time_exceeded_sent", "ICMP time exceeded sent"),
    ("icmp_port_unreachable_sent", "ICMP port unreachable sent"),
    (
        "icmp_rate_limited",
        "ICMP errors not sent because of the rate limit",
    ),
    (
        "ops_scheduled",
        "Datagrams of one-packet-scheduling services scheduled",
    ),
    ("conns_created", "Connections created"),
    ("templates_created", "Persistence templates created"),
    (
        "conns_expired",
        "Connections and templates expired, closed or flushed",
    ),
    ("nat_in", "Packets forwarded by NAT towards a real server"),
    (
        "nat_out",
        "NAT replies rewritten back to the virtual address",
    ),
    ("tunnel", "Packets forwarded in IP-IP"),
    ("direct", "Packets forwarded by direct routing"),
    (
        "events_dropped",
        "Connection events dropped on a full event ring",
    ),
    ("commands_applied", "Commands of the control thread applied"),
    (
        "punt_dropped",
        "Packets for the control thread dropped on a full ring",
    ),
    (
        "fragments_in",
        "IP fragments of TCP and UDP datagrams received",
    ),
    (
        "fragments_held",
        "Later fragments held until their first fragment came",
    ),
    (
        "frag_entries_evicted",
        "Fragment-table entries evicted by another datagram",
    ),
    ("fragmented", "Packets fragmented on their way out"),
    ("fragments_sent", "Fragments sent"),
    ("idle_cycles", "TSC cycles spent polling empty queues"),
    (
        "busy_cycles",
        "TSC cycles spent on bursts that carried packets",
    ),
];

fn counter(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, f.clone()),
        None => registry.register(name, help, f.clone()),
    }
    f
}

fn gauge(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

/// The labels that name a virtual service.
fn service_labels(s: &ServiceReport) -> Labels {
    key_labels(s.key, &s.name)
}

/// The labels of the service `key` called `name`.
fn key_labels(key: ServiceKey, name: &str) -> Labels {
    let (protocol, vip, port, fwmark) = match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => (
            protocol.as_str().to_owned(),
            vip.to_string(),
            port.to_string(),
            String::new(),
        ),
        ServiceKey::Fwmark(m) => (
            "fwmark".to_owned(),
            String::new(),
            String::new(),
            m.to_string(),
        ),
    };
    vec![
        ("service", name.to_owned()),
        ("protocol", protocol),
        ("vip", vip),
        ("port", port),
        ("fwmark", fwmark),
    ]
}

fn with(mut l: Labels, more: &[(&'static str, String)]) -> Labels {
    l.extend(more.iter().cloned());
    l
}

/// Renders `v` in the Prometheus text exposition format 0.0.4.
pub fn render(v: &View<'_>) -> String {
    let mut r = Registry::with_prefix("l4vs");
    // Services and reals.
    let conns = counter(
        &mut r,
        "service_connections",
        "Connections scheduled to the virtual service (ipvsadm --stats Conns)",
        None,
    );
    let packets = counter(&mut r, "service_packets", "Packets of the virtual service; direction in: towards the real servers, out: back through the director (NAT)", None);
    let bytes = counter(
        &mut r,
        "service",
        "IP bytes of the virtual service by direction",
        Some(Unit::Bytes),
    );
    let real_conns = counter(
        &mut r,
        "real_connections",
        "Connections scheduled to the real server",
        None,
    );
    let real_packets = counter(
        &mut r,
        "real_packets",
        "Packets of the real server by direction",
        None,
    );
    let real_bytes = counter(
        &mut r,
        "real",
        "IP bytes of the real server by direction",
        Some(Unit::Bytes),
    );
    let active = gauge(
        &mut r,
        "real_active_connections",
        "Active connections of the real server (ipvsadm ActiveConn)",
    );
    let inactive = gauge(
        &mut r,
        "real_inactive_connections",
        "Inactive connections of the real server (ipvsadm InActConn)",
    );
    let weight = gauge(
        &mut r,
        "real_weight",
        "Weight of the real server (0: quiescent)",
    );
    for s in v.services {
        let l = service_labels(s);
        let t = s.counted.totals;
        conns.get_or_create(&l).inc_by(t.conns);
        let dir = |d: &str| with(l.clone(), &[("direction", d.to_owned())]);
        packets.get_or_create(&dir("in")).inc_by(t.inpkts);
        packets.get_or_create(&dir("out")).inc_by(t.outpkts);
        bytes.get_or_create(&dir("in")).inc_by(t.inbytes);
        bytes.get_or_create(&dir("out")).inc_by(t.outbytes);
        for rr in &s.reals {
            let rl = with(
                l.clone(),
                &[
                    ("real", rr.real.addr.to_string()),
                    ("real_port", rr.real.port.to_string()),
                    ("forward", rr.real.method.as_str().to_owned()),
                ],
            );
            let t = rr.counted.totals;
            real_conns.get_or_create(&rl).inc_by(t.conns);
            let dir = |d: &str| with(rl.clone(), &[("direction", d.to_owned())]);
            real_packets.get_or_create(&dir("in")).inc_by(t.inpkts);
            real_packets.get_or_create(&dir("out")).inc_by(t.outpkts);
            real_bytes.get_or_create(&dir("in")).inc_by(t.inbytes);
            real_bytes.get_or_create(&dir("out")).inc_by(t.outbytes);
            active.get_or_create(&rl).set(i64::from(rr.active));
            inactive.get_or_create(&rl).set(i64::from(rr.inactive));
            weight.get_or_create(&rl).set(i64::from(rr.real.weight));
        }
    }
    let up = gauge(
        &mut r,
        "real_up",
        "1 when the real server's health check finds it up (or it has none), 0 when down; every configured real, in the service or not",
    );
    for h in v.health {
        let l = with(
            key_labels(h.service, &h.service_name),
            &[
                ("real", h.addr.to_string()),
                ("real_port", h.port.to_string()),
                ("forward", h.method.as_str().to_owned()),
            ],
        );
        up.get_or_create(&l).set(i64::from(h.up));
    }
    let quorum = gauge(
        &mut r,
        "service_quorum_up",
        "1 while the weights of the service's reals that are up reach its quorum (keepalived's quorum with hysteresis), 0 while it is lost and the sorry server, if any, stands in",
    );
    if let Some(c) = v.sync {
        let messages = counter(
            &mut r,
            "sync_messages",
            "Connection sync messages the sync daemon sent (a master) and received and took (a backup), by direction",
            None,
        );
        messages
            .get_or_create(&vec![("direction", "sent".to_owned())])
            .inc_by(c.sent_messages);
        messages
            .get_or_create(&vec![("direction", "received".to_owned())])
            .inc_by(c.received_messages);
        let conns = counter(
            &mut r,
            "sync_connections",
            "Connection entries the sync daemon sent or could not send (a master: a resync larger than its buffer, a full inject ring), applied to the table or rejected (a backup: unknown service or real, malformed, its backlog full)",
            None,
        );
        for (what, n) in [
            ("sent", c.sent_conns),
            ("unsent", c.unsent_conns),
            ("applied", c.applied),
            ("rejected", c.rejected_conns),
        ] {
            conns
                .get_or_create(&vec![("what", what.to_owned())])
                .inc_by(n);
        }
        let rejected = counter(
            &mut r,
            "sync_rejected_messages",
            "Sync messages dropped, by reason: failed authentication (no MAC, another key, a wrong MAC, a replay), or else (malformed, another syncid)",
            None,
        );
        rejected
            .get_or_create(&vec![("reason", "auth".to_owned())])
            .inc_by(c.rejected_auth);
        rejected
            .get_or_create(&vec![("reason", "other".to_owned())])
            .inc_by(c.rejected_messages - c.rejected_auth.min(c.rejected_messages));
    }
    if let Some(lag) = v.sync_lag {
        let f = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        r.register_with_unit(
            "sync_lag",
            "How far behind the sync daemon is: a master, how long its oldest entry has waited to be sent (what=pending; at most 2 s); a backup, how long ago it last took a message (what=since_last_message; absent before the first)",
            Unit::Seconds,
            f.clone(),
        );
        f.get_or_create(&vec![("what", "pending".to_owned())])
            .set(lag.pending.as_secs_f64());
        if let Some(d) = lag.since_last_message {
            f.get_or_create(&vec![("what", "since_last_message".to_owned())])
                .set(d.as_secs_f64());
        }
    }
    if let Some((state, c)) = v.vrrp {
        let st = gauge(
            &mut r,
            "vrrp_state",
            "1 for the VRRP instance's state (MASTER: forwards and answers ARP for the virtual addresses; BACKUP: forwards nothing), 0 for the other",
        );
        for s in [crate::vrrp::State::Master, crate::vrrp::State::Backup] {
            st.get_or_create(&vec![("state", s.as_str().to_owned())])
                .set(i64::from(s == state));
        }
        let adverts = counter(
            &mut r,
            "vrrp_advertisements",
            "VRRP advertisements sent, and received that passed RFC 5798's checks (of which priority 0: a master stopped)",
            None,
        );
        for (what, n) in [
            ("sent", c.sent),
            ("received", c.received),
            ("received_priority_zero", c.received_priority_zero),
        ] {
            adverts
                .get_or_create(&vec![("what", what.to_owned())])
                .inc_by(n);
        }
        let rejected = counter(
            &mut r,
            "vrrp_rejected_advertisements",
            "VRRP advertisements dropped, by the RFC 5798 section 7.1 check they failed",
            None,
        );
        for (reason, n) in crate::vrrp::REJECT_REASONS.iter().zip(c.rejected) {
            rejected
                .get_or_create(&vec![("reason", (*reason).to_owned())])
                .inc_by(n);
        }
        counter(
            &mut r,
            "vrrp_address_list_errors",
            "VRRP advertisements used although their address list differs from virtual_ipaddress",
            None,
        )
        .get_or_create(&Vec::new())
        .inc_by(c.address_list_errors);
        let transitions = counter(
            &mut r,
            "vrrp_transitions",
            "VRRP state changes, by the state entered",
            None,
        );
        for (to, n) in [("MASTER", c.became_master), ("BACKUP", c.became_backup)] {
            transitions
                .get_or_create(&vec![("state", to.to_owned())])
                .inc_by(n);
        }
    }
    for (key, name, met) in v.quorums {
        quorum
            .get_or_create(&key_labels(*key, name))
            .set(i64::from(*met));
    }
    // Workers.
    let named: Vec<(&str, Family<Labels, Counter>)> = WORKER_COUNTER_HELP
        .iter()
        .map(|(name, help)| {
            let unit = name
                .ends_with("_cycles")
                .then(|| Unit::Other("cycles".to_owned()));
            let metric = match name.strip_suffix("_cycles") {
                Some(stem) => format!("worker_{stem}"),
                None => format!("worker_{name}"),
            };
            (*name, counter(&mut r, &metric, help, unit))
        })
        .collect();
    let drops = counter(&mut r, "worker_drops", "Packets dropped, by reason", None);
    let entries = gauge(&mut r, "worker_connection_entries", "Entries (connections and templates) in the worker's connection table, as of its last housekeeping round");
    let capacity = gauge(
        &mut r,
        "worker_connection_capacity",
        "Entries the worker's connection table has room for",
    );
    for (i, c) in v.workers.iter().enumerate() {
        let l: Labels = vec![("worker", i.to_string())];
        for (name, value) in c.named() {
            if let Some((_, f)) = named.iter().find(|(n, _)| *n == name) {
                f.get_or_create(&l).inc_by(value);
            }
        }
        for &reason in DropReason::ALL {
            drops
                .get_or_create(&with(l.clone(), &[("reason", reason.as_str().to_owned())]))
                .inc_by(c.drops_of(reason));
        }
        entries.get_or_create(&l).set(c.conn_entries.get() as i64);
        capacity.get_or_create(&l).set(i64::from(v.conn_capacity));
    }
    // Ports.
    let port_packets = counter(
        &mut r,
        "port_packets",
        "Packets the DPDK port received (rx) and sent (tx)",
        None,
    );
    let port_bytes = counter(
        &mut r,
        "port",
        "Bytes the DPDK port received (rx) and sent (tx)",
        Some(Unit::Bytes),
    );
    let imissed = counter(
        &mut r,
        "port_rx_missed",
        "Packets the NIC dropped because no RX descriptor was free (imissed)",
        None,
    );
    let ierrors = counter(
        &mut r,
        "port_rx_errors",
        "Erroneous received packets (ierrors)",
        None,
    );
    let oerrors = counter(
        &mut r,
        "port_tx_errors",
        "Failed transmissions (oerrors)",
        None,
    );
    let nombuf = counter(
        &mut r,
        "port_rx_nombuf",
        "RX mbuf allocation failures (rx_nombuf)",
        None,
    );
    for p in v.ports {
        let Some(s) = &p.stats else { continue };
        let l: Labels = vec![("port", p.name.clone())];
        let dir = |d: &str| with(l.clone(), &[("direction", d.to_owned())]);
        port_packets.get_or_create(&dir("rx")).inc_by(s.ipackets);
        port_packets.get_or_create(&dir("tx")).inc_by(s.opackets);
        port_bytes.get_or_create(&dir("rx")).inc_by(s.ibytes);
        port_bytes.get_or_create(&dir("tx")).inc_by(s.obytes);
        imissed.get_or_create(&l).inc_by(s.imissed);
        ierrors.get_or_create(&l).inc_by(s.ierrors);
        oerrors.get_or_create(&l).inc_by(s.oerrors);
        nombuf.get_or_create(&l).inc_by(s.rx_nombuf);
    }
    // The control thread.
    let control = counter(&mut r, "control_frames", "Frames the control thread sent (injected), could not send (inject_dropped), packets punted to it (punted), and the exception path's: to the kernel (to_kernel), from it (from_kernel), lost (kernel_dropped)", None);
    let c = v.control;
    for (what, n) in [
        ("injected", c.injected),
        ("inject_dropped", c.inject_dropped),
        ("punted", c.punted),
        ("to_kernel", c.to_kernel),
        ("from_kernel", c.from_kernel),
        ("kernel_dropped", c.kernel_dropped),
    ] {
        control
            .get_or_create(&vec![("what", what.to_owned())])
            .inc_by(n);
    }
    let events = counter(
        &mut r,
        "control_connection_events",
        "Connection events read from the workers",
        None,
    );
    for (kind, n) in ["created", "state_changed", "ended"]
        .into_iter()
        .zip(c.events)
    {
        events
            .get_or_create(&vec![("event", kind.to_owned())])
            .inc_by(n);
    }
    let hz = Gauge::<i64>::default();
    hz.set(i64::try_from(v.tsc_hz).unwrap_or(i64::MAX));
    r.register_with_unit(
        "tsc",
        "TSC cycles per second, to turn the cycle counters into seconds",
        Unit::Other("hertz".to_owned()),
        hz,
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests;
