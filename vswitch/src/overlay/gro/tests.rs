#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
use vip_table::MacAddr;

use super::Gro;
use crate::port::vnet::segment_gso;
use crate::port::{VnetHdr, GSO_TCPV4, GSO_TCPV6, MAX_FRAME_LEN, VNET_HDR_F_NEEDS_CSUM};
use crate::testutil::frames::udp4_payload;
use crate::wire::vxlan::{self, Vni};

const A: Ipv4Addr = Ipv4Addr::new(10, 250, 1, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 250, 1, 2);
const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST: [u8; 6] = [2, 0, 0, 0, 0xb, 1];
const MTU: usize = 1450;

fn vni() -> Vni {
    Vni::new(5000).unwrap()
}

/// A TSO super-frame (what a guest hands its tap) of `len` payload bytes: the frame and
/// its virtio-net header. `flags`: extra TCP flags on the super-frame (PSH, FIN).
fn super_frame(v6: bool, seq: u32, len: usize, psh: bool) -> (Vec<u8>, VnetHdr) {
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let b = PacketBuilder::ethernet2(SRC, DST);
    let b = if v6 {
        b.ipv6([0xfd; 16], [0xfe; 16], 64)
    } else {
        b.ipv4([10, 0, 0, 1], [10, 0, 0, 11], 64)
    };
    let mut b = b.tcp(40000, 5201, seq, 64000).ack(77);
    if psh {
        b = b.psh();
    }
    let mut f = Vec::new();
    b.write(&mut f, &body).unwrap();
    let l4 = if v6 { 54 } else { 34 };
    let vnet = VnetHdr {
        flags: VNET_HDR_F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: (l4 + 20) as u16,
        gso_size: 1398,
        csum_start: l4 as u16,
        csum_offset: 16,
    };
    (f, vnet)
}

/// What the sending switch puts on the underlay for a super-frame: VXLAN payloads.
fn datagrams(frame: &[u8], vnet: &VnetHdr) -> Vec<Vec<u8>> {
    let mut scratch = vec![0u8; MAX_FRAME_LEN];
    let mut out = Vec::new();
    segment_gso(frame, vnet, MTU, &mut scratch, |seg| {
        let mut d = Vec::new();
        vxlan::encap_into(&mut d, vni(), seg);
        out.push(d);
    })
    .unwrap();
    out
}

/// Feed datagrams (VTEP, payload) through a coalescer as the worker does, one round; what
/// comes out, in order.
fn coalesce(input: &[(Ipv4Addr, Vec<u8>)]) -> Vec<(Ipv4Addr, Vec<u8>, VnetHdr)> {
    let mut g = Gro::new();
    let mut out = Vec::new();
    let mut emit = |src: Ipv4Addr, f: &mut [u8], v: &VnetHdr| out.push((src, f.to_vec(), *v));
    for (src, d) in input {
        let mut d = d.clone();
        g.feed(*src, &mut d, &mut emit);
    }
    g.flush(&mut emit);
    assert_eq!(g.pending(), 0);
    out
}

/// The inner frames a coalesced output stands for, cut again as the receiving port would.
fn recut(payload: &[u8], vnet: &VnetHdr) -> Vec<Vec<u8>> {
    datagrams(&payload[vxlan::HEADER_LEN..], vnet)
}

fn from(src: Ipv4Addr, ds: &[Vec<u8>]) -> Vec<(Ipv4Addr, Vec<u8>)> {
    ds.iter().map(|d| (src, d.clone())).collect()
}

