//! What the DPDK test binaries share.

/// EAL arguments for a test process: no hugepages (256 MiB of ordinary
/// memory), no PCI scan, no shared config or telemetry, errors only in
/// the log, lcore 0; then `extra` (the vdevs).
pub fn eal_args(extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "l4vs-dpdk-test",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level=*:error",
        "-l",
        "0",
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}
