use std::path::PathBuf;
use std::time::Duration;

use super::kaconf::{self, Pattern, Stmt};
use super::keepalived::address_range;
use super::*;
use crate::config::{Check, CheckKind};
use l4vs_dataplane::model::{ForwardMethod, Persistence, Protocol, SchedulerKind};

const FILE: &str = "k.conf";

fn ka(text: &str) -> Result<Imported, ImportError> {
    import_text(Source::Keepalived, text, FILE, None)
}

fn adm(text: &str) -> Result<Imported, ImportError> {
    import_text(Source::Ipvsadm, text, "ipvsadm.save", None)
}

/// The warnings as printed, but the one about the placeholder config
/// every import without a base has.
fn warnings(i: &Imported) -> Vec<String> {
    i.warnings
        .iter()
        .filter(|w| !w.message.starts_with("without --base"))
        .map(ToString::to_string)
        .collect()
}

fn service<'a>(c: &'a Config, name: &str) -> &'a config::Service {
    c.services
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no service {name} in {:?}", c.services))
}

/// The statements of keepalived text.
fn tree(text: &str) -> Result<Vec<Stmt>, ImportError> {
    let mut w = Warnings::default();
    kaconf::parse(text, &Arc::from(FILE), &mut w)
}

fn words(s: &Stmt) -> Vec<&str> {
    s.words.iter().map(String::as_str).collect()
}

/// The error's line and message.
fn err_at(r: Result<Imported, ImportError>) -> (u32, String) {
    let e = r.expect_err("an error");
    (e.pos.line, e.message)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("l4vs-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---- syntax ----------------------------------------------------------

/// `!` and `#` start comments anywhere outside quotes, `\#` is a `#`;
/// quotes group words and hide braces; braces are tokens of their own.
#[test]
fn comments_quotes_and_braces_split_as_keepalived_does() {
    let t = tree(
        "! a comment\n\
         # another\n\
         global_defs {   # trailing\n\
         \x20 router_id \"two words\" ! gone\n\
         \x20 x \\#not-a-comment \"{ in quotes }\"\n\
         }\n\
         real_server 10.0.0.1 80 { weight 2 }\n",
    )
    .unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(words(&t[0]), ["global_defs"]);
    assert_eq!(t[0].pos.line, 3);
    let inner = t[0].block.as_ref().unwrap();
    assert_eq!(words(&inner[0]), ["router_id", "two words"]);
    assert_eq!(inner[0].pos.line, 4);
    assert_eq!(words(&inner[1]), ["x", "#not-a-comment", "{ in quotes }"]);
    assert_eq!(words(&t[1]), ["real_server", "10.0.0.1", "80"]);
    let b = t[1].block.as_ref().unwrap();
    assert_eq!(words(&b[0]), ["weight", "2"]);
    assert_eq!(b[0].pos.line, 7);
}

/// A `{` on the line after its statement opens that statement's block
/// (keepalived reads `virtual_server ...` and then `{`).
#[test]
fn brace_on_the_next_line_opens_the_block_of_the_statement_before() {
    let t = tree("virtual_server 10.0.0.1 80\n\n{\n  lb_algo rr\n}\nfoo\n").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(words(&t[0]), ["virtual_server", "10.0.0.1", "80"]);
    assert_eq!(words(&t[0].block.as_ref().unwrap()[0]), ["lb_algo", "rr"]);
    assert!(t[1].block.is_none());
}

#[test]
fn syntax_errors_name_their_line() {
    let cases: [(&str, u32, &str); 5] = [
        ("a {\n  b \"open\n}\n", 2, "double quote"),
        ("a {\n}\n}\n", 3, "`}` without a block"),
        (
            "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n  }\n",
            1,
            "never closed",
        ),
        ("a { }\n{\n}\n", 2, "`{` without a keyword"),
        ("$PORT=80\n", 1, "parameter definitions"),
    ];
    for (text, line, what) in cases {
        let e = tree(text).expect_err(text);
        assert_eq!(e.pos.line, line, "{text}: {e}");
        assert!(e.message.contains(what), "{text}: {e}");
    }
}

/// An `@ID` line holds only on the host whose config_id is ID: refused
/// where it would be carried over, a plain warning where it would not.
#[test]
fn conditional_lines_are_refused_where_they_are_carried_over() {
    let (line, m) = err_at(ka(
        "virtual_server 10.0.0.1 80 {\n  @lb1 lb_algo rr\n  real_server 10.0.1.1 80\n}\n",
    ));
    assert_eq!(line, 2);
    assert!(m.contains("config_id is lb1"), "{m}");
    let (line, m) = err_at(ka("@lb1 virtual_server 10.0.0.1 80 {\n}\n"));
    assert_eq!(line, 1);
    assert!(m.contains("(@ID)"), "{m}");
    let i = ka("global_defs {\n  @lb1 router_id LB1\n}\n").unwrap();
    assert_eq!(
        warnings(&i),
        [
            "k.conf:2: router_id is not carried over (global_defs)",
            "k.conf: no virtual service is carried over: the file defines none"
        ]
    );
}

#[test]
fn glob_patterns_match_as_fnmatch() {
    let cases: [(&str, &str, bool); 10] = [
        ("*.conf", "web.conf", true),
        ("*.conf", "web.conf.bak", false),
        ("w?b.conf", "web.conf", true),
        ("[a-c]*", "b", true),
        ("[!a-c]*", "b", false),
        ("[^a-c]x", "dx", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("\\*", "*", true),
        ("[x", "[x", true),
    ];
    for (p, n, m) in cases {
        assert_eq!(Pattern::new(p).matches(n), m, "{p} ~ {n}");
    }
}

/// `include` reads the matching files in sorted order, relative to the
/// including file; their lines are named by their own file.
#[test]
fn includes_are_followed_relative_to_the_including_file() {
    let d = temp_dir("include");
    std::fs::create_dir_all(d.join("conf.d")).unwrap();
    std::fs::write(
        d.join("conf.d/b.conf"),
        "real_server 10.0.1.2 80 {\n  weight 2\n  TCP_CHECK {\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(d.join("conf.d/a.conf"), "real_server 10.0.1.1 80\n").unwrap();
    std::fs::write(d.join("conf.d/.hidden.conf"), "garbage {\n").unwrap();
    let main = d.join("main.conf");
    let text = "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  include conf.d/*.conf\n  include none/*.conf\n}\n";
    std::fs::write(&main, text).unwrap();
    let i = import(Source::Keepalived, &main, None).unwrap();
    let s = service(&i.config, "tcp-10-0-0-1-80");
    let reals: Vec<(String, u32)> = s
        .reals
        .iter()
        .map(|r| (r.address.to_string(), r.weight))
        .collect();
    assert_eq!(
        reals,
        [("10.0.1.1".to_owned(), 1), ("10.0.1.2".to_owned(), 2)]
    );
    let m = main.display();
    assert_eq!(
        warnings(&i),
        [
            format!("{m}:6: include `none/*.conf`: no file matches, so nothing is included (keepalived passes over it too)"),
        ]
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A file without services says so (a sync daemon line, which says where
/// the daemon goes, defines none).
#[test]
fn an_empty_file_and_a_sync_daemon_line() {
    for i in [adm("").unwrap(), ka("# nothing\n").unwrap()] {
        let file = &i.warnings.last().unwrap().pos.file;
        assert_eq!(
            warnings(&i),
            [format!(
                "{file}: no virtual service is carried over: the file defines none"
            )]
        );
    }
    let i = adm("--start-daemon master --mcast-interface eth0\n").unwrap();
    assert_eq!(
        warnings(&i),
        [
            "ipvsadm.save:1: --start-daemon master is carried over as sync: with role master, on the config's first port (or the base config's sync port) instead of `eth0`: check sync.interface",
            // Without services the placeholder port has no address.
            "ipvsadm.save:1: --start-daemon is not carried over: port lan has no address to send the messages from",
            "ipvsadm.save: no virtual service is carried over: the file defines none"
        ]
    );
    // A service that is left out is what the warnings above explain.
    let i = adm("-A -t [2001:db8::1]:80 -s rr\n").unwrap();
    assert_eq!(
        warnings(&i),
        [
            "ipvsadm.save:1: this IPv6 line is not carried over: l4vs forwards IPv4 only so far",
            "ipvsadm.save: no virtual service is carried over (the warnings above say why for each one left out)"
        ]
    );
}

/// A byte-order mark that an editor wrote at the start of a file is
/// skipped, in the imported file and in an included one: the first
/// block is carried over (it was a warning about a keyword `\u{feff}
/// virtual_server`, and no service).
#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let i = ka("\u{feff}virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.1.1 80\n}\n").unwrap();
    service(&i.config, "tcp-10-0-0-1-80");
    assert_eq!(warnings(&i), Vec::<String>::new());
    let i = adm("\u{feff}-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n").unwrap();
    assert_eq!(service(&i.config, "tcp-10-0-0-1-80").reals.len(), 1);

    let d = temp_dir("bom");
    std::fs::write(d.join("reals.conf"), "\u{feff}real_server 10.0.1.2 80\n").unwrap();
    let main = d.join("main.conf");
    std::fs::write(
        &main,
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  include reals.conf\n}\n",
    )
    .unwrap();
    let i = import(Source::Keepalived, &main, None).unwrap();
    let s = service(&i.config, "tcp-10-0-0-1-80");
    assert_eq!(s.reals.len(), 1);
    assert_eq!(s.reals[0].address.to_string(), "10.0.1.2");
    let _ = std::fs::remove_dir_all(&d);
}

/// A file at a path too long to show whole is still read from that path
/// (its includes are found from it); its messages show the path cut.
#[test]
fn a_long_path_is_read_whole_and_shown_cut() {
    let d = temp_dir("long").join("d".repeat(200)).join("e".repeat(100));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("reals.conf"), "real_server 10.0.1.2 80\n").unwrap();
    let main = d.join("main.conf");
    std::fs::write(
        &main,
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  include reals.conf\n  nonsense 1\n}\n",
    )
    .unwrap();
    let i = import(Source::Keepalived, &main, None).unwrap();
    let s = service(&i.config, "tcp-10-0-0-1-80");
    assert_eq!(s.reals.len(), 1);
    let m = main.display().to_string();
    assert!(m.chars().count() > config::MAX_PATH_CHARS);
    let w = warnings(&i);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(&format!(
            "{}… ({} bytes):6: ",
            &m[..config::MAX_ECHO_CHARS],
            m.len()
        )),
        "{w:?}"
    );
    let _ = std::fs::remove_dir_all(temp_dir("long"));
}

#[test]
fn an_include_loop_is_an_error() {
    let d = temp_dir("loop");
    std::fs::write(d.join("a.conf"), "global_defs {\n}\ninclude b.conf\n").unwrap();
    std::fs::write(d.join("b.conf"), "\ninclude a.conf\n").unwrap();
    let e = import(Source::Keepalived, &d.join("a.conf"), None).unwrap_err();
    assert_eq!(e.pos.line, 2, "{e}");
    assert!(e.pos.file.ends_with("b.conf"), "{e}");
    assert!(e.message.contains("includes itself"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

// ---- keepalived mapping ----------------------------------------------

const SAMPLE: &str = "\
! Configuration File for keepalived
global_defs {
   notification_email {
     acassen
   }
   router_id LVS_DEVEL
   lvs_timeouts tcp 7200 udp 60
}
vrrp_instance VI_1 {
    interface eth0
}
virtual_server 203.0.113.10 1358 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    persistence_timeout 50
    protocol TCP
    sorry_server 198.51.100.200 1358
    quorum_down \"/usr/local/bin/page-oncall lb-down\"
    real_server 198.51.100.2 1358 {
        weight 3
        uthreshold 100
        lthreshold 50
        HTTP_GET {
            url {
              path /
            }
        }
    }
    real_server 198.51.100.3 {
        inhibit_on_failure
    }
}
";

#[test]
fn the_sample_maps_key_by_key_and_warns_about_the_rest() {
    let i = ka(SAMPLE).unwrap();
    let s = service(&i.config, "tcp-203-0-113-10-1358");
    assert_eq!(s.vip, Ipv4Addr::new(203, 0, 113, 10));
    assert_eq!((s.port, s.protocol), (1358, Protocol::Tcp));
    assert_eq!(s.scheduler, SchedulerKind::Rr);
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout: 50,
            netmask: 32
        })
    );
    assert_eq!(s.reals.len(), 2);
    let r = s.reals[0];
    assert_eq!(
        (r.address, r.port, r.weight, r.forward),
        (Ipv4Addr::new(198, 51, 100, 2), 1358, 3, ForwardMethod::Nat)
    );
    assert_eq!((r.upper_threshold, r.lower_threshold), (100, 50));
    // No port on a NAT real: the service's.
    assert_eq!((s.reals[1].port, s.reals[1].weight), (1358, 1));
    // sorry_server: in while no real is up (quorum 1), with the service's
    // forwarding method.
    assert_eq!(
        s.sorry_server.map(|r| (r.address, r.port, r.forward)),
        Some((Ipv4Addr::new(198, 51, 100, 200), 1358, ForwardMethod::Nat))
    );
    assert_eq!((s.quorum, s.hysteresis), (1, 0));
    // quorum_down: one command line, run by sh -c.
    assert_eq!(
        (s.quorum_up.as_deref(), s.quorum_down.as_deref()),
        (None, Some("/usr/local/bin/page-oncall lb-down"))
    );
    assert_eq!(i.config.timeouts.tcp_established, 7200);
    assert_eq!(i.config.timeouts.udp, 60);
    assert_eq!(i.config.timeouts.tcp_fin_wait, 120);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:3: notification_email is not carried over (global_defs)",
            "k.conf:6: router_id is not carried over (global_defs)",
            "k.conf:9: vrrp_instance VI_1 is not carried over: it has no virtual_router_id (keepalived drops it too)",
            "k.conf:20: real_server 198.51.100.2 1358 has no inhibit_on_failure, but l4vs has it per service: this real too keeps weight 0 when its check fails, like real_server 198.51.100.3 (inhibit_on_failure at k.conf:31)",
        ]
    );
    // HTTP_GET with keepalived's defaults: any 2xx, delay_before_retry
    // 3 s, warmup up to delay_loop, for the first real only (the second
    // has no checker: it is not checked).
    assert!(s.inhibit_on_failure);
    assert_eq!(s.check, None);
    assert_eq!(s.real_checks.len(), 1);
    assert_eq!(
        s.real_checks
            .get(&(Ipv4Addr::new(198, 51, 100, 2), 1358))
            .cloned()
            .flatten(),
        Some(Check {
            kind: CheckKind::Http {
                path: "/".to_owned(),
                status_codes: (200..=299).collect(),
                virtualhost: None,
                digest: None,
                contains: None,
                tls: false,
                enable_sni: false,
            },
            connect_port: None,
            delay_loop: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(3),
            alpha: false,
            warmup: Duration::from_secs(6),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        })
    );
    // The output loads to the same config.
    assert_eq!(
        config::parse(&i.yaml, "out.yaml").unwrap(),
        i.config,
        "{}",
        i.yaml
    );
}

