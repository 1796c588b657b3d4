//! A worker's packet I/O over DPDK: [`PacketIo`] for its RX/TX queues on
//! every port, its redirect rings to and from the other workers, and its
//! punt ring to the control thread.
//!
//! Transmits and hand-overs are batched per destination and sent when a
//! batch is full or at the end of each poll round ([`PacketIo::flush`]).
//! What a queue or ring does not take is freed and counted on the worker's
//! counters: `tx_dropped`, `redirect_dropped`, `punt_dropped`.

use crate::mbuf_packet::MbufPacket;
use l4vs_dataplane::lcore::{PacketIo, MAX_BURST};
use l4vs_dataplane::Counters;
use l4vs_dpdk::{Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue};
use std::sync::Arc;

/// Packets waiting for one TX queue or ring.
struct Batch {
    pkts: [Option<Mbuf>; MAX_BURST],
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            pkts: [const { None }; MAX_BURST],
            len: 0,
        }
    }

    /// Queues a packet; true when the batch is full and must be flushed.
    #[inline]
    fn push(&mut self, m: Mbuf) -> bool {
        self.pkts[self.len] = Some(m);
        self.len += 1;
        self.len == MAX_BURST
    }

    /// Hands the queued packets to `send`, which takes ownership of the
    /// first N and returns N; frees the rest and returns how many.
    #[inline]
    fn flush_with(&mut self, send: impl FnOnce(&mut [Option<Mbuf>]) -> usize) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let sent = send(&mut self.pkts[..self.len]);
        let mut lost = 0;
        for slot in &mut self.pkts[sent..self.len] {
            if slot.take().is_some() {
                lost += 1;
            }
        }
        self.len = 0;
        lost
    }
}

/// One output: a TX queue or a ring, with its batch.
struct Out<T> {
    to: T,
    batch: Batch,
}

fn out<T>(to: T) -> Out<T> {
    Out {
        to,
        batch: Batch::new(),
    }
}

/// A worker's DPDK queues and rings.
pub struct DpdkIo {
    rx: Vec<RxQueue>,
    tx: Vec<Out<TxQueue>>,
    /// Rings to the other workers, indexed by worker (None for itself).
    redirect_out: Vec<Option<Out<RingProducer>>>,
    /// Rings from the other workers, taken in turn.
    redirect_in: Vec<RingConsumer>,
    next_in: usize,
    punt: Out<RingProducer>,
    /// The control thread's frames to send, one ring per port (worker 0
    /// only).
    inject: Vec<RingConsumer>,
    /// Where the frames the worker originates (ARP requests) come from.
    pool: Arc<Mempool>,
    counters: Arc<Counters>,
}

impl DpdkIo {
    /// The I/O of a worker: `rx[i]` and `tx[i]` are its queues on port i;
    /// `redirect_out[w]` its ring to worker w (None for itself);
    /// `redirect_in` the rings from the others; `punt` its ring to the
    /// control thread; `inject[i]` the control thread's frames for port i
    /// (empty but on one worker); `pool` gives the frames the worker
    /// originates; what is lost is counted on `counters`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rx: Vec<RxQueue>,
        tx: Vec<TxQueue>,
        redirect_out: Vec<Option<RingProducer>>,
        redirect_in: Vec<RingConsumer>,
        punt: RingProducer,
        inject: Vec<RingConsumer>,
        pool: Arc<Mempool>,
        counters: Arc<Counters>,
    ) -> DpdkIo {
        DpdkIo {
            rx,
            tx: tx.into_iter().map(out).collect(),
            redirect_out: redirect_out.into_iter().map(|r| r.map(out)).collect(),
            redirect_in,
            next_in: 0,
            punt: out(punt),
            inject,
            pool,
            counters,
        }
    }
}

impl PacketIo for DpdkIo {
    type Pkt = Mbuf;
    type View<'a> = MbufPacket<'a>;

    #[inline]
    fn view(pkt: &mut Mbuf) -> MbufPacket<'_> {
        MbufPacket(pkt)
    }

    #[inline]
    fn bytes(pkt: &Mbuf) -> &[u8] {
        pkt.data()
    }

    #[inline]
    fn in_port(pkt: &Mbuf) -> u16 {
        pkt.port()
    }

    fn ports(&self) -> u16 {
        self.rx.len() as u16
    }

    #[inline]
    fn rx_burst(&mut self, port: u16, out: &mut [Option<Mbuf>]) -> usize {
        self.rx[usize::from(port)].burst(out)
    }

    /// From every ring, starting with a different one each round, so that
    /// none waits behind the others when `out` fills up.
    #[inline]
    fn redirected_burst(&mut self, out: &mut [Option<Mbuf>]) -> usize {
        let k = self.redirect_in.len();
        let mut n = 0;
        for j in 0..k {
            if n == out.len() {
                break;
            }
            n += self.redirect_in[(self.next_in + j) % k].dequeue_burst(&mut out[n..]);
        }
        self.next_in = self.next_in.wrapping_add(1);
        n
    }

    #[inline]
    fn tx(&mut self, port: u16, pkt: Mbuf) {
        let o = &mut self.tx[usize::from(port)];
        if o.batch.push(pkt) {
            let lost = o.batch.flush_with(|p| o.to.burst(p));
            self.counters.tx_dropped.add(lost);
        }
    }

    #[inline]
    fn redirect(&mut self, worker: u16, pkt: Mbuf) {
        match self.redirect_out.get_mut(usize::from(worker)) {
            Some(Some(o)) => {
                if o.batch.push(pkt) {
                    let lost = o.batch.flush_with(|p| o.to.enqueue_burst(p));
                    self.counters.redirect_dropped.add(lost);
                }
            }
            _ => self.counters.redirect_dropped.inc(),
        }
    }

    #[inline]
    fn punt(&mut self, pkt: Mbuf) {
        let o = &mut self.punt;
        if o.batch.push(pkt) {
            let lost = o.batch.flush_with(|p| o.to.enqueue_burst(p));
            self.counters.punt_dropped.add(lost);
        }
    }

    fn alloc(&mut self, len: usize) -> Option<Mbuf> {
        let mut m = self.pool.alloc()?;
        m.append(len).then_some(m)
    }

    #[inline(always)]
    fn prefetch(addr: *const u8) {
        l4vs_dpdk::prefetch0(addr);
    }

    fn transmit_injected(&mut self) -> usize {
        let mut moved = 0;
        for (port, ring) in self.inject.iter_mut().enumerate() {
            let o = &mut self.tx[port];
            let room = MAX_BURST - o.batch.len;
            let n = ring.dequeue_burst(&mut o.batch.pkts[o.batch.len..o.batch.len + room]);
            o.batch.len += n;
            moved += n;
        }
        moved
    }

    fn flush(&mut self) {
        for o in &mut self.tx {
            let lost = o.batch.flush_with(|p| o.to.burst(p));
            self.counters.tx_dropped.add(lost);
        }
        for o in self.redirect_out.iter_mut().flatten() {
            let lost = o.batch.flush_with(|p| o.to.enqueue_burst(p));
            self.counters.redirect_dropped.add(lost);
        }
        let o = &mut self.punt;
        let lost = o.batch.flush_with(|p| o.to.enqueue_burst(p));
        self.counters.punt_dropped.add(lost);
    }

    #[inline]
    fn cycles(&self) -> u64 {
        l4vs_dpdk::rdtsc()
    }
}
