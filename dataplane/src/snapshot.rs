//! The immutable configuration a worker forwards by.
//!
//! The control thread validates the operator's config, builds a
//! [`Snapshot`] and publishes it; workers read it without locks. A snapshot
//! never changes: a new config is a new snapshot. Lookups on it (VIP,
//! local address, route) allocate nothing.

use crate::conn::Timeouts;
use crate::sched::{mh, RealStats};
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::Address as MacAddr;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6)
    Tcp,
    /// UDP (17)
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// "tcp" or "udp".
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How packets reach a real server (ipvsadm -m, -i, -g). IPVS keeps the
/// method per real server, and so does l4vs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ForwardMethod {
    /// Rewrite destination address and port; undo it on the replies.
    Nat,
    /// Encapsulate in an outer IPv4 header to the real server (RFC 2003).
    Tunnel,
    /// Rewrite the destination MAC only.
    DirectRouting,
}

/// A service's scheduler: the IPVS set, with the options IPVS keeps in the
/// service's scheduler flags (`ipvsadm -b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin (`ip_vs_rr.c`).
    Rr,
    /// Weighted round robin (`ip_vs_wrr.c`).
    Wrr,
    /// Least connection (`ip_vs_lc.c`).
    Lc,
    /// Weighted least connection (`ip_vs_wlc.c`).
    Wlc,
    /// Locality-based least connection (`ip_vs_lblc.c`).
    Lblc,
    /// Locality-based least connection with replication (`ip_vs_lblcr.c`).
    Lblcr,
    /// Destination hashing (`ip_vs_dh.c`).
    Dh,
    /// Source hashing (`ip_vs_sh.c`).
    Sh {
        /// Hash the source port too (IP_VS_SVC_F_SCHED_SH_PORT, `sh-port`).
        port: bool,
        /// Look further when the hashed real is unavailable
        /// (IP_VS_SVC_F_SCHED_SH_FALLBACK, `sh-fallback`).
        fallback: bool,
    },
    /// Shortest expected delay (`ip_vs_sed.c`).
    Sed,
    /// Never queue (`ip_vs_nq.c`).
    Nq,
    /// Maglev hashing (`ip_vs_mh.c`).
    Mh {
        /// Lookup table size: a prime, at least the number of reals
        /// ([`mh::DEFAULT_TABLE_SIZE`] by default).
        table_size: u32,
        /// Hash the source port too (IP_VS_SVC_F_SCHED_MH_PORT, `mh-port`).
        port: bool,
        /// Look further when the hashed real is unavailable
        /// (IP_VS_SVC_F_SCHED_MH_FALLBACK, `mh-fallback`).
        fallback: bool,
    },
    /// Weighted fail-over (`ip_vs_fo.c`).
    Fo,
    /// Overflow connection (`ip_vs_ovf.c`).
    Ovf,
    /// Power of two choices (`ip_vs_twos.c`).
    Twos,
}

