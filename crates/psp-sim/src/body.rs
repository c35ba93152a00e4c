//! Reading a request's body within a deadline.
//!
//! The server's header-read timeout bounds how long a client may take to send a request's
//! head, not its body: a client announcing a body and sending it a byte at a time would hold
//! its connection, its task and its buffer for as long as it liked. The services bound the
//! whole request with a timeout layer; the simulator cannot, since its latency knob delays
//! the answer to a charge by up to a minute on purpose. So the body alone has a deadline.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use platform::http::Problem;

/// How long a client has to send a request's body once its head has arrived: a request of the
/// API is under a kilobyte, which a slow mobile link sends in well under a second.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the body of `request` (at most `max_bytes`) within `deadline` (the API's is
/// [`BODY_READ_TIMEOUT`]) before the route sees it: `408` if it does not arrive in time, `413`
/// if it is too large, `400` if it cannot be read — each a problem document.
pub(crate) async fn read_in_time(
    max_bytes: usize,
    deadline: Duration,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(deadline, Limited::new(body, max_bytes).collect());
    let body = match read.await {
        Ok(Ok(collected)) => Body::from(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            return Problem::for_status(StatusCode::PAYLOAD_TOO_LARGE, String::new())
                .into_response();
        }
        Ok(Err(error)) => {
            return Problem::bad_request(format!("The request body could not be read: {error}."))
                .into_response();
        }
        Err(_) => {
            return Problem::for_status(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} ms.",
                    deadline.as_millis()
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::{Request, StatusCode, header};
    use axum::middleware::from_fn;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    /// A body whose first byte never comes.
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    /// A body's deadline in these tests.
    const DEADLINE: Duration = Duration::from_millis(100);

    fn echo(max_bytes: usize) -> Router {
        Router::new()
            .route("/", post(|body: Bytes| async move { body }))
            .layer(from_fn(move |request, next| {
                read_in_time(max_bytes, DEADLINE, request, next)
            }))
    }

    async fn call(router: Router, body: Body) -> (StatusCode, String, Bytes) {
        let request = Request::post("/").body(body).expect("a request");
        let response = router.oneshot(request).await.expect("an answer");
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the answer's body");
        (status, kind, body.to_bytes())
    }

    #[tokio::test]
    async fn a_body_that_arrives_reaches_the_route_whole() {
        let (status, _, body) = call(echo(16), Body::from("sixteen bytes ok")).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"sixteen bytes ok"[..])
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_a_problem() {
        let (status, kind, _) = call(echo(16), Body::from("seventeen bytes!!")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(kind, platform::http::PROBLEM_JSON);
    }

    #[tokio::test]
    async fn a_body_that_does_not_come_is_answered_408_at_the_deadline() {
        let started = std::time::Instant::now();
        let (status, kind, body) = call(echo(16), Body::new(Stalled)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(kind, platform::http::PROBLEM_JSON);
        assert!(
            String::from_utf8_lossy(&body).contains("did not arrive"),
            "{body:?}"
        );
        assert!(started.elapsed() >= DEADLINE, "{:?}", started.elapsed());
    }
}
