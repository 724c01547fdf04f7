//! Now and then, gives the memory the allocator holds free back to the system.
//!
//! Why: glibc keeps what a thread frees in that thread's arena. After a backlog is
//! consumed the broker would stay at the resident size of its peak (277 MiB with every
//! queue empty, against 20 MiB after a trim; see `warren-alloc`), which is what an
//! operator sees and what a memory limit counts.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tracing::debug;

/// How often the allocator's free memory is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Free memory the allocator may keep: below this a trim would give back little, and
/// it costs a walk of every arena under its lock.
const KEEP_FREE: u64 = 64 << 20;

/// Runs until the process ends.
pub(crate) async fn release_free_memory_now_and_then() {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        // Off the runtime's workers: a trim locks each arena in turn.
        let trimmed = tokio::task::spawn_blocking(release_if_worth_it).await;
        if let Ok(Some((held, released))) = trimmed {
            debug!(
                free_mib = held.free >> 20,
                in_use_mib = held.in_use >> 20,
                released,
                "gave the allocator's free memory back to the system"
            );
        }
    }
}

/// Gives the allocator's free memory back if it holds at least [`KEEP_FREE`] of it;
/// what it held, and whether anything went back, when it tried. Blocks while it trims.
pub(crate) fn release_if_worth_it() -> Option<(warren_alloc::HeapStats, bool)> {
    let held = warren_alloc::heap_stats()?;
    (held.free >= KEEP_FREE).then(|| (held, warren_alloc::release_free_memory()))
}
