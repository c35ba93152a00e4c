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
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use platform::http::Problem;

/// The largest request body: requests are small; anything bigger is a mistake.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a client has to send a request's body once its head has arrived: a request of the
/// API is under a kilobyte, which a slow mobile link sends in well under a second.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `route` with its request's body read first, at most [`MAX_BODY_BYTES`] within
/// [`BODY_READ_TIMEOUT`] (see [`read_in_time`]). For the routes that take a body, and only
/// those: a `GET` is answered without a look at what the client may have sent with it.
pub(crate) fn read_first<S>(route: MethodRouter<S>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.route_layer(from_fn(|request, next| {
        read_in_time(MAX_BODY_BYTES, BODY_READ_TIMEOUT, request, next)
    }))
}

/// Reads the body of `request` (at most `max_bytes`) within `deadline` (the API's is
/// [`BODY_READ_TIMEOUT`]) before the route sees it: `408` if it does not arrive in time, `413`
/// if it is too large, `400` if it cannot be read — each a problem document. The body is read
/// before the route checks its media type: a body that is both too large and not JSON is
/// answered `413`, not `415`.
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
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                format!(
                    "The request body exceeds the size limit of this endpoint ({max_bytes} bytes)."
                ),
            )
            .into_response();
        }
        Ok(Err(error)) => {
            return Problem::bad_request(format!("The request body could not be read: {error}."))
                .into_response();
        }
        Err(_) => {
            return Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                format!(
                    "The request body did not arrive within {} ms; nothing was recorded, it \
                     is safe to retry.",
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
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::{Request, StatusCode, header};
    use axum::middleware::from_fn;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// A body that never sends its first byte (`Stalled`), or breaks off (`Broken`).
    enum Faulty {
        Stalled,
        Broken,
    }

    impl http_body::Body for Faulty {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            match *self {
                Self::Stalled => Poll::Pending,
                Self::Broken => Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionReset.into()))),
            }
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

    /// The answer's status, media type and body.
    async fn call(body: Body) -> (StatusCode, Option<header::HeaderValue>, Bytes) {
        let request = Request::post("/").body(body).expect("a request");
        let response = echo(16).oneshot(request).await.expect("an answer");
        let status = response.status();
        let kind = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the answer's body");
        (status, kind, body.to_bytes())
    }

    /// The answer's status and the `type` and `detail` of its problem document.
    async fn problem(body: Body) -> (StatusCode, String, String) {
        let (status, kind, body) = call(body).await;
        assert_eq!(
            kind,
            Some(header::HeaderValue::from_static(
                platform::http::PROBLEM_JSON
            ))
        );
        let doc: Value = serde_json::from_slice(&body).expect("a JSON document");
        let field = |name: &str| doc[name].as_str().unwrap_or_default().to_owned();
        (status, field("type"), field("detail"))
    }

    #[tokio::test]
    async fn a_body_that_arrives_reaches_the_route_whole() {
        let (status, _, body) = call(Body::from("sixteen bytes ok")).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"sixteen bytes ok"[..])
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_a_problem() {
        let (status, kind, detail) = problem(Body::from("seventeen bytes!!")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(kind.ends_with("/body-too-large"), "{kind}");
        assert!(detail.contains("16 bytes"), "{detail}");
    }

    #[tokio::test]
    async fn a_body_that_does_not_come_is_answered_408_at_the_deadline() {
        let started = std::time::Instant::now();
        let (status, kind, detail) = problem(Body::new(Faulty::Stalled)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert!(kind.ends_with("/request-timeout"), "{kind}");
        assert!(detail.contains("did not arrive"), "{detail}");
        assert!(started.elapsed() >= DEADLINE, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_is_a_bad_request() {
        let (status, kind, detail) = problem(Body::new(Faulty::Broken)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(kind.ends_with("/invalid-request"), "{kind}");
        assert!(detail.contains("could not be read"), "{detail}");
    }
}
