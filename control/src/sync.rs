//! The connection sync daemon: IPVS's (net/netfilter/ipvs/ip_vs_sync.c),
//! on the control thread, over the DPDK port.
//!
//! A **master** turns the workers' connection events into sync messages
//! (protocol version 1, [`l4vs_wire::ipvs_sync`]) and multicasts them from
//! the director's address on the sync port. What it sends, as
//! `ip_vs_sync_conn_needed` decides for the kernel's defaults:
//! - TCP connections when they enter ESTABLISHED, FIN_WAIT, CLOSE,
//!   CLOSE_WAIT or TIME_WAIT (a state change is sent at once); never in
//!   the handshake's states;
//! - UDP connections, and persistence templates, when they are created
//!   (the kernel sends them at their third packet, `sync_threshold`);
//! - never an entry that came from a sync message itself (a director in
//!   both roles would send it back), nor a one-packet (`ops`) one, which
//!   l4vs does not keep;
//! - each with the timeout of its state (the service's), or a template's
//!   persistence timeout.
//!
//! Entries wait in a buffer that is sent when it holds a full message
//! (`max_len`) or when its first entry has waited 2 s ([`FLUSH_TIME`], the
//! kernel's `IPVS_SYNC_FLUSH_TIME`).
//!
//! A **backup** takes the messages that the workers punt (UDP to the
//! group and port, from another host) and applies each entry as
//! `ip_vs_proc_conn` does, through the command ring of the worker that
//! owns the client ([`l4vs_dataplane::steer::Steering`]): the entry's
//! service by VIP, port and protocol (or firewall mark), its real by
//! address and port; a new entry, or one that replaces the entry of the
//! same client tuple; the timeout the entry carries, or its state's. An
//! entry of a service or real this director does not have is counted and
//! left out (IPVS keeps such a connection without a destination; l4vs
//! cannot forward by one). v0 messages from older peers are taken too.
//!
//! A master also sends its whole table again every `resync_period`
//! seconds (an l4vs key; the kernel refreshes a connection every
//! `sync_period` packets instead): a connection that lives longer than its
//! timeout stays alive on the backup, and a backup that starts late (a
//! failed director restarted as the standby) has everything within one
//! period. The
//! workers list their tables ([`l4vs_dataplane::rings::Command::ListConns`])
//! a burst at a time, each entry with the seconds it has left, and at
//! most [`SyncDaemon::frames`]'s `most` messages leave a control tick.
//!
//! **Authentication** (an l4vs extension, `sync.auth_key`): a master
//! signs each message with HMAC-SHA256 and a counter, in an optional
//! option of its last entry that a kernel peer skips
//! ([`l4vs_wire::ipvs_sync`]). The MAC covers the sender's address and
//! the whole message; a backup with the key takes only messages whose MAC
//! is right, of its key id, with a counter above the last it took from
//! that sender (no replay, from that source or another), and counts the
//! others. A master's
//! counter starts at the microseconds since 1970, so a restarted master
//! goes on above what its backups saw.
//!
//! `l4vsadm --start-daemon` and `--stop-daemon` start and stop a role
//! at run time ([`SyncDaemon::set_role`]; the director's admin handler).
//! `sync_ports` (IPVS's) spreads a master's connections over that many
//! consecutive UDP ports, each connection on one of them by a hash of its
//! client, and a backup takes all of them; `persist_mode` is IPVS's
//! `sync_persist_mode`. Not yet: `backup_only` without VRRP (with VRRP, a
//! backup forwards nothing), the per-packet `sync_threshold`.

use crate::config::Sync;
use l4vs_dataplane::conn::{flags, Conn};
use l4vs_dataplane::model::{ConnState, ForwardMethod, Tuple};
use l4vs_dataplane::snapshot::Snapshot;
use l4vs_dataplane::steer::Steering;
use l4vs_wire::ipvs_sync::{self as wire, Message, SyncConn};
use l4vs_wire::{ethernet, ipv4, udp, Ipv4Addr};
use std::time::{Duration, Instant};

/// The longest an entry waits before its message is sent
/// (ip_vs_sync.c `IPVS_SYNC_FLUSH_TIME`, 2 s).
pub const FLUSH_TIME: Duration = Duration::from_secs(2);