/// One virtual server with `body` inside, and its line-1 header.
fn vs(body: &str) -> String {
    format!("virtual_server 10.0.0.1 80 {{\n{body}}}\n")
}

#[test]
fn lb_kind_names_map_to_forwarding_methods() {
    for (kind, m) in [
        ("NAT", ForwardMethod::Nat),
        ("DR", ForwardMethod::DirectRouting),
        ("TUN", ForwardMethod::Tunnel),
        ("TUN type ipip nocsum", ForwardMethod::Tunnel),
    ] {
        let i = ka(&vs(&format!(
            "lb_algo rr\nprotocol TCP\nlb_kind {kind}\nreal_server 10.0.1.1 80\n"
        )))
        .unwrap();
        assert_eq!(i.config.services[0].forward, m, "{kind}");
        assert_eq!(i.config.services[0].reals[0].forward, m, "{kind}");
    }
    // A real's own lvs_method wins.
    let i = ka(&vs(
        "lb_algo rr\nprotocol TCP\nlb_kind DR\nreal_server 10.0.1.1 80 {\n lvs_method TUN\n}\nreal_server 10.0.1.2 80\n",
    ))
    .unwrap();
    let methods: Vec<ForwardMethod> = i.config.services[0]
        .reals
        .iter()
        .map(|r| r.forward)
        .collect();
    assert_eq!(
        methods,
        [ForwardMethod::Tunnel, ForwardMethod::DirectRouting]
    );
}

#[test]
fn meanings_that_cannot_be_kept_are_errors_with_their_line() {
    let cases: [(String, u32, &str); 9] = [
        (
            vs("lb_kind nat\n"),
            2,
            "unknown lb_kind `nat`: keepalived knows NAT, DR and TUN (in capitals)",
        ),
        (vs("lb_kind TUN type gue port 6080\n"), 2, "IP-IP only"),
        (vs("lb_algo fastest\n"), 2, "unknown scheduler `fastest`"),
        (vs("real_server\n"), 2, "real_server without an address"),
        (
            vs("real_server 10.0.1.x 80\n"),
            2,
            "`10.0.1.x` is not an IP address",
        ),
        (
            vs("real_server 10.0.1.1 80 {\n weight -1\n}\n"),
            3,
            "weight: `-1` is not a number in 0..=2147483647",
        ),
        (vs("persistence_granularity 255.0.255.0\n"), 2, "contiguous"),
        (vs("protocol ICMP\n"), 2, "unknown protocol"),
        (vs("weight 1 {\n}\n"), 2, "weight takes no { } block"),
    ];
    for (text, line, what) in cases {
        let (l, m) = err_at(ka(&text));
        assert_eq!(l, line, "{text}: {m}");
        assert!(m.contains(what), "{text}: {m}");
    }
}

