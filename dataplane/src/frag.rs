//! IPv4 fragmentation of a frame too large for its egress port (RFC 791
//! section 3.2, as the kernel's `ip_do_fragment` slow path does it).
//!
//! A [`Plan`] is made from the frame and the port's MTU. Every fragment
//! keeps the frame's L2 header (802.1Q tag included) and an IP header of
//! the original's length: in fragments after the first, options without
//! the "copied" flag become NOPs, as `ip_options_fragment` leaves them.
//! Each fragment carries `(MTU - header length) & !7` payload bytes but the
//! last; offsets continue the original's own (a fragment may be fragmented
//! again), and MF is set on all but the last, which keeps the original's.
//! The caller writes fragments 1.. into new buffers first
//! ([`Plan::write`]), then cuts the original down to fragment 0
//! ([`Plan::write_first`]), so nothing is copied twice.

use crate::packet::PacketBuf;
use l4vs_wire::ethernet::{self, EtherType};
use l4vs_wire::ipv4;

/// How a frame is cut into fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// L2 header length (14, or 18 with an 802.1Q tag).
    l2: usize,
    /// IP header length.
    hl: usize,
    /// IP payload length of the original.
    payload: usize,
    /// Payload bytes per fragment (a multiple of 8).
    chunk: usize,
    /// Fragment offset of the original, in 8-byte units.
    offset: u16,
    /// The original's MF flag.
    more: bool,
}

/// Why a frame cannot be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// Not a well-formed IPv4 frame.
    Malformed,
    /// DF is set: the sender must be told fragmentation is needed instead.
    DontFragment,
    /// The MTU leaves no room for 8 payload bytes after the header.
    MtuTooSmall,
}

impl Plan {
    /// The plan for `frame` on a port of IP MTU `mtu`; `Ok(None)` when
    /// the IP packet fits as it is.
    ///
    /// # Errors
    /// [`FragError`]: a frame that is not IPv4, has DF set, or an MTU
    /// below header + 8 bytes.
    pub fn new(frame: &[u8], mtu: u16) -> Result<Option<Plan>, FragError> {
        let eth = ethernet::Frame::new_checked(frame).map_err(|_| FragError::Malformed)?;
        if eth.ethertype() != EtherType::Ipv4 {
            return Err(FragError::Malformed);
        }
        let l2 = eth.header_len();
        let ip = ipv4::Packet::new_checked(&frame[l2..]).map_err(|_| FragError::Malformed)?;
        let (tl, hl) = (usize::from(ip.total_len()), ip.header_len());
        if tl <= usize::from(mtu) {
            return Ok(None);
        }
        if ip.dont_frag() {
            return Err(FragError::DontFragment);
        }
        // Offsets past 64 KiB do not fit the 13-bit field.
        if usize::from(ip.frag_offset()) + (tl - hl) > usize::from(u16::MAX) {
            return Err(FragError::Malformed);
        }
        let chunk = usize::from(mtu).saturating_sub(hl) & !7;
        if chunk == 0 {
            return Err(FragError::MtuTooSmall);
        }
        Ok(Some(Plan {
            l2,
            hl,
            payload: tl - hl,
            chunk,
            offset: ip.frag_offset() / 8,
            more: ip.more_frags(),
        }))
    }

    /// Number of fragments.
    pub fn count(&self) -> usize {
        self.payload.div_ceil(self.chunk)
    }

    /// Payload bytes of fragment `k`.
    fn len_of(&self, k: usize) -> usize {
        (self.payload - k * self.chunk).min(self.chunk)
    }

    /// Frame length of fragment `k` (L2 header included).
    pub fn frame_len(&self, k: usize) -> usize {
        self.l2 + self.hl + self.len_of(k)
    }

    /// Fills the IP header of fragment `k` in place: length, offset, MF,
    /// checksum; after the first, options that are not copied become NOPs.
    fn fix_header(&self, k: usize, ip: &mut [u8]) {
        if k > 0 {
            nop_uncopied_options(&mut ip[ipv4::HEADER_LEN..self.hl]);
        }
        let last = k + 1 == self.count();
        let off = self.offset + (k * self.chunk / 8) as u16;
        let more = !last || self.more;
        // Flags and offset: DF clear (checked in `new`), MF as computed.
        let flags_off = (u16::from(more) << 13) | off;
        ip[6..8].copy_from_slice(&flags_off.to_be_bytes());
        let mut p = ipv4::Packet::new_unchecked(&mut ip[..self.hl]);
        p.set_total_len((self.hl + self.len_of(k)) as u16);
        p.fill_checksum();
    }

