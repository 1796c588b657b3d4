//! The rules of the module doc, applied to the raw document in order, the
//! first failure returned. Each check knows its key path and has the span of
//! the offending value.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::raw::{
    IntOrString, RawCheck, RawConfig, RawMark, RawPersistence, RawPort, RawReal, RawService,
    RawSync, RawTimeouts, RawVrrp, S,
};
use super::{
    echo, from_hex, not_unicast, valid_name, Address, Check, CheckKind, Config, ConfigError,
    Device, DeviceKind, DnsRecordType, Eal, FirewallMark, ForwardMethod, Gateway, IcmpLimits,
    Neighbor, Persistence, Port, Protocol, Real, SchedulerKind, Service, Sync, SyncAuth, SyncRole,
    Timeouts, Vrrp, Workers, DEFAULT_BURST, DEFAULT_CONNECTIONS, DEFAULT_DESC, DEFAULT_MBUFS,
    MAX_BURST, MAX_CORE, MAX_DESC, MAX_IDLE_SLEEP_US, MAX_MH_TABLE_SIZE, MAX_MTU, MAX_THRESHOLD,
    MAX_TIMEOUT_S, MAX_WEIGHT, MIN_DESC, MIN_MH_TABLE_SIZE, MIN_MTU,
};
use crate::table::{
    self, Network, RealContext, RealField, RealSpec, ServiceKey, ServiceSpec, TableError,
};
use l4vs_dataplane::model::mask_prefix_len;
use l4vs_dataplane::sched::mh::is_prime;

/// ipvsadm's named scheduler flags (`-b`): (name, scheduler, is the port flag).
const SCHED_FLAGS: &[(&str, &str, bool)] = &[
    ("sh-fallback", "sh", false),
    ("sh-port", "sh", true),
    ("mh-fallback", "mh", false),
    ("mh-port", "mh", true),
];

/// EAL options that l4vs sets itself from `workers`, `eal.main_core` and
/// `ports`, with the reason given to the operator.
const RESERVED_EAL_OPTIONS: &[(&str, &str)] = &[
    ("-l", "cores"),
    ("-c", "cores"),
    ("--lcores", "cores"),
    ("--main-lcore", "cores"),
    ("--master-lcore", "cores"),
    ("-a", "devices"),
    ("--allow", "devices"),
    ("-w", "devices"),
    ("--pci-whitelist", "devices"),
    ("-b", "devices"),
    ("--block", "devices"),
    ("--pci-blacklist", "devices"),
    ("--vdev", "devices"),
];

type Result<T> = std::result::Result<T, ConfigError>;

struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn err(
        &self,
        at: &Location,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: u32::try_from(at.line()).unwrap_or(u32::MAX),
            column: u32::try_from(at.column()).unwrap_or(u32::MAX),
            key: key.into(),
            message: message.into(),
        }
    }

    /// An integer in `min..=max`.
    fn int<T: TryFrom<i64>>(&self, v: &S<i64>, key: &str, min: i64, max: i64) -> Result<T> {
        if v.value < min || v.value > max {
            return Err(self.err(
                &v.referenced,
                key,
                format!("{} is out of range: must be in {min}..={max}", v.value),
            ));
        }
        T::try_from(v.value).map_err(|_| self.err(&v.referenced, key, "out of range for its type"))
    }

    /// An optional integer in `min..=max`, `default` when absent.
    fn opt_int<T: TryFrom<i64>>(
        &self,
        v: &Option<S<i64>>,
        key: &str,
        min: i64,
        max: i64,
        default: T,
    ) -> Result<T> {
        match v {
            Some(v) => self.int(v, key, min, max),
            None => Ok(default),
        }
    }

    /// A unicast IPv4 address in dotted-quad form.
    fn ipv4(&self, v: &S<String>, key: &str) -> Result<Ipv4Addr> {
        let s = v.value.trim();
        let ip: Ipv4Addr = s.parse().map_err(|_| {
            let hint = if s.contains('/') {
                " (no prefix length here)"
            } else {
                ""
            };
            self.err(
                &v.referenced,
                key,
                format!("{} is not an IPv4 address (a.b.c.d){hint}", echo(s)),
            )
        })?;
        match not_unicast(ip) {
            Some(why) => Err(self.err(
                &v.referenced,
                key,
                format!("{ip} is {why}; a unicast address is required"),
            )),
            None => Ok(ip),
        }
    }

    /// `a.b.c.d/len` with len 1..=32.
    fn ipv4_prefix(&self, v: &S<String>, key: &str) -> Result<(Ipv4Addr, u8)> {
        let s = v.value.trim();
        let Some((addr, len)) = s.split_once('/') else {
            return Err(self.err(
                &v.referenced,
                key,
                format!(
                    "{} has no prefix length: write address/length, e.g. 198.18.1.1/24",
                    echo(s)
                ),
            ));
        };
        let len_ok = !len.is_empty() && len.len() <= 2 && len.bytes().all(|b| b.is_ascii_digit());
        let len: u8 = match len.parse() {
            Ok(n) if len_ok && (1..=32).contains(&n) => n,
            _ => {
                return Err(self.err(
                    &v.referenced,
                    key,
                    format!("{} is not a prefix length: must be in 1..=32", echo(len)),
                ))
            }
        };
        let spanned = Spanned::new(addr.to_owned(), v.referenced, v.defined);
        Ok((self.ipv4(&spanned, key)?, len))
    }

    fn mac(&self, v: &S<String>, key: &str) -> Result<[u8; 6]> {
        let s = v.value.trim();
        let bad = || {
            self.err(
                &v.referenced,
                key,
                format!("{} is not a MAC address (xx:xx:xx:xx:xx:xx)", echo(s)),
            )
        };
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if mac == [0; 6] {
            return Err(self.err(&v.referenced, key, "the all-zero MAC address is not valid"));
        }
        if mac[0] & 1 != 0 {
            return Err(self.err(
                &v.referenced,
                key,
                format!(
                    "{} is a multicast MAC address; a unicast one is required",
                    echo(s)
                ),
            ));
        }
        Ok(mac)
    }

    fn port_ref(&self, v: &S<String>, key: &str, ports: &[Port]) -> Result<usize> {
        ports.iter().position(|p| p.name == v.value).ok_or_else(|| {
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            self.err(
                &v.referenced,
                key,
                format!(
                    "no port named {} (ports: {})",
                    echo(&v.value),
                    names.join(", ")
                ),
            )
        })
    }
}

fn list<T>(v: &Option<S<Vec<T>>>) -> &[T] {
    v.as_ref().map_or(&[], |l| l.value.as_slice())
}

