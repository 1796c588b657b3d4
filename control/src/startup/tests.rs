use super::*;
use crate::config;

/// A valid config with `ports` (YAML list items), worker `cores` and
/// `eal.args`.
fn cfg_with(ports: &str, main_core: u32, cores: &str, args: &str) -> Config {
    let text = format!(
        "eal:\n  args: [{args}]\n  main_core: {main_core}\nworkers:\n  cores: [{cores}]\n  connections: 1024\nports:\n{ports}\n"
    );
    config::parse(&text, "test.yaml").unwrap()
}

fn af_packet(iface: &str) -> Config {
    cfg_with(
        &format!("  - name: lan\n    device: net_af_packet0,iface={iface}"),
        0,
        "1",
        "\"--no-huge\"",
    )
}

fn pci() -> Config {
    cfg_with(
        "  - name: wan\n    device: 0000:03:00.0,rxq_cqe_comp_en=0",
        0,
        "1",
        "",
    )
}

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l4vs-startup-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

// ---- cores ----

#[test]
fn cpu_lists_parse_ranges() {
    assert_eq!(cpu_list("0-1,4\n").unwrap(), vec![0..=1, 4..=4]);
    assert_eq!(cpu_list("7").unwrap(), vec![7..=7]);
    assert_eq!(cpu_list("\n").unwrap(), vec![]);
    for bad in ["a", "0-", "-1", "2-1", "0,,1", "0-1-2"] {
        let e = cpu_list(bad).unwrap_err();
        assert!(e.starts_with("not a CPU list: `"), "{bad}: {e}");
    }
}

#[test]
fn worker_core_offline_is_refused() {
    let cfg = cfg_with("  - name: lan\n    device: net_ring0", 0, "1, 7", "");
    let e = check_cores(&cfg, "0-1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "workers.cores: core 7 is not an online CPU of this machine (online: 0-1)"
    );
    check_cores(&cfg, "0-1,4-7\n").unwrap();
}

#[test]
fn main_core_offline_is_refused() {
    let cfg = cfg_with("  - name: lan\n    device: net_ring0", 3, "1", "");
    let e = check_cores(&cfg, "0-1,4\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "eal.main_core: core 3 is not an online CPU of this machine (online: 0-1,4)"
    );
}

#[test]
fn unparsable_cpu_lists_skip_the_check() {
    let cfg = cfg_with("  - name: lan\n    device: net_ring0", 0, "9", "");
    check_cores(&cfg, "garbage").unwrap();
}

// ---- status, capabilities ----

const STATUS: &str = "Name:\tl4vs\nUmask:\t0022\nState:\tR (running)\nUid:\t1000\t1000\t1000\t1000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCpus_allowed_list:\t0-1\n";

#[test]
fn status_fields() {
    assert_eq!(status_field(STATUS, "Cpus_allowed_list"), Some("0-1"));
    assert_eq!(status_field(STATUS, "Uid").and_then(real_uid), Some(1000));
    assert_eq!(status_field(STATUS, "Nope"), None);
    assert_eq!(cap_effective(STATUS), Some(0));
    assert_eq!(
        cap_effective("CapEff:\t000001fffeffffff\n"),
        Some(0x1ff_feff_ffff)
    );
    assert_eq!(cap_effective("CapEff:\tzz\n"), None);
}

#[test]
fn af_packet_without_cap_net_raw_is_refused() {
    let e = check_cap_net_raw(&af_packet("eth0"), 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "port lan: needs CAP_NET_RAW for net_af_packet ports (ports[0].device: net_af_packet0,iface=eth0): run as root or grant cap_net_raw"
    );
    // Root's set, and CAP_NET_RAW alone, are enough.
    check_cap_net_raw(&af_packet("eth0"), 0x1ff_feff_ffff).unwrap();
    check_cap_net_raw(&af_packet("eth0"), 1 << 13).unwrap();
    // A PCI port needs no raw socket.
    check_cap_net_raw(&pci(), 0).unwrap();
}

// ---- interfaces ----

const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0
  eth0: 9876543   12345    0    0    0     0          0         0   123456    1234    0    0    0     0       0          0
veth-a_b1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";

#[test]
fn net_dev_lists_interfaces() {
    assert_eq!(interfaces(NET_DEV), vec!["lo", "eth0", "veth-a_b1"]);
}

