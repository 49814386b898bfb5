//! Secret catalog fields (webhook secrets, chat webhook URLs). They are sealed before
//! storage, exported as `"<redacted>"`, and an import carrying `"<redacted>"` keeps the
//! stored value, so an export re-imports without losing them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const REDACTED: &str = "<redacted>";
/// Prefix of a sealed value as stored; never accepted from outside.
pub const SEALED_PREFIX: &str = "sealed:v1:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// Clear text, as a user typed it; sealed before it is stored.
    Plain(String),
    /// Encrypted, as stored.
    Sealed(String),
    /// "Keep whatever is stored."
    Redacted,
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Secret::Plain(text) => s.serialize_str(text),
            Secret::Sealed(sealed) => s.serialize_str(sealed),
            Secret::Redacted => s.serialize_str(REDACTED),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(if text == REDACTED {
            Secret::Redacted
        } else if text.starts_with(SEALED_PREFIX) {
            Secret::Sealed(text)
        } else {
            Secret::Plain(text)
        })
    }
}
