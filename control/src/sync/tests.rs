use super::*;
use crate::config;
use l4vs_dataplane::PortInfo;
use l4vs_wire::ethernet::Address as MacAddr;
use std::path::Path;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The frames `d` has for now, counted as sent.
fn out(d: &mut SyncDaemon, now: Instant, all: bool, most: usize) -> Vec<Vec<u8>> {
    d.frames(now, all, most)
        .into_iter()
        .map(|(f, n)| {
            d.sent(n, true);
            f
        })
        .collect()
}

/// The NAT lab's config with a sync daemon of `role`, and its snapshot.
fn lab(role: &str) -> (config::Config, Snapshot) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let text = std::fs::read_to_string(dir.join("lab-nat.yaml")).unwrap();
    let text = format!("{text}\nsync: {{ role: {role}, interface: lan, syncid: 7 }}\n");
    let cfg = config::parse(&text, "c.yaml").unwrap();
    let port = PortInfo {
        mac: MacAddr(MAC),
        mtu: 1500,
    };
    let snap = crate::plan::snapshot(&cfg, &[port]).unwrap();
    (cfg, snap)
}

fn vip() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 100)
}

/// A connection of client 198.18.1.10:`cport` to the lab's HTTP service,
/// on its second real, in `state`.
fn http_conn(snap: &Snapshot, cport: u16, state: ConnState) -> Conn {
    let sid = snap.service_id(vip(), 80, 6).unwrap();
    let t = Tuple {
        proto: 6,
        src: Ipv4Addr::new(198, 18, 1, 10),
        sport: cport,
        dst: vip(),
        dport: 80,
    };
    let mut c = Conn::new(
        &t,
        Ipv4Addr::new(198, 18, 2, 12),
        80,
        sid,
        1,
        ForwardMethod::Nat,
        state,
        12345,
    );
    c.flags = 0;
    c
}

/// What the master sends, and when: TCP in ESTABLISHED and the closing
/// states only, never the entry made of a peer's message; each with its
/// state's timeout.
#[test]
fn a_master_sends_tcp_in_the_states_ip_vs_sync_does() {
    let (cfg, snap) = lab("master");
    let mut d = SyncDaemon::new(cfg.sync.unwrap(), MAC, 1);
    let now = Instant::now();
    for (state, sent) in [
        (ConnState::SynRecv, false),
        (ConnState::Established, true),
        (ConnState::FinWait, true),
        (ConnState::LastAck, false),
        (ConnState::TimeWait, true),
        (ConnState::Close, true),
        (ConnState::CloseWait, true),
    ] {
        let c = http_conn(&snap, 1000, state);
        assert_eq!(d.note(&c, Why::Changed, &snap, now), sent, "{state:?}");
    }
    let mut synced = http_conn(&snap, 1001, ConnState::Established);
    synced.flags |= flags::SYNCED;
    // The entry a backup made of a message is not sent back.
    assert!(!d.note(&synced, Why::Created, &snap, now));
    // Nothing is due before 2 s; then one message with the five.
    assert!(out(&mut d, now + Duration::from_millis(1999), false, 64).is_empty());
    let frames = out(&mut d, now + FLUSH_TIME, false, 64);
    assert_eq!(frames.len(), 1);
    let (src, payload) = sync_payload(&frames[0], wire::GROUP, wire::PORT..=wire::PORT).unwrap();
    assert_eq!(src, Ipv4Addr::new(198, 18, 1, 1));
    let msg = Message::parse(payload).unwrap();
    assert_eq!((msg.syncid(), msg.nr_conns()), (7, 5));
    let first = msg.conns().next().unwrap().unwrap();
    assert_eq!(
        (first.state, first.timeout, first.cport, first.dport),
        (wire::IP_VS_TCP_S_ESTABLISHED, 900, 1000, 80)
    );
    assert_eq!(first.daddr, Ipv4Addr::new(198, 18, 2, 12));
    assert_eq!(d.counts.sent_conns, 5);
    assert!(out(&mut d, now + FLUSH_TIME * 2, false, 64).is_empty());
}

