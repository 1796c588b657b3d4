//! `l4vs-peers`: the peer comparison of the benchmark suite. nftables DNAT
//! (as nftlb generates it), HAProxy in TCP mode and l4vs take turns as the
//! director of the same lab between the same client and real servers;
//! wrk measures keep-alive requests/s and new connections/s, a UDP echo
//! client datagrams/s, and the director core's CPU is measured next to
//! each. The table goes to `bench/results/peers.md` (a `## Peers` section
//! the suite's `bench/RESULTS.md` includes) and to stdout.
//!
//! `l4vs-peers run` needs root (namespaces). `l4vs-peers udp-flood` is the
//! UDP client the run starts inside the client namespace.

mod bench;
mod configs;
mod cpu;
mod report;
mod udp;
mod wrk;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use bench::{Director, Options, Tools};
use configs::{L4vsPort, NftSched};
use report::{Cell, Row};

#[derive(Parser)]
#[command(
    name = "l4vs-peers",
    version,
    about = "l4vs against nftables DNAT and HAProxy in the lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// A director selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// No director: the client straight to one real server.
    None,
    /// nftables DNAT.
    Nftables,
    /// HAProxy in TCP mode.
    Haproxy,
    /// l4vs on `net_af_packet`, busy polling (idle_sleep_us 0).
    L4vsBusy,
    /// l4vs on `net_af_packet` with idle back-off (--idle-sleep-us).
    L4vsSleep,
    /// l4vs on `net_af_xdp` (XDP on the veth), busy polling. Not run by
    /// default: the XDP NAPI thread shares the worker's core here, and a
    /// spinning worker starves it (4.1 k req/s where sleeping gives 26 k).
    L4vsXdpBusy,
    /// l4vs on `net_af_xdp` with idle back-off (--idle-sleep-us).
    L4vsXdpSleep,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the comparison and write the table.
    Run {
        /// A few seconds per workload instead of the full length.
        #[arg(long)]
        quick: bool,
        /// Measured seconds per workload (default 5 with --quick, else 15).
        #[arg(long)]
        seconds: Option<u32>,
        /// Where to write the `## Peers` markdown section.
        #[arg(long, default_value = "bench/results/peers.md")]
        out: PathBuf,
        /// The l4vs binary (default: next to this one).
        #[arg(long)]
        l4vs: Option<PathBuf>,
        /// The l4vs-lab binary (default: next to this one).
        #[arg(long)]
        lab_bin: Option<PathBuf>,
        /// Directors to run, in order, comma-separated (e.g.
        /// `--directors nftables,l4vs-sleep`).
        #[arg(long, value_delimiter = ',', default_values = ["none", "nftables", "haproxy", "l4vs-busy", "l4vs-sleep", "l4vs-xdp-sleep"])]
        directors: Vec<Which>,
        /// How the nftables farm picks a real.
        #[arg(long, value_enum, default_value = "numgen")]
        nft_sched: NftSched,
        /// l4vs's idle back-offs for `l4vs-sleep` and `l4vs-xdp-sleep`, in
        /// µs, comma-separated (e.g. `--idle-sleep-us 50,500`): each of
        /// those directors runs once per value. Longer sleeps
        /// cost less CPU when the load leaves the worker idle, and add up
        /// to that much latency.
        #[arg(long, value_delimiter = ',', default_values_t = [50, 500])]
        idle_sleep_us: Vec<u32>,
        /// wrk connections (one wrk thread).
        #[arg(long, default_value_t = 32)]
        connections: u32,
        /// UDP flows.
        #[arg(long, default_value_t = 32)]
        udp_flows: u32,
        /// UDP datagrams in flight per flow.
        #[arg(long, default_value_t = 4)]
        udp_window: u32,
        /// Core of the client, the servers and the bridge.
        #[arg(long, default_value_t = 0)]
        client_core: usize,
        /// Core of the director.
        #[arg(long, default_value_t = 1)]
        director_core: usize,
        /// Nice value for this program and everything it starts (client,
        /// servers, directors), and for its scheduling autogroup when it
        /// leads its own session (`setsid`, as scripts/bench-peers starts
        /// it): other people's processes sharing the cores then take little
        /// from the measurement. 0 leaves priorities alone.
        #[arg(long, default_value_t = -20, allow_negative_numbers = true)]
        nice: i32,
        /// Longest wait, in seconds, for a quiet machine before each director.
        #[arg(long, default_value_t = 60)]
        quiet_wait: u64,
        /// Keep the temp directory with the configs and logs.
        #[arg(long)]
        keep_temp: bool,
        /// The command line to show in the report (the script passes its own).
        #[arg(long, hide = true)]
        command_line: Option<String>,
    },
    /// UDP echo load (run by `run` in the client namespace); prints `key value` lines.
    UdpFlood {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 32)]
        flows: u32,
        #[arg(long, default_value_t = 4)]
        window: u32,
        #[arg(long, default_value_t = 500)]
        warmup_ms: u64,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("l4vs-peers: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::UdpFlood {
            target,
            flows,
            window,
            warmup_ms,
            seconds,
        } => {
            let r = udp::flood(&udp::FloodConfig {
                target,
                flows,
                window,
                warmup: Duration::from_millis(warmup_ms),
                duration: Duration::from_secs(seconds),
            })?;
            print!("{r}");
            Ok(())
        }
        Cmd::Run {
            quick,
            seconds,
            out,
            l4vs,
            lab_bin,
            directors,
            nft_sched,
            idle_sleep_us,
            connections,
            udp_flows,
            udp_window,
            client_core,
            director_core,
            nice,
            quiet_wait,
            keep_temp,
            command_line,
        } => {
            if idle_sleep_us.contains(&0) {
                bail!("--idle-sleep-us 0 is busy polling: run the l4vs-busy or l4vs-xdp-busy director for it");
            }
            let mut idle_sleep_us = idle_sleep_us;
            idle_sleep_us.sort_unstable();
            idle_sleep_us.dedup();
            let self_bin = std::env::current_exe().context("locating this binary")?;
            let here = self_bin.parent().map(Path::to_path_buf).unwrap_or_default();
            let opts = Options {
                directors: directors
                    .iter()
                    .flat_map(|w| {
                        let sleeping = |port| {
                            idle_sleep_us
                                .iter()
                                .map(move |&us| Director::L4vs(us, port))
                        };
                        match w {
                            Which::None => vec![Director::None],
                            Which::Nftables => vec![Director::Nftables(nft_sched)],
                            Which::Haproxy => vec![Director::Haproxy],
                            Which::L4vsBusy => vec![Director::L4vs(0, L4vsPort::AfPacket)],
                            Which::L4vsSleep => sleeping(L4vsPort::AfPacket).collect(),
                            Which::L4vsXdpBusy => vec![Director::L4vs(0, L4vsPort::AfXdp)],
                            Which::L4vsXdpSleep => sleeping(L4vsPort::AfXdp).collect(),
                        }
                    })
                    .collect(),
                seconds: seconds.unwrap_or(if quick { 5 } else { 15 }),
                warmup_secs: if quick { 1 } else { 2 },
                connections,
                udp_flows,
                udp_window,
                client_core,
                director_core,
                l4vs: l4vs.unwrap_or_else(|| here.join("l4vs")),
                lab_bin: lab_bin.unwrap_or_else(|| here.join("l4vs-lab")),
                self_bin,
                quiet_wait: Duration::from_secs(quiet_wait),
                keep_temp,
            };
            let command_line =
                command_line.unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
            run_all(&opts, nice, &out, &command_line)
        }
    }
}

