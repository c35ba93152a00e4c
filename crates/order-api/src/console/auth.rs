//! Who may use the console, and how a browser proves it.
//!
//! Operators are not customers: they sign in with an operator key (`OPERATOR_KEYS`, or
//! `ADMIN_TOKEN` as the operator `admin`), never with an API key, and see every principal's
//! orders. A customer's key is refused with `403`, whether sent as a header or typed into the
//! sign-in form.
//!
//! A browser cannot send an `Authorization` header with a link it follows, so the sign-in form
//! turns an operator key into a session cookie ([`super::sessions`]): `HttpOnly` (no script
//! reads it), `SameSite=Strict` (no other site's page sends it), `Secure` when the request came
//! over HTTPS, and scoped to `/console`. Every state-changing request must also carry the
//! session's CSRF token in `X-CSRF-Token`, which only the console's own pages know — a header a
//! form on another site cannot set — and an `Origin`, when sent, must be this host.
//!
//! Scripts may skip the browser's way: `Authorization: Bearer <operator key>` on any console
//! route, with no cookie and so no CSRF to fear.
//!
//! In local development (`ALLOW_ANONYMOUS`, which `shopctl up` sets on loopback), a browser on
//! this machine is the operator `dev` without signing in; its pages carry a CSRF token all the
//! same, since any site the developer visits could otherwise post to `127.0.0.1`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use platform::config::constant_time_eq;
use platform::http::Problem;

use super::sessions;
use crate::api::{ApiError, AppState};
use crate::auth::DEV_PRINCIPAL;

/// The session cookie over HTTPS: `__Host-` makes browsers refuse it unless it is `Secure`,
/// set by this host for `/`, so no other subdomain can plant one.
pub(crate) const SECURE_COOKIE: &str = "__Host-shop_console";
/// The session cookie over plain HTTP (local development).
pub(crate) const PLAIN_COOKIE: &str = "shop_console";
/// The sign-in form's own cookie: a random value the form repeats, so that another site cannot
/// sign a browser in under the attacker's key (login CSRF).
pub(crate) const LOGIN_COOKIE: &str = "shop_console_login";
/// The header state-changing requests carry their CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The configured operators: (key, name) pairs.
#[derive(Clone, Debug, Default)]
pub struct OperatorKeys {
    keys: Vec<(Vec<u8>, String)>,
}

impl OperatorKeys {
    /// Parses `name:key[,name:key…]`, plus `ADMIN_TOKEN` as the operator `admin`. Keys have at
    /// least 16 characters (they open every principal's orders) and none is a customer's key.
    pub fn parse(
        spec: &str,
        admin_token: Option<&str>,
        customers: &crate::auth::ApiKeys,
    ) -> Result<Self, String> {
        let mut keys = Vec::new();
        for pair in spec
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (name, key) = pair
                .split_once(':')
                .filter(|(name, key)| {
                    !name.is_empty() && key.len() >= crate::api::admin::MIN_OPERATOR_SECRET_LEN
                })
                .ok_or_else(|| {
                    // Never the pair itself: it holds a key.
                    let name = pair.split_once(':').map_or("?", |(name, _)| name);
                    format!(
                        "the entry of operator {name:?} is not name:key (operator keys have at \
                         least 16 characters)"
                    )
                })?;
            if customers.contains(key) {
                return Err(format!(
                    "operator {name:?}'s key is also an API key: its customer could open the \
                     console"
                ));
            }
            keys.push((key.as_bytes().to_vec(), name.to_owned()));
        }
        if let Some(token) = admin_token.filter(|token| !token.is_empty()) {
            keys.push((token.as_bytes().to_vec(), "admin".to_owned()));
        }
        Ok(Self { keys })
    }

    /// Whether any operator can sign in.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The operator whose key `presented` is; every key is compared in constant time.
    pub(crate) fn find(&self, presented: &str) -> Option<String> {
        let mut found = None;
        for (key, name) in &self.keys {
            if constant_time_eq(key, presented.as_bytes()) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// A signed-in operator, in the request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct Operator {
    /// Who (the name in `OPERATOR_KEYS`, `admin`, or `dev`).
    pub(crate) name: String,
    /// The token state-changing requests must carry; `None` for a bearer key (no cookie).
    pub(crate) csrf_token: Option<String>,
    /// Whether a session cookie identified them (and signing out means something).
    pub(crate) signed_in: bool,
}

/// The value of cookie `name` in `headers`, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The session token the request's cookie holds, if any.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SECURE_COOKIE).or_else(|| cookie(headers, PLAIN_COOKIE))
}

/// Whether cookies set in answer to this request must be `Secure`: configured so, or a proxy in
/// front says the browser spoke HTTPS.
pub(crate) fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.console.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that opens a session with `token` (or, with `None`, ends it).
pub(crate) fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let (name, flags, path) = if secure {
        // `__Host-` cookies must have `Path=/`.
        (SECURE_COOKIE, "; Secure", "/")
    } else {
        (PLAIN_COOKIE, "", "/console")
    };
    match token {
        Some(token) => {
            let max_age = sessions::LIFETIME.num_seconds();
            format!(
                "{name}={token}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{flags}"
            )
        }
        None => format!("{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict{flags}"),
    }
}

/// Whether `request` comes from this machine's loopback interface.
fn from_loopback(request: &Request) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback())
}

