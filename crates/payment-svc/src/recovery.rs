//! Getting every charge and refund to an outcome, whatever crashed in between.
//!
//! A request to the provider happens after the transaction that recorded the intent, so the
//! process can die between the two, or the provider's notification can be lost. A periodic
//! sweep sends requests again for payments and refunds that have waited too long; the
//! idempotency key makes the provider return the original charge instead of charging twice.
//!
//! Requests made on behalf of an event run beside the consumer ([`spawn_charge`]): the intent
//! is already committed, so the consumer goes on to the next event instead of waiting for the
//! provider — a slow provider delays payments, not the whole topic.
//!
//! With several replicas on one Postgres database, the sweep runs on whichever holds the
//! `payment-svc/recovery-sweep` lease ([`run_sweep`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use platform::db::lease::Lease;
use platform::time::now_text;

use crate::handlers::{Payments, apply_notification};
use crate::provider::{Accepted, ChargeRequest, Notification, RefundRequest};
use crate::store::{self, Payment, Refund};

/// The lease of the recovery sweep: one replica sweeps at a time.
pub(crate) const LEASE: &str = "payment-svc/recovery-sweep";

/// Sends the charge request of `payment` in the background, in the current span, once one of
/// the bounded provider slots is free.
pub(crate) async fn spawn_charge(payments: &Payments, payment: Payment) {
    let owned = payments.clone();
    spawn_request(
        payments,
        async move { submit_charge(&owned, &payment).await },
    )
    .await;
}

/// Sends the refund request of `refund` in the background (see [`spawn_charge`]).
pub(crate) async fn spawn_refund(payments: &Payments, refund: Refund) {
    let owned = payments.clone();
    spawn_request(
        payments,
        async move { submit_refund(&owned, &refund).await },
    )
    .await;
}

async fn spawn_request(payments: &Payments, request: impl Future<Output = ()> + Send + 'static) {
    // Closed only if the semaphore is dropped, which it is not while `payments` lives.
    let Ok(slot) = Arc::clone(&payments.provider_slots).acquire_owned().await else {
        return;
    };
    tokio::spawn(
        async move {
            request.await;
            drop(slot);
        }
        .instrument(tracing::Span::current()),
    );
}

/// Sends (or re-sends) the charge request of `payment`. Failures are logged: the sweep retries.
pub(crate) async fn submit_charge(payments: &Payments, payment: &Payment) {
    let request = ChargeRequest {
        order_id: payment.order_id,
        amount: payment.amount,
        payment_method: payment.payment_method.clone(),
        webhook_url: payment.webhook_url.clone(),
    };
    let span = tracing::info_span!(
        "payment provider charge",
        otel.name = "psp charge",
        otel.kind = "client",
        otel.status_code = Empty,
        payment.amount_minor = payment.amount.amount_minor,
        payment.method = %payment.payment_method,
    );
    match traced(span, payments.provider.charge(request)).await {
        Ok(accepted) => {
            let order_id = payment.order_id;
            let charge_id = accepted.id.clone();
            let marked = payments
                .db
                .transaction(move |tx| {
                    store::mark_charge_submitted(tx, order_id, &charge_id, &now_text())
                })
                .await;
            if let Err(error) = marked {
                tracing::warn!(%error, %order_id, "Could not note a charge submission.");
            }
            if let Some(refund) = apply_known_outcome(payments, payment.order_id, accepted).await {
                spawn_refund(payments, refund).await;
            }
        }
        Err(error) => {
            tracing::warn!(%error, order_id = %payment.order_id, "Charge request failed; will retry.")
        }
    }
}

/// Sends (or re-sends) the refund request of `refund`.
pub(crate) async fn submit_refund(payments: &Payments, refund: &Refund) {
    let request = RefundRequest {
        order_id: refund.order_id,
        charge_id: refund.charge_id.clone(),
        amount: refund.amount,
        webhook_url: refund.webhook_url.clone(),
    };
    let span = tracing::info_span!(
        "payment provider refund",
        otel.name = "psp refund",
        otel.kind = "client",
        otel.status_code = Empty,
        payment.amount_minor = refund.amount.amount_minor,
    );
    match traced(span, payments.provider.refund(request)).await {
        Ok(accepted) => {
            let order_id = refund.order_id;
            let marked = payments
                .db
                .transaction(move |tx| store::mark_refund_submitted(tx, order_id, &now_text()))
                .await;
            if let Err(error) = marked {
                tracing::warn!(%error, %order_id, "Could not note a refund submission.");
            }
            // A refund's outcome never calls for another refund.
            let _ = apply_known_outcome(payments, refund.order_id, accepted).await;
        }
        Err(error) => {
            tracing::warn!(%error, order_id = %refund.order_id, "Refund request failed; will retry.")
        }
    }
}

