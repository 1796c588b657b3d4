//! `l4vs import`: each file under `configs/import/` is imported by the
//! real binary; `l4vs check-config` accepts what it prints, the settings
//! carried over are the file's, and stderr lists exactly the expected
//! warnings with their lines. Broken files print nothing on stdout, one
//! error naming the file and line on stderr, and exit with status 2.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use l4vs_control::config::{self, Check, CheckKind, Config, Service};
use l4vs_dataplane::model::{ForwardMethod, Persistence, Protocol, SchedulerKind};

/// `configs/import/`; the imports run there, so files are named as a
/// user in that directory names them.
fn import_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/import")
}

fn l4vs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l4vs"))
        .args(args)
        .current_dir(import_dir())
        .output()
        .expect("running l4vs")
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("l4vs-import-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The placeholder warning of an import without `--base`.
fn no_base(file: &str) -> String {
    format!(
        "l4vs: import: {file}: without --base, eal, workers, ports and addresses are placeholders \
         (see the comment at the top of the output): edit them, or import again with --base YOUR.yaml"
    )
}

/// Imports `file` as `kind` (with `extra` arguments), checks that it
/// succeeds and that `l4vs check-config` takes the output, and gives the
/// config and the stderr lines.
fn import_ok(kind: &str, file: &str, extra: &[&str]) -> (Config, Vec<String>) {
    let mut args = vec!["import", kind, file];
    args.extend_from_slice(extra);
    let out = l4vs(&args);
    let err = stderr_lines(&out);
    assert!(out.status.success(), "{file}: {err:#?}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    let path = temp_dir().join(format!("{file}.yaml"));
    std::fs::write(&path, &yaml).unwrap();
    let check = l4vs(&["check-config", path.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{file}: check-config: {}\n{yaml}",
        String::from_utf8_lossy(&check.stderr)
    );
    (config::load(&path).unwrap(), err)
}

fn service<'a>(c: &'a Config, name: &str) -> &'a Service {
    c.services
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// (address, port, weight, method) of each real of `s`.
fn reals(s: &Service) -> Vec<(String, u16, u32, ForwardMethod)> {
    s.reals
        .iter()
        .map(|r| (r.address.to_string(), r.port, r.weight, r.forward))
        .collect()
}

fn real(a: &str, port: u16, weight: u32, m: ForwardMethod) -> (String, u16, u32, ForwardMethod) {
    (a.to_owned(), port, weight, m)
}

const NAT: ForwardMethod = ForwardMethod::Nat;
const DR: ForwardMethod = ForwardMethod::DirectRouting;
const TUN: ForwardMethod = ForwardMethod::Tunnel;

/// Every file in `configs/import/` is imported by one of the tests below,
/// and every file under `keepalived.d/` is included by
/// `keepalived-full.conf`.
#[test]
fn every_import_sample_is_exercised() {
    let files: BTreeSet<String> = std::fs::read_dir(import_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    let tested: BTreeSet<String> = [
        "ipvsadm.save",
        "keepalived-checks.conf",
        "keepalived-fwmark.conf",
        "keepalived-full.conf",
        "keepalived-misc-check.conf",
        "keepalived-sample.conf",
        "keepalived-virtualhost.conf",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(files, tested);
    let (_, err) = import_ok("keepalived", "keepalived-full.conf", &[]);
    for e in std::fs::read_dir(import_dir().join("keepalived.d")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            err.iter()
                .any(|l| l.contains(&format!("keepalived.d/{name}:"))),
            "keepalived.d/{name} is not read: {err:#?}"
        );
    }
}

#[test]
fn keepalived_sample() {
    let (c, err) = import_ok("keepalived", "keepalived-sample.conf", &[]);
    assert_eq!(
        err,
        [
            no_base("keepalived-sample.conf"),
            "l4vs: import: keepalived-sample.conf:6: notification_email is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-sample.conf:9: notification_email_from is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-sample.conf:10: smtp_server is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-sample.conf:11: smtp_connect_timeout is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-sample.conf:12: router_id is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-sample.conf:15: l4vs speaks VRRPv3 (RFC 5798); this file's keepalived speaks VRRPv2 (keepalived's default): a keepalived peer of l4vs needs vrrp_version 3 in its global_defs".into(),
            "l4vs: import: keepalived-sample.conf:16: interface `eth0` becomes the config's first port: check vrrp.interface".into(),
        ]
    );
    assert_eq!(c.services.len(), 1);
    let s = service(&c, "tcp-203-0-113-10-1358");
    assert_eq!(
        (s.vip, s.port, s.protocol),
        (Ipv4Addr::new(203, 0, 113, 10), 1358, Protocol::Tcp)
    );
    assert_eq!(s.scheduler, SchedulerKind::Rr);
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout: 50,
            netmask: 32
        })
    );
    assert_eq!(reals(s), [real("198.51.100.2", 1358, 1, NAT)]);
    // HTTP_GET: any 2xx without status_code, as keepalived.
    assert_eq!(
        s.check,
        Some(Check {
            kind: CheckKind::Http {
                path: "/testurl3/test.jsp".to_owned(),
                status_codes: (200..=299).collect(),
                virtualhost: None,
                // The url's digest, as genhash prints it.
                digest: Some([
                    0x64, 0x02, 0x05, 0xb7, 0xb0, 0xfc, 0x66, 0xc1, 0xea, 0x91, 0xc4, 0x63, 0xfa,
                    0xc6, 0x33, 0x4d
                ]),
                contains: None,
                tls: false,
                enable_sni: false,
            },
            connect_port: None,
            delay_loop: secs(6.0),
            connect_timeout: secs(3.0),
            retry: 3,
            delay_before_retry: secs(3.0),
            alpha: false,
            warmup: secs(6.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        })
    );
    // The placeholders: a port on an interface that does not exist, and a
    // director address next to the real server.
    assert_eq!(c.ports[0].device.spec(), "net_af_packet0,iface=CHANGE_ME");
    assert_eq!(c.addresses[0].address, Ipv4Addr::new(198, 51, 100, 254));
}

/// The check of `s`'s real at `addr`: its own, else the service's.
fn check_of<'a>(s: &'a Service, addr: &str) -> Option<&'a Check> {
    let r = s
        .reals
        .iter()
        .find(|r| r.address.to_string() == addr)
        .unwrap_or_else(|| panic!("no real {addr}"));
    s.check_of(r)
}

