//! From a validated config and the service table to what the dataplane
//! runs: the [`Snapshot`] and the static neighbour entries. Pure functions,
//! tested without DPDK.

use crate::config::Config;
use crate::table::{ServiceTable, TableError};
use l4vs_dataplane::{LocalAddress, MarkRule, NeighborTable, PortInfo, Snapshot, SnapshotError};
use l4vs_wire::ethernet::Address as MacAddr;

/// IP MTU of a port whose device is not asked (`check-config`, tests):
/// Ethernet's.
pub const DEFAULT_MTU: u16 = 1500;

/// Builds the dataplane snapshot of a config on its own (tests, and
/// `check-config`); `ports[i]` is port i's MAC address and MTU.
///
/// # Errors
/// A service or real the table refuses (the config validator already
/// rejects those cases, so this is a second line of defence), with its key
/// path.
pub fn snapshot(cfg: &Config, ports: &[PortInfo]) -> Result<Snapshot, PlanError> {
    let mut table =
        ServiceTable::from_config(cfg).map_err(|(key, e)| PlanError::Service(key, e))?;
    publish(&mut table, cfg, ports)
}

/// Why a config could not become a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A service or real server, by key path, and the rule it broke.
    #[error("{0}: {1}")]
    Service(String, TableError),
    /// The snapshot's own checks (ports, duplicates).
    #[error("{0}")]
    Snapshot(#[from] SnapshotError),
    /// A service that could not be compiled.
    #[error("{0}")]
    Table(#[from] TableError),
}

/// The snapshot of `table` with the config's ports, addresses, gateway
/// and classifier rules: compiles the services changed since the last
/// publication (only those) on the calling thread.
///
/// # Errors
/// As [`snapshot`].
pub fn publish(
    table: &mut ServiceTable,
    cfg: &Config,
    ports: &[PortInfo],
) -> Result<Snapshot, PlanError> {
    let ports = ports.to_vec();
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
    let marks = cfg
        .firewall_marks
        .iter()
        .map(|m| MarkRule {
            dst: m.destination,
            prefix_len: m.prefix_len,
            protocol: m.protocol,
            ports: m.ports.clone(),
            mark: m.mark,
        })
        .collect();
    let slots = table.compile()?;
    Ok(Snapshot::from_slots(ports, locals, gateway, slots)?.with_marks(marks))
}

/// A neighbour table seeded with the config's static entries.
pub fn neighbors(cfg: &Config) -> NeighborTable {
    // Room for every real server's address twice over (a reload may add
    // some), the static entries, and 4096 learned neighbours besides.
    let reals: std::collections::HashSet<_> = cfg
        .services
        .iter()
        .flat_map(|s| s.reals.iter().map(|r| r.address))
        .collect();
    let t = NeighborTable::new(4096 + 2 * reals.len() + cfg.neighbors.len());
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

    fn port() -> PortInfo {
        PortInfo {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: DEFAULT_MTU,
        }
    }
    use crate::config;
    use l4vs_dataplane::{ForwardMethod, SchedulerKind};
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
            let s = snapshot(&cfg, &[port()]).unwrap();
            let vip = "198.18.0.100".parse().unwrap();
            let web = s.service_id(vip, 80, 6).expect("http service");
            let svc = s.service(web).unwrap();
            assert_eq!(svc.reals.len(), 3, "{file}");
            assert!(svc.reals.iter().all(|r| r.method == method), "{file}");
            assert!(s.service_id(vip, 53, 17).is_some(), "{file}: udp echo");
            assert_eq!(s.locals().len(), 2);
        }
    }

    #[test]
    fn wrr_weights_carry_over() {
        let cfg = load("lab-wrr.yaml");
        let s = snapshot(&cfg, &[port()]).unwrap();
        let svc = s.service(0).unwrap();
        assert_eq!(svc.scheduler, SchedulerKind::Wrr);
        assert_eq!(
            svc.reals.iter().map(|r| r.weight).collect::<Vec<_>>(),
            [3, 1, 0]
        );
    }

    #[test]
    fn schedulers_and_thresholds_carry_over() {
        let cfg = load("example-schedulers.yaml");
        let s = snapshot(&cfg, &[port()]).unwrap();
        let kinds: Vec<SchedulerKind> = s.services().map(|(_, s)| s.scheduler).collect();
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
        let web = s.service(0).unwrap();
        let t: Vec<(u32, u32)> = web
            .reals
            .iter()
            .map(|r| (r.upper_threshold, r.lower_threshold))
            .collect();
        assert_eq!(t, [(1000, 800), (600, 0), (0, 0)]);
        assert!(s
            .services()
            .all(|(_, svc)| svc.stats.len() == svc.reals.len()));
    }

    #[test]
    fn static_neighbors_are_seeded() {
        let cfg = load("example-full.yaml");
        let t = neighbors(&cfg);
        for n in &cfg.neighbors {
            assert_eq!(t.lookup(n.address).map(|e| e.mac), Some(MacAddr(n.mac)));
        }
        let ports = vec![port(); cfg.ports.len()];
        snapshot(&cfg, &ports).unwrap();
    }
}
