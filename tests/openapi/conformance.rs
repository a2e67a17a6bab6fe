//! Real answers against the document. One test per resource group (a
//! module below) calls that group's documented operations, successes and
//! refusals, on an app of its own, and checks each answer's status is
//! documented for the operation whose template the path fills in and its
//! JSON body validates against the documented schema. A failed check is
//! collected rather than raised, so one wrong answer does not hide the
//! next, and a failing group does not hide the others. `GROUPS` lists each
//! group's operations: each group's test checks it called exactly those,
//! and `every_documented_operation_belongs_to_a_group` that together they
//! are the document's operations, so every documented operation is called.
//! Then the domain's own values against the schemas the api crate writes
//! for them (`domain_schemas`).

mod admin;
mod audit;
mod auth;
mod bots;
mod domain_schemas;
mod keys;
mod live;
mod market;
mod notifications;
mod service;
mod support;
mod trading;
mod users;

use std::collections::BTreeSet;

use axum::http::{HeaderMap, Method, StatusCode};
use integration_tests::{TestApp, TestResponse};
use serde_json::Value;

use crate::{operations, served_document};

/// A documented operation: its method as the document spells it and its
/// path template.
pub type Operation = (&'static str, &'static str);

/// Which group's test calls each documented operation. Each group's test
/// checks it called exactly its operations, and the test below that the
/// groups together name each documented operation once.
const GROUPS: &[(&str, &[Operation])] = &[
    (
        "service",
        &[
            ("get", "/health"),
            ("get", "/ready"),
            ("get", "/metrics"),
            ("get", "/openapi.json"),
            ("get", "/docs"),
            ("get", "/docs/"),
            ("get", "/docs/{file}"),
            ("get", "/app"),
            ("get", "/app/"),
            ("get", "/app/{file}"),
            ("get", "/app/{folder}/{file}"),
            ("get", "/asyncapi.json"),
            ("get", "/schemas/{group}/{file}"),
            ("get", "/schemas/{group}/events/{file}"),
        ],
    ),
    (
        "auth",
        &[
            ("post", "/api/v1/auth/register"),
            ("post", "/api/v1/auth/login"),
            ("post", "/api/v1/auth/refresh"),
            ("post", "/api/v1/auth/logout"),
            ("post", "/api/v1/auth/verify-email"),
            ("post", "/api/v1/auth/verify-email/resend"),
            ("post", "/api/v1/auth/password-reset/request"),
            ("post", "/api/v1/auth/password-reset/confirm"),
        ],
    ),
    (
        "users",
        &[
            ("get", "/api/v1/user/me"),
            ("patch", "/api/v1/user/me"),
            ("post", "/api/v1/user/onboarding"),
            ("post", "/api/v1/user/me/password"),
            ("get", "/api/v1/user/me/sessions"),
            ("delete", "/api/v1/user/me/sessions/{session_id}"),
        ],
    ),
    (
        "keys",
        &[
            ("post", "/api/v1/kraken/connect"),
            ("post", "/api/v1/kraken/keys/{key_id}/test"),
            ("patch", "/api/v1/kraken/keys/{key_id}"),
            ("delete", "/api/v1/kraken/keys/{key_id}"),
            ("get", "/api/v1/kraken/keys"),
        ],
    ),
    (
        "bots",
        &[
            ("post", "/api/v1/bot"),
            ("get", "/api/v1/bot"),
            ("post", "/api/v1/bot/{bot_id}/start"),
            ("post", "/api/v1/bot/{bot_id}/stop"),
            ("post", "/api/v1/bot/{bot_id}/trigger-trade"),
            ("get", "/api/v1/bot/{bot_id}/status"),
        ],
    ),
    (
        "trading",
        &[
            ("get", "/api/v1/trading/trades"),
            ("get", "/api/v1/trading/positions"),
        ],
    ),
    (
        "admin",
        &[
            ("get", "/api/v1/admin/users"),
            ("post", "/api/v1/admin/users/{user_id}/role"),
            ("post", "/api/v1/admin/users/{user_id}/erase"),
            ("get", "/api/v1/admin/users/{user_id}"),
            ("post", "/api/v1/admin/users/{user_id}/disable"),
            ("post", "/api/v1/admin/users/{user_id}/enable"),
        ],
    ),
    (
        "support",
        &[
            ("post", "/api/v1/support/tickets"),
            ("get", "/api/v1/support/tickets"),
            ("get", "/api/v1/support/tickets/{ticket_id}"),
            ("post", "/api/v1/support/tickets/{ticket_id}/replies"),
            ("post", "/api/v1/support/tickets/{ticket_id}/assign"),
            ("post", "/api/v1/support/tickets/{ticket_id}/close"),
            ("post", "/api/v1/support/tickets/{ticket_id}/reopen"),
        ],
    ),
    ("live", &[("get", "/api/v1/stream")]),
    (
        "market",
        &[
            ("get", "/api/v1/market/ticker"),
            ("get", "/api/v1/market/ohlcv"),
            ("get", "/api/v1/trading/balances"),
            ("get", "/api/v1/dashboard"),
        ],
    ),
    (
        "notifications",
        &[
            ("get", "/api/v1/notifications"),
            ("post", "/api/v1/notifications/{notification_id}/read"),
            ("post", "/api/v1/notifications/read-all"),
        ],
    ),
    (
        "audit",
        &[
            ("get", "/api/v1/audit/streams/{aggregate_type}/{id}/events"),
            ("get", "/api/v1/audit/streams/{aggregate_type}/{id}/state"),
            ("get", "/api/v1/audit/keys"),
            ("post", "/api/v1/audit/users/{user_id}/export"),
            ("post", "/api/v1/audit/verify-export"),
            ("post", "/api/v1/audit/verify"),
        ],
    ),
];

