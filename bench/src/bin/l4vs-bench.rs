//! `l4vs-bench`: the benchmark suite. Runs the in-process
//! microbenchmarks (`l4vs-cycles`), then the generator (`l4vs-gen`)
//! through the I/O-forward ceiling (`l4vs-fwd`) and through l4vs itself
//! over a memif pair, runs the peers hook, and writes bench/RESULTS.md
//! and its SVG plots. `scripts/bench [--quick]` builds everything and
//! runs this as root.
//!
//! A device under test that does not start, or a generator run that
//! fails, becomes a row saying why; the suite goes on with the next one.
//! Every child process is stopped on the way out (also on Ctrl-C), and
//! the DPDK runtime directories of the prefixes it used are removed.

use anyhow::{bail, Context, Result};
use clap::Parser;
use l4vs_bench::report::{
    self, Comparison, DutStats, InstructionsRow, IoPoint, Machine, RunInfo, Suite, CEILING,
};
use l4vs_bench::results::{GenReport, MicroReport};
use l4vs_bench::suite::{self, Method};
use l4vs_control::config::DEFAULT_CONNECTIONS;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "l4vs-bench",
    version,
    about = "Run the l4vs benchmark suite and write bench/RESULTS.md with plots"
)]
struct Cli {
    /// A short run (a few minutes): fewer sizes, flows and samples.
    #[arg(long)]
    quick: bool,
    /// Where l4vs, l4vs-gen, l4vs-fwd and l4vs-cycles are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The report to write.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
    /// Where the plots go (referenced from the report by a relative path).
    #[arg(long, default_value = "bench/results")]
    plots_dir: PathBuf,
    /// Core of the generator (and of l4vs's control thread).
    #[arg(long, default_value_t = 0)]
    gen_core: usize,
    /// Core of the device under test's worker.
    #[arg(long, default_value_t = 1)]
    dut_core: usize,
    /// Seconds measured per generator run (default 3 quick, 10 full).
    #[arg(long)]
    duration: Option<f64>,
    /// Attempts per generator run while other processes take more than 5%
    /// of its time (default 3); the least disturbed is kept.
    #[arg(long)]
    attempts: Option<u32>,
    /// The command line to record in the report (default: this one).
    #[arg(long)]
    command: Option<String>,
    /// The peers hook: run if it exists.
    #[arg(long, default_value = "bench/peers/run")]
    peers_script: PathBuf,
    /// Where the peers hook writes its Markdown.
    #[arg(long, default_value = "bench/results/peers.md")]
    peers_md: PathBuf,
    /// Skip the microbenchmarks.
    #[arg(long)]
    skip_micro: bool,
    /// An earlier build's `l4vs-cycles` and `l4vs-reload` to measure in the
    /// same run, for a before/after comparison (a directory).
    #[arg(long)]
    baseline_bin_dir: Option<PathBuf>,
    /// How the report names the earlier build (e.g. its commit).
    #[arg(long, default_value = "the earlier build")]
    baseline_label: String,
    /// Skip the generator runs.
    #[arg(long)]
    skip_io: bool,
    /// Skip the peers hook.
    #[arg(long)]
    skip_peers: bool,
}

/// A child process that is stopped when dropped: SIGINT, then SIGKILL.
struct Guard {
    child: Option<Child>,
    name: String,
}

impl Guard {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGINT, wait up to `grace`, then SIGKILL. True if it exited by itself.
    fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "l4vs-bench: {} did not exit after SIGINT; killing it",
            self.name
        );
        let _ = c.kill();
        let _ = c.wait();
        false
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Lines of a child's pipe, collected by a thread.
fn collect_lines(
    r: impl Read + Send + 'static,
    echo: bool,
) -> (mpsc::Receiver<String>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("    {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, h)
}

fn tail(lines: &[String], n: usize) -> String {
    let start = lines.len().saturating_sub(n);
    lines[start..].join(" / ")
}

/// What kind of device under test a point runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dut {
    Fwd,
    L4vs(Method),
}

