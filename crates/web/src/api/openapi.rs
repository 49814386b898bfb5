//! `GET /api/openapi.json`: the OpenAPI 3.1 description of every `/api/v1` route. The
//! document is kept by hand beside the code (`crates/web/openapi.json`); tests check
//! that it parses, that every route it names answers, and that every route the router
//! serves is in it.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use serde_json::Value;

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_well_formed() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("local schema refs");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} resolves"
            );
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item
                .as_object()
                .unwrap()
                .iter()
                .filter(|(m, _)| *m != "parameters")
            {
                let responses = op["responses"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{method} {path} has responses"));
                // Public operations (the calendar feed: its link is its credential)
                // say so with an empty `security`; everything else is under /api/v1.
                let public = op["security"].as_array().is_some_and(|s| s.is_empty());
                assert!(
                    public || path.starts_with("/api/v1/"),
                    "{path} is under /api/v1 or public"
                );
                assert!(
                    public || responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path} has an operationId"
                );
            }
        }
    }
}
