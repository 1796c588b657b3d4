use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;

const FILE: &str = "bad.yaml";

/// Lines 1-8 of most test documents; services start on line 9.
const HEAD: &str = "\
workers:
  cores: [1]
ports:
  - name: lan
    device: net_af_packet0,iface=eth0
addresses:
  - { port: lan, address: 198.18.1.1/24 }
  - { port: lan, address: 198.18.2.1/24 }
";

/// `HEAD` and one TCP 80 service on lines 9-17 with its first real on line
/// 17, then `more` from line 18 on.
fn with_service(scheduler: &str, more: &str) -> String {
    format!(
        "{HEAD}\
services:
  - name: web
    vip: 198.18.0.100
    port: 80
    protocol: tcp
    scheduler: {scheduler}
    forward: nat
    reals:
      - {{ address: 198.18.2.11, port: 80 }}
{more}"
    )
}

fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn config_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(configs_dir())
        .expect("configs/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

/// Parses `text`, expects an error at `line` on `key`, whose message contains
/// `needle`; returns the error for further checks.
#[track_caller]
fn expect_err(text: &str, line: u32, key: &str, needle: &str) -> ConfigError {
    let err = match parse(text, FILE) {
        Ok(cfg) => panic!("expected an error at line {line} on {key}, parsed {cfg:#?}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    assert_eq!(err.file, FILE, "{shown}");
    assert_eq!(err.line, line, "{shown}");
    assert_eq!(err.key, key, "{shown}");
    assert!(err.column > 0, "{shown}");
    let prefix = format!("{FILE}:{line}:{}: {key}: ", err.column);
    assert!(
        shown.starts_with(&prefix),
        "{shown:?} should start with {prefix:?}"
    );
    assert!(
        err.message.contains(needle),
        "{shown:?} should contain {needle:?}"
    );
    err
}

#[test]
fn every_config_in_configs_loads_and_round_trips() {
    let files = config_files();
    assert!(files.len() >= 5, "configs/ has only {files:?}");
    for path in files {
        let cfg = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let yaml = to_yaml(&cfg);
        let again = parse(&yaml, "effective.yaml")
            .unwrap_or_else(|e| panic!("{}: {e}\n{yaml}", path.display()));
        assert_eq!(
            again,
            cfg,
            "{}: round trip changed it:\n{yaml}",
            path.display()
        );
        // And the printed form is a fixed point.
        assert_eq!(to_yaml(&again), yaml);
    }
}

#[test]
fn lab_nat_has_the_lab_addresses_and_defaults() {
    let cfg = load(&configs_dir().join("lab-nat.yaml")).unwrap();
    assert_eq!(cfg.eal.main_core, 0);
    assert_eq!(cfg.workers.cores, vec![1]);
    assert_eq!(cfg.workers.burst, DEFAULT_BURST);
    assert_eq!(cfg.workers.idle_sleep_us, 50);
    assert_eq!(cfg.mbufs, DEFAULT_MBUFS);
    assert_eq!(cfg.ports.len(), 1);
    let port = &cfg.ports[0];
    assert_eq!(port.device.kind, DeviceKind::Vdev);
    assert_eq!(port.device.name, "net_af_packet0");
    assert_eq!(port.device.spec(), "net_af_packet0,iface=eth0");
    assert_eq!((port.rx_desc, port.tx_desc), (DEFAULT_DESC, DEFAULT_DESC));
    assert_eq!(cfg.addresses.len(), 2);
    assert_eq!(cfg.addresses[1].address, Ipv4Addr::new(198, 18, 2, 1));
    assert_eq!(cfg.addresses[1].prefix_len, 24);
    assert_eq!(cfg.gateway, None);
    let protocols: Vec<_> = cfg.services.iter().map(|s| (s.protocol, s.port)).collect();
    assert_eq!(protocols, vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)]);
    for s in &cfg.services {
        assert_eq!(s.vip, Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(s.scheduler, SchedulerKind::Rr);
        let reals: Vec<_> = s.reals.iter().map(|r| r.address.octets()[3]).collect();
        assert_eq!(reals, vec![11, 12, 13]);
        for r in &s.reals {
            assert_eq!(
                (r.port, r.weight, r.forward),
                (s.port, 1, ForwardMethod::Nat)
            );
        }
    }
}

#[test]
fn forwarding_methods_of_the_lab_configs() {
    for (file, forward) in [
        ("lab-nat.yaml", ForwardMethod::Nat),
        ("lab-tunnel.yaml", ForwardMethod::Tunnel),
        ("lab-dr.yaml", ForwardMethod::DirectRouting),
        ("lab-wrr.yaml", ForwardMethod::Nat),
    ] {
        let cfg = load(&configs_dir().join(file)).unwrap();
        for s in &cfg.services {
            assert_eq!(s.forward, forward, "{file}");
            assert!(s
                .reals
                .iter()
                .all(|r| r.forward == forward && r.port == s.port));
        }
    }
    let wrr = load(&configs_dir().join("lab-wrr.yaml")).unwrap();
    assert_eq!(wrr.services[0].scheduler, SchedulerKind::Wrr);
    let weights: Vec<u32> = wrr.services[0].reals.iter().map(|r| r.weight).collect();
    assert_eq!(weights, vec![3, 1, 0]);
}

#[test]
fn example_full_resolves_references_and_overrides() {
    let cfg = load(&configs_dir().join("example-full.yaml")).unwrap();
    assert_eq!(cfg.ports[0].device.kind, DeviceKind::Pci);
    assert_eq!(cfg.ports[0].device.name, "0000:03:00.0");
    assert_eq!(cfg.port_index("inside"), Some(1));
    assert_eq!(cfg.addresses[1].port, 1);
    let gw = cfg.gateway.unwrap();
    assert_eq!((gw.port, gw.address), (0, Ipv4Addr::new(203, 0, 113, 1)));
    assert_eq!(cfg.neighbors[1].mac, [0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x11]);
    let http = &cfg.services[1];
    assert_eq!(http.forward, ForwardMethod::DirectRouting);
    assert_eq!(http.reals[0].forward, ForwardMethod::DirectRouting);
    assert_eq!(http.reals[2].forward, ForwardMethod::Nat);
    assert_eq!(http.reals[2].port, 8080);
    assert!(cfg.services[4].reals.is_empty());
    assert_eq!(cfg.services[4].name, None);
    // The keys the reference shows beyond the basics.
    assert_eq!(cfg.ports[0].mtu, Some(1500));
    assert_eq!(cfg.ports[1].mtu, None);
    assert!(cfg.services[2].ops);
    let www = &cfg.services[0];
    assert_eq!(
        www.persistence.map(|p| (p.timeout, p.netmask)),
        Some((360, 24))
    );
    assert_eq!(www.timeouts.tcp_established, 3600);
    assert_eq!(
        (www.reals[0].upper_threshold, www.reals[0].lower_threshold),
        (20000, 15000)
    );
    assert_eq!(cfg.services[3].fwmark, Some(1));
    assert_eq!(cfg.firewall_marks.len(), 2);
    assert_eq!(cfg.workers.connections, 4_194_304);
}

#[test]
fn defaults_are_printed() {
    let cfg = parse(&with_service("rr", ""), FILE).unwrap();
    let yaml = to_yaml(&cfg);
    for needle in [
        "burst: 32",
        "idle_sleep_us: 0",
        "main_core: 0",
        "rx_desc: 1024",
        "tx_desc: 1024",
        "mbufs: 8191",
        "weight: 1",
        "forward: nat}",
    ] {
        assert!(yaml.contains(needle), "{needle:?} missing from\n{yaml}");
    }
    assert!(!yaml.contains("gateway"), "{yaml}");
}

#[test]
fn eal_argv_adds_cores_and_devices() {
    let cfg = load(&configs_dir().join("lab-nat.yaml")).unwrap();
    let argv = cfg.eal_argv("l4vs");
    let expected = [
        "l4vs",
        "-l",
        "0",
        "--main-lcore",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level=*:error",
        "--vdev",
        "net_af_packet0,iface=eth0",
        // The exception path's kernel interface of port `lan`.
        "--vdev",
        "net_tap_l4vs0,iface=l4vs-lan",
    ];
    assert_eq!(argv, expected);
    let full = load(&configs_dir().join("example-full.yaml")).unwrap();
    let argv = full.eal_argv("l4vs");
    assert_eq!(
        argv[2], "0",
        "workers are registered threads, not EAL lcores"
    );
    assert_eq!(
        &argv[argv.len() - 8..],
        [
            "-a",
            "0000:03:00.0",
            "-a",
            "0000:03:00.1",
            "--vdev",
            "net_tap_l4vs0,iface=l4vs-outside",
            "--vdev",
            "net_tap_l4vs1,iface=l4vs-inside"
        ]
    );
    let mut off = full.clone();
    off.exception_path = false;
    assert_eq!(
        &off.eal_argv("l4vs")[argv.len() - 8..],
        ["-a", "0000:03:00.0", "-a", "0000:03:00.1"]
    );
}

/// Port names whose kernel interfaces would be cut to the same 15
/// characters are refused, naming the key; without the exception path
/// they are fine.
#[test]
fn kernel_interface_names_must_differ() {
    let text = std::fs::read_to_string(configs_dir().join("lab-nat.yaml"))
        .unwrap()
        .replace("- name: lan", "- name: outside-left")
        .replace("port: lan", "port: outside-left");
    let two = text.replace(
        "ports:\n",
        "ports:\n  - name: outside-lefty\n    device: net_ring0\n    rx_desc: 32\n    tx_desc: 32\n",
    );
    let e = crate::config::parse(&two, "two.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ports[1].name") && e.contains("l4vs-outside-le"),
        "{e}"
    );
    let off = format!("{two}exception_path: false\n");
    assert!(crate::config::parse(&off, "off.yaml").is_ok());
}

#[test]
fn address_helpers() {
    let a = Address {
        port: 0,
        address: Ipv4Addr::new(198, 18, 1, 1),
        prefix_len: 24,
    };
    assert_eq!(a.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert!(a.contains(Ipv4Addr::new(198, 18, 1, 254)));
    assert!(!a.contains(Ipv4Addr::new(198, 18, 2, 1)));
    assert_eq!(format_mac(&[2, 0, 0, 0, 2, 0x0b]), "02:00:00:00:02:0b");
}

#[test]
fn error_display_format() {
    let e = ConfigError {
        file: "configs/x.yaml".into(),
        line: 14,
        column: 7,
        key: "services[0].reals[1].weight".into(),
        message: "bad".into(),
    };
    assert_eq!(
        e.to_string(),
        "configs/x.yaml:14:7: services[0].reals[1].weight: bad"
    );
    let e = ConfigError {
        line: 0,
        column: 0,
        key: String::new(),
        ..e
    };
    assert_eq!(e.to_string(), "configs/x.yaml: bad");
}

#[test]
fn unreadable_file_names_the_file() {
    let err = load(Path::new("/nonexistent/l4vs.yaml")).unwrap_err();
    assert_eq!(err.line, 0);
    assert!(err
        .to_string()
        .starts_with("/nonexistent/l4vs.yaml: cannot read"));
}

// ---- one test per kind of bad input ---------------------------------------

#[test]
fn unknown_key() {
    let text = with_service(
        "rr",
        "      - { address: 198.18.2.12, port: 80, wieght: 2 }\n",
    );
    let e = expect_err(
        &text,
        18,
        "services[0].reals[1].wieght",
        "unknown key `wieght`",
    );
    assert!(e.message.contains("weight"), "{e}");
    expect_err(&format!("{HEAD}colour: blue\n"), 9, "colour", "unknown key");
    expect_err(
        "workers:\n  cores: [1]\n  bursts: 3\n",
        3,
        "workers.bursts",
        "unknown key",
    );
}

#[test]
fn missing_key() {
    let e = expect_err(
        &with_service("rr", "      - { port: 80 }\n"),
        18,
        "services[0].reals[1].address",
        "missing required key",
    );
    assert_eq!(e.column, 9, "at the mapping's brace: {e}");
    // A block mapping: reported where it starts, not at its last key.
    let text = format!(
        "{HEAD}services:\n  - vip: 198.18.0.100\n    port: 80\n    protocol: tcp\n    scheduler: rr\n    reals: []\n"
    );
    let e = expect_err(&text, 10, "services[0].forward", "missing required key");
    assert_eq!(e.column, 5, "{e}");
    expect_err(
        "workers:\n  cores: [1]\n",
        1,
        "ports",
        "missing required key",
    );
}

#[test]
fn bad_ip_address() {
    let text = with_service("rr", "").replace("vip: 198.18.0.100", "vip: 198.18.0.300");
    expect_err(
        &text,
        11,
        "services[0].vip",
        "`198.18.0.300` is not an IPv4 address",
    );
    let text = with_service("rr", "      - { address: 198.18.2, port: 80 }\n");
    expect_err(
        &text,
        18,
        "services[0].reals[1].address",
        "not an IPv4 address",
    );
    let text = with_service("rr", "      - { address: 224.0.0.1 }\n");
    expect_err(&text, 18, "services[0].reals[1].address", "multicast");
}

#[test]
fn bad_prefix() {
    let text = HEAD.replace("198.18.2.1/24", "198.18.2.1/33");
    expect_err(&text, 8, "addresses[1].address", "not a prefix length");
    let text = HEAD.replace("198.18.2.1/24", "198.18.2.1");
    expect_err(&text, 8, "addresses[1].address", "no prefix length");
    let text = HEAD.replace("198.18.2.1/24", "198.18.2.1/0");
    expect_err(&text, 8, "addresses[1].address", "1..=32");
}

#[test]
fn bad_mac() {
    let text = format!(
        "{HEAD}neighbors:\n  - {{ port: lan, address: 198.18.2.11, mac: \"02:00:00:00:02\" }}\n"
    );
    expect_err(&text, 10, "neighbors[0].mac", "not a MAC address");
    let text = text.replace("02:00:00:00:02", "01:00:5e:00:00:01");
    expect_err(&text, 10, "neighbors[0].mac", "multicast");
    let text = text.replace("01:00:5e:00:00:01", "02:00:00:00:02:zz");
    expect_err(&text, 10, "neighbors[0].mac", "not a MAC address");
}

#[test]
fn unknown_port_reference() {
    let text = HEAD.replace(
        "{ port: lan, address: 198.18.2.1/24 }",
        "{ port: wan, address: 198.18.2.1/24 }",
    );
    expect_err(&text, 8, "addresses[1].port", "no port named `wan`");
    let text = format!("{HEAD}gateway: {{ port: lam, address: 198.18.1.254 }}\n");
    expect_err(&text, 9, "gateway.port", "no port named `lam` (ports: lan)");
}

#[test]
fn duplicate_port_name_and_device() {
    let text = HEAD.replace(
        "addresses:",
        "  - name: lan\n    device: net_af_packet1,iface=eth1\naddresses:",
    );
    expect_err(&text, 6, "ports[1].name", "already used by ports[0]");
    let text = HEAD.replace(
        "addresses:",
        "  - name: wan\n    device: net_af_packet0,iface=eth1\naddresses:",
    );
    expect_err(&text, 7, "ports[1].device", "already used by ports[0]");
}

#[test]
fn bad_device() {
    let text = HEAD.replace("net_af_packet0,iface=eth0", "eth0");
    expect_err(&text, 5, "ports[0].device", "neither a PCI address");
    let text = HEAD.replace("net_af_packet0,iface=eth0", "03:00.0");
    let cfg = parse(
        &text.replace("cores: [1]", "cores: [1]\neal:\n  args: []"),
        FILE,
    )
    .unwrap();
    assert_eq!(cfg.ports[0].device.name, "0000:03:00.0");
    let text = HEAD.replace("net_af_packet0,iface=eth0", "0000:03:00.9");
    expect_err(&text, 5, "ports[0].device", "neither a PCI address");
}

#[test]
fn duplicate_service() {
    let more = "  - vip: 198.18.0.100\n    port: 80\n    protocol: tcp\n    scheduler: rr\n    forward: dr\n";
    let e = expect_err(
        &with_service("rr", more),
        18,
        "services[1]",
        "duplicate service tcp 198.18.0.100:80",
    );
    assert!(e.message.contains("services[0] (line 10)"), "{e}");
    // The same address and port over UDP is another service.
    parse(&with_service("rr", &more.replace("tcp", "udp")), FILE).unwrap();
}

#[test]
fn duplicate_real() {
    let text = with_service(
        "rr",
        "      - { address: 198.18.2.12 }\n      - { address: 198.18.2.11, weight: 4 }\n",
    );
    let e = expect_err(
        &text,
        19,
        "services[0].reals[2]",
        "duplicate real server 198.18.2.11:80",
    );
    assert!(e.message.contains("reals[0] (line 17)"), "{e}");
    // Another port on the same host is another real server (NAT).
    parse(
        &with_service("rr", "      - { address: 198.18.2.11, port: 8080 }\n"),
        FILE,
    )
    .unwrap();
}

#[test]
fn unknown_scheduler() {
    let e = expect_err(
        &with_service("fastest", ""),
        14,
        "services[0].scheduler",
        "unknown scheduler `fastest`",
    );
    assert!(
        e.message
            .contains("rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos"),
        "{e}"
    );
}

#[test]
fn every_ipvs_scheduler_parses_and_round_trips() {
    for name in SchedulerKind::NAMES {
        let cfg = parse(&with_service(name, ""), FILE).unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = cfg.services[0].scheduler;
        assert_eq!(s.as_str(), name);
        assert!(s.flags().next().is_none());
        let yaml = to_yaml(&cfg);
        assert_eq!(parse(&yaml, FILE).unwrap(), cfg, "{name}:\n{yaml}");
        assert!(!yaml.contains("sched_flags"), "{yaml}");
        assert_eq!(
            yaml.contains("mh_table_size: 65537"),
            name == "mh",
            "{yaml}"
        );
    }
    let cfg = parse(&with_service("mh", ""), FILE).unwrap();
    assert_eq!(
        cfg.services[0].scheduler,
        SchedulerKind::Mh {
            table_size: DEFAULT_MH_TABLE_SIZE,
            port: false,
            fallback: false
        }
    );
}

#[test]
fn scheduler_flags_and_mh_table_size() {
    let text = with_service(
        "mh\n    sched_flags: [mh-fallback, mh-port]\n    mh_table_size: 4093",
        "",
    );
    let cfg = parse(&text, FILE).unwrap();
    assert_eq!(
        cfg.services[0].scheduler,
        SchedulerKind::Mh {
            table_size: 4093,
            port: true,
            fallback: true
        }
    );
    let yaml = to_yaml(&cfg);
    assert!(
        yaml.contains("sched_flags: [mh-port, mh-fallback]"),
        "{yaml}"
    );
    assert!(yaml.contains("mh_table_size: 4093"), "{yaml}");
    assert_eq!(parse(&yaml, FILE).unwrap(), cfg);

    let cfg = parse(&with_service("sh\n    sched_flags: [sh-port]", ""), FILE).unwrap();
    assert_eq!(
        cfg.services[0].scheduler,
        SchedulerKind::Sh {
            port: true,
            fallback: false
        }
    );
    assert_eq!(parse(&to_yaml(&cfg), FILE).unwrap(), cfg);
    parse(&with_service("sh\n    sched_flags: []", ""), FILE).unwrap();
}

#[test]
fn bad_scheduler_flags() {
    let flags =
        |sched: &str, list: &str| with_service(&format!("{sched}\n    sched_flags: [{list}]"), "");
    let e = expect_err(
        &flags("mh", "mh-port, sh-fallback"),
        15,
        "services[0].sched_flags[1]",
        "`sh-fallback` is a flag of the sh scheduler",
    );
    assert!(e.message.contains("for mh write mh-fallback"), "{e}");
    expect_err(
        &flags("wlc", "sh-port"),
        15,
        "services[0].sched_flags[0]",
        "scheduler wlc takes no flags",
    );
    expect_err(
        &flags("sh", "sh-port, sh-port"),
        15,
        "services[0].sched_flags[1]",
        "listed twice",
    );
    expect_err(
        &flags("sh", "sh-sticky"),
        15,
        "services[0].sched_flags[0]",
        "unknown scheduler flag `sh-sticky`",
    );
    expect_err(
        &flags("sh", "flag-1"),
        15,
        "services[0].sched_flags[0]",
        "numbered flags",
    );
}

#[test]
fn bad_mh_table_size() {
    let size = |sched: &str, n: &str| with_service(&format!("{sched}\n    mh_table_size: {n}"), "");
    expect_err(
        &size("mh", "65536"),
        15,
        "services[0].mh_table_size",
        "65536 is not a prime",
    );
    expect_err(
        &size("mh", "127"),
        15,
        "services[0].mh_table_size",
        "251..=131071",
    );
    expect_err(
        &size("mh", "262139"),
        15,
        "services[0].mh_table_size",
        "251..=131071",
    );
    expect_err(
        &size("sh", "251"),
        15,
        "services[0].mh_table_size",
        "for the mh scheduler; this service uses sh",
    );
    // More reals than slots: 1 + 251 reals in a table of 251.
    let more: String = (2..=252)
        .map(|i| format!("      - {{ address: 198.18.1.{i} }}\n"))
        .collect();
    expect_err(
        &with_service("mh\n    mh_table_size: 251", &more),
        15,
        "services[0].mh_table_size",
        "cannot serve 252 real servers",
    );
    parse(&with_service("mh\n    mh_table_size: 257", &more), FILE).unwrap();
}

#[test]
fn connection_thresholds() {
    let text = with_service(
        "wlc",
        "      - { address: 198.18.2.12, upper_threshold: 100, lower_threshold: 60 }\n      - { address: 198.18.2.13, upper_threshold: 8 }\n",
    );
    let cfg = parse(&text, FILE).unwrap();
    let r = &cfg.services[0].reals;
    assert_eq!((r[0].upper_threshold, r[0].lower_threshold), (0, 0));
    assert_eq!((r[1].upper_threshold, r[1].lower_threshold), (100, 60));
    assert_eq!((r[2].upper_threshold, r[2].lower_threshold), (8, 0));
    let yaml = to_yaml(&cfg);
    assert!(
        yaml.contains("upper_threshold: 100, lower_threshold: 60}"),
        "{yaml}"
    );
    assert!(yaml.contains("upper_threshold: 8}"), "{yaml}");
    assert_eq!(
        yaml.matches("threshold").count(),
        3,
        "unset ones are not printed"
    );
    assert_eq!(parse(&yaml, FILE).unwrap(), cfg);
    // Equal thresholds are allowed.
    parse(
        &with_service(
            "wlc",
            "      - { address: 198.18.2.12, upper_threshold: 5, lower_threshold: 5 }\n",
        ),
        FILE,
    )
    .unwrap();
}

#[test]
fn bad_connection_thresholds() {
    let real = |attrs: &str| {
        with_service(
            "wlc",
            &format!("      - {{ address: 198.18.2.12, {attrs} }}\n"),
        )
    };
    expect_err(
        &real("upper_threshold: 10, lower_threshold: 11"),
        18,
        "services[0].reals[1].lower_threshold",
        "lower threshold 11 is above upper threshold 10",
    );
    expect_err(
        &real("lower_threshold: 3"),
        18,
        "services[0].reals[1].lower_threshold",
        "without an upper threshold",
    );
    expect_err(
        &real("upper_threshold: -1"),
        18,
        "services[0].reals[1].upper_threshold",
        "0..=2147483647",
    );
    expect_err(
        &real("upper_threshold: 2147483648"),
        18,
        "services[0].reals[1].upper_threshold",
        "0..=2147483647",
    );
}

#[test]
fn example_schedulers_config() {
    let cfg = load(&configs_dir().join("example-schedulers.yaml")).unwrap();
    let by_name = |n: &str| {
        cfg.services
            .iter()
            .find(|s| s.name.as_deref() == Some(n))
            .unwrap()
    };
    assert_eq!(by_name("web").scheduler, SchedulerKind::Wlc);
    let web = &by_name("web").reals;
    assert_eq!(
        (web[0].upper_threshold, web[0].lower_threshold),
        (1000, 800)
    );
    assert_eq!((web[1].upper_threshold, web[1].lower_threshold), (600, 0));
    assert_eq!(
        by_name("tls").scheduler,
        SchedulerKind::Mh {
            table_size: 65537,
            port: true,
            fallback: true
        }
    );
    assert_eq!(
        by_name("dns").scheduler,
        SchedulerKind::Sh {
            port: false,
            fallback: true
        }
    );
    let names: Vec<&str> = cfg.services.iter().map(|s| s.scheduler.as_str()).collect();
    assert_eq!(
        names,
        ["wlc", "mh", "sh", "lblcr", "fo", "ovf", "sed", "nq", "twos"]
    );
}

#[test]
fn empty_worker_cores() {
    let text = HEAD.replace("cores: [1]", "cores: []");
    expect_err(&text, 2, "workers.cores", "no worker cores");
}

#[test]
fn worker_cores_duplicate_or_main() {
    expect_err(
        &HEAD.replace("cores: [1]", "cores: [1, 2, 1]"),
        2,
        "workers.cores[2]",
        "listed twice",
    );
    // A worker may share the control thread's core (small machines, the
    // lab): the control thread mostly sleeps.
    let cfg = parse(&HEAD.replace("cores: [1]", "cores: [0, 1]"), "t.yaml").unwrap();
    assert_eq!(cfg.workers.cores, [0, 1]);
}

#[test]
fn yaml_syntax_error() {
    let text = with_service(
        "rr",
        "      - { address: 198.18.2.12, port: 80\n  - vip: 1.2.3.4\n",
    );
    let e = parse(&text, FILE).unwrap_err();
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
    assert_eq!(e.line, 18, "{e}");
    // The parser stops before the broken mapping: the last key it read is
    // what the error comes after; no key is named as the one in error.
    assert!(
        e.message
            .starts_with("YAML syntax error (after services[0].reals"),
        "{e}"
    );
    assert_eq!(e.key, "", "{e}");
    assert!(
        e.to_string().starts_with(&format!("{FILE}:{}:", e.line)),
        "{e}"
    );

    let text = format!("{HEAD}mbufs: \"8191\n");
    let e = parse(&text, FILE).unwrap_err();
    assert!(
        e.message.starts_with("YAML syntax error (after mbufs): "),
        "{e}"
    );

    let text = "workers:\n  cores: [1]\n   burst: 3\n";
    let e = parse(text, FILE).unwrap_err();
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.message.starts_with("YAML syntax error (after workers"),
        "{e}"
    );
}

#[test]
fn wrong_type() {
    let text = with_service("rr", "      - { address: 198.18.2.12, weight: heavy }\n");
    expect_err(
        &text,
        18,
        "services[0].reals[1].weight",
        "expected an integer",
    );
    // A YAML tag that makes another type: what is expected, in words.
    let text = format!("{HEAD}services: !!binary aGk=\n");
    expect_err(
        &text,
        9,
        "services",
        "expected the key's plain value (a YAML tag such as !!binary makes another type)",
    );
    // A number too large to be read is out of range, as one that is read
    // and checked.
    let text = with_service("rr", "").replace("port: 80", "port: 99999999999999999999");
    expect_err(
        &text,
        12,
        "services[0].port",
        "`99999999999999999999` is out of range for this key",
    );
    // Leading zeros and a tag are not of the type, whatever the digits.
    let text = with_service("rr", "").replace("port: 80", "port: 0080");
    expect_err(&text, 12, "services[0].port", "expected an integer");
    let text = with_service("rr", "").replace("port: 80", "port: !!str 80");
    let e = expect_err(&text, 12, "services[0].port", "expected");
    assert!(!e.message.contains("out of range"), "{e}");
    let text = with_service(
        "rr",
        "      - { address: 198.18.2.12, weight: -99999999999999999999 }\n",
    );
    expect_err(
        &text,
        18,
        "services[0].reals[1].weight",
        "`-99999999999999999999` is out of range",
    );
    let text = with_service("rr", "").replace("vip: 198.18.0.100", "vip: [198.18.0.100]");
    expect_err(&text, 11, "services[0].vip", "expected");
    let text = HEAD.replace("cores: [1]", "cores: 1");
    expect_err(&text, 2, "workers.cores", "expected");
    let text = format!("{HEAD}mbufs: [1]\n");
    expect_err(&text, 9, "mbufs", "expected a single value");
    expect_err(
        &format!("{HEAD}services:\n  vip: 198.18.0.100\n"),
        10,
        "services",
        "expected a list",
    );
}

#[test]
fn duplicate_yaml_key() {
    let text = HEAD.replace("    device:", "    name: wan\n    device:");
    expect_err(&text, 5, "ports[0].name", "duplicate key");
}

#[test]
fn empty_file() {
    let e = parse("", FILE).unwrap_err();
    assert!(e.message.contains("empty"), "{e}");
    assert!(e.to_string().starts_with("bad.yaml:"), "{e}");
}

#[test]
fn out_of_range_numbers() {
    let text = with_service(
        "rr",
        "      - { address: 198.18.2.12, weight: 2147483648 }\n",
    );
    expect_err(&text, 18, "services[0].reals[1].weight", "0..=2147483647");
    let text = with_service("rr", "      - { address: 198.18.2.12, weight: -1 }\n");
    expect_err(&text, 18, "services[0].reals[1].weight", "0..=2147483647");
    let text =
        with_service("rr", "").replace("port: 80\n    protocol", "port: 65536\n    protocol");
    expect_err(&text, 12, "services[0].port", "0..=65535");
    expect_err(
        &HEAD.replace("cores: [1]", "cores: [1]\n  burst: 0"),
        3,
        "workers.burst",
        "1..=256",
    );
    let text = HEAD.replace("iface=eth0", "iface=eth0\n    rx_desc: 8");
    expect_err(&text, 6, "ports[0].rx_desc", "32..=32768");
    // A weight of 0 (quiescent) is fine.
    parse(
        &with_service("wrr", "      - { address: 198.18.2.12, weight: 0 }\n"),
        FILE,
    )
    .unwrap();
}

#[test]
fn service_port_zero_needs_persistence() {
    let text = with_service("rr", "").replace("port: 80\n    protocol", "port: 0\n    protocol");
    expect_err(&text, 12, "services[0].port", "needs persistence");
    // With persistence, port 0 means every port of the VIP.
    let ok = text
        .replace(
            "scheduler: rr",
            "scheduler: rr\n    persistence: { timeout: 60 }",
        )
        .replace(
            "{ address: 198.18.2.11, port: 80 }",
            "{ address: 198.18.2.11 }",
        );
    let cfg = parse(&ok, FILE).unwrap();
    assert_eq!(
        (
            cfg.services[0].port,
            cfg.services[0].persistence.unwrap().timeout
        ),
        (0, 60)
    );
    assert_eq!(
        cfg.services[0].reals[0].port, 0,
        "reals keep the packet's port"
    );
}

/// Firewall marks, persistence and timeouts: what they parse to, and each
/// mistake with its line and key.
#[test]
fn lvs_service_options() {
    let marks = "firewall_marks:\n  - { mark: 1, destination: 198.18.0.100/32, protocol: tcp, ports: [80, 443, \"8000-8010\"] }\n  - { mark: 2, destination: 198.18.0.0/24 }\n";
    let svc = "services:\n  - fwmark: 1\n    scheduler: rr\n    forward: nat\n    persistence: { timeout: 600, netmask: 255.255.255.0 }\n    timeouts: { udp: 30 }\n    reals:\n      - { address: 198.18.2.11 }\n";
    let text = format!(
        "{HEAD}timeouts: {{ tcp_established: 600 }}\nexpire_quiescent_template: true\n{marks}{svc}"
    );
    let cfg = parse(&text, FILE).unwrap();
    assert_eq!(cfg.timeouts.tcp_established, 600);
    assert_eq!(cfg.timeouts.udp, 300, "IPVS default kept");
    assert!(cfg.expire_quiescent_template && !cfg.expire_nodest_conn);
    assert_eq!(
        cfg.firewall_marks[0].ports,
        [(80, 80), (443, 443), (8000, 8010)]
    );
    assert_eq!(cfg.firewall_marks[1].protocol, None);
    let s = &cfg.services[0];
    assert_eq!(s.fwmark, Some(1));
    assert_eq!(
        s.persistence.map(|p| (p.timeout, p.netmask)),
        Some((600, 24))
    );
    assert_eq!(
        (s.timeouts.udp, s.timeouts.tcp_established),
        (30, 600),
        "override over the global"
    );
    assert_eq!(parse(&to_yaml(&cfg), FILE).unwrap(), cfg, "round trip");

    let line_of =
        |t: &str, needle: &str| t.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    let bad = text.replace("\"8000-8010\"", "\"8010-8000\"");
    expect_err(
        &bad,
        line_of(&bad, "8010-8000"),
        "firewall_marks[0].ports[2]",
        "range",
    );
    let bad = text.replace(
        "mark: 2, destination: 198.18.0.0/24",
        "mark: 2, destination: 198.18.0.0/24, ports: [80]",
    );
    expect_err(
        &bad,
        line_of(&bad, "mark: 2"),
        "firewall_marks[1].protocol",
        "need a protocol",
    );
    let bad = text.replace("fwmark: 1", "fwmark: 7");
    expect_err(
        &bad,
        line_of(&bad, "fwmark: 7"),
        "services[0].fwmark",
        "no firewall_marks rule gives mark 7",
    );
    let bad = text.replace("fwmark: 1", "fwmark: 1\n    vip: 198.18.0.100");
    expect_err(
        &bad,
        line_of(&bad, "fwmark: 1"),
        "services[0].fwmark",
        "remove vip",
    );
    let bad = text.replace("netmask: 255.255.255.0", "netmask: 255.0.255.0");
    expect_err(
        &bad,
        line_of(&bad, "netmask"),
        "services[0].persistence.netmask",
        "not a netmask",
    );
    let bad = text.replace("timeouts: { udp: 30 }", "timeouts: { udp: 0 }");
    expect_err(
        &bad,
        line_of(&bad, "udp: 0"),
        "services[0].timeouts.udp",
        "1..=2147483",
    );
    let bad = text.replace("timeouts: { udp: 30 }", "timeouts: { fin: 30 }");
    expect_err(
        &bad,
        line_of(&bad, "fin: 30"),
        "services[0].timeouts.fin",
        "tcp_fin_wait",
    );
    let bad = text.replace(
        "- { address: 198.18.2.11 }",
        "- { address: 198.18.2.11, port: 8080 }",
    );
    expect_err(
        &bad,
        line_of(&bad, "8080"),
        "services[0].reals[0].port",
        "own port",
    );
    let bad = text.replace("  - fwmark: 1\n", "  - port: 80\n");
    expect_err(
        &bad,
        line_of(&bad, "port: 80"),
        "services[0].vip",
        "missing vip, protocol",
    );
}

#[test]
fn real_ports_by_forwarding_method() {
    // NAT may map the port, but not to 0.
    let cfg = parse(
        &with_service("rr", "      - { address: 198.18.2.12, port: 8080 }\n"),
        FILE,
    )
    .unwrap();
    assert_eq!(cfg.services[0].reals[1].port, 8080);
    expect_err(
        &with_service("rr", "      - { address: 198.18.2.12, port: 0 }\n"),
        18,
        "services[0].reals[1].port",
        "needs a port",
    );
    // Tunnel and DR cannot change it.
    for fwd in ["tunnel", "dr"] {
        let text = with_service(
            "rr",
            &format!("      - {{ address: 198.18.2.12, port: 8080, forward: {fwd} }}\n"),
        );
        expect_err(
            &text,
            18,
            "services[0].reals[1].port",
            "cannot change the port",
        );
        let text = with_service(
            "rr",
            &format!("      - {{ address: 198.18.2.12, port: 80, forward: {fwd} }}\n"),
        );
        parse(&text, FILE).unwrap();
    }
}

#[test]
fn unknown_forward_and_protocol() {
    let text = with_service("rr", "").replace("forward: nat", "forward: masq");
    expect_err(
        &text,
        15,
        "services[0].forward",
        "expected nat, tunnel or dr",
    );
    let text = with_service("rr", "").replace("protocol: tcp", "protocol: sctp");
    expect_err(&text, 13, "services[0].protocol", "expected tcp or udp");
}

#[test]
fn reachability_of_reals_and_gateway() {
    // Off-link NAT real without a gateway.
    let text = with_service("rr", "      - { address: 203.0.113.5 }\n");
    expect_err(
        &text,
        18,
        "services[0].reals[1].address",
        "no route to 203.0.113.5",
    );
    // With a gateway it is fine for NAT and tunnel, not for DR.
    let gw = "gateway: { port: lan, address: 198.18.1.254 }\n";
    parse(&format!("{gw}{text}"), FILE).unwrap();
    let dr = format!(
        "{gw}{}",
        with_service("rr", "      - { address: 203.0.113.5, forward: dr }\n")
    );
    expect_err(&dr, 19, "services[0].reals[1].address", "direct routing");
    // A static neighbour makes an address on-link.
    let neigh = "neighbors:\n  - { port: lan, address: 203.0.113.5, mac: \"02:00:00:00:00:05\" }\n";
    parse(
        &format!(
            "{neigh}{}",
            with_service("rr", "      - { address: 203.0.113.5, forward: dr }\n")
        ),
        FILE,
    )
    .unwrap();
    // The gateway must be on-link.
    let text = format!("{HEAD}gateway: {{ port: lan, address: 10.0.0.1 }}\n");
    expect_err(&text, 9, "gateway.address", "not on-link");
    // A real server is not the director.
    let text = with_service("rr", "      - { address: 198.18.2.1 }\n");
    expect_err(
        &text,
        18,
        "services[0].reals[1].address",
        "director's own address",
    );
}

#[test]
fn eal_args_that_l4vs_sets_itself() {
    for arg in [
        "-l",
        "-l0-3",
        "--lcores=0@0",
        "--main-lcore",
        "--vdev",
        "-a",
    ] {
        let text = format!("eal:\n  args: [\"--no-huge\", \"{arg}\"]\n{HEAD}");
        expect_err(&text, 2, "eal.args[1]", "l4vs sets the EAL");
    }
    let text = format!(
        "eal:\n  args: [--no-pci]\n{}",
        HEAD.replace("net_af_packet0,iface=eth0", "0000:03:00.0")
    );
    expect_err(&text, 2, "eal.args[0]", "--no-pci");
}

#[test]
fn too_few_mbufs() {
    expect_err(&format!("{HEAD}mbufs: 1000\n"), 9, "mbufs", "at least 2048");
    let text = HEAD.replace("cores: [1]", "cores: [1, 2, 3, 4, 5]");
    let e = expect_err(&text, 4, "mbufs", "at least 10240");
    assert!(e.message.contains("the default of 8191 mbufs"), "{e}");
}

#[test]
fn duplicate_addresses_and_neighbors() {
    let text = HEAD.replace("198.18.2.1/24", "198.18.1.1/16");
    expect_err(
        &text,
        8,
        "addresses[1].address",
        "already a director address",
    );
    let text = format!(
        "{HEAD}neighbors:\n  - {{ port: lan, address: 198.18.2.11, mac: \"02:00:00:00:02:0b\" }}\n  - {{ port: lan, address: 198.18.2.11, mac: \"02:00:00:00:02:0c\" }}\n"
    );
    expect_err(
        &text,
        11,
        "neighbors[1].address",
        "already has a static entry",
    );
}

#[test]
fn services_without_reals_are_allowed() {
    let text = format!(
        "{HEAD}services:\n  - vip: 198.18.0.100\n    port: 80\n    protocol: tcp\n    scheduler: rr\n    forward: nat\n"
    );
    let cfg = parse(&text, FILE).unwrap();
    assert!(cfg.services[0].reals.is_empty());
    assert_eq!(parse(&to_yaml(&cfg), FILE).unwrap(), cfg);
}

#[test]
fn unquoted_digit_mac_is_read_as_text_and_round_trips() {
    // YAML 1.1 would read 02:00:00:00:02:11 as a base-60 integer.
    let text = format!(
        "{HEAD}neighbors:\n  - port: lan\n    address: 198.18.2.11\n    mac: 02:00:00:00:02:11\n"
    );
    let cfg = parse(&text, FILE).unwrap();
    assert_eq!(cfg.neighbors[0].mac, [2, 0, 0, 0, 2, 0x11]);
    assert_eq!(parse(&to_yaml(&cfg), FILE).unwrap(), cfg);
}

#[test]
fn empty_lists_may_be_left_empty() {
    let text = format!(
        "{HEAD}neighbors:\nservices:\n  - vip: 198.18.0.100\n    port: 80\n    protocol: tcp\n    scheduler: rr\n    forward: nat\n    reals:\n"
    );
    let cfg = parse(&text, FILE).unwrap();
    assert!(cfg.neighbors.is_empty());
    assert!(cfg.services[0].reals.is_empty());
    let cfg = parse(&format!("{HEAD}services:\n"), FILE).unwrap();
    assert!(cfg.services.is_empty());
}

// ---- what errors echo -------------------------------------------------------

#[test]
fn echo_quotes_escapes_and_cuts() {
    assert_eq!(echo("web"), "`web`");
    assert_eq!(echo("a\nb\0"), "`a\\nb\\u{0}`");
    assert_eq!(echo("x\u{202e}y"), "`x\\u{202e}y`");
    let exact = "a".repeat(MAX_ECHO_CHARS);
    assert_eq!(echo(&exact), format!("`{exact}`"));
    // Cut on a character boundary, with the full length in bytes.
    let long = "é".repeat(100);
    assert_eq!(
        echo(&long),
        format!("`{}…` (200 bytes)", "é".repeat(MAX_ECHO_CHARS))
    );
    // An escape counts as its length.
    let nuls = "\0".repeat(100);
    let (shown, cut) = clip(&nuls, MAX_ECHO_CHARS);
    assert!(cut && shown.chars().count() <= MAX_ECHO_CHARS, "{shown}");
}

/// Values are echoed as the operator wrote them, never in Rust's Debug form
/// (`Int(33)`, `Str("…")`, `string "…"`).
#[test]
fn errors_echo_plain_values() {
    let marks = "firewall_marks:\n  - { mark: 1, destination: 198.18.0.100/32, protocol: tcp, ports: [80] }\n";
    let svc = "services:\n  - fwmark: 1\n    scheduler: rr\n    forward: nat\n    persistence: { timeout: 600, netmask: 24 }\n";
    let text = format!("{HEAD}{marks}{svc}");
    parse(&text, FILE).unwrap();
    let key = "services[0].persistence.netmask";
    let e = expect_err(&text.replace("netmask: 24", "netmask: 33"), 15, key, "");
    assert!(e.message.starts_with("33 is not a netmask: "), "{e}");
    let e = expect_err(
        &text.replace("netmask: 24", "netmask: 255.0.255.0"),
        15,
        key,
        "",
    );
    assert!(
        e.message.starts_with("`255.0.255.0` is not a netmask: "),
        "{e}"
    );
    let key = "firewall_marks[0].ports[0]";
    let e = expect_err(&text.replace("[80]", "[70000]"), 10, key, "");
    assert!(
        e.message.starts_with("70000 is not a port 1..=65535"),
        "{e}"
    );
    let e = expect_err(&text.replace("[80]", "[\"80-x\"]"), 10, key, "");
    assert!(
        e.message.starts_with("`80-x` is not a port 1..=65535"),
        "{e}"
    );
    // A control character is shown escaped, not written to the terminal.
    let text = with_service("rr", "").replace("vip: 198.18.0.100", "vip: \"198.18.0.\\e[2J\"");
    let e = expect_err(&text, 11, "services[0].vip", "is not an IPv4 address");
    assert!(e.message.starts_with("`198.18.0.\\u{1b}[2J` is not"), "{e}");
    // serde's description of a string it did not expect is its Debug form.
    assert_eq!(locate::describe_found("string \"a\\\"b\""), "a string");
    assert_eq!(locate::describe_found("sequence"), "sequence");
}

/// A huge value costs a line of stderr: the message is cut and still names
/// the key.
#[test]
fn errors_cut_huge_values() {
    let big = "a".repeat(1 << 20);
    let cases = [
        (
            with_service("rr", "").replace("name: web", &format!("name: {big}!")),
            "services[0].name",
        ),
        (
            with_service("rr", "").replace("vip: 198.18.0.100", &format!("vip: {big}")),
            "services[0].vip",
        ),
        (
            with_service("rr", "").replace("scheduler: rr", &format!("scheduler: {big}")),
            "services[0].scheduler",
        ),
        (
            HEAD.replace("iface=eth0", &format!("iface=eth0 {big}")),
            "ports[0].device",
        ),
        (
            format!("eal:\n  args: [\"--vdev={big}\"]\n{HEAD}"),
            "eal.args[0]",
        ),
    ];
    for (text, key) in cases {
        let shown = parse(&text, FILE).unwrap_err().to_string();
        assert!(
            shown.len() < 300,
            "{} bytes: {}",
            shown.len(),
            &shown[..300]
        );
        assert!(shown.contains(&format!(" {key}")), "{shown}");
        assert!(shown.contains("bytes)"), "{shown}");
    }
    // An unknown key is in the key path and the message, each cut.
    let shown = parse(&format!("{HEAD}? {big}\n: 1\n"), FILE)
        .unwrap_err()
        .to_string();
    // Cut, whatever the list of the keys it could have been.
    assert!(
        shown.len() < 600,
        "{} bytes: {}",
        shown.len(),
        &shown[..600]
    );
    assert!(shown.contains("unknown key `aaaa"), "{shown}");
}

// ---- what load reads --------------------------------------------------------

/// A fresh directory for one test's files.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l4vs-config-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

#[track_caller]
fn expect_load_err(path: &Path, needle: &str) -> ConfigError {
    let err = load(path).expect_err("load should refuse it");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: ", path.display())),
        "{shown}"
    );
    assert_eq!((err.line, err.key.as_str()), (0, ""), "{shown}");
    assert!(err.message.contains(needle), "{shown}");
    err
}

