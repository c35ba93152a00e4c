//! What every service's HTTP surface does before any route runs: bounded metric labels, request
//! ids, and serving over real TCP with a header timeout, a connection limit and graceful
//! shutdown; and the span each request leaves (in [`spans`]).

mod spans;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::routing::get;
use test_support::eventually_within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{REQUEST_ID, ServeLimits, observe, serve_with};

/// Longest any step below may take before the test fails; the steps take milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

fn request(method: Method, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("a valid request")
}

#[tokio::test]
async fn a_request_puts_its_database_work_first_and_a_task_it_spawns_does_not() {
    let app = observe(
        "test",
        Router::new().route(
            "/first",
            get(|| async {
                let spawned = tokio::spawn(async { crate::db::is_interactive() })
                    .await
                    .expect("the task ends");
                format!("{} {spawned}", crate::db::is_interactive())
            }),
        ),
    );
    let response = app
        .oneshot(request(Method::GET, "/first"))
        .await
        .expect("infallible");
    let body = axum::body::to_bytes(response.into_body(), 64)
        .await
        .expect("a body");
    assert_eq!(&body[..], b"true false");
    assert!(!crate::db::is_interactive(), "outside any request");
}

#[tokio::test]
async fn invented_methods_add_no_metric_series() {
    let app = observe(
        "test",
        Router::new().route("/cardinality-probe", get(|| async { "ok" })),
    );
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
    let app = observe(
        "test",
        Router::new().route(
            "/request-id",
            get(|headers: HeaderMap| async move {
                headers
                    .get(REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            }),
        ),
    );
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

#[test]
fn two_request_ids_are_replaced_by_a_fresh_one() {
    let mut headers = HeaderMap::new();
    headers.append(REQUEST_ID, HeaderValue::from_static("first"));
    headers.append(REQUEST_ID, HeaderValue::from_static("second"));
    let id = super::settle_request_id(&mut headers);
    let id = id.to_str().expect("ASCII");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let left: Vec<_> = headers.get_all(REQUEST_ID).iter().collect();
    assert_eq!(left, [id], "the fresh id alone");
}

/// A server on a loopback port with `limits`, and the token that stops it.
async fn spawn_server(
    router: Router,
    limits: ServeLimits,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_with(listener, router, shutdown.clone(), limits));
    (addr, shutdown, server)
}

/// Reads until the peer closes the connection; returns what came and how long it took.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0_u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection is still open after {DEADLINE:?}"
    );
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// Reads until what came contains `marker` (within [`DEADLINE`]); returns what came.
async fn read_until(stream: &mut TcpStream, marker: &str) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0_u8; 1024];
        while !String::from_utf8_lossy(&received).contains(marker) {
            let n = stream.read(&mut buffer).await.expect("reads");
            assert!(
                n > 0,
                "closed before {marker:?}: {}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no {marker:?} within {DEADLINE:?}");
    String::from_utf8_lossy(&received).into_owned()
}

async fn get_over_tcp(addr: std::net::SocketAddr, path: &str) -> String {
    let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let mut stream = send(addr, &head).await;
    read_until_closed(&mut stream).await.0
}

/// A new connection to `addr` on which `head` has been sent.
async fn send(addr: std::net::SocketAddr, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(head.as_bytes()).await.expect("sent");
    stream
}

