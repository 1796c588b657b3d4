use super::*;

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PEER_LOW: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
const PEER_HIGH: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn cfg(priority: u8, preempt: bool) -> Vrrp {
    Vrrp {
        name: "VI_51".into(),
        port: 0,
        source: US,
        vrid: 51,
        priority,
        advert_int_cs: 10,
        preempt,
        preempt_delay: Duration::ZERO,
        addresses: vec![VIP],
        garp_repeat: 5,
        garp_delay: Duration::from_secs(5),
        checksum_as_v2: false,
        notify_master: None,
        notify_backup: None,
        notify_stop: None,
        notify: None,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A peer's advertisement frame.
fn advert(src: Ipv4Addr, vrid: u8, priority: u8) -> Vec<u8> {
    let adv = Advertisement {
        vrid,
        priority,
        max_adver_int: 10,
        addresses: &[VIP],
    };
    let mut f = vec![0u8; adv.frame_len()];
    adv.emit_frame(&mut f, src, 1, ChecksumMode::PseudoHeader)
        .unwrap();
    f
}

/// The priority of a frame the router sent, checked as a peer would.
fn sent_priority(frame: &[u8]) -> u8 {
    assert_eq!(&frame[6..12], &MAC, "from the port's MAC");
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(ip.src_addr(), US);
    let p = wire::validate(
        &Ipv4Facts::of(&ip),
        ip.payload(),
        ChecksumMode::PseudoHeader,
    )
    .unwrap();
    assert_eq!(p.vrid(), 51);
    assert!(p.same_addresses(&[VIP]));
    p.priority()
}

#[test]
fn timers_follow_rfc_5798_section_6_1() {
    let t0 = Instant::now();
    let r = Router::new(cfg(100, true), MAC, t0, t0);
    // Skew (256-100)*10/256 = 6 cs; down 3*10 + 6 = 36 cs.
    assert_eq!(r.skew_time(), ms(60));
    assert_eq!(r.master_down_interval(), ms(360));
    let r = Router::new(cfg(254, true), MAC, t0, t0);
    assert_eq!(r.master_down_interval(), ms(300));
}

#[test]
fn a_backup_alone_becomes_master_after_the_down_interval_and_advertises() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.poll(t0 + ms(350)), None);
    let t = r.poll(t0 + ms(360)).expect("master");
    assert_eq!(t.to, State::Master);
    assert_eq!(t.why, "no master advertised");
    let frames = r.take_frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(sent_priority(&frames[0]), 100);
    // Then one a interval.
    assert_eq!(r.poll(t0 + ms(450)), None);
    assert!(r.take_frames().is_empty());
    assert_eq!(r.poll(t0 + ms(460)), None);
    assert_eq!(r.take_frames().len(), 1);
    assert_eq!(r.counts.sent, 2);
    assert_eq!(r.counts.became_master, 1);
}

#[test]
fn a_backup_hearing_a_higher_master_stays_backup_and_takes_over_when_it_falls_silent() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    let a = advert(PEER_HIGH, 51, 200);
    for i in 0..20 {
        let now = t0 + ms(100 * i);
        assert_eq!(r.receive(&a, now), None);
        assert_eq!(r.poll(now), None);
    }
    assert_eq!(r.master(), Some((PEER_HIGH, 200)));
    assert_eq!(r.counts.received, 20);
    // The last came at 1.9 s: down at 1.9 + 0.36.
    assert_eq!(r.poll(t0 + ms(2250)), None);
    let t = r.poll(t0 + ms(2260)).expect("master");
    assert_eq!(t.why, "no advertisement from 198.18.1.2 in time");
}

#[test]
fn priority_zero_cuts_the_wait_to_the_skew_time() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    r.receive(&advert(PEER_HIGH, 51, 200), t0);
    r.receive(&advert(PEER_HIGH, 51, 0), t0 + ms(50));
    assert_eq!(r.counts.received_priority_zero, 1);
    assert_eq!(r.poll(t0 + ms(100)), None);
    let t = r.poll(t0 + ms(110)).expect("master");
    assert_eq!(t.why, "198.18.1.2 gave it up, priority 0");
}

