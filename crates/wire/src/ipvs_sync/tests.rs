//! Golden messages written byte by byte from the kernel's struct layouts,
//! every malformed case the kernel distinguishes, round trips and a
//! no-panic property.

extern crate std;

use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const C: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const V: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const D: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);

type Item<'a> = core::result::Result<SyncConn<'a>, EntryError>;

fn decode(buf: &[u8]) -> Vec<Item<'_>> {
    Message::parse(buf).unwrap().conns().collect()
}

/// v1, syncid 7, one TCP direct-routing connection in SYN_RECV.
#[rustfmt::skip]
static V1_ONE: [u8; 44] = [
    // struct ip_vs_sync_mesg
    0x00,                   // reserved
    0x07,                   // syncid
    0x00, 0x2c,             // size = 44
    0x01,                   // nr_conns
    0x01,                   // version = SYNC_PROTO_VER
    0x00, 0x00,             // spare
    // struct ip_vs_sync_v4
    0x00,                   // type = IPv4
    0x06,                   // protocol = TCP
    0x00, 0x24,             // ver 0, size 36
    0x00, 0x00, 0x01, 0x03, // flags = INACTIVE | DROUTE
    0x00, 0x03,             // state = IP_VS_TCP_S_SYN_RECV
    0xc3, 0x50,             // cport 50000
    0x00, 0x50,             // vport 80
    0x1f, 0x90,             // dport 8080
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x00, 0x3c, // timeout 60 s
    198, 18, 1, 10,         // caddr
    198, 18, 0, 100,        // vaddr
    198, 19, 0, 11,         // daddr
];

fn v1_one_conn() -> SyncConn<'static> {
    SyncConn {
        flags: IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_DROUTE,
        state: IP_VS_TCP_S_SYN_RECV,
        timeout: 60,
        ..SyncConn::new(Protocol::Tcp, C, 50000, V, 80, D, 8080)
    }
}

/// v1, syncid 9: a NAT connection with sequence data (62 bytes, so 2 bytes
/// of padding follow), then a UDP persistence template with SIP PE data.
#[rustfmt::skip]
static V1_TWO: [u8; 120] = [
    0x00, 0x09, 0x00, 0x78, // reserved, syncid 9, size 120
    0x02, 0x01, 0x00, 0x00, // nr_conns 2, version 1, spare
    // entry 1
    0x00, 0x06, 0x00, 0x3e, // IPv4, TCP, ver 0 size 62
    0x00, 0x00, 0x06, 0x00, // flags = IN_SEQ | OUT_SEQ, MASQ
    0x00, 0x01,             // state = ESTABLISHED
    0xc3, 0x50, 0x00, 0x50, 0x1f, 0x90, // cport, vport, dport
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x03, 0x84, // timeout 900 s
    198, 18, 1, 10, 198, 18, 0, 100, 198, 19, 0, 11,
    0x01, 0x18,             // IPVS_OPT_SEQ_DATA, 24 bytes
    0x01, 0x02, 0x03, 0x04, // in_seq.init_seq
    0x00, 0x00, 0x00, 0x10, // in_seq.delta
    0x00, 0x00, 0x00, 0x08, // in_seq.previous_delta
    0xa0, 0xb0, 0xc0, 0xd0, // out_seq.init_seq
    0xff, 0xff, 0xff, 0xf0, // out_seq.delta
    0x00, 0x00, 0x00, 0x00, // out_seq.previous_delta
    0x00, 0x00,             // padding to 64
    // entry 2
    0x00, 0x11, 0x00, 0x30, // IPv4, UDP, ver 0 size 48
    0x00, 0x00, 0x10, 0x02, // flags = TEMPLATE | TUNNEL
    0x00, 0x00,             // state 0
    0x00, 0x00, 0x13, 0xc4, 0x13, 0xc4, // cport 0, vport 5060, dport 5060
    0x00, 0x00, 0x00, 0x05, // fwmark 5
    0x00, 0x00, 0x01, 0x2c, // timeout 300 s
    198, 18, 1, 10, 198, 18, 0, 100, 198, 19, 0, 11,
    0x02, 0x05, b'a', b'b', b'c', b'@', b'x', // IPVS_OPT_PE_DATA
    0x03, 0x03, b's', b'i', b'p',             // IPVS_OPT_PE_NAME
];

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
            previous_delta: 0,
        },
    }
}

fn v1_two_conns() -> [SyncConn<'static>; 2] {
    [
        SyncConn {
            flags: IP_VS_CONN_F_SEQ_MASK,
            state: IP_VS_TCP_S_ESTABLISHED,
            timeout: 900,
            seq: Some(seq_sample()),
            ..SyncConn::new(Protocol::Tcp, C, 50000, V, 80, D, 8080)
        },
        SyncConn {
            flags: IP_VS_CONN_F_TEMPLATE | IP_VS_CONN_F_TUNNEL,
            fwmark: 5,
            timeout: 300,
            pe_data: Some(b"abc@x"),
            pe_name: Some(b"sip"),
            ..SyncConn::new(Protocol::Udp, C, 0, V, 5060, D, 5060)
        },
    ]
}