/// The bytes of one IPv4 entry without options (`struct ip_vs_sync_v4`),
/// a multiple of 4, so entries need no padding between them.
const ENTRY_LEN: usize = 36;

/// The most entries a master keeps waiting to be sent (some 25 MB): a
/// resync lists faster than messages leave.
const MAX_PENDING: usize = 262_144;

/// The most entries a message has (`nr_conns` is a byte).
const MAX_ENTRIES: usize = 255;

/// What the daemon counted, for the metrics and `l4vsadm -L --daemon`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// Messages sent.
    pub sent_messages: u64,
    /// Entries sent.
    pub sent_conns: u64,
    /// Messages received (well-formed, our syncid).
    pub received_messages: u64,
    /// Entries applied: handed to their worker.
    pub applied: u64,
    /// Messages dropped: malformed, another syncid, our own.
    pub rejected_messages: u64,
    /// Entries dropped: malformed, unknown service or real, or their
    /// worker's command ring was full.
    pub rejected_conns: u64,
    /// Entries a master could not send: a resync larger than its buffer,
    /// a full inject ring, or a message that could not be built.
    pub unsent_conns: u64,
    /// Of the rejected messages, those that failed authentication: no
    /// MAC, another key id, a wrong MAC, or a counter not above the
    /// sender's last (a replay).
    pub rejected_auth: u64,
}

/// How far behind a sync daemon is ([`SyncDaemon::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncLag {
    /// A master: how long its oldest waiting entry has waited (at most
    /// [`FLUSH_TIME`] unless the inject ring refuses frames).
    pub pending: Duration,
    /// A backup: since it last took a message (`None`: never).
    pub since_last_message: Option<Duration>,
}

/// The entries waiting for one sync port.
#[derive(Debug, Clone, Default)]
struct Lane {
    entries: std::collections::VecDeque<SyncConn<'static>>,
    since: Option<Instant>,
}

/// The lane of a connection: a hash of its client, the same for all its
/// updates (the mask of `sync_ports`, a power of two, takes the bits).
fn lane_of(c: &Conn) -> usize {
    let h = (c.client.to_bits() ^ u32::from(c.cport).rotate_left(16)).wrapping_mul(0x9e37_79b1);
    (h >> 16) as usize
}

/// The sync daemon of one director.
pub struct SyncDaemon {
    cfg: Sync,
    /// The sync port's MAC address (the messages' source).
    mac: [u8; 6],
    /// Entries waiting to be sent, and when the first came.
    /// One lane per sync port (`sync_ports`): the entries waiting for a
    /// message to `udp_port + i`, and when the first came.
    lanes: Vec<Lane>,
    /// When a backup last took a message.
    last_received: Option<Instant>,
    /// The next IPv4 identification.
    ident: u16,
    /// Who owns a client, to insert its entries through that worker.
    steering: Steering,
    /// The counter of the next authenticated message: the microseconds
    /// since 1970 at start, then one more a message, so that a restarted
    /// master goes on above what its backups saw.
    counter: u64,
    /// The last counter each sender's authenticated messages carried.
    seen: std::collections::HashMap<Ipv4Addr, u64>,
    /// What it counted.
    pub counts: SyncCounts,
}

