//! keepalived.conf's virtual servers as l4vs services.
//!
//! Keys and defaults are keepalived's own (keepalived/check/check_parser.c
//! for the keywords, check_data.c `alloc_vs`, `alloc_rs`,
//! `validate_check_config` for the defaults and corrections, core/
//! global_parser.c for `lvs_timeouts`):
//!
//! | keepalived                              | l4vs                                   |
//! |-----------------------------------------|----------------------------------------|
//! | `virtual_server IP PORT`                | a service `vip`, `port`                |
//! | `virtual_server fwmark N`               | a service `fwmark: N`                  |
//! | `virtual_server group NAME`             | one service per address and mark of the group |
//! | `protocol TCP \| UDP`                   | `protocol` (none: UDP, as keepalived)  |
//! | `lb_algo` / `lvs_sched`                 | `scheduler` (none: wlc, as keepalived) |
//! | `lb_kind` / `lvs_method` NAT, DR, TUN   | `forward` nat, dr, tunnel (none: NAT)  |
//! | `persistence_timeout [N]`               | `persistence.timeout` (no N: 360)      |
//! | `persistence_granularity MASK`          | `persistence.netmask`                  |
//! | `ops`                                   | `ops`                                  |
//! | `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`, `flag-1`, `flag-2` | `sched_flags` |
//! | `weight` (virtual server)               | the default weight of its reals        |
//! | `real_server IP [PORT]`                 | a real `address`, `port`               |
//! | `weight`, `lvs_method`                  | the real's `weight`, `forward`         |
//! | `uthreshold`, `lthreshold`              | `upper_threshold`, `lower_threshold`   |
//! | `lvs_timeouts tcp T tcpfin F udp U` (global_defs) | `timeouts` (`ipvsadm --set`) |
//! | `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `UDP_CHECK`, `DNS_CHECK`, `MISC_CHECK` and their settings, `inhibit_on_failure` | the service's `check` or each real's, `inhibit_on_failure` ([`checks`]) |
//! | `sorry_server IP [PORT]`, `quorum`, `hysteresis`, `quorum_up`, `quorum_down` | the service's `sorry_server` (with its forwarding method), `quorum`, `hysteresis`, `quorum_up`, `quorum_down` |
//! | `lvs_sync_daemon` (global_defs)          | `sync:` in both roles                   |
//! | the first `vrrp_instance` with a `virtual_router_id` | `vrrp:` ([`vrrp`])          |
//!
//! Everything else is a warning with its line: what [`checks`] and
//! [`vrrp`] cannot carry over (SMTP_CHECK and the other checkers, a
//! second checker or url; VRRPv2 authentication, tracking, unicast peers),
//! the reals' notification scripts, alerts, `sorry_server_inhibit` and
//! `sorry_server_lvs_method`, a second VRRP instance and sync groups,
//! BFD and static address blocks, and every other global_defs setting
//! (`vrrp_version 3` is taken silently; without it, the warning that
//! keepalived's peers speak VRRPv2).
//! keepalived's own corrections are made too, each with a warning: no
//! `protocol` makes a UDP service, `ops` on TCP is cleared, port 0 without
//! persistence makes the service persistent, a DR or tunnel real server's
//! port is the service's, a virtual server without real servers is left
//! out, and a duplicated real server is dropped.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use super::kaconf::{shown, Stmt};
use super::{error, sync_group, ImportError, Plan, PlannedService, PlannedSync, Pos, Warnings};
use crate::adm::DEFAULT_PERSISTENCE_S;
use crate::config::{self, MAX_WEIGHT};
use crate::table::{RealSpec, ServiceKey, ServiceSpec};
use checks::{Level, Settings};
use l4vs_dataplane::model::{mask_prefix_len, ForwardMethod, Persistence, Protocol, SchedulerKind};

mod checks;
mod vrrp;
pub(super) use vrrp::PlannedVrrp;

/// keepalived's largest persistence timeout and `lvs_timeouts` value
/// (LVS_MAX_TIMEOUT, 31 days).
const LVS_MAX_TIMEOUT: u32 = 86400 * 31;
/// The most addresses one `virtual_server_group` entry may expand to.
pub const MAX_GROUP_RANGE: u32 = 1024;

const NOTIFY: &str =
    "the import does not carry a real's notify commands yet: write notify_up/notify_down in the check block (the real is in L4VS_REAL_ADDRESS); l4vs sends no alerts, and logs each change of a real's health once";
const IPV4_ONLY: &str = "l4vs forwards IPv4 only so far";
const UNKNOWN: &str = "unknown keyword, which keepalived ignores too";

