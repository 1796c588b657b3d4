//! The service table: the director's one model of its virtual services and
//! real servers, changed only through ipvsadm's operations.
//!
//! This is l4vs's `ip_vs_ctl.c`: add, edit and delete a virtual service
//! (`ipvsadm -A/-E/-D`), add, edit and delete a real server (`-a/-e/-d`),
//! set the global timeouts (`--set`) and flush (`-C`). Each operation is a
//! [`Command`], checks its own rules and either changes the table or
//! returns a [`TableError`] and changes nothing. The YAML loader is a list
//! of commands ([`ServiceTable::from_config`]); a SIGHUP reload is the
//! [`ServiceTable::diff`] between the running table and the new file's,
//! applied command by command; `l4vsadm` and the health checks will send
//! the same commands.
//!
//! Addresses in commands are [`IpAddr`]: what faces the operator is
//! address-family neutral, so IPv6 can follow; today an IPv6 address is
//! refused with [`TableError::Ipv6Unsupported`].
//!
//! Publishing: every service sits in a stable slot (its service id, which
//! connection entries record). A command marks the services it touches;
//! [`ServiceTable::compile`] compiles only those again (Maglev tables
//! included) and hands back every other service's compiled `Arc`
//! unchanged, so workers keep their scheduler state for them. A changed
//! service whose real servers are the same keeps their connection counts;
//! a real that stays in a changed list keeps its counts too.

use crate::config::{
    self, Config, MAX_MH_TABLE_SIZE, MAX_THRESHOLD, MAX_TIMEOUT_S, MAX_WEIGHT, MIN_MH_TABLE_SIZE,
};
use crate::stats::{Counted, Keeping};
use l4vs_dataplane::model::{
    ForwardMethod, Persistence, Protocol, Real, SchedulerKind, Service, ServiceOptions, Timeouts,
};
use l4vs_dataplane::sched::{mh, RealStats};
use l4vs_dataplane::{CompiledService, SnapshotError};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// How an operator names a virtual service: `-t/-u VIP:PORT` or `-f MARK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ServiceKey {
    /// (protocol, VIP, port); port 0 = every port (persistent services).
    Addr {
        /// TCP or UDP.
        protocol: Protocol,
        /// The virtual IP.
        vip: IpAddr,
        /// The virtual port.
        port: u16,
    },
    /// A firewall-mark service (`-f`), 1..=2^32-1.
    Fwmark(u32),
}

impl ServiceKey {
    /// The virtual port; 0 for a firewall-mark service (its reals get the
    /// packet's own port).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark(_) => 0,
        }
    }

    /// The protocol; None for a firewall-mark service (it takes TCP and
    /// UDP alike).
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceKey::Addr { protocol, .. } => Some(*protocol),
            ServiceKey::Fwmark(_) => None,
        }
    }

    /// The key of a model service.
    pub fn of(s: &Service) -> ServiceKey {
        if s.options.fwmark != 0 {
            ServiceKey::Fwmark(s.options.fwmark)
        } else {
            ServiceKey::Addr {
                protocol: s.protocol,
                vip: IpAddr::V4(s.vip),
                port: s.port,
            }
        }
    }
}

/// As ipvsadm lists a service: `TCP 198.18.0.100:80`, `FWM 7`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                vip: IpAddr::V6(v),
                port,
            } => write!(f, "{} [{v}]:{port}", protocol.as_str().to_uppercase()),
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => write!(f, "{} {vip}:{port}", protocol.as_str().to_uppercase()),
            ServiceKey::Fwmark(m) => write!(f, "FWM {m}"),
        }
    }
}

/// A virtual service's settings (`ipvsadm -A` / `-E`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceSpec {
    /// Which service.
    pub key: ServiceKey,
    /// The operator's name (1 to 64 of `[A-Za-z0-9_-]`), unique; without
    /// one the service is called by its key.
    pub name: Option<String>,
    /// `-s` and `-b`.
    pub scheduler: SchedulerKind,
    /// `-p` and `-M`.
    pub persistence: Option<Persistence>,
    /// Its connections' timeouts; `None`: the table's global ones
    /// (`--set`), followed when they change.
    pub timeouts: Option<Timeouts>,
    /// `-o`: one-packet scheduling (UDP only, no NAT reals).
    pub ops: bool,
}

/// A real server's settings (`ipvsadm -a` / `-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealSpec {
    /// Its address.
    pub addr: IpAddr,
    /// Its port; 0 = the service's port (the packet's own in a
    /// firewall-mark or port-zero service).
    pub port: u16,
    /// `-w`, 0..=[`MAX_WEIGHT`]; 0 = quiescent.
    pub weight: u32,
    /// `-m`, `-i`, `-g`.
    pub method: ForwardMethod,
    /// `-x`; 0 = none.
    pub upper_threshold: u32,
    /// `-y`; 0 = three quarters of the upper one.
    pub lower_threshold: u32,
}

/// One ipvsadm operation on the table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// `-A`: a new virtual service, without real servers.
    AddService(ServiceSpec),
    /// New settings for an existing service, every one of them (a reload);
    /// its reals stay.
    EditService(ServiceSpec),
    /// `-E` as ipvsadm gives it: the scheduler and its flags, persistence
    /// and one-packet scheduling change; what ipvsadm cannot say, the
    /// service's name and its own timeouts, stays as it is. Its reals
    /// stay.
    EditServiceSettings(ServiceSpec),
    /// `-D`: remove a service and its reals.
    DeleteService(ServiceKey),
    /// `-a`: a new real server of a service.
    AddReal(ServiceKey, RealSpec),
    /// `-e`: new settings of an existing real server (found by address
    /// and port).
    EditReal(ServiceKey, RealSpec),
    /// `-d`: remove a real server (address, port).
    DeleteReal(ServiceKey, IpAddr, u16),
    /// `-Z`: zero the counters and rates of one service and its reals, or
    /// of every service.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`: the global ESTABLISHED, FIN_WAIT and UDP
    /// timeouts in seconds; 0 leaves one unchanged, as ipvsadm does.
    SetTimeouts {
        /// ESTABLISHED.
        tcp: u32,
        /// FIN_WAIT.
        tcp_fin: u32,
        /// UDP.
        udp: u32,
    },
    /// `-C`: remove every service.
    Flush,
    /// A health check's verdict on a real server ([`crate::health`],
    /// keepalived's checkers). Down, the real leaves the compiled service
    /// (its connections' packets are then dropped, as IPVS drops those of
    /// a deleted real), or with `inhibit` (keepalived's
    /// `inhibit_on_failure`) stays with weight 0 and keeps its
    /// connections. Up, it is back with its configured weight, or with
    /// `weight` when the check gives one (MISC_CHECK's `misc_dynamic`).
    /// The configured real stays in the table either way: `--yaml` and a
    /// reload see it as configured; listings and metrics show it as the
    /// dataplane does.
    SetHealth {
        /// The real's service.
        service: ServiceKey,
        /// Its address.
        addr: IpAddr,
        /// Its port (0: the service's).
        port: u16,
        /// What the check found.
        up: bool,
        /// The weight the check gives while up, if any.
        weight: Option<u32>,
        /// Weight 0 rather than out of the service while down.
        inhibit: bool,
    },
    /// keepalived's `quorum`, `hysteresis` and `sorry_server` of a
    /// service: while the weights of its reals that are up add up to less
    /// than the quorum, the sorry server (if any) is in the service and
    /// takes its new connections.
    SetQuorum {
        /// The service.
        service: ServiceKey,
        /// Its sorry server.
        sorry: Option<RealSpec>,
        /// The weight of up reals it needs, at least 1.
        quorum: u32,
        /// The margin around the quorum.
        hysteresis: u32,
    },
}

/// keepalived's quorum of a service and its sorry server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quorum {
    /// Stands in while the quorum is lost.
    sorry: Option<Real>,
    /// The weight of up reals the service needs.
    quorum: u32,
    /// Lost below `quorum - hysteresis`, back from `quorum + hysteresis`.
    hysteresis: u32,
    /// Whether the quorum is met now.
    met: bool,
}

impl Default for Quorum {
    fn default() -> Quorum {
        Quorum {
            sorry: None,
            quorum: 1,
            hysteresis: 0,
            met: true,
        }
    }
}

/// A real server's health, as checks set it; a real without one is up
/// with its own weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Health {
    up: bool,
    weight: Option<u32>,
    inhibit: bool,
}

