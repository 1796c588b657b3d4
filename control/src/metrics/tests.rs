use super::*;
use crate::config;
use crate::table::ServiceTable;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn lab_report() -> Vec<ServiceReport> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let cfg = config::load(&dir.join("lab-fwmark.yaml")).unwrap();
    let mut table = ServiceTable::from_config(&cfg).unwrap();
    let mut report = table.report();
    let s = &mut report[0];
    s.counted.totals.conns = 7;
    s.counted.totals.inpkts = 70;
    s.counted.totals.outpkts = 60;
    s.counted.totals.inbytes = 7000;
    s.counted.totals.outbytes = 6000;
    s.reals[0].counted.totals.conns = 5;
    s.reals[0].active = 2;
    s.reals[0].inactive = 3;
    report
}

fn sample() -> String {
    let w = Arc::new(Counters::default());
    w.rx.add(123);
    w.busy_cycles.add(4567);
    w.count_drop(DropReason::NoService);
    w.conn_entries.set(9);
    let ports = [
        PortView {
            name: "lan".to_owned(),
            stats: Some(PortStats {
                ipackets: 11,
                imissed: 2,
                rx_nombuf: 1,
                ..PortStats::default()
            }),
        },
        PortView {
            name: "gone".to_owned(),
            stats: None,
        },
    ];
    let health = [crate::table::RealHealth {
        service: crate::table::ServiceKey::Fwmark(1),
        service_name: "web".into(),
        addr: std::net::Ipv4Addr::new(198, 18, 2, 12),
        port: 0,
        method: l4vs_dataplane::model::ForwardMethod::Nat,
        up: false,
    }];
    render(&View {
        services: &lab_report(),
        health: &health,
        quorums: &[(crate::table::ServiceKey::Fwmark(1), "web".into(), false)],
        sync: Some(crate::sync::SyncCounts {
            sent_messages: 4,
            sent_conns: 100,
            ..Default::default()
        }),
        sync_lag: Some(crate::sync::SyncLag {
            pending: std::time::Duration::from_millis(1500),
            since_last_message: None,
        }),
        vrrp: Some((
            crate::vrrp::State::Master,
            crate::vrrp::VrrpCounts {
                sent: 30,
                rejected: [0, 0, 0, 0, 2, 0],
                became_master: 1,
                ..Default::default()
            },
        )),
        workers: &[w],
        conn_capacity: 4096,
        ports: &ports,
        control: ControlView {
            injected: 3,
            ..ControlView::default()
        },
        tsc_hz: 2_000_000_000,
    })
}

#[test]
fn every_worker_counter_has_help_text() {
    let names: Vec<&str> = Counters::default()
        .named()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for n in &names {
        assert!(
            WORKER_COUNTER_HELP.iter().any(|(h, _)| h == n),
            "worker counter {n} has no help text, so no metric"
        );
    }
    assert_eq!(names.len(), WORKER_COUNTER_HELP.len());
}

