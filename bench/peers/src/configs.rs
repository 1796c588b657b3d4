//! The config files each peer runs with, rendered from one [`Topology`]:
//! the real servers' nginx, the nftables ruleset (as nftlb writes it for a
//! DNAT farm), HAProxy in TCP mode, and l4vs's YAML (the lab's
//! `configs/lab-nat.yaml` with the benchmark's port and idle back-off).
//!
//! Pure text rendering: nothing here touches the system, so every file is
//! checked by unit tests (the l4vs one by l4vs's own config validator).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use l4vs_lab::{RealServer, DIRECTOR_CLIENT_ADDR, DIRECTOR_REAL_ADDR, SUBNET_PREFIX_LEN, VIP};

/// What every director is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// The HTTP service's port, on the VIP and on the reals (no port rewrite).
    pub http_port: u16,
    /// The UDP echo service's port, on the VIP and on the reals.
    pub udp_port: u16,
    /// The real servers.
    pub reals: &'static [RealServer],
    /// The core of the client and the servers (and l4vs's control thread).
    pub client_core: usize,
    /// The director's core.
    pub director_core: usize,
}

/// How the nftables farm picks a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NftSched {
    /// `numgen inc`: round robin per new connection (nftlb's `rr`).
    Numgen,
    /// `jhash` of source address and port: a hash per flow (nftlb's `hash`
    /// hashes only the source address, which in a one-client lab would send
    /// everything to one real).
    Jhash,
}

impl NftSched {
    /// `numgen` or `jhash`.
    pub fn as_str(self) -> &'static str {
        match self {
            NftSched::Numgen => "numgen",
            NftSched::Jhash => "jhash",
        }
    }
}

/// A minimal nginx for one real server: one worker, a fixed 200 answer
/// naming the server, keep-alive without a request limit, no access log,
/// every path under `dir` so several run side by side.
pub fn nginx_conf(name: &str, port: u16, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# l4vs-peers: real server {name}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {{
        listen {port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 \"{name}\\n\";
        }}
    }}
}}
"
    )
}

fn dnat_map(reals: &[RealServer]) -> String {
    reals
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i} : {}", r.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nftables ruleset for the director namespace, in the shape nftlb
/// generates for a DNAT farm (its test `012_dnat_ipv4_tcp_hash`): a
/// verdict map from VIP . port to one chain per farm, whose single rule
/// DNATs through a `numgen`/`jhash` map. Replies are un-NATed by conntrack
/// on their way back through the director (the reals' gateway).
pub fn nft_ruleset(t: &Topology, sched: NftSched) -> String {
    let n = t.reals.len();
    let map = dnat_map(t.reals);
    let pick = |proto: &str| match sched {
        NftSched::Numgen => format!("numgen inc mod {n}"),
        NftSched::Jhash => format!("jhash ip saddr . {proto} sport mod {n} seed 0x6c347673"),
    };
    format!(
        "table ip nftlb {{
\tmap nat-tcp-services {{
\t\ttype ipv4_addr . inet_service : verdict
\t\telements = {{ {VIP} . {http} : goto nat-http }}
\t}}

\tmap nat-udp-services {{
\t\ttype ipv4_addr . inet_service : verdict
\t\telements = {{ {VIP} . {udp} : goto nat-echo }}
\t}}

\tchain prerouting {{
\t\ttype nat hook prerouting priority filter; policy accept;
\t\tip daddr . tcp dport vmap @nat-tcp-services
\t\tip daddr . udp dport vmap @nat-udp-services
\t}}

\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t}}

\tchain nat-http {{
\t\tdnat to {tcp_pick} map {{ {map} }}
\t}}

\tchain nat-echo {{
\t\tdnat to {udp_pick} map {{ {map} }}
\t}}
}}
",
        http = t.http_port,
        udp = t.udp_port,
        tcp_pick = pick("tcp"),
        udp_pick = pick("udp"),
    )
}