impl SchedulerKind {
    /// The ipvsadm `-s` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh { .. } => "sh",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Mh { .. } => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Twos => "twos",
        }
    }

    /// Maglev with the default table size and no flags.
    pub const fn mh() -> SchedulerKind {
        SchedulerKind::Mh {
            table_size: mh::DEFAULT_TABLE_SIZE,
            port: false,
            fallback: false,
        }
    }
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Real {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its port (NAT rewrites to it; tunnel and DR keep the packet's).
    pub port: u16,
    /// Weight; 0 means quiescent: no new connections.
    pub weight: u32,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Connections (active + inactive) at which the real becomes
    /// overloaded and takes no new ones (`ipvsadm -x`); 0 = no limit.
    pub upper_threshold: u32,
    /// Connections below which an overloaded real takes new ones again
    /// (`ipvsadm -y`); 0 = three quarters of `upper_threshold`.
    pub lower_threshold: u32,
}

/// A virtual service: (VIP, port, protocol) and its real servers.
///
/// Equality compares the configuration and ignores `stats`, which is
/// live state.
#[derive(Debug, Clone)]
pub struct Service {
    /// Operator's name, for reports.
    pub name: String,
    /// Virtual IP.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Real servers, in configuration order (the order IPVS keeps its
    /// destination list in, which every scheduler walks).
    pub reals: Vec<Real>,
    /// Firewall mark, persistence, timeouts.
    pub options: ServiceOptions,
    /// Connection counts and overload flags, one per real, shared by every
    /// worker. [`Snapshot::new`] gives a service fresh, zeroed stats unless
    /// it already has exactly one per real (a control plane that rebuilds a
    /// snapshot may hand the old ones over to keep the counts).
    pub stats: Arc<[RealStats]>,
}

impl PartialEq for Service {
    fn eq(&self, other: &Service) -> bool {
        self.name == other.name
            && self.vip == other.vip
            && self.port == other.port
            && self.protocol == other.protocol
            && self.scheduler == other.scheduler
            && self.reals == other.reals
            && self.options == other.options
    }
}

impl Eq for Service {}

impl Service {
    /// Zeroed stats for `n` reals.
    pub fn fresh_stats(n: usize) -> Arc<[RealStats]> {
        (0..n).map(|_| RealStats::default()).collect()
    }
}

/// What a service adds to (VIP, port, protocol) and its reals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceOptions {
    /// A firewall-mark service (ipvsadm -f): matched by the mark the
    /// classifier gives a packet, not by `vip`/`port`/`protocol`; the real
    /// server's port is the packet's own. 0 = not a fwmark service.
    pub fwmark: u32,
    /// Persistence (ipvsadm -p/-M): a client's connections go to the real
    /// its first one went to, while a template entry lives.
    pub persistence: Option<Persistence>,
    /// State timeouts of this service's connections.
    pub timeouts: Timeouts,
    /// A template whose real is quiescent (weight 0) no longer binds new
    /// connections (IPVS `expire_quiescent_template`).
    pub expire_quiescent_template: bool,
}

/// Persistence of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Template lifetime in seconds, renewed by each new connection.
    pub timeout: u32,
    /// Client netmask as a prefix length: clients in one prefix share a
    /// template (ipvsadm -M).
    pub netmask: u8,
}

/// A classifier rule: packets matching it get `mark` (the iptables mangle
/// rules LVS setups used, built in). Rules are tried in order; the first
/// match wins, so a specific rule must come before a broader one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRule {
    /// Destination prefix.
    pub dst: Ipv4Addr,
    /// Its length.
    pub prefix_len: u8,
    /// Protocol, or any.
    pub protocol: Option<Protocol>,
    /// Inclusive destination port ranges; empty = any port.
    pub ports: Vec<(u16, u16)>,
    /// The mark.
    pub mark: u32,
}

/// The netmask of a prefix length (0 to 32; longer counts as 32).
pub fn prefix_mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    }
}

impl MarkRule {
    /// True when a packet to `dst:dport` over `proto` matches.
    #[inline]
    pub fn matches(&self, dst: Ipv4Addr, dport: u16, proto: u8) -> bool {
        let m = prefix_mask(self.prefix_len);
        dst.to_bits() & m == self.dst.to_bits() & m
            && self.protocol.is_none_or(|p| p.number() == proto)
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&dport)))
    }

    fn covers(&self, a: Ipv4Addr) -> bool {
        let m = prefix_mask(self.prefix_len);
        a.to_bits() & m == self.dst.to_bits() & m
    }
}

/// One of the director's own addresses, with its connected subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddress {
    /// Port index the subnet is reached on.
    pub port: u16,
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length of the connected subnet.
    pub prefix_len: u8,
}

impl LocalAddress {
    /// True when `a` is on this address's connected subnet.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
        a.to_bits() & mask == self.addr.to_bits() & mask
    }
}

/// What a worker needs to know of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    /// The port's MAC address.
    pub mac: MacAddr,
    /// IP MTU of the link (1500 for Ethernet).
    pub mtu: u16,
}