impl SyncDaemon {
    /// The daemon of `cfg`, sending from `mac` (the sync port's), for
    /// `workers` workers.
    pub fn new(cfg: Sync, mac: [u8; 6], workers: u16) -> SyncDaemon {
        let lanes = vec![Lane::default(); usize::from(cfg.sync_ports.max(1)).next_power_of_two()];
        SyncDaemon {
            cfg,
            mac,
            lanes,
            last_received: None,
            ident: 0,
            steering: Steering::new(0, workers),
            counter: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2)),
            seen: std::collections::HashMap::new(),
            counts: SyncCounts::default(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &Sync {
        &self.cfg
    }

    /// The UDP ports it takes messages on: `udp_port` and the
    /// `sync_ports - 1` after it.
    fn ports(&self) -> std::ops::RangeInclusive<u16> {
        let last = self
            .cfg
            .udp_port
            .saturating_add(self.cfg.sync_ports.max(1) - 1);
        self.cfg.udp_port..=last
    }

    /// How far behind it is at `now`: how long the oldest entry a master
    /// holds has waited to be sent (zero when none waits), and how long
    /// ago a backup last took a message (`None`: never, or no backup).
    pub fn lag(&self, now: Instant) -> SyncLag {
        SyncLag {
            pending: self
                .lanes
                .iter()
                .filter(|l| !l.entries.is_empty())
                .filter_map(|l| l.since)
                .min()
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            since_last_message: self
                .last_received
                .filter(|_| self.cfg.role.receives())
                .map(|t| now.saturating_duration_since(t)),
        }
    }

    /// Runs it in `role` from now on (`l4vsadm --start-daemon` and
    /// `--stop-daemon` add and take away a role). A daemon that stops
    /// sending drops what waited to be sent: send it first
    /// ([`SyncDaemon::frames`] with `all`).
    pub fn set_role(&mut self, role: crate::config::SyncRole) {
        self.cfg.role = role;
        if !role.sends() {
            self.lanes.iter_mut().for_each(|l| *l = Lane::default());
        }
    }

    /// What `l4vsadm -L --daemon` lists of it: a master line, a backup
    /// line, or both (IPVS's two daemon slots), on port `interface`.
    pub fn info(&self, interface: &str) -> Vec<crate::admin::SyncDaemonInfo> {
        let c = self.counts;
        let line = |state: &str| crate::admin::SyncDaemonInfo {
            state: state.to_owned(),
            interface: interface.to_owned(),
            syncid: self.cfg.syncid,
            maxlen: self.cfg.max_len,
            group: self.cfg.group,
            port: self.cfg.udp_port,
            ttl: self.cfg.ttl,
            sent_messages: c.sent_messages,
            sent_conns: c.sent_conns,
            received_messages: c.received_messages,
            applied: c.applied,
            rejected_messages: c.rejected_messages,
            rejected_conns: c.rejected_conns,
        };
        let mut out = Vec::new();
        if self.cfg.role.sends() {
            out.push(line("master"));
        }
        if self.cfg.role.receives() {
            out.push(line("backup"));
        }
        out
    }

    /// The entries a message holds under `max_len`.
    fn per_message(&self) -> usize {
        // The authentication option takes its room from the last entry's.
        let auth = if self.cfg.auth.is_some() {
            wire::AUTH_OPTION_LEN
        } else {
            0
        };
        (usize::from(self.cfg.max_len).saturating_sub(wire::HEADER_LEN + auth) / ENTRY_LEN)
            .clamp(1, MAX_ENTRIES)
    }

    /// A master takes note of connection `c` at `now`, as of `snap`:
    /// created, changed state, or listed for a resync (`why`). Returns
    /// whether it was queued.
    pub fn note(&mut self, c: &Conn, why: Why, snap: &Snapshot, now: Instant) -> bool {
        if !self.cfg.role.sends() {
            return false;
        }
        // An entry a peer sent is not sent back: not when it is made from
        // the message, nor by a resync of a director that also takes the
        // peer's (both roles). Once a packet of it passes here the worker
        // clears the flag, and it is this director's to send (as the
        // kernel syncs on packets, whatever IP_VS_CONN_F_SYNC says).
        if c.flags & flags::SYNCED != 0
            && (why == Why::Created || (why == Why::Listed && self.cfg.role.receives()))
        {
            return false;
        }
        // sync_persist_mode: a persistent service's connections are not
        // sent, its templates are (ip_vs_sync_conn_needed's
        // in_persistence).
        if self.cfg.persist_mode
            && c.flags & flags::TEMPLATE == 0
            && snap
                .service(c.service)
                .is_some_and(|s| s.options.persistence.is_some())
        {
            return false;
        }
        let Some(entry) = entry_of(c, why, snap) else {
            return false;
        };
        if self.lanes.iter().map(|l| l.entries.len()).sum::<usize>() >= MAX_PENDING {
            // A resync of a table larger than the messages can carry
            // meanwhile: the next one covers what this one leaves.
            self.counts.unsent_conns += 1;
            return false;
        }
        // Each connection keeps to one port, as the kernel's master keeps
        // it to one thread (select_master_thread_id), so that its updates
        // cannot overtake each other at a backup with a thread a port.
        let mask = self.lanes.len() - 1;
        let lane = &mut self.lanes[lane_of(c) & mask];
        lane.entries.push_back(entry);
        lane.since.get_or_insert(now);
        true
    }

    /// The frames to send now, at most `most`, each with the entries it
    /// carries: full messages, and the rest when its first entry has
    /// waited [`FLUSH_TIME`] (or `all`, at exit). What is left waits for
    /// the next call: the pace of a resync. The caller says what it sent
    /// ([`SyncDaemon::sent`]).
    pub fn frames(&mut self, now: Instant, all: bool, most: usize) -> Vec<(Vec<u8>, usize)> {
        let per = self.per_message();
        let mut out = Vec::new();
        for i in 0..self.lanes.len() {
            let due = all
                || self.lanes[i]
                    .since
                    .is_some_and(|t| now.duration_since(t) >= FLUSH_TIME);
            let before = out.len();
            while out.len() < most {
                let pending = self.lanes[i].entries.len();
                if pending < per && !(due && pending > 0) {
                    break;
                }
                let batch: Vec<SyncConn<'static>> =
                    self.lanes[i].entries.drain(..pending.min(per)).collect();
                match self.frame(&batch, i as u16) {
                    Some(frame) => out.push((frame, batch.len())),
                    None => self.counts.unsent_conns += batch.len() as u64,
                }
            }
            // What is left after messages went waits from now (its first
            // entry may have come later than the first of what was sent).
            let lane = &mut self.lanes[i];
            if lane.entries.is_empty() {
                lane.since = None;
            } else if out.len() > before {
                lane.since = Some(now);
            }
        }
        out
    }

    /// A resync's listing is complete: what waits goes out now rather than
    /// after [`FLUSH_TIME`] (when the next resync may have come).
    pub fn flush_soon(&mut self, now: Instant) {
        for lane in self.lanes.iter_mut().filter(|l| !l.entries.is_empty()) {
            lane.since = Some(now.checked_sub(FLUSH_TIME).unwrap_or(now));
        }
    }

    /// Counts a message of `entries` entries as sent (`true`) or lost on
    /// the way out (the inject ring was full, or no mbuf).
    pub fn sent(&mut self, entries: usize, sent: bool) {
        if sent {
            self.counts.sent_messages += 1;
            self.counts.sent_conns += entries as u64;
        } else {
            self.counts.unsent_conns += entries as u64;
        }
    }

    /// One message of `batch` in an Ethernet frame to the group, on sync
    /// port `lane` (`udp_port + lane`).
    fn frame(&mut self, batch: &[SyncConn<'_>], lane: u16) -> Option<Vec<u8>> {
        let mut msg = vec![0u8; usize::from(self.cfg.max_len)];
        let max = usize::from(self.cfg.max_len);
        let mut w = match &self.cfg.auth {
            Some(_) => wire::Writer::new_authenticated(&mut msg, self.cfg.syncid, max),
            None => wire::Writer::new(&mut msg, self.cfg.syncid, max),
        }
        .ok()?;
        for e in batch {
            w.push(e).ok()?;
        }
        let len = match &self.cfg.auth {
            Some(a) => {
                self.counter += 1;
                let source = self.cfg.source;
                w.finish_with_mac(a.key_id, self.counter, |signed| {
                    mac_of(&a.key, source, signed)
                })
                .ok()?
            }
            None => w.finish(),
        };
        msg.truncate(len);
        self.ident = self.ident.wrapping_add(1);
        Some(udp_frame(
            self.mac,
            self.cfg.source,
            self.cfg.group,
            self.cfg.udp_port.wrapping_add(lane),
            self.cfg.ttl,
            self.ident,
            &msg,
        ))
    }

    /// Whether `frame` is a sync message for this daemon to take: UDP to
    /// its group and port, not from its own address.
    pub fn is_sync_frame(&self, frame: &[u8]) -> bool {
        self.cfg.role.receives()
            && sync_payload(frame, self.cfg.group, self.ports())
                .is_some_and(|(src, _)| src != self.cfg.source)
    }

    /// A backup applies the message in `frame`: each entry it can take
    /// goes to `send(worker, conn)`, which says whether the worker's ring
    /// took it.
    pub fn apply(
        &mut self,
        frame: &[u8],
        snap: &Snapshot,
        mut send: impl FnMut(u16, Conn) -> bool,
    ) {
        let Some((src, payload)) = sync_payload(frame, self.cfg.group, self.ports()) else {
            self.counts.rejected_messages += 1;
            return;
        };
        let Ok(msg) = Message::parse(payload) else {
            self.counts.rejected_messages += 1;
            return;
        };
        if !msg.accepts_syncid(self.cfg.syncid) {
            self.counts.rejected_messages += 1;
            return;
        }
        // With a key, the whole message is checked before any entry is
        // taken.
        if let Some(a) = &self.cfg.auth {
            let last = self.seen.get(&src).copied().unwrap_or(0);
            let good = msg.auth().filter(|m| {
                m.key_id == a.key_id
                    && m.counter > last
                    && mac_matches(&a.key, src, m.signed, m.mac)
            });
            let Some(m) = good else {
                self.counts.rejected_messages += 1;
                self.counts.rejected_auth += 1;
                return;
            };
            // Senders are the masters of one pair: a map that grows past
            // a few was fed by a forger with the key, and starts over.
            if self.seen.len() >= MAX_SENDERS && !self.seen.contains_key(&src) {
                self.seen.clear();
            }
            self.seen.insert(src, m.counter);
        }
        self.counts.received_messages += 1;
        self.last_received = Some(Instant::now());
        for entry in msg.conns() {
            let applied = entry.ok().and_then(|e| conn_of(&e, snap)).is_some_and(|c| {
                // The worker that owns the client, as the workers
                // steer: by the client masked with the widest
                // persistence netmask.
                let key = Ipv4Addr::from_bits(c.client.to_bits() & snap.owner_mask());
                send(self.steering.owner(key), c)
            });
            if applied {
                self.counts.applied += 1;
            } else {
                self.counts.rejected_conns += 1;
            }
        }
    }
}

/// Why a master looks at a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A worker made it.
    Created,
    /// Its state changed.
    Changed,
    /// A worker listed it for a resync; its `expires` is the seconds it
    /// has left.
    Listed,
}

/// The sync entry of `c` if a master sends it (`ip_vs_sync_conn_needed`
/// with the kernel's defaults, see the module docs), for `why`.
fn entry_of(c: &Conn, why: Why, snap: &Snapshot) -> Option<SyncConn<'static>> {
    let created = why != Why::Changed;
    let template = c.flags & flags::TEMPLATE != 0;
    let svc = snap.service(c.service)?.service();
    // An l4vs template is keyed {0, client, protocol, VIP, port} (worker
    // persist.rs); the kernel's {protocol, client, 0, VIP, port}, with
    // protocol 0 (IPPROTO_IP) for a firewall mark (ip_vs_sched_persist).
    let (protocol, cport) = if template {
        let p = if svc.options.fwmark != 0 {
            0
        } else {
            c.cport as u8
        };
        (ipv4::Protocol::from(p), 0)
    } else {
        (ipv4::Protocol::from(c.proto), c.cport)
    };
    let sent = if template {
        created
    } else {
        match protocol {
            ipv4::Protocol::Tcp => matches!(
                c.state,
                ConnState::Established
                    | ConnState::FinWait
                    | ConnState::Close
                    | ConnState::CloseWait
                    | ConnState::TimeWait
            ),
            ipv4::Protocol::Udp => created,
            _ => false,
        }
    };
    if !sent {
        return None;
    }
    let timeout = if why == Why::Listed {
        c.expires.max(1)
    } else if template {
        svc.options.persistence.map_or(0, |p| p.timeout)
    } else {
        svc.options.timeouts.of(c.state)
    };
    let mut e = SyncConn::new(protocol, c.client, cport, c.vip, c.vport, c.rip, c.rport);
    e.flags = method_flag(c.method)
        | if c.flags & flags::INACTIVE != 0 {
            wire::IP_VS_CONN_F_INACTIVE
        } else {
            0
        }
        | if c.flags & flags::NO_OUTPUT != 0 {
            wire::IP_VS_CONN_F_NOOUTPUT
        } else {
            0
        }
        | if template {
            wire::IP_VS_CONN_F_TEMPLATE
        } else {
            0
        };
    e.state = wire_state(c.state);
    e.fwmark = svc.options.fwmark;
    e.timeout = timeout;
    Some(e)
}

