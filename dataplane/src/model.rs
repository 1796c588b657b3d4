//! The vocabulary every other module shares: what an operator configures
//! (virtual services, real servers, schedulers, forwarding methods,
//! persistence, timeouts, firewall-mark rules) and the few packet-level
//! names that go with it (the connection tuple, the IPVS connection states).
//!
//! This module imports nothing else of the crate, so that the connection
//! table, the schedulers, the compiled snapshot and the control side's
//! service table all build on one set of types without import circles
//! (smoltcp's `wire/ip.rs` plays this part there). The types hold plain
//! values: no counters, no compiled tables, nothing shared between threads.

use core::net::Ipv4Addr;

/// The lookup table size of Maglev's paper and of l4vs's default: prime,
/// and over 100 times the reals of most services, which keeps each real's
/// share within 1 % of the others.
pub const DEFAULT_MH_TABLE_SIZE: u32 = 65537;

/// Transport protocol of a virtual service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Protocol {
    /// TCP (6)
    Tcp,
    /// UDP (17)
    Udp,
}

impl core::fmt::Display for Protocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// "tcp" or "udp".
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How packets reach a real server (ipvsadm -m, -i, -g). IPVS keeps the
/// method per real server, and so does l4vs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum ForwardMethod {
    /// Rewrite destination address and port; undo it on the replies.
    Nat,
    /// Encapsulate in an outer IPv4 header to the real server (RFC 2003).
    Tunnel,
    /// Rewrite the destination MAC only.
    DirectRouting,
}

impl ForwardMethod {
    /// The config's spelling: `nat`, `tunnel`, `dr`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "nat",
            ForwardMethod::Tunnel => "tunnel",
            ForwardMethod::DirectRouting => "dr",
        }
    }

    /// ipvsadm's listing word (`ipvsadm -L` Forward column): `Masq`,
    /// `Tunnel`, `Route`.
    pub const fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "Masq",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::DirectRouting => "Route",
        }
    }
}

impl core::fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service's scheduler: the IPVS set, with the options IPVS keeps in the
/// service's scheduler flags (`ipvsadm -b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SchedulerKind {
    /// Round robin (`ip_vs_rr.c`).
    Rr,
    /// Weighted round robin (`ip_vs_wrr.c`).
    Wrr,
    /// Least connection (`ip_vs_lc.c`).
    Lc,
    /// Weighted least connection (`ip_vs_wlc.c`).
    Wlc,
    /// Locality-based least connection (`ip_vs_lblc.c`).
    Lblc,
    /// Locality-based least connection with replication (`ip_vs_lblcr.c`).
    Lblcr,
    /// Destination hashing (`ip_vs_dh.c`).
    Dh,
    /// Source hashing (`ip_vs_sh.c`).
    Sh {
        /// Hash the source port too (IP_VS_SVC_F_SCHED_SH_PORT, `sh-port`).
        port: bool,
        /// Look further when the hashed real is unavailable
        /// (IP_VS_SVC_F_SCHED_SH_FALLBACK, `sh-fallback`).
        fallback: bool,
    },
    /// Shortest expected delay (`ip_vs_sed.c`).
    Sed,
    /// Never queue (`ip_vs_nq.c`).
    Nq,
    /// Maglev hashing (`ip_vs_mh.c`).
    Mh {
        /// Lookup table size: a prime, at least the number of reals
        /// ([`DEFAULT_MH_TABLE_SIZE`] by default).
        table_size: u32,
        /// Hash the source port too (IP_VS_SVC_F_SCHED_MH_PORT, `mh-port`).
        port: bool,
        /// Look further when the hashed real is unavailable
        /// (IP_VS_SVC_F_SCHED_MH_FALLBACK, `mh-fallback`).
        fallback: bool,
    },
    /// Weighted fail-over (`ip_vs_fo.c`).
    Fo,
    /// Overflow connection (`ip_vs_ovf.c`).
    Ovf,
    /// Power of two choices (`ip_vs_twos.c`).
    Twos,
}