/// Validates `raw` into a [`Config`].
pub(super) fn validate(raw: RawConfig, file: &str) -> Result<Config> {
    let c = Checker { file };

    // workers and eal
    let w = &raw.workers.value;
    let core_max = i64::from(MAX_CORE) - 1;
    let main_core: u32 = match raw.eal.as_ref().and_then(|e| e.value.main_core.as_ref()) {
        Some(v) => c.int(v, "eal.main_core", 0, core_max)?,
        None => 0,
    };
    if w.cores.value.is_empty() {
        return Err(c.err(
            &w.cores.referenced,
            "workers.cores",
            "no worker cores: list at least one core, e.g. [1]",
        ));
    }
    let mut cores = Vec::with_capacity(w.cores.value.len());
    for (i, v) in w.cores.value.iter().enumerate() {
        let key = format!("workers.cores[{i}]");
        let core: u32 = c.int(v, &key, 0, core_max)?;
        if cores.contains(&core) {
            return Err(c.err(&v.referenced, key, format!("core {core} is listed twice")));
        }
        cores.push(core);
    }
    let burst = c.opt_int(
        &w.burst,
        "workers.burst",
        1,
        i64::from(MAX_BURST),
        DEFAULT_BURST,
    )?;
    let idle_sleep_us = c.opt_int(
        &w.idle_sleep_us,
        "workers.idle_sleep_us",
        0,
        i64::from(MAX_IDLE_SLEEP_US),
        0,
    )?;
    // 32-byte entries, 8 bytes of wheel links and the index: ~64 bytes
    // each; 2^28 (16 GiB) at most.
    let connections = c.opt_int(
        &w.connections,
        "workers.connections",
        1024,
        1 << 28,
        DEFAULT_CONNECTIONS,
    )?;
    let workers = Workers {
        cores,
        burst,
        idle_sleep_us,
        connections,
    };

    // ports
    if raw.ports.value.is_empty() {
        return Err(c.err(
            &raw.ports.referenced,
            "ports",
            "no ports: list at least one port",
        ));
    }
    let mut ports: Vec<Port> = Vec::with_capacity(raw.ports.value.len());
    for (i, p) in raw.ports.value.iter().enumerate() {
        ports.push(port(&c, i, p, &ports)?);
    }

    let eal_args = match raw.eal.as_ref().and_then(|e| e.value.args.as_ref()) {
        Some(args) => eal_args(&c, &args.value, &ports)?,
        None => Vec::new(),
    };
    let eal = Eal {
        args: eal_args,
        main_core,
    };

    let mbufs: u32 = c.opt_int(&raw.mbufs, "mbufs", 1, i64::from(u32::MAX), DEFAULT_MBUFS)?;
    let need = super::min_mbufs(workers.cores.len(), &ports);
    if u64::from(mbufs) < need {
        // Defaulted, the error points at the ports that need more.
        let (at, what) = match &raw.mbufs {
            Some(m) => (m.referenced, format!("{mbufs} mbufs are")),
            None => (
                raw.ports.referenced,
                format!("the default of {mbufs} mbufs is"),
            ),
        };
        return Err(c.err(
            &at,
            "mbufs",
            format!(
                "{what} too few: {} workers × Σ ports (rx_desc + tx_desc) need at least {need}; raise mbufs or lower the descriptor counts",
                workers.cores.len()
            ),
        ));
    }

    // addresses
    let mut addresses: Vec<Address> = Vec::new();
    let mut address_lines: Vec<u64> = Vec::new();
    for (i, a) in list(&raw.addresses).iter().enumerate() {
        let base = format!("addresses[{i}]");
        let port = c.port_ref(&a.value.port, &format!("{base}.port"), &ports)?;
        let key = format!("{base}.address");
        let (address, prefix_len) = c.ipv4_prefix(&a.value.address, &key)?;
        if let Some(j) = addresses.iter().position(|x| x.address == address) {
            return Err(c.err(
                &a.value.address.referenced,
                key,
                format!(
                    "{address} is already a director address (addresses[{j}], line {})",
                    address_lines[j]
                ),
            ));
        }
        addresses.push(Address {
            port,
            address,
            prefix_len,
        });
        address_lines.push(a.value.address.referenced.line());
    }
    let own = |ip: Ipv4Addr| addresses.iter().position(|a| a.address == ip);

    // gateway
    let gateway = match &raw.gateway {
        None => None,
        Some(g) => {
            let g = &g.value;
            let port = c.port_ref(&g.port, "gateway.port", &ports)?;
            let address = c.ipv4(&g.address, "gateway.address")?;
            if let Some(j) = own(address) {
                return Err(c.err(
                    &g.address.referenced,
                    "gateway.address",
                    format!("{address} is the director's own address (addresses[{j}])"),
                ));
            }
            if !addresses
                .iter()
                .any(|a| a.port == port && a.contains(address))
            {
                return Err(c.err(
                    &g.address.referenced,
                    "gateway.address",
                    format!(
                        "{address} is not on-link: no director address on port `{}` has a subnet containing it",
                        ports[port].name
                    ),
                ));
            }
            Some(Gateway { port, address })
        }
    };

    // neighbors
    let mut neighbors: Vec<Neighbor> = Vec::new();
    for (i, n) in list(&raw.neighbors).iter().enumerate() {
        let base = format!("neighbors[{i}]");
        let n = &n.value;
        let port = c.port_ref(&n.port, &format!("{base}.port"), &ports)?;
        let key = format!("{base}.address");
        let address = c.ipv4(&n.address, &key)?;
        if let Some(j) = own(address) {
            return Err(c.err(
                &n.address.referenced,
                key,
                format!("{address} is the director's own address (addresses[{j}])"),
            ));
        }
        if let Some(j) = neighbors.iter().position(|x| x.address == address) {
            return Err(c.err(
                &n.address.referenced,
                key,
                format!("{address} already has a static entry (neighbors[{j}])"),
            ));
        }
        let mac = c.mac(&n.mac, &format!("{base}.mac"))?;
        neighbors.push(Neighbor { port, address, mac });
    }

    // services
    let net = Network {
        addresses: addresses
            .iter()
            .map(|a| (a.address, a.prefix_len))
            .collect(),
        gateway: gateway.is_some(),
        static_neighbors: neighbors.iter().map(|n| n.address).collect(),
    };
    let timeouts = timeouts(&c, raw.timeouts.as_ref(), "timeouts", Timeouts::default())?;
    let flag = |v: &Option<S<bool>>| v.as_ref().is_some_and(|b| b.value);
    let expire_quiescent_template = flag(&raw.expire_quiescent_template);
    let expire_nodest_conn = flag(&raw.expire_nodest_conn);
    let admin_socket = match &raw.admin_socket {
        None => None,
        Some(s) if s.value.starts_with('/') && !s.value.contains('\0') && s.value.len() < 108 => {
            Some(std::path::PathBuf::from(&s.value))
        }
        Some(s) => {
            return Err(c.err(
                &s.referenced,
                "admin_socket",
                format!(
                    "{} is not a usable socket path: an absolute path of at most 107 bytes (a Unix socket's limit)",
                    echo(&s.value)
                ),
            ))
        }
    };
    let metrics_listen = match &raw.metrics_listen {
        None => Some(super::DEFAULT_METRICS_LISTEN),
        Some(s) if s.value.trim() == "off" => None,
        Some(s) => match s.value.trim().parse::<std::net::SocketAddr>() {
            Ok(a) if a.port() != 0 => Some(a),
            _ => {
                return Err(c.err(
                    &s.referenced,
                    "metrics_listen",
                    format!(
                        "{} is not an address and port to serve metrics on (such as 127.0.0.1:9816, or \"[::1]:9816\" in quotes), nor off",
                        echo(&s.value)
                    ),
                ))
            }
        },
    };
    let exception_path = raw.exception_path.as_ref().is_none_or(|b| b.value);
    if exception_path {
        for (i, p) in ports.iter().enumerate() {
            let name = super::kernel_interface_name(&p.name);
            if let Some(j) = ports[..i]
                .iter()
                .position(|q| super::kernel_interface_name(&q.name) == name)
            {
                return Err(c.err(
                    &raw.ports.value[i].value.name.referenced,
                    format!("ports[{i}].name"),
                    format!(
                        "its kernel interface would be {name}, as ports[{j}]'s is (interface names are cut to 15 characters): make the names differ in their first 10 characters, or set exception_path: false"
                    ),
                ));
            }
        }
    }
    let sync = match &raw.sync {
        Some(s) => Some(sync(&c, &s.value, &ports, &addresses)?),
        None => None,
    };
    let vrrp = match &raw.vrrp {
        Some(v) => Some(vrrp(&c, &v.value, &ports, &addresses)?),
        None => None,
    };
    let defaults = IcmpLimits::default();
    let max = i64::from(i32::MAX);
    let icmp = IcmpLimits {
        msgs_per_sec: c.opt_int(
            &raw.icmp_msgs_per_sec,
            "icmp_msgs_per_sec",
            0,
            max,
            defaults.msgs_per_sec,
        )?,
        msgs_burst: c.opt_int(
            &raw.icmp_msgs_burst,
            "icmp_msgs_burst",
            0,
            max,
            defaults.msgs_burst,
        )?,
        ratelimit_ms: c.opt_int(
            &raw.icmp_ratelimit_ms,
            "icmp_ratelimit_ms",
            0,
            max,
            defaults.ratelimit_ms,
        )?,
    };
    let mut firewall_marks = Vec::new();
    for (i, m) in list(&raw.firewall_marks).iter().enumerate() {
        firewall_marks.push(firewall_mark(
            &c,
            &format!("firewall_marks[{i}]"),
            &m.value,
        )?);
    }
    let mut services: Vec<Service> = Vec::new();
    let mut seen: HashMap<(Ipv4Addr, u16, Protocol), (usize, u64)> = HashMap::new();
    let mut marks_seen: HashMap<u32, (usize, u64)> = HashMap::new();
    let mut names: HashMap<String, (usize, u64)> = HashMap::new();
    for (i, s) in list(&raw.services).iter().enumerate() {
        let svc = service(&c, i, s, &net, &timeouts)?;
        let line = s.referenced.line();
        if let Some(name) = &svc.name {
            if let Some((j, l)) = names.insert(name.clone(), (i, line)) {
                let at = s.value.name.as_ref().map_or(s.referenced, |n| n.referenced);
                return Err(c.err(
                    &at,
                    format!("services[{i}].name"),
                    format!(
                        "service name {} is already used by services[{j}] (line {l})",
                        echo(name)
                    ),
                ));
            }
        }
        if let Some(mark) = svc.fwmark {
            if let Some((j, l)) = marks_seen.insert(mark, (i, line)) {
                return Err(c.err(
                    &s.referenced,
                    format!("services[{i}].fwmark"),
                    format!("duplicate firewall-mark service {mark}: already defined by services[{j}] (line {l})"),
                ));
            }
            if !firewall_marks.iter().any(|r| r.mark == mark) {
                return Err(c.err(
                    &s.referenced,
                    format!("services[{i}].fwmark"),
                    format!("no firewall_marks rule gives mark {mark}, so no packet would reach this service"),
                ));
            }
        } else if let Some((j, l)) = seen.insert((svc.vip, svc.port, svc.protocol), (i, line)) {
            return Err(c.err(
                &s.referenced,
                format!("services[{i}]"),
                format!(
                    "duplicate service {} {}:{}: already defined by services[{j}] (line {l})",
                    svc.protocol, svc.vip, svc.port
                ),
            ));
        }
        services.push(svc);
    }

    Ok(Config {
        eal,
        workers,
        ports,
        mbufs,
        addresses,
        gateway,
        neighbors,
        services,
        timeouts,
        expire_quiescent_template,
        expire_nodest_conn,
        icmp,
        admin_socket,
        metrics_listen,
        exception_path,
        firewall_marks,
        sync,
        vrrp,
    })
}

