//! Interop: Wireshark's VRRP dissector (`packet-vrrp.c`) reads the
//! advertisements and gratuitous ARPs our builders write.
//!
//! The dissector sums VRRPv3-over-IPv4 checksums with the IPv4
//! pseudo-header unless its preference `vrrp.v3_checksum_as_in_v2` is
//! TRUE (then over the message alone). The frames are read twice, once per
//! setting, so each of our [`ChecksumMode`]s must be "Good" under its own
//! reading and "Bad" under the other: the clean verdicts prove something,
//! and a frame with a broken checksum is "Bad" under both.
//!
//! The test needs Debian's `tshark` (scripts/deps.sh installs it) and fails
//! when it is missing: a skipped interop test would pass silently.

use l4vs_wire::arp;
use l4vs_wire::vrrp::*;
use l4vs_wire::Ipv4Addr;
use std::path::{Path, PathBuf};

mod support;
use support::{num, tshark, write_pcap, Shown};

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

const FIELDS: &[&str] = &[
    "frame.number",
    "eth.src",
    "eth.dst",
    "ip.dsfield",
    "ip.flags.df",
    "ip.ttl",
    "ip.proto",
    "ip.src",
    "ip.dst",
    "ip.checksum.status",
    "vrrp.version",
    "vrrp.type",
    "vrrp.virt_rtr_id",
    "vrrp.prio",
    "vrrp.addr_count",
    "vrrp.reserved_mbz",
    "vrrp.short_adver_int",
    "vrrp.ip_addr",
    "vrrp.checksum.status",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "arp.dst.hw_mac",
    "arp.dst.proto_ipv4",
    "arp.isgratuitous",
    "_ws.malformed",
    "_ws.expert",
];

fn dissect(pcap: &Path, as_in_v2: bool) -> Vec<Shown> {
    let pref = format!(
        "vrrp.v3_checksum_as_in_v2:{}",
        if as_in_v2 { "TRUE" } else { "FALSE" }
    );
    support::dissect(pcap, &["-o", &pref, "-o", "ip.check_checksum:TRUE"], FIELDS)
}

fn one(shown: &Shown, field: &str) -> u64 {
    match &shown[field][..] {
        [v] => num(v),
        other => panic!("{field}: {other:?} in {shown:?}"),
    }
}

/// The IP and VRRP fields of an advertisement frame, checksums aside.
fn assert_advertisement(shown: &Shown, adv: &Advertisement<'_>) {
    let mac = virtual_mac(adv.vrid).to_string();
    assert_eq!(shown["eth.src"], [mac]);
    assert_eq!(shown["eth.dst"], ["01:00:5e:00:00:12"]);
    assert_eq!(one(shown, "ip.dsfield"), u64::from(TOS));
    assert_eq!(one(shown, "ip.flags.df"), 0);
    assert_eq!(one(shown, "ip.ttl"), 255);
    assert_eq!(one(shown, "ip.proto"), u64::from(PROTOCOL));
    assert_eq!(shown["ip.src"], [SRC.to_string()]);
    assert_eq!(shown["ip.dst"], ["224.0.0.18"]);
    // 1 is "Good": verified and right.
    assert_eq!(one(shown, "ip.checksum.status"), 1);
    assert_eq!(one(shown, "vrrp.version"), 3);
    assert_eq!(one(shown, "vrrp.type"), 1);
    assert_eq!(one(shown, "vrrp.virt_rtr_id"), u64::from(adv.vrid));
    assert_eq!(one(shown, "vrrp.prio"), u64::from(adv.priority));
    assert_eq!(one(shown, "vrrp.addr_count"), adv.addresses.len() as u64);
    assert_eq!(one(shown, "vrrp.reserved_mbz"), 0);
    assert_eq!(
        one(shown, "vrrp.short_adver_int"),
        u64::from(adv.max_adver_int)
    );
    let addrs: Vec<Ipv4Addr> = shown["vrrp.ip_addr"]
        .iter()
        .map(|s| s.parse().expect("an IPv4 address"))
        .collect();
    assert_eq!(addrs, adv.addresses);
    assert!(shown["_ws.malformed"].is_empty(), "malformed: {shown:?}");
}

