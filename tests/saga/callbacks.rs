//! Webhooks to the client: signed, retried until the receiver takes them, logged per attempt,
//! and dead-lettered when it never does.

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use saga_tests::{Stack, eventually, receiver, webhook_signature as signature};

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

/// Polls an order's delivery log until its first delivery has `status`, failing after
/// [`saga_tests::DEADLINE`] with the last log seen.
async fn wait_log(stack: &Stack, order_id: &str, status: &str) -> Result<Value> {
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
