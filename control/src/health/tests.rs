use super::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::Instant;

fn target(port: u16) -> Target {
    Target {
        service: ServiceKey::Addr {
            protocol: l4vs_dataplane::model::Protocol::Tcp,
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
        },
        service_name: "web".into(),
        real: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        check: check(CheckKind::Tcp),
        inhibit: false,
        through: None,
    }
}

fn check(kind: CheckKind) -> Check {
    Check {
        kind,
        connect_port: None,
        delay_loop: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(500),
        retry: 1,
        delay_before_retry: Duration::from_millis(50),
        alpha: false,
        warmup: Duration::ZERO,
        notify_up: None,
        notify_down: None,
        through_vip: false,
    }
}

fn run(t: &Target, c: &Check) -> Result<(Option<u32>, String), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_check(t, c))
}

/// A one-request HTTP server on loopback answering `status` and `body`.
fn http_server(status: &'static str, body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Host: {}\r\nConnection: close\r\n\r\n{body}",
                body.len(),
                req.lines().find(|l| l.to_ascii_lowercase().starts_with("host:")).unwrap_or("")
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

fn http(contains: Option<&str>) -> CheckKind {
    CheckKind::Http {
        path: "/health".into(),
        status_codes: vec![200],
        virtualhost: Some("www.example".into()),
        digest: None,
        contains: contains.map(str::to_owned),
        tls: false,
        enable_sni: false,
    }
}

#[test]
fn http_checks_want_the_status_and_the_text() {
    let ok = http_server("200 OK", "all good");
    assert!(run(&target(ok), &check(http(Some("good")))).is_ok());
    let wrong = http_server("503 Service Unavailable", "busy");
    let e = run(&target(wrong), &check(http(None))).unwrap_err();
    assert!(e.ends_with("status 503, not 200"), "{e}");
    let lacks = http_server("200 OK", "something else");
    let e = run(&target(lacks), &check(http(Some("good")))).unwrap_err();
    assert!(e.contains("the body lacks \"good\""), "{e}");
}

/// A real answering garbage to HTTP is down, with hyper's words.
#[test]
fn garbage_for_an_answer_is_down() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"\x00\x01garbage, not HTTP\r\n\r\n");
        }
    });
    let e = run(&target(port), &check(http(None))).unwrap_err();
    assert!(
        e.starts_with(&format!("http check of 127.0.0.1:{port}/health: ")),
        "{e}"
    );
}

#[test]
fn tcp_checks_connect_and_refused_is_down() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    assert!(run(&target(port), &check(CheckKind::Tcp)).is_ok());
    drop(l);
    let e = run(&target(port), &check(CheckKind::Tcp)).unwrap_err();
    assert!(
        e.starts_with(&format!("tcp check of 127.0.0.1:{port}: ")),
        "{e}"
    );
}

/// A server that accepts and never answers: the check is cut at its
/// timeout.
#[test]
fn a_check_that_hangs_is_cut_at_its_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let e = run(&target(port), &check(http(None))).unwrap_err();
    assert!(e.ends_with("no answer within 0.5 s"), "{e}");
    drop(l);
}

fn misc(cmd: &str, dynamic: bool) -> CheckKind {
    CheckKind::Misc {
        path: cmd.into(),
        timeout: Duration::from_millis(300),
        dynamic,
    }
}

