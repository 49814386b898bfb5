//! X.509 certificates wherever they are: parsed into what Muster tracks, and found in
//! any byte stream — PEM blocks anywhere (not only at a line start, as PEM readers
//! expect: certificates compiled into binaries sit mid-line among other strings) and
//! raw DER.

use base64::Engine;
use jiff::Timestamp;
use memchr::memmem;
use muster_domain::renewals::probes::Certificate;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";
/// The most a PEM certificate block may span (a large certificate is a few KiB).
const MAX_PEM: usize = 64 * 1024;

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What Muster tracks of a DER certificate.
pub fn certificate_of(der: &[u8]) -> Result<Certificate, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let time = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_second(t.timestamp()).map_err(|e| e.to_string())
    };
    let validity = cert.validity();
    Ok(Certificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex::encode_upper(cert.raw_serial()),
        not_before: time(validity.not_before)?,
        not_after: time(validity.not_after)?,
        spki_sha256: sha256(cert.public_key().raw),
    })
}

/// A certificate found in a byte stream: where it starts, and its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub offset: usize,
    pub der: Vec<u8>,
}

/// Every certificate in `bytes`, PEM or raw DER, in order of where it starts.
pub fn find(bytes: &[u8]) -> Vec<Found> {
    let mut found = pem_blocks(bytes);
    found.extend(der_certificates(bytes));
    found.sort_by_key(|f| f.offset);
    found
}

fn pem_blocks(bytes: &[u8]) -> Vec<Found> {
    let mut found = Vec::new();
    for start in memmem::find_iter(bytes, PEM_BEGIN) {
        let body_start = start + PEM_BEGIN.len();
        let window = &bytes[body_start..bytes.len().min(body_start + MAX_PEM)];
        let Some(end) = memmem::find(window, PEM_END) else {
            continue;
        };
        // Base64 across lines, possibly escaped as in source code ("\n" written out).
        let text = String::from_utf8_lossy(&window[..end]).replace("\\n", "\n");
        let clean: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
            .collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(clean.as_bytes())
            && X509Certificate::from_der(&der).is_ok()
        {
            found.push(Found { offset: start, der });
        }
    }
    found
}

/// Raw DER certificates: a SEQUENCE with a two-byte length (`30 82 hi lo`) that parses
/// whole as a certificate.
fn der_certificates(bytes: &[u8]) -> Vec<Found> {
    let mut found = Vec::new();
    let mut next_free = 0;
    for start in memmem::find_iter(bytes, &[0x30, 0x82]) {
        if start < next_free || start + 4 > bytes.len() {
            continue;
        }
        let length = u16::from_be_bytes([bytes[start + 2], bytes[start + 3]]) as usize + 4;
        let Some(candidate) = bytes.get(start..start + length) else {
            continue;
        };
        // A certificate's first field is another SEQUENCE (the TBS certificate).
        if candidate.get(4) != Some(&0x30) {
            continue;
        }
        if let Ok((rest, _)) = X509Certificate::from_der(candidate)
            && rest.is_empty()
        {
            found.push(Found {
                offset: start,
                der: candidate.to_vec(),
            });
            next_free = start + length;
        }
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for `name`.
    pub(crate) fn certificate(name: &str) -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
    }

    #[test]
    fn certificates_are_found_mid_line_and_as_raw_der() {
        let one = certificate("one.test");
        let two = certificate("two.test");
        let three = certificate("three.test");
        let mut blob = b"\x7fELF\x00junk const char *cert = \"".to_vec();
        blob.extend(one.pem().replace('\n', "\\n").as_bytes());
        blob.extend(b"\"; more junk ");
        blob.extend(two.pem().as_bytes());
        blob.extend(b"\x00\x01\x30\x82\x00");
        let der_at = blob.len();
        blob.extend(three.der().as_ref());
        blob.extend(b"\x30\x82\xff\xff trailing");
        let found = find(&blob);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].der, one.der().as_ref());
        assert_eq!(found[1].der, two.der().as_ref());
        assert_eq!(found[2].offset, der_at);
        let parsed = certificate_of(&found[2].der).unwrap();
        assert!(parsed.spki_sha256.starts_with("sha256:"));
        assert_eq!(parsed.spki_sha256.len(), 7 + 64);
        assert!(certificate_of(b"\x30\x82\x00\x01\x00").is_err());
    }
}
