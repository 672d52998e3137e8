//! VXLAN (RFC 7348) encapsulation, sans I/O: the 8-byte header, encapsulation into a
//! caller's buffer and checked decapsulation. Groundwork for the multi-host overlay; nothing
//! in the datapath calls it yet.
//!
//! What the switch reads and writes is the **UDP payload** of a VXLAN packet: the 8-byte
//! VXLAN header followed by the inner Ethernet frame (without FCS). It sends and receives
//! over an ordinary UDP socket bound to [`UDP_PORT`], so the kernel adds (and strips) the
//! outer IP and UDP headers and the outer Ethernet header; none of them appear here. (RFC
//! 7348 §5 recommends a UDP source port derived from a hash of the inner frame, for ECMP
//! entropy in the underlay; choosing it is the sender's business, not this codec's.)
//!
//! The header (RFC 7348 §5):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract:
//! - [`encode_header`] / [`encap_into`] set the I flag and write every reserved bit as zero;
//! - [`decap`] never panics, whatever the bytes, and does not allocate. It requires the
//!   header ([`VxlanError::Truncated`]), the I flag ([`VxlanError::NoVniFlag`]: without it
//!   the VNI field is not valid) and an inner frame of at least an Ethernet header
//!   ([`VxlanError::InnerTooShort`]). The reserved bits (the other 7 flag bits, the 24 bits
//!   after the flags, the last byte) are **ignored on receipt**, as RFC 7348 §5 requires:
//!   a header with reserved bits set decapsulates like one without. The inner frame is
//!   returned as is; classifying it is [`crate::wire::parse`]'s job;
//! - `decap(encap(vni, inner)) == (vni, inner)` for every inner frame of 14 bytes or more
//!   (property-tested). Encapsulation itself does not check the inner frame: the switch
//!   only forwards frames [`crate::wire::parse`] accepted, which are never that short.
//!
//! MTU: each inner frame grows by [`OVERHEAD_IPV4`] = 50 bytes on an IPv4 underlay — on the
//! wire, outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. Against MTUs, which count L3 bytes,
//! the same 50 bytes read as outer IPv4 20 + UDP 8 + VXLAN 8 + the inner Ethernet header 14:
//! an inner MTU `m` needs an underlay MTU of at least `m + 50` ([`inner_mtu_fits`], for the
//! start-up check), since the overlay must not rely on fragmentation of the outer packet.
//! An IPv6 underlay costs [`OVERHEAD_IPV6`] = 70; an inner frame that keeps an 802.1Q tag 4
//! more.

/// The IANA-assigned VXLAN UDP destination port.
pub const UDP_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The shortest inner frame [`decap`] accepts: an Ethernet header.
pub const MIN_INNER_LEN: usize = 14;
/// The I flag (first byte): the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// Bytes an inner frame costs on an IPv4 underlay: 14 outer Ethernet + 20 IPv4 + 8 UDP + 8
/// VXLAN (equivalently, against L3 MTUs: 20 + 8 + 8 + the inner frame's 14-byte Ethernet
/// header).
pub const OVERHEAD_IPV4: u32 = 50;
/// Bytes an inner frame costs on an IPv6 underlay: as [`OVERHEAD_IPV4`] with a 40-byte IPv6
/// header.
pub const OVERHEAD_IPV6: u32 = 70;

/// A VXLAN Network Identifier: 24 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

/// A VNI larger than 24 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("VNI {0} does not fit in 24 bits (largest is {max})", max = Vni::MAX)]
pub struct VniOutOfRange(pub u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: u32 = 0xFF_FFFF;

    /// A VNI; values above [`Vni::MAX`] are rejected.
    pub const fn new(v: u32) -> Result<Vni, VniOutOfRange> {
        if v > Self::MAX {
            Err(VniOutOfRange(v))
        } else {
            Ok(Vni(v))
        }
    }

    /// The VNI as a number (at most [`Vni::MAX`]).
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The VNI from its 3-byte wire form (big-endian).
    const fn from_be_bytes(b: [u8; 3]) -> Vni {
        Vni(((b[0] as u32) << 16) | ((b[1] as u32) << 8) | (b[2] as u32))
    }
}

