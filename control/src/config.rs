//! The director's YAML configuration: schema, validation and the effective
//! config printer.
//!
//! [`load`] / [`parse`] turn a YAML file into a validated, immutable [`Config`]
//! of plain types (addresses are [`Ipv4Addr`], port references are indices
//! into [`Config::ports`], names are enums). Nothing downstream re-checks what
//! this module checked. [`to_yaml`] prints a `Config` back as YAML with every
//! default filled in (`l4vs check-config FILE`); [`parse`] reads that output
//! back to an equal `Config`.
//!
//! Every error names the file, the line and column, and the key path, in the
//! form `FILE:LINE:COL: KEY: MESSAGE`, e.g.
//! `configs/x.yaml:14:7: services[0].reals[1].weight: must be in 0..=2147483647`.
//! The first error found is reported; YAML syntax errors, unknown keys and
//! wrong types are found while reading, the rules below afterwards. A
//! syntax error names no key: its message says which key it comes after
//! (`FILE:13:3: YAML syntax error (after workers.cores[0]): ...`), as the
//! parser often stops on a line whose key it could not read. A value
//! from the file is echoed as written, in backticks, with control
//! characters escaped and cut after [`MAX_ECHO_CHARS`] characters (then
//! followed by its length in bytes), so no value floods the terminal.
//!
//! # Limits
//!
//! [`load`] reads only a regular file (not a FIFO, which would block it,
//! nor a device such as `/dev/zero`, which never ends) of at most
//! [`MAX_CONFIG_BYTES`] (64 MiB). 100 000 real servers written out with
//! every key, one flow mapping a line, take about 14 MB, so the limit
//! leaves room for comments and names while bounding what a mistaken path
//! can make l4vs read.
//!
//! The YAML parser's budget (serde-saphyr's, raised where it is too small)
//! is sized the same way: at most [`MAX_YAML_NODES`] nodes (4 million;
//! 100 000 real servers with every key take about 1.5 million) and
//! [`MAX_YAML_EVENTS`] parser events. Aliases (`*name`) are counted as
//! what they expand to and may replay at most [`MAX_ALIAS_REPLAYED_EVENTS`]
//! events in all; serde-saphyr's other limits stay as they are (50 000
//! aliases and anchors; from 100 aliases on, at most 10 per anchor; 64
//! levels of nesting), so an alias bomb ("billion laughs") is refused after
//! a bounded amount of work rather than expanded. Errors name the limit.
//!
//! # Schema
//!
//! ```yaml
//! eal:                      # optional
//!   args: ["--no-huge", "-m", "512", "--no-shconf"]   # default []
//!   main_core: 0            # default 0: the control thread's lcore
//! workers:                  # required
//!   cores: [1, 2]           # required, non-empty: one pinned worker per core
//!   burst: 32               # default 32, 1..=256
//!   idle_sleep_us: 0        # default 0 (busy poll), 0..=1000000
//!   connections: 1048576    # per-worker connection table, 1024..=2^28 (~64 B each)
//! ports:                    # required, non-empty
//!   - name: lan             # required, referenced by `port:` keys below
//!     device: "net_af_packet0,iface=eth0"   # vdev spec, or PCI address[,devargs]
//!     rx_desc: 1024         # default 1024, 32..=32768
//!     tx_desc: 1024         # default 1024, 32..=32768
//!     mtu: 1500             # default: the device's; 68..=2030 (restart-only)
//! mbufs: 8191               # default 8191
//! addresses:                # default []: the director's own addresses
//!   - { port: lan, address: 198.18.1.1/24 }
//! gateway: { port: lan, address: 198.18.1.254 }     # optional default next hop
//! neighbors:                # default []: static ARP entries
//!   - { port: lan, address: 198.18.2.11, mac: "02:00:00:00:02:0b" }
//! expire_quiescent_template: false  # default false
//! expire_nodest_conn: false # default false (restart-only)
//! icmp_msgs_per_sec: 1000   # default 1000: ICMP errors a second per worker (restart-only)
//! icmp_msgs_burst: 50       # default 50
//! icmp_ratelimit_ms: 1000   # default 1000: per destination, after a burst of 6; 0 = none
//! admin_socket: /run/l4vs/admin.sock  # default /run/l4vs/admin-netns<ID>.sock (restart-only)
//! metrics_listen: 127.0.0.1:9816  # default: Prometheus metrics at /metrics; off = none (restart-only)
//! exception_path: true      # default true: a kernel interface per port, l4vs-<port name> (restart-only)
//! sync:                     # optional: the connection sync daemon (ipvsadm --start-daemon; restart-only)
//!   role: master            # required: master | backup | both
//!   interface: lan          # required: the port it sends and receives on (--mcast-interface)
//!   syncid: 0               # default 0 (a backup with 0 takes every syncid)
//!   group: 224.0.0.81       # default 224.0.0.81 (--mcast-group); port: 8848; ttl: 1
//!   max_len: 1472           # default the port's MTU - 28 (--sync-maxlen)
//!   resync_period: 30       # default 30 s: a master sends its whole table again; 0 never
//!   auth_key: "00112233..." # optional: HMAC-SHA256 key, 16-64 bytes in hex; auth_key_id: 1
//!   persist_mode: false     # default false: IPVS's sync_persist_mode (persistent services: templates only)
//!   sync_ports: 1           # default 1: IPVS's sync_ports, ports port .. port+n-1 (1, 2, 4 .. 64)
//! vrrp:                     # optional: VRRPv3 (RFC 5798) for an active-standby pair (a reload applies
//!                           # all but name, interface and virtual_router_id, which are restart-only)
//!   name: VI_1              # default VI_<vrid>: keepalived's instance name (notify's 2nd argument)
//!   interface: lan          # required: the port the advertisements use (from its first address)
//!   virtual_router_id: 51   # required, 1..=255
//!   priority: 100           # default 100, 1..=254
//!   advert_int_ms: 1000     # default 1000; 10..=40950, a multiple of 10 (centiseconds on the wire)
//!   preempt: true           # default true (keepalived's nopreempt: false)
//!   preempt_delay_ms: 0     # default 0; a sync backup also waits resync_period + 3 s after its start
//!   virtual_ipaddress: [198.18.0.100, 198.18.2.254]  # required, 1-255: what the advertisements list and the
//!                           # master answers ARP for besides the VIPs (a master always answers for those):
//!                           # the VIPs and, for NAT, the reals' gateway; a /len is taken and ignored
//!   garp_master_repeat: 5   # default 5 per address; garp_master_delay_ms: 5000 (a second round)
//!   v3_checksum_as_v2: false  # default false: the RFC's pseudo-header checksum (keepalived's)
//!   notify_master: "cmd"    # optional, also notify_backup, notify_stop, notify (each
//!                           # transition): sh -c, with L4VS_VRRP_STATE, _INSTANCE, _VRID, _PRIORITY;
//!                           # notify also with keepalived's arguments: INSTANCE NAME STATE PRIORITY
//! services:                 # default []
//!   - name: web             # optional
//!     vip: 198.18.0.100     # required
//!     port: 80              # required, 1..=65535
//!     protocol: tcp         # required: tcp | udp
//!     ops: false            # default false: one-packet scheduling (udp; no nat reals)
//!     scheduler: rr         # required: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos
//!     sched_flags: []       # default []: sh-port sh-fallback (sh), mh-port mh-fallback (mh)
//!     inhibit_on_failure: false  # default false: a failed real leaves the service (true: weight 0)
//!     check:                # optional: keepalived's checkers, for every real of the service
//!       type: http          # required: tcp | http | https | udp | dns | misc
//!                           # (tcp/http/https: not on UDP services, udp: not on TCP ones)
//!       connect_port: 8080  # default: the real's port (all but misc)
//!       path: /             # http, https; status_code: [200, "300-302"] (default 200-299); virtualhost; contains;
//!                           # digest (MD5 of the body, 32 hex digits); enable_sni (https)
//!       payload: "70696e67" # udp: bytes in hex; require_reply: the reply's first bytes
//!       dns_type: SOA       # dns: A NS CNAME SOA MX TXT AAAA; dns_name: "." (the query)
//!       misc_path: "cmd"    # misc, required; misc_timeout (default delay_loop); misc_dynamic
//!       delay_loop: 60      # seconds; connect_timeout 5, retry 1 (misc 0, dns 3),
//!                           # delay_before_retry 1 (http, https 3), alpha false,
//!                           # warmup delay_loop (fractions allowed)
//!       notify_up: "cmd"    # optional, also notify_down: run on each transition
//!       through_vip: false  # DR reals: check the VIP at the real's MAC, as traffic goes
//!     sorry_server: { address: 198.18.2.99, port: 80 }  # optional, a real's keys
//!     quorum: 1             # default 1: weight of up reals needed; hysteresis: 0
//!     quorum_up: "cmd"      # optional, also quorum_down: run when a check brings the
//!                           # quorum back or loses it
//!     mh_table_size: 65537  # mh only, default 65537: a prime in 251..=131071
//!     forward: nat          # required: nat | tunnel | dr (ipvsadm -m | -i | -g)
//!     reals:                # default []
//!       - address: 198.18.2.11    # required
//!         port: 80          # default: the service port
//!         weight: 1         # default 1, 0..=2147483647 (0 = quiescent)
//!         forward: nat      # default: the service's `forward`
//!         upper_threshold: 0 # default 0 (none), ipvsadm -x: overloaded at this many connections
//!         lower_threshold: 0 # default 0 (3/4 of upper), ipvsadm -y: back below this many
//!         check: { type: tcp } # optional: this real's own check, as `check` above, in
//!                           # place of the service's; `type: none`: not checked
//! ```
//!
//! # Rules
//!
//! Reading:
//! - One YAML document. Unknown keys, duplicate keys and values of the wrong
//!   type are errors. Integers may be written in any YAML form (`0x10`, `1_000`).
//!
//! `eal` and `workers`:
//! - `eal.args` must not select cores (`-l`, `-c`, `--lcores`, `--main-lcore`)
//!   nor devices (`-a`, `-b`, `-w`, `--allow`, `--block`, `--vdev`), nor
//!   their legacy spellings: l4vs derives those from `workers`,
//!   `eal.main_core` and `ports` ([`Config::eal_argv`]). `--no-pci` is an
//!   error when a port is a PCI device.
//! - `workers.cores` is non-empty and has no duplicates; core ids are below
//!   [`MAX_CORE`]. A worker may share `eal.main_core` with the control
//!   thread, which mostly sleeps (small machines, the lab); for production,
//!   give workers cores of their own. Each worker gets one RX and one TX
//!   queue on every port.
//!
//! `ports` and `mbufs`:
//! - At least one port. Names are 1 to 32 characters of `[A-Za-z0-9_-]` and
//!   unique. A device is a PCI address (`0000:03:00.0` or `03:00.0`,
//!   normalised to the long form) or a DPDK vdev (`net_<driver><n>`; the
//!   name must contain `_`, which tells it from a kernel interface name such
//!   as `eth0`), each optionally followed by `,devargs`. No whitespace.
//!   Two ports cannot use the same device.
//! - `mbufs` is at least [`Config::min_mbufs`], the workers times the sum of
//!   every port's `rx_desc + tx_desc`: the RX rings are filled at start and
//!   the TX rings can hold as many in flight, so a smaller pool runs dry.
//!
//! Addresses (`addresses`, `gateway`, `neighbors`, `vip`, reals):
//! - Dotted-quad IPv4; unicast only (not 0.0.0.0, 255.255.255.255, 127/8 or
//!   224/4). Director addresses carry a prefix length 1..=32 and are unique.
//! - `port:` keys name an entry of `ports`.
//! - The gateway lies inside a director address's subnet on its port (it is
//!   on-link, as the kernel requires of a next hop) and is not a director
//!   address.
//! - A neighbour's MAC is `xx:xx:xx:xx:xx:xx`, unicast and not all zero;
//!   one static entry per address; never a director address.
//!
//! Services and real servers:
//! - `port` 1..=65535. Port 0 ("all ports") works only for persistent
//!   services, as in IPVS (ipvsadm: "Zero port specified for
//!   non-persistent service").
//! - `persistence.timeout` defaults to 360 s, what ipvsadm's `-p` gives
//!   (libipvs's IPVS_SVC_PERSISTENT_TIMEOUT) and keepalived too.
//! - `(vip, port, protocol)` is unique, and so is a service's optional
//!   `name` (1 to 64 characters of `[A-Za-z0-9_-]`).
//! - `scheduler`: an IPVS scheduler by its ipvsadm `-s` name: `rr wrr lc
//!   wlc lblc lblcr dh sh sed nq fo ovf mh twos`. There is no default
//!   (ipvsadm's is `wlc`), nor for `forward` (ipvsadm's, `-g` DR, surprises
//!   anyone thinking of NAT): both are spelled out and printed.
//! - `sched_flags`: ipvsadm's `-b` / keepalived's flags, by the names
//!   ipvsadm knows: `sh-port` and `sh-fallback` for `sh`, `mh-port` and
//!   `mh-fallback` for `mh` (hash the source port too; when the hashed real
//!   is unavailable, look for another instead of dropping). A flag of
//!   another scheduler, an unknown or repeated flag, or a flag on a
//!   scheduler without flags is an error (ipvsadm would take `sh-port` for
//!   `mh-port` silently, as they share a bit). Printed only when set.
//! - `mh_table_size`: the Maglev lookup table size, `mh` only (an error
//!   elsewhere). A prime in 251..=131071, IPVS's range of table sizes, and
//!   at least the number of reals; the default, 65537, is the Maglev
//!   paper's and keeps equal reals' shares within 1 % up to about 100 reals.
//! - A service may have no reals (ipvsadm allows it; its packets are dropped).
//! - A real's `(address, port)` is unique within its service; the address is
//!   not a director address nor the service's VIP.
//! - NAT rewrites the destination port: a NAT real's port defaults to the
//!   service port and may differ from it, but not be 0.
//! - Tunnel and DR keep the packet's port (IPVS forces the real's port to the
//!   service port): an explicit different port is an error rather than
//!   silently ignored.
//! - Weight is an `int >= 0` as in IPVS: 0..=2147483647, 0 = quiescent.
//! - `upper_threshold` / `lower_threshold` (ipvsadm `-x` / `-y`), 0..=
//!   2147483647, 0 = none: a real with upper threshold U is overloaded (no
//!   new connections) once it holds U connections, and takes new ones again
//!   below the lower threshold, or below 3U/4 without one. As in IPVS, the
//!   lower threshold may not exceed the upper one (so it needs one).
//!   Printed only when set.
//! - Reachability: a DR real must be on-link (inside a director address's
//!   subnet, or with a static neighbour entry) because DR only rewrites the
//!   MAC. A NAT or tunnel real off-link needs a `gateway`.

