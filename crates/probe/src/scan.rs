//! Certificates inside shipped builds: X.509 certificates (PEM anywhere in a byte
//! stream, raw DER) and SPKI pin strings (`sha256/<base64>`, as OkHttp and HPKP write
//! them) in files, binaries and zip, jar and apk archives (nested ones too). A file
//! that cannot be read or an archive that is corrupt is a warning; the scan goes on.

use crate::certificates::{self, certificate_of};
use base64::Engine;
use memchr::memmem;
use muster_domain::renewals::probes::Certificate;
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How deep archives inside archives are opened.
const MAX_DEPTH: usize = 4;
/// The largest archive entry read (bigger ones are skipped with a warning).
const MAX_ENTRY: u64 = 64 << 20;
/// The most one file's archives may expand to, nested ones included (a zip bomb stops
/// here with a warning).
const MAX_EXPANDED: u64 = 1 << 30;
const PIN_PREFIX: &[u8] = b"sha256/";
/// Base64 of 32 bytes: 43 characters and one `=`.
const PIN_LENGTH: usize = 44;

/// What was found where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// The file, and inside archives the entry after `!/` (`app.apk!/res/raw/api.der`).
    pub path: String,
    /// Byte offset within the file or entry.
    pub offset: usize,
    #[serde(flatten)]
    pub found: Found,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Found {
    Certificate(Certificate),
    /// A pin string: the SPKI SHA-256 it pins.
    Pin {
        pin: String,
        spki_sha256: String,
    },
}

impl Found {
    pub fn spki_sha256(&self) -> &str {
        match self {
            Found::Certificate(c) => &c.spki_sha256,
            Found::Pin { spki_sha256, .. } => spki_sha256,
        }
    }
}

/// A scan's findings, and what it could not read.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub hits: Vec<Hit>,
    pub warnings: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    /// Bytes the current file's archives expanded to so far.
    #[serde(skip)]
    expanded: u64,
}

/// Scans `paths` (files, and directories recursively; symbolic links are not
/// followed), calling `progress` after each file.
pub fn scan_paths(paths: &[PathBuf], progress: &mut dyn FnMut(&Report)) -> Report {
    let mut report = Report::default();
    for path in paths {
        walk(path, &mut report, progress);
    }
    report
}

fn walk(path: &Path, report: &mut Report, progress: &mut dyn FnMut(&Report)) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            report.warnings.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                report.warnings.push(format!("{}: {e}", path.display()));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            walk(&child, report, progress);
        }
    } else if meta.is_file() {
        match std::fs::read(path) {
            Ok(bytes) => {
                report.files += 1;
                report.bytes += bytes.len() as u64;
                report.expanded = 0;
                scan_bytes(&path.display().to_string(), &bytes, 0, report);
            }
            Err(e) => report.warnings.push(format!("{}: {e}", path.display())),
        }
        progress(report);
    }
}

/// Scans one byte stream named `label`: an archive by its entries (its compressed
/// bytes say nothing), anything else — a corrupt archive too — by its bytes.
pub fn scan_bytes(label: &str, bytes: &[u8], depth: usize, report: &mut Report) {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        if depth >= MAX_DEPTH {
            report.warnings.push(format!(
                "{label}: archives nested deeper than {MAX_DEPTH} are not opened"
            ));
        } else {
            match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
                Ok(archive) => return scan_archive(label, archive, depth, report),
                Err(e) => report
                    .warnings
                    .push(format!("{label}: corrupt archive: {e}")),
            }
        }
    }
    for found in certificates::find(bytes) {
        if let Ok(certificate) = certificate_of(&found.der) {
            report.hits.push(Hit {
                path: label.to_string(),
                offset: found.offset,
                found: Found::Certificate(certificate),
            });
        }
    }
    for (offset, pin, spki) in pins(bytes) {
        report.hits.push(Hit {
            path: label.to_string(),
            offset,
            found: Found::Pin {
                pin,
                spki_sha256: spki,
            },
        });
    }
}

