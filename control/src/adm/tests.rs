use super::*;
use crate::stats::Counted;
use crate::table::RealReport;
use l4vs_dataplane::model::Real;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("l4vsadm").chain(args.iter().copied())).unwrap()
}

fn key(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        vip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
        port,
    }
}

/// ipvsadm's command lines become the command model's operations, with
/// ipvsadm's defaults (wlc, -g, weight 1, -p 300).
#[test]
fn ipvsadm_command_lines_become_operations() {
    let a = cli(&["-A", "-t", "198.18.0.100:80", "-s", "rr", "-p"])
        .action()
        .unwrap();
    let Action::Apply(cmds) = a else { panic!() };
    let Command::AddService(spec) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(spec.key, key(Protocol::Tcp, 80));
    assert_eq!(spec.scheduler, SchedulerKind::Rr);
    assert_eq!(
        spec.persistence,
        Some(Persistence {
            timeout: 360,
            netmask: 32
        }),
        "-p alone: libipvs's 6 * 60"
    );
    let a = cli(&[
        "-A",
        "-u",
        "198.18.0.100:53",
        "-o",
        "-s",
        "sh",
        "-b",
        "sh-port,sh-fallback",
        "-p",
        "60",
        "-M",
        "255.255.255.0",
    ])
    .action()
    .unwrap();
    let Action::Apply(cmds) = a else { panic!() };
    let Command::AddService(spec) = &cmds[0] else {
        panic!()
    };
    assert!(spec.ops);
    assert_eq!(
        spec.scheduler,
        SchedulerKind::Sh {
            port: true,
            fallback: true
        }
    );
    assert_eq!(
        spec.persistence,
        Some(Persistence {
            timeout: 60,
            netmask: 24
        })
    );
    let default = cli(&["-A", "-f", "7"]).action().unwrap();
    assert!(
        matches!(&default, Action::Apply(c) if matches!(&c[0], Command::AddService(s) if s.scheduler == SchedulerKind::Wlc && s.key == ServiceKey::Fwmark(7)))
    );

    let a = cli(&[
        "-a",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.2.14:8080",
        "-m",
        "-w",
        "3",
    ])
    .action()
    .unwrap();
    assert_eq!(
        a,
        Action::Apply(vec![Command::AddReal(
            key(Protocol::Tcp, 80),
            RealSpec {
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 14)),
                port: 8080,
                weight: 3,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            }
        )])
    );
    let a = cli(&["-d", "-t", "198.18.0.100:80", "-r", "198.18.2.14"])
        .action()
        .unwrap();
    assert_eq!(
        a,
        Action::Apply(vec![Command::DeleteReal(
            key(Protocol::Tcp, 80),
            IpAddr::V4(Ipv4Addr::new(198, 18, 2, 14)),
            0
        )])
    );
    assert_eq!(
        cli(&["-C"]).action().unwrap(),
        Action::Apply(vec![Command::Flush])
    );
    assert_eq!(
        cli(&["-L", "-n"]).action().unwrap(),
        Action::List(None, View::Default)
    );
    assert_eq!(
        cli(&["-l", "-n", "-u", "198.18.0.100:53"])
            .action()
            .unwrap(),
        Action::List(Some(key(Protocol::Udp, 53)), View::Default)
    );
}

