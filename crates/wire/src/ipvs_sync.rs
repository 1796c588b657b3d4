//! IPVS connection synchronisation messages: the payload of the UDP
//! datagrams that the kernel's sync daemon multicasts from a master director
//! to its backups (224.0.0.81:8848 by default), protocol versions 1 and 0.
//!
//! The kernel is the specification: `net/netfilter/ipvs/ip_vs_sync.c`
//! (`ip_vs_sync_conn` and `ip_vs_sync_conn_v0` send,
//! `ip_vs_process_message`, `ip_vs_proc_sync_conn` and
//! `ip_vs_process_message_v0` receive) with the flags of
//! `include/uapi/linux/ip_vs.h` and the states of `include/net/ip_vs.h`.
//! Every acceptance rule below is the kernel's, cited by function, so an
//! l4vs backup takes from a message exactly the entries a kernel backup
//! would take, and a kernel backup takes everything an l4vs master sends.
//!
//! # Version 1 (the kernel's default, `net.ipv4.vs.sync_version = 1`)
//!
//! All multi-byte fields are big-endian (network order).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | reserved = 0  |    syncid     |   size (whole message, bytes) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   nr_conns    |  version = 1  |          spare = 0            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  entry 1, zero padding to a multiple of 4 bytes, entry 2, ...  |
//! ```
//!
//! An entry (`struct ip_vs_sync_v4`; `ip_vs_sync_v6` has 16-byte addresses):
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     type      |   protocol    |  ver  |  size (entry, bytes)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     flags (IP_VS_CONN_F_*)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            state              |            cport              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            vport              |            dport              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            fwmark                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       timeout (seconds)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              caddr, vaddr, daddr (3 x 4 or 3 x 16)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | option type   | option length | option data (length bytes) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! `type` is 0 for IPv4; bit 0 (`STYPE_F_INET6`) means IPv6. `ver` (high
//! 4 bits) must be 0; `size` (low 12 bits) counts the fixed part and the
//! options but not the padding that precedes the next entry. Options run
//! to the end of the entry: [`IPVS_OPT_SEQ_DATA`], [`IPVS_OPT_PE_DATA`],
//! [`IPVS_OPT_PE_NAME`]; a type with [`IPVS_OPT_F_PARAM`] set is optional.
//!
//! # Version 0 (`sync_version = 0`, older peers)
//!
//! ```text
//! header:  | nr_conns (u8) | syncid (u8) | size (u16, whole message) |
//! entry:   | reserved | protocol | cport | vport | dport |
//!          | caddr | vaddr | daddr | flags (u16) | state (u16) |      24 bytes
//!          [ in_seq, out_seq: 2 x 3 x u32 when flags & SEQ_MASK ]     +24 bytes
//! ```
//!
//! The kernel copies the v0 sequence data with `memcpy` from its own
//! structs, so it is in the *sender's host order*; this module reads and
//! writes it little-endian (x86, arm64), see [`SeqOptions`].
//!
//! # Telling the versions apart
//!
//! `ip_vs_process_message` reads every datagram through the v1 header and
//! takes it as v1 only when `version == 1 && reserved == 0 && spare == 0`;
//! everything else is v0 (whose first byte, `nr_conns`, is never 0 for a
//! message with entries). [`Message::parse`] follows that test exactly, so a
//! v1 header with a non-zero spare field is a v0 message with no entries.
//!
//! # What is checked where
//!
//! [`Message::parse`] (and the views' `new_checked`) checks the header as
//! `ip_vs_process_message` does: at least 4 bytes, `size` equal to the
//! buffer length. The buffer must therefore be exactly the UDP payload.
//! The syncid filter is the caller's ([`Message::accepts_syncid`]).
//! Entries are then decoded lazily by [`SyncConns`], which yields one
//! `Result` per announced entry: an [`EntryError`] that the kernel treats
//! as "drop this entry" lets the next entry be decoded, one that makes the
//! kernel drop the rest of the buffer ends the iteration
//! ([`EntryError::is_fatal`]). Entries before a fatal error stand, as the
//! kernel has already applied them.
//!
//! No function here allocates or panics on any input; the encoders write
//! into a caller's buffer and never past its end.
//!
//! # Authentication (an l4vs extension a kernel peer skips)
//!
//! The kernel protocol has none: anyone who can send to the group can
//! insert connections on a backup. l4vs can carry an HMAC-SHA256 in the
//! message, computed and checked by the control plane (the hmac and sha2
//! crates); this module only reserves its room and tells which bytes it
//! covers. It rides as the **last option of the last entry**:
//!
//! ```text
//! | 0x60 | 42 | key_id | alg = 1 | counter (u64) | MAC (32 bytes) |   = 44 bytes
//! ```
//!
//! and the MAC covers every byte of the message before it (header with
//! `size` and `nr_conns`, all entries, key id, algorithm and counter), so
//! the MAC is the message's last 32 bytes and the signed bytes are a
//! prefix: no copy, no zeroed field. Why there:
//!
//! - Trailing bytes after the last entry are not possible: the kernel drops
//!   any datagram whose length differs from `size`
//!   (`ip_vs_process_message`), and raising `size` past the entries is the
//!   same thing.
//! - An entry of its own (e.g. one with an unknown mandatory option, which
//!   the kernel skips) would cost at least 80 bytes and one of the 255
//!   `nr_conns`, and would show as a bogus connection in every dissector.
//! - An option with [`IPVS_OPT_F_PARAM`] set and an unknown type is exactly
//!   what `ip_vs_proc_sync_conn` skips without looking (`default:` branch,
//!   "Param data mandatory ?"), after checking only that its length is
//!   non-zero and within the entry. The entry itself is applied as usual.
//!   Type `0x60` is `IPVS_OPT_F_PARAM | 0x20`: after the kernel masks off
//!   the flag it is 32, far from the kernel's 1, 2 and 3.
//! - Appending it to the last entry keeps the message layout otherwise
//!   untouched; the writer reserves its 44 bytes under the maximum length,
//!   so an authenticated message still fits a kernel backup's receive
//!   buffer (`sync_maxlen`, MTU - 28).
//! - `counter` is the sender's message counter (per key), covered by the
//!   MAC, so a receiver can refuse replayed messages. `key_id` names the
//!   key, so that a receiver could hold two while keys rotate (l4vs's
//!   backup holds one).
//!
//! A message with no entry cannot be authenticated; the kernel never sends
//! one either. [`MessageV1::auth`] finds the option only at that exact place
//! (a copy elsewhere is just an optional option, ignored). A backup that
//! requires authentication verifies the MAC and the counter before it
//! applies any entry, and drops v0 messages and v1 messages without the
//! option: authentication is all or nothing per message, never per entry.
//! Wireshark's dissector still shows every entry (the option trails what
//! it reads).

use crate::ipv4::Protocol;
use crate::{get_addr, get_u16, get_u32, set_addr, set_u16, Error, Ipv4Addr, Result};

/// The default multicast group, 224.0.0.81 (`IP_VS_SYNC_GROUP`).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);

/// The default UDP port (`IP_VS_SYNC_PORT`). With several sync threads
/// (`sync_ports`), thread `id` uses `PORT + id`.
pub const PORT: u16 = 8848;

/// Bytes of IPv4 and UDP headers around a message: the kernel's default
/// maximum message length is the MTU minus this (`start_sync_thread`).
pub const IPV4_UDP_OVERHEAD: usize = 28;

/// The kernel master's default maximum message length in bytes: a fixed
/// 1500-byte MTU minus [`IPV4_UDP_OVERHEAD`] (`start_sync_thread`). A kernel
/// backup's receive buffer is `max(MTU, 1500) - 28`, so messages up to this
/// length are received whole by any kernel backup.
pub const DEFAULT_MAX_LEN: usize = 1500 - IPV4_UDP_OVERHEAD;

/// Length of the v1 message header (`struct ip_vs_sync_mesg`).
pub const HEADER_LEN: usize = 8;
/// Length of the v0 message header (`struct ip_vs_sync_mesg_v0`).
pub const V0_HEADER_LEN: usize = 4;
/// Fixed part of a v1 IPv4 entry (`struct ip_vs_sync_v4`).
pub const ENTRY_V4_LEN: usize = 36;
/// Fixed part of a v1 IPv6 entry (`struct ip_vs_sync_v6`).
pub const ENTRY_V6_LEN: usize = 72;
/// A v0 entry without sequence data (`SIMPLE_CONN_SIZE`).
pub const V0_ENTRY_LEN: usize = 24;
/// A v0 entry with sequence data (`FULL_CONN_SIZE`).
pub const V0_FULL_ENTRY_LEN: usize = 48;
/// Data length of the sequence option (`struct ip_vs_sync_conn_options`).
pub const SEQ_DATA_LEN: usize = 24;
/// Largest entry size the 12-bit size field can hold.
pub const MAX_ENTRY_LEN: usize = 0x0fff;
/// Length of the l4vs authentication option, its 2-byte header included.
pub const AUTH_OPTION_LEN: usize = 2 + AUTH_DATA_LEN;
/// Length of an HMAC-SHA256.
pub const MAC_LEN: usize = 32;

const AUTH_DATA_LEN: usize = 1 + 1 + 8 + MAC_LEN;
const VERSION_1: u8 = 1;
const STYPE_F_INET6: u8 = 1;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;

// Option types (ip_vs_sync.c).
/// Option: sequence adjustment data, two `ip_vs_seq` ([`SeqOptions`]).
pub const IPVS_OPT_SEQ_DATA: u8 = 1;
/// Option: persistence-engine data (e.g. a SIP Call-ID), at most 255 bytes.
pub const IPVS_OPT_PE_DATA: u8 = 2;
/// Option: persistence-engine name (e.g. `sip`), at most 16 bytes.
pub const IPVS_OPT_PE_NAME: u8 = 3;
/// Option type flag: the option is optional and a receiver that does not
/// know its type skips it. Without it an unknown option drops the whole
/// entry (`ip_vs_proc_sync_conn`). Known types match with the flag masked
/// off, so `0x41` is sequence data too.
pub const IPVS_OPT_F_PARAM: u8 = 1 << 6;
/// Option: the l4vs message authentication (see the module docs).
pub const L4VS_OPT_AUTH: u8 = IPVS_OPT_F_PARAM | 0x20;
/// Algorithm byte of [`L4VS_OPT_AUTH`]: HMAC-SHA256.
pub const AUTH_ALG_HMAC_SHA256: u8 = 1;
/// Longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const IP_VS_PENAME_MAXLEN: usize = 16;
/// Longest persistence-engine data (`IP_VS_PEDATA_MAXLEN`).
pub const IP_VS_PEDATA_MAXLEN: usize = 255;

// Connection flags (include/uapi/linux/ip_vs.h).
/// Mask of the forwarding method (one of MASQ .. BYPASS).
pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
/// Forwarding: masquerading (NAT).
pub const IP_VS_CONN_F_MASQ: u32 = 0x0000;
/// Forwarding: local node (the director itself).
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
/// Forwarding: IP-IP tunnel.
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
/// Forwarding: direct routing.
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003;
/// Forwarding: cache bypass.
pub const IP_VS_CONN_F_BYPASS: u32 = 0x0004;
/// The entry was created by sync; a backup sets it on every entry it takes.
pub const IP_VS_CONN_F_SYNC: u32 = 0x0020;
/// Hashed in the table; local state, masked off by the sender.
pub const IP_VS_CONN_F_HASHED: u32 = 0x0040;
/// No output packets (the real server answers directly).
pub const IP_VS_CONN_F_NOOUTPUT: u32 = 0x0080;
/// Not established: counted as inactive on the real server.
pub const IP_VS_CONN_F_INACTIVE: u32 = 0x0100;
/// Output sequence numbers must be adjusted.
pub const IP_VS_CONN_F_OUT_SEQ: u32 = 0x0200;
/// Input sequence numbers must be adjusted.
pub const IP_VS_CONN_F_IN_SEQ: u32 = 0x0400;
/// Either sequence adjustment; the kernel sends sequence data when set.
pub const IP_VS_CONN_F_SEQ_MASK: u32 = 0x0600;
/// Client port not known yet (FTP data connections).
pub const IP_VS_CONN_F_NO_CPORT: u32 = 0x0800;
/// A persistence template, not a connection.
pub const IP_VS_CONN_F_TEMPLATE: u32 = 0x1000;
/// One-packet scheduling; such connections are never synced.
pub const IP_VS_CONN_F_ONE_PACKET: u32 = 0x2000;
/// The flags a backup keeps from a v1 entry when it creates a connection:
/// `ip_vs_proc_sync_conn` does `flags & BACKUP_MASK | SYNC`.
pub const IP_VS_CONN_F_BACKUP_MASK: u32 = IP_VS_CONN_F_FWD_MASK
    | IP_VS_CONN_F_NOOUTPUT
    | IP_VS_CONN_F_INACTIVE
    | IP_VS_CONN_F_SEQ_MASK
    | IP_VS_CONN_F_NO_CPORT
    | IP_VS_CONN_F_TEMPLATE;
/// The flags a backup updates on a connection it already has
/// (`ip_vs_proc_conn`); the others stay as they were.
pub const IP_VS_CONN_F_BACKUP_UPD_MASK: u32 = IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_SEQ_MASK;

// TCP states (include/net/ip_vs.h).
/// TCP state: none.
pub const IP_VS_TCP_S_NONE: u16 = 0;
/// TCP state: established.
pub const IP_VS_TCP_S_ESTABLISHED: u16 = 1;
/// TCP state: SYN sent.
pub const IP_VS_TCP_S_SYN_SENT: u16 = 2;
/// TCP state: SYN received.
pub const IP_VS_TCP_S_SYN_RECV: u16 = 3;
/// TCP state: FIN wait.
pub const IP_VS_TCP_S_FIN_WAIT: u16 = 4;
/// TCP state: TIME_WAIT.
pub const IP_VS_TCP_S_TIME_WAIT: u16 = 5;
/// TCP state: closed.
pub const IP_VS_TCP_S_CLOSE: u16 = 6;
/// TCP state: CLOSE_WAIT.
pub const IP_VS_TCP_S_CLOSE_WAIT: u16 = 7;
/// TCP state: LAST_ACK.
pub const IP_VS_TCP_S_LAST_ACK: u16 = 8;
/// TCP state: LISTEN.
pub const IP_VS_TCP_S_LISTEN: u16 = 9;
/// TCP state: SYN+ACK seen.
pub const IP_VS_TCP_S_SYNACK: u16 = 10;
/// Number of TCP states; a TCP entry with a state at or above it is dropped.
pub const IP_VS_TCP_S_LAST: u16 = 11;
/// The one UDP state.
pub const IP_VS_UDP_S_NORMAL: u16 = 0;
/// Number of UDP states.
pub const IP_VS_UDP_S_LAST: u16 = 1;
/// Number of SCTP states (`enum ip_vs_sctp_states`).
pub const IP_VS_SCTP_S_LAST: u16 = 14;

mod field {
    // v1 message header.
    pub const RESERVED: usize = 0;
    pub const SYNCID: usize = 1;
    pub const SIZE: usize = 2;
    pub const NR_CONNS: usize = 4;
    pub const VERSION: usize = 5;
    pub const SPARE: usize = 6;
    // v0 message header.
    pub const V0_NR_CONNS: usize = 0;
    // v1 entry, from its start.
    pub const TYPE: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const VER_SIZE: usize = 2;
    pub const FLAGS: usize = 4;
    pub const STATE: usize = 8;
    pub const CPORT: usize = 10;
    pub const VPORT: usize = 12;
    pub const DPORT: usize = 14;
    pub const FWMARK: usize = 16;
    pub const TIMEOUT: usize = 20;
    pub const CADDR: usize = 24;
    pub const VADDR: usize = 28;
    pub const DADDR: usize = 32;
    // v0 entry, from its start.
    pub const V0_PROTOCOL: usize = 1;
    pub const V0_CPORT: usize = 2;
    pub const V0_VPORT: usize = 4;
    pub const V0_DPORT: usize = 6;
    pub const V0_CADDR: usize = 8;
    pub const V0_VADDR: usize = 12;
    pub const V0_DADDR: usize = 16;
    pub const V0_FLAGS: usize = 20;
    pub const V0_STATE: usize = 22;
}

#[inline]
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Rounds an entry size up to the 4-byte alignment of the next entry.
#[inline]
const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The original format, 24-byte IPv4-only entries.
    V0,
    /// The current format, with options, fwmark, timeout and IPv6.
    V1,
}

