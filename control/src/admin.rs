//! The admin socket: a Unix stream socket on which `l4vsadm` (and other
//! local tools) ask the running director for its table and change it.
//!
//! # Protocol
//!
//! One request per connection, one response, then the director closes it.
//! Each is a frame: a 4-byte big-endian length, then that many bytes of
//! JSON (serde_json) encoding a [`Request`] or a [`Response`]. A request
//! longer than [`MAX_REQUEST`], one that is not valid JSON of a request,
//! or one that does not arrive whole within [`REQUEST_DEADLINE`] gets an
//! [`Response::Error`] (when the socket still takes it) and the connection
//! is closed; nothing else is disturbed. At most [`MAX_CLIENTS`] are served
//! at once; the others are answered "busy" and closed.
//!
//! # Serving
//!
//! [`AdminServer`] is polled by the control thread between its other
//! duties (non-blocking: it never waits on a client), so a slow or
//! malicious client costs the control thread a read per tick and the
//! dataplane nothing. What a request changes goes through the command
//! model ([`crate::table`]) and is published as a reload is.
//!
//! The socket's mode is 0600: only its owner (root, normally) may connect.

use crate::table::{Command, ServiceReport};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest request accepted, bytes (a restore of tens of thousands of
/// services fits).
pub const MAX_REQUEST: usize = 16 << 20;
/// Largest response a client accepts, bytes.
pub const MAX_RESPONSE: usize = 256 << 20;
/// Time a client has to send its whole request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// ipvsadm operations (`-A -E -D -a -e -d -C -Z --set`), applied in
    /// order to a copy of the table and published together, or not at all
    /// (`-R` sends many; the first refused one is named).
    Apply {
        /// The operations.
        commands: Vec<Command>,
    },
    /// The services and real servers with their counts, counters and
    /// rates (`-L`, `--stats`, `--rate`).
    List,
    /// The running table as a config file the loader takes back.
    Yaml,
    /// Every connection and persistence template the workers hold
    /// (`-L -c`). Answered once every worker has listed its table.
    Connections,
    /// Start a sync daemon (`--start-daemon`). Answered `Applied`, or an
    /// error in ipvsadm's words (`Daemon has already run`).
    StartDaemon {
        /// What to start.
        daemon: DaemonSpec,
    },
    /// Stop a sync daemon (`--stop-daemon master|backup`). Answered
    /// `Applied`, or `No daemon is running`.
    StopDaemon {
        /// `master` or `backup`.
        state: String,
    },
}

/// A sync daemon as `--start-daemon` asks for it: ipvsadm's options,
/// `None` for the defaults (those of the config's `sync:` block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    /// `master` or `backup`.
    pub state: String,
    /// `--mcast-interface`: a port's name (ipvsadm's default `eth0`).
    pub interface: String,
    /// `--syncid` (0 unless given, as ipvsadm sends).
    pub syncid: u8,
    /// `--mcast-group`.
    pub group: Option<std::net::Ipv4Addr>,
    /// `--mcast-port`.
    pub port: Option<u16>,
    /// `--mcast-ttl`.
    pub ttl: Option<u8>,
    /// `--sync-maxlen`, bytes.
    pub maxlen: Option<u16>,
}

/// One connection or persistence template, as `/proc/net/ip_vs_conn`
/// shows it (what `ipvsadm -Lc` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnEntry {
    /// IP protocol number: 6 TCP, 17 UDP, 0 for a firewall-mark
    /// service's template (the kernel's `IP`).
    pub protocol: u8,
    /// The client's address and port (port 0 in a template that is not
    /// per port).
    pub client: std::net::SocketAddrV4,
    /// The virtual address and port (for a firewall-mark template, the
    /// mark as an address, port 0, as the kernel shows it).
    pub virtual_addr: std::net::SocketAddrV4,
    /// The real server's address and port.
    pub destination: std::net::SocketAddrV4,
    /// IPVS's state name: `ESTABLISHED`, `SYN_RECV`, ..., `UDP`, `NONE`.
    pub state: String,
    /// Seconds until it expires.
    pub expires: u32,
    /// A persistence template rather than a connection.
    pub template: bool,
}

