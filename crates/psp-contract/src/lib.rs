//! The payment provider's wire contract: what a merchant sends to its HTTP API, what it gets
//! back, and what the provider's webhooks carry — as types that (de)serialise to exactly that
//! JSON (`schemas/psp.openapi.yaml`).
//!
//! The simulator (`psp-sim`) serves this contract and payment-svc's client speaks it; both use
//! these same types, so the two sides cannot drift apart, and neither has to depend on the
//! other. No I/O here: no HTTP client or server, no runtime, no database.
//!
//! Money is in minor units (cents) like every amount in the shop; ids are the provider's own
//! (`ch_…`, `re_…`, `evt_…`), and `reference` is the merchant's id for the request (the order).
//!
//! Webhooks are signed following Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature` headers, HMAC-SHA256 with a `whsec_…` secret). That scheme is not the
//! provider's own — the shop signs its callbacks the same way — so it lives in
//! the `standard-webhooks` crate, not here.

use serde::{Deserialize, Serialize};

/// `POST` here to ask for a charge: a [`CreateCharge`] body, answered with an [`Object`].
pub const CHARGES_PATH: &str = "/v1/charges";
/// `POST` here to ask for a refund: a [`CreateRefund`] body, answered with an [`Object`].
pub const REFUNDS_PATH: &str = "/v1/refunds";
/// `GET` or `PUT` a [`Latency`] here (the simulator's own knob, not a provider's API).
pub const LATENCY_PATH: &str = "/v1/simulator/latency";
/// The header carrying a request's idempotency key: the same key and body get the original
/// object back (`200`) instead of a second charge; the same key with another body a `422`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /v1/charges` body (with an `Idempotency-Key` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCharge {
    /// Amount to take, in minor units; positive.
    pub amount_minor: i64,
    /// ISO 4217 code, three upper-case letters.
    pub currency: String,
    /// The tokenised payment method (`pm_…`); decides the outcome in the simulator.
    pub payment_method: String,
    /// The merchant's reference, echoed in the webhook (payment-svc sends the order id).
    pub reference: String,
    /// Where to send the outcome. Optional: without it the provider's configured default
    /// endpoint is used, and with neither the merchant has to ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// `POST /v1/refunds` body (with an `Idempotency-Key` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The charge to give back.
    pub charge_id: String,
    /// Amount to give back, in minor units; positive.
    pub amount_minor: i64,
    /// The merchant's reference, echoed in the webhook.
    pub reference: String,
    /// Where to send the outcome (see [`CreateCharge::webhook_url`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// Where a charge or refund stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted; the outcome follows by webhook.
    Pending,
    /// Done: money moved.
    Succeeded,
    /// Refused: no money moved.
    Failed,
}

/// Why a charge failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The issuer said no.
    CardDeclined,
    /// Not enough money on the card.
    InsufficientFunds,
    /// The provider does not know this payment method.
    InvalidPaymentMethod,
}

/// A charge, as the provider shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Charge {
    /// The provider's id, `ch_…`.
    pub id: String,
    /// See [`Status`]; `pending` until the outcome is decided.
    pub status: Status,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The merchant's reference.
    pub reference: String,
    /// Set when `status` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<FailureCode>,
    /// A message for humans, set when `status` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
}

/// A refund, as the provider shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    /// The provider's id, `re_…`.
    pub id: String,
    /// The refunded charge.
    pub charge_id: String,
    /// See [`Status`].
    pub status: Status,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// The merchant's reference.
    pub reference: String,
}

/// The object a response or a webhook is about, tagged by `object`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Object {
    /// A charge.
    Charge(Charge),
    /// A refund.
    Refund(Refund),
}

impl Object {
    /// The provider's id of the object.
    pub fn id(&self) -> &str {
        match self {
            Object::Charge(charge) => &charge.id,
            Object::Refund(refund) => &refund.id,
        }
    }

    /// Where it stands.
    pub fn status(&self) -> Status {
        match self {
            Object::Charge(charge) => charge.status,
            Object::Refund(refund) => refund.status,
        }
    }

    /// The merchant's reference.
    pub fn reference(&self) -> &str {
        match self {
            Object::Charge(charge) => &charge.reference,
            Object::Refund(refund) => &refund.reference,
        }
    }

    /// The webhook event type announcing the object's current status, e.g. `charge.succeeded`.
    pub fn event_type(&self) -> String {
        let kind = match self {
            Object::Charge(_) => "charge",
            Object::Refund(_) => "refund",
        };
        let status = match self.status() {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        };
        format!("{kind}.{status}")
    }
}

/// The body of a webhook. Its id is also the `webhook-id` header, the same on every retry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEvent {
    /// `evt_…`, unique per event.
    pub id: String,
    /// `charge.succeeded`, `charge.failed` or `refund.succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the outcome was decided (RFC 3339).
    pub created_at: String,
    /// The object in its final state.
    pub data: Object,
}

/// `PUT /v1/simulator/latency` body and answer: extra time before answering charge requests,
/// for experiments with a slow provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Milliseconds added to every charge request's answer.
    pub charge_latency_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_reads_back_as_written() -> Result<(), serde_json::Error> {
        let event = WebhookEvent {
            id: "evt_1".into(),
            event_type: "charge.failed".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            data: Object::Charge(Charge {
                id: "ch_1".into(),
                status: Status::Failed,
                amount_minor: 2499,
                currency: "EUR".into(),
                reference: "ord_1".into(),
                failure_code: Some(FailureCode::CardDeclined),
                failure_message: Some("Declined.".into()),
            }),
        };
        let json = serde_json::to_value(&event)?;
        assert_eq!(json["data"]["object"], "charge");
        assert_eq!(json["data"]["failure_code"], "card_declined");
        assert_eq!(event.data.event_type(), "charge.failed");
        assert_eq!(serde_json::from_value::<WebhookEvent>(json.clone())?, event);
        let mut extra = json;
        extra["data"]["surprise"] = serde_json::json!(1);
        assert!(
            serde_json::from_value::<WebhookEvent>(extra).is_err(),
            "strict"
        );
        Ok(())
    }

    #[test]
    fn a_charge_request_without_a_webhook_url_leaves_the_field_out() -> Result<(), serde_json::Error>
    {
        let request = CreateCharge {
            amount_minor: 2499,
            currency: "EUR".into(),
            payment_method: "pm_visa_4242".into(),
            reference: "ord_1".into(),
            webhook_url: None,
        };
        let json = serde_json::to_value(&request)?;
        assert_eq!(
            json,
            serde_json::json!({
                "amount_minor": 2499,
                "currency": "EUR",
                "payment_method": "pm_visa_4242",
                "reference": "ord_1",
            })
        );
        assert_eq!(serde_json::from_value::<CreateCharge>(json)?, request);
        Ok(())
    }
}
