//! A fixed set of independently locked hash maps, so that unrelated rooms never wait on one lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use parking_lot::Mutex;

/// Keys are client-chosen, so hashing is seeded per process; foldhash is several times faster
/// than SipHash on short keys and is what the admission hot path spends most of its time in.
pub(crate) type FastHasher = foldhash::fast::RandomState;
pub(crate) type FastMap<K, V> = HashMap<K, V, FastHasher>;

/// Enough shards that two cores (or sixty-four) rarely meet on one lock; a power of two so the
/// shard index is a mask.
const SHARDS: usize = 64;

#[derive(Debug)]
pub(crate) struct ShardedMap<K, V> {
    hasher: FastHasher,
    shards: Box<[Mutex<FastMap<K, V>>]>,
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            hasher: FastHasher::default(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FastMap::default()))
                .collect(),
        }
    }

    /// The shard that owns `key`.
    pub(crate) fn shard(&self, key: &K) -> &Mutex<FastMap<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        &self.shards[index]
    }

    pub(crate) fn shards(&self) -> impl Iterator<Item = &Mutex<FastMap<K, V>>> {
        self.shards.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