/// v0, syncid 3: the SYN_RECV connection of `V1_ONE`, then the NAT
/// connection of `V1_TWO` with its sequence data in host (x86) order.
#[rustfmt::skip]
static V0_TWO: [u8; 76] = [
    // struct ip_vs_sync_mesg_v0
    0x02,                   // nr_conns
    0x03,                   // syncid
    0x00, 0x4c,             // size 76
    // struct ip_vs_sync_conn_v0
    0x00, 0x06,             // reserved, protocol TCP
    0xc3, 0x50, 0x00, 0x50, 0x1f, 0x90, // cport, vport, dport
    198, 18, 1, 10, 198, 18, 0, 100, 198, 19, 0, 11,
    0x01, 0x03,             // flags = INACTIVE | DROUTE
    0x00, 0x03,             // state = SYN_RECV
    // second entry
    0x00, 0x06,
    0xc3, 0x50, 0x00, 0x50, 0x1f, 0x90,
    198, 18, 1, 10, 198, 18, 0, 100, 198, 19, 0, 11,
    0x06, 0x00,             // flags = SEQ_MASK
    0x00, 0x01,             // state = ESTABLISHED
    // struct ip_vs_sync_conn_options, memcpy'd little-endian
    0x04, 0x03, 0x02, 0x01, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
    0xd0, 0xc0, 0xb0, 0xa0, 0xf0, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
];

/// `V1_ONE` authenticated: the entry grows by the 44-byte option.
#[rustfmt::skip]
static V1_AUTH: [u8; 88] = [
    0x00, 0x07, 0x00, 0x58, // reserved, syncid 7, size 88
    0x01, 0x01, 0x00, 0x00,
    0x00, 0x06, 0x00, 0x50, // IPv4, TCP, size 36 + 44 = 80
    0x00, 0x00, 0x01, 0x03, 0x00, 0x03,
    0xc3, 0x50, 0x00, 0x50, 0x1f, 0x90,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c,
    198, 18, 1, 10, 198, 18, 0, 100, 198, 19, 0, 11,
    0x60, 0x2a,             // L4VS_OPT_AUTH (optional), 42 bytes
    0x05,                   // key id
    0x01,                   // HMAC-SHA256
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // counter
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, // MAC
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
];

/// A v1 IPv4 entry: the fixed part with `V1_ONE`'s fields, then `opts`.
fn entry(protocol: u8, flags: u32, state: u16, opts: &[u8]) -> Vec<u8> {
    let mut e = V1_ONE[8..].to_vec();
    e[1] = protocol;
    e[4..8].copy_from_slice(&flags.to_be_bytes());
    e[8..10].copy_from_slice(&state.to_be_bytes());
    e.extend_from_slice(opts);
    let size = e.len() as u16;
    e[2..4].copy_from_slice(&size.to_be_bytes());
    e
}

fn tcp(opts: &[u8]) -> Vec<u8> {
    entry(6, 0, IP_VS_TCP_S_ESTABLISHED, opts)
}

/// A v1 message of the given entries, padded as the kernel pads them.
fn v1(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 0, entries.len() as u8, 1, 0, 0];
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            m.resize(align4(m.len()), 0);
        }
        m.extend_from_slice(e);
    }
    let size = m.len() as u16;
    m[2..4].copy_from_slice(&size.to_be_bytes());
    m
}

fn set_size(m: &mut [u8]) {
    let size = m.len() as u16;
    m[2..4].copy_from_slice(&size.to_be_bytes());
}

#[test]
fn golden_v1_one() {
    let m = MessageV1::new_checked(&V1_ONE[..]).unwrap();
    assert_eq!((m.syncid(), m.size(), m.nr_conns()), (7, 44, 1));
    let got: Vec<_> = m.conns().collect();
    assert_eq!(got, [Ok(v1_one_conn())]);
    assert_eq!(m.auth(), None);

    let mut buf = [0xee; 100];
    let mut w = Writer::new(&mut buf, 7, DEFAULT_MAX_LEN).unwrap();
    w.push(&v1_one_conn()).unwrap();
    let len = w.finish();
    assert_eq!(&buf[..len], &V1_ONE[..]);
}

