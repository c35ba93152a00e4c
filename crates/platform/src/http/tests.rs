//! What every service's HTTP surface does before any route runs: bounded metric labels, request
//! ids, and serving over real TCP with a header timeout, a connection limit and graceful
//! shutdown.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

use super::observe;

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
