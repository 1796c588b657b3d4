//! `l4vs import`: an l4vs config from an ipvsadm-save file or a
//! keepalived.conf.
//!
//! Both front ends turn their file into a plan: the virtual services
//! and real servers as service-table operations ([`ServiceSpec`],
//! [`RealSpec`]), each with the line it came from, and the global
//! timeouts. The plan is then applied to an empty [`ServiceTable`] over
//! the director's network, so every rule the table and the config loader
//! hold is checked with the imported file's line, and
//! [`ServiceTable::to_config`] gives the config, which [`config::to_yaml`]
//! prints. The printed text is read back with [`config::parse`] before it
//! is handed out: what `import` prints, `l4vs check-config` accepts.
//!
//! # What is carried over, and what is not
//!
//! Nothing is dropped silently. A statement the import does not carry
//! over is a [`Warning`] with its file and line; a statement whose meaning
//! cannot be kept (a syntax error, a real server without an address, a
//! forwarding method l4vs does not know, a GUE tunnel) is an
//! [`ImportError`] with its file and line, and no config is printed.
//! Where keepalived itself corrects a config (no `protocol` makes a UDP
//! service, a DR real server's port is reset to the service's...), the
//! import does what keepalived does and says so in a warning.
//!
//! # The rest of the config
//!
//! Neither file says how l4vs reaches the network (EAL, workers, ports,
//! the director's addresses). With a base config ([`import`]'s `base`),
//! those come from it and its services are replaced. Without one, they are
//! placeholders that `l4vs check-config` accepts but that are not the
//! operator's director: one af_packet port on an interface called
//! `CHANGE_ME` (which does not exist, so `l4vs run` stops there), one
//! worker on core 1, and one made-up director address in the /24 of each
//! real server so that the reals are reachable. A comment at the top of
//! the output says so. Firewall-mark services need `firewall_marks`
//! classifier rules (keepalived left marking to iptables, whose rules are
//! not in its file): a mark without a rule gets a placeholder rule that
//! matches nothing (destination 192.0.2.1/32, TEST-NET-1) and a warning.
//!
//! Service names are derived from their keys, so they are stable and
//! unique: `tcp-203-0-113-10-80`, `udp-203-0-113-10-53`, `fwmark-1` (a
//! name takes `[A-Za-z0-9_-]` only, hence the dashes in the address).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config, FirewallMark};
use crate::table::{Command, RealSpec, ServiceKey, ServiceSpec, ServiceTable, TableError};

mod ipvsadm;
mod kaconf;
mod keepalived;
#[cfg(test)]
mod tests;

/// The kind of file [`import`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// ipvsadm commands, one a line, as `ipvsadm-save -n` (`ipvsadm -Sn`)
    /// prints them and `ipvsadm-restore` reads them.
    Ipvsadm,
    /// A keepalived.conf (keepalived.conf(5)); `include` lines are
    /// followed, relative to the including file.
    Keepalived,
}

impl Source {
    /// The name `l4vs import` takes: `ipvsadm` or `keepalived`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Ipvsadm => "ipvsadm",
            Source::Keepalived => "keepalived",
        }
    }
}

/// A place in an imported file: its name as given (or as an `include`
/// resolved it) and the 1-based line; line 0 means the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    /// The file's name.
    pub file: Arc<str>,
    /// 1-based line; 0 for the whole file.
    pub line: u32,
}

impl Pos {
    fn new(file: &Arc<str>, line: u32) -> Pos {
        Pos {
            file: Arc::clone(file),
            line,
        }
    }

    /// The whole of `file`.
    fn file(file: &str) -> Pos {
        Pos {
            file: Arc::from(file),
            line: 0,
        }
    }
}

/// `FILE:LINE`, or `FILE` for the whole file; a path too long to show
/// whole is cut ([`config::shown_path_text`]).
impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = config::shown_path_text(&self.file);
        if self.line == 0 {
            write!(f, "{file}")
        } else {
            write!(f, "{file}:{}", self.line)
        }
    }
}

