//! Bearer tokens with scopes. With no tokens configured every request is
//! allowed (the server then only listens on loopback addresses).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    /// SHA-256 of each token, not the token: digests have one length, so
    /// comparing them in constant time says nothing about a token's length
    /// or how much of it a guess got right.
    tokens: Vec<([u8; 32], HashSet<Scope>)>,
}

impl Tokens {
    pub fn new(configs: &[TokenConfig]) -> Self {
        Tokens {
            tokens: configs
                .iter()
                .map(|c| {
                    (
                        Sha256::digest(c.token.as_bytes()).into(),
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

    /// The scopes of the presented token, if it is one of ours. Every
    /// configured token is compared, so timing says nothing about which matched.
    fn scopes_of(&self, presented: &[u8]) -> Option<&HashSet<Scope>> {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (digest, scopes) in &self.tokens {
            if bool::from(digest.ct_eq(&presented)) {
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
    let Some(presented) = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(bearer_token)
    else {
        return unauthorized();
    };
    match tokens.scopes_of(presented) {
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

/// The token of an `Authorization: Bearer TOKEN` header. The scheme is
/// case-insensitive (RFC 7235), so `bearer` and `BEARER` work too.
fn bearer_token(header: &axum::http::HeaderValue) -> Option<&[u8]> {
    let (scheme, token) = header.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            TokenConfig {
                token: "reader-secret".into(),
                scopes: vec![Scope::Read],
            },
            TokenConfig {
                token: "admin-secret".into(),
                scopes: vec![Scope::Admin],
            },
        ])
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let tokens = tokens();
        let read = HashSet::from([Scope::Read]);
        assert_eq!(tokens.scopes_of(b"reader-secret"), Some(&read));
        assert_eq!(
            tokens.scopes_of(b"admin-secret"),
            Some(&HashSet::from([Scope::Admin]))
        );
        let mut longer = b"reader-secret".to_vec();
        longer.extend([b'x'; 256]);
        assert_eq!(tokens.scopes_of(&longer), None, "token + 256 bytes");
        assert_eq!(tokens.scopes_of(b"reader-secre"), None, "a prefix");
        assert_eq!(tokens.scopes_of(b""), None);
        assert_eq!(tokens.scopes_of(b"reader-secreT"), None);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let token = |h: &'static str| {
            bearer_token(&axum::http::HeaderValue::from_static(h)).map(<[u8]>::to_vec)
        };
        assert_eq!(token("Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(token("bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(token("BEARER  abc "), Some(b"abc".to_vec()));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearerabc"), None);
    }
}
