//! Who is calling: API keys map to principals, and orders belong to the principal that placed
//! them.
//!
//! Keys come from configuration (`API_KEYS=alice:sk_alice,bob:sk_bob`) and are sent as
//! `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Without a key the request is refused
//! with `401` — unless anonymous access is allowed (`ALLOW_ANONYMOUS=true`, which `shopctl up`
//! sets for local development on loopback), in which case it acts as the principal `dev`.
//! Another principal's order answers `404`, exactly like an order that does not exist, so ids
//! cannot be probed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use platform::config::constant_time_eq;
use platform::http::Problem;

/// The principal of anonymous requests when they are allowed.
pub const DEV_PRINCIPAL: &str = "dev";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal(pub String);

/// The configured keys.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    /// (key, principal) pairs.
    keys: Vec<(Vec<u8>, Principal)>,
    /// Whether a request without a key acts as [`DEV_PRINCIPAL`].
    allow_anonymous: bool,
}

impl ApiKeys {
    /// Parses `principal:key[,principal:key…]`.
    pub fn parse(spec: &str, allow_anonymous: bool) -> Result<Self, String> {
        let mut keys = Vec::new();
        for pair in spec
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (principal, key) = pair
                .split_once(':')
                .filter(|(principal, key)| !principal.is_empty() && key.len() >= 8)
                .ok_or_else(|| {
                    // Never the pair itself: it holds a key.
                    let principal = pair.split_once(':').map_or("?", |(principal, _)| principal);
                    format!(
                        "the entry of principal {principal:?} is not principal:key (keys have at \
                         least 8 characters)"
                    )
                })?;
            if allow_anonymous && principal == DEV_PRINCIPAL {
                // Anonymous requests would see, and act as, the keyed principal's orders.
                return Err(format!(
                    "API_KEYS names the principal {DEV_PRINCIPAL:?}, which requests without a key \
                     act as (ALLOW_ANONYMOUS): rename it, or require keys"
                ));
            }
            keys.push((key.as_bytes().to_vec(), Principal(principal.to_owned())));
        }
        Ok(Self {
            keys,
            allow_anonymous,
        })
    }

    /// Whether `token` is one of the keys: the operator's token must not be, or that
    /// principal's key would open the operator endpoints.
    pub fn contains(&self, token: &str) -> bool {
        self.keys
            .iter()
            .any(|(key, _)| constant_time_eq(key, token.as_bytes()))
    }

    /// Who sent `headers`, or why not known.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, &'static str> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let api_key = headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok());
        let Some(presented) = bearer.or(api_key).map(str::trim) else {
            return if self.allow_anonymous {
                Ok(Principal(DEV_PRINCIPAL.to_owned()))
            } else {
                Err("Send an API key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`.")
            };
        };
        // Every key is compared, each in constant time, so timing says nothing about which
        // key (or how much of it) matched.
        let mut found = None;
        for (key, principal) in &self.keys {
            if constant_time_eq(key, presented.as_bytes()) {
                found = Some(principal.clone());
            }
        }
        found.ok_or("The API key is not valid.")
    }
}

/// Middleware: puts the [`Principal`] in the request's extensions, or answers `401` — except to
/// a browser asking for an order's page, which is sent to the console's copy of it.
pub async fn require_principal(
    State(keys): State<Arc<ApiKeys>>,
    mut request: Request,
    next: Next,
) -> Response {
    match keys.authenticate(request.headers()) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        // A person's browser opening an order's page has no way to send an API key: the
        // console's copy of the page lets an operator in, after signing in.
        Err(_) if wants_page(&request) => {
            axum::response::Redirect::to(&format!("/console{}", request.uri().path()))
                .into_response()
        }
        Err(detail) => {
            let problem = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
            );
            ([(header::WWW_AUTHENTICATE, "Bearer")], problem).into_response()
        }
    }
}

/// Whether `request` is a browser asking for an order's page (`GET /orders/{id}`, HTML).
fn wants_page(request: &Request) -> bool {
    request.method() == axum::http::Method::GET
        && request.uri().path().starts_with("/orders/")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn keys_map_to_principals() -> Result<(), String> {
        let keys = ApiKeys::parse("alice:sk_alice_123, bob:sk_bob_4567", false)?;
        assert_eq!(
            keys.authenticate(&headers("authorization", "Bearer sk_alice_123")),
            Ok(Principal("alice".into()))
        );
        assert_eq!(
            keys.authenticate(&headers("x-api-key", "sk_bob_4567")),
            Ok(Principal("bob".into()))
        );
        assert!(
            keys.authenticate(&headers("x-api-key", "sk_bob_4568"))
                .is_err()
        );
        assert!(keys.authenticate(&HeaderMap::new()).is_err());
        assert!(keys.contains("sk_bob_4567"));
        assert!(!keys.contains("sk_bob_4568"));
        Ok(())
    }

    #[test]
    fn anonymous_requests_are_the_dev_principal_only_when_allowed() -> Result<(), String> {
        let keys = ApiKeys::parse("", true)?;
        assert_eq!(
            keys.authenticate(&HeaderMap::new()),
            Ok(Principal(DEV_PRINCIPAL.into()))
        );
        assert!(ApiKeys::parse("nokey", false).is_err());
        let short = ApiKeys::parse("alice:sk_1", false).expect_err("too short");
        assert!(!short.contains("sk_1"), "the error shows the key: {short}");
        assert!(ApiKeys::parse("dev:sk_dev_12345678", true).is_err());
        assert!(ApiKeys::parse("dev:sk_dev_12345678", false).is_ok());
        assert!(ApiKeys::parse("alice:short", false).is_err());
        Ok(())
    }
}