/// Something of the imported file that the printed config does not
/// carry, or a correction keepalived would make too: `FILE:LINE: MESSAGE`,
/// e.g. `keepalived.conf:42: notification_email is not carried over
/// (global_defs)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub pos: Pos,
    /// What, for the operator.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Why nothing was imported: a statement whose meaning cannot be kept, or
/// a file that cannot be read. Displays as `FILE:LINE: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ImportError {
    /// Where.
    pub pos: Pos,
    /// What, for the operator.
    pub message: String,
}

fn error(pos: &Pos, message: impl Into<String>) -> ImportError {
    ImportError {
        pos: pos.clone(),
        message: message.into(),
    }
}

/// What [`import`] made.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The config.
    pub config: Config,
    /// It as YAML with a comment header: what `l4vs import` prints.
    pub yaml: String,
    /// What was not carried over, in file order.
    pub warnings: Vec<Warning>,
}

/// Warnings, each (place, text) once: a real server shared by the
/// services a `virtual_server_group` expands to is warned about once.
/// They are handed out by file (in the order the files were read) and
/// line.
#[derive(Debug, Default)]
struct Warnings {
    list: Vec<Warning>,
    /// Warnings that sum up the others, printed after them.
    summaries: Vec<Warning>,
    seen: HashSet<(Pos, String)>,
    /// The imported files in the order read.
    files: Vec<Arc<str>>,
}

impl Warnings {
    /// Notes that `file` is read now, for the order of [`Warnings::sorted`].
    fn read_file(&mut self, file: &Arc<str>) {
        if !self.files.contains(file) {
            self.files.push(Arc::clone(file));
        }
    }

    /// The warnings by file and line, warnings about other files (the
    /// base config) first; then the summaries, in the order made.
    fn sorted(mut self) -> Vec<Warning> {
        let files = self.files;
        self.list.sort_by_key(|w| {
            (
                files
                    .iter()
                    .position(|f| *f == w.pos.file)
                    .map_or(0, |i| i + 1),
                w.pos.line,
            )
        });
        self.list.append(&mut self.summaries);
        self.list
    }

    /// A warning that sums up the others: printed last.
    fn sum_up(&mut self, pos: &Pos, message: impl Into<String>) {
        self.summaries.push(Warning {
            pos: pos.clone(),
            message: message.into(),
        });
    }

    fn warn(&mut self, pos: &Pos, message: impl Into<String>) {
        let message = message.into();
        if self.seen.insert((pos.clone(), message.clone())) {
            self.list.push(Warning {
                pos: pos.clone(),
                message,
            });
        }
    }
}

/// A virtual service to create, with the line of each part.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedService {
    /// The statement that made it.
    pos: Pos,
    /// Its settings; the name is given later, from the key.
    spec: ServiceSpec,
    /// Its real servers, in order.
    reals: Vec<(Pos, RealSpec)>,
    /// Its health check (the table does not hold checks).
    check: Option<config::Check>,
    /// Its reals' own checks, by address and port.
    real_checks: std::collections::BTreeMap<(Ipv4Addr, u16), Option<config::Check>>,
    /// Its `inhibit_on_failure`.
    inhibit_on_failure: bool,
    /// Its sorry server, and the statement that named it.
    sorry: Option<(Pos, RealSpec)>,
    /// Its quorum (1 if not given) and hysteresis (0).
    quorum: u32,
    hysteresis: u32,
    /// Its `quorum_up` and `quorum_down` commands.
    quorum_up: Option<String>,
    quorum_down: Option<String>,
}