/// The `vrrp:` block.
fn vrrp(c: &Checker<'_>, v: &RawVrrp, ports: &[Port], addresses: &[Address]) -> Result<Vrrp> {
    let port = c.port_ref(&v.interface, "vrrp.interface", ports)?;
    let Some(source) = super::first_address(addresses, port) else {
        return Err(c.err(
            &v.interface.referenced,
            "vrrp.interface",
            format!(
                "port {} has no address of the director's to send the VRRP advertisements from: give it one in addresses",
                echo(&v.interface.value)
            ),
        ));
    };
    let advert_ms: u32 = c.opt_int(&v.advert_int_ms, "vrrp.advert_int_ms", 10, 40_950, 1000)?;
    if !advert_ms.is_multiple_of(10) {
        let at = v.advert_int_ms.as_ref().map(|a| &a.referenced);
        return Err(c.err(
            at.unwrap_or(&v.interface.referenced),
            "vrrp.advert_int_ms",
            format!("{advert_ms} is not a multiple of 10: VRRPv3 carries the interval in centiseconds (RFC 5798 section 5.2.7)"),
        ));
    }
    let mut virtual_addrs: Vec<Ipv4Addr> = Vec::new();
    for (i, a) in v.virtual_ipaddress.value.iter().enumerate() {
        let key = format!("vrrp.virtual_ipaddress[{i}]");
        // keepalived writes them as 198.18.0.100/32 too: the length is
        // for the kernel's interface, which l4vs has none of.
        let text = a.value.trim();
        let text = match text.split_once('/') {
            Some((addr, len))
                if !len.is_empty()
                    && len.len() <= 2
                    && len.bytes().all(|b| b.is_ascii_digit())
                    && len.parse::<u8>().is_ok_and(|n| n <= 32) =>
            {
                addr
            }
            _ => text,
        };
        let addr = c.ipv4(
            &Spanned {
                value: text.to_owned(),
                referenced: a.referenced,
                defined: a.defined,
            },
            &key,
        )?;
        if virtual_addrs.contains(&addr) {
            return Err(c.err(&a.referenced, key, format!("{addr} is listed twice")));
        }
        if addresses.iter().any(|x| x.address == addr) {
            return Err(c.err(
                &a.referenced,
                key,
                format!("{addr} is one of the director's own addresses, which each director of a pair answers for itself: a virtual address moves with the master"),
            ));
        }
        virtual_addrs.push(addr);
    }
    if virtual_addrs.is_empty() || virtual_addrs.len() > l4vs_wire::vrrp::MAX_ADDRS {
        return Err(c.err(
            &v.virtual_ipaddress.referenced,
            "vrrp.virtual_ipaddress",
            "list 1 to 255 addresses: the VIPs and, for NAT, the real servers' gateway (an advertisement carries at least one, RFC 5798 section 5.2.5)",
        ));
    }
    let ms = |v: &Option<S<i64>>, key: &str, max: i64, default: u64| -> Result<Duration> {
        c.opt_int::<u64>(v, key, 0, max, default)
            .map(Duration::from_millis)
    };
    let vrid: u8 = c.int(&v.virtual_router_id, "vrrp.virtual_router_id", 1, 255)?;
    let name = match &v.name {
        Some(n) => {
            let t = n.value.trim();
            if !valid_name(t, 32) {
                return Err(c.err(
                    &n.referenced,
                    "vrrp.name",
                    format!(
                        "{} is not a valid instance name: 1 to 32 characters of A-Z a-z 0-9 _ -",
                        echo(t)
                    ),
                ));
            }
            t.to_owned()
        }
        None => format!("VI_{vrid}"),
    };
    Ok(Vrrp {
        name,
        port,
        source,
        vrid,
        priority: c.opt_int(
            &v.priority,
            "vrrp.priority",
            1,
            254,
            l4vs_wire::vrrp::PRIORITY_DEFAULT,
        )?,
        advert_int_cs: (advert_ms / 10) as u16,
        preempt: v.preempt.as_ref().is_none_or(|b| b.value),
        preempt_delay: ms(&v.preempt_delay_ms, "vrrp.preempt_delay_ms", 3_600_000, 0)?,
        addresses: virtual_addrs,
        garp_repeat: c.opt_int(&v.garp_master_repeat, "vrrp.garp_master_repeat", 1, 255, 5)?,
        garp_delay: ms(
            &v.garp_master_delay_ms,
            "vrrp.garp_master_delay_ms",
            3_600_000,
            5000,
        )?,
        checksum_as_v2: v.v3_checksum_as_v2.as_ref().is_some_and(|b| b.value),
        notify_master: command(c, "vrrp", &v.notify_master, "notify_master")?,
        notify_backup: command(c, "vrrp", &v.notify_backup, "notify_backup")?,
        notify_stop: command(c, "vrrp", &v.notify_stop, "notify_stop")?,
        notify: command(c, "vrrp", &v.notify, "notify")?,
    })
}