/// keepalived's defaults and corrections are made, each with a warning.
#[test]
fn keepalived_defaults_and_corrections_are_kept_and_said() {
    let i = ka(&vs("real_server 10.0.1.1 80\n")).unwrap();
    let s = &i.config.services[0];
    assert_eq!(s.protocol, Protocol::Udp);
    assert_eq!(s.scheduler, SchedulerKind::Wlc);
    assert_eq!(s.forward, ForwardMethod::Nat);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:1: virtual_server 10.0.0.1 80 has no lb_algo: keepalived's default, wlc, is used",
            "k.conf:1: virtual_server 10.0.0.1 80 has no protocol: keepalived makes it UDP (the kernel's default), and so does the import; write `protocol TCP` for TCP",
            "k.conf:1: virtual_server 10.0.0.1 80 has no lb_kind: keepalived's default, NAT, is used",
        ]
    );

    // ops stays on UDP, the default protocol.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind DR\nops\nreal_server 10.0.1.1 80\n",
    ))
    .unwrap();
    assert!(i.config.services[0].ops);
    assert_eq!(i.config.services[0].protocol, Protocol::Udp);

    // ops on TCP is cleared; a DR real's other port is reset.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind DR\nprotocol TCP\nops\nreal_server 10.0.1.1 8080\n",
    ))
    .unwrap();
    let s = &i.config.services[0];
    assert!(!s.ops);
    assert_eq!(s.reals[0].port, 80);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:5: ops is not carried over (virtual_server 10.0.0.1 80): one-packet scheduling needs protocol UDP, and keepalived clears it too",
            "k.conf:6: the port of real_server 10.0.1.1 8080 is not carried over: keepalived resets it to the virtual_server's, as DR and tunnel keep the packet's port",
        ]
    );

    // Port 0 without persistence becomes persistent.
    let i = ka("virtual_server 10.0.0.1 0 {\nlb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1\n}\n").unwrap();
    assert_eq!(
        i.config.services[0].persistence,
        Some(Persistence {
            timeout: 360,
            netmask: 32
        })
    );
    assert!(warnings(&i)[0].contains("port 0 (every port) without persistence_timeout"));

    // The virtual server's weight is its reals' default weight; a
    // repeated real is dropped.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nweight 4\nreal_server 10.0.1.1 80\nreal_server 10.0.1.2 80 {\n weight 0\n}\nreal_server 10.0.1.1 80\n",
    ))
    .unwrap();
    let weights: Vec<u32> = i.config.services[0]
        .reals
        .iter()
        .map(|r| r.weight)
        .collect();
    assert_eq!(weights, [4, 0]);
    assert_eq!(
        warnings(&i),
        ["k.conf:10: real_server 10.0.1.1 80 is not carried over: it repeats the one at k.conf:6, and keepalived keeps only the first"]
    );
}

/// Scheduler flags count only after their scheduler (keepalived's
/// `lbflags_handler`); flag-1 and flag-2 are the fallback and port bits.
#[test]
fn scheduler_flags_follow_keepalived() {
    let i = ka(&vs(
        "sh-port\nlb_algo sh\nsh-fallback\nlb_kind DR\nprotocol TCP\nreal_server 10.0.1.1 80\n",
    ))
    .unwrap();
    assert_eq!(
        i.config.services[0].scheduler,
        SchedulerKind::Sh {
            port: false,
            fallback: true
        }
    );
    assert_eq!(
        warnings(&i),
        ["k.conf:2: sh-port is not carried over (virtual_server 10.0.0.1 80): keepalived applies it only after `lb_algo sh`"]
    );
    let i = ka(&vs(
        "lb_algo mh\nflag-1\nflag-2\nlb_kind DR\nprotocol TCP\nreal_server 10.0.1.1 80\n",
    ))
    .unwrap();
    assert_eq!(
        i.config.services[0].scheduler.flags().collect::<Vec<_>>(),
        ["mh-port", "mh-fallback"]
    );
    let i = ka(&vs(
        "lb_algo rr\nflag-2\nlb_kind DR\nprotocol TCP\nreal_server 10.0.1.1 80\n",
    ))
    .unwrap();
    assert_eq!(i.config.services[0].scheduler, SchedulerKind::Rr);
    assert_eq!(
        warnings(&i),
        ["k.conf:3: flag-2 is not carried over (virtual_server 10.0.0.1 80): it means nothing to scheduler rr"]
    );
}

// ---- keepalived checkers ---------------------------------------------

/// The check of the only service of `i`.
fn the_check(i: &Imported) -> &Check {
    i.config.services[0]
        .check
        .as_ref()
        .unwrap_or_else(|| panic!("no check: {}", i.yaml))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// TCP_CHECK: each setting the checker's, else its real_server's, else
/// its virtual_server's, else keepalived's default; nb_get_retry is
/// retry.
#[test]
fn tcp_check_maps_with_keepalived_cascade_and_defaults() {
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol TCP
delay_loop 10
retry 2
real_server 10.0.1.1 80 {
  connect_timeout 4.5
  TCP_CHECK {
    connect_port 8080
    nb_get_retry 5
    warmup 0
  }
}
"))
    .unwrap();
    assert_eq!(
        *the_check(&i),
        Check {
            kind: CheckKind::Tcp,
            connect_port: Some(8080),
            delay_loop: secs(10.0),
            connect_timeout: secs(4.5),
            retry: 5,
            delay_before_retry: secs(1.0),
            alpha: false,
            warmup: Duration::ZERO,
            notify_up: None,
            notify_down: None,
            through_vip: false,
        }
    );
    assert_eq!(warnings(&i), [] as [String; 0]);
    assert!(!i.config.services[0].inhibit_on_failure);
    // Nothing written: keepalived's defaults, warmup up to delay_loop.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 80 {\n  TCP_CHECK {\n  }\n}\n",
    ))
    .unwrap();
    assert_eq!(
        *the_check(&i),
        Check {
            kind: CheckKind::Tcp,
            connect_port: None,
            delay_loop: secs(60.0),
            connect_timeout: secs(5.0),
            retry: 1,
            delay_before_retry: secs(1.0),
            alpha: false,
            warmup: secs(60.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        }
    );
    // The output loads to the same config.
    assert_eq!(config::parse(&i.yaml, "out.yaml").unwrap(), i.config);
}

/// HTTP_GET: the url's path and status codes (ranges expanded; none is
/// keepalived's 200-299), virtualhost from the url, the checker, the
/// real_server or the virtual_server, nearest first; a plain-text regex
/// is `contains`.
#[test]
fn http_get_maps_status_codes_and_virtualhost() {
    let text = |rs: &str, checker: &str, url: &str| {
        vs(&format!(
            "lb_algo rr
lb_kind NAT
protocol TCP
virtualhost vs.example.org
real_server 10.0.1.1 80 {{
  {rs}
  HTTP_GET {{
    {checker}
    url {{
      path /health?full=1
      status_code 200 204 300-302
      {url}
    }}
  }}
}}
"
        ))
    };
    let http = |i: &Imported| match &the_check(i).kind {
        CheckKind::Http {
            path,
            status_codes,
            virtualhost,
            contains,
            ..
        } => (
            path.clone(),
            status_codes.clone(),
            virtualhost.clone(),
            contains.clone(),
        ),
        other => panic!("{other:?}"),
    };
    let i = ka(&text("", "", "")).unwrap();
    assert_eq!(
        http(&i),
        (
            "/health?full=1".to_owned(),
            vec![200, 204, 300, 301, 302],
            Some("vs.example.org".to_owned()),
            None
        )
    );
    assert_eq!(the_check(&i).delay_before_retry, secs(3.0));
    assert_eq!(warnings(&i), [] as [String; 0]);
    let host = |rs: &str, checker: &str, url: &str| {
        let i = ka(&text(rs, checker, url)).unwrap();
        http(&i).2.unwrap()
    };
    assert_eq!(host("virtualhost rs.example.org", "", ""), "rs.example.org");
    assert_eq!(
        host(
            "virtualhost rs.example.org",
            "virtualhost c.example.org",
            ""
        ),
        "c.example.org"
    );
    assert_eq!(
        host(
            "virtualhost rs.example.org",
            "virtualhost c.example.org",
            "virtualhost url.example.org"
        ),
        "url.example.org"
    );
    // The virtual_server's virtualhost taken by none: a warning.
    let i = ka(&text("", "virtualhost c.example.org", "")).unwrap();
    assert_eq!(
        warnings(&i),
        ["k.conf:5: virtualhost is not carried over (virtual_server 10.0.0.1 80): no HTTP_GET or SSL_GET carried over takes its Host from it"]
    );

    // A plain-text regex is contains; a real regex is a warning.
    let i = ka(&text("", "", "regex \"status: ok\"")).unwrap();
    assert_eq!(http(&i).3.as_deref(), Some("status: ok"));
    let i = ka(&text("", "", "regex ^ok$\n      regex_no_match")).unwrap();
    assert_eq!(http(&i).3, None);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:13: regex is not carried over (HTTP_GET of real_server 10.0.1.1 80): l4vs checks for a plain text the body contains (`contains`), not a regular expression",
            "k.conf:14: regex_no_match is not carried over (HTTP_GET of real_server 10.0.1.1 80): l4vs checks for a plain text the body contains (`contains`), not a regular expression",
        ]
    );

    let (line, m) = err_at(ka(&text("", "", "status_code 99")));
    assert_eq!(line, 13);
    assert!(m.contains("status_code `99`: not a status code"), "{m}");
}

