//! The fast path against the general path, for the differential fuzz
//! target (`dataplane/fuzz`, target `fast_path`) and its property test
//! (`dataplane/tests/fast_path.rs`): two workers alike in everything but
//! [`WorkerConfig::fast_path`], fed the same frames, must give the same
//! verdicts, leave the same bytes and count the same. The fast one is fed
//! as the lcore loop feeds it, with the prefetch stage's probe. Not for the
//! per-packet path: it allocates.

use crate::model::{ForwardMethod, Protocol, Real, SchedulerKind, Service, ServiceOptions};
use crate::packet::{PacketBuf, VecPacket};
use crate::testpkt::{self, Hdr, CLIENT, CLIENT_MAC, DIRECTOR_MAC, VIP};
use crate::{Counters, DropReason, NeighborTable, Snapshot, Worker, WorkerConfig};
use l4vs_wire::{checksum, ethernet, ipv4, tcp};
use std::sync::Arc;

/// Real servers behind each service.
const REALS: usize = 3;

/// Two workers, one with the fast path and one without.
pub struct PathPair {
    fast: (Worker, Arc<Counters>),
    general: (Worker, Arc<Counters>),
    now_ms: u64,
    fast_reads: u64,
}

impl Default for PathPair {
    fn default() -> Self {
        PathPair::new()
    }
}