#[test]
fn keepalived_virtualhost() {
    let (c, err) = import_ok("keepalived", "keepalived-virtualhost.conf", &[]);
    assert_eq!(
        err,
        [
            no_base("keepalived-virtualhost.conf"),
            "l4vs: import: keepalived-virtualhost.conf:5: router_id is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-virtualhost.conf:25: url is not carried over (SSL_GET of real_server 198.51.100.100 8443): l4vs checks one path, where keepalived needs every url to pass; the first, `/` (keepalived-virtualhost.conf:22), is carried over".into(),
        ]
    );
    let s = service(&c, "tcp-203-0-113-100-443");
    // SSL_GET: an https check with the first url's digest and the
    // virtual_server's virtualhost, of the first real; the second has no
    // checker and is not checked.
    assert_eq!(check_of(s, "198.51.100.101"), None);
    let check = check_of(s, "198.51.100.100").unwrap();
    assert_eq!(
        check.kind,
        CheckKind::Http {
            path: "/".into(),
            status_codes: (200..=299).collect(),
            virtualhost: Some("www.example.org".into()),
            digest: Some([
                0xff, 0x20, 0xad, 0x24, 0x81, 0xf9, 0x7b, 0x17, 0x54, 0xef, 0x3e, 0x12, 0xec, 0xd3,
                0xa9, 0xcc
            ]),
            contains: None,
            tls: true,
            enable_sni: false,
        }
    );
    assert_eq!(
        (check.retry, check.delay_loop, check.connect_timeout),
        (3, Duration::from_secs(6), Duration::from_secs(3))
    );
    assert_eq!(s.scheduler, SchedulerKind::Wrr);
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout: 50,
            netmask: 24
        })
    );
    assert_eq!(
        reals(s),
        [
            real("198.51.100.100", 8443, 3, NAT),
            real("198.51.100.101", 8443, 1, NAT)
        ]
    );
}