use std::fmt;
use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::net::Ipv4Addr;

use l4vs_dataplane::model::prefix_mask;
pub use l4vs_dataplane::model::{ForwardMethod, Persistence, Protocol, SchedulerKind, Timeouts};
use std::path::Path;

mod emit;
mod locate;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

/// The largest config file [`load`] reads, in bytes (64 MiB): over four
/// times what 100 000 real servers take with every key written out.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// The most YAML nodes (scalars, lists, mappings) a config may have,
/// aliases expanded. A real server written with every key is 13 nodes and
/// a service about 20 besides its reals, so 100 000 real servers take
/// about 1.5 million: this leaves more than twice that. (serde-saphyr's
/// default, 250 000, stopped at about 2 900 services of 10 reals.)
pub const MAX_YAML_NODES: usize = 4_000_000;
/// The most YAML parser events: a node is one, the end of a list or a
/// mapping another, plus a few for the stream and the document.
pub const MAX_YAML_EVENTS: usize = 2 * MAX_YAML_NODES + 16;
/// The most events YAML aliases may replay in all (serde-saphyr's default):
/// enough to share a list of reals among thousands of services, and what
/// bounds the work an alias bomb ("billion laughs") costs before it is
/// refused.
pub const MAX_ALIAS_REPLAYED_EVENTS: usize = 1_000_000;
/// A persistence timeout given without a value, seconds: libipvs.h's
/// IPVS_SVC_PERSISTENT_TIMEOUT (6 * 60), what `ipvsadm -p` gives
/// (ipvsadm(8) says 300; the code says 360).
pub const DEFAULT_PERSISTENCE_S: u32 = 360;
/// Default `workers.burst`.
pub const DEFAULT_BURST: u16 = 32;
/// Where the metrics endpoint listens unless `metrics_listen` says
/// otherwise: loopback only, so that nothing is exposed by default.
pub const DEFAULT_METRICS_LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9816),
);
/// Largest `workers.burst`: the size of each worker's fixed receive array.
pub const MAX_BURST: u16 = 256;
/// Largest `workers.idle_sleep_us` (one second).
pub const MAX_IDLE_SLEEP_US: u32 = 1_000_000;
/// Default `rx_desc` and `tx_desc` of a port.
pub const DEFAULT_DESC: u16 = 1024;
/// Smallest `rx_desc` / `tx_desc`.
pub const MIN_DESC: u16 = 32;
/// Smallest port MTU: every IPv4 host must take 68-byte datagrams (RFC 791).
pub const MIN_MTU: u16 = 68;
/// Largest port MTU: a frame must fit one mbuf of the pool's 2048-byte
/// data room with an 802.1Q-tagged Ethernet header (2048 - 18). Jumbo
/// frames would need chained mbufs, which l4vs does not build.
pub const MAX_MTU: u16 = 2030;
/// Largest `rx_desc` / `tx_desc`.
pub const MAX_DESC: u16 = 32768;
/// Default `mbufs` (a mempool is most memory-efficient at 2^n - 1).
pub const DEFAULT_MBUFS: u32 = 8191;
/// Core ids must be below this.
pub const MAX_CORE: u32 = 1024;
/// Largest real-server weight: IPVS keeps weights in an `int`.
pub const MAX_WEIGHT: u32 = i32::MAX as u32;
/// Largest timeout in seconds: IPVS keeps timeouts in jiffies in an `int`.
pub const MAX_TIMEOUT_S: u32 = 2_147_483;
/// Largest connection threshold (ipvsadm parses `-x`/`-y` as an `int`).
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;
/// Default `mh_table_size`.
pub const DEFAULT_MH_TABLE_SIZE: u32 = l4vs_dataplane::sched::mh::DEFAULT_TABLE_SIZE;
/// Smallest `mh_table_size`: the first of IPVS's MH table primes.
pub const MIN_MH_TABLE_SIZE: u32 = 251;
/// Rate limits of the ICMP errors the director sends (see
/// [`Config::icmp`]); the kernel's defaults unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpLimits {
    /// `net.ipv4.icmp_msgs_per_sec` (default 1000).
    pub msgs_per_sec: u32,
    /// `net.ipv4.icmp_msgs_burst` (default 50).
    pub msgs_burst: u32,
    /// `net.ipv4.icmp_ratelimit`, milliseconds (default 1000).
    pub ratelimit_ms: u32,
}