#[test]
fn services_reals_workers_and_ports_are_rendered_with_their_values() {
    let text = sample();
    let lines: Vec<&str> = text.lines().collect();
    let has = |want: &str| {
        assert!(lines.contains(&want), "no line {want:?} in\n{text}");
    };
    // lab-fwmark.yaml's first service is a firewall-mark service.
    let svc = r#"service="web",protocol="fwmark",vip="",port="",fwmark="1""#;
    has(&format!("l4vs_service_connections_total{{{svc}}} 7"));
    has(&format!(
        "l4vs_service_packets_total{{{svc},direction=\"out\"}} 60"
    ));
    has(&format!(
        "l4vs_service_bytes_total{{{svc},direction=\"in\"}} 7000"
    ));
    let real = format!(r#"{svc},real="198.18.2.11",real_port="0",forward="nat""#);
    has(&format!("l4vs_real_connections_total{{{real}}} 5"));
    has(&format!("l4vs_real_active_connections{{{real}}} 2"));
    has(&format!("l4vs_real_inactive_connections{{{real}}} 3"));
    has(&format!("l4vs_real_weight{{{real}}} 1"));
    has(r#"l4vs_worker_rx_total{worker="0"} 123"#);
    has(r#"l4vs_worker_busy_cycles_total{worker="0"} 4567"#);
    has(r#"l4vs_worker_drops_total{worker="0",reason="no_service"} 1"#);
    has(r#"l4vs_worker_drops_total{worker="0",reason="eth_truncated"} 0"#);
    has(r#"l4vs_worker_connection_entries{worker="0"} 9"#);
    has(r#"l4vs_worker_connection_capacity{worker="0"} 4096"#);
    has(r#"l4vs_port_packets_total{port="lan",direction="rx"} 11"#);
    has(r#"l4vs_port_rx_missed_total{port="lan"} 2"#);
    has(r#"l4vs_port_rx_nombuf_total{port="lan"} 1"#);
    has(r#"l4vs_control_frames_total{what="injected"} 3"#);
    has("l4vs_tsc_hertz 2000000000");
    has(&format!(
        r#"l4vs_real_up{{{svc},real="198.18.2.12",real_port="0",forward="nat"}} 0"#
    ));
    has(&format!("l4vs_service_quorum_up{{{svc}}} 0"));
    has(r#"l4vs_sync_messages_total{direction="sent"} 4"#);
    has(r#"l4vs_sync_connections_total{what="sent"} 100"#);
    has(r#"l4vs_sync_rejected_messages_total{reason="auth"} 0"#);
    has(r#"l4vs_sync_lag_seconds{what="pending"} 1.5"#);
    assert!(!text.contains(r#"what="since_last_message""#), "{text}");
    has(r#"l4vs_vrrp_state{state="MASTER"} 1"#);
    has(r#"l4vs_vrrp_state{state="BACKUP"} 0"#);
    has(r#"l4vs_vrrp_advertisements_total{what="sent"} 30"#);
    has(r#"l4vs_vrrp_rejected_advertisements_total{reason="checksum"} 2"#);
    has(r#"l4vs_vrrp_transitions_total{state="MASTER"} 1"#);
    assert!(!text.contains(r#"port="gone""#), "{text}");
}

/// The rendering passes `promtool check metrics` (Debian's prometheus
/// package, which `scripts/test` installs).
#[test]
fn promtool_accepts_the_rendering() {
    let text = sample();
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("promtool: {e}: install Debian's prometheus package (scripts/test does)"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the rendering:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl` against the endpoint while this thread plays the control
/// thread; returns (HTTP status, body).
fn curl(endpoint: &MetricsEndpoint, args: &[&str], path: &str) -> (String, String) {
    let url = format!("http://{}{path}", endpoint.local_addr());
    let child = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl (scripts/test installs it)");
    let out = std::thread::scope(|s| {
        let h = s.spawn(move || child.wait_with_output().unwrap());
        while !h.is_finished() {
            endpoint.serve(|| "l4vs_test 1\n# EOF\n".to_owned());
            std::thread::sleep(Duration::from_millis(5));
        }
        h.join().unwrap()
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_owned(), body.to_owned())
}

#[test]
fn the_endpoint_answers_scrapes_from_the_control_thread_and_refuses_the_rest() {
    let endpoint = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(
        curl(&endpoint, &[], "/metrics"),
        ("200".to_owned(), "l4vs_test 1\n# EOF\n".to_owned())
    );
    assert_eq!(curl(&endpoint, &[], "/nothing").0, "404");
    assert_eq!(curl(&endpoint, &["-X", "POST"], "/metrics").0, "405");
    assert_eq!(curl(&endpoint, &["--head"], "/metrics").0, "200");
    // A second endpoint on a port in use fails at start.
    let err = MetricsEndpoint::start(endpoint.local_addr()).err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

/// Clients that connect and send nothing can hold every slot, but a
/// scrape behind them waits in the backlog and is answered once the
/// header timeout has cut them off; it is never turned away.
#[test]
fn idle_clients_delay_a_scrape_but_never_shut_it_out() {
    let endpoint = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let idle: Vec<_> = (0..MAX_CLIENTS + 8)
        .map(|_| std::net::TcpStream::connect(endpoint.local_addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        curl(&endpoint, &[], "/metrics"),
        ("200".to_owned(), "l4vs_test 1\n# EOF\n".to_owned())
    );
    drop(idle);
}

#[test]
fn a_scrape_nobody_answers_gets_503_after_the_timeout_and_the_endpoint_stops_on_drop() {
    let endpoint = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "503");
    // A client connected but silent is closed when the endpoint stops.
    // (Whether the port still answers afterwards is no proof: a test
    // running alongside may be given the same port at once.)
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    drop(endpoint);
    idle.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    match std::io::Read::read(&mut idle, &mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection outlived the endpoint: {other:?}"),
    }
}

/// Every metric the Grafana dashboard (`dist/grafana/l4vs.json`) queries
/// is one the director exports.
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana/l4vs.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let text = sample();
    let exported: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut queried = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("l4vs_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    exported.contains(&name.as_str()),
                    "panel {:?} queries {name}, which is not exported",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 15, "only {queried} metric references found");
}
