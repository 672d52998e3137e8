//! A batch's buffers are resident from the moment it is made.
//!
//! Regression test: the buffers came from calloc untouched, so the switch's RSS stepped up
//! by up to a whole batch (64 × 64 KiB) at a random moment, the first time TSO super-frames
//! reached them; the soak (docs/soak.md) saw 0.3–2 MB steps once per lifetime and failed its
//! flat-RSS rule. Its own test binary, so no other test's allocations run alongside.

use vswitch::port::{Batch, MAX_FRAME_LEN, VNET_HDR_LEN};

fn rss_anon_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon in /proc/self/status")
}

#[test]
fn a_batch_is_resident_when_made() {
    let before = rss_anon_kb();
    let batch = Batch::new(64);
    let after = rss_anon_kb();
    let size_kb = (64 * (VNET_HDR_LEN + MAX_FRAME_LEN) / 1024) as u64;
    assert!(
        after.saturating_sub(before) >= size_kb * 9 / 10,
        "a batch of 64 buffers ({size_kb} kB) made RssAnon grow by only {} kB ({before} -> {after}): its pages are not resident yet",
        after.saturating_sub(before)
    );
    assert_eq!(batch.capacity(), 64);
}
