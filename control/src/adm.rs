//! `l4vsadm`: ipvsadm's command line (ipvsadm(8), 1.31) for a running
//! l4vs, over its admin socket ([`crate::admin`]).
//!
//! The arguments are parsed by clap into one [`Action`]: a table operation
//! ([`Command`], as `ipvsadm -A -E -D -a -e -d -C -Z` take them) or a
//! listing. Listings are printed here, as ipvsadm prints them
//! (ipvsadm.c `print_title`, `print_service_entry`): scripts that read
//! `ipvsadm -Ln` read `l4vsadm -Ln`.
//!
//! The formats follow ipvsadm 1.31's source (ipvsadm.c `print_title`,
//! `print_service_entry`, `list_all`, `print_conn`; the spec written from
//! it for this project is in the issue notes). Done: the commands above,
//! `--set`, the listings `-L`/`-l` (with `-n`, `-c`, `--stats`, `--rate`,
//! `--exact`, `--thresholds`, `--persistent-conn`, `--timeout`,
//! `--daemon`), `-S`, `-R`, and `--yaml` (an l4vs addition: the running
//! table as a config). Without `-n` a listing names hosts and ports as
//! ipvsadm's `addrport_to_anyname` does ([`Names`]); `-t`, `-u`, `-r`
//! take names as its `parse_service` does (no port: port 0). Numbers are
//! refused in ipvsadm's words, with the value (``illegal weight
//! specified: `x` ``); `-w` takes up
//! to 2^31-1 as the kernel and l4vs's config do (ipvsadm 65535), so that
//! `-R` restores every weight `-S` writes.
//!
//! Not ipvsadm's words: what clap refuses before l4vsadm sees it (an
//! unknown option, a missing value, two commands) is said in clap's words,
//! with status 2 (ipvsadm: 2, or 255 for an unknown option).
//!
//! Deliberate differences: options may come in any order (ipvsadm wants
//! the command first); `-R` applies all its lines or none (ipvsadm goes
//! on past a refused line); `-S` also saves `-x`/`-y` thresholds (ipvsadm
//! 1.31 drops them); `-S` always writes numbers, as `-Sn` (ipvsadm
//! writes names without `-n`), so that `-R` restores it without lookups.

use crate::admin::{ConnEntry, Request};
use crate::printable::{clap_message, try_parse_plain};
use crate::table::{Command, RealReport, RealSpec, ServiceKey, ServiceReport, ServiceSpec};
use clap::{ArgGroup, Parser};
use l4vs_dataplane::model::{mask_prefix_len, ForwardMethod, Persistence, Protocol, SchedulerKind};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

pub use crate::config::DEFAULT_PERSISTENCE_S;
use crate::config::{echo, echo_unquoted, MAX_TIMEOUT_S, MAX_WEIGHT};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "l4vsadm",
    version,
    disable_version_flag = true,
    about = "Administer a running l4vs as ipvsadm administers IPVS",
    group(ArgGroup::new("command").required(true).multiple(false).args([
        "add_service", "edit_service", "delete_service", "clear", "add_server",
        "edit_server", "delete_server", "list", "list_l", "zero", "save", "restore", "set",
        "yaml", "start_daemon", "stop_daemon",
    ])),
    group(ArgGroup::new("service").multiple(false).args(["tcp_service", "udp_service", "fwmark_service"])),
    group(ArgGroup::new("method").multiple(false).args(["gatewaying", "ipip", "masquerading"])),
)]
pub struct Cli {
    /// Print the version (ipvsadm's -v; -V as well).
    #[arg(short = 'v', short_alias = 'V', long = "version", action = clap::ArgAction::Version)]
    version: (),
    /// Add a virtual service.
    #[arg(short = 'A', long = "add-service")]
    add_service: bool,
    /// Edit a virtual service.
    #[arg(short = 'E', long = "edit-service")]
    edit_service: bool,
    /// Delete a virtual service, with its real servers.
    #[arg(short = 'D', long = "delete-service")]
    delete_service: bool,
    /// Clear the whole table.
    #[arg(short = 'C', long = "clear")]
    clear: bool,
    /// Add a real server to a virtual service.
    #[arg(short = 'a', long = "add-server")]
    add_server: bool,
    /// Edit a real server.
    #[arg(short = 'e', long = "edit-server")]
    edit_server: bool,
    /// Delete a real server.
    #[arg(short = 'd', long = "delete-server")]
    delete_server: bool,
    /// List the table (all services, or the one named).
    #[arg(short = 'L', long = "list")]
    list: bool,
    /// List the table (as -L).
    #[arg(short = 'l')]
    list_l: bool,
    /// Zero the counters of a service, or of all.
    #[arg(short = 'Z', long = "zero")]
    zero: bool,
    /// Print the table as ipvsadm commands (ipvsadm-save).
    #[arg(short = 'S', long = "save")]
    save: bool,
    /// Read ipvsadm commands from stdin and apply them all, or none.
    #[arg(short = 'R', long = "restore")]
    restore: bool,
    /// Print the running table as an l4vs config file (YAML) that the
    /// loader takes back (an l4vs addition to ipvsadm's commands).
    #[arg(long = "yaml")]
    yaml: bool,
    /// Start a connection sync daemon: master or backup (until
    /// --stop-daemon or a restart; the config's `sync:` is what a start
    /// runs).
    #[arg(long = "start-daemon", value_name = "state")]
    start_daemon: Option<String>,
    /// Stop a connection sync daemon: master or backup.
    #[arg(long = "stop-daemon", value_name = "state")]
    stop_daemon: Option<String>,
    /// The port the sync daemon runs on (default eth0, as ipvsadm's).
    #[arg(long = "mcast-interface", value_name = "interface")]
    mcast_interface: Option<String>,
    /// The sync daemon's syncid (default 0: a backup takes every one).
    #[arg(long = "syncid", value_name = "sid")]
    syncid: Option<u8>,
    /// The sync daemon's multicast group (default 224.0.0.81).
    #[arg(long = "mcast-group", value_name = "address")]
    mcast_group: Option<String>,
    /// The sync daemon's UDP port (default 8848).
    #[arg(long = "mcast-port", value_name = "port")]
    mcast_port: Option<u16>,
    /// The sync messages' TTL (default 1).
    #[arg(long = "mcast-ttl", value_name = "ttl")]
    mcast_ttl: Option<u8>,
    /// The longest sync message in bytes (default the port's MTU - 28).
    #[arg(long = "sync-maxlen", value_name = "length")]
    sync_maxlen: Option<u16>,
    /// Set the TCP, TCP FIN_WAIT and UDP timeouts, seconds (0: unchanged).
    #[arg(long = "set", num_args = 3, value_names = ["tcp", "tcpfin", "udp"])]
    set: Option<Vec<u32>>,