/// keepalived checks a digest of the body and every url; l4vs a status
/// and text, and one path: the first url is carried over, the rest are
/// warnings.
#[test]
fn digest_and_more_urls_are_warnings() {
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol TCP
real_server 10.0.1.1 80 {
  HTTP_GET {
    url {
      status_code 200
    }
    url {
      path /a
      digest 640205b7b0fc66c1ea91c463fac6334d
    }
    url {
      path /b
      digest 9b3a0c85a887a256d6939da88aabd8cd
    }
    http_protocol 1.0
  }
}
"))
    .unwrap();
    assert!(
        matches!(&the_check(&i).kind, CheckKind::Http { path, status_codes, digest: Some(d), .. }
            if path == "/a" && status_codes.len() == 100 && d[..3] == [0x64, 0x02, 0x05] && d[15] == 0x4d)
    );
    assert_eq!(
        warnings(&i),
        [
            "k.conf:7: url is not carried over (HTTP_GET of real_server 10.0.1.1 80): it has no path, and keepalived ignores such a url too",
            "k.conf:14: url is not carried over (HTTP_GET of real_server 10.0.1.1 80): l4vs checks one path, where keepalived needs every url to pass; the first, `/a` (k.conf:11), is carried over",
            "k.conf:18: http_protocol is not carried over (HTTP_GET of real_server 10.0.1.1 80): l4vs sends HTTP/1.1 requests with Connection: close (keepalived's http_protocol 1.1)",
        ]
    );
    // Without a url with a path, keepalived drops the checker.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 80 {\n  HTTP_GET {\n  }\n}\n",
    ))
    .unwrap();
    assert_eq!(i.config.services[0].check, None);
    assert_eq!(
        warnings(&i),
        ["k.conf:6: HTTP_GET is not carried over (real_server 10.0.1.1 80): it has no url with a path, and keepalived ignores such a checker too"]
    );
}

/// MISC_CHECK: misc_path as one command line, the real's address in it
/// as l4vs's variable, misc_dynamic, retry 0 by default, and without
/// misc_timeout the virtual_server's delay_loop (not the checker's). On a
/// UDP service too.
#[test]
fn misc_check_maps_with_misc_dynamic() {
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol UDP
delay_loop 8
real_server 10.0.1.1 80 {
  MISC_CHECK {
    misc_path \"/usr/bin/dig @10.0.1.1 example.org\"
    misc_dynamic
    delay_loop 2
    user nobody
  }
}
"))
    .unwrap();
    assert_eq!(
        *the_check(&i),
        Check {
            kind: CheckKind::Misc {
                path: "/usr/bin/dig @${L4VS_REAL_ADDRESS} example.org".to_owned(),
                timeout: secs(8.0),
                dynamic: true,
            },
            connect_port: None,
            delay_loop: secs(2.0),
            connect_timeout: secs(5.0),
            retry: 0,
            delay_before_retry: secs(1.0),
            alpha: false,
            warmup: secs(2.0),
            notify_up: None,
            notify_down: None,
            through_vip: false,
        }
    );
    assert_eq!(
        warnings(&i),
        ["k.conf:11: user is not carried over (MISC_CHECK of real_server 10.0.1.1 80): l4vs runs the command as the user l4vs runs as"]
    );
    assert_eq!(config::parse(&i.yaml, "out.yaml").unwrap(), i.config);
    // Commands that name their own real are one command for l4vs; an
    // address that only starts like the real's is kept.
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol TCP
real_server 10.0.1.1 80 {
  MISC_CHECK {
    misc_path \"/bin/check 10.0.1.1 10.0.1.10\"
  }
}
real_server 10.0.1.2 80 {
  MISC_CHECK {
    misc_path \"/bin/check 10.0.1.2 10.0.1.10\"
  }
}
"))
    .unwrap();
    assert!(
        matches!(&the_check(&i).kind, CheckKind::Misc { path, .. } if path == "/bin/check ${L4VS_REAL_ADDRESS} 10.0.1.10"),
        "{}",
        i.yaml
    );
    assert_eq!(warnings(&i), [] as [String; 0]);
    // keepalived runs the first word only, without a shell.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 80 {\n  MISC_CHECK {\n    misc_path /bin/check $HOST\n    misc_timeout 3\n  }\n}\n",
    ))
    .unwrap();
    assert!(
        matches!(&the_check(&i).kind, CheckKind::Misc { path, timeout, dynamic: false } if path == "/bin/check" && *timeout == secs(3.0))
    );
    assert_eq!(
        warnings(&i),
        ["k.conf:7: the words after misc_path's first, `$HOST`, are not carried over (MISC_CHECK of real_server 10.0.1.1 80): keepalived runs only the first word (quote the whole command line to pass arguments)"]
    );
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 80 {\n  MISC_CHECK {\n    misc_path \"/bin/check $HOST\"\n  }\n}\n",
    ))
    .unwrap();
    assert!(warnings(&i)[0].starts_with(
        "k.conf:7: misc_path `/bin/check $HOST` is carried over, but l4vs runs it with sh -c"
    ));
}

/// Reals whose checkers differ keep each their own (a real without one
/// is not checked, as in keepalived); a real's second checker is a
/// warning with its line.
#[test]
fn reals_with_other_checkers_keep_their_own() {
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol TCP
real_server 10.0.1.1 80
real_server 10.0.1.2 80 {
  TCP_CHECK {
    connect_timeout 3
  }
}
real_server 10.0.1.3 80 {
  TCP_CHECK {
    connect_timeout 4
    retry 2
  }
}
real_server 10.0.1.4 80 {
  HTTP_GET {
    url {
      path /
    }
  }
}
real_server 10.0.1.5 80 {
  TCP_CHECK {
    connect_timeout 3
  }
  MISC_CHECK {
    misc_path /bin/true
  }
}
"))
    .unwrap();
    let s = &i.config.services[0];
    assert_eq!(s.check, None);
    let own = |last: u8| {
        s.real_checks
            .get(&(Ipv4Addr::new(10, 0, 1, last), 80))
            .map(|c| {
                let c = c.as_ref().unwrap();
                (c.kind.as_str(), c.connect_timeout, c.retry)
            })
    };
    assert_eq!(own(1), None, "not checked");
    assert_eq!(own(2), Some(("tcp", secs(3.0), 1)));
    assert_eq!(own(3), Some(("tcp", secs(4.0), 2)));
    assert_eq!(own(4), Some(("http", secs(5.0), 1)));
    assert_eq!(own(5), Some(("tcp", secs(3.0), 1)));
    assert_eq!(
        warnings(&i),
        [
            "k.conf:28: MISC_CHECK is not carried over (real_server 10.0.1.5 80): l4vs runs one check per real server, where keepalived needs all of a real's checkers to pass; TCP_CHECK (k.conf:25) is carried over",
        ]
    );
    // The output loads, with each real's check under it.
    assert!(i.yaml.contains("check: {type: http, "), "{}", i.yaml);
    let back = crate::config::parse(&i.yaml, "out.yaml").unwrap();
    assert_eq!(back.services[0].real_checks, s.real_checks);
}

/// SSL_GET is an https check (enable_sni and digest kept), a second
/// checker of a real and the checkers l4vs does not have are warnings, and
/// so are the settings no carried checker uses.
#[test]
fn ssl_get_is_https_and_other_checkers_are_warnings() {
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol TCP
delay_loop 3
real_server 10.0.1.1 443 {
  alpha
  SSL_GET {
    enable_sni
    url {
      path /
      digest 640205B7B0FC66C1EA91C463FAC6334D
      virtualhost www.example.org
    }
  }
  DNS_CHECK {
    name example.org
  }
}
"))
    .unwrap();
    let c = the_check(&i);
    assert_eq!(
        c.kind,
        CheckKind::Http {
            path: "/".to_owned(),
            status_codes: (200..=299).collect(),
            virtualhost: Some("www.example.org".to_owned()),
            digest: Some([
                0x64, 0x02, 0x05, 0xb7, 0xb0, 0xfc, 0x66, 0xc1, 0xea, 0x91, 0xc4, 0x63, 0xfa, 0xc6,
                0x33, 0x4d
            ]),
            contains: None,
            tls: true,
            enable_sni: true,
        }
    );
    assert_eq!(
        (c.alpha, c.delay_loop, c.delay_before_retry),
        (true, Duration::from_secs(3), Duration::from_secs(3))
    );
    assert_eq!(
        warnings(&i),
        [
            "k.conf:16: DNS_CHECK is not carried over (real_server 10.0.1.1 443): l4vs runs one check per real server, where keepalived needs all of a real's checkers to pass; SSL_GET (k.conf:8) is carried over",
        ]
    );
    let i = ka(&vs("lb_algo rr
lb_kind NAT
protocol TCP
delay_loop 3
real_server 10.0.1.1 25 {
  alpha
  SMTP_CHECK {
  }
}
"))
    .unwrap();
    assert_eq!(i.config.services[0].check, None);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:5: delay_loop is not carried over (virtual_server 10.0.0.1 80): no real server of it has a checker l4vs carries over",
            "k.conf:7: alpha is not carried over (real_server 10.0.1.1 25): it has no checker l4vs carries over",
            "k.conf:8: SMTP_CHECK is not carried over (real_server 10.0.1.1 25): l4vs has no SMTP check (a MISC_CHECK with a command that talks SMTP can check it)",
        ]
    );
}