/// The scheduler as an operator writes it: the ipvsadm name, then any
/// flags and a non-default mh table size, e.g. `mh (mh-port, table 251)`.
impl core::fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())?;
        let mut extra: Vec<String> = self.flags().map(str::to_owned).collect();
        if let SchedulerKind::Mh { table_size, .. } = self {
            if *table_size != DEFAULT_MH_TABLE_SIZE {
                extra.push(format!("table {table_size}"));
            }
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join(", "))?;
        }
        Ok(())
    }
}

impl SchedulerKind {
    /// Every scheduler name: ipvsadm's (its man page's order, rr to nq,
    /// then fo, ovf and mh as they were added), then the kernel's twos,
    /// which ipvsadm does not list. `l4vsadm --help` lists them so too.
    pub const NAMES: [&'static str; 14] = [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
        "twos",
    ];

    /// The scheduler of an ipvsadm `-s` name, without flags (mh with its
    /// default table size); None for a name l4vs does not know.
    pub fn from_name(name: &str) -> Option<SchedulerKind> {
        Some(match name {
            "rr" => SchedulerKind::Rr,
            "wrr" => SchedulerKind::Wrr,
            "lc" => SchedulerKind::Lc,
            "wlc" => SchedulerKind::Wlc,
            "lblc" => SchedulerKind::Lblc,
            "lblcr" => SchedulerKind::Lblcr,
            "dh" => SchedulerKind::Dh,
            "sh" => SchedulerKind::Sh {
                port: false,
                fallback: false,
            },
            "sed" => SchedulerKind::Sed,
            "nq" => SchedulerKind::Nq,
            "mh" => SchedulerKind::Mh {
                table_size: DEFAULT_MH_TABLE_SIZE,
                port: false,
                fallback: false,
            },
            "fo" => SchedulerKind::Fo,
            "ovf" => SchedulerKind::Ovf,
            "twos" => SchedulerKind::Twos,
            _ => return None,
        })
    }

    /// This scheduler with the ipvsadm `-b` flag `flag` set (`sh-port`,
    /// `sh-fallback` for sh, `mh-port`, `mh-fallback` for mh); None when
    /// the flag is not one of its own.
    pub fn with_flag(self, flag: &str) -> Option<SchedulerKind> {
        let mut s = self;
        let (port, fallback, prefix) = match &mut s {
            SchedulerKind::Sh { port, fallback } => (port, fallback, "sh-"),
            SchedulerKind::Mh { port, fallback, .. } => (port, fallback, "mh-"),
            _ => return None,
        };
        match flag.strip_prefix(prefix)? {
            "port" => *port = true,
            "fallback" => *fallback = true,
            _ => return None,
        }
        Some(s)
    }

    /// The ipvsadm `-s` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh { .. } => "sh",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Mh { .. } => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Twos => "twos",
        }
    }

    /// The set scheduler flags, by their ipvsadm `-b` names (`sh-port`,
    /// `sh-fallback`, `mh-port`, `mh-fallback`), in that order.
    pub fn flags(self) -> impl Iterator<Item = &'static str> {
        let (port, fallback, names) = match self {
            SchedulerKind::Sh { port, fallback } => (port, fallback, ["sh-port", "sh-fallback"]),
            SchedulerKind::Mh { port, fallback, .. } => {
                (port, fallback, ["mh-port", "mh-fallback"])
            }
            _ => (false, false, ["", ""]),
        };
        [(port, names[0]), (fallback, names[1])]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
    }

    /// Maglev with the default table size and no flags.
    pub const fn mh() -> SchedulerKind {
        SchedulerKind::Mh {
            table_size: DEFAULT_MH_TABLE_SIZE,
            port: false,
            fallback: false,
        }
    }
}

/// A real server of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Real {
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its port (NAT rewrites to it; tunnel and DR keep the packet's).
    pub port: u16,
    /// Weight; 0 means quiescent: no new connections.
    pub weight: u32,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Connections (active + inactive) at which the real becomes
    /// overloaded and takes no new ones (`ipvsadm -x`); 0 = no limit.
    pub upper_threshold: u32,
    /// Connections below which an overloaded real takes new ones again
    /// (`ipvsadm -y`); 0 = three quarters of `upper_threshold`.
    pub lower_threshold: u32,
}

