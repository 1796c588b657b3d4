//! Build script: finds the system DPDK with pkg-config, compiles the C shim
//! for DPDK's static-inline functions, and generates bindings with bindgen.
//!
//! DPDK's headers need the exact cflags pkg-config gives (notably
//! `-include rte_config.h` and `-march=...`), so they are taken verbatim from
//! `pkg-config --cflags libdpdk` and handed to both `cc` and clang.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("libdpdk >= {MIN_VERSION} not found by pkg-config: {e}"));
    let cflags = dpdk_cflags();

    let mut build = cc::Build::new();
    build.file("src/shim.c").warnings(true);
    for flag in &cflags {
        build.flag(flag);
    }
    // Functions still marked __rte_experimental on some release are compile
    // errors in the shim without this.
    build.define("ALLOW_EXPERIMENTAL_API", None);
    build.compile("l4vs_dpdk_shim");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bindings = bindgen::Builder::default()
        .header("src/shim.h")
        .clang_args(&cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function(
            "rte_eal_init|rte_eal_cleanup|rte_strerror|rte_thread_register|rte_thread_unregister\
             |rte_socket_id|rte_get_tsc_hz|rte_version",
        )
        .allowlist_function(
            "rte_eth_(dev_(configure|start|stop|close|info_get|socket_id|count_avail\
             |get_port_by_name|get_name_by_port|is_valid_port|adjust_nb_rx_tx_desc\
             |get_mtu|set_mtu|default_mac_addr_set)\
             |macaddr_get|stats_get|stats_reset|promiscuous_(enable|disable)\
             |(rx|tx)_queue_setup|find_next_owned_by)",
        )
        .allowlist_function(
            "rte_pktmbuf_pool_create|rte_pktmbuf_free_bulk\
             |rte_mempool_(free|lookup|avail_count|in_use_count)",
        )
        .allowlist_function("rte_ring_(create|free|lookup)")
        .allowlist_function("l4vs_.*")
        .allowlist_type("rte_eth_rx_mq_mode|rte_eth_tx_mq_mode")
        .allowlist_var("L4VS_.*|RING_F_(SP_ENQ|SC_DEQ|EXACT_SZ)|RTE_ETH_DEV_NO_OWNER")
        // Only reached through pointers; their layouts change between
        // releases and nothing here reads their fields.
        .opaque_type("rte_mempool|rte_ring|rte_device|rte_mbuf_ext_shared_info")
        // The inner types of those opaque structs, which bindgen emits anyway.
        .blocklist_type("rte_mempool_.+|rte_ring_.+|__rte_ring_.+")
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .generate_comments(false)
        .layout_tests(true)
        .generate()
        .expect("bindgen failed on src/shim.h");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");

    // Let dependents find the headers (DEP_DPDK_INCLUDE) if they need them.
    let includes: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("cargo:include={}", includes.join(":"));
}

/// The compiler flags for DPDK, exactly as pkg-config prints them.
fn dpdk_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {pkg_config}: {e}"));
    assert!(
        out.status.success(),
        "{pkg_config} --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("pkg-config printed non-UTF-8 cflags")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