/// What a front end read from its file.
#[derive(Debug, Default)]
struct Plan {
    services: Vec<PlannedService>,
    /// Statements that define a service (`virtual_server`, `-A`), carried
    /// over or not.
    service_statements: usize,
    /// `--set` / `lvs_timeouts` (ESTABLISHED, FIN_WAIT, UDP; 0 keeps one),
    /// in order.
    timeouts: Vec<(Pos, [u32; 3])>,
    /// keepalived's `lvs_sync_daemon`, if any.
    sync: Option<PlannedSync>,
    /// keepalived's first `vrrp_instance`, if any.
    vrrp: Option<keepalived::PlannedVrrp>,
    /// global_defs says `vrrp_version 3`.
    vrrp_v3: bool,
}

/// A sync daemon to run: the settings of keepalived's `lvs_sync_daemon`
/// or of ipvsadm's `--start-daemon` lines that l4vs takes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedSync {
    /// The statement.
    pos: Pos,
    /// What the statement is, for messages: `lvs_sync_daemon`,
    /// `--start-daemon`.
    what: &'static str,
    role: config::SyncRole,
    syncid: u8,
    max_len: Option<u16>,
    port: Option<u16>,
    ttl: Option<u8>,
    group: Option<Ipv4Addr>,
}

/// A sync daemon's multicast group as l4vs takes it: one in the local
/// network control block (224.0.0.0/24) as it is; another is not carried
/// over, with a warning that names it (`named`, then the group), and the
/// default is used (None).
fn sync_group(pos: &Pos, group: Ipv4Addr, named: &str, w: &mut Warnings) -> Option<Ipv4Addr> {
    if l4vs_wire::ipv4::is_local_network_control(group) {
        return Some(group);
    }
    w.warn(
        pos,
        format!("{named} {group} is not carried over: l4vs takes sync messages on the local network control block (224.0.0.0/24) only; the default {} is used", l4vs_wire::ipvs_sync::GROUP),
    );
    None
}

/// Reads `file` as `source` and makes an l4vs config of it: the services
/// of `file`, everything else from the config at `base` (whose services
/// are dropped, with a warning) or placeholders (see the module doc).
///
/// # Errors
/// `file` or `base` cannot be read (they are read as [`config::load`]
/// reads a config: regular files of at most [`config::MAX_CONFIG_BYTES`],
/// UTF-8); `base` is not a valid config; or a statement of `file` whose
/// meaning cannot be kept, with its line.
pub fn import(source: Source, file: &Path, base: Option<&Path>) -> Result<Imported, ImportError> {
    // The path itself: keepalived's includes are found from it. Messages
    // cut a long one where a position is shown ([`Pos`]).
    let name = file.display().to_string();
    // Read as a config is.
    let text = config::read_config_text(file, "the file to import")
        .map_err(|m| error(&Pos::file(&name), m))?;
    let base = match base {
        Some(p) => {
            // The config error's own place, said once: `FILE:LINE: base
            // config: KEY: what`.
            let cfg = config::load(p).map_err(|e| ImportError {
                pos: Pos::new(&Arc::from(e.file.as_str()), e.line),
                message: if e.key.is_empty() {
                    format!("base config: {}", e.message)
                } else {
                    format!("base config: {}: {}", e.key, e.message)
                },
            })?;
            Some((cfg, config::shown_path(p)))
        }
        None => None,
    };
    import_text(
        source,
        &text,
        &name,
        base.as_ref().map(|(c, n)| (c, n.as_str())),
    )
}

/// [`import`] of `text`, read from a file called `file_name` (keepalived's
/// `include` lines are resolved relative to its directory); `base` is a
/// config and its file name. A byte-order mark at the start of the text
/// is skipped, as the config's YAML reader skips one (an editor may write
/// it; keepalived would take it as part of the first keyword).
///
/// # Errors
/// As [`import`].
pub fn import_text(
    source: Source,
    text: &str,
    file_name: &str,
    base: Option<(&Config, &str)>,
) -> Result<Imported, ImportError> {
    let text = without_bom(text);
    let file: Arc<str> = Arc::from(file_name);
    let mut warnings = Warnings::default();
    warnings.read_file(&file);
    let plan = match source {
        Source::Ipvsadm => ipvsadm::plan(text, &file, &mut warnings)?,
        Source::Keepalived => {
            let stmts = kaconf::parse(text, &file, &mut warnings)?;
            keepalived::plan(&stmts, &mut warnings)?
        }
    };
    let header = Header {
        source,
        file: file_name,
        base: base.map(|(_, n)| n),
    };
    let (config, yaml) = finish(plan, base, &header, &mut warnings)?;
    Ok(Imported {
        config,
        yaml,
        warnings: warnings.sorted(),
    })
}