impl Default for IcmpLimits {
    fn default() -> Self {
        IcmpLimits {
            msgs_per_sec: 1000,
            msgs_burst: 50,
            ratelimit_ms: 1000,
        }
    }
}

/// Largest `mh_table_size`: the last of IPVS's MH table primes.
pub const MAX_MH_TABLE_SIZE: u32 = 131_071;

/// A validated configuration. Every index and name in it is known to be
/// consistent; see the module doc for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub eal: Eal,
    pub workers: Workers,
    pub ports: Vec<Port>,
    /// Mbufs in the packet mempool.
    pub mbufs: u32,
    pub addresses: Vec<Address>,
    pub gateway: Option<Gateway>,
    pub neighbors: Vec<Neighbor>,
    pub services: Vec<Service>,
    /// Default connection timeouts (IPVS's unless set).
    pub timeouts: Timeouts,
    /// IPVS `expire_quiescent_template`.
    pub expire_quiescent_template: bool,
    /// IPVS `expire_nodest_conn` (restart-only: the workers take it at
    /// start).
    pub expire_nodest_conn: bool,
    /// The director's own ICMP errors, as the kernel's sysctls of the same
    /// names: at most `icmp_msgs_per_sec` a second per worker in bursts of
    /// `icmp_msgs_burst`, and to one destination a burst of 6 then one per
    /// `icmp_ratelimit_ms` (0: no limit per destination). Fragmentation
    /// needed is never limited. Restart-only.
    pub icmp: IcmpLimits,
    /// The admin socket `l4vsadm` talks to (`None`: the default,
    /// [`crate::admin::default_path`]). Restart-only.
    pub admin_socket: Option<std::path::PathBuf>,
    /// Where the Prometheus metrics endpoint (`GET /metrics`) listens
    /// (`None`: `metrics_listen: off`, no endpoint). Default
    /// [`DEFAULT_METRICS_LISTEN`], loopback only. Restart-only.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The exception path: each port gets a kernel interface (a DPDK
    /// `net_tap` port, [`kernel_interface_name`]) with the port's MAC and
    /// the director's addresses on it, so that traffic to those addresses
    /// that the dataplane does not take itself reaches the kernel, and
    /// what the kernel sends leaves by the port. Restart-only.
    pub exception_path: bool,
    /// Classifier rules, in order: the first match gives a packet its mark.
    pub firewall_marks: Vec<FirewallMark>,
    /// The connection sync daemon (IPVS's, ipvsadm `--start-daemon`), if
    /// any. Restart-only.
    pub sync: Option<Sync>,
    /// The VRRP instance of an active-standby pair, if any. Its name,
    /// port and VRID are restart-only; a reload applies the rest.
    pub vrrp: Option<Vrrp>,
}

