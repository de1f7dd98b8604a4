//! Bearer tokens with scopes. With no tokens configured every request is
//! allowed (the server then only listens on loopback addresses).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::routes::{Scope, scope_of};

/// One token and what it may do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    pub scopes: Vec<Scope>,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<(Vec<u8>, HashSet<Scope>)>,
}

impl Tokens {
    pub fn new(configs: &[TokenConfig]) -> Self {
        Tokens {
            tokens: configs
                .iter()
                .map(|c| {
                    (
                        c.token.as_bytes().to_vec(),
                        c.scopes.iter().copied().collect(),
                    )
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Parse `PRISM_TOKENS`: `token=read+write,other=admin`.
    pub fn parse_env(text: &str) -> Result<Vec<TokenConfig>, String> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|entry| {
                let (token, scopes) = entry
                    .split_once('=')
                    .ok_or_else(|| "PRISM_TOKENS entries are TOKEN=SCOPE+SCOPE".to_string())?;
                let scopes = scopes
                    .split('+')
                    .map(|s| match s.trim() {
                        "read" => Ok(Scope::Read),
                        "write" => Ok(Scope::Write),
                        "admin" => Ok(Scope::Admin),
                        other => Err(format!("unknown scope {other:?} (read, write, admin)")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(TokenConfig {
                    token: token.trim().to_string(),
                    scopes,
                })
            })
            .collect()
    }

    fn scopes_of(&self, presented: &[u8]) -> Option<&HashSet<Scope>> {
        // Compare every token in full so timing says nothing about which matched.
        let mut found = None;
        for (token, scopes) in &self.tokens {
            let mut diff = (token.len() ^ presented.len()) as u8;
            for (i, b) in token.iter().enumerate() {
                diff |= b ^ presented.get(i).copied().unwrap_or(0);
            }
            if diff == 0 {
                found = Some(scopes);
            }
        }
        found
    }
}

pub async fn authorize(
    State(tokens): State<Arc<Tokens>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let needed = matched
        .and_then(|m| scope_of(request.method().as_str(), m.as_str()))
        .unwrap_or(Scope::Admin);
    if needed == Scope::Public {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().as_bytes().to_vec());
    let Some(presented) = presented else {
        return unauthorized();
    };
    match tokens.scopes_of(&presented) {
        None => unauthorized(),
        Some(scopes) if scopes.contains(&needed) => next.run(request).await,
        Some(_) => closing(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token may not do that",
            )
            .into_response(),
        ),
    }
}

/// A refusal is sent before the request body is read; closing the
/// connection keeps a client from reusing it while the unread body is
/// still on the wire.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    closing(response)
}