/// DNS_CHECK and UDP_CHECK of a UDP service are dns and udp checks, with
/// keepalived's defaults (a DNS_CHECK retries 3 times); a UDP_CHECK of a
/// TCP service is left out.
#[test]
fn dns_and_udp_checks_are_carried_over() {
    let i = ka(&vs("lb_algo rr
lb_kind DR
protocol UDP
real_server 10.0.1.1 80 {
  DNS_CHECK {
    connect_port 53
    type a
    name www.example.org
  }
}
"))
    .unwrap();
    let c = the_check(&i);
    assert_eq!(
        c.kind,
        CheckKind::Dns {
            record_type: crate::config::DnsRecordType::A,
            name: "www.example.org".to_owned()
        }
    );
    assert_eq!(c.retry, 3);
    assert_eq!(warnings(&i), Vec::<String>::new());
    let udp = |protocol: &str| {
        ka(&vs(&format!(
            "lb_algo rr
lb_kind DR
protocol {protocol}
real_server 10.0.1.1 80 {{
  UDP_CHECK {{
    connect_port 53
    payload 70696e67
    require_reply 706f6e67
    min_reply_length 4
  }}
}}
"
        )))
        .unwrap()
    };
    let i = udp("UDP");
    assert_eq!(
        the_check(&i).kind,
        CheckKind::Udp {
            payload: b"ping".to_vec(),
            require_reply: Some(b"pong".to_vec())
        }
    );
    assert_eq!(
        warnings(&i),
        ["k.conf:10: min_reply_length is not carried over (UDP_CHECK of real_server 10.0.1.1 80): l4vs's udp check wants a reply that starts with require_reply, of any length"]
    );
    let i = udp("TCP");
    assert_eq!(i.config.services[0].check, None);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:6: UDP_CHECK is not carried over (real_server 10.0.1.1 80): l4vs refuses UDP checks of a TCP service, whose reals answer TCP (a TCP_CHECK can check them)",
            "k.conf:10: min_reply_length is not carried over (UDP_CHECK of real_server 10.0.1.1 80): l4vs's udp check wants a reply that starts with require_reply, of any length",
        ]
    );
    // Bad hex is an error with its line, as keepalived refuses it.
    let e = ka(&vs(
        "lb_algo rr\nlb_kind DR\nprotocol UDP\nreal_server 10.0.1.1 80 {\n  UDP_CHECK {\n    payload 7g\n  }\n}\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("k.conf:7: payload `7g`: not bytes in hex"),
        "{e}"
    );
}

/// l4vs refuses TCP and HTTP checks of a UDP service: the check is left
/// out with a warning, not an error.
#[test]
fn a_tcp_check_of_a_udp_service_is_left_out() {
    let i = ka(&vs(
        "lb_algo rr\nlb_kind DR\nprotocol UDP\nreal_server 10.0.1.1 80 {\n  TCP_CHECK {\n    connect_port 53\n  }\n}\n",
    ))
    .unwrap();
    assert_eq!(i.config.services[0].check, None);
    assert_eq!(
        warnings(&i),
        ["k.conf:6: TCP_CHECK is not carried over (real_server 10.0.1.1 80): l4vs refuses TCP, HTTP and HTTPS checks of a UDP service, whose reals answer UDP (a UDP_CHECK or DNS_CHECK can check them)"]
    );
}

/// inhibit_on_failure is per service in l4vs: on when any real has it,
/// with a warning at each real that has not.
#[test]
fn inhibit_on_failure_is_the_services() {
    let body = |vs_line: &str, rs2: &str| {
        vs(&format!(
            "lb_algo rr
lb_kind NAT
protocol TCP
{vs_line}
real_server 10.0.1.1 80 {{
  TCP_CHECK {{
  }}
}}
real_server 10.0.1.2 80 {{
  {rs2}
  TCP_CHECK {{
  }}
}}
"
        ))
    };
    let i = ka(&body("inhibit_on_failure", "")).unwrap();
    assert!(i.config.services[0].inhibit_on_failure);
    assert_eq!(warnings(&i), [] as [String; 0]);
    let i = ka(&body("", "inhibit_on_failure yes")).unwrap();
    assert!(i.config.services[0].inhibit_on_failure);
    assert_eq!(
        warnings(&i),
        ["k.conf:6: real_server 10.0.1.1 80 has no inhibit_on_failure, but l4vs has it per service: this real too keeps weight 0 when its check fails, like real_server 10.0.1.2 80 (inhibit_on_failure at k.conf:11)"]
    );
    let i = ka(&body("inhibit_on_failure", "inhibit_on_failure false")).unwrap();
    assert!(i.config.services[0].inhibit_on_failure);
    assert_eq!(warnings(&i).len(), 1);
    let i = ka(&body("", "")).unwrap();
    assert!(!i.config.services[0].inhibit_on_failure);
}

/// keepalived's checker connects to the port of the real_server line as
/// written, even where keepalived then gives the real the service's.
#[test]
fn a_checker_checks_the_port_written_on_the_real_server_line() {
    let i = ka(&vs(
        "lb_algo rr\nlb_kind DR\nprotocol TCP\nreal_server 10.0.1.1 8080 {\n  TCP_CHECK {\n  }\n}\n",
    ))
    .unwrap();
    assert_eq!(i.config.services[0].reals[0].port, 80);
    assert_eq!(the_check(&i).connect_port, Some(8080));
    // No port written: keepalived checks port 0.
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 {\n  TCP_CHECK {\n  }\n}\n",
    ))
    .unwrap();
    assert_eq!(the_check(&i).connect_port, None);
    assert_eq!(
        warnings(&i),
        ["k.conf:6: TCP_CHECK of real_server 10.0.1.1 has no connect_port and the real_server line no port: keepalived's checker connects to port 0, which always fails; l4vs checks port 80"]
    );
}

/// Times l4vs does not take are brought within its range with a warning;
/// what keepalived would not read is an error.
#[test]
fn checker_values_out_of_range_or_unreadable() {
    let i = ka(&vs(
        "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 80 {\n  TCP_CHECK {\n    delay_before_retry 0\n    retry 1000\n    delay_loop 0\n  }\n}\n",
    ))
    .unwrap();
    let c = the_check(&i);
    assert_eq!(
        (c.delay_before_retry, c.retry, c.delay_loop),
        (secs(0.01), 100, secs(60.0))
    );
    assert_eq!(
        warnings(&i),
        [
            "k.conf:7: delay_before_retry 0 is carried over as 0.01: l4vs takes 0.01 to 86400 seconds",
            "k.conf:8: retry 1000 is carried over as 100: l4vs takes 0 to 100 retries",
            "k.conf:9: delay_loop 0 is not carried over (TCP_CHECK of real_server 10.0.1.1 80): keepalived takes more than 0, and ignores it",
        ]
    );
    for (line, what) in [
        ("delay_loop 1m", "delay_loop: `1m` is not a time in seconds"),
        ("alpha maybe", "alpha: `maybe` is not true or false"),
        (
            "connect_port 0",
            "connect_port: `0` is not a number in 1..=65535",
        ),
    ] {
        let (l, m) = err_at(ka(&vs(&format!(
            "lb_algo rr\nlb_kind NAT\nprotocol TCP\nreal_server 10.0.1.1 80 {{\n  TCP_CHECK {{\n    {line}\n  }}\n}}\n"
        ))));
        assert_eq!(l, 7, "{line}: {m}");
        assert!(m.contains(what), "{line}: {m}");
    }
}

#[test]
fn firewall_mark_services_get_a_placeholder_rule_and_the_packets_port() {
    let text = "virtual_server fwmark 5 {\n  lb_algo rr\n  lb_kind DR\n  real_server 10.0.1.1 80\n  real_server 10.0.1.2\n}\n";
    let i = ka(text).unwrap();
    let s = service(&i.config, "fwmark-5");
    assert_eq!(s.fwmark, Some(5));
    assert!(s.reals.iter().all(|r| r.port == 0));
    assert_eq!(i.config.firewall_marks.len(), 1);
    assert_eq!(i.config.firewall_marks[0].mark, 5);
    assert_eq!(
        i.config.firewall_marks[0].destination,
        PLACEHOLDER_MARK_DESTINATION
    );
    assert!(
        i.yaml.contains("# PLACEHOLDER rules for mark(s) 5"),
        "{}",
        i.yaml
    );
    assert_eq!(
        warnings(&i),
        [
            "k.conf:1: firewall mark 5: the rules that marked packets (iptables, nftables) are not in this file; the output has a placeholder firewall_marks rule that matches nothing: write the real one",
            "k.conf:4: the port of real_server 10.0.1.1 80 is not carried over: keepalived clears it, as the real server of a firewall-mark service gets the packet's own port",
        ]
    );
    // NAT with a port would rewrite the port: l4vs cannot.
    let (line, m) = err_at(ka(&text.replace("DR", "NAT")));
    assert_eq!(line, 4);
    assert!(
        m.contains("NAT real server of firewall-mark service 5 with port 80"),
        "{m}"
    );
}

