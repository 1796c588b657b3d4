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
            timeout: 300,
            netmask: 32
        })
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
    assert_eq!(cli(&["-L", "-n"]).action().unwrap(), Action::List(None));
    assert_eq!(
        cli(&["-l", "-n", "-u", "198.18.0.100:53"])
            .action()
            .unwrap(),
        Action::List(Some(key(Protocol::Udp, 53)))
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
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100"]),
        "illegal virtual server address[:port] specified: 198.18.0.100"
    );
    assert_eq!(
        err(&["-a", "-t", "198.18.0.100:80"]),
        "You need to supply the 'real-server' option for this command"
    );
    assert_eq!(err(&["-D"]), "You must specify the service (-t, -u or -f)");
    assert!(
        err(&["-A", "-t", "198.18.0.100:80", "-s", "xyz"]).starts_with("Scheduler not found: xyz")
    );
    assert_eq!(
        err(&["-A", "-t", "198.18.0.100:80", "-s", "rr", "-b", "sh-port"]),
        "invalid scheduler flag for rr: sh-port"
    );
    assert_eq!(
        err(&["-a", "-t", "198.18.0.100:80", "-r", "not-an-address"]),
        "illegal real server address[:port] specified: not-an-address"
    );
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
    let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 rr
  -> 198.18.2.11:80               Masq    1      12         3         
  -> 198.18.2.12:80               Route   0      0          0         
FWM  1 sh persistent 300 mask 255.255.255.0 sh-port,sh-fallback
  -> 198.18.2.13:0                Tunnel  2      1          0         
UDP  198.18.0.100:53 wlc ops
";
    assert_eq!(format_list(&services, None, 4096), want);
    let one = format_list(&services, Some(key(Protocol::Udp, 53)), 4096);
    assert!(
        one.ends_with("InActConn\nUDP  198.18.0.100:53 wlc ops\n"),
        "{one}"
    );
}