/// A VRRPv3 instance (RFC 5798; keepalived's `vrrp_instance`), run by
/// the control thread on one port (see [`crate::vrrp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrrp {
    /// `name` (keepalived's `vrrp_instance NAME`; default `VI_<vrid>`):
    /// in the log and the `notify` script's arguments.
    pub name: String,
    /// Index into [`Config::ports`]: the port the advertisements go out
    /// and come in on (`interface`).
    pub port: usize,
    /// The advertisements' source: the director's first address on that
    /// port (RFC 5798 section 7.2, the primary address).
    pub source: Ipv4Addr,
    /// `virtual_router_id`, 1..=255.
    pub vrid: u8,
    /// `priority`, 1..=254 (default 100); 255, an address owner's, is
    /// not taken: a director owns none of its virtual addresses.
    pub priority: u8,
    /// `advert_int_ms`, in centiseconds as on the wire (default 100,
    /// 1 s; 1..=4095).
    pub advert_int_cs: u16,
    /// `preempt` (default true): a backup of higher priority takes over
    /// from a master of lower one.
    pub preempt: bool,
    /// `preempt_delay_ms` (default 0): how long after its start a
    /// director does not preempt. With a sync daemon that receives, it
    /// also waits a resync period and a flush (see [`crate::vrrp`]).
    pub preempt_delay: std::time::Duration,
    /// `virtual_ipaddress`: the addresses the master answers ARP for and
    /// announces (besides the VIPs, always answered by a master), in the
    /// advertisements' order; 1..=255 of them.
    pub addresses: Vec<Ipv4Addr>,
    /// `garp_master_repeat` (default 5): gratuitous ARPs per address in
    /// each round on becoming master.
    pub garp_repeat: u32,
    /// `garp_master_delay_ms` (default 5000): the second round of
    /// gratuitous ARPs after becoming master; 0: none.
    pub garp_delay: std::time::Duration,
    /// `v3_checksum_as_v2` (default false): the checksum over the VRRP
    /// message alone, as keepalived's option of that name.
    pub checksum_as_v2: bool,
    /// Commands run (`sh -c`) on becoming master, backup, and on stop;
    /// `notify` runs on each of them.
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_stop: Option<String>,
    pub notify: Option<String>,
}

/// What the sync daemon does (`ipvsadm --start-daemon STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRole {
    /// Sends the state of this director's connections.
    Master,
    /// Takes the connections a master sends into this director's table.
    Backup,
    /// Both (IPVS runs a master and a backup daemon side by side).
    Both,
}

impl SyncRole {
    /// The key's value: `master`, `backup`, `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
            SyncRole::Both => "both",
        }
    }

    /// The role of ipvsadm's daemon state word (`--start-daemon STATE`,
    /// `--stop-daemon STATE`): `master` or `backup`; None for another.
    pub fn of_daemon_state(state: &str) -> Option<SyncRole> {
        match state {
            "master" => Some(SyncRole::Master),
            "backup" => Some(SyncRole::Backup),
            _ => None,
        }
    }

    /// What runs on when `--stop-daemon` stops the `stopped` part of a
    /// daemon in this role: `Some(None)` when nothing is left,
    /// `Some(Some(role))` when the other part runs on (a daemon in both
    /// roles), and None when no daemon of the `stopped` role runs.
    pub fn stopping(self, stopped: SyncRole) -> Option<Option<SyncRole>> {
        match (self, stopped) {
            (r, s) if r == s => Some(None),
            (SyncRole::Both, SyncRole::Master) => Some(Some(SyncRole::Backup)),
            (SyncRole::Both, SyncRole::Backup) => Some(Some(SyncRole::Master)),
            _ => None,
        }
    }

    /// Whether it sends.
    pub fn sends(self) -> bool {
        self != SyncRole::Backup
    }

    /// Whether it receives.
    pub fn receives(self) -> bool {
        self != SyncRole::Master
    }
}

/// The sync daemon's settings: ipvsadm's `--start-daemon` options and
/// IPVS's `sync_*` sysctls, with their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sync {
    pub role: SyncRole,
    /// `syncid` (0..=255): a master's messages carry it; a backup takes
    /// only messages with its own, or every one when it is 0.
    pub syncid: u8,
    /// Index into [`Config::ports`]: the port the daemon sends and
    /// receives on (`--mcast-interface`).
    pub port: usize,
    /// The source of the messages: the director's first address on that
    /// port.
    pub source: Ipv4Addr,
    /// The multicast group (`--mcast-group`, default 224.0.0.81).
    pub group: Ipv4Addr,
    /// The UDP port (`--mcast-port`, default 8848).
    pub udp_port: u16,
    /// The messages' TTL (`--mcast-ttl`, default 1).
    pub ttl: u8,
    /// The longest message in bytes (`--sync-maxlen`; default the port's
    /// MTU less 28, the IPv4 and UDP headers, as ip_vs_sync.c's
    /// `set_sync_mesg_maxlen`).
    pub max_len: u16,
    /// A master sends its whole table again every so often
    /// (`resync_period`, seconds, default 30; `None`: 0, never), an l4vs
    /// key: see [`crate::sync`].
    pub resync_period: Option<std::time::Duration>,
    /// HMAC-SHA256 of each message (`auth_key`, an l4vs key; see
    /// [`crate::sync`]); `None`: none, as IPVS.
    pub auth: Option<SyncAuth>,
    /// IPVS's `sync_persist_mode` (`persist_mode`, default false): of a
    /// persistent service, only the persistence templates are sent, not
    /// the connections (less traffic; the backup schedules a client's
    /// next connections to the same real by the template).
    pub persist_mode: bool,
    /// IPVS's `sync_ports` (default 1; a power of two up to 64): a master
    /// sends each connection's messages on one of `udp_port` ..
    /// `udp_port + sync_ports - 1`, by a hash of its client, and a backup
    /// takes messages on all of them.
    pub sync_ports: u16,
}

/// The sync messages' authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncAuth {
    /// The shared key, 16 to 64 bytes (`auth_key`, in hex).
    pub key: Vec<u8>,
    /// Which key, carried in each message (`auth_key_id`, default 1); a
    /// backup takes only messages of its own id (one key at a time: a
    /// change of key is a restart of both directors).
    pub key_id: u8,
}

impl fmt::Debug for SyncAuth {
    /// The key is a secret: not in Debug output, logs or errors. (The
    /// config's YAML, from `l4vs check-config` or `l4vsadm --yaml`, has
    /// it, as the file has.)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SyncAuth {{ key: <{} bytes>, key_id: {} }}",
            self.key.len(),
            self.key_id
        )
    }
}

/// A classifier rule (what `iptables -t mangle ... -j MARK` did for LVS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallMark {
    pub mark: u32,
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    /// None: any protocol.
    pub protocol: Option<Protocol>,
    /// Inclusive destination port ranges; empty: any port.
    pub ports: Vec<(u16, u16)>,
}

/// EAL settings besides the cores and the devices, which l4vs adds itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eal {
    /// Extra EAL arguments, in order, without the program name.
    pub args: Vec<String>,
    /// The control thread's lcore (`--main-lcore`).
    pub main_core: u32,
}

