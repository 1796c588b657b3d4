//! What becomes of each packet, and the counters that say so.
//!
//! Every packet a worker sees ends in exactly one [`Verdict`]. Drops carry a
//! [`DropReason`]; each worker counts them in an array indexed by the
//! reason (VPP's error counters). Counters are single-writer atomics: the
//! worker stores with `Relaxed` load+store (a plain `mov` on x86, no locked
//! instruction), and the control thread reads them at any time.

use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU64, Ordering};

/// The end of a packet's path through a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (edited) packet on this port.
    Forward {
        /// Port index in the snapshot.
        port: u16,
    },
    /// Free the packet; the reason has been counted.
    Drop(DropReason),
    /// Hand the packet to the control thread's slow path.
    ToControl,
    /// The worker used the packet (a gratuitous ARP it learned from); free
    /// it.
    Consumed,
    /// Another worker owns the packet's connection: hand it over.
    Redirect {
        /// The owning worker's index.
        worker: u16,
    },
    /// The packet is ready to leave on `port` but the MAC address of its
    /// next hop is not known yet: hold it until ARP resolves `next_hop`
    /// (the kernel queues it on the neighbour entry, `unres_qlen`), then
    /// address it ([`crate::Worker::readdress`]) and send it. When
    /// `solicit` is set, the worker's rate limit allows an ARP request for
    /// `next_hop` now ([`crate::Worker::arp_request`] builds it).
    AwaitNeighbor {
        /// Egress port.
        port: u16,
        /// The next hop whose MAC is missing.
        next_hop: Ipv4Addr,
        /// Send an ARP request now.
        solicit: bool,
    },
    /// A later fragment of a datagram whose first fragment (the one with
    /// the ports) has not come yet: hold it briefly and hand it back
    /// ([`crate::Worker::resume`]) once [`crate::Worker::fragment_known`]
    /// says the first has come.
    AwaitFragment,
}