/// The connection a backup makes of entry `e`, as of `snap`: its service
/// and real, state, flags and timeout (seconds left, as
/// [`l4vs_dataplane::rings::Command::InsertConn`] takes it). `None` for a
/// protocol, service or real this director does not have.
fn conn_of(e: &SyncConn<'_>, snap: &Snapshot) -> Option<Conn> {
    let proto: u8 = e.protocol.into();
    let template = e.is_template();
    // As the kernel's ip_vs_service_find: by mark, else by VIP, port and
    // protocol, else the VIP's port-0 service.
    let sid = if e.fwmark != 0 {
        snap.mark_service(e.fwmark)?
    } else {
        snap.service_id(e.vaddr, e.vport, proto)
            .or_else(|| snap.service_id(e.vaddr, 0, proto))?
    };
    let svc = snap.service(sid)?.service();
    // The real by address and port (ip_vs_find_dest), else by address
    // where the real takes the packet's port (port-0 and fwmark services,
    // and templates, which name the real by address).
    let real = svc
        .reals
        .iter()
        .position(|r| r.addr == e.daddr && r.port == e.dport)
        .or_else(|| {
            svc.reals
                .iter()
                .position(|r| r.addr == e.daddr && (template || r.port == 0 || svc.port == 0))
        })?;
    let state = match e.protocol {
        _ if template => ConnState::None,
        ipv4::Protocol::Tcp => tcp_state(e.state)?,
        ipv4::Protocol::Udp => ConnState::Udp,
        _ => return None,
    };
    // At most what the service gives that state (or its persistence): a
    // peer cannot pin an entry for longer.
    let longest = if template {
        svc.options.persistence.map_or(0, |p| p.timeout)
    } else {
        svc.options.timeouts.of(state)
    };
    let timeout = match e.timeout {
        0 => longest,
        t => t.min(longest),
    };
    if template && svc.options.persistence.is_none() {
        return None;
    }
    // A template in l4vs's key: {0, client, protocol, VIP, port}, or
    // {0, client, 0, mark, 0} for a firewall mark (worker persist.rs).
    let tuple = if template && svc.options.fwmark != 0 {
        Tuple {
            proto: 0,
            src: e.caddr,
            sport: 0,
            dst: Ipv4Addr::from_bits(svc.options.fwmark),
            dport: 0,
        }
    } else if template {
        Tuple {
            proto: 0,
            src: e.caddr,
            sport: u16::from(proto),
            dst: svc.vip,
            dport: svc.port,
        }
    } else {
        Tuple {
            proto,
            src: e.caddr,
            sport: e.cport,
            dst: e.vaddr,
            dport: e.vport,
        }
    };
    let method = svc.reals[real].method;
    let mut c = Conn::new(
        &tuple,
        e.daddr,
        e.dport,
        sid,
        u16::try_from(real).ok()?,
        method,
        state,
        timeout,
    );
    let wire_flags = e.backup_flags();
    c.flags = (if wire_flags & wire::IP_VS_CONN_F_INACTIVE != 0 {
        flags::INACTIVE
    } else {
        0
    }) | if method == ForwardMethod::Nat {
        0
    } else {
        flags::NO_OUTPUT
    } | if template { flags::TEMPLATE } else { 0 };
    Some(c)
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The most senders whose last counter a backup keeps.
const MAX_SENDERS: usize = 16;

/// HMAC-SHA256 (RFC 2104, FIPS 180-4) with `key` of the sender's IPv4
/// address `src` (4 bytes, network order) and then `data`: the address is
/// in the MAC, so a message replayed from another source fails.
fn mac_of(key: &[u8], src: Ipv4Addr, data: &[u8]) -> [u8; wire::MAC_LEN] {
    use hmac::{KeyInit, Mac};
    // HMAC takes a key of any length.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(&src.octets());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Whether `mac` is [`mac_of`] `key`, `src` and `data`, compared in
/// constant time.
fn mac_matches(key: &[u8], src: Ipv4Addr, data: &[u8], mac: &[u8; wire::MAC_LEN]) -> bool {
    use hmac::{KeyInit, Mac};
    let Ok(mut m) = <HmacSha256 as KeyInit>::new_from_slice(key) else {
        return false;
    };
    m.update(&src.octets());
    m.update(data);
    m.verify_slice(mac).is_ok()
}

/// `IP_VS_CONN_F_MASQ`, `_TUNNEL` or `_DROUTE`.
fn method_flag(m: ForwardMethod) -> u32 {
    match m {
        ForwardMethod::Nat => wire::IP_VS_CONN_F_MASQ,
        ForwardMethod::Tunnel => wire::IP_VS_CONN_F_TUNNEL,
        ForwardMethod::DirectRouting => wire::IP_VS_CONN_F_DROUTE,
    }
}

/// l4vs's TCP states are IPVS's numbers (`IP_VS_TCP_S_*`); a UDP flow is
/// IPVS's one UDP state, 0.
fn wire_state(s: ConnState) -> u16 {
    match s {
        ConnState::Udp | ConnState::Free => 0,
        other => other as u16,
    }
}

/// The TCP state of wire number `n`, `None` beyond `IP_VS_TCP_S_SYNACK`.
fn tcp_state(n: u16) -> Option<ConnState> {
    Some(match n {
        0 => ConnState::None,
        1 => ConnState::Established,
        2 => ConnState::SynSent,
        3 => ConnState::SynRecv,
        4 => ConnState::FinWait,
        5 => ConnState::TimeWait,
        6 => ConnState::Close,
        7 => ConnState::CloseWait,
        8 => ConnState::LastAck,
        9 => ConnState::Listen,
        10 => ConnState::SynAck,
        _ => return None,
    })
}

/// The source address and UDP payload of `frame` when it is an
/// unfragmented IPv4 UDP datagram to `group`:`port` with good checksums.
fn sync_payload(
    frame: &[u8],
    group: Ipv4Addr,
    ports: std::ops::RangeInclusive<u16>,
) -> Option<(Ipv4Addr, &[u8])> {
    let ip = ipv4::in_frame(frame)?;
    if ip.dst_addr() != group
        || ip.protocol() != ipv4::Protocol::Udp
        || ip.is_fragment()
        || !ip.verify_checksum()
    {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let (hl, tl) = (ip.header_len(), usize::from(ip.total_len()));
    let payload = ip.into_inner().get(hl..tl)?;
    let u = udp::Packet::new_checked(payload).ok()?;
    if !ports.contains(&u.dst_port()) || (u.checksum() != 0 && !u.verify_checksum(src, dst)) {
        return None;
    }
    let len = usize::from(u.len()).checked_sub(udp::HEADER_LEN)?;
    Some((src, payload.get(udp::HEADER_LEN..udp::HEADER_LEN + len)?))
}

/// An Ethernet frame carrying `payload` in UDP from `src`:`port` to the
/// multicast `group`:`port` (MAC 01:00:5e and the group's low 23 bits,
/// RFC 1112 6.4), TTL `ttl`, DF clear (as the kernel's sync socket,
/// `IP_PMTUDISC_DONT`), with both checksums.
pub fn udp_frame(
    mac: [u8; 6],
    src: Ipv4Addr,
    group: Ipv4Addr,
    port: u16,
    ttl: u8,
    ident: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = udp::HEADER_LEN + payload.len();
    let ip_len = ipv4::HEADER_LEN + udp_len;
    let mut f = vec![0u8; (ethernet::HEADER_LEN + ip_len).max(ethernet::MIN_FRAME_LEN)];
    let g = group.octets();
    f[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    {
        let mut ip = ipv4::Packet::new_unchecked(
            &mut f[ethernet::HEADER_LEN..ethernet::HEADER_LEN + ip_len],
        );
        ip.set_version_and_header_len(ipv4::HEADER_LEN);
        ip.set_tos(0);
        ip.set_total_len(ip_len as u16);
        ip.set_ident(ident);
        ip.set_unfragmented(false);
        ip.set_ttl(ttl);
        ip.set_protocol(ipv4::Protocol::Udp);
        ip.set_src_addr(src);
        ip.set_dst_addr(group);
        ip.fill_checksum();
    }
    let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    f[at + udp::HEADER_LEN..at + udp_len].copy_from_slice(payload);
    let mut u = udp::Packet::new_unchecked(&mut f[at..at + udp_len]);
    u.set_src_port(port);
    u.set_dst_port(port);
    u.set_len(udp_len as u16);
    u.fill_checksum(src, group);
    f
}

#[cfg(test)]
mod tests;
