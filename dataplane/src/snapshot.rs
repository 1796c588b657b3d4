//! The immutable configuration a worker forwards by, in compiled form.
//!
//! The control thread keeps the service table (the model, [`crate::model`])
//! and publishes a [`Snapshot`]; workers read it without locks. A snapshot
//! never changes: a change is a new snapshot. Lookups on it (VIP, local
//! address, route) allocate nothing.
//!
//! Services sit in stable *slots*: a service keeps its slot (its service
//! id, which connection entries record) for as long as it exists, and a
//! deleted service leaves its slot empty until a new service takes it. Each
//! service is an [`Arc<CompiledService>`]: a change to one service compiles
//! that one again on the control thread (its Maglev table included) and
//! shares every other service's `Arc` with the previous snapshot, so a
//! worker that swaps snapshots can tell, by pointer, which services
//! changed and keep the scheduler state of all the others.

use crate::model::{prefix_mask, MarkRule, SchedulerKind, Service};
use crate::sched::{mh, RealStats, SharedTables};
use crate::traffic::Traffic;
use core::net::Ipv4Addr;
use l4vs_wire::ethernet::Address as MacAddr;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

/// A service as workers forward by it: the model [`Service`] (readable
/// through `Deref`), its real servers' shared connection counts, and its
/// scheduler's read-only tables, built once here on the control thread.
#[derive(Debug)]
pub struct CompiledService {
    service: Service,
    /// Connection counts and overload flags, one per real, shared by every
    /// worker.
    pub stats: Arc<[RealStats]>,
    /// Packet, byte and connection counters, a row per worker.
    pub traffic: Traffic,
    tables: SharedTables,
}

impl core::ops::Deref for CompiledService {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.service
    }
}

impl CompiledService {
    /// Compiles `service` with fresh, zeroed counts, with traffic rows for
    /// one worker.
    ///
    /// # Errors
    /// More than 65535 reals, or an mh table size that is not a prime at
    /// least as large as the number of reals.
    pub fn compile(service: Service) -> Result<Arc<CompiledService>, SnapshotError> {
        let n = service.reals.len();
        CompiledService::compile_with_stats(service, Self::fresh_stats(n), 1)
    }

    /// Compiles `service`, keeping `stats` when it holds exactly one entry
    /// per real (a changed service whose reals are the same keeps its
    /// connection counts); fresh ones otherwise. Traffic rows start at zero
    /// for `workers` workers (the control thread adds up what earlier
    /// compilations counted). Builds the Maglev table of an mh service: the
    /// expensive part, done here and not on a worker.
    ///
    /// # Errors
    /// As [`CompiledService::compile`].
    pub fn compile_with_stats(
        service: Service,
        stats: Arc<[RealStats]>,
        workers: usize,
    ) -> Result<Arc<CompiledService>, SnapshotError> {
        let n = service.reals.len();
        if n > usize::from(u16::MAX) {
            return Err(SnapshotError::TooManyReals(service.name.clone(), n));
        }
        if let SchedulerKind::Mh { table_size, .. } = service.scheduler {
            if !mh::is_prime(table_size) || (table_size as usize) < n {
                return Err(SnapshotError::BadMhTableSize(
                    service.name.clone(),
                    table_size,
                    n,
                ));
            }
        }
        let stats = if stats.len() == n {
            stats
        } else {
            Self::fresh_stats(n)
        };
        let tables = SharedTables::build(service.scheduler, &service.reals);
        let traffic = Traffic::new(workers.max(1), n);
        Ok(Arc::new(CompiledService {
            service,
            stats,
            traffic,
            tables,
        }))
    }

    /// Zeroed stats for `n` reals.
    pub fn fresh_stats(n: usize) -> Arc<[RealStats]> {
        (0..n).map(|_| RealStats::default()).collect()
    }

    /// The model service this was compiled from.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The scheduler's read-only tables, shared by every worker.
    pub fn tables(&self) -> &SharedTables {
        &self.tables
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
    slots: Vec<Option<Arc<CompiledService>>>,
    by_key: FxHashMap<(u32, u16, u8), u16>,
    by_mark: FxHashMap<u32, u16>,
    marks: Vec<MarkRule>,
    vips: FxHashSet<u32>,
    owner_mask: u32,
    /// A VRRP backup's: forward nothing, answer no ARP for the VIPs.
    standby: bool,
    /// VRRP's virtual addresses besides the VIPs (a NAT gateway).
    virtual_addrs: Vec<Ipv4Addr>,
}

impl Snapshot {
    /// Builds and indexes a snapshot of `services`, compiling each afresh
    /// into slots 0, 1, ... in order.
    ///
    /// # Errors
    /// Duplicate services, references to missing ports, too many services
    /// or reals, an mh table size that is not a large enough prime.
    pub fn new(
        ports: Vec<PortInfo>,
        locals: Vec<LocalAddress>,
        gateway: Option<(Ipv4Addr, u16)>,
        services: Vec<Service>,
    ) -> Result<Snapshot, SnapshotError> {
        if services.len() > usize::from(u16::MAX) {
            return Err(SnapshotError::TooManyServices(services.len()));
        }
        let slots = services
            .into_iter()
            .map(|s| CompiledService::compile(s).map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        Snapshot::from_slots(ports, locals, gateway, slots)
    }

    /// Builds and indexes a snapshot of already compiled services, each in
    /// its slot (`None`: a free slot). The control thread's service table
    /// uses this to publish a change: unchanged services are the same
    /// `Arc`s as in the previous snapshot.
    ///
    /// # Errors
    /// Duplicate services, references to missing ports, more than 65535
    /// slots.
    pub fn from_slots(
        ports: Vec<PortInfo>,
        locals: Vec<LocalAddress>,
        gateway: Option<(Ipv4Addr, u16)>,
        slots: Vec<Option<Arc<CompiledService>>>,
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
        if slots.len() > usize::from(u16::MAX) {
            return Err(SnapshotError::TooManyServices(slots.len()));
        }
        let mut by_key = FxHashMap::default();
        let mut by_mark = FxHashMap::default();
        let mut vips = FxHashSet::default();
        let mut owner_prefix = 32u8;
        for (i, s) in slots.iter().enumerate() {
            let Some(s) = s else { continue };
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
            slots,
            by_key,
            by_mark,
            marks: Vec::new(),
            vips,
            owner_mask: prefix_mask(owner_prefix),
            standby: false,
            virtual_addrs: Vec::new(),
        })
    }