/// Why a command was refused. The table is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// `-A` of a service that exists (ipvsadm's EEXIST text).
    #[error("Service already exists")]
    ServiceExists,
    /// A command naming a service that does not exist (ESRCH).
    #[error("No such service")]
    NoSuchService,
    /// A real-server command (`-a -e -d`) naming a service that does not
    /// exist: ipvsadm's words for ESRCH on a destination operation.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// `-a` of a real server the service has (EEXIST).
    #[error("Destination already exists")]
    RealExists,
    /// `-e`/`-d` of a real server the service does not have (ENOENT).
    #[error("No such destination")]
    NoSuchReal,
    /// An IPv6 address: the dataplane forwards IPv4 only so far.
    #[error("{0} is an IPv6 address; l4vs forwards IPv4 only so far")]
    Ipv6Unsupported(IpAddr),
    /// Not a unicast address (0.0.0.0, broadcast, loopback, multicast),
    /// and what it is instead.
    #[error("{0} is {1}; a unicast address is required")]
    NotUnicast(Ipv4Addr, &'static str),
    /// Port 0 without persistence (ipvsadm's words quoted).
    #[error("port 0 (every port of the VIP) needs persistence, as in IPVS (ipvsadm: \"Zero port specified for non-persistent service\")")]
    ZeroPortNotPersistent,
    /// Firewall mark 0.
    #[error("firewall mark 0 is not a mark: use 1..=4294967295")]
    ZeroFwmark,
    /// `-o` on a TCP service (ipvsadm's words).
    #[error("ops (one-packet scheduling) is for UDP services only: remove it or use protocol udp (ipvsadm: \"One-Packet Scheduling is only for UDP virtual services\")")]
    OpsNotUdp,
    /// `-o` with a NAT real server.
    #[error("one-packet scheduling keeps no connection, so the replies of a NAT (-m) real server could not be rewritten: use direct routing (-g) or tunnel (-i) real servers with ops")]
    OpsWithNat,
    /// A name outside 1 to 64 of `[A-Za-z0-9_-]` (as echoed: quoted, cut).
    #[error("{0} is not a valid service name: 1 to 64 characters of A-Z a-z 0-9 _ -")]
    BadName(String),
    /// Another service has the name.
    #[error("another service is already called `{0}`")]
    NameTaken(String),
    /// Persistence timeout 0 or netmask over 32.
    #[error("persistence needs a timeout of at least 1 s and a netmask of /0 to /32")]
    BadPersistence,
    /// An mh table size that is not a prime in IPVS's range, or smaller
    /// than the number of reals.
    #[error("a Maglev table of {size} slots cannot serve {reals} real servers: use a prime in {MIN_MH_TABLE_SIZE}..={MAX_MH_TABLE_SIZE} and at least the number of reals")]
    BadMhTableSize {
        /// The size asked for.
        size: u32,
        /// The reals it must hold.
        reals: usize,
    },
    /// The real server's address is the service's VIP.
    #[error("{0} is the service's VIP; a real server needs its own address")]
    RealIsVip(Ipv4Addr),
    /// The real server's address is one of the director's own.
    #[error("{0} is the director's own address")]
    RealIsDirector(Ipv4Addr),
    /// A port on a real of a firewall-mark or port-zero service.
    #[error("the real server gets each packet on its own port in a firewall-mark or port-zero service: leave the port out")]
    PortInPortlessService,
    /// Tunnel or DR with a port other than the service's.
    #[error("{method} forwarding cannot change the port: the real server receives the packet on the service port {service_port}; write {service_port} or leave it out")]
    PortChangeNotNat {
        /// The real's method.
        method: ForwardMethod,
        /// The service's port.
        service_port: u16,
    },
    /// A weight over [`MAX_WEIGHT`].
    #[error("weight {0} is out of range 0..={MAX_WEIGHT}")]
    BadWeight(u32),
    /// A threshold over [`MAX_THRESHOLD`].
    #[error("threshold {0} is out of range 0..={MAX_THRESHOLD}")]
    BadThreshold(u32),
    /// A lower threshold without an upper one.
    #[error("lower threshold {0} without an upper threshold: the lower one (ipvsadm -y, lower_threshold) may not exceed the upper one (-x, upper_threshold), 0 meaning none")]
    LowerWithoutUpper(u32),
    /// A lower threshold above the upper one.
    #[error("lower threshold {lower} is above upper threshold {upper} (ipvsadm -y above -x); IPVS refuses that")]
    LowerAboveUpper {
        /// `-y`.
        lower: u32,
        /// `-x`.
        upper: u32,
    },
    /// A DR real off every director subnet without a static neighbour.
    #[error("{0} is not on-link, and direct routing only rewrites the MAC: add a director address whose subnet contains it, or a static neighbor")]
    NotOnLink(Ipv4Addr),
    /// A real off every director subnet, and no gateway.
    #[error("no route to {0}: it is in no director address's subnet and there is no gateway")]
    NoRoute(Ipv4Addr),
    /// More than 65535 services or reals per service (connection entries
    /// hold 16-bit indices).
    #[error("too many {0}: the limit is 65535")]
    TooMany(&'static str),
    /// A timeout of 0 or more than IPVS's [`MAX_TIMEOUT_S`].
    #[error("timeout {0} s is out of range 1..={MAX_TIMEOUT_S}")]
    BadTimeout(u32),
}

/// The part of a real server a [`TableError`] is about, so that the
/// config validator can point at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealField {
    /// `address`.
    Address,
    /// `port`.
    Port,
    /// `weight`.
    Weight,
    /// `upper_threshold`.
    UpperThreshold,
    /// `lower_threshold`.
    LowerThreshold,
    /// None in particular (the service, or the table).
    Other,
}

impl TableError {
    /// Which part of a real server this error is about.
    pub fn real_field(&self) -> RealField {
        match self {
            TableError::RealIsVip(_)
            | TableError::RealIsDirector(_)
            | TableError::NotOnLink(_)
            | TableError::NoRoute(_)
            | TableError::NotUnicast(..)
            | TableError::Ipv6Unsupported(_)
            | TableError::RealExists => RealField::Address,
            TableError::PortInPortlessService | TableError::PortChangeNotNat { .. } => {
                RealField::Port
            }
            TableError::BadWeight(_) => RealField::Weight,
            TableError::BadThreshold(_) => RealField::UpperThreshold,
            TableError::LowerWithoutUpper(_) | TableError::LowerAboveUpper { .. } => {
                RealField::LowerThreshold
            }
            _ => RealField::Other,
        }
    }
}

/// What the rules of a real server need to know of its service.
#[derive(Debug, Clone, Copy)]
pub struct RealContext<'a> {
    /// The service's VIP (0.0.0.0 for a firewall-mark service).
    pub vip: Ipv4Addr,
    /// The service's port (0 for a firewall-mark or port-zero service).
    pub service_port: u16,
    /// The service schedules one packet at a time (`-o`).
    pub ops: bool,
    /// The director's subnets and next hops.
    pub network: &'a Network,
}

/// The rules of `-a`/`-e` for one real server (those of `ip_vs_ctl.c` and
/// ipvsadm, and l4vs's reachability rules), without the table: the
/// address is unicast IPv4, neither the VIP nor a director address; the
/// port is the service's unless NAT rewrites it (0 = the service's; none
/// in a firewall-mark or port-zero service); weight and thresholds in
/// range with the lower threshold not above the upper one; a DR real
/// on-link, any other on-link or behind the gateway. Gives the real as the
/// table stores it.
///
/// # Errors
/// The first rule broken; [`TableError::real_field`] says where.
pub fn check_real(ctx: RealContext<'_>, r: &RealSpec) -> Result<Real, TableError> {
    let addr = unicast(v4(r.addr)?)?;
    if ctx.network.addresses.iter().any(|(a, _)| *a == addr) {
        return Err(TableError::RealIsDirector(addr));
    }
    if addr == ctx.vip {
        return Err(TableError::RealIsVip(addr));
    }
    let port = match (ctx.service_port, r.port, r.method) {
        (0, 0, _) => 0,
        (0, _, _) => return Err(TableError::PortInPortlessService),
        (s, 0, _) => s,
        (_, p, ForwardMethod::Nat) => p,
        (s, p, m) if p != s => {
            return Err(TableError::PortChangeNotNat {
                method: m,
                service_port: s,
            })
        }
        (_, p, _) => p,
    };
    if r.weight > MAX_WEIGHT {
        return Err(TableError::BadWeight(r.weight));
    }
    for t in [r.upper_threshold, r.lower_threshold] {
        if t > MAX_THRESHOLD {
            return Err(TableError::BadThreshold(t));
        }
    }
    if r.lower_threshold > r.upper_threshold {
        return Err(if r.upper_threshold == 0 {
            TableError::LowerWithoutUpper(r.lower_threshold)
        } else {
            TableError::LowerAboveUpper {
                lower: r.lower_threshold,
                upper: r.upper_threshold,
            }
        });
    }
    if ctx.ops && r.method == ForwardMethod::Nat {
        return Err(TableError::OpsWithNat);
    }
    if !ctx.network.on_link(addr) {
        if r.method == ForwardMethod::DirectRouting {
            return Err(TableError::NotOnLink(addr));
        }
        if !ctx.network.gateway {
            return Err(TableError::NoRoute(addr));
        }
    }
    Ok(Real {
        addr,
        port,
        weight: r.weight,
        method: r.method,
        upper_threshold: r.upper_threshold,
        lower_threshold: r.lower_threshold,
    })
}

/// The rules of `-A`/`-E` that do not depend on other services: a
/// unicast IPv4 VIP, port 0 only with persistence (ipvsadm), a mark other
/// than 0, a valid name, persistence of at least 1 s over /0 to /32, an mh
/// table size that is a prime in IPVS's range holding `reals` reals,
/// timeouts in range.
///
/// # Errors
/// The first rule broken.
pub fn check_service(spec: &ServiceSpec, reals: usize) -> Result<(), TableError> {
    match spec.key {
        ServiceKey::Addr { vip, port, .. } => {
            unicast(v4(vip)?)?;
            if port == 0 && spec.persistence.is_none() {
                return Err(TableError::ZeroPortNotPersistent);
            }
        }
        ServiceKey::Fwmark(0) => return Err(TableError::ZeroFwmark),
        ServiceKey::Fwmark(_) => {}
    }
    if spec.ops
        && matches!(
            spec.key,
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                ..
            }
        )
    {
        return Err(TableError::OpsNotUdp);
    }
    if let Some(name) = &spec.name {
        let ok = config::valid_name(name, 64);
        if !ok {
            return Err(TableError::BadName(config::echo(name)));
        }
    }
    if let Some(p) = spec.persistence {
        if p.timeout == 0 || p.netmask > 32 {
            return Err(TableError::BadPersistence);
        }
    }
    if let SchedulerKind::Mh { table_size, .. } = spec.scheduler {
        if !(MIN_MH_TABLE_SIZE..=MAX_MH_TABLE_SIZE).contains(&table_size)
            || !mh::is_prime(table_size)
            || (table_size as usize) < reals
        {
            return Err(TableError::BadMhTableSize {
                size: table_size,
                reals,
            });
        }
    }
    if let Some(t) = &spec.timeouts {
        check_timeouts(t)?;
    }
    Ok(())
}

impl From<SnapshotError> for TableError {
    fn from(e: SnapshotError) -> TableError {
        match e {
            SnapshotError::BadMhTableSize(_, size, reals) => {
                TableError::BadMhTableSize { size, reals }
            }
            SnapshotError::TooManyReals(..) => TableError::TooMany("real servers in a service"),
            _ => TableError::TooMany("services"),
        }
    }
}

/// A service as [`ServiceTable::report`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceReport {
    /// Which service.
    pub key: ServiceKey,
    /// Its name (its key when unnamed).
    pub name: String,
    /// Its scheduler.
    pub scheduler: SchedulerKind,
    /// Its persistence.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`).
    pub ops: bool,
    /// Its counters and rates.
    pub counted: Counted,
    /// Its real servers, in order.
    pub reals: Vec<RealReport>,
}

/// A real server as [`ServiceTable::report`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealReport {
    /// Its settings.
    pub real: Real,
    /// Active connections (`ActiveConn`).
    pub active: u32,
    /// Inactive connections (`InActConn`).
    pub inactive: u32,
    /// Persistence templates bound to it (`PersistConn`). The director
    /// does not keep this count: `l4vsadm --persistent-conn` fills it in
    /// from a connection listing; 0 otherwise.
    #[serde(default)]
    pub persistent: u32,
    /// Its counters and rates.
    pub counted: Counted,
}

/// A configured real server's health ([`ServiceTable::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealHealth {
    /// Its service.
    pub service: ServiceKey,
    /// The service's name (its key when unnamed).
    pub service_name: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// Its forwarding method.
    pub method: ForwardMethod,
    /// Up, or found down by its check.
    pub up: bool,
}

/// What a command changed, for the log (`Display`: `real 198.18.2.14:80
/// added`, `198.18.2.12:80 weight 1 -> 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The service's name, or its key when unnamed; empty for global
    /// changes.
    pub service: String,
    /// What happened to it.
    pub what: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.service.is_empty() {
            f.write_str(&self.what)
        } else {
            write!(f, "service {}: {}", self.service, self.what)
        }
    }
}

