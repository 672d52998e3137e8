//! How the daemon keeps its memory flat: the allocator settings of a long-running process.
//!
//! The switch's allocation pattern is bursty: a reload builds and drops a whole
//! configuration, every VIP move publishes a new snapshot (built on the control thread, freed
//! on a worker thread when its last reader lets go), and every control connection is a
//! short-lived thread. glibc's malloc defaults are tuned for the opposite (a process that
//! keeps what it frees for later): its mmap threshold *rises* to the size of every large block
//! freed, so the next snapshot of that size comes from the heap instead of its own mapping,
//! and the heap keeps the pages when it is freed unless they happen to be at its top. RSS then
//! grows in steps of hundreds of kB at random moves and never comes back, although nothing
//! leaks (the soak in docs/soak.md saw this as a ±5 % RSS failure).
//!
//! Contract:
//! - [`tune_allocator`] is called once, at daemon start, before the threads start. It pins
//!   the mmap threshold (which also switches off glibc's dynamic adjustment of it and of the
//!   trim threshold), so blocks of 128 kB and more always get their own mapping and go back
//!   to the kernel when freed.
//! - [`trim_heap`] hands the free pages of every arena back (`malloc_trim(0)`). The control
//!   loop calls it after every reload, applied or refused, and every [`TRIM_EVERY`] on its
//!   own thread. Never on a worker: it takes the arena locks.
//! - Both are no-ops on C libraries other than glibc.
//!
//! Neither changes what is allocated; a real leak still shows in RSS, which is the point.

use std::time::Duration;

/// Blocks at least this large get their own mapping.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// How often the control loop trims the heap when nothing else did.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Pins glibc's mmap threshold (see the module docs). Returns false if glibc refused.
pub fn tune_allocator() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt takes two integers and only changes the allocator's own
        // parameters, under its own lock; 128 kB is within glibc's accepted range.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
        ok == 1
    }
    #[cfg(not(target_env = "gnu"))]
    {
        true
    }
}

/// Returns the free pages of every malloc arena to the kernel (see the module docs).
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers and only touches the allocator's own state, which
    // it locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_and_trimming_are_accepted() {
        assert!(tune_allocator());
        // Free a large block and a pile of small ones, then trim: nothing to assert about
        // RSS in a unit test (shared machine), only that it is callable from any thread.
        let big = vec![1u8; 4 * MMAP_THRESHOLD];
        drop(big);
        let small: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 512]).collect();
        drop(small);
        std::thread::spawn(trim_heap)
            .join()
            .expect("trim on another thread");
        trim_heap();
    }
}