/// HAProxy in TCP mode on the VIP, round robin over the reals, one thread,
/// no health checks and no logging (neither does the nftables farm).
/// `maxconn` is left to HAProxy, which derives it from the file limit (a
/// fixed large one fails where the hard limit is low).
pub fn haproxy_cfg(t: &Topology, dir: &Path) -> String {
    let mut s = format!(
        "# l4vs-peers: HAProxy as a layer-4 (TCP mode) director
global
    nbthread 1
    pidfile {d}/haproxy.pid

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend vip
    bind {VIP}:{port}
    default_backend reals

backend reals
    balance roundrobin
",
        d = dir.display(),
        port = t.http_port
    );
    for r in t.reals {
        let _ = writeln!(s, "    server {} {}:{}", r.name, r.addr, t.http_port);
    }
    s
}

/// The kind of DPDK port l4vs runs on in the lab, on the director's veth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4vsPort {
    /// `net_af_packet`: an AF_PACKET socket with a memory-mapped ring (the
    /// lab's default).
    AfPacket,
    /// `net_af_xdp`: an AF_XDP socket fed by an XDP program on the veth
    /// (copy mode: veth has no zero-copy).
    AfXdp,
}

impl L4vsPort {
    /// The port's `device` in l4vs's config.
    pub fn device(self) -> &'static str {
        match self {
            L4vsPort::AfPacket => "net_af_packet0,iface=eth0",
            L4vsPort::AfXdp => "net_af_xdp0,iface=eth0,start_queue=0,queue_count=1",
        }
    }

    /// The DPDK driver's name, for labels.
    pub fn driver(self) -> &'static str {
        match self {
            L4vsPort::AfPacket => "af_packet",
            L4vsPort::AfXdp => "af_xdp",
        }
    }
}

