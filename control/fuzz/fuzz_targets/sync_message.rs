//! The sync daemon's receive path on any bytes: the IPVS sync codec
//! (v0 and v1, options, the authentication option) and the backup's
//! mapping of entries to connections of the NAT lab's services, with and
//! without a key. It never panics, and every entry it takes names a
//! service and a real the snapshot has.
#![no_main]

use l4vs_control::config;
use l4vs_control::sync::{udp_frame, SyncDaemon};
use l4vs_dataplane::{PortInfo, Snapshot};
use l4vs_wire::ethernet::Address as MacAddr;
use l4vs_wire::{ipvs_sync, Ipv4Addr};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The NAT lab with a backup daemon, and its snapshot.
fn lab() -> &'static (config::Config, Snapshot) {
    static LAB: OnceLock<(config::Config, Snapshot)> = OnceLock::new();
    LAB.get_or_init(|| {
        let text = include_str!("../../../configs/lab-nat-sync-backup.yaml");
        let cfg = config::parse(text, "lab-nat-sync-backup.yaml").expect("the lab config");
        let port = PortInfo {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        };
        let snap = l4vs_control::plan::snapshot(&cfg, &[port]).expect("its snapshot");
        (cfg, snap)
    })
}

fuzz_target!(|data: &[u8]| {
    // The codec alone.
    if let Ok(m) = ipvs_sync::Message::parse(data) {
        for e in m.conns() {
            let _ = e;
        }
        let _ = m.auth();
    }
    // The backup's whole path, in a frame from a peer.
    let (cfg, snap) = lab();
    let frame = udp_frame(
        [2, 0, 0, 0, 0, 9],
        Ipv4Addr::new(198, 18, 1, 1),
        ipvs_sync::GROUP,
        ipvs_sync::PORT,
        1,
        1,
        data,
    );
    let mut with_key = cfg.sync.clone().expect("a sync block");
    let mut without = with_key.clone();
    without.auth = None;
    with_key.syncid = 0;
    for s in [with_key, without] {
        let mut d = SyncDaemon::new(s, [2, 0, 0, 0, 0, 1], 2);
        d.apply(&frame, snap, |worker, c| {
            assert!(worker < 2);
            let svc = snap.service(c.service).expect("a service the snapshot has");
            assert!(usize::from(c.real) < svc.service().reals.len());
            true
        });
    }
});