/// The services and timeouts of a keepalived.conf read by
/// [`super::kaconf::parse`].
///
/// # Errors
/// A statement whose meaning cannot be kept, with its line.
pub(super) fn plan(stmts: &[Stmt], w: &mut Warnings) -> Result<Plan, ImportError> {
    let mut groups: HashMap<&str, &Stmt> = HashMap::new();
    let mut used_groups: HashSet<&str> = HashSet::new();
    for s in stmts {
        match s.keyword() {
            "virtual_server_group" => {
                refuse_condition(s)?;
                let name = s
                    .words
                    .get(1)
                    .ok_or_else(|| error(&s.pos, "virtual_server_group needs a name"))?;
                if let Some(first) = groups.insert(name, s) {
                    return Err(error(
                        &s.pos,
                        format!(
                            "virtual_server_group {} is defined twice (first at {})",
                            shown(&s.words[1..2]),
                            first.pos
                        ),
                    ));
                }
            }
            "virtual_server" if s.words.get(1).is_some_and(|w| w == "group") => {
                if let Some(n) = s.words.get(2) {
                    used_groups.insert(n);
                }
            }
            _ => {}
        }
    }
    let mut plan = Plan::default();
    let mut keys: HashMap<ServiceKey, Pos> = HashMap::new();
    for s in stmts {
        match s.keyword() {
            "global_defs" => global_defs(s, &mut plan, w)?,
            "virtual_server" => {
                plan.service_statements += 1;
                virtual_server(s, &groups, &mut keys, &mut plan, w)?;
            }
            "virtual_server_group" => {
                if !used_groups.contains(s.words[1].as_str()) {
                    w.warn(
                        &s.pos,
                        format!("{} is not carried over: no virtual_server uses it", head(s)),
                    );
                }
            }
            "vrrp_instance" if plan.vrrp.is_none() => {
                plan.vrrp = vrrp::vrrp_instance(s, w)?;
            }
            kw => {
                let reason = match kw {
                    "vrrp_instance" => ": l4vs runs one VRRP instance (the first)",
                    "vrrp_sync_group" => ": l4vs runs one VRRP instance, which needs no sync group",
                    "vrrp_script" | "vrrp_track_process" | "vrrp_track_file" | "track_group" => {
                        ": l4vs tracks nothing yet"
                    }
                    "garp_group" => ": l4vs sends gratuitous ARPs as vrrp_instance's garp_master_repeat and garp_master_delay say",
                    "static_ipaddress" | "static_routes" | "static_rules" => {
                        ": the director's own addresses and next hop go in the l4vs config's addresses and gateway"
                    }
                    "SSL" => ": it gives SSL_GET a client certificate and CA, and l4vs's https checks send no certificate and verify none (as keepalived without it)",
                    "bfd_instance" => ": l4vs has no BFD",
                    _ => "",
                };
                w.warn(&s.pos, format!("{} is not carried over{reason}", head(s)));
            }
        }
    }
    // keepalived speaks VRRPv2 unless told otherwise; l4vs, VRRPv3.
    if let Some(v) = plan.vrrp.as_ref().filter(|v| !v.v3 && !plan.vrrp_v3) {
        w.warn(
            &v.pos,
            "l4vs speaks VRRPv3 (RFC 5798); this file's keepalived speaks VRRPv2 (keepalived's default): a keepalived peer of l4vs needs vrrp_version 3 in its global_defs",
        );
    }
    Ok(plan)
}

/// `lvs_sync_daemon INTERFACE [VRRP_INSTANCE] [id N] [maxlen L] [port P]
/// [ttl T] [group G]` (keepalived's global_defs, check_parser.c): l4vs's
/// `sync:` on the config's first port, in both roles, with a warning for
/// what changes.
fn lvs_sync_daemon(t: &Stmt, w: &mut Warnings) -> Result<PlannedSync, ImportError> {
    let iface = arg(t, 1, "an interface")?;
    let mut s = PlannedSync {
        pos: t.pos.clone(),
        what: "lvs_sync_daemon",
        role: config::SyncRole::Both,
        syncid: 0,
        max_len: None,
        port: None,
        ttl: None,
        group: None,
    };
    let mut instance = None;
    let mut rest = t.words[2..].iter();
    while let Some(word) = rest.next() {
        let mut value = |what: &str| {
            rest.next()
                .map(String::as_str)
                .ok_or_else(|| error(&t.pos, format!("lvs_sync_daemon: {word} needs {what}")))
        };
        match word.as_str() {
            "id" => s.syncid = number(t, value("a sync id")?, 0, 255)? as u8,
            "maxlen" => s.max_len = Some(number(t, value("a length")?, 1, 65507)? as u16),
            "port" => s.port = Some(number(t, value("a port")?, 1, 65535)? as u16),
            "ttl" => s.ttl = Some(number(t, value("a TTL")?, 1, 255)? as u8),
            "group" => {
                let g = value("a multicast group")?;
                let a = g
                    .parse::<Ipv4Addr>()
                    .ok()
                    .filter(Ipv4Addr::is_multicast)
                    .ok_or_else(|| {
                        error(
                            &t.pos,
                            format!(
                                "lvs_sync_daemon: group {} is not an IPv4 multicast group",
                                config::echo(g)
                            ),
                        )
                    })?;
                if let Some(a) = sync_group(&t.pos, a, "lvs_sync_daemon's group", w) {
                    s.group = Some(a);
                }
            }
            other if instance.is_none() => instance = Some(other.to_owned()),
            other => {
                return Err(error(
                    &t.pos,
                    format!("lvs_sync_daemon: unknown word {}", config::echo(other)),
                ))
            }
        }
    }
    let vrrp = instance.map_or(String::new(), |i| {
        format!(" (keepalived makes it master or backup as VRRP instance {i} is; l4vs runs both, and its VRRP instance decides who forwards)")
    });
    w.warn(
        &t.pos,
        format!(
            "lvs_sync_daemon is carried over as sync: with role both{vrrp}, on the config's first port instead of {}: check sync.interface",
            config::echo(iface)
        ),
    );
    Ok(s)
}

/// A top-level statement as a warning names it: its keyword and first
/// argument, `vrrp_instance VI_1`.
fn head(s: &Stmt) -> String {
    shown(&s.words[..s.words.len().min(2)])
}