/// A full message leaves at once; the rest waits its 2 s.
#[test]
fn full_messages_leave_at_once() {
    let (cfg, snap) = lab("master");
    let mut d = SyncDaemon::new(cfg.sync.unwrap(), MAC, 1);
    let per = d.per_message();
    // 1472 bytes: (1472 - 8) / 36 = 40 entries a message.
    assert_eq!(per, 40);
    let now = Instant::now();
    for p in 0..(per as u16 + 3) {
        d.note(
            &http_conn(&snap, 2000 + p, ConnState::Established),
            Why::Changed,
            &snap,
            now,
        );
    }
    let frames = out(&mut d, now, false, 64);
    assert_eq!(frames.len(), 1);
    assert!(frames[0].len() <= 14 + 20 + 8 + 1472);
    assert_eq!(out(&mut d, now + FLUSH_TIME, false, 64).len(), 1);
    assert_eq!(d.counts.sent_messages, 2);
}

/// A backup takes what a master sends: the same client tuple, real,
/// state and timeout, through the worker that owns the client; a message
/// of another syncid, its own, and entries of services it lacks are
/// counted and left out.
#[test]
fn a_backup_applies_what_a_master_sends() {
    let (mcfg, snap) = lab("master");
    let mut master = SyncDaemon::new(mcfg.sync.clone().unwrap(), MAC, 1);
    let now = Instant::now();
    let c = http_conn(&snap, 3000, ConnState::Established);
    master.note(&c, Why::Changed, &snap, now);
    let frame = out(&mut master, now, true, 64).remove(0);

    let (bcfg, _) = lab("backup");
    let mut backup_cfg = bcfg.sync.unwrap();
    // The backup's own address differs from the master's.
    backup_cfg.source = Ipv4Addr::new(198, 18, 1, 2);
    let mut backup = SyncDaemon::new(backup_cfg.clone(), [2, 0, 0, 0, 0, 2], 2);
    assert!(backup.is_sync_frame(&frame));
    let mut got = Vec::new();
    backup.apply(&frame, &snap, |w, c| {
        got.push((w, c));
        true
    });
    assert_eq!(got.len(), 1);
    let (worker, synced) = got[0];
    assert_eq!(worker, Steering::new(0, 2).owner(c.client));
    assert_eq!(synced.in_tuple(), c.in_tuple());
    assert_eq!(
        (synced.rip, synced.rport, synced.real),
        (c.rip, c.rport, c.real)
    );
    assert_eq!(
        (synced.state, synced.expires),
        (ConnState::Established, 900)
    );
    assert_eq!(backup.counts.applied, 1);

    // Another syncid.
    let mut other = backup_cfg.clone();
    other.syncid = 8;
    let mut b8 = SyncDaemon::new(other, MAC, 1);
    b8.apply(&frame, &snap, |_, _| {
        panic!("applied a message of syncid 7")
    });
    assert_eq!(b8.counts.rejected_messages, 1);
    // syncid 0 takes every message.
    let mut any = backup_cfg.clone();
    any.syncid = 0;
    let mut b0 = SyncDaemon::new(any, MAC, 1);
    b0.apply(&frame, &snap, |_, _| true);
    assert_eq!(b0.counts.applied, 1);
    // The master does not take its own messages.
    let mut both_cfg = mcfg.sync.unwrap();
    both_cfg.role = config::SyncRole::Both;
    let both = SyncDaemon::new(both_cfg, MAC, 1);
    assert!(!both.is_sync_frame(&frame));

    // An entry for a service the backup lacks.
    let mut e = SyncConn::new(
        ipv4::Protocol::Tcp,
        Ipv4Addr::new(198, 18, 1, 10),
        4000,
        Ipv4Addr::new(198, 18, 0, 99),
        80,
        Ipv4Addr::new(198, 18, 2, 12),
        80,
    );
    e.state = wire::IP_VS_TCP_S_ESTABLISHED;
    let mut msg = [0u8; 128];
    let mut w = wire::Writer::new(&mut msg, 7, 128).unwrap();
    w.push(&e).unwrap();
    let n = w.finish();
    let unknown = udp_frame(
        MAC,
        Ipv4Addr::new(198, 18, 1, 1),
        wire::GROUP,
        wire::PORT,
        1,
        1,
        &msg[..n],
    );
    backup.apply(&unknown, &snap, |_, _| {
        panic!("applied an unknown service's entry")
    });
    assert_eq!(backup.counts.rejected_conns, 1);
}

