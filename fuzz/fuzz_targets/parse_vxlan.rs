//! Fuzz the VXLAN decapsulation (`wire::vxlan::decap`) and the classification of what it
//! lets through.
//!
//! The input is one UDP payload as the overlay's socket would receive it (the seed corpus is
//! the captured frames of the replay scenarios behind a VXLAN header, plus a few near
//! misses, see `fuzz/seed-corpus.sh`). For each input:
//! 1. `decap` must not panic; its error must render;
//! 2. on success the VNI fits in 24 bits, the inner frame is the input after the 8-byte
//!    header and at least an Ethernet header long, and re-encapsulating it gives the input
//!    back with the reserved bits cleared (they are ignored on receipt, RFC 7348 §5);
//! 3. the inner frame goes through `wire::parse`, which must not panic either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::wire::{self, vxlan};

fuzz_target!(|data: &[u8]| {
    match vxlan::decap(data) {
        Ok((vni, inner)) => {
            assert!(vni.get() <= vxlan::Vni::MAX, "VNI {vni} over 24 bits");
            assert!(inner.len() >= vxlan::MIN_INNER_LEN, "inner frame too short");
            assert_eq!(
                inner,
                &data[vxlan::HEADER_LEN..],
                "inner frame is not the rest"
            );
            let mut again = Vec::new();
            vxlan::encap_into(&mut again, vni, inner);
            let mut expected = data.to_vec();
            expected[0] = vxlan::FLAG_I;
            expected[1..4].fill(0);
            expected[7] = 0;
            assert_eq!(
                again, expected,
                "re-encapsulation differs beyond reserved bits"
            );
            let _ = wire::parse(inner);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
