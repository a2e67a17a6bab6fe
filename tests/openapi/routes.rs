//! The document and the router describe the same routes: every documented
//! operation is answered by a route (not the 404 fallback, not a 405), no
//! documented path answers a method the document does not name, and the
//! api crate has no way to register a route but from a handler's
//! `#[utoipa::path]` annotation.

use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode};
use integration_tests::{TestApp, TestResponse};
use uuid::Uuid;

use crate::{operations, served_document, METHODS};

/// A concrete path for a template: ids are new UUIDs, so nothing is found,
/// but a route answers.
fn concrete(template: &str) -> String {
    let mut path = String::new();
    for segment in template.split('/').skip(1) {
        path.push('/');
        match segment {
            "{aggregate_type}" => path.push_str("User"),
            "{file}" => path.push_str("swagger-ui.css"),
            s if s.starts_with('{') => path.push_str(&Uuid::new_v4().to_string()),
            s => path.push_str(s),
        }
    }
    path
}

fn is_fallback(response: &TestResponse) -> bool {
    response.status == StatusCode::NOT_FOUND && response.body["error"]["message"] == "no such route"
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    // One anonymous client calls every operation: no rate limit in the way.
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_SECOND", "0")]).await;
    let document = served_document(&app).await;
    let operations = operations(&document);
    // 29 when this test was written: a check that the document is not
    // empty, not a count to keep up to date.
    assert!(
        operations.len() >= 29,
        "only {} operations",
        operations.len()
    );

    // The detector works: a path the router does not know reaches the
    // fallback.
    let unknown = app.get("/api/v1/no-such-thing", None).await;
    assert!(is_fallback(&unknown), "{} {}", unknown.status, unknown.body);

    for (method, template) in &operations {
        let path = concrete(template);
        let method: Method = method.to_uppercase().parse().unwrap();
        let response = app.request(method.clone(), &path, None, None, &[]).await;
        assert!(
            !is_fallback(&response) && response.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template} is documented but not served: {} {}",
            response.status,
            response.body
        );
    }
}

#[tokio::test]
async fn no_documented_path_answers_an_undocumented_method() {
    // Every path with every method it lacks: more than the rate limit's
    // burst, which would answer first.
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_SECOND", "0")]).await;
    let document = served_document(&app).await;
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                continue;
            }
            let path = concrete(template);
            let response = app
                .request(
                    method.to_uppercase().parse().unwrap(),
                    &path,
                    None,
                    None,
                    &[],
                )
                .await;
            assert_eq!(
                response.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{} {template} answers but is not documented: {}",
                method.to_uppercase(),
                response.body
            );
        }
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The router is built only with `OpenApiRouter::routes(routes!(…))`,
/// which takes a handler's annotation, so a route cannot exist without its
/// entry in the document. Any axum way around it is refused here.
#[test]
fn routes_are_registered_only_from_annotations() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src");
    let mut files = Vec::new();
    rust_files(&source, &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let forbidden = [
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".fallback_service(",
        "Router::new(",
        "axum::routing",
        "MethodRouter",
    ];
    let mut strays = Vec::new();
    let mut registrations = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        registrations += text.matches("routes!(").count();
        for (number, line) in text.lines().enumerate() {
            for pattern in forbidden {
                if line.contains(pattern) {
                    strays.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        strays.is_empty(),
        "routes registered outside `routes!` (they would be missing from the document):\n{}",
        strays.join("\n")
    );
    assert!(registrations >= 25, "only {registrations} `routes!(` found");
}
