//! `l4vsadm`: ipvsadm's command line (ipvsadm(8), 1.31) for a running
//! l4vs, over its admin socket ([`crate::admin`]).
//!
//! The arguments are parsed by clap into one [`Action`]: a table operation
//! ([`Command`], as `ipvsadm -A -E -D -a -e -d -C -Z` take them) or a
//! listing. Listings are printed here, as ipvsadm prints them
//! (ipvsadm.c `print_title`, `print_service_entry`): scripts that read
//! `ipvsadm -Ln` read `l4vsadm -Ln`.
//!
//! Done so far: the commands above and the default listing (`-L`, `-l`,
//! with `-n`). Not yet: `--stats`, `--rate`, `-c`, `-S`, `-R`,
//! `--set`, `--timeout`, `--daemon`, host names without `-n` (l4vsadm
//! always prints numbers).

use crate::admin::Request;
use crate::table::{Command, RealSpec, ServiceKey, ServiceReport, ServiceSpec};
use clap::{ArgGroup, Parser};
use l4vs_dataplane::model::{ForwardMethod, Persistence, Protocol, SchedulerKind};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

/// ipvsadm's default persistence timeout, seconds (`-p` without a value).
pub const DEFAULT_PERSISTENCE_S: u32 = 300;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "l4vsadm",
    version,
    about = "Administer a running l4vs as ipvsadm administers IPVS",
    group(ArgGroup::new("command").required(true).multiple(false).args([
        "add_service", "edit_service", "delete_service", "clear", "add_server",
        "edit_server", "delete_server", "list", "list_l", "zero",
    ])),
    group(ArgGroup::new("service").multiple(false).args(["tcp_service", "udp_service", "fwmark_service"])),
    group(ArgGroup::new("method").multiple(false).args(["gatewaying", "ipip", "masquerading"])),
)]
pub struct Cli {
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

    /// A TCP service: VIP:PORT.
    #[arg(short = 't', long = "tcp-service", value_name = "service-address")]
    tcp_service: Option<String>,
    /// A UDP service: VIP:PORT.
    #[arg(short = 'u', long = "udp-service", value_name = "service-address")]
    udp_service: Option<String>,
    /// A firewall-mark service.
    #[arg(short = 'f', long = "fwmark-service", value_name = "fwmark")]
    fwmark_service: Option<u32>,
    /// Scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos).
    #[arg(short = 's', long = "scheduler", value_name = "scheduler")]
    scheduler: Option<String>,
    /// Scheduler flags: sh-fallback, sh-port, mh-fallback, mh-port.
    #[arg(short = 'b', long = "sched-flags", value_name = "flags")]
    sched_flags: Option<String>,
    /// Persistence, with its timeout in seconds (default 300).
    #[arg(short = 'p', long = "persistent", value_name = "timeout", num_args = 0..=1,
          default_missing_value = "300")]
    persistent: Option<u32>,
    /// Persistence netmask (dotted quad).
    #[arg(short = 'M', long = "netmask", value_name = "netmask")]
    netmask: Option<Ipv4Addr>,
    /// One-packet scheduling (UDP).
    #[arg(short = 'o', long = "ops")]
    ops: bool,
    /// The real server: ADDRESS[:PORT].
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
    /// Weight, 0 to 2147483647 (default 1).
    #[arg(short = 'w', long = "weight", value_name = "weight")]
    weight: Option<u32>,
    /// Upper connection threshold.
    #[arg(short = 'x', long = "u-threshold", value_name = "uthreshold")]
    u_threshold: Option<u32>,
    /// Lower connection threshold.
    #[arg(short = 'y', long = "l-threshold", value_name = "lthreshold")]
    l_threshold: Option<u32>,
    /// Numeric output (l4vsadm always prints numbers).
    #[arg(short = 'n', long = "numeric")]
    numeric: bool,
    /// The admin socket (default: the one of l4vs in this network
    /// namespace).
    #[arg(long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these operations.
    Apply(Vec<Command>),
    /// List the table, or one service of it.
    List(Option<ServiceKey>),
}