impl Dut {
    fn label(self) -> String {
        match self {
            Dut::Fwd => CEILING.to_owned(),
            Dut::L4vs(m) => format!("l4vs {}", m.as_str()),
        }
    }
}

/// One generator run to make.
#[derive(Debug, Clone)]
struct Spec {
    group: &'static str,
    dut: Dut,
    traffic: &'static str,
    flows: u64,
    size: &'static str,
    rate_pps: Option<f64>,
    warmup: f64,
    count: Option<u64>,
}

/// A run that lost more of its time than this to other processes is
/// repeated.
const MAX_LOST: f64 = 0.05;

struct Ctx {
    cli: Cli,
    attempts: u32,
    tmp: PathBuf,
    socket: String,
    prefixes: Vec<String>,
    stop: Arc<AtomicBool>,
    others: Vec<String>,
    own_pids: Vec<u32>,
    duration: f64,
}

impl Ctx {
    fn bin(&self, name: &str) -> PathBuf {
        self.cli.bin_dir.join(name)
    }

    fn prefix(&mut self, what: &str) -> String {
        let p = format!("l4vs-bench-{what}-{}", std::process::id());
        if !self.prefixes.contains(&p) {
            self.prefixes.push(p.clone());
        }
        p
    }

    /// Notes heavy processes that are not ours (compilers of other
    /// engineers on the same machine, say).
    fn sample_others(&mut self) {
        let Ok(out) = Command::new("ps")
            .args(["-eo", "pid=,ppid=,pcpu=,comm="])
            .output()
        else {
            return;
        };
        let me = std::process::id();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            let (Ok(pid), Ok(ppid), Ok(cpu)) = (
                f[0].parse::<u32>(),
                f[1].parse::<u32>(),
                f[2].parse::<f64>(),
            ) else {
                continue;
            };
            if pid == me || ppid == me || self.own_pids.contains(&pid) || cpu < 20.0 {
                continue;
            }
            let name = f[3].to_owned();
            if !self.others.contains(&name) {
                self.others.push(name);
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("l4vs-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    for b in ["l4vs", "l4vs-gen", "l4vs-fwd", "l4vs-cycles", "l4vs-reload"] {
        let p = cli.bin_dir.join(b);
        if !p.exists() {
            bail!("{} not found: build first (cargo build --release -p l4vs-control -p l4vs-bench) or pass --bin-dir", p.display());
        }
    }
    let tmp = std::env::temp_dir().join(format!("l4vs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let command = cli
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let duration = cli.duration.unwrap_or(if cli.quick { 3.0 } else { 10.0 });
    let mut ctx = Ctx {
        socket: format!("/run/l4vs-bench-{}.sock", std::process::id()),
        cli,
        tmp,
        prefixes: Vec::new(),
        stop,
        others: Vec::new(),
        own_pids: Vec::new(),
        duration,
        attempts: 0,
    };
    ctx.attempts = ctx
        .cli
        .attempts
        .unwrap_or(if ctx.cli.quick { 2 } else { 3 });
    let machine = machine();
    let mut run = RunInfo {
        commit: commit(),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        command,
        quick: ctx.cli.quick,
        load_before: loadavg(),
        gen_core: ctx.cli.gen_core,
        dut_core: ctx.cli.dut_core,
        ..RunInfo::default()
    };
    eprintln!(
        "l4vs-bench: {} suite on {} × {}; load {}",
        if run.quick { "quick" } else { "full" },
        machine.cores,
        machine.cpu,
        run.load_before
    );
    ctx.sample_others();

    let mut suite = Suite {
        machine,
        ..Suite::default()
    };
    if !ctx.cli.skip_micro {
        suite.micro = micro(&mut ctx);
        if let Some(dir) = ctx.cli.baseline_bin_dir.clone() {
            suite.comparison = Some(compare(&ctx, &dir));
        }
        suite.reload = reload(&ctx);
        suite.instructions = instructions(&ctx);
    }
    ctx.sample_others();
    if !ctx.cli.skip_io && !ctx.stop.load(Ordering::Relaxed) {
        suite.io = io_points(&mut ctx);
        suite.topology = topology(&ctx);
    }
    ctx.sample_others();
    suite.peers = if ctx.cli.skip_peers {
        "Not run (--skip-peers).".to_owned()
    } else {
        peers(&ctx)
    };
    ctx.sample_others();
    run.load_after = loadavg();
    run.others = if ctx.others.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "processes other than the benchmark's used the CPU during the run: {}",
            ctx.others.join(", ")
        )]
    };
    run.seconds = t0.elapsed().as_secs_f64();
    suite.run = run;
    suite.notes = notes(&suite);
    let rel_plots = relative_dir(&ctx.cli.out, &ctx.cli.plots_dir);
    match report::plots(&suite, &ctx.cli.plots_dir) {
        Ok(files) => {
            suite.plots = files
                .into_iter()
                .map(|(f, c)| (format!("{rel_plots}/{f}"), c))
                .collect();
        }
        Err(e) => suite
            .notes
            .push(format!("The plots could not be written: {e}")),
    }
    let md = report::render(&suite);
    std::fs::write(&ctx.cli.out, &md)
        .with_context(|| format!("writing {}", ctx.cli.out.display()))?;
    eprintln!(
        "l4vs-bench: wrote {} ({:.0} s)",
        ctx.cli.out.display(),
        suite.run.seconds
    );
    cleanup(&ctx);
    if ctx.stop.load(Ordering::Relaxed) {
        bail!("interrupted: the report holds what was measured before the signal");
    }
    Ok(())
}

/// `plots` relative to the directory of `out`, for links in the report.
fn relative_dir(out: &Path, plots: &Path) -> String {
    let base = out.parent().unwrap_or(Path::new(""));
    plots
        .strip_prefix(base)
        .unwrap_or(plots)
        .display()
        .to_string()
}

fn cleanup(ctx: &Ctx) {
    for p in &ctx.prefixes {
        for root in ["/var/run/dpdk", "/run/dpdk"] {
            // Only empty directories go: EAL leaves them empty with
            // --no-shconf, and anything else is not ours to remove.
            let _ = std::fs::remove_dir(Path::new(root).join(p));
        }
    }
    let _ = std::fs::remove_dir_all(&ctx.tmp);
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn loadavg() -> String {
    read_trim("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
    let virtualised = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let thp = read_trim("/sys/kernel/mm/transparent_hugepage/enabled")
        .and_then(|t| suite::sysfs_choice(&t).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let perf = match Command::new("perf")
        .args(["stat", "-x,", "-e", "instructions", "true"])
        .output()
    {
        Err(_) => "perf not installed: instructions per packet not measured".to_owned(),
        Ok(o) => match suite::perf_counts(&String::from_utf8_lossy(&o.stderr)) {
            Some(true) => "hardware counters work (`perf stat -e instructions` counts)".to_owned(),
            Some(false) => "`perf stat -e instructions true` says `<not supported>` (no PMU in this VM): instructions per packet not measured".to_owned(),
            None => "perf output not understood: instructions per packet may be missing".to_owned(),
        },
    };
    Machine {
        cpu,
        cores: thread::available_parallelism().map_or(0, |n| n.get()),
        virtualised,
        memory_gib,
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into()),
        dpdk: l4vs_dpdk::version(),
        thp,
        perf,
    }
}

fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(id) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let subject = git(&["log", "-1", "--format=%s"]).unwrap_or_default();
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!(
        "`{id}` {subject}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

/// The `l4vs-cycles` invocations of a run.
fn micro_runs(quick: bool) -> Vec<Vec<String>> {
    if quick {
        vec![
            vec![
                "--live",
                "10000,1000000",
                "--samples",
                "1000000",
                "--syns",
                "500000",
            ],
            vec!["--live", "10000000", "--samples", "1000000", "--syns", "0"],
        ]
    } else {
        vec![vec![
            "--live",
            "10000,1000000,10000000",
            "--samples",
            "2000000",
            "--syns",
            "2000000",
        ]]
    }
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect()
}

/// One `l4vs-cycles` run of the binary at `bin` on the device under
/// test's core.
fn cycles(ctx: &Ctx, bin: &Path, args: &[String]) -> Result<MicroReport, String> {
    let core = ctx.cli.dut_core.to_string();
    eprintln!("l4vs-bench: {} {}", bin.display(), args.join(" "));
    let res = Command::new(bin)
        .args(args)
        .args(["--core", &core, "--json"])
        .stderr(Stdio::inherit())
        .output();
    match res {
        Err(e) => Err(format!("{} could not start: {e}", bin.display())),
        Ok(o) if !o.status.success() => {
            Err(format!("l4vs-cycles {}: {}", args.join(" "), o.status))
        }
        Ok(o) => serde_json::from_slice::<MicroReport>(&o.stdout)
            .map_err(|e| format!("l4vs-cycles printed no report: {e}")),
    }
}

fn micro(ctx: &mut Ctx) -> Vec<Result<MicroReport, String>> {
    let mut out = Vec::new();
    for args in micro_runs(ctx.cli.quick) {
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        out.push(cycles(ctx, &ctx.bin("l4vs-cycles"), &args));
    }
    out
}

/// Rounds of both builds measured one after the other with the first
/// microbenchmark arguments.
const COMPARISON_ROUNDS: usize = 3;

/// This build against the one in `dir`, alternately.
fn compare(ctx: &Ctx, dir: &Path) -> Comparison {
    let args = micro_runs(ctx.cli.quick).swap_remove(0);
    let rounds = (0..COMPARISON_ROUNDS)
        .take_while(|_| !ctx.stop.load(Ordering::Relaxed))
        .enumerate()
        .map(|(round, _)| {
            // Each build goes first in every other round, so that whatever
            // the order costs falls on both.
            let (first, second) = (ctx.bin("l4vs-cycles"), dir.join("l4vs-cycles"));
            if round % 2 == 0 {
                let now = cycles(ctx, &first, &args)?;
                Ok((now, cycles(ctx, &second, &args)?))
            } else {
                let base = cycles(ctx, &second, &args)?;
                Ok((cycles(ctx, &first, &args)?, base))
            }
        })
        .collect();
    Comparison {
        label: ctx.cli.baseline_label.clone(),
        rounds,
    }
}

/// Samples of each callgrind run (it runs about 50 times slower).
const CALLGRIND_SAMPLES: u64 = 100_000;

/// Instructions per packet of `bin`'s timed loop in `mode`, by callgrind
/// counting only inside it.
fn callgrind(ctx: &Ctx, bin: &Path, mode: &str) -> Result<f64, String> {
    let out = ctx.tmp.join(format!("callgrind-{mode}.out"));
    eprintln!("l4vs-bench: callgrind {} --modes {mode}", bin.display());
    let o = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args([
            "--toggle-collect=*Lcore*poll*",
            "--toggle-collect=*process_burst*",
        ])
        .arg(bin)
        .args(["--live", "10000", "--samples"])
        .arg(CALLGRIND_SAMPLES.to_string())
        .args(["--modes", mode, "--syns", "0", "--no-instructions"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("valgrind could not start: {e}"))?;
    let _ = std::fs::remove_file(&out);
    if !o.status.success() {
        return Err(format!("valgrind: {}", o.status));
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let total: u64 = err
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .ok_or("callgrind printed no count")?;
    Ok(total as f64 / l4vs_bench::micro::timed_packets(CALLGRIND_SAMPLES) as f64)
}

/// Callgrind's instructions per packet for each mode, this build and the
/// earlier one if given.
fn instructions(ctx: &Ctx) -> Vec<InstructionsRow> {
    ["nat", "nat-reply", "tunnel", "dr"]
        .into_iter()
        .take_while(|_| !ctx.stop.load(Ordering::Relaxed))
        .map(|mode| {
            let now = callgrind(ctx, &ctx.bin("l4vs-cycles"), mode);
            let base = ctx
                .cli
                .baseline_bin_dir
                .as_ref()
                .map(|d| callgrind(ctx, &d.join("l4vs-cycles"), mode));
            (mode.to_owned(), now, base)
        })
        .collect()
}

/// `l4vs-reload` of this build and, if given, of the earlier one.
fn reload(ctx: &Ctx) -> Vec<(String, Result<String, String>)> {
    let mut builds = vec![("This build".to_owned(), ctx.bin("l4vs-reload"))];
    if let Some(dir) = &ctx.cli.baseline_bin_dir {
        builds.push((
            format!("{} (before)", ctx.cli.baseline_label),
            dir.join("l4vs-reload"),
        ));
    }
    builds
        .into_iter()
        .map(|(label, bin)| {
            eprintln!("l4vs-bench: {} --services 1000 --reals 10", bin.display());
            let out = Command::new(&bin)
                .args(["--services", "1000", "--reals", "10"])
                .stderr(Stdio::inherit())
                .output();
            let r = match out {
                Err(e) => Err(format!("{} could not start: {e}", bin.display())),
                Ok(o) if !o.status.success() => Err(format!("{}: {}", bin.display(), o.status)),
                Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            };
            (label, r)
        })
        .collect()
}

fn topology(ctx: &Ctx) -> String {
    format!(
        "Topology: `l4vs-gen` and the device under test are two DPDK processes joined by a \
         `net_memif` pair (abstract socket `{}`, memif's default copy mode, 1024-slot rings, \
         `--no-huge`), generator on core {}, device under test's worker on core {}. The \
         ceiling is `l4vs-fwd` (rx_burst → tx_burst on the same memif port, frames \
         untouched). l4vs is the real `l4vs run` binary with one memif port: a UDP service \
         on {}:53 and a TCP one on :80, rr over 4 on-link real servers whose static \
         neighbour entries name the generator's MAC, so what l4vs forwards comes back to \
         the generator (for NAT rewritten to a real's address, for IP-IP inside an outer \
         header; the stamp survives both). Every run restarts the device under test, so \
         each starts with an empty connection table. {} s measured per run after a \
         warm-up; flows cycle in order, so each flow's first frame in the warm-up opens \
         its connection.",
        ctx.socket,
        ctx.cli.gen_core,
        ctx.cli.dut_core,
        suite::VIP,
        ctx.duration
    )
}

fn specs(quick: bool) -> Vec<Spec> {
    let base = Spec {
        group: "size",
        dut: Dut::Fwd,
        traffic: "udp",
        flows: 1024,
        size: "64",
        rate_pps: None,
        warmup: if quick { 0.5 } else { 1.0 },
        count: None,
    };
    let sizes: &[&'static str] = if quick {
        &["64", "512", "1518", "imix"]
    } else {
        &["64", "128", "256", "512", "1024", "1518", "imix"]
    };
    let flows: &[u64] = if quick {
        &[1, 10_000, 1_000_000, 10_000_000]
    } else {
        &[1, 1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    };
    let dr = Dut::L4vs(Method::Dr);
    let mut v = Vec::new();
    for size in sizes {
        for dut in [Dut::Fwd, dr] {
            v.push(Spec {
                dut,
                size,
                ..base.clone()
            });
        }
    }
    for &f in flows {
        // A million flows need a million frames to open them all.
        let warmup = base.warmup.max(f as f64 / 1e6 + 0.5);
        v.push(Spec {
            group: "flows",
            dut: dr,
            flows: f,
            warmup,
            ..base.clone()
        });
    }
    for m in [Method::Nat, Method::Tunnel] {
        v.push(Spec {
            group: "modes",
            dut: Dut::L4vs(m),
            ..base.clone()
        });
    }
    for dut in [Dut::Fwd, dr] {
        v.push(Spec {
            group: "tcp",
            dut,
            traffic: "tcp",
            flows: 10_000,
            ..base.clone()
        });
    }
    // A SYN flood of a million unique tuples: l4vs's table (2^20 entries
    // per worker by default) holds them all.
    for dut in [Dut::Fwd, dr] {
        v.push(Spec {
            group: "tcp",
            dut,
            traffic: "syn",
            flows: 1_000_000,
            warmup: 0.0,
            count: Some(1_000_000),
            ..base.clone()
        });
    }
    for dut in [Dut::Fwd, dr] {
        v.push(Spec {
            group: "latency",
            dut,
            rate_pps: Some(500_000.0),
            ..base.clone()
        });
    }
    v
}

fn io_points(ctx: &mut Ctx) -> Vec<IoPoint> {
    let mut out = Vec::new();
    let list = specs(ctx.cli.quick);
    let n = list.len();
    for (i, s) in list.into_iter().enumerate() {
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        eprintln!(
            "l4vs-bench: [{}/{n}] {} {} {} flows, {} frames, rate {}",
            i + 1,
            s.dut.label(),
            s.traffic,
            s.flows,
            if s.size == "imix" {
                "IMIX".to_owned()
            } else {
                format!("{} B", s.size)
            },
            s.rate_pps.map_or("max".into(), |r| format!("{r}"))
        );
        let mut best: Option<(Result<GenReport, String>, Option<DutStats>, f64)> = None;
        for attempt in 1..=ctx.attempts {
            let (result, dut_stats) = match one_point(ctx, &s) {
                Ok((g, d)) => (Ok(g), d),
                Err((e, d)) => {
                    eprintln!("l4vs-bench:   failed: {e}");
                    (Err(e), d)
                }
            };
            let lost = match &result {
                Ok(g) => g
                    .stolen
                    .unwrap_or(0.0)
                    .max(dut_stats.as_ref().and_then(|d| d.stolen).unwrap_or(0.0)),
                Err(_) => f64::INFINITY,
            };
            if best.as_ref().is_none_or(|b| lost < b.2) {
                best = Some((result, dut_stats, lost));
            }
            if lost <= MAX_LOST || ctx.stop.load(Ordering::Relaxed) {
                break;
            }
            if lost.is_finite() && attempt < ctx.attempts {
                eprintln!(
                    "l4vs-bench:   {:.0}% of the run was taken by other processes; again",
                    lost * 100.0
                );
            } else if lost.is_infinite() {
                // A failure is not noise: do not retry it.
                break;
            }
            thread::sleep(Duration::from_millis(300));
        }
        let Some((result, dut_stats, _)) = best else {
            continue;
        };
        out.push(IoPoint {
            group: s.group.to_owned(),
            dut: s.dut.label(),
            traffic: s.traffic.to_owned(),
            flows: s.flows,
            size: s.size.to_owned(),
            rate_pps: s.rate_pps,
            result,
            dut_stats,
        });
        thread::sleep(Duration::from_millis(300));
    }
    out
}

type PointResult = Result<(GenReport, Option<DutStats>), (String, Option<DutStats>)>;

fn one_point(ctx: &mut Ctx, s: &Spec) -> PointResult {
    let (server, client) = suite::memif_specs(&ctx.socket);
    let dut_prefix = ctx.prefix("dut");
    let gen_prefix = ctx.prefix("gen");
    let mut cmd = match s.dut {
        Dut::Fwd => {
            let mut c = Command::new(ctx.bin("l4vs-fwd"));
            c.args([
                "--port",
                &server,
                "--core",
                &ctx.cli.dut_core.to_string(),
                "--file-prefix",
                &dut_prefix,
            ]);
            c
        }
        Dut::L4vs(m) => {
            // Room for every flow of the run (a quarter spare, as the
            // in-process benchmark sizes its table), at least the default.
            let connections = u32::try_from(s.flows + s.flows / 4)
                .unwrap_or(u32::MAX)
                .max(DEFAULT_CONNECTIONS);
            let cfg = suite::l4vs_config(
                m,
                &server,
                &dut_prefix,
                ctx.cli.gen_core,
                ctx.cli.dut_core,
                connections,
            );
            let path = ctx.tmp.join(format!("l4vs-{}.yaml", m.as_str()));
            if let Err(e) = std::fs::write(&path, cfg) {
                return Err((format!("cannot write {}: {e}", path.display()), None));
            }
            let mut c = Command::new(ctx.bin("l4vs"));
            c.arg("run").arg("--config").arg(&path);
            c
        }
    };
    let name = s.dut.label();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| (format!("{name} could not start: {e}"), None))?;
    let mut dut = Guard {
        child: Some(child),
        name: name.clone(),
    };
    ctx.own_pids.push(dut.pid());
    let Some(c) = dut.child.as_mut() else {
        return Err(("internal: no child".into(), None));
    };
    let (Some(stdout), Some(stderr)) = (c.stdout.take(), c.stderr.take()) else {
        return Err(("internal: no pipes".into(), None));
    };
    let (out_rx, out_h) = collect_lines(stdout, false);
    let (err_rx, err_h) = collect_lines(stderr, false);
    let mut out_lines = Vec::new();
    let t0 = Instant::now();
    let ready = loop {
        match out_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let r = l.contains("running");
                out_lines.push(l);
                if r {
                    break true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if t0.elapsed() > Duration::from_secs(30) || ctx.stop.load(Ordering::Relaxed) {
                    break false;
                }
            }
        }
    };
    if !ready {
        dut.stop(Duration::from_secs(5));
        let _ = out_h.join();
        let _ = err_h.join();
        out_lines.extend(out_rx.try_iter());
        let errs: Vec<String> = err_rx.try_iter().collect();
        return Err((
            format!(
                "{name} did not start: {}",
                tail(&[out_lines, errs].concat(), 4)
            ),
            None,
        ));
    }

    let dut_pid = dut.pid();
    let wait0 = (Instant::now(), suite::runqueue_wait_ns(Some(dut_pid)));
    let mut g = Command::new(ctx.bin("l4vs-gen"));
    g.args(["--port", &client])
        .args(["--core", &ctx.cli.gen_core.to_string()])
        .args(["--file-prefix", &gen_prefix])
        .args(["--dst-mac", suite::DUT_MAC, "--vip", suite::VIP])
        .args([
            "--traffic",
            s.traffic,
            "--flows",
            &s.flows.to_string(),
            "--size",
            s.size,
        ])
        .args([
            "--rate",
            &s.rate_pps.map_or("max".into(), |r| r.to_string()),
        ])
        .args([
            "--duration",
            &ctx.duration.to_string(),
            "--warmup",
            &s.warmup.to_string(),
        ])
        .arg("--json");
    if let Some(c) = s.count {
        g.args(["--count", &c.to_string()]);
    }
    let gen_result = match g
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Err(e) => Err(format!("l4vs-gen could not start: {e}")),
        Ok(mut child) => {
            ctx.own_pids.push(child.id());
            let gen_err = child.stderr.take().map(|e| collect_lines(e, true));
            let mut stdout = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut stdout);
            }
            let status = child.wait();
            let errs: Vec<String> = match gen_err {
                Some((rx, h)) => {
                    let _ = h.join();
                    rx.try_iter().collect()
                }
                None => Vec::new(),
            };
            match status {
                Ok(st) if st.success() => stdout
                    .lines()
                    .rev()
                    .find(|l| l.starts_with('{'))
                    .ok_or_else(|| "l4vs-gen printed no report".to_owned())
                    .and_then(|l| {
                        serde_json::from_str::<GenReport>(l)
                            .map_err(|e| format!("l4vs-gen report: {e}"))
                    }),
                Ok(st) => Err(format!("l4vs-gen {st}: {}", tail(&errs, 3))),
                Err(e) => Err(format!("l4vs-gen: {e}")),
            }
        }
    };
    let wait1 = (Instant::now(), suite::runqueue_wait_ns(Some(dut_pid)));
    let dut_stolen = match (wait0.1, wait1.1) {
        (Some(a), Some(b)) => {
            let wall = wait1.0.duration_since(wait0.0).as_secs_f64().max(1e-9);
            Some((b.saturating_sub(a) as f64 / 1e9 / wall).min(1.0))
        }
        _ => None,
    };
    let exited = dut.stop(Duration::from_secs(10));
    let _ = out_h.join();
    let _ = err_h.join();
    out_lines.extend(out_rx.try_iter());
    let errs: Vec<String> = err_rx.try_iter().collect();
    let text = out_lines.join("\n");
    let stats = match s.dut {
        Dut::Fwd => suite::parse_fwd_final(&text),
        Dut::L4vs(_) => suite::parse_l4vs_final(&text),
    }
    .map(|d| DutStats {
        stolen: dut_stolen,
        ..d
    });
    if stats.is_none() {
        eprintln!(
            "l4vs-bench:   {name} printed no final counters (exited by itself: {exited}): {}",
            tail(&[out_lines.clone(), errs.clone()].concat(), 4)
        );
    }
    match gen_result {
        Ok(g) => {
            if !exited {
                eprintln!("l4vs-bench:   {name} had to be killed: {}", tail(&errs, 2));
            }
            Ok((g, stats))
        }
        Err(e) => Err((e, stats)),
    }
}

fn peers(ctx: &Ctx) -> String {
    let script = &ctx.cli.peers_script;
    let md = &ctx.cli.peers_md;
    let ran = if script.exists() {
        eprintln!("l4vs-bench: running the peers hook {}", script.display());
        if let Some(d) = md.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let started = std::time::SystemTime::now();
        let res = Command::new(script)
            .env("L4VS_BENCH_QUICK", if ctx.cli.quick { "1" } else { "0" })
            .env("L4VS_BENCH_BIN_DIR", &ctx.cli.bin_dir)
            .env("L4VS_BENCH_PEERS_OUT", md)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                    eprint!("{err}");
                }
                c.wait().map(|st| (st, err))
            });
        Some(match res {
            Err(e) => Err(format!("could not run it: {e}")),
            Ok((st, _)) if st.success() => {
                let fresh = std::fs::metadata(md)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= started);
                if fresh {
                    Ok(())
                } else {
                    Err(format!("it exited 0 but did not write {}", md.display()))
                }
            }
            Ok((st, err)) => {
                let last: Vec<String> = err.lines().map(str::to_owned).collect();
                Err(format!("{st}: {}", tail(&last, 3)))
            }
        })
    } else {
        None
    };
    let text = std::fs::read_to_string(md).ok();
    suite::peers_section(script, md, ran, text)
}

fn notes(s: &Suite) -> Vec<String> {
    let mut n = Vec::new();
    n.extend(report::cross_check(s));
    n.push(
        "Through the port, the director's table is sized to each run's flows \
         (`workers.connections` = 1.25 × flows, at least the default 2^20), so at 10 M flows \
         every flow holds a connection. The generator opens the flows in its warm-up (flows / \
         1 M + 0.5 s); where it sends slower than 1 Mpps some are still being opened when the \
         measurement starts, and new connections count in that row."
            .to_owned(),
    );
    n.push(
        "Latency at max rate is mostly queueing: the generator keeps the memif rings full, \
         so frames wait behind up to two rings of 1024. The fixed-rate table is the one to \
         read for latency. A p99 of several milliseconds means a process was descheduled: \
         nothing is isolated on this machine."
            .to_owned(),
    );
    if s.io.iter().any(|p| p.result.is_ok()) {
        n.push(
            "Gbit/s counts frame bytes including the FCS; the wire adds 20 bytes per frame \
             (preamble and gap). memif reports a 100 Gbit/s link, which nothing here comes \
             near: throughput is bounded by the cores, not the link."
                .to_owned(),
        );
    }
    n
}