impl TryFrom<u32> for Vni {
    type Error = VniOutOfRange;

    fn try_from(v: u32) -> Result<Vni, VniOutOfRange> {
        Vni::new(v)
    }
}

impl From<Vni> for u32 {
    fn from(v: Vni) -> u32 {
        v.0
    }
}

impl std::fmt::Display for Vni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a UDP payload is not a VXLAN packet the switch accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VxlanError {
    /// Shorter than the VXLAN header.
    #[error("VXLAN payload of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The I flag is clear: the VNI field is not valid.
    #[error("VXLAN header without the I flag (flags {flags:#04x})")]
    NoVniFlag {
        /// The flags byte received.
        flags: u8,
    },
    /// The inner frame is shorter than an Ethernet header.
    #[error("inner frame of {len} bytes is shorter than an Ethernet header ({MIN_INNER_LEN})")]
    InnerTooShort {
        /// Bytes of inner frame received.
        len: usize,
    },
}

/// The VXLAN header for `vni`: the I flag set, every reserved bit zero.
#[inline]
pub const fn encode_header(vni: Vni) -> [u8; HEADER_LEN] {
    let v = vni.0;
    [FLAG_I, 0, 0, 0, (v >> 16) as u8, (v >> 8) as u8, v as u8, 0]
}

/// Append the VXLAN header for `vni` and then `inner` (an Ethernet frame without FCS) to
/// `buf`: the UDP payload to send. `buf` is not cleared, so a caller can reuse one buffer
/// (clear it first) or build after a prefix of its own.
#[inline]
pub fn encap_into(buf: &mut Vec<u8>, vni: Vni, inner: &[u8]) {
    buf.reserve(HEADER_LEN + inner.len());
    buf.extend_from_slice(&encode_header(vni));
    buf.extend_from_slice(inner);
}

/// Check and strip the VXLAN header of a received UDP payload: the VNI and the inner frame
/// (borrowed from `payload`). Reserved bits are ignored (RFC 7348 §5).
#[inline]
pub fn decap(payload: &[u8]) -> Result<(Vni, &[u8]), VxlanError> {
    let Some((hdr, inner)) = payload.split_first_chunk::<HEADER_LEN>() else {
        return Err(VxlanError::Truncated { len: payload.len() });
    };
    if hdr[0] & FLAG_I == 0 {
        return Err(VxlanError::NoVniFlag { flags: hdr[0] });
    }
    if inner.len() < MIN_INNER_LEN {
        return Err(VxlanError::InnerTooShort { len: inner.len() });
    }
    Ok((Vni::from_be_bytes([hdr[4], hdr[5], hdr[6]]), inner))
}