impl Action {
    /// The request that does it.
    pub fn request(&self) -> Request {
        match self {
            Action::Apply(commands) => Request::Apply {
                commands: commands.clone(),
            },
            Action::List(_) => Request::List,
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

/// `VIP:PORT` as ipvsadm takes it (`-t`, `-u`).
fn service_address(s: &str) -> Result<(Ipv4Addr, u16), UsageError> {
    s.parse::<SocketAddrV4>()
        .map(|a| (*a.ip(), a.port()))
        .map_err(|_| {
            usage(format!(
                "illegal virtual server address[:port] specified: {s}"
            ))
        })
}

/// `ADDRESS[:PORT]` as `-r` takes it (port 0: the service's).
fn real_address(s: &str) -> Result<(Ipv4Addr, u16), UsageError> {
    if let Ok(a) = s.parse::<SocketAddrV4>() {
        return Ok((*a.ip(), a.port()));
    }
    s.parse::<Ipv4Addr>()
        .map(|a| (a, 0))
        .map_err(|_| usage(format!("illegal real server address[:port] specified: {s}")))
}

impl Cli {
    fn key(&self) -> Result<Option<ServiceKey>, UsageError> {
        Ok(
            match (&self.tcp_service, &self.udp_service, self.fwmark_service) {
                (Some(s), _, _) | (_, Some(s), _) => {
                    let (vip, port) = service_address(s)?;
                    let protocol = if self.tcp_service.is_some() {
                        Protocol::Tcp
                    } else {
                        Protocol::Udp
                    };
                    Some(ServiceKey::Addr {
                        protocol,
                        vip: IpAddr::V4(vip),
                        port,
                    })
                }
                (None, None, Some(m)) => Some(ServiceKey::Fwmark(m)),
                (None, None, None) => None,
            },
        )
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
                "Scheduler not found: {name} (l4vs has {})",
                SchedulerKind::NAMES.join(" ")
            ))
        })?;
        for flag in self
            .sched_flags
            .as_deref()
            .into_iter()
            .flat_map(|f| f.split(','))
        {
            s = s
                .with_flag(flag)
                .ok_or_else(|| usage(format!("invalid scheduler flag for {name}: {flag}")))?;
        }
        Ok(s)
    }

    fn persistence(&self) -> Option<Persistence> {
        self.persistent.map(|timeout| Persistence {
            timeout,
            netmask: self.netmask.map_or(32, |m| m.to_bits().count_ones() as u8),
        })
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
        let (addr, port) = real_address(r)?;
        Ok(RealSpec {
            addr: IpAddr::V4(addr),
            port,
            weight: self.weight.unwrap_or(1),
            method: self.method(),
            upper_threshold: self.u_threshold.unwrap_or(0),
            lower_threshold: self.l_threshold.unwrap_or(0),
        })
    }

    fn spec(&self) -> Result<ServiceSpec, UsageError> {
        Ok(ServiceSpec {
            key: self.need_key()?,
            name: None,
            scheduler: self.scheduler()?,
            persistence: self.persistence(),
            timeouts: None,
            ops: self.ops,
        })
    }

    /// What the command line asks for.
    ///
    /// # Errors
    /// A missing service or real server, an unparsable address, a scheduler
    /// l4vs does not know.
    pub fn action(&self) -> Result<Action, UsageError> {
        let one = |c: Command| Ok(Action::Apply(vec![c]));
        if self.list || self.list_l {
            return Ok(Action::List(self.key()?));
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
            return one(Command::EditService(self.spec()?));
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

/// ipvsadm's name of a forwarding method in listings (`fwd_name`).
fn fwd_name(m: ForwardMethod) -> &'static str {
    m.ipvsadm_name()
}

/// `-L -n`, as ipvsadm 1.31 prints it: the version line (IPVS's version,
/// and `size`, the connection table's), the two title lines, then each
/// service (`TCP  VIP:PORT sched[ persistent T[ mask M]][ ops][ flags]`)
/// and its reals (`  -> %-28s %-7s %-6d %-10u %-10u`).
pub fn format_list(services: &[ServiceReport], only: Option<ServiceKey>, size: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={size})");
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in services.iter().filter(|s| only.is_none_or(|k| k == s.key)) {
        let (sched, flags) = sched_words(s.scheduler);
        match s.key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => {
                let proto = match protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                };
                let _ = write!(out, "{proto}  {vip}:{port} {sched}");
            }
            ServiceKey::Fwmark(m) => {
                let _ = write!(out, "FWM  {m} {sched}");
            }
        }
        if let Some(p) = s.persistence {
            let _ = write!(out, " persistent {}", p.timeout);
            if p.netmask != 32 {
                let mask = Ipv4Addr::from_bits(l4vs_dataplane::model::prefix_mask(p.netmask));
                let _ = write!(out, " mask {mask}");
            }
        }
        if s.ops {
            out.push_str(" ops");
        }
        if !flags.is_empty() {
            let _ = write!(out, " {flags}");
        }
        out.push('\n');
        for r in &s.reals {
            let dest = format!("{}:{}", r.real.addr, r.real.port);
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                dest,
                fwd_name(r.real.method),
                r.real.weight,
                r.active,
                r.inactive
            );
        }
    }
    out
}

/// The scheduler's name and its flags as ipvsadm lists them
/// (`sh-fallback,sh-port`).
fn sched_words(s: SchedulerKind) -> (&'static str, String) {
    let flags: Vec<&str> = s.flags().collect();
    (s.as_str(), flags.join(","))
}

#[cfg(test)]
mod tests;
