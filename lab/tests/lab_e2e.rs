//! End-to-end checks of the lab itself, with the kernel standing in for the
//! director: the director namespace's eth0 gets 198.18.1.1/24 and
//! 198.18.2.1/24 and forwards, and the client reaches every real server on
//! its own address (RIP). Needs root. Every lab has its own namespace prefix,
//! so these tests run in parallel with each other and with other labs; each
//! checks that its namespaces are gone after the lab is dropped.

use std::net::SocketAddrV4;
use std::path::Path;

use anyhow::Result;
use l4vs_lab::{
    netns, Decap, Lab, Mode, CLIENT, DIRECTOR, DIRECTOR_CLIENT_ADDR, DIRECTOR_REAL_ADDR, HTTP_PORT,
    IFACE, REAL_NET, REAL_SERVERS, SUBNET_PREFIX_LEN, UDP_ECHO_PORT, VIP,
};

fn lab_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_l4vs-lab"))
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(euid, "0", "the lab tests need root (network namespaces)");
}

/// Namespaces whose name starts with `prefix-`.
fn leftovers(prefix: &str) -> Vec<String> {
    let mine = format!("{prefix}-");
    netns::list()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .collect()
}

/// The kernel plays the director: addresses on eth0, forwarding on. The
/// client also gets a route to the real servers' subnet.
fn kernel_director(lab: &Lab) -> Result<()> {
    lab.ip(
        DIRECTOR,
        &[
            "addr",
            "add",
            &format!("{DIRECTOR_CLIENT_ADDR}/{SUBNET_PREFIX_LEN}"),
            "dev",
            IFACE,
        ],
    )?;
    lab.ip(
        DIRECTOR,
        &[
            "addr",
            "add",
            &format!("{DIRECTOR_REAL_ADDR}/{SUBNET_PREFIX_LEN}"),
            "dev",
            IFACE,
        ],
    )?;
    lab.exec_in(DIRECTOR, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
    lab.ip(
        CLIENT,
        &[
            "route",
            "add",
            &format!("{REAL_NET}/{SUBNET_PREFIX_LEN}"),
            "via",
            &DIRECTOR_CLIENT_ADDR.to_string(),
            "dev",
            IFACE,
        ],
    )?;
    Ok(())
}

/// The director's eth0 is up, has no IPv4 address and no IPv6.
fn check_director_is_silent(lab: &Lab) -> Result<()> {
    let addrs = lab.ip(DIRECTOR, &["-4", "-o", "addr", "show", "dev", IFACE])?;
    assert!(
        addrs.trim().is_empty(),
        "director eth0 has addresses: {addrs}"
    );
    let link = lab.ip(DIRECTOR, &["-o", "link", "show", "dev", IFACE])?;
    assert!(link.contains(",UP"), "director eth0 not up: {link}");
    let v6 = lab.exec_in(
        DIRECTOR,
        "sysctl",
        &["-n", &format!("net.ipv6.conf.{IFACE}.disable_ipv6")],
    )?;
    assert_eq!(v6.trim(), "1");
    Ok(())
}

/// Every real server answers HTTP and UDP on its RIP, each with its own name.
fn check_reals_by_rip(lab: &Lab) -> Result<()> {
    for real in &REAL_SERVERS {
        let http = lab.http_load(SocketAddrV4::new(real.addr, HTTP_PORT), 5)?;
        assert_eq!(http.failed, 0, "{}: {http:?}", real.name);
        assert_eq!(http.count(real.name), 5, "{}: {http:?}", real.name);
        assert_eq!(http.servers(), 1);

        let udp = lab.udp_probe(SocketAddrV4::new(real.addr, UDP_ECHO_PORT), 5)?;
        assert_eq!(udp.failed, 0, "{}: {udp:?}", real.name);
        assert_eq!(udp.count(real.name), 5, "{}: {udp:?}", real.name);
    }
    Ok(())
}

fn check_vip_on_lo(lab: &Lab) -> Result<()> {
    for real in &REAL_SERVERS {
        let lo = lab.ip(real.name, &["-4", "-o", "addr", "show", "dev", "lo"])?;
        assert!(lo.contains(&format!("{VIP}/32")), "{}: {lo}", real.name);
        let ignore = lab.exec_in(
            real.name,
            "sysctl",
            &["-n", &format!("net.ipv4.conf.{IFACE}.arp_ignore")],
        )?;
        assert_eq!(ignore.trim(), "1");
    }
    Ok(())
}

#[test]
fn nat_lab_works_with_a_kernel_director() -> Result<()> {
    require_root();
    let lab = Lab::up(Mode::Nat, lab_bin())?;
    let prefix = lab.prefix().to_owned();
    assert_eq!(leftovers(&prefix).len(), 7, "{:?}", leftovers(&prefix));
    check_director_is_silent(&lab)?;
    let lo = lab.ip("rs1", &["-4", "-o", "addr", "show", "dev", "lo"])?;
    assert!(
        !lo.contains(&VIP.to_string()),
        "NAT reals must not hold the VIP"
    );
    kernel_director(&lab)?;
    check_reals_by_rip(&lab)?;
    drop(lab);
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    Ok(())
}

#[test]
fn dr_lab_works_with_a_kernel_director() -> Result<()> {
    require_root();
    let lab = Lab::up(Mode::DirectRouting, lab_bin())?;
    let prefix = lab.prefix().to_owned();
    assert_eq!(lab.decap(), None);
    check_director_is_silent(&lab)?;
    check_vip_on_lo(&lab)?;
    kernel_director(&lab)?;
    check_reals_by_rip(&lab)?;
    drop(lab);
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    Ok(())
}

#[test]
fn tunnel_lab_decapsulates_ipip() -> Result<()> {
    require_root();
    let lab = Lab::up(Mode::Tunnel, lab_bin())?;
    let prefix = lab.prefix().to_owned();
    assert!(lab.decap().is_some());
    if lab.decap() == Some(Decap::UserSpace) {
        let tun = lab.ip("rs2", &["-o", "link", "show", "dev", "ipip0"])?;
        assert!(tun.contains(",UP"), "ipip0 not up: {tun}");
    }
    check_vip_on_lo(&lab)?;
    kernel_director(&lab)?;
    check_reals_by_rip(&lab)?;
    // The client encapsulates UDP for the VIP to each RIP, as a tunnel-mode
    // director would; the real decapsulates, answers from the VIP directly.
    for real in &REAL_SERVERS {
        let udp = lab.ipip_probe(real.addr, 5)?;
        assert_eq!(udp.failed, 0, "{}: {udp:?}", real.name);
        assert_eq!(udp.count(real.name), 5, "{}: {udp:?}", real.name);
    }
    drop(lab);
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    Ok(())
}

#[test]
fn labs_in_sequence_and_cleanup_after_failure() -> Result<()> {
    require_root();
    let first = Lab::up(Mode::Nat, lab_bin())?;
    let first_prefix = first.prefix().to_owned();
    drop(first);
    let second = Lab::up(Mode::Nat, lab_bin())?;
    assert_ne!(second.prefix(), first_prefix);
    drop(second);
    assert!(leftovers(&first_prefix).is_empty());

    // `true` never prints the ready line: bringing up the servers fails,
    // and the half-built lab must be gone.
    let err = Lab::up(Mode::DirectRouting, Path::new("/bin/true"))
        .expect_err("a lab whose servers never start must fail");
    let text = format!("{err:#}");
    assert!(text.contains("ready"), "{text}");
    let prefix = text
        .split_whitespace()
        .find(|w| w.starts_with(netns::NETNS_PREFIX))
        .expect("the error names the lab")
        .trim_end_matches(':');
    assert!(leftovers(prefix).is_empty(), "{:?}", leftovers(prefix));
    Ok(())
}

/// `l4vs-lab cleanup` without a prefix removes what a lab whose process
/// has gone left, and leaves a running one alone.
#[test]
fn cleanup_removes_only_labs_whose_process_is_gone() -> Result<()> {
    require_root();
    let mut child = std::process::Command::new("true").spawn()?;
    let gone = child.id();
    child.wait()?;
    let stale = format!("{}{gone}-0-stale", netns::NETNS_PREFIX);
    let live = format!("{}{}-9-live", netns::NETNS_PREFIX, std::process::id());
    for ns in [&stale, &live] {
        netns::add(ns)?;
    }
    let removed = netns::cleanup_stale();
    let names = netns::list()?;
    let _ = netns::destroy(&live);
    let _ = netns::destroy(&stale);
    assert!(removed?.contains(&stale));
    assert!(!names.contains(&stale), "{names:?}");
    assert!(names.contains(&live), "a running lab is kept: {names:?}");
    Ok(())
}
