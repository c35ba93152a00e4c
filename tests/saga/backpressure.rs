//! When accepted work cannot be published, order-api sheds load instead of piling it up.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::json;

use saga_tests::{Problem, Stack};

#[tokio::test]
async fn orders_are_refused_with_retry_after_when_the_outbox_backs_up() -> Result<()> {
    let mut stack = Stack::start_with_env(&[("OUTBOX_BACKLOG_LIMIT", "3")]).await?;
    // Without a broker nothing can be published: the outbox only grows.
    stack.broker.kill()?;
    let body = json!({"user_id": "usr_test", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": "pm_visa_4242"});
    let mut accepted = 0;
    let refused = loop {
        let response = stack.post_order(&body).await?;
        if response.status() == StatusCode::ACCEPTED {
            accepted += 1;
            assert!(accepted <= 4, "the backlog limit was not enforced");
            continue;
        }
        break response;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    Problem::expect(refused, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(accepted, 4, "orders up to the limit are accepted");
    // Every accepted order is still there, waiting in the outbox.
    let waiting = stack.rows_in(saga_tests::ServiceKind::OrderApi, "outbox")?;
    assert_eq!(waiting, 4);
    Ok(())
}
