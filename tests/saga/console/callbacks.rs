//! A callback that failed for good shows in the console, with its copy among the dead letters;
//! re-sending it from the console delivers it and takes both off the lists.

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use saga_tests::{Stack, eventually, receiver};

use crate::callbacks::wait_log;

/// order-api's `ADMIN_TOKEN`, which opens the console as the operator `admin`.
const ADMIN_TOKEN: &str = "admin-token-for-tests-0001";

/// `GET /console/api/dead-letters` as the operator.
async fn listing(stack: &Stack) -> Result<Value> {
    Ok(stack
        .http
        .get(stack.url("/console/api/dead-letters"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

#[tokio::test]
async fn a_failed_callback_is_re_sent_from_the_console() -> Result<()> {
    let secret = format!("whsec_{}", STANDARD.encode(b"callback-secret-for-console"));
    let stack = Stack::start_with_env(&[
        ("CALLBACK_SECRETS", &format!("dev:{secret}")),
        ("CALLBACK_ALLOW_PRIVATE", "true"),
        // The receiver's `/flaky` refuses twice, then accepts: two attempts fail for good.
        ("WEBHOOK_MAX_ATTEMPTS", "2"),
        ("WEBHOOK_RETRY_BASE_MS", "50"),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
    ])
    .await?;
    let (base, seen) = receiver().await?;
    let placed: Value = stack
        .post_order(&json!({
            "user_id": "usr_console", "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242", "callback_url": format!("{base}/flaky"),
        }))
        .await?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order id")?.to_owned();
    wait_log(&stack, &order_id, "failed").await?;

    // Listed twice over: as a failed delivery, and as its copy in orders.dlq (once the
    // console's reader has it).
    let delivery_id = eventually(|| async {
        let listing = listing(&stack)
            .await
            .map_err(|error| format!("{error:#}"))?;
        let failed = listing["failed_callbacks"]
            .as_array()
            .and_then(|failed| failed.iter().find(|d| d["order_id"] == order_id.as_str()))
            .ok_or("the failed delivery is not listed")?;
        let id = failed["id"].as_str().unwrap_or_default().to_owned();
        listing["letters"]
            .as_array()
            .and_then(|letters| letters.iter().find(|l| l["delivery_id"] == id.as_str()))
            .ok_or("its copy is not listed")?;
        Ok::<_, String>(id)
    })
    .await?;

    let resent: Value = stack
        .http
        .post(stack.url(&format!("/console/api/callbacks/{delivery_id}/resend")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(resent["requeued"], true, "{resent}");
    wait_log(&stack, &order_id, "delivered").await?;
    let delivered = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(path, .., status)| path == "/flaky" && *status == 200)
        .count();
    assert_eq!(delivered, 1);

    // Nothing left to handle: neither the delivery nor its copy.
    eventually(|| async {
        let listing = listing(&stack)
            .await
            .map_err(|error| format!("{error:#}"))?;
        let waiting = listing["failed_callbacks"].as_array().map_or(0, Vec::len)
            + listing["letters"].as_array().map_or(0, Vec::len);
        (waiting == 0)
            .then_some(())
            .ok_or_else(|| format!("still listed: {listing}"))
    })
    .await?;
    Ok(())
}
