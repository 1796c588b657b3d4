//! bench/RESULTS.md and its plots, from what the suite measured.
//!
//! [`render`] is a pure function of a [`Suite`], so what the page says
//! about a run that could not start (a peer missing, a device under test
//! that failed) is tested like any other output: such a run is a row that
//! says why, never a missing row. [`plots`] draws two SVG charts with
//! `plotters` (SVG backend only).

use crate::results::{EstablishedRow, GenReport, MicroReport, NewConnRow};
use std::fmt::Write as _;
use std::path::Path;

/// The machine the suite ran on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// Hypervisor, if /proc/cpuinfo says there is one.
    pub virtualised: bool,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// DPDK version string.
    pub dpdk: String,
    /// Transparent huge pages setting.
    pub thp: String,
    /// Whether perf hardware counters work, as `perf stat` reports it.
    pub perf: String,
}

/// How and when the suite ran.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// Commit id (short), with "+ uncommitted changes" when dirty.
    pub commit: String,
    /// UTC date and time.
    pub date: String,
    /// The command line.
    pub command: String,
    /// Quick mode.
    pub quick: bool,
    /// /proc/loadavg before and after.
    pub load_before: String,
    /// /proc/loadavg after.
    pub load_after: String,
    /// Other heavy processes seen during the run (e.g. rustc), if any.
    pub others: Vec<String>,
    /// Wall-clock seconds of the whole suite.
    pub seconds: f64,
    /// Generator and device-under-test cores.
    pub gen_core: usize,
    /// Device-under-test core.
    pub dut_core: usize,
}

/// What the device under test reported when stopped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DutStats {
    /// Frames it received.
    pub rx: u64,
    /// TSC cycles in polls that received frames.
    pub busy_cycles: u64,
    /// TSC cycles in empty polls.
    pub idle_cycles: u64,
    /// Frames it dropped, by reason, non-zero only.
    pub drops: Vec<(String, u64)>,
    /// Share of the generator's run its threads spent waiting for a CPU
    /// (taken by other processes), where the kernel tells.
    pub stolen: Option<f64>,
}

impl DutStats {
    /// Busy cycles per received frame (the whole loop: I/O included).
    pub fn cycles_per_frame(&self) -> Option<f64> {
        (self.rx > 0).then(|| self.busy_cycles as f64 / self.rx as f64)
    }

    /// Share of polling time spent on bursts that carried frames.
    pub fn busy_share(&self) -> Option<f64> {
        let t = self.busy_cycles + self.idle_cycles;
        (t > 0).then(|| self.busy_cycles as f64 / t as f64)
    }
}

/// One generator run through one device under test.
#[derive(Debug, Clone)]
pub struct IoPoint {
    /// Which table it belongs to: "size", "flows", "modes", "tcp", "latency".
    pub group: String,
    /// "io-fwd" (the ceiling) or "l4vs dr", "l4vs nat", ...
    pub dut: String,
    /// Traffic kind.
    pub traffic: String,
    /// Flows.
    pub flows: u64,
    /// Frame size ("64", "imix").
    pub size: String,
    /// Fixed rate, or `None` = max.
    pub rate_pps: Option<f64>,
    /// The generator's report, or why the run did not happen.
    pub result: Result<GenReport, String>,
    /// The device under test's own counters, when it reported them.
    pub dut_stats: Option<DutStats>,
}

impl IoPoint {
    /// The larger share of its time the generator or the device under
    /// test lost to other processes; infinite for a run that failed.
    pub fn lost(&self) -> f64 {
        match &self.result {
            Err(_) => f64::INFINITY,
            Ok(g) => g.stolen.unwrap_or(0.0).max(
                self.dut_stats
                    .as_ref()
                    .and_then(|d| d.stolen)
                    .unwrap_or(0.0),
            ),
        }
    }

    /// True for the I/O-forward ceiling.
    pub fn is_ceiling(&self) -> bool {
        self.dut == CEILING
    }
}

/// The name of the ceiling device under test.
pub const CEILING: &str = "io-fwd";

/// Everything one suite run produced.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    /// Machine.
    pub machine: Machine,
    /// Run.
    pub run: RunInfo,
    /// The microbenchmark reports (several invocations), or why they failed.
    pub micro: Vec<Result<MicroReport, String>>,
    /// This build against an earlier one, measured alternately in the same
    /// run with the same arguments.
    pub comparison: Option<Comparison>,
    /// `l4vs-reload`'s output per build, this one first: (which build, its
    /// printed lines or why it failed).
    pub reload: Vec<(String, Result<String, String>)>,
    /// Instructions per packet of the timed loop by callgrind, per mode:
    /// (mode, this build, the earlier build if compared).
    pub instructions: Vec<InstructionsRow>,
    /// The generator runs.
    pub io: Vec<IoPoint>,
    /// The topology sentence: what the ports are.
    pub topology: String,
    /// The "## Peers" section body.
    pub peers: String,
    /// Remarks to print at the end.
    pub notes: Vec<String>,
    /// Plot files written, relative to RESULTS.md, with captions.
    pub plots: Vec<(String, String)>,
}

/// Callgrind's instructions per packet of one mode: (mode, this build, the
/// earlier build if compared), each a count or why it is missing.
pub type InstructionsRow = (String, Result<f64, String>, Option<Result<f64, String>>);

/// This build and an earlier one, `l4vs-cycles` with the same arguments,
/// alternately, several rounds.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// How the report names the earlier build.
    pub label: String,
    /// Per round: (this build, the earlier build), or why it failed.
    pub rounds: Vec<Result<(MicroReport, MicroReport), String>>,
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The targets from the benchmark issue.
pub mod targets {
    /// Established-flow cycles per packet, one core, 1 M live connections.
    pub const EST_CYCLES_1M: f64 = 150.0;
    /// New connections per second per core.
    pub const NEW_CONNS_PER_SEC: f64 = 2e6;
    /// l4vs throughput as a share of the I/O ceiling.
    pub const CEILING_RATIO: f64 = 0.7;
}

