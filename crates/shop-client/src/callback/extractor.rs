//! [`VerifiedCallback`] as an axum extractor, and [`CallbackError`] as an answer.

use axum::Json;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{CallbackError, CallbackVerifier, VerifiedCallback, unix_now};

/// Longest callback body read, in bytes. order-api's callbacks are a few hundred bytes; the
/// limit keeps a sender with a valid-looking header from making the receiver buffer much.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Extracts a verified callback, taking the [`CallbackVerifier`] from the router's state.
///
/// The headers are checked before the body is read. A refused delivery never reaches the
/// handler: it is answered [`CallbackError::status`], with an RFC 9457 problem document unless
/// the status is `2xx` (a replay, acknowledged with an empty `200`). A handler that wants to
/// see refusals too takes `Result<VerifiedCallback, CallbackError>` instead.
impl<S> FromRequest<S> for VerifiedCallback
where
    CallbackVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = CallbackError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = CallbackVerifier::from_ref(state);
        let now = unix_now();
        let (parts, body) = request.into_parts();
        let signed = verifier.check_headers(&parts.headers, now)?;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
            return Err(CallbackError::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|error| CallbackError::UnreadableBody(error.to_string()))?;
        verifier.verify_body(&signed, &body, now).await
    }
}

/// An RFC 9457 problem document. The receiver is the client's service, not the shop's, so its
/// problems use `about:blank` ("see the status code") rather than the shop's problem types.
#[derive(Serialize)]
struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    problem_type: &'static str,
    /// The status's reason phrase.
    title: &'static str,
    /// The status code, repeated for clients that only read the body.
    status: u16,
    /// What was wrong with this delivery.
    detail: String,
}

impl IntoResponse for CallbackError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_success() {
            return status.into_response();
        }
        let problem = Problem {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            // The store's own error is the receiver's business, not the sender's.
            detail: match self {
                CallbackError::SeenIds(_) => {
                    "the callback could not be checked; retry later".into()
                }
                refused => refused.to_string(),
            },
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::extract::FromRef;
    use axum::routing::post;
    use standard_webhooks::{ID, SIGNATURE, Secret, TIMESTAMP};
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[derive(Clone)]
    struct State {
        verifier: CallbackVerifier,
        /// Callbacks the handler ran for.
        handled: Arc<AtomicUsize>,
    }

    impl FromRef<State> for CallbackVerifier {
        fn from_ref(state: &State) -> Self {
            state.verifier.clone()
        }
    }

    async fn handle(
        axum::extract::State(state): axum::extract::State<State>,
        _: VerifiedCallback,
    ) -> StatusCode {
        state.handled.fetch_add(1, Ordering::SeqCst);
        StatusCode::NO_CONTENT
    }

    fn request(signature: &str, timestamp: i64, body: &'static str) -> Request {
        Request::post("/callbacks")
            .header(ID, "msg_1")
            .header(TIMESTAMP, timestamp.to_string())
            .header(SIGNATURE, signature)
            .body(Body::from(body))
            .expect("a valid request")
    }

    #[tokio::test]
    async fn refusals_never_reach_the_handler() -> Result<(), Box<dyn std::error::Error>> {
        let state = State {
            verifier: CallbackVerifier::new(SECRET)?,
            handled: Arc::default(),
        };
        let app = Router::new()
            .route("/callbacks", post(handle))
            .with_state(state.clone());
        let body = r#"{"type":"order.confirmed","timestamp":"2024-07-01T12:00:00Z","data":{"order_id":"ord_0190b5a3c8e07d4f9a2b3c4d5e6f7a8b","status":"confirmed","reason":null}}"#;
        let now = unix_now();
        let signature = Secret::parse(SECRET)?.sign("msg_1", now, body.as_bytes());

        let accepted = app.clone().oneshot(request(&signature, now, body)).await?;
        assert_eq!(accepted.status(), StatusCode::NO_CONTENT);

        let replayed = app.clone().oneshot(request(&signature, now, body)).await?;
        assert_eq!(replayed.status(), StatusCode::OK);

        let forged = app.oneshot(request("v1,AAAA", now, body)).await?;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            forged.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/problem+json"))
        );
        let problem: serde_json::Value =
            serde_json::from_slice(&axum::body::to_bytes(forged.into_body(), 4096).await?)?;
        assert_eq!(problem["status"], 401);
        assert_eq!(problem["detail"], "no signature matches the callback");

        assert_eq!(state.handled.load(Ordering::SeqCst), 1);
        Ok(())
    }
}
