//! `l4vs-cycles`: TSC cycles per packet of the l4vs dataplane, in process,
//! per forwarding mode at several connection-table sizes, and per new
//! connection per scheduler. See `l4vs_bench::micro` for exactly what is
//! timed.

use anyhow::{bail, Context, Result};
use clap::Parser;
use l4vs_bench::micro::{self, Instructions, METHODS, MODES, SCHEDULERS};
use l4vs_bench::results::MicroReport;
use l4vs_bench::suite;
use l4vs_bench::tsc;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "l4vs-cycles",
    version,
    about = "Cycles per packet of the l4vs dataplane, in process (no I/O)"
)]
struct Cli {
    /// Live connections to measure established flows at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000,10000000")]
    live: Vec<u64>,
    /// Forwarding modes for established flows (nat, nat-reply, tunnel, dr).
    #[arg(long, value_delimiter = ',', default_value = "nat,nat-reply,tunnel,dr")]
    modes: Vec<String>,
    /// Timed packets per established-flow measurement.
    #[arg(long, default_value_t = 2_000_000)]
    samples: u64,
    /// SYNs (new connections) per scheduler measurement; 0 skips the
    /// new-connection table.
    #[arg(long, default_value_t = 1_000_000)]
    syns: u64,
    /// Real servers behind the service.
    #[arg(long, default_value_t = 100)]
    reals: usize,
    /// Core to pin the benchmark to.
    #[arg(long)]
    core: Option<usize>,
    /// Skip the instructions-per-packet pass even if perf counters work.
    #[arg(long)]
    no_instructions: bool,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("l4vs-cycles: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.live.contains(&0) || cli.samples == 0 || cli.reals == 0 {
        bail!("--live, --samples and --reals must all be at least 1");
    }
    if cli.reals > 60_000 {
        bail!("--reals {}: at most 60000", cli.reals);
    }
    let modes: Vec<_> = cli
        .modes
        .iter()
        .map(|m| {
            MODES
                .iter()
                .find(|(_, n)| n == m)
                .copied()
                .with_context(|| {
                    format!("--modes: unknown mode {m:?} (nat, nat-reply, tunnel, dr)")
                })
        })
        .collect::<Result<_>>()?;
    if let Some(core) = cli.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            bail!("cannot pin to core {core}");
        }
    }
    let mut out: Box<dyn Write> = if cli.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let wait0 = (Instant::now(), suite::runqueue_wait_ns(None));
    let hz = tsc::calibrate(Duration::from_millis(500));
    writeln!(
        out,
        "TSC {:.3} GHz (measured against the monotonic clock)",
        hz as f64 / 1e9
    )?;
    let (mut perf, perf_note) = if cli.no_instructions {
        (None, Some("not measured (--no-instructions)".to_owned()))
    } else {
        match Instructions::open() {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(format!("not measured: {e}"))),
        }
    };
    if let Some(n) = &perf_note {
        writeln!(out, "instructions per packet: {n}")?;
    }

    writeln!(
        out,
        "\nestablished flows: {}-byte TCP ACKs of random live flows, batches of {}",
        micro::FRAME,
        micro::BATCH
    )?;
    writeln!(
        out,
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "mode", "live", "cycles/pkt", "Mpps/core", "instr/pkt", "B/conn", "fill s"
    )?;
    let mut established = Vec::new();
    for &live in &cli.live {
        for (mode, name) in &modes {
            let row = micro::established(*mode, name, live, cli.samples, hz, perf.as_mut())
                .map_err(anyhow::Error::msg)?;
            writeln!(
                out,
                "{:<10} {:>10} {:>10.1} {:>10.2} {:>10} {:>10} {:>8.1}",
                row.mode,
                row.live,
                row.cycles_per_packet,
                row.mpps_per_core,
                row.instructions_per_packet
                    .map_or("-".into(), |i| format!("{i:.0}")),
                row.bytes_per_conn,
                row.fill_seconds
            )?;
            established.push(row);
        }
    }

    let mut new_conns = Vec::new();
    if cli.syns > 0 {
        writeln!(
            out,
            "\nnew connections: {} SYNs of unique tuples into an empty table of {}, {} reals",
            cli.syns,
            cli.syns * 2,
            cli.reals
        )?;
        writeln!(
            out,
            "{:<10} {:<6} {:>11} {:>14} {:>10}",
            "mode", "sched", "cycles/conn", "conns/s/core", "instr/conn"
        )?;
        for (kind, sname) in SCHEDULERS {
            for (method, mname) in METHODS {
                let row = micro::new_conns(
                    *method,
                    mname,
                    *kind,
                    sname,
                    cli.reals,
                    cli.syns,
                    hz,
                    perf.as_mut(),
                )
                .map_err(anyhow::Error::msg)?;
                writeln!(
                    out,
                    "{:<10} {:<6} {:>11.1} {:>14.0} {:>10}",
                    row.mode,
                    row.scheduler,
                    row.cycles_per_conn,
                    row.conns_per_sec_per_core,
                    row.instructions_per_conn
                        .map_or("-".into(), |i| format!("{i:.0}")),
                )?;
                new_conns.push(row);
            }
        }
    }
    let stolen = match (wait0.1, suite::runqueue_wait_ns(None)) {
        (Some(a), Some(b)) => {
            let wall = wait0.0.elapsed().as_secs_f64().max(1e-9);
            Some((b.saturating_sub(a) as f64 / 1e9 / wall).min(1.0))
        }
        _ => None,
    };
    if let Some(s) = stolen {
        writeln!(
            out,
            "\nCPU taken by other processes during the run: {:.1}%",
            s * 100.0
        )?;
    }
    let report = MicroReport {
        tsc_hz: hz,
        tsc_invariant: tsc::invariant(),
        core: cli.core,
        frame_size: micro::FRAME,
        perf_note,
        established,
        new_conns,
        stolen,
    };
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