/// `global_defs`: `lvs_timeouts` is carried over, every other setting is
/// a warning of its own.
fn global_defs(s: &Stmt, plan: &mut Plan, w: &mut Warnings) -> Result<(), ImportError> {
    let Some(block) = &s.block else {
        w.warn(&s.pos, "global_defs is not carried over");
        return Ok(());
    };
    for t in block {
        if t.keyword() == "lvs_timeouts" {
            refuse_condition(t)?;
            no_block(t)?;
            plan.timeouts.push((t.pos.clone(), lvs_timeouts(t)?));
            continue;
        }
        if t.keyword() == "vrrp_version" && t.words.get(1).is_some_and(|v| v == "3") {
            plan.vrrp_v3 = true;
            continue;
        }
        if t.keyword() == "lvs_sync_daemon" {
            refuse_condition(t)?;
            no_block(t)?;
            plan.sync = Some(lvs_sync_daemon(t, w)?);
            continue;
        }
        let reason = match t.keyword() {
            "lvs_flush" | "lvs_flush_onstop" => {
                ": l4vs's table holds what its config says, nothing else"
            }
            _ => "",
        };
        w.warn(
            &t.pos,
            format!(
                "{} is not carried over (global_defs){reason}",
                shown(&t.words[..1])
            ),
        );
    }
    Ok(())
}

/// `lvs_timeouts [tcp T] [tcpfin F] [udp U]`, as `ipvsadm --set T F U`
/// (0: unchanged).
fn lvs_timeouts(t: &Stmt) -> Result<[u32; 3], ImportError> {
    let mut out = [0; 3];
    let mut args = t.words[1..].iter();
    if t.words.len() < 3 {
        return Err(error(
            &t.pos,
            "lvs_timeouts needs at least one of tcp, tcpfin, udp with its value",
        ));
    }
    while let Some(opt) = args.next() {
        let i = match opt.as_str() {
            "tcp" => 0,
            "tcpfin" => 1,
            "udp" => 2,
            _ => {
                return Err(error(
                    &t.pos,
                    format!(
                        "unknown lvs_timeouts option {}: keepalived knows tcp, tcpfin and udp",
                        config::echo(opt)
                    ),
                ))
            }
        };
        let v = args.next().ok_or_else(|| {
            error(
                &t.pos,
                format!("lvs_timeouts {opt} needs a value in seconds"),
            )
        })?;
        out[i] = number(t, v, 0, LVS_MAX_TIMEOUT)?;
    }
    Ok(out)
}

/// What a `virtual_server` header names: its services.
#[derive(Debug, Clone)]
enum Target {
    Addr { vip: Ipv4Addr, port: u16, pos: Pos },
    Mark { mark: u32, pos: Pos },
}

impl Target {
    fn pos(&self) -> &Pos {
        match self {
            Target::Addr { pos, .. } | Target::Mark { pos, .. } => pos,
        }
    }
}

/// A `real_server` as written.
#[derive(Debug, Clone)]
struct RealDraft {
    pos: Pos,
    words: Vec<String>,
    addr: Ipv4Addr,
    /// 0: none written.
    port: u16,
    weight: Option<u32>,
    method: Option<ForwardMethod>,
    upper: u32,
    lower: u32,
    /// Its checker settings.
    settings: Settings,
    /// Its checkers l4vs carries over, in order.
    checkers: Vec<checks::Checker>,
}

