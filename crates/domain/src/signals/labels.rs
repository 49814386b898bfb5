//! Label sets and Alertmanager's fingerprint of them.

use std::collections::BTreeMap;

/// Labels (or annotations): names to values, kept sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// Alertmanager's fingerprint: FNV-1a 64 over the labels sorted by name, each written
/// as `name 0xFF value 0xFF`, printed as 16 hex digits.
pub fn fingerprint(labels: &LabelSet) -> String {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut hash = OFFSET;
    let mut write = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        write(name.as_bytes());
        write(&[0xFF]);
        write(value.as_bytes());
        write(&[0xFF]);
    }
    format!("{hash:016x}")
}

/// Alertmanager 0.25's label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprints_match_alertmanager() {
        assert_eq!(fingerprint(&LabelSet::new()), "cbf29ce484222325");
        assert_eq!(fingerprint(&set(&[("alertname", "x")])), "d240efc3896bf266");
    }

    #[test]
    fn label_names_follow_the_classic_rule() {
        assert!(valid_name("alertname") && valid_name("_x1"));
        assert!(!valid_name("1bad") && !valid_name("") && !valid_name("a-b"));
    }

    proptest! {
        /// Insertion order never matters, and changing any one value changes the
        /// fingerprint (so one alert never takes over another's identity).
        #[test]
        fn fingerprint_is_stable_and_distinguishing(
            pairs in proptest::collection::vec(("[a-z]{1,5}", "[a-z=]{0,5}"), 1..8),
            pick in any::<proptest::sample::Index>(),
        ) {
            let forward: LabelSet = pairs.iter().cloned().collect();
            let mut backward = LabelSet::new();
            for (name, value) in forward.iter().rev() {
                backward.insert(name.clone(), value.clone());
            }
            prop_assert_eq!(fingerprint(&forward), fingerprint(&backward));
            let name = pick.get(&forward.keys().cloned().collect::<Vec<_>>()).clone();
            let mut changed = forward.clone();
            changed.get_mut(&name).unwrap().push('!');
            prop_assert_ne!(fingerprint(&forward), fingerprint(&changed));
        }
    }
}
