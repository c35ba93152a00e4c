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
use crate::auth::ApiKeys;

/// Fewest characters an operator's secret has, `ADMIN_TOKEN` or a console key
/// (`OPERATOR_KEYS`): either opens every principal's orders.
pub(crate) const MIN_OPERATOR_SECRET_LEN: usize = 16;

/// Whether `token` may be the operator's: long enough not to be guessed, and no customer's key
/// (its customer could then act as the operator). The reason when not, without the token.
pub(crate) fn check_admin_token(token: &str, customers: &ApiKeys) -> Result<(), String> {
    if token.len() < MIN_OPERATOR_SECRET_LEN {
        return Err(format!(
            "has fewer than {MIN_OPERATOR_SECRET_LEN} characters: it opens every principal's \
             orders and deliveries"
        ));
    }
    if customers.contains(token) {
        return Err("is also an API key: a client holding it could act as the operator".into());
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_token_is_long_and_no_customer_s() -> Result<(), String> {
        let customers = ApiKeys::parse("alice:sk_alice_0123456789", false)?;
        check_admin_token("admin-token-0123456789", &customers)?;
        let short = check_admin_token("admin-token", &customers).expect_err("short");
        assert!(
            short.contains("16") && !short.contains("admin-token"),
            "{short}"
        );
        assert!(
            check_admin_token("sk_alice_0123456789", &customers).is_err(),
            "a customer's key"
        );
        Ok(())
    }
}