    /// A TCP service: HOST[:PORT] (addresses or names; no port: port 0).
    #[arg(short = 't', long = "tcp-service", value_name = "service-address")]
    tcp_service: Option<String>,
    /// A UDP service: HOST[:PORT] (addresses or names; no port: port 0).
    #[arg(short = 'u', long = "udp-service", value_name = "service-address")]
    udp_service: Option<String>,
    /// A firewall-mark service.
    #[arg(
        short = 'f',
        long = "fwmark-service",
        value_name = "fwmark",
        allow_hyphen_values = true
    )]
    fwmark_service: Option<String>,
    /// Scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos).
    #[arg(short = 's', long = "scheduler", value_name = "scheduler")]
    scheduler: Option<String>,
    /// Scheduler flags: sh-fallback, sh-port, mh-fallback, mh-port.
    #[arg(short = 'b', long = "sched-flags", value_name = "flags")]
    sched_flags: Option<String>,
    /// Persistence, with its timeout in seconds (default 360, as ipvsadm's
    /// code; its man page says 300).
    #[arg(short = 'p', long = "persistent", value_name = "timeout", num_args = 0..=1,
          default_missing_value = "360")]
    persistent: Option<String>,
    /// Persistence netmask (a contiguous dotted quad: 255.255.255.0).
    #[arg(short = 'M', long = "netmask", value_name = "netmask")]
    netmask: Option<String>,
    /// One-packet scheduling (UDP).
    #[arg(short = 'o', long = "ops")]
    ops: bool,
    /// The real server: HOST[:PORT] (addresses or names; no port: the
    /// service's).
    #[arg(short = 'r', long = "real-server", value_name = "server-address")]
    real_server: Option<String>,
    /// Direct routing.
    #[arg(short = 'g', long = "gatewaying")]
    gatewaying: bool,
    /// IP-IP tunnelling.
    #[arg(short = 'i', long = "ipip")]
    ipip: bool,
    /// NAT (masquerading).
    #[arg(short = 'm', long = "masquerading")]
    masquerading: bool,
    /// Weight, 0 to 2147483647 (default 1; ipvsadm takes up to 65535, the
    /// kernel and l4vs's config up to 2^31-1, which `-S` may write).
    #[arg(
        short = 'w',
        long = "weight",
        value_name = "weight",
        allow_hyphen_values = true
    )]
    weight: Option<String>,
    /// Upper connection threshold.
    #[arg(
        short = 'x',
        long = "u-threshold",
        value_name = "uthreshold",
        allow_hyphen_values = true
    )]
    u_threshold: Option<String>,
    /// Lower connection threshold.
    #[arg(
        short = 'y',
        long = "l-threshold",
        value_name = "lthreshold",
        allow_hyphen_values = true
    )]
    l_threshold: Option<String>,
    /// Numeric output of addresses and ports (without it a listing looks
    /// names up, as ipvsadm does).
    #[arg(short = 'n', long = "numeric")]
    numeric: bool,
    /// List counters (conns, packets, bytes).
    #[arg(long = "stats")]
    stats: bool,
    /// List rates (per second).
    #[arg(long = "rate")]
    rate: bool,
    /// Exact numbers in --stats and --rate (no K, M, G, T).
    #[arg(short = 'X', long = "exact")]
    exact: bool,
    /// List the timeouts.
    #[arg(long = "timeout")]
    timeout: bool,
    /// List the connection sync daemons.
    #[arg(long = "daemon")]
    daemon: bool,
    /// List the connection thresholds of the real servers.
    #[arg(long = "thresholds")]
    thresholds: bool,
    /// List the connections (with -L).
    #[arg(short = 'c', long = "connection")]
    connection: bool,
    /// List the persistence templates per real server (with -L), or the
    /// persistence engine's columns (with -L -c).
    #[arg(long = "persistent-conn")]
    persistent_conn: bool,
    /// Sort the listing (the default; accepted for ipvsadm's sake).
    #[arg(long = "sort")]
    sort: bool,
    /// The admin socket (default: the one of l4vs in this network
    /// namespace).
    #[arg(long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Which numbers a listing shows (`--stats`, `--rate`; ipvsadm lets
/// stats win when both are given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Scheduler, flags, forwarding, weights, connections.
    #[default]
    Default,
    /// Counters, shortened with K/M/G/T unless exact.
    Stats {
        /// `--exact`.
        exact: bool,
    },
    /// Rates, likewise.
    Rate {
        /// `--exact`.
        exact: bool,
    },
    /// Connection thresholds (`--thresholds`): upper, lower, and the
    /// connections they are compared with.
    Thresholds,
    /// Weight, persistence templates, connections (`--persistent-conn`).
    PersistentConn,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these operations.
    Apply(Vec<Command>),
    /// List the table, or one service of it.
    List(Option<ServiceKey>, View),
    /// `-L --timeout`.
    Timeouts,
    /// `-L --daemon`.
    Daemons,
    /// `-L -c`: the connection entries (`--persistent-conn`: with the
    /// persistence engine's columns in the title).
    Connections {
        /// `--persistent-conn`.
        persistent_conn: bool,
    },
    /// `--yaml`.
    Yaml,
    /// Print the table as ipvsadm commands.
    Save,
    /// Apply the commands on stdin (the caller reads and parses them,
    /// [`parse_restore`]).
    Restore,
    /// `--start-daemon`.
    StartDaemon(crate::admin::DaemonSpec),
    /// `--stop-daemon master|backup`.
    StopDaemon(String),
}

impl Action {
    /// The request that does it.
    pub fn request(&self) -> Request {
        match self {
            Action::Apply(commands) => Request::Apply {
                commands: commands.clone(),
            },
            Action::List(..) | Action::Save | Action::Timeouts | Action::Daemons => Request::List,
            Action::Connections { .. } => Request::Connections,
            Action::Yaml => Request::Yaml,
            Action::Restore => Request::Apply {
                commands: Vec::new(),
            },
            Action::StartDaemon(daemon) => Request::StartDaemon {
                daemon: daemon.clone(),
            },
            Action::StopDaemon(state) => Request::StopDaemon {
                state: state.clone(),
            },
        }
    }
}

/// A command-line error, in ipvsadm's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(s: impl Into<String>) -> UsageError {
    UsageError(s.into())
}

