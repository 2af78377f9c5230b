//! [`IdMap`] and [`IdSet`]: hash maps keyed by the engine's own numbers
//! (entry ids, sequences, subscriber ids), with a multiply-and-rotate
//! hasher instead of std's `SipHash`.
//!
//! Taking and acking an entry looks it up about ten times (in flight,
//! delivery counts, the prefetched bodies); with `SipHash` that was about
//! 3,000 instructions per drained message, a sixth of the engine's share.
//! `SipHash`'s keyed hashing guards maps whose keys an attacker chooses; these
//! keys are handed out by the engine itself, so the hash needs only to
//! spread them (the multiplier is `FxHash`'s, from the Rust compiler).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map keyed by engine-assigned numbers.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A hash set of engine-assigned numbers.
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// Mixes each integer in with a rotate, an xor and a multiply.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

/// `FxHash`'s multiplier: odd, with its bits spread, so that neighbouring
/// ids land far apart.
const MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::EntryId;

    #[test]
    fn neighbouring_ids_hash_apart() {
        let hash = |id: EntryId| {
            use std::hash::BuildHasher;
            BuildHasherDefault::<IdHasher>::default().hash_one(id)
        };
        let ids = (0..1000u64).map(|position| EntryId {
            priority: 0,
            position,
            delivery: 0,
        });
        let hashes: HashSet<u64> = ids.map(hash).collect();
        assert_eq!(hashes.len(), 1000);
        let mut map: IdMap<EntryId, u32> = IdMap::default();
        map.insert(
            EntryId {
                priority: 1,
                position: 7,
                delivery: 0,
            },
            3,
        );
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [3]);
    }
}