#[test]
fn missing_interface_is_named_with_its_key() {
    let e = check_interfaces(&af_packet("eth9"), &interfaces(NET_DEV)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "port lan: interface eth9 does not exist (device net_af_packet0,iface=eth9): create it or fix ports[0].device"
    );
    check_interfaces(&af_packet("eth0"), &interfaces(NET_DEV)).unwrap();
    // A tap port creates its interface; a PCI port has none.
    let tap = cfg_with(
        "  - name: lan\n    device: net_tap0,iface=dtap9",
        0,
        "1",
        "",
    );
    check_interfaces(&tap, &interfaces(NET_DEV)).unwrap();
    check_interfaces(&pci(), &[]).unwrap();
}

#[test]
fn af_xdp_interface_is_checked_among_other_args() {
    let cfg = cfg_with(
        "  - name: lan\n    device: net_af_packet0,iface=eth0\n  - name: wan\n    device: net_af_xdp1,start_queue=0,iface=eth1,queue_count=1",
        0,
        "1",
        "",
    );
    let e = check_interfaces(&cfg, &interfaces(NET_DEV)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "port wan: interface eth1 does not exist (device net_af_xdp1,start_queue=0,iface=eth1,queue_count=1): create it or fix ports[1].device"
    );
}

#[test]
fn af_packet_without_iface_is_refused() {
    let cfg = cfg_with(
        "  - name: lan\n    device: net_af_packet0,qpairs=2",
        0,
        "1",
        "",
    );
    let e = check_interfaces(&cfg, &interfaces(NET_DEV)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "port lan: net_af_packet needs the kernel interface as iface=NAME (device net_af_packet0,qpairs=2): add it to ports[0].device"
    );
}

// ---- lock keys ----

fn device(spec: &str) -> Device {
    let cfg = cfg_with(&format!("  - name: p\n    device: {spec}"), 0, "1", "");
    cfg.ports[0].device.clone()
}

#[test]
fn kernel_interfaces_are_keyed_by_iface_and_namespace() {
    let a = resource(&device("net_af_packet0,iface=eth0"), Some("4026531833"));
    let b = resource(
        &device("net_af_packet7,iface=eth0,qpairs=2"),
        Some("4026531833"),
    );
    let xdp = resource(&device("net_af_xdp0,iface=eth0"), Some("4026531833"));
    let pcap = resource(&device("net_pcap0,iface=eth0"), Some("4026531833"));
    assert_eq!(a.file_name, "port-netns4026531833-iface=eth0.lock");
    assert_eq!(a.what, "interface eth0");
    assert_eq!(a, b);
    assert_eq!(a, xdp);
    assert_eq!(a, pcap, "net_pcap reads the same interface");
    let pcap_other_ns = resource(&device("net_pcap0,iface=eth0"), Some("4026532000"));
    assert_ne!(pcap.file_name, pcap_other_ns.file_name, "labs side by side");
    let other_ns = resource(&device("net_af_packet0,iface=eth0"), Some("4026532000"));
    assert_ne!(a.file_name, other_ns.file_name);
    let other_iface = resource(&device("net_af_packet0,iface=eth1"), Some("4026531833"));
    assert_ne!(a.file_name, other_iface.file_name);
}

#[test]
fn pci_is_keyed_by_address_other_vdevs_by_spec() {
    let a = resource(&device("03:00.0"), None);
    let b = resource(&device("0000:03:00.0,rxq_cqe_comp_en=0"), None);
    assert_eq!(a.file_name, "port-pci=0000:03:00.0.lock");
    assert_eq!(a.what, "PCI device 0000:03:00.0");
    assert_eq!(a, b);
    let memif = resource(&device("net_memif0,role=server,socket=/run/m.sock"), None);
    assert_eq!(
        memif.file_name,
        "port-vdev=net_memif0,role=server,socket=%2Frun%2Fm.sock.lock"
    );
    assert_eq!(
        memif.what,
        "device net_memif0,role=server,socket=/run/m.sock"
    );
}

#[test]
fn long_keys_are_cut_and_hashed() {
    let long = |tail: &str| {
        resource(
            &device(&format!("net_memif0,socket=/{}{tail}", "x".repeat(300))),
            None,
        )
        .file_name
    };
    let (a, b) = (long("a"), long("b"));
    assert!(a.len() <= MAX_LOCK_NAME + ".lock".len(), "{}", a.len());
    assert!(a.ends_with(".lock"));
    assert_ne!(a, b);
}

