//! What the benchmark binaries report, as JSON: `l4vs-cycles --json` and
//! `l4vs-gen --json` print one of these on stdout, `l4vs-fwd` prints a
//! [`FwdReport`] when stopped, and `l4vs-bench` reads them all back to
//! write RESULTS.md.

use serde::{Deserialize, Serialize};

/// Established-flow cost of one forwarding mode at one table size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EstablishedRow {
    /// "nat", "nat-reply", "tunnel" or "dr".
    pub mode: String,
    /// Live connections asked for.
    pub live_target: u64,
    /// Live connections in the table when measuring.
    pub live: u64,
    /// Table capacity.
    pub capacity: u64,
    /// Bytes allocated per connection of capacity.
    pub bytes_per_conn: u64,
    /// Packets timed.
    pub packets: u64,
    /// Mean TSC cycles per packet of `Lcore::poll`, the director's worker loop (a receive burst, the prefetch pass, each packet, transmit queueing, the checks between bursts), over memory I/O.
    pub cycles_per_packet: f64,
    /// Millions of packets per second one core would forward at that cost.
    pub mpps_per_core: f64,
    /// User-space instructions per packet, where perf counters work.
    pub instructions_per_packet: Option<f64>,
    /// Seconds spent filling the table.
    pub fill_seconds: f64,
}

/// New-connection cost of one scheduler and mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewConnRow {
    /// Forwarding mode.
    pub mode: String,
    /// Scheduler name.
    pub scheduler: String,
    /// Real servers of the service.
    pub reals: u64,
    /// SYNs timed (each a new tuple).
    pub syns: u64,
    /// Connections created.
    pub created: u64,
    /// Table capacity.
    pub capacity: u64,
    /// Mean TSC cycles per SYN.
    pub cycles_per_conn: f64,
    /// Connections per second one core would create at that cost.
    pub conns_per_sec_per_core: f64,
    /// User-space instructions per SYN, where perf counters work.
    pub instructions_per_conn: Option<f64>,
}

/// The whole `l4vs-cycles` report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MicroReport {
    /// TSC frequency used to turn cycles into rates.
    pub tsc_hz: u64,
    /// Whether /proc/cpuinfo says the TSC is invariant.
    pub tsc_invariant: Option<bool>,
    /// Core the benchmark ran on, if pinned.
    pub core: Option<usize>,
    /// Frame size of the timed packets.
    pub frame_size: u16,
    /// Why instructions are missing, if they are.
    pub perf_note: Option<String>,
    /// Established-flow rows.
    pub established: Vec<EstablishedRow>,
    /// New-connection rows.
    pub new_conns: Vec<NewConnRow>,
    /// Share of the run the benchmark's thread spent waiting for a CPU
    /// (taken by other processes), where the kernel tells.
    #[serde(default)]
    pub stolen: Option<f64>,
}

/// One `l4vs-gen` run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenReport {
    /// "udp", "tcp" or "syn".
    pub traffic: String,
    /// Flows.
    pub flows: u64,
    /// "64".."1518" or "imix".
    pub size: String,
    /// Mean frame size, FCS included.
    pub mean_frame: f64,
    /// Requested rate in frames/s; `None` = max.
    pub rate_pps: Option<f64>,
    /// Measured seconds.
    pub seconds: f64,
    /// Frames sent in the measured window.
    pub tx: u64,
    /// Of those, frames that came back.
    pub rx: u64,
    /// Frames sent per second (millions).
    pub tx_mpps: f64,
    /// Frames back per second (millions).
    pub rx_mpps: f64,
    /// Frame bits back per second (FCS included), in Gbit/s.
    pub rx_gbps: f64,
    /// 1 - rx/tx.
    pub loss: f64,
    /// Latency percentiles in microseconds: p50, p99, p99.9, max.
    pub latency_us: Option<[f64; 4]>,
    /// Frames received that the generator did not send in the window
    /// (other frames, or warm-up/SYN-phase frames).
    pub other_rx: u64,
    /// Times `tx_burst` took fewer frames than offered (back-pressure).
    pub tx_backpressure: u64,
    /// Frames sent while opening connections (TCP) and warming up.
    pub setup_tx: u64,
    /// The port's line rate, if it reports one, in Gbit/s.
    pub line_rate_gbps: Option<f64>,
    /// Share of the measured window the generator's thread spent waiting
    /// for a CPU (taken by other processes), where the kernel tells.
    #[serde(default)]
    pub stolen: Option<f64>,
}

/// What `l4vs-fwd` did, printed on stop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FwdReport {
    /// Frames received.
    pub rx: u64,
    /// Frames sent.
    pub tx: u64,
    /// Frames the TX queue refused (freed).
    pub tx_dropped: u64,
    /// TSC cycles in polls that received something.
    pub busy_cycles: u64,
    /// TSC cycles in empty polls.
    pub idle_cycles: u64,
}