#[test]
fn misc_checks_read_the_exit_status() {
    let t = target(80);
    assert_eq!(run(&t, &check(misc("exit 0", false))).unwrap().0, None);
    let e = run(&t, &check(misc("exit 1", false))).unwrap_err();
    assert!(e.ends_with("exit 1"), "{e}");
    // misc_dynamic: 2..=255 is up with weight status - 2.
    assert_eq!(run(&t, &check(misc("exit 7", true))).unwrap().0, Some(5));
    assert!(run(&t, &check(misc("exit 7", false))).is_err());
    // The real is in the environment.
    let env = "test \"$L4VS_REAL_ADDRESS:$L4VS_REAL_PORT\" = 127.0.0.1:80";
    assert!(run(&t, &check(misc(env, false))).is_ok());
    // A command that never exits is killed at misc_timeout, with what it
    // started: no `sleep` is left behind.
    let marker = format!("l4vs-misc-{}", std::process::id());
    let started = Instant::now();
    let e = run(
        &t,
        &check(misc(&format!("(sleep 30; : {marker}) & sleep 30"), false)),
    )
    .unwrap_err();
    assert!(e.ends_with("still running after 0.3 s, killed"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    let left = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    // A command the shell cannot run is down, whatever misc_dynamic says.
    let e = run(&t, &check(misc("/nonexistent/check", true))).unwrap_err();
    assert!(e.contains("exit 127: the command could not be run"), "{e}");
}

/// The checker reports transitions only: down after retry + 1 failures,
/// up again at the first success; alpha starts down.
#[test]
fn the_checker_reports_each_transition_once() {
    let flag = std::env::temp_dir().join(format!("l4vs-health-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let mut c = check(misc(&format!("test -e {}", flag.display()), false));
    c.alpha = true;
    let notes = flag.with_extension("notes");
    let _ = std::fs::remove_file(&notes);
    c.notify_up = Some(format!(
        "echo \"$L4VS_STATE $L4VS_SERVICE $L4VS_REAL_ADDRESS:$L4VS_REAL_PORT\" >> {}",
        notes.display()
    ));
    c.notify_down = c.notify_up.clone();
    let t = Target {
        check: c,
        ..target(80)
    };
    let checker = Checker::start(Plan {
        targets: vec![(t.clone(), None)],
        routes: Vec::new(),
    })
    .unwrap();
    let wait_for = |up: bool| -> Verdict {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = checker.verdicts().into_iter().next() {
                return v;
            }
            assert!(Instant::now() < deadline, "no verdict (wanted up={up})");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = wait_for(false);
    assert!(!first.up && first.why.contains("alpha"), "{first:?}");
    std::fs::write(&flag, "").unwrap();
    let up = wait_for(true);
    assert!(up.up, "{up:?}");
    std::fs::remove_file(&flag).unwrap();
    let down = wait_for(false);
    assert!(!down.up && down.why.ends_with("exit 1"), "{down:?}");
    // Nothing more while it stays down.
    std::thread::sleep(Duration::from_millis(400));
    assert!(checker.verdicts().is_empty());
    // A plan without it stops it.
    checker.set_plan(Plan::default());
    drop(checker);
    // notify_up and notify_down ran once each, on the transitions (not
    // for alpha's initial down).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&notes).unwrap_or_default();
        if text.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(text, "UP web 127.0.0.1:80\nDOWN web 127.0.0.1:80\n");
    let _ = std::fs::remove_file(&notes);
}

/// UDP_CHECK: a reply is up (with require_reply, one that starts right);
/// nobody listening (ICMP port unreachable) is down.
#[test]
fn udp_checks_want_a_reply() {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut reply = b"pong:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from);
        }
    });
    let udp = |payload: &[u8], require: Option<&[u8]>| CheckKind::Udp {
        payload: payload.to_vec(),
        require_reply: require.map(<[u8]>::to_vec),
    };
    assert!(run(&target(port), &check(udp(b"ping", Some(b"pong")))).is_ok());
    let e = run(&target(port), &check(udp(b"ping", Some(b"PONG")))).unwrap_err();
    assert!(e.ends_with("does not start with the 4 required"), "{e}");
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap().port();
    drop(closed);
    let e = run(&target(gone), &check(udp(b"ping", None))).unwrap_err();
    assert!(
        e.starts_with(&format!("udp check of 127.0.0.1:{gone}: ")),
        "{e}"
    );
}

/// A reload's log says what changed in the checks, which the service
/// table does not hold.
#[test]
fn check_changes_are_put_in_words() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let old = crate::config::load(&dir.join("lab-nat-check.yaml")).unwrap();
    let mut new = old.clone();
    assert!(check_changes(&old, &new).is_empty());
    new.services[0].check.as_mut().unwrap().delay_loop = Duration::from_secs(2);
    new.services[0].inhibit_on_failure = false;
    new.services[1].check = None;
    assert_eq!(
        check_changes(&old, &new),
        [
            "service http: health check http every 0.5 s -> http every 2 s, inhibit_on_failure true -> false",
            "service echo: health check udp every 1 s -> none",
        ]
    );
    new.services[0].check.as_mut().unwrap().connect_port = Some(8008);
    new.services[0].check.as_mut().unwrap().delay_loop = Duration::from_millis(500);
    assert_eq!(
        check_changes(&old, &new)[0],
        "service http: health check http every 0.5 s, settings changed, inhibit_on_failure true -> false"
    );
}

/// A free port on loopback (TCP and UDP), for a server started after.
fn free_port() -> u16 {
    let t = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = t.local_addr().unwrap().port();
    drop(t);
    port
}

/// The lab's real server (`l4vs-lab serve`) answering as `name` with
/// HTTPS and DNS on loopback; returns their ports once it listens. Free
/// ports are picked, then bound by the server: should another test take
/// one meanwhile, the server fails at once and other ports are tried.
fn lab_server(name: &'static str) -> (u16, u16) {
    for _ in 0..5 {
        let (https, dns) = (free_port(), free_port());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = l4vs_lab::servers::serve(&l4vs_lab::servers::ServeConfig {
                name: name.to_owned(),
                http: Vec::new(),
                https: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, https).into()],
                udp: None,
                dns: Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, dns).into()),
                echo: None,
            });
            let _ = tx.send(r.map_err(|e| e.to_string()));
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Err(_)) = rx.try_recv() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", https)).is_ok() {
                return (https, dns);
            }
            assert!(Instant::now() < deadline, "the lab server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no free ports for the lab server");
}