fn scan_archive(
    label: &str,
    mut archive: zip::ZipArchive<std::io::Cursor<&[u8]>>,
    depth: usize,
    report: &mut Report,
) {
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(entry) => entry,
            Err(e) => {
                report.warnings.push(format!("{label}: entry {i}: {e}"));
                continue;
            }
        };
        if entry.is_dir() {
            continue;
        }
        let name = format!("{label}!/{}", entry.name());
        if entry.size() > MAX_ENTRY {
            report.warnings.push(format!(
                "{name}: {} bytes, larger than scanned",
                entry.size()
            ));
            continue;
        }
        // Declared sizes can lie: read at most what is left of the budget, plus one
        // byte to notice going over it.
        let left = MAX_ENTRY.min(MAX_EXPANDED.saturating_sub(report.expanded));
        let mut content = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        if let Err(e) = entry.by_ref().take(left + 1).read_to_end(&mut content) {
            report.warnings.push(format!("{name}: corrupt entry: {e}"));
            continue;
        }
        drop(entry);
        if content.len() as u64 > left {
            report.warnings.push(format!(
                "{name}: expands past what is scanned ({} MiB per entry, {} MiB per file): the rest of {label} is not scanned",
                MAX_ENTRY >> 20,
                MAX_EXPANDED >> 20
            ));
            return;
        }
        report.expanded += content.len() as u64;
        report.bytes += content.len() as u64;
        scan_bytes(&name, &content, depth + 1, report);
    }
}

/// `sha256/<base64 of 32 bytes>` strings: (offset, the pin, `sha256:<hex>`).
fn pins(bytes: &[u8]) -> Vec<(usize, String, String)> {
    let engine = base64::engine::general_purpose::STANDARD;
    memmem::find_iter(bytes, PIN_PREFIX)
        .filter_map(|offset| {
            let start = offset + PIN_PREFIX.len();
            let text = bytes.get(start..start + PIN_LENGTH)?;
            let digest = engine.decode(text).ok().filter(|d| d.len() == 32)?;
            // A longer base64 run is something else that happens to start alike.
            let next = bytes.get(start + PIN_LENGTH);
            if next.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')) {
                return None;
            }
            let pin = format!("sha256/{}", String::from_utf8_lossy(text));
            Some((offset, pin, format!("sha256:{}", hex::encode(digest))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::tests::certificate;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            out.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn certificates_and_pins_are_found_in_archives_inside_archives() {
        let api = certificate("api.test");
        let pin_digest = [7u8; 32];
        let pin = format!(
            "sha256/{}",
            base64::engine::general_purpose::STANDARD.encode(pin_digest)
        );
        let config = format!("const PINS = [\"{pin}\"];");
        let inner = zip_of(&[
            ("classes.dex", config.as_bytes()),
            ("res/raw/api.der", api.der()),
        ]);
        let apk = zip_of(&[("lib/inner.jar", &inner), ("README", b"nothing here")]);
        let mut report = Report::default();
        scan_bytes("app.apk", &apk, 0, &mut report);
        let places: Vec<String> = report
            .hits
            .iter()
            .map(|h| format!("{} {}", h.path, h.found.spki_sha256().len()))
            .collect();
        assert_eq!(
            places,
            [
                "app.apk!/lib/inner.jar!/classes.dex 71",
                "app.apk!/lib/inner.jar!/res/raw/api.der 71",
            ]
        );
        assert_eq!(
            report.hits[0].found,
            Found::Pin {
                pin,
                spki_sha256: format!("sha256:{}", hex::encode(pin_digest))
            }
        );
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn a_corrupt_archive_is_a_warning_and_its_bytes_are_still_scanned() {
        let api = certificate("api.test");
        let mut broken = b"PK\x03\x04 truncated ".to_vec();
        broken.extend(api.pem().as_bytes());
        let mut report = Report::default();
        scan_bytes("broken.jar", &broken, 0, &mut report);
        assert_eq!(report.hits.len(), 1, "the PEM in its bytes");
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].starts_with("broken.jar: corrupt archive"),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn pin_lookalikes_are_not_pins() {
        let digest = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let text = format!("sha256/{digest} sha256/{digest}AAAA sha256/short=");
        let found = pins(text.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 0);
    }
}
