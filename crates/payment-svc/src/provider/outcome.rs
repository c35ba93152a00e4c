//! A provider notification → the payment's final state and the event announcing it:
//! `payment.completed`, `payment.failed` or `payment.refunded`.
//!
//! Notifications can repeat (webhook retries, recovery asking again) and arrive at any replica;
//! each is applied at most once: by its id, and because every state change is conditional on
//! the state it leaves. The outcome is decided on the locked payment row (see
//! [`store::lock_payment`]), so that a cancellation flag set by another replica is either seen
//! here or set after this outcome, never lost in between.
//!
//! The announcing event names as its `causationid` the event that asked for the request — the
//! `order.created` of a charge, the `stock.rejected` or `order.cancelled` of a refund — stored
//! with the payment or refund when the request was decided: the outcome itself arrives by
//! webhook or recovery, with no event in hand.

use events::{Envelope, Event, EventId, OrderId, PaymentCompleted, PaymentFailed, PaymentRefunded};
use platform::Db;
use platform::db::after_commit;
use platform::outbox;
use platform::sql::{Conn, Result};
use tracing::Instrument;

use super::{Notification, Outcome};
use crate::store::{self, CancellationRequest, CompletedRefund, PaymentStatus, Refund};
use crate::{SOURCE, refund};

/// Applies `notification` in one transaction. Returns a refund to send when the charge
/// succeeded for an order that was cancelled meanwhile.
///
/// The work is traced as a child of the current span — the webhook request, which continues
/// the provider's trace — or, when there is none, of the handling that made the request (its
/// context is stored with the payment): either way the answer stays in the order's trace.
pub(crate) async fn apply_notification(
    db: &Db,
    notification: Notification,
) -> Result<Option<Refund>> {
    let order_id = notification.order_id;
    let span = tracing::info_span!(
        "provider notification",
        otel.kind = "internal",
        order_id = %order_id,
        correlation_id = %order_id,
        notification_id = %notification.notification_id,
    );
    if tracing::Span::current().is_none() {
        let traceparent = db
            .read(move |conn| store::traceparent_of(conn, order_id))
            .await?;
        platform::telemetry::set_parent_from_traceparent(&span, traceparent.as_deref(), None);
    }
    apply_in_transaction(db, notification)
        .instrument(span)
        .await
}

async fn apply_in_transaction(db: &Db, notification: Notification) -> Result<Option<Refund>> {
    db.transaction(move |tx| {
        if !store::record_notification(tx, &notification.notification_id, notification.order_id)? {
            return Ok(None);
        }
        match apply_outcome(tx, notification.order_id, &notification.outcome)? {
            Effect::Publish { event, cause } => {
                let event_type = event.kind().short_name();
                after_commit(move || {
                    tracing::info!(event_type, "Payment provider outcome applied.");
                });
                outbox::enqueue(tx, &Envelope::new(SOURCE, event, cause))?;
                Ok(None)
            }
            Effect::Refund(refund) => Ok(Some(refund)),
            Effect::Nothing => Ok(None),
        }
    })
    .await
}

/// What an outcome leads to.
enum Effect {
    /// Announce `event`, caused by the event `cause` that asked for the request.
    Publish {
        event: Event,
        cause: Option<EventId>,
    },
    /// The charge succeeded for an order cancelled meanwhile: refund it at once.
    Refund(Refund),
    /// The payment was not waiting for this outcome (a repeat).
    Nothing,
}

/// Applies an outcome to the payment's state.
fn apply_outcome(tx: &Conn<'_>, order_id: OrderId, outcome: &Outcome) -> Result<Effect> {
    let Some(payment) = store::lock_payment(tx, order_id)? else {
        after_commit(move || {
            tracing::warn!(%order_id, "Provider outcome for an unknown payment.");
        });
        return Ok(Effect::Nothing);
    };
    // The charge's cause, unless the outcome is a refund's.
    let mut cause = payment.causation_id;
    let event: Event = match outcome {
        Outcome::ChargeSucceeded { charge_id } => {
            if payment.status == PaymentStatus::Charging
                && let Some(CancellationRequest { reason, cause }) =
                    store::cancellation_requested(tx, order_id)?
            {
                // No payment.completed: the order is over; nothing downstream should act on it.
                let reason_text = reason.as_str();
                after_commit(move || {
                    tracing::info!(
                        reason = reason_text,
                        "Charge succeeded after its order was cancelled."
                    );
                });
                return Ok(refund::begin(
                    tx,
                    &payment,
                    PaymentStatus::Charging,
                    Some(charge_id),
                    reason,
                    cause,
                )?
                .map_or(Effect::Nothing, Effect::Refund));
            }
            if !store::transition(
                tx,
                order_id,
                PaymentStatus::Charging,
                PaymentStatus::Charged,
                Some(charge_id),
                None,
            )? {
                return Ok(Effect::Nothing);
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
            if !store::transition(
                tx,
                order_id,
                PaymentStatus::Charging,
                PaymentStatus::Failed,
                Some(charge_id),
                Some(*reason),
            )? {
                return Ok(Effect::Nothing);
            }
            PaymentFailed {
                order_id,
                reason: *reason,
                detail: detail.clone(),
            }
            .into()
        }
        Outcome::RefundSucceeded { refund_id } => {
            let Some(CompletedRefund {
                reason,
                cause: refund_cause,
            }) = store::complete_refund(tx, order_id, refund_id)?
            else {
                return Ok(Effect::Nothing);
            };
            cause = refund_cause;
            // A refund is only ever asked for a charge that succeeded, which stored its id: a
            // payment without one is a corrupt row, refused (the notification is answered with
            // an error, and retried) rather than announced with an empty payment id.
            let charge_id = payment.charge_id.ok_or_else(|| {
                store::corrupt(format!(
                    "the payment of order {order_id} is being refunded but has no charge id"
                ))
            })?;
            store::transition(
                tx,
                order_id,
                PaymentStatus::Refunding,
                PaymentStatus::Refunded,
                None,
                None,
            )?;
            PaymentRefunded {
                order_id,
                payment_id: charge_id,
                refund_id: refund_id.clone(),
                amount: payment.amount,
                reason,
            }
            .into()
        }
    };
    Ok(Effect::Publish { event, cause })
}