/// `HOST[:PORT]` as ipvsadm's `parse_service` takes it (`-t`, `-u`, `-r`):
/// the host an IPv4 address or a name the resolver knows (its first IPv4
/// address), the port a number or a service name of `protocol` from
/// `/etc/services`; no port is port 0. None for what it cannot take: an
/// empty or all-digit text, an IPv6 address, an unknown name.
fn host_port(s: &str, protocol: Option<Protocol>) -> Option<(Ipv4Addr, u16)> {
    if s.is_empty()
        || s.bytes().all(|b| b.is_ascii_digit())
        || s.starts_with('[')
        || s.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return None;
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    // Nothing that cannot be an IPv4 host name goes to the resolver.
    if host.is_empty() || host.contains(':') {
        return None;
    }
    let addr = match host.parse::<Ipv4Addr>() {
        Ok(a) => a,
        Err(_) => dns_lookup::lookup_host(host).ok()?.find_map(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })?,
    };
    let port = match port {
        None => 0,
        // An empty or all-digit port that is no u16 is no name either.
        Some(p) => match p.parse::<u16>() {
            Ok(n) => n,
            Err(_) => service_port(p, protocol)?,
        },
    };
    Some((addr, port))
}

/// The port of service `name` for `protocol` (TCP when None, as ipvsadm
/// looks up a firewall-mark service's), from `/etc/services`
/// (`getservbyname`, through `getaddrinfo` with a numeric host: no DNS).
/// Only a name is looked up (letters, digits, `-`, `_`, `.`, not all
/// digits): `getaddrinfo` would also take a number it does not check.
fn service_port(name: &str, protocol: Option<Protocol>) -> Option<u16> {
    let is_name = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.bytes().all(|b| b.is_ascii_digit());
    if !is_name {
        return None;
    }
    let socktype = match protocol {
        Some(Protocol::Udp) => dns_lookup::SockType::DGram,
        _ => dns_lookup::SockType::Stream,
    };
    let hints = dns_lookup::AddrInfoHints {
        socktype: socktype.into(),
        flags: libc::AI_NUMERICHOST,
        ..dns_lookup::AddrInfoHints::default()
    };
    let mut found = dns_lookup::getaddrinfo(Some("0.0.0.0"), Some(name), Some(hints)).ok()?;
    found.next()?.ok().map(|a| a.sockaddr.port())
}

/// A number of `-w`, `-x`, `-y` as ipvsadm's `string_to_number` takes
/// it: decimal, 0..=`max`; else ipvsadm's `illegal WHAT specified`, with
/// the value ([`illegal`]).
fn number(s: Option<&str>, max: u32, what: &str) -> Result<Option<u32>, UsageError> {
    match s {
        None => Ok(None),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(illegal(what, s)),
        },
    }
}

/// ipvsadm's `illegal WHAT specified`, followed by the value given, as a
/// config error quotes one (`: `x``): ipvsadm leaves the operator to find
/// which word it was.
fn illegal(what: &str, value: &str) -> UsageError {
    usage(format!("illegal {what} specified: {}", echo(value)))
}

impl Cli {
    /// The protocol `-t` or `-u` names; None for `-f` or no service.
    fn protocol(&self) -> Option<Protocol> {
        if self.tcp_service.is_some() {
            Some(Protocol::Tcp)
        } else if self.udp_service.is_some() {
            Some(Protocol::Udp)
        } else {
            None
        }
    }

    fn key(&self) -> Result<Option<ServiceKey>, UsageError> {
        let address = self.tcp_service.as_deref().or(self.udp_service.as_deref());
        if let (Some(s), Some(protocol)) = (address, self.protocol()) {
            let (vip, port) = host_port(s, Some(protocol))
                .ok_or_else(|| illegal("virtual server address[:port]", s))?;
            return Ok(Some(ServiceKey::Addr {
                protocol,
                vip: IpAddr::V4(vip),
                port,
            }));
        }
        let Some(m) = &self.fwmark_service else {
            return Ok(None);
        };
        // A mark of 2^31 and up is listed and saved as a negative number,
        // as ipvsadm prints it (%d): taken back so.
        match m
            .parse::<u32>()
            .or_else(|_| m.parse::<i32>().map(|n| n as u32))
        {
            Ok(m) if m > 0 => Ok(Some(ServiceKey::Fwmark(m))),
            _ => Err(usage(format!(
                "invalid fwmark value `{}' specified",
                echo_unquoted(m)
            ))),
        }
    }