/// A scheduler flag statement: which bit it sets, where, what it is.
#[derive(Debug, Clone)]
struct FlagStmt {
    pos: Pos,
    keyword: String,
    /// IP_VS_SVC_F_SCHED1 (the fallback flags) or SCHED2 (the port flags).
    bit: FlagBit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagBit {
    Fallback,
    Port,
}

/// One `virtual_server` block: its services, or a warning that says why
/// it is not carried over.
fn virtual_server(
    s: &Stmt,
    groups: &HashMap<&str, &Stmt>,
    keys: &mut HashMap<ServiceKey, Pos>,
    plan: &mut Plan,
    w: &mut Warnings,
) -> Result<(), ImportError> {
    refuse_condition(s)?;
    let ctx = format!("virtual_server {}", shown(&s.words[1..]));
    let args = &s.words[1..];
    let is_group = args.first().is_some_and(|a| a == "group");
    let targets = match args.first().map(String::as_str) {
        None => {
            return Err(error(
                &s.pos,
                "virtual_server needs an address and a port, `fwmark N` or `group NAME`",
            ))
        }
        Some("fwmark") => {
            let n = args
                .get(1)
                .ok_or_else(|| error(&s.pos, "virtual_server fwmark needs the mark"))?;
            extra_words(s, 3)?;
            vec![Target::Mark {
                mark: number(s, n, 0, u32::MAX)?,
                pos: s.pos.clone(),
            }]
        }
        Some("group") => {
            let name = args
                .get(1)
                .ok_or_else(|| error(&s.pos, "virtual_server group needs the group's name"))?;
            extra_words(s, 3)?;
            let g = groups.get(name.as_str()).ok_or_else(|| {
                error(
                    &s.pos,
                    format!("no virtual_server_group is called {}", config::echo(name)),
                )
            })?;
            let targets = group_targets(g, w)?;
            if targets.is_empty() {
                w.warn(
                    &s.pos,
                    format!("{ctx} is not carried over: its group has no IPv4 entry; {IPV4_ONLY}"),
                );
                return Ok(());
            }
            targets
        }
        Some(a) => {
            let Some(vip) = address(s, a)? else {
                w.warn(&s.pos, format!("{ctx} is not carried over: {IPV4_ONLY}"));
                return Ok(());
            };
            extra_words(s, 3)?;
            let port = args.get(1).map_or(Ok(0), |p| port(s, p))?;
            vec![Target::Addr {
                vip,
                port,
                pos: s.pos.clone(),
            }]
        }
    };
    let Some(block) = &s.block else {
        w.warn(
            &s.pos,
            format!("{ctx} is not carried over: it has no real servers, and keepalived leaves such a virtual_server out"),
        );
        return Ok(());
    };

    let mut sched: Option<(Pos, String)> = None;
    let mut method: Option<ForwardMethod> = None;
    let mut persistence_timeout: Option<u32> = None;
    let mut granularity: Option<u8> = None;
    let mut protocol: Option<(Pos, Protocol)> = None;
    let mut sctp: Option<Pos> = None;
    let mut ops: Option<Pos> = None;
    let mut flags: Vec<FlagStmt> = Vec::new();
    let mut vs_weight: u32 = 1;
    let mut sorry: Option<(Pos, Ipv4Addr, u16)> = None;
    let mut quorum: u32 = 1;
    let mut hysteresis: u32 = 0;
    let (mut quorum_up, mut quorum_down) = (None, None);
    let mut vs_checks = Settings::default();
    let mut reals: Vec<RealDraft> = Vec::new();
    let not_carried =
        |w: &mut Warnings, t: &Stmt, reason: &str| warn_not_carried(w, t, &ctx, reason);
    for t in block {
        refuse_condition(t)?;
        if vs_checks.read(t, Level::VirtualServer, &ctx, w)? {
            continue;
        }
        let kw = t.keyword();
        match kw {
            "lb_algo" | "lvs_sched" => {
                no_block(t)?;
                let name = arg(t, 1, "a scheduler name")?;
                if SchedulerKind::from_name(name).is_none() {
                    return Err(error(
                        &t.pos,
                        format!(
                            "unknown scheduler {} for {kw}: keepalived and l4vs know {}",
                            config::echo(name),
                            SchedulerKind::NAMES.join(" ")
                        ),
                    ));
                }
                extra_words(t, 2)?;
                sched = Some((t.pos.clone(), name.to_owned()));
            }
            "lb_kind" | "lvs_method" => method = Some(forward_method(t)?),
            "persistence_timeout" => {
                no_block(t)?;
                extra_words(t, 2)?;
                match t.words.get(1) {
                    // check_parser.c `pto_handler` reads 1 or more, and
                    // ignores the statement otherwise.
                    Some(v) if v == "0" => w.warn(
                        &t.pos,
                        format!("persistence_timeout 0 is not carried over ({ctx}): keepalived takes 1 to {LVS_MAX_TIMEOUT} and ignores it"),
                    ),
                    Some(v) => persistence_timeout = Some(number(t, v, 1, LVS_MAX_TIMEOUT)?),
                    None => persistence_timeout = Some(DEFAULT_PERSISTENCE_S),
                }
            }
            "persistence_granularity" => {
                no_block(t)?;
                extra_words(t, 2)?;
                granularity = Some(netmask(t, arg(t, 1, "a netmask")?)?);
                // As keepalived: granularity makes the service persistent.
                persistence_timeout.get_or_insert(DEFAULT_PERSISTENCE_S);
            }
            "protocol" => {
                no_block(t)?;
                extra_words(t, 2)?;
                let p = arg(t, 1, "TCP or UDP")?;
                match p.to_ascii_uppercase().as_str() {
                    "TCP" => protocol = Some((t.pos.clone(), Protocol::Tcp)),
                    "UDP" => protocol = Some((t.pos.clone(), Protocol::Udp)),
                    "SCTP" => sctp = Some(t.pos.clone()),
                    _ => {
                        return Err(error(
                            &t.pos,
                            format!(
                                "unknown protocol {}: keepalived knows TCP, UDP and SCTP, l4vs TCP and UDP",
                                config::echo(p)
                            ),
                        ))
                    }
                }
            }
            "ops" => {
                no_block(t)?;
                ops = Some(t.pos.clone());
            }
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                no_block(t)?;
                // keepalived sets the flag only when the scheduler named
                // so far is the flag's (`lbflags_handler`).
                let current = sched.as_ref().map(|(_, n)| n.as_str());
                if current == Some(&kw[..2]) {
                    let bit = if kw.ends_with("-port") {
                        FlagBit::Port
                    } else {
                        FlagBit::Fallback
                    };
                    flags.push(FlagStmt {
                        pos: t.pos.clone(),
                        keyword: kw.to_owned(),
                        bit,
                    });
                } else {
                    not_carried(
                        w,
                        t,
                        &format!("keepalived applies it only after `lb_algo {}`", &kw[..2]),
                    );
                }
            }
            "flag-1" | "flag-2" => {
                no_block(t)?;
                flags.push(FlagStmt {
                    pos: t.pos.clone(),
                    keyword: kw.to_owned(),
                    bit: if kw == "flag-1" {
                        FlagBit::Fallback
                    } else {
                        FlagBit::Port
                    },
                });
            }
            "flag-3" => not_carried(w, t, "no IPVS scheduler l4vs has uses a third flag"),
            "hashed" => not_carried(
                w,
                t,
                "IPVS sets it on every service itself; it changes nothing",
            ),
            "weight" => {
                no_block(t)?;
                extra_words(t, 2)?;
                vs_weight = number(t, arg(t, 1, "a weight")?, 1, MAX_WEIGHT)?;
            }
            "real_server" => {
                if let Some(r) = real_server(t, w)? {
                    reals.push(r);
                }
            }
            "ip_family" => match arg(t, 1, "inet or inet6")? {
                "inet" => {}
                "inet6" => {
                    w.warn(&s.pos, format!("{ctx} is not carried over: {IPV4_ONLY}"));
                    return Ok(());
                }
                other => {
                    return Err(error(
                        &t.pos,
                        format!(
                            "unknown address family {}: inet or inet6",
                            config::echo(other)
                        ),
                    ))
                }
            },
            "quorum" => quorum = number(t, arg(t, 1, "a weight")?, 1, u32::MAX)?,
            "hysteresis" => hysteresis = number(t, arg(t, 1, "a weight")?, 0, u32::MAX)?,
            "quorum_up" => {
                no_block(t)?;
                quorum_up = Some(checks::command(t, &ctx, w)?);
            }
            "quorum_down" => {
                no_block(t)?;
                quorum_down = Some(checks::command(t, &ctx, w)?);
            }
            "omega" | "smtp_alert" => not_carried(w, t, NOTIFY),
            "ha_suspend" => not_carried(
                w,
                t,
                "l4vs has no VRRP, so its checks are never suspended for a missing VIP",
            ),
            "sorry_server" => {
                let addr = arg(t, 1, "an address")?;
                let Some(a) = address(t, addr)? else {
                    not_carried(w, t, "l4vs balances IPv4 only");
                    continue;
                };
                let port = match t.words.get(2) {
                    Some(p) => u16::try_from(number(t, p, 0, 65535)?).unwrap_or(0),
                    None => 0,
                };
                sorry = Some((t.pos.clone(), a, port));
            }
            "sorry_server_inhibit" | "sorry_server_lvs_method" => {
                not_carried(w, t, "the sorry server is added when the quorum is lost, with the service's forwarding method")
            }
            "persistence_engine" => {
                not_carried(w, t, "l4vs has no persistence engines (such as sip) yet")
            }
            "snmp_name" => not_carried(w, t, "l4vs has no SNMP agent"),
            _ => not_carried(w, t, UNKNOWN),
        }
    }