/// Why a snapshot could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Two services share (VIP, port, protocol).
    #[error("duplicate service {0}:{1}/{2}")]
    DuplicateService(Ipv4Addr, u16, &'static str),
    /// An address or gateway names a port that does not exist.
    #[error("port index {0} does not exist")]
    NoSuchPort(u16),
    /// Two services share a firewall mark.
    #[error("duplicate firewall-mark service {0}")]
    DuplicateMark(u32),
    /// More services than a connection entry can index.
    #[error("too many services ({0}); the limit is 65535")]
    TooManyServices(usize),
    /// More reals in a service than a connection entry can index.
    #[error("service {0} has too many real servers ({1}); the limit is 65535")]
    TooManyReals(String, usize),
    /// An mh table size that is not a prime at least as large as the
    /// number of reals (the Maglev permutation needs both).
    #[error(
        "service {0}: mh table size {1} must be a prime of at least {2} (the number of reals)"
    )]
    BadMhTableSize(String, u32, usize),
}

/// The dataplane's view of the configuration.
#[derive(Debug, Clone)]
pub struct Snapshot {
    ports: Vec<PortInfo>,
    locals: Vec<LocalAddress>,
    gateway: Option<(Ipv4Addr, u16)>,
    services: Vec<Service>,
    by_key: FxHashMap<(u32, u16, u8), u16>,
    by_mark: FxHashMap<u32, u16>,
    marks: Vec<MarkRule>,
    vips: FxHashSet<u32>,
    owner_mask: u32,
}

impl Snapshot {
    /// Builds and indexes a snapshot.
    ///
    /// # Errors
    /// Duplicate services, references to missing ports, too many services
    /// or reals, an mh table size that is not a large enough prime.
    pub fn new(
        ports: Vec<PortInfo>,
        locals: Vec<LocalAddress>,
        gateway: Option<(Ipv4Addr, u16)>,
        mut services: Vec<Service>,
    ) -> Result<Snapshot, SnapshotError> {
        let nports = ports.len();
        let check_port = |p: u16| {
            if usize::from(p) < nports {
                Ok(())
            } else {
                Err(SnapshotError::NoSuchPort(p))
            }
        };
        for l in &locals {
            check_port(l.port)?;
        }
        if let Some((_, p)) = gateway {
            check_port(p)?;
        }
        if services.len() > usize::from(u16::MAX) {
            return Err(SnapshotError::TooManyServices(services.len()));
        }
        for s in &mut services {
            let n = s.reals.len();
            if n > usize::from(u16::MAX) {
                return Err(SnapshotError::TooManyReals(s.name.clone(), n));
            }
            if let SchedulerKind::Mh { table_size, .. } = s.scheduler {
                if !mh::is_prime(table_size) || (table_size as usize) < n {
                    return Err(SnapshotError::BadMhTableSize(s.name.clone(), table_size, n));
                }
            }
            if s.stats.len() != n {
                s.stats = Service::fresh_stats(n);
            }
        }
        let mut by_key = FxHashMap::default();
        let mut by_mark = FxHashMap::default();
        let mut vips = FxHashSet::default();
        let mut owner_prefix = 32u8;
        for (i, s) in services.iter().enumerate() {
            if s.options.fwmark != 0 {
                if by_mark.insert(s.options.fwmark, i as u16).is_some() {
                    return Err(SnapshotError::DuplicateMark(s.options.fwmark));
                }
            } else {
                let key = (s.vip.to_bits(), s.port, s.protocol.number());
                if by_key.insert(key, i as u16).is_some() {
                    return Err(SnapshotError::DuplicateService(
                        s.vip,
                        s.port,
                        s.protocol.as_str(),
                    ));
                }
                vips.insert(s.vip.to_bits());
            }
            if let Some(p) = s.options.persistence {
                owner_prefix = owner_prefix.min(p.netmask);
            }
        }
        Ok(Snapshot {
            ports,
            locals,
            gateway,
            services,
            by_key,
            by_mark,
            marks: Vec::new(),
            vips,
            owner_mask: prefix_mask(owner_prefix),
        })
    }