fn fmt_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{} M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{} K", n / 1_000),
        n => n.to_string(),
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

impl Suite {
    fn established(&self) -> Vec<&EstablishedRow> {
        self.micro
            .iter()
            .filter_map(|m| m.as_ref().ok())
            .flat_map(|m| m.established.iter())
            .collect()
    }

    fn new_conns(&self) -> Vec<&NewConnRow> {
        self.micro
            .iter()
            .filter_map(|m| m.as_ref().ok())
            .flat_map(|m| m.new_conns.iter())
            .collect()
    }

    fn micro_meta(&self) -> Option<&MicroReport> {
        self.micro.iter().find_map(|m| m.as_ref().ok())
    }

    /// The ceiling run for `p`: an io-fwd run of the same traffic, size
    /// and rate (the ceiling does not look at flows), the least disturbed
    /// by other processes if there are several, a successful one first.
    pub fn ceiling_for(&self, p: &IoPoint) -> Option<&IoPoint> {
        self.io
            .iter()
            .filter(|c| {
                c.is_ceiling()
                    && c.traffic == p.traffic
                    && c.size == p.size
                    && c.rate_pps == p.rate_pps
            })
            .min_by(|a, b| a.lost().total_cmp(&b.lost()))
    }

    /// l4vs received Mpps over the ceiling's, for `p`.
    pub fn ratio(&self, p: &IoPoint) -> Option<f64> {
        let c = self.ceiling_for(p)?;
        let (Ok(a), Ok(b)) = (&p.result, &c.result) else {
            return None;
        };
        (b.rx_mpps > 0.0).then(|| a.rx_mpps / b.rx_mpps)
    }

    /// Ceiling busy cycles per frame over l4vs's, for `p`: the ratio the
    /// two loops would reach if neither waited for the generator.
    pub fn cycle_ratio(&self, p: &IoPoint) -> Option<f64> {
        let c = self.ceiling_for(p)?;
        let a = p.dut_stats.as_ref()?.cycles_per_frame()?;
        let b = c.dut_stats.as_ref()?.cycles_per_frame()?;
        (a > 0.0).then(|| b / a)
    }
}

/// The two measurements checked against each other: l4vs's busy cycles
/// per frame in its real loop less io-fwd's, at 64 bytes, against the
/// in-process cost of the same mode at 10 K live connections.
pub fn cross_check(s: &Suite) -> Option<String> {
    let p =
        s.io.iter()
            .find(|p| p.group == "size" && p.size == "64" && p.dut == "l4vs dr")?;
    let c = s.ceiling_for(p)?;
    let l = p.dut_stats.as_ref()?.cycles_per_frame()?;
    let f = c.dut_stats.as_ref()?.cycles_per_frame()?;
    let m = s
        .established()
        .into_iter()
        .find(|r| r.mode == "dr" && r.live_target == 10_000)?;
    Some(format!(
        "Cross-check: in its real loop at 64 B (UDP, {} flows), `l4vs dr` spent {l:.0} busy \
         TSC cycles per frame and `io-fwd` {f:.0}; the difference, {:.0}, is l4vs's own work \
         per frame, against {:.0} cycles measured in process for DR at 10 K live connections \
         (io-fwd's figure is inflated by partial bursts when it waits for the generator, so \
         the difference is if anything low).",
        p.flows,
        l - f,
        m.cycles_per_packet
    ))
}

/// The whole RESULTS.md.
pub fn render(s: &Suite) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# l4vs benchmark results\n");
    let _ = writeln!(
        w,
        "Written by `l4vs-bench` (run through `scripts/bench`); every number below was \
         measured in the run described here. Re-run to update, do not edit by hand. \
         How to read it: [README.md](README.md).\n"
    );
    run_section(w, s);
    targets_section(w, s);
    micro_section(w, s);
    baseline_section(w, s);
    instructions_section(w, s);
    reload_section(w, s);
    io_section(w, s);
    if !s.plots.is_empty() {
        let _ = writeln!(w, "## Plots\n");
        for (file, caption) in &s.plots {
            let _ = writeln!(w, "![{caption}]({file})\n");
        }
    }
    let _ = writeln!(w, "## Peers\n");
    let _ = writeln!(w, "{}\n", s.peers.trim_end());
    if !s.notes.is_empty() {
        let _ = writeln!(w, "## Notes\n");
        for n in &s.notes {
            let _ = writeln!(w, "- {n}");
        }
        let _ = writeln!(w);
    }
    o
}

fn run_section(w: &mut String, s: &Suite) {
    let m = &s.machine;
    let r = &s.run;
    let _ = writeln!(w, "## Run\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(
        w,
        "| machine | {} × {} ({}), {:.0} GiB |",
        m.cores,
        m.cpu,
        if m.virtualised {
            "virtual machine, shared"
        } else {
            "bare metal"
        },
        m.memory_gib
    );
    let _ = writeln!(w, "| kernel | {} |", m.kernel);
    let _ = writeln!(w, "| DPDK | {} |", m.dpdk);
    let _ = writeln!(w, "| transparent huge pages | {} |", m.thp);
    let _ = writeln!(w, "| perf counters | {} |", m.perf);
    let _ = writeln!(w, "| commit | {} |", r.commit);
    let _ = writeln!(w, "| date | {} |", r.date);
    let _ = writeln!(w, "| command | `{}` |", r.command);
    let _ = writeln!(
        w,
        "| mode | {} ({:.0} s in all) |",
        if r.quick { "quick" } else { "full" },
        r.seconds
    );
    let _ = writeln!(
        w,
        "| cores | generator on core {}, device under test on core {} |",
        r.gen_core, r.dut_core
    );
    let _ = writeln!(
        w,
        "| load (1/5/15 min) | before: {}; after: {} |",
        r.load_before, r.load_after
    );
    if !r.others.is_empty() {
        let _ = writeln!(w, "| other work on the machine | {} |", r.others.join("; "));
    }
    let _ = writeln!(w);
    if (1..=2).contains(&m.cores) {
        let _ = writeln!(
            w,
            "All numbers come from a shared {}-core VM: the generator and the device under \
             test each have one core, nothing is isolated, and whatever else runs on the \
             machine competes for the same two cores (see the load line). Treat them as \
             relative, l4vs against the ceiling measured in the same run, not as what l4vs \
             does on dedicated hardware.\n",
            m.cores
        );
    }
}

