//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept as unfolded `u32` accumulators while adding and folded to
//! 16 bits at the end. The incremental functions take the checksum *field*
//! as it is stored in the header (the complement of the sum) and return the
//! new field value, following RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`.
//!
//! UDP over IPv4 may carry a checksum of 0, meaning "none" (RFC 768). The
//! `*_udp` helpers leave such a field at 0, and map a computed 0 to 0xffff.

use core::net::Ipv4Addr;

/// Adds `data` as big-endian 16-bit words to a sum. An odd final byte is
/// padded with zero, as RFC 1071 specifies. Returns the sum folded to 16
/// bits (never 0 unless `acc` and `data` are all zero), which later adds
/// and [`fold`] take as any unfolded sum.
///
/// The words are added four bytes at a time into 64 bits and folded at
/// the end: a 32-bit word `hi * 2^16 + lo` is congruent to `hi + lo`
/// modulo 0xffff, as `2^32` is to 1 (RFC 1071 section 2, "parallel
/// summation"). A 20-byte IPv4 header is five additions.
#[inline]
pub fn add(acc: u32, data: &[u8]) -> u32 {
    let mut wide = u64::from(acc);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        wide += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    if rest.len() >= 2 {
        wide += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
    }
    if rest.len() % 2 == 1 {
        wide += u64::from(rest[rest.len() - 1]) << 8;
    }
    // 64 -> 32 -> 16 bits with end-around carry; each step keeps the sum
    // modulo 0xffff and keeps it non-zero.
    wide = (wide & 0xffff_ffff) + (wide >> 32);
    wide = (wide & 0xffff_ffff) + (wide >> 32);
    let mut acc = wide as u32;
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Folds an accumulator to 16 bits with end-around carry. Two steps
/// suffice for any `u32`: the first leaves at most 0x1fffe, the second at
/// most 0xffff; no loop, no branch.
#[inline(always)]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Whether the 20 bytes of `header` (an IPv4 header without options,
/// its checksum field included) sum to 0xffff, as a right header does.
///
/// Five 32-bit words in the machine's byte order, no swaps: the sum of
/// byte-swapped words is the byte-swapped sum (RFC 1071 section 2,
/// "byte order independence"), and 0xffff is its own swap. Nonzero
/// words never fold to 0, so an all-zero header is refused.
#[inline(always)]
pub fn sums_to_ones_20(header: &[u8; 20]) -> bool {
    let word = |at: usize| u64::from(u32::from_ne_bytes(crate::field(header, at)));
    // At most 5 * (2^32 - 1): two folds bring it under 2^32, two more
    // to 16 bits.
    let wide = word(0) + word(4) + word(8) + word(12) + word(16);
    let wide = (wide & 0xffff_ffff) + (wide >> 32);
    let wide = (wide & 0xffff_ffff) + (wide >> 32);
    fold(wide as u32) == 0xffff
}

/// The ones'-complement sum of `data`, folded (not complemented).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    fold(add(0, data))
}

/// The checksum field value for `data`: the complement of its sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// The unfolded sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768).
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let mut acc = add(0, &src.octets());
    acc = add(acc, &dst.octets());
    acc + u32::from(protocol) + u32::from(length)
}

/// The checksum field for an L4 segment (header with its checksum field
/// zeroed, plus payload) over IPv4.
#[inline]
pub fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let len = segment.len() as u16;
    !fold(add(pseudo_header(src, dst, protocol, len), segment))
}

/// RFC 1624 update of a checksum field when one 16-bit word changes.
#[inline]
pub fn update16(field: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!field) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// RFC 1624 update of a checksum field when a 32-bit value changes.
#[inline(always)]
pub fn update32(field: u16, old: u32, new: u32) -> u16 {
    let acc = u32::from(!field)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(acc)
}

/// RFC 1624 update of a checksum field when an IPv4 address and a port
/// change together (a NAT rewrite of one end of a TCP or UDP header): one
/// fold for both, the same value as [`update_addr`] then [`update16`].
#[inline(always)]
pub fn update_addr_port(
    field: u16,
    old_addr: Ipv4Addr,
    new_addr: Ipv4Addr,
    old_port: u16,
    new_port: u16,
) -> u16 {
    let (old, new) = (old_addr.to_bits(), new_addr.to_bits());
    let acc = u32::from(!field)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff)
        + u32::from(!old_port)
        + u32::from(new_port);
    !fold(acc)
}

/// [`update_addr_port`] for a UDP checksum field; see [`update16_udp`].
#[inline(always)]
pub fn update_addr_port_udp(
    field: u16,
    old_addr: Ipv4Addr,
    new_addr: Ipv4Addr,
    old_port: u16,
    new_port: u16,
) -> u16 {
    if field == 0 {
        return 0;
    }
    nonzero(update_addr_port(
        field, old_addr, new_addr, old_port, new_port,
    ))
}

