//! A small HTTP client for a running server, used by the CLI.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The whole `error` object, with its details (e.g. `event_index`).
        error: Value,
    },
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("the token cannot be sent in an HTTP header (visible ASCII only)")]
    InvalidToken,
    #[error("cannot start an HTTP client: {0}")]
    Setup(reqwest::Error),
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base` that sends `token`, if any, as a
    /// bearer token with every request.
    pub fn new(base: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::InvalidToken)?;
            // Kept out of reqwest's debug output and HTTP/2 header compression.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(
        &self,
        url: String,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, ClientError> {
        let response = sent.map_err(|source| ClientError::Unreachable { url, source })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| ClientError::Unexpected(text.clone()))?
        };
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
                message: body["error"]["message"]
                    .as_str()
                    .unwrap_or(&text)
                    .to_string(),
                error: body["error"].clone(),
            })
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let sent = self.http.get(&url).send().await;
        self.answer(url, sent).await
    }

    /// POST a body already serialized as JSON.
    pub async fn post_json_bytes(&self, path: &str, body: Vec<u8>) -> Result<Value, ClientError> {
        let url = self.url(path);
        let sent = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        self.answer(url, sent).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = self.url(path);
        let sent = self.http.post(&url).json(body).send().await;
        self.answer(url, sent).await
    }

    pub async fn post(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let sent = self.http.post(&url).send().await;
        self.answer(url, sent).await
    }

    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<Value, ClientError> {
        let url = self.url(path);
        let sent = self
            .http
            .put(&url)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await;
        self.answer(url, sent).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let sent = self.http.delete(&url).send().await;
        self.answer(url, sent).await
    }
}

/// Percent-encode one path segment.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