#[test]
fn keepalived_fwmark() {
    let (c, err) = import_ok("keepalived", "keepalived-fwmark.conf", &[]);
    assert_eq!(
        err,
        [
            no_base("keepalived-fwmark.conf"),
            "l4vs: import: keepalived-fwmark.conf:5: router_id is not carried over (global_defs)".into(),
            "l4vs: import: keepalived-fwmark.conf:8: firewall mark 1: the rules that marked packets (iptables, nftables) are not in this file; the output has a placeholder firewall_marks rule that matches nothing: write the real one".into(),
            "l4vs: import: keepalived-fwmark.conf:13: protocol is not carried over (virtual_server fwmark 1): a firewall-mark service takes every protocol the mark is given to, and keepalived ignores it too".into(),
        ]
    );
    let s = service(&c, "fwmark-1");
    assert_eq!(s.fwmark, Some(1));
    assert_eq!(s.persistence.map(|p| p.timeout), Some(900));
    // The real servers of a firewall-mark service get the packet's port.
    assert_eq!(
        reals(s),
        [
            real("198.51.100.100", 0, 1, NAT),
            real("198.51.100.101", 0, 1, NAT)
        ]
    );
    // Both reals' TCP_CHECKs are one: port 80 of each.
    assert_eq!(
        s.check,
        Some(Check {
            kind: CheckKind::Tcp,
            connect_port: Some(80),
            delay_loop: secs(6.0),
            connect_timeout: secs(3.0),
            retry: 1,
            delay_before_retry: secs(1.0),
            alpha: false,
            warmup: secs(6.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        })
    );
    assert_eq!(c.firewall_marks.len(), 1);
    assert_eq!(
        (c.firewall_marks[0].mark, c.firewall_marks[0].destination),
        (1, Ipv4Addr::new(192, 0, 2, 1))
    );
}

#[test]
fn keepalived_misc_check() {
    let (c, err) = import_ok("keepalived", "keepalived-misc-check.conf", &[]);
    assert_eq!(
        err,
        [
            no_base("keepalived-misc-check.conf"),
            "l4vs: import: keepalived-misc-check.conf:6: router_id is not carried over (global_defs)".into(),
        ]
    );
    let s = service(&c, "tcp-203-0-113-10-1358");
    assert_eq!(reals(s), [real("198.51.100.6", 1358, 1, NAT)]);
    // MISC_CHECK: no retry, and killed after the delay_loop.
    assert_eq!(
        s.check,
        Some(Check {
            kind: CheckKind::Misc {
                path: "/usr/local/bin/script.sh".to_owned(),
                timeout: secs(6.0),
                dynamic: false,
            },
            connect_port: None,
            delay_loop: secs(6.0),
            connect_timeout: secs(5.0),
            retry: 0,
            delay_before_retry: secs(1.0),
            alpha: false,
            warmup: secs(6.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        })
    );
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn keepalived_checks() {
    let (c, err) = import_ok("keepalived", "keepalived-checks.conf", &[]);
    let w = |s: &str| format!("l4vs: import: keepalived-checks.conf:{s}");
    assert_eq!(
        err,
        [
            no_base("keepalived-checks.conf"),
            w("6: router_id is not carried over (global_defs)"),
            w("42: url is not carried over (HTTP_GET of real_server 198.18.2.12 80): l4vs checks one path, where keepalived needs every url to pass; the first, `/healthz` (keepalived-checks.conf:38), is carried over"),
            w("84: TCP_CHECK is not carried over (real_server 198.18.2.23 53): l4vs refuses TCP, HTTP and HTTPS checks of a UDP service, whose reals answer UDP (a UDP_CHECK or DNS_CHECK can check them)"),
            w("104: real_server 198.18.2.32 25 has no inhibit_on_failure, but l4vs has it per service: this real too keeps weight 0 when its check fails, like real_server 198.18.2.31 25 (inhibit_on_failure at keepalived-checks.conf:99)"),
            w("108: SMTP_CHECK is not carried over (real_server 198.18.2.32 25): l4vs has no SMTP check (a MISC_CHECK with a command that talks SMTP can check it)"),
            w("112: real_server 198.18.2.33 25 has no inhibit_on_failure, but l4vs has it per service: this real too keeps weight 0 when its check fails, like real_server 198.18.2.31 25 (inhibit_on_failure at keepalived-checks.conf:99)"),
        ]
    );
    let web = service(&c, "tcp-203-0-113-10-80");
    assert!(web.inhibit_on_failure);
    // Each real its own checker: rs1 and rs2 HTTP_GET, rs3 TCP_CHECK.
    assert_eq!(web.check, None);
    assert_eq!(check_of(web, "198.18.2.13").unwrap().kind, CheckKind::Tcp);
    assert_eq!(check_of(web, "198.18.2.12"), check_of(web, "198.18.2.11"));
    assert_eq!(
        check_of(web, "198.18.2.11").cloned(),
        Some(Check {
            kind: CheckKind::Http {
                path: "/healthz".to_owned(),
                status_codes: vec![200, 201, 202, 203, 204],
                virtualhost: Some("www.example.org".to_owned()),
                digest: None,
                contains: Some("ready".to_owned()),
                tls: false,
                enable_sni: false,
            },
            connect_port: Some(8080),
            delay_loop: secs(5.0),
            connect_timeout: secs(2.0),
            retry: 2,
            delay_before_retry: secs(0.5),
            alpha: true,
            warmup: secs(5.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        })
    );
    let dns = service(&c, "udp-203-0-113-53-53");
    assert!(!dns.inhibit_on_failure);
    // rs23's TCP_CHECK is refused: it is not checked.
    assert_eq!(check_of(dns, "198.18.2.23"), None);
    assert_eq!(check_of(dns, "198.18.2.22"), check_of(dns, "198.18.2.21"));
    assert_eq!(
        check_of(dns, "198.18.2.21").cloned(),
        Some(Check {
            kind: CheckKind::Misc {
                path: "/usr/local/bin/check-dns ${L4VS_REAL_ADDRESS}".to_owned(),
                timeout: secs(2.0),
                dynamic: true,
            },
            connect_port: None,
            delay_loop: secs(3.0),
            connect_timeout: secs(5.0),
            retry: 0,
            delay_before_retry: secs(1.0),
            alpha: false,
            warmup: secs(3.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        })
    );
    let mail = service(&c, "tcp-203-0-113-25-25");
    assert!(mail.inhibit_on_failure);
    assert_eq!(check_of(mail, "198.18.2.32"), check_of(mail, "198.18.2.31"));
    assert_eq!(check_of(mail, "198.18.2.33"), None);
    let check = check_of(mail, "198.18.2.31").unwrap();
    assert_eq!(
        (check.kind.as_str(), check.retry, check.connect_timeout),
        ("tcp", 3, secs(3.0))
    );
}

#[test]
fn keepalived_full() {
    let (c, err) = import_ok("keepalived", "keepalived-full.conf", &[]);
    let w = |s: &str| format!("l4vs: import: {s}");
    assert_eq!(
        err,
        [
            no_base("keepalived-full.conf"),
            w("keepalived-full.conf:6: router_id is not carried over (global_defs)"),
            w("keepalived-full.conf:8: lvs_sync_daemon is carried over as sync: with role both (keepalived makes it master or backup as VRRP instance VI_1 is; l4vs runs both, and its VRRP instance decides who forwards), on the config's first port instead of `eth1`: check sync.interface"),
            w("keepalived-full.conf:11: vrrp_sync_group VG_1 is not carried over: l4vs runs one VRRP instance, which needs no sync group"),
            w("keepalived-full.conf:17: l4vs speaks VRRPv3 (RFC 5798); this file's keepalived speaks VRRPv2 (keepalived's default): a keepalived peer of l4vs needs vrrp_version 3 in its global_defs"),
            w("keepalived-full.conf:18: state MASTER is not carried over: l4vs starts every director as backup, and the priorities decide which becomes master (RFC 5798 section 6.4.1)"),
            w("keepalived-full.conf:19: interface `eth0` becomes the config's first port: check vrrp.interface"),
            w("keepalived-full.conf:27: static_ipaddress is not carried over: the director's own addresses and next hop go in the l4vs config's addresses and gateway"),
            w("keepalived-full.conf:53: the port of real_server 198.18.2.13 8080 is not carried over: keepalived resets it to the virtual_server's, as DR and tunnel keep the packet's port"),
            w("keepalived-full.conf:64: virtual_server 203.0.113.53 53 has no protocol: keepalived makes it UDP (the kernel's default), and so does the import; write `protocol TCP` for TCP"),
            w("keepalived-full.conf:92: virtual_server 2001:db8::10 80 is not carried over: l4vs forwards IPv4 only so far"),
            w("keepalived.d/mail-backup.conf:4: notify_down is not carried over (real_server 198.18.2.22): the import does not carry a real's notify commands yet: write notify_up/notify_down in the check block (the real is in L4VS_REAL_ADDRESS); l4vs sends no alerts, and logs each change of a real's health once"),
        ]
    );
    // lvs_sync_daemon: both roles, its id, on the first port.
    let sync = c.sync.as_ref().expect("a sync block");
    assert_eq!(
        (sync.role, sync.syncid, sync.port, sync.udp_port),
        (config::SyncRole::Both, 5, 0, 8848)
    );
    // global_defs' lvs_timeouts.
    assert_eq!(
        (
            c.timeouts.tcp_established,
            c.timeouts.tcp_fin_wait,
            c.timeouts.udp
        ),
        (7200, 60, 120)
    );
    let names: Vec<&str> = c
        .services
        .iter()
        .map(|s| s.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tcp-203-0-113-10-80",
            "udp-203-0-113-53-53",
            "tcp-203-0-113-25-25",
            "tcp-203-0-113-26-25",
            "tcp-203-0-113-27-25"
        ]
    );
    let web = service(&c, "tcp-203-0-113-10-80");
    assert_eq!(web.scheduler, SchedulerKind::Wlc);
    assert_eq!(
        reals(web),
        [
            real("198.18.2.11", 80, 3, DR),
            real("198.18.2.12", 80, 3, DR),
            real("198.18.2.13", 80, 1, DR),
            real("198.51.100.7", 80, 1, TUN),
        ]
    );
    assert_eq!(
        (web.reals[0].upper_threshold, web.reals[0].lower_threshold),
        (20000, 15000)
    );
    // The first real's TCP_CHECK, with the virtual server's delay_loop;
    // the others have none and are not checked. inhibit_on_failure is
    // the service's.
    assert!(web.inhibit_on_failure);
    assert_eq!(check_of(web, "198.18.2.12"), None);
    let check = check_of(web, "198.18.2.11").unwrap();
    assert_eq!(
        (
            check.kind.as_str(),
            check.delay_loop,
            check.connect_timeout,
            check.connect_port
        ),
        ("tcp", secs(10.0), secs(3.0), None)
    );
    assert!(c.services[1..]
        .iter()
        .all(|s| s.check.is_none() && s.real_checks.is_empty()));
    let dns = service(&c, "udp-203-0-113-53-53");
    assert!(dns.ops);
    assert_eq!(
        dns.scheduler,
        SchedulerKind::Sh {
            port: true,
            fallback: true
        }
    );
    assert_eq!(
        reals(dns),
        [
            real("198.18.2.11", 53, 1, DR),
            real("198.18.2.12", 53, 1, DR)
        ]
    );
    for mail in &c.services[2..] {
        assert_eq!(mail.scheduler.flags().collect::<Vec<_>>(), ["mh-fallback"]);
        assert_eq!(
            mail.persistence,
            Some(Persistence {
                timeout: 360,
                netmask: 32
            })
        );
        assert_eq!(
            reals(mail),
            [
                real("198.18.2.21", 2525, 2, NAT),
                real("198.18.2.22", 25, 1, NAT)
            ]
        );
    }
}

#[test]
fn ipvsadm_save() {
    let (c, err) = import_ok("ipvsadm", "ipvsadm.save", &[]);
    assert_eq!(
        err,
        [
            no_base("ipvsadm.save"),
            "l4vs: import: ipvsadm.save:10: firewall mark 7: the rules that marked packets (iptables, nftables) are not in this file; the output has a placeholder firewall_marks rule that matches nothing: write the real one".into(),
            "l4vs: import: ipvsadm.save:13: this IPv6 line is not carried over: l4vs forwards IPv4 only so far".into(),
            "l4vs: import: ipvsadm.save:14: this IPv6 line is not carried over: l4vs forwards IPv4 only so far".into(),
        ]
    );
    let web = service(&c, "tcp-198-18-1-1-80");
    assert_eq!(web.scheduler, SchedulerKind::Wlc);
    assert_eq!(web.persistence.map(|p| p.timeout), Some(300));
    assert_eq!(
        reals(web),
        [
            real("198.18.2.11", 80, 1, NAT),
            real("198.18.2.12", 8080, 2, NAT)
        ]
    );
    let tls = service(&c, "tcp-198-18-1-1-443");
    assert_eq!(
        tls.persistence,
        Some(Persistence {
            timeout: 3600,
            netmask: 24
        })
    );
    assert_eq!(
        reals(tls),
        [
            real("198.18.2.11", 443, 1, DR),
            real("198.18.2.12", 443, 0, DR)
        ]
    );
    let dns = service(&c, "udp-198-18-1-1-53");
    assert!(dns.ops);
    assert_eq!(
        dns.scheduler.flags().collect::<Vec<_>>(),
        ["sh-port", "sh-fallback"]
    );
    assert_eq!(
        reals(dns),
        [
            real("198.18.2.11", 53, 1, TUN),
            real("198.18.2.12", 53, 1, TUN)
        ]
    );
    let marked = service(&c, "fwmark-7");
    assert_eq!(marked.scheduler.flags().collect::<Vec<_>>(), ["mh-port"]);
    assert_eq!(
        reals(marked),
        [real("198.18.2.11", 0, 1, DR), real("198.18.2.12", 0, 1, DR)]
    );
}

/// `--base` gives everything but the services; a real server the base's
/// network cannot reach is refused, naming the base.
#[test]
fn base_config_gives_the_rest() {
    let (c, err) = import_ok("ipvsadm", "ipvsadm.save", &["--base", "../lab-nat.yaml"]);
    let base = config::load(&import_dir().join("../lab-nat.yaml")).unwrap();
    assert_eq!(c.ports, base.ports);
    assert_eq!(c.addresses, base.addresses);
    assert_eq!(c.eal, base.eal);
    assert_eq!(c.services.len(), 4);
    assert_eq!(
        err[0],
        "l4vs: import: ../lab-nat.yaml: the base config's 2 service(s) are not carried over: the imported ones replace them"
    );
    assert!(!err.iter().any(|l| l.contains("placeholders")), "{err:#?}");

    let out = l4vs(&[
        "import",
        "keepalived",
        "keepalived-sample.conf",
        "--base",
        "../lab-nat.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr_lines(&out),
        ["l4vs: import: keepalived-sample.conf:37: no route to 198.51.100.2: it is in no director address's subnet and there is no gateway (in the base config ../lab-nat.yaml)"]
    );
}

/// Broken files: nothing on stdout, the file and line on stderr, status 2.
#[test]
fn broken_files_are_refused_with_file_and_line() {
    let vs = |body: &str| format!("virtual_server 10.0.0.1 80 {{\n    lb_algo rr\n{body}}}\n");
    let cases: [(&str, String, &str); 6] = [
        (
            "syntax.conf",
            vs("    protocol \"TCP\n"),
            "syntax.conf:3: a double quote (\") is not closed on this line",
        ),
        (
            "lb-kind.conf",
            vs("    lb_kind MASQ\n"),
            "lb-kind.conf:3: unknown lb_kind `MASQ`: keepalived knows NAT, DR and TUN (in capitals)",
        ),
        (
            "brace.conf",
            "global_defs {\n    router_id X\n}\nvirtual_server 10.0.0.1 80 {\n    real_server 10.0.1.1 80 {\n        weight 1\n    }\n".to_owned(),
            "brace.conf:4: the block opened here is never closed: a `}` is missing",
        ),
        (
            "extra-brace.conf",
            format!("{}}}\n", vs("    real_server 10.0.1.1 80\n")),
            "extra-brace.conf:5: `}` without a block to close: a `{` is missing before it, or this `}` is one too many",
        ),
        (
            "no-address.conf",
            vs("    real_server {\n        weight 1\n    }\n"),
            "no-address.conf:3: real_server without an address: write `real_server IP [PORT]`",
        ),
        (
            "gue.conf",
            vs("    lb_kind TUN type gue port 6080\n"),
            "gue.conf:3: lb_kind TUN type `gue`: l4vs tunnels are IP-IP only, so a real server expecting another encapsulation would not understand them",
        ),
    ];
    let dir = temp_dir();
    for (name, text, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_l4vs"))
            .args(["import", "keepalived", name])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        assert_eq!(
            stderr_lines(&out),
            [format!("l4vs: import: {want}")],
            "{name}"
        );
    }

    let bad = dir.join("bad.save");
    std::fs::write(
        &bad,
        "-A -t 198.18.1.1:80 -s wlc\n-a -t 198.18.1.1:80 -r 198.18.2.11:80 -m -w many\n",
    )
    .unwrap();
    let out = l4vs(&["import", "ipvsadm", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_lines(&out);
    assert!(
        err.len() == 1
            && err[0].starts_with(&format!(
                "l4vs: import: {}:2: this line cannot be carried over: ",
                bad.display()
            )),
        "{err:#?}"
    );

    let out = l4vs(&["import", "keepalived", "/nonexistent/keepalived.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_lines(&out),
        ["l4vs: import: /nonexistent/keepalived.conf: cannot read the file to import: No such file or directory (os error 2)"]
    );

    // A base config's error is said once, with its own place.
    let out = l4vs(&[
        "import",
        "ipvsadm",
        bad.to_str().unwrap(),
        "--base",
        "/nonexistent/base.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_lines(&out),
        ["l4vs: import: /nonexistent/base.yaml: base config: cannot read the config file: No such file or directory (os error 2)"]
    );
    let base = dir.join("base.yaml");
    std::fs::write(&base, "# a base config\nnonsense: 1\n").unwrap();
    let out = l4vs(&[
        "import",
        "ipvsadm",
        bad.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_lines(&out);
    assert!(
        err.len() == 1
            && err[0].starts_with(&format!(
                "l4vs: import: {}:2: base config: nonsense: unknown key `nonsense`",
                base.display()
            )),
        "{err:#?}"
    );
}
