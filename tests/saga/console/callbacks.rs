//! A callback that failed for good shows in the console, with its copy among the dead letters;
//! re-sending it from the console delivers it and takes both off the lists.

use anyhow::Result;
use serde_json::Value;

use saga_tests::{Stack, eventually};

use crate::callbacks::{FailedCallback, failed_callback, wait_log};

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
    let FailedCallback {
        stack,
        seen,
        order_id,
    } = failed_callback(
        b"callback-secret-for-console",
        &[("ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await?;

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