/// Truncated, lying and garbage frames are counted and dropped, never a
/// panic, whatever the bytes.
#[test]
fn bad_messages_are_dropped() {
    let (cfg, snap) = lab("backup");
    let mut d = SyncDaemon::new(cfg.sync.unwrap(), MAC, 1);
    let mut master = SyncDaemon::new(lab("master").0.sync.unwrap(), [2, 0, 0, 0, 0, 9], 1);
    let now = Instant::now();
    master.note(
        &http_conn(&snap, 5000, ConnState::Established),
        Why::Changed,
        &snap,
        now,
    );
    let good = out(&mut master, now, true, 64).remove(0);
    for cut in 0..good.len() {
        d.apply(&good[..cut], &snap, |_, _| true);
    }
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..2000 {
        let mut f = good.clone();
        let at = rng.usize(14..f.len());
        f[at] = rng.u8(..);
        d.apply(&f, &snap, |_, _| true);
    }
    assert!(d.counts.rejected_messages > 0);
}

/// A resync sends what the workers list, each with the seconds it has
/// left; a master that also takes from a peer does not send the peer's
/// entries back, a master alone does (a backup that took over).
#[test]
fn a_resync_sends_each_entry_with_the_time_it_has_left() {
    let (cfg, snap) = lab("master");
    let mut d = SyncDaemon::new(cfg.sync.clone().unwrap(), MAC, 1);
    let now = Instant::now();
    let mut c = http_conn(&snap, 6000, ConnState::Established);
    c.expires = 321;
    assert!(d.note(&c, Why::Listed, &snap, now));
    let mut synced = http_conn(&snap, 6001, ConnState::Established);
    synced.flags |= flags::SYNCED;
    synced.expires = 77;
    assert!(d.note(&synced, Why::Listed, &snap, now));
    // In the handshake: not sent, listed or not.
    assert!(!d.note(
        &http_conn(&snap, 6002, ConnState::SynRecv),
        Why::Listed,
        &snap,
        now
    ));
    let frame = out(&mut d, now, true, 64).remove(0);
    let (_, payload) = sync_payload(&frame, wire::GROUP, wire::PORT..=wire::PORT).unwrap();
    let timeouts: Vec<(u16, u32)> = Message::parse(payload)
        .unwrap()
        .conns()
        .map(|e| e.map(|e| (e.cport, e.timeout)).unwrap())
        .collect();
    assert_eq!(timeouts, [(6000, 321), (6001, 77)]);

    let mut both = cfg.sync.unwrap();
    both.role = config::SyncRole::Both;
    let mut d = SyncDaemon::new(both, MAC, 1);
    assert!(!d.note(&synced, Why::Listed, &snap, now));
    assert!(d.note(&c, Why::Listed, &snap, now));
}

/// At most `most` messages leave a call; the rest waits for the next.
#[test]
fn a_resync_is_paced() {
    let (cfg, snap) = lab("master");
    let mut d = SyncDaemon::new(cfg.sync.unwrap(), MAC, 1);
    let now = Instant::now();
    for p in 0..400u16 {
        let mut c = http_conn(&snap, 10_000 + p, ConnState::Established);
        c.expires = 500;
        d.note(&c, Why::Listed, &snap, now);
    }
    assert_eq!(out(&mut d, now, false, 4).len(), 4);
    assert_eq!(out(&mut d, now, false, 4).len(), 4);
    assert_eq!(out(&mut d, now, true, 64).len(), 2);
    assert_eq!(d.counts.sent_conns, 400);
}

fn with_key(mut s: config::Sync, key: u8) -> config::Sync {
    s.auth = Some(config::SyncAuth {
        key: vec![key; 32],
        key_id: 1,
    });
    s
}

