//! The YAML document as written, before validation.
//!
//! Every value that a rule may reject is `Spanned` so the error can point at
//! it. Numbers are read as `i64` and range-checked in `validate`, which gives
//! one "must be in a..=b" message for every out-of-range value (negative
//! included). Names (protocol, scheduler, flags, forward) are strings for the
//! same reason: the messages and the ipvsadm hints are ours.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub eal: Option<S<RawEal>>,
    pub workers: S<RawWorkers>,
    pub ports: S<Vec<S<RawPort>>>,
    #[serde(default)]
    pub mbufs: Option<S<i64>>,
    #[serde(default)]
    pub addresses: Option<S<Vec<S<RawAddress>>>>,
    #[serde(default)]
    pub gateway: Option<S<RawGateway>>,
    #[serde(default)]
    pub neighbors: Option<S<Vec<S<RawNeighbor>>>>,
    #[serde(default)]
    pub services: Option<S<Vec<S<RawService>>>>,
    #[serde(default)]
    pub timeouts: Option<S<RawTimeouts>>,
    #[serde(default)]
    pub expire_quiescent_template: Option<S<bool>>,
    #[serde(default)]
    pub expire_nodest_conn: Option<S<bool>>,
    #[serde(default)]
    pub icmp_msgs_per_sec: Option<S<i64>>,
    #[serde(default)]
    pub icmp_msgs_burst: Option<S<i64>>,
    #[serde(default)]
    pub icmp_ratelimit_ms: Option<S<i64>>,
    #[serde(default)]
    pub firewall_marks: Option<S<Vec<S<RawMark>>>>,
    #[serde(default)]
    pub admin_socket: Option<S<String>>,
    #[serde(default)]
    pub metrics_listen: Option<S<String>>,
    #[serde(default)]
    pub exception_path: Option<S<bool>>,
    #[serde(default)]
    pub sync: Option<S<RawSync>>,
    #[serde(default)]
    pub vrrp: Option<S<RawVrrp>>,
}

/// The VRRP instance, keepalived's `vrrp_instance` keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrp {
    #[serde(default)]
    pub name: Option<S<String>>,
    pub interface: S<String>,
    pub virtual_router_id: S<i64>,
    #[serde(default)]
    pub priority: Option<S<i64>>,
    #[serde(default)]
    pub advert_int_ms: Option<S<i64>>,
    #[serde(default)]
    pub preempt: Option<S<bool>>,
    #[serde(default)]
    pub preempt_delay_ms: Option<S<i64>>,
    pub virtual_ipaddress: S<Vec<S<String>>>,
    #[serde(default)]
    pub garp_master_repeat: Option<S<i64>>,
    #[serde(default)]
    pub garp_master_delay_ms: Option<S<i64>>,
    #[serde(default)]
    pub v3_checksum_as_v2: Option<S<bool>>,
    #[serde(default)]
    pub notify_master: Option<S<String>>,
    #[serde(default)]
    pub notify_backup: Option<S<String>>,
    #[serde(default)]
    pub notify_stop: Option<S<String>>,
    #[serde(default)]
    pub notify: Option<S<String>>,
}

/// The sync daemon, ipvsadm's `--start-daemon` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub role: S<String>,
    pub interface: S<String>,
    #[serde(default)]
    pub syncid: Option<S<i64>>,
    #[serde(default)]
    pub group: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<i64>>,
    #[serde(default)]
    pub ttl: Option<S<i64>>,
    #[serde(default)]
    pub max_len: Option<S<i64>>,
    #[serde(default)]
    pub resync_period: Option<S<i64>>,
    #[serde(default)]
    pub auth_key: Option<S<String>>,
    #[serde(default)]
    pub auth_key_id: Option<S<i64>>,
    #[serde(default)]
    pub persist_mode: Option<S<bool>>,
    #[serde(default)]
    pub sync_ports: Option<S<i64>>,
}

/// Connection timeouts in seconds, IPVS state names.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    #[serde(default)]
    pub tcp_established: Option<S<i64>>,
    #[serde(default)]
    pub tcp_syn_sent: Option<S<i64>>,
    #[serde(default)]
    pub tcp_syn_recv: Option<S<i64>>,
    #[serde(default)]
    pub tcp_fin_wait: Option<S<i64>>,
    #[serde(default)]
    pub tcp_time_wait: Option<S<i64>>,
    #[serde(default)]
    pub tcp_close: Option<S<i64>>,
    #[serde(default)]
    pub tcp_close_wait: Option<S<i64>>,
    #[serde(default)]
    pub tcp_last_ack: Option<S<i64>>,
    #[serde(default)]
    pub tcp_listen: Option<S<i64>>,
    #[serde(default)]
    pub tcp_synack: Option<S<i64>>,
    #[serde(default)]
    pub udp: Option<S<i64>>,
}

/// A classifier rule giving packets a firewall mark.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMark {
    pub mark: S<i64>,
    pub destination: S<String>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub ports: Option<S<Vec<S<IntOrString>>>>,
}

/// Persistence of a service (ipvsadm -p, -M).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersistence {
    #[serde(default)]
    pub timeout: Option<S<i64>>,
    #[serde(default)]
    pub netmask: Option<S<IntOrString>>,
}