/// The `sync:` block.
fn sync(c: &Checker<'_>, s: &RawSync, ports: &[Port], addresses: &[Address]) -> Result<Sync> {
    let role = match s.role.value.trim() {
        "master" => SyncRole::Master,
        "backup" => SyncRole::Backup,
        "both" => SyncRole::Both,
        other => {
            return Err(c.err(
                &s.role.referenced,
                "sync.role",
                format!(
                    "{} is not a sync daemon role: master, backup or both (ipvsadm --start-daemon)",
                    echo(other)
                ),
            ))
        }
    };
    let port = c.port_ref(&s.interface, "sync.interface", ports)?;
    let Some(source) = super::first_address(addresses, port) else {
        return Err(c.err(
            &s.interface.referenced,
            "sync.interface",
            format!(
                "port {} has no address of the director's to send the sync messages from: give it one in addresses",
                echo(&s.interface.value)
            ),
        ));
    };
    let group = match &s.group {
        // The workers hand the control thread 224.0.0.0/24 only, the
        // local network control block, as a link-local sync group is.
        Some(g) => match g.value.trim().parse::<Ipv4Addr>() {
            Ok(a) if l4vs_wire::ipv4::is_local_network_control(a) => a,
            _ => {
                return Err(c.err(
                    &g.referenced,
                    "sync.group",
                    format!(
                        "{} is not a multicast group of the local network control block (224.0.0.0/24, default 224.0.0.81), which l4vs takes sync messages on",
                        echo(&g.value)
                    ),
                ))
            }
        },
        None => l4vs_wire::ipvs_sync::GROUP,
    };
    let mtu = ports[port].mtu.unwrap_or(1500);
    let most = i64::from(mtu) - l4vs_wire::ipvs_sync::IPV4_UDP_OVERHEAD as i64;
    Ok(Sync {
        role,
        syncid: c.opt_int(&s.syncid, "sync.syncid", 0, 255, 0)?,
        port,
        source,
        group,
        udp_port: c.opt_int(&s.port, "sync.port", 1, 65535, l4vs_wire::ipvs_sync::PORT)?,
        ttl: c.opt_int(&s.ttl, "sync.ttl", 1, 255, 1)?,
        // Room for a few entries at least.
        max_len: c.opt_int(&s.max_len, "sync.max_len", 128, most, most as u16)?,
        auth: match &s.auth_key {
            Some(k) => Some(SyncAuth {
                key: from_hex(k.value.trim())
                    .filter(|b| (16..=64).contains(&b.len()))
                    .ok_or_else(|| {
                        c.err(
                            &k.referenced,
                            "sync.auth_key",
                            "not a key of 16 to 64 bytes in hex (32 to 128 hex digits; the key itself is not shown)",
                        )
                    })?,
                key_id: c.opt_int(&s.auth_key_id, "sync.auth_key_id", 0, 255, 1)?,
            }),
            None => {
                if let Some(id) = &s.auth_key_id {
                    return Err(c.err(
                        &id.referenced,
                        "sync.auth_key_id",
                        "auth_key_id names the auth_key: give the key too",
                    ));
                }
                None
            }
        },
        persist_mode: s.persist_mode.as_ref().is_some_and(|b| b.value),
        sync_ports: match &s.sync_ports {
            Some(n) => {
                let v: u16 = c.int(n, "sync.sync_ports", 1, 64)?;
                if !v.is_power_of_two() {
                    return Err(c.err(
                        &n.referenced,
                        "sync.sync_ports",
                        format!("{v} is not a power of two (1, 2, 4 .. 64), as the kernel's sync_ports"),
                    ));
                }
                v
            }
            None => 1,
        },
        resync_period: match c.opt_int::<u32>(
            &s.resync_period,
            "sync.resync_period",
            0,
            86_400,
            30,
        )? {
            0 => None,
            n => Some(std::time::Duration::from_secs(u64::from(n))),
        },
    })
}

fn port(c: &Checker<'_>, i: usize, p: &S<RawPort>, earlier: &[Port]) -> Result<Port> {
    let base = format!("ports[{i}]");
    let p = &p.value;
    let name = p.name.value.trim().to_owned();
    if !valid_name(&name, 32) {
        return Err(c.err(
            &p.name.referenced,
            format!("{base}.name"),
            format!(
                "{} is not a valid port name: 1 to 32 characters of A-Z a-z 0-9 _ -",
                echo(&name)
            ),
        ));
    }
    if let Some(j) = earlier.iter().position(|q| q.name == name) {
        return Err(c.err(
            &p.name.referenced,
            format!("{base}.name"),
            format!("port name {} is already used by ports[{j}]", echo(&name)),
        ));
    }
    let device_key = format!("{base}.device");
    let device = device(c, &p.device, &device_key)?;
    if let Some(j) = earlier.iter().position(|q| q.device.name == device.name) {
        return Err(c.err(
            &p.device.referenced,
            device_key,
            format!(
                "device {} is already used by ports[{j}]",
                echo(&device.name)
            ),
        ));
    }
    let (lo, hi) = (i64::from(MIN_DESC), i64::from(MAX_DESC));
    Ok(Port {
        name,
        device,
        rx_desc: c.opt_int(&p.rx_desc, &format!("{base}.rx_desc"), lo, hi, DEFAULT_DESC)?,
        tx_desc: c.opt_int(&p.tx_desc, &format!("{base}.tx_desc"), lo, hi, DEFAULT_DESC)?,
        mtu: match &p.mtu {
            None => None,
            Some(m) => Some(c.int(m, &format!("{base}.mtu"), MIN_MTU.into(), MAX_MTU.into())?),
        },
    })
}

/// A PCI address `[DOMAIN:]BUS:DEV.FN`, normalised to `dddd:bb:dd.f`.
fn pci_address(s: &str) -> Option<String> {
    let hex = |p: &str, min: usize, max: usize| {
        (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let (rest, func) = s.rsplit_once('.')?;
    if func.len() != 1 || !matches!(func.as_bytes()[0], b'0'..=b'7') {
        return None;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, dev) = match parts.as_slice() {
        [bus, dev] => ("0000", *bus, *dev),
        [domain, bus, dev] => (*domain, *bus, *dev),
        _ => return None,
    };
    if !hex(domain, 4, 8) || !hex(bus, 2, 2) || !hex(dev, 2, 2) {
        return None;
    }
    if u8::from_str_radix(dev, 16).ok()? > 0x1f {
        return None;
    }
    Some(format!("{domain}:{bus}:{dev}.{func}").to_ascii_lowercase())
}

fn device(c: &Checker<'_>, v: &S<String>, key: &str) -> Result<Device> {
    let s = v.value.trim();
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(c.err(
            &v.referenced,
            key,
            format!(
                "{} is not a device: it must be non-empty, without whitespace",
                echo(s)
            ),
        ));
    }
    let (name, args) = match s.split_once(',') {
        Some((name, args)) => (name, Some(args)),
        None => (s, None),
    };
    if args == Some("") {
        return Err(c.err(
            &v.referenced,
            key,
            format!(
                "{} ends in a comma: device arguments expected after it",
                echo(s)
            ),
        ));
    }
    let args = args.map(str::to_owned);
    if let Some(pci) = pci_address(name) {
        return Ok(Device {
            kind: DeviceKind::Pci,
            name: pci,
            args,
        });
    }
    let vdev_name = name.starts_with(|ch: char| ch.is_ascii_alphabetic())
        && name.contains('_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !vdev_name {
        return Err(c.err(
            &v.referenced,
            key,
            format!(
                "{} is neither a PCI address (0000:03:00.0) nor a DPDK virtual device name (net_af_packet0,iface=eth0; net_tap0; ...)",
                echo(name)
            ),
        ));
    }
    Ok(Device {
        kind: DeviceKind::Vdev,
        name: name.to_owned(),
        args,
    })
}

fn eal_args(c: &Checker<'_>, args: &[S<String>], ports: &[Port]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let key = format!("eal.args[{i}]");
        let arg = a.value.as_str();
        let option = if let Some(long) = arg.strip_prefix("--") {
            long.split('=').next().map(|n| format!("--{n}"))
        } else if arg.starts_with('-') && arg.len() >= 2 {
            arg.get(..2).map(str::to_owned)
        } else {
            None
        };
        if let Some(option) = option {
            if let Some((_, what)) = RESERVED_EAL_OPTIONS.iter().find(|(o, _)| *o == option) {
                let source = if *what == "cores" {
                    "workers.cores and eal.main_core"
                } else {
                    "ports"
                };
                return Err(c.err(
                    &a.referenced,
                    key,
                    format!(
                        "{}: l4vs sets the EAL {what} itself from {source}; remove it",
                        echo(arg)
                    ),
                ));
            }
            if option == "--no-pci" {
                if let Some(p) = ports.iter().find(|p| p.device.kind == DeviceKind::Pci) {
                    return Err(c.err(
                        &a.referenced,
                        key,
                        format!(
                            "`--no-pci` would hide port {} ({}), a PCI device",
                            echo(&p.name),
                            p.device.name
                        ),
                    ));
                }
            }
        }
        out.push(arg.to_owned());
    }
    Ok(out)
}

fn parse_protocol(c: &Checker<'_>, v: &S<String>, key: &str) -> Result<Protocol> {
    match v.value.trim() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(c.err(
            &v.referenced,
            key,
            format!("unknown protocol {}: expected tcp or udp", echo(other)),
        )),
    }
}

