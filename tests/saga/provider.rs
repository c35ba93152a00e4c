//! The payment provider's side: psp-sim's API, its signed webhooks, and payment-svc's checks on
//! `POST /webhooks/payments` — forged, expired, tampered, replayed and duplicate messages.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};

use saga_tests::{
    PaymentStatus, ServiceKind, Stack, Status, eventually, receiver, secret_key, wait_for,
    webhook_signature,
};

/// A webhook message as the provider would send it, signed with `key` at `timestamp`.
struct Message {
    id: String,
    timestamp: i64,
    body: String,
    signature: String,
}

impl Message {
    fn charge(key: &[u8], id: &str, charge_id: &str, order_id: &str, status: &str) -> Result<Self> {
        let mut data = json!({
            "object": "charge", "id": charge_id, "status": status, "amount_minor": 2499,
            "currency": "EUR", "reference": order_id,
        });
        if status == "failed" {
            data["failure_code"] = json!("card_declined");
            data["failure_message"] = json!("Forged decline.");
        }
        let body = json!({
            "id": id, "type": format!("charge.{status}"),
            "created_at": chrono::Utc::now().to_rfc3339(), "data": data,
        })
        .to_string();
        Self::signed(key, id, chrono::Utc::now().timestamp(), body)
    }

    fn signed(key: &[u8], id: &str, timestamp: i64, body: String) -> Result<Self> {
        let signature = webhook_signature(key, id, &timestamp.to_string(), &body)?;
        Ok(Self {
            id: id.to_owned(),
            timestamp,
            body,
            signature,
        })
    }

    /// The same message signed again at `timestamp` (what a provider's retry looks like).
    fn resigned(&self, key: &[u8], timestamp: i64) -> Result<Self> {
        Self::signed(key, &self.id, timestamp, self.body.clone())
    }
}

async fn deliver(stack: &Stack, message: &Message) -> Result<(StatusCode, String)> {
    let response = stack
        .http
        .post(format!("{}/webhooks/payments", stack.payment.base_url()))
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", message.timestamp.to_string())
        .header("webhook-signature", &message.signature)
        .body(message.body.clone())
        .send()
        .await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await?;
    if status.is_client_error() {
        assert_eq!(content_type, "application/problem+json", "{text}");
    }
    Ok((status, text))
}

/// Polls until the order's charge was submitted to the provider; returns its charge id.
async fn charge_id(stack: &Stack, order_id: &str) -> Result<String> {
    let payment = wait_for(
        || stack.payment_for(order_id),
        |payment| payment.as_ref().is_some_and(|p| p.charge_id.is_some()),
    )
    .await?;
    Ok(payment.and_then(|p| p.charge_id).unwrap_or_default())
}

