//! Interop: Wireshark's IPVS sync dissector (`packet-ipvs-syncd.c`, run as
//! `tshark -d udp.port==8848,ipvs`) reads the messages our encoders write.
//!
//! What the dissector understands bounds what is checked here. It reads the
//! v0 header and entries (sequence data as big-endian, while the kernel and
//! our v0 writer put it in x86 host order), and the v1 header and the fixed
//! part of v1 entries; it reads no v1 option and steps 36 bytes from entry
//! to entry whatever the entry's size says. So v1 frames here carry entries
//! without options, and the authenticated one its option in the last entry
//! only, where it trails everything the dissector reads.
//!
//! Other quirks of the dissector (Wireshark 4.0), none of which the test
//! relies on: it labels `state` with the old direction names (Input,
//! Output), not TCP states; it names type 2 IPv6 where the kernel's IPv6
//! bit is 1 (it shows any non-zero type with IPv6 addresses); it masks the
//! entry version with 0xe000 and the size with 0x1fff (the kernel: 0xf000,
//! 0x0fff); it tells v1 from v0 by the first byte alone, where the kernel
//! also wants version 1 and a zero spare field.
//!
//! The test needs Debian's `tshark` (scripts/deps.sh installs it) and fails
//! when it is missing: a skipped interop test would pass silently.

use l4vs_wire::ethernet::{self, Address, EtherType};
use l4vs_wire::ipv4::{self, Protocol};
use l4vs_wire::ipvs_sync::*;
use l4vs_wire::{udp, Ipv4Addr};
use std::path::{Path, PathBuf};

mod support;
use support::{num, tshark, write_pcap, Shown};

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// An Ethernet/IPv4/UDP frame from the master to the sync group, built
/// with this crate's views; checksums filled (tshark checks them below).
fn frame(payload: &[u8]) -> Vec<u8> {
    let ip_len = ipv4::HEADER_LEN + udp::HEADER_LEN + payload.len();
    let mut f = vec![0u8; ethernet::HEADER_LEN + ip_len];
    f[ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN..].copy_from_slice(payload);
    let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
    // 01:00:5e + the group's low 23 bits.
    eth.set_dst_addr(Address([0x01, 0x00, 0x5e, 0x00, 0x00, 0x51]));
    eth.set_src_addr(Address([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]));
    eth.set_outer_ethertype(EtherType::Ipv4);
    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_total_len(ip_len as u16);
    ip.set_unfragmented(false);
    ip.set_ttl(1);
    ip.set_protocol(Protocol::Udp);
    ip.set_src_addr(SRC);
    ip.set_dst_addr(GROUP);
    ip.fill_checksum();
    let mut u = udp::Packet::new_unchecked(ip.payload_mut());
    u.set_src_port(40000);
    u.set_dst_port(PORT);
    u.set_len((udp::HEADER_LEN + payload.len()) as u16);
    u.fill_checksum(SRC, GROUP);
    f
}

const FIELDS: &[&str] = &[
    "frame.number",
    "ipvs.syncid",
    "ipvs.conncount",
    "ipvs.size",
    "ipvs.version",
    "ipvs.type",
    "ipvs.proto",
    "ipvs.size.v1",
    "ipvs.flags.v1",
    "ipvs.flags",
    "ipvs.state",
    "ipvs.cport",
    "ipvs.vport",
    "ipvs.dport",
    "ipvs.fwmark",
    "ipvs.timeout",
    "ipvs.caddr",
    "ipvs.vaddr",
    "ipvs.daddr",
    "ipvs.in_seq.initial",
    "ipvs.in_seq.delta",
    "ipvs.in_seq.pdelta",
    "ipvs.out_seq.initial",
    "ipvs.out_seq.delta",
    "ipvs.out_seq.pdelta",
    "ip.checksum.status",
    "udp.checksum.status",
    "_ws.malformed",
    "_ws.expert",
];

fn dissect(pcap: &Path) -> Vec<Shown> {
    support::dissect(
        pcap,
        &[
            "-d",
            "udp.port==8848,ipvs",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ],
        FIELDS,
    )
}

fn nums(shown: &Shown, field: &str) -> Vec<u64> {
    shown[field].iter().map(|s| num(s)).collect()
}

fn field_of(conns: &[SyncConn<'_>], f: impl Fn(&SyncConn<'_>) -> u64) -> Vec<u64> {
    conns.iter().map(f).collect()
}

