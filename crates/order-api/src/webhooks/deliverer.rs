//! Sends queued webhooks: signed, retried with exponential backoff and jitter, each attempt
//! logged; after the last attempt the delivery is marked failed and copied to `orders.dlq`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dead_letter::dead_letter_message;
use rusqlite::params;
use tokio_util::sync::CancellationToken;

use platform::Db;
use platform::db::now_text;
use platform::kafka::EventProducer;

use super::target;
use platform::webhook::{self, Secret};

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct DelivererConfig {
    /// Signing secret by principal.
    pub secrets: Arc<HashMap<String, Secret>>,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Pause after the first failure; doubles each time.
    pub base_backoff: Duration,
    /// Allow internal targets (local development, tests).
    pub allow_private: bool,
}

struct Due {
    id: String,
    order_id: String,
    url: String,
    principal: String,
    payload: String,
    attempts: u32,
}

/// Delivers due webhooks until `shutdown`.
pub async fn run(
    db: Db,
    producer: EventProducer,
    config: DelivererConfig,
    shutdown: CancellationToken,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "Webhook deliveries disabled: no HTTP client.");
            return;
        }
    };
    loop {
        let due = db.read(due).await;
        let worked = match due {
            Ok(due) => {
                let any = !due.is_empty();
                for delivery in due {
                    deliver(&db, &producer, &http, &config, delivery).await;
                }
                any
            }
            Err(error) => {
                tracing::warn!(%error, "Could not read due webhooks.");
                false
            }
        };
        if !worked {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        } else if shutdown.is_cancelled() {
            return;
        }
    }
}

fn due(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, order_id, url, principal, payload, attempts FROM webhook_deliveries
         WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT 20",
    )?;
    let rows = stmt.query_map(params![now_text()], |row| {
        Ok(Due {
            id: row.get(0)?,
            order_id: row.get(1)?,
            url: row.get(2)?,
            principal: row.get(3)?,
            payload: row.get(4)?,
            attempts: row.get(5)?,
        })
    })?;
    rows.collect()
}

async fn deliver(
    db: &Db,
    producer: &EventProducer,
    http: &reqwest::Client,
    config: &DelivererConfig,
    delivery: Due,
) {
    let started = Instant::now();
    let attempt = delivery.attempts + 1;
    let result = send(http, config, &delivery).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status_code, error) = match &result {
        Ok(code) if (200..300).contains(code) => (Some(i64::from(*code)), None),
        Ok(code) => (Some(i64::from(*code)), Some(format!("answered {code}"))),
        Err(error) => (None, Some(error.clone())),
    };
    let delivered = error.is_none();
    let give_up = !delivered && attempt >= config.max_attempts;
    let backoff = config.base_backoff.mul_f64(
        2f64.powi(i32::try_from(attempt - 1).unwrap_or(30))
            .min(64.0)
            * rand::random_range(0.75..1.25),
    );
    let next = (chrono::Utc::now() + chrono::TimeDelta::from_std(backoff).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let id = delivery.id.clone();
    let error_text = error.clone();
    let recorded = db
        .transaction(move |tx| {
            let now = now_text();
            tx.prepare_cached("INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
                params![id, attempt, now, status_code, error_text, elapsed_ms],
            )?;
            let status = if delivered { "delivered" } else if give_up { "failed" } else { "pending" };
            tx.prepare_cached("UPDATE webhook_deliveries SET attempts = ?2, status = ?3, next_attempt_at = ?4,
                        finished_at = CASE WHEN ?3 = 'pending' THEN NULL ELSE ?5 END
                 WHERE id = ?1")?.execute(
                params![id, attempt, status, next, now],
            )?;
            Ok::<_, rusqlite::Error>(())
        })
        .await;
    if let Err(error) = recorded {
        tracing::warn!(%error, delivery = %delivery.id, "Could not record a webhook attempt.");
        return;
    }
    if delivered {
        tracing::info!(order_id = %delivery.order_id, delivery = %delivery.id, attempt, "Webhook delivered.");
    } else if give_up {
        tracing::warn!(order_id = %delivery.order_id, delivery = %delivery.id, attempt, error = ?error, "Webhook failed for good; dead-lettered.");
        let (message, headers) = dead_letter_message(
            &delivery.order_id,
            &delivery.payload,
            &delivery.url,
            error.as_deref().unwrap_or(""),
            attempt,
        );
        if let Err(error) = producer.send_with_headers(&message, headers).await {
            tracing::error!(%error, delivery = %delivery.id, "Could not dead-letter a failed webhook.");
        }
    } else {
        tracing::info!(order_id = %delivery.order_id, delivery = %delivery.id, attempt, error = ?error, "Webhook attempt failed; will retry.");
    }
}

async fn send(
    http: &reqwest::Client,
    config: &DelivererConfig,
    delivery: &Due,
) -> Result<u16, String> {
    let url = reqwest::Url::parse(&delivery.url).map_err(|error| error.to_string())?;
    target::check_resolved(&url, config.allow_private).await?;
    let secret = config
        .secrets
        .get(&delivery.principal)
        .ok_or_else(|| format!("no webhook secret for {}", delivery.principal))?;
    let timestamp = chrono::Utc::now().timestamp();
    let signature = secret.sign(&delivery.id, timestamp, delivery.payload.as_bytes());
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header(webhook::ID, &delivery.id)
        .header(webhook::TIMESTAMP, timestamp.to_string())
        .header(webhook::SIGNATURE, signature)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|error| error.to_string())?;
    Ok(response.status().as_u16())
}

/// Building the dead-letter copy of a failed webhook.
mod dead_letter {
    use std::collections::HashMap;

    use platform::kafka::{OutgoingMessage, dead_letter_headers as h};
    use rdkafka::message::{Header, OwnedHeaders};

    pub(super) fn dead_letter_message(
        order_id: &str,
        payload: &str,
        url: &str,
        error: &str,
        attempts: u32,
    ) -> (OutgoingMessage, OwnedHeaders) {
        let now = platform::db::now_text();
        let attempts = attempts.to_string();
        let pairs = [
            (h::ORIGINAL_TOPIC, "webhooks"),
            (h::ERROR_CLASS, "webhook"),
            (h::ERROR_MESSAGE, error),
            (h::ATTEMPTS, attempts.as_str()),
            (h::LAST_FAILURE, now.as_str()),
            (h::SERVICE, "order-api"),
            ("webhook.url", url),
        ];
        let headers = pairs
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        let message = OutgoingMessage {
            topic: "orders.dlq".to_owned(),
            key: order_id.to_owned(),
            payload: payload.as_bytes().to_vec(),
            trace: HashMap::new(),
        };
        (message, headers)
    }
}