/// `scheduler`, `sched_flags` and `mh_table_size` of a service.
fn parse_scheduler(c: &Checker<'_>, s: &RawService, base: &str) -> Result<SchedulerKind> {
    let v = &s.scheduler;
    let name = v.value.trim();
    let mut sched = match SchedulerKind::from_name(name) {
        Some(s) => s,
        None => {
            let other = name;
            return Err(c.err(
                &v.referenced,
                format!("{base}.scheduler"),
                format!(
                    "unknown scheduler {}: expected one of {} (ipvsadm -s)",
                    echo(other),
                    SchedulerKind::NAMES.join(" ")
                ),
            ));
        }
    };

    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in list(&s.sched_flags).iter().enumerate() {
        let key = format!("{base}.sched_flags[{i}]");
        let flag = f.value.trim();
        let Some(&(_, owner, is_port)) = SCHED_FLAGS.iter().find(|(n, ..)| *n == flag) else {
            let hint = if flag.starts_with("flag-") {
                "numbered flags are not taken, name the flag"
            } else {
                "ipvsadm -b"
            };
            return Err(c.err(
                &f.referenced,
                key,
                format!(
                    "unknown scheduler flag {}: expected sh-port, sh-fallback, mh-port or mh-fallback ({hint})",
                    echo(flag)
                ),
            ));
        };
        if owner != name {
            let fix = match sched {
                SchedulerKind::Sh { .. } | SchedulerKind::Mh { .. } => {
                    let what = if is_port { "port" } else { "fallback" };
                    format!("for {name} write {name}-{what}")
                }
                _ => format!("scheduler {name} takes no flags"),
            };
            return Err(c.err(
                &f.referenced,
                key,
                format!("{} is a flag of the {owner} scheduler; {fix}", echo(flag)),
            ));
        }
        if seen.contains(&flag) {
            return Err(c.err(
                &f.referenced,
                key,
                format!("{} is listed twice", echo(flag)),
            ));
        }
        seen.push(flag);
        // The owner check above leaves only sh and mh flags of their own.
        sched = sched.with_flag(flag).unwrap_or(sched);
    }

    if let Some(t) = &s.mh_table_size {
        let key = format!("{base}.mh_table_size");
        let SchedulerKind::Mh { table_size, .. } = &mut sched else {
            return Err(c.err(
                &t.referenced,
                key,
                format!("mh_table_size is for the mh scheduler; this service uses {name}"),
            ));
        };
        let size: u32 = c.int(
            t,
            &key,
            i64::from(MIN_MH_TABLE_SIZE),
            i64::from(MAX_MH_TABLE_SIZE),
        )?;
        if !is_prime(size) {
            return Err(c.err(
                &t.referenced,
                key,
                format!("{size} is not a prime: the Maglev table size must be prime (e.g. 4093, 65521, 65537, 131071)"),
            ));
        }
        *table_size = size;
    }
    Ok(sched)
}

fn parse_forward(c: &Checker<'_>, v: &S<String>, key: &str) -> Result<ForwardMethod> {
    match v.value.trim() {
        "nat" => Ok(ForwardMethod::Nat),
        "tunnel" => Ok(ForwardMethod::Tunnel),
        "dr" => Ok(ForwardMethod::DirectRouting),
        other => Err(c.err(
            &v.referenced,
            key,
            format!(
                "unknown forwarding method {}: expected nat, tunnel or dr (ipvsadm -m, -i, -g)",
                echo(other)
            ),
        )),
    }
}

