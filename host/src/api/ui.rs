//! `GET /ui`: the dashboard, a page served by the binary itself. Its HTML,
//! styles and script modules (`host/ui/`) are compiled into the binary, so
//! the page needs nothing but this server: no build step, no CDN. The page
//! is public; it reads the API with the bearer token its user enters, and
//! the API decides what that token may do.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::body::Path;
use super::error::ApiError;

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("dialogs.js", JS),
    asset!("chart.js", JS),
    asset!("poller.js", JS),
    asset!("overview.js", JS),
    asset!("plugin.js", JS),
    asset!("views.js", JS),
    asset!("log.js", JS),
];

/// What the page may load and talk to: only this server. A script injected
/// through a document or an event payload could not send the token anywhere
/// else, nor run inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The ETag of each asset (a prefix of its SHA-256), so that a browser
/// revalidates with a conditional request and downloads the file again only
/// when the binary serving it changed.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..16]))
        .collect()
});

/// The names of the dashboard's files (`/ui/{file}`).
pub fn file_names() -> Vec<&'static str> {
    ASSETS.iter().map(|a| a.name).collect()
}

/// The media types of the dashboard's files.
pub const MEDIA_TYPES: &[&str] = &["text/html", "text/css", "image/svg+xml", "text/javascript"];

/// The page itself.
pub async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// A script, the styles or the icon.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == file) {
        Some(index) => serve(index, &headers),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the dashboard has no file {file:?}"),
        )
        .into_response(),
    }
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_with_the_current_file_gets_304() {
        let first = serve(1, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve(1, &again).status(), StatusCode::NOT_MODIFIED);
        let mut other = HeaderMap::new();
        other.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(serve(1, &other).status(), StatusCode::OK);
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let file = line
                    .rsplit_once("\"./")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(file, _)| file)
                    .unwrap_or_else(|| panic!("{}: unexpected import {line:?}", asset.name));
                assert!(served.contains(&file), "{} imports {file}", asset.name);
            }
        }
    }

    #[test]
    fn every_file_the_page_names_is_served() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        let named: Vec<&str> = page
            .split("\"ui/")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(file, _)| file))
            .collect();
        assert!(named.len() >= 3, "{named:?}");
        for file in named {
            assert!(
                ASSETS.iter().any(|a| a.name == file),
                "index.html names {file}"
            );
        }
    }

    #[test]
    fn every_file_has_a_documented_media_type() {
        for asset in ASSETS {
            let media = asset.content_type.split(';').next().unwrap();
            assert!(MEDIA_TYPES.contains(&media), "{}: {media}", asset.name);
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in ASSETS {
            // The SVG namespace is a name, not an address anything is fetched from.
            let text =
                String::from_utf8_lossy(asset.body).replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "{} names another origin",
                asset.name
            );
        }
    }
}