#[tokio::test]
async fn forged_stale_and_tampered_webhooks_change_nothing_and_repeats_apply_once() -> Result<()> {
    // The provider's own answer would take a minute: only the test's messages decide.
    let stack = Stack::start_with_env(&[("PSP_SIM_SLOW_MS", "60000")]).await?;
    let key = secret_key(&stack.psp_secret)?;
    let order_id = stack.place_order("WIDGET-42", 1, "pm_slow_3s").await?;
    let charge = charge_id(&stack, &order_id).await?;
    let now = chrono::Utc::now().timestamp();

    let decline = Message::charge(&key, "evt_forged_1", &charge, &order_id, "failed")?;
    let forged = Message::charge(
        b"not-the-providers-secret",
        "evt_forged_1",
        &charge,
        &order_id,
        "failed",
    )?;
    let mut tampered = Message::charge(&key, "evt_forged_2", &charge, &order_id, "succeeded")?;
    tampered.body = tampered.body.replace("\"succeeded\"", "\"failed\"");
    let attempts = [
        ("wrong secret", forged),
        ("body changed after signing", tampered),
        ("ten minutes old", decline.resigned(&key, now - 600)?),
        ("ten minutes ahead", decline.resigned(&key, now + 600)?),
        (
            "no signature",
            Message {
                signature: String::new(),
                ..decline.resigned(&key, now)?
            },
        ),
        (
            "unknown scheme",
            Message {
                signature: decline.signature.replace("v1,", "v2,"),
                ..decline.resigned(&key, now)?
            },
        ),
    ];
    for (what, message) in &attempts {
        let (status, body) = deliver(&stack, message).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
    let (status, body) = deliver(
        &stack,
        &Message::signed(&key, "evt_garbage", now, "{\"not\": \"an event\"}".into())?,
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "signed garbage: {body}");
    let (status, _) = deliver(
        &stack,
        &Message::charge(
            &key,
            "evt_other_ref",
            &charge,
            "ord_not-an-order",
            "succeeded",
        )?,
    )
    .await?;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a reference that is no order id"
    );
    let recorded = stack.notifications_for(&order_id)?;
    assert_eq!(recorded, 0, "nothing refused was recorded");
    // order-api learns of the submitted charge through Kafka, a moment after payment-svc: wait
    // for the order to leave `pending`, then check that none of the refused messages moved it on.
    let order = stack
        .wait_order(&order_id, |order| order.status != Status::Pending)
        .await?;
    assert_eq!(order.status, Status::PaymentProcessing, "{order}");

    // The genuine outcome, delivered three times (the provider's retries, re-signed each time).
    let success = Message::charge(&key, "evt_success", &charge, &order_id, "succeeded")?;
    for timestamp in [now, now + 1, now + 2] {
        let (status, body) = deliver(&stack, &success.resigned(&key, timestamp)?).await?;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order.status, Status::Confirmed, "{order}");
    // A decline arriving after the success (a different message) changes nothing either.
    let (status, _) = deliver(&stack, &decline.resigned(&key, now)?).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let completed: Vec<_> = stack
        .kafka()?
        .read_all("payments")?
        .into_iter()
        .filter(|m| {
            String::from_utf8_lossy(&m.key) == order_id
                && ["completed", "failed", "refunded"].iter().any(|outcome| {
                    String::from_utf8_lossy(&m.payload)
                        .contains(&format!("shop.payment.{outcome}.v1"))
                })
        })
        .collect();
    assert_eq!(
        completed.len(),
        1,
        "one payment outcome event for the order"
    );
    assert!(String::from_utf8_lossy(&completed[0].payload).contains("shop.payment.completed.v1"));
    let recorded = stack.notification_applied("evt_success")?;
    assert_eq!(recorded, 1);
    let order = stack.order(&order_id).await?;
    assert_eq!(order.status, Status::Confirmed, "still confirmed: {order}");
    Ok(())
}

#[tokio::test]
async fn the_provider_is_idempotent_and_retries_refused_webhooks_with_the_same_id() -> Result<()> {
    let stack = Stack::start_with_env(&[("PSP_SIM_WEBHOOK_BACKOFF_MS", "50")]).await?;
    let key = secret_key(&stack.psp_secret)?;
    let (base, seen) = receiver().await?;
    let psp = stack.psp.base_url();
    let charge = |idempotency_key: &str, method: &str| {
        stack
            .http
            .post(format!("{psp}/v1/charges"))
            .header("idempotency-key", idempotency_key)
            .json(&json!({
                "amount_minor": 1250, "currency": "EUR", "payment_method": method,
                "reference": "ref-1", "webhook_url": format!("{base}/flaky"),
            }))
            .send()
    };
    let first = charge("key-1", "pm_visa_4242").await?;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await?;
    assert_eq!(first["status"], "pending", "{first}");

    // The receiver refuses twice; the provider tries again with the same id until it lands.
    let attempts = eventually(|| {
        let attempts: Vec<_> = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(path, ..)| path == "/flaky")
            .cloned()
            .collect();
        std::future::ready(if attempts.iter().any(|(.., status)| *status == 200) {
            Ok(attempts)
        } else {
            Err(format!("the webhook never got through: {attempts:?}"))
        })
    })
    .await?;
    let statuses: Vec<u16> = attempts.iter().map(|(.., status)| *status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    let id = &attempts[0].1["webhook-id"];
    for (_, headers, body, _) in &attempts {
        assert_eq!(&headers["webhook-id"], id, "one id across retries");
        let expected = webhook_signature(&key, id, &headers["webhook-timestamp"], body)?;
        assert_eq!(headers["webhook-signature"], expected);
        let event: Value = serde_json::from_str(body)?;
        assert_eq!(event["type"], "charge.succeeded");
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["data"]["id"], first["id"]);
        assert_eq!(event["data"]["reference"], "ref-1");
    }

    // Same key, same body: the original charge, now decided. Same key, other body: refused.
    let again = charge("key-1", "pm_visa_4242").await?;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await?;
    assert_eq!(
        (&again["id"], &again["status"]),
        (&first["id"], &json!("succeeded"))
    );
    let reused = charge("key-1", "pm_card_declined").await?;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A flaky charge answers 503 twice (with Retry-After), then is accepted.
    for _ in 0..2 {
        let flaky = charge("key-flaky", "pm_flaky").await?;
        assert_eq!(flaky.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(flaky.headers().contains_key("retry-after"));
    }
    assert_eq!(
        charge("key-flaky", "pm_flaky").await?.status(),
        StatusCode::ACCEPTED
    );

    // Requests without an idempotency key, or malformed, are refused with a problem.
    let no_key = stack
        .http
        .post(format!("{psp}/v1/charges"))
        .json(&json!({"amount_minor": 1, "currency": "EUR", "payment_method": "pm_visa_4242", "reference": "r"}))
        .send()
        .await?;
    assert_eq!(no_key.status(), StatusCode::BAD_REQUEST);
    let unknown_field = stack
        .http
        .post(format!("{psp}/v1/charges"))
        .header("idempotency-key", "key-2")
        .json(&json!({"amount_minor": 1, "currency": "EUR", "payment_method": "pm_visa_4242", "reference": "r", "tip": 5}))
        .send()
        .await?;
    assert_eq!(unknown_field.status(), StatusCode::UNPROCESSABLE_ENTITY);
    Ok(())
}

