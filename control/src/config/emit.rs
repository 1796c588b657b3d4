//! Prints a [`Config`] in the input schema, defaults filled in.
//!
//! The output mirrors `raw` key for key, so that `parse(to_yaml(c)) == c`;
//! short records (addresses, neighbours, reals) are flow mappings, one a line.
//! Settings whose default means "none" (scheduler flags, connection
//! thresholds, `ops`) are printed only when set, as the gateway is; every other
//! default, `mh_table_size` included, is printed.

use serde::Serialize;
use serde_saphyr::{FlowMap, FlowSeq};

use std::collections::BTreeMap;

use super::{format_mac, Config, SchedulerKind, Timeouts};

#[derive(Serialize)]
struct Out<'a> {
    eal: OutEal<'a>,
    workers: OutWorkers<'a>,
    ports: Vec<OutPort<'a>>,
    mbufs: u32,
    addresses: Vec<FlowMap<OutAddress<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<FlowMap<OutGateway<'a>>>,
    neighbors: Vec<FlowMap<OutNeighbor<'a>>>,
    timeouts: FlowMap<BTreeMap<&'static str, u32>>,
    expire_quiescent_template: bool,
    expire_nodest_conn: bool,
    icmp_msgs_per_sec: u32,
    icmp_msgs_burst: u32,
    icmp_ratelimit_ms: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_socket: Option<String>,
    metrics_listen: String,
    exception_path: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<OutSync<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrrp: Option<OutVrrp<'a>>,
    firewall_marks: Vec<FlowMap<OutMark>>,
    services: Vec<OutService<'a>>,
}

#[derive(Serialize)]
struct OutSync<'a> {
    role: &'static str,
    interface: &'a str,
    syncid: u8,
    group: String,
    port: u16,
    ttl: u8,
    max_len: u16,
    resync_period: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_key_id: Option<u8>,
    persist_mode: bool,
    sync_ports: u16,
}

#[derive(Serialize)]
struct OutVrrp<'a> {
    name: &'a str,
    interface: &'a str,
    virtual_router_id: u8,
    priority: u8,
    advert_int_ms: u32,
    preempt: bool,
    preempt_delay_ms: u64,
    virtual_ipaddress: Vec<String>,
    garp_master_repeat: u32,
    garp_master_delay_ms: u64,
    v3_checksum_as_v2: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_master: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_backup: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_stop: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<&'a str>,
}

#[derive(Serialize)]
struct OutMark {
    mark: u32,
    destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
}

#[derive(Serialize)]
struct OutPersistence {
    timeout: u32,
    netmask: u8,
}

/// Timeouts by IPVS state name.
fn timeout_map(t: &Timeouts) -> BTreeMap<&'static str, u32> {
    BTreeMap::from([
        ("tcp_established", t.tcp_established),
        ("tcp_syn_sent", t.tcp_syn_sent),
        ("tcp_syn_recv", t.tcp_syn_recv),
        ("tcp_fin_wait", t.tcp_fin_wait),
        ("tcp_time_wait", t.tcp_time_wait),
        ("tcp_close", t.tcp_close),
        ("tcp_close_wait", t.tcp_close_wait),
        ("tcp_last_ack", t.tcp_last_ack),
        ("tcp_listen", t.tcp_listen),
        ("tcp_synack", t.tcp_synack),
        ("udp", t.udp),
    ])
}

#[derive(Serialize)]
struct OutEal<'a> {
    args: FlowSeq<&'a [String]>,
    main_core: u32,
}

#[derive(Serialize)]
struct OutWorkers<'a> {
    cores: FlowSeq<&'a [u32]>,
    burst: u16,
    idle_sleep_us: u32,
    connections: u32,
}

#[derive(Serialize)]
struct OutPort<'a> {
    name: &'a str,
    device: String,
    rx_desc: u16,
    tx_desc: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u16>,
}

#[derive(Serialize)]
struct OutAddress<'a> {
    port: &'a str,
    address: String,
}

#[derive(Serialize)]
struct OutGateway<'a> {
    port: &'a str,
    address: String,
}

#[derive(Serialize)]
struct OutNeighbor<'a> {
    port: &'a str,
    address: String,
    mac: String,
}

#[derive(Serialize)]
struct OutService<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence: Option<FlowMap<OutPersistence>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ops: bool,
    /// Only the timeouts that differ from the global ones.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    timeouts: BTreeMap<&'static str, u32>,
    scheduler: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sched_flags: Option<FlowSeq<Vec<&'static str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mh_table_size: Option<u32>,
    forward: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    inhibit_on_failure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<OutCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sorry_server: Option<FlowMap<OutReal>>,
    quorum: u32,
    hysteresis: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    quorum_up: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quorum_down: Option<String>,
    reals: Vec<FlowMap<OutReal>>,
}

/// A `check:` block with every value filled in (seconds for times).
#[derive(Serialize)]
struct OutCheck {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_port: Option<u16>,
    delay_loop: f64,
    connect_timeout: f64,
    retry: u32,
    delay_before_retry: f64,
    alpha: bool,
    warmup: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<FlowSeq<Vec<StatusCodes>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    virtualhost: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    misc_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    misc_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    misc_dynamic: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_sni: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_up: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_down: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    through_vip: bool,
}

