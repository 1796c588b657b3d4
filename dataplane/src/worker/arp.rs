//! ARP and neighbours: answering ARP for the VIPs and the director's own
//! addresses, learning neighbours from it, and soliciting the configured
//! next hops (real servers, the gateway) before traffic needs them.

use super::Worker;
use crate::neighbor::NeighborTable;
use crate::packet::PacketBuf;
use crate::snapshot::Snapshot;
use crate::verdict::{DropReason, Verdict};
use core::net::Ipv4Addr;
use l4vs_wire::arp;
use l4vs_wire::ethernet::{self, Address as MacAddr, EtherType};

/// Emits an ARP request (a 60-byte frame, with the port to send it on)
/// for each configured next hop — real servers and the gateway — that is
/// not resolved, backing off exponentially per neighbour from `backoff.0`
/// to `backoff.1` milliseconds while it does not answer
/// ([`NeighborTable::should_solicit`]; the director uses
/// [`crate::neighbor::SOLICIT_BACKOFF_MS`]); returns how many. The control
/// thread runs it every housekeeping interval, so that neighbours are
/// known before the first packet to them, which would otherwise be lost to
/// resolution.
pub fn solicit_next_hops(
    snap: &Snapshot,
    neigh: &NeighborTable,
    now_ms: u64,
    backoff: (u64, u64),
    mut emit: impl FnMut(u16, &[u8; 60]),
) -> usize {
    let reals = snap
        .services()
        .flat_map(|(_, s)| s.reals.iter().map(|r| r.addr));
    let mut sent = 0;
    for target in reals.chain(snap.gateway()) {
        let Some((next_hop, port)) = snap.route(target) else {
            continue;
        };
        if neigh.lookup(next_hop).is_some() {
            continue;
        }
        let Some(frame) = arp_request_frame(snap, port, next_hop) else {
            continue;
        };
        if !neigh.should_solicit(next_hop, now_ms, backoff.0, backoff.1) {
            continue;
        }
        sent += 1;
        emit(port, &frame);
    }
    sent
}

/// The ARP request for `next_hop` on `port`: a 60-byte broadcast frame
/// from the port's MAC and the director's address towards `next_hop`;
/// None when the director has no address towards it (or no such port).
pub(super) fn arp_request_frame(
    snap: &Snapshot,
    port: u16,
    next_hop: Ipv4Addr,
) -> Option<[u8; 60]> {
    let sip = snap.source_address(port, next_hop)?;
    let mac = snap.ports().get(usize::from(port))?.mac;
    let mut frame = [0u8; 60];
    write_arp_request(&mut frame, ethernet::HEADER_LEN, mac, sip, next_hop);
    Some(frame)
}

impl Worker {
    pub(super) fn arp<B: PacketBuf>(
        &mut self,
        in_port: u16,
        port_mac: MacAddr,
        pkt: &mut B,
        l2: usize,
    ) -> Verdict {
        let (op, sha, spa, tpa) = match arp::Packet::new_checked(&pkt.data()[l2..]) {
            Ok(a) => (
                a.operation(),
                a.sender_hw_addr(),
                a.sender_proto_addr(),
                a.target_proto_addr(),
            ),
            Err(_) => return Verdict::Drop(DropReason::ArpMalformed),
        };
        let ours = self.snap.answers_arp(in_port, tpa);
        match op {
            arp::Operation::Request if ours => {
                // RFC 826: the requester is now known; answer in place.
                self.neigh.learn(spa, sha, in_port);
                let d = pkt.data_mut();
                let mut eth = ethernet::Frame::new_unchecked(&mut *d);
                eth.set_dst_addr(sha);
                eth.set_src_addr(port_mac);
                let mut a = arp::Packet::new_unchecked(&mut d[l2..]);
                a.set_header(arp::Operation::Reply);
                a.set_sender(port_mac, tpa);
                a.set_target(sha, spa);
                self.counters.arp_replies.inc();
                Verdict::Forward { port: in_port }
            }
            arp::Operation::Reply if ours => {
                self.neigh.learn(spa, sha, in_port);
                // The kernel's interface on this port (the exception path)
                // has the director's addresses too: it learns the reply as
                // well, to the requests it sent itself.
                Verdict::ToControl
            }
            arp::Operation::Request | arp::Operation::Reply => {
                // Gratuitous ARP refreshes a neighbour we already know.
                if spa == tpa && self.neigh.lookup(spa).is_some() {
                    self.neigh.learn(spa, sha, in_port);
                    return Verdict::Consumed;
                }
                Verdict::Drop(DropReason::ArpNotForUs)
            }
            arp::Operation::Unknown(_) => Verdict::Drop(DropReason::ArpUnknownOp),
        }
    }
}

/// Writes a broadcast ARP request for `target` from (`mac`, `sip`) into
/// `frame`, whose L2 header is `l2` bytes long (an 802.1Q tag is kept: only
/// the EtherType before the payload changes).
pub(super) fn write_arp_request(
    frame: &mut [u8],
    l2: usize,
    mac: MacAddr,
    sip: Ipv4Addr,
    target: Ipv4Addr,
) {
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(MacAddr::BROADCAST);
    eth.set_src_addr(mac);
    frame[l2 - 2..l2].copy_from_slice(&u16::from(EtherType::Arp).to_be_bytes());
    let mut a = arp::Packet::new_unchecked(&mut frame[l2..]);
    a.set_header(arp::Operation::Request);
    a.set_sender(mac, sip);
    a.set_target(MacAddr::UNSPECIFIED, target);
}
