//! The packet buffer a worker edits in place.
//!
//! A worker needs four things from a buffer: read it, write it, grow it at
//! the front (IP-IP encapsulation) and cut it at the end (Ethernet padding).
//! `control` implements this for a DPDK mbuf; [`VecPacket`] implements it
//! over a `Vec<u8>` with headroom, for tests and benchmarks.

/// A single contiguous packet buffer.
pub trait PacketBuf {
    /// The packet bytes, from the first byte of the Ethernet header.
    fn data(&self) -> &[u8];
    /// The packet bytes, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front. Returns false, changing
    /// nothing, when there is not enough headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Shrinks the packet to `len` bytes; does nothing if it is not longer.
    fn truncate(&mut self, len: usize);
    /// What the receiving port found of the IPv4 header checksum, when it
    /// verified it (a DPDK port's receive checksum offload): Some(true)
    /// good, Some(false) bad; None (the default) when it did not, and the
    /// worker verifies it itself.
    #[inline]
    fn rx_ip_checksum(&self) -> Option<bool> {
        None
    }
}

/// A borrowed buffer is a buffer (the lcore loop hands the worker views).
impl<B: PacketBuf + ?Sized> PacketBuf for &mut B {
    #[inline]
    fn data(&self) -> &[u8] {
        (**self).data()
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        (**self).data_mut()
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        (**self).prepend(n)
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        (**self).truncate(len)
    }

    #[inline]
    fn rx_ip_checksum(&self) -> Option<bool> {
        (**self).rx_ip_checksum()
    }
}

/// A packet in a `Vec<u8>` with headroom in front, like an mbuf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecPacket {
    buf: Vec<u8>,
    start: usize,
}

impl VecPacket {
    /// Headroom DPDK gives an mbuf by default (RTE_PKTMBUF_HEADROOM).
    pub const DEFAULT_HEADROOM: usize = 128;

    /// Copies `bytes` into a new buffer with the default headroom.
    pub fn new(bytes: &[u8]) -> VecPacket {
        Self::with_headroom(bytes, Self::DEFAULT_HEADROOM)
    }

    /// Copies `bytes` into a new buffer with `headroom` bytes in front.
    pub fn with_headroom(bytes: &[u8], headroom: usize) -> VecPacket {
        let mut buf = vec![0; headroom + bytes.len()];
        buf[headroom..].copy_from_slice(bytes);
        VecPacket {
            buf,
            start: headroom,
        }
    }

    /// Refills this buffer from `bytes`, keeping its allocation when it is
    /// large enough (benchmarks reuse buffers).
    pub fn reset(&mut self, bytes: &[u8], headroom: usize) {
        self.buf.clear();
        self.buf.resize(headroom + bytes.len(), 0);
        self.buf[headroom..].copy_from_slice(bytes);
        self.start = headroom;
    }
}

impl PacketBuf for VecPacket {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_truncate() {
        let mut p = VecPacket::with_headroom(&[1, 2, 3, 4], 2);
        assert!(p.prepend(2));
        assert_eq!(p.data(), &[0, 0, 1, 2, 3, 4]);
        assert!(!p.prepend(1), "no headroom left");
        p.truncate(3);
        assert_eq!(p.data(), &[0, 0, 1]);
        p.truncate(10);
        assert_eq!(p.data().len(), 3);
    }
}
