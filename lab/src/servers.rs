//! The real servers' applications: a minimal HTTP/1.0 server and a UDP
//! echo server, both naming the real server that answered.
//!
//! `l4vs-lab serve` runs them inside a real server's namespace. They bind
//! the wildcard address so the same process answers on the real server's
//! own address (NAT) and on the VIP held on `lo` (direct routing, tunnel).
//!
//! * HTTP: any request gets `200 OK` with body `"<name>\n"`,
//!   `Content-Length` and `Connection: close`; one thread per connection.
//! * UDP: a datagram `P` is answered with `"<name> " + P`.
//!
//! When both sockets are bound, [`READY_LINE`] is written to stdout: the lab
//! waits for it instead of polling the ports.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

/// Printed on stdout once a helper process is ready to serve.
pub const READY_LINE: &str = "ready";

/// Longest request head accepted; a real client never comes close.
const MAX_REQUEST: usize = 16 * 1024;

/// How long a connection may stay silent before the server gives up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What `l4vs-lab serve` should run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The name the server answers with (`rs1`, ...).
    pub name: String,
    /// HTTP listening addresses (the lab uses 80 and 443, for fwmark
    /// services that group ports).
    pub http: Vec<SocketAddr>,
    /// UDP echo address, if any.
    pub udp: Option<SocketAddr>,
}

/// Binds the configured sockets, prints [`READY_LINE`], and serves forever.
///
/// # Errors
/// If a socket cannot be bound or stdout is closed; serving errors on single
/// connections are only logged to stderr.
pub fn serve(config: &ServeConfig) -> Result<()> {
    let listeners = config
        .http
        .iter()
        .map(|addr| TcpListener::bind(addr).with_context(|| format!("cannot bind TCP {addr}")))
        .collect::<Result<Vec<_>>>()?;
    let udp = config
        .udp
        .map(|addr| UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr}")))
        .transpose()?;

    let mut handles = Vec::new();
    if let Some(sock) = udp {
        let name = config.name.clone();
        handles.push(thread::spawn(move || udp_echo(&sock, &name)));
    }
    for listener in listeners {
        let name = config.name.clone();
        handles.push(thread::spawn(move || http_accept(&listener, &name)));
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{READY_LINE}").context("cannot write to stdout")?;
    out.flush().context("cannot flush stdout")?;
    drop(out);

    for handle in handles {
        match handle.join() {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("a server thread panicked"),
        }
    }
    Ok(())
}

fn udp_echo(sock: &UdpSocket, name: &str) -> Result<()> {
    let mut buf = vec![0u8; 65536];
    let mut reply = Vec::with_capacity(65536 + name.len() + 1);
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            // ICMP errors from earlier replies surface here: not fatal.
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                eprintln!("{name}: udp recv: {e}");
                continue;
            }
            Err(_) => continue,
        };
        reply.clear();
        reply.extend_from_slice(name.as_bytes());
        reply.push(b' ');
        reply.extend_from_slice(&buf[..n]);
        if let Err(e) = sock.send_to(&reply, peer) {
            eprintln!("{name}: udp send to {peer}: {e}");
        }
    }
}

fn http_accept(listener: &TcpListener, name: &str) -> Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let name = name.to_owned();
                thread::spawn(move || {
                    if let Err(e) = http_answer(stream, &name) {
                        eprintln!("{name}: http: {e:#}");
                    }
                });
            }
            Err(e) => {
                // ECONNABORTED and friends: the next connection may be fine.
                eprintln!("{name}: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The response body for a server called `name`.
pub fn http_body(name: &str) -> String {
    format!("{name}\n")
}

fn http_answer(mut stream: TcpStream, name: &str) -> Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    // Read the whole request head, so closing does not turn into a RST
    // because of unread data.
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).context("reading the request")?;
        if n == 0 {
            anyhow::bail!("connection closed before the end of the request head");
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST {
            anyhow::bail!("request head longer than {MAX_REQUEST} bytes");
        }
    }
    let body = http_body(name);
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nServer: l4vs-lab/{name}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(response.as_bytes())
        .context("writing the response")?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}
