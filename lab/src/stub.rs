//! A stand-in for the `l4vs` binary, to test [`crate::demo`] without DPDK:
//! `l4vs-lab stub-director [run --config ...]` (the arguments are ignored).
//!
//! Run in the director namespace, it gives eth0 the director's kernel
//! addresses, puts the VIP on `lo`, and proxies TCP connections for
//! [`VIP_HTTP`] round-robin to the real servers' RIPs (a full proxy: the
//! reals see the director as the client, unlike any LVS mode). On SIGINT or
//! SIGTERM it prints its per-real counters and exits 0, as `l4vs` does.
//! Only the lab's plumbing is tested with it, never forwarding behaviour.

use std::io::{self, Write as _};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns;
use crate::signals;
use crate::topology::{
    DIRECTOR_CLIENT_ADDR, DIRECTOR_REAL_ADDR, HTTP_PORT, IFACE, REAL_SERVERS, SUBNET_PREFIX_LEN,
    VIP, VIP_HTTP,
};

/// Configures the current namespace and proxies until SIGINT/SIGTERM.
///
/// # Errors
/// If the addresses or the listener cannot be set up.
pub fn run() -> Result<()> {
    signals::install()?;
    for (addr, dev) in [
        (format!("{DIRECTOR_CLIENT_ADDR}/{SUBNET_PREFIX_LEN}"), IFACE),
        (format!("{DIRECTOR_REAL_ADDR}/{SUBNET_PREFIX_LEN}"), IFACE),
        (format!("{VIP}/32"), "lo"),
    ] {
        netns::run(Command::new("ip").args(["addr", "add", &addr, "dev", dev]))?;
    }
    let listener =
        TcpListener::bind(VIP_HTTP).with_context(|| format!("cannot bind {VIP_HTTP}"))?;
    listener.set_nonblocking(true)?;
    println!(
        "stub-director: proxying {VIP_HTTP} to {} reals",
        REAL_SERVERS.len()
    );
    let counts: Arc<Vec<AtomicU32>> =
        Arc::new(REAL_SERVERS.iter().map(|_| AtomicU32::new(0)).collect());
    let mut next = 0usize;
    while !signals::interrupted() {
        match listener.accept() {
            Ok((client, _)) => {
                let idx = next % REAL_SERVERS.len();
                next += 1;
                counts[idx].fetch_add(1, Ordering::Relaxed);
                let rip = SocketAddrV4::new(REAL_SERVERS[idx].addr, HTTP_PORT);
                thread::spawn(move || {
                    if let Err(e) = proxy(client, rip) {
                        eprintln!("stub-director: {rip}: {e:#}");
                    }
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => eprintln!("stub-director: accept: {e}"),
        }
    }
    println!("stub-director: stopping");
    for (real, n) in REAL_SERVERS.iter().zip(counts.iter()) {
        println!(
            "stub-director: {} {} connections",
            real.name,
            n.load(Ordering::Relaxed)
        );
    }
    io::stdout().flush().context("cannot flush stdout")?;
    Ok(())
}

fn proxy(client: TcpStream, rip: SocketAddrV4) -> Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&rip.into(), Duration::from_secs(2))?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    io::copy(&mut s_read, &mut c_write)?;
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}
