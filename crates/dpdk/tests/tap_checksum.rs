//! The receive IPv4 checksum offload on a real DPDK device: `net_tap`
//! verifies the IPv4 header checksum of what it receives when the offload
//! is asked for (its `tap_verify_csum`), and says so in each mbuf's
//! `ol_flags`, which [`Mbuf::rx_ip_checksum`] reads.
//!
//! Frames reach the tap port from its kernel interface: a `net_af_packet`
//! port of the same EAL sends them there, one with a good checksum, one
//! with a bad one, one that is not IPv4. It all runs in a network
//! namespace of its own (the test re-runs itself inside one), so the tap
//! interface never appears in the machine's own namespace; the namespace
//! is removed afterwards, also on failure. Needs root and /dev/net/tun.

mod common;

use l4vs_dpdk::{Eal, Mbuf, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};
use std::process::Command;
use std::time::{Duration, Instant};

/// Set in the re-run inside the namespace.
const INSIDE: &str = "L4VS_TAP_CHECKSUM_NETNS";
const IFACE: &str = "l4vsck0";

/// Removes the namespace when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("running ip");
    assert!(status.success(), "ip {}: {status}", args.join(" "));
}

#[test]
fn tap_port_verifies_ipv4_checksums() {
    if std::env::var_os(INSIDE).is_some() {
        verify_inside();
        return;
    }
    // Named as the test scripts' sweep of stale namespaces expects.
    let ns = Netns(format!("l4vs-{}-tapck", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    // No IPv6 on the interface the tap port makes: the kernel would send
    // router and multicast listener solicitations through it.
    ip(&[
        "netns",
        "exec",
        &ns.0,
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.ipv6.conf.all.disable_ipv6=1",
    ]);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "timeout", "120"])
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", "tap_port_verifies_ipv4_checksums", "--nocapture"])
        .env(INSIDE, "1")
        .output()
        .expect("re-running the test in its namespace");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "inside {}: {}\n{}\n{}",
        ns.0,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An Ethernet II frame from `02:00:00:00:00:02` to `02:00:00:00:00:01`:
/// IPv4 (198.18.0.1 -> 198.18.0.2, header checksum right, or wrong when
/// `bad`) carrying UDP with `mark` as its payload; or, for `arp`, an
/// EtherType of ARP and `mark` after the header.
fn frame(mark: u8, bad: bool, arp: bool) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    if arp {
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[mark; 46]);
        return f;
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [
        0x45, 0, 0, 29, 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ];
    let mut sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut check = !(sum as u16);
    if bad {
        check ^= 0x0101;
    }
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    f.extend_from_slice(&ip);
    // UDP 4000 -> 4000, length 9, no checksum, one byte of payload.
    f.extend_from_slice(&[0x0f, 0xa0, 0x0f, 0xa0, 0, 9, 0, 0, mark]);
    f.resize(60, 0);
    f
}

/// The frame's mark: the UDP payload byte, or an ARP frame's first byte
/// after its header.
fn mark_of(m: &Mbuf) -> Option<u8> {
    let d = m.data();
    match d.get(12..14)? {
        [0x08, 0x00] => d.get(42).copied(),
        [0x08, 0x06] => d.get(14).copied(),
        _ => None,
    }
}

fn verify_inside() {
    let args = common::eal_args(&[
        &format!("--vdev=net_tap0,iface={IFACE}"),
        &format!("--vdev=net_af_packet0,iface={IFACE}"),
    ]);
    let _eal = Eal::init(&args).expect("EAL init");
    let pool = Mempool::create("l4vs_tapck_pool", 1023, 32, DEFAULT_DATA_ROOM, -1).unwrap();

    let tap = Port::by_name("net_tap0").unwrap();
    assert!(
        tap.rx_ip_checksum_offloaded().unwrap(),
        "net_tap offers RTE_ETH_RX_OFFLOAD_IPV4_CKSUM"
    );
    let config = |rx_ip_checksum| PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        rss: false,
        rx_ip_checksum,
        ..PortConfig::default()
    };
    tap.configure(&config(true), &pool).unwrap();
    tap.start().unwrap();
    let sender = Port::by_name("net_af_packet0").unwrap();
    sender.configure(&config(false), &pool).unwrap();
    sender.start().unwrap();
    let mut rxq = tap.rx_queue(0).unwrap();
    let mut txq = sender.tx_queue(0).unwrap();

    // The tap port brings its kernel interface up from another thread
    // after start; af_packet sends nothing before (ENETDOWN). Wait for
    // it, then send the three frames (marks 1: good IPv4, 2: bad IPv4
    // checksum, 3: ARP) every 100 ms until the tap port has received each.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(tap.link_up() && sender.link_up()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut seen = [None; 4];
    let mut rx: [Option<Mbuf>; 32] = Default::default();
    let mut next_send = Instant::now();
    while seen[1..].iter().any(Option::is_none) && Instant::now() < deadline {
        if Instant::now() >= next_send {
            let mut tx: [Option<Mbuf>; 3] = Default::default();
            for (slot, (mark, bad, arp)) in
                tx.iter_mut()
                    .zip([(1, false, false), (2, true, false), (3, false, true)])
            {
                let bytes = frame(mark, bad, arp);
                let mut m = pool.alloc().unwrap();
                assert!(m.append(bytes.len()));
                m.data_mut().copy_from_slice(&bytes);
                *slot = Some(m);
            }
            // What the queue does not take is freed with `tx`.
            txq.burst(&mut tx);
            next_send = Instant::now() + Duration::from_millis(100);
        }
        let n = rxq.burst(&mut rx);
        for m in rx[..n].iter_mut().filter_map(Option::take) {
            if let Some(mark @ 1..=3) = mark_of(&m) {
                seen[usize::from(mark)] = Some(m.rx_ip_checksum());
            }
        }
    }
    assert_eq!(
        seen[1..],
        [Some(Some(true)), Some(Some(false)), Some(None)],
        "what the tap port said of: a good IPv4 header, a bad one, ARP"
    );
}