/// `text` without a UTF-8 byte-order mark (U+FEFF) at its start.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The destination of a placeholder `firewall_marks` rule: TEST-NET-1
/// (RFC 5737), which no real traffic is addressed to.
pub const PLACEHOLDER_MARK_DESTINATION: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The kernel interface name of the placeholder port.
pub const PLACEHOLDER_IFACE: &str = "CHANGE_ME";

/// A service's name from its key: `tcp-203-0-113-10-80`, `fwmark-1`.
pub fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => {
            let vip = vip.to_string().replace(['.', ':'], "-");
            format!("{}-{vip}-{port}", protocol.as_str())
        }
        ServiceKey::Fwmark(m) => format!("fwmark-{m}"),
    }
}

/// What the output's header comment says.
struct Header<'a> {
    source: Source,
    file: &'a str,
    base: Option<&'a str>,
}

/// Applies `plan` to a table over `base`'s network (or the placeholder
/// one), and prints the result.
fn finish(
    plan: Plan,
    base: Option<(&Config, &str)>,
    header: &Header<'_>,
    warnings: &mut Warnings,
) -> Result<(Config, String), ImportError> {
    let file_pos = Pos::file(header.file);
    let base_cfg = match base {
        Some((cfg, name)) => {
            if !cfg.services.is_empty() {
                warnings.warn(
                    &Pos::file(name),
                    format!(
                        "the base config's {} service(s) are not carried over: the imported ones replace them",
                        cfg.services.len()
                    ),
                );
            }
            Config {
                services: Vec::new(),
                ..cfg.clone()
            }
        }
        None => {
            warnings.warn(
                &file_pos,
                "without --base, eal, workers, ports and addresses are placeholders (see the comment at \
                 the top of the output): edit them, or import again with --base YOUR.yaml",
            );
            skeleton(&plan).map_err(|m| error(&file_pos, m))?
        }
    };
    let mut table = ServiceTable::from_config(&base_cfg)
        .map_err(|(key, e)| error(&file_pos, format!("{key}: {e}")))?;
    for (pos, [tcp, tcp_fin, udp]) in &plan.timeouts {
        table
            .apply(Command::SetTimeouts {
                tcp: *tcp,
                tcp_fin: *tcp_fin,
                udp: *udp,
            })
            .map_err(|e| error(pos, e.to_string()))?;
    }
    if plan.services.is_empty() {
        // Every service left out has a warning at its line.
        warnings.sum_up(
            &file_pos,
            if plan.service_statements > 0 {
                "no virtual service is carried over (the warnings above say why for each one left out)"
            } else {
                "no virtual service is carried over: the file defines none"
            },
        );
    }
    let where_base = base.map(|(_, n)| n);
    for s in &plan.services {
        let mut spec = s.spec.clone();
        spec.name = Some(service_name(&spec.key));
        table
            .apply(Command::AddService(spec.clone()))
            .map_err(|e| error(&s.pos, table_message(&e, where_base)))?;
        for (pos, r) in &s.reals {
            table
                .apply(Command::AddReal(spec.key, *r))
                .map_err(|e| error(pos, table_message(&e, where_base)))?;
        }
        if s.sorry.is_some() || s.quorum != 1 || s.hysteresis != 0 {
            let pos = s.sorry.as_ref().map_or(&s.pos, |(p, _)| p);
            table
                .apply(Command::SetQuorum {
                    service: spec.key,
                    sorry: s.sorry.as_ref().map(|(_, r)| *r),
                    quorum: s.quorum,
                    hysteresis: s.hysteresis,
                })
                .map_err(|e| error(pos, table_message(&e, where_base)))?;
        }
    }
    let mut cfg = table.to_config(&base_cfg);
    if let Some(s) = &plan.sync {
        // The daemon runs on the config's first port, from its first
        // address (the placeholder's without --base), or on the base's
        // sync port, whose l4vs keys (the key, the resync period,
        // persist_mode, sync_ports) it keeps.
        let kept = base.and_then(|(b, _)| b.sync.clone());
        let port = kept.as_ref().map_or(0, |k| k.port);
        let source = config::first_address(&cfg.addresses, port);
        // A message fills at most the port's MTU less the IP and UDP
        // headers; a sync message is at least 128 bytes (config rule).
        let most = cfg.ports[port].mtu.unwrap_or(1500).saturating_sub(28);
        match source {
            Some(_) if most < 128 => warnings.warn(
                &s.pos,
                format!(
                    "{} is not carried over: port {}'s MTU leaves {most} bytes for a sync message, less than the 128 a message needs",
                    s.what, cfg.ports[port].name
                ),
            ),
            Some(source) => {
                let max_len = s.max_len.map_or(most, |m| m.clamp(128, most));
                if let Some(m) = s.max_len.filter(|m| *m != max_len) {
                    warnings.warn(
                        &s.pos,
                        format!(
                            "{}'s maximum message length {m} is carried over as {max_len}: sync messages are 128 bytes to the port's MTU less 28",
                            s.what
                        ),
                    );
                }
                cfg.sync = Some(config::Sync {
                    role: s.role,
                    syncid: s.syncid,
                    port,
                    source,
                    group: s.group.unwrap_or(l4vs_wire::ipvs_sync::GROUP),
                    udp_port: s.port.unwrap_or(l4vs_wire::ipvs_sync::PORT),
                    ttl: s.ttl.unwrap_or(1),
                    max_len,
                    resync_period: kept
                        .as_ref()
                        .map_or(Some(std::time::Duration::from_secs(30)), |k| {
                            k.resync_period
                        }),
                    auth: kept.as_ref().and_then(|k| k.auth.clone()),
                    persist_mode: kept.as_ref().is_some_and(|k| k.persist_mode),
                    sync_ports: kept.as_ref().map_or(1, |k| k.sync_ports),
                });
                if let Some((_, name)) = base.filter(|_| kept.is_some()) {
                    warnings.warn(
                        &s.pos,
                        format!("{}'s settings replace those of {name}'s sync: block (its port, auth_key, resync_period, persist_mode and sync_ports are kept)", s.what),
                    );
                }
            }
            None => warnings.warn(
                &s.pos,
                format!(
                    "{} is not carried over: port {} has no address to send the messages from",
                    s.what, cfg.ports[port].name
                ),
            ),
        }
    }
    if let Some(v) = &plan.vrrp {
        // The instance runs on the config's first port, from its first
        // address, as the sync daemon; or on the base's vrrp port.
        let kept = base.and_then(|(b, name)| b.vrrp.as_ref().map(|k| (k.port, name)));
        if let Some((_, name)) = kept {
            warnings.warn(
                &v.pos,
                format!("the vrrp_instance replaces {name}'s vrrp: block (on its port)"),
            );
        }
        let port = kept.map_or(0, |(p, _)| p);
        let source = config::first_address(&cfg.addresses, port);
        let mut addresses = Vec::new();
        for (pos, a) in &v.addresses {
            if cfg.addresses.iter().any(|own| own.address == *a) {
                warnings.warn(pos, format!("{a} is not carried over: it is one of the director's own addresses in the l4vs config, which each director answers for itself"));
            } else {
                addresses.push(*a);
            }
        }
        match source {
            Some(source) if !addresses.is_empty() => {
                cfg.vrrp = Some(config::Vrrp {
                    name: v.name.clone().unwrap_or_else(|| format!("VI_{}", v.vrid)),
                    port,
                    source,
                    vrid: v.vrid,
                    priority: v.priority,
                    advert_int_cs: (v.advert_int_ms / 10) as u16,
                    preempt: v.preempt,
                    preempt_delay: std::time::Duration::from_millis(v.preempt_delay_ms),
                    addresses,
                    garp_repeat: v.garp_repeat.unwrap_or(5),
                    garp_delay: std::time::Duration::from_millis(v.garp_delay_ms.unwrap_or(5000)),
                    checksum_as_v2: false,
                    notify_master: v.notify_master.clone(),
                    notify_backup: v.notify_backup.clone(),
                    notify_stop: v.notify_stop.clone(),
                    notify: v.notify.clone(),
                });
            }
            Some(_) => warnings.warn(
                &v.pos,
                "the VRRP instance is not carried over: it has no virtual address l4vs can take",
            ),
            None => warnings.warn(
                &v.pos,
                format!(
                    "the VRRP instance is not carried over: port {} has no address to advertise from",
                    cfg.ports[port].name
                ),
            ),
        }
    }
    // The table holds no checks: they go on the config's services.
    for s in &plan.services {
        let name = service_name(&s.spec.key);
        if let Some(out) = cfg
            .services
            .iter_mut()
            .find(|c| c.name.as_deref() == Some(name.as_str()))
        {
            out.check.clone_from(&s.check);
            out.real_checks.clone_from(&s.real_checks);
            out.inhibit_on_failure = s.inhibit_on_failure;
            out.quorum_up.clone_from(&s.quorum_up);
            out.quorum_down.clone_from(&s.quorum_down);
        }
    }
    let mut placeholder_marks = Vec::new();
    for s in &plan.services {
        let ServiceKey::Fwmark(mark) = s.spec.key else {
            continue;
        };
        if cfg.firewall_marks.iter().any(|r| r.mark == mark) {
            continue;
        }
        warnings.warn(
            &s.pos,
            format!(
                "firewall mark {mark}: the rules that marked packets (iptables, nftables) are not in this file; \
                 the output has a placeholder firewall_marks rule that matches nothing: write the real one"
            ),
        );
        placeholder_marks.push(mark);
        cfg.firewall_marks.push(FirewallMark {
            mark,
            destination: PLACEHOLDER_MARK_DESTINATION,
            prefix_len: 32,
            protocol: None,
            ports: Vec::new(),
        });
    }
    let yaml = annotate(&config::to_yaml(&cfg), header, &placeholder_marks);
    // What is printed must load: a failure here is a bug of the import,
    // not of the file, but it is reported rather than printed.
    config::parse(&yaml, "the imported config").map_err(|e| {
        error(
            &file_pos,
            format!("the config made of this file does not load (a bug of l4vs import): {e}"),
        )
    })?;
    Ok((cfg, yaml))
}

