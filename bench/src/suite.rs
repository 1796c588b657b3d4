//! Pieces of the suite runner (`l4vs-bench`) that need no processes:
//! the l4vs config it runs, reading what the devices under test print
//! when they stop, the machine description, and the peers hook.
//!
//! # The topology
//!
//! Generator and device under test are two DPDK processes on one machine
//! joined by a `net_memif` pair: the device under test (l4vs or the
//! I/O-forward ceiling) is the memif server, the generator the client.
//! The socket is abstract (`socket-abstract=yes`, memif's default), so
//! nothing is left on the filesystem, and no frame leaves the two
//! processes. l4vs runs with one port: its real servers are on-link with
//! static neighbour entries pointing at the generator's MAC, so what it
//! forwards goes back over the same memif to the generator, which counts
//! it. The ceiling returns every frame as it came.

use crate::report::DutStats;
use std::fmt::Write as _;
use std::path::Path;

/// MAC of the device under test's memif port.
pub const DUT_MAC: &str = "02:00:00:00:00:01";
/// MAC of the generator's memif port.
pub const GEN_MAC: &str = "02:00:00:00:00:02";
/// The VIP.
pub const VIP: &str = "198.18.0.100";
/// Real servers (all answered by the generator's MAC).
pub const REALS: [&str; 4] = ["198.18.1.11", "198.18.1.12", "198.18.1.13", "198.18.1.14"];

/// The memif device spec of each side for a socket name.
pub fn memif_specs(socket: &str) -> (String, String) {
    (
        format!("net_memif0,role=server,socket={socket},mac={DUT_MAC}"),
        format!("net_memif0,role=client,socket={socket},mac={GEN_MAC}"),
    )
}

/// An l4vs forwarding method as the config spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `forward: nat`
    Nat,
    /// `forward: tunnel`
    Tunnel,
    /// `forward: dr`
    Dr,
}

impl Method {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Nat => "nat",
            Method::Tunnel => "tunnel",
            Method::Dr => "dr",
        }
    }
}

/// The l4vs config of a run: one memif port (`server_spec`), one worker
/// on `dut_core`, the control thread on `main_core`, a UDP service on
/// port 53 and a TCP service on port 80 of [`VIP`] over [`REALS`] by
/// `method`, rr, with a connection table of `connections` entries; its
/// admin socket is named after `file_prefix`, so a run never meets a
/// director running beside it in this namespace.
pub fn l4vs_config(
    method: Method,
    server_spec: &str,
    file_prefix: &str,
    main_core: usize,
    dut_core: usize,
    connections: u32,
) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "# Written by l4vs-bench for one benchmark run.");
    let _ = writeln!(c, "eal:");
    let _ = writeln!(
        c,
        "  args: [\"--no-huge\", \"-m\", \"512\", \"--no-pci\", \"--no-shconf\", \"--no-telemetry\", \"--file-prefix\", \"{file_prefix}\", \"--log-level=*:error\"]"
    );
    let _ = writeln!(c, "  main_core: {main_core}");
    let _ = writeln!(
        c,
        "workers:\n  cores: [{dut_core}]\n  burst: 32\n  idle_sleep_us: 0\n  connections: {connections}"
    );
    let _ = writeln!(c, "ports:\n  - name: bench\n    device: \"{server_spec}\"");
    let _ = writeln!(c, "admin_socket: /run/l4vs/admin-{file_prefix}.sock");
    let _ = writeln!(c, "metrics_listen: off");
    // The benchmark runs in the host's namespace: no kernel interfaces
    // with lab addresses there.
    let _ = writeln!(c, "exception_path: false");
    let _ = writeln!(
        c,
        "addresses:\n  - {{ port: bench, address: 198.18.1.1/24 }}"
    );
    let _ = writeln!(c, "neighbors:");
    for r in REALS {
        let _ = writeln!(c, "  - {{ port: bench, address: {r}, mac: \"{GEN_MAC}\" }}");
    }
    let _ = writeln!(c, "services:");
    for (name, proto, port, nat_port) in [("udp", "udp", 53, 5353), ("tcp", "tcp", 80, 8080)] {
        let _ = writeln!(
            c,
            "  - name: {name}\n    vip: {VIP}\n    port: {port}\n    protocol: {proto}\n    scheduler: rr\n    forward: {}\n    reals:",
            method.as_str()
        );
        for r in REALS {
            let p = if method == Method::Nat {
                nat_port
            } else {
                port
            };
            let _ = writeln!(c, "      - {{ address: {r}, port: {p} }}");
        }
    }
    c
}

