//! Operator endpoints (`/admin/…`): what the people who run the shop do by hand, such as
//! sending a dead-lettered callback again (`shopctl dlq replay` calls them).
//!
//! They answer only `Authorization: Bearer <ADMIN_TOKEN>`. An API key never opens them: the
//! operator acts for no principal and sees every principal's deliveries. With `ADMIN_TOKEN`
//! unset they answer `404`, as if they did not exist, so a shop that has no operator token
//! shows no operator surface.

pub(crate) mod retry_delivery;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use platform::http::Problem;

use super::AppState;

/// Middleware: lets through requests that carry the operator's token; `404` when there is no
/// token to carry, `401` when the request carries another one or none.
pub(super) async fn require_operator(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.admin_token else {
        return Problem::not_found("The operator endpoints are off: ADMIN_TOKEN is not set.")
            .into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !token.matches(given) {
        let problem = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "Operator endpoints need `Authorization: Bearer <ADMIN_TOKEN>`.",
        );
        return ([(header::WWW_AUTHENTICATE, "Bearer")], problem).into_response();
    }
    next.run(request).await
}