/// True when the kernel would read `buf` as a v1 message: at least a v1
/// header, `reserved == 0`, `version == 1`, `spare == 0`
/// (`ip_vs_process_message`).
///
/// A buffer of 4 to 7 bytes is v0 here; the kernel would read the missing
/// bytes from its stale receive buffer, but either way no entry fits.
pub fn is_v1(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN
        && buf[field::RESERVED] == 0
        && buf[field::VERSION] == VERSION_1
        && get_u16(buf, field::SPARE) == 0
}

/// Checks the length rules shared by both versions.
fn check_size(buf: &[u8]) -> Result<()> {
    if buf.len() < V0_HEADER_LEN {
        return Err(Error::Truncated);
    }
    let size = usize::from(get_u16(buf, field::SIZE));
    if size > buf.len() {
        return Err(Error::Truncated);
    }
    if size < buf.len() {
        return Err(Error::Malformed);
    }
    Ok(())
}

/// Sequence-number adjustment of one direction (`struct ip_vs_seq`), used
/// by NAT when an application helper changed a payload's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq {
    /// Adjust sequence numbers from this one on.
    pub init_seq: u32,
    /// Delta added to sequence numbers after `init_seq`.
    pub delta: u32,
    /// Delta before the last resized packet.
    pub previous_delta: u32,
}