/// With auth_key, a backup takes only what its key signed, once; a
/// backup without a key (as a kernel peer) still takes a signed message,
/// whose MAC rides in an option it skips.
#[test]
fn signed_messages_are_checked_before_any_entry_is_taken() {
    let (mcfg, snap) = lab("master");
    let (bcfg, _) = lab("backup");
    let mut bcfg = bcfg.sync.unwrap();
    bcfg.source = Ipv4Addr::new(198, 18, 1, 2);
    let now = Instant::now();
    let signed = |key: u8| {
        let mut m = SyncDaemon::new(with_key(mcfg.sync.clone().unwrap(), key), MAC, 1);
        m.note(
            &http_conn(&snap, 7000, ConnState::Established),
            Why::Changed,
            &snap,
            now,
        );
        out(&mut m, now, true, 64).remove(0)
    };
    let good = signed(0xaa);
    let mut b = SyncDaemon::new(with_key(bcfg.clone(), 0xaa), MAC, 1);
    b.apply(&good, &snap, |_, _| true);
    assert_eq!((b.counts.applied, b.counts.rejected_auth), (1, 0));
    // The same message again: a replay.
    b.apply(&good, &snap, |_, _| panic!("applied a replay"));
    assert_eq!(b.counts.rejected_auth, 1);
    // Another key.
    b.apply(&signed(0xbb), &snap, |_, _| {
        panic!("applied another key's message")
    });
    assert_eq!(b.counts.rejected_auth, 2);
    // Unsigned.
    let mut plain = SyncDaemon::new(mcfg.sync.clone().unwrap(), MAC, 1);
    plain.note(
        &http_conn(&snap, 7001, ConnState::Established),
        Why::Changed,
        &snap,
        now,
    );
    let unsigned = out(&mut plain, now, true, 64).remove(0);
    b.apply(&unsigned, &snap, |_, _| {
        panic!("applied an unsigned message")
    });
    assert_eq!(b.counts.rejected_auth, 3);
    // A flipped bit in an entry.
    let mut tampered = signed(0xaa);
    let last = tampered.len() - 60;
    tampered[last] ^= 1;
    // No UDP checksum (0), so that only the MAC can tell.
    tampered[40] = 0;
    tampered[41] = 0;
    b.apply(&tampered, &snap, |_, _| {
        panic!("applied a tampered message")
    });
    assert_eq!(b.counts.rejected_auth, 4);
    // A backup without a key takes the signed message, entry and all.
    let mut open = SyncDaemon::new(bcfg, MAC, 1);
    open.apply(&good, &snap, |_, _| true);
    assert_eq!(open.counts.applied, 1);
    // A signed message still fits max_len.
    assert!(good.len() <= 14 + 20 + 8 + 1472);
}

/// With persistence wider than a host, the backup hands an entry to the
/// worker the workers steer the client to: by the client masked with the
/// widest persistence netmask, so that a client's connections and its
/// template share a worker.
#[test]
fn a_backup_steers_as_the_workers_do() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let text = std::fs::read_to_string(dir.join("lab-persistence.yaml"))
        .unwrap()
        .replacen("netmask: 32", "netmask: 24", 1);
    let text = format!("{text}\nsync: {{ role: both, interface: lan }}\n");
    let cfg = config::parse(&text, "c.yaml").unwrap();
    let port = PortInfo {
        mac: MacAddr(MAC),
        mtu: 1500,
    };
    let snap = crate::plan::snapshot(&cfg, &[port]).unwrap();
    assert_eq!(snap.owner_mask(), 0xffff_ff00);
    let mut master = SyncDaemon::new(cfg.sync.clone().unwrap(), [2, 0, 0, 0, 0, 9], 1);
    let now = Instant::now();
    let workers = 4;
    let clients: Vec<Ipv4Addr> = (1..=40).map(|i| Ipv4Addr::new(198, 18, 1, i)).collect();
    for (i, client) in clients.iter().enumerate() {
        let mut c = http_conn(&snap, 20_000 + i as u16, ConnState::Established);
        c.client = *client;
        master.note(&c, Why::Changed, &snap, now);
    }
    let frame = out(&mut master, now, true, 64).remove(0);
    let mut b = cfg.sync.unwrap();
    b.source = Ipv4Addr::new(198, 18, 1, 2);
    let mut backup = SyncDaemon::new(b, MAC, workers);
    let mut got = Vec::new();
    backup.apply(&frame, &snap, |w, c| {
        got.push((w, c.client));
        true
    });
    assert_eq!(got.len(), clients.len());
    let steer = Steering::new(0, workers);
    let subnet_owner = steer.owner(Ipv4Addr::new(198, 18, 1, 0));
    assert!(got.iter().all(|(w, _)| *w == subnet_owner), "{got:?}");
}

