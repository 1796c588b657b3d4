//! From a validated config to what the dataplane runs: the [`Snapshot`]
//! and the static neighbour entries. Pure functions, tested without DPDK.

use crate::config::{self, Config};
use l4vs_dataplane::{
    ForwardMethod, LocalAddress, MarkRule, NeighborTable, Persistence, PortInfo, Protocol, Real,
    SchedulerKind, Service, ServiceOptions, Snapshot, SnapshotError,
};
use l4vs_wire::ethernet::Address as MacAddr;

/// IP MTU assumed for every port until MTU configuration exists.
pub const DEFAULT_MTU: u16 = 1500;

/// Builds the dataplane snapshot; `macs[i]` is port i's MAC address.
///
/// # Errors
/// What [`Snapshot::new`] refuses (the config validator already rejects
/// those cases, so this is a second line of defence).
pub fn snapshot(cfg: &Config, macs: &[[u8; 6]]) -> Result<Snapshot, SnapshotError> {
    rebuild(cfg, macs, None)
}

/// [`snapshot`] for a reload: a service that keeps its identity (VIP, port
/// and protocol, or mark) and exactly the same real servers keeps the
/// running per-real connection counts, so least-connection scheduling and
/// thresholds see the connections that are still open. A changed list of
/// reals starts from zero.
///
/// # Errors
/// As [`snapshot`].
pub fn rebuild(
    cfg: &Config,
    macs: &[[u8; 6]],
    previous: Option<&Snapshot>,
) -> Result<Snapshot, SnapshotError> {
    let ports = macs
        .iter()
        .map(|m| PortInfo {
            mac: MacAddr(*m),
            mtu: DEFAULT_MTU,
        })
        .collect();
    let locals = cfg
        .addresses
        .iter()
        .map(|a| LocalAddress {
            port: a.port as u16,
            addr: a.address,
            prefix_len: a.prefix_len,
        })
        .collect();
    let gateway = cfg.gateway.as_ref().map(|g| (g.address, g.port as u16));
    let services = cfg
        .services
        .iter()
        .map(|s| Service {
            name: s
                .name
                .clone()
                .unwrap_or_else(|| format!("{}:{}/{}", s.vip, s.port, s.protocol.as_str())),
            vip: s.vip,
            port: s.port,
            protocol: protocol(s.protocol),
            scheduler: scheduler(s.scheduler),
            reals: s
                .reals
                .iter()
                .map(|r| Real {
                    addr: r.address,
                    port: r.port,
                    weight: r.weight,
                    method: match r.forward {
                        config::Forward::Nat => ForwardMethod::Nat,
                        config::Forward::Tunnel => ForwardMethod::Tunnel,
                        config::Forward::Dr => ForwardMethod::DirectRouting,
                    },
                    upper_threshold: r.upper_threshold,
                    lower_threshold: r.lower_threshold,
                })
                .collect(),
            options: ServiceOptions {
                fwmark: s.fwmark.unwrap_or(0),
                persistence: s.persistence.map(|p| Persistence {
                    timeout: p.timeout,
                    netmask: p.netmask,
                }),
                timeouts: s.timeouts,
                expire_quiescent_template: cfg.expire_quiescent_template,
            },
            stats: Default::default(),
        })
        .collect();
    let marks = cfg
        .firewall_marks
        .iter()
        .map(|m| MarkRule {
            dst: m.destination,
            prefix_len: m.prefix_len,
            protocol: m.protocol.map(protocol),
            ports: m.ports.clone(),
            mark: m.mark,
        })
        .collect();
    let mut services: Vec<Service> = services;
    if let Some(old) = previous {
        for s in &mut services {
            let same = old.services().iter().find(|o| {
                o.vip == s.vip
                    && o.port == s.port
                    && o.protocol == s.protocol
                    && o.options.fwmark == s.options.fwmark
                    && o.reals.len() == s.reals.len()
                    && o.reals
                        .iter()
                        .zip(&s.reals)
                        .all(|(a, b)| (a.addr, a.port, a.method) == (b.addr, b.port, b.method))
            });
            if let Some(o) = same {
                s.stats = o.stats.clone();
            }
        }
    }
    Ok(Snapshot::new(ports, locals, gateway, services)?.with_marks(marks))
}