/// The two sequence adjustments of a connection
/// (`struct ip_vs_sync_conn_options`): 24 bytes, `in_seq` then `out_seq`,
/// each `init_seq, delta, previous_delta`.
///
/// Byte order: big-endian in the v1 option ([`IPVS_OPT_SEQ_DATA`], the
/// kernel's `hton_seq`); the sender's host order in v0, which the kernel
/// `memcpy`s; this module reads and writes v0 little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqOptions {
    /// Client-to-server direction.
    pub in_seq: Seq,
    /// Server-to-client direction.
    pub out_seq: Seq,
}

impl SeqOptions {
    fn read(b: &[u8], little_endian: bool) -> SeqOptions {
        let w = |i: usize| {
            let a = [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]];
            if little_endian {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        SeqOptions {
            in_seq: Seq {
                init_seq: w(0),
                delta: w(1),
                previous_delta: w(2),
            },
            out_seq: Seq {
                init_seq: w(3),
                delta: w(4),
                previous_delta: w(5),
            },
        }
    }

    fn write(&self, b: &mut [u8], little_endian: bool) {
        let words = [
            self.in_seq.init_seq,
            self.in_seq.delta,
            self.in_seq.previous_delta,
            self.out_seq.init_seq,
            self.out_seq.delta,
            self.out_seq.previous_delta,
        ];
        for (i, w) in words.iter().enumerate() {
            let bytes = if little_endian {
                w.to_le_bytes()
            } else {
                w.to_be_bytes()
            };
            b[4 * i..4 * i + 4].copy_from_slice(&bytes);
        }
    }
}

/// One synced connection (or persistence template), decoded from either
/// version or to be encoded.
///
/// Ports are in **host order** here (the wire has them big-endian).
/// `flags` are as on the wire; [`SyncConn::backup_flags`] gives what a
/// kernel backup keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn<'a> {
    /// The format the entry came in (or [`Version::V1`] for one to send).
    pub version: Version,
    /// IP protocol (TCP, UDP; SCTP, AH and ESP as `Unknown`).
    pub protocol: Protocol,
    /// `IP_VS_CONN_F_*` flags as sent (v0 carries only the low 16 bits).
    pub flags: u32,
    /// Protocol state: `IP_VS_TCP_S_*` for TCP, 0 for UDP; for a template,
    /// `IP_VS_CTPL_S_*` (0 none, 1 assured).
    pub state: u16,
    /// Client address.
    pub caddr: Ipv4Addr,
    /// Client port, host order.
    pub cport: u16,
    /// Virtual (service) address.
    pub vaddr: Ipv4Addr,
    /// Virtual (service) port, host order.
    pub vport: u16,
    /// Real server (destination) address.
    pub daddr: Ipv4Addr,
    /// Real server port, host order.
    pub dport: u16,
    /// Firewall mark of the service, 0 for none; always 0 from v0.
    pub fwmark: u32,
    /// Remaining timeout in seconds (`cp->timeout / HZ`). 0 means "the
    /// protocol's timeout for `state`" (3 minutes for a template); v0
    /// always carries 0 (`ip_vs_proc_conn`).
    pub timeout: u32,
    /// Sequence adjustments, when the entry carries them.
    pub seq: Option<SeqOptions>,
    /// Persistence-engine data (1..=255 bytes), borrowed from the message.
    pub pe_data: Option<&'a [u8]>,
    /// Persistence-engine name (1..=16 bytes, no NUL), borrowed.
    pub pe_name: Option<&'a [u8]>,
}