/// The counters l4vs prints on SIGINT (`  worker N: k=v ...` and
/// `  worker N drops: k=v ...`), summed over workers; `None` when there
/// are none.
pub fn parse_l4vs_final(out: &str) -> Option<DutStats> {
    let mut s = DutStats::default();
    let mut seen = false;
    for line in out.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("worker ") else {
            continue;
        };
        let Some((head, kvs)) = rest.split_once(':') else {
            continue;
        };
        let drops = head.ends_with(" drops");
        for kv in kvs.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            seen = true;
            if drops {
                match s.drops.iter_mut().find(|(n, _)| n == k) {
                    Some((_, n)) => *n += v,
                    None => s.drops.push((k.to_owned(), v)),
                }
                continue;
            }
            match k {
                "rx" => s.rx += v,
                "busy_cycles" => s.busy_cycles += v,
                "idle_cycles" => s.idle_cycles += v,
                "tx_dropped" => match s.drops.iter_mut().find(|(n, _)| n == k) {
                    Some((_, n)) => *n += v,
                    None => s.drops.push((k.to_owned(), v)),
                },
                _ => {}
            }
        }
    }
    seen.then_some(s)
}

/// The JSON line `l4vs-fwd` prints on stop, as [`DutStats`].
pub fn parse_fwd_final(out: &str) -> Option<DutStats> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    let r: crate::results::FwdReport = serde_json::from_str(line).ok()?;
    let mut drops = Vec::new();
    if r.tx_dropped > 0 {
        drops.push(("tx_dropped".to_owned(), r.tx_dropped));
    }
    Some(DutStats {
        rx: r.rx,
        busy_cycles: r.busy_cycles,
        idle_cycles: r.idle_cycles,
        drops,
        stolen: None,
    })
}

/// What the peers hook produced, as the body of the "## Peers" section.
///
/// The contract (also in bench/README.md): if `script` exists it is run
/// by the suite (see `l4vs-bench`) and writes Markdown to `md`; whatever
/// `md` holds then is included here. `ran` is the script's outcome: `None`
/// if it does not exist, `Some(Ok(()))` if it exited 0, `Some(Err(why))`
/// otherwise.
pub fn peers_section(
    script: &Path,
    md: &Path,
    ran: Option<Result<(), String>>,
    md_text: Option<String>,
) -> String {
    let hook = format!(
        "Hook: the suite runs `{}` if it exists (environment: `L4VS_BENCH_QUICK`, \
         `L4VS_BENCH_BIN_DIR`, `L4VS_BENCH_PEERS_OUT`) and includes the Markdown it writes \
         to `{}`; see bench/README.md.",
        script.display(),
        md.display()
    );
    // The peers file is a whole section of its own, heading included.
    let md_text = md_text.map(|t| match t.strip_prefix("## Peers\n") {
        Some(body) => body.trim_start().to_owned(),
        None => t,
    });
    match (ran, md_text) {
        (None, None) => format!(
            "No peer results: `{}` does not exist yet (nftables DNAT and HAProxy are being \
             added by another engineer). {hook}",
            script.display()
        ),
        (None, Some(t)) => format!(
            "{}\n\n(Not re-run by this suite: `{}` does not exist; this is the `{}` left by \
             an earlier run.)",
            t.trim_end(),
            script.display(),
            md.display()
        ),
        (Some(Ok(())), Some(t)) => t.trim_end().to_owned(),
        (Some(Ok(())), None) => format!(
            "`{}` exited 0 but wrote no `{}`. {hook}",
            script.display(),
            md.display()
        ),
        (Some(Err(e)), t) => {
            let mut s = format!(
                "**The peers benchmark failed:** `{}`: {}.",
                script.display(),
                e.replace('\n', " ")
            );
            if let Some(t) = t {
                s.push_str(&format!(
                    " What `{}` holds (possibly from an earlier run):\n\n{}",
                    md.display(),
                    t.trim_end()
                ));
            }
            s
        }
    }
}

/// Nanoseconds the threads of process `pid` (or, for `None`, the calling
/// thread) have spent runnable but waiting for a CPU: the second field of
/// /proc/.../schedstat, summed over threads. Its growth over a run is
/// time other processes took from the benchmark. `None` when the kernel
/// does not provide it.
pub fn runqueue_wait_ns(pid: Option<u32>) -> Option<u64> {
    let parse = |text: &str| text.split_whitespace().nth(1)?.parse::<u64>().ok();
    match pid {
        None => parse(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?),
        Some(pid) => {
            let mut total = 0;
            for e in std::fs::read_dir(format!("/proc/{pid}/task"))
                .ok()?
                .flatten()
            {
                let text = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
                total += parse(&text)?;
            }
            Some(total)
        }
    }
}

/// The bracketed choice of a sysfs multiple-choice file
/// (`always [madvise] never` -> `madvise`).
pub fn sysfs_choice(text: &str) -> Option<&str> {
    let a = text.find('[')?;
    let b = text[a..].find(']')? + a;
    Some(&text[a + 1..b])
}

