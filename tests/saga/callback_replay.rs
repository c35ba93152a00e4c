//! `shopctl dlq replay` of a callback that failed for good hands it back to order-api's
//! deliverer, which sends it again with a fresh budget of attempts, the same `webhook-id` and
//! the same signature scheme; the operator endpoint behind it answers only the operator's token.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde_json::Value;

use saga_tests::{FoundMessage, Stack, eventually, webhook_signature as signature};

use crate::callbacks::{FailedCallback, failed_callback, wait_log};

/// order-api's `ADMIN_TOKEN` in these tests.
const ADMIN_TOKEN: &str = "admin-token-for-tests-0001";

/// A customer's API key: it must not open the operator endpoints.
const CUSTOMER_KEY: &str = "sk_test_alice_0001";

fn header<'a>(message: &'a FoundMessage, name: &str) -> Option<&'a str> {
    message
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn dlq_replay_of_a_failed_callback_delivers_it_again_with_the_same_webhook_id() -> Result<()>
{
    let key = b"callback-secret-for-replays";
    let FailedCallback {
        stack,
        seen,
        order_id,
    } = failed_callback(
        key,
        &[
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("API_KEYS", &format!("alice:{CUSTOMER_KEY}")),
        ],
    )
    .await?;
    // Waited for (by the helper) before the broker read below: that read blocks this test's
    // thread, on which the receiver answers.
    let letter = stack.kafka()?.find("orders.dlq", |m| {
        m.key == order_id.as_bytes() && header(m, "webhook.id").is_some()
    })?;
    let letter_id = format!("orders.dlq/{}/{}", letter.partition, letter.offset);
    let webhook_id = header(&letter, "webhook.id").context("webhook.id")?;
    let order_api = stack.url("");
    let replay = |extra: &[&str]| {
        let mut args = vec!["dlq", "replay", letter_id.as_str()];
        args.extend_from_slice(extra);
        stack.shopctl(&args)
    };

    // Without the token, or with a customer's key, nothing is sent.
    let missing = format!(
        "{:#}",
        replay(&["--order-api-url", &order_api])
            .err()
            .context("refused")?
    );
    ensure!(missing.contains("--admin-token"), "{missing}");
    let wrong = replay(&["--order-api-url", &order_api, "--admin-token", CUSTOMER_KEY]);
    let wrong = format!("{:#}", wrong.err().context("refused")?);
    ensure!(wrong.contains("refused the admin token"), "{wrong}");
    assert_eq!(seen.lock().unwrap_or_else(|p| p.into_inner()).len(), 2);

    let out = replay(&["--order-api-url", &order_api, "--admin-token", ADMIN_TOKEN])?;
    ensure!(
        out.contains(&format!("order-api delivery {webhook_id} (requeued)")),
        "{out}"
    );

    let accepted = eventually(|| async {
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(path, .., status)| path == "/flaky" && *status == 200)
            .cloned()
            .ok_or_else(|| "the replayed callback never arrived".to_owned())
    })
    .await?;
    let (_, headers, body, _) = &accepted;
    assert_eq!(
        headers["webhook-id"], webhook_id,
        "the receiver can deduplicate"
    );
    assert_eq!(
        headers["webhook-signature"],
        signature(key, webhook_id, &headers["webhook-timestamp"], body)?
    );
    let payload: Value = serde_json::from_str(body)?;
    assert_eq!(payload["data"]["order_id"], order_id.as_str());

    // The delivery log keeps the attempts before the replay, and ends delivered.
    let log = wait_log(&stack, &order_id, "delivered").await?;
    let codes: Vec<i64> = log[0]["attempts"]
        .as_array()
        .context("attempts")?
        .iter()
        .filter_map(|attempt| attempt["status_code"].as_i64())
        .collect();
    assert_eq!(codes, [500, 500, 200]);

    // The letter has left the list, and replaying it again changes nothing.
    ensure!(!stack.shopctl(&["dlq", "list"])?.contains(&letter_id));
    let again = replay(&["--order-api-url", &order_api, "--admin-token", ADMIN_TOKEN])?;
    ensure!(
        again.contains("already delivered: nothing changed"),
        "{again}"
    );
    assert_eq!(seen.lock().unwrap_or_else(|p| p.into_inner()).len(), 3);
    Ok(())
}

#[tokio::test]
async fn the_retry_endpoint_answers_only_the_operator_s_token() -> Result<()> {
    let stack = Stack::start_with_env(&[
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("API_KEYS", &format!("alice:{CUSTOMER_KEY}")),
    ])
    .await?;
    let url = stack.url("/admin/deliveries/msg_unknown/retry");
    let post = |token: Option<&str>| {
        let request = stack.http.post(&url);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(CUSTOMER_KEY), StatusCode::UNAUTHORIZED),
        (Some(ADMIN_TOKEN), StatusCode::NOT_FOUND),
    ] {
        let answer = post(token).await?;
        assert_eq!(answer.status(), expected, "{token:?}");
        let problem: Value = answer.json().await?;
        assert_eq!(problem["status"], expected.as_u16(), "{problem}");
    }
    Ok(())
}

#[tokio::test]
async fn the_retry_endpoint_is_off_without_an_operator_token() -> Result<()> {
    let stack = Stack::start().await?;
    let answer = stack
        .http
        .post(stack.url("/admin/deliveries/msg_unknown/retry"))
        .bearer_auth("")
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    Ok(())
}