fn addrs(shown: &Shown, field: &str) -> Vec<Ipv4Addr> {
    shown[field]
        .iter()
        .map(|s| s.parse().expect("an IPv4 address"))
        .collect()
}

/// The fields both versions show for every entry.
fn assert_common(shown: &Shown, conns: &[SyncConn<'_>], syncid: u8, size: usize) {
    assert_eq!(nums(shown, "ipvs.syncid"), [u64::from(syncid)]);
    assert_eq!(nums(shown, "ipvs.conncount"), [conns.len() as u64]);
    assert_eq!(nums(shown, "ipvs.size"), [size as u64]);
    assert_eq!(
        nums(shown, "ipvs.proto"),
        field_of(conns, |c| u64::from(u8::from(c.protocol)))
    );
    assert_eq!(
        nums(shown, "ipvs.state"),
        field_of(conns, |c| u64::from(c.state))
    );
    assert_eq!(
        nums(shown, "ipvs.cport"),
        field_of(conns, |c| u64::from(c.cport))
    );
    assert_eq!(
        nums(shown, "ipvs.vport"),
        field_of(conns, |c| u64::from(c.vport))
    );
    assert_eq!(
        nums(shown, "ipvs.dport"),
        field_of(conns, |c| u64::from(c.dport))
    );
    let all = |f: fn(&SyncConn<'_>) -> Ipv4Addr| conns.iter().map(f).collect::<Vec<_>>();
    assert_eq!(addrs(shown, "ipvs.caddr"), all(|c| c.caddr));
    assert_eq!(addrs(shown, "ipvs.vaddr"), all(|c| c.vaddr));
    assert_eq!(addrs(shown, "ipvs.daddr"), all(|c| c.daddr));
    // 1 is "Good": the checksums were verified and match.
    assert_eq!(shown["ip.checksum.status"], ["1"]);
    assert_eq!(shown["udp.checksum.status"], ["1"]);
    assert!(shown["_ws.malformed"].is_empty(), "malformed: {shown:?}");
    assert!(shown["_ws.expert"].is_empty(), "expert info: {shown:?}");
}

fn assert_v1(shown: &Shown, conns: &[SyncConn<'_>], syncid: u8, size: usize, sizes: &[u64]) {
    assert_common(shown, conns, syncid, size);
    assert_eq!(nums(shown, "ipvs.version"), [1]);
    assert_eq!(nums(shown, "ipvs.type"), vec![0; conns.len()]);
    assert_eq!(nums(shown, "ipvs.size.v1"), sizes);
    assert_eq!(
        nums(shown, "ipvs.flags.v1"),
        field_of(conns, |c| u64::from(c.flags))
    );
    assert_eq!(
        nums(shown, "ipvs.fwmark"),
        field_of(conns, |c| u64::from(c.fwmark))
    );
    assert_eq!(
        nums(shown, "ipvs.timeout"),
        field_of(conns, |c| u64::from(c.timeout))
    );
}

fn sample_conns() -> Vec<SyncConn<'static>> {
    let c = |i: u8| Ipv4Addr::new(198, 18, 1, i);
    let v = Ipv4Addr::new(198, 18, 0, 100);
    let d = |i: u8| Ipv4Addr::new(198, 19, 0, i);
    vec![
        SyncConn {
            flags: IP_VS_CONN_F_DROUTE,
            state: IP_VS_TCP_S_ESTABLISHED,
            timeout: 900,
            ..SyncConn::new(Protocol::Tcp, c(10), 50000, v, 80, d(11), 80)
        },
        SyncConn {
            flags: IP_VS_CONN_F_MASQ | IP_VS_CONN_F_INACTIVE,
            state: IP_VS_TCP_S_SYN_RECV,
            timeout: 60,
            ..SyncConn::new(Protocol::Tcp, c(11), 40001, v, 443, d(12), 8443)
        },
        SyncConn {
            flags: IP_VS_CONN_F_TUNNEL,
            state: IP_VS_UDP_S_NORMAL,
            fwmark: 7,
            timeout: 300,
            ..SyncConn::new(Protocol::Udp, c(12), 5353, v, 53, d(13), 53)
        },
        SyncConn {
            flags: IP_VS_CONN_F_TEMPLATE | IP_VS_CONN_F_DROUTE,
            timeout: 360,
            ..SyncConn::new(Protocol::Tcp, c(13), 0, v, 80, d(11), 80)
        },
    ]
}

fn seq_sample() -> SeqOptions {
    SeqOptions {
        in_seq: Seq {
            init_seq: 0x0102_0304,
            delta: 0x10,
            previous_delta: 8,
        },
        out_seq: Seq {
            init_seq: 0xa0b0_c0d0,
            delta: 0xffff_fff0,
            previous_delta: 3,
        },
    }
}

#[test]
fn tshark_decodes_our_messages() {
    let conns = sample_conns();

    let mut v1_buf = [0u8; DEFAULT_MAX_LEN];
    let mut w = Writer::new(&mut v1_buf, 42, DEFAULT_MAX_LEN).unwrap();
    for c in &conns {
        w.push(c).unwrap();
    }
    let v1_len = w.finish();

    let mut auth_buf = [0u8; DEFAULT_MAX_LEN];
    let mut w = Writer::new_authenticated(&mut auth_buf, 43, DEFAULT_MAX_LEN).unwrap();
    for c in &conns[..2] {
        w.push(c).unwrap();
    }
    let auth_len = w.finish_with_mac(1, 99, |_| [0x5a; MAC_LEN]).unwrap();

    let v0_conns = [
        conns[0],
        SyncConn {
            flags: IP_VS_CONN_F_SEQ_MASK,
            seq: Some(seq_sample()),
            ..conns[1]
        },
        conns[2],
    ];
    let mut v0_buf = [0u8; DEFAULT_MAX_LEN];
    let mut w = WriterV0::new(&mut v0_buf, 44, DEFAULT_MAX_LEN).unwrap();
    for c in &v0_conns {
        w.push(c).unwrap();
    }
    let v0_len = w.finish();

    // A control: one entry more announced than sent. tshark must call it
    // malformed, or the clean verdicts above would prove nothing.
    let mut bad = v1_buf[..v1_len].to_vec();
    bad[4] += 1;

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let pcap = dir.join(format!("ipvs_sync_tshark_{}.pcap", std::process::id()));
    let payloads = [
        v1_buf[..v1_len].to_vec(),
        auth_buf[..auth_len].to_vec(),
        v0_buf[..v0_len].to_vec(),
        bad,
    ];
    let frames: Vec<Vec<u8>> = payloads.iter().map(|p| frame(p)).collect();
    write_pcap(&pcap, &frames);
    let frames = dissect(&pcap);
    let verbose = tshark(&[
        "-r",
        pcap.to_str().unwrap(),
        "-d",
        "udp.port==8848,ipvs",
        "-c",
        "3",
        "-V",
    ]);
    std::fs::remove_file(&pcap).ok();

    assert_eq!(frames.len(), 4);
    assert!(!frames[3]["_ws.malformed"].is_empty(), "{:?}", frames[3]);
    assert!(!verbose.contains("Malformed"), "{verbose}");
    assert!(!verbose.contains("Expert Info"), "{verbose}");
    assert_eq!(
        verbose.matches("IP Virtual Services Sync Daemon").count(),
        3
    );

    assert_v1(&frames[0], &conns, 42, v1_len, &[36, 36, 36, 36]);
    // The last entry carries the authentication option: 36 + 44 bytes.
    assert_v1(&frames[1], &conns[..2], 43, auth_len, &[36, 80]);

    let v0 = &frames[2];
    assert_common(v0, &v0_conns, 44, v0_len);
    assert!(v0["ipvs.version"].is_empty());
    assert_eq!(
        nums(v0, "ipvs.flags"),
        field_of(&v0_conns, |c| u64::from(c.flags))
    );
    // Wireshark reads v0 sequence data big-endian; the kernel memcpys it
    // in host order, as our v0 writer does (little-endian).
    let s = seq_sample();
    let be = |v: u32| vec![u64::from(v.swap_bytes())];
    assert_eq!(nums(v0, "ipvs.in_seq.initial"), be(s.in_seq.init_seq));
    assert_eq!(nums(v0, "ipvs.in_seq.delta"), be(s.in_seq.delta));
    assert_eq!(nums(v0, "ipvs.in_seq.pdelta"), be(s.in_seq.previous_delta));
    assert_eq!(nums(v0, "ipvs.out_seq.initial"), be(s.out_seq.init_seq));
    assert_eq!(nums(v0, "ipvs.out_seq.delta"), be(s.out_seq.delta));
    assert_eq!(
        nums(v0, "ipvs.out_seq.pdelta"),
        be(s.out_seq.previous_delta)
    );
}
