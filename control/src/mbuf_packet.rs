//! Lets the dataplane edit a DPDK mbuf in place.

use l4vs_dataplane::PacketBuf;
use l4vs_dpdk::Mbuf;

/// An mbuf seen as a dataplane packet buffer (its first segment; the
/// ports l4vs configures receive single-segment packets).
#[derive(Debug)]
pub struct MbufPacket<'a>(pub &'a mut Mbuf);

impl PacketBuf for MbufPacket<'_> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.0.data()
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        self.0.prepend(n)
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        self.0.truncate(len)
    }

    #[inline]
    fn rx_ip_checksum(&self) -> Option<bool> {
        self.0.rx_ip_checksum()
    }
}