impl<'a> SyncConn<'a> {
    /// A v1 connection with no flags (NAT), state 0, no fwmark, timeout 0
    /// (the state's default) and no options. Ports in host order.
    pub fn new(
        protocol: Protocol,
        caddr: Ipv4Addr,
        cport: u16,
        vaddr: Ipv4Addr,
        vport: u16,
        daddr: Ipv4Addr,
        dport: u16,
    ) -> SyncConn<'a> {
        SyncConn {
            version: Version::V1,
            protocol,
            flags: 0,
            state: 0,
            caddr,
            cport,
            vaddr,
            vport,
            daddr,
            dport,
            fwmark: 0,
            timeout: 0,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    }

    /// True for a persistence template (`IP_VS_CONN_F_TEMPLATE`).
    pub fn is_template(&self) -> bool {
        self.flags & IP_VS_CONN_F_TEMPLATE != 0
    }

    /// The flags a kernel backup gives a connection it creates from this
    /// entry: v1 `flags & IP_VS_CONN_F_BACKUP_MASK | IP_VS_CONN_F_SYNC`
    /// (`ip_vs_proc_sync_conn`); v0 `(flags | SYNC) & !HASHED`
    /// (`ip_vs_process_message_v0`). Of an existing connection only the
    /// bits of [`IP_VS_CONN_F_BACKUP_UPD_MASK`] are updated.
    pub fn backup_flags(&self) -> u32 {
        match self.version {
            Version::V1 => (self.flags & IP_VS_CONN_F_BACKUP_MASK) | IP_VS_CONN_F_SYNC,
            Version::V0 => (self.flags | IP_VS_CONN_F_SYNC) & !IP_VS_CONN_F_HASHED,
        }
    }

    /// Bytes this connection takes as a v1 entry, options included,
    /// padding excluded.
    pub fn v1_len(&self) -> usize {
        ENTRY_V4_LEN
            + self.seq.map_or(0, |_| 2 + SEQ_DATA_LEN)
            + self.pe_data.map_or(0, |d| 2 + d.len())
            + self.pe_name.map_or(0, |n| 2 + n.len())
    }

    /// Bytes this connection takes as a v0 entry.
    pub fn v0_len(&self) -> usize {
        if self.flags & IP_VS_CONN_F_SEQ_MASK != 0 {
            V0_FULL_ENTRY_LEN
        } else {
            V0_ENTRY_LEN
        }
    }
}

/// Checks the protocol and state of a non-template entry as
/// `ip_vs_proc_sync_conn` and `ip_vs_process_message_v0` do with
/// `ip_vs_proto_get` and `num_states`, for a kernel with all of IPVS's
/// protocols (TCP, UDP, SCTP, AH, ESP). A template's state is not checked
/// (the kernel only logs a bad one).
fn check_proto_state(protocol: u8, state: u16, flags: u32) -> core::result::Result<(), EntryError> {
    if flags & IP_VS_CONN_F_TEMPLATE != 0 {
        return Ok(());
    }
    let states = match protocol {
        6 => IP_VS_TCP_S_LAST,
        17 => IP_VS_UDP_S_LAST,
        132 => IP_VS_SCTP_S_LAST,
        50 | 51 => 1,
        p => return Err(EntryError::UnsupportedProtocol(p)),
    };
    if state >= states {
        return Err(EntryError::InvalidState(state));
    }
    Ok(())
}

/// Why an entry was not decoded. The kernel's return code in
/// `ip_vs_proc_sync_conn` is given where there is one: negative codes drop
/// the rest of the message, positive ones only the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryError {
    // Fatal: the kernel drops the rest of the message.
    /// Fewer bytes left than a fixed entry part (v1: 36, v0: 24) while
    /// `nr_conns` announces more ("Dropping buffer, too small").
    Truncated,
    /// A v1 entry's size runs past the message ("msg > buffer").
    BeyondMessage,
    /// A v1 entry's version nibble is not 0 ("Unknown version").
    EntryVersion(u8),
    /// A v1 type that is neither 0 nor has the IPv6 bit (-10).
    BadType(u8),
    /// A v1 entry's size is smaller than its fixed part (-20).
    TooShort,
    /// One byte left where an option header needs two (-30).
    OptionTruncated,
    /// An option with length 0 or running past its entry (-40).
    OptionLength,
    /// Sequence data not 24 bytes long, or given twice (-50).
    BadSeqOption,
    /// Persistence-engine data given twice (-60).
    BadPeData,
    /// Persistence-engine name longer than 16 bytes or given twice (-70).
    BadPeName,
    /// A v0 entry with `SEQ_MASK` flags whose 24 bytes of sequence data run
    /// past the message ("Dropping buffer bogus conn options").
    SeqTruncated,
    // Skipped: the kernel drops this entry and goes on.
    /// An option without [`IPVS_OPT_F_PARAM`] of unknown type (20): the
    /// entry is dropped without reading its later options.
    UnknownMandatoryOption(u8),
    /// A protocol IPVS does not serve, for a non-template (30).
    UnsupportedProtocol(u8),
    /// A state at or past the protocol's number of states (40).
    InvalidState(u16),
    /// Persistence-engine data without an engine name (50).
    PeDataWithoutName,
    /// A well-formed IPv6 entry: l4vs directs IPv4 only (a kernel built
    /// without IPv6 IPVS skips it the same way, code 10).
    Ipv6,
}