#[test]
fn golden_v1_two_with_options_and_padding() {
    let msg = Message::parse(&V1_TWO).unwrap();
    assert_eq!(
        (msg.version(), msg.syncid(), msg.nr_conns()),
        (Version::V1, 9, 2)
    );
    let got = decode(&V1_TWO);
    assert_eq!(got, v1_two_conns().map(Ok));
    let [_, tpl] = v1_two_conns();
    assert_eq!(
        tpl.backup_flags(),
        IP_VS_CONN_F_TEMPLATE | IP_VS_CONN_F_TUNNEL | IP_VS_CONN_F_SYNC
    );

    let mut buf = [0xee; 200];
    let mut w = Writer::new(&mut buf, 9, DEFAULT_MAX_LEN).unwrap();
    for c in &v1_two_conns() {
        w.push(c).unwrap();
    }
    assert_eq!(w.nr_conns(), 2);
    let len = w.finish();
    assert_eq!(&buf[..len], &V1_TWO[..]);
}

#[test]
fn golden_v0_with_seq_data() {
    let msg = Message::parse(&V0_TWO).unwrap();
    assert_eq!(
        (msg.version(), msg.syncid(), msg.nr_conns()),
        (Version::V0, 3, 2)
    );
    let got = decode(&V0_TWO);
    let first = SyncConn {
        version: Version::V0,
        timeout: 0,
        ..v1_one_conn()
    };
    let second = SyncConn {
        version: Version::V0,
        timeout: 0,
        ..v1_two_conns()[0]
    };
    assert_eq!(got, [Ok(first), Ok(second)]);
    assert_eq!(
        first.backup_flags(),
        IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_DROUTE | IP_VS_CONN_F_SYNC
    );
    assert_eq!(msg.auth(), None);

    let mut buf = [0xee; 100];
    let mut w = WriterV0::new(&mut buf, 3, DEFAULT_MAX_LEN).unwrap();
    // fwmark and timeout have no place in v0: dropped.
    w.push(&v1_one_conn()).unwrap();
    w.push(&v1_two_conns()[0]).unwrap();
    let len = w.finish();
    assert_eq!(&buf[..len], &V0_TWO[..]);
}

#[test]
fn golden_auth() {
    let mut buf = [0xee; 100];
    let mut w = Writer::new_authenticated(&mut buf, 7, DEFAULT_MAX_LEN).unwrap();
    w.push(&v1_one_conn()).unwrap();
    let len = w
        .finish_with_mac(5, 0x0102_0304_0506_0708, |signed| {
            assert_eq!(signed, &V1_AUTH[..56]);
            [0xab; 32]
        })
        .unwrap();
    assert_eq!(&buf[..len], &V1_AUTH[..]);

    let msg = Message::parse(&V1_AUTH).unwrap();
    let auth = msg.auth().unwrap();
    assert_eq!((auth.key_id, auth.counter), (5, 0x0102_0304_0506_0708));
    assert_eq!(auth.signed, &V1_AUTH[..56]);
    assert_eq!(auth.mac, &[0xab; 32]);
    // A peer that knows nothing of it decodes the entry as before: the
    // option is optional (IPVS_OPT_F_PARAM) and skipped.
    assert_eq!(decode(&V1_AUTH), [Ok(v1_one_conn())]);
}

