//! Shipped builds that pin certificates: an artifact version (`desktop-client 0.9.1`)
//! records the certificates and SPKI pins found inside it. A certificate renewal whose
//! new key differs from a key pinned by an artifact still in use breaks those clients:
//! Muster warns when it is received and asks for an acknowledgement before `applied`.
//! A pinned certificate's own expiry is the date the artifact breaks, tracked as a
//! renewable.

use crate::slug::slug_problem;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A key an artifact pins: a whole certificate, or a pin string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub path: String,
    pub offset: i64,
    /// `certificate` or `pin`.
    pub kind: String,
    pub spki_sha256: String,
    pub subject: Option<String>,
    pub not_after: Option<Timestamp>,
}

/// An artifact version's id: `desktop-client@0.9.1`.
pub fn artifact_id(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

/// Why an artifact name or version cannot be registered, naming the field.
pub fn check_artifact(name: &str, version: &str) -> Result<(), (String, String)> {
    if let Some(problem) = slug_problem(name) {
        return Err(("artifact".into(), problem));
    }
    let version_ok = !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
    if !version_ok {
        return Err((
            "version".into(),
            format!("{version:?} is not a version: 1 to 64 of a-z, A-Z, 0-9, '.', '-', '+', '_'"),
        ));
    }
    Ok(())
}

/// The renewable that tracks a pinned certificate's expiry — the date `artifact`
/// `version` stops working — owned by `owner`; none for a bare pin (it has no date).
pub fn pinned_renewable(name: &str, version: &str, owner: &str, pin: &Pin) -> Option<Value> {
    let not_after = pin.not_after?;
    let key = pin.spki_sha256.trim_start_matches("sha256:");
    let version_slug: String = version
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut id = format!("pin-{name}-{version_slug}");
    id.truncate(63 - 13);
    let id = format!("{}-{}", id.trim_end_matches('-'), &key[..key.len().min(12)]);
    Some(json!({
        "id": id,
        "name": format!(
            "{} pinned in {name} {version}",
            pin.subject.as_deref().unwrap_or("certificate")
        ),
        "kind": "certificate",
        "owner": owner,
        "expires_at": not_after.to_string(),
        "targets": [{"name": artifact_id(name, version)}],
        "artifact": artifact_id(name, version),
        "spki_sha256": pin.spki_sha256,
    }))
}

/// The warning a renewal received with `new_identity` earns when artifacts still in
/// use pin other keys: "desktop-client 0.9.1 pins SPKI sha256:…; the new certificate
/// has another key; those clients will fail". `pinned` is (artifact id, key) of each
/// key pinned by an artifact in use that this renewable's current item has.
pub fn pin_warning(pinned: &[(String, String)], new_identity: Option<&str>) -> Option<String> {
    let broken: Vec<String> = pinned
        .iter()
        .filter(|(_, key)| Some(key.as_str()) != new_identity)
        .map(|(artifact, key)| format!("{} pins SPKI {key}", artifact.replace('@', " ")))
        .collect();
    if broken.is_empty() {
        return None;
    }
    let new_key = match new_identity {
        Some(key) => format!("the new certificate has another key ({key})"),
        None => "the new certificate's key was not recorded".to_string(),
    };
    Some(format!(
        "{}; {new_key}; those clients will fail",
        broken.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> Pin {
        Pin {
            path: "client.exe".into(),
            offset: 4096,
            kind: "certificate".into(),
            spki_sha256: format!("sha256:{}", "ab".repeat(32)),
            subject: Some("CN=api.example.test".into()),
            not_after: Some("2027-01-15T00:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn a_pinned_certificate_is_tracked_as_a_renewable_and_a_bare_pin_is_not() {
        let entity = pinned_renewable("desktop-client", "0.9.1", "platform", &pin()).unwrap();
        assert_eq!(entity["id"], "pin-desktop-client-0-9-1-abababababab");
        assert_eq!(entity["expires_at"], "2027-01-15T00:00:00Z");
        assert_eq!(
            entity["name"],
            "CN=api.example.test pinned in desktop-client 0.9.1"
        );
        assert!(crate::renewals::Renewable::read(&entity).is_ok());
        let bare = Pin {
            not_after: None,
            kind: "pin".into(),
            ..pin()
        };
        assert!(pinned_renewable("desktop-client", "0.9.1", "platform", &bare).is_none());
        let long = pinned_renewable(&"a".repeat(60), "1.0", "platform", &pin()).unwrap();
        assert!(
            slug_problem(long["id"].as_str().unwrap()).is_none(),
            "{long}"
        );
    }

    #[test]
    fn another_key_than_pinned_warns_naming_the_artifact() {
        let pinned = vec![("desktop-client@0.9.1".to_string(), "sha256:old".to_string())];
        assert_eq!(
            pin_warning(&pinned, Some("sha256:new")).unwrap(),
            "desktop-client 0.9.1 pins SPKI sha256:old; the new certificate has another key (sha256:new); those clients will fail"
        );
        assert_eq!(
            pin_warning(&pinned, Some("sha256:old")),
            None,
            "the key was kept"
        );
        assert_eq!(pin_warning(&[], Some("sha256:new")), None);
        assert_eq!(check_artifact("Desktop", "1").unwrap_err().0, "artifact");
        assert_eq!(check_artifact("desktop", "1 2").unwrap_err().0, "version");
    }
}