impl EntryError {
    /// True when the kernel stops at this error and drops the rest of the
    /// message; the iterator then ends.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            EntryError::UnknownMandatoryOption(_)
                | EntryError::UnsupportedProtocol(_)
                | EntryError::InvalidState(_)
                | EntryError::PeDataWithoutName
                | EntryError::Ipv6
        )
    }

    /// A short name for logs and counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryError::Truncated => "entry truncated",
            EntryError::BeyondMessage => "entry size beyond message",
            EntryError::EntryVersion(_) => "unknown entry version",
            EntryError::BadType(_) => "unknown entry type",
            EntryError::TooShort => "entry size below fixed part",
            EntryError::OptionTruncated => "option header truncated",
            EntryError::OptionLength => "bad option length",
            EntryError::BadSeqOption => "bad sequence option",
            EntryError::BadPeData => "bad pe data option",
            EntryError::BadPeName => "bad pe name option",
            EntryError::SeqTruncated => "v0 sequence data truncated",
            EntryError::UnknownMandatoryOption(_) => "unknown mandatory option",
            EntryError::UnsupportedProtocol(_) => "unsupported protocol",
            EntryError::InvalidState(_) => "invalid state",
            EntryError::PeDataWithoutName => "pe data without pe name",
            EntryError::Ipv6 => "ipv6 entry",
        }
    }
}

impl core::fmt::Display for EntryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a v1 entry lies: checks of `ip_vs_process_message` before it
/// hands the entry to `ip_vs_proc_sync_conn`. Returns (start, size).
fn v1_bounds(buf: &[u8], pos: usize) -> core::result::Result<(usize, usize), EntryError> {
    // pos may lie past the end: the padding of a last entry is not sent.
    if pos > buf.len() || buf.len() - pos < ENTRY_V4_LEN {
        return Err(EntryError::Truncated);
    }
    let ver_size = get_u16(buf, pos + field::VER_SIZE);
    let size = usize::from(ver_size & SVER_MASK);
    if size > buf.len() - pos {
        return Err(EntryError::BeyondMessage);
    }
    if ver_size >> SVER_SHIFT != 0 {
        return Err(EntryError::EntryVersion((ver_size >> SVER_SHIFT) as u8));
    }
    Ok((pos, size))
}

/// The fixed length for an entry type (`ip_vs_proc_sync_conn`), and
/// whether it is IPv6.
fn v1_fixed_len(ty: u8) -> core::result::Result<(usize, bool), EntryError> {
    if ty & STYPE_F_INET6 != 0 {
        Ok((ENTRY_V6_LEN, true))
    } else if ty == 0 {
        Ok((ENTRY_V4_LEN, false))
    } else {
        Err(EntryError::BadType(ty))
    }
}

/// Decodes the v1 entry at `buf[start..start + size]` as
/// `ip_vs_proc_sync_conn` reads it.
fn decode_v1(
    buf: &[u8],
    start: usize,
    size: usize,
) -> core::result::Result<SyncConn<'_>, EntryError> {
    let e = &buf[start..start + size];
    let (fixed, ipv6) = v1_fixed_len(e[field::TYPE])?;
    if fixed > size {
        return Err(EntryError::TooShort);
    }
    let mut seq = None;
    let mut pe_data: Option<&[u8]> = None;
    let mut pe_name: Option<&[u8]> = None;
    let mut p = fixed;
    while p < size {
        if size - p < 2 {
            return Err(EntryError::OptionTruncated);
        }
        let (ty, len) = (e[p], usize::from(e[p + 1]));
        p += 2;
        if len == 0 || len > size - p {
            return Err(EntryError::OptionLength);
        }
        let data = &e[p..p + len];
        match ty & !IPVS_OPT_F_PARAM {
            IPVS_OPT_SEQ_DATA => {
                if len != SEQ_DATA_LEN || seq.is_some() {
                    return Err(EntryError::BadSeqOption);
                }
                seq = Some(SeqOptions::read(data, false));
            }
            IPVS_OPT_PE_DATA => {
                // len <= 255 = IP_VS_PEDATA_MAXLEN by its type.
                if pe_data.is_some() {
                    return Err(EntryError::BadPeData);
                }
                pe_data = Some(data);
            }
            IPVS_OPT_PE_NAME => {
                if len > IP_VS_PENAME_MAXLEN || pe_name.is_some() {
                    return Err(EntryError::BadPeName);
                }
                pe_name = Some(data);
            }
            _ if ty & IPVS_OPT_F_PARAM == 0 => {
                return Err(EntryError::UnknownMandatoryOption(ty));
            }
            _ => {}
        }
        p += len;
    }
    let flags = get_u32(e, field::FLAGS);
    let state = get_u16(e, field::STATE);
    check_proto_state(e[field::PROTOCOL], state, flags)?;
    // ip_vs_conn_fill_param_sync: data needs a name. Whether the kernel
    // knows the named engine is the consumer's question.
    if pe_data.is_some() && pe_name.is_none() {
        return Err(EntryError::PeDataWithoutName);
    }
    if ipv6 {
        return Err(EntryError::Ipv6);
    }
    Ok(SyncConn {
        version: Version::V1,
        protocol: Protocol::from(e[field::PROTOCOL]),
        flags,
        state,
        caddr: get_addr(e, field::CADDR),
        cport: get_u16(e, field::CPORT),
        vaddr: get_addr(e, field::VADDR),
        vport: get_u16(e, field::VPORT),
        daddr: get_addr(e, field::DADDR),
        dport: get_u16(e, field::DPORT),
        fwmark: get_u32(e, field::FWMARK),
        timeout: get_u32(e, field::TIMEOUT),
        seq,
        // The kernel ignores a name without data (pe_data_len == 0).
        pe_name: pe_data.and(pe_name),
        pe_data,
    })
}

/// Decodes the v0 entry at `pos` as `ip_vs_process_message_v0` reads it,
/// advancing `pos`.
fn decode_v0<'a>(buf: &'a [u8], pos: &mut usize) -> core::result::Result<SyncConn<'a>, EntryError> {
    let p = *pos;
    if p > buf.len() || buf.len() - p < V0_ENTRY_LEN {
        return Err(EntryError::Truncated);
    }
    let e = &buf[p..];
    let flags = u32::from(get_u16(e, field::V0_FLAGS));
    let seq = if flags & IP_VS_CONN_F_SEQ_MASK != 0 {
        if e.len() < V0_FULL_ENTRY_LEN {
            return Err(EntryError::SeqTruncated);
        }
        *pos = p + V0_FULL_ENTRY_LEN;
        Some(SeqOptions::read(&e[V0_ENTRY_LEN..V0_FULL_ENTRY_LEN], true))
    } else {
        *pos = p + V0_ENTRY_LEN;
        None
    };
    let state = get_u16(e, field::V0_STATE);
    check_proto_state(e[field::V0_PROTOCOL], state, flags)?;
    Ok(SyncConn {
        version: Version::V0,
        protocol: Protocol::from(e[field::V0_PROTOCOL]),
        flags,
        state,
        caddr: get_addr(e, field::V0_CADDR),
        cport: get_u16(e, field::V0_CPORT),
        vaddr: get_addr(e, field::V0_VADDR),
        vport: get_u16(e, field::V0_VPORT),
        daddr: get_addr(e, field::V0_DADDR),
        dport: get_u16(e, field::V0_DPORT),
        fwmark: 0,
        timeout: 0,
        seq,
        pe_data: None,
        pe_name: None,
    })
}