/// What `perf stat -x, -e instructions true` says about the counter:
/// `Some(true)` if it counted, `Some(false)` if "<not supported>" or
/// "<not counted>", `None` if the output is not understood.
pub fn perf_counts(stat_stderr: &str) -> Option<bool> {
    let line = stat_stderr.lines().find(|l| l.contains("instructions"))?;
    let first = line.split(',').next()?.trim();
    if first.starts_with("<not") {
        Some(false)
    } else {
        first.parse::<u64>().ok().map(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l4vs_final_counters_are_summed() {
        let out = "l4vs: stopping; final counters\n  worker 0: rx=865248 forwarded=865248 tx_dropped=960 idle_cycles=8135 busy_cycles=5583\n  worker 0 drops: no_service=3 conn_table_full=2\n  worker 1: rx=2 busy_cycles=1\n  port bench: ipackets=0 opackets=0\n";
        let s = parse_l4vs_final(out).unwrap();
        assert_eq!((s.rx, s.busy_cycles, s.idle_cycles), (865_250, 5584, 8135));
        assert_eq!(
            s.drops,
            [
                ("tx_dropped".to_owned(), 960),
                ("no_service".to_owned(), 3),
                ("conn_table_full".to_owned(), 2)
            ]
        );
        assert_eq!(parse_l4vs_final("l4vs: EAL init failed"), None);
    }

    #[test]
    fn fwd_final_line() {
        let out = "l4vs-fwd: running on x\n{\"rx\":10,\"tx\":9,\"tx_dropped\":1,\"busy_cycles\":100,\"idle_cycles\":300}\n";
        let s = parse_fwd_final(out).unwrap();
        assert_eq!((s.rx, s.busy_cycles, s.idle_cycles), (10, 100, 300));
        assert_eq!(s.cycles_per_frame(), Some(10.0));
        assert_eq!(s.busy_share(), Some(0.25));
        assert_eq!(parse_fwd_final("l4vs-fwd: running on x\n"), None);
    }

    #[test]
    fn config_has_every_real_and_both_services() {
        let (server, client) = memif_specs("/run/x.sock");
        assert!(client.contains("role=client") && client.contains(GEN_MAC));
        let c = l4vs_config(Method::Nat, &server, "p", 0, 1, 1 << 20);
        assert!(
            c.contains(
                "device: \"net_memif0,role=server,socket=/run/x.sock,mac=02:00:00:00:00:01\""
            ),
            "{c}"
        );
        assert_eq!(c.matches("mac: \"02:00:00:00:00:02\"").count(), 4);
        assert_eq!(c.matches("port: 5353 }").count(), 4);
        assert!(
            c.contains("forward: nat") && c.contains("cores: [1]") && c.contains("main_core: 0")
        );
        let d = l4vs_config(Method::Dr, &server, "p", 0, 1, 12_500_000);
        assert_eq!(d.matches("port: 53 }").count(), 4);
        assert!(d.contains("  connections: 12500000\n"), "{d}");
        // What the director will load.
        let loaded = l4vs_control::config::parse(&d, "l4vs-dr.yaml").unwrap();
        assert_eq!(loaded.workers.connections, 12_500_000);
        assert_eq!(loaded.services.len(), 2);
    }

    #[test]
    fn peers_section_says_what_happened() {
        let (s, m) = (
            Path::new("bench/peers/run"),
            Path::new("bench/results/peers.md"),
        );
        assert!(peers_section(s, m, None, None)
            .starts_with("No peer results: `bench/peers/run` does not exist"));
        let t = peers_section(s, m, Some(Ok(())), Some("| peer | Mpps |\n".into()));
        assert_eq!(t, "| peer | Mpps |");
        // The peers file's own heading is not repeated under the suite's.
        let t = peers_section(s, m, Some(Ok(())), Some("## Peers\n\n| peer |\n".into()));
        assert_eq!(t, "| peer |");
        let t = peers_section(
            s,
            m,
            Some(Err("exit status 1: haproxy not found".into())),
            None,
        );
        assert!(
            t.contains("**The peers benchmark failed:**") && t.contains("haproxy not found"),
            "{t}"
        );
        let t = peers_section(s, m, None, Some("old".into()));
        assert!(t.contains("Not re-run by this suite"), "{t}");
    }

    #[test]
    fn runqueue_wait_is_readable_or_absent() {
        // Either the kernel has schedstat or it does not; no timing here.
        let own = runqueue_wait_ns(None);
        let proc = runqueue_wait_ns(Some(std::process::id()));
        assert_eq!(own.is_some(), proc.is_some());
        assert_eq!(runqueue_wait_ns(Some(u32::MAX)), None);
    }

    #[test]
    fn sysfs_and_perf_parsing() {
        assert_eq!(sysfs_choice("always [madvise] never\n"), Some("madvise"));
        assert_eq!(
            perf_counts("<not supported>,,instructions,0,100.00,,\n"),
            Some(false)
        );
        assert_eq!(
            perf_counts("123456,,instructions:u,1000,100.00,,\n"),
            Some(true)
        );
        assert_eq!(perf_counts("perf: command not found"), None);
    }
}