/// A path is named whole up to 256 characters, and cut as a value is
/// beyond that: the error of a 100 KB path is a line, not 100 KB.
#[test]
fn a_long_path_is_cut_in_the_error() {
    let whole = format!("/nonexistent/{}", "d".repeat(MAX_PATH_CHARS - 13));
    assert_eq!(whole.len(), MAX_PATH_CHARS);
    assert_eq!(load(Path::new(&whole)).unwrap_err().file, whole);
    let over = format!("{whole}d");
    let e = load(Path::new(&over)).unwrap_err();
    assert_eq!(
        e.file,
        format!("{}… ({} bytes)", &over[..MAX_ECHO_CHARS], over.len())
    );
    let long = format!("/nonexistent/{}", "a".repeat(100_000));
    let e = load(Path::new(&long)).unwrap_err();
    assert_eq!(
        e.file,
        format!("{}… ({} bytes)", &long[..MAX_ECHO_CHARS], long.len())
    );
    assert!(e.to_string().len() < 300, "{e}");
}

/// A FIFO is refused without being opened, which would wait for a writer.
#[test]
fn load_refuses_a_fifo() {
    let dir = scratch_dir("fifo");
    let fifo = dir.join("l4vs.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("running mkfifo");
    assert!(made.success());
    // A writer, so that a load that opens the FIFO reads this and fails the
    // test instead of waiting forever.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(HEAD.as_bytes()).unwrap();
        })
    };
    let err = load(&fifo);
    // Meet the writer if load did not.
    if err.is_err() {
        let mut text = String::new();
        std::fs::File::open(&fifo)
            .and_then(|mut f| f.read_to_string(&mut text))
            .unwrap();
    }
    writer.join().unwrap();
    let err = err.expect_err("a FIFO is not a config file");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a regular file: a FIFO (named pipe); the config file must be a file",
            fifo.display()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn load_refuses_a_directory_and_a_device() {
    let dir = scratch_dir("dir");
    expect_load_err(&dir, "not a regular file: a directory");
    std::fs::remove_dir_all(dir).unwrap();
    // Read, /dev/zero would fill memory: it is valid UTF-8 and never ends.
    expect_load_err(
        Path::new("/dev/zero"),
        "not a regular file: a character device",
    );
}