#[tokio::test]
async fn orders_wait_out_a_slow_or_absent_provider_and_then_complete() -> Result<()> {
    let mut stack = Stack::start_with_env(&[
        ("PSP_TIMEOUT_MS", "300"),
        ("PAYMENT_RESUBMIT_AFTER_MS", "500"),
        ("PAYMENT_SWEEP_INTERVAL_MS", "100"),
        ("PSP_BREAKER_COOLDOWN_MS", "300"),
    ])
    .await?;
    // Slower than payment-svc will wait: every charge request times out.
    let psp = stack.psp.base_url();
    let latency = |ms: u64| {
        stack
            .http
            .put(format!("{psp}/v1/simulator/latency"))
            .json(&json!({"charge_latency_ms": ms}))
            .send()
    };
    assert_eq!(latency(1000).await?.status(), StatusCode::OK);
    let slow = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    let flaky = stack.place_order("WIDGET-42", 1, "pm_flaky").await?;
    wait_for_timeouts(&stack, 2).await?;
    let order = stack
        .wait_order(&slow, |order| order.status != Status::Pending)
        .await?;
    assert_eq!(order.status, Status::PaymentProcessing, "{order}");
    assert_eq!(latency(0).await?.status(), StatusCode::OK);
    for order_id in [&slow, &flaky] {
        let order = stack.wait_terminal(order_id).await?;
        assert_eq!(order.status, Status::Confirmed, "{order}");
    }

    // The provider crashes (and forgets everything): orders placed meanwhile complete once it
    // is back, because payment-svc asks again with the same idempotency key.
    stack.psp.kill()?;
    let waiting = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    wait_for(
        || stack.payment_for(&waiting),
        |payment| {
            payment
                .as_ref()
                .is_some_and(|p| p.status == PaymentStatus::Charging)
        },
    )
    .await?;
    stack.restart(ServiceKind::Psp).await?;
    let order = stack.wait_terminal(&waiting).await?;
    assert_eq!(order.status, Status::Confirmed, "{order}");
    for order_id in [&slow, &flaky, &waiting] {
        let payment = stack.payment_for(order_id)?;
        assert_eq!(
            payment.map(|p| p.status),
            Some(PaymentStatus::Charged),
            "{order_id} charged once"
        );
    }
    Ok(())
}

/// Polls payment-svc's log until it reports `count` failed (timed-out) charge requests.
async fn wait_for_timeouts(stack: &Stack, count: usize) -> Result<()> {
    let log = stack.dir().join("payment-svc.1.log");
    eventually(|| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let failures = text.matches("Charge request failed").count();
        std::future::ready(if failures >= count {
            Ok(())
        } else {
            Err(format!(
                "payment-svc logged {failures} of {count} failed charge requests (see {})",
                log.display()
            ))
        })
    })
    .await
}