fn https(digest: Option<[u8; 16]>, sni: bool) -> CheckKind {
    CheckKind::Http {
        path: "/".into(),
        status_codes: vec![200],
        virtualhost: Some("rs9".into()),
        digest,
        contains: None,
        tls: true,
        enable_sni: sni,
    }
}

/// SSL_GET: the lab's HTTPS server (a self-signed certificate, which
/// keepalived does not verify either) is up, with or without SNI, and
/// with the MD5 digest of its body; another digest is down, and so is a
/// plain HTTP server, whose answer is no TLS handshake.
#[test]
fn https_checks_talk_tls_and_compare_the_digest() {
    use md5::Digest;
    let (port, _) = lab_server("rs9");
    let body: [u8; 16] = md5::Md5::digest(l4vs_lab::servers::http_body("rs9").as_bytes()).into();
    for sni in [false, true] {
        let ok = run(&target(port), &check(https(Some(body), sni)));
        assert_eq!(
            ok,
            Ok((
                None,
                format!("https check of 127.0.0.1:{port}/: status 200, body as wanted")
            ))
        );
    }
    let mut other = body;
    other[0] ^= 1;
    let e = run(&target(port), &check(https(Some(other), false))).unwrap_err();
    assert!(
        e.contains("but the body's MD5 digest is ") && e.ends_with(&to_hex(&other)),
        "{e}"
    );
    let plain = http_server("200 OK", "plain");
    let e = run(&target(plain), &check(https(None, false))).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "https check of 127.0.0.1:{plain}/: TLS handshake: "
        )),
        "{e}"
    );
}

/// A DNS server on loopback that answers each query first with a reply
/// of another id and with a query (both to be ignored), then with
/// `rcode`.
fn dns_server(rcode: hickory_proto::op::ResponseCode) -> u16 {
    use hickory_proto::op::{Message, MessageType};
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let id = q.metadata.id;
            let mut stray = Message::response(id.wrapping_add(1), q.metadata.op_code);
            stray.add_queries(q.queries.iter().cloned());
            let mut echo = Message::new(id, MessageType::Query, q.metadata.op_code);
            echo.add_queries(q.queries.iter().cloned());
            let mut answer = Message::error_msg(id, q.metadata.op_code, rcode);
            answer.add_queries(q.queries.iter().cloned());
            for m in [stray, echo, answer] {
                let _ = s.send_to(&m.to_vec().unwrap(), from);
            }
        }
    });
    port
}