#[test]
fn header_malformed() {
    assert_eq!(Message::parse(&[]).unwrap_err(), Error::Truncated);
    assert_eq!(Message::parse(&V1_ONE[..3]).unwrap_err(), Error::Truncated);
    // size > datagram, size < datagram: "bogus message size".
    assert_eq!(Message::parse(&V1_ONE[..43]).unwrap_err(), Error::Truncated);
    let mut long = V1_ONE.to_vec();
    long.push(0);
    assert_eq!(Message::parse(&long).unwrap_err(), Error::Malformed);
    assert_eq!(
        MessageV0::new_checked(&long[..]).unwrap_err(),
        Error::Malformed
    );
    let mut small = V1_ONE;
    small[3] = 43;
    assert_eq!(Message::parse(&small).unwrap_err(), Error::Malformed);
    assert_eq!(
        MessageV1::new_checked(&V1_ONE[..7]).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn version_told_apart_as_the_kernel_does() {
    for (at, v) in [(0, 1), (5, 2), (5, 0), (6, 1), (7, 1)] {
        let mut m = V1_ONE;
        m[at] = v;
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.version(), Version::V0, "byte {at} = {v}");
        assert_eq!(
            MessageV1::new_checked(&m[..]).unwrap_err(),
            Error::Unsupported
        );
    }
    // A v1 header with spare != 0 is a v0 message of byte 0 = 0 entries.
    let mut m = V1_ONE;
    m[6] = 1;
    assert_eq!(decode(&m), []);
    // 4..7 bytes: too short for a v1 header, so v0.
    let m = [0, 7, 0, 4];
    assert_eq!(Message::parse(&m).unwrap().version(), Version::V0);
    assert_eq!(decode(&m), []);
}

#[test]
fn syncid_filter() {
    let msg = Message::parse(&V1_ONE).unwrap();
    assert!(msg.accepts_syncid(0));
    assert!(msg.accepts_syncid(7));
    assert!(!msg.accepts_syncid(8));
}

#[test]
fn nr_conns_beyond_the_buffer_stops() {
    let mut m = V1_ONE;
    m[4] = 3;
    assert_eq!(decode(&m), [Ok(v1_one_conn()), Err(EntryError::Truncated)]);
    let mut m = V0_TWO;
    m[0] = 3;
    assert_eq!(decode(&m).len(), 3);
    assert_eq!(decode(&m)[2], Err(EntryError::Truncated));
}

#[test]
fn entry_size_too_small_or_too_large_stops() {
    let mut m = v1(&[tcp(&[]), tcp(&[])]);
    m[11] = 35;
    assert_eq!(decode(&m), [Err(EntryError::TooShort)]);
    let mut m = V1_ONE;
    m[11] = 37;
    assert_eq!(decode(&m), [Err(EntryError::BeyondMessage)]);
    let mut m = V1_ONE;
    m[10] = 0x10;
    assert_eq!(decode(&m), [Err(EntryError::EntryVersion(1))]);
    // IPv6 needs 72 bytes.
    let mut m = V1_ONE;
    m[8] = 1;
    assert_eq!(decode(&m), [Err(EntryError::TooShort)]);
}

#[test]
fn bad_type_stops() {
    let mut m = v1(&[tcp(&[]), tcp(&[])]);
    m[8] = 2;
    assert_eq!(decode(&m), [Err(EntryError::BadType(2))]);
}

#[test]
fn option_errors_stop() {
    let cases: [(&[u8], EntryError); 9] = [
        (&[0x41], EntryError::OptionTruncated),
        (&[0x41, 0], EntryError::OptionLength),
        (&[0x41, 5, 0, 0, 0], EntryError::OptionLength),
        (&[0x45, 3, 0, 0], EntryError::OptionLength),
        (&[1, 4, 0, 0, 0, 0], EntryError::BadSeqOption),
        (&[2, 1, 0, 0x42, 1, 0], EntryError::BadPeData),
        (
            &[3, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            EntryError::BadPeName,
        ),
        (&[3, 1, b'a', 3, 1, b'b'], EntryError::BadPeName),
        // An optional unknown option before does not hide a bad one.
        (&[0x7f, 1, 0, 2, 0], EntryError::OptionLength),
    ];
    for (opts, err) in cases {
        let m = v1(&[tcp(opts), tcp(&[])]);
        assert_eq!(decode(&m), [Err(err)], "{opts:x?}");
        assert!(err.is_fatal());
    }
    let mut twice = vec![1, 24];
    twice.extend([0; 24]);
    twice.extend_from_within(..);
    assert_eq!(decode(&v1(&[tcp(&twice)])), [Err(EntryError::BadSeqOption)]);
}

#[test]
fn unknown_mandatory_option_drops_only_its_entry() {
    // The kernel leaves at the unknown type: a bad option after it is
    // never read, and the next entry is processed.
    let m = v1(&[tcp(&[5, 2, 0, 0, 0x41, 0]), entry(17, 0, 0, &[])]);
    let got = decode(&m);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], Err(EntryError::UnknownMandatoryOption(5)));
    assert!(!EntryError::UnknownMandatoryOption(5).is_fatal());
    assert_eq!(got[1].unwrap().protocol, Protocol::Udp);
    // 0x81: only 0x40 is masked, so this is unknown and mandatory too.
    let m = v1(&[tcp(&[0x81, 1, 0])]);
    assert_eq!(decode(&m), [Err(EntryError::UnknownMandatoryOption(0x81))]);
}

#[test]
fn unknown_optional_option_is_skipped() {
    let plain = decode(&V1_ONE)[0].unwrap();
    let mut e = V1_ONE[8..].to_vec();
    e.extend([0x45, 2, 0xaa, 0xbb, 0x7f, 1, 0]);
    e[3] = e.len() as u8;
    let m = v1(&[e]);
    assert_eq!(decode(&m), [Ok(SyncConn { ..plain })]);
    // Known types match with the flag masked off: 0x41 is sequence data.
    let mut opt = vec![0x41, 24];
    opt.extend([0; 24]);
    let m = v1(&[tcp(&opt)]);
    let got = decode(&m);
    assert_eq!(got[0].unwrap().seq, Some(SeqOptions::default()));
}