impl ConnEntry {
    /// How `/proc/net/ip_vs_conn` would show `c`, a listed entry whose
    /// `expires` is the seconds it has left ([`l4vs_dataplane::rings::Event::Listed`]).
    /// A template's key keeps the service's protocol in its client port
    /// (0 for a firewall-mark service); it is shown as the kernel shows
    /// templates: that protocol, client port 0, state `NONE` (`UDP` for
    /// UDP).
    pub fn of(c: &l4vs_dataplane::conn::Conn) -> ConnEntry {
        use std::net::SocketAddrV4;
        let template = c.flags & l4vs_dataplane::conn::flags::TEMPLATE != 0;
        let (protocol, cport) = if template {
            (u8::try_from(c.cport).unwrap_or(0), 0)
        } else {
            (c.proto, c.cport)
        };
        let state = match protocol {
            17 => "UDP",
            6 if !template => c.state.as_str(),
            _ => "NONE",
        };
        ConnEntry {
            protocol,
            client: SocketAddrV4::new(c.client, cport),
            virtual_addr: SocketAddrV4::new(c.vip, c.vport),
            destination: SocketAddrV4::new(c.rip, c.rport),
            state: state.to_owned(),
            expires: c.expires,
            template,
        }
    }
}

/// A sync daemon as `l4vsadm -L --daemon` lists it (ipvsadm's
/// `list_daemon`), with what it counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemonInfo {
    /// `master` or `backup` (a director in both roles has one of each).
    pub state: String,
    /// The port it runs on (ipvsadm's `mcast=` interface).
    pub interface: String,
    pub syncid: u8,
    /// Bytes, the longest message.
    pub maxlen: u16,
    pub group: std::net::Ipv4Addr,
    pub port: u16,
    pub ttl: u8,
    /// Messages and entries sent (a master), received and applied (a
    /// backup), and what was rejected.
    pub sent_messages: u64,
    pub sent_conns: u64,
    pub received_messages: u64,
    pub applied: u64,
    pub rejected_messages: u64,
    pub rejected_conns: u64,
}

/// The VRRP instance as `l4vsadm -L --daemon` lists it after the sync
/// daemons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInfo {
    /// `MASTER` or `BACKUP`.
    pub state: String,
    /// The port it advertises on.
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Milliseconds between advertisements.
    pub advert_int_ms: u32,
    /// The virtual addresses.
    pub addresses: Vec<std::net::Ipv4Addr>,
    /// A backup's master, as last heard: its address and priority.
    pub master: Option<(std::net::Ipv4Addr, u8)>,
}

/// What the director answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The operations were applied; one line per change, in words.
    Applied {
        /// What changed.
        changes: Vec<String>,
    },
    /// The table (for [`Request::List`]).
    Listing {
        /// The connection entries the workers hold at most, in all (what
        /// ipvsadm prints as the table's `size`).
        size: u32,
        /// The global timeouts ipvsadm lists (`--timeout`): TCP
        /// established, TCP FIN_WAIT, UDP, seconds.
        timeouts: [u32; 3],
        /// Services in slot order, each with its reals.
        services: Vec<ServiceReport>,
        /// The connection sync daemons that run (`-L --daemon`).
        #[serde(default)]
        daemons: Vec<SyncDaemonInfo>,
        /// The VRRP instance, if one runs (`-L --daemon`).
        #[serde(default)]
        vrrp: Option<VrrpInfo>,
    },
    /// The connection entries (for [`Request::Connections`]), worker by
    /// worker, each in table order.
    Connections {
        /// The entries.
        entries: Vec<ConnEntry>,
    },
    /// The running table as YAML (for [`Request::Yaml`]).
    Yaml {
        /// The config text.
        text: String,
    },
    /// The request was refused; nothing changed.
    Error {
        /// For `Apply`: which operation (0-based) was refused, if one was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<usize>,
        /// Why, in ipvsadm's words where it has them.
        message: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix says more than the limit.
    #[error("a request of {0} bytes is over the {limit}-byte limit", limit = MAX_REQUEST)]
    TooLong(u64),
    /// The bytes are not JSON of a request.
    #[error("not a request: {0}")]
    Malformed(String),
}