/// A virtual service as the operator configures it: (VIP, port, protocol)
/// or a firewall mark, its scheduler and its real servers. The dataplane
/// forwards by its compiled form, [`crate::snapshot::CompiledService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Operator's name, for reports.
    pub name: String,
    /// Virtual IP (0.0.0.0 for a firewall-mark service).
    pub vip: Ipv4Addr,
    /// Virtual port; 0 = every port (persistent services only).
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Real servers, in the order every scheduler walks them (rr and wrr
    /// sequences, which of two equal candidates lc, wlc, sed, nq, fo and
    /// ovf take — the first — and how sh and dh fill their buckets).
    ///
    /// This is a deliberate choice: the order of the config file's `reals`
    /// list, and a real added at run time goes last. The kernel walks
    /// `svc->destinations`, where `ip_vs_add_dest` puts a new destination
    /// at the head (`list_add_rcu` in `__ip_vs_update_dest`), so it walks
    /// newest first; `ipvsadm -L` and `ipvsadm-save` print that order. A
    /// file whose reals are listed as `ipvsadm -L` shows them (which is how
    /// an import writes them) walks them as that kernel does; a real added
    /// later with `ipvsadm -a` goes first in the kernel and last here.
    /// l4vs keeps the file's order because the file is what the operator
    /// reads, and because appending keeps the positions of existing reals,
    /// which connections point at.
    pub reals: Vec<Real>,
    /// Firewall mark, persistence, timeouts.
    pub options: ServiceOptions,
}

/// What a service adds to (VIP, port, protocol) and its reals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceOptions {
    /// A firewall-mark service (ipvsadm -f): matched by the mark the
    /// classifier gives a packet, not by `vip`/`port`/`protocol`; the real
    /// server's port is the packet's own. 0 = not a fwmark service.
    pub fwmark: u32,
    /// Persistence (ipvsadm -p/-M): a client's connections go to the real
    /// its first one went to, while a template entry lives.
    pub persistence: Option<Persistence>,
    /// State timeouts of this service's connections.
    pub timeouts: Timeouts,
    /// A template whose real is quiescent (weight 0) no longer binds new
    /// connections (IPVS `expire_quiescent_template`).
    pub expire_quiescent_template: bool,
    /// One-packet scheduling (ipvsadm `-o`/`--ops`, IP_VS_SVC_F_ONEPACKET):
    /// each UDP datagram is scheduled on its own and no connection entry
    /// is kept (the kernel's IP_VS_CONN_F_ONE_PACKET connections expire as
    /// soon as their packet is sent). Only UDP datagrams are affected, as
    /// in `ip_vs_schedule`; the table refuses it with NAT reals.
    pub ops: bool,
}

/// Persistence of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Persistence {
    /// Template lifetime in seconds, renewed by each new connection.
    pub timeout: u32,
    /// Client netmask as a prefix length: clients in one prefix share a
    /// template (ipvsadm -M).
    pub netmask: u8,
}

/// A classifier rule: packets matching it get `mark` (the iptables mangle
/// rules LVS setups used, built in). Rules are tried in order; the first
/// match wins, so a specific rule must come before a broader one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRule {
    /// Destination prefix.
    pub dst: Ipv4Addr,
    /// Its length.
    pub prefix_len: u8,
    /// Protocol, or any.
    pub protocol: Option<Protocol>,
    /// Inclusive destination port ranges; empty = any port.
    pub ports: Vec<(u16, u16)>,
    /// The mark.
    pub mark: u32,
}

/// The prefix length of a contiguous netmask (`255.255.255.0`: 24, and
/// `0.0.0.0`: 0); None for a mask whose ones are not all leading
/// (`255.0.255.0`), which no prefix length can stand for. The inverse of
/// [`prefix_mask`].
pub fn mask_prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let m = mask.to_bits();
    (m.leading_ones() + m.trailing_zeros() == 32).then(|| m.leading_ones() as u8)
}

/// The netmask of a prefix length (0 to 32; longer counts as 32).
pub fn prefix_mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    }
}

