//! The served document, checked by `openapi-spec-validator` (PyPI), an
//! implementation of the OpenAPI specification's rules independent of the
//! code that wrote the document.

use std::path::PathBuf;
use std::process::Command;

use integration_tests::TestApp;

use crate::served_document;

/// Where `ensure_python_tools` (scripts/services.sh) installs the tools.
fn validator() -> PathBuf {
    integration_tests::python_tool("openapi-spec-validator")
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let validator = validator();
    assert!(
        validator.exists(),
        "{} is missing: run ./scripts/test, or \
         `source scripts/services.sh && ensure_python_tools`",
        validator.display()
    );
    let app = TestApp::spawn().await;
    let document = served_document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");

    let file = std::env::temp_dir().join(format!("muckard-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    if let Some(copy) = std::env::var_os("OPENAPI_OUT") {
        // For a look at the document without running the service.
        std::fs::copy(&file, copy).expect("copy the document to OPENAPI_OUT");
    }
    let output = Command::new(&validator)
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "openapi-spec-validator refused the document ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// The validator is not a rubber stamp: a document with a path parameter
/// it does not declare is refused, the same way it would refuse ours.
#[tokio::test]
async fn the_validator_refuses_a_broken_document() {
    let validator = validator();
    assert!(validator.exists(), "{} is missing", validator.display());
    let app = TestApp::spawn().await;
    let mut document = served_document(&app).await;
    let paths = document["paths"].as_object_mut().unwrap();
    let item = paths
        .remove("/api/v1/bot/{bot_id}/status")
        .expect("a documented path");
    paths.insert("/api/v1/bot/{robot}/status".to_string(), item);

    let file = std::env::temp_dir().join(format!("muckard-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    let output = Command::new(&validator)
        .args(["--schema", "3.1"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&file);
    assert!(
        !output.status.success(),
        "a document whose path names an undeclared parameter passed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// The document's text patterns say what the service checks: a non-blank
/// line is what `domain::common::bounded_text` keeps (white space and
/// control characters as Rust's `char` reads them), a message body is
/// what `domain::support_ticket::check_body` keeps, no other request
/// string holds a control character, and no pattern placeholder is left
/// over.
#[tokio::test]
async fn the_text_patterns_agree_with_the_checks_they_document() {
    let app = TestApp::spawn().await;
    let document = served_document(&app).await;
    assert!(
        !document.to_string().contains("\"{"),
        "a pattern placeholder was left in the document"
    );
    let schemas = &document["components"]["schemas"];
    let display_name = &schemas["UpdateProfileRequest"]["properties"]["display_name"];
    assert_eq!(display_name["pattern"], api::openapi::NON_BLANK_LINE);
    let refresh_token = &schemas["RefreshRequest"]["properties"]["refresh_token"];
    assert_eq!(
        refresh_token["pattern"],
        api::openapi::NO_CONTROL_CHARACTERS
    );
    assert_eq!(
        schemas["UpdateRequest"]["dependentRequired"]["api_secret"],
        serde_json::json!(["api_key"])
    );

    let matches = |pattern: &str, text: &str| {
        jsonschema::validator_for(&serde_json::json!({ "type": "string", "pattern": pattern }))
            .unwrap()
            .is_valid(&serde_json::json!(text))
    };
    for text in [
        "",
        " ",
        "Ada",
        " Ada ",
        "a b",
        "\u{3000}",
        "\u{a0}x",
        "\u{1680}",
        "\u{2028}",
        "x\u{2028}y",
        "\u{feff}",
        "tab\there",
        "\u{85}",
        "nul\u{0}",
        "\u{7f}",
        "Zoë ☃",
    ] {
        let kept = domain::common::bounded_text("field", text, 1, 1000).is_ok();
        assert_eq!(
            matches(api::openapi::NON_BLANK_LINE, text),
            kept,
            "{text:?}: the pattern and bounded_text disagree"
        );
        assert_eq!(
            matches(api::openapi::NO_CONTROL_CHARACTERS, text),
            !api::extract::has_control_character(text),
            "{text:?}"
        );
    }
    // A message body: free text, line feeds and tabs allowed.
    let body = &schemas["OpenTicketRequest"]["properties"]["body"];
    assert_eq!(body["pattern"], api::openapi::FREE_TEXT);
    assert_eq!(
        schemas["ReplyRequest"]["properties"]["body"]["pattern"],
        api::openapi::FREE_TEXT
    );
    for text in [
        "",
        " ",
        " \n\t ",
        "Hello",
        "Hello,\n\tworld\n",
        "\nx",
        "carriage\r\nreturn",
        "nul\u{0}",
        "\u{85}",
        "a\u{85}b",
        "\u{3000}",
        "\u{2028}x",
        "\u{7f}",
        "Zoë ☃",
    ] {
        assert_eq!(
            matches(api::openapi::FREE_TEXT, text),
            domain::support_ticket::check_body(text).is_ok(),
            "{text:?}: the pattern and check_body disagree"
        );
    }
}
