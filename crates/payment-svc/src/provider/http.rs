//! The provider over HTTP: charge and refund requests to its API (the contract in
//! `psp-contract`, which `psp-sim` serves), and the translation of its objects and webhooks
//! into [`Outcome`]s and [`Notification`]s.

use std::time::Duration;

use futures::future::BoxFuture;
use platform::telemetry::HttpClientSpan;
use psp_contract::{
    CHARGES_PATH, CreateCharge, CreateRefund, FailureCode, IDEMPOTENCY_KEY, Object, REFUNDS_PATH,
    Status, WebhookEvent,
};
use reqwest::StatusCode;
use tracing::Instrument;

use events::{OrderId, PaymentFailureReason};

use super::{
    Accepted, Availability, ChargeRequest, Notification, Outcome, PaymentProvider, ProviderError,
    RefundRequest,
};

/// A client of the provider's API.
#[derive(Clone, Debug)]
pub struct HttpProvider {
    http: reqwest::Client,
    /// The API's base URL, e.g. `http://127.0.0.1:8090`.
    base_url: String,
    /// Where the provider sends outcomes: payment-svc's `/webhooks/payments`.
    webhook_url: String,
}

impl HttpProvider {
    /// A client of the API at `base_url` whose requests ask for webhooks to `webhook_url`.
    pub fn new(
        base_url: &str,
        webhook_url: String,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(platform::http::CLIENT_POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|error| ProviderError::down(format!("building the HTTP client: {error}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            webhook_url,
        })
    }

    /// POSTs `body` to `path` inside an HTTP `CLIENT` span (whose context the provider's
    /// server span continues), and reads the object the provider answers with.
    async fn post(
        &self,
        path: &str,
        key: String,
        body: &impl serde::Serialize,
    ) -> Result<Accepted, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        let client_span = HttpClientSpan::new("POST", &url);
        let span = client_span.span().clone();
        let mut request = self.http.post(url).header(IDEMPOTENCY_KEY, key).json(body);
        for (name, value) in platform::telemetry::inject(&span) {
            request = request.header(name, value);
        }
        let response = match request.send().instrument(span).await {
            Ok(response) => response,
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else {
                    "connect"
                };
                client_span.record_failure(kind, &error);
                return Err(ProviderError::down(format!("POST {path}: {error}")));
            }
        };
        let status = response.status();
        client_span.record_status(status.as_u16());
        if status != StatusCode::OK && status != StatusCode::ACCEPTED {
            let detail = response.text().await.unwrap_or_default();
            let availability =
                if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                    Availability::Up
                } else {
                    Availability::Down
                };
            return Err(ProviderError(
                format!("POST {path}: {status}: {detail}"),
                availability,
            ));
        }
        let object: Object = response.json().await.map_err(|error| {
            ProviderError::down(format!("POST {path}: unreadable answer: {error}"))
        })?;
        Ok(Accepted {
            id: object.id().to_owned(),
            outcome: outcome_of(&object),
        })
    }
}

impl PaymentProvider for HttpProvider {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let body = CreateCharge {
                amount_minor: request.amount.amount_minor,
                currency: request.amount.currency.as_str().to_owned(),
                payment_method: request.payment_method.as_str().to_owned(),
                reference: request.order_id.to_string(),
                webhook_url: Some(
                    request
                        .webhook_url
                        .unwrap_or_else(|| self.webhook_url.clone()),
                ),
            };
            self.post(CHARGES_PATH, request.order_id.to_string(), &body)
                .await
        })
    }

    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let body = CreateRefund {
                charge_id: request.charge_id.clone(),
                amount_minor: request.amount.amount_minor,
                reference: request.order_id.to_string(),
                webhook_url: Some(
                    request
                        .webhook_url
                        .unwrap_or_else(|| self.webhook_url.clone()),
                ),
            };
            self.post(REFUNDS_PATH, format!("refund:{}", request.order_id), &body)
                .await
        })
    }
}

/// The outcome an object shows, or `None` while it is pending.
pub fn outcome_of(object: &Object) -> Option<Outcome> {
    match (object, object.status()) {
        (_, Status::Pending) => None,
        (Object::Charge(charge), Status::Succeeded) => Some(Outcome::ChargeSucceeded {
            charge_id: charge.id.clone(),
        }),
        (Object::Charge(charge), Status::Failed) => Some(Outcome::ChargeFailed {
            charge_id: charge.id.clone(),
            reason: match charge.failure_code {
                Some(FailureCode::CardDeclined) => PaymentFailureReason::Declined,
                Some(FailureCode::InsufficientFunds) => PaymentFailureReason::InsufficientFunds,
                Some(FailureCode::InvalidPaymentMethod) | None => {
                    PaymentFailureReason::InvalidPaymentMethod
                }
            },
            detail: charge
                .failure_message
                .clone()
                .unwrap_or_else(|| "The payment provider refused the charge.".to_owned()),
        }),
        (Object::Refund(refund), Status::Succeeded) => Some(Outcome::RefundSucceeded {
            refund_id: refund.id.clone(),
        }),
        // A failed refund is not something the simulated provider reports; payment-svc keeps
        // the refund open and the recovery sweep asks again.
        (Object::Refund(_), Status::Failed) => None,
    }
}

/// Why a (correctly signed) webhook cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not a webhook event.
    #[error("the body is not a webhook event: {0}")]
    Body(#[from] serde_json::Error),
    /// The body's id differs from the signed `webhook-id`.
    #[error("the event id {body} differs from the webhook-id header {header}")]
    IdMismatch {
        /// In the body.
        body: String,
        /// In the header.
        header: String,
    },
    /// The reference is not one of our order ids.
    #[error("the reference {0:?} is not an order id")]
    Reference(String),
    /// The event reports no outcome.
    #[error("the event reports no final outcome ({0})")]
    NotFinal(String),
}

/// The notification a signed webhook body carries; `webhook_id` (signed) names it.
pub fn notification_of(webhook_id: &str, body: &[u8]) -> Result<Notification, WebhookError> {
    let event: WebhookEvent = serde_json::from_slice(body)?;
    if event.id != webhook_id {
        return Err(WebhookError::IdMismatch {
            body: event.id,
            header: webhook_id.to_owned(),
        });
    }
    let order_id: OrderId = event
        .data
        .reference()
        .parse()
        .map_err(|_| WebhookError::Reference(event.data.reference().to_owned()))?;
    let outcome = outcome_of(&event.data).ok_or(WebhookError::NotFinal(event.event_type))?;
    Ok(Notification {
        notification_id: event.id,
        order_id,
        outcome,
    })
}
