//! The real servers' applications: a minimal HTTP/1.0 server and a UDP
//! echo server, both naming the real server that answered.
//!
//! `l4vs-lab serve` runs them inside a real server's namespace. They bind
//! the wildcard address so the same process answers on the real server's
//! own address (NAT) and on the VIP held on `lo` (direct routing, tunnel).
//!
//! * HTTP: any request gets `200 OK` with body `"<name>\n"`,
//!   `Content-Length` and `Connection: close`; one thread per connection.
//! * HTTPS: the same in TLS (rustls), with a self-signed certificate made
//!   at start (rcgen), for the directors' https health checks.
//! * UDP: a datagram `P` is answered with `"<name> " + P`.
//! * DNS: every query is answered NOERROR with its question and no
//!   records (hickory-proto), for the directors' dns health checks; a
//!   datagram that is not a query is not answered.
//!
//! When both sockets are bound, [`READY_LINE`] is written to stdout: the lab
//! waits for it instead of polling the ports.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
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
    /// HTTPS listening addresses.
    pub https: Vec<SocketAddr>,
    /// UDP echo address, if any.
    pub udp: Option<SocketAddr>,
    /// DNS (UDP) address, if any.
    pub dns: Option<SocketAddr>,
    /// TCP echo address (RFC 862), if any: long-lived connections.
    pub echo: Option<SocketAddr>,
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
    let tls_listeners = config
        .https
        .iter()
        .map(|addr| TcpListener::bind(addr).with_context(|| format!("cannot bind TCP {addr}")))
        .collect::<Result<Vec<_>>>()?;
    let udp_bind =
        |addr: SocketAddr| UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr}"));
    let udp = config.udp.map(udp_bind).transpose()?;
    let dns = config.dns.map(udp_bind).transpose()?;
    let echo = config
        .echo
        .map(|addr| TcpListener::bind(addr).with_context(|| format!("cannot bind TCP {addr}")))
        .transpose()?;

    let mut handles = Vec::new();
    if let Some(sock) = udp {
        let name = config.name.clone();
        handles.push(thread::spawn(move || udp_echo(&sock, &name)));
    }
    if let Some(sock) = dns {
        let name = config.name.clone();
        handles.push(thread::spawn(move || dns_answer(&sock, &name)));
    }
    if let Some(listener) = echo {
        let name = config.name.clone();
        handles.push(thread::spawn(move || tcp_echo_accept(&listener, &name)));
    }
    for listener in listeners {
        let name = config.name.clone();
        handles.push(thread::spawn(move || http_accept(&listener, &name, None)));
    }
    if !tls_listeners.is_empty() {
        let tls = tls_config(&config.name)?;
        for listener in tls_listeners {
            let (name, tls) = (config.name.clone(), tls.clone());
            handles.push(thread::spawn(move || {
                http_accept(&listener, &name, Some(tls))
            }));
        }
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

/// How long an echo connection may stay silent before the server closes
/// it (the lab's long-lived connections send every 100 ms or so).
const ECHO_IDLE: Duration = Duration::from_secs(60);

/// TCP echo (RFC 862): each connection on a thread of its own, every
/// byte sent back, until the peer closes or is silent for [`ECHO_IDLE`].
fn tcp_echo_accept(listener: &TcpListener, name: &str) -> Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                let name = name.to_owned();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(ECHO_IDLE));
                    let _ = stream.set_nodelay(true);
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if let Err(e) = stream.write_all(&buf[..n]) {
                                    eprintln!("{name}: echo to {peer}: {e}");
                                    break;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                eprintln!("{name}: echo from {peer}: {e}");
                                break;
                            }
                        }
                    }
                });
            }
            Err(e) => {
                eprintln!("{name}: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Answers each DNS query on `sock` NOERROR, with its question.
fn dns_answer(sock: &UdpSocket, name: &str) -> Result<()> {
    use hickory_proto::op::{Message, MessageType};
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                eprintln!("{name}: dns recv: {e}");
                continue;
            }
            Err(_) => continue,
        };
        let query = match Message::from_vec(&buf[..n]) {
            Ok(q) if q.metadata.message_type == MessageType::Query => q,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("{name}: dns: a datagram from {peer} that is not DNS: {e}");
                continue;
            }
        };
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.add_queries(query.queries.iter().cloned());
        match reply.to_vec() {
            Ok(bytes) => {
                if let Err(e) = sock.send_to(&bytes, peer) {
                    eprintln!("{name}: dns send to {peer}: {e}");
                }
            }
            Err(e) => eprintln!("{name}: dns: {e}"),
        }
    }
}

/// A TLS server configuration with a self-signed certificate for `name`
/// (and `localhost`), made now.
///
/// # Errors
/// If the certificate cannot be made.
fn tls_config(name: &str) -> Result<Arc<rustls::ServerConfig>> {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_owned(), "localhost".to_owned()])
        .context("making a self-signed certificate")?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .context("the self-signed certificate")?;
    Ok(Arc::new(config))
}

fn http_accept(
    listener: &TcpListener,
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let (name, tls) = (name.to_owned(), tls.clone());
                thread::spawn(move || {
                    let served = match tls {
                        None => http_answer(stream, &name),
                        Some(tls) => https_answer(stream, &name, tls),
                    };
                    if let Err(e) = served {
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
    http_exchange(&mut stream, name)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn https_answer(stream: TcpStream, name: &str, tls: Arc<rustls::ServerConfig>) -> Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let conn = rustls::ServerConnection::new(tls).context("a TLS connection")?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    http_exchange(&mut tls, name)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// Reads a request head from `stream` and writes the answer.
fn http_exchange(stream: &mut impl ReadWrite, name: &str) -> Result<()> {
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
    Ok(())
}

/// A byte stream both ways: TCP, or TLS over it.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