/// Bad command lines: clap refuses two commands or an unknown option;
/// l4vsadm says what is missing or wrong in ipvsadm's words.
#[test]
fn bad_command_lines_are_refused() {
    let parse =
        |args: &[&str]| Cli::try_parse_from(std::iter::once("l4vsadm").chain(args.iter().copied()));
    assert!(parse(&["-A", "-D", "-t", "198.18.0.100:80"]).is_err());
    assert!(parse(&["-L", "--bogus"]).is_err());
    assert!(parse(&[]).is_err(), "a command is required");
    let err = |args: &[&str]| cli(args).action().unwrap_err().0;
    // No port is port 0 (ipvsadm's parse_service), which needs
    // persistence; checked here, as ipvsadm does.
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100"]),
        "Zero port specified for non-persistent service"
    );
    assert!(cli(&["-A", "-t", "198.18.0.100", "-p"]).action().is_ok());
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100:80", "-o"]),
        "One-Packet Scheduling is only for UDP virtual services"
    );
    // What cannot be an IPv4 host is refused before any lookup.
    for bad in [
        "80",
        "198.18.0.100:99999",
        "198.18.0.100:",
        "198.18.0.100: 80",
        "[2001:db8::1]:80",
        "2001:db8::1",
        "::1",
        ":80",
    ] {
        assert_eq!(
            err(&["-A", "-t", bad]),
            format!("illegal virtual server address[:port] specified: `{bad}`"),
            "{bad}"
        );
    }
    // ipvsadm's ranges and words for numbers.
    for (option, value, want) in [
        ("-w", "2147483648", "illegal weight specified: `2147483648`"),
        ("-w", "x", "illegal weight specified: `x`"),
        ("-x", "-1", "illegal u_threshold specified: `-1`"),
        (
            "-y",
            "2147483648",
            "illegal l_threshold specified: `2147483648`",
        ),
    ] {
        let args = [
            "-a",
            "-t",
            "198.18.0.100:80",
            "-r",
            "198.18.2.11",
            option,
            value,
        ];
        assert_eq!(err(&args), want, "{option} {value}");
    }
    assert_eq!(
        err(&["-D", "-f", "0"]),
        "invalid fwmark value `0' specified"
    );
    assert_eq!(
        err(&["-D", "-f", "abc"]),
        "invalid fwmark value `abc' specified"
    );
    assert_eq!(
        err(&["-a", "-t", "198.18.0.100:80"]),
        "You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        err(&["-D"]),
        "You need to supply the 'service-address' option for the 'delete-service' command"
    );
    // ipvsadm's option table: what a command does not take is refused.
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100:80", "-r", "198.18.2.11:80"]),
        "Illegal 'real-server' option with the 'add-service' command"
    );
    assert_eq!(
        err(&["-D", "-t", "198.18.0.100:80", "-s", "rr"]),
        "Illegal 'scheduler' option with the 'delete-service' command"
    );
    assert_eq!(
        err(&["-S", "-t", "198.18.0.100:80"]),
        "Illegal 'service-address' option with the 'save' command"
    );
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100:80", "-s", "xyz"]),
        format!(
            "Scheduler not found: `xyz` (l4vs has {})",
            SchedulerKind::NAMES.join(" ")
        )
    );
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100:80", "-s", "rr", "-b", "sh-port"]),
        "invalid scheduler flag for rr: `sh-port`"
    );
    assert_eq!(
        err(&[
            "-a",
            "-t",
            "198.18.0.100:80",
            "-r",
            "198.18.2.11:http-nonesuch"
        ]),
        "illegal real server address[:port] specified: `198.18.2.11:http-nonesuch`"
    );
}

