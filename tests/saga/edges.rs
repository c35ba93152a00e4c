//! The API's edges: idempotent POST and resumable event streams.

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::future::try_join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use events::CancellationReason;

use saga_tests::{
    Accepted, DEADLINE, Order, Problem, ServiceKind, Stack, Status, eventually, read_sse,
};

fn order(quantity: u32) -> Value {
    json!({"user_id": "usr_retry", "items": [{"sku": "WIDGET-42", "quantity": quantity}], "payment_method": "pm_visa_4242"})
}

#[tokio::test]
async fn the_same_idempotency_key_twenty_times_at_once_creates_one_order() -> Result<()> {
    let stack = Stack::start().await?;
    let key = "5d0c9a1e-2b7f-4c3a-9e8d-7f6a5b4c3d2e";
    let post = |body: Value| {
        let request = stack
            .http
            .post(stack.url("/api/orders"))
            .header("idempotency-key", key)
            .json(&body);
        async move { request.send().await }
    };
    let responses = try_join_all((0..20).map(|_| post(order(2)))).await?;
    let mut ids = Vec::new();
    let mut replayed = 0;
    for response in responses {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        replayed += usize::from(response.headers().get("idempotent-replayed").is_some());
        ids.push(response.json::<Accepted>().await?.order_id.to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order id for every retry: {ids:?}");
    assert_eq!(replayed, 19);
    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "orders")?, 1);
    assert_eq!(
        stack.wait_terminal(&ids[0]).await?.status,
        Status::Confirmed
    );
    let created = stack.kafka()?.read_all("orders")?;
    let count = created
        .iter()
        .filter(|m| saga_tests::is_event(m, "shop.order.created.v1", &ids[0]))
        .count();
    assert_eq!(count, 1, "one order.created");

    // The same key with another body is a client bug, not a retry.
    let conflict = post(order(3)).await?;
    Problem::expect(conflict, StatusCode::UNPROCESSABLE_ENTITY).await?;
    // A malformed key is refused; without a key, a retry is a new order.
    let bad = stack
        .http
        .post(stack.url("/api/orders"))
        .header("idempotency-key", "has spaces")
        .json(&order(1))
        .send()
        .await?;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let first = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    let second = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    assert_ne!(first, second);
    Ok(())
}