fn service(
    c: &Checker<'_>,
    i: usize,
    raw: &S<RawService>,
    net: &Network,
    global: &Timeouts,
) -> Result<Service> {
    let s = &raw.value;
    let base = format!("services[{i}]");
    let name = s.name.as_ref().map(|n| n.value.trim().to_owned());
    let ops = s.ops.as_ref().is_some_and(|o| o.value);
    let persistence = s
        .persistence
        .as_ref()
        .map(|p| persistence(c, &format!("{base}.persistence"), &p.value))
        .transpose()?;
    let timeouts = timeouts(c, s.timeouts.as_ref(), &format!("{base}.timeouts"), *global)?;
    // Either a firewall mark or (vip, port, protocol), as ipvsadm -f / -t -u.
    let (fwmark, vip, port, protocol) = match (&s.fwmark, &s.vip, &s.port, &s.protocol) {
        (Some(m), None, None, None) => {
            let mark: u32 = c.int(m, &format!("{base}.fwmark"), 1, i64::from(u32::MAX))?;
            (Some(mark), Ipv4Addr::UNSPECIFIED, 0, Protocol::Tcp)
        }
        (Some(m), ..) => {
            return Err(c.err(
                &m.referenced,
                format!("{base}.fwmark"),
                "a firewall-mark service is matched by its mark: remove vip, port and protocol (the classifier rules in firewall_marks say which packets get the mark)",
            ))
        }
        (None, Some(vip), Some(port), Some(protocol)) => {
            let vip = c.ipv4(vip, &format!("{base}.vip"))?;
            let port: u16 = c.int(port, &format!("{base}.port"), 0, 65535)?;
            let protocol = parse_protocol(c, protocol, &format!("{base}.protocol"))?;
            (None, vip, port, protocol)
        }
        (None, vip, port, protocol) => {
            let missing: Vec<&str> = [("vip", vip.is_none()), ("port", port.is_none()), ("protocol", protocol.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(k, _)| *k)
                .collect();
            return Err(c.err(
                &raw.referenced,
                format!("{base}.{}", missing[0]),
                format!("missing {}: a service is vip + port + protocol, or fwmark", missing.join(", ")),
            ));
        }
    };
    let scheduler = parse_scheduler(c, s, &base)?;
    // The rules themselves are the service table's (`ipvsadm -A`); this
    // points at the key each one is about.
    let spec = ServiceSpec {
        key: match fwmark {
            Some(m) => ServiceKey::Fwmark(m),
            None => ServiceKey::Addr {
                protocol,
                vip: IpAddr::V4(vip),
                port,
            },
        },
        name: name.clone(),
        scheduler,
        persistence,
        timeouts: Some(timeouts),
        ops,
    };
    let check = |reals: usize| {
        table::check_service(&spec, reals).map_err(|e| {
            let at = |v: Option<Location>, key: &str| (v, format!("{base}.{key}"));
            let (loc, key) = match e {
                TableError::BadName(_) => at(s.name.as_ref().map(|n| n.referenced), "name"),
                TableError::ZeroPortNotPersistent => {
                    at(s.port.as_ref().map(|p| p.referenced), "port")
                }
                TableError::BadMhTableSize { .. } => match &s.mh_table_size {
                    Some(t) => at(Some(t.referenced), "mh_table_size"),
                    None => at(Some(s.scheduler.referenced), "scheduler"),
                },
                TableError::BadPersistence => {
                    at(s.persistence.as_ref().map(|p| p.referenced), "persistence")
                }
                TableError::OpsNotUdp => at(s.ops.as_ref().map(|o| o.referenced), "ops"),
                _ => (None, base.clone()),
            };
            c.err(&loc.unwrap_or(raw.referenced), key, e.to_string())
        })
    };
    check(0)?;
    let forward = parse_forward(c, &s.forward, &format!("{base}.forward"))?;
    let mut reals: Vec<Real> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    // What every real's rules, the sorry server's too, need of the service.
    let ctx = RealContext {
        vip,
        service_port: port,
        ops,
        network: net,
    };
    for (j, r) in list(&s.reals).iter().enumerate() {
        let key = format!("{base}.reals[{j}]");
        let real = real(c, &key, &r.value, ctx, forward, &s.forward)?;
        if let Some(k) = reals
            .iter()
            .position(|x| x.address == real.address && x.port == real.port)
        {
            return Err(c.err(
                &r.referenced,
                key,
                format!(
                    "duplicate real server {}:{}: already {base}.reals[{k}] (line {})",
                    real.address, real.port, lines[k]
                ),
            ));
        }
        reals.push(real);
        lines.push(r.referenced.line());
    }
    check(reals.len())?;
    let inhibit_on_failure = s.inhibit_on_failure.as_ref().is_some_and(|b| b.value);
    let sorry_server = match &s.sorry_server {
        Some(r) => {
            let key = format!("{base}.sorry_server");
            let sorry = real(c, &key, &r.value, ctx, forward, &s.forward)?;
            if let Some(h) = &r.value.check {
                return Err(c.err(
                    &h.referenced,
                    format!("{key}.check"),
                    "a sorry server is not checked: it stands in while the quorum is lost",
                ));
            }
            if reals
                .iter()
                .any(|x| x.address == sorry.address && x.port == sorry.port)
            {
                return Err(c.err(
                    &r.referenced,
                    key,
                    format!(
                        "{}:{} is a real server of the service already: a sorry server stands in when they are down",
                        sorry.address, sorry.port
                    ),
                ));
            }
            Some(sorry)
        }
        None => None,
    };
    let quorum = c.opt_int(
        &s.quorum,
        &format!("{base}.quorum"),
        1,
        i64::from(u32::MAX),
        1,
    )?;
    let hysteresis: u32 = c.opt_int(
        &s.hysteresis,
        &format!("{base}.hysteresis"),
        0,
        i64::from(u32::MAX),
        0,
    )?;
    if let Some(h) = s.hysteresis.as_ref().filter(|_| hysteresis >= quorum) {
        return Err(c.err(
            &h.referenced,
            format!("{base}.hysteresis"),
            format!(
                "{hysteresis} is not below the quorum, {quorum}: the quorum could never be lost"
            ),
        ));
    }
    let quorum_up = command(c, &base, &s.quorum_up, "quorum_up")?;
    let quorum_down = command(c, &base, &s.quorum_down, "quorum_down")?;
    let health = match &s.check {
        Some(h) => health_check(c, &format!("{base}.check"), h, protocol, fwmark, false)?,
        None => None,
    };
    let mut real_checks = std::collections::BTreeMap::new();
    for (j, r) in list(&s.reals).iter().enumerate() {
        let Some(h) = &r.value.check else { continue };
        let key = format!("{base}.reals[{j}].check");
        let own = health_check(c, &key, h, protocol, fwmark, true)?;
        if let Some(t) = h
            .value
            .through_vip
            .as_ref()
            .filter(|t| t.value && reals[j].forward != ForwardMethod::DirectRouting)
        {
            return Err(c.err(
                &t.referenced,
                format!("{key}.through_vip"),
                "it checks a direct-routing real through the VIP, and this real is not one",
            ));
        }
        real_checks.insert((reals[j].address, reals[j].port), own);
    }
    if let Some(t) = s
        .check
        .as_ref()
        .and_then(|h| h.value.through_vip.as_ref())
        .filter(|t| t.value)
    {
        let key = format!("{base}.check.through_vip");
        let why = if fwmark.is_some() {
            Some("a firewall-mark service has no VIP to check through")
        } else if !reals
            .iter()
            .any(|r| r.forward == ForwardMethod::DirectRouting)
        {
            Some("it checks direct-routing reals through the VIP, and this service has none (NAT and tunnel reals are checked at their own address)")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(c.err(&t.referenced, key, why));
        }
    }
    Ok(Service {
        name,
        fwmark,
        vip,
        port,
        protocol,
        persistence,
        ops,
        timeouts,
        scheduler,
        forward,
        inhibit_on_failure,
        check: health,
        real_checks,
        sorry_server,
        quorum,
        hysteresis,
        quorum_up,
        quorum_down,
        reals,
    })
}

/// The command of key `key` of the block at `base`, if given: not blank.
fn command(
    c: &Checker<'_>,
    base: &str,
    v: &Option<S<String>>,
    key: &str,
) -> Result<Option<String>> {
    match v {
        Some(v) if v.value.trim().is_empty() => Err(c.err(
            &v.referenced,
            format!("{base}.{key}"),
            "an empty command: give one, or leave the key out",
        )),
        Some(v) => Ok(Some(v.value.clone())),
        None => Ok(None),
    }
}

/// A `check:` block of a service, or of a real (`of_real`), where
/// `type: none` (not checked) gives `None`.
fn health_check(
    c: &Checker<'_>,
    base: &str,
    raw: &S<RawCheck>,
    protocol: Protocol,
    fwmark: Option<u32>,
    of_real: bool,
) -> Result<Option<Check>> {
    let h = &raw.value;
    if h.kind.value.trim() == "none" {
        if !of_real {
            return Err(c.err(
                &h.kind.referenced,
                format!("{base}.type"),
                "none is for a real's own check (that real is not checked): to check no real of the service, leave its check out",
            ));
        }
        // Only `type` may be written.
        if let Some(key) = h.keys_given().first() {
            return Err(c.err(
                &raw.referenced,
                format!("{base}.{key}"),
                "a check of type none (the real is not checked) has no other keys",
            ));
        }
        return Ok(None);
    }
    let within = |v: &Option<S<f64>>, key: &str, min: f64, default: f64| -> Result<Duration> {
        let Some(v) = v else {
            return Ok(Duration::from_secs_f64(default));
        };
        if v.value.is_finite() && (min..=86_400.0).contains(&v.value) {
            Ok(Duration::from_secs_f64(v.value))
        } else {
            Err(c.err(
                &v.referenced,
                format!("{base}.{key}"),
                format!("{} is not a time in seconds from {min} to 86400", v.value),
            ))
        }
    };
    let seconds = |v: &Option<S<f64>>, key: &str, default: f64| within(v, key, 0.01, default);
    let delay_loop = seconds(&h.delay_loop, "delay_loop", 60.0)?;
    let kind = match h.kind.value.trim() {
        "tcp" | "http" | "https" if protocol == Protocol::Udp && fwmark.is_none() => {
            return Err(c.err(
                &h.kind.referenced,
                format!("{base}.type"),
                format!(
                    "a {} check on a UDP service: the reals answer UDP; use udp (a datagram and its reply), or misc (a command of yours)",
                    h.kind.value.trim()
                ),
            ))
        }
        "tcp" => CheckKind::Tcp,
        "http" | "https" => {
            // Codes (200) or ranges ("200-299"), as keepalived's
            // status_code; none: keepalived's 200-299.
            let mut status_codes: Vec<u16> = Vec::new();
            for (k, code) in h.status_code.iter().flat_map(|l| l.value.iter()).enumerate() {
                let bad = || {
                    c.err(
                        &code.referenced,
                        format!("{base}.status_code[{k}]"),
                        format!(
                            "{} is not a status code 100..=599 or a range of them `lo-hi`",
                            code.value.echo()
                        ),
                    )
                };
                let one = |t: &str| t.trim().parse::<u16>().ok().filter(|n| (100..=599).contains(n));
                let (lo, hi) = match &code.value {
                    IntOrString::Int(n) => {
                        let n = u16::try_from(*n).ok().filter(|n| (100..=599).contains(n)).ok_or_else(bad)?;
                        (n, n)
                    }
                    IntOrString::Str(s) => match s.split_once('-') {
                        Some((a, b)) => (one(a).ok_or_else(bad)?, one(b).ok_or_else(bad)?),
                        None => {
                            let n = one(s).ok_or_else(bad)?;
                            (n, n)
                        }
                    },
                };
                if lo > hi {
                    return Err(bad());
                }
                status_codes.extend(lo..=hi);
            }
            if status_codes.is_empty() {
                status_codes.extend(200..=299);
            }
            status_codes.sort_unstable();
            status_codes.dedup();
            let path = h.path.as_ref().map_or("/", |p| p.value.as_str()).to_owned();
            if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
                let at = h.path.as_ref().map_or(raw.referenced, |p| p.referenced);
                return Err(c.err(
                    &at,
                    format!("{base}.path"),
                    format!("{} is not a URL path (it starts with / and has no spaces)", echo(&path)),
                ));
            }
            if let Some(v) = h.virtualhost.as_ref().filter(|v| {
                let host = v.value.trim();
                host.is_empty() || host.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            }) {
                return Err(c.err(
                    &v.referenced,
                    format!("{base}.virtualhost"),
                    format!("{} is not a host name for the Host header (no spaces or control characters)", echo(&v.value)),
                ));
            }
            let digest = match &h.digest {
                Some(d) => Some(from_hex(d.value.trim()).and_then(|b| <[u8; 16]>::try_from(b).ok()).ok_or_else(|| {
                    c.err(
                        &d.referenced,
                        format!("{base}.digest"),
                        format!("{} is not an MD5 digest (32 hex digits, as genhash prints it)", echo(&d.value)),
                    )
                })?),
                None => None,
            };
            let tls = h.kind.value.trim() == "https";
            let enable_sni = h.enable_sni.as_ref().is_some_and(|b| b.value);
            if let Some(v) = h.virtualhost.as_ref().filter(|v| {
                enable_sni
                    && rustls::pki_types::ServerName::try_from(v.value.trim())
                        .map_or(true, |n| !matches!(n, rustls::pki_types::ServerName::DnsName(_)))
            }) {
                return Err(c.err(
                    &v.referenced,
                    format!("{base}.virtualhost"),
                    format!(
                        "{} is not a DNS name, which enable_sni sends in the TLS handshake (no port, path or address)",
                        echo(&v.value)
                    ),
                ));
            }
            if let Some(b) = h.enable_sni.as_ref().filter(|b| b.value && h.virtualhost.is_none()) {
                return Err(c.err(
                    &b.referenced,
                    format!("{base}.enable_sni"),
                    "enable_sni sends the virtualhost in the TLS handshake: give a virtualhost",
                ));
            }
            CheckKind::Http {
                path,
                status_codes,
                virtualhost: h.virtualhost.as_ref().map(|v| v.value.trim().to_owned()),
                digest,
                contains: h.contains.as_ref().map(|v| v.value.clone()),
                tls,
                enable_sni,
            }
        }
        "udp" if protocol == Protocol::Tcp && fwmark.is_none() => {
            return Err(c.err(
                &h.kind.referenced,
                format!("{base}.type"),
                "a udp check on a TCP service: the reals answer TCP; use tcp, http or https",
            ))
        }
        "dns" => {
            let record_type = match &h.dns_type {
                Some(t) => DnsRecordType::parse(t.value.trim()).ok_or_else(|| {
                    let names: Vec<&str> = DnsRecordType::ALL.iter().map(|t| t.as_str()).collect();
                    c.err(
                        &t.referenced,
                        format!("{base}.dns_type"),
                        format!("{} is not a type a DNS check asks for: {}", echo(&t.value), names.join(", ")),
                    )
                })?,
                None => DnsRecordType::Soa,
            };
            let name = h.dns_name.as_ref().map_or(".", |n| n.value.trim()).to_owned();
            let valid = if name.is_empty() {
                Err("empty: write . for the root".to_owned())
            } else {
                hickory_proto::rr::Name::from_ascii(&name).map(|_| ()).map_err(|e| e.to_string())
            };
            if let Err(e) = valid {
                let at = h.dns_name.as_ref().map_or(raw.referenced, |n| n.referenced);
                return Err(c.err(
                    &at,
                    format!("{base}.dns_name"),
                    format!("{} is not a domain name: {e}", echo(&name)),
                ));
            }
            CheckKind::Dns { record_type, name }
        }
        "udp" => {
            let hex = |v: &Option<S<String>>, key: &str| -> Result<Option<Vec<u8>>> {
                let Some(v) = v else { return Ok(None) };
                let text = v.value.trim();
                from_hex(text).map(Some).ok_or_else(|| {
                    c.err(
                        &v.referenced,
                        format!("{base}.{key}"),
                        format!("{} is not bytes in hex (pairs of 0-9 a-f), as keepalived writes them", echo(text)),
                    )
                })
            };
            CheckKind::Udp {
                payload: hex(&h.payload, "payload")?.unwrap_or_default(),
                require_reply: hex(&h.require_reply, "require_reply")?,
            }
        }
        "misc" => {
            let Some(path) = h.misc_path.as_ref().filter(|p| !p.value.trim().is_empty()) else {
                return Err(c.err(
                    &raw.referenced,
                    format!("{base}.misc_path"),
                    "a misc check runs misc_path: give the command",
                ));
            };
            CheckKind::Misc {
                path: path.value.clone(),
                timeout: seconds(&h.misc_timeout, "misc_timeout", delay_loop.as_secs_f64())?,
                dynamic: h.misc_dynamic.as_ref().is_some_and(|b| b.value),
            }
        }
        other => {
            return Err(c.err(
                &h.kind.referenced,
                format!("{base}.type"),
                format!("{} is not a check l4vs has: tcp, http, https, udp, dns or misc (keepalived's TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK, DNS_CHECK, MISC_CHECK)", echo(other)),
            ))
        }
    };
    let keys_of = |kinds: &[&str]| kinds.contains(&kind.as_str());
    for (given, key, kinds) in [
        (
            h.path.as_ref().map(|v| v.referenced),
            "path",
            &["http", "https"][..],
        ),
        (
            h.status_code.as_ref().map(|v| v.referenced),
            "status_code",
            &["http", "https"],
        ),
        (
            h.virtualhost.as_ref().map(|v| v.referenced),
            "virtualhost",
            &["http", "https"],
        ),
        (
            h.contains.as_ref().map(|v| v.referenced),
            "contains",
            &["http", "https"],
        ),
        (
            h.digest.as_ref().map(|v| v.referenced),
            "digest",
            &["http", "https"],
        ),
        (
            h.enable_sni.as_ref().map(|v| v.referenced),
            "enable_sni",
            &["https"],
        ),
        (
            h.dns_type.as_ref().map(|v| v.referenced),
            "dns_type",
            &["dns"],
        ),
        (
            h.dns_name.as_ref().map(|v| v.referenced),
            "dns_name",
            &["dns"],
        ),
        (
            h.misc_timeout.as_ref().map(|v| v.referenced),
            "misc_timeout",
            &["misc"],
        ),
        (
            h.misc_dynamic.as_ref().map(|v| v.referenced),
            "misc_dynamic",
            &["misc"],
        ),
        (
            h.connect_port.as_ref().map(|v| v.referenced),
            "connect_port",
            &["tcp", "http", "https", "udp", "dns"],
        ),
        (
            h.payload.as_ref().map(|v| v.referenced),
            "payload",
            &["udp"],
        ),
        (
            h.through_vip.as_ref().map(|v| v.referenced),
            "through_vip",
            &["tcp", "http", "https", "udp", "dns"],
        ),
        (
            h.require_reply.as_ref().map(|v| v.referenced),
            "require_reply",
            &["udp"],
        ),
    ] {
        if let Some(at) = given.filter(|_| !keys_of(kinds)) {
            return Err(c.err(
                &at,
                format!("{base}.{key}"),
                format!(
                    "{key} is for {} checks, not {}",
                    match kinds.split_last() {
                        Some((last, [])) => (*last).to_owned(),
                        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                        None => String::new(),
                    },
                    kind.as_str()
                ),
            ));
        }
    }
    Ok(Some(Check {
        connect_port: match &h.connect_port {
            Some(p) => Some(c.int(p, &format!("{base}.connect_port"), 1, 65535)?),
            None => None,
        },
        delay_loop,
        connect_timeout: seconds(&h.connect_timeout, "connect_timeout", 5.0)?,
        // keepalived's defaults (check_api.c, check_http.c, check_misc.c,
        // check_dns.h): a MISC_CHECK is not retried, a DNS_CHECK 3 times,
        // an HTTP_GET or SSL_GET waits 3 s to retry, and the first check
        // of a real comes a random time within delay_loop.
        retry: c.opt_int(
            &h.retry,
            &format!("{base}.retry"),
            0,
            100,
            match kind {
                CheckKind::Misc { .. } => 0,
                CheckKind::Dns { .. } => 3,
                _ => 1,
            },
        )?,
        delay_before_retry: seconds(
            &h.delay_before_retry,
            "delay_before_retry",
            if matches!(kind, CheckKind::Http { .. }) {
                3.0
            } else {
                1.0
            },
        )?,
        alpha: h.alpha.as_ref().is_some_and(|b| b.value),
        warmup: within(&h.warmup, "warmup", 0.0, delay_loop.as_secs_f64())?,
        notify_up: command(c, base, &h.notify_up, "notify_up")?,
        notify_down: command(c, base, &h.notify_down, "notify_down")?,
        through_vip: h.through_vip.as_ref().is_some_and(|b| b.value),
        kind,
    }))
}