fn run_all(opts: &Options, nice: i32, out: &Path, command_line: &str) -> Result<()> {
    if !is_root() {
        bail!("the lab needs root (network namespaces); run scripts/bench-peers, which uses sudo");
    }
    // Not available_parallelism: scripts/bench-peers starts this pinned to one core.
    let cores = online_cores();
    if opts.client_core == opts.director_core || opts.client_core.max(opts.director_core) >= cores {
        bail!(
            "need two distinct cores below {cores}: --client-core {} --director-core {}",
            opts.client_core,
            opts.director_core
        );
    }
    l4vs_lab::signals::install()?;
    // The benchmark's own bookkeeping stays off the director's core.
    if !core_affinity::set_for_current(core_affinity::CoreId {
        id: opts.client_core,
    }) {
        eprintln!(
            "l4vs-peers: warning: could not pin myself to core {}",
            opts.client_core
        );
    }
    let priority = raise_priority(nice);
    println!("l4vs-peers: {priority}");
    let tools = Tools::find();
    let tmp = std::env::temp_dir().join(format!("l4vs-peers-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let load_before = cpu::loadavg();
    let started = now_utc();
    println!(
        "l4vs-peers: temp dir {}, load average {load_before}",
        tmp.display()
    );

    let result = bench::run(opts, &tools, &tmp);
    if opts.keep_temp {
        println!("configs and logs kept in {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let rows = result?;
    let load_after = cpu::loadavg();

    let doc = document(&Meta {
        opts,
        tools: &tools,
        rows: &rows,
        started: &started,
        command_line,
        load_before: &load_before,
        load_after: &load_after,
        priority: &priority,
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, &doc).with_context(|| format!("writing {}", out.display()))?;
    println!("\n{doc}");
    println!("written to {}", out.display());
    Ok(())
}

/// Gives this process, everything it starts from now on, and (when it
/// leads its own session, hence its own autogroup) its scheduling
/// autogroup the nice value `nice`. With autogroup scheduling, nice only
/// orders processes within a session; between sessions the autogroup's own
/// nice decides, so that is what keeps other sessions' builds from taking
/// half of a core from the benchmark. The caller's session is never
/// touched. Returns a sentence for the report.
fn raise_priority(nice: i32) -> String {
    if nice == 0 {
        return "All processes ran at the default priority.".to_owned();
    }
    let me = std::process::id();
    // Inherited by every process started from here on; this process has
    // no other thread yet.
    let reniced = Command::new("renice")
        .args(["-n", &nice.to_string(), "-p", &me.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    let session_leader = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| {
            let rest = &t[t.rfind(')')? + 1..];
            rest.split_whitespace().nth(3)?.parse::<u32>().ok()
        })
        == Some(me);
    let autogroup =
        session_leader && std::fs::write("/proc/self/autogroup", nice.to_string()).is_ok();
    match (reniced, autogroup) {
        (true, true) => format!(
            "The benchmark ran in its own session (`setsid`) whose scheduling autogroup, and \
             every process it started (client, servers, HAProxy, l4vs), had nice {nice}: so \
             other people's processes sharing the machine took little CPU from the \
             measurements. nftables' work runs in softirq, ahead of any process, except what \
             overflows to `ksoftirqd` (nice 0)."
        ),
        (true, false) => format!(
            "The benchmark's processes ran at nice {nice} within the caller's session; other \
             sessions' processes were not held back (scripts/bench-peers starts it with \
             `setsid` so that they are)."
        ),
        _ => format!("Raising the priority to nice {nice} failed; default priorities."),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// First line of a command's stdout or stderr, or `None` if it cannot run.
fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new(program).args(args).output().ok()?;
    let text = if o.stdout.is_empty() {
        o.stderr
    } else {
        o.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

fn now_utc() -> String {
    first_line(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "?".into())
}

/// CPUs the machine has (not the ones this process may use).
fn online_cores() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(1)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = online_cores();
    let kernel = first_line(Path::new("uname"), &["-r"]).unwrap_or_default();
    format!("{model}, {cores} cores, Linux {kernel}")
}

struct Meta<'a> {
    opts: &'a Options,
    tools: &'a Tools,
    rows: &'a [Row],
    started: &'a str,
    command_line: &'a str,
    load_before: &'a str,
    load_after: &'a str,
    priority: &'a str,
}

fn version(tool: Option<&PathBuf>, args: &[&str], name: &str) -> String {
    tool.and_then(|p| first_line(p, args))
        .unwrap_or_else(|| format!("{name}: not installed"))
}

fn document(m: &Meta<'_>) -> String {
    let o = m.opts;
    let commit = first_line(Path::new("git"), &["rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "?".to_owned());
    let mut s = String::from("## Peers\n\n");
    let _ = writeln!(
        s,
        "Measured {} on {}, commit `{commit}`, with `{}`.\n",
        m.started,
        machine(),
        m.command_line
    );
    let _ = writeln!(
        s,
        "Versions: {}; {}; {}; {}.\n",
        version(m.tools.nginx.as_ref(), &["-v"], "nginx"),
        version(m.tools.haproxy.as_ref(), &["-v"], "haproxy"),
        version(m.tools.nft.as_ref(), &["--version"], "nft"),
        version(m.tools.wrk.as_ref(), &["-v"], "wrk"),
    );
    let measured: Vec<&report::Measure> = m
        .rows
        .iter()
        .flat_map(|r| [&r.keep_alive, &r.new_conn, &r.udp])
        .filter_map(|c| match c {
            Cell::Measured(x) => Some(x),
            _ => None,
        })
        .collect();
    let max = |f: fn(&report::Measure) -> f64| measured.iter().map(|x| f(x)).fold(0.0, f64::max);
    let client_max = max(|x| x.others_client_core);
    let director_max = max(|x| x.others_director_core);
    let disturbed = measured.iter().filter(|x| x.disturbed()).count();
    let busy_load = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
            .is_some_and(|x| x >= 0.5)
    };
    if busy_load(m.load_before) {
        let _ = write!(
            s,
            "**Not an idle machine:** load average {} when the run started (a build just \
             before the run, or other work on the same two cores, counts in it). The \
             benchmark waited for a quiet machine before each director (up to {} s; the \
             details say how long and how busy it was). ",
            m.load_before,
            m.opts.quiet_wait.as_secs()
        );
    } else {
        let _ = write!(s, "Load average {} when the run started. ", m.load_before);
    }
    if disturbed > 0 {
        let _ = writeln!(
            s,
            "During {disturbed} of {} measurements other people's processes still took a \
             noticeable share of a core (up to {client_max:.2} of the client core and \
             {director_max:.2} of the director core), marked in the table: the director's \
             CPU figure leaves out their time on its core (see CPU below), but what they took \
             from the client core lowers the rates. (The load average after the run, {}, \
             counts the benchmark's own processes.)\n",
            measured.len(),
            m.load_after
        );
    } else {
        let _ = writeln!(
            s,
            "No measurement saw other people's processes take {:.2} core or more of either \
             core. (The load average after the run, {}, counts the benchmark's own \
             processes.)\n",
            report::NOISY,
            m.load_after
        );
    }
    s += &report::table(m.rows);
    let _ = write!(
        s,
        "
**What was measured.** Each director in turn, in a fresh lab of the same topology (namespaces \
`client` 198.18.1.10, `director`, reals `rs1`..`rs3` 198.18.2.11-13, one bridge; VIP \
198.18.0.100, NAT: replies return through the director, the reals' gateway). Real servers: \
nginx, one worker each, a 4-byte `200` on port {port} with keep-alive; UDP: the lab's echo \
server on port 53. `keep-alive req/s`: `wrk -t1 -c{c} -d{d}s` (after a {w} s warm-up); \
`new conn/s`: the same with `-H 'Connection: close'`, so every request is a new TCP \
connection; `UDP pkt/s`: `l4vs-peers udp-flood`, {f} flows (source ports) with {win} \
datagrams in flight each, closed loop, answered datagrams per second, {d} s after 0.5 s \
warm-up; each one crosses the director twice (request and answer). The baseline sends to \
rs1 alone with no director on the path. nftables: the ruleset nftlb writes for a DNAT farm \
(a verdict map `VIP . port` → farm chain, `dnat to {nft}`), ip_forward on, conntrack \
un-NATs the replies. HAProxy: `mode tcp`, `balance roundrobin`, `nbthread 1`, no checks, \
no logs; it has no UDP. l4vs: `configs/lab-nat.yaml` with the port above and \
`workers.idle_sleep_us` as named, on a DPDK `net_af_packet` or `net_af_xdp` port (as named) \
on the director's veth; `net_af_xdp` in copy mode (veth has no zero-copy), its XDP program \
in the veth's NAPI poll, made a kernel thread (threaded NAPI) pinned to the director core.

**Fairness.** Two cores, shared by everything. Core {cc}: the client, the servers, the \
bridge, l4vs's (sleeping) control thread and this program, pinned with `taskset`. Core \
{dc}: the director — HAProxy by `taskset`, l4vs's worker by its own `workers.cores`, and the \
kernel's packet processing for the director namespace by RPS (`rps_cpus` of its `eth0` = \
core {dc}; every other veth end, the bridge ports included, = core {cc}). Without RPS a \
veth runs the receiver's softirq on the *sender's* core, which would put nftables' whole \
forwarding path on the client's core. {nice}

**CPU.** `CPU` is the director's use of its core over the workload, in cores (1.00 = the \
core was never idle and nobody else used it): the core's busy time, measured as elapsed \
time minus its `idle` and `iowait` from `/proc/stat` (which this kernel measures rather \
than samples), minus what other people's processes took of the core (their threads' \
utime + stime on it, plus sampled user + system time no visible thread explains). For \
nftables that is its softirq time, for HAProxy its process and its TCP stack, for l4vs its \
worker and the AF_PACKET receive path or the XDP NAPI thread. Not the `/proc/stat` busy columns: this kernel \
samples them at the tick and stops the tick on an idle core (`NO_HZ_IDLE`), so the short \
softirq bursts of a mostly idle core, nftables' whole cost, are largely never sampled; the \
details show both. `per CPU-s` = rate / CPU. Busy polling keeps the core at 1.00 whatever \
the load: that is what `idle_sleep_us` trades against latency.

**Caveats.** Everything is on one VM's two vCPUs: the client and servers saturate core \
{cc} before any director saturates core {dc}, so the rates mostly measure the lab, and the \
CPU columns tell the directors apart. l4vs runs here on kernel sockets over a veth: on \
AF_PACKET the kernel copies every frame into the ring and runs its own receive path on the \
address-less `eth0`; on AF_XDP it runs the XDP program and copies the frame into the \
socket's memory; both take a `sendto` per TX burst. A DPDK NIC driver does none of that, so \
these l4vs figures are not its hardware figures (see `bench/PEERS.md` and `bench/pktgen/`).

Details:

",
        port = if o.directors.is_empty() || m.tools.nginx.is_some() {
            bench::NGINX_PORT
        } else {
            l4vs_lab::HTTP_PORT
        },
        c = o.connections,
        d = o.seconds,
        w = o.warmup_secs,
        f = o.udp_flows,
        win = o.udp_window,
        nft = o
            .directors
            .iter()
            .find_map(|d| match d {
                Director::Nftables(NftSched::Jhash) => Some("jhash ip saddr . sport mod 3 map {…}"),
                Director::Nftables(NftSched::Numgen) => Some("numgen inc mod 3 map {…}"),
                _ => None,
            })
            .unwrap_or("numgen inc mod 3 map {…}"),
        cc = o.client_core,
        dc = o.director_core,
        nice = m.priority,
    );
    s += &report::details(m.rows);
    s
}