/// The packet workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workers {
    /// One pinned worker per core, in this order: worker `i` owns RX/TX queue
    /// `i` on every port. Non-empty, unique, without the main core.
    pub cores: Vec<u32>,
    /// RX burst size, 1..=[`MAX_BURST`].
    pub burst: u16,
    /// 0 = busy poll; otherwise sleep up to this many µs when all queues are
    /// empty.
    pub idle_sleep_us: u32,
    /// Connection-table capacity of each worker (templates included).
    pub connections: u32,
}

/// Default `workers.connections`: 2^20 per worker, about 64 MiB each.
pub const DEFAULT_CONNECTIONS: u32 = 1 << 20;

/// A DPDK port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The operator's name, unique.
    pub name: String,
    pub device: Device,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// IP MTU in bytes, [`MIN_MTU`]..=[`MAX_MTU`]; `None`: the device's
    /// own (`rte_eth_dev_get_mtu`). l4vs forwards by it: packets larger
    /// leave fragmented, or are answered with ICMP fragmentation needed
    /// when DF is set. The device is set to it too (`rte_eth_dev_set_mtu`)
    /// when its driver can be; one that cannot (net_pcap) is told so at
    /// start, and l4vs enforces the MTU all the same.
    pub mtu: Option<u16>,
}

/// Whether a device is probed on the PCI bus or created as a virtual device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Passed to the EAL as `-a ADDRESS[,ARGS]`.
    Pci,
    /// Passed to the EAL as `--vdev NAME[,ARGS]`.
    Vdev,
}

/// A port's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceKind,
    /// The DPDK device name, which is also the ethdev name to look the port
    /// up by (`rte_eth_dev_get_port_by_name`): `0000:03:00.0` (normalised)
    /// or `net_af_packet0`.
    pub name: String,
    /// Device arguments after the first comma (`iface=eth0`), if any.
    pub args: Option<String>,
}

impl Device {
    /// `NAME[,ARGS]`, as the EAL takes it after `-a` or `--vdev`.
    pub fn spec(&self) -> String {
        match &self.args {
            Some(args) => format!("{},{}", self.name, args),
            None => self.name.clone(),
        }
    }
}

/// One of the director's own addresses: it answers ARP for it and owns
/// packets sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Index into [`Config::ports`].
    pub port: usize,
    pub address: Ipv4Addr,
    /// 1..=32.
    pub prefix_len: u8,
}

impl Address {
    /// The subnet mask.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(prefix_mask(self.prefix_len))
    }

    /// Whether `ip` is inside this address's subnet (on-link).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
        u32::from(ip) & mask == u32::from(self.address) & mask
    }
}

/// The default next hop, for destinations outside every director subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// Index into [`Config::ports`].
    pub port: usize,
    pub address: Ipv4Addr,
}

/// A static ARP entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Index into [`Config::ports`].
    pub port: usize,
    pub address: Ipv4Addr,
    pub mac: [u8; 6],
}

/// A virtual service: `(vip, port, protocol)` and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: Option<String>,
    /// Firewall-mark service: matched by mark, not by vip/port/protocol
    /// (which are then 0.0.0.0, 0 and tcp, and not printed).
    pub fwmark: Option<u32>,
    pub vip: Ipv4Addr,
    /// 0 = every port of the VIP (persistent services only, as IPVS).
    pub port: u16,
    pub protocol: Protocol,
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (ipvsadm `-o`, keepalived `ops`): UDP only,
    /// DR or tunnel reals only.
    pub ops: bool,
    /// Effective timeouts: the global ones with this service's overrides.
    pub timeouts: Timeouts,
    pub scheduler: SchedulerKind,
    /// The service's default method; each [`Real`] carries its effective one.
    pub forward: ForwardMethod,
    /// keepalived's `inhibit_on_failure`: a real its check finds down
    /// gets weight 0 (its connections go on) instead of leaving the
    /// service (as a deleted real: its connections' packets are dropped,
    /// as IPVS does).
    pub inhibit_on_failure: bool,
    /// The health check of every real of the service that has none of its
    /// own; `None`: not checked, always up.
    pub check: Option<Check>,
    /// The reals' own checks (a real's `check:` block, as keepalived's
    /// checkers are a real server's), by address and port: `Some` in place
    /// of the service's, `None` (`type: none`) for a real not checked.
    pub real_checks: std::collections::BTreeMap<(Ipv4Addr, u16), Option<Check>>,
    /// keepalived's `sorry_server`: takes the service's new connections
    /// while its quorum is lost (no real up, by default).
    pub sorry_server: Option<Real>,
    /// keepalived's `quorum`: the sum of the weights of the reals that are
    /// up that the service needs (default 1); below it the quorum is lost
    /// and the sorry server, if any, comes in.
    pub quorum: u32,
    /// keepalived's `hysteresis`: the quorum is lost below `quorum -
    /// hysteresis` and back from `quorum + hysteresis` (default 0).
    pub hysteresis: u32,
    /// keepalived's `quorum_up`: run by `sh -c` when a health check brings
    /// the quorum back, with `L4VS_SERVICE` and `L4VS_QUORUM=UP` in its
    /// environment; killed after 30 s.
    pub quorum_up: Option<String>,
    /// keepalived's `quorum_down`: likewise when a check loses the quorum
    /// (`L4VS_QUORUM=DOWN`).
    pub quorum_down: Option<String>,
    pub reals: Vec<Real>,
}

/// A real server's health check ([`crate::health`]), with keepalived's
/// semantics and key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    /// What is checked.
    pub kind: CheckKind,
    /// The port checked (`connect_port`); `None`: the real's own.
    pub connect_port: Option<u16>,
    /// Between two checks of a real (`delay_loop`, default 60 s).
    pub delay_loop: std::time::Duration,
    /// A check that takes longer fails (`connect_timeout`, default 5 s;
    /// for an HTTP check, the whole exchange).
    pub connect_timeout: std::time::Duration,
    /// Failed checks retried before the real is down (`retry`, default
    /// 1, 0 for misc as keepalived's): down after `retry + 1` failures in
    /// a row.
    pub retry: u32,
    /// Between a failed check and its retry (`delay_before_retry`,
    /// default 1 s, 3 s for http as keepalived's).
    pub delay_before_retry: std::time::Duration,
    /// Start as down until a check succeeds (`alpha`, default false).
    pub alpha: bool,
    /// The first check waits a random time up to this (`warmup`, default
    /// `delay_loop` as keepalived's), so that many reals are not checked
    /// at once.
    pub warmup: std::time::Duration,
    /// Run by `sh -c` when a real comes up (keepalived's `notify_up`),
    /// with `L4VS_SERVICE`, `L4VS_REAL_ADDRESS`, `L4VS_REAL_PORT` and
    /// `L4VS_STATE=UP` in its environment; killed after 30 s.
    pub notify_up: Option<String>,
    /// Likewise when a real goes down (`notify_down`, `L4VS_STATE=DOWN`).
    pub notify_down: Option<String>,
    /// `through_vip`: a direct-routing real is checked as the traffic
    /// reaches it: to the VIP (the service's, at `connect_port`), sent to
    /// the real's MAC address, where the real holds the VIP on a loopback
    /// (an l4vs key: keepalived checks the real's own address). NAT and
    /// tunnel reals of the service are checked at their own address.
    pub through_vip: bool,
}