    if let Some(p) = sctp {
        w.warn(
            &s.pos,
            format!("{ctx} is not carried over: its protocol is SCTP (line {}), and l4vs balances TCP and UDP only", p.line),
        );
        return Ok(());
    }
    if reals.is_empty() {
        w.warn(
            &s.pos,
            format!("{ctx} is not carried over: it has no real servers, and keepalived leaves such a virtual_server out"),
        );
        return Ok(());
    }
    let sched_name = match &sched {
        Some((_, n)) => n.clone(),
        None => {
            w.warn(
                &s.pos,
                format!("{ctx} has no lb_algo: keepalived's default, wlc, is used"),
            );
            "wlc".to_owned()
        }
    };
    let mut scheduler = SchedulerKind::from_name(&sched_name).unwrap_or(SchedulerKind::Wlc);
    for f in &flags {
        let name = match (scheduler, f.bit) {
            (SchedulerKind::Sh { .. }, FlagBit::Port) => "sh-port",
            (SchedulerKind::Sh { .. }, FlagBit::Fallback) => "sh-fallback",
            (SchedulerKind::Mh { .. }, FlagBit::Port) => "mh-port",
            (SchedulerKind::Mh { .. }, FlagBit::Fallback) => "mh-fallback",
            _ => {
                w.warn(
                    &f.pos,
                    format!(
                        "{} is not carried over ({ctx}): it means nothing to scheduler {sched_name}",
                        f.keyword
                    ),
                );
                continue;
            }
        };
        scheduler = scheduler.with_flag(name).unwrap_or(scheduler);
    }
    let has_addr = targets.iter().any(|t| matches!(t, Target::Addr { .. }));
    let protocol = match (&protocol, has_addr) {
        (Some((_, p)), true) => *p,
        (None, true) => {
            w.warn(
                &s.pos,
                format!(
                    "{ctx} has no protocol: keepalived makes it UDP (the kernel's default), and so does the import; write `protocol TCP` for TCP"
                ),
            );
            Protocol::Udp
        }
        (Some((pos, _)), false) => {
            w.warn(
                pos,
                format!("protocol is not carried over ({ctx}): a firewall-mark service takes every protocol the mark is given to, and keepalived ignores it too"),
            );
            Protocol::Tcp
        }
        (None, false) => Protocol::Tcp,
    };
    let ops = match ops {
        Some(p) if has_addr && protocol != Protocol::Udp => {
            w.warn(
                &p,
                format!("ops is not carried over ({ctx}): one-packet scheduling needs protocol UDP, and keepalived clears it too"),
            );
            false
        }
        Some(_) => true,
        None => false,
    };
    let mut persistence = persistence_timeout.map(|timeout| Persistence {
        timeout,
        netmask: granularity.unwrap_or(32),
    });
    if persistence.is_none()
        && targets
            .iter()
            .any(|t| matches!(t, Target::Addr { port: 0, .. }))
    {
        w.warn(
            &s.pos,
            format!(
                "{ctx}: port 0 (every port) without persistence_timeout: keepalived makes the service persistent ({DEFAULT_PERSISTENCE_S} s), and so does the import"
            ),
        );
        persistence = Some(Persistence {
            timeout: DEFAULT_PERSISTENCE_S,
            netmask: 32,
        });
    }
    let method = match method {
        Some(m) => m,
        None => {
            if reals.iter().any(|r| r.method.is_none()) {
                w.warn(
                    &s.pos,
                    format!("{ctx} has no lb_kind: keepalived's default, NAT, is used"),
                );
            }
            ForwardMethod::Nat
        }
    };
    // keepalived keeps the first of two real servers with one address
    // and port (`validate_check_config`).
    let mut kept: Vec<RealDraft> = Vec::new();
    for r in reals {
        if let Some(first) = kept.iter().find(|k| k.addr == r.addr && k.port == r.port) {
            w.warn(
                &r.pos,
                format!(
                    "real_server {} is not carried over: it repeats the one at {}, and keepalived keeps only the first",
                    shown(&r.words[1..]),
                    first.pos
                ),
            );
            continue;
        }
        kept.push(r);
    }

