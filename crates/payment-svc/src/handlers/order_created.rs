//! `order.created` → record the payment as `charging`, announce `payment.initiated`, ask the
//! provider to charge. The outcome arrives later (see [`crate::provider`]).
//!
//! On redelivery: the inbox skips the event, and another `order.created` for the same order
//! finds its payment already recorded — either way no second payment and no second request.

use events::{Envelope, LineItem, OrderCreated, PaymentInitiated};
use platform::db::after_commit;
use platform::inbox;
use platform::kafka::{HandlerError, MessageInfo};
use platform::outbox;

use super::Payments;
use crate::SOURCE;
use crate::store::{self, Payment, PaymentStatus};

pub(super) async fn handle(
    payments: &Payments,
    envelope: &Envelope,
    order: OrderCreated,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    let payment = Payment {
        order_id: order.order_id,
        amount: order.total,
        payment_method: order.payment_method.clone(),
        items: order
            .items
            .iter()
            .map(|item| LineItem {
                sku: item.sku.clone(),
                quantity: item.quantity,
            })
            .collect(),
        status: PaymentStatus::Charging,
        charge_id: None,
        webhook_url: payments.webhook_url.clone(),
        causation_id: Some(envelope.meta.id),
    };
    let record = payment.clone();
    let created = inbox::apply_once(&payments.db, envelope.clone(), info, move |tx, envelope| {
        if !store::insert_payment(tx, &record)? {
            after_commit(|| tracing::info!("Order already has a payment."));
            return Ok(false);
        }
        let initiated = PaymentInitiated {
            order_id: record.order_id,
            amount: record.amount,
        };
        outbox::enqueue(
            tx,
            &Envelope::new(SOURCE, initiated, Some(envelope.meta.id)),
        )?;
        Ok(true)
    })
    .await?;
    if created == Some(true) {
        // If this fails or the process dies first, recovery sends the request again.
        payments.requests.spawn_charge(payment).await;
    }
    Ok(())
}