#[test]
fn pe_rules() {
    let data_only = tcp(&[2, 3, 1, 2, 3]);
    let m = v1(&[data_only, tcp(&[])]);
    let got = decode(&m);
    assert_eq!(got[0], Err(EntryError::PeDataWithoutName));
    assert!(got[1].is_ok());
    // A name without data is ignored by the kernel.
    let m = v1(&[tcp(&[3, 3, b's', b'i', b'p'])]);
    let got = decode(&m);
    assert_eq!(got[0].unwrap().pe_name, None);
    // Data of the maximum length, name of 16 bytes.
    let mut opts = vec![2, 255];
    opts.extend([7; 255]);
    opts.extend([3, 16]);
    opts.extend([b'n'; 16]);
    let m = v1(&[tcp(&opts)]);
    let c = decode(&m)[0].unwrap();
    assert_eq!(c.pe_data.unwrap().len(), 255);
    assert_eq!(c.pe_name, Some(&[b'n'; 16][..]));
}

#[test]
fn protocol_and_state_checks_skip_the_entry() {
    let m = v1(&[
        entry(1, 0, 0, &[]),
        entry(6, 0, IP_VS_TCP_S_LAST, &[]),
        entry(17, 0, 1, &[]),
        entry(6, 0, IP_VS_TCP_S_SYNACK, &[]),
        // Templates: neither protocol nor state is checked.
        entry(0, IP_VS_CONN_F_TEMPLATE, 77, &[]),
        entry(132, 0, 13, &[]),
        entry(50, 0, 1, &[]),
    ]);
    let got = decode(&m);
    assert_eq!(got[0], Err(EntryError::UnsupportedProtocol(1)));
    assert_eq!(got[1], Err(EntryError::InvalidState(11)));
    assert_eq!(got[2], Err(EntryError::InvalidState(1)));
    assert_eq!(got[3].unwrap().state, IP_VS_TCP_S_SYNACK);
    assert!(got[4].unwrap().is_template());
    assert_eq!(got[5].unwrap().protocol, Protocol::Unknown(132));
    assert_eq!(got[6], Err(EntryError::InvalidState(1)));
    assert!(got.iter().filter_map(|r| r.err()).all(|e| !e.is_fatal()));
}

#[test]
fn ipv6_entries_are_skipped_after_their_options_are_checked() {
    let mut e6 = vec![1, 6, 0, 72];
    e6.extend([0; 68]);
    e6[9] = 1; // state ESTABLISHED
    let mut e6_opts = e6.clone();
    e6_opts.extend([0x41, 0]);
    e6_opts[3] = 74;
    let mut e6_type3 = e6.clone();
    e6_type3[0] = 3;
    let m = v1(&[e6, e6_type3, tcp(&[])]);
    let got = decode(&m);
    assert_eq!(got[0], Err(EntryError::Ipv6));
    assert_eq!(got[1], Err(EntryError::Ipv6));
    assert!(got[2].is_ok());
    assert_eq!(
        decode(&v1(&[e6_opts, tcp(&[])])),
        [Err(EntryError::OptionLength)]
    );
}

#[test]
fn padding_and_a_last_entry_without_it() {
    // A 38-byte entry, 2 bytes of padding, another entry.
    let m = v1(&[tcp(&[0x45, 0]), tcp(&[])]);
    assert_eq!(decode(&m)[0], Err(EntryError::OptionLength));
    let m = v1(&[tcp(&[0x45, 1, 9, 0x46, 1, 9]), tcp(&[])]);
    assert_eq!(m.len(), 8 + 42 + 2 + 36);
    assert!(decode(&m).iter().all(|r| r.is_ok()));
    // An odd-sized last entry: the kernel's next position lies past the
    // datagram; a further announced entry is "too small".
    let mut m = v1(&[tcp(&[0x45, 1, 9])]);
    m[4] = 2;
    assert_eq!(decode(&m)[1], Err(EntryError::Truncated));
}

#[test]
fn v0_malformed() {
    // Sequence data announced but cut short.
    let mut m = V0_TWO[..72].to_vec();
    set_size(&mut m);
    let got = decode(&m);
    assert!(got[0].is_ok());
    assert_eq!(got[1], Err(EntryError::SeqTruncated));
    // An unsupported protocol only skips its entry.
    let mut m = V0_TWO;
    m[5] = 1;
    let got = decode(&m);
    assert_eq!(got[0], Err(EntryError::UnsupportedProtocol(1)));
    assert!(got[1].is_ok());
}