/// A table error as the import reports it: the reachability rules name the
/// base config, whose addresses they are checked against.
fn table_message(e: &TableError, base: Option<&str>) -> String {
    match (e, base) {
        (
            TableError::NotOnLink(_) | TableError::NoRoute(_) | TableError::RealIsDirector(_),
            Some(b),
        ) => {
            format!("{e} (in the base config {b})")
        }
        (TableError::ServiceExists, _) => "this service is defined twice".to_owned(),
        (TableError::RealExists, _) => {
            "this real server is defined twice in its service (same address and port)".to_owned()
        }
        _ => e.to_string(),
    }
}

/// The placeholder config around the imported services: one af_packet
/// port on a kernel interface that does not exist, one worker, and a
/// director address in the /24 of each real server (the highest host
/// address below .255 that no VIP, real server or VRRP address uses), so that every
/// real is on-link.
fn skeleton(plan: &Plan) -> Result<Config, String> {
    let mut used: HashSet<Ipv4Addr> = HashSet::new();
    let mut reals: Vec<Ipv4Addr> = Vec::new();
    for s in &plan.services {
        if let ServiceKey::Addr {
            vip: IpAddr::V4(v), ..
        } = s.spec.key
        {
            used.insert(v);
        }
        for (_, r) in &s.reals {
            if let IpAddr::V4(a) = r.addr {
                used.insert(a);
                reals.push(a);
            }
        }
    }
    // The VRRP instance's addresses move between the directors: not the
    // director's own.
    if let Some(v) = &plan.vrrp {
        used.extend(v.addresses.iter().map(|(_, a)| *a));
    }
    let mut addresses: Vec<Ipv4Addr> = Vec::new();
    for a in reals {
        let net = a.to_bits() & 0xffff_ff00;
        if addresses.iter().any(|d| d.to_bits() & 0xffff_ff00 == net) {
            continue;
        }
        let Some(host) = (1..=254u32)
            .rev()
            .map(|h| Ipv4Addr::from_bits(net | h))
            .find(|d| !used.contains(d))
        else {
            return Err(format!(
                "every address of {}/24 is a VIP or a real server, so the placeholder config has no director address for it: import again with --base",
                Ipv4Addr::from_bits(net)
            ));
        };
        addresses.push(host);
    }
    let mut text = format!(
        "workers:\n  cores: [1]\nports:\n  - name: lan\n    device: \"net_af_packet0,iface={PLACEHOLDER_IFACE}\"\naddresses:\n"
    );
    for a in &addresses {
        text.push_str(&format!("  - {{ port: lan, address: {a}/24 }}\n"));
    }
    if addresses.is_empty() {
        text = text.replace("addresses:\n", "addresses: []\n");
    }
    config::parse(&text, "the placeholder config").map_err(|e| e.to_string())
}

