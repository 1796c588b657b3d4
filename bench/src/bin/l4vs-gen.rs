//! `l4vs-gen`: a traffic generator over one DPDK port.
//!
//! It sends UDP or TCP frames to a VIP over N flows, or a SYN flood of
//! unique tuples, at a fixed or the maximum rate, with fixed sizes from
//! 64 to 1518 bytes or IMIX, and receives on the same port whatever the
//! device under test sends back. Each frame carries the TSC at which it
//! was built; the receive side turns that into latency percentiles (the
//! device under test and the generator must share a TSC: same machine, or
//! a loopback cable). It reports frames sent and received in the measured
//! window, Mpps, Gbit/s, loss and latency p50/p99/p99.9, with a progress
//! line per second on long runs.
//!
//! One lcore does both directions: each loop iteration drains the RX
//! queue first (so the device under test never finds the generator's
//! queue full), then sends one burst. Frames `tx_burst` refuses wait for
//! the next burst and get a fresh stamp then; each refusal counts as
//! back-pressure, not as loss (with memif the device under test pushes
//! back instead of dropping). Loss is counted over frames the port took.
//!
//! A frame's stamp is the TSC read at the top of the loop iteration that
//! sends it, so it also decides which side of the measured window the
//! frame is on, for both counts alike; latency therefore includes up to
//! one RX drain of the generator itself (a few microseconds at most).
//!
//! Parameters are checked before the EAL starts (see
//! `l4vs_bench::traffic::ParamError`); an impossible run exits with
//! status 2 and says why.

