//! The OpenAPI document matches what the server serves.

use crate::common::{Backend, seeded, send};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every documented operation exists: the server answers it with something other than
/// "no such route" or "method not allowed". And every route the tests know of is
/// documented.
#[tokio::test]
async fn every_documented_route_exists_and_every_route_is_documented() {
    let (_db, server) = seeded(Backend::Sqlite).await;
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(muster_web::api::openapi::DOCUMENT).unwrap()
    );
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            documented.push((method.to_uppercase(), path.clone()));
            let concrete = path.replace("{id}", "vendor-auth");
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = send(
                server
                    .request(method.clone(), &concrete)
                    .header("content-type", "application/json")
                    .body("{}"),
            )
            .await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}"
            );
            let no_route = status == StatusCode::NOT_FOUND
                && body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no API route"));
            assert!(
                !no_route,
                "{method} {concrete} is documented but not served"
            );
        }
    }
    for (method, path) in crate::auth::ROUTES {
        let templated = path
            .replace("identity", "{id}")
            .replace("ovr-x", "{override_id}")
            .replace("ik-x", "{key_id}")
            .replace("/acknowledge", "/{action}");
        assert!(
            documented
                .iter()
                .any(|(m, p)| m == method && *p == templated),
            "{method} {path} is served but not documented"
        );
    }
}