/// A YAML scalar that may be written as a number or a string: a port or
/// a `lo-hi` port range, a prefix length or a dotted netmask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    /// The value as an error message echoes it: the integer, or the text by
    /// [`super::echo`].
    pub(super) fn echo(&self) -> String {
        match self {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::Str(s) => super::echo(s),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                // Plain scalars can reach here as text: a number is a number.
                Ok(match v.trim().parse::<i64>() {
                    Ok(n) => IntOrString::Int(n),
                    Err(_) => IntOrString::Str(v.to_owned()),
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    #[serde(default)]
    pub args: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub main_core: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    pub cores: S<Vec<S<i64>>>,
    #[serde(default)]
    pub burst: Option<S<i64>>,
    #[serde(default)]
    pub idle_sleep_us: Option<S<i64>>,
    #[serde(default)]
    pub connections: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: S<String>,
    pub device: S<String>,
    #[serde(default)]
    pub rx_desc: Option<S<i64>>,
    #[serde(default)]
    pub tx_desc: Option<S<i64>>,
    #[serde(default)]
    pub mtu: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAddress {
    pub port: S<String>,
    pub address: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub port: S<String>,
    pub address: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbor {
    pub port: S<String>,
    pub address: S<String>,
    pub mac: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    #[serde(default)]
    pub name: Option<S<String>>,
    #[serde(default)]
    pub vip: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<i64>>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub fwmark: Option<S<i64>>,
    #[serde(default)]
    pub persistence: Option<S<RawPersistence>>,
    #[serde(default)]
    pub ops: Option<S<bool>>,
    #[serde(default)]
    pub timeouts: Option<S<RawTimeouts>>,
    pub scheduler: S<String>,
    #[serde(default)]
    pub sched_flags: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub mh_table_size: Option<S<i64>>,
    pub forward: S<String>,
    #[serde(default)]
    pub inhibit_on_failure: Option<S<bool>>,
    #[serde(default)]
    pub check: Option<S<RawCheck>>,
    #[serde(default)]
    pub sorry_server: Option<S<RawReal>>,
    #[serde(default)]
    pub quorum: Option<S<i64>>,
    #[serde(default)]
    pub hysteresis: Option<S<i64>>,
    #[serde(default)]
    pub quorum_up: Option<S<String>>,
    #[serde(default)]
    pub quorum_down: Option<S<String>>,
    #[serde(default)]
    pub reals: Option<S<Vec<S<RawReal>>>>,
}

/// A health check, keepalived's keys (TCP_CHECK, HTTP_GET, SSL_GET,
/// UDP_CHECK, DNS_CHECK, MISC_CHECK).
/// Times are seconds, fractions allowed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    #[serde(rename = "type")]
    pub kind: S<String>,
    #[serde(default)]
    pub connect_port: Option<S<i64>>,
    #[serde(default)]
    pub delay_loop: Option<S<f64>>,
    #[serde(default)]
    pub connect_timeout: Option<S<f64>>,
    #[serde(default)]
    pub retry: Option<S<i64>>,
    #[serde(default)]
    pub delay_before_retry: Option<S<f64>>,
    #[serde(default)]
    pub alpha: Option<S<bool>>,
    #[serde(default)]
    pub warmup: Option<S<f64>>,
    #[serde(default)]
    pub path: Option<S<String>>,
    #[serde(default)]
    pub status_code: Option<S<Vec<S<IntOrString>>>>,
    #[serde(default)]
    pub virtualhost: Option<S<String>>,
    #[serde(default)]
    pub contains: Option<S<String>>,
    #[serde(default)]
    pub digest: Option<S<String>>,
    #[serde(default)]
    pub enable_sni: Option<S<bool>>,
    #[serde(default)]
    pub dns_type: Option<S<String>>,
    #[serde(default)]
    pub dns_name: Option<S<String>>,
    #[serde(default)]
    pub misc_path: Option<S<String>>,
    #[serde(default)]
    pub misc_timeout: Option<S<f64>>,
    #[serde(default)]
    pub misc_dynamic: Option<S<bool>>,
    #[serde(default)]
    pub payload: Option<S<String>>,
    #[serde(default)]
    pub require_reply: Option<S<String>>,
    #[serde(default)]
    pub notify_up: Option<S<String>>,
    #[serde(default)]
    pub notify_down: Option<S<String>>,
    #[serde(default)]
    pub through_vip: Option<S<bool>>,
}

impl RawCheck {
    /// The keys written besides `type`, by name.
    pub(super) fn keys_given(&self) -> Vec<&'static str> {
        [
            ("connect_port", self.connect_port.is_some()),
            ("delay_loop", self.delay_loop.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("retry", self.retry.is_some()),
            ("delay_before_retry", self.delay_before_retry.is_some()),
            ("alpha", self.alpha.is_some()),
            ("warmup", self.warmup.is_some()),
            ("path", self.path.is_some()),
            ("status_code", self.status_code.is_some()),
            ("virtualhost", self.virtualhost.is_some()),
            ("contains", self.contains.is_some()),
            ("digest", self.digest.is_some()),
            ("enable_sni", self.enable_sni.is_some()),
            ("dns_type", self.dns_type.is_some()),
            ("dns_name", self.dns_name.is_some()),
            ("misc_path", self.misc_path.is_some()),
            ("misc_timeout", self.misc_timeout.is_some()),
            ("misc_dynamic", self.misc_dynamic.is_some()),
            ("payload", self.payload.is_some()),
            ("require_reply", self.require_reply.is_some()),
            ("notify_up", self.notify_up.is_some()),
            ("notify_down", self.notify_down.is_some()),
            ("through_vip", self.through_vip.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, given)| given.then_some(k))
        .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReal {
    pub address: S<String>,
    #[serde(default)]
    pub port: Option<S<i64>>,
    #[serde(default)]
    pub weight: Option<S<i64>>,
    #[serde(default)]
    pub forward: Option<S<String>>,
    #[serde(default)]
    pub upper_threshold: Option<S<i64>>,
    #[serde(default)]
    pub lower_threshold: Option<S<i64>>,
    #[serde(default)]
    pub check: Option<S<RawCheck>>,
}
