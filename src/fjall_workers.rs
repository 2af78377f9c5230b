//! How many worker threads the fjall databases syncmq opens get: fjall's
//! own default, but never fewer than three.
//!
//! fjall 3.1 writes memtables to tables and compacts them on a pool of
//! worker threads, by default one per core, at most four. Its worker 0
//! leaves compactions to the others, so that a flush never waits behind
//! one: it sends every compaction request it receives back to the pool.
//! With two workers, the default on two cores, the request comes straight
//! back to worker 0 for as long as worker 1 compacts, so worker 0 spins on
//! it and takes a core from the application for the whole compaction. A
//! third worker takes the request instead.
//!
//! Measured under callgrind, the queue engine draining 200,000 messages
//! (`bench queue --only "engine: drain" --backlog 200000`, the child
//! process): 27.6G instructions with two workers, 21.6G of them in fjall's
//! worker loop and its channel; 8.3G with three, 3.1G of them in the
//! workers (their flushes and compactions). One worker has no spin either,
//! but then a flush waits behind a compaction and memtables pile up: a
//! 1,000,000-message drain peaked at 98 MB of RSS against 62 MB with three.

/// The worker count for a fjall database syncmq opens.
pub(crate) fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(3, 4)
}