#[test]
fn segments_of_one_super_frame_are_joined_back_and_cut_again_to_the_same_bytes() {
    for v6 in [false, true] {
        for psh in [false, true] {
            let (f, vnet) = super_frame(v6, 1000, 40_000, psh);
            let ds = datagrams(&f, &vnet);
            assert!(ds.len() > 20, "{}", ds.len());
            let out = coalesce(&from(B, &ds));
            assert_eq!(out.len(), 1, "v6={v6} psh={psh}: one super-frame");
            let (src, p, v) = &out[0];
            assert_eq!(*src, B);
            assert_eq!(v.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
            assert_eq!(v.flags, VNET_HDR_F_NEEDS_CSUM);
            assert_eq!(
                usize::from(v.gso_size),
                ds[0].len() - vxlan::HEADER_LEN - usize::from(v.hdr_len)
            );
            // the inner frame is the original super-frame but for the checksum field
            let inner = &p[vxlan::HEADER_LEN..];
            assert_eq!(inner.len(), f.len());
            let csum = usize::from(v.csum_start) + 16;
            assert_eq!(inner[..csum], f[..csum], "v6={v6}: headers");
            assert_eq!(inner[csum + 2..], f[csum + 2..], "v6={v6}: payload");
            // and cutting it again gives the very datagrams that came
            assert!(
                recut(p, v) == ds,
                "v6={v6} psh={psh}: cut again, the datagrams differ"
            );
        }
    }
}

#[test]
fn what_cannot_join_goes_alone_unchanged_and_in_order() {
    let (f, vnet) = super_frame(false, 1000, 10_000, false);
    let ds = datagrams(&f, &vnet);
    let n = ds.len();
    let udp = udp4_payload(
        MacAddr(SRC),
        MacAddr(DST),
        [10, 0, 0, 1],
        [10, 0, 0, 11],
        1,
        2,
        b"hello",
    );
    let mut udp_d = Vec::new();
    vxlan::encap_into(&mut udp_d, vni(), &udp);

    // a UDP datagram in the middle splits the run in two, in order
    let mut input = from(B, &ds[..3]);
    input.push((B, udp_d.clone()));
    input.extend(from(B, &ds[3..]));
    let out = coalesce(&input);
    assert_eq!(out.len(), 3);
    assert_eq!(out[1].1, udp_d, "unchanged");
    assert_eq!(out[1].2, VnetHdr::default());
    let mut again = recut(&out[0].1, &out[0].2);
    again.extend(recut(&out[2].1, &out[2].2));
    assert!(again == ds, "cut again, the datagrams differ");

    // the same segments from another VTEP do not join
    let mut input = from(B, &ds[..2]);
    input.extend(from(A, &ds[2..]));
    let out = coalesce(&input);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].0, out[1].0), (B, A));

    // a gap in the sequence (a lost segment): no join across it
    let mut input = from(B, &ds[..2]);
    input.extend(from(B, &ds[3..]));
    let out = coalesce(&input);
    assert_eq!(out.len(), 2);

    // a single segment comes out byte for byte, with an empty header
    let out = coalesce(&from(B, &ds[..1]));
    assert_eq!(out.len(), 1);
    assert_eq!((&out[0].1, out[0].2), (&ds[0], VnetHdr::default()));

    // the last (shorter) segment ends a super-frame: a following one starts anew
    let (f2, vnet2) = super_frame(false, 1000 + 10_000, 5_000, false);
    let mut input = from(B, &ds);
    input.extend(from(B, &datagrams(&f2, &vnet2)));
    let out = coalesce(&input);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].1.len() - vxlan::HEADER_LEN, f.len());
    assert_eq!(n, recut(&out[0].1, &out[0].2).len());
}

#[test]
fn syn_fin_and_pure_acks_are_never_joined() {
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 11], 64)
        .tcp(40000, 5201, 1, 64000)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    let mut ack = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 11], 64)
        .tcp(40000, 5201, 2, 64000)
        .ack(1)
        .write(&mut ack, &[])
        .unwrap();
    let mut fin = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 11], 64)
        .tcp(40000, 5201, 2, 64000)
        .ack(1)
        .fin()
        .write(&mut fin, &[1; 100])
        .unwrap();
    let ds: Vec<Vec<u8>> = [syn, ack.clone(), ack, fin]
        .iter()
        .map(|f| {
            let mut d = Vec::new();
            vxlan::encap_into(&mut d, vni(), f);
            d
        })
        .collect();
    let out = coalesce(&from(B, &ds));
    assert_eq!(out.len(), 4);
    for (o, d) in out.iter().zip(&ds) {
        assert_eq!(&o.1, d);
        assert_eq!(o.2, VnetHdr::default());
    }
}