#[test]
fn writer_respects_max_len_and_padding() {
    let [seq_conn, _] = v1_two_conns();
    let plain = v1_one_conn();
    let mut buf = [0u8; 300];
    // 8 + 62 + 2 + 36 = 108.
    for (max, fits) in [(108, true), (107, false)] {
        let mut w = Writer::new(&mut buf, 1, max).unwrap();
        w.push(&seq_conn).unwrap();
        assert_eq!(w.push(&plain).is_ok(), fits);
        let len = w.finish();
        assert!(len <= max);
        assert_eq!(decode(&buf[..len]).len(), if fits { 2 } else { 1 });
    }
    // The buffer bounds the message too.
    let mut small = [0u8; 50];
    let mut w = Writer::new(&mut small, 1, DEFAULT_MAX_LEN).unwrap();
    w.push(&plain).unwrap();
    assert_eq!(w.push(&plain), Err(Error::Truncated));
    assert_eq!(
        Writer::new(&mut small[..7], 1, 100).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(Writer::new(&mut small, 1, 7).unwrap_err(), Error::Truncated);
}

#[test]
fn writer_stops_at_255_entries() {
    let mut buf = vec![0u8; 10_000];
    let mut w = Writer::new(&mut buf, 1, usize::MAX).unwrap();
    for _ in 0..255 {
        w.push(&v1_one_conn()).unwrap();
    }
    assert_eq!(w.push(&v1_one_conn()), Err(Error::Truncated));
    let len = w.finish();
    assert_eq!(len, 8 + 255 * 36);
    assert_eq!(decode(&buf[..len]).len(), 255);
}

#[test]
fn writer_refuses_options_a_kernel_would_choke_on() {
    let mut buf = [0u8; 500];
    let mut w = Writer::new(&mut buf, 1, DEFAULT_MAX_LEN).unwrap();
    let name17 = [b'n'; 17];
    let data256 = [0u8; 256];
    for (data, name) in [
        (Some(&b""[..]), Some(&b"sip"[..])),
        (Some(&b"x"[..]), Some(&b""[..])),
        (Some(&b"x"[..]), Some(&name17[..])),
        (Some(&data256[..]), Some(&b"sip"[..])),
    ] {
        let c = SyncConn {
            pe_data: data,
            pe_name: name,
            ..v1_one_conn()
        };
        assert_eq!(w.push(&c), Err(Error::Malformed));
    }
    assert!(w.is_empty());
}

#[test]
fn writers_mask_hashed() {
    let c = SyncConn {
        flags: IP_VS_CONN_F_HASHED | IP_VS_CONN_F_NOOUTPUT | 0x0001_0000,
        ..v1_one_conn()
    };
    let mut buf = [0u8; 100];
    let mut w = Writer::new(&mut buf, 1, 100).unwrap();
    w.push(&c).unwrap();
    let len = w.finish();
    let got = decode(&buf[..len])[0].unwrap();
    assert_eq!(got.flags, IP_VS_CONN_F_NOOUTPUT | 0x0001_0000);
    assert_eq!(
        got.backup_flags(),
        IP_VS_CONN_F_NOOUTPUT | IP_VS_CONN_F_SYNC
    );
    let mut w = WriterV0::new(&mut buf, 1, 100).unwrap();
    w.push(&c).unwrap();
    let len = w.finish();
    assert_eq!(decode(&buf[..len])[0].unwrap().flags, IP_VS_CONN_F_NOOUTPUT);
}

#[test]
fn v0_writer_limits() {
    let mut buf = [0u8; 100];
    let mut w = WriterV0::new(&mut buf, 1, 4 + 24 + 47).unwrap();
    w.push(&v1_one_conn()).unwrap();
    assert_eq!(w.push(&v1_two_conns()[0]), Err(Error::Truncated));
    assert_eq!(w.len(), 28);
    assert_eq!(
        WriterV0::new(&mut buf[..3], 1, 9).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn auth_reserve_and_errors() {
    let mut buf = [0u8; 200];
    let max = 8 + 36 + 44;
    // Without the reserve two entries fit, with it only one.
    let mut w = Writer::new(&mut buf, 1, max).unwrap();
    w.push(&v1_one_conn()).unwrap();
    w.push(&v1_one_conn()).unwrap();
    assert_eq!(w.finish_with_mac(1, 1, |_| [0; 32]), Err(Error::Truncated));
    let mut w = Writer::new_authenticated(&mut buf, 1, max).unwrap();
    w.push(&v1_one_conn()).unwrap();
    assert_eq!(w.push(&v1_one_conn()), Err(Error::Truncated));
    assert_eq!(w.finish_with_mac(1, 1, |_| [0; 32]), Ok(max));
    let w = Writer::new_authenticated(&mut buf, 1, max).unwrap();
    assert_eq!(w.finish_with_mac(1, 1, |_| [0; 32]), Err(Error::Malformed));
}

#[test]
fn auth_is_found_only_at_the_end_of_the_last_entry() {
    let mut auth = vec![L4VS_OPT_AUTH, 42, 1, AUTH_ALG_HMAC_SHA256];
    auth.extend([0; 40]);
    let at_end = v1(&[tcp(&[]), tcp(&auth)]);
    assert!(Message::parse(&at_end).unwrap().auth().is_some());
    // In the first entry: an optional option like any other.
    let first = v1(&[tcp(&auth), tcp(&[])]);
    assert!(Message::parse(&first).unwrap().auth().is_none());
    assert!(decode(&first).iter().all(|r| r.is_ok()));
    // Followed by another option.
    let mut then = auth.clone();
    then.extend([0x45, 1, 0]);
    assert!(Message::parse(&v1(&[tcp(&then)])).unwrap().auth().is_none());
    // Another algorithm.
    let mut alg = auth.clone();
    alg[3] = 2;
    assert!(Message::parse(&v1(&[tcp(&alg)])).unwrap().auth().is_none());
    // A wrong length.
    let mut short = auth.clone();
    short[1] = 41;
    short.pop();
    assert!(Message::parse(&v1(&[tcp(&short)]))
        .unwrap()
        .auth()
        .is_none());
    // Entries the kernel could not walk.
    let mut broken = at_end.clone();
    broken[4] = 3;
    assert!(MessageV1::new_unchecked(&broken[..]).auth().is_none());
    assert!(MessageV1::new_unchecked(&[0u8; 3][..]).auth().is_none());
}

#[test]
fn tampering_changes_the_signed_bytes() {
    let mac = |b: &[u8]| {
        // A stand-in for HMAC-SHA256: any function of every signed byte.
        let mut m = [0u8; 32];
        for (i, x) in b.iter().enumerate() {
            m[i % 32] = m[i % 32].wrapping_mul(31).wrapping_add(*x);
        }
        m
    };
    let mut buf = [0u8; 200];
    let mut w = Writer::new_authenticated(&mut buf, 4, DEFAULT_MAX_LEN).unwrap();
    for c in &v1_two_conns() {
        w.push(c).unwrap();
    }
    let len = w.finish_with_mac(9, 77, mac).unwrap();
    let good = &buf[..len];
    let a = Message::parse(good).unwrap().auth().unwrap();
    assert_eq!((a.key_id, a.counter), (9, 77));
    assert_eq!(&mac(a.signed), a.mac);
    assert_eq!(decode(good), v1_two_conns().map(Ok));
    for i in 0..len - 32 {
        let mut bad = good.to_vec();
        bad[i] ^= 0x01;
        let Ok(msg) = Message::parse(&bad) else {
            continue;
        };
        if let Some(a) = msg.auth() {
            assert_ne!(&mac(a.signed), a.mac, "byte {i}");
        }
    }
}

#[test]
fn entry_errors_have_names() {
    assert_eq!(EntryError::Ipv6.as_str(), "ipv6 entry");
    assert_eq!(
        std::format!("{}", EntryError::TooShort),
        "entry size below fixed part"
    );
}

/// Persistence-engine data and name, owned for the strategy.
type ArbPe = Option<(Vec<u8>, Vec<u8>)>;

fn arb_conn() -> impl Strategy<Value = (SyncConn<'static>, ArbPe)> {
    let proto_state = prop_oneof![
        (Just(6u8), 0..IP_VS_TCP_S_LAST, Just(0u32)),
        (Just(17u8), Just(0u16), Just(0u32)),
        (any::<u8>(), any::<u16>(), Just(IP_VS_CONN_F_TEMPLATE)),
    ];
    let seq = prop::option::of(any::<[u32; 6]>().prop_map(|w| SeqOptions {
        in_seq: Seq {
            init_seq: w[0],
            delta: w[1],
            previous_delta: w[2],
        },
        out_seq: Seq {
            init_seq: w[3],
            delta: w[4],
            previous_delta: w[5],
        },
    }));
    let pe = prop::option::of((
        prop::collection::vec(any::<u8>(), 1..=255),
        prop::collection::vec(any::<u8>(), 1..=16),
    ));
    (
        proto_state,
        any::<u32>(),
        any::<[u32; 3]>(),
        any::<[u16; 3]>(),
        any::<(u32, u32)>(),
        seq,
        pe,
    )
        .prop_map(
            |((p, state, tpl), flags, a, ports, (fwmark, timeout), seq, pe)| {
                let c = SyncConn {
                    flags: (flags | tpl) & !IP_VS_CONN_F_HASHED,
                    state,
                    fwmark,
                    timeout,
                    seq,
                    ..SyncConn::new(
                        Protocol::from(p),
                        Ipv4Addr::from(a[0]),
                        ports[0],
                        Ipv4Addr::from(a[1]),
                        ports[1],
                        Ipv4Addr::from(a[2]),
                        ports[2],
                    )
                };
                (c, pe)
            },
        )
}

proptest! {
    #[test]
    fn v1_round_trip(
        conns in prop::collection::vec(arb_conn(), 0..30),
        max_len in 8usize..3000,
        syncid in any::<u8>(),
        auth in prop::option::of((any::<u8>(), any::<u64>())),
    ) {
        let conns: Vec<SyncConn<'_>> = conns
            .iter()
            .map(|(c, pe)| SyncConn {
                pe_data: pe.as_ref().map(|p| &p.0[..]),
                pe_name: pe.as_ref().map(|p| &p.1[..]),
                ..*c
            })
            .collect();
        let mut buf = vec![0u8; 4000];
        let mut w = if auth.is_some() {
            Writer::new_authenticated(&mut buf, syncid, max_len).unwrap()
        } else {
            Writer::new(&mut buf, syncid, max_len).unwrap()
        };
        let mut sent = 0;
        for c in &conns {
            if w.push(c).is_err() {
                break;
            }
            sent += 1;
        }
        let len = match auth {
            Some((key, counter)) if sent > 0 => {
                w.finish_with_mac(key, counter, |b| [b.len() as u8; 32]).unwrap()
            }
            _ => w.finish(),
        };
        prop_assert!(len <= max_len);
        let msg = Message::parse(&buf[..len]).unwrap();
        prop_assert_eq!(msg.version(), Version::V1);
        prop_assert_eq!(msg.syncid(), syncid);
        let got: Vec<_> = msg.conns().collect();
        let want: Vec<Item<'_>> = conns[..sent].iter().map(|c| Ok(*c)).collect();
        prop_assert_eq!(got, want);
        match (auth, msg.auth()) {
            (Some((key, counter)), Some(a)) => {
                prop_assert!(sent > 0);
                prop_assert_eq!((a.key_id, a.counter), (key, counter));
                prop_assert_eq!(a.signed.len(), len - 32);
                prop_assert_eq!(a.mac, &[(len - 32) as u8; 32]);
            }
            (Some(_), None) => prop_assert_eq!(sent, 0),
            (None, a) => prop_assert!(a.is_none()),
        }
    }

    #[test]
    fn v0_round_trip(
        conns in prop::collection::vec(arb_conn(), 0..30),
        max_len in 4usize..1500,
        syncid in any::<u8>(),
    ) {
        let mut buf = vec![0u8; 1500];
        let mut w = WriterV0::new(&mut buf, syncid, max_len).unwrap();
        let mut sent = 0;
        for (c, _) in &conns {
            if w.push(c).is_err() {
                break;
            }
            sent += 1;
        }
        let len = w.finish();
        prop_assert!(len <= max_len);
        let msg = Message::parse(&buf[..len]).unwrap();
        prop_assert_eq!(msg.nr_conns() as usize, sent);
        if sent > 0 {
            prop_assert_eq!(msg.version(), Version::V0);
        }
        let got: Vec<_> = msg.conns().collect();
        prop_assert_eq!(got.len(), sent);
        for ((c, _), r) in conns.iter().zip(got) {
            let flags = c.flags & 0xffff;
            let seq = (flags & IP_VS_CONN_F_SEQ_MASK != 0).then(|| c.seq.unwrap_or_default());
            let want = SyncConn {
                version: Version::V0,
                flags,
                fwmark: 0,
                timeout: 0,
                seq,
                ..*c
            };
            // The protocol and state rules see the 16 bits v0 keeps.
            match check_proto_state(c.protocol.into(), c.state, flags) {
                Ok(()) => prop_assert_eq!(r, Ok(want)),
                Err(e) => prop_assert_eq!(r, Err(e)),
            }
        }
    }

    #[test]
    fn no_panic_on_arbitrary_bytes(
        mut bytes in prop::collection::vec(any::<u8>(), 0..600),
        fix_size in any::<bool>(),
        v1_header in any::<bool>(),
    ) {
        if fix_size && bytes.len() >= 4 {
            set_size(&mut bytes);
            if v1_header && bytes.len() >= 8 {
                bytes[0] = 0;
                bytes[5] = 1;
                bytes[6] = 0;
                bytes[7] = 0;
            }
        }
        if let Ok(msg) = Message::parse(&bytes) {
            let n = msg.nr_conns() as usize;
            let got: Vec<_> = msg.conns().collect();
            prop_assert!(got.len() <= n);
            // Only the last item may be fatal.
            for r in got.iter().take(got.len().saturating_sub(1)) {
                prop_assert!(!matches!(r, Err(e) if e.is_fatal()));
            }
            if got.len() < n {
                prop_assert!(matches!(got.last(), Some(Err(e)) if e.is_fatal()));
            }
            if let Some(a) = msg.auth() {
                prop_assert_eq!(a.signed.len() + 32, bytes.len());
            }
        }
        let _ = MessageV1::new_checked(&bytes[..]).map(|m| (m.auth().is_some(), m.conns().count()));
        let _ = MessageV0::new_checked(&bytes[..]).map(|m| m.conns().count());
    }
}
