//! A refund's completion announces the charge it refunded.

use events::{EventKind, OrderId};
use platform::db::testing::events_of;
use platform::params;

use super::causation::{refund_succeeded, refunds_requested, rejected};
use super::{created, deliver, notify, scratch, succeeded, two_replicas};

/// A payment being refunded always has the id of the charge that succeeded. One without it is
/// a corrupt row: its refund's outcome is refused (and kept for another try), not announced
/// with an empty `payment_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_of_a_payment_without_its_charge_id_is_refused() {
    let scratch = scratch("payment_refund_charge");
    let [replica, _] = two_replicas(&scratch);
    let order_id = OrderId::new();
    deliver(&replica, created(order_id), 0).await;
    notify(&replica, succeeded(order_id, "wh_paid")).await;
    deliver(&replica, rejected(order_id), 1).await;
    refunds_requested(&replica, 1).await;

    let db = &replica.payments.db;
    db.transaction(move |tx| {
        tx.execute(
            "UPDATE payments SET charge_id = NULL WHERE order_id = ?1",
            params![order_id],
        )
    })
    .await
    .expect("the row is changed");
    let refused = replica
        .payments
        .requests
        .apply(refund_succeeded(order_id, "wh_refund"))
        .await;
    let error = refused.expect_err("a refund without a charge id is refused");
    assert!(error.to_string().contains("no charge id"), "{error:#}");
    assert_eq!(events_of(db, EventKind::PaymentRefunded).await, 0);
}