    /// ipvsadm's option table (ipvsadm.c `commands_v_options`, checked as
    /// `generic_opt_check` does, column by column): per command, `+` an
    /// option it needs, `x` one it refuses, `1` one of which it takes at
    /// most one, `.` one it may take. The columns are those of
    /// [`Cli::options_given`]; `--yaml` takes what `-S` takes.
    ///
    /// # Errors
    /// The first column that fails, in ipvsadm's words.
    fn check_options(&self) -> Result<(), UsageError> {
        const ROWS: [(&str, &str); 15] = [
            ("add-service", "xx+...xxxxxxxxxxxx.."),
            ("edit-service", "xx+...xxxxxxxxxxxx.."),
            ("delete-service", "xx+xxxxxxxxxxxxxxxxx"),
            ("flush", "xxxxxxxxxxxxxxxxxxxx"),
            ("list", ".11xxxxxxxx11......xx"),
            ("add-server", "xx+xxx+....xxxxxxxxx"),
            ("delete-server", "xx+xxx+xxxxxxxxxxxxx"),
            ("edit-server", "xx+xxx+....xxxxxxxxx"),
            ("set", "xxxxxxxxxxxxxxxxxxxx"),
            ("start-daemon", "xxxxxxxxxxxxxxxxxxxx"),
            ("stop-daemon", "xxxxxxxxxxxxxxxxxxxx"),
            ("restore", "xxxxxxxxxxxxxxxxxxxx"),
            ("save", ".xxxxxxxxxxxxxxxxxxx"),
            ("zero", "xx.xxxxxxxxxxxxxxxxx"),
            ("yaml", ".xxxxxxxxxxxxxxxxxxx"),
        ];
        let commands = [
            self.add_service,
            self.edit_service,
            self.delete_service,
            self.clear,
            self.list || self.list_l,
            self.add_server,
            self.delete_server,
            self.edit_server,
            self.set.is_some(),
            self.start_daemon.is_some(),
            self.stop_daemon.is_some(),
            self.restore,
            self.save,
            self.zero,
            self.yaml,
        ];
        let Some(row) = commands.iter().position(|c| *c) else {
            return Ok(());
        };
        let (command, cells) = ROWS[row];
        // The sync daemon's options: all with --start-daemon, --syncid
        // alone with --stop-daemon, none with the others (ipvsadm's
        // columns 11, 19 and 24 to 27).
        for (given, option) in [
            (self.mcast_interface.is_some(), "mcast-interface"),
            (self.syncid.is_some(), "syncid"),
            (self.mcast_group.is_some(), "mcast-group"),
            (self.mcast_port.is_some(), "mcast-port"),
            (self.mcast_ttl.is_some(), "mcast-ttl"),
            (self.sync_maxlen.is_some(), "sync-maxlen"),
        ] {
            let allowed =
                command == "start-daemon" || (command == "stop-daemon" && option == "syncid");
            if given && !allowed {
                return Err(usage(format!(
                    "Illegal '{option}' option with the '{command}' command"
                )));
            }
        }
        let mut one_of: Option<&str> = None;
        for ((given, option), cell) in self.options_given().into_iter().zip(cells.chars()) {
            match (cell, given) {
                ('+', false) => {
                    return Err(usage(format!(
                        "You need to supply the '{option}' option for the '{command}' command"
                    )))
                }
                ('x', true) => {
                    return Err(usage(format!(
                        "Illegal '{option}' option with the '{command}' command"
                    )))
                }
                ('1', true) => match one_of {
                    Some(first) => {
                        return Err(usage(format!(
                            "The option '{option}' conflicts with the '{first}' option in the '{command}' command"
                        )))
                    }
                    None => one_of = Some(option),
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// The options of ipvsadm's table that were given, with ipvsadm's
    /// names for them, in the table's column order.
    fn options_given(&self) -> [(bool, &'static str); 20] {
        [
            (self.numeric, "numeric"),
            (self.connection, "connection"),
            (self.service_given(), "service-address"),
            (self.scheduler.is_some(), "scheduler"),
            (self.persistent.is_some(), "persistent"),
            (self.netmask.is_some(), "netmask"),
            (self.real_server.is_some(), "real-server"),
            (
                self.gatewaying || self.ipip || self.masquerading,
                "forwarding-method",
            ),
            (self.weight.is_some(), "weight"),
            (self.u_threshold.is_some(), "u-threshold"),
            (self.l_threshold.is_some(), "l-threshold"),
            (self.timeout, "timeout"),
            (self.daemon, "daemon"),
            (self.stats, "stats"),
            (self.rate, "rate"),
            (self.thresholds, "thresholds"),
            (self.persistent_conn, "persistent-conn"),
            (self.exact, "exact"),
            (self.ops, "ops"),
            (self.sched_flags.is_some(), "sched-flags"),
        ]
    }

    /// True when -t, -u or -f was given.
    fn service_given(&self) -> bool {
        self.tcp_service.is_some() || self.udp_service.is_some() || self.fwmark_service.is_some()
    }

    fn need_key(&self) -> Result<ServiceKey, UsageError> {
        self.key()?
            .ok_or_else(|| usage("You must specify the service (-t, -u or -f)"))
    }

    /// `-s` (ipvsadm's default: wlc) and `-b`.
    fn scheduler(&self) -> Result<SchedulerKind, UsageError> {
        let name = self.scheduler.as_deref().unwrap_or("wlc");
        let mut s = SchedulerKind::from_name(name).ok_or_else(|| {
            usage(format!(
                "Scheduler not found: {} (l4vs has {})",
                echo(name),
                SchedulerKind::NAMES.join(" ")
            ))
        })?;
        for flag in self
            .sched_flags
            .as_deref()
            .into_iter()
            .flat_map(|f| f.split(','))
        {
            s = s.with_flag(flag).ok_or_else(|| {
                usage(format!("invalid scheduler flag for {name}: {}", echo(flag)))
            })?;
        }
        Ok(s)
    }

    /// `-p` and `-M` as ipvsadm's `parse_timeout` and `parse_netmask`
    /// check them, in its words: a timeout of 1 to l4vs's longest (the
    /// config's), a netmask l4vs can hold, which is a contiguous one (a
    /// prefix length; the kernel would also take `255.0.255.0`).
    fn persistence(&self) -> Result<Option<Persistence>, UsageError> {
        let netmask = match &self.netmask {
            None => 32,
            Some(m) => m
                .parse()
                .ok()
                .and_then(mask_prefix_len)
                .ok_or_else(|| illegal("virtual server persistent mask", m))?,
        };
        let Some(t) = &self.persistent else {
            return Ok(None);
        };
        match t.parse::<u32>() {
            Ok(timeout) if (1..=MAX_TIMEOUT_S).contains(&timeout) => {
                Ok(Some(Persistence { timeout, netmask }))
            }
            _ => Err(usage(format!(
                "invalid timeout value `{}' specified",
                echo_unquoted(t)
            ))),
        }
    }

    fn method(&self) -> ForwardMethod {
        if self.ipip {
            ForwardMethod::Tunnel
        } else if self.masquerading {
            ForwardMethod::Nat
        } else {
            // ipvsadm's default: direct routing (-g).
            ForwardMethod::DirectRouting
        }
    }

    fn real(&self) -> Result<RealSpec, UsageError> {
        let r = self
            .real_server
            .as_deref()
            .ok_or_else(|| usage("You need to supply the 'real-server' option for this command"))?;
        let (addr, port) = host_port(r, self.protocol())
            .ok_or_else(|| illegal("real server address[:port]", r))?;
        Ok(RealSpec {
            addr: IpAddr::V4(addr),
            port,
            weight: number(self.weight.as_deref(), MAX_WEIGHT, "weight")?.unwrap_or(1),
            method: self.method(),
            upper_threshold: number(self.u_threshold.as_deref(), i32::MAX as u32, "u_threshold")?
                .unwrap_or(0),
            lower_threshold: number(self.l_threshold.as_deref(), i32::MAX as u32, "l_threshold")?
                .unwrap_or(0),
        })
    }

    /// The service of `-A`/`-E`, with ipvsadm's own checks of it
    /// (ipvsadm.c: a port-0 service needs persistence, one-packet
    /// scheduling is for UDP).
    fn spec(&self) -> Result<ServiceSpec, UsageError> {
        let key = self.need_key()?;
        let persistence = self.persistence()?;
        if let ServiceKey::Addr { protocol, port, .. } = key {
            if port == 0 && persistence.is_none() {
                return Err(usage("Zero port specified for non-persistent service"));
            }
            if self.ops && protocol != Protocol::Udp {
                return Err(usage(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
        }
        Ok(ServiceSpec {
            key,
            name: None,
            scheduler: self.scheduler()?,
            persistence,
            timeouts: None,
            ops: self.ops,
        })
    }

    /// How listings write addresses: `-n` numbers, else names.
    pub fn names(&self) -> Names {
        if self.numeric {
            Names::Numeric
        } else {
            Names::Looked
        }
    }

    /// What the command line asks for.
    ///
    /// # Errors
    /// A missing service or real server, an unparsable address, a scheduler
    /// l4vs does not know.
    pub fn action(&self) -> Result<Action, UsageError> {
        let one = |c: Command| Ok(Action::Apply(vec![c]));
        self.check_options()?;
        if self.list || self.list_l {
            let numbers = self.stats || self.rate || self.thresholds;
            if ((self.connection || self.timeout || self.daemon) && numbers)
                || ((self.timeout || self.daemon) && self.persistent_conn)
            {
                return Err(usage("options conflicts in the list command"));
            }
            if self.connection {
                return Ok(Action::Connections {
                    persistent_conn: self.persistent_conn,
                });
            }
            if self.timeout {
                return Ok(Action::Timeouts);
            }
            if self.daemon {
                return Ok(Action::Daemons);
            }
            let view = if self.stats {
                View::Stats { exact: self.exact }
            } else if self.rate {
                View::Rate { exact: self.exact }
            } else if self.thresholds {
                View::Thresholds
            } else if self.persistent_conn {
                View::PersistentConn
            } else {
                View::Default
            };
            return Ok(Action::List(self.key()?, view));
        }
        if let Some(t) = &self.set {
            return one(Command::SetTimeouts {
                tcp: t[0],
                tcp_fin: t[1],
                udp: t[2],
            });
        }
        if self.save {
            return Ok(Action::Save);
        }
        if self.yaml {
            return Ok(Action::Yaml);
        }
        if let Some(state) = &self.start_daemon {
            if state != "master" && state != "backup" {
                return Err(illegal("start-daemon parameter", state));
            }
            // ipvsadm's parse-time checks (exit status 2).
            if self.mcast_port == Some(0) {
                return Err(illegal("mcast-port", "0"));
            }
            if self.mcast_ttl == Some(0) {
                return Err(illegal("mcast-ttl", "0"));
            }
            if self.sync_maxlen == Some(0) {
                return Err(illegal("sync-maxlen", "0"));
            }
            let group = match &self.mcast_group {
                Some(g) => Some(
                    g.parse::<Ipv4Addr>()
                        .map_err(|_| illegal("multicast group address", g))?,
                ),
                None => None,
            };
            return Ok(Action::StartDaemon(crate::admin::DaemonSpec {
                state: state.clone(),
                interface: self
                    .mcast_interface
                    .clone()
                    .unwrap_or_else(|| "eth0".to_owned()),
                syncid: self.syncid.unwrap_or(0),
                group,
                port: self.mcast_port,
                ttl: self.mcast_ttl,
                maxlen: self.sync_maxlen,
            }));
        }
        if let Some(state) = &self.stop_daemon {
            if state != "master" && state != "backup" {
                // ipvsadm says "illegal start_daemon specified" here, naming
                // the wrong option; this names the one given, as its
                // --start-daemon message does.
                return Err(illegal("stop-daemon parameter", state));
            }
            return Ok(Action::StopDaemon(state.clone()));
        }
        if self.restore {
            return Ok(Action::Restore);
        }
        if self.clear {
            return one(Command::Flush);
        }
        if self.zero {
            return one(Command::Zero(self.key()?));
        }
        if self.add_service {
            return one(Command::AddService(self.spec()?));
        }
        if self.edit_service {
            return one(Command::EditServiceSettings(self.spec()?));
        }
        if self.delete_service {
            return one(Command::DeleteService(self.need_key()?));
        }
        let key = self.need_key()?;
        let real = self.real()?;
        if self.add_server {
            return one(Command::AddReal(key, real));
        }
        if self.edit_server {
            return one(Command::EditReal(key, real));
        }
        one(Command::DeleteReal(key, real.addr, real.port))
    }
}

/// ipvsadm's service order (libipvs.c's comparator): address services
/// before fwmark ones, marks ascending; then TCP before UDP; then the
/// address as ipvsadm compares it (a 32-bit difference taken as signed,
/// so addresses 2^31 or more apart compare backwards, as in ipvsadm);
/// then the port. Rust's sort is stable, as glibc's merge sort is.
fn service_order(a: &ServiceReport, b: &ServiceReport) -> std::cmp::Ordering {
    let parts = |k: ServiceKey| match k {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => {
            let addr = match vip {
                IpAddr::V4(v) => v.to_bits(),
                IpAddr::V6(_) => 0,
            };
            (0u32, protocol_number(protocol), addr, port)
        }
        ServiceKey::Fwmark(m) => (m, 0, 0, 0),
    };
    let (am, ap, aa, aport) = parts(a.key);
    let (bm, bp, ba, bport) = parts(b.key);
    (am.wrapping_sub(bm) as i32)
        .cmp(&0)
        .then((i32::from(ap) - i32::from(bp)).cmp(&0))
        .then((aa.wrapping_sub(ba) as i32).cmp(&0))
        .then(aport.cmp(&bport))
}

/// IANA protocol number (TCP 6, UDP 17), which ipvsadm sorts by.
fn protocol_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

/// ipvsadm's real-server order: address (as above), then port.
fn real_order(a: &RealReport, b: &RealReport) -> std::cmp::Ordering {
    (a.real.addr.to_bits().wrapping_sub(b.real.addr.to_bits()) as i32)
        .cmp(&0)
        .then(a.real.port.cmp(&b.real.port))
}

/// The services in ipvsadm's order, each with its reals in order.
fn sorted(services: &[ServiceReport]) -> Vec<ServiceReport> {
    let mut v = services.to_vec();
    v.sort_by(service_order);
    for s in &mut v {
        s.reals.sort_by(real_order);
    }
    v
}

/// How a listing writes an address and port: `-n` gives numbers
/// (`198.18.2.1:80`); without it, names as ipvsadm 1.31's
/// `addrport_to_anyname` (ipvsadm.c) finds them: the host's name from the
/// address (`/etc/hosts`, then DNS, as the resolver is set up) or the
/// address when it has none, and the port's service name for its protocol
/// (`/etc/services`: `http`, `domain`) or the number when it has none or
/// the protocol is not TCP or UDP (a firewall-mark service's reals,
/// templates). As in ipvsadm, the host and the port are looked up apart
/// (`gethostbyaddr`, `getservbyport` there; the C library's `getnameinfo`
/// here), so a port keeps its name when the resolver cannot be reached,
/// and the text is cut to 59 characters (ipvsadm's 60-byte buffer). A
/// listing without `-n` waits for the resolver as ipvsadm's does, once
/// per address: names are kept for the rest of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// `-n`: numbers only.
    Numeric,
    /// Host and service names where the system has them.
    Looked,
}

/// [`Names`] at work over one listing: the host names found so far.
struct Namer {
    names: Names,
    hosts: std::collections::HashMap<IpAddr, String>,
}

impl Namer {
    fn new(names: Names) -> Namer {
        Namer {
            names,
            hosts: std::collections::HashMap::new(),
        }
    }

    /// `ADDR:PORT` for `protocol` (None: the port as a number).
    fn addrport(&mut self, addr: IpAddr, port: u16, protocol: Option<Protocol>) -> String {
        if self.names == Names::Numeric {
            return format!("{addr}:{port}");
        }
        let host = self.hosts.entry(addr).or_insert_with(|| {
            let sock = std::net::SocketAddr::new(addr, 0);
            match dns_lookup::getnameinfo(&sock, libc::NI_NAMEREQD | libc::NI_NUMERICSERV) {
                Ok((host, _)) => host,
                Err(_) => addr.to_string(),
            }
        });
        let service = match protocol {
            None => port.to_string(),
            Some(p) => {
                let flags = libc::NI_NUMERICHOST
                    | if p == Protocol::Udp {
                        libc::NI_DGRAM
                    } else {
                        0
                    };
                let sock = std::net::SocketAddr::new(addr, port);
                match dns_lookup::getnameinfo(&sock, flags) {
                    Ok((_, service)) => service,
                    Err(_) => port.to_string(),
                }
            }
        };
        let mut text = format!("{host}:{service}");
        cut(&mut text, 59);
        text
    }
}

/// Cuts `s` to at most `n` bytes, at a character boundary.
fn cut(s: &mut String, n: usize) {
    if s.len() > n {
        let at = (0..=n).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(at);
    }
}

/// A real server of `s` as the listing names it (`ADDR:PORT`, cut to 28
/// characters).
fn real_name(names: &mut Namer, s: &ServiceReport, r: &RealReport) -> String {
    let mut name = names.addrport(IpAddr::V4(r.real.addr), r.real.port, s.key.protocol());
    cut(&mut name, 28);
    name
}

/// `TCP  VIP:PORT` / `FWM  MARK`, as the listing names a service
/// (`"%-4s %s"`, cut to 33 characters).
fn service_name(key: ServiceKey, names: &mut Namer) -> String {
    let mut name = match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => format!(
            "{:<4} {}",
            protocol_name(protocol),
            names.addrport(vip, port, Some(protocol))
        ),
        ServiceKey::Fwmark(m) => format!("FWM  {}", m as i32),
    };
    cut(&mut name, 33);
    name
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// ipvsadm's scheduler flags text (`print_sched_flags`): fallback, then
/// port, comma-separated.
fn sched_flags(s: SchedulerKind) -> String {
    let (name, port, fallback) = match s {
        SchedulerKind::Sh { port, fallback } => ("sh", port, fallback),
        SchedulerKind::Mh { port, fallback, .. } => ("mh", port, fallback),
        _ => return String::new(),
    };
    let mut v = Vec::new();
    if fallback {
        v.push(format!("{name}-fallback"));
    }
    if port {
        v.push(format!("{name}-port"));
    }
    v.join(",")
}

/// The persistence netmask as a dotted quad, when it is not /32.
fn mask_text(p: Persistence) -> Option<Ipv4Addr> {
    (p.netmask != 32).then(|| Ipv4Addr::from_bits(l4vs_dataplane::model::prefix_mask(p.netmask)))
}

/// `-L -n`, as ipvsadm 1.31 prints it: for the whole table the version
/// line (IPVS's version, and `size`, the connection table's), then the
/// two title lines, then each service (`TCP  VIP:PORT sched[ (flags)][
/// persistent T[ mask M]][ ops]`) and its reals (`  -> %-28s %-7s %-6d
/// %-10u %-10u`), in ipvsadm's order. One service (`only`) is listed
/// without the version line; None when it does not exist (ipvsadm: "No
/// such service", status 1). Addresses as `names` says.
pub fn format_list(
    services: &[ServiceReport],
    only: Option<ServiceKey>,
    size: u32,
    view: View,
    names: Names,
) -> Option<String> {
    let names = &mut Namer::new(names);
    let mut out = String::new();
    if only.is_none() {
        let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={size})");
    }
    let title = |a: [&str; 5]| {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", a[0], a[1], a[2], a[3], a[4]
        )
    };
    match view {
        View::Default => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
        }
        View::Stats { .. } => out.push_str(&title([
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes",
        ])),
        View::Rate { .. } => out.push_str(&title(["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"])),
        View::Thresholds => {
            let _ = write!(
                out,
                "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
                "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
            );
        }
        View::PersistentConn => {
            let _ = write!(
                out,
                "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
                "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
            );
        }
    }
    let listed: Vec<ServiceReport> = sorted(services)
        .into_iter()
        .filter(|s| only.is_none_or(|k| k == s.key))
        .collect();
    if only.is_some() && listed.is_empty() {
        return None;
    }
    if matches!(view, View::Stats { .. } | View::Rate { .. }) {
        for s in &listed {
            let _ = write!(out, "{:<33}", service_name(s.key, names));
            numbers(&mut out, s.counted, view, false);
            for r in &s.reals {
                let dest = real_name(names, s, r);
                let _ = write!(out, "  -> {dest:<28}");
                numbers(&mut out, r.counted, view, true);
            }
        }
        return Some(out);
    }
    for s in &listed {
        let _ = write!(
            out,
            "{} {}",
            service_name(s.key, names),
            s.scheduler.as_str()
        );
        let flags = sched_flags(s.scheduler);
        if !flags.is_empty() {
            let _ = write!(out, " ({flags})");
        }
        if let Some(p) = s.persistence {
            let _ = write!(out, " persistent {}", p.timeout);
            if let Some(mask) = mask_text(p) {
                let _ = write!(out, " mask {mask}");
            }
        }
        if s.ops {
            out.push_str(" ops");
        }
        out.push('\n');
        for r in &s.reals {
            let dest = real_name(names, s, r);
            let _ = if view == View::Thresholds {
                writeln!(
                    out,
                    "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
                    dest, r.real.upper_threshold, r.real.lower_threshold, r.active, r.inactive
                )
            } else if view == View::PersistentConn {
                writeln!(
                    out,
                    "  -> {:<28} {:<9} {:<11} {:<10} {:<10}",
                    dest, r.real.weight, r.persistent, r.active, r.inactive
                )
            } else {
                writeln!(
                    out,
                    "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                    dest,
                    r.real.method.ipvsadm_name(),
                    r.real.weight,
                    r.active,
                    r.inactive
                )
            };
        }
    }
    Some(out)
}

/// The five numbers of a `--stats` or `--rate` line, and its newline. A
/// real server's CPS, InPPS and OutPPS are printed whole (`%8llu`), as
/// ipvsadm 1.31 does.
fn numbers(out: &mut String, c: crate::stats::Counted, view: View, real: bool) {
    let (vals, exact) = match view {
        View::Stats { exact } => {
            let t = c.totals;
            ([t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes], exact)
        }
        View::Rate { exact } => {
            let r = c.rates;
            ([r.cps, r.inpps, r.outpps, r.inbps, r.outbps], exact)
        }
        View::Default | View::Thresholds | View::PersistentConn => return,
    };
    for (i, v) in vals.into_iter().enumerate() {
        if real && i < 3 && matches!(view, View::Rate { .. }) {
            let _ = write!(out, " {v:>8}");
        } else {
            largenum(out, v, exact);
        }
    }
    out.push('\n');
}

/// ipvsadm's `print_largenum`: a space, then the number in 8 columns, or
/// cut down (truncating) to thousands K, millions M, billions G or
/// trillions T when it does not fit; with `--exact`, the whole number,
/// right-aligned in 9 columns or one more than its digits.
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>width$}");
        return;
    }
    let _ = match i {
        0..100_000_000 => write!(out, "{i:>9}"),
        100_000_000..1_000_000_000 => write!(out, "{:>8}K", i / 1_000),
        1_000_000_000..100_000_000_000 => write!(out, "{:>8}M", i / 1_000_000),
        100_000_000_000..100_000_000_000_000 => write!(out, "{:>8}G", i / 1_000_000_000),
        _ => write!(out, "{:>8}T", i / 1_000_000_000_000),
    };
}

/// `-L -c`, as ipvsadm 1.31 prints `/proc/net/ip_vs_conn` (`print_conn`):
/// `IPVS connection entries`, the title, then per entry `"%-3s %-6s %-11s
/// %-18s %-18s %s"`: protocol (`TCP`, `UDP`, `IP` for a firewall-mark
/// template), expiry as mm:ss (minutes not capped), state, source,
/// virtual, destination. With `--persistent-conn` the title has the
/// persistence engine's columns (`pe name`, `pe_data`); l4vs has no
/// persistence engine, so the entries keep the plain format, as ipvsadm
/// prints entries without one. Addresses as `names` says (cut only to
/// ipvsadm's 59 characters).
pub fn format_connections(entries: &[ConnEntry], persistent_conn: bool, names: Names) -> String {
    let mut names = Namer::new(names);
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for e in entries {
        let (protocol, ports) = match e.protocol {
            6 => ("TCP".to_owned(), Some(Protocol::Tcp)),
            17 => ("UDP".to_owned(), Some(Protocol::Udp)),
            0 => ("IP".to_owned(), None),
            n => (format!("IP_{n}"), None),
        };
        let mut text = |a: SocketAddrV4| names.addrport(IpAddr::V4(*a.ip()), a.port(), ports);
        let (client, virtual_addr, destination) =
            (text(e.client), text(e.virtual_addr), text(e.destination));
        let expire = format!("{:02}:{:02}", e.expires / 60, e.expires % 60);
        let _ = writeln!(
            out,
            "{protocol:<3} {expire:<6} {:<11} {client:<18} {virtual_addr:<18} {destination}",
            e.state,
        );
    }
    out
}

/// Fills in each real server's `persistent` count (`--persistent-conn`'s
/// PersistConn) from a connection listing: the templates whose virtual
/// address, port and protocol (or firewall mark) are the service's and
/// whose destination is the real server.
pub fn count_templates(services: &mut [ServiceReport], entries: &[ConnEntry]) {
    for s in services.iter_mut() {
        let of_service = |e: &&ConnEntry| match s.key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => {
                let number = match protocol {
                    Protocol::Tcp => 6,
                    Protocol::Udp => 17,
                };
                e.protocol == number
                    && IpAddr::V4(*e.virtual_addr.ip()) == vip
                    && e.virtual_addr.port() == port
            }
            ServiceKey::Fwmark(m) => e.protocol == 0 && e.virtual_addr.ip().to_bits() == m,
        };
        let templates: Vec<&ConnEntry> = entries
            .iter()
            .filter(|e| e.template)
            .filter(of_service)
            .collect();
        for r in &mut s.reals {
            let n = templates
                .iter()
                .filter(|e| {
                    *e.destination.ip() == r.real.addr && e.destination.port() == r.real.port
                })
                .count();
            r.persistent = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
}

/// `-L --daemon`, as ipvsadm's `list_daemon` prints it: a line per
/// daemon, `master sync daemon (mcast=lan, syncid=7, maxlen=1472,
/// group=224.0.0.81, port=8848, ttl=1)`; nothing when none runs.
pub fn format_daemons(daemons: &[crate::admin::SyncDaemonInfo]) -> String {
    daemons
        .iter()
        .map(|d| {
            format!(
                "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})\n",
                d.state, d.interface, d.syncid, d.maxlen, d.group, d.port, d.ttl
            )
        })
        .collect()
}

/// The VRRP instance's line of `-L --daemon` (an l4vs addition after
/// ipvsadm's lines): `VRRP MASTER (interface=lan, vrid=51,
/// priority=150, advert_int_ms=100, addresses=198.18.0.100)`, a backup's
/// with `master=ADDR priority=N` of the master it hears.
pub fn format_vrrp(v: &crate::admin::VrrpInfo) -> String {
    let addresses: Vec<String> = v.addresses.iter().map(ToString::to_string).collect();
    let master = match v.master {
        Some((addr, p)) => format!(", master={addr} priority={p}"),
        None => String::new(),
    };
    format!(
        "VRRP {} (interface={}, vrid={}, priority={}, advert_int_ms={}, addresses={}{master})\n",
        v.state,
        v.interface,
        v.vrid,
        v.priority,
        v.advert_int_ms,
        addresses.join(",")
    )
}

/// `-L --timeout`.
pub fn format_timeouts(t: [u32; 3]) -> String {
    format!("Timeout (tcp tcpfin udp): {} {} {}\n", t[0], t[1], t[2])
}

/// `-S -n`: the table as ipvsadm commands that `-R` takes back, as
/// ipvsadm-save prints them (`-A -t VIP:PORT -s SCHED[ -p T[ -M MASK]][
/// -o][ -b FLAGS]`, `-a -t VIP:PORT -r RIP:PORT -m|-g|-i -w W`), in
/// ipvsadm's order; thresholds follow as `-x`/`-y` when set (ipvsadm 1.31
/// drops them, which loses them on a restore).
pub fn format_save(services: &[ServiceReport]) -> String {
    let mut out = String::new();
    for s in &sorted(services) {
        let svc = match s.key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => {
                let opt = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                };
                format!("{opt} {vip}:{port}")
            }
            ServiceKey::Fwmark(m) => format!("-f {}", m as i32),
        };
        let _ = write!(out, "-A {svc} -s {}", s.scheduler.as_str());
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            if let Some(mask) = mask_text(p) {
                let _ = write!(out, " -M {mask}");
            }
        }
        if s.ops {
            out.push_str(" -o");
        }
        let flags = sched_flags(s.scheduler);
        if !flags.is_empty() {
            let _ = write!(out, " -b {flags}");
        }
        out.push('\n');
        for r in &s.reals {
            let switch = match r.real.method {
                ForwardMethod::Nat => "-m",
                ForwardMethod::DirectRouting => "-g",
                ForwardMethod::Tunnel => "-i",
            };
            let _ = write!(
                out,
                "-a {svc} -r {}:{} {switch} -w {}",
                r.real.addr, r.real.port, r.real.weight
            );
            if r.real.upper_threshold != 0 {
                let _ = write!(out, " -x {}", r.real.upper_threshold);
            }
            if r.real.lower_threshold != 0 {
                let _ = write!(out, " -y {}", r.real.lower_threshold);
            }
            out.push('\n');
        }
    }
    out
}