fn targets_section(w: &mut String, s: &Suite) {
    let _ = writeln!(w, "## Against the targets\n");
    let _ = writeln!(w, "| target | measured | |\n|---|---|---|");
    let est: Vec<_> = s
        .established()
        .into_iter()
        .filter(|r| r.live_target == 1_000_000)
        .collect();
    if est.is_empty() {
        let _ = writeln!(w, "| established flows ≤ {} cycles/packet, one core, 1 M live connections | not measured | |", targets::EST_CYCLES_1M);
    } else {
        let best = est
            .iter()
            .map(|r| r.cycles_per_packet)
            .fold(f64::INFINITY, f64::min);
        let list: Vec<String> = est
            .iter()
            .map(|r| format!("{} {:.0}", r.mode, r.cycles_per_packet))
            .collect();
        let _ = writeln!(
            w,
            "| established flows ≤ {:.0} cycles/packet, one core, 1 M live connections | {} (in process) | {} |",
            targets::EST_CYCLES_1M,
            list.join(", "),
            met(best <= targets::EST_CYCLES_1M)
        );
    }
    let nc = s.new_conns();
    if nc.is_empty() {
        let _ = writeln!(w, "| ≥ 2 M new connections/s per core | not measured | |");
    } else {
        let worst = nc
            .iter()
            .map(|r| r.conns_per_sec_per_core)
            .fold(f64::INFINITY, f64::min);
        let best = nc
            .iter()
            .map(|r| r.conns_per_sec_per_core)
            .fold(0.0, f64::max);
        let _ = writeln!(
            w,
            "| ≥ 2 M new connections/s per core | {:.2} to {:.2} M/s over schedulers and modes (in process) | {} |",
            worst / 1e6,
            best / 1e6,
            if worst >= targets::NEW_CONNS_PER_SEC {
                met(true).to_owned()
            } else if best >= targets::NEW_CONNS_PER_SEC {
                "**met by some, not all**".to_owned()
            } else {
                met(false).to_owned()
            }
        );
        if let Some(p) = s.io.iter().find(|p| p.traffic == "syn" && !p.is_ceiling()) {
            if let Ok(g) = &p.result {
                let _ = writeln!(
                    w,
                    "| (the same, through a port: a SYN flood of 1 M unique tuples) | {:.2} M SYNs/s forwarded by `{}`; {} | the port's I/O is part of this one |",
                    g.rx_mpps,
                    p.dut,
                    bound_text(s, p)
                );
            }
        }
    }
    // Per size: the Mpps ratio, and when the ceiling was bound by the
    // generator (its loop idle 10% of the time or more), the ratio of busy
    // cycles per frame instead, which does not depend on the generator.
    let mut rows = Vec::new();
    for p in s.io.iter().filter(|p| !p.is_ceiling() && p.group == "size") {
        let Some(r) = s.ratio(p) else { continue };
        let busy = s
            .ceiling_for(p)
            .and_then(|c| c.dut_stats.as_ref())
            .and_then(DutStats::busy_share);
        let cyc = s.cycle_ratio(p);
        let (effective, text) = match (busy, cyc) {
            (Some(b), Some(c)) if b < 0.9 => (
                c,
                format!(
                    "{}: {r:.2} in Mpps, but io-fwd was busy only {:.0}% (generator-bound); by cycles/frame {c:.2}",
                    size_label(&p.size),
                    b * 100.0
                ),
            ),
            _ => (r, format!("{}: {r:.2}", size_label(&p.size))),
        };
        rows.push((effective, text));
    }
    if rows.is_empty() {
        let _ = writeln!(
            w,
            "| l4vs ≥ {} of the I/O ceiling | not measured | |",
            targets::CEILING_RATIO
        );
    } else {
        let worst = rows.iter().map(|(r, _)| *r).fold(f64::INFINITY, f64::min);
        let list: Vec<String> = rows.into_iter().map(|(_, t)| t).collect();
        let _ = writeln!(
            w,
            "| l4vs ≥ {} of the I/O ceiling (same port, same run; DR, UDP, max rate) | {} | {} |",
            targets::CEILING_RATIO,
            list.join("; "),
            met(worst >= targets::CEILING_RATIO)
        );
    }
    let _ = writeln!(
        w,
        "\nFor scale, published figures on other hardware: DPVS about 2.9 Mpps per core \
         (UDP) and 200 K new TCP connections/s per worker, Katran about 5.2 Mpps per core, \
         kernel IPVS about 1.2 Mpps per core. Not comparable one to one with a shared VM.\n"
    );
}

/// "64 B" or "IMIX".
fn size_label(size: &str) -> String {
    if size == "imix" {
        "IMIX".to_owned()
    } else {
        format!("{size} B")
    }
}

/// What bounds a through-the-port SYN flood: the device under test's
/// own busy cycles per SYN (its whole loop, I/O included), and the rate
/// one core would reach at that cost.
fn bound_text(s: &Suite, p: &IoPoint) -> String {
    let cycles = p.dut_stats.as_ref().and_then(DutStats::cycles_per_frame);
    match (cycles, s.micro_meta().map(|m| m.tsc_hz)) {
        (Some(c), Some(hz)) => format!(
            "its loop spent {c:.0} busy TSC cycles per SYN, I/O included: at most {:.2} M/s on this core",
            hz as f64 / c / 1e6
        ),
        (Some(c), None) => format!("its loop spent {c:.0} busy TSC cycles per SYN, I/O included"),
        _ => "the device under test's own counters are missing".to_owned(),
    }
}

