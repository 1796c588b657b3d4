# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: become root and install the
# system packages l4vs builds and runs with, when any is missing.

set -euo pipefail

# Debian packages: DPDK (with its PMDs: af_packet, af_xdp, ring, memif ...),
# what bindgen and the C shim need, the lab's network tools, systemd for
# systemd-analyze (a test checks dist/systemd/l4vs.service with it), curl
# and promtool (Debian's prometheus package) for the metrics tests, ping
# for the exception path's, tshark for the IPVS sync codec's interop test,
# keepalived as the VRRP peer of the interop test (its service does not
# start without /etc/keepalived/keepalived.conf, which is not written),
# netbase for /etc/services (l4vsadm's port names without -n, tested).
L4VS_DEBS=(libdpdk-dev pkg-config clang libclang-dev gcc iproute2 ethtool procps systemd curl prometheus iputils-ping tshark keepalived netbase)

l4vs_as_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "l4vs: the lab needs root (network namespaces, DPDK); re-running with sudo" >&2
        exec sudo -E "$0" "$@"
    fi
}

l4vs_install_deps() {
    local missing=()
    for p in "${L4VS_DEBS[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "l4vs: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        for d in "$HOME/.cargo/bin" /root/.cargo/bin; do
            [ -x "$d/cargo" ] && export PATH="$d:$PATH" && break
        done
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "l4vs: no Rust toolchain found; install Rust >= 1.89 (https://rustup.rs) and run again" >&2
        exit 1
    fi
    if ! pkg-config --atleast-version=22.11 libdpdk; then
        echo "l4vs: DPDK >= 22.11 not found by pkg-config (libdpdk)" >&2
        exit 1
    fi
}
