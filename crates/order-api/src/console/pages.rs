//! The console's pages: HTML skeletons served from the binary, drawn by one script and one
//! style sheet also served from the binary (`/console/assets/…`). No CDN, no build step: the
//! files in this directory are what the browser gets.
//!
//! The server puts values into the documents only as escaped text or attribute values; the
//! script writes data with `textContent`, never as markup. The `Content-Security-Policy` allows
//! scripts, styles and requests from this origin only.

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use super::auth::Operator;
use crate::api::timeline_page::{self, escape_html};
use crate::api::{ApiError, AppState};

const LAYOUT: &str = include_str!("layout.html");
const LOGIN: &str = include_str!("login.html");
const SAGAS: &str = include_str!("sagas.html");
const DEAD_LETTERS: &str = include_str!("dead_letters.html");
const STYLE: &str = include_str!("console.css");
const SCRIPT: &str = include_str!("console.js");

/// Own files only, no framing, forms to this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// An HTML answer with the console's headers.
fn page(html: String) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        Html(html),
    )
        .into_response()
}

/// `body` inside the layout (navigation, operator, sign-out), for `operator`.
fn layout(state: &AppState, operator: &Operator, name: &str, title: &str, body: &str) -> String {
    let trace_url = state.trace_url.as_deref().unwrap_or("");
    // Our own values first: a value holding a placeholder must not be filled in again.
    LAYOUT
        .replace("{{body}}", body)
        .replace("{{page}}", name)
        .replace("{{title}}", &escape_html(title))
        .replace("{{operator}}", &escape_html(&operator.name))
        .replace(
            "{{csrf}}",
            &escape_html(operator.csrf_token.as_deref().unwrap_or("")),
        )
        .replace(
            "{{signed_in}}",
            if operator.signed_in { "true" } else { "false" },
        )
        .replace(
            "{{stuck_after_s}}",
            &state.console.stuck_after.num_seconds().to_string(),
        )
        .replace("{{trace_url}}", &escape_html(trace_url))
}

/// `GET /console`: every saga.
pub(crate) async fn sagas(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
) -> Response {
    page(layout(&state, &operator, "sagas", "Sagas", SAGAS))
}

/// `GET /console/dead-letters`.
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
) -> Response {
    page(layout(
        &state,
        &operator,
        "dead-letters",
        "Dead letters",
        DEAD_LETTERS,
    ))
}

/// `GET /console/orders/{id}`: the order's timeline page, drawn from the console's route, so
/// that an operator's browser sees any principal's order.
pub(crate) async fn order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let order_id = crate::api::get_order::parse_order_id(&order_id)?;
    let exists = state
        .db
        .read(move |conn| crate::store::timeline::order_exists(conn, order_id))
        .await?;
    if !exists {
        return Err(ApiError::OrderNotFound);
    }
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                timeline_page::CONTENT_SECURITY_POLICY,
            ),
        ],
        Html(timeline_page::render(
            order_id,
            &format!("/console/api/orders/{order_id}/timeline"),
            state.trace_url.as_deref(),
        )),
    )
        .into_response())
}

/// The sign-in form.
pub(crate) fn login(login_token: &str, next: &str, message: Option<&str>) -> Response {
    page(
        LOGIN
            .replace("{{login_token}}", &escape_html(login_token))
            .replace("{{next}}", &escape_html(next))
            .replace("{{message}}", &escape_html(message.unwrap_or("")))
            .replace(
                "{{message_hidden}}",
                if message.is_some() { "" } else { "hidden" },
            ),
    )
}

/// `GET /console/assets/console.css`.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /console/assets/console.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidated on each load: a new binary's files are used at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `text` percent-encoded for a query parameter's value.
pub(crate) fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_need_nothing_from_elsewhere_and_leave_nothing_unfilled() {
        for (name, text) in [
            ("layout", LAYOUT),
            ("login", LOGIN),
            ("sagas", SAGAS),
            ("dead letters", DEAD_LETTERS),
            ("script", SCRIPT),
            ("style", STYLE),
        ] {
            for external in ["http://", "https://", "@import", "<script>"] {
                assert!(!text.contains(external), "{name}: {external}");
            }
        }
        let login = login("tok", "/console?x=\"1\"", Some("<b>no</b>"));
        let body = format!("{:?}", login.headers());
        assert!(body.contains("script-src 'self'"), "{body}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_component("/console?status=open&x=a b"),
            "/console%3Fstatus%3Dopen%26x%3Da%20b"
        );
    }
}