/// A persistence template crosses as the kernel keys it ({TCP, client,
/// 0, VIP, port}) and comes back in l4vs's own key ({0, client, 6, VIP,
/// port}), so that the backup's workers find it.
#[test]
fn templates_cross_in_the_kernels_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let text = std::fs::read_to_string(dir.join("lab-persistence.yaml")).unwrap();
    let text = format!("{text}\nsync: {{ role: master, interface: lan }}\n");
    let cfg = config::parse(&text, "c.yaml").unwrap();
    let port = PortInfo {
        mac: MacAddr(MAC),
        mtu: 1500,
    };
    let snap = crate::plan::snapshot(&cfg, &[port]).unwrap();
    let sid = snap.service_id(vip(), 80, 6).unwrap();
    let key = Tuple {
        proto: 0,
        src: Ipv4Addr::new(198, 18, 1, 10),
        sport: 6,
        dst: vip(),
        dport: 80,
    };
    let mut tpl = Conn::new(
        &key,
        Ipv4Addr::new(198, 18, 2, 13),
        80,
        sid,
        2,
        ForwardMethod::Nat,
        ConnState::None,
        999,
    );
    tpl.flags = flags::TEMPLATE;
    let mut master = SyncDaemon::new(cfg.sync.clone().unwrap(), MAC, 1);
    let now = Instant::now();
    assert!(master.note(&tpl, Why::Created, &snap, now));
    let frame = out(&mut master, now, true, 64).remove(0);
    let (_, payload) = sync_payload(&frame, wire::GROUP, wire::PORT..=wire::PORT).unwrap();
    let e = Message::parse(payload)
        .unwrap()
        .conns()
        .next()
        .unwrap()
        .unwrap();
    assert!(e.is_template());
    assert_eq!(
        (e.protocol, e.cport, e.vport, e.timeout),
        (ipv4::Protocol::Tcp, 0, 80, 300)
    );
    let mut b = cfg.sync.unwrap();
    b.role = config::SyncRole::Backup;
    b.source = Ipv4Addr::new(198, 18, 1, 2);
    let mut backup = SyncDaemon::new(b, MAC, 1);
    let mut got = Vec::new();
    backup.apply(&frame, &snap, |_, c| {
        got.push(c);
        true
    });
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].in_tuple(), key);
    assert_eq!((got[0].rip, got[0].real), (tpl.rip, 2));
    assert_ne!(got[0].flags & flags::TEMPLATE, 0);

    // sync_persist_mode: the template goes, the connection does not.
    let mut c = Conn::new(
        &Tuple {
            proto: 6,
            src: key.src,
            sport: 40000,
            dst: vip(),
            dport: 80,
        },
        tpl.rip,
        80,
        sid,
        2,
        ForwardMethod::Nat,
        ConnState::Established,
        999,
    );
    c.flags = 0;
    assert!(
        master.note(&c, Why::Changed, &snap, now),
        "sent without persist_mode"
    );
    out(&mut master, now, true, 64);
    let mut pm = cfg_persist_mode(&text);
    assert!(!pm.note(&c, Why::Changed, &snap, now));
    assert!(pm.note(&tpl, Why::Created, &snap, now));
}

/// A master of `text` (a config with a sync block) with persist_mode.
fn cfg_persist_mode(text: &str) -> SyncDaemon {
    let text = text.replace("role: master,", "role: master, persist_mode: true,");
    let cfg = config::parse(&text, "c.yaml").unwrap();
    assert!(cfg.sync.as_ref().unwrap().persist_mode);
    SyncDaemon::new(cfg.sync.unwrap(), MAC, 1)
}

/// With a key, full messages carry the MAC too: every entry of a large
/// batch arrives.
#[test]
fn signed_full_messages_fit() {
    let (mcfg, snap) = lab("master");
    let mut m = SyncDaemon::new(with_key(mcfg.sync.clone().unwrap(), 0xaa), MAC, 1);
    let now = Instant::now();
    for p in 0..100u16 {
        m.note(
            &http_conn(&snap, 30_000 + p, ConnState::Established),
            Why::Changed,
            &snap,
            now,
        );
    }
    let frames = out(&mut m, now, true, 64);
    assert_eq!(m.counts.sent_conns, 100);
    assert_eq!(m.counts.unsent_conns, 0);
    let (bcfg, _) = lab("backup");
    let mut b = with_key(bcfg.sync.unwrap(), 0xaa);
    b.source = Ipv4Addr::new(198, 18, 1, 2);
    let mut backup = SyncDaemon::new(b, MAC, 1);
    for f in &frames {
        assert!(f.len() <= 14 + 20 + 8 + 1472);
        backup.apply(f, &snap, |_, _| true);
    }
    assert_eq!(
        (backup.counts.applied, backup.counts.rejected_auth),
        (100, 0)
    );
}