/// Whether inner frames of L3 MTU `inner_mtu` fit, unfragmented, through an IPv4 underlay of
/// L3 MTU `underlay_mtu` (`inner_mtu + 50 <= underlay_mtu`; no overflow).
#[inline]
pub const fn inner_mtu_fits(underlay_mtu: u32, inner_mtu: u32) -> bool {
    // widened: `inner_mtu + 50` cannot overflow (saturating would let u32::MAX "fit")
    inner_mtu as u64 + OVERHEAD_IPV4 as u64 <= underlay_mtu as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 14-byte Ethernet header plus 4 bytes: 02:00:00:00:00:02 ← 02:00:00:00:00:01, IPv4.
    const INNER: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0x45, 0, 0, 0x14,
    ];

    fn vni(v: u32) -> Vni {
        Vni::new(v).expect("test VNI in range")
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            encode_header(vni(0x12_3456)),
            [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]
        );
        assert_eq!(encode_header(vni(0)), [0x08, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            encode_header(vni(Vni::MAX)),
            [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]
        );
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encap_into(&mut buf, vni(42), &INNER);
        assert_eq!(buf.len(), HEADER_LEN + INNER.len());
        assert_eq!(decap(&buf), Ok((vni(42), &INNER[..])));
        // appends: a second packet after the first
        let first = buf.len();
        encap_into(&mut buf, vni(7), &INNER[..14]);
        assert_eq!(decap(&buf[first..]), Ok((vni(7), &INNER[..14])));
    }

    #[test]
    fn vni_range() {
        assert_eq!(Vni::new(Vni::MAX).map(Vni::get), Ok(0xFF_FFFF));
        assert_eq!(Vni::new(0x100_0000), Err(VniOutOfRange(0x100_0000)));
        assert_eq!(Vni::try_from(u32::MAX), Err(VniOutOfRange(u32::MAX)));
        assert_eq!(u32::from(vni(5)), 5);
        assert_eq!(vni(5).to_string(), "5");
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                decap(&encode_header(vni(1))[..len]),
                Err(VxlanError::Truncated { len })
            );
        }
    }

    #[test]
    fn no_vni_flag() {
        let mut p = encode_header(vni(1)).to_vec();
        p.extend_from_slice(&INNER);
        p[0] = 0;
        assert_eq!(decap(&p), Err(VxlanError::NoVniFlag { flags: 0 }));
        // reserved flag bits do not stand in for I
        p[0] = !FLAG_I;
        assert_eq!(decap(&p), Err(VxlanError::NoVniFlag { flags: 0xf7 }));
    }

    #[test]
    fn inner_too_short() {
        let mut p = encode_header(vni(1)).to_vec();
        assert_eq!(decap(&p), Err(VxlanError::InnerTooShort { len: 0 }));
        p.extend_from_slice(&INNER[..13]);
        assert_eq!(decap(&p), Err(VxlanError::InnerTooShort { len: 13 }));
        p.push(0);
        assert!(decap(&p).is_ok());
    }

    #[test]
    fn reserved_bits_ignored_on_receipt() {
        let mut p = vec![0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02, 0xff];
        p.extend_from_slice(&INNER);
        assert_eq!(decap(&p), Ok((vni(0x0102), &INNER[..])));
    }

    #[test]
    fn mtu_check() {
        assert!(inner_mtu_fits(1550, 1500));
        assert!(!inner_mtu_fits(1549, 1500));
        assert!(inner_mtu_fits(1500, 1450));
        assert!(!inner_mtu_fits(u32::MAX, u32::MAX));
        assert!(!inner_mtu_fits(0, 0));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            VxlanError::NoVniFlag { flags: 0 }.to_string(),
            "VXLAN header without the I flag (flags 0x00)"
        );
        assert_eq!(
            VniOutOfRange(16_777_216).to_string(),
            "VNI 16777216 does not fit in 24 bits (largest is 16777215)"
        );
    }

    proptest::proptest! {
        #[test]
        fn decap_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok((v, inner)) = decap(&bytes) {
                proptest::prop_assert!(v.get() <= Vni::MAX);
                proptest::prop_assert!(inner.len() >= MIN_INNER_LEN);
                proptest::prop_assert_eq!(inner, &bytes[HEADER_LEN..]);
            }
        }

        #[test]
        fn decap_inverts_encap(
            v in 0u32..=Vni::MAX,
            inner in proptest::collection::vec(proptest::num::u8::ANY, MIN_INNER_LEN..200),
        ) {
            let mut buf = Vec::new();
            encap_into(&mut buf, vni(v), &inner);
            proptest::prop_assert_eq!(decap(&buf), Ok((vni(v), &inner[..])));
        }

        #[test]
        fn reserved_bits_never_matter(
            v in 0u32..=Vni::MAX,
            flags in proptest::num::u8::ANY,
            r1 in proptest::num::u8::ANY,
            r2 in proptest::num::u8::ANY,
            r3 in proptest::num::u8::ANY,
            r4 in proptest::num::u8::ANY,
        ) {
            let mut p = encode_header(vni(v)).to_vec();
            p.extend_from_slice(&INNER);
            p[0] = flags | FLAG_I;
            p[1] = r1;
            p[2] = r2;
            p[3] = r3;
            p[7] = r4;
            proptest::prop_assert_eq!(decap(&p), Ok((vni(v), &INNER[..])));
        }
    }
}