macro_rules! drop_reasons {
    ($($name:ident => $text:literal,)*) => {
        /// Why a packet was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $text] $name,)* }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// The number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// A stable snake_case name for counters and logs.
            pub const fn as_str(self) -> &'static str {
                match self { $(DropReason::$name => $text,)* }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated",
    EthOtherHost => "eth_other_host",
    EthUnknownType => "eth_unknown_ethertype",
    ArpMalformed => "arp_malformed",
    ArpNotForUs => "arp_not_for_us",
    ArpUnknownOp => "arp_unknown_op",
    IpTruncated => "ip_truncated",
    IpMalformed => "ip_malformed",
    IpBadChecksum => "ip_bad_checksum",
    FragmentNotTcpUdp => "fragment_not_tcp_udp",
    TcpTinyFragment => "tcp_tiny_fragment",
    FragmentTimeout => "ip_fragment_timeout",
    FragmentNoConnection => "fragment_no_connection",
    IpTtlExpired => "ip_ttl_expired",
    IpNotForUs => "ip_not_for_us",
    Standby => "standby",
    L4Truncated => "l4_truncated",
    L4Unsupported => "l4_unsupported_protocol",
    NoService => "no_service",
    NoRealServer => "no_real_server",
    NoDestination => "real_server_removed",
    TcpNotSyn => "tcp_no_conn_not_syn",
    ConnTableFull => "conn_table_full",
    NoRoute => "no_route",
    NeighborUnresolved => "neighbor_unresolved",
    HoldQueueFull => "hold_queue_full",
    TunnelNoHeadroom => "tunnel_no_headroom",
    TunnelTooBig => "tunnel_too_big",
    FragNeeded => "frag_needed",
    FragFailed => "frag_failed",
    IcmpUnhandled => "icmp_unhandled",
    IcmpBadEmbedded => "icmp_bad_embedded_header",
    IcmpNoConnection => "icmp_no_connection",
    LocalUnhandled => "local_unhandled",
}

/// A counter written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Sets the value (a gauge). Only the owning worker may call this.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's counters, cache-aligned so workers never share a line.
#[derive(Debug)]
#[repr(align(64))]
pub struct Counters {
    /// Packets this worker processed: from its RX queues, and those other
    /// workers redirected to it (so a redirected packet counts on both).
    pub rx: Counter,
    /// Packets forwarded (verdict `Forward`, and held packets released);
    /// what then does not leave is counted as `tx_dropped` or
    /// `frag_failed`.
    pub forwarded: Counter,
    /// Forwarded packets the TX queue refused (freed).
    pub tx_dropped: Counter,
    /// Packets handed to the control thread.
    pub to_control: Counter,
    /// Packets consumed by the worker itself (gratuitous ARP learned).
    pub consumed: Counter,
    /// Packets handed to the worker that owns their connection.
    pub redirected: Counter,
    /// Redirected packets dropped because the owner's ring was full.
    pub redirect_dropped: Counter,
    /// ARP requests answered.
    pub arp_replies: Counter,
    /// ARP requests sent for unresolved next hops.
    pub arp_requests: Counter,
    /// Packets held until their next hop resolves (verdict
    /// `AwaitNeighbor`).
    pub neighbor_held: Counter,
    /// Held packets sent once their next hop resolved (also counted as
    /// `forwarded`).
    pub neighbor_released: Counter,
    /// ICMP echo requests answered.
    pub icmp_echo_replies: Counter,
    /// ICMP errors forwarded to the real server or client of their connection.
    pub icmp_errors_forwarded: Counter,
    /// ICMP fragmentation needed sent for packets with DF larger than the
    /// egress MTU (or the MTU an IP-IP header leaves).
    pub icmp_frag_needed_sent: Counter,
    /// ICMP time exceeded sent for packets that would leave with TTL 0.
    pub icmp_time_exceeded_sent: Counter,
    /// ICMP port unreachable sent for new connections no real could take.
    pub icmp_port_unreachable_sent: Counter,
    /// ICMP errors not sent because of the ICMP rate limit.
    pub icmp_rate_limited: Counter,
    /// Datagrams of one-packet-scheduling services scheduled (no entry
    /// kept).
    pub ops_scheduled: Counter,
    /// Connections created.
    pub conns_created: Counter,
    /// Persistence templates created.
    pub templates_created: Counter,
    /// Connections expired or closed.
    pub conns_expired: Counter,
    /// Packets forwarded per method: NAT in, NAT out, tunnel, DR.
    pub nat_in: Counter,
    /// NAT replies rewritten back to the VIP.
    pub nat_out: Counter,
    /// IP-IP encapsulated.
    pub tunnel: Counter,
    /// Direct routing (MAC rewrite).
    pub direct: Counter,
    /// Connection events dropped because the event ring was full.
    pub events_dropped: Counter,
    /// Commands from the control thread applied.
    pub commands_applied: Counter,
    /// Packets for the control thread dropped because the punt ring was
    /// full.
    pub punt_dropped: Counter,
    /// Fragments received of TCP and UDP datagrams (first and later).
    pub fragments_in: Counter,
    /// Later fragments held until their datagram's first fragment came.
    pub fragments_held: Counter,
    /// Fragment-table entries that took the place of another datagram's.
    pub frag_entries_evicted: Counter,
    /// Packets fragmented on their way out (larger than the port's MTU).
    pub fragmented: Counter,
    /// Fragments sent for them (every piece, the first included).
    pub fragments_sent: Counter,
    /// Time spent polling empty queues vs processing, in TSC cycles.
    pub idle_cycles: Counter,
    /// Cycles spent on bursts that carried packets.
    pub busy_cycles: Counter,
    /// A gauge, not a counter: entries (connections and templates) in the
    /// worker's connection table, as of its last housekeeping round
    /// (every 100 ms). Not in [`Counters::named`].
    pub conn_entries: Counter,
    /// Drops, indexed by `DropReason as usize`.
    pub drops: [Counter; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx: Counter::default(),
            forwarded: Counter::default(),
            tx_dropped: Counter::default(),
            to_control: Counter::default(),
            consumed: Counter::default(),
            redirected: Counter::default(),
            redirect_dropped: Counter::default(),
            arp_replies: Counter::default(),
            arp_requests: Counter::default(),
            neighbor_held: Counter::default(),
            neighbor_released: Counter::default(),
            icmp_echo_replies: Counter::default(),
            icmp_errors_forwarded: Counter::default(),
            icmp_frag_needed_sent: Counter::default(),
            icmp_time_exceeded_sent: Counter::default(),
            icmp_port_unreachable_sent: Counter::default(),
            icmp_rate_limited: Counter::default(),
            ops_scheduled: Counter::default(),
            conns_created: Counter::default(),
            templates_created: Counter::default(),
            conns_expired: Counter::default(),
            nat_in: Counter::default(),
            nat_out: Counter::default(),
            tunnel: Counter::default(),
            direct: Counter::default(),
            events_dropped: Counter::default(),
            commands_applied: Counter::default(),
            punt_dropped: Counter::default(),
            fragments_in: Counter::default(),
            fragments_held: Counter::default(),
            frag_entries_evicted: Counter::default(),
            fragmented: Counter::default(),
            fragments_sent: Counter::default(),
            idle_cycles: Counter::default(),
            busy_cycles: Counter::default(),
            conn_entries: Counter::default(),
            drops: core::array::from_fn(|_| Counter::default()),
        }
    }
}