/// The lag: a master's oldest waiting entry, a backup's last message;
/// and a role taken away at run time.
#[test]
fn the_lag_is_what_waits_and_what_came_last() {
    let (mcfg, snap) = lab("master");
    let mut master = SyncDaemon::new(mcfg.sync.clone().unwrap(), MAC, 1);
    let t0 = Instant::now();
    assert_eq!(master.lag(t0), SyncLag::default());
    master.note(
        &http_conn(&snap, 3000, ConnState::Established),
        Why::Changed,
        &snap,
        t0,
    );
    let lag = master.lag(t0 + Duration::from_millis(700));
    assert_eq!(lag.pending, Duration::from_millis(700));
    assert_eq!(lag.since_last_message, None, "a master takes no messages");
    let frame = out(&mut master, t0, true, 64).remove(0);
    assert_eq!(
        master.lag(t0 + Duration::from_secs(1)).pending,
        Duration::ZERO
    );

    let (bcfg, _) = lab("backup");
    let mut bc = bcfg.sync.unwrap();
    bc.source = Ipv4Addr::new(198, 18, 1, 2);
    let mut backup = SyncDaemon::new(bc, [2, 0, 0, 0, 0, 2], 1);
    assert_eq!(backup.lag(Instant::now()).since_last_message, None);
    backup.apply(&frame, &snap, |_, _| true);
    let since = backup
        .lag(Instant::now())
        .since_last_message
        .expect("a message came");
    assert!(since < Duration::from_secs(60), "{since:?}");
    // --stop-daemon master on a master drops nothing it has sent, and a
    // daemon that no longer sends holds nothing.
    master.note(
        &http_conn(&snap, 3001, ConnState::Established),
        Why::Changed,
        &snap,
        t0,
    );
    master.set_role(config::SyncRole::Backup);
    assert_eq!(
        master.lag(t0 + Duration::from_secs(1)).pending,
        Duration::ZERO
    );
    assert!(out(&mut master, t0, true, 64).is_empty());
}

/// sync_ports: each connection keeps to one port of the range, the
/// connections spread over all of them, and a backup takes them all (and
/// nothing past the range).
#[test]
fn sync_ports_spread_connections_over_ports_a_backup_all_takes() {
    let (mcfg, snap) = lab("master");
    let mut mc = mcfg.sync.clone().unwrap();
    mc.sync_ports = 4;
    let mut master = SyncDaemon::new(mc.clone(), MAC, 1);
    let now = Instant::now();
    for cport in 3000..3064 {
        master.note(
            &http_conn(&snap, cport, ConnState::Established),
            Why::Changed,
            &snap,
            now,
        );
    }
    let frames = out(&mut master, now, true, 64);
    let port_of = |f: &[u8]| u16::from_be_bytes([f[36], f[37]]);
    let mut ports: Vec<u16> = frames.iter().map(|f| port_of(f)).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports, [8848, 8849, 8850, 8851], "all four ports carry some");
    // Again: the same connection, the same port.
    let again = |m: &mut SyncDaemon, cport| {
        m.note(
            &http_conn(&snap, cport, ConnState::Established),
            Why::Changed,
            &snap,
            now,
        );
        port_of(&out(m, now, true, 64)[0])
    };
    assert_eq!(again(&mut master, 3007), again(&mut master, 3007));

    let (bcfg, _) = lab("backup");
    let mut bc = bcfg.sync.unwrap();
    bc.source = Ipv4Addr::new(198, 18, 1, 2);
    bc.sync_ports = 4;
    let mut backup = SyncDaemon::new(bc.clone(), [2, 0, 0, 0, 0, 2], 1);
    let mut got = 0;
    for f in &frames {
        assert!(backup.is_sync_frame(f));
        backup.apply(f, &snap, |_, _| {
            got += 1;
            true
        });
    }
    assert_eq!(got, 64);
    // A backup of one port takes only 8848's.
    bc.sync_ports = 1;
    let one = SyncDaemon::new(bc, [2, 0, 0, 0, 0, 2], 1);
    let taken = frames.iter().filter(|f| one.is_sync_frame(f)).count();
    assert!(
        taken > 0 && taken < frames.len(),
        "{taken} of {}",
        frames.len()
    );
}