fn out_check(c: &super::Check) -> OutCheck {
    let mut out = OutCheck {
        kind: c.kind.as_str(),
        connect_port: c.connect_port,
        delay_loop: c.delay_loop.as_secs_f64(),
        connect_timeout: c.connect_timeout.as_secs_f64(),
        retry: c.retry,
        delay_before_retry: c.delay_before_retry.as_secs_f64(),
        alpha: c.alpha,
        warmup: c.warmup.as_secs_f64(),
        path: None,
        status_code: None,
        virtualhost: None,
        contains: None,
        misc_path: None,
        misc_timeout: None,
        misc_dynamic: None,
        payload: None,
        require_reply: None,
        digest: None,
        enable_sni: None,
        dns_type: None,
        dns_name: None,
        notify_up: c.notify_up.clone(),
        notify_down: c.notify_down.clone(),
        through_vip: c.through_vip,
    };
    match &c.kind {
        super::CheckKind::Tcp => {}
        super::CheckKind::Http {
            path,
            status_codes,
            virtualhost,
            digest,
            contains,
            tls,
            enable_sni,
        } => {
            out.path = Some(path.clone());
            out.status_code = Some(FlowSeq(status_ranges(status_codes)));
            out.virtualhost = virtualhost.clone();
            out.digest = digest.as_ref().map(|d| super::to_hex(d));
            out.contains = contains.clone();
            out.enable_sni = (*tls && *enable_sni).then_some(true);
        }
        super::CheckKind::Dns { record_type, name } => {
            out.dns_type = Some(record_type.as_str());
            out.dns_name = Some(name.clone());
        }
        super::CheckKind::Udp {
            payload,
            require_reply,
        } => {
            out.payload = Some(super::to_hex(payload));
            out.require_reply = require_reply.as_deref().map(super::to_hex);
        }
        super::CheckKind::Misc {
            path,
            timeout,
            dynamic,
        } => {
            out.misc_path = Some(path.clone());
            out.misc_timeout = Some(timeout.as_secs_f64());
            out.misc_dynamic = Some(*dynamic);
        }
    }
    out
}

#[derive(Serialize)]
struct OutReal {
    address: String,
    /// Absent for fwmark and port-zero services (the packet's own port).
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    weight: u32,
    forward: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<OutRealCheck>,
}

/// A status code, or a run of them as `lo-hi`.
#[derive(Serialize)]
#[serde(untagged)]
enum StatusCodes {
    One(u16),
    Range(String),
}

/// Sorted `codes` as codes and `lo-hi` ranges: `[200-299]`, `[200, 301]`.
fn status_ranges(codes: &[u16]) -> Vec<StatusCodes> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let mut j = i;
        while j + 1 < codes.len() && codes[j + 1] == codes[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            StatusCodes::Range(format!("{}-{}", codes[i], codes[j]))
        } else {
            StatusCodes::One(codes[i])
        });
        i = j + 1;
    }
    out
}

/// A real's own check: a check block, or `type: none`.
#[derive(Serialize)]
#[serde(untagged)]
enum OutRealCheck {
    None {
        #[serde(rename = "type")]
        kind: &'static str,
    },
    Check(Box<OutCheck>),
}

/// `Some(v)` unless `v` is 0 ("none"), which is left out of the output.
/// Real `r` of service `s` as the config writes it.
fn out_real(s: &super::Service, r: &super::Real) -> FlowMap<OutReal> {
    FlowMap(OutReal {
        address: r.address.to_string(),
        port: (s.port != 0).then_some(r.port),
        weight: r.weight,
        forward: r.forward.as_str(),
        upper_threshold: set(r.upper_threshold),
        lower_threshold: set(r.lower_threshold),
        check: s
            .real_checks
            .get(&(r.address, r.port))
            .map(|own| match own {
                Some(c) => OutRealCheck::Check(Box::new(out_check(c))),
                None => OutRealCheck::None { kind: "none" },
            }),
    })
}

fn set(v: u32) -> Option<u32> {
    (v != 0).then_some(v)
}

