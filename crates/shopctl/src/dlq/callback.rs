//! Replaying a failed callback: order-api dead-letters a callback that never got through (see
//! `dead_letters::callback`), and its original was an HTTP request, not a message. So
//! replaying it asks order-api to send it again — `POST /admin/deliveries/{id}/retry` with the
//! operator's token — which keeps its `webhook-id` and signing secret, so a receiver that got
//! it after all drops the repeat.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Where order-api's operator endpoints are, and the token that opens them.
#[derive(Clone, Debug, Default)]
pub struct OrderApi {
    /// order-api's base URL (`--order-api-url`, `ORDER_API_URL`).
    pub url: Option<String>,
    /// Its `ADMIN_TOKEN` (`--admin-token`).
    pub admin_token: Option<String>,
}

/// What order-api did with a retry.
#[derive(Debug, serde::Deserialize)]
pub struct Retried {
    /// The delivery's status now: `pending` or `delivered`.
    pub status: String,
    /// Whether this retry moved it from `failed` back to `pending`.
    pub requeued: bool,
}

/// Asks order-api to send the delivery `id` again.
pub async fn retry(order_api: &OrderApi, id: &str) -> Result<Retried> {
    let (Some(url), Some(token)) = (
        order_api.url.as_deref().filter(|url| !url.is_empty()),
        order_api
            .admin_token
            .as_deref()
            .filter(|token| !token.is_empty()),
    ) else {
        bail!(
            "a failed callback is sent again by order-api: pass --order-api-url (ORDER_API_URL) \
             and --admin-token (ADMIN_TOKEN, order-api's operator token)"
        );
    };
    // Ids are order-api's own (`msg_<hex>`); anything else would not stay one path segment.
    if !id
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        bail!("{id:?} is not a delivery id");
    }
    let endpoint = format!("{}/admin/deliveries/{id}/retry", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&endpoint)
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("cannot reach order-api at {url}"))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .with_context(|| format!("reading order-api's answer to {endpoint}"));
    }
    let detail = response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match status {
        reqwest::StatusCode::UNAUTHORIZED => {
            bail!("order-api refused the admin token (it is not its ADMIN_TOKEN)")
        }
        _ => bail!("order-api answered {status} to {endpoint}: {detail}"),
    }
}