#[test]
fn a_higher_backup_preempts_only_after_its_hold_off() {
    let t0 = Instant::now();
    let hold = t0 + ms(1000);
    let mut r = Router::new(cfg(200, true), MAC, t0, hold);
    let low = advert(PEER_LOW, 51, 100);
    // In the hold-off the lower master's adverts keep it backup.
    for i in 0..10 {
        r.receive(&low, t0 + ms(100 * i));
        assert_eq!(r.poll(t0 + ms(100 * i)), None, "at {} ms", 100 * i);
    }
    // From its end (1.0 s) they are discarded: the down timer, set by
    // the last one taken (0.9 s), fires.
    let mut became = None;
    for i in 10..=20 {
        let now = t0 + ms(100 * i);
        r.receive(&low, now);
        if let Some(t) = r.poll(now) {
            became = Some((i, t));
            break;
        }
    }
    let (i, t) = became.expect("preempted");
    assert_eq!(t.why, "preempting 198.18.1.0 of priority 100");
    // Down interval at priority 200: 30 + (56*10/256 = 2) cs.
    assert_eq!(i, 13, "0.9 s + 0.32 s, at the next 100 ms step");
}

#[test]
fn without_preempt_a_higher_backup_stays_backup() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(200, false), MAC, t0, t0);
    let low = advert(PEER_LOW, 51, 100);
    for i in 0..50 {
        let now = t0 + ms(100 * i);
        r.receive(&low, now);
        assert_eq!(r.poll(now), None);
    }
}

#[test]
fn a_master_gives_way_to_a_higher_priority_or_an_equal_one_from_a_higher_address() {
    let t0 = Instant::now();
    let master = |r: &mut Router| {
        r.poll(t0 + ms(1000)).expect("master");
        r.take_frames();
    };
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    master(&mut r);
    assert_eq!(r.receive(&advert(PEER_LOW, 51, 99), t0 + ms(1010)), None);
    assert_eq!(
        r.receive(&advert(PEER_LOW, 51, 100), t0 + ms(1020)),
        None,
        "equal, lower address"
    );
    let t = r
        .receive(&advert(PEER_HIGH, 51, 100), t0 + ms(1030))
        .expect("backup");
    assert_eq!(t.to, State::Backup);
    assert_eq!(
        t.why,
        "198.18.1.2 advertises priority 100 (ours) from a higher address"
    );

    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    master(&mut r);
    let t = r
        .receive(&advert(PEER_LOW, 51, 150), t0 + ms(1010))
        .expect("backup");
    assert_eq!(t.why, "198.18.1.0 advertises priority 150");
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.counts.became_backup, 1);
}

#[test]
fn a_master_answers_priority_zero_at_once() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    r.poll(t0 + ms(1000)).unwrap();
    r.take_frames();
    r.receive(&advert(PEER_LOW, 51, 0), t0 + ms(1001));
    let f = r.take_frames();
    assert_eq!(f.len(), 1);
    assert_eq!(sent_priority(&f[0]), 100);
}

#[test]
fn shutdown_sends_priority_zero_from_a_master_only() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    assert!(!r.shutdown(t0));
    assert!(r.take_frames().is_empty());
    r.poll(t0 + ms(1000)).unwrap();
    r.take_frames();
    assert!(r.shutdown(t0 + ms(1001)));
    let f = r.take_frames();
    assert_eq!(f.len(), 1);
    assert_eq!(sent_priority(&f[0]), 0);
}

#[test]
fn bad_advertisements_are_counted_and_change_nothing() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    // A higher master's, spoiled: each would hold the backup if taken.
    let good = advert(PEER_HIGH, 51, 200);
    let mut ttl = good.clone();
    ttl[14 + 8] = 254;
    // Keep the IPv4 header checksum right: the TTL check is VRRP's.
    let mut ip = ipv4::Packet::new_unchecked(&mut ttl[14..34]);
    ip.fill_checksum();
    let mut sum = good.clone();
    sum[34 + 6] ^= 0xff;
    let mut version = good.clone();
    version[34] = 0x21;
    let wrong_vrid = advert(PEER_HIGH, 52, 200);
    let truncated = good[..40].to_vec();
    for (f, slot) in [(&ttl, 0), (&version, 1), (&sum, 4), (&wrong_vrid, 5)] {
        assert_eq!(r.receive(f, t0 + ms(10)), None);
        assert_eq!(r.counts.rejected[slot], 1, "slot {}", REJECT_REASONS[slot]);
    }
    assert_eq!(r.receive(&truncated, t0 + ms(10)), None);
    assert_eq!(r.counts.received, 0);
    assert_eq!(r.master(), None);
    // So the backup takes over as if it heard nothing.
    assert_eq!(r.poll(t0 + ms(360)).map(|t| t.to), Some(State::Master));
}

