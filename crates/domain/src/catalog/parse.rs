//! Reading catalog documents and entities from YAML or JSON. Shape errors name the path
//! of the field at fault (`services[3].tier: invalid type…`).

use super::model::Catalog;
use crate::problem::{FieldError, FieldErrors};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest document accepted anywhere (HTTP bodies are limited before this).
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON for `application/json` (or `…+json`), YAML otherwise: YAML is the catalog's
    /// own format and a superset of JSON.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(ct) if ct.split(';').next().unwrap_or("").trim().ends_with("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Parses text into a JSON value, reporting syntax errors with line and column.
pub fn parse_value(text: &str, format: Format) -> Result<Value, FieldErrors> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(FieldError::new(
            "",
            format!("document is larger than {MAX_DOCUMENT_BYTES} bytes"),
        )
        .into());
    }
    match format {
        Format::Json => serde_json::from_str(text)
            .map_err(|e| FieldError::new("", format!("invalid JSON: {e}")).into()),
        // YAML 1.2 booleans only: a name such as `N` or `No` stays a string.
        Format::Yaml => serde_saphyr::from_str_with_options::<Value>(
            text,
            serde_saphyr::options! { strict_booleans: true },
        )
        .map_err(|e| FieldError::new("", format!("invalid YAML: {e}")).into()),
    }
}

/// Converts a JSON value into `T`, naming the path of the first field that does not fit.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, FieldErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = plain_words(&e.into_inner().to_string());
        // serde names a missing or unknown field in the message, at its parent's path:
        // move the field into the path, so the error names the field itself.
        let field = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next());
        match field {
            Some(field) if !path.ends_with(field) => {
                let path = if path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                FieldError::new(path, message)
            }
            _ => FieldError::new(path, message),
        }
        .into()
    })
}

/// serde's messages with Rust type names said in words.
fn plain_words(message: &str) -> String {
    [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("unknown variant", "unknown value"),
    ]
    .iter()
    .fold(message.to_string(), |m, (rust, words)| {
        m.replace(rust, words)
    })
}

/// Parses a whole catalog document.
pub fn parse_catalog(text: &str, format: Format) -> Result<Catalog, FieldErrors> {
    catalog_from_value(parse_value(text, format)?)
}

/// Reads a catalog from an already parsed document: shape errors (wrong types, unknown
/// fields, a wrong version) name their path.
pub fn catalog_from_value(value: Value) -> Result<Catalog, FieldErrors> {
    if value.is_null() {
        return Err(FieldError::new("", "the document is empty").into());
    }
    if !value.is_object() {
        return Err(FieldError::new(
            "",
            "a catalog document must be a mapping of sections (teams, people, services, …)",
        )
        .into());
    }
    let catalog: Catalog = from_value(value)?;
    if catalog.version != super::model::FORMAT_VERSION {
        return Err(FieldError::new(
            "version",
            format!(
                "unsupported catalog format version {} (this Muster reads version {})",
                catalog.version,
                super::model::FORMAT_VERSION
            ),
        )
        .into());
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_path_of_a_misplaced_field() {
        let err = parse_catalog(
            "services:\n  - {id: a, name: A, owner: t, tier: high}\n",
            Format::Yaml,
        )
        .unwrap_err();
        assert_eq!(err.0[0].path, "services[0].tier", "{err}");
    }

    #[test]
    fn reports_unknown_fields_as_typos() {
        let err =
            parse_catalog("services:\n  - {id: a, name: A, ownr: t}\n", Format::Yaml).unwrap_err();
        assert!(err.0[0].message.contains("unknown field `ownr`"), "{err}");
        assert!(err.0[0].path.starts_with("services[0]"), "{err}");
    }

    #[test]
    fn names_missing_fields_and_says_types_in_words() {
        let err = parse_catalog("services:\n  - {id: a, name: A}\n", Format::Yaml).unwrap_err();
        assert_eq!(err.to_string(), "services[0].owner: missing field `owner`");
        let err = parse_catalog(
            "services:\n  - {id: a, name: A, owner: t, tier: -1}\n",
            Format::Yaml,
        )
        .unwrap_err();
        assert!(err.0[0].message.contains("a whole number"), "{err}");
        let err = parse_catalog(
            "people:\n  - {id: a, name: A, timezone: UTC, contacts: [{type: sms, to: x}]}\n",
            Format::Yaml,
        )
        .unwrap_err();
        assert!(err.0[0].message.starts_with("unknown value `sms`"), "{err}");
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse_catalog("teams: [\n", Format::Yaml).unwrap_err();
        assert!(err.0[0].message.starts_with("invalid YAML"), "{err}");
        let err = parse_catalog("{\"teams\": ", Format::Json).unwrap_err();
        assert!(err.0[0].message.contains("line 1"), "{err}");
    }

    #[test]
    fn rejects_empty_and_non_mapping_documents() {
        assert!(parse_catalog("", Format::Yaml).is_err());
        assert!(parse_catalog("- a\n- b\n", Format::Yaml).is_err());
        assert!(parse_catalog("version: 2\n", Format::Yaml).unwrap_err().0[0].path == "version");
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let c = parse_catalog(
            "organisations: [{id: no, name: N}, {id: y, name: off}]\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(
            (
                c.organisations[0].id.as_str(),
                c.organisations[0].name.as_str()
            ),
            ("no", "N")
        );
        assert_eq!(c.organisations[1].name, "off");
    }

    #[test]
    fn content_type_picks_the_format() {
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/problem+json")),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/yaml")),
            Format::Yaml
        );
        assert_eq!(Format::from_content_type(None), Format::Yaml);
    }
}
