//! Traffic counters per service and per real server, as IPVS keeps them
//! (`struct ip_vs_counters`: conns, inpkts, outpkts, inbytes, outbytes;
//! `ipvsadm -L --stats`).
//!
//! Design note: each compiled service holds one row of counters per
//! worker for each of its reals, and one more per worker for what no real
//! can be named for; every row is a cache line of its own. A packet
//! updates one row, its real's: the service's counters are the sum of all
//! its rows, which the control thread computes when it reads (IPVS updates
//! both per packet; one row per packet halves the cost, and the sums are
//! the same). A worker writes only its own rows, with relaxed load+store
//! ([`Counter`]: a plain `mov` on x86, no locked instruction). A
//! worker index beyond the rows (a test that compiled for fewer workers)
//! counts nothing rather than panicking. Bytes are IP bytes (the IP total
//! length, as `skb->len` is on IPVS's hooks), not Ethernet frames.

use crate::verdict::Counter;

/// IPVS's five counters, summed: what the control thread reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets towards the real servers.
    pub inpkts: u64,
    /// Packets back from them through the director (NAT only).
    pub outpkts: u64,
    /// IP bytes towards the real servers.
    pub inbytes: u64,
    /// IP bytes back from them.
    pub outbytes: u64,
}

impl Totals {
    /// Field by field `self + o`, wrapping.
    pub fn plus(self, o: Totals) -> Totals {
        Totals {
            conns: self.conns.wrapping_add(o.conns),
            inpkts: self.inpkts.wrapping_add(o.inpkts),
            outpkts: self.outpkts.wrapping_add(o.outpkts),
            inbytes: self.inbytes.wrapping_add(o.inbytes),
            outbytes: self.outbytes.wrapping_add(o.outbytes),
        }
    }

    /// Field by field `self - o`, wrapping (for counters zeroed at `o`).
    pub fn minus(self, o: Totals) -> Totals {
        Totals {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// One worker's counters of one service or real: a cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Row {
    conns: Counter,
    inpkts: Counter,
    outpkts: Counter,
    inbytes: Counter,
    outbytes: Counter,
}

impl Row {
    /// A connection was scheduled.
    #[inline]
    pub fn conn(&self) {
        self.conns.inc();
    }

    /// A packet of `bytes` IP bytes towards the real server.
    #[inline]
    pub fn packet_in(&self, bytes: u64) {
        self.inpkts.inc();
        self.inbytes.add(bytes);
    }

    /// A packet of `bytes` IP bytes back from the real server.
    #[inline]
    pub fn packet_out(&self, bytes: u64) {
        self.outpkts.inc();
        self.outbytes.add(bytes);
    }

    fn read(&self) -> Totals {
        Totals {
            conns: self.conns.get(),
            inpkts: self.inpkts.get(),
            outpkts: self.outpkts.get(),
            inbytes: self.inbytes.get(),
            outbytes: self.outbytes.get(),
        }
    }
}

/// The rows of one compiled service: per worker, the service's own row
/// (traffic no real can be named for) then one per real, in the service's
/// order.
#[derive(Debug)]
pub struct Traffic {
    rows: Box<[Row]>,
    stride: usize,
    workers: usize,
}

impl Traffic {
    /// Zeroed rows for `workers` workers and `reals` reals (allocates
    /// `workers * (1 + reals)` cache lines).
    pub fn new(workers: usize, reals: usize) -> Traffic {
        let stride = 1 + reals;
        Traffic {
            rows: (0..workers * stride).map(|_| Row::default()).collect(),
            stride,
            workers,
        }
    }

    /// Worker `w`'s row of real `r`, or of the service when it has no
    /// real `r`: the row a packet of a connection bound to `r` counts
    /// on. None when there is no worker `w`. One bounds check.
    #[inline]
    pub fn real_or_service(&self, w: u16, r: u16) -> Option<&Row> {
        let r = usize::from(r) + 1;
        let r = if r < self.stride { r } else { 0 };
        self.rows.get(usize::from(w) * self.stride + r)
    }

    /// Worker `w`'s row of the service.
    #[inline]
    pub fn service(&self, w: u16) -> Option<&Row> {
        self.rows.get(usize::from(w) * self.stride)
    }

    /// Worker `w`'s row of real `r`.
    #[inline]
    pub fn real(&self, w: u16, r: usize) -> Option<&Row> {
        if r + 1 >= self.stride {
            return None;
        }
        self.rows.get(usize::from(w) * self.stride + 1 + r)
    }

    /// The service's counters: every row of every worker (its reals' and
    /// its own).
    pub fn service_totals(&self) -> Totals {
        (0..self.stride)
            .map(|col| self.sum(col))
            .fold(Totals::default(), Totals::plus)
    }

    /// Real `r`'s counters, summed over the workers (zero for a real that
    /// does not exist).
    pub fn real_totals(&self, r: usize) -> Totals {
        if r + 1 >= self.stride {
            return Totals::default();
        }
        self.sum(1 + r)
    }

    fn sum(&self, col: usize) -> Totals {
        (0..self.workers)
            .map(|w| self.rows[w * self.stride + col].read())
            .fold(Totals::default(), Totals::plus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_summed_over_workers_and_kept_apart() {
        let t = Traffic::new(2, 3);
        t.service(0).unwrap().conn();
        t.service(1).unwrap().packet_in(100);
        t.real(1, 2).unwrap().packet_out(40);
        t.real(0, 2).unwrap().packet_in(60);
        // The service: its own row and its reals'.
        assert_eq!(
            t.service_totals(),
            Totals {
                conns: 1,
                inpkts: 2,
                inbytes: 160,
                outpkts: 1,
                outbytes: 40,
            }
        );
        assert_eq!(
            t.real_totals(2),
            Totals {
                inpkts: 1,
                inbytes: 60,
                outpkts: 1,
                outbytes: 40,
                ..Totals::default()
            }
        );
        assert_eq!(t.real_totals(0), Totals::default());
        assert!(t.real(0, 3).is_none() && t.service(2).is_none());
        assert_eq!(t.real_totals(7), Totals::default());
        let a = t.real_totals(2);
        assert_eq!(a.plus(a).minus(a), a);
    }

    /// A packet's row: its real's, the service's for a real the service
    /// does not have, none for a worker beyond the rows.
    #[test]
    fn a_packet_counts_on_its_real_or_the_service() {
        let t = Traffic::new(2, 3);
        t.real_or_service(1, 0).unwrap().packet_in(10);
        t.real_or_service(1, 3).unwrap().packet_in(20);
        t.real_or_service(0, u16::MAX).unwrap().packet_out(30);
        assert!(t.real_or_service(2, 0).is_none());
        assert_eq!(t.rows[0].read().outbytes, 30, "worker 0's service row");
        assert_eq!(
            (t.real_totals(0).inbytes, t.real_totals(2).inbytes),
            (10, 0)
        );
        assert_eq!(
            (t.service_totals().inbytes, t.service_totals().outbytes),
            (30, 30)
        );
        // Worker 1's service row (stride 4: the service, three reals).
        assert_eq!(t.rows[4].read().inbytes, 20);
    }
}