pub(super) fn to_yaml(cfg: &Config) -> String {
    let port = |i: usize| cfg.ports[i].name.as_str();
    let out = Out {
        eal: OutEal {
            args: FlowSeq(&cfg.eal.args),
            main_core: cfg.eal.main_core,
        },
        workers: OutWorkers {
            cores: FlowSeq(&cfg.workers.cores),
            burst: cfg.workers.burst,
            idle_sleep_us: cfg.workers.idle_sleep_us,
            connections: cfg.workers.connections,
        },
        ports: cfg
            .ports
            .iter()
            .map(|p| OutPort {
                name: &p.name,
                device: p.device.spec(),
                rx_desc: p.rx_desc,
                tx_desc: p.tx_desc,
                mtu: p.mtu,
            })
            .collect(),
        mbufs: cfg.mbufs,
        addresses: cfg
            .addresses
            .iter()
            .map(|a| {
                FlowMap(OutAddress {
                    port: port(a.port),
                    address: format!("{}/{}", a.address, a.prefix_len),
                })
            })
            .collect(),
        gateway: cfg.gateway.map(|g| {
            FlowMap(OutGateway {
                port: port(g.port),
                address: g.address.to_string(),
            })
        }),
        neighbors: cfg
            .neighbors
            .iter()
            .map(|n| {
                FlowMap(OutNeighbor {
                    port: port(n.port),
                    address: n.address.to_string(),
                    mac: format_mac(&n.mac),
                })
            })
            .collect(),
        timeouts: FlowMap(timeout_map(&cfg.timeouts)),
        expire_quiescent_template: cfg.expire_quiescent_template,
        expire_nodest_conn: cfg.expire_nodest_conn,
        icmp_msgs_per_sec: cfg.icmp.msgs_per_sec,
        icmp_msgs_burst: cfg.icmp.msgs_burst,
        icmp_ratelimit_ms: cfg.icmp.ratelimit_ms,
        admin_socket: cfg.admin_socket.as_ref().map(|p| p.display().to_string()),
        metrics_listen: cfg
            .metrics_listen
            .map_or_else(|| "off".to_owned(), |a| a.to_string()),
        exception_path: cfg.exception_path,
        firewall_marks: cfg
            .firewall_marks
            .iter()
            .map(|m| {
                FlowMap(OutMark {
                    mark: m.mark,
                    destination: format!("{}/{}", m.destination, m.prefix_len),
                    protocol: m.protocol.map(|p| p.as_str()),
                    ports: m
                        .ports
                        .iter()
                        .map(|(lo, hi)| {
                            if lo == hi {
                                lo.to_string()
                            } else {
                                format!("{lo}-{hi}")
                            }
                        })
                        .collect(),
                })
            })
            .collect(),
        sync: cfg.sync.as_ref().map(|s| OutSync {
            role: s.role.as_str(),
            interface: &cfg.ports[s.port].name,
            syncid: s.syncid,
            group: s.group.to_string(),
            port: s.udp_port,
            ttl: s.ttl,
            max_len: s.max_len,
            resync_period: s.resync_period.map_or(0, |d| d.as_secs()),
            auth_key: s.auth.as_ref().map(|a| super::to_hex(&a.key)),
            auth_key_id: s.auth.as_ref().map(|a| a.key_id),
            persist_mode: s.persist_mode,
            sync_ports: s.sync_ports,
        }),
        vrrp: cfg.vrrp.as_ref().map(|v| OutVrrp {
            name: &v.name,
            interface: &cfg.ports[v.port].name,
            virtual_router_id: v.vrid,
            priority: v.priority,
            advert_int_ms: u32::from(v.advert_int_cs) * 10,
            preempt: v.preempt,
            preempt_delay_ms: v.preempt_delay.as_millis() as u64,
            virtual_ipaddress: v.addresses.iter().map(ToString::to_string).collect(),
            garp_master_repeat: v.garp_repeat,
            garp_master_delay_ms: v.garp_delay.as_millis() as u64,
            v3_checksum_as_v2: v.checksum_as_v2,
            notify_master: v.notify_master.as_deref(),
            notify_backup: v.notify_backup.as_deref(),
            notify_stop: v.notify_stop.as_deref(),
            notify: v.notify.as_deref(),
        }),
        services: cfg
            .services
            .iter()
            .map(|s| OutService {
                name: s.name.as_deref(),
                fwmark: s.fwmark,
                vip: s.fwmark.is_none().then(|| s.vip.to_string()),
                port: s.fwmark.is_none().then_some(s.port),
                protocol: s.fwmark.is_none().then(|| s.protocol.as_str()),
                persistence: s.persistence.map(|p| {
                    FlowMap(OutPersistence {
                        timeout: p.timeout,
                        netmask: p.netmask,
                    })
                }),
                ops: s.ops,
                timeouts: {
                    let global = timeout_map(&cfg.timeouts);
                    timeout_map(&s.timeouts)
                        .into_iter()
                        .filter(|(k, v)| global.get(k) != Some(v))
                        .collect()
                },
                scheduler: s.scheduler.as_str(),
                sched_flags: Some(s.scheduler.flags().collect::<Vec<_>>())
                    .filter(|f| !f.is_empty())
                    .map(FlowSeq),
                mh_table_size: match s.scheduler {
                    SchedulerKind::Mh { table_size, .. } => Some(table_size),
                    _ => None,
                },
                forward: s.forward.as_str(),
                inhibit_on_failure: s.inhibit_on_failure,
                check: s.check.as_ref().map(out_check),
                sorry_server: s.sorry_server.as_ref().map(|r| out_real(s, r)),
                quorum: s.quorum,
                hysteresis: s.hysteresis,
                quorum_up: s.quorum_up.clone(),
                quorum_down: s.quorum_down.clone(),
                reals: s.reals.iter().map(|r| out_real(s, r)).collect(),
            })
            .collect(),
    };
    // Serializing plain strings, integers, sequences and maps cannot fail.
    serde_saphyr::to_string(&out).expect("serializing the effective config")
}