    /// Adds the firewall-mark classifier rules, tried in order.
    pub fn with_marks(mut self, rules: Vec<MarkRule>) -> Snapshot {
        self.marks = rules;
        self
    }

    /// The service a packet to `dst:dport` over `proto` belongs to, as
    /// ip_vs_service_find looks it up: a firewall-mark service for the
    /// first classifier rule that matches, else (VIP, port, protocol),
    /// else the VIP's port-zero service (every port).
    #[inline]
    pub fn classify(&self, dst: Ipv4Addr, dport: u16, proto: u8) -> Option<u16> {
        if let Some(rule) = self.marks.iter().find(|r| r.matches(dst, dport, proto)) {
            if let Some(sid) = self.by_mark.get(&rule.mark) {
                return Some(*sid);
            }
        }
        self.by_key
            .get(&(dst.to_bits(), dport, proto))
            .or_else(|| self.by_key.get(&(dst.to_bits(), 0, proto)))
            .copied()
    }

    /// The mask applied to a client address before choosing its worker:
    /// the widest persistence netmask of any service, so that every client
    /// sharing a persistence template is handled by one worker.
    #[inline]
    pub fn owner_mask(&self) -> u32 {
        self.owner_mask
    }

    /// The ports.
    pub fn ports(&self) -> &[PortInfo] {
        &self.ports
    }