/// The words of one `ipvsadm-save` line as `-R` reads it: every word
/// `ipvsadm` dropped, and a comment, from a word that starts with `#` to
/// the end of the line. ipvsadm's `config_stream.c` documents comments
/// ("Everything including and after a hash (#) on a line is ignored"),
/// but its code never finds one (it looks for `#` in the whitespace after
/// a word), so ipvsadm 1.31 refuses what is skipped here; a `#` inside a
/// word stays part of it, as there. `None` for a line with no other
/// words.
pub(crate) fn restore_words(line: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = restore_tokens(line)
        .take_while(|w| !w.starts_with('#'))
        .filter(|w| *w != "ipvsadm")
        .collect();
    (!words.is_empty()).then_some(words)
}

/// The whitespace-separated words of a `-R` line, comments included.
fn restore_tokens(line: &str) -> impl Iterator<Item = &str> {
    line.split([' ', '\t', '\r']).filter(|w| !w.is_empty())
}

/// `-R`: ipvsadm commands, one a line, as `-S` prints them: a word
/// `ipvsadm` anywhere is dropped, blank lines are skipped, and a word
/// that starts with `#` starts a comment to the end of the line
/// ([`restore_words`]). `--socket` on a line is refused.
///
/// # Errors
/// The first line that does not parse or is not an operation, with its
/// number (1-based) and why.
pub fn parse_restore(text: &str) -> Result<Vec<Command>, (usize, String)> {
    restore_lines(text.as_bytes())
}