    // keepalived resolves each checker's settings once per real server.
    let resolved: Vec<Vec<checks::Resolved>> = kept
        .iter()
        .map(|r| {
            r.checkers
                .iter()
                .map(|c| checks::resolve(&vs_checks, &r.settings, c, r.addr, w))
                .collect()
        })
        .collect();
    let names: Vec<String> = kept
        .iter()
        .map(|r| format!("real_server {}", shown(&r.words[1..])))
        .collect();
    let mut carried = vec![false; kept.len()];
    let mut rs_vhost_used = vec![false; kept.len()];
    let mut vs_vhost_used = false;
    for target in &targets {
        let key = match *target {
            Target::Addr { vip, port, .. } => ServiceKey::Addr {
                protocol,
                vip: IpAddr::V4(vip),
                port,
            },
            Target::Mark { mark, .. } => ServiceKey::Fwmark(mark),
        };
        if let Some(first) = keys.get(&key) {
            return Err(error(
                target.pos(),
                format!("service {key} is defined twice (first at {first})"),
            ));
        }
        keys.insert(key, target.pos().clone());
        let mut out = Vec::new();
        let mut refs = Vec::new();
        for (i, r) in kept.iter().enumerate() {
            let m = r.method.unwrap_or(method);
            let port = real_port(target, r, m, is_group, w)?;
            refs.push(checks::RealRef {
                pos: &r.pos,
                name: names[i].clone(),
                written_port: r.port,
                port: match *target {
                    _ if port != 0 => port,
                    Target::Addr { port, .. } => port,
                    Target::Mark { .. } => 0,
                },
                checks: &resolved[i],
                inhibit: checks::inhibit(&vs_checks, &r.settings),
            });
            out.push((
                r.pos.clone(),
                RealSpec {
                    addr: IpAddr::V4(r.addr),
                    port,
                    weight: r.weight.unwrap_or(vs_weight),
                    method: m,
                    upper_threshold: r.upper,
                    lower_threshold: r.lower,
                },
            ));
        }
        // A firewall-mark service takes every kind of check.
        let only = matches!(target, Target::Addr { .. }).then_some(protocol);
        let sc = checks::service_check(&refs, only, w);
        for (i, c) in sc.carried.iter().enumerate() {
            let Some(c) = c else { continue };
            carried[i] = true;
            match resolved[i][*c].vhost_from() {
                Some(Level::RealServer) => rs_vhost_used[i] = true,
                Some(Level::VirtualServer) => vs_vhost_used = true,
                _ => {}
            }
        }
        plan.services.push(PlannedService {
            pos: target.pos().clone(),
            spec: ServiceSpec {
                key,
                name: None,
                scheduler,
                persistence,
                timeouts: None,
                ops,
            },
            // Keyed by the port the table gives the real (the service's
            // when written without one). A real without a check is not
            // checked: the service has none.
            real_checks: refs
                .iter()
                .zip(&kept)
                .zip(&sc.real_checks)
                .filter_map(|((r, k), c)| Some(((k.addr, r.port), Some(c.clone()?))))
                .collect(),
            reals: out,
            check: sc.check,
            inhibit_on_failure: sc.inhibit_on_failure,
            sorry: sorry.clone().map(|(pos, addr, port)| {
                (
                    pos,
                    RealSpec {
                        addr: IpAddr::V4(addr),
                        port,
                        weight: 1,
                        method,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    },
                )
            }),
            quorum,
            hysteresis,
            quorum_up: quorum_up.clone(),
            quorum_down: quorum_down.clone(),
        });
    }
    checks::warn_unused(
        &vs_checks,
        &ctx,
        carried.contains(&true),
        "no real server of it has a checker l4vs carries over",
        vs_vhost_used,
        w,
    );
    for (i, r) in kept.iter().enumerate() {
        checks::warn_unused(
            &r.settings,
            &names[i],
            carried[i],
            "it has no checker l4vs carries over",
            rs_vhost_used[i],
            w,
        );
    }
    Ok(())
}

/// The port a real server gets in `target`'s service, as keepalived
/// corrects it (`validate_check_config`): a NAT real keeps its port (none:
/// the service's); a DR or tunnel real gets the service's (the packet's
/// own for a firewall-mark service).
///
/// # Errors
/// A NAT real with a port in a firewall-mark service: IPVS rewrites the
/// port to it, l4vs keeps the packet's own.
fn real_port(
    target: &Target,
    r: &RealDraft,
    m: ForwardMethod,
    is_group: bool,
    w: &mut Warnings,
) -> Result<u16, ImportError> {
    let shown_real = || format!("real_server {}", shown(&r.words[1..]));
    match *target {
        Target::Addr { port, .. } => {
            if m == ForwardMethod::Nat || r.port == 0 || r.port == port {
                return Ok(if m == ForwardMethod::Nat { r.port } else { 0 });
            }
            let what = if is_group {
                "keepalived warns, and DR and tunnel keep the packet's port anyway"
            } else {
                "keepalived resets it to the virtual_server's, as DR and tunnel keep the packet's port"
            };
            w.warn(
                &r.pos,
                format!(
                    "the port of {} is not carried over: {what}",
                    shown_real()
                ),
            );
            Ok(0)
        }
        Target::Mark { .. } if r.port == 0 => Ok(0),
        Target::Mark { mark, .. } if m == ForwardMethod::Nat => Err(error(
            &r.pos,
            format!(
                "{}: a NAT real server of firewall-mark service {mark} with port {}: IPVS would rewrite \
                 each packet's port to it, but l4vs gives the real servers of a firewall-mark service \
                 the packet's own port; remove the port, or make a service per port",
                shown_real(),
                r.port
            ),
        )),
        Target::Mark { .. } => {
            w.warn(
                &r.pos,
                format!(
                    "the port of {} is not carried over: keepalived clears it, as the real server of a firewall-mark service gets the packet's own port",
                    shown_real()
                ),
            );
            Ok(0)
        }
    }
}