/// The entries of a message, in order: one item per entry that `nr_conns`
/// announces, until a fatal [`EntryError`] (then that error is the last
/// item). Skipped entries yield their non-fatal error and the next entry
/// follows.
#[derive(Debug, Clone)]
pub struct SyncConns<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u8,
    version: Version,
}

impl<'a> Iterator for SyncConns<'a> {
    type Item = core::result::Result<SyncConn<'a>, EntryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = match self.version {
            Version::V1 => v1_bounds(self.buf, self.pos).and_then(|(start, size)| {
                // ip_vs_process_message: the next entry starts at the
                // 4-byte boundary after this one, whatever this one holds.
                self.pos = start + align4(size);
                decode_v1(self.buf, start, size)
            }),
            Version::V0 => decode_v0(self.buf, &mut self.pos),
        };
        if matches!(r, Err(e) if e.is_fatal()) {
            self.left = 0;
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

/// The authentication option of a v1 message (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// Which key signed the message.
    pub key_id: u8,
    /// The sender's message counter, for replay protection.
    pub counter: u64,
    /// The bytes the MAC covers: the whole message before the MAC.
    pub signed: &'a [u8],
    /// The MAC, the message's last 32 bytes. Compare it in constant time
    /// (e.g. `hmac::Mac::verify_slice`).
    pub mac: &'a [u8; MAC_LEN],
}

/// A v1 message view (`struct ip_vs_sync_mesg` and its entries).
#[derive(Debug, Clone)]
pub struct MessageV1<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MessageV1<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> MessageV1<T> {
        MessageV1 { buffer }
    }

    /// Wraps an untrusted UDP payload after [`MessageV1::check_len`].
    ///
    /// # Errors
    /// See [`MessageV1::check_len`].
    pub fn new_checked(buffer: T) -> Result<MessageV1<T>> {
        let m = MessageV1::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// Checks the header as `ip_vs_process_message` does. Entries are
    /// checked one by one by [`MessageV1::conns`].
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than 8 bytes or than `size`;
    /// [`Error::Malformed`] when longer than `size`;
    /// [`Error::Unsupported`] when the header is not v1 by the kernel's
    /// test ([`is_v1`]): the kernel reads such a message as v0.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        check_size(b)?;
        if !is_v1(b) {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The sync id of the sending daemon.
    pub fn syncid(&self) -> u8 {
        self.buffer.as_ref()[field::SYNCID]
    }

    /// The message length in bytes, header included.
    pub fn size(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SIZE)
    }

    /// The number of entries announced.
    pub fn nr_conns(&self) -> u8 {
        self.buffer.as_ref()[field::NR_CONNS]
    }

    /// The entries, decoded as the kernel decodes them.
    pub fn conns(&self) -> SyncConns<'_> {
        SyncConns {
            buf: self.buffer.as_ref(),
            pos: HEADER_LEN,
            left: self.nr_conns(),
            version: Version::V1,
        }
    }

    /// The l4vs authentication option, when the message carries one as the
    /// last option of its last entry and ends with it. `None` for a message
    /// without it, with an unknown algorithm, or whose entries the kernel
    /// could not walk to the end.
    pub fn auth(&self) -> Option<Auth<'_>> {
        find_auth(self.buffer.as_ref())
    }
}

/// Finds the authentication option of a v1 message (see [`MessageV1::auth`]).
fn find_auth(b: &[u8]) -> Option<Auth<'_>> {
    let nr_conns = *b.get(field::NR_CONNS)?;
    let mut pos = HEADER_LEN;
    let mut last = None;
    for _ in 0..nr_conns {
        let (start, size) = v1_bounds(b, pos).ok()?;
        last = Some((start, size));
        pos = start + align4(size);
    }
    let (start, size) = last?;
    if start + size != b.len() {
        return None;
    }
    let (fixed, _) = v1_fixed_len(b[start + field::TYPE]).ok()?;
    if fixed > size {
        return None;
    }
    let mut p = start + fixed;
    let mut opt = None;
    while p < b.len() {
        if b.len() - p < 2 {
            return None;
        }
        let len = usize::from(b[p + 1]);
        if len == 0 || len > b.len() - p - 2 {
            return None;
        }
        opt = Some((b[p], p + 2, len));
        p += 2 + len;
    }
    let (ty, at, len) = opt?;
    if ty != L4VS_OPT_AUTH || len != AUTH_DATA_LEN || b[at + 1] != AUTH_ALG_HMAC_SHA256 {
        return None;
    }
    let mac_at = at + 10;
    Some(Auth {
        key_id: b[at],
        counter: u64::from_be_bytes(b[at + 2..mac_at].try_into().ok()?),
        signed: &b[..mac_at],
        mac: b[mac_at..].try_into().ok()?,
    })
}

/// A v0 message view (`struct ip_vs_sync_mesg_v0` and its entries).
#[derive(Debug, Clone)]
pub struct MessageV0<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MessageV0<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> MessageV0<T> {
        MessageV0 { buffer }
    }

    /// Wraps an untrusted UDP payload after [`MessageV0::check_len`].
    ///
    /// # Errors
    /// See [`MessageV0::check_len`].
    pub fn new_checked(buffer: T) -> Result<MessageV0<T>> {
        let m = MessageV0::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// Checks the header as `ip_vs_process_message` does. It does not
    /// refuse a v1 header: use [`Message::parse`] to tell them apart.
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than 4 bytes or than `size`;
    /// [`Error::Malformed`] when longer than `size`.
    pub fn check_len(&self) -> Result<()> {
        check_size(self.buffer.as_ref())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The sync id of the sending daemon.
    pub fn syncid(&self) -> u8 {
        self.buffer.as_ref()[field::SYNCID]
    }

    /// The message length in bytes, header included.
    pub fn size(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SIZE)
    }

    /// The number of entries announced.
    pub fn nr_conns(&self) -> u8 {
        self.buffer.as_ref()[field::V0_NR_CONNS]
    }

    /// The entries, decoded as the kernel decodes them.
    pub fn conns(&self) -> SyncConns<'_> {
        SyncConns {
            buf: self.buffer.as_ref(),
            pos: V0_HEADER_LEN,
            left: self.nr_conns(),
            version: Version::V0,
        }
    }
}