/// A repeated request may come back with the outcome already decided: apply it as if notified.
/// Returns the refund the outcome calls for, if any (only a charge's outcome can).
async fn apply_known_outcome(
    payments: &Payments,
    order_id: events::OrderId,
    accepted: Accepted,
) -> Option<Refund> {
    let outcome = accepted.outcome?;
    let notification = Notification {
        notification_id: format!("sync_{}_{}", accepted.id, Utc::now().timestamp_micros()),
        order_id,
        outcome,
    };
    match apply_notification(&payments.db, notification).await {
        Ok(refund) => refund,
        Err(error) => {
            tracing::warn!(%error, %order_id, "Could not apply a known outcome; the sweep will ask again.");
            None
        }
    }
}

/// Applies a notification (a webhook, or an outcome learnt by asking again) and sends the
/// refund it may call for (a charge that succeeded for an order cancelled meanwhile).
pub(crate) async fn apply(
    payments: &Payments,
    notification: Notification,
) -> platform::sql::Result<()> {
    if let Some(refund) = apply_notification(&payments.db, notification).await? {
        spawn_refund(payments, refund).await;
    }
    Ok(())
}

/// Every `interval`, re-sends requests that have waited longer than `stale_after` — while this
/// replica holds `lease`.
///
/// Replicas share the payments, so one sweep is enough, and two would send every stale request
/// twice (harmless with the idempotency keys, but doubling the load on a provider that is
/// probably struggling already). The lease is given up at shutdown, so that another replica
/// takes the sweep over at once.
pub(crate) async fn run_sweep(
    payments: Payments,
    lease: Lease,
    interval: Duration,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match lease.held().await {
            Ok(true) => {
                if let Err(error) = sweep_once(&payments, &lease, stale_after).await {
                    tracing::warn!(%error, "Payment recovery sweep failed.");
                }
            }
            // Another replica sweeps.
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "Could not check the recovery sweep's lease."),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "Could not give the recovery sweep's lease up.");
    }
}

/// One sweep. The lease is checked again before each request (which renews it when due): a
/// sweep can outlast the lease when the provider is slow, and it stops as soon as this replica
/// may no longer count on it. Should two sweeps still overlap, a request is sent twice with the
/// same idempotency key, and its outcome is applied once (every transition is conditional).
async fn sweep_once(
    payments: &Payments,
    lease: &Lease,
    stale_after: Duration,
) -> platform::sql::Result<()> {
    let before = (Utc::now() - chrono::Duration::from_std(stale_after).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (charges, refunds) = payments
        .db
        .read(move |conn| {
            Ok::<_, platform::sql::SqlError>((
                store::stale_charges(conn, &before, 500)?,
                store::stale_refunds(conn, &before, 500)?,
            ))
        })
        .await?;
    for payment in &charges {
        if !lease.held().await? {
            return Ok(());
        }
        let span = resubmission_span(payments, payment.order_id).await;
        async {
            tracing::info!("Re-sending a charge request that has no outcome yet.");
            submit_charge(payments, payment).await;
        }
        .instrument(span)
        .await;
    }
    for refund in &refunds {
        if !lease.held().await? {
            return Ok(());
        }
        let span = resubmission_span(payments, refund.order_id).await;
        async {
            tracing::info!("Re-sending a refund request that has no outcome yet.");
            submit_refund(payments, refund).await;
        }
        .instrument(span)
        .await;
    }
    Ok(())
}

/// A span for re-sending a request, in the order's trace when its context was stored.
async fn resubmission_span(payments: &Payments, order_id: events::OrderId) -> tracing::Span {
    let traceparent = payments
        .db
        .read(move |conn| store::traceparent_of(conn, order_id))
        .await
        .ok()
        .flatten();
    let span =
        tracing::info_span!("payment recovery", order_id = %order_id, correlation_id = %order_id);
    platform::telemetry::set_parent_from_traceparent(&span, traceparent.as_deref(), None);
    span
}

/// Awaits a provider call inside its client `span`, marking the span failed on error.
async fn traced<T, E>(
    span: tracing::Span,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = call.instrument(span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}
