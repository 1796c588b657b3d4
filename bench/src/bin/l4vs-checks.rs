//! `l4vs-checks`: what the health checks cost the control side. N TCP
//! listeners on loopback stand for N real servers; the director's checker
//! ([`l4vs_control::health::Checker`]) checks each with a TCP_CHECK every
//! `delay_loop`; after a warm-up, the CPU time of the checker's thread
//! (`l4vs-health`, from /proc/self/task/*/stat) over the measured wall time
//! is the share of one core the checks take. The listeners' accept thread
//! is not counted: it stands for the real servers. On loopback the
//! kernel's work for both ends of each connection (the handshake, the
//! close) runs in the checking thread's context, so the figure includes
//! what a real server's kernel would do.
//!
//! ```sh
//! target/release/l4vs-checks --reals 1000 --delay-loop-ms 1000 --seconds 20
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use l4vs_control::config::{Check, CheckKind};
use l4vs_control::health::{Checker, Known, Plan, Target};
use l4vs_control::table::ServiceKey;
use l4vs_dataplane::model::Protocol;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "CPU cost of l4vs's health checks on the control side")]
struct Cli {
    /// Real servers checked (loopback listeners).
    #[arg(long, default_value_t = 1000)]
    reals: usize,
    /// Between two checks of a real, ms.
    #[arg(long, default_value_t = 1000)]
    delay_loop_ms: u64,
    /// Measured time, after a warm-up of two delay loops.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// User + system CPU time of the thread named `name`, in clock ticks
/// (/proc/self/task/TID/stat, fields 14 and 15).
fn thread_ticks(name: &str) -> Result<u64> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let dir = task?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat"))?;
        // The fields after the command's closing parenthesis start at the
        // 3rd (state): utime and stime are the 12th and 13th of them.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("unreadable stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = f.get(11).context("no utime")?.parse()?;
        let stime: u64 = f.get(12).context("no stime")?.parse()?;
        return Ok(utime + stime);
    }
    bail!("no thread named {name}")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut listeners = Vec::with_capacity(cli.reals);
    for _ in 0..cli.reals {
        let l = TcpListener::bind("127.0.0.1:0").context("binding a listener")?;
        l.set_nonblocking(true)?;
        listeners.push(l);
    }
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    // The "real servers": accept and close, so the backlogs never fill.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let acceptor = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        std::thread::Builder::new()
            .name("reals".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for l in &listeners {
                        while let Ok((s, _)) = l.accept() {
                            drop(s);
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })?
    };
    let delay = Duration::from_millis(cli.delay_loop_ms);
    let check = Check {
        kind: CheckKind::Tcp,
        connect_port: None,
        delay_loop: delay,
        connect_timeout: Duration::from_secs(2),
        retry: 1,
        delay_before_retry: Duration::from_millis(200),
        alpha: false,
        warmup: delay,
        notify_up: None,
        notify_down: None,
        through_vip: false,
    };
    let service = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
        port: 80,
    };
    let targets: Vec<(Target, Option<Known>)> = ports
        .iter()
        .map(|p| {
            let real = SocketAddrV4::new(Ipv4Addr::LOCALHOST, *p);
            (
                Target::new(service, "bench".into(), real, check.clone(), false),
                None,
            )
        })
        .collect();
    let checker = Checker::start(Plan {
        targets,
        routes: Vec::new(),
    })?;
    std::thread::sleep(delay * 2);
    let (t0, a0, w0) = (
        thread_ticks("l4vs-health")?,
        accepted.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(cli.seconds));
    let (t1, a1, wall) = (
        thread_ticks("l4vs-health")?,
        accepted.load(Ordering::Relaxed),
        w0.elapsed(),
    );
    let down = checker.verdicts().iter().filter(|v| !v.up).count();
    drop(checker);
    stop.store(true, Ordering::Relaxed);
    let _ = acceptor.join();
    // Clock ticks per second of /proc's times.
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let cpu = (t1 - t0) as f64 / hz;
    let checks = a1 - a0;
    println!(
        "l4vs-checks: {} reals, tcp check every {} ms: {checks} checks in {:.1} s ({:.0}/s); checker thread CPU {cpu:.2} s = {:.2} % of one core; {down} real(s) reported down",
        cli.reals,
        cli.delay_loop_ms,
        wall.as_secs_f64(),
        checks as f64 / wall.as_secs_f64(),
        100.0 * cpu / wall.as_secs_f64()
    );
    Ok(())
}
