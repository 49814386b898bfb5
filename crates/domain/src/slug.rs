//! Catalog ids are slugs: `[a-z0-9][a-z0-9-]*`, at most 63 characters.

pub const MAX_LEN: usize = 63;

/// Why `id` is not a slug, or `None` when it is one.
pub fn slug_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    if id.len() > MAX_LEN {
        return Some(format!("must be at most {MAX_LEN} characters"));
    }
    let mut chars = id.chars();
    let first = chars.next().unwrap_or('-');
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Some(format!(
            "{id:?} is not a slug: it must start with a lowercase letter or digit"
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "{id:?} is not a slug: {bad:?} is not allowed (use a-z, 0-9 and '-')"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_slug(id: &str) -> bool {
        slug_problem(id).is_none()
    }

    #[test]
    fn accepts_and_rejects() {
        assert!(is_slug("forms-printing"));
        assert!(is_slug("org-01"));
        assert!(is_slug("9lives"));
        assert!(!is_slug(""));
        assert!(!is_slug("-lead"));
        assert!(!is_slug("Upper"));
        assert!(!is_slug("a_b"));
        assert!(!is_slug("a b"));
        assert!(!is_slug(&"a".repeat(64)));
        assert!(slug_problem("a_b").unwrap().contains("'_'"));
    }

    proptest! {
        #[test]
        fn generated_slugs_are_accepted(s in "[a-z0-9][a-z0-9-]{0,40}") {
            prop_assert!(is_slug(&s));
        }

        #[test]
        fn anything_with_an_uppercase_letter_is_rejected(s in "[a-z]{0,5}[A-Z][a-z]{0,5}") {
            prop_assert!(!is_slug(&s));
        }
    }
}
