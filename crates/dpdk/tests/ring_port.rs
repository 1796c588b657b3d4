//! DPDK end to end over the `net_ring` vdev, which loops TX queue i back to
//! RX queue i inside the process. The EAL can be initialised once per
//! process, so everything that needs it runs in one test function; the bad
//! EAL arguments case runs in a child process of this same binary.

mod common;

use common::eal_args;
use l4vs_dpdk::{register_thread, Eal, Mbuf, Mempool, Port, PortConfig, Ring, DEFAULT_DATA_ROOM};

const EEXIST: i32 = 17;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const EALREADY: i32 = 114;

#[test]
fn eal_pool_port_ring() {
    let eal = Eal::init(&eal_args(&["--vdev=net_ring0"])).expect("EAL init");
    assert!(l4vs_dpdk::tsc_hz() > 0);
    assert!(l4vs_dpdk::version().starts_with("DPDK "));
    let again = Eal::init(&eal_args(&[])).unwrap_err();
    assert_eq!(again.code(), EALREADY, "{again}");

    // Pools.
    let pool = Mempool::create("l4vs_test_pool", 1023, 32, DEFAULT_DATA_ROOM, -1).unwrap();
    assert_eq!(pool.available(), 1023);
    let dup = Mempool::create("l4vs_test_pool", 63, 0, DEFAULT_DATA_ROOM, -1).unwrap_err();
    assert_eq!(dup.code(), EEXIST, "{dup}");
    assert!(
        dup.to_string()
            .starts_with("mempool create \"l4vs_test_pool\": File exists"),
        "{dup}"
    );

    // Port lookup.
    let nope = Port::by_name("nope").unwrap_err();
    assert_eq!(
        nope.to_string(),
        "port by name \"nope\": No such device (errno 19)"
    );
    let port = Port::by_name("net_ring0").unwrap();
    assert_eq!(port.name().unwrap(), "net_ring0");
    assert!(Port::count() >= 1);
    assert!(Port::all().contains(&port));
    assert!(port.max_rx_queues().unwrap() >= 1);

    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        rss: true,
        promiscuous: true,
        rx_ip_checksum: true,
    };
    port.configure(&cfg, &pool).unwrap();
    // net_ring verifies no checksum: asking for the offload configures the
    // port without it.
    assert!(!port.rx_ip_checksum_offloaded().unwrap());
    port.start().unwrap();
    assert!(port.link_up());
    // net_ring reports a fixed 10 Gbit/s link (rte_eth_ring.c).
    assert_eq!(port.link_speed_mbps(), Some(10_000));
    port.mac_addr().unwrap();

    let mut rxq = port.rx_queue(0).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    assert_eq!(port.rx_queue(0).unwrap_err().code(), EBUSY);
    assert_eq!(port.tx_queue(1).unwrap_err().code(), EINVAL);
    let busy = port.stop().unwrap_err();
    assert_eq!(busy.code(), EBUSY, "{busy}");

    // Loop 8 distinct packets through the port.
    let mut tx: [Option<Mbuf>; 8] = Default::default();
    for (i, slot) in tx.iter_mut().enumerate() {
        let mut m = pool.alloc().unwrap();
        assert!(m.is_empty() && m.is_contiguous());
        assert!(m.append(60 + i));
        m.data_mut().fill(i as u8);
        *slot = Some(m);
    }
    assert_eq!(pool.in_use(), 8);
    assert_eq!(txq.burst(&mut tx), 8);
    assert!(tx.iter().all(Option::is_none));
    let mut rx: [Option<Mbuf>; 32] = Default::default();
    assert_eq!(rxq.burst(&mut rx), 8);
    for (i, m) in rx[..8].iter().enumerate() {
        let m = m.as_ref().unwrap();
        assert_eq!(m.len(), 60 + i);
        assert!(m.data().iter().all(|&b| b == i as u8));
    }
    assert!(rx[8..].iter().all(Option::is_none));

    // Headroom edits.
    let m = rx[0].as_mut().unwrap();
    let head = m.headroom();
    assert_eq!(head, 128);
    assert!(m.prepend(14));
    assert_eq!((m.len(), m.headroom()), (74, head - 14));
    m.data_mut()[..14].copy_from_slice(&[0xee; 14]);
    assert_eq!(m.data()[14], 0);
    assert!(m.adj(14));
    assert_eq!(m.data(), &[0u8; 60][..]);
    m.truncate(10);
    assert_eq!(m.len(), 10);
    m.truncate(100);
    assert_eq!(m.len(), 10);
    assert!(!m.prepend(head + 1));
    assert!(!m.adj(11));
    assert!(!m.append(m.tailroom() + 1));
    assert_eq!(m.pkt_len(), 10);

    let stats = port.stats().unwrap();
    assert_eq!((stats.ipackets, stats.opackets), (8, 8), "{stats:?}");

    // A TX burst stops at the first None and leaves unsent packets.
    let mut partial = [pool.alloc(), None, pool.alloc()];
    assert_eq!(txq.burst(&mut partial), 1);
    assert!(partial[0].is_none() && partial[2].is_some());
    drop(partial);
    assert_eq!(rxq.burst(&mut rx[8..]), 1);
    drop(rx);
    assert_eq!(pool.in_use(), 0);

    // Ring between two threads; the producer registers with DPDK.
    let (mut prod, mut cons) = Ring::create("l4vs_test_ring", 16).unwrap();
    assert_eq!(
        Ring::create("l4vs_test_ring", 16).unwrap_err().code(),
        EEXIST
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            let lcore = register_thread().unwrap();
            assert_ne!(lcore, 0);
            let mut pkts: [Option<Mbuf>; 20] = Default::default();
            assert!(pool.alloc_bulk(&mut pkts));
            for (i, m) in pkts.iter_mut().enumerate() {
                let m = m.as_mut().unwrap();
                assert!(m.append(1));
                m.data_mut()[0] = i as u8;
            }
            assert_eq!(prod.enqueue_burst(&mut pkts), 16);
            assert!(pkts[..16].iter().all(Option::is_none));
            assert!(pkts[16..].iter().all(Option::is_some));
            l4vs_dpdk::unregister_thread();
        });
    });
    assert_eq!((cons.ring().len(), cons.ring().capacity()), (16, 16));
    let mut out: [Option<Mbuf>; 10] = Default::default();
    assert_eq!(cons.dequeue_burst(&mut out), 10);
    assert_eq!(out[9].as_ref().unwrap().data(), &[9]);
    drop(out);
    drop((prod, cons)); // frees the 6 mbufs still queued
    assert_eq!(pool.in_use(), 0);

    // Shut down in order; the pool is really freed, then the EAL.
    drop((rxq, txq));
    port.stop().unwrap();
    port.close().unwrap();
    drop(pool);
    assert!(Mempool::create("l4vs_test_pool", 63, 0, DEFAULT_DATA_ROOM, -1).is_ok());
    drop(eal);
}

/// Bad EAL arguments fail with rte_errno's text. Runs in a child process,
/// since a process gets one EAL init attempt that counts.
#[test]
fn bad_eal_args() {
    if std::env::var_os("L4VS_DPDK_BAD_EAL_CHILD").is_some() {
        let e = Eal::init(&eal_args(&["--no-such-eal-flag"])).unwrap_err();
        assert_eq!(e.code(), EINVAL, "{e}");
        assert_eq!(e.to_string(), "EAL init: Invalid argument (errno 22)");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "bad_eal_args", "--nocapture"])
        .env("L4VS_DPDK_BAD_EAL_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