/// A real server of a service: `ctx` is what its rules need of the
/// service, `svc_forward` the service's method and where it is written.
fn real(
    c: &Checker<'_>,
    base: &str,
    r: &RawReal,
    ctx: RealContext<'_>,
    svc_forward: ForwardMethod,
    svc_forward_at: &S<String>,
) -> Result<Real> {
    let svc_port = ctx.service_port;
    let addr_key = format!("{base}.address");
    let address = c.ipv4(&r.address, &addr_key)?;
    let forward = match &r.forward {
        Some(f) => parse_forward(c, f, &format!("{base}.forward"))?,
        None => svc_forward,
    };
    let port_key = format!("{base}.port");
    let port = match &r.port {
        None => 0,
        Some(p) => {
            let port: u16 = c.int(p, &port_key, 0, 65535)?;
            // Written out, 0 is no port at all, which NAT cannot rewrite
            // to (left out, the port is the service's).
            if forward == ForwardMethod::Nat && port == 0 && svc_port != 0 {
                return Err(c.err(
                    &p.referenced,
                    port_key,
                    format!("a NAT real server needs a port to rewrite to: use 1..=65535 or leave it out for the service port {svc_port}"),
                ));
            }
            port
        }
    };
    let weight = c.opt_int(
        &r.weight,
        &format!("{base}.weight"),
        0,
        i64::from(MAX_WEIGHT),
        1,
    )?;
    let upper_key = format!("{base}.upper_threshold");
    let lower_key = format!("{base}.lower_threshold");
    let max = i64::from(MAX_THRESHOLD);
    let upper_threshold = c.opt_int(&r.upper_threshold, &upper_key, 0, max, 0)?;
    let lower_threshold: u32 = c.opt_int(&r.lower_threshold, &lower_key, 0, max, 0)?;
    // The rules themselves are the service table's (`ipvsadm -a`).
    let spec = RealSpec {
        addr: IpAddr::V4(address),
        port,
        weight,
        method: forward,
        upper_threshold,
        lower_threshold,
    };
    let real = table::check_real(ctx, &spec).map_err(|e| {
        let at = |v: &Option<S<i64>>| v.as_ref().map(|v| v.referenced);
        if let TableError::OpsWithNat = e {
            // Said by the real's own `forward`, or the service's.
            return match &r.forward {
                Some(f) => c.err(&f.referenced, format!("{base}.forward"), e.to_string()),
                None => {
                    let svc = base.rsplit_once(".reals").map_or(base, |(s, _)| s);
                    c.err(
                        &svc_forward_at.referenced,
                        format!("{svc}.forward"),
                        e.to_string(),
                    )
                }
            };
        }
        let (key, loc) = match e.real_field() {
            RealField::Port => (port_key, at(&r.port)),
            RealField::Weight => (format!("{base}.weight"), at(&r.weight)),
            RealField::UpperThreshold => (upper_key, at(&r.upper_threshold)),
            RealField::LowerThreshold => (lower_key, at(&r.lower_threshold)),
            RealField::Address | RealField::Other => (addr_key, None),
        };
        c.err(&loc.unwrap_or(r.address.referenced), key, e.to_string())
    })?;
    Ok(Real {
        address: real.addr,
        port: real.port,
        weight: real.weight,
        forward: real.method,
        upper_threshold: real.upper_threshold,
        lower_threshold: real.lower_threshold,
    })
}

