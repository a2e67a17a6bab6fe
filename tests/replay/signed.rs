//! Signed audit reports: the service signs a user's report over its RFC
//! 8785 form with Ed25519 and publishes the public key; `verify-export`
//! (REST and CLI) checks the signature offline against that key and the
//! content against the log; and an independent verifier in Python (PyPI's
//! `jcs` and `cryptography`, no project code) accepts the report and
//! refuses any change to it.

use std::path::PathBuf;
use std::process::Command;

use axum::http::StatusCode;
use integration_tests::TestApp;
use serde_json::{json, Value};

use crate::common::{describe, replay};
use crate::history::some_history;

struct TempFile(PathBuf);

impl TempFile {
    fn with(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("signed-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("write a report");
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `scripts/verify_report.py` in the venv `ensure_python_tools` made.
fn python_verifier(report: &TempFile, public_key: &str) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify_report.py");
    Command::new(integration_tests::python_tool("python"))
        .args([script, report.path(), public_key])
        .output()
        .expect("run the Python verifier (scripts/services.sh ensure_python_tools)")
}

#[tokio::test]
async fn a_signed_report_verifies_offline_with_the_published_key_and_any_change_is_refused() {
    let app = TestApp::spawn().await;
    let (trader, _bot) = some_history(&app).await;
    let auditor = app.user_with_role(domain::Role::Auditor).await;
    let token = Some(auditor.token.as_str());

    // The published key: anyone may fetch it.
    let keys = app.get("/api/v1/audit/keys", None).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    let public_key = keys.body["keys"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(public_key.len(), 64);

    // Auditors export; a trader may not.
    let refused = app
        .post(
            &format!("/api/v1/audit/users/{}/export", trader.id),
            Some(&trader.token),
            json!({}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let exported = app
        .post(
            &format!("/api/v1/audit/users/{}/export", trader.id),
            token,
            json!({}),
        )
        .await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.body);
    let report = exported.body.clone();
    assert_eq!(report["content"]["format"], "muckard-audit-report/2");
    assert_eq!(report["signature"]["algorithm"], "ed25519");
    assert_eq!(report["signature"]["public_key"], public_key.as_str());
    assert_eq!(report["digest"]["canonicalisation"], "RFC 8785 (JCS)");
    let text = serde_json::to_string_pretty(&report).unwrap();

    // The independent verifier accepts it with the published key ...
    let file = TempFile::with(&text);
    let output = python_verifier(&file, &public_key);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    // ... and so do the service and the CLI, the content against the log.
    let verified = app
        .request(
            axum::http::Method::POST,
            "/api/v1/audit/verify-export",
            token,
            Some(&text),
            &[],
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["clean"], true, "{}", verified.body);
    assert_eq!(verified.body["signature"], "valid");
    let output = replay(
        &app,
        &["verify-export", file.path(), "--public-key", &public_key],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    // One changed character of the content: every verifier refuses it.
    let mut edited: Value = report.clone();
    let first_event = &mut edited["content"]["streams"][0]["events"][0];
    first_event["event_type"] = json!(format!("{}x", first_event["event_type"].as_str().unwrap()));
    let edited_text = serde_json::to_string_pretty(&edited).unwrap();
    let edited_file = TempFile::with(&edited_text);
    let output = python_verifier(&edited_file, &public_key);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("digest") && said.contains("signature"),
        "{said}"
    );
    let checked = app
        .request(
            axum::http::Method::POST,
            "/api/v1/audit/verify-export",
            token,
            Some(&edited_text),
            &[],
        )
        .await;
    assert_eq!(checked.body["clean"], false, "{}", checked.body);
    assert_eq!(checked.body["signature"], "invalid");

    // Re-signed by someone else's key: valid, but not the published key's.
    let forger = "11".repeat(32);
    let forged = TempFile::with("{}");
    let output = replay(
        &app,
        &[
            "export",
            "--user",
            &trader.id.to_string(),
            "--out",
            forged.path(),
            "--signing-key",
            &forger,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let forged_text = std::fs::read_to_string(&forged.0).unwrap();
    let output = python_verifier(&forged, &public_key);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let checked = app
        .request(
            axum::http::Method::POST,
            "/api/v1/audit/verify-export",
            token,
            Some(&forged_text),
            &[],
        )
        .await;
    assert_eq!(
        checked.body["signature"], "untrusted_key",
        "{}",
        checked.body
    );
    assert_eq!(checked.body["clean"], false);
}
