//! Thread placement for the benches whose figure is two threads handing
//! messages to each other.
//!
//! On a machine with few cores the scheduler puts such a producer and
//! consumer on one core in some runs and on two in others, and the two
//! placements differ several times in rate: the same bench then swings
//! between two figures. Pinning the producer to one core and the consumer to
//! another, for the baseline and the case alike, measures one placement
//! every run. Any other thread (an adapter's own) keeps the CPUs the process
//! had, free to go where the scheduler puts it.

use std::mem;

/// Two CPUs this process may run on, the first two of its affinity mask;
/// `None` when it has fewer (then nothing is pinned).
pub fn two_cpus() -> Option<(usize, usize)> {
    let set = current()?;
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET reads a bit of a set we own; `cpu` is in range.
    let mut cpus = (0..max).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) });
    Some((cpus.next()?, cpus.next()?))
}

/// While alive, the calling thread runs on one CPU only; dropping it gives
/// the thread back the CPUs it had.
#[must_use = "the thread is unpinned when this drops"]
pub struct Pinned {
    before: Option<libc::cpu_set_t>,
}

/// Pins the calling thread to `cpu` (when `Some`) until the guard drops. A
/// refused pin leaves the thread where it was: the bench still runs, only
/// less steadily.
pub fn pin(cpu: Option<usize>) -> Pinned {
    let Some(cpu) = cpu else {
        return Pinned { before: None };
    };
    let before = current();
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET sets one bit of it.
    let mut only: libc::cpu_set_t = unsafe { mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut only) };
    if !set(&only) {
        eprintln!("bench: cannot pin a thread to CPU {cpu}; its runs may swing");
    }
    Pinned { before }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            set(before);
        }
    }
}

/// The calling thread's affinity mask.
fn current() -> Option<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and the call writes
    // at most size_of::<cpu_set_t>() bytes into it. Pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = mem::zeroed();
        let ok = libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &raw mut set) == 0;
        ok.then_some(set)
    }
}

/// Sets the calling thread's affinity mask; false when refused.
fn set(mask: &libc::cpu_set_t) -> bool {
    // SAFETY: the call reads size_of::<cpu_set_t>() bytes from a valid set.
    // Pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), mask) == 0 }
}