#[test]
fn what_l4vs_cannot_forward_is_left_out_with_a_warning() {
    let text = "\
virtual_server 2001:db8::1 80 {
  lb_algo rr
  real_server 2001:db8::2 80
}
virtual_server 10.0.0.1 80 {
  lb_algo rr
  protocol SCTP
  real_server 10.0.1.1 80
}
virtual_server 10.0.0.2 80 {
  lb_algo rr
}
virtual_server 10.0.0.3 80 {
  lb_algo rr
  lb_kind TUN
  protocol TCP
  real_server 2001:db8::2 80
  real_server 10.0.1.1 80
}
";
    let i = ka(text).unwrap();
    assert_eq!(i.config.services.len(), 1);
    assert_eq!(i.config.services[0].reals.len(), 1);
    assert_eq!(
        warnings(&i),
        [
            "k.conf:1: virtual_server 2001:db8::1 80 is not carried over: l4vs forwards IPv4 only so far",
            "k.conf:5: virtual_server 10.0.0.1 80 is not carried over: its protocol is SCTP (line 7), and l4vs balances TCP and UDP only",
            "k.conf:10: virtual_server 10.0.0.2 80 is not carried over: it has no real servers, and keepalived leaves such a virtual_server out",
            "k.conf:17: real_server 2001:db8::2 80 is not carried over: l4vs forwards IPv4 only so far",
        ]
    );
}

#[test]
fn virtual_server_groups_expand_to_one_service_per_address_and_mark() {
    let text = "\
virtual_server_group G {
  10.0.0.1 80
  10.0.0.2-3 443
  10.0.0.8/31 25
  fwmark 9
  2001:db8::1 80
}
virtual_server_group UNUSED {
  10.0.9.9 80
}
virtual_server group G {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.1.1 80
}
";
    let i = ka(text).unwrap();
    let names: Vec<&str> = i
        .config
        .services
        .iter()
        .map(|s| s.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tcp-10-0-0-1-80",
            "tcp-10-0-0-2-443",
            "tcp-10-0-0-3-443",
            "tcp-10-0-0-8-25",
            "tcp-10-0-0-9-25",
            "fwmark-9"
        ]
    );
    // A DR real's port is the service's in each.
    assert_eq!(service(&i.config, "tcp-10-0-0-2-443").reals[0].port, 443);
    let w = warnings(&i);
    assert!(w.contains(&"k.conf:6: 2001:db8::1 80 is not carried over (virtual_server_group G): l4vs forwards IPv4 only so far".to_owned()), "{w:?}");
    assert!(
        w.contains(
            &"k.conf:8: virtual_server_group UNUSED is not carried over: no virtual_server uses it"
                .to_owned()
        ),
        "{w:?}"
    );
    let (line, m) = err_at(ka(
        "virtual_server group NOPE {\n  real_server 10.0.1.1 80\n}\n",
    ));
    assert_eq!(line, 1);
    assert!(
        m.contains("no virtual_server_group is called `NOPE`"),
        "{m}"
    );
}

