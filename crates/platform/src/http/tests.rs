//! What every service's HTTP surface does before any route runs: bounded metric labels, request
//! ids, and serving over real TCP with a header timeout, a connection limit and graceful
//! shutdown.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

use super::{REQUEST_ID, observe};

fn request(method: Method, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("a valid request")
}

#[tokio::test]
async fn invented_methods_add_no_metric_series() {
    let app = observe(Router::new().route("/cardinality-probe", get(|| async { "ok" })));
    for n in 0..20 {
        let method = Method::from_bytes(format!("FOO{n}").as_bytes()).expect("a token");
        let response = app
            .clone()
            .oneshot(request(method, "/cardinality-probe"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let response = app
        .clone()
        .oneshot(request(Method::GET, "/cardinality-probe"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    // The raw path of an unmatched request is no label either.
    let response = app
        .clone()
        .oneshot(request(Method::GET, "/cardinality-probe/nope-123"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let text = crate::metrics::render();
    let series: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("http_server_request_duration_seconds_count"))
        .filter(|line| line.contains("cardinality-probe"))
        .collect();
    assert!(
        !text.contains("FOO"),
        "invented methods are no labels: {series:#?}"
    );
    assert!(
        !text.contains("nope-123"),
        "raw paths are no labels: {series:#?}"
    );
    assert_eq!(series.len(), 2, "{series:#?}");
    assert!(
        series.iter().any(|line| line.contains(r#"method="_OTHER""#)
            && line.contains(r#"status="405""#)
            && line.ends_with(" 20")),
        "{series:#?}"
    );
    assert!(
        series.iter().any(|line| line.contains(r#"method="GET""#)),
        "{series:#?}"
    );
}

#[test]
fn methods_map_to_the_standard_set() {
    assert_eq!(super::method_label(&Method::GET), "GET");
    assert_eq!(super::method_label(&Method::PATCH), "PATCH");
    assert_eq!(super::method_label(&Method::TRACE), "TRACE");
    let invented = Method::from_bytes(b"PROPFIND").expect("a token");
    assert_eq!(super::method_label(&invented), "_OTHER");
}

/// Sends `id` (if any) and returns (the id the route saw, the id answered).
async fn request_id_round_trip(id: Option<&str>) -> (String, String) {
    let app = observe(Router::new().route(
        "/request-id",
        get(|headers: HeaderMap| async move {
            headers
                .get(REQUEST_ID)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        }),
    ));
    let mut builder = Request::get("/request-id");
    if let Some(id) = id {
        builder = builder.header(REQUEST_ID, id);
    }
    let response = app
        .oneshot(builder.body(Body::empty()).expect("a valid request"))
        .await
        .expect("infallible");
    let answered = response
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("a short body");
    (String::from_utf8_lossy(&body).into_owned(), answered)
}

#[tokio::test]
async fn request_ids_are_kept_only_when_short_and_plain() {
    let kept = "req-abc_123.x";
    assert_eq!(
        request_id_round_trip(Some(kept)).await,
        (kept.to_owned(), kept.to_owned())
    );
    let longest = "a".repeat(64);
    assert_eq!(request_id_round_trip(Some(&longest)).await.1, longest);
    let too_long = "a".repeat(65);
    let huge = "b".repeat(8_000);
    for refused in [
        too_long.as_str(),
        &huge,
        "has space",
        "semi;colon",
        "\"quoted\"",
        "",
    ] {
        let (seen, answered) = request_id_round_trip(Some(refused)).await;
        assert_eq!(seen, answered, "the route sees the id that is answered");
        assert_ne!(answered, refused);
        assert_eq!(
            answered.len(),
            36,
            "a fresh UUID instead of {refused:?}: {answered}"
        );
        assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{answered}");
    }
    let (seen, answered) = request_id_round_trip(None).await;
    assert!(uuid::Uuid::parse_str(&answered).is_ok() && seen == answered);
}

#[tokio::test]
async fn two_request_ids_are_replaced_by_a_fresh_one() {
    let request = Request::get("/")
        .header(REQUEST_ID, "first")
        .header(REQUEST_ID, "second")
        .body(Body::empty())
        .expect("a valid request");
    let request = super::drop_unsafe_request_id(request).await;
    assert!(request.headers().get(REQUEST_ID).is_none());
}
