//! Webhook delivery: once an outcome is decided, POST it to the merchant, signed, and retry with
//! exponential backoff until a `2xx` or the last attempt — like a real provider.
//!
//! Every attempt of one event carries the same `webhook-id` (the event id), so the merchant can
//! drop repeats; each attempt is signed with a fresh timestamp. Deliveries are kept in memory:
//! those still pending when the simulator stops are lost, and the merchant learns the outcome
//! by asking again with the same idempotency key.

use std::time::Duration;

use platform::webhook::{self, Secret};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tracing::field::Empty;

use psp_contract::WebhookEvent;

/// Webhook attempts {outcome = delivered | refused | unreachable | abandoned}.
pub const WEBHOOK_ATTEMPTS: &str = "psp_webhook_attempts_total";

/// The `# HELP` lines of the metrics the simulator records besides the platform's.
pub(crate) const METRICS: &[platform::metrics::Description] = &[platform::metrics::Description {
    name: WEBHOOK_ATTEMPTS,
    kind: platform::metrics::Kind::Counter,
    unit: None,
    help: "Webhook delivery attempts, by outcome (delivered, refused, unreachable, abandoned).",
}];

/// Retry policy and signing key.
#[derive(Clone, Debug)]
pub struct Notifier {
    http: reqwest::Client,
    secret: Secret,
    /// Attempts per event before giving up.
    max_attempts: u32,
    /// Wait before the second attempt; doubles each time.
    first_backoff: Duration,
    /// Longest wait between attempts.
    max_backoff: Duration,
    /// Seconds added to the signing timestamp (a skewed clock; 0 but in fault tests).
    clock_skew_s: i64,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// One webhook to send.
#[derive(Debug)]
pub struct Delivery {
    /// Where.
    pub url: String,
    /// What.
    pub event: WebhookEvent,
    /// When, from now (the outcome's decision time).
    pub after: Duration,
    /// Trace context of the request that asked for the outcome, so the webhook continues it.
    pub trace: std::collections::HashMap<String, String>,
}

impl Notifier {
    /// A notifier signing with `secret`; tasks stop at `shutdown`.
    pub fn new(
        secret: Secret,
        max_attempts: u32,
        first_backoff: Duration,
        clock_skew_s: i64,
        shutdown: CancellationToken,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .pool_idle_timeout(platform::http::CLIENT_POOL_IDLE_TIMEOUT)
                .build()?,
            secret,
            max_attempts: max_attempts.max(1),
            first_backoff,
            max_backoff: Duration::from_secs(30),
            clock_skew_s,
            tasks: TaskTracker::new(),
            shutdown,
        })
    }

    /// Sends `delivery` in the background.
    pub fn schedule(&self, delivery: Delivery) {
        let notifier = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = notifier.shutdown.cancelled() => {}
                () = notifier.deliver(delivery) => {}
            }
        });
    }

    /// Waits for deliveries to finish (they stop early at shutdown).
    pub async fn closed(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn deliver(&self, delivery: Delivery) {
        tokio::time::sleep(delivery.after).await;
        let body = match serde_json::to_vec(&delivery.event) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "Could not encode a webhook.");
                return;
            }
        };
        let reference = delivery.event.data.reference().to_owned();
        for attempt in 1..=self.max_attempts {
            let span = tracing::info_span!(
                "webhook delivery",
                otel.name = %format_args!("POST webhook {}", delivery.event.event_type),
                otel.kind = "client",
                otel.status_code = Empty,
                webhook.id = %delivery.event.id,
                webhook.attempt = attempt,
                http.response.status_code = Empty,
                reference = %reference,
            );
            platform::telemetry::set_parent_from_traceparent(
                &span,
                delivery.trace.get("traceparent").map(String::as_str),
                delivery.trace.get("tracestate").map(String::as_str),
            );
            let outcome = self
                .attempt(&delivery, &body)
                .instrument(span.clone())
                .await;
            match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    span.record("http.response.status_code", status);
                    metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => "delivered").increment(1);
                    span.in_scope(|| tracing::info!(attempt, status, "Webhook delivered."));
                    return;
                }
                Ok(status) => {
                    span.record("http.response.status_code", status);
                    span.record("otel.status_code", "ERROR");
                    metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => "refused").increment(1);
                    span.in_scope(|| tracing::warn!(attempt, status, "Webhook refused."));
                }
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => "unreachable").increment(1);
                    span.in_scope(|| tracing::warn!(attempt, %error, "Webhook not delivered."));
                }
            }
            if attempt < self.max_attempts {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        }
        metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => "abandoned").increment(1);
        tracing::error!(
            webhook_id = %delivery.event.id,
            %reference,
            attempts = self.max_attempts,
            "Gave up delivering a webhook."
        );
    }

    async fn attempt(&self, delivery: &Delivery, body: &[u8]) -> Result<u16, reqwest::Error> {
        let timestamp = chrono::Utc::now().timestamp() + self.clock_skew_s;
        let signature = self.secret.sign(&delivery.event.id, timestamp, body);
        let mut request = self
            .http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header(webhook::ID, &delivery.event.id)
            .header(webhook::TIMESTAMP, timestamp.to_string())
            .header(webhook::SIGNATURE, signature);
        for (name, value) in platform::telemetry::inject(&tracing::Span::current()) {
            request = request.header(name, value);
        }
        let response = request.body(body.to_vec()).send().await?;
        Ok(response.status().as_u16())
    }

    /// Exponential backoff with jitter: `first_backoff × 2^(attempt-1)`, ±25 %, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .first_backoff
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.max_backoff);
        base.mul_f64(rand::random_range(0.75..1.25))
    }
}