#[test]
fn load_refuses_a_file_over_the_limit() {
    let dir = scratch_dir("big");
    let path = dir.join("big.yaml");
    // Sparse: no disk space taken.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_CONFIG_BYTES + 1).unwrap();
    drop(f);
    expect_load_err(
        &path,
        &format!("the file is {} bytes, more than", MAX_CONFIG_BYTES + 1),
    );
    // At the limit it is read (and is no YAML config).
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MAX_CONFIG_BYTES)
        .unwrap();
    let err = load(&path).unwrap_err();
    assert!(!err.message.contains("more than"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A file that grows while read is bounded too.
#[test]
fn read_limited_stops_after_the_limit() {
    assert_eq!(read_limited(std::io::repeat(b'a'), 1000).unwrap(), None);
    let exact = vec![b'a'; 1000];
    assert_eq!(
        read_limited(exact.as_slice(), 1000).unwrap().as_deref(),
        Some(exact.as_slice())
    );
    assert_eq!(read_limited(exact.as_slice(), 999).unwrap(), None);
}

// ---- the YAML parser's limits -----------------------------------------------

/// A valid config of `services` NAT services of `reals` reals each: VIPs
/// from 10.0.0.1 on, every real its own address in 198.18.0.0/15, on-link.
fn many_services(services: usize, reals: usize) -> String {
    use std::fmt::Write;
    let mut t = String::from(
        "workers:\n  cores: [1]\nports:\n  - name: lan\n    device: net_af_packet0,iface=eth0\naddresses:\n  - { port: lan, address: 198.18.0.1/15 }\nservices:\n",
    );
    let vip0 = u32::from(Ipv4Addr::new(10, 0, 0, 1));
    let real0 = u32::from(Ipv4Addr::new(198, 18, 0, 16));
    for i in 0..services {
        let vip = Ipv4Addr::from(vip0 + i as u32);
        write!(
            t,
            "  - name: s{i}\n    vip: {vip}\n    port: 80\n    protocol: tcp\n    scheduler: wrr\n    forward: nat\n    reals:\n"
        )
        .unwrap();
        for j in 0..reals {
            let real = Ipv4Addr::from(real0 + (i * reals + j) as u32);
            writeln!(t, "      - {{ address: {real}, port: 8080, weight: {j} }}").unwrap();
        }
    }
    t
}

/// 100 000 real servers fit the parser's budget (serde-saphyr's default
/// stopped at about 2 900 services of 10 reals).
#[test]
fn ten_thousand_services_of_ten_reals_parse() {
    let text = many_services(10_000, 10);
    let cfg = parse(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.services.len(), 10_000);
    assert_eq!(
        cfg.services.iter().map(|s| s.reals.len()).sum::<usize>(),
        100_000
    );
    let last = cfg.services[9_999].reals[9];
    assert_eq!(
        (last.address, last.port, last.weight),
        (Ipv4Addr::new(198, 19, 134, 175), 8080, 9)
    );
}

/// A breach of the parser's budget reads as the limit, not serde-saphyr's
/// Debug form (`Nodes { nodes: 250001 }`). (A document over the node limit
/// takes half a minute to reach it in a debug build, so the message is
/// checked alone; [`alias_bombs_are_refused`] goes through the budget.)
#[test]
fn budget_breaches_name_the_limit() {
    use serde_saphyr::budget::BudgetBreach;
    assert_eq!(
        locate::budget_message(&BudgetBreach::Nodes {
            nodes: MAX_YAML_NODES + 1
        }),
        "the document has more than 4000000 nodes (the limit, sized for 100 000 real servers)"
    );
    assert_eq!(
        locate::budget_message(&BudgetBreach::Events {
            events: MAX_YAML_EVENTS + 1
        }),
        "the document has more than 8000016 YAML events (the limit, sized for 100 000 real servers)"
    );
}

/// An alias bomb is refused after a bounded amount of work, not expanded.
#[test]
fn alias_bombs_are_refused() {
    // The schema has no list of lists to hold the classic one: it is refused
    // at its first nested list, before anything is expanded.
    let mut laughs = String::from("eal:\n  args: [&a lol");
    for level in b'b'..=b'i' {
        let (name, prev) = (char::from(level), char::from(level - 1));
        let nine = vec![format!("*{prev}"); 9].join(",");
        laughs.push_str(&format!(", &{name} [{nine}]"));
    }
    laughs.push_str("]\n");
    let e = parse(&format!("{laughs}{HEAD}"), FILE).unwrap_err();
    assert_eq!(e.key, "eal.args[1]", "{e}");
    assert!(e.message.contains("expected a single value"), "{e}");

    // Shaped to the schema: a service of 1 000 reals, aliased 1 000 times,
    // is a million reals.
    let mut text = format!(
        "{HEAD}services:\n  - &s\n    vip: 198.18.0.100\n    port: 80\n    protocol: tcp\n    scheduler: rr\n    forward: nat\n    reals: [&r {{ address: 198.18.2.11 }}"
    );
    text.push_str(&", *r".repeat(999));
    text.push_str("]\n");
    text.push_str(&"  - *s\n".repeat(1_000));
    let e = parse(&text, FILE).unwrap_err();
    assert_eq!(
        e.message,
        format!("YAML aliases (`*name`) expand to more than {MAX_ALIAS_REPLAYED_EVENTS} events, the limit against alias bombs (\"billion laughs\")"),
    );
    assert!(e.key.starts_with("services["), "{e}");

    // Many aliases of few anchors are refused whatever they expand to.
    let text = format!(
        "{HEAD}services:\n  - &s {{ vip: 198.18.0.100, port: 80, protocol: tcp, scheduler: rr, forward: nat }}\n{}",
        "  - *s\n".repeat(150)
    );
    let e = parse(&text, FILE).unwrap_err();
    assert_eq!(
        e.message,
        "150 YAML aliases (`*name`) for 1 anchor (`&name`): more than 10 per anchor is over the limit against alias bombs (\"billion laughs\")",
    );
}

// ---- what a reload may change -----------------------------------------------

/// Each restart-only setting is named by its key; services are not one.
#[test]
fn restart_only_change_names_the_key() {
    let running = parse(&with_service("rr", ""), FILE).unwrap();
    let changed = |edit: &dyn Fn(&mut Config)| {
        let mut new = running.clone();
        edit(&mut new);
        restart_only_change(&running, &new)
    };
    assert_eq!(changed(&|_| ()), None);
    assert_eq!(changed(&|c| c.services[0].reals[0].weight = 5), None);
    assert_eq!(changed(&|c| c.services.clear()), None);
    assert_eq!(changed(&|c| c.timeouts.udp = 30), None);
    type Edit<'a> = &'a dyn Fn(&mut Config);
    let cases: [(&str, Edit); 12] = [
        ("eal.args", &|c| c.eal.args.push("--no-huge".into())),
        ("eal.main_core", &|c| c.eal.main_core = 3),
        ("workers.cores", &|c| c.workers.cores.push(2)),
        ("workers.burst", &|c| c.workers.burst = 64),
        ("workers.idle_sleep_us", &|c| c.workers.idle_sleep_us = 10),
        ("workers.connections", &|c| c.workers.connections = 4096),
        ("ports[0].name", &|c| c.ports[0].name = "wan".into()),
        ("ports[0].device", &|c| {
            c.ports[0].device.args = Some("iface=eth1".into());
        }),
        ("ports[0].rx_desc", &|c| c.ports[0].rx_desc = 512),
        ("ports[0].tx_desc", &|c| c.ports[0].tx_desc = 512),
        ("ports[1]", &|c| {
            let mut p = c.ports[0].clone();
            p.name = "wan".into();
            c.ports.push(p);
        }),
        ("mbufs", &|c| c.mbufs = 16383),
    ];
    for (key, edit) in cases {
        assert_eq!(changed(edit).as_deref(), Some(key));
    }
    // A port removed is named too, and the first difference wins.
    let mut two = running.clone();
    two.ports.push(running.ports[0].clone());
    assert_eq!(
        restart_only_change(&two, &running).as_deref(),
        Some("ports[1]")
    );
    let mut both = running.clone();
    both.mbufs = 1;
    both.workers.cores = vec![5];
    assert_eq!(
        restart_only_change(&running, &both).as_deref(),
        Some("workers.cores")
    );
}

/// `ops: true` (ipvsadm -o, keepalived `ops`): UDP services with DR or
/// tunnel reals; refused on TCP with ipvsadm's words, and with NAT reals at
/// the key that makes them NAT; printed back only when set.
#[test]
fn ops_is_for_udp_services_without_nat_reals() {
    let svc = |protocol: &str, forward: &str, real_forward: &str| {
        format!(
            "{HEAD}\
services:
  - name: dns
    vip: 198.18.0.100
    port: 53
    protocol: {protocol}
    ops: true
    scheduler: rr
    forward: {forward}
    reals:
      - {{ address: 198.18.2.11{real_forward} }}
"
        )
    };
    let cfg = parse(&svc("udp", "dr", ""), FILE).unwrap();
    assert!(cfg.services[0].ops);
    let back = parse(&to_yaml(&cfg), FILE).unwrap();
    assert_eq!(back, cfg);
    assert!(to_yaml(&cfg).contains("ops: true"));
    let plain = parse(&with_service("rr", ""), FILE).unwrap();
    assert!(!plain.services[0].ops);
    assert!(!to_yaml(&plain).contains("ops"), "not printed when off");

    expect_err(
        &svc("tcp", "dr", ""),
        14,
        "services[0].ops",
        "One-Packet Scheduling is only for UDP virtual services",
    );
    expect_err(
        &svc("udp", "nat", ", port: 53"),
        16,
        "services[0].forward",
        "replies of a NAT (-m) real server could not be rewritten",
    );
    expect_err(
        &svc("udp", "dr", ", port: 53, forward: nat"),
        18,
        "services[0].reals[0].forward",
        "replies of a NAT (-m) real server could not be rewritten",
    );
}

/// `ports[].mtu`: 68 (RFC 791) to 2030 (one mbuf); left out, the device's
/// own; printed back when set; a change needs a restart.
#[test]
fn port_mtu_is_checked_and_restart_only() {
    let with_mtu = |mtu: &str| {
        with_service("rr", "").replace(
            "    device: net_af_packet0,iface=eth0\n",
            &format!("    device: net_af_packet0,iface=eth0\n    mtu: {mtu}\n"),
        )
    };
    let cfg = parse(&with_mtu("1400"), FILE).unwrap();
    assert_eq!(cfg.ports[0].mtu, Some(1400));
    assert_eq!(parse(&to_yaml(&cfg), FILE).unwrap(), cfg);
    let plain = parse(&with_service("rr", ""), FILE).unwrap();
    assert_eq!(plain.ports[0].mtu, None);
    assert!(!to_yaml(&plain).contains("mtu"));
    assert_eq!(
        restart_only_change(&plain, &cfg).as_deref(),
        Some("ports[0].mtu")
    );
    for bad in ["67", "2031", "-1"] {
        expect_err(&with_mtu(bad), 6, "ports[0].mtu", "must be in 68..=2030");
    }
}

/// The ICMP rate limits take the kernel's sysctl names and defaults, are
/// printed back, and need a restart, as `expire_nodest_conn` does (the
/// workers take them at start).
#[test]
fn icmp_limits_and_expire_nodest_conn_are_restart_only() {
    let plain = parse(&with_service("rr", ""), FILE).unwrap();
    assert_eq!(plain.icmp, IcmpLimits::default());
    assert_eq!(
        (
            plain.icmp.msgs_per_sec,
            plain.icmp.msgs_burst,
            plain.icmp.ratelimit_ms
        ),
        (1000, 50, 1000)
    );
    let text = with_service(
        "rr",
        "icmp_msgs_per_sec: 200\nicmp_msgs_burst: 10\nicmp_ratelimit_ms: 0\n",
    );
    let cfg = parse(&text, FILE).unwrap();
    assert_eq!(
        cfg.icmp,
        IcmpLimits {
            msgs_per_sec: 200,
            msgs_burst: 10,
            ratelimit_ms: 0
        }
    );
    assert_eq!(parse(&to_yaml(&cfg), FILE).unwrap(), cfg);
    assert_eq!(
        restart_only_change(&plain, &cfg).as_deref(),
        Some("icmp_msgs_per_sec")
    );
    let nodest = parse(&with_service("rr", "expire_nodest_conn: true\n"), FILE).unwrap();
    assert_eq!(
        restart_only_change(&plain, &nodest).as_deref(),
        Some("expire_nodest_conn")
    );
    expect_err(
        &with_service("rr", "icmp_msgs_burst: -1\n"),
        18,
        "icmp_msgs_burst",
        "must be in 0..=2147483647",
    );
}

/// Health checks: keepalived's keys and defaults, and what is refused
/// with its file, line and key.
/// A real's own check stands in for the service's (`type: none`: not
/// checked); misplaced ones are refused with their key.
#[test]
fn reals_may_have_their_own_check() {
    let cfg = load(&configs_dir().join("example-full.yaml")).unwrap();
    let s = &cfg.services[0];
    let drained = s.reals.iter().find(|r| r.weight == 0).unwrap();
    assert_eq!(s.check_of(drained), None);
    assert_eq!(s.check_of(&s.reals[0]), s.check.as_ref());
    assert!(s.check.is_some());
    assert_eq!(s.real_checks.len(), 1);

    let file = configs_dir().join("lab-nat-check.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let with = |to: &str| text.replacen("- { address: 198.18.2.12, port: 80 }", to, 1);
    let own =
        with("- { address: 198.18.2.12, port: 80, check: { type: tcp, connect_port: 8081 } }");
    let cfg = crate::config::parse(&own, "c.yaml").unwrap();
    let s = &cfg.services[0];
    let check = s.check_of(&s.reals[1]).unwrap();
    assert_eq!(
        (&check.kind, check.connect_port),
        (&crate::config::CheckKind::Tcp, Some(8081))
    );
    // Its own check's defaults are its own, not the service's.
    assert_eq!(check.delay_loop, std::time::Duration::from_secs(60));
    assert_eq!(s.check_of(&s.reals[0]), s.check.as_ref());
    // The output of --yaml loads back the same.
    let back = crate::config::parse(&crate::config::to_yaml(&cfg), "out.yaml").unwrap();
    assert_eq!(back.services[0].real_checks, s.real_checks);

    let refused = |bad: String| {
        crate::config::parse(&bad, "c.yaml")
            .unwrap_err()
            .to_string()
    };
    let e = refused(with(
        "- { address: 198.18.2.12, port: 80, check: { type: none, retry: 2 } }",
    ));
    assert!(
        e.contains("services[0].reals[1].check.retry: a check of type none (the real is not checked) has no other keys"),
        "{e}"
    );
    let e = refused(text.replacen("type: http ", "type: none ", 1));
    assert!(
        e.contains("services[0].check.type: none is for a real's own check"),
        "{e}"
    );
    let e = refused(with(
        "- { address: 198.18.2.12, port: 80, check: { type: tcp, through_vip: true } }",
    ));
    assert!(
        e.contains("services[0].reals[1].check.through_vip: it checks a direct-routing real through the VIP, and this real is not one"),
        "{e}"
    );
    let e = refused(with(
        "- { address: 198.18.2.12, port: 80, check: { type: udp } }",
    ));
    assert!(
        e.contains("services[0].reals[1].check.type: a udp check on a TCP service"),
        "{e}"
    );
    let e = refused(text.replacen(
        "sorry_server: { address: 198.18.2.13, port: 8081 }",
        "sorry_server: { address: 198.18.2.13, port: 8081, check: { type: tcp } }",
        1,
    ));
    assert!(
        e.contains("services[0].sorry_server.check: a sorry server is not checked"),
        "{e}"
    );
}

/// `through_vip` is read for a service with DR reals, and refused where
/// there is no VIP or no DR real to check through it, and for misc checks.
#[test]
fn through_vip_needs_dr_reals() {
    let file = configs_dir().join("lab-dr-check.yaml");
    let cfg = load(&file).unwrap();
    assert!(cfg.services[0].check.as_ref().unwrap().through_vip);
    let text = std::fs::read_to_string(&file).unwrap();
    let refused = |from: &str, to: &str| refused_edit(&text, from, to);
    let e = refused(
        "    forward: dr\n    check:",
        "    forward: nat\n    check:",
    );
    assert!(
        e.contains("services[0].check.through_vip: it checks direct-routing reals through the VIP, and this service has none"),
        "{e}"
    );
    let e = refused(
        "type: http                  # keepalived HTTP_GET\n      connect_port: 8080",
        "type: misc\n      misc_path: /bin/true",
    );
    assert!(
        e.contains("services[0].check.through_vip: through_vip is for tcp, http, https, udp and dns checks, not misc"),
        "{e}"
    );
}

/// https (SSL_GET) and dns (DNS_CHECK) checks are read with their keys;
/// a bad digest, DNS type or name, SNI without a virtualhost, and keys of
/// another kind are refused with file:line and key.
#[test]
fn https_and_dns_checks_are_read_and_bad_ones_named() {
    use crate::config::{CheckKind, DnsRecordType};
    let file = configs_dir().join("lab-nat-check-tls-dns.yaml");
    let cfg = load(&file).unwrap();
    let https = cfg.services[0].check.as_ref().unwrap();
    assert_eq!(
        https.kind,
        CheckKind::Http {
            path: "/".into(),
            status_codes: vec![200],
            virtualhost: Some("www.example.org".into()),
            digest: None,
            contains: None,
            tls: true,
            enable_sni: true,
        }
    );
    assert_eq!(https.kind.as_str(), "https");
    // SSL_GET waits 3 s before a retry, as HTTP_GET, unless told.
    assert_eq!(
        https.delay_before_retry,
        std::time::Duration::from_millis(200)
    );
    let dns = cfg.services[1].check.as_ref().unwrap();
    assert_eq!(
        dns.kind,
        CheckKind::Dns {
            record_type: DnsRecordType::A,
            name: "www.example.org".into()
        }
    );
    assert_eq!(dns.connect_port, Some(5353));

    let text = std::fs::read_to_string(&file).unwrap();
    let refused = |from: &str, to: &str| refused_edit(&text, from, to);
    let e = refused("      path: /\n", "      path: /\n      digest: 12ab\n");
    assert!(
        e.contains("c.yaml:34:15: services[0].check.digest: `12ab` is not an MD5 digest"),
        "{e}"
    );
    let e = refused("      virtualhost: www.example.org\n", "");
    assert!(
        e.contains("services[0].check.enable_sni: enable_sni sends the virtualhost in the TLS handshake: give a virtualhost"),
        "{e}"
    );
    let e = refused("dns_type: A", "dns_type: SRV");
    assert!(
        e.contains("services[1].check.dns_type: `SRV` is not a type a DNS check asks for: A, NS, CNAME, SOA, MX, TXT, AAAA"),
        "{e}"
    );
    let e = refused("dns_name: www.example.org", "dns_name: \"a..b\"");
    assert!(
        e.contains("services[1].check.dns_name: `a..b` is not a domain name"),
        "{e}"
    );
    let e = refused("type: https ", "type: http ");
    assert!(
        e.contains("services[0].check.enable_sni: enable_sni is for https checks, not http"),
        "{e}"
    );
    let e = refused("type: dns ", "type: udp ");
    assert!(
        e.contains("services[1].check.dns_type: dns_type is for dns checks, not udp"),
        "{e}"
    );
    let e = refused("type: dns ", "type: https ");
    assert!(
        e.contains("services[1].check.type: a https check on a UDP service"),
        "{e}"
    );
    let e = refused(
        "virtualhost: www.example.org",
        "virtualhost: \"www.example.org:8443\"",
    );
    assert!(
        e.contains("services[0].check.virtualhost: `www.example.org:8443` is not a DNS name, which enable_sni sends"),
        "{e}"
    );
    let e = refused("dns_name: www.example.org", "dns_name: \"\"");
    assert!(
        e.contains("services[1].check.dns_name: `` is not a domain name: empty"),
        "{e}"
    );
    let e = refused(
        "      path: /\n",
        "      path: /\n      digest: \"+3+3+3+3+3+3+3+3+3+3+3+3+3+3+3+3\"\n",
    );
    assert!(e.contains("services[0].check.digest:"), "{e}");
    // Status codes and ranges, as keepalived's status_code; none is
    // keepalived's 200-299.
    let codes = |text: &str| match &crate::config::parse(text, "c.yaml").unwrap().services[0]
        .check
        .as_ref()
        .unwrap()
        .kind
    {
        CheckKind::Http { status_codes, .. } => status_codes.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        codes(&text.replacen(
            "status_code: [200]",
            "status_code: [\"200-204\", 301, 204]",
            1
        )),
        [200, 201, 202, 203, 204, 301]
    );
    assert_eq!(
        codes(
            &text
                .replacen("status_code: [200]", "connect_timeout: 1", 1)
                .replacen("      connect_timeout: 1\n", "", 1)
        ),
        (200..=299).collect::<Vec<u16>>()
    );
    let e = refused("status_code: [200]", "status_code: [\"299-200\"]");
    assert!(
        e.contains("services[0].check.status_code[0]: `299-200` is not a status code"),
        "{e}"
    );
    let back = crate::config::to_yaml(
        &crate::config::parse(
            &text.replacen("status_code: [200]", "status_code: [\"200-204\", 301]", 1),
            "c.yaml",
        )
        .unwrap(),
    );
    assert!(back.contains("status_code: [200-204, 301]"), "{back}");
    // Lower-case types are read as keepalived reads them.
    let lower = text.replacen("dns_type: A", "dns_type: mx", 1);
    let cfg = crate::config::parse(&lower, "c.yaml").unwrap();
    assert!(matches!(
        cfg.services[1].check.as_ref().unwrap().kind,
        CheckKind::Dns {
            record_type: DnsRecordType::Mx,
            ..
        }
    ));
}

#[test]
fn health_checks_are_read_and_bad_ones_named() {
    let cfg = load(&configs_dir().join("lab-nat-check.yaml")).unwrap();
    let http = &cfg.services[0];
    assert!(http.inhibit_on_failure);
    let check = http.check.as_ref().unwrap();
    assert_eq!(check.connect_port, Some(8080));
    assert_eq!(check.delay_loop, std::time::Duration::from_millis(500));
    assert_eq!((check.retry, check.alpha), (1, false));
    assert!(
        matches!(&check.kind, crate::config::CheckKind::Http { path, status_codes, .. } if path == "/" && status_codes == &[200])
    );
    assert_eq!(
        http.quorum_down.as_deref(),
        Some("echo \"quorum_down: $L4VS_SERVICE $L4VS_QUORUM\"")
    );
    let udp = cfg.services[1].check.as_ref().unwrap();
    assert!(
        matches!(&udp.kind, crate::config::CheckKind::Udp { payload, require_reply: None } if payload == b"ping")
    );
    assert_eq!(udp.delay_loop, std::time::Duration::from_secs(1));

    let text = std::fs::read_to_string(configs_dir().join("lab-nat-check.yaml")).unwrap();
    let refused = |from: &str, to: &str| refused_edit(&text, from, to);
    let e = refused("type: udp ", "type: tcp ");
    assert!(
        e.contains("services[1].check.type: a tcp check on a UDP service"),
        "{e}"
    );
    let e = refused("type: http ", "type: udp ");
    assert!(
        e.contains("services[0].check.type: a udp check on a TCP service"),
        "{e}"
    );
    let e = refused("type: http ", "type: smtp ");
    assert!(
        e.contains("services[0].check.type: `smtp` is not a check l4vs has"),
        "{e}"
    );
    let e = refused("quorum_up: 'echo", "quorum_up: ' '\n    #");
    assert!(e.contains("services[0].quorum_up: an empty command"), "{e}");
    let e = refused("delay_loop: 0.5", "delay_loop: 0");
    assert!(
        e.contains("services[0].check.delay_loop: 0 is not a time in seconds"),
        "{e}"
    );
    let e = refused(
        "payload: \"70696e67\"",
        "payload: \"70696e67\"\n      path: /x",
    );
    assert!(
        e.contains("services[1].check.path: path is for http and https checks, not udp"),
        "{e}"
    );
    let e = refused("status_code: [200]", "status_code: [99]");
    assert!(e.contains("services[0].check.status_code[0]"), "{e}");
    let e = refused("type: udp ", "type: misc ");
    assert!(
        e.contains("services[1].check.misc_path: a misc check runs misc_path"),
        "{e}"
    );
    let e = refused("\"70696e67\"", "\"0g\"");
    assert!(
        e.contains("services[1].check.payload: `0g` is not bytes in hex"),
        "{e}"
    );
    let e = refused("status_code: [200]", "virtualhost: \"www example\"");
    assert!(
        e.contains("services[0].check.virtualhost: `www example` is not a host name"),
        "{e}"
    );
    let e = refused("payload: \"70696e67\"", "notify_up: \" \"");
    assert!(
        e.contains("services[1].check.notify_up: an empty command"),
        "{e}"
    );
    let e = refused("type: udp ", "type: misc \n      misc_path: \"\"\n      #");
    assert!(
        e.contains("services[1].check.misc_path: a misc check runs misc_path"),
        "{e}"
    );
    let e = refused("quorum: 1 ", "quorum: 2 \n    hysteresis: 2\n    #");
    assert!(
        e.contains("services[0].hysteresis: 2 is not below the quorum, 2"),
        "{e}"
    );
    // keepalived's defaults by kind.
    let bare = text.replacen("      retry: 1\n      delay_before_retry: 0.2\n", "", 1);
    let c = crate::config::parse(&bare, "b.yaml").unwrap();
    let http = c.services[0].check.as_ref().unwrap();
    assert_eq!(
        (http.retry, http.delay_before_retry, http.warmup),
        (
            1,
            std::time::Duration::from_secs(3),
            std::time::Duration::from_millis(500)
        )
    );
    let e = refused("retry: 1", "retries: 1");
    assert!(e.contains("retries"), "{e}");
    // Each error names the file and the line of the key.
    let line = text.lines().position(|l| l.contains("type: udp")).unwrap() + 1;
    assert!(refused("type: udp ", "type: tcp ").starts_with(&format!("c.yaml:{line}:")));
}

/// `sync:` is read with ipvsadm's defaults; bad values are refused with
/// file:line:key; a change of it needs a restart.
#[test]
fn the_sync_daemon_is_configured() {
    use crate::config::SyncRole;
    let file = configs_dir().join("lab-nat-sync-master.yaml");
    let cfg = load(&file).unwrap();
    let s = cfg.sync.as_ref().unwrap();
    assert_eq!(s.role, SyncRole::Master);
    assert_eq!((s.syncid, s.port, s.udp_port, s.ttl), (7, 0, 8848, 1));
    assert_eq!(s.group, std::net::Ipv4Addr::new(224, 0, 0, 81));
    assert_eq!(s.source, std::net::Ipv4Addr::new(198, 18, 1, 1));
    // The port's MTU (1500 unless set) less the IPv4 and UDP headers.
    assert_eq!(s.max_len, 1472);
    let backup = load(&configs_dir().join("lab-nat-sync-backup.yaml")).unwrap();
    assert_eq!(backup.sync.as_ref().unwrap().role, SyncRole::Backup);
    assert_eq!(
        crate::config::restart_only_change(&cfg, &backup).as_deref(),
        Some("sync.role")
    );
    // --yaml prints it back.
    let again = crate::config::parse(&crate::config::to_yaml(&cfg), "out.yaml").unwrap();
    assert_eq!(again.sync, cfg.sync);

    let text = std::fs::read_to_string(&file).unwrap();
    let refused = |from: &str, to: &str| refused_edit(&text, from, to);
    let e = refused("role: master ", "role: active ");
    assert!(
        e.contains("sync.role: `active` is not a sync daemon role: master, backup or both"),
        "{e}"
    );
    let e = refused("interface: lan ", "interface: wan ");
    assert!(
        e.contains("sync.interface: no port named `wan` (ports: lan)"),
        "{e}"
    );
    let e = refused("syncid: 7 ", "syncid: 7\n  group: 198.18.0.1 ");
    assert!(
        e.contains(
            "sync.group: `198.18.0.1` is not a multicast group of the local network control block"
        ),
        "{e}"
    );
    let e = refused("syncid: 7 ", "syncid: 256 ");
    assert!(e.contains("sync.syncid"), "{e}");
    let e = refused("syncid: 7 ", "syncid: 7\n  max_len: 1500 ");
    assert!(e.contains("sync.max_len"), "{e}");
    assert_eq!((s.sync_ports, s.persist_mode), (1, false));
    let e = refused("syncid: 7 ", "syncid: 7\n  sync_ports: 3 ");
    assert!(
        e.contains("sync.sync_ports: 3 is not a power of two (1, 2, 4 .. 64)"),
        "{e}"
    );
    let e = refused("syncid: 7 ", "syncid: 7\n  sync_ports: 128 ");
    assert!(e.contains("sync.sync_ports: 128 is out of range"), "{e}");
    let e = refused("syncid: 7 ", "syncid: 7\n  mcast_group: 224.0.0.81 ");
    assert!(e.contains("mcast_group"), "{e}");
    // The key: 16 to 64 bytes in hex, never echoed; not printed by Debug.
    let auth = s.auth.as_ref().unwrap();
    assert_eq!((auth.key.len(), auth.key_id), (32, 1));
    assert!(!format!("{auth:?}").contains("6c34"), "{auth:?}");
    let e = refused("auth_key: \"6c34", "auth_key: \"zz6c34");
    assert!(
        e.contains("sync.auth_key: not a key of 16 to 64 bytes in hex"),
        "{e}"
    );
    assert!(!e.contains("6c34"), "the key shown: {e}");
    let e = refused("auth_key: \"6c34", "auth_key_id: 2\n  #");
    assert!(
        e.contains("sync.auth_key_id: auth_key_id names the auth_key"),
        "{e}"
    );
}

/// The error of `text` with its first `from` replaced by `to` (which must
/// change it), as `c.yaml`.
fn refused_edit(text: &str, from: &str, to: &str) -> String {
    let bad = text.replacen(from, to, 1);
    assert_ne!(bad, text, "{from}");
    crate::config::parse(&bad, "c.yaml")
        .unwrap_err()
        .to_string()
}

/// `vrrp:` is read with keepalived's defaults; bad values are refused
/// with file:line:key; a change of it needs a restart.
#[test]
fn the_vrrp_instance_is_configured() {
    use std::net::Ipv4Addr;
    let file = configs_dir().join("lab-nat-ha-a.yaml");
    let cfg = load(&file).unwrap();
    let v = cfg.vrrp.as_ref().unwrap();
    assert_eq!(
        (v.port, v.vrid, v.priority, v.advert_int_cs),
        (0, 51, 150, 10)
    );
    assert_eq!(v.source, Ipv4Addr::new(198, 18, 1, 1));
    assert_eq!(
        v.addresses,
        [
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 2, 254)
        ]
    );
    assert!(v.preempt && !v.checksum_as_v2);
    assert_eq!(v.name, "VI_51", "keepalived's name, VI_<vrid> unless given");
    assert_eq!((v.garp_repeat, v.garp_delay.as_millis()), (5, 5000));
    assert_eq!(v.preempt_delay, std::time::Duration::ZERO);
    let b = load(&configs_dir().join("lab-nat-ha-b.yaml")).unwrap();
    assert_eq!(b.vrrp.as_ref().unwrap().priority, 100);
    // A reload applies all but the instance's identity.
    let mut changed = cfg.clone();
    let w = changed.vrrp.as_mut().unwrap();
    w.priority = 151;
    w.addresses.pop();
    w.advert_int_cs = 20;
    w.notify = Some("true".into());
    assert_eq!(crate::config::restart_only_change(&cfg, &changed), None);
    changed.vrrp.as_mut().unwrap().vrid = 52;
    assert_eq!(
        crate::config::restart_only_change(&cfg, &changed).as_deref(),
        Some("vrrp.virtual_router_id")
    );
    changed.vrrp = None;
    assert_eq!(
        crate::config::restart_only_change(&cfg, &changed).as_deref(),
        Some("vrrp")
    );
    // --yaml prints it back.
    let again = crate::config::parse(&crate::config::to_yaml(&cfg), "out.yaml").unwrap();
    assert_eq!(again.vrrp, cfg.vrrp);

    let text = std::fs::read_to_string(&file).unwrap();
    let refused = |from: &str, to: &str| refused_edit(&text, from, to);
    let e = refused("advert_int_ms: 100 ", "advert_int_ms: 105 ");
    assert!(
        e.contains("vrrp.advert_int_ms: 105 is not a multiple of 10"),
        "{e}"
    );
    let e = refused("advert_int_ms: 100 ", "advert_int_ms: 5 ");
    assert!(
        e.contains("vrrp.advert_int_ms: 5 is out of range: must be in 10..=40950"),
        "{e}"
    );
    let e = refused("priority: 150", "priority: 255");
    assert!(
        e.contains("vrrp.priority: 255 is out of range: must be in 1..=254"),
        "{e}"
    );
    let e = refused("virtual_router_id: 51", "virtual_router_id: 0");
    assert!(e.contains("vrrp.virtual_router_id"), "{e}");
    let e = refused("[198.18.0.100, 198.18.2.254]", "[]");
    assert!(
        e.contains("vrrp.virtual_ipaddress: list 1 to 255 addresses"),
        "{e}"
    );
    let e = refused("[198.18.0.100, 198.18.2.254]", "[198.18.0.100, 198.18.2.1]");
    assert!(
        e.contains("vrrp.virtual_ipaddress[1]: 198.18.2.1 is one of the director's own addresses"),
        "{e}"
    );
    let e = refused(
        "[198.18.0.100, 198.18.2.254]",
        "[198.18.0.100, 198.18.0.100/32]",
    );
    assert!(
        e.contains("vrrp.virtual_ipaddress[1]: 198.18.0.100 is listed twice"),
        "{e}"
    );
    // keepalived's prefix lengths are taken and ignored.
    let with_len = text.replacen(
        "[198.18.0.100, 198.18.2.254]",
        "[198.18.0.100/24, 198.18.2.254/32]",
        1,
    );
    let c = crate::config::parse(&with_len, "c.yaml").unwrap();
    assert_eq!(c.vrrp.unwrap().addresses, v.addresses);
    let e = refused("[198.18.0.100, 198.18.2.254]", "[198.18.0.100/33]");
    assert!(e.contains("vrrp.virtual_ipaddress[0]"), "{e}");
    let e = refused(
        "virtual_router_id: 51",
        "virtual_router_id: 51\n  name: \"VI 1\"",
    );
    assert!(
        e.contains("vrrp.name: `VI 1` is not a valid instance name"),
        "{e}"
    );
    let e = refused("[198.18.0.100, 198.18.2.254]", "[198.18.0.300]");
    assert!(e.contains("vrrp.virtual_ipaddress[0]"), "{e}");
    let e = refused("interface: lan              # adv", "interface: wan #");
    assert!(e.contains("vrrp.interface: no port named `wan`"), "{e}");
    let e = refused(
        "virtual_router_id: 51",
        "virtual_router_id: 51\n  state: MASTER",
    );
    assert!(e.contains("l4vs starts every director as backup"), "{e}");
    let e = refused(
        "virtual_router_id: 51",
        "virtual_router_id: 51\n  nopreempt: true",
    );
    assert!(
        e.contains("(keepalived's nopreempt is `preempt: false` here)"),
        "{e}"
    );
    let e = refused(
        "virtual_router_id: 51",
        "virtual_router_id: 51\n  notify_master: \"  \"",
    );
    assert!(e.contains("vrrp.notify_master"), "{e}");
    // Each error names the line of its key.
    let line = text
        .lines()
        .position(|l| l.contains("priority: 150"))
        .unwrap()
        + 1;
    assert!(refused("priority: 150", "priority: 0").starts_with(&format!("c.yaml:{line}:")));
}

/// ipvsadm's daemon states and what `--stop-daemon` leaves running.
#[test]
fn sync_roles_of_daemon_states_and_stops() {
    use SyncRole::{Backup, Both, Master};
    assert_eq!(SyncRole::of_daemon_state("master"), Some(Master));
    assert_eq!(SyncRole::of_daemon_state("backup"), Some(Backup));
    assert_eq!(SyncRole::of_daemon_state("both"), None);
    assert_eq!(Master.stopping(Master), Some(None));
    assert_eq!(Both.stopping(Master), Some(Some(Backup)));
    assert_eq!(Both.stopping(Backup), Some(Some(Master)));
    assert_eq!(Master.stopping(Backup), None);
    assert_eq!(Backup.stopping(Master), None);
}