/// The director's own subnets and next hops, which decide whether a real
/// server can be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// Director addresses with their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u8)>,
    /// Whether there is a default gateway.
    pub gateway: bool,
    /// Addresses with a static neighbour entry.
    pub static_neighbors: Vec<Ipv4Addr>,
}

impl Network {
    /// The network of a config.
    pub fn of(cfg: &Config) -> Network {
        Network {
            addresses: cfg
                .addresses
                .iter()
                .map(|a| (a.address, a.prefix_len))
                .collect(),
            gateway: cfg.gateway.is_some(),
            static_neighbors: cfg.neighbors.iter().map(|n| n.address).collect(),
        }
    }

    /// True when `a` is inside a director subnet or has a static
    /// neighbour entry.
    pub fn on_link(&self, a: Ipv4Addr) -> bool {
        self.static_neighbors.contains(&a)
            || self.addresses.iter().any(|(addr, len)| {
                let m = l4vs_dataplane::model::prefix_mask(*len);
                a.to_bits() & m == addr.to_bits() & m
            })
    }
}

/// One service in its slot.
#[derive(Debug, Clone)]
struct Entry {
    spec: ServiceSpec,
    reals: Vec<Real>,
    /// The last compiled form; `dirty` when a command changed the service
    /// since.
    compiled: Option<Arc<CompiledService>>,
    dirty: bool,
    /// Its statistics across compilations.
    keeping: Keeping,
    /// Health-check verdicts of its reals, by (address, port).
    health: HashMap<(Ipv4Addr, u16), Health>,
    /// Its quorum and sorry server.
    quorum: Quorum,
}

impl Entry {
    /// The reals as the dataplane gets them: a real its check finds down
    /// is left out, or has weight 0 if inhibited; one that is up has the
    /// weight its check gives, if any.
    fn effective_reals(&self) -> Vec<Real> {
        // keepalived's perform_quorum_state: while the quorum is lost, the
        // sorry server stands in for every real, up or not.
        match self.quorum.sorry.filter(|_| !self.quorum.met) {
            Some(sorry) => vec![sorry],
            None => self.checked_reals(),
        }
    }

    /// The reals as their checks leave them, without the sorry server.
    fn checked_reals(&self) -> Vec<Real> {
        self.reals
            .iter()
            .filter_map(|r| match self.health.get(&(r.addr, r.port)) {
                None => Some(*r),
                Some(h) if h.up => Some(Real {
                    weight: h.weight.unwrap_or(r.weight),
                    ..*r
                }),
                Some(h) if h.inhibit => Some(Real { weight: 0, ..*r }),
                Some(_) => None,
            })
            .collect()
    }

    /// [`Entry::refresh_quorum`] as a note to append to a change's words
    /// (`; quorum 1 lost ...`), empty when the quorum did not change.
    fn quorum_note(&mut self) -> String {
        self.refresh_quorum()
            .map_or(String::new(), |q| format!("; {q}"))
    }

    /// Re-evaluates the quorum (keepalived's `update_quorum_state`): the
    /// weights of the reals that are up, against `quorum` with
    /// `hysteresis`. Returns the words for a change, if it changed.
    fn refresh_quorum(&mut self) -> Option<String> {
        let alive: u64 = self
            .checked_reals()
            .iter()
            .map(|r| u64::from(r.weight))
            .sum();
        let q = &mut self.quorum;
        let low = u64::from(q.quorum.saturating_sub(q.hysteresis));
        let high = u64::from(q.quorum) + u64::from(q.hysteresis);
        let met = if q.met { alive >= low } else { alive >= high };
        if met == q.met {
            return None;
        }
        q.met = met;
        let sorry = q.sorry;
        if sorry.is_some() {
            self.dirty = true;
        }
        let about_sorry = |verb: &str| {
            sorry.map_or(String::new(), |s| {
                format!(", sorry server {}:{} {verb}", s.addr, s.port)
            })
        };
        Some(if met {
            format!(
                "quorum {} back (up weight {alive}){}",
                self.quorum.quorum,
                about_sorry("out")
            )
        } else {
            format!(
                "quorum {} lost (up weight {alive}){}",
                self.quorum.quorum,
                about_sorry("in")
            )
        })
    }
}

/// The table. Cloning is cheap enough for a reload to work on a copy
/// (compiled services are shared `Arc`s).
#[derive(Debug, Clone, Default)]
pub struct ServiceTable {
    slots: Vec<Option<Entry>>,
    index: HashMap<ServiceKey, u16>,
    /// The services' names, for the uniqueness rule.
    names: HashMap<String, ServiceKey>,
    /// Free slots; the lowest is reused first.
    free: BinaryHeap<Reverse<u16>>,
    network: Network,
    timeouts: Timeouts,
    expire_quiescent_template: bool,
    /// Workers that count traffic (rows per compiled service).
    workers: usize,
}

fn v4(a: IpAddr) -> Result<Ipv4Addr, TableError> {
    match a {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(TableError::Ipv6Unsupported(a)),
    }
}

fn unicast(a: Ipv4Addr) -> Result<Ipv4Addr, TableError> {
    match config::not_unicast(a) {
        Some(what) => Err(TableError::NotUnicast(a, what)),
        None => Ok(a),
    }
}

fn check_timeouts(t: &Timeouts) -> Result<(), TableError> {
    for v in [
        t.tcp_established,
        t.tcp_syn_sent,
        t.tcp_syn_recv,
        t.tcp_fin_wait,
        t.tcp_time_wait,
        t.tcp_close,
        t.tcp_close_wait,
        t.tcp_last_ack,
        t.tcp_listen,
        t.tcp_synack,
        t.udp,
    ] {
        if v == 0 || v > MAX_TIMEOUT_S {
            return Err(TableError::BadTimeout(v));
        }
    }
    Ok(())
}

impl ServiceTable {
    /// An empty table over `network`, with IPVS's default timeouts.
    pub fn new(network: Network) -> ServiceTable {
        ServiceTable {
            network,
            ..ServiceTable::default()
        }
    }

    /// Loads a validated config: an empty table, the config's globals,
    /// then `-A` for each service and `-a` for each of its reals, in file
    /// order.
    ///
    /// # Errors
    /// The key path of the service or real (`services[3].reals[1]`) and
    /// the rule it broke. The config validator checks the same rules with
    /// line numbers first, so this happens only if the two disagree.
    pub fn from_config(cfg: &Config) -> Result<ServiceTable, (String, TableError)> {
        let mut t = ServiceTable::new(Network::of(cfg));
        t.timeouts = cfg.timeouts;
        t.expire_quiescent_template = cfg.expire_quiescent_template;
        for (i, s) in cfg.services.iter().enumerate() {
            let (spec, reals) = spec_of(s, &cfg.timeouts);
            t.apply(Command::AddService(spec.clone()))
                .map_err(|e| (format!("services[{i}]"), e))?;
            for (j, r) in reals.into_iter().enumerate() {
                t.apply(Command::AddReal(spec.key, r))
                    .map_err(|e| (format!("services[{i}].reals[{j}]"), e))?;
            }
            if let Some(q) = quorum_of(s, spec.key) {
                t.apply(q)
                    .map_err(|e| (format!("services[{i}].sorry_server"), e))?;
            }
        }
        Ok(t)
    }