/// A worker of the lab director (`testpkt::lab_director`) with TCP 80 by
/// NAT, UDP 53 by DR and TCP 8080 by IP-IP, three reals each, every
/// neighbour known.
fn worker(cfg: WorkerConfig) -> (Worker, Arc<Counters>) {
    let svc = |port, protocol, method| Service {
        name: format!("{protocol}-{port}"),
        vip: VIP,
        port,
        protocol,
        scheduler: SchedulerKind::Rr,
        reals: (0..REALS)
            .map(|i| Real {
                addr: testpkt::real_addr(i),
                port,
                weight: 1,
                method,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect(),
        options: ServiceOptions::default(),
    };
    let (ports, locals) = testpkt::lab_director();
    let snap = Snapshot::new(
        ports,
        locals,
        None,
        vec![
            svc(80, Protocol::Tcp, ForwardMethod::Nat),
            svc(53, Protocol::Udp, ForwardMethod::DirectRouting),
            svc(8080, Protocol::Tcp, ForwardMethod::Tunnel),
        ],
    )
    .expect("the difftest snapshot is valid");
    let neigh = Arc::new(NeighborTable::new(64));
    for i in 0..REALS {
        neigh.learn(testpkt::real_addr(i), testpkt::real_mac(i), 0);
    }
    neigh.learn(CLIENT, CLIENT_MAC, 0);
    let counters = Arc::new(Counters::default());
    (
        Worker::new(Arc::new(snap), neigh, counters.clone(), cfg),
        counters,
    )
}

impl PathPair {
    /// The two workers, empty.
    pub fn new() -> PathPair {
        let cfg = WorkerConfig {
            conn_capacity: 4096,
            ..WorkerConfig::default()
        };
        PathPair::with_configs(cfg, cfg)
    }

    /// Two workers configured as `fast` and `general` say, but for
    /// `fast_path` (on in the first, off in the second). Configurations
    /// that differ otherwise show that [`PathPair::feed`] catches a
    /// difference.
    pub fn with_configs(fast: WorkerConfig, general: WorkerConfig) -> PathPair {
        PathPair {
            fast: worker(WorkerConfig {
                fast_path: true,
                ..fast
            }),
            general: worker(WorkerConfig {
                fast_path: false,
                ..general
            }),
            now_ms: 0,
            fast_reads: 0,
        }
    }

    /// Frames fed so far that the fast path read (the rest took the
    /// general path on both workers): a check that never reaches the fast
    /// path compares nothing.
    pub fn fast_path_reads(&self) -> u64 {
        self.fast_reads
    }

    /// Gives `frame` (received on port 0) to both workers, `advance_ms`
    /// after the previous one; an error says how they differ.
    ///
    /// # Errors
    /// The verdicts, the bytes left in the packet, or a counter differ.
    pub fn feed(&mut self, frame: &[u8], advance_ms: u64) -> Result<(), String> {
        self.now_ms += advance_ms;
        if crate::worker::fast_path_reads(frame, DIRECTOR_MAC) {
            self.fast_reads += 1;
        }
        let mut a = VecPacket::new(frame);
        let mut b = VecPacket::new(frame);
        // As the lcore loop does: the fast worker also carries the
        // prefetch stages' probe, with its slot hint, into its lookup.
        let mut probe = self.fast.0.prefetch_buckets(frame, |_| {});
        if let Some(p) = probe.as_mut() {
            self.fast.0.prefetch_entries(p, |_| {});
        }
        let va = self.fast.0.process_probed(0, &mut a, probe, self.now_ms);
        let vb = self.general.0.process(0, &mut b, self.now_ms);
        if va != vb {
            return Err(format!(
                "verdicts differ: fast path {va:?}, general path {vb:?} on {frame:02x?}"
            ));
        }
        if a.data() != b.data() {
            return Err(format!(
                "bytes differ ({va:?}): fast path {:02x?}, general path {:02x?} from {frame:02x?}",
                a.data(),
                b.data()
            ));
        }
        let (ca, cb) = (&self.fast.1, &self.general.1);
        if ca.named() != cb.named() {
            return Err(format!(
                "counters differ: fast path {:?}, general path {:?} after {frame:02x?}",
                ca.named(),
                cb.named()
            ));
        }
        for &r in DropReason::ALL {
            if ca.drops_of(r) != cb.drops_of(r) {
                return Err(format!(
                    "drops of {} differ: fast path {}, general path {} after {frame:02x?}",
                    r.as_str(),
                    ca.drops_of(r),
                    cb.drops_of(r)
                ));
            }
        }
        Ok(())
    }
}

/// Frames the fuzzer's bytes start from: a client's TCP handshake and data
/// to each TCP service, a NAT real's reply, UDP to the DR service, and a
/// frame for the director itself.
pub fn base_frames() -> Vec<Vec<u8>> {
    let client = testpkt::client_to_vip(64);
    let real = testpkt::real_to_client(0, 64);
    let (syn, ack) = (tcp::flags::SYN, tcp::flags::ACK);
    // A minimum-size Ethernet frame: the SYN padded to 60 bytes, padding
    // that is not part of the datagram.
    let mut padded = testpkt::tcp(&client, 40002, 80, syn, b"");
    padded.resize(60, 0);
    vec![
        padded,
        testpkt::tcp(&client, 40000, 80, syn, b""),
        testpkt::tcp(&client, 40000, 80, ack, b"GET / HTTP/1.0\r\n\r\n"),
        testpkt::tcp(&real, 80, 40000, syn | ack, b""),
        testpkt::tcp(&real, 80, 40000, ack | tcp::flags::FIN, b"ok"),
        testpkt::tcp(&client, 40001, 8080, syn, b""),
        testpkt::udp(&client, 5000, 53, b"query", true),
        testpkt::udp(&client, 5001, 53, b"", false),
        testpkt::icmp_echo(
            &Hdr {
                dst: testpkt::DIR_CLIENT_SIDE,
                ..client
            },
            1,
            1,
            b"ping",
        ),
    ]
}

/// The frames `data` describes, each with the milliseconds before it:
/// records of a base frame's index, a time step, a length to cut it to
/// (0 = whole), a byte whose low 3 bits count the byte changes that follow
/// and whose top bit asks for the IPv4 header checksum to be made right
/// after them, and the changes (offset, value). Changes land in the
/// headers (the first 64 bytes), where the two parses differ; with the
/// checksum made right, a change to the IPv4 header reaches the checks
/// behind the checksum's. Whatever `data` is, this gives frames; an
/// incomplete last record gives its frame with the changes read so far.
pub fn frames(data: &[u8]) -> Vec<(Vec<u8>, u64)> {
    let base = base_frames();
    let mut it = data.iter().copied();
    let mut out = Vec::new();
    while let Some(kind) = it.next() {
        let mut f = base[usize::from(kind) % base.len()].clone();
        let step = u64::from(it.next().unwrap_or(0));
        let cut = usize::from(it.next().unwrap_or(0));
        let changes = it.next().unwrap_or(0);
        for _ in 0..changes % 8 {
            let (Some(at), Some(v)) = (it.next(), it.next()) else {
                break;
            };
            let at = usize::from(at) % 64;
            if let Some(b) = f.get_mut(at) {
                *b = v;
            }
        }
        if changes & 0x80 != 0 {
            refill_ipv4_checksum(&mut f);
        }
        if cut != 0 {
            f.truncate(cut);
        }
        out.push((f, step * 100));
    }
    out
}

/// Makes the checksum of the 20 bytes after an untagged Ethernet header
/// right, whatever they say (an IHL of 6 included), as a sender that
/// means what it wrote would. Does nothing to a frame too short for them.
pub fn refill_ipv4_checksum(frame: &mut [u8]) {
    const AT: usize = ethernet::HEADER_LEN;
    if let Some(header) = frame.get_mut(AT..AT + ipv4::HEADER_LEN) {
        header[10..12].fill(0);
        let c = checksum::checksum(header);
        header[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// Feeds everything `data` describes ([`frames`]) to a fresh pair.
///
/// # Errors
/// The first difference, as [`PathPair::feed`] words it.
pub fn run(data: &[u8]) -> Result<(), String> {
    let mut pair = PathPair::new();
    for (f, step) in frames(data) {
        pair.feed(&f, step)?;
    }
    Ok(())
}