/// [`parse_restore`] of bytes, as `l4vsadm -R` reads its stdin: a line
/// that is not UTF-8 before its comment is an error with its number
/// (`not UTF-8 text`); bytes in a comment do not matter; a byte-order
/// mark at the start of the input is skipped, as `l4vs import` skips one
/// at the start of a file ([`parse_restore`], which it calls for each
/// line, does not).
///
/// # Errors
/// As [`parse_restore`]: the first line that is wrong, with its number
/// (1-based) and why.
pub fn parse_restore_bytes(bytes: &[u8]) -> Result<Vec<Command>, (usize, String)> {
    restore_lines(bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes))
}

/// The commands of `-R` input, line by line ([`parse_restore_bytes`]).
fn restore_lines(bytes: &[u8]) -> Result<Vec<Command>, (usize, String)> {
    let mut commands = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(e) => {
                let valid = std::str::from_utf8(&line[..e.valid_up_to()]).unwrap_or_default();
                let in_comment = restore_tokens(valid).any(|w| w.starts_with('#'));
                if !in_comment {
                    return Err((n + 1, "not UTF-8 text".into()));
                }
                valid
            }
        };
        commands.extend(restore_line(n + 1, text)?);
    }
    Ok(commands)
}

/// What one line's words (as [`restore_words`] splits them) ask for, as
/// `l4vsadm` would take them (`--socket` refused): for `-R`, and for
/// `l4vs import`, which carries sync daemon lines over too.
///
/// # Errors
/// Why the line does not parse, as `-R` says it.
pub(crate) fn line_action(words: &[&str]) -> Result<Action, String> {
    let cli = try_parse_plain::<Cli>(std::iter::once("l4vsadm").chain(words.iter().copied()))
        .map_err(|e| clap_reason(&e))?;
    if cli.socket.is_some() {
        return Err(SOCKET_NOT_RESTORED.into());
    }
    cli.action().map_err(|e| e.0)
}