#[test]
fn netns_links_give_their_id() {
    assert_eq!(netns_id("net:[4026531833]"), Some("4026531833"));
    assert_eq!(netns_id("net:[]"), None);
    assert_eq!(netns_id("mnt:[4026531833]"), None);
}

// ---- locks ----

#[test]
fn a_locked_port_is_refused_with_the_owner_pid() {
    let dir = temp_dir("locked");
    let cfg = af_packet("eth0");
    let held = lock_ports(&cfg, &dir, Some("4026531833")).unwrap();
    let path = dir.join("port-netns4026531833-iface=eth0.lock");
    assert_eq!(held.paths().collect::<Vec<_>>(), vec![path.as_path()]);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );

    // Another vdev name on the same interface is the same port.
    let other = cfg_with(
        "  - name: lan2\n    device: net_af_packet3,iface=eth0",
        0,
        "1",
        "",
    );
    let e = lock_ports(&other, &dir, Some("4026531833")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "port lan2 (net_af_packet3,iface=eth0) is in use by another l4vs (pid {}, lock {}): stop it first",
            std::process::id(),
            path.display()
        )
    );
    // Without a pid in the file, the message still names the lock.
    fs::write(&path, "").unwrap();
    let e = lock_ports(&other, &dir, Some("4026531833")).unwrap_err();
    assert!(
        e.to_string()
            .contains("in use by another l4vs (pid unknown, lock "),
        "{e}"
    );
    // The same interface in another namespace is another port.
    drop(lock_ports(&other, &dir, Some("4026532000")).unwrap());

    // Released when the owner goes: the next one takes it and its pid.
    drop(held);
    let again = lock_ports(&other, &dir, Some("4026531833")).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(again);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lock_dir_is_created_0755() {
    let dir = temp_dir("mode").join("run").join("l4vs");
    let held = lock_ports(&pci(), &dir, None).unwrap();
    let mode = fs::metadata(&dir).unwrap().mode() & 0o777;
    // The umask may only take bits away.
    assert_eq!(mode & !0o755, 0, "{mode:o}");
    drop(held);
    fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
}

