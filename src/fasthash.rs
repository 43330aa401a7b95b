//! The hasher of in-process maps and keys on the per-comment path: foldhash, a fraction of
//! SipHash's cost on short keys (the profile at 100k comments/s had SipHash and map lookups
//! above classifying). Seeded at random once per process: never for anything persisted or
//! compared across processes, whose values would change between runs and versions.

use std::hash::{BuildHasher, Hash};
use std::sync::LazyLock;

/// The build hasher of in-process maps.
pub type State = foldhash::fast::RandomState;

/// A std map on [`State`].
pub type HashMap<K, V> = std::collections::HashMap<K, V, State>;

/// A std set on [`State`].
pub type HashSet<K> = std::collections::HashSet<K, State>;

/// A dashmap on [`State`].
pub type DashMap<K, V> = dashmap::DashMap<K, V, State>;

static KEYS: LazyLock<State> = LazyLock::new(State::default);

/// `v` hashed to a map key, the same for equal values for the life of the process.
pub fn key(v: impl Hash) -> u64 {
    KEYS.hash_one(v)
}

/// A hasher giving the same values as [`key`], to feed piece by piece. (Each [`State`] has
/// its own seed: a fresh one would not.)
pub fn hasher() -> foldhash::fast::FoldHasher<'static> {
    KEYS.build_hasher()
}