/// The commands of line `n` of a `-R` input.
fn restore_line(n: usize, line: &str) -> Result<Vec<Command>, (usize, String)> {
    let Some(words) = restore_words(line) else {
        return Ok(Vec::new());
    };
    match line_action(&words).map_err(|why| (n, why))? {
        Action::Apply(c) => Ok(c),
        _ => Err((n, NOT_RESTORED.into())),
    }
}

/// Why a line that parses is not restored.
const NOT_RESTORED: &str = "only -A -E -D -C -a -e -d -Z --set lines restore";

/// Why a line with `--socket` is not restored: every line goes to the
/// director `-R` itself was pointed at.
const SOCKET_NOT_RESTORED: &str =
    "--socket on a line is not restored: give it to l4vsadm -R itself";

/// The most `-R` reads, bytes: the admin socket's request limit
/// ([`crate::admin::MAX_REQUEST`]). The commands travel as one request,
/// whose JSON is longer than their text, so more input could not be sent
/// unless most of it were comments; [`crate::admin::call`] checks the
/// request itself.
pub const MAX_RESTORE_BYTES: usize = crate::admin::MAX_REQUEST;

/// What clap found wrong with a restored line, in its words: its message
/// up to the first empty line (`unexpected argument '--bogus' found`;
/// `the following required arguments were not provided: <...>`, its
/// lines joined), without its `error: ` prefix, its usage and its tips,
/// which are about a command line, not a file's line; what the line
/// held is quoted as [`clap_message`] quotes it. `-h`, `-v` and `-V` on a
/// line are not restored: clap's help and version are no reason.
fn clap_reason(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return NOT_RESTORED.into();
    }
    let text = clap_message(e);
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

#[cfg(test)]
mod tests;