#[tokio::test]
async fn a_stream_resumes_after_the_last_event_id_without_gaps_or_repeats() -> Result<()> {
    let stack = Stack::start_with_env(&[("PSP_SIM_SLOW_MS", "1500")]).await?;
    let order_id = stack.place_order("WIDGET-42", 1, "pm_slow_3s").await?;
    let url = stack.url(&format!("/api/orders/{order_id}/events"));

    // Read the first two transitions, then drop the connection mid-saga.
    let response = stack.http.get(&url).timeout(DEADLINE).send().await?;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while seen.matches("event: status_update").count() < 2 {
        let chunk = body.next().await.context("stream ended early")??;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    assert!(seen.contains("retry: 2000"), "reconnection advice: {seen}");
    assert!(seen.contains("id: 2"), "{seen}");
    assert!(
        !seen.contains("payment_confirmed"),
        "the saga moved on too early for this test: {seen}"
    );

    // Reconnect as a browser would: after the last id seen.
    let resumed = stack
        .http
        .get(&url)
        .header("last-event-id", "2")
        .timeout(DEADLINE)
        .send()
        .await?;
    let text = resumed.text().await?;
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    let statuses: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| d["status"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["3", "4"], "{text}");
    assert_eq!(statuses, ["payment_confirmed", "confirmed"]);

    // Resuming after the end: nothing more, and the stream closes at once.
    let after_end = stack
        .http
        .get(&url)
        .header("last-event-id", "4")
        .timeout(DEADLINE)
        .send()
        .await?;
    assert_eq!(after_end.status(), StatusCode::OK);
    let after_end = after_end.text().await?;
    assert!(!after_end.contains("event:"), "{after_end}");
    // Without Last-Event-ID the whole story is replayed.
    let (all, _) = read_sse(&stack.http, &url, DEADLINE).await?;
    assert_eq!(all.len(), 4);
    Ok(())
}

#[tokio::test]
async fn prefer_wait_answers_synchronously_when_the_saga_is_fast_enough() -> Result<()> {
    let stack = Stack::start_with_env(&[("PSP_SIM_SLOW_MS", "3000")]).await?;
    let post = |method: &str, prefer: &str| {
        let body = json!({"user_id": "usr_sync", "items": [{"sku": "WIDGET-42", "quantity": 2}], "payment_method": method});
        stack
            .http
            .post(stack.url("/api/orders"))
            .header("prefer", prefer)
            .json(&body)
            .send()
    };

    // A fast saga: 201 with the final order.
    let fast = post("pm_visa_4242", "wait=5").await?;
    assert_eq!(fast.status(), StatusCode::CREATED);
    assert_eq!(fast.headers()["preference-applied"], "wait=5");
    let location = fast.headers()["location"].to_str()?.to_owned();
    let order: Order = fast.json().await?;
    assert_eq!(order.status, Status::Confirmed);
    assert_eq!(order.total_major, 49.98);
    // (`created_at` is text: the view requires it.)
    assert_eq!(location, format!("/api/orders/{}", order.id));

    // A retry of an order that has ended: the original order, final, at once.
    let keyed = || {
        let body = json!({"user_id": "usr_sync", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": "pm_visa_4242"});
        stack
            .http
            .post(stack.url("/api/orders"))
            .header("prefer", "wait=5")
            .header("idempotency-key", "sync-retry-1")
            .json(&body)
            .send()
    };
    let first: Order = keyed().await?.json().await?;
    assert_eq!(first.status, Status::Confirmed);
    // (Held until the wait ran out instead, it would be a `202`.)
    let retried = keyed().await?;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let retried: Order = retried.json().await?;
    assert_eq!((retried.id, retried.status), (first.id, Status::Confirmed));

    // A declined card ends fast too: 201 with the cancellation.
    let declined: Order = post("pm_card_declined", "wait=5").await?.json().await?;
    assert_eq!(
        declined.cancellation_reason,
        Some(CancellationReason::PaymentDeclined)
    );

    // A slow provider: the wait runs out, 202 as usual; a long poll then sees the end.
    let slow = post("pm_slow_3s", "wait=1").await?;
    assert_eq!(slow.status(), StatusCode::ACCEPTED);
    let id = slow.json::<Accepted>().await?.order_id.to_string();
    let polled: Order = stack
        .http
        .get(stack.url(&format!("/api/orders/{id}?wait=10")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(polled.status, Status::Confirmed, "{polled}");
    Ok(())
}

#[tokio::test]
async fn orders_belong_to_the_principal_that_placed_them_and_posting_is_rate_limited() -> Result<()>
{
    let stack = Stack::start_with_env(&[
        ("API_KEYS", "alice:sk_test_alice_0001,bob:sk_test_bob_00002"),
        ("ALLOW_ANONYMOUS", "false"),
        // Slow enough that no token comes back while the test waits for the saga, however
        // slow the machine.
        ("RATE_LIMIT_PER_S", "0.01"),
        ("RATE_LIMIT_BURST", "3"),
    ])
    .await?;
    let url = stack.url("/api/orders");

    // No key, or a wrong one: 401 problem, nothing written.
    let anonymous = stack.http.post(&url).json(&order(1)).send().await?;
    Problem::expect(anonymous, StatusCode::UNAUTHORIZED).await?;
    let wrong = stack
        .http
        .post(&url)
        .bearer_auth("sk_test_mallory_9")
        .json(&order(1))
        .send()
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "orders")?, 0);

    // Alice's order is hers alone: Bob gets 404 on every view of it, as if it did not exist.
    let placed = stack
        .http
        .post(&url)
        .bearer_auth("sk_test_alice_0001")
        .json(&order(1))
        .send()
        .await?;
    assert_eq!(placed.status(), StatusCode::ACCEPTED);
    let id = placed.json::<Accepted>().await?.order_id.to_string();
    for path in [
        format!("/api/orders/{id}"),
        format!("/api/orders/{id}/events"),
        format!("/api/orders/{id}/timeline"),
        format!("/orders/{id}"),
    ] {
        let as_bob = stack
            .http
            .get(stack.url(&path))
            .header("x-api-key", "sk_test_bob_00002")
            .send()
            .await?;
        assert_eq!(as_bob.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let as_alice = stack
        .http
        .get(stack.url(&format!("/api/orders/{id}?wait=10")))
        .bearer_auth("sk_test_alice_0001")
        .send()
        .await?;
    assert_eq!(as_alice.status(), StatusCode::OK);
    assert_eq!(as_alice.json::<Order>().await?.status, Status::Confirmed);

    // A burst of 3, then 429 with Retry-After; Bob has his own budget.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = stack
            .http
            .post(&url)
            .bearer_auth("sk_test_alice_0001")
            .json(&order(1))
            .send()
            .await?;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            Problem::expect(response, StatusCode::TOO_MANY_REQUESTS).await?;
        }
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let bobs = stack
        .http
        .post(&url)
        .header("x-api-key", "sk_test_bob_00002")
        .json(&order(1))
        .send()
        .await?;
    assert_eq!(bobs.status(), StatusCode::ACCEPTED);
    Ok(())
}

#[tokio::test]
async fn open_streams_are_bounded_in_number_and_idle_time() -> Result<()> {
    let stack = Stack::start_with_env(&[
        ("SSE_MAX_STREAMS", "1"),
        ("SSE_MAX_IDLE_MS", "1000"),
        ("PSP_SIM_SLOW_MS", "60000"),
    ])
    .await?;
    let id = stack.place_order("WIDGET-42", 1, "pm_slow_3s").await?;
    stack
        .wait_order(&id, |o| o.status == Status::PaymentProcessing)
        .await?;
    let url = stack.url(&format!("/api/orders/{id}/events"));

    let first = stack.http.get(&url).timeout(DEADLINE).send().await?;
    assert_eq!(first.status(), StatusCode::OK);
    let second = stack.http.get(&url).send().await?;
    assert!(second.headers().contains_key("retry-after"));
    Problem::expect(second, StatusCode::SERVICE_UNAVAILABLE).await?;

    // The idle stream ends by itself (the saga is stuck for a minute), freeing its slot.
    let text = first.text().await?;
    assert_eq!(text.matches("event: status_update").count(), 2, "{text}");
    eventually(|| async {
        let third = stack
            .http
            .get(&url)
            .header("last-event-id", "2")
            .send()
            .await
            .map_err(|error| error.to_string())?;
        match third.status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("the slot was never freed: {status}")),
        }
    })
    .await
}
