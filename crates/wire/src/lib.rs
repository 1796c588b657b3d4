//! Zero-copy packet views and checksums for l4vs.
//!
//! Each protocol has one module with a view `Xxx<T: AsRef<[u8]>>` over a
//! borrowed or owned buffer (smoltcp's pattern). `new_checked` validates
//! lengths and header sanity for untrusted input; after it succeeds no getter
//! can panic. `new_unchecked` is for buffers the caller built itself; getters
//! may then panic on short buffers. Setters need `AsMut<[u8]>` and edit bytes
//! in place. Nothing here allocates or performs I/O.

#![no_std]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipvs_sync;
pub mod rewrite;
pub mod tcp;
pub mod udp;
pub mod vrrp;

pub use core::net::Ipv4Addr;

/// Why a buffer could not be viewed as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header or the length it announces.
    Truncated,
    /// A header field has a value the protocol forbids (version, IHL, length).
    Malformed,
    /// The packet is valid but uses a variant this crate does not parse.
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Unsupported => "unsupported",
        })
    }
}

/// Result of a checked view constructor.
pub type Result<T> = core::result::Result<T, Error>;

// The readers take the field as one slice (one bounds check, one load),
// not byte by byte (a check per byte): callgrind counts the difference on
// every packet. Each panics, as indexing does, when the field is not
// wholly in `b`.

/// The big-endian (network order) u16 at `b[at..at + 2]`, as a host
/// value. For parsers that checked the length already (the dataplane's
/// fixed-offset parse); the views above are the checked way.
///
/// # Panics
/// When `b` is shorter than `at + 2`.
#[inline]
pub fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(field(b, at))
}

/// `N` bytes of `b` from `at`, as an array.
#[inline(always)]
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(field(b, at))
}

/// The IPv4 address at `b[at..at + 4]` (network order), as
/// [`get_u16`] reads.
///
/// # Panics
/// When `b` is shorter than `at + 4`.
#[inline]
pub fn get_addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(field::<4>(b, at))
}

#[inline]
pub(crate) fn set_addr(b: &mut [u8], at: usize, a: Ipv4Addr) {
    b[at..at + 4].copy_from_slice(&a.octets());
}
