//! Housekeeping for the process allocator.
//!
//! glibc keeps what a thread frees in that thread's arena and gives back to the
//! system only the top of each heap. A broker that held a backlog keeps its resident
//! size after the consumers drain it: 200,000 messages of 1 KiB, published and
//! consumed three times, left Warren at 277 MiB resident with every queue empty, and
//! `malloc_trim(0)` brought it to 20 MiB (docs/benchmarks.md). This crate asks the
//! allocator what it holds and gives the free part back.
//!
//! It is the one crate of the workspace with `unsafe` code: two glibc calls that take
//! no pointers and have no caller-side conditions. It knows nothing of AMQP, sockets
//! or tokio. Built for anything but glibc on Linux (the static musl build), it reports
//! nothing and releases nothing.

/// What the allocator holds in its heaps (not counting blocks it mapped on their own,
/// which go back to the system when freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapStats {
    /// Octets in allocated blocks.
    pub in_use: u64,
    /// Octets in free blocks the allocator keeps.
    pub free: u64,
}

/// The allocator's heap figures, where the allocator can tell.
#[must_use]
pub fn heap_stats() -> Option<HeapStats> {
    imp::heap_stats()
}

/// Give the free memory of every heap back to the system; `true` if any went back.
/// It walks and locks each arena in turn, so it belongs on a thread that may wait,
/// at a quiet moment.
pub fn release_free_memory() -> bool {
    imp::release_free_memory()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::HeapStats;

    pub(super) fn heap_stats() -> Option<HeapStats> {
        #[allow(
            unsafe_code,
            reason = "FFI: mallinfo2 takes nothing and returns a struct"
        )]
        // SAFETY: `mallinfo2` has no preconditions; it only reads the allocator's state
        // under its own locks (glibc 2.33 and later; Debian 12 ships 2.36).
        let info = unsafe { libc::mallinfo2() };
        Some(HeapStats {
            in_use: info.uordblks as u64,
            free: info.fordblks as u64,
        })
    }

    pub(super) fn release_free_memory() -> bool {
        #[allow(
            unsafe_code,
            reason = "FFI: malloc_trim takes a size and returns a flag"
        )]
        // SAFETY: `malloc_trim` has no preconditions; it only returns free pages of the
        // allocator's own heaps, under its own locks.
        let released = unsafe { libc::malloc_trim(0) };
        released != 0
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::HeapStats;

    pub(super) fn heap_stats() -> Option<HeapStats> {
        None
    }

    pub(super) fn release_free_memory() -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use super::*;

    /// Resident pages of this process, in octets.
    fn rss() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn memory_freed_by_another_thread_stays_with_the_allocator_until_released() {
        const BLOCKS: usize = 200_000;
        const BLOCK: usize = 1024;
        // On a thread of its own, as a connection would: blocks in that thread's arena,
        // written so their pages are resident, then freed, while one block allocated
        // after them stays in use and so keeps the heap's top from being trimmed, as a
        // live message would.
        let pin = std::thread::spawn(|| {
            let blocks: Vec<Box<[u8]>> = (0..BLOCKS).map(|i| vec![i as u8; BLOCK].into()).collect();
            let pin: Box<[u8]> = vec![1; BLOCK].into();
            drop(blocks);
            pin
        })
        .join()
        .unwrap();
        let before = heap_stats().unwrap();
        let rss_before = rss();
        // The 200 MB are free but still held.
        assert!(before.free > 50 << 20, "{before:?}");
        assert!(release_free_memory());
        let rss_after = rss();
        drop(pin);
        assert!(
            rss_after + (50 << 20) < rss_before,
            "resident {rss_before} -> {rss_after}"
        );
    }
}
