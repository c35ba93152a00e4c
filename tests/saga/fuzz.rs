//! Throwing garbage at the API: random bytes, random JSON and mangled orders, with odd
//! headers. Whatever arrives, the answer is never a 5xx, the process never dies, and nothing
//! malformed is accepted — on order-api's POST and on payment-svc's provider webhook.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};

use saga_tests::{ServiceKind, Stack, secret_key, webhook_signature};

fn random_string(rng: &mut StdRng) -> String {
    let pool = [
        "",
        "WIDGET-42",
        "pm_visa_4242",
        "usr_8a3f",
        "ord_",
        "é漢字🙂",
        "\u{0000}",
        "' OR 1=1 --",
        "a",
    ];
    let mut text = pool[rng.random_range(0..pool.len())].to_owned();
    if rng.random_bool(0.2) {
        text = text.repeat(rng.random_range(1..2000));
    }
    text
}

fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random_range(-1_000_000_000_000_i64..1_000_000_000_000)),
        3 => json!(rng.random::<f64>() * 1e12),
        4 => json!(random_string(rng)),
        5 => Value::Array(
            (0..rng.random_range(0..5))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut object = Map::new();
            for _ in 0..rng.random_range(0..5) {
                let key = ["user_id", "items", "payment_method", "sku", "quantity", "x"]
                    [rng.random_range(0..6)];
                object.insert(key.to_owned(), random_json(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

/// A valid order with one field replaced, removed or added.
fn mangled_order(rng: &mut StdRng) -> Value {
    let mut order = json!({"user_id": "usr_fuzz", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": "pm_visa_4242"});
    let paths: [&[&str]; 5] = [
        &["user_id"],
        &["payment_method"],
        &["items"],
        &["items", "0", "sku"],
        &["items", "0", "quantity"],
    ];
    let path = paths[rng.random_range(0..paths.len())];
    let mut target = &mut order;
    for step in &path[..path.len() - 1] {
        target = match step.parse::<usize>() {
            Ok(index) => &mut target[index],
            Err(_) => &mut target[*step],
        };
    }
    let last = path[path.len() - 1];
    let replacement = random_json(rng, 2);
    match last.parse::<usize>() {
        Ok(index) => target[index] = replacement,
        Err(_) if rng.random_bool(0.2) => {
            if let Some(object) = target.as_object_mut() {
                object.remove(last);
            }
        }
        Err(_) => target[last] = replacement,
    }
    order
}

#[tokio::test]
async fn garbage_never_gets_a_5xx_and_never_gets_in() -> Result<()> {
    let stack = Stack::start().await?;
    let mut rng = StdRng::seed_from_u64(
        std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let content_types = [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ];
    let mut accepted = 0;
    // A fresh connection per request: a refused oversized body closes its connection.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    for round in 0..400 {
        let body: Vec<u8> = match round % 3 {
            0 => (0..rng.random_range(0..3000))
                .map(|_| rng.random::<u8>())
                .collect(),
            1 => random_json(&mut rng, 0).to_string().into_bytes(),
            _ if rng.random_bool(0.15) => {
                // Some valid orders among the garbage, so that "accepted" is checked too.
                json!({"user_id": "usr_ok", "items": [{"sku": "WIDGET-42", "quantity": rng.random_range(1..=1000)}], "payment_method": "pm_visa_4242"})
                    .to_string()
                    .into_bytes()
            }
            _ => mangled_order(&mut rng).to_string().into_bytes(),
        };
        let mut request = http.post(stack.url("/api/orders")).body(body.clone());
        let content_type = content_types[rng.random_range(0..content_types.len())];
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if rng.random_bool(0.2) {
            request = request.header(
                "idempotency-key",
                random_string(&mut rng)
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(300)
                    .collect::<String>(),
            );
        }
        if rng.random_bool(0.2) {
            request = request.header(
                "prefer",
                [
                    "wait=abc",
                    "wait=-1",
                    "wait=0",
                    "wait",
                    "wait=99999999999999999999",
                ][rng.random_range(0..5)],
            );
        }
        let response = match request.send().await {
            Ok(response) => response,
            // Over the size limit the server answers 413 and closes without reading the rest;
            // the client may see that as a broken pipe instead of the answer.
            Err(_) if body.len() > 16 * 1024 => continue,
            Err(error) => return Err(error.into()),
        };
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "round {round}: {status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        if status.is_success() {
            accepted += 1;
            // Only a well-formed order gets in.
            let order: Value = serde_json::from_slice(&body)?;
            assert_eq!(
                order["items"][0]["sku"], "WIDGET-42",
                "round {round}: accepted {order}"
            );
        } else {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "round {round}: {status}"
            );
        }
    }
    // Odd ids and headers on the read side.
    for path in [
        "/api/orders/%00",
        "/api/orders/ord_",
        "/api/orders/../../etc/passwd",
        "/api/orders/ord_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz/events",
    ] {
        let response = stack
            .http
            .get(stack.url(path))
            .header("last-event-id", "-99999999999999999999")
            .send()
            .await?;
        assert!(
            !response.status().is_server_error(),
            "{path}: {}",
            response.status()
        );
    }
    eprintln!("fuzz: 400 requests, {accepted} well-formed orders accepted, no 5xx");
    let health = stack.http.get(stack.url("/healthz")).send().await?;
    assert!(health.status().is_success(), "order-api died");
    assert!(
        accepted > 0,
        "no valid order was accepted among the garbage"
    );
    let orders = stack.rows_in(ServiceKind::OrderApi, "orders")?;
    assert_eq!(orders, accepted);
    Ok(())
}

/// A provider webhook body with random parts replaced.
fn mangled_webhook(rng: &mut StdRng) -> Value {
    let mut event = json!({
        "id": "evt_fuzz", "type": "charge.succeeded", "created_at": "2026-01-01T00:00:00Z",
        "data": {"object": "charge", "id": "ch_1", "status": "succeeded", "amount_minor": 100,
                 "currency": "EUR", "reference": "ord_0190aaaa-0000-7000-8000-000000000000"},
    });
    for _ in 0..rng.random_range(1..4) {
        let field = ["id", "type", "created_at", "data", "extra"][rng.random_range(0..5)];
        let inner = [
            "object",
            "id",
            "status",
            "amount_minor",
            "reference",
            "failure_code",
        ][rng.random_range(0..6)];
        let value = random_json(rng, 2);
        if rng.random_bool(0.5) {
            event[field] = value;
        } else if let Some(data) = event["data"].as_object_mut() {
            data.insert(inner.to_owned(), value);
        }
    }
    event
}

#[tokio::test]
async fn webhook_garbage_never_gets_a_5xx_and_is_never_applied() -> Result<()> {
    let stack = Stack::start().await?;
    let key = secret_key(&stack.psp_secret)?;
    let mut rng = StdRng::seed_from_u64(
        std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let url = format!("{}/webhooks/payments", stack.payment.base_url());
    let (mut unauthorized, mut bad) = (0, 0);
    for round in 0..300 {
        let body: Vec<u8> = match round % 3 {
            0 => (0..rng.random_range(0..2000))
                .map(|_| rng.random::<u8>())
                .collect(),
            1 => random_json(&mut rng, 0).to_string().into_bytes(),
            _ => mangled_webhook(&mut rng).to_string().into_bytes(),
        };
        let id = if rng.random_bool(0.8) {
            format!("evt_{round}")
        } else {
            random_string(&mut rng)
                .chars()
                .filter(char::is_ascii_graphic)
                .collect()
        };
        let now = chrono::Utc::now().timestamp();
        let timestamp = match rng.random_range(0..5) {
            0 => "not-a-number".to_owned(),
            1 => "99999999999999999999999".to_owned(),
            2 => (now - rng.random_range(301..100_000)).to_string(),
            _ => now.to_string(),
        };
        // Most are signed correctly, so the body checks behind the signature are fuzzed too.
        let text = String::from_utf8_lossy(&body).into_owned();
        let signed = rng.random_bool(0.7);
        let signature = if signed {
            webhook_signature(&key, &id, &timestamp, &text)?
        } else {
            format!(
                "v1,{}",
                random_string(&mut rng)
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            )
        };
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", signature)
            .body(text.clone().into_bytes())
            .send()
            .await?;
        let status = response.status();
        assert!(
            status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::BAD_REQUEST,
            "round {round}: {status} for {text:?}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        if status == reqwest::StatusCode::UNAUTHORIZED {
            unauthorized += 1;
        } else {
            bad += 1;
        }
    }
    eprintln!("webhook fuzz: 300 requests, {unauthorized} refused as unsigned, {bad} as malformed");
    assert!(unauthorized > 0 && bad > 0, "both checks were exercised");
    let applied = stack.rows_in(ServiceKind::Payment, "provider_notifications")?;
    assert_eq!(applied, 0, "nothing was applied");
    let health = stack
        .http
        .get(format!("{}/healthz", stack.payment.base_url()))
        .send()
        .await?;
    assert!(health.status().is_success(), "payment-svc died");
    Ok(())
}