    /// The same snapshot for a director in VRRP state `standby` (a
    /// backup: true) with the `virtual_addrs` it answers ARP for while
    /// master (the VIPs need not be listed: they are always answered for
    /// by a master, and never by a backup). A snapshot built by
    /// [`Snapshot::new`] or [`Snapshot::from_slots`] is a master's with
    /// no virtual address: a director without VRRP.
    pub fn with_high_availability(
        mut self,
        standby: bool,
        virtual_addrs: Vec<Ipv4Addr>,
    ) -> Snapshot {
        self.standby = standby;
        self.virtual_addrs = virtual_addrs;
        self
    }

    /// True on a VRRP backup: the workers forward nothing and answer ARP
    /// only for the director's own addresses (ipvs's `backup_only`).
    #[inline]
    pub fn standby(&self) -> bool {
        self.standby
    }

    /// VRRP's virtual addresses besides the VIPs, as given to
    /// [`Snapshot::with_high_availability`].
    pub fn virtual_addresses(&self) -> &[Ipv4Addr] {
        &self.virtual_addrs
    }

    /// True when a worker answers an ARP request for `a` that came in on
    /// `port`: one of the director's own addresses on that port; or, on
    /// a director that is not a VRRP backup, a VIP or a virtual address.
    #[inline]
    pub fn answers_arp(&self, port: u16, a: Ipv4Addr) -> bool {
        self.local_on_port(port, a).is_some()
            || (!self.standby && (self.is_vip(a) || self.virtual_addrs.contains(&a)))
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

    /// The service slots, indexed by service id (`None`: a free slot).
    pub fn slots(&self) -> &[Option<Arc<CompiledService>>] {
        &self.slots
    }

    /// The service in slot `sid`, if there is one.
    #[inline]
    pub fn service(&self, sid: u16) -> Option<&Arc<CompiledService>> {
        self.slots.get(usize::from(sid))?.as_ref()
    }

    /// The services with their ids, in slot order.
    pub fn services(&self) -> impl Iterator<Item = (u16, &Arc<CompiledService>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u16, s.as_ref()?)))
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

    /// The service of firewall mark `mark`.
    #[inline]
    pub fn mark_service(&self, mark: u32) -> Option<u16> {
        self.by_mark.get(&mark).copied()
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
    use crate::model::{ForwardMethod, Protocol, Real};

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
        let mut svc = s.service(0).unwrap().service().clone();
        svc.reals = vec![real(11), real(12)];
        let made = CompiledService::compile(svc.clone()).unwrap();
        let stats = made.stats.clone();
        assert_eq!(stats.len(), 2);
        // Handed over with the right length: the same counters.
        stats[1].conn_bound(&svc.reals[1], false);
        let mut again = svc.clone();
        again.name = "renamed".into();
        let kept = CompiledService::compile_with_stats(again, stats.clone(), 1).unwrap();
        assert_eq!(kept.stats[1].inactive(), 1);
        assert!(Arc::ptr_eq(&kept.stats, &stats));
        // With another number of reals, fresh counts.
        let mut more = svc.clone();
        more.reals.push(real(13));
        let fresh = CompiledService::compile_with_stats(more, stats.clone(), 1).unwrap();
        assert_eq!(fresh.stats.len(), 3);
        assert_eq!(fresh.stats[1].inactive(), 0);
        assert_eq!(*made.service(), svc);
    }

    #[test]
    fn slots_keep_their_ids_and_free_slots_match_nothing() {
        let s = snap();
        let web = s.service(0).unwrap().clone();
        let mut other = web.service().clone();
        other.port = 443;
        let other = CompiledService::compile(other).unwrap();
        let made = Snapshot::from_slots(s.ports().to_vec(), vec![], None, vec![None, Some(other)])
            .unwrap();
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(made.service_id(vip, 443, 6), Some(1));
        assert_eq!(made.service_id(vip, 80, 6), None);
        assert!(made.service(0).is_none());
        assert_eq!(made.services().map(|(i, _)| i).collect::<Vec<_>>(), [1]);
        let again = Snapshot::from_slots(s.ports().to_vec(), vec![], None, vec![Some(web.clone())])
            .unwrap();
        assert!(Arc::ptr_eq(again.service(0).unwrap(), &web));
    }

    #[test]
    fn mh_table_size_must_be_a_large_enough_prime() {
        let s = snap();
        let mut svc = s.service(0).unwrap().service().clone();
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
        let one = s.service(0).unwrap().service().clone();
        let svcs = vec![one.clone(), one];
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
