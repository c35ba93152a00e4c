//! Every event payment-svc announces names the event that caused it, including those announced
//! when the provider's outcome arrives by webhook, long after the handling that asked for it.

use events::{
    Envelope, EventId, EventKind, OrderId, PaymentFailureReason, StockRejected,
    StockRejectionReason,
};

use super::{
    Replica, cancelled, charge_id, created, deliver, notify, scratch, succeeded, two_replicas,
    wait_for,
};
use crate::provider::{Notification, Outcome};

/// The `causationid` of the one event of `kind` about `order_id` in the outbox.
async fn cause_of(replica: &Replica, kind: EventKind, order_id: OrderId) -> Option<EventId> {
    let name = kind.type_name();
    let payloads = replica
        .payments
        .db
        .read(move |conn| {
            conn.query_map(
                "SELECT payload FROM outbox WHERE event_type = ?1 AND msg_key = ?2",
                platform::params![name, order_id.to_string()],
                |row| row.get::<Vec<u8>>(0),
            )
        })
        .await
        .expect("the outbox reads");
    assert_eq!(payloads.len(), 1, "one {name} for the order");
    Envelope::decode(&payloads[0])
        .expect("the outbox holds envelopes")
        .meta
        .causation_id
}

pub(super) fn refund_succeeded(order_id: OrderId, notification_id: &str) -> Notification {
    Notification {
        notification_id: notification_id.to_owned(),
        order_id,
        outcome: Outcome::RefundSucceeded {
            refund_id: format!("re_{order_id}"),
        },
    }
}

pub(super) fn rejected(order_id: OrderId) -> Envelope {
    let rejection = StockRejected {
        order_id,
        reason: StockRejectionReason::OutOfStock,
        shortages: Vec::new(),
    };
    Envelope::new("/test", rejection, None)
}

/// Waits until the replica has asked the provider for `n` refunds.
pub(super) async fn refunds_requested(replica: &Replica, n: usize) {
    wait_for("the refund request", || {
        replica.provider.refunds().len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_name_the_event_that_asked_for_the_request() {
    let scratch = scratch("payment_causation");
    let [replica, _] = two_replicas(&scratch);

    // A charge that succeeds and is refunded because the stock ran out.
    let paid = OrderId::new();
    let order = created(paid);
    deliver(&replica, order.clone(), 0).await;
    notify(&replica, succeeded(paid, "wh_paid")).await;
    assert_eq!(
        cause_of(&replica, EventKind::PaymentCompleted, paid).await,
        Some(order.meta.id)
    );
    let rejection = rejected(paid);
    deliver(&replica, rejection.clone(), 1).await;
    refunds_requested(&replica, 1).await;
    notify(&replica, refund_succeeded(paid, "wh_paid_refund")).await;
    assert_eq!(
        cause_of(&replica, EventKind::PaymentRefunded, paid).await,
        Some(rejection.meta.id)
    );

    // A declined charge.
    let declined = OrderId::new();
    let order = created(declined);
    deliver(&replica, order.clone(), 2).await;
    let failure = Notification {
        notification_id: "wh_declined".into(),
        order_id: declined,
        outcome: Outcome::ChargeFailed {
            charge_id: charge_id(declined),
            reason: PaymentFailureReason::Declined,
            detail: "declined".into(),
        },
    };
    notify(&replica, failure).await;
    assert_eq!(
        cause_of(&replica, EventKind::PaymentFailed, declined).await,
        Some(order.meta.id)
    );

    // A charge that succeeds after its order was cancelled: refunded because of the
    // cancellation, which arrived while the charge was in flight.
    let late = OrderId::new();
    deliver(&replica, created(late), 3).await;
    let cancellation = cancelled(late);
    deliver(&replica, cancellation.clone(), 4).await;
    notify(&replica, succeeded(late, "wh_late")).await;
    refunds_requested(&replica, 2).await;
    notify(&replica, refund_succeeded(late, "wh_late_refund")).await;
    assert_eq!(
        cause_of(&replica, EventKind::PaymentRefunded, late).await,
        Some(cancellation.meta.id)
    );
}
