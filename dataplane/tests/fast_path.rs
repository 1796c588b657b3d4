//! The fixed-offset fast path against the general path (issue 12's
//! guard): random records of base frames and byte changes
//! (`l4vs_dataplane::difftest::frames`) through two workers alike but for
//! `WorkerConfig::fast_path` give the same verdicts, bytes and counters.
//! The cargo-fuzz target `fast_path` (dataplane/fuzz) runs the same check
//! coverage-guided.

use l4vs_dataplane::difftest::{self, PathPair};
use l4vs_dataplane::WorkerConfig;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fast_and_general_paths_agree(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Err(e) = difftest::run(&data) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Every base frame, whole and cut at every length, on one pair: the
/// fast path takes the whole common ones and must agree on all.
#[test]
fn every_cut_of_every_base_frame_agrees() {
    let mut pair = PathPair::new();
    let base = difftest::base_frames();
    for f in &base {
        for len in (0..=f.len()).rev() {
            pair.feed(&f[..len], 1).unwrap();
        }
    }
    // All but the ICMP echo and the unpadded SYN's cuts below 60 bytes
    // are common frames at full length at least.
    assert!(
        pair.fast_path_reads() >= base.len() as u64 - 1,
        "{}",
        pair.fast_path_reads()
    );
}

/// The records reach the fast path: of 500 random inputs, the fast path
/// reads frames in most (a check that never took it would compare
/// nothing).
#[test]
fn random_records_reach_the_fast_path() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut reached = 0;
    for _ in 0..500 {
        let data: Vec<u8> = (0..64)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        let mut pair = PathPair::new();
        for (f, step) in difftest::frames(&data) {
            pair.feed(&f, step).unwrap();
        }
        if pair.fast_path_reads() > 0 {
            reached += 1;
        }
    }
    assert!(reached > 250, "{reached} of 500");
}

/// The check can fail: workers that differ (here the general one may send
/// no ICMP error, so a TTL 1 packet is answered by one and dropped by
/// the other) are caught.
#[test]
fn a_difference_is_reported() {
    let cfg = WorkerConfig {
        conn_capacity: 4096,
        ..WorkerConfig::default()
    };
    let silent = WorkerConfig {
        icmp_msgs_burst: 0,
        icmp_msgs_per_sec: 0,
        ..cfg
    };
    let mut ttl1 = difftest::base_frames()[0].clone();
    // TTL (byte 8 of the IPv4 header) 64 -> 1, and the header checksum
    // (bytes 10-11) up by 63 << 8, as RFC 1624 has it.
    ttl1[14 + 8] = 1;
    let sum = u16::from_be_bytes([ttl1[24], ttl1[25]]);
    let (s, carry) = sum.overflowing_add(63 << 8);
    ttl1[24..26].copy_from_slice(&(s + u16::from(carry)).to_be_bytes());
    PathPair::new().feed(&ttl1, 0).unwrap();
    let err = PathPair::with_configs(cfg, silent)
        .feed(&ttl1, 0)
        .unwrap_err();
    assert!(err.starts_with("verdicts differ"), "{err}");
}
