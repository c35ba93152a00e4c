//! Webhooks to the client: signed, retried until the receiver takes them, logged per attempt,
//! and dead-lettered when it never does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use saga_tests::{
    Order, Seen, Stack, Status, eventually, receiver, webhook_signature as signature,
};

#[tokio::test]
async fn a_callback_is_signed_retried_logged_and_dead_lettered_when_it_never_lands() -> Result<()> {
    let key = b"callback-secret-for-tests";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let stack = Stack::start_with_env(&[
        ("CALLBACK_SECRETS", &format!("dev:{secret}")),
        ("CALLBACK_ALLOW_PRIVATE", "true"),
        ("WEBHOOK_MAX_ATTEMPTS", "3"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
    ])
    .await?;
    let (base, seen) = receiver().await?;
    let place = |path: &str| {
        let body = json!({
            "user_id": "usr_hooks", "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242", "callback_url": format!("{base}{path}"),
        });
        stack.http.post(stack.url("/api/orders")).json(&body).send()
    };
    let flaky: Value = place("/flaky").await?.json().await?;
    let flaky_id = flaky["order_id"].as_str().context("order id")?.to_owned();
    let broken: Value = place("/broken").await?.json().await?;
    let broken_id = broken["order_id"].as_str().context("order id")?.to_owned();

    // The flaky receiver gets the end of the saga on the third try.
    let attempts = eventually(|| async {
        let attempts: Vec<_> = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(p, ..)| p == "/flaky")
            .cloned()
            .collect();
        if attempts.iter().any(|(.., status)| *status == 200) {
            Ok(attempts)
        } else {
            Err(format!("the webhook never got through: {attempts:?}"))
        }
    })
    .await?;
    assert_eq!(
        attempts.iter().map(|(.., s)| *s).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let (_, headers, body, _) = &attempts[2];
    let id = &headers["webhook-id"];
    assert!(
        attempts.iter().all(|(_, h, ..)| &h["webhook-id"] == id),
        "one message id across retries"
    );
    assert_eq!(
        headers["webhook-signature"],
        signature(key, id, &headers["webhook-timestamp"], body)?
    );
    let payload: Value = serde_json::from_str(body)?;
    assert_eq!(payload["type"], "order.confirmed");
    assert_eq!(payload["data"]["order_id"], flaky_id.as_str());

    // The delivery log shows every attempt, once the deliverer has recorded the answer the
    // receiver already saw.
    let log = wait_log(&stack, &flaky_id, "delivered").await?;
    let codes: Vec<i64> = log[0]["attempts"]
        .as_array()
        .context("attempts")?
        .iter()
        .filter_map(|a| a["status_code"].as_i64())
        .collect();
    assert_eq!(codes, [500, 500, 200]);

    // The broken receiver never takes it: after 3 attempts it is failed and dead-lettered.
    let dead = stack.kafka()?.find("orders.dlq", |m| {
        String::from_utf8_lossy(&m.key) == broken_id
            && m.headers
                .iter()
                .any(|(k, v)| k == "dlq.error.class" && v == "webhook")
    })?;
    assert!(
        dead.headers
            .iter()
            .any(|(k, v)| k == "dlq.attempts" && v == "3"),
        "{:?}",
        dead.headers
    );
    wait_log(&stack, &broken_id, "failed").await?;

    // Only http(s) callbacks are taken.
    let refused = stack
        .http
        .post(stack.url("/api/orders"))
        .json(&json!({"user_id": "u", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": "pm_visa_4242", "callback_url": "ftp://example.com/x"}))
        .send()
        .await?;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    Ok(())
}

#[tokio::test]
async fn a_hanging_endpoint_delays_only_its_own_principals_callbacks() -> Result<()> {
    let secret = |key: &str| format!("whsec_{}", STANDARD.encode(key));
    let secrets = format!(
        "alice:{},bob:{}",
        secret("alice-callback-signing-secret"),
        secret("bob-callback-signing-secret")
    );
    let stack = Stack::start_with_env(&[
        ("API_KEYS", "alice:sk_test_alice_0001,bob:sk_test_bob_00002"),
        ("CALLBACK_SECRETS", &secrets),
        ("CALLBACK_ALLOW_PRIVATE", "true"),
        ("WEBHOOK_MAX_ATTEMPTS", "3"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
    ])
    .await?;
    let (hanging, connections) = hanging_endpoint().await?;
    let (base, seen) = receiver().await?;
    let place = |key: &'static str, callback_url: String| {
        let body = json!({
            "user_id": "usr_tenants", "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242", "callback_url": callback_url,
        });
        let request = stack.http.post(stack.url("/api/orders")).bearer_auth(key);
        async move {
            let placed: Value = request.json(&body).send().await?.json().await?;
            placed["order_id"]
                .as_str()
                .map(str::to_owned)
                .context("order id")
        }
    };

    // Alice's endpoint takes connections and never answers; her sagas end first, so her
    // callbacks are all due before Bob's. Sent one after another, each would hold the
    // deliverer for the client's 5 s timeout.
    let mut alice_orders = Vec::new();
    for _ in 0..6 {
        alice_orders.push(place("sk_test_alice_0001", format!("{hanging}/hook")).await?);
    }
    for order_id in &alice_orders {
        wait_status(&stack, "sk_test_alice_0001", order_id, Status::Confirmed).await?;
    }
    eventually(|| async {
        match connections.load(Ordering::SeqCst) {
            0 => Err("the hanging endpoint was never called".to_owned()),
            n => Ok(n),
        }
    })
    .await?;

    // Bob's callback goes out while Alice's hang: within his saga's time and a round, far
    // below the half-minute that six hanging sends in a row would take.
    let placed_at = Instant::now();
    let bob_order = place("sk_test_bob_00002", format!("{base}/ok")).await?;
    eventually(|| async {
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|(_, _, body, _)| body.contains(&bob_order)) {
            Ok(())
        } else {
            Err(format!("Bob's callback never landed: {seen:?}"))
        }
    })
    .await?;
    let waited = placed_at.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "Bob's callback waited {waited:?} behind Alice's hanging endpoint"
    );

    // Alice's log says that her endpoint timed out, and nothing more about it.
    let log = eventually(|| async {
        let url = stack.url(&format!("/api/orders/{}/deliveries", alice_orders[0]));
        let log: Value = async {
            let request = stack.http.get(url).bearer_auth("sk_test_alice_0001");
            request.send().await?.json().await
        }
        .await
        .map_err(|error| format!("the delivery log: {error}"))?;
        if log[0]["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            Ok(log)
        } else {
            Err(format!("no attempt recorded yet: {log}"))
        }
    })
    .await?;
    let attempt = &log[0]["attempts"][0];
    assert_eq!(attempt["error"], "timeout", "{log}");
    assert_eq!(attempt["status_code"], Value::Null, "{log}");
    Ok(())
}

/// An endpoint that accepts connections and never answers; its base URL and how many
/// connections it took.
async fn hanging_endpoint() -> Result<(String, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    Ok((base, connections))
}

/// Polls an order (as the principal with `key`) until it has `status`.
async fn wait_status(stack: &Stack, key: &str, order_id: &str, status: Status) -> Result<()> {
    eventually(|| async {
        let order: Order = async {
            let url = stack.url(&format!("/api/orders/{order_id}"));
            stack
                .http
                .get(url)
                .bearer_auth(key)
                .send()
                .await?
                .json()
                .await
        }
        .await
        .map_err(|error| format!("order {order_id}: {error}"))?;
        if order.status == status {
            Ok(())
        } else {
            Err(format!("order {order_id} never became {status:?}: {order}"))
        }
    })
    .await
}

/// Polls an order's delivery log until its first delivery has `status`, failing after
/// [`saga_tests::DEADLINE`] with the last log seen.
pub(crate) async fn wait_log(stack: &Stack, order_id: &str, status: &str) -> Result<Value> {
    eventually(|| async {
        let log: Value = async {
            let url = stack.url(&format!("/api/orders/{order_id}/deliveries"));
            stack.http.get(url).send().await?.json().await
        }
        .await
        .map_err(|error| format!("the delivery log of {order_id}: {error}"))?;
        if log[0]["status"] == status {
            Ok(log)
        } else {
            Err(format!(
                "the delivery of {order_id} never became {status}: {log}"
            ))
        }
    })
    .await
}

/// An order whose callback failed for good, and what it was sent with.
pub(crate) struct FailedCallback {
    pub(crate) stack: Stack,
    /// What the receiver was sent, failed attempts included.
    pub(crate) seen: Seen,
    pub(crate) order_id: String,
}

/// Starts a stack (with `env` on top) that signs callbacks with `key`, and places an order whose
/// callback goes to a receiver's `/flaky`, which refuses twice, then accepts: order-api tries
/// twice, and the delivery has failed for good when this returns.
pub(crate) async fn failed_callback(key: &[u8], env: &[(&str, &str)]) -> Result<FailedCallback> {
    let secrets = format!("dev:whsec_{}", STANDARD.encode(key));
    let mut settings = vec![
        ("CALLBACK_SECRETS", secrets.as_str()),
        ("CALLBACK_ALLOW_PRIVATE", "true"),
        ("WEBHOOK_MAX_ATTEMPTS", "2"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
    ];
    settings.extend_from_slice(env);
    let stack = Stack::start_with_env(&settings).await?;
    let (base, seen) = receiver().await?;
    let placed: Value = stack
        .post_order(&json!({
            "user_id": "usr_failed_callback", "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242", "callback_url": format!("{base}/flaky"),
        }))
        .await?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order id")?.to_owned();
    wait_log(&stack, &order_id, "failed").await?;
    Ok(FailedCallback {
        stack,
        seen,
        order_id,
    })
}