#[test]
fn group_address_ranges_read_as_keepalived_reads_them() {
    let a = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        address_range("10.0.0.1"),
        Ok(Some((a("10.0.0.1"), a("10.0.0.1"))))
    );
    assert_eq!(
        address_range("10.0.0.3-10"),
        Ok(Some((a("10.0.0.3"), a("10.0.0.10"))))
    );
    assert_eq!(
        address_range("10.0.0.250-10.0.1.5"),
        Ok(Some((a("10.0.0.250"), a("10.0.1.5"))))
    );
    assert_eq!(
        address_range("10.0.0.0/30"),
        Ok(Some((a("10.0.0.0"), a("10.0.0.3"))))
    );
    assert_eq!(address_range("2001:db8::1"), Ok(None));
    for bad in [
        "10.0.0.3-3",
        "10.0.0.3-2",
        "10.0.0.1/30",
        "10.0.0.0/0",
        "10.0.0.0/16",
        "x",
    ] {
        assert!(address_range(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_service_defined_twice_is_an_error() {
    let one =
        "virtual_server 10.0.0.1 80 {\n lb_algo rr\n protocol TCP\n real_server 10.0.1.1 80\n}\n";
    let (line, m) = err_at(ka(&format!("{one}{one}")));
    assert_eq!(line, 6);
    assert_eq!(
        m,
        "service TCP 10.0.0.1:80 is defined twice (first at k.conf:1)"
    );
}

/// The table's rules apply, at the real server's line.
#[test]
fn table_rules_apply_at_the_real_servers_line() {
    let (line, m) = err_at(ka(&vs(
        "lb_algo rr\nprotocol TCP\nreal_server 10.0.0.1 80\n",
    )));
    assert_eq!(
        (line, m.as_str()),
        (
            4,
            "10.0.0.1 is the service's VIP; a real server needs its own address"
        )
    );
    let (line, m) = err_at(ka(&vs(
        "lb_algo rr\nprotocol TCP\nreal_server 10.0.1.1 80 {\n lthreshold 5\n}\n",
    )));
    assert_eq!(line, 4);
    assert!(
        m.contains("lower threshold 5 without an upper threshold"),
        "{m}"
    );
}

/// Without a base, the placeholder config has a director address in each
/// real server's /24 that no VIP or real uses.
#[test]
fn the_placeholder_config_reaches_every_real_server() {
    let i = ka(&vs(
        "lb_algo rr\nlb_kind DR\nprotocol TCP\nreal_server 10.0.1.254 80\nreal_server 10.0.2.1 80\n",
    ))
    .unwrap();
    let addrs: Vec<String> = i
        .config
        .addresses
        .iter()
        .map(|a| format!("{}/{}", a.address, a.prefix_len))
        .collect();
    assert_eq!(addrs, ["10.0.1.253/24", "10.0.2.254/24"]);
    assert_eq!(
        i.config.ports[0].device.spec(),
        format!("net_af_packet0,iface={PLACEHOLDER_IFACE}")
    );
    assert!(i
        .yaml
        .starts_with("# Made by `l4vs import keepalived k.conf`."));
    assert!(i.yaml.contains("# PLACEHOLDERS:"));
    assert_eq!(
        i.warnings[0].to_string(),
        "k.conf: without --base, eal, workers, ports and addresses are placeholders (see the comment at the top of the output): edit them, or import again with --base YOUR.yaml"
    );
}

fn base() -> Config {
    config::parse(
        "workers:\n  cores: [2]\nports:\n  - name: out\n    device: net_af_packet0,iface=eth0\naddresses:\n  - { port: out, address: 10.0.1.100/24 }\ntimeouts:\n  udp: 30\nservices:\n  - { vip: 10.9.9.9, port: 1, protocol: tcp, scheduler: rr, forward: nat }\n",
        "base.yaml",
    )
    .unwrap()
}

#[test]
fn a_base_config_gives_everything_but_the_services() {
    let b = base();
    let text = vs("lb_algo rr\nlb_kind DR\nprotocol TCP\nreal_server 10.0.1.1 80\n");
    let i = import_text(Source::Keepalived, &text, FILE, Some((&b, "base.yaml"))).unwrap();
    assert_eq!(i.config.workers, b.workers);
    assert_eq!(i.config.ports, b.ports);
    assert_eq!(i.config.addresses, b.addresses);
    assert_eq!(i.config.timeouts.udp, 30);
    assert_eq!(i.config.services.len(), 1);
    assert_eq!(
        warnings(&i),
        ["base.yaml: the base config's 1 service(s) are not carried over: the imported ones replace them"]
    );
    assert!(!i.yaml.contains("PLACEHOLDER"));
    // A DR real off the base's subnets is refused, naming the base.
    let text = text.replace("10.0.1.1", "10.0.2.1");
    let e = import_text(Source::Keepalived, &text, FILE, Some((&b, "base.yaml"))).unwrap_err();
    assert_eq!(e.pos.line, 5);
    assert!(e.message.ends_with("(in the base config base.yaml)"), "{e}");
}

// ---- ipvsadm ---------------------------------------------------------

const SAVE: &str = "\
-A -t 198.18.1.1:80 -s wlc -p 300
-a -t 198.18.1.1:80 -r 198.18.2.11:80 -m -w 1
-a -t 198.18.1.1:80 -r 198.18.2.12:8080 -m -w 2 -x 10 -y 5
-A -u 198.18.1.1:53 -s sh -o -b sh-fallback,sh-port
-a -u 198.18.1.1:53 -r 198.18.2.11:53 -i -w 1
-A -f 7 -s mh -b mh-port
-a -f 7 -r 198.18.2.11:0 -g -w 1
-A -t [2001:db8::10]:80 -s wlc
";

#[test]
fn ipvsadm_save_output_becomes_services() {
    let i = adm(SAVE).unwrap();
    let web = service(&i.config, "tcp-198-18-1-1-80");
    assert_eq!(web.scheduler, SchedulerKind::Wlc);
    assert_eq!(web.persistence.map(|p| p.timeout), Some(300));
    assert_eq!(web.reals[1].port, 8080);
    assert_eq!(web.reals[1].weight, 2);
    assert_eq!(
        (web.reals[1].upper_threshold, web.reals[1].lower_threshold),
        (10, 5)
    );
    let dns = service(&i.config, "udp-198-18-1-1-53");
    assert!(dns.ops);
    assert_eq!(dns.reals[0].forward, ForwardMethod::Tunnel);
    assert_eq!(
        dns.scheduler,
        SchedulerKind::Sh {
            port: true,
            fallback: true
        }
    );
    let marked = service(&i.config, "fwmark-7");
    assert_eq!(marked.reals[0].forward, ForwardMethod::DirectRouting);
    assert_eq!(
        warnings(&i),
        [
            "ipvsadm.save:6: firewall mark 7: the rules that marked packets (iptables, nftables) are not in this file; the output has a placeholder firewall_marks rule that matches nothing: write the real one",
            "ipvsadm.save:8: this IPv6 line is not carried over: l4vs forwards IPv4 only so far",
        ]
    );
    assert_eq!(config::parse(&i.yaml, "out.yaml").unwrap(), i.config);
}

/// Later lines change what earlier ones made, as ipvsadm-restore would.
#[test]
fn ipvsadm_lines_apply_in_order() {
    let text = "\
# a comment
-A -t 198.18.1.1:80 -s wlc
-a -t 198.18.1.1:80 -r 198.18.2.11 -m
-A -t 198.18.1.1:81 -s rr
-E -t 198.18.1.1:80 -s rr
-e -t 198.18.1.1:80 -r 198.18.2.11:80 -m -w 5
-D -t 198.18.1.1:81
--set 3600 0 0
-Z
";
    let i = adm(text).unwrap();
    assert_eq!(i.config.services.len(), 1);
    let s = &i.config.services[0];
    assert_eq!(s.scheduler, SchedulerKind::Rr);
    assert_eq!(s.reals[0].weight, 5);
    assert_eq!(i.config.timeouts.tcp_established, 3600);
    assert_eq!(
        warnings(&i),
        ["ipvsadm.save:9: -Z is not carried over: it zeroes counters, which a config does not hold"]
    );
}

#[test]
fn ipvsadm_errors_name_their_line() {
    let (line, m) = err_at(adm(
        "-A -t 198.18.1.1:80 -s wlc\n-a -t 198.18.1.1:80 -r 198.18.1.1:80 -m\n",
    ));
    assert_eq!(
        (line, m.as_str()),
        (
            2,
            "198.18.1.1 is the service's VIP; a real server needs its own address"
        )
    );
    let (line, m) = err_at(adm("\n-A -t 198.18.1.1:80 -s wlc --frobnicate\n"));
    assert_eq!(line, 2);
    assert!(m.starts_with("this line cannot be carried over: "), "{m}");
    let (line, m) = err_at(adm("-a -t 198.18.1.1:80 -r 198.18.2.1:80 -m\n"));
    assert_eq!((line, m.as_str()), (1, "Service not defined"));
    let (line, m) = err_at(adm(
        "-A -t 198.18.1.1:80 -s wlc\n-A -t 198.18.1.1:80 -s rr\n",
    ));
    assert_eq!((line, m.as_str()), (2, "this service is defined twice"));
}

#[test]
fn service_names_come_from_their_keys() {
    assert_eq!(
        service_name(&ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
            port: 53
        }),
        "udp-203-0-113-10-53"
    );
    assert_eq!(service_name(&ServiceKey::Fwmark(12)), "fwmark-12");
}

/// keepalived's lvs_sync_daemon becomes a sync daemon in both roles with
/// its id, port, TTL, group and maxlen; bad values are errors with their
/// line.
#[test]
fn lvs_sync_daemon_becomes_the_sync_block() {
    let text = |line: &str| {
        format!(
            "global_defs {{\n  {line}\n}}\n{}",
            "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.1.1 80 {\n  }\n}\n"
        )
    };
    let i = ka(&text(
        "lvs_sync_daemon eth0 VI_1 id 9 maxlen 1000 port 8849 ttl 2 group 224.0.0.82",
    ))
    .unwrap();
    let s = i.config.sync.as_ref().unwrap();
    assert_eq!(
        (s.role, s.syncid, s.max_len, s.udp_port, s.ttl),
        (crate::config::SyncRole::Both, 9, 1000, 8849, 2)
    );
    assert_eq!(s.group, Ipv4Addr::new(224, 0, 0, 82));
    let back = crate::config::parse(&i.yaml, "out.yaml").unwrap();
    assert_eq!(back.sync, i.config.sync);
    // A group off 224.0.0.0/24 falls back to the default, and says so.
    let i = ka(&text("lvs_sync_daemon eth0 group 239.1.1.1")).unwrap();
    assert_eq!(
        i.config.sync.as_ref().map(|s| s.group),
        Some(l4vs_wire::ipvs_sync::GROUP)
    );
    assert!(
        warnings(&i).contains(&"k.conf:2: lvs_sync_daemon's group 239.1.1.1 is not carried over: l4vs takes sync messages on the local network control block (224.0.0.0/24) only; the default 224.0.0.81 is used".to_owned()),
        "{:#?}",
        warnings(&i)
    );
    for (line, says) in [
        (
            "lvs_sync_daemon eth0 VI_1 id 300",
            "k.conf:2: lvs_sync_daemon: `300` is not a number in 0..=255",
        ),
        (
            "lvs_sync_daemon eth0 VI_1 group 10.0.0.1",
            "k.conf:2: lvs_sync_daemon: group `10.0.0.1` is not an IPv4 multicast group",
        ),
        (
            "lvs_sync_daemon eth0 VI_1 ttl",
            "k.conf:2: lvs_sync_daemon: ttl needs a TTL",
        ),
        (
            "lvs_sync_daemon eth0 VI_1 VI_2",
            "k.conf:2: lvs_sync_daemon: unknown word `VI_2`",
        ),
    ] {
        let e = ka(&text(line)).unwrap_err().to_string();
        assert!(e.contains(says), "{line}: {e}");
    }
}

/// ipvsadm's --start-daemon lines become the sync block: one line its
/// role, a master and a backup line whose settings come out the same role
/// both; --stop-daemon takes its role out again; a second line of a role,
/// or one whose settings differ, is a warning; a group that is not
/// multicast is an error with its line. The output loads.
#[test]
fn start_daemon_lines_become_the_sync_block() {
    use crate::config::SyncRole;
    const SERVICE: &str = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n";
    let run = |lines: &str| adm(&format!("{SERVICE}{lines}")).unwrap();
    let role = |i: &Imported| i.config.sync.as_ref().map(|s| (s.role, s.syncid));

    let i = run("--start-daemon backup --mcast-interface eth1 --syncid 7 --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1000 --mcast-group 224.0.0.82\n");
    let s = i.config.sync.as_ref().unwrap();
    assert_eq!(
        (s.role, s.syncid, s.max_len, s.udp_port, s.ttl, s.group),
        (
            SyncRole::Backup,
            7,
            1000,
            8849,
            2,
            Ipv4Addr::new(224, 0, 0, 82)
        )
    );
    let back = crate::config::parse(&i.yaml, "out.yaml").unwrap();
    assert_eq!(back.sync, i.config.sync);
    assert_eq!(
        warnings(&i),
        ["ipvsadm.save:3: --start-daemon backup is carried over as sync: with role backup, on the config's first port (or the base config's sync port) instead of `eth1`: check sync.interface"]
    );

    // Master and backup, the defaults written out on one: role both;
    // stopping one leaves the other; starting a running role again is
    // refused, as IPVS refuses it.
    let i = run("--start-daemon master --syncid 3 --mcast-port 8848 --mcast-ttl 1\n--start-daemon backup --syncid 3\n--start-daemon master --syncid 3\n");
    assert_eq!(role(&i), Some((SyncRole::Both, 3)));
    assert_eq!(
        warnings(&i)[1..],
        [
            "ipvsadm.save:4: --start-daemon backup joins the line at ipvsadm.save:3: sync: has role both",
            "ipvsadm.save:5: this line is not carried over: a master daemon is started already (at ipvsadm.save:3), which IPVS refuses too",
        ]
    );
    let i = run("--start-daemon master --syncid 3\n--start-daemon backup --syncid 3\n--stop-daemon master\n");
    assert_eq!(role(&i), Some((SyncRole::Backup, 3)));
    assert_eq!(
        warnings(&i)[2],
        "ipvsadm.save:5: --stop-daemon master: sync: has role backup"
    );
    let i = run("--stop-daemon backup\n--start-daemon master\n--stop-daemon master\n");
    assert_eq!(role(&i), None);
    assert_eq!(
        [warnings(&i)[0].as_str(), warnings(&i)[2].as_str()],
        [
            "ipvsadm.save:3: --stop-daemon backup stops nothing: no backup daemon is started above",
            "ipvsadm.save:5: --stop-daemon master: no sync daemon is left to carry over",
        ]
    );

    // Settings that differ: the second line is left out.
    let i = run("--start-daemon master --syncid 3\n--start-daemon backup --syncid 4\n");
    assert_eq!(role(&i), Some((SyncRole::Master, 3)));
    assert_eq!(
        warnings(&i)[1],
        "ipvsadm.save:4: this line is not carried over: l4vs runs one sync daemon, with the settings of the line at ipvsadm.save:3 (a master and a backup line with the same settings make role both)"
    );

    // A length past the port's MTU is fitted, and says so; a group off
    // 224.0.0.0/24 falls back to the default, and says so.
    let i = run("--start-daemon master --sync-maxlen 2000 --mcast-group 239.1.1.1\n");
    let s = i.config.sync.as_ref().unwrap();
    assert_eq!((s.max_len, s.group), (1472, l4vs_wire::ipvs_sync::GROUP));
    let w = warnings(&i);
    for says in [
        "ipvsadm.save:3: --mcast-group 239.1.1.1 is not carried over: l4vs takes sync messages on the local network control block (224.0.0.0/24) only; the default 224.0.0.81 is used",
        "ipvsadm.save:3: --start-daemon's maximum message length 2000 is carried over as 1472: sync messages are 128 bytes to the port's MTU less 28",
    ] {
        assert!(w.iter().any(|x| x == says), "{says}: {w:#?}");
    }
    assert_eq!(w.len(), 3, "{w:#?}");

    let e = adm(&format!(
        "{SERVICE}--start-daemon master --mcast-group 10.0.0.1\n"
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ipvsadm.save:3: this line cannot be carried over: --mcast-group 10.0.0.1 is not an IPv4 multicast group"
    );
    let e = adm("--start-daemon primary\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "ipvsadm.save:1: this line cannot be carried over: illegal start-daemon parameter specified: `primary`"
    );
    let e = adm("--start-daemon master --socket /run/x.sock\n").unwrap_err();
    assert!(
        e.to_string().contains("--socket on a line is not restored"),
        "{e}"
    );
}

/// keepalived's first vrrp_instance becomes the vrrp block, key by key;
/// what l4vs cannot carry is a warning with its line; the output loads.
#[test]
fn vrrp_instance_becomes_the_vrrp_block() {
    const VS: &str = "virtual_server 192.0.2.100 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.1.1 80 {\n  }\n}\n";
    let conf = format!(
        "global_defs {{\n  vrrp_version 3\n}}\n\
         vrrp_instance VI_1 {{\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 0.1\n  nopreempt\n  preempt_delay 3\n\
         \x20 authentication {{\n    auth_type PASS\n    auth_pass secret\n  }}\n\
         \x20 virtual_ipaddress {{\n    192.0.2.100/32 dev eth0\n    192.0.2.254\n    2001:db8::1\n  }}\n\
         \x20 notify_master \"/usr/local/bin/became master\"\n  notify_fault /x\n  track_script {{\n    chk\n  }}\n}}\n\
         vrrp_instance VI_2 {{\n  virtual_router_id 52\n}}\n{VS}"
    );
    let i = ka(&conf).unwrap();
    let v = i.config.vrrp.as_ref().expect("a vrrp block");
    assert_eq!(
        (v.port, v.vrid, v.priority, v.advert_int_cs),
        (0, 51, 150, 10)
    );
    assert_eq!(v.name, "VI_1");
    assert!(!v.preempt);
    assert_eq!(v.preempt_delay.as_millis(), 3000);
    assert_eq!(
        v.addresses,
        [Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 254)]
    );
    assert_eq!(
        v.notify_master.as_deref(),
        Some("/usr/local/bin/became master")
    );
    assert_eq!((v.garp_repeat, v.garp_delay.as_millis()), (5, 5000));
    let back = crate::config::parse(&i.yaml, "out.yaml").unwrap();
    assert_eq!(back.vrrp, i.config.vrrp);
    let w = warnings(&i);
    for want in [
        "k.conf:5: state MASTER is not carried over: l4vs starts every director as backup",
        "k.conf:6: interface `eth0` becomes the config's first port: check vrrp.interface",
        "k.conf:12: authentication is not carried over (vrrp_instance VI_1): VRRPv2's; VRRPv3 has no authentication",
        "k.conf:19: 2001:db8::1 is not carried over: l4vs forwards IPv4 only so far",
        "k.conf:22: notify_fault is not carried over (vrrp_instance VI_1): l4vs has no FAULT state",
        "k.conf:23: track_script is not carried over (vrrp_instance VI_1): l4vs tracks nothing yet",
        "k.conf:27: vrrp_instance VI_2 is not carried over: l4vs runs one VRRP instance (the first)",
    ] {
        assert!(w.iter().any(|l| l.starts_with(want)), "no {want:?} in {w:#?}");
    }
    assert!(
        !w.iter()
            .any(|l| l.contains("VRRPv2 (keepalived's default)")),
        "{w:#?}"
    );

    // keepalived's default version is 2: said, since its peer would not
    // understand l4vs.
    let v2 = conf.replace("  vrrp_version 3\n", "");
    let w = warnings(&ka(&v2).unwrap());
    assert!(
        w.iter().any(|l| l.starts_with(
            "k.conf:3: l4vs speaks VRRPv3 (RFC 5798); this file's keepalived speaks VRRPv2"
        )),
        "{w:#?}"
    );
    for (from, to, says) in [
        (
            "advert_int 0.1",
            "advert_int fast",
            "k.conf:9: advert_int: `fast` is not a time in seconds (such as 6 or 0.5)",
        ),
        (
            "advert_int 0.1",
            "advert_int 41",
            "k.conf:9: advert_int: `41` is more than 40 seconds",
        ),
        (
            "virtual_router_id 51",
            "virtual_router_id 256",
            "k.conf:7: virtual_router_id: `256` is not a number in 1..=255",
        ),
        (
            "192.0.2.254\n",
            "192.0.2.x\n",
            "k.conf:18: virtual_ipaddress: `192.0.2.x` is not an address",
        ),
    ] {
        let bad = conf.replacen(from, to, 1);
        assert_ne!(bad, conf);
        let e = ka(&bad).unwrap_err().to_string();
        assert!(e.contains(says), "{to}: {e}");
    }
}

/// From a new user's trial: the placeholder director address keeps off
/// the VRRP addresses (a NAT gateway at .254 was lost), and a base's
/// sync and vrrp blocks are replaced with a warning, the sync key kept.
#[test]
fn vrrp_addresses_survive_the_placeholder_and_the_base_keeps_its_key() {
    let conf = "global_defs {\n  vrrp_version 3\n  lvs_sync_daemon eth0 VI_1 id 9\n}\n\
                vrrp_instance VI_1 {\n  virtual_router_id 51\n  virtual_ipaddress {\n    198.18.0.100\n    198.18.2.254/24 dev eth1\n  }\n}\n\
                virtual_server 198.18.0.100 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 198.18.2.11 80 {\n  }\n}\n";
    let i = ka(conf).unwrap();
    let v = i.config.vrrp.as_ref().unwrap();
    assert_eq!(
        v.addresses,
        [
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 2, 254)
        ]
    );
    let own: Vec<Ipv4Addr> = i.config.addresses.iter().map(|a| a.address).collect();
    assert_eq!(
        own,
        [Ipv4Addr::new(198, 18, 2, 253)],
        "the placeholder keeps off .254"
    );
    assert!(
        warnings(&i)
            .iter()
            .all(|w| !w.contains("198.18.2.254 is not carried")),
        "{:?}",
        warnings(&i)
    );

    let base_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab-nat-ha-a.yaml");
    let b = crate::config::load(&base_path).unwrap();
    let i = import_text(Source::Keepalived, conf, FILE, Some((&b, "base.yaml"))).unwrap();
    let s = i.config.sync.as_ref().unwrap();
    assert_eq!(s.syncid, 9, "the file's");
    assert_eq!(
        s.auth,
        b.sync.as_ref().unwrap().auth,
        "the base's key is kept"
    );
    assert_eq!(s.resync_period, Some(std::time::Duration::from_secs(2)));
    let w = warnings(&i);
    for want in [
        "k.conf:3: lvs_sync_daemon's settings replace those of base.yaml's sync: block (its port, auth_key, resync_period, persist_mode and sync_ports are kept)",
        "k.conf:5: the vrrp_instance replaces base.yaml's vrrp: block (on its port)",
    ] {
        assert!(w.iter().any(|l| l == want), "no {want:?} in {w:#?}");
    }
}