/// A received message of either version, told apart as the kernel does.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    /// Protocol version 0.
    V0(MessageV0<&'a [u8]>),
    /// Protocol version 1.
    V1(MessageV1<&'a [u8]>),
}

impl<'a> Message<'a> {
    /// Checks a UDP payload's header as `ip_vs_process_message` does and
    /// picks the version with [`is_v1`].
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than 4 bytes or than `size`;
    /// [`Error::Malformed`] when longer than `size`.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>> {
        check_size(buf)?;
        Ok(if is_v1(buf) {
            Message::V1(MessageV1::new_unchecked(buf))
        } else {
            Message::V0(MessageV0::new_unchecked(buf))
        })
    }

    /// The message's version.
    pub fn version(&self) -> Version {
        match self {
            Message::V0(_) => Version::V0,
            Message::V1(_) => Version::V1,
        }
    }

    /// The sync id of the sending daemon.
    pub fn syncid(&self) -> u8 {
        match self {
            Message::V0(m) => m.syncid(),
            Message::V1(m) => m.syncid(),
        }
    }

    /// The number of entries announced.
    pub fn nr_conns(&self) -> u8 {
        match self {
            Message::V0(m) => m.nr_conns(),
            Message::V1(m) => m.nr_conns(),
        }
    }

    /// The backup's syncid filter: a backup configured with syncid 0 takes
    /// every message, another only its own (`ip_vs_process_message`).
    pub fn accepts_syncid(&self, backup_syncid: u8) -> bool {
        backup_syncid == 0 || self.syncid() == backup_syncid
    }

    /// The entries, decoded as the kernel decodes them.
    pub fn conns(&self) -> SyncConns<'a> {
        match self {
            Message::V0(m) => SyncConns {
                buf: m.buffer,
                pos: V0_HEADER_LEN,
                left: m.nr_conns(),
                version: Version::V0,
            },
            Message::V1(m) => SyncConns {
                buf: m.buffer,
                pos: HEADER_LEN,
                left: m.nr_conns(),
                version: Version::V1,
            },
        }
    }

    /// The authentication option ([`MessageV1::auth`]); v0 has none.
    pub fn auth(&self) -> Option<Auth<'a>> {
        match self {
            Message::V0(_) => None,
            Message::V1(m) => find_auth(m.buffer),
        }
    }
}

/// Builds a v1 message in a caller's buffer, entry by entry, as the
/// kernel's `ip_vs_sync_conn` fills a sync buffer: zero padding to 4 bytes
/// before each entry but the first, none after the last; `size` and
/// `nr_conns` are kept current so the buffer holds a valid message after
/// every [`Writer::push`].
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
    reserve: usize,
    last_entry: usize,
}

impl<'a> Writer<'a> {
    /// Starts a message with `syncid`. It will not grow past `max_len`
    /// bytes (the daemon uses MTU - 28, [`DEFAULT_MAX_LEN`]), the buffer's
    /// length or 65535.
    ///
    /// # Errors
    /// [`Error::Truncated`] when fewer than 8 bytes are available.
    pub fn new(buf: &'a mut [u8], syncid: u8, max_len: usize) -> Result<Writer<'a>> {
        Self::with_reserve(buf, syncid, max_len, 0)
    }

    /// Like [`Writer::new`], keeping [`AUTH_OPTION_LEN`] bytes free under
    /// `max_len` for [`Writer::finish_with_mac`].
    ///
    /// # Errors
    /// [`Error::Truncated`] when fewer than 8 bytes are available.
    pub fn new_authenticated(buf: &'a mut [u8], syncid: u8, max_len: usize) -> Result<Writer<'a>> {
        Self::with_reserve(buf, syncid, max_len, AUTH_OPTION_LEN)
    }

    fn with_reserve(
        buf: &'a mut [u8],
        syncid: u8,
        max_len: usize,
        reserve: usize,
    ) -> Result<Writer<'a>> {
        let limit = max_len.min(buf.len()).min(usize::from(u16::MAX));
        if limit < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let h = &mut buf[..HEADER_LEN];
        h[field::RESERVED] = 0;
        h[field::SYNCID] = syncid;
        set_u16(h, field::SIZE, HEADER_LEN as u16);
        h[field::NR_CONNS] = 0;
        h[field::VERSION] = VERSION_1;
        set_u16(h, field::SPARE, 0);
        Ok(Writer {
            buf,
            len: HEADER_LEN,
            limit,
            reserve,
            last_entry: 0,
        })
    }

    /// Message length so far in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.nr_conns() == 0
    }

    /// Entries pushed so far.
    pub fn nr_conns(&self) -> u8 {
        self.buf[field::NR_CONNS]
    }