/// This build's established-flow and new-connection cycles against an
/// earlier build's: medians of rounds run alternately in the same run.
fn baseline_section(w: &mut String, s: &Suite) {
    let Some(c) = &s.comparison else {
        return;
    };
    let _ = writeln!(w, "### Against an earlier build, same run\n");
    let ok: Vec<&(MicroReport, MicroReport)> = c.rounds.iter().flatten().collect();
    for e in c.rounds.iter().filter_map(|r| r.as_ref().err()) {
        let _ = writeln!(w, "A round did not run: {e}\n");
    }
    let Some((first, _)) = ok.first() else {
        return;
    };
    let _ = writeln!(
        w,
        "{} against this build: `l4vs-cycles` with the same arguments, the two builds \
         alternately (each first in every other round), {} rounds, on core {}; the \
         median of the rounds per row. The \
         spread between rounds of one build on this shared VM is itself tens of percent, \
         so read the ratio with that in mind. Ratio below 1: this build is faster.\n",
        c.label,
        ok.len(),
        first.core.map_or_else(|| "-".to_owned(), |c| c.to_string())
    );
    let _ = writeln!(
        w,
        "| measurement | earlier: cycles | this build: cycles | ratio |\n|---|---:|---:|---:|"
    );
    // One row: the medians of `pick` over the rounds, each build.
    let mut row = |label: String, pick: &dyn Fn(&MicroReport) -> Option<f64>| {
        let now = median_of(ok.iter().filter_map(|(a, _)| pick(a)).collect());
        let base = median_of(ok.iter().filter_map(|(_, b)| pick(b)).collect());
        if let (Some(now), Some(base)) = (now, base) {
            let ratio = now / base.max(1e-9);
            let _ = writeln!(w, "| {label} | {base:.0} | {now:.0} | {ratio:.2} |");
        }
    };
    for n in &first.established {
        row(
            format!(
                "{} at {} live, per packet",
                n.mode,
                fmt_count(n.live_target)
            ),
            &|r| {
                r.established
                    .iter()
                    .find(|b| b.mode == n.mode && b.live_target == n.live_target)
                    .map(|b| b.cycles_per_packet)
            },
        );
    }
    for n in &first.new_conns {
        row(
            format!("new {} connection, {}", n.mode, n.scheduler),
            &|r| {
                r.new_conns
                    .iter()
                    .find(|b| b.mode == n.mode && b.scheduler == n.scheduler)
                    .map(|b| b.cycles_per_conn)
            },
        );
    }
    let _ = writeln!(w);
}

/// Callgrind's instructions per packet: exact and repeatable, where the
/// cycles of this shared VM are not.
fn instructions_section(w: &mut String, s: &Suite) {
    if s.instructions.is_empty() {
        return;
    }
    let _ = writeln!(w, "### Instructions per packet (callgrind)\n");
    let _ = writeln!(
        w,
        "`valgrind --tool=callgrind` counting only inside the timed loop \
         (`--toggle-collect` on `Lcore::poll`, and on `Worker::process_burst` for builds \
         that timed that), `l4vs-cycles --live 10000 --samples 100000 --syns 0` per \
         mode; the count divided by the packets the loop ran (warm-up and three \
         passes). The same binary and inputs give the same count on any load, so \
         this is the figure to compare builds by on this VM.\n"
    );
    let compared = s.instructions.iter().any(|(_, _, b)| b.is_some());
    let fmt = |r: &Result<f64, String>| match r {
        Ok(v) => format!("{v:.0}"),
        Err(e) => format!("not measured: {e}"),
    };
    if compared {
        let _ = writeln!(
            w,
            "| mode (10 K live) | earlier build | this build | ratio |\n|---|---:|---:|---:|"
        );
    } else {
        let _ = writeln!(w, "| mode (10 K live) | this build |\n|---|---:|");
    }
    for (mode, now, base) in &s.instructions {
        match base {
            Some(b) => {
                let ratio = match (now, b) {
                    (Ok(n), Ok(b)) => format!("{:.3}", n / b.max(1e-9)),
                    _ => "-".to_owned(),
                };
                let _ = writeln!(w, "| {mode} | {} | {} | {ratio} |", fmt(b), fmt(now));
            }
            None => {
                let _ = writeln!(w, "| {mode} | {} |", fmt(now));
            }
        }
    }
    let _ = writeln!(w);
}

/// `l4vs-reload` per build: how long a change to 1000 mh services stops a
/// busy worker.
fn reload_section(w: &mut String, s: &Suite) {
    if s.reload.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "## Reload: the longest worker stall while a change is published\n"
    );
    let _ = writeln!(
        w,
        "`l4vs-reload --services 1000 --reals 10`: one worker thread (core 1) forwards \
         established NAT flows in bursts of 32 and picks up a new snapshot between two \
         bursts; the control thread (core 0) publishes one real server's weight change in \
         one of 1000 Maglev (`mh`, 65537 slots) services, then a reload of the same \
         configuration, each built as that build's director builds it. It prints the \
         longest gap between the starts of two bursts in a 300 ms window after each change, the \
         part of it the worker spent swapping snapshots (its own cost; the rest of a gap \
         is the OS taking the core), and the longest gap in a quiet window before it \
         (what the machine does without a change). Target: no worker delayed by more \
         than 1 ms.\n"
    );
    for (label, out) in &s.reload {
        match out {
            Ok(text) => {
                let _ = writeln!(w, "{label}:\n\n```\n{}\n```\n", text.trim_end());
            }
            Err(e) => {
                let _ = writeln!(w, "{label}: did not run: {e}\n");
            }
        }
    }
}