impl MarkRule {
    /// True when a packet to `dst:dport` over `proto` matches.
    #[inline]
    pub fn matches(&self, dst: Ipv4Addr, dport: u16, proto: u8) -> bool {
        let m = prefix_mask(self.prefix_len);
        dst.to_bits() & m == self.dst.to_bits() & m
            && self.protocol.is_none_or(|p| p.number() == proto)
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&dport)))
    }

    /// True when `a` lies inside the rule's destination prefix.
    pub fn covers(&self, a: Ipv4Addr) -> bool {
        let m = prefix_mask(self.prefix_len);
        a.to_bits() & m == self.dst.to_bits() & m
    }
}

/// Connection state: IPVS's TCP states (`IP_VS_TCP_S_*`), plus UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// sNO: no packet seen yet.
    None = 0,
    /// sES
    Established = 1,
    /// sSS
    SynSent = 2,
    /// sSR
    SynRecv = 3,
    /// sFW
    FinWait = 4,
    /// sTW
    TimeWait = 5,
    /// sCL
    Close = 6,
    /// sCW
    CloseWait = 7,
    /// sLA
    LastAck = 8,
    /// sLI
    Listen = 9,
    /// sSA
    SynAck = 10,
    /// A UDP flow (IP_VS_UDP_S_NORMAL).
    Udp = 11,
    /// Entry not in use.
    Free = 12,
}

impl ConnState {
    /// IPVS's name for the state.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
            ConnState::Free => "FREE",
        }
    }

    /// Whether IPVS counts a connection in this state as active
    /// (`tcp_state_active_table`): ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            ConnState::Established | ConnState::SynSent | ConnState::SynRecv | ConnState::SynAck
        )
    }
}

/// Timeouts in seconds per state; defaults are IPVS's (`tcp_timeouts`,
/// `udp_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    /// ESTABLISHED (900 s).
    pub tcp_established: u32,
    /// SYN_SENT (120 s).
    pub tcp_syn_sent: u32,
    /// SYN_RECV (60 s).
    pub tcp_syn_recv: u32,
    /// FIN_WAIT (120 s).
    pub tcp_fin_wait: u32,
    /// TIME_WAIT (120 s).
    pub tcp_time_wait: u32,
    /// CLOSE (10 s).
    pub tcp_close: u32,
    /// CLOSE_WAIT (60 s).
    pub tcp_close_wait: u32,
    /// LAST_ACK (30 s).
    pub tcp_last_ack: u32,
    /// LISTEN (120 s).
    pub tcp_listen: u32,
    /// SYNACK (120 s).
    pub tcp_synack: u32,
    /// UDP (300 s).
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 900,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_listen: 120,
            tcp_synack: 120,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// The timeout of a state (NONE: IPVS's 2 s).
    pub fn of(&self, s: ConnState) -> u32 {
        match s {
            ConnState::None => 2,
            ConnState::Established => self.tcp_established,
            ConnState::SynSent => self.tcp_syn_sent,
            ConnState::SynRecv => self.tcp_syn_recv,
            ConnState::FinWait => self.tcp_fin_wait,
            ConnState::TimeWait => self.tcp_time_wait,
            ConnState::Close => self.tcp_close,
            ConnState::CloseWait => self.tcp_close_wait,
            ConnState::LastAck => self.tcp_last_ack,
            ConnState::Listen => self.tcp_listen,
            ConnState::SynAck => self.tcp_synack,
            ConnState::Udp => self.udp,
            ConnState::Free => 0,
        }
    }
}

/// A packet's tuple as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dport: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every prefix length's mask gives it back; a mask with a gap gives
    /// none.
    #[test]
    fn a_mask_and_its_prefix_length() {
        for len in 0..=32u8 {
            assert_eq!(
                mask_prefix_len(Ipv4Addr::from_bits(prefix_mask(len))),
                Some(len)
            );
        }
        for gap in ["255.0.255.0", "0.0.0.1", "255.255.255.253"] {
            assert_eq!(mask_prefix_len(gap.parse().unwrap()), None, "{gap}");
        }
    }
}
