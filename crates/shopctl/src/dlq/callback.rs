//! Replaying a failed callback: order-api dead-letters a callback that never got through (see
//! `order_api::webhooks::dead_letter`), and its original was an HTTP request, not a message. So
//! replaying it asks order-api to send it again — `POST /admin/deliveries/{id}/retry` with the
//! operator's token — which keeps its `webhook-id` and signing secret, so a receiver that got
//! it after all drops the repeat.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use order_api::webhooks::dead_letter::{DELIVERY_ID_HEADER, ORIGIN, TOPIC};
use platform::kafka::dead_letter_headers as h;

use super::DeadLetter;

/// Where order-api's operator endpoints are, and the token that opens them.
#[derive(Clone, Debug, Default)]
pub struct OrderApi {
    /// order-api's base URL (`--order-api-url`, `ORDER_API_URL`).
    pub url: Option<String>,
    /// Its `ADMIN_TOKEN` (`--admin-token`).
    pub admin_token: Option<String>,
}

/// The delivery a letter is the copy of, if it is order-api's copy of a failed callback: in
/// `orders.dlq`, from the `webhooks` origin, naming its delivery.
pub fn delivery_id(letter: &DeadLetter) -> Option<&str> {
    let header = |name: &str| letter.headers.get(name).map(String::as_str);
    if letter.dlq_topic != TOPIC || header(h::ORIGINAL_TOPIC) != Some(ORIGIN) {
        return None;
    }
    header(DELIVERY_ID_HEADER).filter(|id| !id.is_empty())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{DeadLetter, delivery_id};

    fn letter(dlq_topic: &str, headers: &[(&str, &str)]) -> DeadLetter {
        DeadLetter {
            id: format!("{dlq_topic}/0/1"),
            dlq_topic: dlq_topic.to_owned(),
            key: Vec::new(),
            payload: Vec::new(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            replayed: false,
        }
    }

    #[test]
    fn only_order_api_s_copies_of_callbacks_name_a_delivery() {
        let callback = [
            ("dlq.original.topic", "webhooks"),
            ("webhook.id", "msg_0193"),
        ];
        assert_eq!(
            delivery_id(&letter("orders.dlq", &callback)),
            Some("msg_0193")
        );
        // Elsewhere, or without its id, it is no copy order-api wrote.
        assert_eq!(delivery_id(&letter("payments.dlq", &callback)), None);
        assert_eq!(
            delivery_id(&letter("orders.dlq", &[("dlq.original.topic", "webhooks")])),
            None
        );
        assert_eq!(
            delivery_id(&letter(
                "orders.dlq",
                &[("dlq.original.topic", "orders"), ("webhook.id", "msg_0193")]
            )),
            None
        );
    }
}