    /// The number of services.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True without services.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The global timeouts (`--set`, `timeouts:` in the config).
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The services' settings and reals, in slot order.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceSpec, &[Real])> {
        self.slots
            .iter()
            .flatten()
            .map(|e| (&e.spec, e.reals.as_slice()))
    }

    /// This table as a config the loader takes back: `base`'s settings
    /// (EAL, workers, ports, addresses...) with this table's services, in
    /// slot order, its global timeouts and `expire_quiescent_template`
    /// (what `l4vsadm --yaml` prints; loading it gives this table). A
    /// service's `forward` is its first real's method (NAT without reals);
    /// each real names its own.
    pub fn to_config(&self, base: &Config) -> Config {
        let services = self
            .slots
            .iter()
            .flatten()
            .map(|e| {
                let (fwmark, vip, port, protocol) = match e.spec.key {
                    ServiceKey::Addr {
                        protocol,
                        vip,
                        port,
                    } => {
                        let vip = match vip {
                            IpAddr::V4(v) => v,
                            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                        };
                        (None, vip, port, protocol)
                    }
                    ServiceKey::Fwmark(m) => (Some(m), Ipv4Addr::UNSPECIFIED, 0, Protocol::Tcp),
                };
                // Health checks live in the file, not in the table: the
                // base's service of the same key keeps them.
                let from_base = base.services.iter().find(|s| {
                    (s.fwmark, s.vip, s.port, s.protocol) == (fwmark, vip, port, protocol)
                });
                config::Service {
                    inhibit_on_failure: from_base.is_some_and(|s| s.inhibit_on_failure),
                    check: from_base.and_then(|s| s.check.clone()),
                    // The reals' own checks, of the reals still there.
                    real_checks: from_base
                        .map(|s| {
                            s.real_checks
                                .iter()
                                .filter(|((a, p), _)| {
                                    e.reals.iter().any(|r| r.addr == *a && r.port == *p)
                                })
                                .map(|(k, c)| (*k, c.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    sorry_server: e.quorum.sorry.map(|r| config::Real {
                        address: r.addr,
                        port: r.port,
                        weight: r.weight,
                        forward: r.method,
                        upper_threshold: r.upper_threshold,
                        lower_threshold: r.lower_threshold,
                    }),
                    quorum: e.quorum.quorum,
                    hysteresis: e.quorum.hysteresis,
                    quorum_up: from_base.and_then(|s| s.quorum_up.clone()),
                    quorum_down: from_base.and_then(|s| s.quorum_down.clone()),
                    name: e.spec.name.clone(),
                    fwmark,
                    vip,
                    port,
                    protocol,
                    persistence: e.spec.persistence,
                    ops: e.spec.ops,
                    timeouts: e.spec.timeouts.unwrap_or(self.timeouts),
                    scheduler: e.spec.scheduler,
                    forward: e.reals.first().map_or(ForwardMethod::Nat, |r| r.method),
                    reals: e
                        .reals
                        .iter()
                        .map(|r| config::Real {
                            address: r.addr,
                            port: r.port,
                            weight: r.weight,
                            forward: r.method,
                            upper_threshold: r.upper_threshold,
                            lower_threshold: r.lower_threshold,
                        })
                        .collect(),
                }
            })
            .collect();
        Config {
            services,
            timeouts: self.timeouts,
            expire_quiescent_template: self.expire_quiescent_template,
            ..base.clone()
        }
    }

    /// The slot (service id) of a service.
    pub fn slot_of(&self, key: &ServiceKey) -> Option<u16> {
        self.index.get(key).copied()
    }

    /// Replaces the network the reachability rules check against (a
    /// reload may change the director's addresses) and the global
    /// `expire_quiescent_template`; services are recompiled when it
    /// changes.
    pub fn set_environment(&mut self, network: Network, expire_quiescent_template: bool) {
        self.network = network;
        if expire_quiescent_template != self.expire_quiescent_template {
            self.expire_quiescent_template = expire_quiescent_template;
            self.slots.iter_mut().flatten().for_each(|e| e.dirty = true);
        }
    }

    fn entry(&self, key: &ServiceKey) -> Result<&Entry, TableError> {
        let slot = self.index.get(key).ok_or(TableError::NoSuchService)?;
        self.slots[usize::from(*slot)]
            .as_ref()
            .ok_or(TableError::NoSuchService)
    }

    fn entry_mut(&mut self, key: &ServiceKey) -> Result<&mut Entry, TableError> {
        let slot = *self.index.get(key).ok_or(TableError::NoSuchService)?;
        self.slots[usize::from(slot)]
            .as_mut()
            .ok_or(TableError::NoSuchService)
    }

    /// Applies one command: checks its rules, then changes the table.
    ///
    /// # Errors
    /// The rule the command broke; the table is unchanged.
    pub fn apply(&mut self, cmd: Command) -> Result<Change, TableError> {
        match cmd {
            Command::AddService(spec) => self.add_service(spec),
            Command::EditService(spec) => self.edit_service(spec),
            Command::EditServiceSettings(spec) => {
                let kept = &self.entry(&spec.key)?.spec;
                let spec = ServiceSpec {
                    name: kept.name.clone(),
                    timeouts: kept.timeouts,
                    ..spec
                };
                self.edit_service(spec)
            }
            Command::DeleteService(key) => self.delete_service(&key),
            Command::AddReal(key, r) => self.add_real(&key, r),
            Command::EditReal(key, r) => self.edit_real(&key, r),
            Command::DeleteReal(key, addr, port) => self.delete_real(&key, addr, port),
            Command::SetTimeouts { tcp, tcp_fin, udp } => self.set_timeouts(tcp, tcp_fin, udp),
            Command::SetHealth {
                service,
                addr,
                port,
                up,
                weight,
                inhibit,
            } => self.set_health(
                &service,
                addr,
                port,
                Health {
                    up,
                    weight,
                    inhibit,
                },
            ),
            Command::SetQuorum {
                service,
                sorry,
                quorum,
                hysteresis,
            } => self.set_quorum(&service, sorry, quorum, hysteresis),
            Command::Zero(key) => self.zero(key.as_ref()),
            Command::Flush => {
                let n = self.len();
                self.slots.clear();
                self.index.clear();
                self.names.clear();
                self.free.clear();
                Ok(Change {
                    service: String::new(),
                    what: format!("{n} service(s) flushed"),
                })
            }
        }
    }

    fn name_taken(&self, spec: &ServiceSpec) -> Result<(), TableError> {
        if let Some(name) = &spec.name {
            if self.names.get(name).is_some_and(|k| *k != spec.key) {
                return Err(TableError::NameTaken(name.clone()));
            }
        }
        Ok(())
    }

    fn add_service(&mut self, spec: ServiceSpec) -> Result<Change, TableError> {
        if self.index.contains_key(&spec.key) {
            return Err(TableError::ServiceExists);
        }
        check_service(&spec, 0)?;
        self.name_taken(&spec)?;
        let slot = match self.free.pop() {
            Some(Reverse(s)) => s,
            None => {
                if self.slots.len() >= usize::from(u16::MAX) {
                    return Err(TableError::TooMany("services"));
                }
                self.slots.push(None);
                (self.slots.len() - 1) as u16
            }
        };
        let change = Change {
            service: display_name(&spec),
            what: format!("added ({}, scheduler {})", spec.key, spec.scheduler),
        };
        self.index.insert(spec.key, slot);
        if let Some(n) = &spec.name {
            self.names.insert(n.clone(), spec.key);
        }
        self.slots[usize::from(slot)] = Some(Entry {
            spec,
            reals: Vec::new(),
            compiled: None,
            dirty: true,
            keeping: Keeping::default(),
            health: HashMap::new(),
            quorum: Quorum::default(),
        });
        Ok(change)
    }

    fn edit_service(&mut self, spec: ServiceSpec) -> Result<Change, TableError> {
        let e = self.entry(&spec.key)?;
        let n = e.reals.len();
        check_service(&spec, n)?;
        if spec.ops && e.reals.iter().any(|r| r.method == ForwardMethod::Nat) {
            return Err(TableError::OpsWithNat);
        }
        self.name_taken(&spec)?;
        let e = self.entry_mut(&spec.key)?;
        let mut what = Vec::new();
        if e.spec.scheduler != spec.scheduler {
            what.push(format!(
                "scheduler {} -> {}",
                e.spec.scheduler, spec.scheduler
            ));
        }
        if e.spec.persistence != spec.persistence {
            what.push(format!(
                "persistence {} -> {}",
                persistence_text(e.spec.persistence),
                persistence_text(spec.persistence)
            ));
        }
        if e.spec.timeouts != spec.timeouts {
            what.push("timeouts changed".to_owned());
        }
        if e.spec.ops != spec.ops {
            what.push(format!(
                "ops {}",
                if spec.ops { "off -> on" } else { "on -> off" }
            ));
        }
        if e.spec.name != spec.name {
            what.push(format!(
                "renamed to {}",
                spec.name.as_deref().unwrap_or("(none)")
            ));
        }
        let service = display_name(&e.spec);
        let key = spec.key;
        let (old_name, new_name) = (e.spec.name.clone(), spec.name.clone());
        e.spec = spec;
        e.dirty = true;
        if old_name != new_name {
            if let Some(n) = old_name {
                self.names.remove(&n);
            }
            if let Some(n) = new_name {
                self.names.insert(n, key);
            }
        }
        Ok(Change {
            service,
            what: if what.is_empty() {
                "edited, unchanged".to_owned()
            } else {
                what.join(", ")
            },
        })
    }

    fn delete_service(&mut self, key: &ServiceKey) -> Result<Change, TableError> {
        let slot = self.index.remove(key).ok_or(TableError::NoSuchService)?;
        let e = self.slots[usize::from(slot)].take();
        if let Some(n) = e.as_ref().and_then(|e| e.spec.name.as_ref()) {
            self.names.remove(n);
        }
        self.free.push(Reverse(slot));
        Ok(Change {
            service: e.map(|e| display_name(&e.spec)).unwrap_or_default(),
            what: "deleted".to_owned(),
        })
    }

    /// The rules of `-a`/`-e` for `r` in `e` ([`check_real`]).
    fn check_real(&self, e: &Entry, r: &RealSpec) -> Result<Real, TableError> {
        let vip = match e.spec.key {
            ServiceKey::Addr { vip, .. } => v4(vip)?,
            ServiceKey::Fwmark(_) => Ipv4Addr::UNSPECIFIED,
        };
        check_real(
            RealContext {
                vip,
                service_port: e.spec.key.port(),
                ops: e.spec.ops,
                network: &self.network,
            },
            r,
        )
    }

    /// The entry of a real-server command's service (ipvsadm: "Service not
    /// defined").
    fn dest_entry(&self, key: &ServiceKey) -> Result<&Entry, TableError> {
        self.entry(key).map_err(|_| TableError::ServiceNotDefined)
    }

    fn add_real(&mut self, key: &ServiceKey, r: RealSpec) -> Result<Change, TableError> {
        let e = self.dest_entry(key)?;
        let real = self.check_real(e, &r)?;
        if e.reals
            .iter()
            .any(|x| x.addr == real.addr && x.port == real.port)
        {
            return Err(TableError::RealExists);
        }
        if e.reals.len() >= usize::from(u16::MAX) {
            return Err(TableError::TooMany("real servers in a service"));
        }
        // The service's own rules with one real more (the mh table size).
        check_service(&e.spec, e.reals.len() + 1)?;
        let e = self.entry_mut(key)?;
        e.reals.push(real);
        e.dirty = true;
        let quorum = e.quorum_note();
        Ok(Change {
            service: display_name(&e.spec),
            what: format!(
                "real {}:{} added (weight {}, {}){quorum}",
                real.addr,
                real.port,
                real.weight,
                real.method.ipvsadm_name()
            ),
        })
    }

    fn find_real(e: &Entry, addr: IpAddr, port: u16) -> Result<usize, TableError> {
        let addr = v4(addr)?;
        // A port left out means the service's, as when adding.
        let port = if port == 0 { e.spec.key.port() } else { port };
        e.reals
            .iter()
            .position(|x| x.addr == addr && x.port == port)
            .ok_or(TableError::NoSuchReal)
    }

    fn edit_real(&mut self, key: &ServiceKey, r: RealSpec) -> Result<Change, TableError> {
        let e = self.dest_entry(key)?;
        let i = Self::find_real(e, r.addr, r.port)?;
        let real = self.check_real(e, &r)?;
        let e = self.entry_mut(key)?;
        let old = e.reals[i];
        let mut what = Vec::new();
        if old.weight != real.weight {
            what.push(format!("weight {} -> {}", old.weight, real.weight));
        }
        if old.method != real.method {
            what.push(format!(
                "forwarding {} -> {}",
                old.method.ipvsadm_name(),
                real.method.ipvsadm_name()
            ));
        }
        if (old.upper_threshold, old.lower_threshold)
            != (real.upper_threshold, real.lower_threshold)
        {
            what.push(format!(
                "thresholds {}/{} -> {}/{}",
                old.upper_threshold,
                old.lower_threshold,
                real.upper_threshold,
                real.lower_threshold
            ));
        }
        e.reals[i] = real;
        e.dirty = true;
        if let Some(q) = e.refresh_quorum() {
            what.push(q);
        }
        Ok(Change {
            service: display_name(&e.spec),
            what: format!(
                "{}:{} {}",
                real.addr,
                real.port,
                if what.is_empty() {
                    "unchanged".to_owned()
                } else {
                    what.join(", ")
                }
            ),
        })
    }

    fn delete_real(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<Change, TableError> {
        let e = self.dest_entry(key)?;
        let i = Self::find_real(e, addr, port)?;
        let e = self.entry_mut(key)?;
        let gone = e.reals.remove(i);
        e.health.remove(&(gone.addr, gone.port));
        e.dirty = true;
        let quorum = e.quorum_note();
        Ok(Change {
            service: display_name(&e.spec),
            what: format!("real {}:{} removed{quorum}", gone.addr, gone.port),
        })
    }

    fn set_health(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        h: Health,
    ) -> Result<Change, TableError> {
        let e = self.dest_entry(key)?;
        let i = Self::find_real(e, addr, port)?;
        let e = self.entry_mut(key)?;
        let r = e.reals[i];
        let before = e.effective_reals();
        if h.up && h.weight.is_none() {
            e.health.remove(&(r.addr, r.port));
        } else {
            e.health.insert((r.addr, r.port), h);
        }
        // A verdict that changes nothing the dataplane sees recompiles
        // nothing: a flapping check costs only its own service.
        if e.effective_reals() != before {
            e.dirty = true;
        }
        let what = match (h.up, h.weight, h.inhibit) {
            (true, None, _) => "up".to_owned(),
            (true, Some(w), _) => format!("up, weight {w}"),
            (false, _, true) => "down, weight 0 (inhibit_on_failure)".to_owned(),
            (false, _, false) => "down, out of the service".to_owned(),
        };
        let quorum = e.quorum_note();
        Ok(Change {
            service: display_name(&e.spec),
            what: format!("real {}:{} {what}{quorum}", r.addr, r.port),
        })
    }

    fn set_quorum(
        &mut self,
        key: &ServiceKey,
        sorry: Option<RealSpec>,
        quorum: u32,
        hysteresis: u32,
    ) -> Result<Change, TableError> {
        let e = self.dest_entry(key)?;
        let sorry = match sorry {
            Some(r) => Some(self.check_real(e, &r)?),
            None => None,
        };
        let e = self.entry_mut(key)?;
        let before = e.effective_reals();
        let old_sorry = e.quorum.sorry;
        e.quorum = Quorum {
            sorry,
            quorum: quorum.max(1),
            hysteresis,
            met: e.quorum.met,
        };
        let flipped = e.refresh_quorum().or_else(|| {
            // The quorum was lost already: the new sorry server comes in.
            let s = sorry.filter(|s| !e.quorum.met && old_sorry != Some(*s))?;
            Some(format!(
                "quorum {} lost, sorry server {}:{} in",
                e.quorum.quorum, s.addr, s.port
            ))
        });
        if e.effective_reals() != before {
            e.dirty = true;
        }
        let sorry_text = sorry.map_or("no sorry server".to_owned(), |s| {
            format!("sorry server {}:{}", s.addr, s.port)
        });
        Ok(Change {
            service: display_name(&e.spec),
            what: format!(
                "quorum {quorum}, hysteresis {hysteresis}, {sorry_text}{}",
                flipped.map_or(String::new(), |q| format!("; {q}"))
            ),
        })
    }

    fn set_timeouts(&mut self, tcp: u32, tcp_fin: u32, udp: u32) -> Result<Change, TableError> {
        let mut t = self.timeouts;
        if tcp != 0 {
            t.tcp_established = tcp;
        }
        if tcp_fin != 0 {
            t.tcp_fin_wait = tcp_fin;
        }
        if udp != 0 {
            t.udp = udp;
        }
        check_timeouts(&t)?;
        if t != self.timeouts {
            self.timeouts = t;
            // Services that follow the global timeouts change with them.
            for e in self.slots.iter_mut().flatten() {
                if e.spec.timeouts.is_none() {
                    e.dirty = true;
                }
            }
        }
        Ok(Change {
            service: String::new(),
            what: format!(
                "timeouts tcp {} tcpfin {} udp {}",
                t.tcp_established, t.tcp_fin_wait, t.udp
            ),
        })
    }

    /// The model service in slot `e`, as the dataplane compiles it.
    fn model(&self, e: &Entry) -> Service {
        let (vip, port, protocol, fwmark) = match e.spec.key {
            ServiceKey::Addr {
                protocol,
                vip: IpAddr::V4(vip),
                port,
            } => (vip, port, protocol, 0),
            // Refused by the rules before it gets here.
            ServiceKey::Addr { protocol, .. } => (Ipv4Addr::UNSPECIFIED, 0, protocol, 0),
            ServiceKey::Fwmark(m) => (Ipv4Addr::UNSPECIFIED, 0, Protocol::Tcp, m),
        };
        Service {
            name: display_name(&e.spec),
            vip,
            port,
            protocol,
            scheduler: e.spec.scheduler,
            reals: e.effective_reals(),
            options: ServiceOptions {
                fwmark,
                persistence: e.spec.persistence,
                timeouts: e.spec.timeouts.unwrap_or(self.timeouts),
                expire_quiescent_template: self.expire_quiescent_template,
                ops: e.spec.ops,
            },
        }
    }

    /// Compiles the services changed since the last call (on the calling
    /// thread: this is where Maglev tables are built) and returns every
    /// slot, with unchanged services' `Arc`s as they were.
    ///
    /// # Errors
    /// What [`CompiledService::compile_with_stats`] refuses (the rules
    /// above already rule it out); the table is then unchanged.
    pub fn compile(&mut self) -> Result<Vec<Option<Arc<CompiledService>>>, TableError> {
        let mut built: Vec<(usize, Arc<CompiledService>)> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(e) = slot else { continue };
            if !e.dirty && e.compiled.is_some() {
                continue;
            }
            let model = self.model(e);
            let stats = carried_stats(e.compiled.as_deref(), &model.reals);
            built.push((
                i,
                CompiledService::compile_with_stats(model, stats, self.workers.max(1))?,
            ));
        }
        for (i, c) in built {
            if let Some(e) = self.slots[i].as_mut() {
                if let Some(old) = e.compiled.replace(c) {
                    e.keeping.retire(old);
                }
                e.dirty = false;
            }
        }
        Ok(self
            .slots
            .iter()
            .map(|s| s.as_ref().and_then(|e| e.compiled.clone()))
            .collect())
    }

    /// Sets how many workers count traffic; services compiled from now on
    /// get a row per worker (set it before the first [`compile`]).
    ///
    /// [`compile`]: ServiceTable::compile
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers;
    }

    fn zero(&mut self, key: Option<&ServiceKey>) -> Result<Change, TableError> {
        let slots: Vec<u16> = match key {
            Some(k) => vec![*self.index.get(k).ok_or(TableError::NoSuchService)?],
            None => self.index.values().copied().collect(),
        };
        for s in &slots {
            if let Some(e) = self.slots[usize::from(*s)].as_mut() {
                e.keeping.zero(e.compiled.as_deref());
            }
        }
        Ok(Change {
            service: key.map(ToString::to_string).unwrap_or_default(),
            what: format!("counters of {} service(s) zeroed", slots.len()),
        })
    }

    /// Takes one sample of every rate estimator; call every
    /// [`crate::estimator::INTERVAL`].
    pub fn sample_rates(&mut self) {
        for e in self.slots.iter_mut().flatten() {
            e.keeping.sample(e.compiled.as_deref());
        }
    }

    /// The commands that bring the table's health verdicts in line with a
    /// new plan of checks: `checked(service, addr, port)` says whether the
    /// real is still checked, and with which `inhibit_on_failure`. A real
    /// no longer checked is up (keepalived takes an unchecked real as
    /// alive); a real that is down keeps its verdict, under the new
    /// `inhibit_on_failure` when it changed.
    pub fn health_fixes(
        &self,
        checked: &dyn Fn(ServiceKey, Ipv4Addr, u16) -> Option<bool>,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        for e in self.slots.iter().flatten() {
            for (&(addr, port), h) in &e.health {
                let fix = match checked(e.spec.key, addr, port) {
                    None => Some((true, None, h.inhibit)),
                    Some(inhibit) if !h.up && inhibit != h.inhibit => Some((false, None, inhibit)),
                    Some(_) => None,
                };
                if let Some((up, weight, inhibit)) = fix {
                    out.push(Command::SetHealth {
                        service: e.spec.key,
                        addr: IpAddr::V4(addr),
                        port,
                        up,
                        weight,
                        inhibit,
                    });
                }
            }
        }
        out
    }

    /// Whether service `key` has its quorum (keepalived's `quorum` with
    /// `hysteresis`); `None` for no such service.
    pub fn quorum_met(&self, key: ServiceKey) -> Option<bool> {
        self.entry(&key).ok().map(|e| e.quorum.met)
    }

    /// The health verdict the table has on real `addr:port` of `key`: up
    /// or down, and the weight a check gave it; `None` when it has none
    /// (up, with its own weight) or no such real.
    pub fn health_of(
        &self,
        key: ServiceKey,
        addr: Ipv4Addr,
        port: u16,
    ) -> Option<(bool, Option<u32>)> {
        let e = self.entry(&key).ok()?;
        e.health.get(&(addr, port)).map(|h| (h.up, h.weight))
    }

    /// Every configured real server's health, in slot order: up unless its
    /// check found it down ([`Command::SetHealth`]); a real without a
    /// check is up.
    pub fn health(&self) -> Vec<RealHealth> {
        self.slots
            .iter()
            .flatten()
            .flat_map(|e| {
                e.reals.iter().map(|r| RealHealth {
                    service: e.spec.key,
                    service_name: display_name(&e.spec),
                    addr: r.addr,
                    port: r.port,
                    method: r.method,
                    up: e.health.get(&(r.addr, r.port)).is_none_or(|h| h.up),
                })
            })
            .collect()
    }

    /// Every service's key, name and whether its quorum is met, in slot
    /// order.
    pub fn quorums(&self) -> Vec<(ServiceKey, String, bool)> {
        self.slots
            .iter()
            .flatten()
            .map(|e| (e.spec.key, display_name(&e.spec), e.quorum.met))
            .collect()
    }

    /// Every service with its reals: settings, connection counts, traffic
    /// counters and rates, in slot order. What `l4vsadm -L`, the metrics
    /// and SIGUSR1 show.
    pub fn report(&mut self) -> Vec<ServiceReport> {
        self.slots
            .iter_mut()
            .flatten()
            .map(|e| {
                let listed = e.effective_reals();
                let (svc, reals) = e.keeping.read(e.compiled.as_deref(), &listed);
                let conns = |i: usize| {
                    e.compiled
                        .as_ref()
                        .filter(|c| c.reals.get(i) == listed.get(i))
                        .and_then(|c| c.stats.get(i))
                        .map_or((0, 0), |s| (s.active(), s.inactive()))
                };
                ServiceReport {
                    key: e.spec.key,
                    name: display_name(&e.spec),
                    scheduler: e.spec.scheduler,
                    persistence: e.spec.persistence,
                    ops: e.spec.ops,
                    counted: svc,
                    reals: listed
                        .iter()
                        .zip(reals)
                        .enumerate()
                        .map(|(i, (r, counted))| {
                            let (active, inactive) = conns(i);
                            RealReport {
                                real: *r,
                                active,
                                inactive,
                                persistent: 0,
                                counted,
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The commands that turn this table into `target`: services gone are
    /// deleted, new ones added with their reals, changed ones edited; in a
    /// kept service, reals gone are deleted, new ones added at the end
    /// (l4vs appends, see `Service::reals` for the order), changed ones
    /// edited. Applying them to this table gives `target`'s services,
    /// and touches nothing that did not change.
    pub fn diff(&self, target: &ServiceTable) -> Vec<Command> {
        let mut cmds = Vec::new();
        let t = target.timeouts;
        if (t.tcp_established, t.tcp_fin_wait, t.udp)
            != (
                self.timeouts.tcp_established,
                self.timeouts.tcp_fin_wait,
                self.timeouts.udp,
            )
        {
            cmds.push(Command::SetTimeouts {
                tcp: t.tcp_established,
                tcp_fin: t.tcp_fin_wait,
                udp: t.udp,
            });
        }
        for e in self.slots.iter().flatten() {
            if !target.index.contains_key(&e.spec.key) {
                cmds.push(Command::DeleteService(e.spec.key));
            }
        }
        for n in target.slots.iter().flatten() {
            let key = n.spec.key;
            let Ok(o) = self.entry(&key) else {
                cmds.push(Command::AddService(n.spec.clone()));
                cmds.extend(n.reals.iter().map(|r| Command::AddReal(key, real_spec(r))));
                let q = &n.quorum;
                if q.sorry.is_some() || q.quorum != 1 || q.hysteresis != 0 {
                    cmds.push(Command::SetQuorum {
                        service: key,
                        sorry: q.sorry.as_ref().map(real_spec),
                        quorum: q.quorum,
                        hysteresis: q.hysteresis,
                    });
                }
                continue;
            };
            // Turning ops on needs the NAT reals gone first; any other
            // edit goes before the reals, which may depend on it.
            let ops_on = n.spec.ops && !o.spec.ops;
            if o.spec != n.spec && !ops_on {
                cmds.push(Command::EditService(n.spec.clone()));
            }
            for r in &o.reals {
                if !n.reals.iter().any(|x| (x.addr, x.port) == (r.addr, r.port)) {
                    cmds.push(Command::DeleteReal(key, IpAddr::V4(r.addr), r.port));
                }
            }
            for r in &n.reals {
                match o
                    .reals
                    .iter()
                    .find(|x| (x.addr, x.port) == (r.addr, r.port))
                {
                    None => cmds.push(Command::AddReal(key, real_spec(r))),
                    Some(x) if x != r => cmds.push(Command::EditReal(key, real_spec(r))),
                    Some(_) => {}
                }
            }
            if ops_on {
                cmds.push(Command::EditService(n.spec.clone()));
            }
            let settings = |q: &Quorum| (q.sorry, q.quorum, q.hysteresis);
            if settings(&o.quorum) != settings(&n.quorum) {
                cmds.push(Command::SetQuorum {
                    service: key,
                    sorry: n.quorum.sorry.as_ref().map(real_spec),
                    quorum: n.quorum.quorum,
                    hysteresis: n.quorum.hysteresis,
                });
            }
        }
        cmds
    }
}

/// The stats a recompiled service starts with: the previous ones when its
/// reals are the same (address and port, in order); otherwise fresh ones,
/// each real that was there before carrying its connection counts over.
fn carried_stats(prev: Option<&CompiledService>, reals: &[Real]) -> Arc<[RealStats]> {
    let Some(prev) = prev else {
        return CompiledService::fresh_stats(reals.len());
    };
    let same = prev.reals.len() == reals.len()
        && prev
            .reals
            .iter()
            .zip(reals)
            .all(|(a, b)| (a.addr, a.port) == (b.addr, b.port));
    if same {
        return prev.stats.clone();
    }
    reals
        .iter()
        .map(|r| {
            prev.reals
                .iter()
                .position(|p| (p.addr, p.port) == (r.addr, r.port))
                .and_then(|i| prev.stats.get(i))
                .map_or_else(RealStats::default, |s| {
                    RealStats::with_counts(s.active(), s.inactive())
                })
        })
        .collect()
}

fn real_spec(r: &Real) -> RealSpec {
    RealSpec {
        addr: IpAddr::V4(r.addr),
        port: r.port,
        weight: r.weight,
        method: r.method,
        upper_threshold: r.upper_threshold,
        lower_threshold: r.lower_threshold,
    }
}

fn display_name(spec: &ServiceSpec) -> String {
    spec.name.clone().unwrap_or_else(|| spec.key.to_string())
}

fn persistence_text(p: Option<Persistence>) -> String {
    match p {
        Some(p) => format!("{} s /{}", p.timeout, p.netmask),
        None => "none".to_owned(),
    }
}

/// The [`Command::SetQuorum`] of config service `s`, whose key is `key`;
/// `None` when it has keepalived's defaults (quorum 1, no hysteresis, no
/// sorry server).
pub fn quorum_of(s: &config::Service, key: ServiceKey) -> Option<Command> {
    (s.sorry_server.is_some() || s.quorum != 1 || s.hysteresis != 0).then(|| Command::SetQuorum {
        service: key,
        sorry: s.sorry_server.map(|r| RealSpec {
            addr: IpAddr::V4(r.address),
            port: r.port,
            weight: r.weight,
            method: r.forward,
            upper_threshold: r.upper_threshold,
            lower_threshold: r.lower_threshold,
        }),
        quorum: s.quorum,
        hysteresis: s.hysteresis,
    })
}

/// The key of config service `s`: its mark, or protocol, VIP and port.
pub fn key_of(s: &config::Service) -> ServiceKey {
    match s.fwmark {
        Some(m) => ServiceKey::Fwmark(m),
        None => ServiceKey::Addr {
            protocol: s.protocol,
            vip: IpAddr::V4(s.vip),
            port: s.port,
        },
    }
}

/// A config service as a `-A` spec and its reals as `-a` specs. Timeouts
/// equal to the global ones follow the global ones.
pub fn spec_of(s: &config::Service, global: &Timeouts) -> (ServiceSpec, Vec<RealSpec>) {
    let key = key_of(s);
    let spec = ServiceSpec {
        key,
        name: s.name.clone(),
        scheduler: s.scheduler,
        persistence: s.persistence,
        timeouts: (s.timeouts != *global).then_some(s.timeouts),
        ops: s.ops,
    };
    let reals = s
        .reals
        .iter()
        .map(|r| RealSpec {
            addr: IpAddr::V4(r.address),
            port: r.port,
            weight: r.weight,
            method: r.forward,
            upper_threshold: r.upper_threshold,
            lower_threshold: r.lower_threshold,
        })
        .collect();
    (spec, reals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use l4vs_dataplane::traffic::Totals;

    fn net() -> Network {
        Network {
            addresses: vec![
                (Ipv4Addr::new(198, 18, 1, 1), 24),
                (Ipv4Addr::new(198, 18, 2, 1), 24),
            ],
            gateway: false,
            static_neighbors: vec![],
        }
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port,
        }
    }

    fn spec(port: u16, scheduler: SchedulerKind) -> ServiceSpec {
        ServiceSpec {
            key: key(port),
            name: None,
            scheduler,
            persistence: None,
            timeouts: None,
            ops: false,
        }
    }

    fn real(last: u8, weight: u32) -> RealSpec {
        RealSpec {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, last)),
            port: 80,
            weight,
            method: ForwardMethod::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// One rr service on port 80 with reals .11 .12 .13.
    fn web() -> ServiceTable {
        let mut t = ServiceTable::new(net());
        t.apply(Command::AddService(spec(80, SchedulerKind::Rr)))
            .unwrap();
        for last in [11, 12, 13] {
            t.apply(Command::AddReal(key(80), real(last, 1))).unwrap();
        }
        t
    }

    /// Health verdicts change what the dataplane gets, not the table's
    /// reals; the quorum with hysteresis brings the sorry server in and
    /// out, as keepalived's update_quorum_state does.
    #[test]
    fn health_and_quorum_shape_the_compiled_service() {
        let mut t = web();
        let health = |last: u8, up: bool, inhibit: bool| Command::SetHealth {
            service: key(80),
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, last)),
            port: 80,
            up,
            weight: None,
            inhibit,
        };
        let listed = |t: &mut ServiceTable| -> Vec<(u8, u32)> {
            t.report()[0]
                .reals
                .iter()
                .map(|r| (r.real.addr.octets()[3], r.real.weight))
                .collect()
        };
        t.apply(Command::SetQuorum {
            service: key(80),
            sorry: Some(real(99, 1)),
            quorum: 2,
            hysteresis: 1,
        })
        .unwrap();
        // Down without inhibit: out of the service; with: weight 0.
        t.apply(health(11, false, false)).unwrap();
        t.apply(health(12, false, true)).unwrap();
        assert_eq!(listed(&mut t), [(12, 0), (13, 1)]);
        // Up weight 1 >= quorum 2 - hysteresis 1: still met.
        let c = t.apply(health(13, false, false)).unwrap();
        assert_eq!(
            c.what,
            "real 198.18.2.13:80 down, out of the service; quorum 2 lost (up weight 0), sorry server 198.18.2.99:80 in"
        );
        // The sorry server stands in for every real (keepalived's
        // perform_quorum_state).
        assert_eq!(listed(&mut t), [(99, 1)]);
        // Back from quorum + hysteresis = 3 only: until then, reals that
        // come up stay out.
        t.apply(health(11, true, false)).unwrap();
        t.apply(health(12, true, true)).unwrap();
        assert_eq!(listed(&mut t), [(99, 1)]);
        let c = t.apply(health(13, true, false)).unwrap();
        assert!(
            c.what
                .ends_with("quorum 2 back (up weight 3), sorry server 198.18.2.99:80 out"),
            "{}",
            c.what
        );
        assert_eq!(listed(&mut t), [(11, 1), (12, 1), (13, 1)]);
        // The configured reals never changed: the config says so.
        let base = config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab-nat.yaml"),
        )
        .unwrap();
        let cfg = t.to_config(&base);
        assert_eq!(cfg.services[0].reals.len(), 3);
        assert_eq!(cfg.services[0].sorry_server.map(|r| r.port), Some(80));
        // A verdict on a real that is not there is refused.
        assert_eq!(
            t.apply(health(77, false, false)),
            Err(TableError::NoSuchReal)
        );
    }

    #[test]
    fn add_edit_delete_service() {
        let mut t = web();
        assert_eq!(
            t.apply(Command::AddService(spec(80, SchedulerKind::Wrr))),
            Err(TableError::ServiceExists)
        );
        let c = t
            .apply(Command::EditService(spec(80, SchedulerKind::Wrr)))
            .unwrap();
        assert_eq!(
            c.to_string(),
            "service TCP 198.18.0.100:80: scheduler rr -> wrr"
        );
        assert_eq!(
            t.services().next().unwrap().1.len(),
            3,
            "-E keeps the reals"
        );
        assert_eq!(
            t.apply(Command::EditService(spec(81, SchedulerKind::Wrr))),
            Err(TableError::NoSuchService)
        );
        t.apply(Command::DeleteService(key(80))).unwrap();
        assert!(t.is_empty());
        assert_eq!(
            t.apply(Command::DeleteService(key(80))),
            Err(TableError::NoSuchService)
        );
    }

    #[test]
    fn service_rules() {
        let mut t = ServiceTable::new(net());
        let cases: Vec<(ServiceSpec, TableError)> = vec![
            (
                spec(0, SchedulerKind::Rr),
                TableError::ZeroPortNotPersistent,
            ),
            (
                ServiceSpec {
                    key: ServiceKey::Fwmark(0),
                    ..spec(80, SchedulerKind::Rr)
                },
                TableError::ZeroFwmark,
            ),
            (
                ServiceSpec {
                    key: ServiceKey::Addr {
                        protocol: Protocol::Tcp,
                        vip: "2001:db8::1".parse().unwrap(),
                        port: 80,
                    },
                    ..spec(80, SchedulerKind::Rr)
                },
                TableError::Ipv6Unsupported("2001:db8::1".parse().unwrap()),
            ),
            (
                ServiceSpec {
                    key: ServiceKey::Addr {
                        protocol: Protocol::Tcp,
                        vip: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
                        port: 80,
                    },
                    ..spec(80, SchedulerKind::Rr)
                },
                TableError::NotUnicast(Ipv4Addr::new(224, 0, 0, 1), "a multicast address"),
            ),
            (
                spec(
                    80,
                    SchedulerKind::Mh {
                        table_size: 65536,
                        port: false,
                        fallback: false,
                    },
                ),
                TableError::BadMhTableSize {
                    size: 65536,
                    reals: 0,
                },
            ),
            (
                ServiceSpec {
                    persistence: Some(Persistence {
                        timeout: 0,
                        netmask: 32,
                    }),
                    ..spec(80, SchedulerKind::Rr)
                },
                TableError::BadPersistence,
            ),
        ];
        for (s, e) in cases {
            assert_eq!(t.apply(Command::AddService(s.clone())), Err(e), "{s:?}");
            assert!(t.is_empty());
        }
        let long = "x".repeat(1 << 20);
        let e = t
            .apply(Command::AddService(ServiceSpec {
                name: Some(long),
                ..spec(80, SchedulerKind::Rr)
            }))
            .unwrap_err();
        assert!(e.to_string().len() < 200, "the echoed name is cut");
        // Port 0 is fine with persistence; names are unique.
        let persistent = ServiceSpec {
            name: Some("all".into()),
            persistence: Some(Persistence {
                timeout: 300,
                netmask: 24,
            }),
            ..spec(0, SchedulerKind::Rr)
        };
        t.apply(Command::AddService(persistent)).unwrap();
        assert_eq!(
            t.apply(Command::AddService(ServiceSpec {
                name: Some("all".into()),
                ..spec(80, SchedulerKind::Rr)
            })),
            Err(TableError::NameTaken("all".into()))
        );
    }

    #[test]
    fn real_rules() {
        let mut t = web();
        let k = key(80);
        let bad: Vec<(RealSpec, TableError)> = vec![
            (real(11, 1), TableError::RealExists),
            (
                RealSpec {
                    addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
                    ..real(0, 1)
                },
                TableError::RealIsVip(Ipv4Addr::new(198, 18, 0, 100)),
            ),
            (
                real(1, 1),
                TableError::RealIsDirector(Ipv4Addr::new(198, 18, 2, 1)),
            ),
            (
                real(20, MAX_WEIGHT + 1),
                TableError::BadWeight(MAX_WEIGHT + 1),
            ),
            (
                RealSpec {
                    upper_threshold: 10,
                    lower_threshold: 11,
                    ..real(20, 1)
                },
                TableError::LowerAboveUpper {
                    upper: 10,
                    lower: 11,
                },
            ),
            (
                RealSpec {
                    port: 8080,
                    method: ForwardMethod::DirectRouting,
                    ..real(20, 1)
                },
                TableError::PortChangeNotNat {
                    method: ForwardMethod::DirectRouting,
                    service_port: 80,
                },
            ),
            (
                RealSpec {
                    addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
                    method: ForwardMethod::DirectRouting,
                    ..real(0, 1)
                },
                TableError::NotOnLink(Ipv4Addr::new(203, 0, 113, 5)),
            ),
            (
                RealSpec {
                    addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
                    ..real(0, 1)
                },
                TableError::NoRoute(Ipv4Addr::new(203, 0, 113, 5)),
            ),
        ];
        for (r, e) in bad {
            assert_eq!(t.apply(Command::AddReal(k, r)), Err(e), "{r:?}");
        }
        assert_eq!(t.services().next().unwrap().1.len(), 3, "nothing added");
        assert_eq!(
            t.apply(Command::AddReal(key(81), real(20, 1))),
            Err(TableError::ServiceNotDefined)
        );
        // A port left out is the service's; NAT may change it.
        let c = t
            .apply(Command::AddReal(
                k,
                RealSpec {
                    port: 0,
                    ..real(20, 1)
                },
            ))
            .unwrap();
        assert_eq!(c.what, "real 198.18.2.20:80 added (weight 1, Masq)");
        t.apply(Command::AddReal(
            k,
            RealSpec {
                port: 8080,
                ..real(20, 1)
            },
        ))
        .unwrap();
        let ports: Vec<u16> = t
            .services()
            .next()
            .unwrap()
            .1
            .iter()
            .map(|r| r.port)
            .collect();
        assert_eq!(ports, [80, 80, 80, 80, 8080]);
        // -e and -d find reals by address and port.
        let c = t.apply(Command::EditReal(k, real(12, 3))).unwrap();
        assert_eq!(c.what, "198.18.2.12:80 weight 1 -> 3");
        assert_eq!(
            t.apply(Command::EditReal(k, real(99, 3))),
            Err(TableError::NoSuchReal)
        );
        let c = t
            .apply(Command::DeleteReal(
                k,
                IpAddr::V4(Ipv4Addr::new(198, 18, 2, 20)),
                8080,
            ))
            .unwrap();
        assert_eq!(c.what, "real 198.18.2.20:8080 removed");
        assert_eq!(
            t.apply(Command::DeleteReal(
                k,
                IpAddr::V4(Ipv4Addr::new(198, 18, 2, 20)),
                8080
            )),
            Err(TableError::NoSuchReal)
        );
    }

    #[test]
    fn an_mh_table_must_hold_every_real() {
        let mut t = ServiceTable::new(net());
        let small = SchedulerKind::Mh {
            table_size: 251,
            port: false,
            fallback: false,
        };
        t.apply(Command::AddService(spec(80, small))).unwrap();
        for i in 0..251u8 {
            let r = RealSpec {
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 2 + i)),
                ..real(0, 1)
            };
            t.apply(Command::AddReal(key(80), r)).unwrap();
        }
        // 251 reals fill a 251-slot table; one more is refused.
        assert_eq!(t.services().next().unwrap().1.len(), 251);
        assert_eq!(
            t.apply(Command::AddReal(
                key(80),
                RealSpec {
                    addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 201)),
                    ..real(0, 1)
                }
            )),
            Err(TableError::BadMhTableSize {
                size: 251,
                reals: 252
            })
        );
    }

    #[test]
    fn set_timeouts_and_flush() {
        let mut t = web();
        t.apply(Command::SetTimeouts {
            tcp: 600,
            tcp_fin: 0,
            udp: 30,
        })
        .unwrap();
        let now = t.timeouts();
        assert_eq!(
            (now.tcp_established, now.tcp_fin_wait, now.udp),
            (600, 120, 30)
        );
        let slots = t.compile().unwrap();
        assert_eq!(
            slots[0].as_ref().unwrap().options.timeouts.tcp_established,
            600
        );
        assert_eq!(
            t.apply(Command::SetTimeouts {
                tcp: 3_000_000,
                tcp_fin: 0,
                udp: 0
            }),
            Err(TableError::BadTimeout(3_000_000))
        );
        assert_eq!(t.timeouts(), now);
        let c = t.apply(Command::Flush).unwrap();
        assert_eq!(c.to_string(), "1 service(s) flushed");
        assert!(t.is_empty());
        assert!(t.compile().unwrap().is_empty());
    }

    #[test]
    fn compile_rebuilds_only_what_changed_and_keeps_counts() {
        let mut t = web();
        t.apply(Command::AddService(spec(443, SchedulerKind::mh())))
            .unwrap();
        t.apply(Command::AddReal(
            key(443),
            RealSpec {
                port: 443,
                ..real(11, 1)
            },
        ))
        .unwrap();
        let first = t.compile().unwrap();
        let web0 = first[0].clone().unwrap();
        web0.stats[1].conn_bound(&web0.reals[1], false);
        // Nothing changed: the same Arcs.
        let again = t.compile().unwrap();
        assert!(Arc::ptr_eq(again[0].as_ref().unwrap(), &web0));
        // A weight change recompiles that service only, keeping its
        // counts; the mh service is untouched.
        t.apply(Command::EditReal(key(80), real(12, 5))).unwrap();
        let next = t.compile().unwrap();
        let web1 = next[0].clone().unwrap();
        assert!(!Arc::ptr_eq(&web1, &web0));
        assert!(Arc::ptr_eq(&web1.stats, &web0.stats));
        assert!(Arc::ptr_eq(
            next[1].as_ref().unwrap(),
            first[1].as_ref().unwrap()
        ));
        // Removing a real before it carries the others' counts over.
        t.apply(Command::DeleteReal(
            key(80),
            IpAddr::V4(Ipv4Addr::new(198, 18, 2, 11)),
            80,
        ))
        .unwrap();
        let web2 = t.compile().unwrap()[0].clone().unwrap();
        assert_eq!(web2.reals[0].addr, Ipv4Addr::new(198, 18, 2, 12));
        assert_eq!(web2.stats[0].inactive(), 1);
        // A deleted service frees its slot; the next one added takes it.
        t.apply(Command::DeleteService(key(80))).unwrap();
        assert!(t.compile().unwrap()[0].is_none());
        t.apply(Command::AddService(spec(8080, SchedulerKind::Rr)))
            .unwrap();
        assert_eq!(t.slot_of(&key(8080)), Some(0));
    }

    #[test]
    fn counters_survive_recompilation_and_zeroing() {
        let mut t = web();
        t.set_workers(2);
        let first = t.compile().unwrap()[0].clone().unwrap();
        // Worker 1 counts a new connection to real .12 and its packet (on
        // the real's row; the service's counters are the sum).
        first.traffic.real(1, 1).unwrap().conn();
        first.traffic.real(1, 1).unwrap().packet_in(60);
        // A weight change recompiles; a worker still holds the old form
        // and counts one more packet on it, then swaps.
        t.apply(Command::EditReal(key(80), real(12, 3))).unwrap();
        let second = t.compile().unwrap()[0].clone().unwrap();
        first.traffic.real(1, 1).unwrap().packet_in(40);
        second.traffic.real(0, 1).unwrap().packet_out(100);
        let expect = Totals {
            conns: 1,
            inpkts: 2,
            inbytes: 100,
            outpkts: 1,
            outbytes: 100,
        };
        let report = t.report();
        assert_eq!(report[0].counted.totals, expect);
        assert_eq!(report[0].reals[1].counted.totals, expect);
        assert_eq!(report[0].reals[0].counted.totals, Totals::default());
        // The old form is dropped by the workers: folded, nothing lost.
        drop(first);
        assert_eq!(t.report()[0].counted.totals, expect);
        // Rates (a packet no real is named for counts on the service's own
        // row): the estimator started with the service, so its first
        // interval saw the 100 bytes above (50 B/s, a quarter of the way:
        // 400 in fixed point ×32), the second 1000 more (500 B/s): 400 +
        // (16000 - 400) / 4 = 4300, read as (4300 + 15) >> 5 = 134 B/s.
        t.sample_rates();
        second.traffic.service(0).unwrap().packet_in(1000);
        t.sample_rates();
        let r = t.report()[0].counted.rates;
        assert_eq!((r.inbps, r.inpps), (134, 0));
        // -Z: zero, then counting on.
        t.apply(Command::Zero(None)).unwrap();
        let z = t.report();
        assert_eq!(z[0].counted.totals, Totals::default());
        assert_eq!(z[0].counted.rates, Default::default());
        second.traffic.real(0, 1).unwrap().packet_in(10);
        let after = t.report();
        assert_eq!(after[0].reals[1].counted.totals.inpkts, 1);
        assert_eq!(
            t.apply(Command::Zero(Some(key(81)))),
            Err(TableError::NoSuchService)
        );
    }

    fn apply_diff(from: &ServiceTable, to: &ServiceTable) -> (ServiceTable, Vec<Command>) {
        let mut t = from.clone();
        let cmds = t.diff(to);
        for c in cmds.clone() {
            t.apply(c).unwrap();
        }
        (t, cmds)
    }

    fn listing(t: &ServiceTable) -> Vec<(ServiceSpec, Vec<Real>)> {
        let mut v: Vec<_> = t.services().map(|(s, r)| (s.clone(), r.to_vec())).collect();
        v.sort_by_key(|(s, _)| s.key.to_string());
        v
    }

    /// ops: UDP only (ipvsadm's words), never with a NAT real, whichever
    /// comes first; a reload that turns it on while replacing NAT reals by
    /// DR ones applies (the edit goes after the reals).
    #[test]
    fn ops_rules_and_their_diff_order() {
        let udp = |port| ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port,
        };
        let ops_spec = |ops| ServiceSpec {
            key: udp(53),
            ops,
            ..spec(53, SchedulerKind::Rr)
        };
        let dr = |last| RealSpec {
            method: ForwardMethod::DirectRouting,
            port: 53,
            ..real(last, 1)
        };
        let nat = |last| RealSpec {
            port: 53,
            ..real(last, 1)
        };
        let mut t = ServiceTable::new(net());
        assert_eq!(
            t.apply(Command::AddService(ServiceSpec {
                ops: true,
                ..spec(80, SchedulerKind::Rr)
            })),
            Err(TableError::OpsNotUdp)
        );
        t.apply(Command::AddService(ops_spec(true))).unwrap();
        assert_eq!(
            t.apply(Command::AddReal(udp(53), nat(11))),
            Err(TableError::OpsWithNat)
        );
        t.apply(Command::AddReal(udp(53), dr(11))).unwrap();
        assert_eq!(
            t.apply(Command::EditReal(udp(53), nat(11))),
            Err(TableError::OpsWithNat)
        );
        let mut old = ServiceTable::new(net());
        old.apply(Command::AddService(ops_spec(false))).unwrap();
        old.apply(Command::AddReal(udp(53), nat(11))).unwrap();
        let before = old.clone();
        assert_eq!(
            old.apply(Command::EditService(ops_spec(true))),
            Err(TableError::OpsWithNat)
        );
        assert_eq!(
            listing(&old),
            listing(&before),
            "a refused edit changes nothing"
        );
        let (got, cmds) = apply_diff(&old, &t);
        assert_eq!(
            cmds.last(),
            Some(&Command::EditService(ops_spec(true))),
            "{cmds:?}"
        );
        assert_eq!(listing(&got), listing(&t));
        // And back: ops off first, then the NAT real.
        let (got, cmds) = apply_diff(&t, &old);
        assert_eq!(cmds.first(), Some(&Command::EditService(ops_spec(false))));
        assert_eq!(listing(&got), listing(&old));
        let mut got = got;
        let compiled = got.compile().unwrap();
        assert!(compiled.iter().flatten().all(|s| !s.options.ops));
        assert!(t.compile().unwrap().iter().flatten().all(|s| s.options.ops));
    }

    /// The running table printed as a config loads back as the same
    /// table, runtime changes included (what `l4vsadm --yaml` offers).
    #[test]
    fn the_running_table_prints_as_a_config_that_loads_back() {
        for file in ["lab-nat.yaml", "lab-fwmark.yaml", "example-full.yaml"] {
            let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../configs")
                .join(file);
            let cfg = config::load(&path).unwrap();
            let mut t = ServiceTable::from_config(&cfg).unwrap();
            if file == "lab-nat.yaml" {
                t.apply(Command::AddReal(
                    key(80),
                    RealSpec {
                        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 14)),
                        port: 8080,
                        weight: 7,
                        method: ForwardMethod::Nat,
                        upper_threshold: 100,
                        lower_threshold: 0,
                    },
                ))
                .unwrap();
                t.apply(Command::SetTimeouts {
                    tcp: 1000,
                    tcp_fin: 0,
                    udp: 0,
                })
                .unwrap();
            }
            let text = config::to_yaml(&t.to_config(&cfg));
            let back =
                config::parse(&text, "dump.yaml").unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
            let again = ServiceTable::from_config(&back).unwrap();
            assert_eq!(listing(&again), listing(&t), "{file}\n{text}");
            assert_eq!(again.timeouts(), t.timeouts(), "{file}");
        }
    }

    #[test]
    fn diff_applies_only_the_differences() {
        let old = web();
        // Weight changed.
        let mut new = web();
        new.apply(Command::EditReal(key(80), real(12, 3))).unwrap();
        let (got, cmds) = apply_diff(&old, &new);
        assert_eq!(cmds, [Command::EditReal(key(80), real(12, 3))]);
        assert_eq!(listing(&got), listing(&new));
        // Real added and removed.
        let mut new = web();
        new.apply(Command::DeleteReal(
            key(80),
            IpAddr::V4(Ipv4Addr::new(198, 18, 2, 11)),
            80,
        ))
        .unwrap();
        new.apply(Command::AddReal(key(80), real(14, 1))).unwrap();
        let (got, cmds) = apply_diff(&old, &new);
        assert_eq!(
            cmds,
            [
                Command::DeleteReal(key(80), IpAddr::V4(Ipv4Addr::new(198, 18, 2, 11)), 80),
                Command::AddReal(key(80), real(14, 1)),
            ]
        );
        assert_eq!(listing(&got), listing(&new));
        // Service added and removed, scheduler changed.
        let mut new = ServiceTable::new(net());
        new.apply(Command::AddService(spec(443, SchedulerKind::Wlc)))
            .unwrap();
        new.apply(Command::AddReal(
            key(443),
            RealSpec {
                port: 443,
                ..real(11, 1)
            },
        ))
        .unwrap();
        let (got, cmds) = apply_diff(&old, &new);
        assert_eq!(cmds.len(), 3, "{cmds:?}");
        assert_eq!(listing(&got), listing(&new));
        let mut new = web();
        new.apply(Command::EditService(spec(80, SchedulerKind::Wrr)))
            .unwrap();
        let (got, cmds) = apply_diff(&old, &new);
        assert_eq!(cmds, [Command::EditService(spec(80, SchedulerKind::Wrr))]);
        assert_eq!(listing(&got), listing(&new));
        // The same table: nothing to do.
        assert!(old.diff(&web()).is_empty());
    }

    /// A service a reload adds comes with its quorum and sorry server,
    /// which stands in at once when its reals' weights do not make the
    /// quorum.
    #[test]
    fn a_service_added_by_reload_gets_its_sorry_server() {
        let old = ServiceTable::new(net());
        let mut new = ServiceTable::new(net());
        new.apply(Command::AddService(spec(80, SchedulerKind::Rr)))
            .unwrap();
        new.apply(Command::AddReal(key(80), real(11, 0))).unwrap();
        let sorry = Command::SetQuorum {
            service: key(80),
            sorry: Some(real(99, 1)),
            quorum: 1,
            hysteresis: 0,
        };
        let c = new.apply(sorry.clone()).unwrap();
        assert!(c.what.contains("sorry server 198.18.2.99:80 in"), "{c}");
        let (mut got, cmds) = apply_diff(&old, &new);
        assert_eq!(cmds.last(), Some(&sorry));
        assert!(!got.quorums()[0].2);
        let reals: Vec<u8> = got.report()[0]
            .reals
            .iter()
            .map(|r| r.real.addr.octets()[3])
            .collect();
        assert_eq!(reals, [99]);
    }

    /// After a reload, a real no longer checked is up again, and a real
    /// down takes the new inhibit_on_failure.
    #[test]
    fn health_fixes_follow_the_new_checks() {
        let mut t = web();
        let down = |port_last: u8, inhibit: bool| Command::SetHealth {
            service: key(80),
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, port_last)),
            port: 80,
            up: false,
            weight: None,
            inhibit,
        };
        t.apply(down(11, false)).unwrap();
        t.apply(down(12, false)).unwrap();
        // 11 no longer checked; 12 checked with inhibit_on_failure now.
        let fixes = t.health_fixes(&|_, a, _| (a.octets()[3] == 12).then_some(true));
        assert_eq!(fixes.len(), 2, "{fixes:?}");
        for f in fixes {
            t.apply(f).unwrap();
        }
        assert_eq!(
            t.health_of(key(80), Ipv4Addr::new(198, 18, 2, 11), 80),
            None
        );
        assert_eq!(
            t.health_of(key(80), Ipv4Addr::new(198, 18, 2, 12), 80),
            Some((false, None))
        );
        let weights: Vec<(u8, u32)> = t.report()[0]
            .reals
            .iter()
            .map(|r| (r.real.addr.octets()[3], r.real.weight))
            .collect();
        assert!(
            weights.contains(&(11, 1)) && weights.contains(&(12, 0)),
            "{weights:?}"
        );
        // Nothing more to fix.
        assert!(t
            .health_fixes(&|_, a, _| (a.octets()[3] == 12).then_some(true))
            .is_empty());
    }
}