/// l4vs's config: `configs/lab-nat.yaml` with the benchmark's HTTP port,
/// the worker on the director core, the control thread on the client core,
/// `idle_sleep_us` as given (0 = busy poll), on a `port` of that kind.
pub fn l4vs_yaml(t: &Topology, idle_sleep_us: u32, port: L4vsPort) -> String {
    let reals = |port: u16| {
        t.reals
            .iter()
            .map(|r| format!("      - {{ address: {}, port: {port} }}\n", r.addr))
            .collect::<String>()
    };
    format!(
        "# l4vs-peers: configs/lab-nat.yaml for the benchmark
eal:
  args: [\"--no-huge\", \"-m\", \"256\", \"--no-pci\", \"--no-shconf\", \"--no-telemetry\", \"--log-level=*:error\"]
  main_core: {main}
workers:
  cores: [{worker}]
  idle_sleep_us: {idle_sleep_us}
ports:
  - name: lan
    device: \"{device}\"
addresses:
  - {{ port: lan, address: {dc}/{len} }}
  - {{ port: lan, address: {dr}/{len} }}
services:
  - name: http
    vip: {VIP}
    port: {http}
    protocol: tcp
    scheduler: rr
    forward: nat
    reals:
{http_reals}  - name: echo
    vip: {VIP}
    port: {udp}
    protocol: udp
    scheduler: rr
    forward: nat
    reals:
{udp_reals}",
        main = t.client_core,
        worker = t.director_core,
        device = port.device(),
        dc = DIRECTOR_CLIENT_ADDR,
        dr = DIRECTOR_REAL_ADDR,
        len = SUBNET_PREFIX_LEN,
        http = t.http_port,
        udp = t.udp_port,
        http_reals = reals(t.http_port),
        udp_reals = reals(t.udp_port),
    )
}

/// The director's kernel addresses for the kernel-based peers (nftables,
/// HAProxy): the two gateway addresses, `/24` each.
pub fn director_kernel_addrs() -> [String; 2] {
    [DIRECTOR_CLIENT_ADDR, DIRECTOR_REAL_ADDR].map(|a: Ipv4Addr| format!("{a}/{SUBNET_PREFIX_LEN}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use l4vs_lab::REAL_SERVERS;

    const T: Topology = Topology {
        http_port: 8080,
        udp_port: 53,
        reals: &REAL_SERVERS,
        client_core: 0,
        director_core: 1,
    };

    #[test]
    fn nft_is_an_nftlb_dnat_farm() {
        let s = nft_ruleset(&T, NftSched::Numgen);
        assert!(s.contains("elements = { 198.18.0.100 . 8080 : goto nat-http }"));
        assert!(s.contains("elements = { 198.18.0.100 . 53 : goto nat-echo }"));
        assert!(s.contains(
            "dnat to numgen inc mod 3 map { 0 : 198.18.2.11, 1 : 198.18.2.12, 2 : 198.18.2.13 }"
        ));
        let j = nft_ruleset(&T, NftSched::Jhash);
        assert!(j.contains("dnat to jhash ip saddr . tcp sport mod 3 seed 0x6c347673 map"));
        assert!(j.contains("dnat to jhash ip saddr . udp sport mod 3 seed 0x6c347673 map"));
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn haproxy_lists_every_real() {
        let s = haproxy_cfg(&T, Path::new("/tmp/x"));
        assert!(s.contains("mode tcp"));
        assert!(s.contains("bind 198.18.0.100:8080"));
        assert!(s.contains("balance roundrobin"));
        for r in &REAL_SERVERS {
            assert!(s.contains(&format!("server {} {}:8080", r.name, r.addr)));
        }
        assert!(s.contains("pidfile /tmp/x/haproxy.pid"));
    }

    #[test]
    fn nginx_answers_with_the_name() {
        let s = nginx_conf("rs2", 8080, Path::new("/tmp/n"));
        assert!(s.contains("listen 8080"));
        assert!(s.contains("return 200 \"rs2\\n\";"));
        assert!(s.contains("pid /tmp/n/nginx.pid;"));
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    /// The generated config passes l4vs's validator, and with the lab's
    /// port and back-off it is exactly `configs/lab-nat.yaml`.
    #[test]
    fn l4vs_config_is_the_lab_nat_config() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/lab-nat.yaml");
        let lab = l4vs_control::config::load(&dir).unwrap();
        let same = Topology {
            http_port: l4vs_lab::HTTP_PORT,
            udp_port: l4vs_lab::UDP_ECHO_PORT,
            ..T
        };
        let ours =
            l4vs_control::config::parse(&l4vs_yaml(&same, 50, L4vsPort::AfPacket), "generated")
                .unwrap();
        assert_eq!(ours, lab);

        let busy = l4vs_control::config::parse(&l4vs_yaml(&T, 0, L4vsPort::AfPacket), "generated")
            .unwrap();
        assert_eq!(busy.workers.idle_sleep_us, 0);
        assert_eq!(busy.workers.cores, vec![1]);

        let xdp = l4vs_control::config::parse(&l4vs_yaml(&same, 50, L4vsPort::AfXdp), "generated")
            .unwrap();
        assert_eq!(
            xdp.ports[0].device.spec(),
            "net_af_xdp0,iface=eth0,start_queue=0,queue_count=1"
        );
        assert_eq!(xdp.services, lab.services);
    }

    /// The hardware DUT config shipped with the pktgen scripts stays valid.
    #[test]
    fn pktgen_dut_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pktgen/l4vs-dut.yaml");
        let cfg = l4vs_control::config::load(&path).unwrap();
        assert_eq!(cfg.ports.len(), 2);
        assert_eq!(cfg.services.len(), 2);
    }

    #[test]
    fn kernel_addresses() {
        assert_eq!(
            director_kernel_addrs(),
            ["198.18.1.1/24".to_owned(), "198.18.2.1/24".to_owned()]
        );
    }
}