#[test]
fn two_ports_on_one_interface_are_refused() {
    let cfg = cfg_with(
        "  - name: lan\n    device: net_af_packet0,iface=eth0\n  - name: wan\n    device: net_af_packet1,iface=eth0",
        0,
        "1",
        "",
    );
    let dir = temp_dir("shared");
    let e = lock_ports(&cfg, &dir, Some("1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ports[1].device: port wan uses interface eth0, as port lan (ports[0].device) does: give each port its own"
    );
    // Nothing was locked or created.
    assert!(!dir.exists());
}

/// The whole preflight on this machine, with the locks in a temp dir: a
/// second run of the same config is refused while the first holds its
/// guard.
#[test]
fn preflight_refuses_a_second_instance() {
    // A core this test process may run on, whatever the machine.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let allowed = status_field(&status, "Cpus_allowed_list").unwrap();
    let core = *cpu_list(allowed).unwrap()[0].start();
    let cfg = cfg_with(
        "  - name: ring\n    device: net_ring0",
        core,
        &core.to_string(),
        "\"--no-huge\", \"--no-shconf\"",
    );
    let dir = temp_dir("preflight");
    let first = preflight_in(&cfg, &dir).unwrap();
    let e = preflight_in(&cfg, &dir).unwrap_err();
    let lock = dir.join("port-vdev=net_ring0.lock");
    assert_eq!(
        e.to_string(),
        format!(
            "port ring (net_ring0) is in use by another l4vs (pid {}, lock {}): stop it first",
            std::process::id(),
            lock.display()
        )
    );
    drop(first);
    drop(preflight_in(&cfg, &dir).unwrap());
    fs::remove_dir_all(&dir).unwrap();
}

// ---- EAL runtime directory ----

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn runtime_dir_follows_dpdk() {
    let root = |a: &[&str]| runtime_dir(&args(a), 0, None, Some("/run/user/0"));
    assert_eq!(root(&[]), Some(PathBuf::from("/var/run/dpdk/rte")));
    assert_eq!(
        root(&["--file-prefix", "lb1"]),
        Some(PathBuf::from("/var/run/dpdk/lb1"))
    );
    assert_eq!(
        root(&["-m", "512", "--file-prefix=lb2"]),
        Some(PathBuf::from("/var/run/dpdk/lb2"))
    );
    for none in [
        &["--no-shconf"][..],
        &["--in-memory"],
        &["--proc-type=auto"],
    ] {
        assert_eq!(root(none), None, "{none:?}");
    }
    assert_eq!(
        runtime_dir(&[], 1000, None, Some("/run/user/1000")),
        Some(PathBuf::from("/run/user/1000/dpdk/rte"))
    );
    assert_eq!(
        runtime_dir(&[], 1000, None, None),
        Some(PathBuf::from("/tmp/dpdk/rte"))
    );
    assert_eq!(
        runtime_dir(&[], 0, Some("/run/l4vs-unit"), None),
        Some(PathBuf::from("/run/l4vs-unit/dpdk/rte"))
    );
}

#[test]
fn proc_locks_name_the_holder() {
    let locks = "\
1: FLOCK  ADVISORY  WRITE 77 00:19:4242 0 EOF
2: POSIX  ADVISORY  WRITE 1234 00:19:4242 128 9999
2: -> POSIX  ADVISORY  WRITE 4321 00:19:4242 128 9999
3: POSIX  ADVISORY  READ 55 00:19:5555 0 EOF
4: OFDLCK ADVISORY  WRITE -1 103:02:77 0 EOF
";
    // tmpfs device 0:25 (0x19), inode 4242.
    assert_eq!(posix_lock_holder(locks, 0x19, 4242, 1), Some(1234));
    // Our own lock is no conflict; nor is a read lock or a flock.
    assert_eq!(posix_lock_holder(locks, 0x19, 4242, 1234), None);
    assert_eq!(posix_lock_holder(locks, 0x19, 5555, 1), None);
    assert_eq!(posix_lock_holder(locks, 0x19, 1, 1), None);
    // An OFD lock shows no pid (-1): there is none to name.
    let dev = (0x103 << 8) | 0x02;
    assert_eq!(posix_lock_holder(locks, dev, 77, 1), None);
}

#[test]
fn dev_numbers_split_as_glibc_does() {
    assert_eq!(dev_major_minor(0x19), (0, 0x19));
    assert_eq!(dev_major_minor(0x10302), (0x103, 0x02));
    // major 4096, minor 256: the high parts.
    let dev = (4096u64 << 32) | (1 << 20);
    assert_eq!(dev_major_minor(dev), (4096, 256));
}

// ---- hugepages ----

const MEMINFO: &str = "\
MemTotal:        4026160 kB
AnonHugePages:         0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
";

#[test]
fn meminfo_gives_hugepage_counts() {
    assert_eq!(
        hugepages(MEMINFO),
        Some(Hugepages {
            total: 0,
            free: 0,
            page_kb: 2048
        })
    );
    assert_eq!(hugepages("MemTotal: 1 kB\n"), None);
}

#[test]
fn no_hugepages_says_how_to_reserve_them() {
    let e = check_hugepages(hugepages(MEMINFO).unwrap(), 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no free hugepages (HugePages_Total 0): reserve some (echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) or add --no-huge to eal.args"
    );
    let taken = Hugepages {
        total: 512,
        free: 0,
        page_kb: 2048,
    };
    let e = check_hugepages(taken, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no free hugepages (HugePages_Total 512, all in use): free some, reserve more (echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) or add --no-huge to eal.args"
    );
    check_hugepages(Hugepages { free: 1, ..taken }, 0).unwrap();
    // 1 GiB pages free, though the default size has none.
    check_hugepages(taken, 4).unwrap();
}

#[test]
fn eal_options_with_and_without_values() {
    let a = args(&["--no-huge", "--file-prefix", "x", "--log-level=*:error"]);
    assert!(has_eal_option(&a, "--no-huge"));
    assert!(!has_eal_option(&a, "--no-shconf"));
    assert_eq!(eal_option(&a, "--file-prefix"), Some(Some("x")));
    assert_eq!(eal_option(&a, "--log-level"), Some(Some("*:error")));
    // `--no-hugepages` is not `--no-huge`.
    assert!(!has_eal_option(&args(&["--no-hugepages"]), "--no-huge"));
}

/// The exception path's interface of a port must not exist yet: another
/// l4vs has it, or someone else does.
#[test]
fn an_existing_kernel_interface_is_refused_with_its_port() {
    let present = ["lo", "eth0", "l4vs-lan"];
    let e = check_interfaces(&af_packet("eth0"), &present).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("port lan: its kernel interface l4vs-lan exists already"),
        "{e}"
    );
    let mut off = af_packet("eth0");
    off.exception_path = false;
    check_interfaces(&off, &present).unwrap();
}
