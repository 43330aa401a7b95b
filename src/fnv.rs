//! FNV-1a, 64 bits: a hash written down, so every process and every version agrees on it
//! (room partitions, alert ids). std's `DefaultHasher` is SipHash with keys that may change
//! between releases: fine in memory, wrong for anything another process must recompute.

/// FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn published_test_vectors() {
        // A change here moves every room to another partition and renames every alert.
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