#[test]
fn tshark_decodes_our_advertisements() {
    let vips: Vec<Ipv4Addr> = (0..20)
        .map(|i| Ipv4Addr::new(198, 18, 0, 100 + i))
        .collect();
    let pseudo = ChecksumMode::PseudoHeader;
    let sent = [
        (
            Advertisement {
                vrid: 51,
                priority: 150,
                max_adver_int: DEFAULT_ADVER_INT,
                addresses: &vips[..2],
            },
            pseudo,
        ),
        (
            Advertisement {
                vrid: 1,
                priority: PRIORITY_OWNER,
                max_adver_int: MAX_ADVER_INT,
                addresses: &vips[..1],
            },
            pseudo,
        ),
        (
            Advertisement {
                vrid: 255,
                priority: PRIORITY_RELEASE,
                max_adver_int: 1,
                addresses: &vips,
            },
            pseudo,
        ),
        (
            Advertisement {
                vrid: 7,
                priority: PRIORITY_DEFAULT,
                max_adver_int: 250,
                addresses: &vips[..3],
            },
            ChecksumMode::MessageOnly,
        ),
    ];
    let mut frames = Vec::new();
    for (i, (adv, mode)) in sent.iter().enumerate() {
        let mut buf = [0u8; 1100];
        let n = adv.emit_frame(&mut buf, SRC, i as u16, *mode).unwrap();
        frames.push(buf[..n].to_vec());
    }
    // A control: the first frame with its VRRP checksum broken. tshark
    // must call it bad under both readings.
    let mut bad = frames[0].clone();
    bad[14 + 20 + 7] ^= 0x01;
    frames.push(bad);
    let mut garp = [0u8; 60];
    let n = arp::emit_gratuitous_request(&mut garp, virtual_mac(51), vips[0]).unwrap();
    frames.push(garp[..n].to_vec());

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let pcap = dir.join(format!("vrrp_tshark_{}.pcap", std::process::id()));
    write_pcap(&pcap, &frames);
    let pseudo_reading = dissect(&pcap, false);
    let v2_reading = dissect(&pcap, true);
    let verbose = tshark(&["-r", pcap.to_str().unwrap(), "-V"]);
    std::fs::remove_file(&pcap).ok();

    assert_eq!(pseudo_reading.len(), 6);
    assert_eq!(v2_reading.len(), 6);
    assert_eq!(
        verbose
            .matches("Virtual Router Redundancy Protocol")
            .count(),
        5
    );
    assert_eq!(
        verbose
            .matches("Version 3, Packet type 1 (Advertisement)")
            .count(),
        5
    );
    assert!(!verbose.contains("Malformed"), "{verbose}");

    // vrrp.checksum.status: 1 Good, 0 Bad.
    let status = |reading: &[Shown]| -> Vec<u64> {
        reading[..5]
            .iter()
            .map(|s| one(s, "vrrp.checksum.status"))
            .collect()
    };
    assert_eq!(status(&pseudo_reading), [1, 1, 1, 0, 0]);
    assert_eq!(status(&v2_reading), [0, 0, 0, 1, 0]);

    for (i, (adv, _)) in sent.iter().enumerate() {
        for reading in [&pseudo_reading, &v2_reading] {
            assert_advertisement(&reading[i], adv);
        }
        // The only expert note tshark has for these is a bad checksum.
        let clean = if i == 3 { &v2_reading } else { &pseudo_reading };
        assert!(clean[i]["_ws.expert"].is_empty(), "{:?}", clean[i]);
    }
    assert_advertisement(&pseudo_reading[4], &sent[0].0);
    assert!(!pseudo_reading[4]["_ws.expert"].is_empty());

    let g = &pseudo_reading[5];
    assert_eq!(g["eth.src"], [virtual_mac(51).to_string()]);
    assert_eq!(g["eth.dst"], ["ff:ff:ff:ff:ff:ff"]);
    assert_eq!(one(g, "arp.opcode"), 1);
    assert_eq!(one(g, "arp.isgratuitous"), 1);
    assert_eq!(g["arp.src.hw_mac"], [virtual_mac(51).to_string()]);
    assert_eq!(g["arp.src.proto_ipv4"], ["198.18.0.100"]);
    assert_eq!(g["arp.dst.hw_mac"], ["ff:ff:ff:ff:ff:ff"]);
    assert_eq!(g["arp.dst.proto_ipv4"], ["198.18.0.100"]);
    assert!(
        g["_ws.malformed"].is_empty() && g["_ws.expert"].is_empty(),
        "{g:?}"
    );
}