/// `yaml` with the header comment, and a comment before each placeholder
/// part.
fn annotate(yaml: &str, h: &Header<'_>, placeholder_marks: &[u32]) -> String {
    let command = match h.base {
        Some(b) => format!("l4vs import {} {} --base {}", h.source.as_str(), h.file, b),
        None => format!("l4vs import {} {}", h.source.as_str(), h.file),
    };
    let (file, _) = config::clip(h.file, 200);
    let mut out = format!(
        "# Made by `{}`.\n\
         # The services come from {file};\n\
         # what it had that l4vs does not carry over was listed on stderr\n\
         # with its line. `l4vs check-config` prints this with every default\n\
         # filled in.\n",
        config::clip(&command, 400).0
    );
    match h.base {
        Some(b) => out.push_str(&format!(
            "# Everything else (but timeouts the file sets) comes from\n# {}.\n",
            config::clip(b, 200).0
        )),
        None => out.push_str(
            "#\n\
             # PLACEHOLDERS: the file does not say how l4vs reaches the network, so\n\
             # eal, workers, ports and addresses below are placeholders that pass\n\
             # `l4vs check-config` but are not your director. Set the port's device\n\
             # (iface=CHANGE_ME does not exist, so `l4vs run` stops there), the\n\
             # worker cores and EAL arguments, and the director's own addresses:\n\
             # each address here is made up, one in the /24 of each real server so\n\
             # that the reals are reachable; add a gateway for reals behind a\n\
             # router. Or import again with `--base YOUR.yaml` to take all of\n\
             # these from an l4vs config.\n",
        ),
    }
    let mut marks_noted = false;
    for line in yaml.lines() {
        if line.starts_with("firewall_marks:") && !placeholder_marks.is_empty() && !marks_noted {
            marks_noted = true;
            let list: Vec<String> = placeholder_marks.iter().map(u32::to_string).collect();
            out.push_str(&format!(
                "# PLACEHOLDER rules for mark(s) {}: {PLACEHOLDER_MARK_DESTINATION}/32 matches nothing.\n\
                 # Write the destination, protocol and ports the iptables rules marked.\n",
                list.join(", ")
            ));
        }
        if line.starts_with("services:") {
            out.push_str(&format!("# Imported from {file}.\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