/// DNS_CHECK: NOERROR from the query's id is up; another RCODE is down;
/// replies with another id and queries are waited past; nobody listening
/// is down; the lab's DNS server answers.
#[test]
fn dns_checks_want_noerror_from_the_querys_id() {
    use hickory_proto::op::ResponseCode;
    let dns = |name: &str| CheckKind::Dns {
        record_type: crate::config::DnsRecordType::A,
        name: name.into(),
    };
    let ok = dns_server(ResponseCode::NoError);
    assert_eq!(
        run(&target(ok), &check(dns("www.example.org"))),
        Ok((
            None,
            format!("dns check of 127.0.0.1:{ok} (A www.example.org): NOERROR")
        ))
    );
    let nx = dns_server(ResponseCode::NXDomain);
    let e = run(&target(nx), &check(dns("www.example.org"))).unwrap_err();
    assert!(
        e.ends_with("(A www.example.org): answered RCODE 3 (Non-Existent Domain)"),
        "{e}"
    );
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap().port();
    drop(closed);
    let e = run(&target(gone), &check(dns("."))).unwrap_err();
    assert!(
        e.starts_with(&format!("dns check of 127.0.0.1:{gone} (A .): ")),
        "{e}"
    );
    let (_, lab) = lab_server("rs8");
    assert!(run(&target(lab), &check(dns("."))).is_ok());
}

/// The plan checks each real by its own check, else the service's; a real
/// with `type: none` is not in it; through_vip targets get a mark each
/// real address, and a route per real and VIP.
#[test]
fn the_plan_takes_each_reals_own_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let text = std::fs::read_to_string(dir.join("lab-nat-check.yaml")).unwrap();
    let text = text
        .replacen(
            "- { address: 198.18.2.12, port: 80 }",
            "- { address: 198.18.2.12, port: 80, check: { type: tcp } }",
            1,
        )
        .replacen(
            "- { address: 198.18.2.13, port: 80 }",
            "- { address: 198.18.2.13, port: 80, check: { type: none } }",
            1,
        );
    let cfg = crate::config::parse(&text, "c.yaml").unwrap();
    let plan = Plan::of(&cfg, &|_, _| None);
    let http: Vec<(String, &'static str)> = plan
        .targets
        .iter()
        .filter(|(t, _)| t.service_name == "http")
        .map(|(t, _)| (t.real.to_string(), t.check.kind.as_str()))
        .collect();
    assert_eq!(
        http,
        [
            ("198.18.2.11:80".to_owned(), "http"),
            ("198.18.2.12:80".to_owned(), "tcp")
        ]
    );
    assert!(plan.routes.is_empty());

    let dr = std::fs::read_to_string(dir.join("lab-dr-check.yaml")).unwrap();
    let cfg = crate::config::parse(&dr, "c.yaml").unwrap();
    let plan = Plan::of(&cfg, &|_, _| None);
    let marks: Vec<Option<(Ipv4Addr, u32)>> = plan.targets.iter().map(|(t, _)| t.through).collect();
    let vip = Ipv4Addr::new(198, 18, 0, 100);
    assert_eq!(
        marks,
        [
            Some((vip, VIP_ROUTE_MARK)),
            Some((vip, VIP_ROUTE_MARK + 1)),
            Some((vip, VIP_ROUTE_MARK + 2))
        ]
    );
    assert_eq!(plan.routes.len(), 3);
    assert_eq!(
        plan.routes[1],
        VipRoute {
            mark: VIP_ROUTE_MARK + 1,
            real: Ipv4Addr::new(198, 18, 2, 12),
            vip
        }
    );
}

/// The digest covers the whole body, past the MiB `contains` looks in.
#[test]
fn the_digest_covers_a_large_body() {
    use md5::Digest;
    let body: Vec<u8> = (0..3 * MAX_BODY).map(|i| (i % 251) as u8).collect();
    let want: [u8; 16] = md5::Md5::digest(&body).into();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(2) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    let kind = |digest| CheckKind::Http {
        path: "/".into(),
        status_codes: vec![200],
        virtualhost: None,
        digest: Some(digest),
        contains: None,
        tls: false,
        enable_sni: false,
    };
    let mut c = check(kind(want));
    c.connect_timeout = Duration::from_secs(5);
    assert!(run(&target(port), &c).is_ok());
    let mut other = want;
    other[15] ^= 0xff;
    let mut c = check(kind(other));
    c.connect_timeout = Duration::from_secs(5);
    assert!(run(&target(port), &c)
        .unwrap_err()
        .contains("MD5 digest is"));
}