    /// Writes fragment `k` (k >= 1) of `frame` into `out`, which holds
    /// exactly [`Plan::frame_len`] bytes.
    ///
    /// # Panics
    /// When `k` is 0 or not below [`Plan::count`], or `out` has another
    /// length: caller errors.
    pub fn write(&self, frame: &[u8], k: usize, out: &mut [u8]) {
        assert!(k >= 1 && k < self.count() && out.len() == self.frame_len(k));
        let head = self.l2 + self.hl;
        out[..head].copy_from_slice(&frame[..head]);
        let from = head + k * self.chunk;
        out[head..].copy_from_slice(&frame[from..from + self.len_of(k)]);
        self.fix_header(k, &mut out[self.l2..]);
    }

    /// Cuts the original frame down to fragment 0 (after the others were
    /// written from it).
    pub fn write_first<B: PacketBuf>(&self, pkt: &mut B) {
        pkt.truncate(self.frame_len(0));
        let l2 = self.l2;
        self.fix_header(0, &mut pkt.data_mut()[l2..]);
    }
}

/// RFC 791: options whose "copied" flag (the type's top bit) is clear go
/// in the first fragment only; later ones get NOPs in their place, so the
/// header keeps its length. A malformed option list is left as it is (the
/// header was accepted on the way in).
fn nop_uncopied_options(opts: &mut [u8]) {
    const EOL: u8 = 0;
    const NOP: u8 = 1;
    let mut i = 0;
    while i < opts.len() {
        let t = opts[i];
        if t == EOL {
            break;
        }
        if t == NOP {
            i += 1;
            continue;
        }
        let Some(&len) = opts.get(i + 1) else { break };
        let len = usize::from(len);
        if len < 2 || i + len > opts.len() {
            break;
        }
        if t & 0x80 == 0 {
            opts[i..i + len].fill(NOP);
        }
        i += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::VecPacket;
    use crate::testpkt::{self, Hdr, DIRECTOR_MAC};
    use core::net::Ipv4Addr;
    use l4vs_wire::ethernet::Address as Mac;

    fn hdr() -> Hdr {
        Hdr {
            src_mac: Mac([2, 0, 0, 0, 1, 10]),
            dst_mac: DIRECTOR_MAC,
            src: Ipv4Addr::new(198, 18, 1, 10),
            dst: Ipv4Addr::new(198, 18, 2, 11),
            ttl: 64,
        }
    }

    fn no_df(mut f: Vec<u8>) -> Vec<u8> {
        let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
        ip.set_unfragmented(false);
        ip.fill_checksum();
        f
    }

    /// A 2900-byte UDP datagram (2928 bytes of IP) on a 1500 MTU: 1480 +
    /// 1428 payload bytes at offsets 0 and 185 (x8), as Linux sends it;
    /// the payloads put back together are the original's.
    #[test]
    fn a_datagram_splits_as_the_kernel_splits_it() {
        let payload: Vec<u8> = (0..2900u32).map(|i| (i * 7) as u8).collect();
        let frame = no_df(testpkt::udp(&hdr(), 5000, 53, &payload, true));
        let plan = Plan::new(&frame, 1500).unwrap().unwrap();
        assert_eq!(plan.count(), 2);
        let mut second = vec![0u8; plan.frame_len(1)];
        plan.write(&frame, 1, &mut second);
        let mut first = VecPacket::new(&frame);
        plan.write_first(&mut first);
        let a = ipv4::Packet::new_checked(&first.data()[14..]).unwrap();
        let b = ipv4::Packet::new_checked(&second[14..]).unwrap();
        assert_eq!(
            (a.total_len(), a.frag_offset(), a.more_frags()),
            (1500, 0, true)
        );
        assert_eq!(
            (b.total_len(), b.frag_offset(), b.more_frags()),
            (1448, 1480, false)
        );
        assert!(a.verify_checksum() && b.verify_checksum());
        assert_eq!((a.ident(), a.ident()), (b.ident(), 0x1234));
        assert_eq!(&first.data()[..14], &second[..14], "same L2 header");
        let mut whole = a.payload().to_vec();
        whole.extend_from_slice(b.payload());
        assert_eq!(whole, &frame[34..], "UDP header and data, in order");
    }

    #[test]
    fn fits_df_and_tiny_mtus() {
        let frame = testpkt::udp(&hdr(), 1, 2, &[0; 100], true);
        assert_eq!(Plan::new(&frame, 1500), Ok(None));
        let big = testpkt::udp(&hdr(), 1, 2, &[0; 2000], true);
        assert_eq!(Plan::new(&big, 1500), Err(FragError::DontFragment));
        let big = no_df(big);
        assert_eq!(Plan::new(&big, 27), Err(FragError::MtuTooSmall));
        // 68 (RFC 791's minimum): 48 bytes a fragment, 2008 / 48 -> 42.
        let plan = Plan::new(&big, 68).unwrap().unwrap();
        assert_eq!(plan.count(), 42);
        assert_eq!(Plan::new(&big[..20], 1500), Err(FragError::Malformed));
        // A fragment whose end lies past 64 KiB cannot be cut again: its
        // pieces' offsets would spill into the flags.
        let mut far = big.clone();
        far[14 + 6..14 + 8].copy_from_slice(&8190u16.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut far[14..]).fill_checksum();
        assert_eq!(Plan::new(&far, 1500), Err(FragError::Malformed));
    }

    /// An 802.1Q-tagged frame keeps its tag in every fragment, and its
    /// pieces are cut by the IP MTU, not the frame length.
    #[test]
    fn a_tagged_frame_keeps_its_tag() {
        let plain = no_df(testpkt::udp(&hdr(), 1, 2, &[3; 1600], true));
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        tagged.extend_from_slice(&plain[12..]);
        let plan = Plan::new(&tagged, 1500).unwrap().unwrap();
        assert_eq!(plan.count(), 2);
        let mut second = vec![0u8; plan.frame_len(1)];
        plan.write(&tagged, 1, &mut second);
        assert_eq!(&second[..18], &tagged[..18], "tag kept");
        let ip = ipv4::Packet::new_checked(&second[18..]).unwrap();
        assert_eq!((ip.frag_offset(), ip.total_len()), (1480, 20 + 128));
        assert!(ip.verify_checksum());
        // Tagged, exactly the MTU: it fits.
        let fits = no_df(testpkt::udp(&hdr(), 1, 2, &[3; 1472], true));
        let mut t = fits[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        t.extend_from_slice(&fits[12..]);
        assert_eq!(Plan::new(&t, 1500), Ok(None));
    }

    /// A fragment fragmented again keeps its place in the datagram: offsets
    /// continue from its own, and only the original last piece ends MF.
    #[test]
    fn a_fragment_is_fragmented_again_in_place() {
        let mut frame = testpkt::udp(&hdr(), 1, 2, &[9; 1192], true);
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut frame[14..]);
            // Offset 800 bytes, MF set: a middle piece of some datagram.
            ip.set_unfragmented(false);
        }
        frame[14 + 6..14 + 8].copy_from_slice(&((1u16 << 13) | 100).to_be_bytes());
        ipv4::Packet::new_unchecked(&mut frame[14..]).fill_checksum();
        let plan = Plan::new(&frame, 576).unwrap().unwrap();
        assert_eq!(plan.count(), 3);
        let offs: Vec<(u16, bool)> = (1..3)
            .map(|k| {
                let mut out = vec![0u8; plan.frame_len(k)];
                plan.write(&frame, k, &mut out);
                let ip = ipv4::Packet::new_checked(&out[14..]).unwrap();
                (ip.frag_offset(), ip.more_frags())
            })
            .collect();
        assert_eq!(offs, [(800 + 552, true), (800 + 1104, true)]);
    }

    /// Options: copied ones (type >= 0x80) stay in every fragment, others
    /// become NOPs after the first; the header keeps its length.
    #[test]
    fn only_copied_options_reach_later_fragments() {
        let mut opts = [0x07, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0];
        nop_uncopied_options(&mut opts);
        assert_eq!(opts, [1, 1, 1, 1, 1, 1, 1, 0x94, 4, 0, 0, 0]);
        let mut bad = [0x07, 40, 0, 0];
        nop_uncopied_options(&mut bad);
        assert_eq!(bad, [0x07, 40, 0, 0], "malformed: left alone");
    }
}