/// Encodes `msg` as one frame: its length (4 bytes, big-endian), then its
/// JSON.
///
/// # Panics
/// Never for the types here (serde_json cannot fail on them).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = serde_json::to_vec(msg).expect("admin messages always serialize");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a request from `buf`, the bytes received so far: `Ok(None)`
/// while the frame is incomplete.
///
/// # Errors
/// [`FrameError::TooLong`] as soon as the length prefix is over
/// [`MAX_REQUEST`] (nothing more is read); [`FrameError::Malformed`] for a
/// whole frame that is not a request, or bytes after it.
pub fn decode_request(buf: &[u8]) -> Result<Option<Request>, FrameError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_REQUEST {
        return Err(FrameError::TooLong(len as u64));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    if buf.len() > 4 + len {
        return Err(FrameError::Malformed(
            "bytes after the request (one request per connection)".into(),
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Sends `req` to the director listening on `path` and waits up to
/// `timeout` for its answer (the client side, `l4vsadm`).
///
/// # Errors
/// When the request is over [`MAX_REQUEST`] (checked before connecting),
/// the socket cannot be reached, the director closes the connection
/// without answering, the answer does not come in time, or it is not a
/// response; each message names the socket's path.
pub fn call(path: &Path, req: &Request, timeout: Duration) -> io::Result<Response> {
    let frame = encode(req);
    if frame.len() - 4 > MAX_REQUEST {
        // The director would refuse it: said here, before connecting, and
        // not as a broken pipe. (About 176 bytes of request per `-a`.)
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the request is {} bytes, over the {} MiB one request may carry \
                 (about 90000 real servers); nothing was sent. A file split at a \
                 service's -A line restores in parts, each part all or nothing",
                frame.len() - 4,
                MAX_REQUEST >> 20
            ),
        ));
    }
    let mut s = UnixStream::connect(path).map_err(|e| {
        // Connecting to a file that is not a socket says "connection
        // refused", as if a director had gone: say what it is instead.
        let not_socket = std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket());
        let why = match e.kind() {
            _ if not_socket => "not a socket".to_string(),
            // Nothing there, or a socket left by a director that is gone.
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => format!(
                "no director listens there ({}); is l4vs running in this network \
                 namespace, and is that its admin_socket (--socket PATH names another)?",
                if e.kind() == io::ErrorKind::NotFound {
                    "no such socket"
                } else {
                    "connection refused"
                }
            ),
            _ => e.to_string(),
        };
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach l4vs on {}: {why}",
                crate::config::shown_path(path)
            ),
        )
    })?;
    exchange(&mut s, &frame, timeout).map_err(|(stage, e)| {
        let why = match (stage, e.kind()) {
            // Closed before reading the whole request (a broken pipe on
            // the write) or after it (end of stream on the read): the
            // same event, told the same way.
            (
                _,
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe,
            ) => "it closed the connection without answering (see its log)".to_string(),
            // The director takes a request only once all of it has come.
            (Stage::Send, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => format!(
                "it did not take the request within {} s; nothing was applied",
                timeout.as_secs_f64()
            ),
            (Stage::Answer, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                let listing = match req {
                    Request::Apply { commands } => Some(listing_of(commands)),
                    Request::StartDaemon { .. } | Request::StopDaemon { .. } => Some("-L --daemon"),
                    Request::List | Request::Yaml | Request::Connections => None,
                };
                let mut why = format!("no answer within {} s", timeout.as_secs_f64());
                if let Some(listing) = listing {
                    why.push_str(&format!(
                        "; the change may or may not have been made: list with {listing}"
                    ));
                }
                why
            }
            _ => e.to_string(),
        };
        io::Error::new(
            e.kind(),
            format!("l4vs on {}: {why}", crate::config::shown_path(path)),
        )
    })
}

/// The listing that shows what `commands` change: `-L --timeout` for
/// `--set` alone, `-Ln --stats` for `-Z` alone, `-Ln` otherwise.
fn listing_of(commands: &[Command]) -> &'static str {
    if commands
        .iter()
        .all(|c| matches!(c, Command::SetTimeouts { .. }))
    {
        "-L --timeout"
    } else if commands.iter().all(|c| matches!(c, Command::Zero(_))) {
        "-Ln --stats"
    } else {
        "-Ln"
    }
}

/// Where an exchange failed: sending the request, or waiting for (or
/// reading) the answer.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Send,
    Answer,
}

/// One request (its encoded frame) and its response on a connected
/// socket.
fn exchange(
    s: &mut UnixStream,
    frame: &[u8],
    timeout: Duration,
) -> Result<Response, (Stage, io::Error)> {
    let send = |e| (Stage::Send, e);
    s.set_read_timeout(Some(timeout)).map_err(send)?;
    s.set_write_timeout(Some(timeout)).map_err(send)?;
    s.write_all(frame).map_err(send)?;
    let answer = |e| (Stage::Answer, e);
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(answer)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RESPONSE {
        return Err(answer(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a response of {len} bytes is over the limit"),
        )));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(answer)?;
    serde_json::from_slice(&body).map_err(|e| {
        answer(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("its answer is not a response: {e}"),
        ))
    })
}