/// The kind of a [`Check`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// `tcp` (TCP_CHECK): a TCP connection is made and closed.
    Tcp,
    /// `http` (HTTP_GET) and `https` (SSL_GET): `GET path` over HTTP/1.1,
    /// in TLS for `https`; up when the status is one of `status_codes`
    /// and, with `digest`, the whole body has that MD5 digest, and with
    /// `contains`, its first MiB has that text.
    Http {
        /// `path`, default `/`.
        path: String,
        /// `status_code`, codes and `lo-hi` ranges, default keepalived's
        /// 200-299; sorted, each once.
        status_codes: Vec<u16>,
        /// `virtualhost`: the Host header; default the real's address.
        virtualhost: Option<String>,
        /// `digest`: the MD5 digest the body must have (keepalived's
        /// `digest`, written as 32 hex digits, as `genhash` prints it).
        digest: Option<[u8; 16]>,
        /// `contains`: text the body must have (an l4vs key).
        contains: Option<String>,
        /// `https`: in TLS (keepalived's SSL_GET). As keepalived's, the
        /// real's certificate is not verified: the check asks whether the
        /// server answers, not who it is.
        tls: bool,
        /// `enable_sni`: the TLS handshake names `virtualhost` (SNI); without
        /// it no name is sent.
        enable_sni: bool,
    },
    /// `dns` (DNS_CHECK): a query for `dns_name`, type `dns_type`, with
    /// recursion desired, in a UDP datagram; up when the answer with the
    /// query's id has RCODE 0 (NOERROR), as keepalived's check_dns.c.
    Dns {
        /// `dns_type` (keepalived's `type`), default SOA.
        record_type: DnsRecordType,
        /// `dns_name` (keepalived's `name`), default `.` (the root).
        name: String,
    },
    /// `udp` (UDP_CHECK): `payload` is sent in a datagram; up when a reply
    /// comes within `connect_timeout` and, with `require_reply`, starts
    /// with those bytes. An ICMP port unreachable is down.
    Udp {
        /// `payload`, bytes (written in hex, as keepalived's).
        payload: Vec<u8>,
        /// `require_reply`, bytes the reply must start with.
        require_reply: Option<Vec<u8>>,
    },
    /// `misc` (MISC_CHECK): `sh -c misc_path`, with `L4VS_REAL_ADDRESS`
    /// and `L4VS_REAL_PORT` in its environment; exit 0 up, 1 down; with
    /// `misc_dynamic`, 2..=255 is up with weight status - 2. Killed after
    /// `misc_timeout` (default: `delay_loop`), which is a failure.
    Misc {
        /// `misc_path`: the command line.
        path: String,
        /// `misc_timeout`.
        timeout: std::time::Duration,
        /// `misc_dynamic`.
        dynamic: bool,
    },
}

/// The record types a DNS check asks for: keepalived's DNS_CHECK list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    A,
    Ns,
    Cname,
    Soa,
    Mx,
    Txt,
    Aaaa,
}

impl DnsRecordType {
    /// Every type, for parsing and for the error that lists them.
    pub const ALL: [DnsRecordType; 7] = [
        DnsRecordType::A,
        DnsRecordType::Ns,
        DnsRecordType::Cname,
        DnsRecordType::Soa,
        DnsRecordType::Mx,
        DnsRecordType::Txt,
        DnsRecordType::Aaaa,
    ];

    /// Its name as keepalived and zone files write it: `A`, `SOA`...
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::A => "A",
            DnsRecordType::Ns => "NS",
            DnsRecordType::Cname => "CNAME",
            DnsRecordType::Soa => "SOA",
            DnsRecordType::Mx => "MX",
            DnsRecordType::Txt => "TXT",
            DnsRecordType::Aaaa => "AAAA",
        }
    }

    /// Its TYPE value on the wire (RFC 1035 3.2.2, RFC 3596 for AAAA).
    pub fn code(self) -> u16 {
        match self {
            DnsRecordType::A => 1,
            DnsRecordType::Ns => 2,
            DnsRecordType::Cname => 5,
            DnsRecordType::Soa => 6,
            DnsRecordType::Mx => 15,
            DnsRecordType::Txt => 16,
            DnsRecordType::Aaaa => 28,
        }
    }

    /// The type named `name`, in any case.
    pub fn parse(name: &str) -> Option<DnsRecordType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

impl CheckKind {
    /// The key's value: `tcp`, `http`, `https`, `udp`, `dns`, `misc`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http { tls: true, .. } => "https",
            CheckKind::Http { .. } => "http",
            CheckKind::Dns { .. } => "dns",
            CheckKind::Udp { .. } => "udp",
            CheckKind::Misc { .. } => "misc",
        }
    }
}

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Real {
    pub address: Ipv4Addr,
    /// Nonzero; equal to the service port unless `forward` is NAT.
    pub port: u16,
    /// 0..=[`MAX_WEIGHT`]; 0 = quiescent (no new connections).
    pub weight: u32,
    /// Effective method (the real's own or the service's).
    pub forward: ForwardMethod,
    /// Connections at which the real is overloaded; 0 = none.
    pub upper_threshold: u32,
    /// Connections below which it is not any more; 0 = 3/4 of the upper.
    /// Never above `upper_threshold`.
    pub lower_threshold: u32,
}

impl Service {
    /// The check of real `r`: its own, else the service's.
    pub fn check_of(&self, r: &Real) -> Option<&Check> {
        match self.real_checks.get(&(r.address, r.port)) {
            Some(own) => own.as_ref(),
            None => self.check.as_ref(),
        }
    }
}

impl Config {
    /// The smallest `mbufs` this config accepts: workers × Σ ports
    /// (`rx_desc + tx_desc`).
    pub fn min_mbufs(&self) -> u64 {
        min_mbufs(self.workers.cores.len(), &self.ports)
    }

    /// The index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// The full EAL argument vector: `program`, the main lcore
    /// (`-l MAIN --main-lcore MAIN`), `eal.args`, then each port's device
    /// (`-a SPEC` for PCI, `--vdev SPEC` for a vdev) in port order.
    ///
    /// Worker cores are not given to EAL: workers are l4vs's own threads,
    /// pinned to `workers.cores` and registered with `rte_thread_register`,
    /// so EAL starts no idle lcore threads on them.
    pub fn eal_argv(&self, program: &str) -> Vec<String> {
        let mut argv = vec![
            program.to_owned(),
            "-l".to_owned(),
            self.eal.main_core.to_string(),
            "--main-lcore".to_owned(),
            self.eal.main_core.to_string(),
        ];
        argv.extend(self.eal.args.iter().cloned());
        for port in &self.ports {
            argv.push(
                match port.device.kind {
                    DeviceKind::Pci => "-a",
                    DeviceKind::Vdev => "--vdev",
                }
                .to_owned(),
            );
            argv.push(port.device.spec());
        }
        if self.exception_path {
            for (i, port) in self.ports.iter().enumerate() {
                argv.push("--vdev".to_owned());
                argv.push(format!(
                    "{},iface={}",
                    kernel_tap_device(i),
                    kernel_interface_name(&port.name)
                ));
            }
        }
        argv
    }
}

/// The kernel interface of port `name` on the exception path:
/// `l4vs-NAME`, cut to 15 bytes (IFNAMSIZ - 1). Port names are ASCII.
pub fn kernel_interface_name(name: &str) -> String {
    let mut n = format!("l4vs-{name}");
    n.truncate(15);
    n
}

