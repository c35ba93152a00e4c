//! `GET|POST /console/login` and `POST /console/logout`: an operator key in, a session cookie
//! out, and back (see [`super::auth`] for why a cookie, and how it is guarded).
//!
//! The form is a plain HTML form, so that signing in needs no script. It repeats a random value
//! the form's own cookie holds ([`super::auth::LOGIN_COOKIE`]); a form posted from another site
//! has no way to know it.

use axum::Form;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use platform::config::constant_time_eq;

use super::auth::{self, LOGIN_COOKIE, Operator};
use super::{pages, sessions};
use crate::api::{ApiError, AppState};

/// `?next=`: where to go once signed in.
#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// What the form posts.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    key: String,
    login_token: String,
    next: Option<String>,
}

/// Only a console path of this site: an open redirect would hand a phishing link our name.
fn destination(next: Option<&str>) -> &str {
    next.filter(|next| {
        (*next == "/console" || next.starts_with("/console/") || next.starts_with("/console?"))
            && !next.contains("//")
            && !next.contains('\\')
    })
    .unwrap_or("/console")
}

/// The form, with a fresh login token in its cookie.
pub(crate) async fn form(State(state): State<AppState>, Query(query): Query<Next>) -> Response {
    render(
        &state,
        StatusCode::OK,
        destination(query.next.as_deref()),
        None,
    )
}

fn render(state: &AppState, status: StatusCode, next: &str, message: Option<&str>) -> Response {
    let login_token = sessions::random_token();
    let off = state.console.operators.is_empty();
    let message = message.or(off.then_some(
        "No operator can sign in: the console needs OPERATOR_KEYS (or ADMIN_TOKEN) to be set.",
    ));
    let page = pages::login(&login_token, next, message);
    let cookie = format!(
        "{LOGIN_COOKIE}={login_token}; Path=/console/login; Max-Age=900; HttpOnly; SameSite=Strict"
    );
    (status, [(header::SET_COOKIE, cookie)], page).into_response()
}

/// Signs in: a session for an operator key, `403` for a customer's key, `401` for anything else.
pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let next = destination(form.next.as_deref()).to_owned();
    let expected = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.login_token.as_bytes()) {
        return Ok(render(
            &state,
            StatusCode::FORBIDDEN,
            &next,
            Some("The sign-in form expired or did not come from this site; please try again."),
        ));
    }
    let key = form.key.trim();
    let Some(operator) = state.console.operators.find(key) else {
        let customer = state.console.customers.contains(key);
        tracing::warn!(customer, "Console sign-in refused.");
        let (status, message) = if customer {
            (
                StatusCode::FORBIDDEN,
                "This is a customer's API key: the console needs an operator key.",
            )
        } else {
            (StatusCode::UNAUTHORIZED, "This is not an operator key.")
        };
        return Ok(render(&state, status, &next, Some(message)));
    };
    let opened = state
        .db
        .transaction(move |tx| sessions::open(tx, &operator))
        .await?;
    tracing::info!(operator = %opened.session.operator, expires_at = %opened.session.expires_at,
        "Operator signed in to the console.");
    let secure = auth::secure(&state, &headers);
    let mut response = Redirect::to(&next).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        auth::session_cookie(Some(&opened.token), secure)
            .parse()
            .map_err(anyhow::Error::from)?,
    );
    cookies.append(
        header::SET_COOKIE,
        format!("{LOGIN_COOKIE}=; Path=/console/login; Max-Age=0; HttpOnly; SameSite=Strict")
            .parse()
            .map_err(anyhow::Error::from)?,
    );
    Ok(response)
}

/// Signs out: the session ends in the database (on every replica at once) and the cookie is
/// cleared. The console's script posts it with the CSRF token, then goes to the sign-in form.
pub(crate) async fn logout(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = auth::session_token(&headers).map(str::to_owned) {
        state
            .db
            .transaction(move |tx| sessions::close(tx, &token))
            .await?;
    }
    tracing::info!(operator = %operator.name, "Operator signed out of the console.");
    let secure = auth::secure(&state, &headers);
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::session_cookie(None, secure))],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn only_console_paths_are_destinations() {
        assert_eq!(
            destination(Some("/console/dead-letters")),
            "/console/dead-letters"
        );
        assert_eq!(
            destination(Some("/console?status=pending")),
            "/console?status=pending"
        );
        for elsewhere in [
            "https://evil.example/console",
            "//evil.example/console",
            "/console//evil",
            "/consolex",
            "/api/orders",
            "/console/\\evil",
        ] {
            assert_eq!(destination(Some(elsewhere)), "/console", "{elsewhere}");
        }
        assert_eq!(destination(None), "/console");
    }
}