#[test]
fn its_own_advertisements_and_other_addresses_lists() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    assert_eq!(r.receive(&advert(US, 51, 200), t0), None);
    assert_eq!(r.counts.received, 0, "our own is ignored");
    let adv = Advertisement {
        vrid: 51,
        priority: 200,
        max_adver_int: 10,
        addresses: &[Ipv4Addr::new(198, 18, 0, 101)],
    };
    let mut f = vec![0u8; adv.frame_len()];
    adv.emit_frame(&mut f, PEER_HIGH, 1, ChecksumMode::PseudoHeader)
        .unwrap();
    r.receive(&f, t0);
    assert_eq!(r.counts.address_list_errors, 1);
    assert_eq!(
        r.master(),
        Some((PEER_HIGH, 200)),
        "still used, as keepalived does"
    );
    // Said once, until the peer sends our list again.
    assert_eq!(
        r.take_notices(),
        ["VRRP: 198.18.1.2 advertises the addresses 198.18.0.101, this director 198.18.0.100: the two configs' virtual_ipaddress differ (the advertisement is used)"]
    );
    r.receive(&f, t0 + ms(100));
    assert!(r.take_notices().is_empty());
    assert_eq!(r.counts.address_list_errors, 2);
    r.receive(&advert(PEER_HIGH, 51, 200), t0 + ms(200));
    r.receive(&f, t0 + ms(300));
    assert_eq!(r.take_notices().len(), 1);
}

#[test]
fn a_master_adopts_nothing_but_a_backup_follows_the_masters_interval() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    let adv = Advertisement {
        vrid: 51,
        priority: 200,
        max_adver_int: 100,
        addresses: &[VIP],
    };
    let mut f = vec![0u8; adv.frame_len()];
    adv.emit_frame(&mut f, PEER_HIGH, 1, ChecksumMode::PseudoHeader)
        .unwrap();
    r.receive(&f, t0);
    // 3 * 1 s + (156 * 100 / 256 = 60 cs).
    assert_eq!(r.poll(t0 + ms(3590)), None);
    let t = r.poll(t0 + ms(3600)).expect("master");
    assert_eq!(t.to, State::Master);
    // As master it advertises its own interval, 100 ms.
    r.take_frames();
    r.poll(t0 + ms(3700));
    assert_eq!(r.take_frames().len(), 1);
}

/// A reload: a master advertises its new priority at once, a backup
/// with a priority raised above its master's preempts.
#[test]
fn a_reload_changes_priority_addresses_and_interval_in_place() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100, true), MAC, t0, t0);
    r.poll(t0 + ms(1000)).expect("master");
    r.take_frames();
    let mut c = cfg(120, true);
    c.addresses.push(Ipv4Addr::new(198, 18, 2, 254));
    c.advert_int_cs = 20;
    let changes = r.reconfigure(c.clone(), t0 + ms(1010));
    assert_eq!(
        changes,
        [
            "priority 100 -> 120",
            "advert_int_ms 100 -> 200",
            "virtual_ipaddress 198.18.0.100 -> 198.18.0.100, 198.18.2.254"
        ]
    );
    let f = r.take_frames();
    assert_eq!(f.len(), 1, "advertised at once");
    assert_eq!(sent_priority_any(&f[0]), (120, 2));
    // The next one comes the new interval later.
    assert_eq!(r.poll(t0 + ms(1200)), None);
    assert!(r.take_frames().is_empty());
    r.poll(t0 + ms(1210));
    assert_eq!(r.take_frames().len(), 1);
    assert!(
        r.reconfigure(c, t0 + ms(1300)).is_empty(),
        "nothing changed"
    );

    // A backup under a master of 150 raised to 200 preempts it.
    let mut b = Router::new(cfg(100, true), MAC, t0, t0);
    let high = advert(PEER_HIGH, 51, 150);
    b.receive(&high, t0);
    b.reconfigure(cfg(200, true), t0 + ms(50));
    let mut became = None;
    for i in 1..20 {
        let now = t0 + ms(100 * i);
        b.receive(&high, now);
        if let Some(t) = b.poll(now) {
            became = Some(t);
            break;
        }
    }
    assert_eq!(
        became.map(|t| t.why),
        Some("preempting 198.18.1.2 of priority 150".to_owned())
    );
}

/// The priority and address count of a frame the router sent.
fn sent_priority_any(frame: &[u8]) -> (u8, u8) {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    let p = wire::validate(
        &Ipv4Facts::of(&ip),
        ip.payload(),
        ChecksumMode::PseudoHeader,
    )
    .unwrap();
    (p.priority(), p.addr_count())
}

#[test]
fn vrrp_frames_are_told_apart() {
    assert!(Router::is_vrrp_frame(&advert(PEER_HIGH, 51, 100)));
    let arp = gratuitous_arp(MAC, VIP);
    assert!(!Router::is_vrrp_frame(&arp));
    assert!(!Router::is_vrrp_frame(&[0u8; 10]));
    let a = l4vs_wire::arp::Packet::new_checked(&arp[14..42]).unwrap();
    assert_eq!(a.sender_proto_addr(), VIP);
    assert_eq!(a.target_proto_addr(), VIP);
}