use anyhow::{Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use l4vs_bench::dpdk::{open_port, EalOptions};
use l4vs_bench::results::GenReport;
use l4vs_bench::suite;
use l4vs_bench::traffic::{self, Endpoints, Params, Rate, Sizes, Template, Traffic};
use l4vs_dpdk::{Eal, Mbuf, Mempool, RxQueue, TxQueue};
use l4vs_wire::ethernet::Address as MacAddr;
use l4vs_wire::tcp;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAX_BURST: usize = 256;
/// RX bursts per loop iteration at most, so TX keeps its turn.
const RX_ROUNDS: usize = 4;

#[derive(Parser, Debug)]
#[command(
    name = "l4vs-gen",
    version,
    about = "Traffic generator over a DPDK port: UDP/TCP flows or SYN floods to a VIP, \
             throughput, loss and latency of what comes back"
)]
struct Cli {
    /// The DPDK device: a vdev spec such as
    /// `net_memif0,role=client,socket=/run/l4vs-bench.sock,mac=02:00:00:00:00:02`
    /// or a PCI address.
    #[arg(long)]
    port: String,
    /// The lcore to run on.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// EAL `--file-prefix` (default: l4vs-gen-PID).
    #[arg(long)]
    file_prefix: Option<String>,
    /// Memory in MB without hugepages.
    #[arg(long, default_value_t = 512)]
    mem_mb: u32,
    /// Use hugepages instead of `--no-huge`.
    #[arg(long)]
    huge: bool,
    /// MAC address of the device under test (frames' destination).
    #[arg(long, default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    dst_mac: MacAddr,
    /// The virtual IP.
    #[arg(long, default_value = "198.18.0.100")]
    vip: Ipv4Addr,
    /// The virtual port (default 53 for UDP, 80 for TCP and SYN).
    #[arg(long)]
    vport: Option<u16>,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Traffic::Udp)]
    traffic: Traffic,
    /// Flows (UDP, TCP: 1 to 16777216), or unique tuples before wrapping
    /// (SYN).
    #[arg(long, default_value_t = 1024)]
    flows: u64,
    /// Frame size in bytes with FCS (64..=1518), or "imix" (64/594/1518 at 7:4:1).
    #[arg(long, default_value = "64", value_parser = Sizes::parse)]
    size: Sizes,
    /// Frames per second (e.g. 500000, 2.5M), or "max".
    #[arg(long, default_value = "max", value_parser = Rate::parse)]
    rate: Rate,
    /// Seconds to measure.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    duration: Duration,
    /// Seconds to send before measuring (after TCP connections are opened).
    #[arg(long, default_value = "1", value_parser = parse_secs)]
    warmup: Duration,
    /// Stop measuring after this many frames even if the duration is not over.
    #[arg(long)]
    count: Option<u64>,
    /// The port's line rate in Gbit/s, when it reports none (or to check
    /// against another).
    #[arg(long)]
    line_rate_gbps: Option<f64>,
    /// Frames per burst.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    burst: u16,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 1.0)]
    progress: f64,
    /// Seconds to wait for the link (the device under test's side).
    #[arg(long, default_value_t = 10.0)]
    link_timeout: f64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let parts: Vec<_> = s.split(':').collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(MacAddr(m))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds >= 0"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let params = Params {
        traffic: cli.traffic,
        flows: cli.flows,
        sizes: cli.size,
        rate: cli.rate,
        duration: cli.duration,
        warmup: cli.warmup,
        line_rate_bps: cli.line_rate_gbps.map(|g| g * 1e9),
    };
    // Everything that can be checked without the port, before the EAL.
    if let Some(g) = cli.line_rate_gbps {
        if !(g.is_finite() && g > 0.0) {
            eprintln!("l4vs-gen: --line-rate-gbps must be a positive number (got {g})");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = params.validate() {
        eprintln!("l4vs-gen: {e}");
        return ExitCode::from(2);
    }
    match run(&cli, params) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(pe) = e.downcast_ref::<traffic::ParamError>() {
                eprintln!("l4vs-gen: {pe}");
                return ExitCode::from(2);
            }
            eprintln!("l4vs-gen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Counters and the histogram of one run.
struct Stats {
    tx: u64,
    rx: u64,
    other_rx: u64,
    refused: u64,
    setup_tx: u64,
    lat: Histogram<u64>,
}

struct Io {
    rx: RxQueue,
    tx: TxQueue,
    pool: Mempool,
    rx_bufs: [Option<Mbuf>; MAX_BURST],
    tx_bufs: [Option<Mbuf>; MAX_BURST],
    /// (template index, flow) of each frame in `tx_bufs`.
    meta: [(usize, u64); MAX_BURST],
    /// Built frames waiting at the front of `tx_bufs`.
    pending: usize,
    burst: usize,
}

/// The measured window, in TSC ticks, and the TSC rate.
#[derive(Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
    ns_per_tick: f64,
}

impl Io {
    /// Drains up to RX_ROUNDS bursts; counts frames stamped inside `w`.
    fn receive(&mut self, w: &Window, s: &mut Stats) -> usize {
        let mut total = 0;
        for _ in 0..RX_ROUNDS {
            let n = self.rx.burst(&mut self.rx_bufs[..self.burst]);
            if n == 0 {
                break;
            }
            let now = l4vs_dpdk::rdtsc();
            for slot in &mut self.rx_bufs[..n] {
                let Some(m) = slot.take() else { continue };
                match traffic::read_stamp(m.data()) {
                    Some(t) if t >= w.start && t < w.end => {
                        s.rx += 1;
                        let ns = (now.saturating_sub(t) as f64 * w.ns_per_tick) as u64;
                        s.lat.saturating_record(ns.max(1));
                    }
                    _ => s.other_rx += 1,
                }
            }
            total += n;
        }
        total
    }

    /// Sends up to `n` frames: first those `tx_burst` refused last time
    /// (rebuilt with a fresh stamp, so latency starts when the port takes
    /// a frame), then new ones, frame `k` = `pick(k)` = (template index,
    /// flow) for k = `*seq`, `*seq + 1`...; returns how many the port
    /// took. What it refuses now waits for the next call.
    fn send(
        &mut self,
        stamp: u64,
        n: usize,
        seq: &mut u64,
        s: &mut Stats,
        templates: &[Template],
        pick: impl Fn(u64) -> (usize, u64),
    ) -> usize {
        // Waiting frames were asked for before, so they always go.
        let n = n.min(self.burst).max(self.pending);
        if n == 0 {
            return 0;
        }
        // The stamp is the loop's own `now`, so a frame counts in the
        // measured window on the receive side exactly when it counted on
        // the send side.
        let tsc = stamp;
        let old = self.pending;
        for (slot, (t, flow)) in self.tx_bufs[..old].iter_mut().zip(&self.meta[..old]) {
            if let Some(m) = slot.as_mut() {
                templates[*t].write(m.data_mut(), *flow, tsc);
            }
        }
        let fresh = n - old;
        if fresh > 0 && self.pool.alloc_bulk(&mut self.tx_bufs[old..n]) {
            for (i, slot) in self.tx_bufs[old..n].iter_mut().enumerate() {
                let (t, flow) = pick(*seq + (old + i) as u64);
                self.meta[old + i] = (t, flow);
                if let Some(m) = slot.as_mut() {
                    if m.append(templates[t].len()) {
                        templates[t].write(m.data_mut(), flow, tsc);
                    }
                }
            }
        } else if old == 0 {
            return 0;
        }
        let built = if fresh > 0 && self.tx_bufs[old].is_some() {
            n
        } else {
            old
        };
        let sent = self.tx.burst(&mut self.tx_bufs[..built]);
        if sent < built {
            s.refused += 1;
        }
        // The refused frames go to the front for the next call.
        self.tx_bufs[..built].rotate_left(sent);
        self.meta[..built].rotate_left(sent);
        self.pending = built - sent;
        *seq += sent as u64;
        sent
    }

    /// Frees frames still waiting to be sent.
    fn discard_pending(&mut self) {
        for slot in &mut self.tx_bufs[..self.pending] {
            drop(slot.take());
        }
        self.pending = 0;
    }
}

fn run(cli: &Cli, params: Params) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let opts = EalOptions {
        program: "l4vs-gen".into(),
        core: cli.core,
        file_prefix: cli
            .file_prefix
            .clone()
            .unwrap_or_else(|| format!("l4vs-gen-{}", std::process::id())),
        no_huge_mb: (!cli.huge).then_some(cli.mem_mb),
        device: cli.port.clone(),
        extra: vec![],
    };
    let eal = Eal::init(&opts.argv()).context("EAL init")?;
    let pool = Mempool::create("gen_mbufs", 16383, 256, l4vs_dpdk::DEFAULT_DATA_ROOM, -1)
        .context("mbuf pool")?;
    let port = open_port(&cli.port, &pool, Duration::from_secs_f64(cli.link_timeout))?;
    let link = port.link_speed_mbps().map(|m| f64::from(m) * 1e6);
    let line_rate_bps = params.line_rate_bps.or(link);
    // Now that the port's own line rate is known, check the rate against it.
    let plan = Params {
        line_rate_bps,
        ..params
    }
    .validate()?;
    let hz = l4vs_dpdk::tsc_hz();
    let src_mac = MacAddr(port.mac_addr()?);
    let vport = cli
        .vport
        .unwrap_or(if cli.traffic == Traffic::Udp { 53 } else { 80 });
    let ep = Endpoints {
        src_mac,
        dst_mac: cli.dst_mac,
        vip: cli.vip,
        vport,
    };
    let flags = match cli.traffic {
        Traffic::Udp => 0,
        Traffic::Tcp => tcp::flags::ACK,
        Traffic::Syn => tcp::flags::SYN,
    };
    let distinct = cli.size.distinct();
    let templates: Vec<Template> = distinct
        .iter()
        .map(|sz| Template::new(cli.traffic, flags, *sz, &ep))
        .collect();
    let syn64 = Template::new(Traffic::Syn, tcp::flags::SYN, 64, &ep);
    let mut io = Io {
        rx: port.rx_queue(0)?,
        tx: port.tx_queue(0)?,
        pool,
        rx_bufs: [const { None }; MAX_BURST],
        tx_bufs: [const { None }; MAX_BURST],
        meta: [(0, 0); MAX_BURST],
        pending: 0,
        burst: usize::from(cli.burst),
    };
    let mut s = Stats {
        tx: 0,
        rx: 0,
        other_rx: 0,
        refused: 0,
        setup_tx: 0,
        lat: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).context("histogram")?,
    };
    let ns_per_tick = 1e9 / hz as f64;
    let ticks = |d: Duration| (d.as_secs_f64() * hz as f64) as u64;
    let never = Window {
        start: u64::MAX,
        end: u64::MAX,
        ns_per_tick,
    };
    eprintln!(
        "l4vs-gen: {} {} flows, {} B frames, rate {}, {} s after {} s warm-up; port {} up{}",
        cli.traffic.as_str(),
        cli.flows,
        cli.size,
        cli.rate,
        cli.duration.as_secs_f64(),
        cli.warmup.as_secs_f64(),
        cli.port,
        line_rate_bps.map_or(String::new(), |b| format!(
            ", line rate {:.1} Gbit/s",
            b / 1e9
        )),
    );

    // TCP: open every flow with one SYN first.
    if cli.traffic == Traffic::Tcp {
        let mut seq = 0u64;
        let t0 = l4vs_dpdk::rdtsc();
        while seq < cli.flows && !stop.load(Ordering::Relaxed) {
            io.receive(&never, &mut s);
            let allowed = match plan.pps {
                Some(pps) => ((l4vs_dpdk::rdtsc() - t0) as f64 / hz as f64 * pps) as u64 + 1,
                None => u64::MAX,
            };
            let want = (cli.flows - seq).min(allowed.saturating_sub(seq)) as usize;
            io.send(
                l4vs_dpdk::rdtsc(),
                want,
                &mut seq,
                &mut s,
                std::slice::from_ref(&syn64),
                |k| (0, k),
            );
        }
        io.discard_pending();
        s.setup_tx += seq;
        let settle = l4vs_dpdk::rdtsc() + ticks(Duration::from_millis(100));
        while l4vs_dpdk::rdtsc() < settle {
            io.receive(&never, &mut s);
        }
    }

    let t_start = l4vs_dpdk::rdtsc();
    let w = Window {
        start: t_start + ticks(cli.warmup),
        end: t_start + ticks(cli.warmup) + ticks(cli.duration),
        ns_per_tick,
    };
    let sizes = cli.size;
    let flows = cli.flows;
    let pick = |k: u64| -> (usize, u64) {
        let size = sizes.nth(k);
        let t = distinct.iter().position(|s| *s == size).unwrap_or(0);
        (t, k % flows)
    };
    let mut seq = 0u64;
    let mut in_window_from: Option<u64> = None;
    let mut last_progress = t_start;
    let mut last_counts = (0u64, 0u64);
    let progress_ticks = (cli.progress > 0.0).then(|| ticks(Duration::from_secs_f64(cli.progress)));
    let count_limit = cli.count.unwrap_or(u64::MAX);
    let mut end = w.end;
    let mut wait_at_start: Option<Option<u64>> = None;
    loop {
        let now = l4vs_dpdk::rdtsc();
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        if wait_at_start.is_none() && now >= w.start {
            wait_at_start = Some(suite::runqueue_wait_ns(None));
        }
        io.receive(&w, &mut s);
        let allowed = match plan.pps {
            Some(pps) => ((now - t_start) as f64 / hz as f64 * pps) as u64 + 1,
            None => u64::MAX,
        };
        let mut want = allowed.saturating_sub(seq) as usize;
        if now >= w.start {
            if in_window_from.is_none() {
                // Progress rates count from the start of the window.
                last_progress = now;
            }
            let from = *in_window_from.get_or_insert(seq);
            let left = count_limit.saturating_sub(seq - from);
            if left == 0 {
                end = now;
                break;
            }
            want = want.min(left as usize);
        }
        io.send(now, want, &mut seq, &mut s, &templates, pick);
        if let Some(pt) = progress_ticks {
            if now - last_progress >= pt && now >= w.start {
                let from = in_window_from.unwrap_or(seq);
                let dt = (now - last_progress) as f64 / hz as f64;
                let (tx0, rx0) = last_counts;
                let tx_now = seq - from;
                eprintln!(
                    "l4vs-gen: {:5.1} s  tx {:7.3} Mpps  rx {:7.3} Mpps  p99 {}",
                    (now - w.start) as f64 / hz as f64,
                    (tx_now - tx0) as f64 / dt / 1e6,
                    (s.rx - rx0) as f64 / dt / 1e6,
                    fmt_us(s.lat.value_at_quantile(0.99)),
                );
                last_counts = (tx_now, s.rx);
                last_progress = now;
            }
        }
    }
    let window_end = end.min(l4vs_dpdk::rdtsc());
    let wait_at_end = suite::runqueue_wait_ns(None);
    io.discard_pending();
    s.tx = in_window_from.map_or(0, |from| seq - from);
    s.setup_tx += in_window_from.unwrap_or(seq);
    // Drain: until 50 ms pass without a frame, 1 s at most.
    let w = Window {
        end: window_end,
        ..w
    };
    let hard_stop = l4vs_dpdk::rdtsc() + ticks(Duration::from_secs(1));
    let mut quiet_since = l4vs_dpdk::rdtsc();
    loop {
        let now = l4vs_dpdk::rdtsc();
        if now >= hard_stop || now - quiet_since >= ticks(Duration::from_millis(50)) {
            break;
        }
        if io.receive(&w, &mut s) > 0 {
            quiet_since = now;
        }
    }
    let stats = port.stats().ok();
    let secs = window_end.saturating_sub(w.start) as f64 / hz as f64;
    let mut report = report(cli, &plan, &s, secs, line_rate_bps);
    if let (Some(Some(a)), Some(b)) = (wait_at_start, wait_at_end) {
        report.stolen = Some((b.saturating_sub(a) as f64 / 1e9 / secs.max(1e-9)).min(1.0));
    }
    print_human(&report, stats.map(|p| p.imissed));
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    drop(io);
    let _ = port.stop();
    let _ = port.close();
    drop(eal);
    Ok(())
}

