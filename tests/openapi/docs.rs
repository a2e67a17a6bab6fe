//! `/docs`: Swagger UI, served entirely by this server, reading
//! `/openapi.json`.

use axum::http::StatusCode;
use integration_tests::TestApp;

/// The `src` and `href` values of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn docs_serve_swagger_ui_with_every_asset_from_this_server() {
    let app = TestApp::spawn().await;
    let redirect = app.get("/docs", None).await;
    assert_eq!(redirect.status, StatusCode::SEE_OTHER);
    assert_eq!(redirect.headers["location"], "/docs/");

    let page = app.get("/docs/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers
    );
    let html = page.body.as_str().expect("an HTML page").to_string();
    assert!(html.contains("swagger-ui"), "{html}");

    let assets = references(&html);
    for needed in [
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
        "swagger-ui.css",
    ] {
        assert!(
            assets.iter().any(|a| a.ends_with(needed)),
            "the page does not load {needed}: {assets:?}"
        );
    }
    for asset in &assets {
        assert!(
            !asset.contains("//") && !asset.starts_with('/'),
            "the page loads {asset} from elsewhere"
        );
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        let response = app.get(&path, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert!(
            !response.body.as_str().unwrap_or_default().is_empty(),
            "{path} is empty"
        );
    }

    // The page reads this server's document.
    let initializer = app.get("/docs/swagger-initializer.js", None).await;
    let script = initializer.body.as_str().unwrap();
    assert!(script.contains("\"/openapi.json\""), "{script}");

    let missing = app.get("/docs/no-such-file.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["code"], "not_found");
}