/// The admin socket's path when the config names none:
/// `/run/l4vs/admin-netns<ID>.sock`, with this network namespace's id, so
/// that directors in several namespaces (the lab) do not meet, and
/// `l4vsadm` run in the same namespace finds its director.
pub fn default_path() -> PathBuf {
    let id = std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| crate::startup::netns_id(&l.to_string_lossy()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    Path::new(crate::startup::LOCK_DIR).join(format!("admin-netns{id}.sock"))
}

/// Names a client whose request is answered later
/// ([`AdminServer::answer`]).
pub type Ticket = u64;

/// One connected client.
struct Client {
    ticket: Ticket,
    /// Its request was handed over and the answer is awaited.
    awaiting: bool,
    stream: UnixStream,
    since: Instant,
    inbox: Vec<u8>,
    /// The response, and how much of it is written.
    outbox: Option<(Vec<u8>, usize)>,
}

/// The listening socket and its clients, polled by the control thread.
pub struct AdminServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    deadline: Duration,
    next_ticket: Ticket,
}

impl AdminServer {
    /// Listens on `path` (mode 0600). A socket file left by a director
    /// that is gone is replaced; one a live director answers on is not.
    ///
    /// # Errors
    /// When the directory cannot be made, another director listens there,
    /// or the socket cannot be bound.
    pub fn bind(path: &Path) -> io::Result<AdminServer> {
        Self::bind_with_deadline(path, REQUEST_DEADLINE)
    }

    /// [`AdminServer::bind`] with another deadline for requests (tests).
    ///
    /// # Errors
    /// As [`AdminServer::bind`].
    pub fn bind_with_deadline(path: &Path, deadline: Duration) -> io::Result<AdminServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another l4vs answers on {}: stop it, or give this one its own admin_socket",
                        crate::config::shown_path(path)
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(AdminServer {
            listener,
            path: path.to_owned(),
            clients: Vec::new(),
            deadline,
            next_ticket: 0,
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts, reads and answers what it can without waiting: each
    /// complete request is handed to `handle` with its client's ticket;
    /// the response it returns is sent, or, when it returns `None`, the
    /// one given later to [`AdminServer::answer`] with that ticket (the
    /// client waits, past the request deadline: whoever took the ticket
    /// must answer). Clients past their deadline, or that sent something
    /// wrong, get an error and are closed.
    pub fn poll(&mut self, mut handle: impl FnMut(Request, Ticket) -> Option<Response>) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.next_ticket += 1;
                    let mut c = Client {
                        ticket: self.next_ticket,
                        awaiting: false,
                        stream,
                        since: Instant::now(),
                        inbox: Vec::new(),
                        outbox: None,
                    };
                    if self.clients.len() >= MAX_CLIENTS {
                        c.outbox = Some((error("the director is busy: try again".into()), 0));
                    }
                    self.clients.push(c);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let deadline = self.deadline;
        self.clients.retain_mut(|c| serve(c, deadline, &mut handle));
    }

    /// Sends `response` to the client of `ticket`, whose request `poll`
    /// handed over unanswered; nothing if that client has gone.
    pub fn answer(&mut self, ticket: Ticket, response: &Response) {
        if let Some(c) = self
            .clients
            .iter_mut()
            .find(|c| c.ticket == ticket && c.awaiting)
        {
            c.awaiting = false;
            // The deadline to read the answer starts now.
            c.since = Instant::now();
            c.outbox = Some((encode(response), 0));
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn error(message: String) -> Vec<u8> {
    encode(&Response::Error {
        command: None,
        message,
    })
}

/// Moves one client along; false when it is done with (closed).
fn serve(
    c: &mut Client,
    deadline: Duration,
    handle: &mut impl FnMut(Request, Ticket) -> Option<Response>,
) -> bool {
    if c.awaiting {
        return true;
    }
    if c.outbox.is_none() {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    c.inbox.extend_from_slice(&buf[..n]);
                    // Stop reading as soon as the frame is known to be bad.
                    if c.inbox.len() > MAX_REQUEST + 4 || decode_request(&c.inbox).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        match decode_request(&c.inbox) {
            Ok(Some(req)) => match handle(req, c.ticket) {
                Some(r) => c.outbox = Some((encode(&r), 0)),
                None => {
                    c.awaiting = true;
                    return true;
                }
            },
            Ok(None) if c.since.elapsed() > deadline => {
                c.outbox = Some((
                    error(format!(
                        "the request did not arrive whole within {} ms",
                        deadline.as_millis()
                    )),
                    0,
                ));
            }
            Ok(None) => return true,
            Err(e) => c.outbox = Some((error(e.to_string()), 0)),
        }
    }
    let Some((out, sent)) = c.outbox.as_mut() else {
        return true;
    };
    while *sent < out.len() {
        match c.stream.write(&out[*sent..]) {
            Ok(0) => return false,
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A client that does not read its answer in time is dropped.
                return c.since.elapsed() <= deadline * 2;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests;
