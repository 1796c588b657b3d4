//! ipvsadm-save output (`ipvsadm -Sn`) as l4vs services.
//!
//! Each line is read as `l4vsadm -R` reads it ([`adm::parse_restore`]:
//! ipvsadm's options, a word `ipvsadm` dropped, `#` comments and blank
//! lines skipped) and applied, in order, to a table whose network takes
//! every real server: so `-E`, `-D`, `-e`, `-d` and `-C` lines change what
//! earlier lines made, as ipvsadm-restore would, and a line that breaks a
//! table rule (a real server on its VIP, a second `-A` of one service) is
//! an error with its line. What the table holds at the end is the plan;
//! each service keeps the line of its last `-A`/`-E`, each real server
//! that of its last `-a`/`-e`.
//!
//! `--start-daemon` lines become the `sync:` block ([`start_daemon`]),
//! and `--stop-daemon` takes its role out of it again ([`stop_daemon`]).
//!
//! Not carried over, with a warning: IPv6 services and real servers
//! (`[ADDR]:PORT`, `-6`), `-Z` (counters are not config), a second
//! `--start-daemon` of a role, or one whose settings differ from the
//! first's (l4vs runs one daemon). An IPv6 `--mcast-group` is an error,
//! as l4vsadm refuses it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::{error, sync_group, ImportError, Plan, PlannedService, PlannedSync, Pos, Warnings};
use crate::adm::{self, Action};
use crate::admin::DaemonSpec;
use crate::config::{self, SyncRole};
use crate::table::{Command, Network, RealSpec, ServiceKey, ServiceTable};

/// The services and timeouts of ipvsadm-save text from file `file`.
///
/// # Errors
/// The first line that l4vs cannot take as an ipvsadm command, or that a
/// table rule refuses, with its number.
pub(super) fn plan(text: &str, file: &Arc<str>, w: &mut Warnings) -> Result<Plan, ImportError> {
    // Every real server is reachable here: reachability is checked
    // against the director's network later, when there is one.
    let mut table = ServiceTable::new(Network {
        addresses: vec![(Ipv4Addr::UNSPECIFIED, 0)],
        ..Network::default()
    });
    let mut service_pos: HashMap<ServiceKey, Pos> = HashMap::new();
    let mut real_pos: HashMap<(ServiceKey, IpAddr, u16), Pos> = HashMap::new();
    let mut plan = Plan::default();
    for (n, line) in text.lines().enumerate() {
        let pos = Pos::new(file, u32::try_from(n + 1).unwrap_or(u32::MAX));
        let Some(words) = crate::adm::restore_words(line) else {
            continue;
        };
        if words
            .iter()
            .any(|w| matches!(*w, "-A" | "--add-service" | "-E" | "--edit-service"))
        {
            plan.service_statements += 1;
        }
        if words
            .iter()
            .any(|w| w.starts_with('[') || matches!(*w, "-6" | "--ipv6"))
        {
            w.warn(
                &pos,
                "this IPv6 line is not carried over: l4vs forwards IPv4 only so far",
            );
            continue;
        }
        if words
            .iter()
            .any(|w| w.starts_with("--start-daemon") || w.starts_with("--stop-daemon"))
        {
            let action = adm::line_action(&words)
                .map_err(|m| error(&pos, format!("this line cannot be carried over: {m}")))?;
            match action {
                Action::StartDaemon(d) => start_daemon(&pos, &d, &mut plan, w)?,
                Action::StopDaemon(state) => stop_daemon(&pos, &state, &mut plan, w),
                _ => {}
            }
            continue;
        }
        let commands = adm::parse_restore(line)
            .map_err(|(_, m)| error(&pos, format!("this line cannot be carried over: {m}")))?;
        for c in commands {
            match &c {
                Command::Zero(_) => {
                    w.warn(
                        &pos,
                        "-Z is not carried over: it zeroes counters, which a config does not hold",
                    );
                    continue;
                }
                Command::SetTimeouts { tcp, tcp_fin, udp } => {
                    plan.timeouts.push((pos.clone(), [*tcp, *tcp_fin, *udp]));
                }
                Command::AddService(spec)
                | Command::EditService(spec)
                | Command::EditServiceSettings(spec) => {
                    service_pos.insert(spec.key, pos.clone());
                }
                Command::AddReal(key, r) | Command::EditReal(key, r) => {
                    let port = if r.port == 0 { key.port() } else { r.port };
                    real_pos.insert((*key, r.addr, port), pos.clone());
                }
                Command::DeleteService(_)
                | Command::DeleteReal(..)
                | Command::Flush
                | Command::SetHealth { .. }
                | Command::SetQuorum { .. } => {}
            }
            table
                .apply(c)
                .map_err(|e| error(&pos, super::table_message(&e, None)))?;
        }
    }
    for (spec, reals) in table.services() {
        let pos = service_pos
            .get(&spec.key)
            .cloned()
            .unwrap_or_else(|| Pos::new(file, 0));
        let reals = reals
            .iter()
            .map(|r| {
                let addr = IpAddr::V4(r.addr);
                let p = real_pos
                    .get(&(spec.key, addr, r.port))
                    .cloned()
                    .unwrap_or_else(|| pos.clone());
                (
                    p,
                    RealSpec {
                        addr,
                        port: r.port,
                        weight: r.weight,
                        method: r.method,
                        upper_threshold: r.upper_threshold,
                        lower_threshold: r.lower_threshold,
                    },
                )
            })
            .collect();
        plan.services.push(PlannedService {
            pos,
            spec: spec.clone(),
            reals,
            check: None,
            inhibit_on_failure: false,
            sorry: None,
            quorum: 1,
            hysteresis: 0,
            real_checks: Default::default(),
            quorum_up: None,
            quorum_down: None,
        });
    }
    // The file's order, not the table's slots (which reuse deleted ones).
    plan.services.sort_by_key(|s| s.pos.line);
    Ok(plan)
}

