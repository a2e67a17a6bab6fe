//! The web console at `/app`: plain HTML, CSS and JavaScript modules from
//! `api/console/`, built into the binary (a release build embeds them; a
//! debug build reads them from the source tree, so they can be edited
//! without a rebuild). No asset comes from anywhere else: the page's
//! content security policy allows only this origin.
//!
//! The console is a client of the public API like any other: it holds no
//! privilege of its own, and every request it makes carries the user's
//! token and is checked as any client's is.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorResponse};

#[derive(rust_embed::RustEmbed)]
#[folder = "console/"]
struct ConsoleFiles;

/// What the console's pages may load: this origin's files and API only.
/// No inline script or style, no plug-ins, not framed, forms post here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /app`: the console's page.
#[utoipa::path(
    get,
    path = "/app",
    tag = "service",
    summary = "The web console",
    responses((status = 200, description = "The console's page", content_type = "text/html", body = String)),
)]
pub async fn console(headers: HeaderMap) -> Response {
    console_file("index.html", &headers)
}

/// `GET /app/`: the console's page.
#[utoipa::path(
    get,
    path = "/app/",
    tag = "service",
    summary = "The web console",
    responses((status = 200, description = "The console's page", content_type = "text/html", body = String)),
)]
pub async fn console_page(headers: HeaderMap) -> Response {
    console_file("index.html", &headers)
}

/// `GET /app/{file}`: one of the console's files.
#[utoipa::path(
    get,
    path = "/app/{file}",
    tag = "service",
    summary = "A file of the web console",
    params(("file" = String, Path, description = "A file's name, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file, with its media type", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "text/html"),
        )),
        (status = 304, description = "The client's copy (`If-None-Match`) is current"),
        (status = 404, description = "No such file", body = ErrorResponse),
    ),
)]
pub async fn console_asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    console_file(&file, &headers)
}

/// `GET /app/{folder}/{file}`: a file of one of the console's folders.
#[utoipa::path(
    get,
    path = "/app/{folder}/{file}",
    tag = "service",
    summary = "A file of a folder of the web console",
    params(
        ("folder" = String, Path, description = "`views` or `vendor`"),
        ("file" = String, Path, description = "A file's name, e.g. `bots.js`"),
    ),
    responses(
        (status = 200, description = "The file, with its media type", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "text/plain"),
        )),
        (status = 304, description = "The client's copy (`If-None-Match`) is current"),
        (status = 404, description = "No such file", body = ErrorResponse),
    ),
)]
pub async fn console_folder_asset(
    Path((folder, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    console_file(&format!("{folder}/{file}"), &headers)
}

/// The media type of a console file, by its extension; `None` for any
/// other kind of file, which is never served.
fn media_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

fn console_file(path: &str, headers: &HeaderMap) -> Response {
    // Only plain names: no parent, hidden or absolute paths (the router
    // already gives one or two segments).
    let plain = path
        .split('/')
        .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
    let found = plain
        .then(|| media_type(path).zip(ConsoleFiles::get(path)))
        .flatten();
    let Some((media_type, file)) = found else {
        return ApiError::NotFound("no such file".to_string()).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, etag);
    }
    // Revalidated on every load, so a new release is picked up at once.
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response_headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_kinds_of_file_are_served() {
        assert_eq!(media_type("app.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(
            media_type("views/bots.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(media_type("index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(media_type("secret.env"), None);
        assert_eq!(media_type("noextension"), None);
    }

    #[test]
    fn paths_out_of_the_folder_are_not_found() {
        let headers = HeaderMap::new();
        for path in [
            "../Cargo.toml",
            ".hidden.js",
            "views/../../x.js",
            "a//b.js",
            "a\\b.js",
        ] {
            assert_eq!(
                console_file(path, &headers).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }
}
