//! `l4vs-lab`: the lab's command line. The library does the work; this file
//! only parses arguments and maps results to exit codes.
//!
//! Subcommands run either on the host (`demo`, `cleanup`) or inside a lab
//! namespace, started there by the library (`serve`, `ipip-decap`,
//! `http-load`, `udp-probe`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use l4vs_lab::{client, demo, ipip, netns, servers, stub, Mode};

#[derive(Parser)]
#[command(name = "l4vs-lab", version, about = "The l4vs network-namespace lab")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring the lab up, run the l4vs director in it, send traffic, tear down.
    Demo {
        /// The director's YAML config.
        #[arg(long)]
        config: PathBuf,
        /// The l4vs binary.
        #[arg(long)]
        l4vs: PathBuf,
        /// Forwarding mode (nat, tunnel, dr); default: from the config file
        /// name, else nat.
        #[arg(long)]
        mode: Option<Mode>,
        /// HTTP connections to send.
        #[arg(long, default_value_t = 200)]
        count: u32,
        /// UDP echo probes to send as well.
        #[arg(long, default_value_t = 0)]
        udp_count: u32,
        /// Director log file (default: in the temp directory).
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Bring the lab up and keep it until SIGINT or SIGTERM: run
    /// directors in it by hand (`ip netns exec NS l4vs run --config ...`).
    Up {
        /// Forwarding mode the real servers are set up for (nat, tunnel, dr).
        #[arg(long, default_value = "nat")]
        mode: Mode,
        /// Route it for an active-standby pair of directors
        /// (configs/lab-*-ha-*.yaml): the client ARPs for the VIP, and
        /// NAT reals route through the virtual 198.18.2.254.
        #[arg(long)]
        pair: bool,
    },
    /// Delete the namespaces of labs whose process has gone (left by a
    /// kill -9), killing what runs in them; running labs are left alone.
    Cleanup {
        /// Delete every namespace whose name starts with PREFIX instead
        /// (it must start with "l4vs-"), running labs included.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Real server: HTTP/1.0, HTTPS and UDP echo, answering with NAME, and DNS.
    Serve {
        #[arg(long)]
        name: String,
        /// HTTP listening address; may be given several times.
        #[arg(long)]
        http: Vec<SocketAddr>,
        /// HTTPS listening address (a self-signed certificate); may be
        /// given several times.
        #[arg(long)]
        https: Vec<SocketAddr>,
        #[arg(long)]
        udp: Option<SocketAddr>,
        /// DNS listening address (UDP): every query answered NOERROR.
        #[arg(long)]
        dns: Option<SocketAddr>,
        /// TCP echo listening address (RFC 862).
        #[arg(long)]
        echo: Option<SocketAddr>,
    },
    /// User-space IP-IP decapsulation: raw socket (protocol 4) in, TUN out.
    IpipDecap {
        #[arg(long, default_value = ipip::TUN_DEV)]
        tun: String,
    },
    /// Test stand-in for the l4vs binary (kernel addresses + TCP proxy for
    /// the VIP), used to test `demo`; its arguments are ignored.
    StubDirector {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Test tool standing in for a tunnel-mode director: UDP probes for the
    /// VIP, IP-IP encapsulated to one real server; prints `served NAME N` and `failed N`.
    IpipProbe {
        /// The real server to tunnel to.
        #[arg(long)]
        rip: Ipv4Addr,
        /// Source address of the inner packets (the client's).
        #[arg(long, default_value_t = l4vs_lab::CLIENT_ADDR)]
        src: Ipv4Addr,
        #[arg(long, default_value_t = l4vs_lab::VIP_UDP)]
        target: SocketAddrV4,
        #[arg(long, default_value_t = 10)]
        count: u32,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Sequential HTTP GETs, each on a new connection; prints `served NAME N` and `failed N`.
    HttpLoad {
        #[arg(long)]
        target: SocketAddrV4,
        #[arg(long, default_value_t = 200)]
        count: u32,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Do not report failures on stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// One HTTP GET on a connection held open `hold_ms` before the request
    /// is sent (a connection that outlives a configuration change);
    /// prints `served NAME 1` or `failed 1`.
    HttpSlow {
        #[arg(long)]
        target: SocketAddrV4,
        #[arg(long, default_value_t = 3000)]
        hold_ms: u64,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Long-lived TCP connections to an echo service, each sending every
    /// interval, and new ones beside them; prints what lived (see
    /// `l4vs_lab::hold`).
    HoldEcho {
        #[arg(long)]
        target: SocketAddrV4,
        #[arg(long, default_value_t = 500)]
        connections: usize,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        #[arg(long, default_value_t = 10_000)]
        duration_ms: u64,
        /// New connections a second (0: none).
        #[arg(long, default_value_t = 20)]
        new_per_sec: u32,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// UDP echo probes; prints `served NAME N` and `failed N`.
    UdpProbe {
        #[arg(long)]
        target: SocketAddrV4,
        #[arg(long, default_value_t = 100)]
        count: u32,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Send every probe from one socket (one flow) instead of a new one each.
        #[arg(long)]
        same_socket: bool,
        /// Pad each probe to this many bytes of UDP payload (past 1472, the
        /// kernel sends it in fragments).
        #[arg(long)]
        size: Option<usize>,
        /// The probes' IP TTL.
        #[arg(long)]
        ttl: Option<u32>,
        /// Send each probe as IP fragments made here, last first, from this
        /// address (raw socket).
        #[arg(long)]
        reverse_fragments_from: Option<std::net::Ipv4Addr>,
        /// Send from this local address.
        #[arg(long)]
        bind: Option<std::net::Ipv4Addr>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("l4vs-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Demo {
            config,
            l4vs,
            mode,
            count,
            udp_count,
            log,
        } => {
            let lab_bin = std::env::current_exe().context("cannot find the l4vs-lab binary")?;
            let passed = demo::run(&demo::DemoConfig {
                config,
                l4vs,
                mode,
                count,
                udp_count,
                log,
                lab_bin,
            })?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Up { mode, pair } => {
            l4vs_lab::signals::install()?;
            let lab_bin = std::env::current_exe().context("cannot find the l4vs-lab binary")?;
            let lab = l4vs_lab::Lab::up(mode, &lab_bin)?;
            if pair {
                lab.route_for_a_pair()?;
            }
            let mut out = std::io::stdout().lock();
            use std::io::Write as _;
            writeln!(
                out,
                "lab {} ({}) is up; SIGINT or SIGTERM takes it down.",
                lab.prefix(),
                mode.as_str()
            )?;
            for (role, what) in [
                (
                    l4vs_lab::CLIENT,
                    format!("the client, {}", l4vs_lab::CLIENT_ADDR),
                ),
                (
                    l4vs_lab::DIRECTOR,
                    format!(
                        "a director's port eth0 (no address: l4vs's, e.g. {} and {})",
                        l4vs_lab::DIRECTOR_CLIENT_ADDR,
                        l4vs_lab::DIRECTOR_REAL_ADDR
                    ),
                ),
                (
                    l4vs_lab::DIRECTOR2,
                    format!(
                        "a second director's eth0 ({} and {} in the pair's configs)",
                        l4vs_lab::DIRECTOR2_CLIENT_ADDR,
                        l4vs_lab::DIRECTOR2_REAL_ADDR
                    ),
                ),
            ] {
                writeln!(
                    out,
                    "  {:<10} ip netns exec {}  # {what}",
                    role,
                    lab.ns(role)
                )?;
            }
            for r in l4vs_lab::REAL_SERVERS {
                writeln!(out, "  {:<10} ip netns exec {}  # real server {}: HTTP 80 and 443, UDP echo 53, TCP echo 7", r.name, lab.ns(r.name), r.addr)?;
            }
            writeln!(
                out,
                "e.g.: ip netns exec {} l4vs run --config configs/lab-{}.yaml",
                lab.ns(l4vs_lab::DIRECTOR),
                if pair {
                    format!("{}-ha-a", mode.as_str())
                } else {
                    mode.as_str().to_owned()
                }
            )?;
            writeln!(
                out,
                "      ip netns exec {} l4vs-lab http-load --target {}",
                lab.ns(l4vs_lab::CLIENT),
                l4vs_lab::VIP_HTTP
            )?;
            out.flush()?;
            drop(out);
            while !l4vs_lab::signals::interrupted() {
                std::thread::sleep(Duration::from_millis(200));
            }
            drop(lab);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cleanup { prefix } => {
            let removed = match &prefix {
                Some(prefix) => netns::cleanup(prefix)?,
                None => netns::cleanup_stale()?,
            };
            if removed.is_empty() {
                match prefix {
                    Some(prefix) => println!("no namespace starts with {prefix}"),
                    None => println!("no lab left by a process that has gone"),
                }
            }
            for ns in removed {
                println!("deleted {ns}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve {
            name,
            http,
            https,
            udp,
            dns,
            echo,
        } => {
            servers::serve(&servers::ServeConfig {
                name,
                http,
                https,
                udp,
                dns,
                echo,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::IpipDecap { tun } => {
            ipip::run_decap(&tun)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::StubDirector { args: _ } => {
            stub::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::IpipProbe {
            rip,
            src,
            target,
            count,
            timeout_ms,
        } => {
            let dist =
                ipip::tunnel_udp_probe(rip, src, target, count, Duration::from_millis(timeout_ms))?;
            print!("{dist}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HttpLoad {
            target,
            count,
            timeout_ms,
            quiet,
        } => {
            let dist = client::http_load(target, count, Duration::from_millis(timeout_ms), quiet);
            print!("{dist}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HoldEcho {
            target,
            connections,
            interval_ms,
            duration_ms,
            new_per_sec,
            timeout_ms,
        } => {
            let report = l4vs_lab::hold::run(&l4vs_lab::hold::HoldConfig {
                target,
                connections,
                interval: Duration::from_millis(interval_ms),
                duration: Duration::from_millis(duration_ms),
                new_per_sec,
                timeout: Duration::from_millis(timeout_ms),
            });
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HttpSlow {
            target,
            hold_ms,
            timeout_ms,
        } => {
            let hold = Duration::from_millis(hold_ms);
            let mut dist = client::Distribution::default();
            match client::http_get_after(target, hold, Duration::from_millis(timeout_ms)) {
                Ok(name) => *dist.served.entry(name).or_default() += 1,
                Err(e) => {
                    eprintln!("http-slow: {e:#}");
                    dist.failed += 1;
                }
            }
            print!("{dist}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::UdpProbe {
            target,
            count,
            timeout_ms,
            same_socket,
            size,
            ttl,
            reverse_fragments_from,
            bind,
        } => {
            let dist = client::udp_probe_shaped(
                target,
                count,
                Duration::from_millis(timeout_ms),
                !same_socket,
                &client::ProbeShape {
                    size,
                    ttl,
                    reverse_fragments_from,
                    bind,
                },
            );
            print!("{dist}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