fn micro_section(w: &mut String, s: &Suite) {
    let _ = writeln!(w, "## 1. Dataplane cost in process (no I/O)\n");
    for m in &s.micro {
        if let Err(e) = m {
            let _ = writeln!(w, "**A microbenchmark run failed:** {e}\n");
        }
    }
    let Some(meta) = s.micro_meta() else {
        let _ = writeln!(w, "No microbenchmark results.\n");
        return;
    };
    let _ = writeln!(
        w,
        "`l4vs-cycles`: TSC cycles per packet of `Lcore::poll`, the director's worker loop (receive burst, prefetch pass, each packet, transmit queueing, the checks between bursts) over memory I/O, pinned to core {}{}, \
         with the packets already in memory. Established flows: the connection table \
         (1.25 × the live count) is filled first (SYN then ACK per flow), then {}-byte \
         TCP ACKs of flows drawn uniformly at random from the live ones are processed in \
         batches of {}; each batch is rebuilt from a pristine copy outside the timed \
         region, and the cost of an empty timed region is subtracted. Random draws mean \
         each packet's bucket and entry are usually a cache miss once the table outgrows \
         the caches, which is what the column for 1 M shows. Mpps/core = TSC rate / \
         cycles: one core doing nothing else. TSC {:.3} GHz{}; 100 real servers.\n",
        meta.core.map_or("-".to_owned(), |c| c.to_string()),
        match s.micro.iter().filter_map(|m| m.as_ref().ok()?.stolen).reduce(f64::max) {
            Some(x) if x >= 0.01 => format!(
                " (other processes took up to {:.0}% of its time: numbers are high by about that much or more)",
                x * 100.0
            ),
            _ => String::new(),
        },
        meta.frame_size,
        crate::micro::BATCH,
        meta.tsc_hz as f64 / 1e9,
        match meta.tsc_invariant {
            Some(true) => " (invariant)",
            Some(false) => " (not invariant: cycles are approximate)",
            None => "",
        }
    );
    let est = s.established();
    let mut lives: Vec<u64> = est.iter().map(|r| r.live_target).collect();
    lives.sort_unstable();
    lives.dedup();
    let mut modes: Vec<&str> = Vec::new();
    for r in &est {
        if !modes.contains(&r.mode.as_str()) {
            modes.push(&r.mode);
        }
    }
    let _ = write!(w, "| mode |");
    for l in &lives {
        let _ = write!(w, " {} live: cycles/pkt (Mpps/core) |", fmt_count(*l));
    }
    let _ = write!(w, "\n|---|");
    for _ in &lives {
        let _ = write!(w, "---:|");
    }
    let _ = writeln!(w);
    for m in &modes {
        let _ = write!(w, "| {m} |");
        for l in &lives {
            match est.iter().find(|r| r.mode == *m && r.live_target == *l) {
                Some(r) => {
                    let _ = write!(w, " {:.0} ({:.2}) |", r.cycles_per_packet, r.mpps_per_core);
                }
                None => {
                    let _ = write!(w, " not run |");
                }
            }
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w);
    let _ = write!(
        w,
        "Memory per connection (bytes per connection of capacity, `ConnTable::bytes_per_conn`):"
    );
    let mut seen = Vec::new();
    for r in &est {
        if !seen.contains(&r.live_target) {
            seen.push(r.live_target);
            let _ = write!(
                w,
                " {} live: {} B;",
                fmt_count(r.live_target),
                r.bytes_per_conn
            );
        }
    }
    let _ = writeln!(w, "\n");
    match &meta.perf_note {
        Some(n) => {
            let _ = writeln!(w, "Instructions per packet: {n}.\n");
        }
        None => {
            let _ = writeln!(w, "| mode | live | instructions/pkt |\n|---|---:|---:|");
            for r in &est {
                if let Some(i) = r.instructions_per_packet {
                    let _ = writeln!(
                        w,
                        "| {} | {} | {:.0} |",
                        r.mode,
                        fmt_count(r.live_target),
                        i
                    );
                }
            }
            let _ = writeln!(w);
        }
    }
    let nc = s.new_conns();
    if let Some(first) = nc.first() {
        let _ = writeln!(
            w,
            "New connections: {} SYNs of tuples never seen before into an empty table of {} \
             entries ({} reals; wrr weights 1..5), timed as above; each creates a connection \
             (schedule, insert, rewrite). Schedulers are one line each in \
             `bench/src/micro.rs` (`SCHEDULERS`).\n",
            fmt_count(first.syns),
            fmt_count(first.capacity),
            first.reals
        );
        let mut scheds: Vec<&str> = Vec::new();
        let mut ms: Vec<&str> = Vec::new();
        for r in &nc {
            if !scheds.contains(&r.scheduler.as_str()) {
                scheds.push(&r.scheduler);
            }
            if !ms.contains(&r.mode.as_str()) {
                ms.push(&r.mode);
            }
        }
        let _ = write!(w, "| scheduler |");
        for m in &ms {
            let _ = write!(w, " {m}: cycles/conn (M conns/s/core) |");
        }
        let _ = write!(w, "\n|---|");
        for _ in &ms {
            let _ = write!(w, "---:|");
        }
        let _ = writeln!(w);
        for sc in &scheds {
            let _ = write!(w, "| {sc} |");
            for m in &ms {
                match nc.iter().find(|r| r.scheduler == *sc && r.mode == *m) {
                    Some(r) => {
                        let _ = write!(
                            w,
                            " {:.0} ({:.2}) |",
                            r.cycles_per_conn,
                            r.conns_per_sec_per_core / 1e6
                        );
                    }
                    None => {
                        let _ = write!(w, " not run |");
                    }
                }
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(w);
    }
}

fn fmt_rate(r: Option<f64>) -> String {
    match r {
        None => "max".to_owned(),
        Some(p) if p >= 1e6 => format!("{:.2} Mpps", p / 1e6),
        Some(p) => format!("{:.0} Kpps", p / 1e3),
    }
}

fn io_section(w: &mut String, s: &Suite) {
    let _ = writeln!(
        w,
        "## 2. Through DPDK ports: generator → device under test → generator\n"
    );
    let _ = writeln!(w, "{}\n", s.topology);
    let _ = writeln!(
        w,
        "Columns: frames sent and received per second in the measured window (Mpps), \
         received frame bits (FCS included) in Gbit/s, loss over frames the port took, \
         latency percentiles from the TSC stamp in each frame (µs), the ratio of l4vs's \
         received Mpps to the ceiling's in the same table, and the device under test's \
         own view: busy TSC cycles per frame in its loop (I/O included) and the share of \
         its polling time that was busy, over its whole run (which includes about 0.2 s \
         of waiting for the generator to start, and for short runs such as the SYN \
         flood weighs more). A busy share well under 100% means the device \
         under test was waiting for the generator: then Mpps is the generator's limit, \
         and the cycles per frame compare the two loops better. \"CPU lost\" is the share \
         of the run the generator's and the device under test's threads spent runnable \
         but waiting for a CPU (/proc/PID/schedstat): time other processes on this shared \
         machine took. A run that lost more than 5% is repeated (up to the attempts the \
         suite allows) and the least disturbed attempt is shown.\n"
    );
    let groups = [
        ("size", "By frame size (UDP, max rate)"),
        (
            "flows",
            "By flows (UDP, 64 B, max rate; live connections in l4vs's table)",
        ),
        ("modes", "By forwarding mode (UDP, 64 B, max rate)"),
        (
            "tcp",
            "TCP: established flows and SYN floods (64 B, max rate)",
        ),
        ("latency", "Latency at a fixed rate (UDP, 64 B)"),
    ];
    for (g, title) in groups {
        let rows: Vec<&IoPoint> = s.io.iter().filter(|p| p.group == g).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(w, "### {title}\n");
        let _ = writeln!(
            w,
            "| device under test | traffic | flows | size | rate | tx Mpps | rx Mpps | rx Gbit/s | loss | p50 / p99 / p99.9 µs | vs ceiling | DUT cycles/frame | DUT busy | CPU lost gen / DUT |"
        );
        let _ = writeln!(
            w,
            "|---|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
        );
        for p in rows {
            let head = format!(
                "| {} | {} | {} | {} | {} |",
                p.dut,
                p.traffic,
                fmt_count(p.flows),
                p.size,
                fmt_rate(p.rate_pps)
            );
            match &p.result {
                Err(e) => {
                    let _ = writeln!(
                        w,
                        "{head} did not run: {} | | | | | | | | |",
                        e.replace('|', "/").replace('\n', " ")
                    );
                }
                Ok(r) => {
                    let lat = r.latency_us.map_or("-".to_owned(), |[a, b, c, _]| {
                        format!("{a:.1} / {b:.1} / {c:.1}")
                    });
                    let ratio = if p.is_ceiling() {
                        "ceiling".to_owned()
                    } else {
                        s.ratio(p).map_or("-".to_owned(), |r| format!("{r:.2}"))
                    };
                    let dut = p.dut_stats.as_ref();
                    let pct =
                        |x: Option<f64>| x.map_or("?".to_owned(), |v| format!("{:.0}%", v * 100.0));
                    let _ = writeln!(
                        w,
                        "{head} {:.3} | {:.3} | {:.3} | {:.3}% | {} | {} | {} | {} | {} / {} |",
                        r.tx_mpps,
                        r.rx_mpps,
                        r.rx_gbps,
                        r.loss * 100.0,
                        lat,
                        ratio,
                        dut.and_then(DutStats::cycles_per_frame)
                            .map_or("-".to_owned(), |c| format!("{c:.0}")),
                        dut.and_then(DutStats::busy_share)
                            .map_or("-".to_owned(), |b| format!("{:.0}%", b * 100.0)),
                        pct(r.stolen),
                        pct(dut.and_then(|d| d.stolen)),
                    );
                }
            }
        }
        let _ = writeln!(w);
        let drops: Vec<String> =
            s.io.iter()
                .filter(|p| p.group == g)
                .filter_map(|p| {
                    let d = p.dut_stats.as_ref()?;
                    (!d.drops.is_empty()).then(|| {
                        let list: Vec<String> =
                            d.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!(
                            "{} {} {} {} flows: {}",
                            p.dut,
                            p.traffic,
                            size_label(&p.size),
                            p.flows,
                            list.join(" ")
                        )
                    })
                })
                .collect();
        if !drops.is_empty() {
            let _ = writeln!(
                w,
                "Drops the device under test counted: {}.\n",
                drops.join("; ")
            );
        }
    }
}

/// One series of a chart.
struct Series<'a> {
    name: String,
    points: Vec<(f64, f64)>,
    color: &'a plotters::style::RGBColor,
}

/// Draws the two charts into `dir` (created if missing); returns
/// (file name, caption) of each chart that had data.
///
/// # Errors
/// The directory cannot be created or a file written.
pub fn plots(s: &Suite, dir: &Path) -> Result<Vec<(String, String)>, String> {
    use plotters::style::{BLACK, BLUE, CYAN, GREEN, MAGENTA, RED};
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();

    // Mpps against live connections.
    let colors = [&BLUE, &GREEN, &MAGENTA, &CYAN];
    let mut series = Vec::new();
    let est = s.established();
    let mut modes: Vec<&str> = Vec::new();
    for r in &est {
        if !modes.contains(&r.mode.as_str()) {
            modes.push(&r.mode);
        }
    }
    for (i, m) in modes.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = est
            .iter()
            .filter(|r| r.mode == *m)
            .map(|r| (r.live as f64, r.mpps_per_core))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            name: format!("in process, one core: {m}"),
            points: pts,
            color: colors[i % colors.len()],
        });
    }
    let mut via: Vec<(f64, f64)> =
        s.io.iter()
            .filter(|p| p.group == "flows" && !p.is_ceiling())
            .filter_map(|p| p.result.as_ref().ok().map(|r| (p.flows as f64, r.rx_mpps)))
            .collect();
    via.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !via.is_empty() {
        let dut =
            s.io.iter()
                .find(|p| p.group == "flows" && !p.is_ceiling())
                .map_or("l4vs", |p| p.dut.as_str());
        series.push(Series {
            name: format!("through the port: {dut}, UDP 64 B"),
            points: via,
            color: &RED,
        });
    }
    // The ceiling does not depend on flows: the one of the flows runs'
    // traffic, size and rate, drawn across the chart.
    let ceiling =
        s.io.iter()
            .find(|p| p.group == "flows" && !p.is_ceiling())
            .and_then(|p| s.ceiling_for(p))
            .and_then(|c| c.result.as_ref().ok())
            .map(|r| r.rx_mpps);
    if let Some(c) = ceiling {
        let xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(0.0, f64::max);
        if lo.is_finite() {
            series.push(Series {
                name: "I/O ceiling through the port, UDP 64 B".into(),
                points: vec![(lo, c), (hi, c)],
                color: &BLACK,
            });
        }
    }
    if series.iter().any(|s| !s.points.is_empty()) {
        let file = "mpps-vs-connections.svg";
        chart(
            &dir.join(file),
            "Mpps against live connections",
            "live connections (log scale)",
            true,
            &series,
        )?;
        out.push((file.to_owned(), "Mpps against live connections".to_owned()));
    }

    // Mpps against frame size.
    let mut series = Vec::new();
    for (ceil, name, color) in [
        (true, "I/O ceiling (io-fwd)", &BLACK),
        (false, "l4vs", &RED),
    ] {
        let mut fixed = Vec::new();
        let mut imix = Vec::new();
        let mut label = name.to_owned();
        for p in
            s.io.iter()
                .filter(|p| p.group == "size" && p.is_ceiling() == ceil)
        {
            if !ceil {
                label = p.dut.clone();
            }
            if let Ok(r) = &p.result {
                if p.size == "imix" {
                    imix.push((r.mean_frame, r.rx_mpps));
                } else if let Ok(n) = p.size.parse::<f64>() {
                    fixed.push((n, r.rx_mpps));
                }
            }
        }
        fixed.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            name: label.clone(),
            points: fixed,
            color,
        });
        if !imix.is_empty() {
            series.push(Series {
                name: format!("{label}, IMIX (at its mean size)"),
                points: imix,
                color: if ceil { &CYAN } else { &MAGENTA },
            });
        }
    }
    if series.iter().any(|s| !s.points.is_empty()) {
        let file = "mpps-vs-size.svg";
        chart(
            &dir.join(file),
            "Mpps against frame size (UDP, max rate)",
            "frame size, bytes (FCS included)",
            false,
            &series,
        )?;
        out.push((file.to_owned(), "Mpps against frame size".to_owned()));
    }
    Ok(out)
}