    /// Appends `conn` as an IPv4 entry (its `version` is ignored): flags
    /// without [`IP_VS_CONN_F_HASHED`] (the kernel masks it off), then the
    /// options present, in the kernel's order: sequence data, PE data,
    /// PE name. The kernel sends sequence data when the flags have
    /// [`IP_VS_CONN_F_SEQ_MASK`] and a PE name only with PE data; here the
    /// caller's `Option`s decide. Connections with
    /// [`IP_VS_CONN_F_ONE_PACKET`] are not sent by the kernel; that choice
    /// is the caller's too.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the entry does not fit under the maximum
    /// length or the message has 255 entries: finish this message and
    /// start another. [`Error::Malformed`] when an option cannot be sent:
    /// empty PE data or name (a zero option length makes a kernel drop the
    /// message), a name longer than 16 bytes, or data longer than 255.
    pub fn push(&mut self, conn: &SyncConn<'_>) -> Result<()> {
        let name_ok = conn
            .pe_name
            .is_none_or(|n| !n.is_empty() && n.len() <= IP_VS_PENAME_MAXLEN);
        let data_ok = conn
            .pe_data
            .is_none_or(|d| !d.is_empty() && d.len() <= IP_VS_PEDATA_MAXLEN);
        if !name_ok || !data_ok {
            return Err(Error::Malformed);
        }
        let size = conn.v1_len();
        // The header is 8 bytes: the first entry needs no padding.
        let pad = align4(self.len) - self.len;
        let end = self.len + pad + size;
        if self.nr_conns() == u8::MAX || end + self.reserve > self.limit {
            return Err(Error::Truncated);
        }
        let start = self.len + pad;
        self.buf[self.len..start].fill(0);
        let e = &mut self.buf[start..end];
        e[field::TYPE] = 0;
        e[field::PROTOCOL] = conn.protocol.into();
        // size <= 36 + 26 + 257 + 18 < 0x1000; version 0.
        set_u16(e, field::VER_SIZE, size as u16);
        put_u32(e, field::FLAGS, conn.flags & !IP_VS_CONN_F_HASHED);
        set_u16(e, field::STATE, conn.state);
        set_u16(e, field::CPORT, conn.cport);
        set_u16(e, field::VPORT, conn.vport);
        set_u16(e, field::DPORT, conn.dport);
        put_u32(e, field::FWMARK, conn.fwmark);
        put_u32(e, field::TIMEOUT, conn.timeout);
        set_addr(e, field::CADDR, conn.caddr);
        set_addr(e, field::VADDR, conn.vaddr);
        set_addr(e, field::DADDR, conn.daddr);
        let mut p = ENTRY_V4_LEN;
        // Writes an option header; returns where the option's data goes.
        let mut option = |ty: u8, len: usize, e: &mut [u8]| {
            e[p] = ty;
            e[p + 1] = len as u8;
            p += 2 + len;
            p - len
        };
        if let Some(seq) = &conn.seq {
            let at = option(IPVS_OPT_SEQ_DATA, SEQ_DATA_LEN, e);
            seq.write(&mut e[at..at + SEQ_DATA_LEN], false);
        }
        if let Some(d) = conn.pe_data {
            let at = option(IPVS_OPT_PE_DATA, d.len(), e);
            e[at..at + d.len()].copy_from_slice(d);
        }
        if let Some(n) = conn.pe_name {
            let at = option(IPVS_OPT_PE_NAME, n.len(), e);
            e[at..at + n.len()].copy_from_slice(n);
        }
        self.last_entry = start;
        self.len = end;
        self.buf[field::NR_CONNS] += 1;
        set_u16(self.buf, field::SIZE, end as u16);
        Ok(())
    }

    /// Ends the message and returns its length: send `&buf[..len]`.
    pub fn finish(self) -> usize {
        self.len
    }

    /// Ends the message with the l4vs authentication option: appends it to
    /// the last entry (its size and the message's grow by 44 bytes), then
    /// calls `mac` with the signed bytes (the whole message but the MAC)
    /// and writes the 32 bytes it returns as the message's last bytes.
    /// Returns the message length.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the message has no entry to carry the
    /// option; [`Error::Truncated`] when the writer was not made by
    /// [`Writer::new_authenticated`] and the option no longer fits.
    pub fn finish_with_mac(
        self,
        key_id: u8,
        counter: u64,
        mac: impl FnOnce(&[u8]) -> [u8; MAC_LEN],
    ) -> Result<usize> {
        if self.is_empty() {
            return Err(Error::Malformed);
        }
        let end = self.len + AUTH_OPTION_LEN;
        let entry_size = self.len - self.last_entry + AUTH_OPTION_LEN;
        if end > self.limit || entry_size > MAX_ENTRY_LEN {
            return Err(Error::Truncated);
        }
        let o = &mut self.buf[self.len..end];
        o[0] = L4VS_OPT_AUTH;
        o[1] = AUTH_DATA_LEN as u8;
        o[2] = key_id;
        o[3] = AUTH_ALG_HMAC_SHA256;
        o[4..12].copy_from_slice(&counter.to_be_bytes());
        set_u16(
            self.buf,
            self.last_entry + field::VER_SIZE,
            entry_size as u16,
        );
        set_u16(self.buf, field::SIZE, end as u16);
        let mac_at = end - MAC_LEN;
        let m = mac(&self.buf[..mac_at]);
        self.buf[mac_at..end].copy_from_slice(&m);
        Ok(end)
    }
}

/// Builds a v0 message, as the kernel's `ip_vs_sync_conn_v0` does, for
/// peers still on `sync_version = 0` and for tests.
#[derive(Debug)]
pub struct WriterV0<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
}

impl<'a> WriterV0<'a> {
    /// Starts a message with `syncid`, at most `max_len` bytes long (and
    /// no longer than the buffer or 65535).
    ///
    /// # Errors
    /// [`Error::Truncated`] when fewer than 4 bytes are available.
    pub fn new(buf: &'a mut [u8], syncid: u8, max_len: usize) -> Result<WriterV0<'a>> {
        let limit = max_len.min(buf.len()).min(usize::from(u16::MAX));
        if limit < V0_HEADER_LEN {
            return Err(Error::Truncated);
        }
        buf[field::V0_NR_CONNS] = 0;
        buf[field::SYNCID] = syncid;
        set_u16(buf, field::SIZE, V0_HEADER_LEN as u16);
        Ok(WriterV0 {
            buf,
            len: V0_HEADER_LEN,
            limit,
        })
    }

    /// Message length so far in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no entry was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.buf[field::V0_NR_CONNS] == 0
    }

    /// Appends `conn`: only the low 16 bits of its flags, without
    /// [`IP_VS_CONN_F_HASHED`]; 24 bytes of sequence data (little-endian,
    /// zeros when `seq` is `None`) when the flags have
    /// [`IP_VS_CONN_F_SEQ_MASK`]. fwmark, timeout and PE options have no
    /// place in v0 and are dropped, as the kernel drops them.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the entry does not fit or the message has
    /// 255 entries.
    pub fn push(&mut self, conn: &SyncConn<'_>) -> Result<()> {
        let size = conn.v0_len();
        let end = self.len + size;
        if self.buf[field::V0_NR_CONNS] == u8::MAX || end > self.limit {
            return Err(Error::Truncated);
        }
        let e = &mut self.buf[self.len..end];
        e[0] = 0;
        e[field::V0_PROTOCOL] = conn.protocol.into();
        set_u16(e, field::V0_CPORT, conn.cport);
        set_u16(e, field::V0_VPORT, conn.vport);
        set_u16(e, field::V0_DPORT, conn.dport);
        set_addr(e, field::V0_CADDR, conn.caddr);
        set_addr(e, field::V0_VADDR, conn.vaddr);
        set_addr(e, field::V0_DADDR, conn.daddr);
        set_u16(
            e,
            field::V0_FLAGS,
            (conn.flags & !IP_VS_CONN_F_HASHED) as u16,
        );
        set_u16(e, field::V0_STATE, conn.state);
        if size == V0_FULL_ENTRY_LEN {
            conn.seq
                .unwrap_or_default()
                .write(&mut e[V0_ENTRY_LEN..], true);
        }
        self.len = end;
        self.buf[field::V0_NR_CONNS] += 1;
        set_u16(self.buf, field::SIZE, end as u16);
        Ok(())
    }

    /// Ends the message and returns its length: send `&buf[..len]`.
    pub fn finish(self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests;
