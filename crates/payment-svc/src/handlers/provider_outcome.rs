//! A provider notification → the payment's final state and the event announcing it:
//! `payment.completed`, `payment.failed` or `payment.refunded`.
//!
//! Notifications can repeat (webhook retries, recovery asking again); each is applied at most
//! once: by its id, and because every state change is conditional on the state it leaves.

use events::{Envelope, Event, OrderId, PaymentCompleted, PaymentFailed, PaymentRefunded};
use platform::Db;
use platform::db::now_text;
use platform::outbox;
use tracing::Instrument;

use super::SOURCE;
use crate::provider::{Notification, Outcome};
use crate::store::{self, PaymentStatus};

/// Applies `notification` in one transaction; `Ok(false)` when it changed nothing.
///
/// The work is traced as a child of the handling that made the request (its context is stored
/// with the payment), so the provider's asynchronous answer stays in the order's trace.
pub(crate) async fn apply_notification(
    db: &Db,
    notification: Notification,
) -> rusqlite::Result<bool> {
    let order_id = notification.order_id;
    let traceparent = db
        .call(move |conn| store::traceparent_of(conn, order_id))
        .await?;
    let span = tracing::info_span!(
        "provider notification",
        otel.kind = "server",
        order_id = %order_id,
        correlation_id = %order_id,
        notification_id = %notification.notification_id,
    );
    platform::telemetry::set_parent_from_traceparent(&span, traceparent.as_deref(), None);
    apply_in_transaction(db, notification)
        .instrument(span)
        .await
}

async fn apply_in_transaction(db: &Db, notification: Notification) -> rusqlite::Result<bool> {
    db.transaction(move |tx| {
        let now = now_text();
        if !store::record_notification(
            tx,
            &notification.notification_id,
            notification.order_id,
            &now,
        )? {
            return Ok(false);
        }
        let Some(event) = apply_outcome(tx, notification.order_id, &notification.outcome, &now)?
        else {
            return Ok(false);
        };
        tracing::info!(
            event_type = event.kind().short_name(),
            "Payment provider outcome applied."
        );
        outbox::enqueue(tx, &Envelope::new(SOURCE, event, None))?;
        Ok(true)
    })
    .await
}

/// Applies an outcome; returns the event to publish, or `None` if the payment was not waiting
/// for it.
pub(crate) fn apply_outcome(
    tx: &rusqlite::Transaction<'_>,
    order_id: OrderId,
    outcome: &Outcome,
    now: &str,
) -> rusqlite::Result<Option<Event>> {
    let Some(payment) = store::payment(tx, order_id)? else {
        tracing::warn!(%order_id, "Provider outcome for an unknown payment.");
        return Ok(None);
    };
    let event: Event = match outcome {
        Outcome::ChargeSucceeded { charge_id } => {
            if !store::transition(
                tx,
                order_id,
                PaymentStatus::Charging,
                PaymentStatus::Charged,
                Some(charge_id),
                None,
                now,
            )? {
                return Ok(None);
            }
            PaymentCompleted {
                order_id,
                payment_id: charge_id.clone(),
                amount: payment.amount,
                items: payment.items,
            }
            .into()
        }
        Outcome::ChargeFailed {
            charge_id,
            reason,
            detail,
        } => {
            let reason_text = serde_json::to_value(reason)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned));
            if !store::transition(
                tx,
                order_id,
                PaymentStatus::Charging,
                PaymentStatus::Failed,
                Some(charge_id),
                reason_text.as_deref(),
                now,
            )? {
                return Ok(None);
            }
            PaymentFailed {
                order_id,
                reason: *reason,
                detail: detail.clone(),
            }
            .into()
        }
        Outcome::RefundSucceeded { refund_id } => {
            let Some(reason) = store::complete_refund(tx, order_id, refund_id, now)? else {
                return Ok(None);
            };
            store::transition(
                tx,
                order_id,
                PaymentStatus::Refunding,
                PaymentStatus::Refunded,
                None,
                None,
                now,
            )?;
            PaymentRefunded {
                order_id,
                payment_id: payment.charge_id.unwrap_or_default(),
                refund_id: refund_id.clone(),
                amount: payment.amount,
                reason,
            }
            .into()
        }
    };
    Ok(Some(event))
}