/// `timeouts`, over `base`: each key an IPVS state, 1..=2147483 s (IPVS
/// keeps timeouts in jiffies in an int).
fn timeouts(
    c: &Checker<'_>,
    raw: Option<&S<RawTimeouts>>,
    key: &str,
    base: Timeouts,
) -> Result<Timeouts> {
    let Some(raw) = raw else { return Ok(base) };
    let t = &raw.value;
    let f = |v: &Option<S<i64>>, name: &str, d: u32| {
        c.opt_int(v, &format!("{key}.{name}"), 1, i64::from(MAX_TIMEOUT_S), d)
    };
    Ok(Timeouts {
        tcp_established: f(&t.tcp_established, "tcp_established", base.tcp_established)?,
        tcp_syn_sent: f(&t.tcp_syn_sent, "tcp_syn_sent", base.tcp_syn_sent)?,
        tcp_syn_recv: f(&t.tcp_syn_recv, "tcp_syn_recv", base.tcp_syn_recv)?,
        tcp_fin_wait: f(&t.tcp_fin_wait, "tcp_fin_wait", base.tcp_fin_wait)?,
        tcp_time_wait: f(&t.tcp_time_wait, "tcp_time_wait", base.tcp_time_wait)?,
        tcp_close: f(&t.tcp_close, "tcp_close", base.tcp_close)?,
        tcp_close_wait: f(&t.tcp_close_wait, "tcp_close_wait", base.tcp_close_wait)?,
        tcp_last_ack: f(&t.tcp_last_ack, "tcp_last_ack", base.tcp_last_ack)?,
        tcp_listen: f(&t.tcp_listen, "tcp_listen", base.tcp_listen)?,
        tcp_synack: f(&t.tcp_synack, "tcp_synack", base.tcp_synack)?,
        udp: f(&t.udp, "udp", base.udp)?,
    })
}

/// `persistence: { timeout, netmask }`; netmask as a prefix length or a
/// dotted mask (ipvsadm -M).
fn persistence(c: &Checker<'_>, key: &str, p: &RawPersistence) -> Result<Persistence> {
    let timeout = c.opt_int(
        &p.timeout,
        &format!("{key}.timeout"),
        1,
        i64::from(MAX_TIMEOUT_S),
        super::DEFAULT_PERSISTENCE_S,
    )?;
    let netmask = match &p.netmask {
        None => 32,
        Some(m) => {
            let k = format!("{key}.netmask");
            let prefix_len = match &m.value {
                IntOrString::Int(n) => u8::try_from(*n).ok().filter(|n| *n <= 32),
                IntOrString::Str(s) => s.parse().ok().and_then(mask_prefix_len),
            };
            match prefix_len {
                Some(n) => n,
                None => {
                    return Err(c.err(
                        &m.referenced,
                        k,
                        format!("{} is not a netmask: a prefix length 0..=32 or a contiguous mask like 255.255.255.0", m.value.echo()),
                    ))
                }
            }
        }
    };
    Ok(Persistence { timeout, netmask })
}

/// One `firewall_marks` rule.
fn firewall_mark(c: &Checker<'_>, key: &str, m: &RawMark) -> Result<FirewallMark> {
    let mark: u32 = c.int(&m.mark, &format!("{key}.mark"), 1, i64::from(u32::MAX))?;
    let (destination, prefix_len) = c.ipv4_prefix(&m.destination, &format!("{key}.destination"))?;
    let protocol = m
        .protocol
        .as_ref()
        .map(|p| parse_protocol(c, p, &format!("{key}.protocol")))
        .transpose()?;
    let mut ports = Vec::new();
    for (j, p) in list(&m.ports).iter().enumerate() {
        let k = format!("{key}.ports[{j}]");
        let bad = || {
            c.err(
                &p.referenced,
                &k,
                format!(
                    "{} is not a port 1..=65535 or a range `lo-hi`",
                    p.value.echo()
                ),
            )
        };
        let range = match &p.value {
            IntOrString::Int(n) => {
                let n = u16::try_from(*n).ok().filter(|n| *n != 0).ok_or_else(bad)?;
                (n, n)
            }
            IntOrString::Str(s) => {
                let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
                let lo: u16 = lo.trim().parse().ok().filter(|n| *n != 0).ok_or_else(bad)?;
                let hi: u16 = hi
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= lo)
                    .ok_or_else(bad)?;
                (lo, hi)
            }
        };
        ports.push(range);
    }
    if !ports.is_empty() && protocol.is_none() {
        return Err(c.err(
            &m.mark.referenced,
            format!("{key}.protocol"),
            "ports need a protocol (tcp or udp), as iptables --dport needs -p",
        ));
    }
    Ok(FirewallMark {
        mark,
        destination,
        prefix_len,
        protocol,
        ports,
    })
}