/// RFC 1624 update of a checksum field when an IPv4 address changes.
#[inline(always)]
pub fn update_addr(field: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(field, old.to_bits(), new.to_bits())
}

/// [`update16`] for a UDP checksum field: 0 means "no checksum" and stays 0;
/// a result of 0 is sent as 0xffff (RFC 768).
#[inline]
pub fn update16_udp(field: u16, old: u16, new: u16) -> u16 {
    if field == 0 {
        return 0;
    }
    nonzero(update16(field, old, new))
}

/// [`update_addr`] for a UDP checksum field; see [`update16_udp`].
#[inline]
pub fn update_addr_udp(field: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    if field == 0 {
        return 0;
    }
    nonzero(update_addr(field, old, new))
}

#[inline]
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example bytes: sum 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// The 16-bit-at-a-time sum of RFC 1071, for reference.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for c in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn the_wide_sum_is_the_16_bit_sum() {
        // Every length 0..=64 of a few patterns, and all-ones data (whose
        // sum is 0xffff, not 0: the end-around carry never makes 0).
        let mut next = xorshift(0x1234_5678);
        let mut random = [0u8; 64];
        random.iter_mut().for_each(|b| *b = next() as u8);
        for data in [[0xffu8; 64], [0u8; 64], random] {
            for len in 0..=64 {
                assert_eq!(sum(&data[..len]), reference(&data[..len]), "{len}");
                // Split anywhere, and summed on.
                for cut in 0..=len {
                    let acc = add(add(0, &data[..cut]), &data[cut..len]);
                    if cut % 2 == 0 {
                        assert_eq!(fold(acc), reference(&data[..len]), "{len} at {cut}");
                    }
                }
            }
        }
        assert_eq!(sum(&[0xff; 20]), 0xffff);
        assert_eq!(add(0xffff_ffff, &[0xff, 0xff]), 0xffff);
    }

    /// Marsaglia's xorshift32 from `seed`: the tests' random inputs,
    /// the same in every run.
    fn xorshift(mut x: u32) -> impl FnMut() -> u32 {
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }
    }

    /// The fixed 20-byte test agrees with the sum: on headers made
    /// right, on every one-bit change of them, and on headers of random,
    /// all-zero and all-one bytes.
    #[test]
    fn the_fixed_header_test_is_the_sum() {
        let mut next = xorshift(0x2545_f491);
        let agrees = |h: &[u8; 20]| sums_to_ones_20(h) == (reference(h) == 0xffff);
        for _ in 0..2_000 {
            let mut h = [0u8; 20];
            h.iter_mut().for_each(|b| *b = next() as u8);
            assert!(agrees(&h), "{h:02x?}");
            h[10..12].fill(0);
            let field = checksum(&h);
            h[10..12].copy_from_slice(&field.to_be_bytes());
            assert!(sums_to_ones_20(&h), "a right header: {h:02x?}");
            for bit in 0..160 {
                let mut changed = h;
                changed[bit / 8] ^= 1 << (bit % 8);
                assert!(agrees(&changed), "{changed:02x?}");
            }
        }
        assert!(!sums_to_ones_20(&[0; 20]));
        assert!(sums_to_ones_20(&[0xff; 20]));
    }

    #[test]
    fn the_fused_update_is_the_two_updates() {
        let mut next = xorshift(0x9e37_79b9);
        for _ in 0..10_000 {
            let field = next() as u16;
            let (a, b) = (Ipv4Addr::from_bits(next()), Ipv4Addr::from_bits(next()));
            let (p, q) = (next() as u16, next() as u16);
            assert_eq!(
                update_addr_port(field, a, b, p, q),
                update16(update_addr(field, a, b), p, q),
                "{field:#x} {a} {b} {p} {q}"
            );
            assert_eq!(
                update_addr_port_udp(field, a, b, p, q),
                update16_udp(update_addr_udp(field, a, b), p, q)
            );
        }
        for acc in [
            0u32,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            0x8000_0000,
        ] {
            let mut reference = acc;
            while reference > 0xffff {
                reference = (reference & 0xffff) + (reference >> 16);
            }
            assert_eq!(u32::from(fold(acc)), reference, "{acc:#x}");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn update16_matches_recompute() {
        let mut data = [0x45u8, 0x00, 0x00, 0x54, 0xab, 0xcd, 0x40, 0x00];
        let field = checksum(&data);
        let old = u16::from_be_bytes([data[4], data[5]]);
        data[4] = 0x12;
        data[5] = 0x34;
        assert_eq!(update16(field, old, 0x1234), checksum(&data));
    }

    #[test]
    fn udp_zero_stays_zero() {
        let a = Ipv4Addr::new(198, 18, 0, 1);
        let b = Ipv4Addr::new(198, 18, 2, 11);
        assert_eq!(update_addr_udp(0, a, b), 0);
        assert_eq!(update16_udp(0, 80, 8080), 0);
    }
}
