//! The outbox's settings in `prism.toml`: `[outbox]` (retries, retention)
//! and one `[targets.NAME]` table per target a projection may declare.
//!
//! ```toml
//! [outbox]
//! max_attempts = 8
//!
//! [targets.email]
//! url = "http://mailer.internal:8025/send"
//! method = "POST"                                  # the default
//! timeout_ms = 10000                               # the default
//! headers = { Authorization = "Bearer ${MAILER_TOKEN}", X-Api-Key = { env = "MAILER_KEY" } }
//! ```
//!
//! Header values may name environment variables (`${NAME}` inside a text,
//! or `{ env = "NAME" }` for the whole value), read once at start: secrets
//! stay out of the file, and neither their values nor the literal ones are
//! ever logged or shown (`Debug` prints them redacted; the API shows header
//! names only).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// `[outbox]`: how requests are retried and how long finished ones are kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Sends a request may fail before it is dead and its ordering key moves
    /// on without it. At least 1. Default 8.
    pub max_attempts: u32,
    /// Delay before the first retry, in ms; it doubles with every failure,
    /// with up to a fifth of it added at random (jitter). Default 1000.
    pub backoff_initial_ms: u64,
    /// Longest delay between two attempts, in ms. Default 300000 (5 minutes).
    pub backoff_max_ms: u64,
    /// Requests in flight at once, all targets together. Default 32.
    pub max_in_flight: usize,
    /// Hours a delivered or dropped request's record is kept (its id is kept
    /// for ever, so it is never enqueued again). Default 168 (7 days).
    pub delivered_retention_hours: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 8,
            backoff_initial_ms: 1000,
            backoff_max_ms: 300_000,
            max_in_flight: 32,
            delivered_retention_hours: 168,
        }
    }
}

/// `[targets.NAME]`: the HTTP endpoint requests to target NAME go to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `http://host:port/path` (plain HTTP: this build has no TLS client).
    pub url: String,
    /// The HTTP method. Default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra headers; `Content-Type: application/json` and
    /// `Idempotency-Key` are always sent.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSource>,
    /// Longest one attempt may take, connecting included, in ms. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Overrides `[outbox] max_attempts` for this target.
    pub max_attempts: Option<u32>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// A header's value: a text in which `${NAME}` is replaced by the
/// environment variable NAME, or `{ env = "NAME" }`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HeaderSource {
    Text(String),
    Env { env: String },
}

/// Never the value: it may be a secret.
impl fmt::Debug for HeaderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderSource::Text(_) => f.write_str("\"<redacted>\""),
            HeaderSource::Env { env } => write!(f, "{{ env = {env:?} }}"),
        }
    }
}

impl HeaderSource {
    /// The value, with environment variables read through `lookup`; an
    /// error names the missing variable, never the value.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let missing = |name: &str| format!("the environment variable {name} is not set");
        match self {
            HeaderSource::Env { env } => lookup(env).ok_or_else(|| missing(env)),
            HeaderSource::Text(text) => {
                let mut out = String::with_capacity(text.len());
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| "an unclosed ${ in a header value".to_string())?;
                    let name = &after[..end];
                    out.push_str(&lookup(name).ok_or_else(|| missing(name))?);
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_parse_with_defaults_and_headers_from_the_environment() {
        let config: crate::config::Config = toml::from_str(
            r#"
            [outbox]
            max_attempts = 3
            [targets.email]
            url = "http://127.0.0.1:8025/send"
            headers = { Authorization = "Bearer ${TOKEN}", X-Key = { env = "KEY" } }
            "#,
        )
        .unwrap();
        assert_eq!(config.outbox.max_attempts, 3);
        assert_eq!(config.outbox.backoff_initial_ms, 1000);
        let email = &config.targets["email"];
        assert_eq!(email.method, "POST");
        assert_eq!(email.timeout_ms, 10_000);
        let env = |name: &str| match name {
            "TOKEN" => Some("s3cret".to_string()),
            "KEY" => Some("k".to_string()),
            _ => None,
        };
        assert_eq!(
            email.headers["Authorization"].resolve(env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(email.headers["X-Key"].resolve(env).unwrap(), "k");
        let unset = email.headers["Authorization"]
            .resolve(|_| None)
            .unwrap_err();
        assert!(unset.contains("TOKEN"), "{unset}");
        let shown = format!("{config:?}");
        assert!(!shown.contains("Bearer"), "{shown}");
    }
}
