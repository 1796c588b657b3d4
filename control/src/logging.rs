//! The director's log: `tracing` events, with timestamps and levels, and
//! DPDK's own log routed into it.
//!
//! - On a terminal or a file: one line per event on stdout,
//!   `2026-11-30T21:03:33.123456Z  INFO l4vs: port lan (...) up`, in UTC,
//!   target `l4vs` for the director's events and `dpdk` for DPDK's lines.
//! - Under systemd (`JOURNAL_STREAM` set, as systemd does when stdout or
//!   stderr goes to the journal): events go to journald natively, with
//!   their priority and `SYSLOG_IDENTIFIER=l4vs`; the journal adds its own
//!   timestamps. If journald's socket cannot be reached, the stdout form
//!   is used.
//! - `L4VS_LOG` filters, in `tracing-subscriber`'s `EnvFilter` syntax
//!   (`debug`, `l4vs=info,dpdk=warn`...); the default is `info`.
//!
//! The per-packet path logs nothing: the workers count, and the control
//! thread logs what changes (configuration, reloads, start and stop).
//! Reports asked for (SIGUSR1, SIGUSR2, the final counters) are printed on
//! stdout as blocks, not logged line by line.

use l4vs_dpdk::LogLevel;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const FILTER_ENV: &str = "L4VS_LOG";

/// Installs the process's log subscriber (once; later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|l| l.with_syslog_identifier("l4vs".to_owned()));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match journald {
        Some(j) => registry.with(j).try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stdout)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
    };
}

/// Parts of DPDK error lines that say nothing is wrong for l4vs,
/// logged at debug: the tap driver (the exception path's interfaces)
/// asks for a multiq qdisc to back rte_flow, which l4vs does not use and
/// kernels without `sch_multiq` do not have; and it tells its secondary
/// processes of a start, which l4vs never has.
const HARMLESS_DPDK_ERRORS: [&str; 5] = [
    "tap_nl_dump_ext_ack(): Specified qdisc kind is unknown",
    "qdisc_create_multiq(): Could not add multiq qdisc",
    ": failed to create multiq qdisc.",
    "eth_dev_tap_create():  Disabling rte flow support",
    "tap_mp_req_on_rxtx(): Failed to send start req to secondary",
];

/// Where DPDK's lines go ([`l4vs_dpdk::route_log`]): target `dpdk`, at
/// the level DPDK gave (emergency to error as error, warning as warn,
/// notice and info as info, debug as debug), but for the error lines
/// with one of [`HARMLESS_DPDK_ERRORS`] in them, which go at debug.
pub fn dpdk_line(level: LogLevel, line: &str) {
    let harmless = |l: &str| HARMLESS_DPDK_ERRORS.iter().any(|h| l.contains(h));
    if level == LogLevel::Error && harmless(line) {
        tracing::debug!(target: "dpdk", "{line}");
        return;
    }
    match level {
        LogLevel::Emergency | LogLevel::Alert | LogLevel::Critical | LogLevel::Error => {
            tracing::error!(target: "dpdk", "{line}")
        }
        LogLevel::Warning => tracing::warn!(target: "dpdk", "{line}"),
        LogLevel::Notice | LogLevel::Info => tracing::info!(target: "dpdk", "{line}"),
        LogLevel::Debug => tracing::debug!(target: "dpdk", "{line}"),
    }
}
