//! Permissions, generated from the table: every operation of
//! `api::permissions::OPERATIONS` is found in the served document with the
//! permission the table gives it (`x-permission`), then called as every
//! role and with no token. A role that lacks the permission gets a 403
//! naming it, no token a 401; a role that holds it gets past the check (any
//! answer but 401 and 403: the request itself is made up, so the handler
//! may refuse it for its own reasons). A public operation is never a 403.

use api::permissions::{roles_admitted, Access, OPERATIONS};
use axum::http::{Method, StatusCode};
use domain::Role;
use integration_tests::TestApp;
use serde_json::Value;
use uuid::Uuid;

use crate::served_document;

/// The method, path template and `x-permission` of `operation_id`.
fn find<'a>(document: &'a Value, operation_id: &str) -> Option<(String, String, &'a Value)> {
    for (path, item) in document["paths"].as_object()? {
        for (method, operation) in item.as_object()? {
            if operation["operationId"] == operation_id {
                return Some((method.clone(), path.clone(), &operation["x-permission"]));
            }
        }
    }
    None
}

/// A concrete path for `template`: a fresh UUID for every id, a real
/// aggregate type, a file name.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{aggregate_type}" => "User".to_string(),
            "{file}" => "index.css".to_string(),
            s if s.starts_with('{') => Uuid::new_v4().to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_operation_answers_every_role_as_the_permission_table_says() {
    // The roles make many requests; the rate limit is not under test.
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_SECOND", "0")]).await;
    let document = served_document(&app).await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let user = if role == Role::User {
            app.user().await
        } else {
            app.user_with_role(role).await
        };
        tokens.push((role, user.token));
    }

    let documented = crate::operations(&document).len();
    assert_eq!(
        OPERATIONS.len(),
        documented,
        "one row per documented operation"
    );
    let mut failures = Vec::new();
    let mut refusals = 0;
    for &(operation_id, access) in OPERATIONS {
        let (method, template, stated) = find(&document, operation_id)
            .unwrap_or_else(|| panic!("{operation_id} is in the table but not in the document"));
        let expected = match access {
            Access::Public => Value::Null,
            Access::Requires(permission) => Value::String(permission.as_str().to_string()),
        };
        assert_eq!(stated, &expected, "{operation_id}: x-permission");
        let method: Method = method.to_uppercase().parse().unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then_some("{}");
        let admitted = roles_admitted(access);
        for (role, token) in &tokens {
            let answer = app
                .request(method.clone(), &concrete(&template), Some(token), body, &[])
                .await;
            let holds = admitted.contains(role);
            let wrong = match (holds, answer.status) {
                (true, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) => true,
                (false, StatusCode::FORBIDDEN) => {
                    refusals += 1;
                    let Access::Requires(permission) = access else {
                        unreachable!()
                    };
                    !answer.body["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(permission.as_str())
                }
                (false, _) => true,
                (true, _) => false,
            };
            if wrong {
                failures.push(format!(
                    "{operation_id} ({method} {template}) as {}: {} {}",
                    role.as_str(),
                    answer.status,
                    answer.body
                ));
            }
        }
        if let Access::Requires(_) = access {
            let anonymous = app
                .request(method.clone(), &concrete(&template), None, body, &[])
                .await;
            if anonymous.status != StatusCode::UNAUTHORIZED {
                failures.push(format!(
                    "{operation_id} without a token: {} {}",
                    anonymous.status, anonymous.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(refusals > 20, "the table refuses something: {refusals}");
}