fn healthz() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let timeout = Duration::from_millis(300);
    let limits = ServeLimits {
        header_read_timeout: timeout,
        ..ServeLimits::default()
    };
    let (addr, shutdown, server) = spawn_server(healthz(), limits).await;

    // Slowloris: a head begun and never finished.
    let mut partial = TcpStream::connect(addr).await.expect("connects");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .expect("sent");
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(addr).await.expect("connects");
    let (_, waited) = read_until_closed(&mut partial).await;
    assert!(
        waited >= timeout / 2,
        "closed after {waited:?}, before the timeout"
    );
    read_until_closed(&mut silent).await;

    // Complete requests are served as before; a kept-alive connection left idle is closed
    // after the same time.
    assert!(
        get_over_tcp(addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut idle = TcpStream::connect(addr).await.expect("connects");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("sent");
    let (answer, _) = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    shutdown.cancel();
    let stopped = tokio::time::timeout(DEADLINE, server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let limits = ServeLimits {
        max_connections: 1,
        ..ServeLimits::default()
    };
    let (addr, shutdown, server) = spawn_server(healthz(), limits).await;
    let mut first = send(addr, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let mut answer = [0_u8; 12];
    first.read_exact(&mut answer).await.expect("answered");
    assert_eq!(&answer, b"HTTP/1.1 200");
    // The first connection is kept alive and holds the only slot: the second waits in the
    // listen backlog, unanswered.
    // (Showing that something does not happen takes a wait: 300 ms, where serving it would
    // take about one.)
    let mut second = tokio::spawn(get_over_tcp(addr, "/healthz"));
    let early = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
    assert!(
        early.is_err(),
        "the second connection was served beside the first"
    );
    drop(first);
    let answered = tokio::time::timeout(DEADLINE, second)
        .await
        .expect("served once the slot is free")
        .expect("the task ran");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    shutdown.cancel();
    assert!(tokio::time::timeout(DEADLINE, server).await.is_ok());
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_refuses_new_ones() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let router = {
        let (entered, release) = (entered.clone(), release.clone());
        Router::new().route(
            "/slow",
            get(move || async move {
                entered.notify_one();
                release.notified().await;
                "finished"
            }),
        )
    };
    let (addr, shutdown, server) = spawn_server(router, ServeLimits::default()).await;
    let in_flight = tokio::spawn(get_over_tcp(addr, "/slow"));
    tokio::time::timeout(DEADLINE, entered.notified())
        .await
        .expect("the request reached its route");
    shutdown.cancel();
    // The listener closes at once; the request in flight is still being answered.
    eventually_within(DEADLINE, || async {
        match TcpStream::connect(addr).await {
            Ok(_) => Err("still accepting after shutdown".to_owned()),
            Err(_) => Ok(()),
        }
    })
    .await
    .expect("the listener closes");
    assert!(
        !server.is_finished(),
        "the server waits for the request in flight"
    );
    release.notify_one();
    let answered = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .expect("answered")
        .expect("the task ran");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.ends_with("finished"), "{answered}");
    let stopped = tokio::time::timeout(DEADLINE, server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

#[tokio::test]
async fn shutdown_ends_a_streamed_answer_that_watches_it() {
    use axum::response::sse::{Event, Sse};
    let shutdown = CancellationToken::new();
    let router = {
        let stopping = shutdown.clone();
        Router::new().route(
            "/events",
            get(move || {
                let stopping = stopping.clone();
                let first = futures::stream::once(async {
                    Ok::<_, std::convert::Infallible>(Event::default().data("first"))
                });
                // Like order-api's SSE streams: nothing more until the service stops.
                let rest = futures::stream::once(async move {
                    stopping.cancelled().await;
                    Ok(Event::default().data("bye"))
                });
                async move { Sse::new(futures::StreamExt::chain(first, rest)) }
            }),
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let server = tokio::spawn(serve_with(
        listener,
        router,
        shutdown.clone(),
        ServeLimits::default(),
    ));
    let mut stream = send(addr, "GET /events HTTP/1.1\r\nHost: test\r\n\r\n").await;
    read_until(&mut stream, "data: first").await;
    shutdown.cancel();
    let (rest, _) = read_until_closed(&mut stream).await;
    assert!(rest.contains("data: bye"), "{rest}");
    let stopped = tokio::time::timeout(DEADLINE, server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

/// With `METRICS_TOKEN` set, `/metrics` answers only its bearer; `/healthz` stays open.
#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = crate::Db::open(&dir.path().join("metrics.db").into(), &[]).expect("the database");
    let kafka = crate::config::KafkaConfig {
        bootstrap_servers: "127.0.0.1:1".to_owned(),
        client_id: "metrics-test".to_owned(),
        ..crate::config::KafkaConfig::default()
    };
    let producer = crate::kafka::EventProducer::new(&kafka).expect("a producer");
    let token = crate::config::Sensitive::new("scrape-token-123");
    let readiness = super::Readiness::new(db, producer, Vec::new(), Some(token));
    let app = super::health_routes(readiness);
    let scrape = |authorization: Option<&'static str>| {
        let mut builder = Request::builder().uri("/metrics");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        app.clone()
            .oneshot(builder.body(Body::empty()).expect("a valid request"))
    };
    let refused = scrape(None).await.expect("an answer");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let wrong = scrape(Some("Bearer scrape-token-124"))
        .await
        .expect("an answer");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let allowed = scrape(Some("Bearer scrape-token-123"))
        .await
        .expect("an answer");
    assert_eq!(allowed.status(), StatusCode::OK);
    let health = app
        .clone()
        .oneshot(request(Method::GET, "/healthz"))
        .await
        .expect("an answer");
    assert_eq!(health.status(), StatusCode::OK);
}