/// The DPDK device name of the `net_tap` port that gives port `index` its
/// kernel interface.
pub fn kernel_tap_device(index: usize) -> String {
    format!("net_tap_l4vs{index}")
}

/// The restart-only keys of `vrrp:` that differ between `a` and `b`,
/// the first named, in order (`vrrp` when one has the block and the
/// other not): the instance's identity (`name`, `interface`,
/// `virtual_router_id`). The rest a reload applies, as keepalived's does
/// ([`crate::vrrp::Router::reconfigure`]).
fn vrrp_restart_keys(a: Option<&Vrrp>, b: Option<&Vrrp>) -> Vec<&'static str> {
    let (Some(a), Some(b)) = (a, b) else {
        return if a.is_some() != b.is_some() {
            vec!["vrrp"]
        } else {
            Vec::new()
        };
    };
    [
        ("vrrp.name", a.name != b.name),
        ("vrrp.interface", a.port != b.port || a.source != b.source),
        ("vrrp.virtual_router_id", a.vrid != b.vrid),
    ]
    .into_iter()
    .filter(|(_, d)| *d)
    .map(|(k, _)| k)
    .collect()
}

fn vrrp_restart_differs(a: Option<&Vrrp>, b: Option<&Vrrp>) -> bool {
    !vrrp_restart_keys(a, b).is_empty()
}

fn vrrp_key(a: Option<&Vrrp>, b: Option<&Vrrp>) -> String {
    vrrp_restart_keys(a, b)
        .first()
        .map_or("vrrp".to_owned(), |k| (*k).to_owned())
}

/// The first key of `sync:` that differs between `a` and `b`.
fn sync_key(a: Option<&Sync>, b: Option<&Sync>) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return "sync".to_owned();
    };
    let keys = [
        ("role", a.role != b.role),
        ("interface", a.port != b.port || a.source != b.source),
        ("syncid", a.syncid != b.syncid),
        ("group", a.group != b.group),
        ("port", a.udp_port != b.udp_port),
        ("ttl", a.ttl != b.ttl),
        ("max_len", a.max_len != b.max_len),
        ("resync_period", a.resync_period != b.resync_period),
        ("auth_key", a.auth != b.auth),
        ("persist_mode", a.persist_mode != b.persist_mode),
        ("sync_ports", a.sync_ports != b.sync_ports),
    ];
    keys.iter()
        .find(|(_, d)| *d)
        .map_or("sync".to_owned(), |(k, _)| format!("sync.{k}"))
}

/// The first setting that differs between `running` and `new` and that only
/// a restart can change, as its key path (`eal.args`, `workers.cores`,
/// `ports[0].device`, `mbufs`...); `None` when a reload can apply `new`.
///
/// `eal`, `workers`, `ports` and `mbufs` are fixed once EAL has started:
/// they choose the lcores and devices, the worker threads and their
/// connection tables, the queues and the mempool. A port added or removed
/// is named by its index (`ports[1]`).
pub fn restart_only_change(running: &Config, new: &Config) -> Option<String> {
    // Destructured in full so that a new field must be sorted into "restart"
    // or "reload" here.
    let Config {
        eal,
        workers,
        ports,
        mbufs,
        addresses: _,
        gateway: _,
        neighbors: _,
        services: _,
        timeouts: _,
        expire_quiescent_template: _,
        expire_nodest_conn,
        icmp,
        admin_socket,
        metrics_listen,
        exception_path,
        firewall_marks: _,
        sync,
        vrrp,
    } = running;
    let Eal { args, main_core } = eal;
    let Workers {
        cores,
        burst,
        idle_sleep_us,
        connections,
    } = workers;
    let differs = [
        (
            "expire_nodest_conn",
            *expire_nodest_conn != new.expire_nodest_conn,
        ),
        (
            "icmp_msgs_per_sec",
            icmp.msgs_per_sec != new.icmp.msgs_per_sec,
        ),
        ("icmp_msgs_burst", icmp.msgs_burst != new.icmp.msgs_burst),
        ("admin_socket", *admin_socket != new.admin_socket),
        ("metrics_listen", *metrics_listen != new.metrics_listen),
        ("exception_path", *exception_path != new.exception_path),
        ("sync", *sync != new.sync),
        (
            "vrrp",
            vrrp_restart_differs(vrrp.as_ref(), new.vrrp.as_ref()),
        ),
        (
            "icmp_ratelimit_ms",
            icmp.ratelimit_ms != new.icmp.ratelimit_ms,
        ),
        ("eal.args", *args != new.eal.args),
        ("eal.main_core", *main_core != new.eal.main_core),
        ("workers.cores", *cores != new.workers.cores),
        ("workers.burst", *burst != new.workers.burst),
        (
            "workers.idle_sleep_us",
            *idle_sleep_us != new.workers.idle_sleep_us,
        ),
        (
            "workers.connections",
            *connections != new.workers.connections,
        ),
    ];
    if let Some((key, _)) = differs.iter().find(|(_, d)| *d) {
        // Name the key inside a block that changed.
        return Some(match *key {
            "vrrp" => vrrp_key(vrrp.as_ref(), new.vrrp.as_ref()),
            "sync" => sync_key(sync.as_ref(), new.sync.as_ref()),
            k => k.to_owned(),
        });
    }
    for i in 0..ports.len().max(new.ports.len()) {
        let (Some(old), Some(new)) = (ports.get(i), new.ports.get(i)) else {
            return Some(format!("ports[{i}]"));
        };
        let Port {
            name,
            device,
            rx_desc,
            tx_desc,
            mtu,
        } = old;
        let differs = [
            ("name", *name != new.name),
            ("device", *device != new.device),
            ("rx_desc", *rx_desc != new.rx_desc),
            ("tx_desc", *tx_desc != new.tx_desc),
            ("mtu", *mtu != new.mtu),
        ];
        if let Some((key, _)) = differs.iter().find(|(_, d)| *d) {
            return Some(format!("ports[{i}].{key}"));
        }
    }
    (*mbufs != new.mbufs).then(|| "mbufs".to_owned())
}

pub(crate) fn min_mbufs(workers: usize, ports: &[Port]) -> u64 {
    let per_worker: u64 = ports
        .iter()
        .map(|p| u64::from(p.rx_desc) + u64::from(p.tx_desc))
        .sum();
    per_worker * workers as u64
}

/// Formats a MAC address as `xx:xx:xx:xx:xx:xx`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// A configuration error, located in the file.
///
/// Displays as `FILE:LINE:COL: KEY: MESSAGE`; the position is left out when
/// unknown (the file could not be read) and the key when the error concerns
/// the whole document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file name as given to [`load`] or [`parse`].
    pub file: String,
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column (characters); 0 when unknown.
    pub column: u32,
    /// The key path, e.g. `services[0].reals[1].weight`; may be empty.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

/// The most characters of a user's value that an error message echoes; a
/// longer value is cut (see [`echo`]), so a 50 MB name in a file costs a
/// line of stderr, not 50 MB of it.
pub const MAX_ECHO_CHARS: usize = 64;

/// Why `ip` cannot be a director, service or real-server address (the
/// config and the service table take unicast addresses only), if it
/// cannot.
pub(crate) fn not_unicast(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else {
        None
    }
}

