//! Every error answer is a problem document, whoever makes it: a handler, axum's extractors and
//! router, or a layer.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query};
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::{get, post};
use serde_json::Value;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

use super::{JsonBody, PROBLEM_JSON, problem_answers};

#[derive(Debug, serde::Deserialize)]
struct Params {
    #[allow(dead_code)]
    wait: Option<u64>,
}

fn app() -> Router {
    let router = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route("/query", get(|Query(_): Query<Params>| async { "ok" }))
        .route("/json", post(|JsonBody(_): JsonBody<Value>| async { "ok" }))
        .route("/bytes", post(|_: axum::body::Bytes| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route(
            "/ready",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({"status": "not_ready"})),
                )
            }),
        )
        .layer(DefaultBodyLimit::max(16))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(50),
        ));
    problem_answers(router)
}

/// Sends a request and returns the status, the headers and the body as JSON.
async fn send(
    method: Method,
    uri: &str,
    body: &'static str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid request");
    let response = app().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.expect("a body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn errors_from_outside_the_handlers_are_problems() {
    let cases = [
        (
            Method::GET,
            "/query?wait=-1",
            "",
            StatusCode::BAD_REQUEST,
            "wait",
        ),
        (
            Method::GET,
            "/items/not-a-number",
            "",
            StatusCode::BAD_REQUEST,
            "parse",
        ),
        (
            Method::GET,
            "/nowhere",
            "",
            StatusCode::NOT_FOUND,
            "No such route",
        ),
        (
            Method::DELETE,
            "/query",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE",
        ),
        (Method::POST, "/json", "{", StatusCode::BAD_REQUEST, "EOF"),
        (
            Method::POST,
            "/bytes",
            "0123456789abcdef-too-long",
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        ),
        (
            Method::GET,
            "/slow",
            "",
            StatusCode::REQUEST_TIMEOUT,
            "in time",
        ),
    ];
    for (method, uri, body, status, says) in cases {
        let (answered, headers, problem) = send(method.clone(), uri, body).await;
        assert_eq!(answered, status, "{method} {uri}: {problem}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            PROBLEM_JSON,
            "{method} {uri}"
        );
        assert_eq!(
            problem["status"],
            status.as_u16(),
            "{method} {uri}: {problem}"
        );
        for member in ["type", "title", "detail"] {
            assert!(
                problem[member].is_string(),
                "{method} {uri} lacks {member}: {problem}"
            );
        }
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{method} {uri}: {detail}");
    }
}

#[tokio::test]
async fn a_405_keeps_its_allow_header() {
    let (status, headers, _) = send(Method::PUT, "/query", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = headers[header::ALLOW].to_str().expect("text");
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn answers_that_are_json_or_no_error_are_left_alone() {
    let (status, headers, body) = send(Method::GET, "/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body["status"], "not_ready");
    let (status, headers, _) = send(Method::GET, "/items/7", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("text")
            .starts_with("text/plain")
    );
}