#[tokio::test]
async fn every_documented_operation_belongs_to_a_group() {
    let app = TestApp::spawn().await;
    let documented: BTreeSet<(String, String)> = operations(&served_document(&app).await)
        .into_iter()
        .collect();
    let mut grouped = BTreeSet::new();
    for &(method, template) in GROUPS.iter().flat_map(|(_, operations)| operations.iter()) {
        assert!(
            grouped.insert((method.to_string(), template.to_string())),
            "{method} {template} is in two groups"
        );
    }
    let never_called: Vec<_> = documented.difference(&grouped).collect();
    assert!(never_called.is_empty(), "never called: {never_called:?}");
    let undocumented: Vec<_> = grouped.difference(&documented).collect();
    assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
}

/// The session itself: the template a path fills in is the one the router
/// would choose, and `finish` names every answer that does not conform
/// and every operation of the group that was not called.
#[tokio::test]
async fn a_session_reports_every_answer_that_does_not_conform() {
    let mut c = Conformance::spawn().await;
    for (path, template) in [
        ("/docs/", "/docs/"),
        ("/docs/swagger-ui.css", "/docs/{file}"),
        ("/api/v1/kraken/keys?min_position=1", "/api/v1/kraken/keys"),
        (
            "/api/v1/kraken/keys/x/test",
            "/api/v1/kraken/keys/{key_id}/test",
        ),
    ] {
        assert_eq!(c.template_of(path).as_deref(), Ok(template), "{path}");
    }
    let teapot = TestResponse {
        status: StatusCode::IM_A_TEAPOT,
        headers: HeaderMap::new(),
        body: Value::Null,
    };
    c.check(&Method::GET, "/health", &teapot);
    c.check(&Method::GET, "/no/such/path", &teapot);
    c.check(&Method::DELETE, "/health", &teapot);
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.finish("service")));
    let report = *finished
        .expect_err("a session with wrong answers fails")
        .downcast::<String>()
        .unwrap();
    for expected in [
        "get /health: answered 418",
        "get /no/such/path: no documented path template fits",
        "delete /health: not documented",
        "get /ready: listed but never called",
        "delete /health: called but not listed in the group",
    ] {
        assert!(
            report.contains(expected),
            "{expected} missing from {report}"
        );
    }
}

/// `schema` with `document`'s components beside it, so its
/// `#/components/…` references resolve.
pub fn schema_validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.as_object().cloned().expect("a schema object");
    root.insert("components".into(), document["components"].clone());
    jsonschema::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .unwrap_or_else(|error| panic!("{schema} does not compile: {error}"))
}

/// Sends requests to an app, checks each answer against the document it
/// serves, and remembers which operations were called and which answers
/// were wrong. `finish` reports them all; a session dropped without it
/// fails the test.
pub struct Conformance {
    /// The app the session sends its requests to, on a database of its own.
    pub app: TestApp,
    document: Value,
    called: BTreeSet<(String, String)>,
    failures: Vec<String>,
    finished: bool,
}

impl Conformance {
    /// A session with a new app of its own.
    pub async fn spawn() -> Conformance {
        let app = TestApp::spawn().await;
        Conformance {
            document: served_document(&app).await,
            app,
            called: BTreeSet::new(),
            failures: Vec::new(),
            finished: false,
        }
    }

