//! `GET /orders/{id}`: the saga timeline drawn for people.
//!
//! One self-contained HTML document — inline style and script, no external resources — so it
//! works offline and behind any proxy. Its script fetches `/api/orders/{id}/timeline` and draws
//! one row per event with a bar as long as the time since the saga started, and redraws every
//! second until the order is terminal. The trace id links to the trace viewer when one is configured (`TRACE_URL_TEMPLATE`).
//!
//! The server puts values into the document only as escaped attribute or text content, and the
//! script writes data with `textContent`, never as markup; the `Content-Security-Policy` header
//! allows nothing but the page's own inline code and requests to this origin.

use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use events::OrderId;

use super::get_order::parse_order_id;
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::store::timeline;

/// The page, with `{{order_id}}`, `{{timeline_url}}` and `{{trace_url}}` to fill in.
const TEMPLATE: &str = include_str!("timeline_page.html");

/// Inline code only; data from this origin only; no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    super::authorize(&state, &principal, order_id).await?;
    let exists = state
        .db
        .read(move |conn| timeline::order_exists(conn, order_id))
        .await?;
    if !exists {
        return Err(ApiError::OrderNotFound);
    }
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        Html(render(
            order_id,
            &format!("/api/orders/{order_id}/timeline"),
            state.trace_url.as_deref(),
        )),
    )
        .into_response())
}

/// The page for `order_id`, drawn from the JSON at `timeline_url` (the customer's route, or the
/// console's), linking its trace to `trace_url` (a template, `{trace_id}` left for the script to
/// fill in) if given.
pub(crate) fn render(order_id: OrderId, timeline_url: &str, trace_url: Option<&str>) -> String {
    // Our own values go in first: a URL containing a placeholder must not be filled in again.
    TEMPLATE
        .replace("{{order_id}}", &escape_html(&order_id.to_string()))
        .replace("{{timeline_url}}", &escape_html(timeline_url))
        .replace("{{trace_url}}", &escape_html(trace_url.unwrap_or("")))
}

/// Escapes text for HTML text and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for char in text.chars() {
        match char {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_names_the_order_and_the_trace_viewer_and_nothing_is_left_unfilled() {
        let order_id = OrderId::new();
        let page = render(
            order_id,
            "/api/orders/x/timeline",
            Some("http://jaeger.example:16686/trace/{trace_id}?a=1&b=\"2\""),
        );
        assert!(!page.contains("{{"), "unfilled placeholder");
        assert!(page.contains(&format!("data-order-id=\"{order_id}\"")));
        assert!(page.contains(
            "data-trace-url=\"http://jaeger.example:16686/trace/{trace_id}?a=1&amp;b=&quot;2&quot;\""
        ));
        let without = render(order_id, "/api/orders/x/timeline", None);
        assert!(without.contains("data-trace-url=\"\""));
    }

    #[test]
    fn the_page_needs_nothing_from_elsewhere() {
        let page = render(OrderId::new(), "/api/orders/x/timeline", None);
        for external in [
            "<script src",
            "<link rel=\"stylesheet\"",
            "http://",
            "https://",
            "@import",
        ] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
