//! `Idempotency-Key` as draft-ietf-httpapi-idempotency-key-header defines it: a Structured
//! Field String (`"…"`), the bare form still accepted; and duplicates sent at once make one
//! order, every one of them answered with it (the documented deviation from the draft's `409`
//! for a request still in flight).

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};

use saga_tests::Stack;

fn order() -> Value {
    json!({"user_id": "usr_idem", "items": [{"sku": "WIDGET-42", "quantity": 1}],
           "payment_method": "pm_visa_4242"})
}

async fn post_with_key(stack: &Stack, key: &str) -> Result<(StatusCode, Value, bool)> {
    let response = stack
        .http
        .post(stack.url("/api/orders"))
        .header("idempotency-key", key)
        .json(&order())
        .send()
        .await?;
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    Ok((status, response.json().await?, replayed))
}

#[tokio::test]
async fn the_quoted_and_the_bare_key_name_one_order_and_bad_ones_are_refused() -> Result<()> {
    let stack = Stack::start().await?;
    let (status, first, replayed) =
        post_with_key(&stack, "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert!(!replayed);
    let (status, again, replayed) =
        post_with_key(&stack, "8e03978e-40d5-43e8-bc93-6894a57f9324").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert!(replayed, "the bare form names the same key");
    assert_eq!(again["order_id"], first["order_id"]);
    for bad in ["\"unterminated", "\"k\";p=1", "\"\""] {
        let (status, problem, _) = post_with_key(&stack, bad).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("Idempotency-Key")
        );
    }
    Ok(())
}

#[tokio::test]
async fn duplicates_sent_at_once_make_one_order_and_all_get_it() -> Result<()> {
    let stack = Stack::start().await?;
    let key = "\"b1d5f0c2-1f0e-4d7a-9a41-5c3e2b7d9e10\"";
    let answers = futures::future::join_all((0..8).map(|_| post_with_key(&stack, key))).await;
    let mut order_ids = Vec::new();
    for answer in answers {
        let (status, body, _) = answer?;
        // Never `409` (nor `5xx`): a duplicate in flight waits and gets the order.
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        order_ids.push(body["order_id"].clone());
    }
    assert!(
        order_ids.iter().all(|id| *id == order_ids[0]),
        "{order_ids:?}"
    );
    assert_eq!(stack.orders_of_user("usr_idem")?, 1);
    Ok(())
}