impl Counters {
    /// Counts a drop.
    #[inline]
    pub fn count_drop(&self, r: DropReason) {
        self.drops[r as usize].inc();
    }

    /// The count for one drop reason.
    pub fn drops_of(&self, r: DropReason) -> u64 {
        self.drops[r as usize].get()
    }

    /// All named counters except drops, for reports.
    pub fn named(&self) -> [(&'static str, u64); 35] {
        [
            ("rx", self.rx.get()),
            ("forwarded", self.forwarded.get()),
            ("tx_dropped", self.tx_dropped.get()),
            ("to_control", self.to_control.get()),
            ("consumed", self.consumed.get()),
            ("redirected", self.redirected.get()),
            ("redirect_dropped", self.redirect_dropped.get()),
            ("arp_replies", self.arp_replies.get()),
            ("arp_requests", self.arp_requests.get()),
            ("neighbor_held", self.neighbor_held.get()),
            ("neighbor_released", self.neighbor_released.get()),
            ("icmp_echo_replies", self.icmp_echo_replies.get()),
            ("icmp_errors_forwarded", self.icmp_errors_forwarded.get()),
            ("icmp_frag_needed_sent", self.icmp_frag_needed_sent.get()),
            (
                "icmp_time_exceeded_sent",
                self.icmp_time_exceeded_sent.get(),
            ),
            (
                "icmp_port_unreachable_sent",
                self.icmp_port_unreachable_sent.get(),
            ),
            ("icmp_rate_limited", self.icmp_rate_limited.get()),
            ("ops_scheduled", self.ops_scheduled.get()),
            ("conns_created", self.conns_created.get()),
            ("templates_created", self.templates_created.get()),
            ("conns_expired", self.conns_expired.get()),
            ("nat_in", self.nat_in.get()),
            ("nat_out", self.nat_out.get()),
            ("tunnel", self.tunnel.get()),
            ("direct", self.direct.get()),
            ("events_dropped", self.events_dropped.get()),
            ("commands_applied", self.commands_applied.get()),
            ("punt_dropped", self.punt_dropped.get()),
            ("fragments_in", self.fragments_in.get()),
            ("fragments_held", self.fragments_held.get()),
            ("frag_entries_evicted", self.frag_entries_evicted.get()),
            ("fragmented", self.fragmented.get()),
            ("fragments_sent", self.fragments_sent.get()),
            ("idle_cycles", self.idle_cycles.get()),
            ("busy_cycles", self.busy_cycles.get()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_indexed_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let c = Counters::default();
        c.count_drop(DropReason::NoService);
        c.count_drop(DropReason::NoService);
        assert_eq!(c.drops_of(DropReason::NoService), 2);
        assert_eq!(DropReason::NoService.as_str(), "no_service");
    }
}
