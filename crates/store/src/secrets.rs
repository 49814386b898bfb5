//! Sealing secrets at rest with ChaCha20-Poly1305 under a key kept outside the database
//! (a key file), so a copied database alone reveals no secret.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use muster_domain::catalog::apply::Sealer;
use muster_domain::catalog::secret::SEALED_PREFIX;
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
    fingerprint: String,
    /// Signs what Muster hands out instead of storing (acknowledgement links); derived
    /// from the key so that it is never the sealing key itself.
    signing_key: [u8; 32],
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> SecretBox {
        let mut material = b"muster secret key fingerprint v1\0".to_vec();
        material.extend_from_slice(&key);
        let fingerprint = hex::encode(Sha256::digest(&material));
        let mut material = b"muster signing key v1\0".to_vec();
        material.extend_from_slice(&key);
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            fingerprint,
            signing_key: Sha256::digest(&material).into(),
        }
    }

    /// HMAC-SHA256 of `message` for `purpose` (a MAC for one purpose never passes
    /// for another), base64url without padding.
    pub fn sign(&self, purpose: &str, message: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, message).finalize().into_bytes())
    }

    /// Whether `signature` is [`SecretBox::sign`]'s for `message`, compared in constant time.
    pub fn verify(&self, purpose: &str, message: &str, signature: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|mac| self.mac(purpose, message).verify_slice(&mac).is_ok())
    }

    fn mac(&self, purpose: &str, message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing_key)
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message.as_bytes());
        mac
    }

    /// Identifies the key without revealing it; the database records it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Reads an existing key file; never creates one.
    pub fn from_existing_key_file(path: &Path) -> Result<SecretBox, String> {
        if !path.exists() {
            return Err(format!(
                "no secret key file at {} (check --secret-key-file: it holds the key the database's secrets are sealed with)",
                path.display()
            ));
        }
        SecretBox::from_key_file(path)
    }

    /// Reads the key file, creating it (mode 0600) with a fresh random key if missing.
    pub fn from_key_file(path: &Path) -> Result<SecretBox, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| {
                    format!("secret key file {} is not 64 hex digits", path.display())
                })?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    format!("secret key file {} is not 64 hex digits", path.display())
                })?;
                Ok(SecretBox::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_bytes::<32>();
                write_private(path, &hex::encode(key)).map_err(|e| {
                    format!("cannot create secret key file {}: {e}", path.display())
                })?;
                tracing::info!(path = %path.display(), "created a new secret key file; keep it with backups of the database");
                Ok(SecretBox::from_key(key))
            }
            Err(e) => Err(format!(
                "cannot read secret key file {}: {e}",
                path.display()
            )),
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

impl Sealer for SecretBox {
    fn seal(&self, plain: &str) -> String {
        let nonce = random_bytes::<12>();
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("ChaCha20-Poly1305 encryption does not fail for in-memory input");
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(blob))
    }

    fn open(&self, sealed: &str) -> Option<String> {
        let blob = STANDARD.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if blob.len() < 12 {
            return None;
        }
        let (nonce, data) = blob.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), data).ok()?;
        String::from_utf8(plain).ok()
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

/// A random string of `len` characters from `[a-z0-9]`.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<32>() {
            // Reject the top of the range so every character is equally likely.
            if (b as usize) < 252 && out.len() < len {
                out.push(ALPHABET[b as usize % 36] as char);
            }
        }
    }
    out
}

/// SHA-256 hex of a credential: what the database keeps of tokens and session ids.
pub fn credential_hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_hold_only_for_their_message_purpose_and_key() {
        let sb = SecretBox::from_key([7; 32]);
        let signature = sb.sign("ack", "42.dana");
        assert!(sb.verify("ack", "42.dana", &signature));
        assert!(!sb.verify("ack", "43.dana", &signature));
        assert!(!sb.verify("ack", "42.eli", &signature));
        assert!(!sb.verify("other", "42.dana", &signature));
        assert!(!sb.verify("ack", "42.dana", "not base64!"));
        assert!(!sb.verify("ack", "42.dana", &signature[..20]));
        assert!(!SecretBox::from_key([8; 32]).verify("ack", "42.dana", &signature));
    }

    #[test]
    fn seals_and_opens() {
        let sb = SecretBox::from_key([7; 32]);
        let sealed = sb.seal("https://hooks.example.test/abc");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("hooks"));
        assert_ne!(
            sealed,
            sb.seal("https://hooks.example.test/abc"),
            "fresh nonce each time"
        );
        assert_eq!(
            sb.open(&sealed).as_deref(),
            Some("https://hooks.example.test/abc")
        );
        assert_eq!(
            SecretBox::from_key([8; 32]).open(&sealed),
            None,
            "another key opens nothing"
        );
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = std::env::temp_dir().join(format!("muster-key-{}", random_token(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("muster.key");
        let a = SecretBox::from_key_file(&path).unwrap();
        let b = SecretBox::from_key_file(&path).unwrap();
        assert_eq!(b.open(&a.seal("x")).as_deref(), Some("x"));
        std::fs::write(&path, "nope").unwrap();
        assert!(SecretBox::from_key_file(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tokens_use_the_alphabet() {
        let t = random_token(40);
        assert_eq!(t.len(), 40);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