#[test]
fn a_super_frame_stops_at_64k_of_ip_packet() {
    // two guest super-frames of whole segments back to back (40 + 20 of 1,398 bytes): all
    // 60 could join, but 83,880 bytes is more than one IP packet holds, so they make two
    // super-frames, neither over 65,535 bytes, together the whole stream
    let (f1, v1) = super_frame(false, 1000, 40 * 1398, false);
    let (mut f2, v2) = super_frame(false, 1000 + 40 * 1398, 20 * 1398, false);
    // the guest numbers its IPv4 IDs on across super-frames (segment_gso rewrites the
    // header checksum)
    f2[18..20].copy_from_slice(&40u16.to_be_bytes());
    let mut ds = datagrams(&f1, &v1);
    ds.extend(datagrams(&f2, &v2));
    assert_eq!(ds.len(), 60);
    let out = coalesce(&from(B, &ds));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].1.len() - vxlan::HEADER_LEN - 14 - 40,
        46 * 1398,
        "as many as fit"
    );
    let mut again = Vec::new();
    for (_, p, v) in &out {
        assert!(p.len() - vxlan::HEADER_LEN - 14 <= 65_535, "{}", p.len());
        again.extend(recut(p, v));
    }
    assert!(again == ds, "cut again, the datagrams differ");
}

#[test]
fn malformed_and_truncated_payloads_pass_through_without_panic() {
    let (f, vnet) = super_frame(false, 1000, 5_000, false);
    let ds = datagrams(&f, &vnet);
    let mut input = from(B, &ds[..2]);
    for cut in [0, 5, 8, 20, 30, 40, 60, 70] {
        input.push((B, ds[2][..cut.min(ds[2].len())].to_vec()));
    }
    // an IP length that disagrees with the datagram
    let mut bad = ds[2].clone();
    bad[vxlan::HEADER_LEN + 14 + 2] ^= 0x01;
    input.push((B, bad));
    let out = coalesce(&input);
    assert_eq!(out.len(), 1 + 8 + 1);
}

proptest::proptest! {
    /// Any damage to a run of datagrams (bytes flipped, datagrams cut short, dropped or
    /// swapped): the coalescer never panics, hands out every datagram exactly once (a
    /// joined super-frame stands for as many as its payload over `gso_size`), and what it
    /// joined can always be cut again.
    #[test]
    fn damaged_runs_are_handed_out_whole_and_joined_frames_always_cut_again(
        v6 in proptest::bool::ANY,
        len in 1usize..20_000,
        flips in proptest::collection::vec((0usize..64, 0usize..1600, proptest::num::u8::ANY), 0..6),
        cuts in proptest::collection::vec((0usize..64, 0usize..1600), 0..3),
        drops in proptest::collection::vec(0usize..64, 0..3),
        swap in proptest::option::of((0usize..64, 0usize..64)),
    ) {
        let (f, vnet) = super_frame(v6, 7, len, false);
        let mut ds = datagrams(&f, &vnet);
        for (i, at, x) in flips {
            let n = ds.len();
            let d = &mut ds[i % n];
            let k = at % d.len();
            d[k] ^= x;
        }
        for (i, at) in cuts {
            let n = ds.len();
            let d = &mut ds[i % n];
            let k = at % (d.len() + 1);
            d.truncate(k);
        }
        for i in drops {
            if ds.len() > 1 {
                let n = ds.len();
                ds.remove(i % n);
            }
        }
        if let Some((a, b)) = swap {
            let n = ds.len();
            ds.swap(a % n, b % n);
        }
        let out = coalesce(&from(B, &ds));
        let mut represented = 0;
        let mut scratch = vec![0u8; MAX_FRAME_LEN];
        for (_, p, v) in &out {
            if v.gso_type == 0 {
                represented += 1;
                continue;
            }
            let inner = &p[vxlan::HEADER_LEN..];
            let data = inner.len() - usize::from(v.hdr_len);
            represented += data.div_ceil(usize::from(v.gso_size));
            let cut = segment_gso(inner, v, MTU, &mut scratch, |_| ()).is_ok();
            proptest::prop_assert!(cut, "a joined super-frame does not cut again");
        }
        proptest::prop_assert_eq!(represented, ds.len());
    }
}