/// One `real_server IP [PORT] { ... }`; None (with a warning) when it is
/// IPv6.
fn real_server(t: &Stmt, w: &mut Warnings) -> Result<Option<RealDraft>, ImportError> {
    let a = t.words.get(1).ok_or_else(|| {
        error(
            &t.pos,
            "real_server without an address: write `real_server IP [PORT]`",
        )
    })?;
    let ctx = format!("real_server {}", shown(&t.words[1..]));
    let Some(addr) = address(t, a)? else {
        w.warn(&t.pos, format!("{ctx} is not carried over: {IPV4_ONLY}"));
        return Ok(None);
    };
    extra_words(t, 3)?;
    let port = t.words.get(2).map_or(Ok(0), |p| port(t, p))?;
    let mut r = RealDraft {
        pos: t.pos.clone(),
        words: t.words.clone(),
        addr,
        port,
        weight: None,
        method: None,
        upper: 0,
        lower: 0,
        settings: Settings::default(),
        checkers: Vec::new(),
    };
    for u in t.block.iter().flatten() {
        refuse_condition(u)?;
        if r.settings.read(u, Level::RealServer, &ctx, w)? {
            continue;
        }
        let kw = u.keyword();
        let mut not_carried = |reason: &str| warn_not_carried(w, u, &ctx, reason);
        match kw {
            "weight" => {
                no_block(u)?;
                extra_words(u, 2)?;
                r.weight = Some(number(u, arg(u, 1, "a weight")?, 0, MAX_WEIGHT)?);
            }
            "lvs_method" => r.method = Some(forward_method(u)?),
            "uthreshold" | "lthreshold" => {
                no_block(u)?;
                extra_words(u, 2)?;
                let v = number(u, arg(u, 1, "a number of connections")?, 0, u32::MAX)?;
                if kw == "uthreshold" {
                    r.upper = v;
                } else {
                    r.lower = v;
                }
            }
            "HTTP_GET" | "SSL_GET" | "TCP_CHECK" | "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
            | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                if let Some(c) = checks::checker(u, &ctx, w)? {
                    r.checkers.push(c);
                }
            }
            "track_file" => not_carried("l4vs has no FILE_CHECK or track_file yet"),
            "notify_up" | "notify_down" | "smtp_alert" => not_carried(NOTIFY),
            "snmp_name" => not_carried("l4vs has no SNMP agent"),
            _ => not_carried(UNKNOWN),
        }
    }
    Ok(Some(r))
}

/// The services of a `virtual_server_group`: one per address of each
/// address entry, one per mark; IPv6 entries are warnings.
fn group_targets(g: &Stmt, w: &mut Warnings) -> Result<Vec<Target>, ImportError> {
    let ctx = head(g);
    let entries = g.block.as_deref().unwrap_or_default();
    if entries.is_empty() {
        return Err(error(&g.pos, format!("{ctx} has no entries")));
    }
    let mut out = Vec::new();
    for e in entries {
        refuse_condition(e)?;
        no_block(e)?;
        if e.keyword() == "fwmark" {
            let mark = number(e, arg(e, 1, "the mark")?, 0, u32::MAX)?;
            extra_words(e, 3)?;
            match e.words.get(2).map(String::as_str) {
                None | Some("inet") => out.push(Target::Mark {
                    mark,
                    pos: e.pos.clone(),
                }),
                Some("inet6") => w.warn(
                    &e.pos,
                    format!("fwmark {mark} inet6 is not carried over ({ctx}): {IPV4_ONLY}"),
                ),
                Some(other) => {
                    return Err(error(
                        &e.pos,
                        format!(
                            "unknown address family {}: inet or inet6",
                            config::echo(other)
                        ),
                    ))
                }
            }
            continue;
        }
        extra_words(e, 2)?;
        let port = e.words.get(1).map_or(Ok(0), |p| port(e, p))?;
        let Some((start, end)) = address_range(&e.words[0]).map_err(|m| error(&e.pos, m))? else {
            w.warn(
                &e.pos,
                format!(
                    "{} is not carried over ({ctx}): {IPV4_ONLY}",
                    shown(&e.words)
                ),
            );
            continue;
        };
        for a in start..=end {
            out.push(Target::Addr {
                vip: Ipv4Addr::from_bits(a),
                port,
                pos: e.pos.clone(),
            });
        }
    }
    Ok(out)
}

/// A `virtual_server_group` address entry as the first and last address,
/// as keepalived reads it (`alloc_vsg_entry`): `A`, `A-N` (the last byte
/// runs to N), `A-B`, `A/LEN` (every address of the prefix); None for
/// IPv6.
///
/// # Errors
/// Not an address or range, an empty range, host bits set after `/`, or
/// more than [`MAX_GROUP_RANGE`] addresses.
pub(super) fn address_range(s: &str) -> Result<Option<(u32, u32)>, String> {
    if s.contains(':') {
        return Ok(None);
    }
    let bad = || {
        format!(
            "{} is not an IPv4 address, range (A-N, A-B) or prefix (A/LEN)",
            config::echo(s)
        )
    };
    let (start, end) = if let Some((a, len)) = s.split_once('/') {
        let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| (1..=32).contains(l))
            .ok_or_else(bad)?;
        let host = !l4vs_dataplane::model::prefix_mask(len);
        if a.to_bits() & host != 0 {
            return Err(format!(
                "{}: the address has bits set past the prefix length",
                config::echo(s)
            ));
        }
        (a.to_bits(), a.to_bits() | host)
    } else if let Some((a, end)) = s.split_once('-') {
        let a = a.parse::<Ipv4Addr>().map_err(|_| bad())?.to_bits();
        let backwards = || format!("{}: the range ends before it starts", config::echo(s));
        if end.contains('.') {
            let end = end.parse::<Ipv4Addr>().map_err(|_| bad())?.to_bits();
            if end < a {
                return Err(backwards());
            }
            (a, end)
        } else {
            let n: u8 = end.parse().map_err(|_| bad())?;
            if u32::from(n) <= a & 0xff {
                return Err(backwards());
            }
            (a, (a & !0xff) | u32::from(n))
        }
    } else {
        let a: Ipv4Addr = s.parse().map_err(|_| bad())?;
        (a.to_bits(), a.to_bits())
    };
    let count = u64::from(end - start) + 1;
    if count > u64::from(MAX_GROUP_RANGE) {
        return Err(format!(
            "{} is {count} addresses, each a service; the import expands at most {MAX_GROUP_RANGE} an entry",
            config::echo(s)
        ));
    }
    Ok(Some((start, end)))
}