/// The director's first address on port `port` (an index into
/// [`Config::ports`]): the source of what the control thread sends there,
/// sync messages and VRRP advertisements.
pub fn first_address(addresses: &[Address], port: usize) -> Option<Ipv4Addr> {
    addresses.iter().find(|a| a.port == port).map(|a| a.address)
}

/// A name as the config and the service table take it: 1 to `max`
/// characters of `[A-Za-z0-9_-]`.
pub(crate) fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Bytes written as hex digits, two a byte, either case (keepalived's
/// UDP_CHECK payloads and HTTP_GET digests); `None` for anything else
/// (an odd count, a non-hex character).
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `bytes` as lower-case hex digits, two a byte: what [`from_hex`] reads.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` as an error message quotes it: in backticks, control characters
/// and bidirectional overrides escaped (`\n`, `\u{0}`), and cut after
/// [`MAX_ECHO_CHARS`] characters with `…` and the value's full length, e.g.
/// ``"`aaaa…` (52428800 bytes)"``.
pub(crate) fn echo(value: &str) -> String {
    match clip(value, MAX_ECHO_CHARS) {
        (shown, false) => format!("`{shown}`"),
        (shown, true) => format!("`{shown}…` ({} bytes)", value.len()),
    }
}

/// `value` as [`echo`] shows it, without the backticks, for a message
/// that quotes it its own way (ipvsadm's `` `value' ``, clap's
/// `'value'`): escaped, and cut after [`MAX_ECHO_CHARS`] characters with
/// `…` and the value's full length, `aaaa… (52428800 bytes)`.
pub(crate) fn echo_unquoted(value: &str) -> String {
    match clip(value, MAX_ECHO_CHARS) {
        (shown, false) => shown,
        (shown, true) => format!("{shown}… ({} bytes)", value.len()),
    }
}

/// The longest path, in characters, that a message shows whole: longer
/// than any a user keeps files at, shorter than a flood.
pub const MAX_PATH_CHARS: usize = 256;

/// `path` as a message names it: whole up to [`MAX_PATH_CHARS`]
/// characters (a file's name is at its end, so it is not cut short),
/// else cut as an error cuts a value ([`MAX_ECHO_CHARS`] characters,
/// then `… (N bytes)`). Characters that would not print are escaped
/// where the message is printed.
pub fn shown_path(path: &Path) -> String {
    shown_path_text(&path.display().to_string())
}

/// [`shown_path`] of a path already made text.
pub fn shown_path_text(text: &str) -> String {
    if text.chars().nth(MAX_PATH_CHARS).is_some() {
        echo_unquoted(text)
    } else {
        text.to_owned()
    }
}

/// The start of `text` as it is safe to print: at most `max` characters,
/// counting an escape as its length, cut on a character boundary; `true`
/// when something was left out.
pub(crate) fn clip(text: &str, max: usize) -> (String, bool) {
    // Characters that would garble the operator's terminal or reorder the
    // text around them (Trojan Source, CVE-2021-42574).
    let escaped = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061c}'
                    | '\u{200b}'..='\u{200f}'
                    | '\u{2028}'..='\u{202e}'
                    | '\u{2060}'..='\u{2064}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{feff}'
            )
    };
    let mut out = String::new();
    let mut width = 0;
    for c in text.chars() {
        let w = if escaped(c) {
            c.escape_default().count()
        } else {
            1
        };
        if width + w > max {
            return (out, true);
        }
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        width += w;
    }
    (out, false)
}

/// Reads and validates the config file at `path`.
///
/// # Errors
/// The file cannot be read, is not a regular file, is larger than
/// [`MAX_CONFIG_BYTES`] or is not UTF-8 (no position), or [`parse`] fails.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = shown_path(path);
    let fail = |message: String| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        key: String::new(),
        message,
    };
    let text = read_config_text(path, "the config file").map_err(fail)?;
    parse(&text, &file)
}

/// [`read_config_file`] as UTF-8 text: the bytes that are not are an
/// error with their offset.
pub(crate) fn read_config_text(path: &Path, what: &str) -> Result<String, String> {
    String::from_utf8(read_config_file(path, what)?).map_err(|e| {
        format!(
            "the file is not UTF-8 text: invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The bytes of the file at `path`, refused unless it is a regular file of
/// at most [`MAX_CONFIG_BYTES`]; the error is the message, which calls
/// the file `what` (`the config file`, `the file to import`).
pub(crate) fn read_config_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let unreadable = |e: io::Error| format!("cannot read {what}: {e}");
    // Look before opening: opening a FIFO blocks until a writer comes.
    check_config_file(&std::fs::metadata(path).map_err(unreadable)?, what)?;
    let f = File::open(path).map_err(unreadable)?;
    // The path may name another file by now.
    check_config_file(&f.metadata().map_err(unreadable)?, what)?;
    read_limited(f, MAX_CONFIG_BYTES)
        .map_err(unreadable)?
        .ok_or_else(|| too_large(None))
}

/// Whether `meta` is of a file [`read_config_file`] reads (`what`, for
/// the message).
fn check_config_file(meta: &Metadata, what: &str) -> Result<(), String> {
    if !meta.file_type().is_file() {
        return Err(format!(
            "not a regular file: {}; {what} must be a file",
            describe_file_type(meta.file_type())
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(Some(meta.len())));
    }
    Ok(())
}

/// The error for a file over [`MAX_CONFIG_BYTES`], `len` bytes when known.
fn too_large(len: Option<u64>) -> String {
    let size = match len {
        Some(len) => format!("the file is {len} bytes"),
        None => format!("the file grew past {MAX_CONFIG_BYTES} bytes while read"),
    };
    format!(
        "{size}, more than the {MAX_CONFIG_BYTES} bytes (64 MiB) a config may have, enough for 100 000 real servers"
    )
}

/// What a file that is not a regular file is, for the operator.
fn describe_file_type(ty: FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_dir() {
        "a directory"
    } else if ty.is_fifo() {
        "a FIFO (named pipe)"
    } else if ty.is_char_device() {
        "a character device"
    } else if ty.is_block_device() {
        "a block device"
    } else if ty.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    }
}

/// Reads `r` to its end if it holds at most `max` bytes, `None` if more.
/// Reads at most `max + 1` bytes, so a file that grows while read (or a
/// device that never ends) is still bounded.
fn read_limited(r: impl Read, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= max).then_some(buf))
}

/// Parses and validates `text`; `file_name` is only used in errors.
///
/// # Errors
/// The first YAML or validation error, with its position and key path.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
    let options = serde_saphyr::options! {
        budget: Some(yaml_budget()),
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
        },
    };
    let raw: raw::RawConfig = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| locate::yaml_error(&e, text, file_name))?;
    validate::validate(raw, file_name)
}

/// The YAML parser's budget: serde-saphyr's, with room for 100 000 real
/// servers (see the module doc).
fn yaml_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_events = MAX_YAML_EVENTS;
    budget
}

/// The effective config as YAML: every default filled in, port references
/// by name, each real with its effective port and method. [`parse`] reads it
/// back to an equal [`Config`].
///
/// # Panics
/// Never in practice: the printed form holds only strings, integers, lists
/// and mappings, which the YAML serializer always accepts.
pub fn to_yaml(cfg: &Config) -> String {
    emit::to_yaml(cfg)
}