/// The dataplane's scheduler for a configured one.
pub fn scheduler(s: config::Scheduler) -> SchedulerKind {
    use config::Scheduler as C;
    match s {
        C::Rr => SchedulerKind::Rr,
        C::Wrr => SchedulerKind::Wrr,
        C::Lc => SchedulerKind::Lc,
        C::Wlc => SchedulerKind::Wlc,
        C::Lblc => SchedulerKind::Lblc,
        C::Lblcr => SchedulerKind::Lblcr,
        C::Dh => SchedulerKind::Dh,
        C::Sh { port, fallback } => SchedulerKind::Sh { port, fallback },
        C::Sed => SchedulerKind::Sed,
        C::Nq => SchedulerKind::Nq,
        C::Mh {
            table_size,
            port,
            fallback,
        } => SchedulerKind::Mh {
            table_size,
            port,
            fallback,
        },
        C::Fo => SchedulerKind::Fo,
        C::Ovf => SchedulerKind::Ovf,
        C::Twos => SchedulerKind::Twos,
    }
}

fn protocol(p: config::Protocol) -> Protocol {
    match p {
        config::Protocol::Tcp => Protocol::Tcp,
        config::Protocol::Udp => Protocol::Udp,
    }
}

/// A neighbour table seeded with the config's static entries.
pub fn neighbors(cfg: &Config) -> NeighborTable {
    let t = NeighborTable::new(4096 + cfg.neighbors.len());
    seed_neighbors(cfg, &t);
    t
}

/// Installs the config's static neighbour entries in `t` (at start, and
/// again on a reload).
pub fn seed_neighbors(cfg: &Config, t: &NeighborTable) {
    for n in &cfg.neighbors {
        t.set_static(n.address, MacAddr(n.mac), n.port as u16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(name: &str) -> Config {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        config::load(&dir.join(name)).unwrap()
    }

    #[test]
    fn lab_configs_become_snapshots() {
        for (file, method) in [
            ("lab-nat.yaml", ForwardMethod::Nat),
            ("lab-tunnel.yaml", ForwardMethod::Tunnel),
            ("lab-dr.yaml", ForwardMethod::DirectRouting),
        ] {
            let cfg = load(file);
            let s = snapshot(&cfg, &[[2, 0, 0, 0, 0, 1]]).unwrap();
            let vip = "198.18.0.100".parse().unwrap();
            let web = s.service_id(vip, 80, 6).expect("http service");
            let svc = &s.services()[usize::from(web)];
            assert_eq!(svc.reals.len(), 3, "{file}");
            assert!(svc.reals.iter().all(|r| r.method == method), "{file}");
            assert!(s.service_id(vip, 53, 17).is_some(), "{file}: udp echo");
            assert_eq!(s.locals().len(), 2);
        }
    }

    #[test]
    fn wrr_weights_carry_over() {
        let cfg = load("lab-wrr.yaml");
        let s = snapshot(&cfg, &[[2, 0, 0, 0, 0, 1]]).unwrap();
        let svc = &s.services()[0];
        assert_eq!(svc.scheduler, SchedulerKind::Wrr);
        assert_eq!(
            svc.reals.iter().map(|r| r.weight).collect::<Vec<_>>(),
            [3, 1, 0]
        );
    }

    #[test]
    fn schedulers_and_thresholds_carry_over() {
        let cfg = load("example-schedulers.yaml");
        let s = snapshot(&cfg, &[[2, 0, 0, 0, 0, 1]]).unwrap();
        let kinds: Vec<SchedulerKind> = s.services().iter().map(|s| s.scheduler).collect();
        assert_eq!(
            kinds,
            [
                SchedulerKind::Wlc,
                SchedulerKind::Mh {
                    table_size: 65537,
                    port: true,
                    fallback: true
                },
                SchedulerKind::Sh {
                    port: false,
                    fallback: true
                },
                SchedulerKind::Lblcr,
                SchedulerKind::Fo,
                SchedulerKind::Ovf,
                SchedulerKind::Sed,
                SchedulerKind::Nq,
                SchedulerKind::Twos,
            ]
        );
        let web = &s.services()[0];
        let t: Vec<(u32, u32)> = web
            .reals
            .iter()
            .map(|r| (r.upper_threshold, r.lower_threshold))
            .collect();
        assert_eq!(t, [(1000, 800), (600, 0), (0, 0)]);
        assert!(s
            .services()
            .iter()
            .all(|svc| svc.stats.len() == svc.reals.len()));
        // Every config name maps to the dataplane's scheduler of that name.
        for svc in &cfg.services {
            assert_eq!(scheduler(svc.scheduler).as_str(), svc.scheduler.as_str());
        }
    }

    #[test]
    fn static_neighbors_are_seeded() {
        let cfg = load("example-full.yaml");
        let t = neighbors(&cfg);
        for n in &cfg.neighbors {
            assert_eq!(t.lookup(n.address).map(|e| e.mac), Some(MacAddr(n.mac)));
        }
        let macs = vec![[2, 0, 0, 0, 0, 1]; cfg.ports.len()];
        snapshot(&cfg, &macs).unwrap();
    }
}