fn fmt_us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1e3)
}

fn report(cli: &Cli, plan: &traffic::Plan, s: &Stats, secs: f64, line: Option<f64>) -> GenReport {
    let secs = secs.max(1e-9);
    let mean = cli.size.mean();
    let q = |p: f64| s.lat.value_at_quantile(p) as f64 / 1e3;
    GenReport {
        traffic: cli.traffic.as_str().to_owned(),
        flows: cli.flows,
        size: cli.size.to_string(),
        mean_frame: mean,
        rate_pps: plan.pps,
        seconds: secs,
        tx: s.tx,
        rx: s.rx,
        tx_mpps: s.tx as f64 / secs / 1e6,
        rx_mpps: s.rx as f64 / secs / 1e6,
        rx_gbps: s.rx as f64 * mean * 8.0 / secs / 1e9,
        loss: if s.tx == 0 {
            0.0
        } else {
            1.0 - s.rx as f64 / s.tx as f64
        },
        latency_us: (!s.lat.is_empty())
            .then(|| [q(0.5), q(0.99), q(0.999), s.lat.max() as f64 / 1e3]),
        other_rx: s.other_rx,
        tx_backpressure: s.refused,
        setup_tx: s.setup_tx,
        line_rate_gbps: line.map(|b| b / 1e9),
        stolen: None,
    }
}

fn print_human(r: &GenReport, imissed: Option<u64>) {
    let mut e = std::io::stderr();
    let lat = r
        .latency_us
        .map_or("no frames back".to_owned(), |[p50, p99, p999, max]| {
            format!("p50 {p50:.1} us  p99 {p99:.1} us  p99.9 {p999:.1} us  max {max:.1} us")
        });
    let _ = writeln!(
        e,
        "l4vs-gen: {:.2} s: tx {} ({:.3} Mpps)  rx {} ({:.3} Mpps, {:.3} Gbit/s)  loss {:.4}%\n\
         l4vs-gen: latency {lat}\n\
         l4vs-gen: bursts tx_burst cut short {}  other frames received {}  setup/warm-up frames {}  port imissed {}  CPU taken by other processes {}",
        r.seconds,
        r.tx,
        r.tx_mpps,
        r.rx,
        r.rx_mpps,
        r.rx_gbps,
        r.loss * 100.0,
        r.tx_backpressure,
        r.other_rx,
        r.setup_tx,
        imissed.map_or("?".into(), |m| m.to_string()),
        r.stolen.map_or("?".into(), |s| format!("{:.1}%", s * 100.0)),
    );
}
