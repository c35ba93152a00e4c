//! Bad requests get a 4xx `application/problem+json` answer that says what is wrong, and
//! nothing is written.

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};

use saga_tests::{Problem, ServiceKind, Stack};

fn order(items: Value) -> String {
    json!({"user_id": "usr_8a3f", "items": items, "payment_method": "pm_visa_4242"}).to_string()
}

#[tokio::test]
async fn bad_orders_are_refused_with_a_problem_and_nothing_is_written() -> Result<()> {
    let stack = Stack::start().await?;
    let widget = |quantity: Value| order(json!([{"sku": "WIDGET-42", "quantity": quantity}]));
    let huge = order(json!(
        (0..2000)
            .map(|_| json!({"sku": "WIDGET-42", "quantity": 1}))
            .collect::<Vec<_>>()
    ));
    // (what, content type, body, expected status, a word the detail must contain)
    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        ("malformed JSON", "application/json", "{\"user_id\":".into(), StatusCode::BAD_REQUEST, "EOF"),
        ("not JSON", "text/plain", widget(json!(1)), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        (
            "missing field",
            "application/json",
            json!({"user_id": "usr_8a3f", "items": [{"sku": "WIDGET-42", "quantity": 1}]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method",
        ),
        (
            "unknown field",
            "application/json",
            json!({"user_id": "u", "items": [], "payment_method": "pm_visa_4242", "coupon": "X"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "coupon",
        ),
        ("unknown SKU", "application/json", order(json!([{"sku": "NOPE-1", "quantity": 1}])), StatusCode::UNPROCESSABLE_ENTITY, "NOPE-1"),
        ("bad SKU", "application/json", order(json!([{"sku": "no spaces", "quantity": 1}])), StatusCode::UNPROCESSABLE_ENTITY, "sku"),
        ("quantity 0", "application/json", widget(json!(0)), StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
        ("negative quantity", "application/json", widget(json!(-3)), StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
        ("quantity not a number", "application/json", widget(json!("two")), StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
        ("empty items", "application/json", order(json!([])), StatusCode::UNPROCESSABLE_ENTITY, "items"),
        (
            "bad payment method",
            "application/json",
            json!({"user_id": "u", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": "visa"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_method",
        ),
        ("body too large", "application/json", huge, StatusCode::PAYLOAD_TOO_LARGE, "size"),
    ];

    for (what, content_type, body, status, word) in cases {
        let response = stack
            .http
            .post(stack.url("/api/orders"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let problem = Problem::expect(response, status).await.context(what)?;
        let detail = &problem.detail;
        assert!(
            detail.contains(word),
            "{what}: detail {detail:?} should mention {word:?}"
        );
    }

    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "orders")?, 0);
    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "outbox")?, 0);
    assert!(
        stack.kafka()?.read_all("orders")?.is_empty(),
        "an event was published for a refused order"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_orders_are_not_found() -> Result<()> {
    let stack = Stack::start().await?;
    for path in [
        "/api/orders/ord_0190d1c2a3b47c8d9e0f1a2b3c4d5e6f",
        "/api/orders/not-an-id",
        "/api/orders/ord_0190d1c2a3b47c8d9e0f1a2b3c4d5e6f/events",
        "/api/nothing-here",
    ] {
        let response = stack.http.get(stack.url(path)).send().await?;
        Problem::expect(response, StatusCode::NOT_FOUND)
            .await
            .context(path)?;
    }
    Ok(())
}

#[tokio::test]
async fn request_ids_are_echoed() -> Result<()> {
    let stack = Stack::start().await?;
    let response = stack
        .http
        .get(stack.url("/healthz"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await?;
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    let generated = stack.http.get(stack.url("/readyz")).send().await?;
    assert_eq!(generated.status(), StatusCode::OK);
    assert!(!generated.headers()["x-request-id"].is_empty());
    Ok(())
}
