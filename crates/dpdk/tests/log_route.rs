//! DPDK's log reaches the routed sink, with its levels, from EAL init on.

use l4vs_dpdk::{route_log, Eal, LogLevel};
use std::sync::Mutex;

static LINES: Mutex<Vec<(LogLevel, String)>> = Mutex::new(Vec::new());

fn keep(level: LogLevel, line: &str) {
    LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((level, line.to_owned()));
}

#[test]
fn eal_lines_go_to_the_sink_with_their_level() {
    route_log(keep).expect("routing the log");
    assert!(route_log(keep).is_err(), "a second sink was taken");
    let args: Vec<String> = [
        "l4vs-log-test",
        "--no-huge",
        "-m",
        "64",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level=*:info",
        "-l",
        "0",
        "--vdev=net_null0",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let eal = Eal::init(&args).expect("EAL init");
    let lines = LINES.lock().unwrap().clone();
    // EAL says how many lcores it found, at info level (eal_lcore.c).
    let detected = lines
        .iter()
        .find(|(_, l)| l.starts_with("EAL: Detected"))
        .unwrap_or_else(|| panic!("no EAL line reached the sink: {lines:?}"));
    assert_eq!(detected.0, LogLevel::Info, "{lines:?}");
    assert!(lines
        .iter()
        .all(|(_, l)| !l.contains('\n') && !l.is_empty()));
    drop(eal);
}
