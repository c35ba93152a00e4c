//! The `SERVER` span [`observe`] makes for each request, as a backend receives it: named after
//! the route, carrying the request's method and scheme and the answer's status code, and in
//! status `Error` only when the server failed (a 5xx); a 4xx is the client's failure and leaves
//! the status unset.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use futures::StreamExt;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use test_support::eventually_within;

use super::{DEADLINE, get_over_tcp, read_until, read_until_closed, send, spawn_server};
use crate::http::{ServeLimits, observe};
use crate::telemetry::capture::{SpanCapture, attribute};

/// A service with a route that fails, one that finds nothing and one that works.
fn app() -> Router {
    observe(
        "test",
        Router::new()
            .route(
                "/fails",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route(
                "/orders/{id}",
                get(|Path(_id): Path<String>| async { StatusCode::NOT_FOUND }),
            )
            .route("/works", get(|| async { "ok" })),
    )
}

/// How many of `spans` are `SERVER` spans.
fn server_spans(spans: &[SpanData]) -> usize {
    spans
        .iter()
        .filter(|span| span.span_kind == SpanKind::Server)
        .count()
}

/// The finished spans, once `count` of them are server spans (within [`DEADLINE`]).
async fn wait_for_server_spans(capture: &SpanCapture, count: usize) -> Vec<SpanData> {
    eventually_within(DEADLINE, || async {
        let spans = capture.finished();
        let servers = server_spans(&spans);
        if servers == count {
            Ok(spans)
        } else {
            Err(format!("{servers} server spans so far, not {count}"))
        }
    })
    .await
    .expect("the server spans end")
}

/// The server span named `name` among `spans`.
fn server_span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.span_kind == SpanKind::Server && span.name == name)
        .unwrap_or_else(|| panic!("a server span {name:?} in {spans:#?}"))
}

#[tokio::test]
async fn only_a_server_error_ends_the_request_span_in_error() {
    let capture = SpanCapture::start();
    let (addr, shutdown, server) = spawn_server(app(), ServeLimits::default()).await;

    for (path, status) in [("/fails", "500"), ("/orders/o-1", "404"), ("/works", "200")] {
        let answer = get_over_tcp(addr, path).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path}: {answer}"
        );
    }
    // Each span ends when its connection's task lets go of the answer, just after the client
    // has read it.
    let spans = wait_for_server_spans(&capture, 3).await;
    shutdown.cancel();
    server.await.expect("joined").expect("served");

    let failed = server_span(&spans, "GET /fails");
    assert_eq!(
        failed.status,
        Status::Error {
            description: "answered 500 Internal Server Error".into()
        }
    );
    assert_eq!(attribute(failed, "error.type").as_deref(), Some("500"));

    let not_found = server_span(&spans, "GET /orders/{id}");
    assert_eq!(not_found.status, Status::Unset);
    assert_eq!(attribute(not_found, "error.type"), None);
    assert_eq!(
        attribute(not_found, "http.route").as_deref(),
        Some("/orders/{id}")
    );

    let worked = server_span(&spans, "GET /works");
    assert_eq!(worked.status, Status::Unset);

    for (span, status) in [(failed, "500"), (not_found, "404"), (worked, "200")] {
        assert_eq!(
            attribute(span, "http.response.status_code").as_deref(),
            Some(status),
            "{}",
            span.name
        );
        assert_eq!(
            attribute(span, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(attribute(span, "url.scheme").as_deref(), Some("http"));
    }
}

/// A streamed answer (an event stream) keeps its request's span open until the body has been
/// sent: the span measures the whole exchange, and what the stream logs carries its fields.
#[tokio::test]
async fn a_streamed_answer_keeps_its_span_open_until_it_ends() {
    let capture = SpanCapture::start();
    let (end, ended) = tokio::sync::oneshot::channel::<()>();
    let ended = Arc::new(Mutex::new(Some(ended)));
    let app = observe(
        "test",
        Router::new().route(
            "/stream",
            get(move || async move {
                let ended = ended
                    .lock()
                    .expect("not poisoned")
                    .take()
                    .expect("one call");
                let chunks = futures::stream::once(async { Bytes::from_static(b"start;") }).chain(
                    futures::stream::once(async move {
                        let _ = ended.await;
                        Bytes::from_static(b"end;")
                    }),
                );
                Body::from_stream(chunks.map(Ok::<_, Infallible>))
            }),
        ),
    );
    let (addr, shutdown, server) = spawn_server(app, ServeLimits::default()).await;
    let mut stream = send(
        addr,
        "GET /stream HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await;

    // The head and the first chunk have been sent: the handler has answered.
    read_until(&mut stream, "start;").await;
    assert_eq!(
        server_spans(&capture.finished()),
        0,
        "the span ended with the head"
    );

    end.send(()).expect("the stream waits");
    let (rest, _) = read_until_closed(&mut stream).await;
    assert!(rest.contains("end;"), "{rest}");
    // The span ends with the stream.
    wait_for_server_spans(&capture, 1).await;
    shutdown.cancel();
    server.await.expect("joined").expect("served");
}