/// 1500 -> "1500", 10000 -> "10 K", 1000000 -> "1 M".
fn axis_label(x: f64) -> String {
    if x >= 1e6 {
        format!("{} M", (x / 1e6 * 10.0).round() / 10.0)
    } else if x >= 1e4 {
        format!("{} K", (x / 1e3 * 10.0).round() / 10.0)
    } else {
        format!("{x:.0}")
    }
}

fn chart(
    path: &Path,
    title: &str,
    xlabel: &str,
    log_x: bool,
    series: &[Series<'_>],
) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let xmin = pts().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts().map(|p| p.0).fold(0.0, f64::max);
    let ymax = pts().map(|p| p.1).fold(0.0, f64::max).max(0.1) * 1.15;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut b = ChartBuilder::on(&root);
    b.caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .x_desc(xlabel)
                .y_desc("Mpps")
                .x_label_formatter(&|x: &f64| axis_label(*x))
                .y_label_formatter(&|y: &f64| format!("{y:.1}"))
                .draw()
                .map_err(|e| err(&e))?;
            for s in series.iter().filter(|s| !s.points.is_empty()) {
                let color = *s.color;
                c.draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                c.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .map_err(|e| err(&e))?;
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if log_x {
        let lo = (xmin / 2.0).max(1.0);
        let hi = (xmax * 2.0).max(lo * 10.0);
        draw!(b
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..ymax)
            .map_err(|e| err(&e))?);
    } else {
        let lo = (xmin - 50.0).max(0.0);
        let hi = xmax + 50.0;
        draw!(b
            .build_cartesian_2d(lo..hi, 0.0..ymax)
            .map_err(|e| err(&e))?);
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(rx_mpps: f64) -> GenReport {
        GenReport {
            traffic: "udp".into(),
            flows: 1024,
            size: "64".into(),
            mean_frame: 64.0,
            rate_pps: None,
            seconds: 3.0,
            tx: 3_000_000,
            rx: (rx_mpps * 3e6) as u64,
            tx_mpps: 1.0,
            rx_mpps,
            rx_gbps: rx_mpps * 0.512,
            loss: 0.0,
            latency_us: Some([5.0, 9.0, 20.0, 50.0]),
            other_rx: 0,
            tx_backpressure: 0,
            setup_tx: 0,
            line_rate_gbps: None,
            stolen: None,
        }
    }

    fn point(dut: &str, size: &str, result: Result<GenReport, String>) -> IoPoint {
        IoPoint {
            group: "size".into(),
            dut: dut.into(),
            traffic: "udp".into(),
            flows: 1024,
            size: size.into(),
            rate_pps: None,
            result,
            dut_stats: Some(DutStats {
                rx: 1000,
                busy_cycles: 500_000,
                idle_cycles: 500_000,
                drops: vec![],
                stolen: None,
            }),
        }
    }

    #[test]
    fn a_run_that_could_not_start_says_so_in_its_row() {
        let s = Suite {
            io: vec![
                point(CEILING, "64", Ok(gen(2.0))),
                point(
                    "l4vs dr",
                    "64",
                    Err("l4vs did not start: EAL init failed".into()),
                ),
            ],
            peers: "No peer results: bench/peers/run does not exist.".into(),
            ..Suite::default()
        };
        let md = render(&s);
        assert!(md.contains("| l4vs dr | udp | 1024 | 64 | max | did not run: l4vs did not start: EAL init failed |"), "{md}");
        assert!(md.contains("## Peers\n\nNo peer results"), "{md}");
        assert!(
            md.contains("| l4vs ≥ 0.7 of the I/O ceiling | not measured |"),
            "{md}"
        );
    }

    #[test]
    fn ratio_to_the_ceiling_of_the_same_size() {
        let mut busy_ceiling = point(CEILING, "1518", Ok(gen(1.0)));
        busy_ceiling.dut_stats = Some(DutStats {
            rx: 1000,
            busy_cycles: 950_000,
            idle_cycles: 50_000,
            drops: vec![],
            stolen: None,
        });
        let mut disturbed = point(CEILING, "64", Ok(gen(0.5)));
        disturbed.result.as_mut().unwrap().stolen = Some(0.4);
        let s = Suite {
            io: vec![
                disturbed,
                point(CEILING, "64", Ok(gen(2.0))),
                busy_ceiling,
                point("l4vs dr", "64", Ok(gen(1.5))),
                point("l4vs dr", "1518", Ok(gen(0.5))),
            ],
            ..Suite::default()
        };
        // The least disturbed of the two 64-byte ceilings counts.
        assert_eq!(s.ratio(&s.io[3]), Some(0.75));
        assert_eq!(s.ratio(&s.io[4]), Some(0.5));
        let md = render(&s);
        // A generator-bound ceiling (busy 50%) is compared by cycles per
        // frame; a saturated one (95%) by Mpps.
        assert!(
            md.contains(
                "64 B: 0.75 in Mpps, but io-fwd was busy only 50% (generator-bound); \
                 by cycles/frame 1.00; 1518 B: 0.50 | **not met** |"
            ),
            "{md}"
        );
        assert!(md.contains("| 0.75 | 500 | 50% | ? / ? |"), "{md}");
    }

    fn micro_with(nat_cycles: f64) -> MicroReport {
        MicroReport {
            tsc_hz: 2_000_000_000,
            tsc_invariant: Some(true),
            core: Some(1),
            frame_size: 64,
            perf_note: None,
            established: vec![EstablishedRow {
                mode: "nat".into(),
                live_target: 10_000,
                live: 10_000,
                capacity: 12_500,
                bytes_per_conn: 66,
                packets: 1000,
                cycles_per_packet: nat_cycles,
                mpps_per_core: 2e9 / nat_cycles / 1e6,
                instructions_per_packet: None,
                fill_seconds: 0.0,
            }],
            new_conns: vec![],
            stolen: None,
        }
    }

    #[test]
    fn an_earlier_build_and_the_reload_figures_are_reported() {
        let s = Suite {
            micro: vec![Ok(micro_with(330.0))],
            comparison: Some(Comparison {
                label: "commit d26873c".into(),
                rounds: vec![
                    Ok((micro_with(330.0), micro_with(300.0))),
                    Ok((micro_with(360.0), micro_with(250.0))),
                    Ok((micro_with(300.0), micro_with(330.0))),
                    Err("l4vs-cycles: signal 9".into()),
                ],
            }),
            reload: vec![
                (
                    "This build".into(),
                    Ok("l4vs-reload: one weight changed: 0.1 ms\n".into()),
                ),
                ("commit d26873c (before)".into(), Err("not found".into())),
            ],
            ..Suite::default()
        };
        let md = render(&s);
        assert!(
            md.contains("| nat at 10 K live, per packet | 300 | 330 | 1.10 |"),
            "{md}"
        );
        assert!(
            md.contains("This build:\n\n```\nl4vs-reload: one weight changed: 0.1 ms\n```"),
            "{md}"
        );
        assert!(
            md.contains("commit d26873c (before): did not run: not found"),
            "{md}"
        );
    }

    #[test]
    fn failed_microbenchmarks_are_reported() {
        let s = Suite {
            micro: vec![Err("out of memory".into())],
            ..Suite::default()
        };
        let md = render(&s);
        assert!(
            md.contains("**A microbenchmark run failed:** out of memory"),
            "{md}"
        );
        assert!(md.contains("established flows ≤ 150 cycles/packet, one core, 1 M live connections | not measured"), "{md}");
    }

    #[test]
    fn axis_labels() {
        assert_eq!(axis_label(1.0), "1");
        assert_eq!(axis_label(1518.0), "1518");
        assert_eq!(axis_label(10_000.0), "10 K");
        assert_eq!(axis_label(2_500_000.0), "2.5 M");
    }

    #[test]
    fn plots_are_svg_files() {
        let dir = std::env::temp_dir().join(format!("l4vs-bench-plot-{}", std::process::id()));
        let mut imix = gen(1.2);
        imix.size = "imix".into();
        imix.mean_frame = 361.8;
        let s = Suite {
            io: vec![
                point(CEILING, "64", Ok(gen(2.0))),
                point("l4vs dr", "64", Ok(gen(1.5))),
                point("l4vs dr", "imix", Ok(imix)),
            ],
            ..Suite::default()
        };
        let files = plots(&s, &dir).unwrap();
        assert_eq!(files.len(), 1, "no flows data, so only the size chart");
        let mut flows = point("l4vs dr", "64", Ok(gen(1.0)));
        flows.group = "flows".into();
        let s = Suite {
            io: vec![point(CEILING, "64", Ok(gen(2.0))), flows],
            ..Suite::default()
        };
        let files = plots(&s, &dir).unwrap();
        let svg = std::fs::read_to_string(dir.join(&files[0].0)).unwrap();
        assert!(
            svg.contains("I/O ceiling through the port"),
            "the ceiling of the size runs is drawn"
        );
        let svg = std::fs::read_to_string(dir.join(&files[0].0)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("l4vs dr"), "{svg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