/// `lb_kind` / `lvs_method`: NAT, DR or TUN (IP-IP; keepalived's
/// `type ipip` and `nocsum` are IP-IP's defaults).
fn forward_method(t: &Stmt) -> Result<ForwardMethod, ImportError> {
    no_block(t)?;
    let kw = t.keyword();
    let m = arg(t, 1, "NAT, DR or TUN")?;
    let method = match m {
        "NAT" => ForwardMethod::Nat,
        "DR" => ForwardMethod::DirectRouting,
        "TUN" => ForwardMethod::Tunnel,
        _ => {
            return Err(error(
                &t.pos,
                format!(
                    "unknown {kw} {}: keepalived knows NAT, DR and TUN (in capitals)",
                    config::echo(m)
                ),
            ))
        }
    };
    let mut rest = t.words[2..].iter().map(String::as_str);
    while let Some(opt) = rest.next() {
        match (method, opt) {
            (ForwardMethod::Tunnel, "nocsum") => {}
            (ForwardMethod::Tunnel, "type") => match rest.next() {
                Some("ipip") => {}
                Some(other) => {
                    return Err(error(
                        &t.pos,
                        format!(
                            "{kw} TUN type {}: l4vs tunnels are IP-IP only, so a real server expecting another encapsulation would not understand them",
                            config::echo(other)
                        ),
                    ))
                }
                None => return Err(error(&t.pos, format!("{kw} TUN type needs a tunnel type"))),
            },
            _ => {
                return Err(error(
                    &t.pos,
                    format!(
                        "{kw} {m} {}: l4vs takes no tunnel options but `type ipip` and `nocsum` (IP-IP without checksum)",
                        config::echo(opt)
                    ),
                ))
            }
        }
    }
    Ok(method)
}

/// `persistence_granularity`: a contiguous dotted netmask, as its prefix
/// length.
fn netmask(t: &Stmt, v: &str) -> Result<u8, ImportError> {
    match v.parse().ok().and_then(mask_prefix_len) {
        Some(len) => Ok(len),
        None => Err(error(
            &t.pos,
            format!(
                "persistence_granularity {}: l4vs takes a contiguous IPv4 netmask such as 255.255.255.0",
                config::echo(v)
            ),
        )),
    }
}

/// An address argument: IPv4, None for IPv6.
///
/// # Errors
/// Not an IP address.
fn address(t: &Stmt, a: &str) -> Result<Option<Ipv4Addr>, ImportError> {
    match a.parse::<IpAddr>() {
        Ok(IpAddr::V4(v)) => Ok(Some(v)),
        Ok(IpAddr::V6(_)) => Ok(None),
        Err(_) => Err(error(
            &t.pos,
            format!(
                "{} is not an IP address ({} needs one)",
                config::echo(a),
                t.keyword()
            ),
        )),
    }
}

/// A port argument, 0..=65535 (0: none).
fn port(t: &Stmt, p: &str) -> Result<u16, ImportError> {
    number(t, p, 0, u32::from(u16::MAX)).map(|n| n as u16)
}

/// A decimal number in `min..=max`.
fn number(t: &Stmt, v: &str, min: u32, max: u32) -> Result<u32, ImportError> {
    v.parse::<u32>()
        .ok()
        .filter(|n| v.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(n))
        .ok_or_else(|| {
            error(
                &t.pos,
                format!(
                    "{}: {} is not a number in {min}..={max}",
                    t.keyword(),
                    config::echo(v)
                ),
            )
        })
}

/// Warns that statement `t` of `ctx` (`virtual_server ...`,
/// `real_server ...`, a checker) is not carried over, and why.
pub(super) fn warn_not_carried(w: &mut Warnings, t: &Stmt, ctx: &str, reason: &str) {
    w.warn(
        &t.pos,
        format!(
            "{} is not carried over ({ctx}): {reason}",
            shown(&t.words[..1])
        ),
    );
}

/// The `i`th word of `t`, or an error that says what it should be.
fn arg<'a>(t: &'a Stmt, i: usize, what: &str) -> Result<&'a str, ImportError> {
    t.words
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| error(&t.pos, format!("{} needs {what}", t.keyword())))
}

/// Refuses words past the first `n`.
fn extra_words(t: &Stmt, n: usize) -> Result<(), ImportError> {
    match t.words.get(n) {
        None => Ok(()),
        Some(_) => Err(error(
            &t.pos,
            format!(
                "{}: unexpected {} after `{}`",
                t.keyword(),
                shown(&t.words[n..]),
                shown(&t.words[..n])
            ),
        )),
    }
}

/// Refuses a block after a keyword that takes none.
fn no_block(t: &Stmt) -> Result<(), ImportError> {
    match t.block {
        None => Ok(()),
        Some(_) => Err(error(
            &t.pos,
            format!("{} takes no {{ }} block", t.keyword()),
        )),
    }
}

/// Refuses an `@ID` line where it would be carried over.
fn refuse_condition(t: &Stmt) -> Result<(), ImportError> {
    match &t.condition {
        None => Ok(()),
        Some(id) => Err(error(
            &t.pos,
            format!(
                "this line applies only on the host whose config_id is {} (@{0}), which the import cannot know: \
                 write the lines as that host reads them",
                shown(std::slice::from_ref(id))
            ),
        )),
    }
}
