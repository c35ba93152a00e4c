//! The watch against a scripted order-api over real HTTP: streams that break, skip or are not
//! streams at all, and the watch still reports the order's history once, in order.
//!
//! The end-to-end tests (`tests/saga/client.rs`) run the client against the real shop; these
//! pin down the resume and fallback rules one case at a time, in milliseconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use shop_client::{Client, Error, OrderId, OrderStatus, RetryPolicy, Transition, WatchStats};

/// The history every scripted order has: the happy path.
const STATUSES: [&str; 4] = [
    "pending",
    "payment_processing",
    "payment_confirmed",
    "confirmed",
];

/// What the events route does on each connection, in order; after the last, the last again.
#[derive(Clone, Copy, Debug)]
enum Stream {
    /// Sends these `seq`s after `Last-Event-ID`, then ends the stream.
    Send(&'static [u64]),
    /// Sends these `seq`s whatever the `Last-Event-ID`, then ends the stream.
    Replay(&'static [u64]),
    /// Answers `200` with a page, not an event stream.
    Html,
}

/// The scripted server's behaviour, and what it saw.
#[derive(Debug)]
struct Script {
    /// What each connection to the events route gets.
    streams: Vec<Stream>,
    /// The `Last-Event-ID` of every connection.
    resumed_after: Mutex<Vec<Option<String>>>,
}

fn entry(order_id: &str, seq: u64) -> serde_json::Value {
    serde_json::json!({
        "order_id": order_id, "seq": seq, "status": STATUSES[seq as usize - 1],
        "timestamp": format!("2026-01-01T00:00:0{seq}Z"), "cause": format!("cause {seq}"),
    })
}

async fn events(
    State(script): State<Arc<Script>>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let connection = {
        let mut resumed = script.resumed_after.lock().expect("not poisoned");
        resumed.push(last.clone());
        resumed.len() - 1
    };
    let after: u64 = last.and_then(|id| id.parse().ok()).unwrap_or(0);
    match script.streams[connection.min(script.streams.len() - 1)] {
        Stream::Html => ([(header::CONTENT_TYPE, "text/html")], "<p>no</p>").into_response(),
        Stream::Send(seqs) => event_stream(&order_id, seqs.iter().filter(|seq| **seq > after)),
        Stream::Replay(seqs) => event_stream(&order_id, seqs.iter()),
    }
}

/// An event stream of the order's transitions `seqs`, after a keep-alive comment.
fn event_stream<'a>(order_id: &str, seqs: impl Iterator<Item = &'a u64>) -> Response {
    let body: String = seqs
        .map(|seq| {
            let data = entry(order_id, *seq);
            format!("event: status_update\nid: {seq}\ndata: {data}\n\n")
        })
        .collect();
    let body = format!(": keep-alive\n\n{body}");
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn order(Path(order_id): Path<String>) -> Response {
    if order_id.parse::<OrderId>().is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let history: Vec<serde_json::Value> = (1..=4)
        .map(|seq| {
            let mut entry = entry(&order_id, seq);
            if let Some(fields) = entry.as_object_mut() {
                fields.remove("order_id");
            }
            entry
        })
        .collect();
    axum::Json(serde_json::json!({
        "order_id": order_id, "user_id": "usr_1", "status": "confirmed",
        "items": [{"sku": "WIDGET-42", "quantity": 1, "unit_price": 24.99, "line_total": 24.99}],
        "total": 24.99, "total_minor": 2499, "currency": "USD", "payment_method": "pm_visa_4242",
        "cancellation_reason": null, "created_at": "2026-01-01T00:00:01Z",
        "updated_at": "2026-01-01T00:00:04Z", "history": history,
    }))
    .into_response()
}

/// Serves `streams` on a free port; returns a client of it and the script, to read back.
async fn serve(streams: Vec<Stream>) -> Result<(Client, Arc<Script>), Box<dyn std::error::Error>> {
    let script = Arc::new(Script {
        streams,
        resumed_after: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/api/orders/{order_id}/events", get(events))
        .route("/api/orders/{order_id}", get(order))
        .with_state(Arc::clone(&script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(url)
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        })
        .build()?;
    Ok((client, script))
}

/// Every transition of a watch, failing the test if it takes more than a few seconds.
async fn watch_all(client: &Client, order_id: OrderId) -> Result<Vec<Transition>, Error> {
    Ok(follow(client, order_id).await?.0)
}

/// Every transition of a watch and what the watch counted, failing the test if it takes more
/// than a few seconds.
async fn follow(
    client: &Client,
    order_id: OrderId,
) -> Result<(Vec<Transition>, WatchStats), Error> {
    let mut watch = client.watch(order_id);
    let mut transitions = Vec::new();
    while let Some(transition) = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the watch ended in time")
    {
        transitions.push(transition?);
    }
    Ok((transitions, watch.stats()))
}

fn moves(transitions: &[Transition]) -> Vec<(u64, Option<OrderStatus>, OrderStatus)> {
    transitions.iter().map(|t| (t.seq, t.from, t.to)).collect()
}

fn whole_history() -> Vec<(u64, Option<OrderStatus>, OrderStatus)> {
    use OrderStatus::*;
    vec![
        (1, None, Pending),
        (2, Some(Pending), PaymentProcessing),
        (3, Some(PaymentProcessing), PaymentConfirmed),
        (4, Some(PaymentConfirmed), Confirmed),
    ]
}

#[tokio::test]
async fn a_broken_stream_resumes_after_the_last_event_and_a_gap_is_filled()
-> Result<(), Box<dyn std::error::Error>> {
    // The first stream ends after seq 2; the second, resumed, skips seq 3.
    let (client, script) = serve(vec![Stream::Send(&[1, 2]), Stream::Send(&[4])]).await?;
    let (transitions, stats) = follow(&client, OrderId::new()).await?;
    assert_eq!(moves(&transitions), whole_history());
    let resumed = script.resumed_after.lock().expect("not poisoned").clone();
    assert_eq!(resumed, [None, Some("2".to_owned())]);
    // What the watch counted is what the server saw: two streams, one resume, no poll.
    assert_eq!(
        (stats.stream_connects, stats.resumes(), stats.polls),
        (2, 1, 0)
    );
    Ok(())
}

#[tokio::test]
async fn repeats_on_a_resumed_stream_are_not_reported_again()
-> Result<(), Box<dyn std::error::Error>> {
    // A server that ignores Last-Event-ID and replays everything.
    let (client, _) = serve(vec![Stream::Replay(&[1, 2]), Stream::Replay(&[1, 2, 3, 4])]).await?;
    let transitions = watch_all(&client, OrderId::new()).await?;
    assert_eq!(moves(&transitions), whole_history());
    Ok(())
}

#[tokio::test]
async fn an_answer_that_is_no_event_stream_is_polled_instead()
-> Result<(), Box<dyn std::error::Error>> {
    let (client, script) = serve(vec![Stream::Html]).await?;
    let (transitions, stats) = follow(&client, OrderId::new()).await?;
    assert_eq!(moves(&transitions), whole_history());
    assert_eq!(script.resumed_after.lock().expect("not poisoned").len(), 1);
    // One stream tried, then the fallback: the scripted order is confirmed at the first poll.
    assert_eq!((stats.stream_connects, stats.polls), (1, 1));
    Ok(())
}

#[tokio::test]
async fn a_stream_that_keeps_breaking_is_given_up_for_polling()
-> Result<(), Box<dyn std::error::Error>> {
    // Every stream ends at once, without a transition.
    let (client, script) = serve(vec![Stream::Send(&[])]).await?;
    let transitions = watch_all(&client, OrderId::new()).await?;
    assert_eq!(moves(&transitions), whole_history());
    let connections = script.resumed_after.lock().expect("not poisoned").len();
    assert_eq!(
        connections,
        shop_client::WatchOptions::default().max_failures as usize
    );
    Ok(())
}