    /// The services, indexed by service id.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The default next hop and its port.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway.map(|(a, _)| a)
    }

    /// The director's own addresses.
    pub fn locals(&self) -> &[LocalAddress] {
        &self.locals
    }

    /// The service for (VIP, port, protocol number).
    #[inline]
    pub fn service_id(&self, vip: Ipv4Addr, port: u16, proto: u8) -> Option<u16> {
        self.by_key.get(&(vip.to_bits(), port, proto)).copied()
    }

    /// True when `a` is the VIP of any service, or inside the destination
    /// of a classifier rule whose mark has a service.
    #[inline]
    pub fn is_vip(&self, a: Ipv4Addr) -> bool {
        self.vips.contains(&a.to_bits())
            || self
                .marks
                .iter()
                .any(|r| r.covers(a) && self.by_mark.contains_key(&r.mark))
    }

    /// The local address `a` if it is one of the director's own on `port`.
    #[inline]
    pub fn local_on_port(&self, port: u16, a: Ipv4Addr) -> Option<&LocalAddress> {
        self.locals.iter().find(|l| l.port == port && l.addr == a)
    }

    /// True when `a` is any of the director's own addresses.
    #[inline]
    pub fn is_local(&self, a: Ipv4Addr) -> bool {
        self.locals.iter().any(|l| l.addr == a)
    }

    /// The next hop and port for `dst`: itself when on a connected subnet
    /// (longest prefix first), else the gateway.
    #[inline]
    pub fn route(&self, dst: Ipv4Addr) -> Option<(Ipv4Addr, u16)> {
        let mut best: Option<&LocalAddress> = None;
        for l in &self.locals {
            if l.contains(dst) && best.is_none_or(|b| l.prefix_len > b.prefix_len) {
                best = Some(l);
            }
        }
        match best {
            Some(l) => Some((dst, l.port)),
            None => self.gateway,
        }
    }

    /// The director's address to use as a source towards `next_hop` on
    /// `port`: the one on the same subnet, else the port's first address.
    #[inline]
    pub fn source_address(&self, port: u16, next_hop: Ipv4Addr) -> Option<Ipv4Addr> {
        let mut first = None;
        for l in self.locals.iter().filter(|l| l.port == port) {
            if l.contains(next_hop) {
                return Some(l.addr);
            }
            first.get_or_insert(l.addr);
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        let port = PortInfo {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        };
        let locals = vec![
            LocalAddress {
                port: 0,
                addr: Ipv4Addr::new(198, 18, 1, 1),
                prefix_len: 24,
            },
            LocalAddress {
                port: 0,
                addr: Ipv4Addr::new(198, 18, 2, 1),
                prefix_len: 24,
            },
        ];
        let svc = Service {
            name: "web".into(),
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: SchedulerKind::Rr,
            reals: vec![],
            options: Default::default(),
            stats: Default::default(),
        };
        Snapshot::new(
            vec![port],
            locals,
            Some((Ipv4Addr::new(198, 18, 1, 254), 0)),
            vec![svc],
        )
        .unwrap()
    }

    #[test]
    fn lookups() {
        let s = snap();
        assert_eq!(s.service_id(Ipv4Addr::new(198, 18, 0, 100), 80, 6), Some(0));
        assert_eq!(s.service_id(Ipv4Addr::new(198, 18, 0, 100), 80, 17), None);
        assert!(s.is_vip(Ipv4Addr::new(198, 18, 0, 100)));
        assert_eq!(
            s.route(Ipv4Addr::new(198, 18, 2, 11)),
            Some((Ipv4Addr::new(198, 18, 2, 11), 0))
        );
        assert_eq!(
            s.route(Ipv4Addr::new(203, 0, 113, 9)),
            Some((Ipv4Addr::new(198, 18, 1, 254), 0))
        );
        assert_eq!(
            s.source_address(0, Ipv4Addr::new(198, 18, 2, 11)),
            Some(Ipv4Addr::new(198, 18, 2, 1))
        );
    }

    fn real(i: u8) -> Real {
        Real {
            addr: Ipv4Addr::new(198, 18, 2, i),
            port: 80,
            weight: 1,
            method: ForwardMethod::Nat,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    #[test]
    fn stats_are_one_per_real_and_kept_when_given() {
        let s = snap();
        let mut svc = s.services()[0].clone();
        svc.reals = vec![real(11), real(12)];
        let made = Snapshot::new(s.ports().to_vec(), vec![], None, vec![svc.clone()]).unwrap();
        let stats = made.services()[0].stats.clone();
        assert_eq!(stats.len(), 2);
        // Handed over with the right length: the same counters.
        stats[1].conn_bound(&svc.reals[1], false);
        let mut again = made.services()[0].clone();
        again.name = "renamed".into();
        let kept = Snapshot::new(s.ports().to_vec(), vec![], None, vec![again]).unwrap();
        assert_eq!(kept.services()[0].stats[1].inactive(), 1);
        assert!(Arc::ptr_eq(&kept.services()[0].stats, &stats));
        // Equality ignores the live counts.
        assert_eq!(made.services()[0], svc);
    }

    #[test]
    fn mh_table_size_must_be_a_large_enough_prime() {
        let s = snap();
        let mut svc = s.services()[0].clone();
        svc.reals = vec![real(11), real(12), real(13)];
        for (size, ok) in [
            (65537, true),
            (3, true),
            (2, false),
            (65536, false),
            (1, false),
        ] {
            svc.scheduler = SchedulerKind::Mh {
                table_size: size,
                port: false,
                fallback: false,
            };
            let r = Snapshot::new(s.ports().to_vec(), vec![], None, vec![svc.clone()]);
            assert_eq!(r.is_ok(), ok, "{size}");
            if !ok {
                assert!(matches!(r, Err(SnapshotError::BadMhTableSize(_, n, 3)) if n == size));
            }
        }
        assert_eq!(SchedulerKind::mh().as_str(), "mh");
    }

    #[test]
    fn rejects_duplicates_and_bad_ports() {
        let s = snap();
        let mut svcs = s.services().to_vec();
        svcs.push(svcs[0].clone());
        let e = Snapshot::new(s.ports().to_vec(), vec![], None, svcs).unwrap_err();
        assert!(matches!(e, SnapshotError::DuplicateService(..)));
        let e = Snapshot::new(
            s.ports().to_vec(),
            vec![],
            Some((Ipv4Addr::LOCALHOST, 3)),
            vec![],
        )
        .unwrap_err();
        assert_eq!(e, SnapshotError::NoSuchPort(3));
    }
}