/// `--start-daemon master|backup` (ipvsadm's sync daemon lines): l4vs's
/// `sync:` on the config's first port (or the base's sync port), with the
/// line's syncid, group, port, TTL and maximum length. A master line and a
/// backup line whose settings come out the same make one daemon in both
/// roles, as IPVS runs the two side by side; l4vs runs one daemon, so a
/// line whose settings differ is left out with a warning, and so is a
/// second line of a role already started (IPVS refuses it, EEXIST).
///
/// # Errors
/// A group that is not an IPv4 multicast group.
fn start_daemon(
    pos: &Pos,
    d: &DaemonSpec,
    plan: &mut Plan,
    w: &mut Warnings,
) -> Result<(), ImportError> {
    // l4vsadm's parse took master or backup only.
    let role = SyncRole::of_daemon_state(&d.state).unwrap_or(SyncRole::Backup);
    let group = match d.group {
        Some(g) if !g.is_multicast() => {
            return Err(error(
                pos,
                format!("this line cannot be carried over: --mcast-group {g} is not an IPv4 multicast group"),
            ))
        }
        g => g.and_then(|g| sync_group(pos, g, "--mcast-group", w)),
    };
    let new = PlannedSync {
        pos: pos.clone(),
        what: "--start-daemon",
        role,
        syncid: d.syncid,
        max_len: d.maxlen,
        port: d.port,
        ttl: d.ttl,
        group,
    };
    match &mut plan.sync {
        None => {
            w.warn(
                pos,
                format!(
                    "--start-daemon {} is carried over as sync: with role {}, on the config's first port (or the base config's sync port) instead of {}: check sync.interface",
                    d.state,
                    role.as_str(),
                    config::echo(&d.interface)
                ),
            );
            plan.sync = Some(new);
        }
        Some(first) if first.role == role || first.role == SyncRole::Both => w.warn(
            pos,
            format!(
                "this line is not carried over: a {} daemon is started already (at {}), which IPVS refuses too",
                d.state, first.pos
            ),
        ),
        Some(first) if settings(first) == settings(&new) => {
            first.role = SyncRole::Both;
            w.warn(
                pos,
                format!(
                    "--start-daemon {} joins the line at {}: sync: has role both",
                    d.state, first.pos
                ),
            );
        }
        Some(first) => w.warn(
            pos,
            format!(
                "this line is not carried over: l4vs runs one sync daemon, with the settings of the line at {} (a master and a backup line with the same settings make role both)",
                first.pos
            ),
        ),
    }
    Ok(())
}

/// `--stop-daemon master|backup`: the role leaves the daemon planned so
/// far, as ipvsadm-restore would stop it; a role not started is a warning.
fn stop_daemon(pos: &Pos, state: &str, plan: &mut Plan, w: &mut Warnings) {
    let stopped = SyncRole::of_daemon_state(state).unwrap_or(SyncRole::Backup);
    let Some(left) = plan.sync.as_ref().and_then(|s| s.role.stopping(stopped)) else {
        w.warn(
            pos,
            format!("--stop-daemon {state} stops nothing: no {state} daemon is started above"),
        );
        return;
    };
    match left {
        Some(r) => {
            if let Some(s) = plan.sync.as_mut() {
                s.role = r;
            }
            w.warn(
                pos,
                format!("--stop-daemon {state}: sync: has role {}", r.as_str()),
            );
        }
        None => {
            plan.sync = None;
            w.warn(
                pos,
                format!("--stop-daemon {state}: no sync daemon is left to carry over"),
            );
        }
    }
}

/// The settings a daemon comes out with, the defaults filled in (the
/// maximum length is fitted to the port later, the same for both).
fn settings(s: &PlannedSync) -> (u8, Ipv4Addr, u16, u8, Option<u16>) {
    (
        s.syncid,
        s.group.unwrap_or(l4vs_wire::ipvs_sync::GROUP),
        s.port.unwrap_or(l4vs_wire::ipvs_sync::PORT),
        s.ttl.unwrap_or(1),
        s.max_len,
    )
}
