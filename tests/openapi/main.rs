//! The OpenAPI document at `/openapi.json`: valid by an independent
//! validator, covering every route the router serves and nothing it does
//! not, describing the bodies the API really sends, and browsable at
//! `/docs` from this server alone.

mod conformance;
mod docs;
mod permissions;
mod routes;
mod schemathesis;
mod validity;

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::Value;

/// The document as the app serves it.
pub async fn served_document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(
        response.headers["content-type"], "application/json",
        "the document's media type"
    );
    assert!(
        response.body.is_object(),
        "the document is a JSON object: {}",
        response.body
    );
    response.body
}

pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `(method, path template)` the document names.
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has paths");
    let mut found = Vec::new();
    for (path, item) in paths {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                found.push((method.to_string(), path.clone()));
            }
        }
    }
    found
}