/// Hosts and ports by name, as ipvsadm's parse_service takes them: the
/// host from /etc/hosts (`localhost`), the port from /etc/services for the
/// service's protocol (`http` 80/tcp, `domain` 53/udp); a real without a
/// port gets the service's (0).
#[test]
fn addresses_and_ports_may_be_names() {
    let action = |args: &[&str]| cli(args).action().unwrap();
    let Action::Apply(c) = action(&["-A", "-t", "localhost:http", "-s", "rr"]) else {
        panic!("not an apply");
    };
    assert!(
        matches!(&c[..], [Command::AddService(s)] if s.key == ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 80,
        }),
        "{c:?}"
    );
    let Action::Apply(c) = action(&[
        "-a",
        "-u",
        "127.0.0.1:domain",
        "-r",
        "localhost:domain",
        "-m",
    ]) else {
        panic!("not an apply");
    };
    match &c[..] {
        [Command::AddReal(key, r)] => {
            assert_eq!(key.port(), 53);
            assert_eq!((r.addr, r.port), (IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        other => panic!("{other:?}"),
    }
}

fn real(last: u8, port: u16, weight: u32, method: ForwardMethod) -> Real {
    Real {
        addr: Ipv4Addr::new(198, 18, 2, last),
        port,
        weight,
        method,
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

/// The listing, column for column as ipvsadm 1.31 prints it (format
/// strings of ipvsadm.c's print_title and print_service_entry).
#[test]
fn the_listing_is_ipvsadms() {
    let report = |r: Real, active, inactive| RealReport {
        real: r,
        active,
        inactive,
        persistent: 0,
        counted: Counted::default(),
    };
    let services = vec![
        ServiceReport {
            key: key(Protocol::Tcp, 80),
            name: "http".into(),
            scheduler: SchedulerKind::Rr,
            persistence: None,
            ops: false,
            counted: Counted::default(),
            reals: vec![
                report(real(11, 80, 1, ForwardMethod::Nat), 12, 3),
                report(real(12, 80, 0, ForwardMethod::DirectRouting), 0, 0),
            ],
        },
        ServiceReport {
            key: ServiceKey::Fwmark(1),
            name: "web".into(),
            scheduler: SchedulerKind::Sh {
                port: true,
                fallback: true,
            },
            persistence: Some(Persistence {
                timeout: 300,
                netmask: 24,
            }),
            ops: false,
            counted: Counted::default(),
            reals: vec![report(real(13, 0, 2, ForwardMethod::Tunnel), 1, 0)],
        },
        ServiceReport {
            key: key(Protocol::Udp, 53),
            name: "dns".into(),
            scheduler: SchedulerKind::Wlc,
            persistence: None,
            ops: true,
            counted: Counted::default(),
            reals: vec![],
        },
    ];
    // Listed in ipvsadm's order (address services by protocol, address,
    // port; then marks), flags in parentheses after the scheduler.
    let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 rr
  -> 198.18.2.11:80               Masq    1      12         3         
  -> 198.18.2.12:80               Route   0      0          0         
UDP  198.18.0.100:53 wlc ops
FWM  1 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0
  -> 198.18.2.13:0                Tunnel  2      1          0         
";
    assert_eq!(
        format_list(&services, None, 4096, View::Default, Names::Numeric).as_deref(),
        Some(want)
    );
    // One service: no version line; a missing one: None (No such service).
    let one = format_list(
        &services,
        Some(key(Protocol::Udp, 53)),
        4096,
        View::Default,
        Names::Numeric,
    )
    .unwrap();
    assert_eq!(
        one,
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nUDP  198.18.0.100:53 wlc ops\n"
    );
    assert_eq!(
        format_list(
            &services,
            Some(key(Protocol::Tcp, 81)),
            4096,
            View::Default,
            Names::Numeric
        ),
        None
    );

    // -S, as ipvsadm-save prints it, and -R reads it back to the same
    // operations.
    let save = format_save(&services);
    assert_eq!(
        save,
        "\
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.2.11:80 -m -w 1
-a -t 198.18.0.100:80 -r 198.18.2.12:80 -g -w 0
-A -u 198.18.0.100:53 -s wlc -o
-A -f 1 -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port
-a -f 1 -r 198.18.2.13:0 -i -w 2
"
    );
    let commands = parse_restore(&format!("# saved\n\nipvsadm {save}")).unwrap();
    assert_eq!(commands.len(), 6);
    let Command::AddService(fw) = &commands[4] else {
        panic!("{commands:?}")
    };
    assert_eq!(fw.key, ServiceKey::Fwmark(1));
    assert_eq!(
        fw.scheduler,
        SchedulerKind::Sh {
            port: true,
            fallback: true
        }
    );
    assert_eq!(
        fw.persistence,
        Some(Persistence {
            timeout: 300,
            netmask: 24
        })
    );
    assert_eq!(
        parse_restore("-A -t 198.18.0.100:80\n-a -t 1.2.3.4:80\n"),
        Err((
            2,
            "You need to supply the 'real-server' option for the 'add-server' command".into()
        ))
    );
    assert!(parse_restore("-L -n\n").is_err(), "only operations restore");
    // What clap refuses is named in its words, not only by its kind.
    let (line, why) = parse_restore("-A -t 198.18.0.100:80\n-a -t 198.18.0.100:80 --bogus\n")
        .expect_err("an unknown option");
    assert_eq!(line, 2);
    assert!(
        why.contains("'--bogus'") && !why.starts_with("error"),
        "{why}"
    );
    let (_, why) = parse_restore("-A -t 198.18.0.100:80 -s\n").expect_err("a missing value");
    assert!(why.contains("--scheduler") && !why.contains('\n'), "{why}");
    // No command: clap's list of them comes on the lines after its first.
    let (_, why) = parse_restore("-t 198.18.0.100:80 -s rr\n").expect_err("no command");
    assert!(
        why.starts_with("the following required arguments were not provided: <")
            && why.contains("--add-service")
            && !why.contains('\n'),
        "{why}"
    );
    // Help and version are not restored, and not printed as a reason.
    for line in ["-h\n", "-V\n"] {
        assert_eq!(
            parse_restore(line),
            Err((1, "only -A -E -D -C -a -e -d -Z --set lines restore".into()))
        );
    }
    // A line's --socket would be silently ignored: it is refused.
    assert_eq!(
        parse_restore("-A -t 198.18.0.100:80\n-A -t 198.18.0.101:80 --socket /tmp/x.sock\n"),
        Err((
            2,
            "--socket on a line is not restored: give it to l4vsadm -R itself".into()
        ))
    );
    // A comment runs from a word that starts with # to the end of the
    // line; a # inside a word is part of it.
    let plain = parse_restore("-A -t 198.18.0.100:80 -s rr\n").expect("a plain line");
    assert_eq!(plain.len(), 1);
    assert_eq!(
        parse_restore("-A -t 198.18.0.100:80 -s rr # the web VIP -s bogus\n  #indented\n"),
        Ok(plain)
    );
    assert_eq!(
        parse_restore("-A -t 198.18.0.100:80 #-s bogus\n"),
        parse_restore("-A -t 198.18.0.100:80\n")
    );
    assert!(parse_restore("-A -t 198.18.0.100:80\n").is_ok());
    let (line, why) = parse_restore("-A -t 198.18.0.100:80 -s rr#x\n").expect_err("rr#x");
    assert_eq!(line, 1);
    assert!(why.contains("rr#x"), "{why}");
    // Bytes that are not UTF-8 name their line, unless they are in a
    // comment; the first wrong line is the one named, whatever is wrong
    // with it.
    assert_eq!(
        parse_restore_bytes(b"-A -t 198.18.0.100:80\n-D -t 198.18.\xe9.100:80\n"),
        Err((2, "not UTF-8 text".into()))
    );
    assert_eq!(
        parse_restore_bytes(b"\xff"),
        Err((1, "not UTF-8 text".into()))
    );
    assert_eq!(
        parse_restore_bytes(b"-A -t 198.18.0.100:80 # caf\xe9\r\n# \xff\n"),
        parse_restore("-A -t 198.18.0.100:80\n")
    );
    // A byte-order mark at the start is skipped (and only there).
    assert_eq!(
        parse_restore_bytes(b"\xef\xbb\xbf-A -t 198.18.0.100:80\n"),
        parse_restore("-A -t 198.18.0.100:80\n")
    );
    assert_eq!(
        parse_restore_bytes(b"-A -t 198.18.0.100:80\n\xef\xbb\xbf-A -t 198.18.0.101:80\n"),
        Err((2, "unexpected argument '\\u{feff}-A' found".into()))
    );
    let (line, why) =
        parse_restore_bytes(b"-A -t 198.18.0.100:80 --bogus\n\n\xff\n").expect_err("line 1 first");
    assert_eq!(line, 1);
    assert!(why.contains("'--bogus'"), "{why}");
    assert_eq!(
        parse_restore_bytes(
            b"-A -t 198.18.0.100:80 -s rr\r\n-a -t 198.18.0.100:80 -r 198.18.2.11:80 -m\n"
        ),
        parse_restore(
            "-A -t 198.18.0.100:80 -s rr\r\n-a -t 198.18.0.100:80 -r 198.18.2.11:80 -m\n"
        )
    );
    // ipvsadm's checks and words for -p and -M.
    for (args, want) in [
        (
            "-A -t 198.18.0.100:80 -p 0",
            "invalid timeout value `0' specified",
        ),
        (
            "-A -t 198.18.0.100:80 -p abc",
            "invalid timeout value `abc' specified",
        ),
        (
            "-A -t 198.18.0.100:80 -p 60 -M 255.0.255.0",
            "illegal virtual server persistent mask specified: `255.0.255.0`",
        ),
        (
            "-A -t 198.18.0.100:80 -p 60 -M 255.255.0",
            "illegal virtual server persistent mask specified: `255.255.0`",
        ),
    ] {
        assert_eq!(parse_restore(args), Err((1, want.into())), "{args}");
    }
}

/// ipvsadm's order, quirk included: 192.168.0.1 sorts before 10.0.0.1
/// (their 32-bit difference taken as signed is positive).
#[test]
fn services_sort_as_ipvsadm_sorts_them() {
    let svc = |a: [u8; 4], port| ServiceReport {
        key: ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: IpAddr::V4(Ipv4Addr::from(a)),
            port,
        },
        name: String::new(),
        scheduler: SchedulerKind::Rr,
        persistence: None,
        ops: false,
        counted: Counted::default(),
        reals: vec![],
    };
    let list = format_list(
        &[
            svc([10, 0, 0, 1], 80),
            svc([192, 168, 0, 1], 80),
            svc([10, 0, 0, 1], 22),
        ],
        None,
        1,
        View::Default,
        Names::Numeric,
    )
    .unwrap();
    let order: Vec<&str> = list.lines().skip(3).collect();
    assert_eq!(
        order,
        [
            "TCP  192.168.0.1:80 rr",
            "TCP  10.0.0.1:22 rr",
            "TCP  10.0.0.1:80 rr"
        ]
    );
}

/// `--stats` and `--rate`, as ipvsadm prints them: titles of `%-33s` and
/// five `%8s`, numbers cut down to K/M/G/T (truncating) unless `--exact`,
/// a real server's first three rates whole.
#[test]
fn stats_and_rates_are_ipvsadms() {
    use crate::estimator::Rates;
    use crate::stats::Counted;
    use l4vs_dataplane::traffic::Totals;
    let counted = Counted {
        totals: Totals {
            conns: 1234,
            inpkts: 99_999_999,
            outpkts: 100_000_000,
            inbytes: 98_765_432_109,
            outbytes: 123_456_789_012_345,
        },
        rates: Rates {
            cps: 1,
            inpps: 123_456_789,
            outpps: 3,
            inbps: 4567,
            outbps: 890,
        },
    };
    let svc = ServiceReport {
        key: key(Protocol::Tcp, 80),
        name: String::new(),
        scheduler: SchedulerKind::Rr,
        persistence: None,
        ops: false,
        counted,
        reals: vec![RealReport {
            real: real(10, 80, 1, ForwardMethod::Nat),
            active: 0,
            inactive: 0,
            persistent: 0,
            counted,
        }],
    };
    let only = Some(key(Protocol::Tcp, 80));
    let stats = format_list(
        std::slice::from_ref(&svc),
        only,
        1,
        View::Stats { exact: false },
        Names::Numeric,
    )
    .unwrap();
    assert_eq!(
        stats,
        "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                  1234 99999999  100000K   98765M     123T
  -> 198.18.2.10:80                   1234 99999999  100000K   98765M     123T
"
    );
    let exact = format_list(
        std::slice::from_ref(&svc),
        only,
        1,
        View::Stats { exact: true },
        Names::Numeric,
    )
    .unwrap();
    assert!(
        exact.contains("TCP  198.18.0.100:80                  1234 99999999 100000000 98765432109 123456789012345\n"),
        "{exact}"
    );
    let rate = format_list(&[svc], only, 1, View::Rate { exact: false }, Names::Numeric).unwrap();
    // Every number column ends at 33 + 9k: the service's CPS and the
    // real's both end at column 42.
    let want = [
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
        "  -> RemoteAddress:Port",
        "TCP  198.18.0.100:80                     1  123456K        3     4567      890",
        "  -> 198.18.2.10:80                      1 123456789        3     4567      890",
    ];
    assert_eq!(rate.lines().collect::<Vec<_>>(), want);
    assert_eq!(want[2].find(" 1 ").map(|i| i + 2), Some(42));
    assert_eq!(want[3].find(" 1 ").map(|i| i + 2), Some(42));
    assert_eq!(
        format_timeouts([900, 120, 300]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(
        cli(&["--set", "900", "0", "60"]).action().unwrap(),
        Action::Apply(vec![Command::SetTimeouts {
            tcp: 900,
            tcp_fin: 0,
            udp: 60
        }])
    );
    assert_eq!(
        cli(&["-L", "--timeout"]).action().unwrap(),
        Action::Timeouts
    );
    assert_eq!(
        cli(&["-L", "-n", "--stats", "--rate", "--exact"])
            .action()
            .unwrap(),
        Action::List(None, View::Stats { exact: true }),
        "stats wins, as in ipvsadm"
    );
}

/// `--thresholds`: ipvsadm's title (`%-33s %-10s %-10s %-10s %-10s`, so
/// with a trailing space) and the service line of the default view.
#[test]
fn thresholds_are_ipvsadms() {
    let svc = ServiceReport {
        key: key(Protocol::Tcp, 80),
        name: String::new(),
        scheduler: SchedulerKind::Wlc,
        persistence: None,
        ops: false,
        counted: Counted::default(),
        reals: vec![RealReport {
            real: Real {
                upper_threshold: 100,
                lower_threshold: 50,
                ..real(10, 80, 1, ForwardMethod::Nat)
            },
            active: 3,
            inactive: 4,
            persistent: 0,
            counted: Counted::default(),
        }],
    };
    let text = format_list(
        std::slice::from_ref(&svc),
        Some(svc.key),
        1,
        View::Thresholds,
        Names::Numeric,
    )
    .unwrap();
    assert_eq!(
        text,
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\nTCP  198.18.0.100:80 wlc\n  -> 198.18.2.10:80               100        50         3          4         \n"
    );
    assert_eq!(
        cli(&["-L", "-n", "--thresholds"]).action().unwrap(),
        Action::List(None, View::Thresholds)
    );
}

fn entry(
    protocol: u8,
    client: &str,
    virt: &str,
    dest: &str,
    state: &str,
    expires: u32,
    template: bool,
) -> ConnEntry {
    ConnEntry {
        protocol,
        client: client.parse().unwrap(),
        virtual_addr: virt.parse().unwrap(),
        destination: dest.parse().unwrap(),
        state: state.into(),
        expires,
        template,
    }
}

/// `-Lnc` as ipvsadm 1.31's print_conn prints it: mm:ss with minutes not
/// capped, `IP` for a firewall-mark template, the pe title with
/// `--persistent-conn` over entries in the plain format.
#[test]
fn the_connection_listing_is_ipvsadms() {
    let entries = [
        entry(
            6,
            "10.1.1.5:51234",
            "10.0.0.1:80",
            "192.168.1.10:80",
            "ESTABLISHED",
            898,
            false,
        ),
        entry(
            17,
            "10.1.1.5:5060",
            "10.0.0.1:53",
            "192.168.1.11:53",
            "UDP",
            7200,
            false,
        ),
        entry(
            0,
            "10.1.1.0:0",
            "0.0.0.1:0",
            "192.168.1.12:0",
            "NONE",
            5,
            true,
        ),
    ];
    assert_eq!(
        format_connections(&entries, false, Names::Numeric),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         TCP 14:58  ESTABLISHED 10.1.1.5:51234     10.0.0.1:80        192.168.1.10:80\n\
         UDP 120:00 UDP         10.1.1.5:5060      10.0.0.1:53        192.168.1.11:53\n\
         IP  00:05  NONE        10.1.1.0:0         0.0.0.1:0          192.168.1.12:0\n"
    );
    let with_pe = format_connections(&entries[..1], true, Names::Numeric);
    assert_eq!(
        with_pe.lines().nth(1),
        Some("pro expire state       source             virtual            destination        pe name          pe_data")
    );
    assert_eq!(
        with_pe.lines().nth(2),
        Some("TCP 14:58  ESTABLISHED 10.1.1.5:51234     10.0.0.1:80        192.168.1.10:80")
    );
}

/// `-c` and `--persistent-conn` on the command line, and ipvsadm's words
/// for the options a listing cannot combine.
#[test]
fn connection_listing_options_and_their_conflicts() {
    assert_eq!(
        cli(&["-L", "-n", "-c"]).action(),
        Ok(Action::Connections {
            persistent_conn: false
        })
    );
    assert_eq!(
        cli(&["-Lnc", "--persistent-conn"]).action(),
        Ok(Action::Connections {
            persistent_conn: true
        })
    );
    assert_eq!(
        cli(&["-L", "--persistent-conn"]).action(),
        Ok(Action::List(None, View::PersistentConn))
    );
    let refused = |args: &[&str]| cli(args).action().unwrap_err().0;
    assert_eq!(
        refused(&["-L", "-c", "-t", "1.2.3.4:80"]),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        refused(&["-L", "--timeout", "--daemon"]),
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
    );
    assert_eq!(
        refused(&["-L", "-c", "--stats"]),
        "options conflicts in the list command"
    );
    assert_eq!(
        refused(&["-L", "--daemon", "--persistent-conn"]),
        "options conflicts in the list command"
    );
}

/// `--persistent-conn`: templates counted per real from a listing, the
/// columns as ipvsadm prints them.
#[test]
fn persistent_conn_counts_templates_per_real() {
    let mut services = vec![ServiceReport {
        key: key(Protocol::Tcp, 80),
        name: "web".into(),
        scheduler: SchedulerKind::Rr,
        persistence: Some(Persistence {
            timeout: 300,
            netmask: 32,
        }),
        ops: false,
        counted: Counted::default(),
        reals: vec![
            RealReport {
                real: real(10, 80, 1, ForwardMethod::Nat),
                active: 2,
                inactive: 1,
                persistent: 0,
                counted: Counted::default(),
            },
            RealReport {
                real: real(11, 80, 1, ForwardMethod::Nat),
                active: 0,
                inactive: 0,
                persistent: 0,
                counted: Counted::default(),
            },
        ],
    }];
    let vip = match services[0].key {
        ServiceKey::Addr { vip, .. } => vip.to_string(),
        ServiceKey::Fwmark(_) => unreachable!(),
    };
    let rip = |n: u8| services[0].reals[usize::from(n)].real.addr.to_string();
    let (r0, r1) = (rip(0), rip(1));
    let entries = [
        entry(
            6,
            "10.1.1.5:0",
            &format!("{vip}:80"),
            &format!("{r0}:80"),
            "NONE",
            200,
            true,
        ),
        entry(
            6,
            "10.1.1.6:0",
            &format!("{vip}:80"),
            &format!("{r0}:80"),
            "NONE",
            200,
            true,
        ),
        // A connection, a template of another port: not counted.
        entry(
            6,
            "10.1.1.5:4000",
            &format!("{vip}:80"),
            &format!("{r0}:80"),
            "ESTABLISHED",
            200,
            false,
        ),
        entry(
            6,
            "10.1.1.7:0",
            &format!("{vip}:81"),
            &format!("{r1}:80"),
            "NONE",
            200,
            true,
        ),
    ];
    count_templates(&mut services, &entries);
    assert_eq!(
        (
            services[0].reals[0].persistent,
            services[0].reals[1].persistent
        ),
        (2, 0)
    );
    let text = format_list(&services, None, 4096, View::PersistentConn, Names::Numeric).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn "
    );
    assert_eq!(lines[2], "  -> RemoteAddress:Port");
    assert_eq!(
        lines[4],
        format!(
            "  -> {:<28} 1         2           2          1         ",
            format!("{r0}:80")
        )
    );
}

/// `-E` changes what ipvsadm can say and keeps the service's name and
/// its own timeouts, which ipvsadm cannot; a reload's full edit replaces
/// them all.
#[test]
fn an_ipvsadm_edit_keeps_the_name_and_the_timeouts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let cfg = crate::config::load(&dir.join("example-full.yaml")).unwrap();
    let mut table = crate::table::ServiceTable::from_config(&cfg).unwrap();
    let before = table.report();
    let www = before.iter().find(|s| s.name == "www").unwrap();
    let key = match www.key {
        ServiceKey::Addr { vip, port, .. } => format!("{vip}:{port}"),
        ServiceKey::Fwmark(_) => unreachable!(),
    };
    let timeouts_before = table.to_config(&cfg).services[0].timeouts;
    let Action::Apply(cmds) = cli(&["-E", "-t", &key, "-s", "rr"]).action().unwrap() else {
        panic!("not an edit")
    };
    for c in cmds {
        table.apply(c).unwrap();
    }
    let after = table.report();
    let www = after.iter().find(|s| s.key == www.key).unwrap();
    assert_eq!(
        (www.name.as_str(), www.scheduler),
        ("www", SchedulerKind::Rr)
    );
    assert_eq!(table.to_config(&cfg).services[0].timeouts, timeouts_before);
}

/// `--start-daemon` and `--stop-daemon` with ipvsadm's options, defaults
/// and words.
#[test]
fn sync_daemon_command_lines() {
    let a = cli(&[
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "lan",
        "--syncid",
        "7",
        "--mcast-group",
        "224.0.0.82",
        "--mcast-port",
        "8849",
        "--mcast-ttl",
        "2",
        "--sync-maxlen",
        "1000",
    ])
    .action()
    .unwrap();
    assert_eq!(
        a,
        Action::StartDaemon(crate::admin::DaemonSpec {
            state: "backup".into(),
            interface: "lan".into(),
            syncid: 7,
            group: Some(Ipv4Addr::new(224, 0, 0, 82)),
            port: Some(8849),
            ttl: Some(2),
            maxlen: Some(1000),
        })
    );
    // ipvsadm's defaults: eth0, syncid 0.
    let Action::StartDaemon(d) = cli(&["--start-daemon", "master"]).action().unwrap() else {
        panic!()
    };
    assert_eq!((d.interface.as_str(), d.syncid, d.group), ("eth0", 0, None));
    assert_eq!(
        cli(&["--stop-daemon", "master", "--syncid", "3"]).action(),
        Ok(Action::StopDaemon("master".into()))
    );
    let refused = |args: &[&str]| cli(args).action().unwrap_err().0;
    assert_eq!(
        refused(&["--start-daemon", "primary"]),
        "illegal start-daemon parameter specified: `primary`"
    );
    assert_eq!(
        refused(&["--stop-daemon", "primary"]),
        "illegal stop-daemon parameter specified: `primary`"
    );
    assert_eq!(
        refused(&["--stop-daemon", "master", "--mcast-port", "1"]),
        "Illegal 'mcast-port' option with the 'stop-daemon' command"
    );
    assert_eq!(
        refused(&["-A", "-t", "198.18.0.100:80", "--syncid", "3"]),
        "Illegal 'syncid' option with the 'add-service' command"
    );
    assert_eq!(
        refused(&["--start-daemon", "master", "--mcast-ttl", "0"]),
        "illegal mcast-ttl specified: `0`"
    );
    assert_eq!(
        refused(&["--start-daemon", "master", "--mcast-port", "0"]),
        "illegal mcast-port specified: `0`"
    );
    assert_eq!(
        refused(&["--start-daemon", "master", "--mcast-group", "x"]),
        "illegal multicast group address specified: `x`"
    );
}

/// Without `-n` a listing names hosts and ports as ipvsadm's
/// addrport_to_anyname does: the host from /etc/hosts (127.0.0.1 is
/// `localhost`), the port from /etc/services by the service's protocol
/// (80/tcp `http`, 53/udp `domain`, 8080/tcp `http-alt`), the number where
/// there is no name (65000) or no protocol (a firewall-mark service's
/// reals, a template).
#[test]
fn without_numeric_a_listing_names_hosts_and_ports() {
    let lo = Ipv4Addr::LOCALHOST;
    let at = |port: u16| Real {
        addr: lo,
        port,
        weight: 1,
        method: ForwardMethod::Nat,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    let report = |r: Real| RealReport {
        real: r,
        active: 0,
        inactive: 0,
        persistent: 0,
        counted: Counted::default(),
    };
    let service = |key: ServiceKey, reals: Vec<RealReport>| ServiceReport {
        key,
        name: String::new(),
        scheduler: SchedulerKind::Rr,
        persistence: None,
        ops: false,
        counted: Counted::default(),
        reals,
    };
    let addr = |protocol, port| ServiceKey::Addr {
        protocol,
        vip: IpAddr::V4(lo),
        port,
    };
    let services = vec![
        service(
            addr(Protocol::Tcp, 80),
            vec![report(at(8080)), report(at(65000))],
        ),
        service(addr(Protocol::Udp, 53), vec![report(at(53))]),
        service(ServiceKey::Fwmark(7), vec![report(at(80))]),
    ];
    let text = format_list(&services, None, 4096, View::Default, Names::Looked).unwrap();
    let body: Vec<&str> = text.lines().skip(3).collect();
    assert_eq!(
        body,
        [
            "TCP  localhost:http rr",
            "  -> localhost:http-alt           Masq    1      0          0         ",
            "  -> localhost:65000              Masq    1      0          0         ",
            "UDP  localhost:domain rr",
            "  -> localhost:domain             Masq    1      0          0         ",
            "FWM  7 rr",
            "  -> localhost:80                 Masq    1      0          0         ",
        ]
    );
    let numeric = format_list(&services, None, 4096, View::Default, Names::Numeric).unwrap();
    assert!(
        numeric.contains("TCP  127.0.0.1:80 rr\n  -> 127.0.0.1:8080"),
        "{numeric}"
    );

    let entries = [
        entry(
            6,
            "127.0.0.1:80",
            "127.0.0.1:80",
            "127.0.0.1:8080",
            "ESTABLISHED",
            60,
            false,
        ),
        entry(
            0,
            "127.0.0.1:0",
            "0.0.0.7:0",
            "127.0.0.1:0",
            "NONE",
            5,
            true,
        ),
        // A host without a name keeps its port's name (looked up apart,
        // as ipvsadm's getservbyport).
        entry(
            17,
            "127.0.0.1:5353",
            "0.0.0.7:53",
            "127.0.0.1:53",
            "UDP",
            5,
            false,
        ),
    ];
    assert_eq!(
        format_connections(&entries, false, Names::Looked),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         TCP 01:00  ESTABLISHED localhost:http     localhost:http     localhost:http-alt\n\
         IP  00:05  NONE        localhost:0        0.0.0.7:0          localhost:0\n\
         UDP 00:05  UDP         localhost:mdns     0.0.0.7:domain     localhost:domain\n"
    );
}

/// Names are cut as ipvsadm's buffers cut them, at a character boundary.
#[test]
fn names_are_cut_at_character_boundaries() {
    let mut s = "x".repeat(70);
    cut(&mut s, 59);
    assert_eq!(s.len(), 59);
    let mut s = format!("{}é", "x".repeat(27));
    cut(&mut s, 28);
    assert_eq!(s, "x".repeat(27), "é is two bytes: it does not fit in 28");
    let mut short = String::from("rs1:http");
    cut(&mut short, 28);
    assert_eq!(short, "rs1:http");
}

/// What `-S` writes, `-R` reads back: a weight over ipvsadm's 65535 (the
/// config takes up to 2^31-1) and a firewall mark of 2^31 and up (saved
/// as a negative number, as ipvsadm prints marks).
#[test]
fn save_restores_big_weights_and_marks() {
    let services = vec![ServiceReport {
        key: ServiceKey::Fwmark(3_000_000_000),
        name: "big".into(),
        scheduler: SchedulerKind::Wrr,
        persistence: None,
        ops: false,
        counted: Counted::default(),
        reals: vec![RealReport {
            real: real(11, 0, 100_000, ForwardMethod::DirectRouting),
            active: 0,
            inactive: 0,
            persistent: 0,
            counted: Counted::default(),
        }],
    }];
    let save = format_save(&services);
    assert!(save.contains("-f -1294967296"), "{save}");
    assert!(save.contains("-w 100000"), "{save}");
    let commands = parse_restore(&save).unwrap();
    match &commands[..] {
        [Command::AddService(s), Command::AddReal(key, r)] => {
            assert_eq!(s.key, ServiceKey::Fwmark(3_000_000_000));
            assert_eq!(*key, ServiceKey::Fwmark(3_000_000_000));
            assert_eq!(r.weight, 100_000);
        }
        other => panic!("{other:?}"),
    }
}

/// `--help` lists the schedulers in the order `Scheduler not found` does.
#[test]
fn help_lists_the_schedulers_as_the_error_does() {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_id() == "scheduler")
        .expect("the -s argument");
    let help = arg.get_help().expect("-s has a help line").to_string();
    assert_eq!(
        help,
        format!("Scheduler ({})", SchedulerKind::NAMES.join(" "))
    );
}