    pub async fn get(&mut self, path: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::GET, path, token, None, &[]).await
    }

    pub async fn delete(&mut self, path: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::DELETE, path, token, None, &[]).await
    }

    pub async fn post(&mut self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.call(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn post_empty(&mut self, path: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::POST, path, token, None, &[]).await
    }

    pub async fn patch(&mut self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.call(Method::PATCH, path, token, Some(body), &[]).await
    }

    /// Sends a request and checks its answer against the operation whose
    /// template `path` (without its query) fills in.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let text = body.map(|body| body.to_string());
        let response = self
            .app
            .request(method.clone(), path, token, text.as_deref(), headers)
            .await;
        self.check(&method, path, &response);
        response
    }

    /// Checks an answer to a request sent some other way (a body that is
    /// not JSON, say).
    pub fn check(&mut self, method: &Method, path: &str, response: &TestResponse) {
        let method = method.as_str().to_lowercase();
        match self.template_of(path) {
            Ok(template) => {
                if let Err(problem) = self.conforms(&method, &template, response) {
                    self.failures
                        .push(format!("{method} {template}: {problem}"));
                }
                self.called.insert((method, template));
            }
            Err(problem) => self.failures.push(format!("{method} {path}: {problem}")),
        }
    }

    /// Whether `body` matches the documented JSON body of `status`.
    pub fn matches(&self, method: &str, template: &str, status: u16, body: &Value) -> bool {
        let schema = &self.document["paths"][template][method]["responses"][status.to_string()]
            ["content"]["application/json"]["schema"];
        schema_validator(&self.document, schema).is_valid(body)
    }

    /// Fails the test naming every wrong answer, and unless the operations
    /// called were exactly `group`'s in `GROUPS`.
    pub fn finish(mut self, group: &str) {
        self.finished = true;
        let (_, operations) = GROUPS
            .iter()
            .find(|(name, _)| *name == group)
            .unwrap_or_else(|| panic!("{group} is not in GROUPS"));
        let listed: BTreeSet<(String, String)> = operations
            .iter()
            .map(|&(method, template)| (method.to_string(), template.to_string()))
            .collect();
        for (method, template) in listed.difference(&self.called) {
            let failure = format!("{method} {template}: listed but never called");
            self.failures.push(failure);
        }
        for (method, template) in self.called.difference(&listed) {
            let failure = format!("{method} {template}: called but not listed in the group");
            self.failures.push(failure);
        }
        assert!(
            self.failures.is_empty(),
            "{} answers do not conform:\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
    }

    /// The documented path template `path` fills in: a template segment in
    /// braces takes any non-empty segment, and where several templates fit,
    /// the one with the most literal segments is meant (as the router
    /// chooses).
    fn template_of(&self, path: &str) -> Result<String, String> {
        let path = path.split('?').next().unwrap();
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Vec<(usize, &String)> = Vec::new();
        for template in self.document["paths"].as_object().unwrap().keys() {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literals = 0;
            let fits = parts.iter().zip(&segments).all(|(part, segment)| {
                if part.starts_with('{') && part.ends_with('}') {
                    !segment.is_empty()
                } else {
                    literals += 1;
                    part == segment
                }
            });
            if fits {
                best.push((literals, template));
            }
        }
        let most = best.iter().map(|(literals, _)| *literals).max();
        best.retain(|(literals, _)| Some(*literals) == most);
        match best.as_slice() {
            [(_, template)] => Ok(template.to_string()),
            [] => Err("no documented path template fits".to_string()),
            several => Err(format!("several path templates fit: {several:?}")),
        }
    }

    fn conforms(
        &self,
        method: &str,
        template: &str,
        response: &TestResponse,
    ) -> Result<(), String> {
        let operation = &self.document["paths"][template][method];
        if !operation.is_object() {
            return Err("not documented".to_string());
        }
        let status = response.status.as_u16().to_string();
        let documented = &operation["responses"][&status];
        if !documented.is_object() {
            return Err(format!(
                "answered {status}, which its documentation does not list: {}",
                response.body
            ));
        }
        let media_type = response
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        match (media_type, documented.get("content")) {
            (None, None) => Ok(()),
            (Some(media_type), Some(content)) => {
                let essence = |m: &str| m.split(';').next().unwrap().trim().to_string();
                let Some((_, described)) = content
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(key, _)| essence(key) == essence(&media_type))
                else {
                    return Err(format!("{status}: {media_type} is not documented"));
                };
                if essence(&media_type) != "application/json" {
                    return Ok(());
                }
                let validator = schema_validator(&self.document, &described["schema"]);
                let errors: Vec<String> = validator
                    .iter_errors(&response.body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{status}: the body does not match the document:\n{}\n{}",
                        errors.join("\n"),
                        response.body
                    ))
                }
            }
            (Some(_), None) if response.body.is_null() => Ok(()),
            (media_type, content) => Err(format!(
                "{status}: sent {media_type:?}, documented {content:?}"
            )),
        }
    }
}

impl Drop for Conformance {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if std::thread::panicking() {
            // The test failed on an assertion of its own: the answers that
            // did not conform before it are still worth seeing.
            for failure in &self.failures {
                eprintln!("does not conform: {failure}");
            }
        } else {
            panic!("a conformance session ended without finish()");
        }
    }
}