/// Middleware: puts the [`Operator`] in the request's extensions; otherwise pages send the
/// browser to the sign-in form and the console's JSON routes answer `401`. A customer's key is
/// `403`. State-changing requests must carry the CSRF token (see the module documentation).
pub(crate) async fn require_operator(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // What `identify` reads, taken out of the request: a request is not `Sync`, and a reference
    // to it held across an `.await` would make this future unsendable.
    let headers = request.headers().clone();
    let loopback = from_loopback(&request);
    let operator = match identify(&state, &headers, loopback).await {
        Ok(operator) => operator,
        Err(refusal) => return refusal,
    };
    let Some(operator) = operator else {
        if request.uri().path().starts_with("/console/api/") {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "Sign in at /console/login, or send `Authorization: Bearer <operator key>`.",
            )
            .into_response();
        }
        let next_path = request
            .uri()
            .path_and_query()
            .map_or("/console", |path| path.as_str());
        return Redirect::to(&format!(
            "/console/login?next={}",
            super::pages::encode_component(next_path)
        ))
        .into_response();
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        && !csrf_passes(&operator, request.headers())
    {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "Forbidden",
            "This action needs the console page's CSRF token (X-CSRF-Token) and must come from \
             the console's own origin; reload the page and try again.",
        )
        .into_response();
    }
    request.extensions_mut().insert(operator);
    next.run(request).await
}

/// Who sent `headers` (from loopback or not): `Ok(None)` when nobody known, `Err` for a refusal to answer at once.
async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    loopback: bool,
) -> Result<Option<Operator>, Response> {
    let console = &state.console;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(presented) = bearer {
        if let Some(name) = console.operators.find(presented) {
            return Ok(Some(Operator {
                name,
                csrf_token: None,
                signed_in: false,
            }));
        }
        return Err(refuse_key(state, presented));
    }
    if let Some(token) = session_token(headers).map(str::to_owned) {
        let now = platform::time::now();
        let found = state
            .db
            .read(move |conn| sessions::find(conn, &token, now))
            .await
            .map_err(|error| ApiError::from(error).into_response())?;
        if let Some(session) = found {
            return Ok(Some(Operator {
                name: session.operator,
                csrf_token: Some(session.csrf_token),
                signed_in: true,
            }));
        }
    }
    if console.allow_loopback && loopback {
        return Ok(Some(Operator {
            name: DEV_PRINCIPAL.to_owned(),
            csrf_token: Some(console.dev_csrf_token.to_string()),
            signed_in: false,
        }));
    }
    Ok(None)
}

/// The answer to a key that is no operator's: `403` for a customer's, `401` otherwise.
fn refuse_key(state: &AppState, presented: &str) -> Response {
    if state.console.customers.contains(presented) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "This is a customer's API key: the console needs an operator key.",
        )
        .into_response();
    }
    let problem = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        "The key is not an operator key.",
    );
    ([(header::WWW_AUTHENTICATE, "Bearer")], problem).into_response()
}

/// Whether a state-changing request carries the session's CSRF token and, if the browser
/// says where it comes from, comes from this host.
fn csrf_passes(operator: &Operator, headers: &HeaderMap) -> bool {
    let Some(expected) = &operator.csrf_token else {
        return true;
    };
    let sent = headers
        .get(CSRF_HEADER)
        .map(axum::http::HeaderValue::as_bytes)
        .unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|origin| {
            host.is_some_and(|host| {
                origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| authority == host)
            })
        });
    constant_time_eq(expected.as_bytes(), sent) && origin_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ApiKeys;

    #[test]
    fn operator_keys_are_long_named_and_never_a_customer_s() -> Result<(), String> {
        let customers = ApiKeys::parse("alice:sk_alice_123", false)?;
        let keys = OperatorKeys::parse(
            "ops:op_key_0123456789ab",
            Some("admin-token-0123456789"),
            &customers,
        )?;
        assert_eq!(keys.find("op_key_0123456789ab").as_deref(), Some("ops"));
        assert_eq!(
            keys.find("admin-token-0123456789").as_deref(),
            Some("admin")
        );
        assert_eq!(keys.find("sk_alice_123"), None);
        let short = OperatorKeys::parse("ops:short", None, &customers).expect_err("short");
        assert!(
            !short.contains("short\""),
            "the error shows the key: {short}"
        );
        assert!(
            OperatorKeys::parse("ops:sk_alice_123", None, &customers).is_err(),
            "a customer's key"
        );
        assert!(OperatorKeys::parse("", None, &customers)?.is_empty());
        Ok(())
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; shop_console=tok; b=2".parse().expect("header"),
        );
        assert_eq!(session_token(&headers), Some("tok"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_over_https() {
        let plain = session_cookie(Some("t"), false);
        assert!(
            plain.starts_with("shop_console=t; Path=/console;"),
            "{plain}"
        );
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let secure = session_cookie(Some("t"), true);
        assert!(
            secure.starts_with("__Host-shop_console=t; Path=/;"),
            "{secure}"
        );
        assert!(secure.ends_with("; Secure"));
        assert!(session_cookie(None, false).contains("Max-Age=0"));
    }

    #[test]
    fn state_changes_need_the_token_and_this_origin() {
        let operator = Operator {
            name: "ops".into(),
            csrf_token: Some("tok".into()),
            signed_in: true,
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "shop.example".parse().expect("header"));
        assert!(!csrf_passes(&operator, &headers), "no token");
        headers.insert(CSRF_HEADER, "tok".parse().expect("header"));
        assert!(csrf_passes(&operator, &headers));
        headers.insert(
            header::ORIGIN,
            "https://evil.example".parse().expect("header"),
        );
        assert!(!csrf_passes(&operator, &headers), "another origin");
        headers.insert(
            header::ORIGIN,
            "https://shop.example".parse().expect("header"),
        );
        assert!(csrf_passes(&operator, &headers));
        let bearer = Operator {
            name: "ops".into(),
            csrf_token: None,
            signed_in: false,
        };
        assert!(
            csrf_passes(&bearer, &HeaderMap::new()),
            "no cookie, no CSRF"
        );
    }
}
