//! Returns freed heap pages to the kernel after the start-up burst.
//!
//! glibc's allocator keeps memory freed in the middle of its arenas resident; only the
//! top of an arena is ever given back on its own. Loading a large config is such a
//! burst: the parsed document, the checked config and the resolver's definitions are
//! alive at once, then the first two are dropped among the long-lived allocations. With
//! 100,000 definitions that left about 48 MB resident that nothing used (110 MB before
//! `malloc_trim(0)`, 63 MB after, measured in `BENCHMARKS.md`). This is the only unsafe
//! code in vaultbridge, and it lives in this crate so every other crate keeps
//! `unsafe_code = "forbid"`.

/// Asks the allocator to give back the pages it holds free. Returns whether any were.
///
/// It walks and locks every arena in turn, so call it at a quiet point (start-up, before
/// the daemon reports SERVING), not on a request path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(
    unsafe_code,
    reason = "malloc_trim is glibc's only way to release free pages held inside an arena"
)]
pub fn release_free_pages() -> bool {
    // SAFETY: malloc_trim(3) takes a padding size, reads and writes only the allocator's
    // own state under the arena locks, and has no precondition on the caller.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Other allocators (musl, macOS, Windows) have no such call; nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_pages() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn pages_freed_among_live_allocations_are_released() {
        // Small allocations come from the arena, not from their own mappings, so
        // freeing most of them leaves whole free pages between the survivors: the
        // situation a config load leaves behind.
        let mut blocks: Vec<Vec<u8>> = (0..100_000).map(|i| vec![i as u8; 512]).collect();
        let survivors: Vec<Vec<u8>> = blocks.iter().step_by(64).cloned().collect();
        blocks.clear();
        blocks.shrink_to_fit();
        assert!(release_free_pages(), "glibc had free pages to give back");
        assert_eq!(survivors.len(), 1563);
        assert!(survivors.iter().all(|block| block.len() == 512));
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    #[test]
    fn elsewhere_there_is_nothing_to_release() {
        assert!(!release_free_pages());
    }
}
