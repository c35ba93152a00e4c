//! Getting every charge and refund to an outcome, whatever crashed in between.
//!
//! A request to the provider happens after the transaction that recorded the intent, so the
//! process can die between the two, or the provider's notification can be lost. A periodic
//! sweep sends requests again for payments and refunds that have waited too long; the
//! idempotency key makes the provider return the original charge instead of charging twice.
//!
//! With several replicas on one Postgres database, the sweep runs on whichever holds the
//! `payment-svc/recovery-sweep` lease ([`run_sweep`]).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use events::OrderId;
use platform::db::lease::Lease;

use crate::provider::Requests;
use crate::store;

/// The lease of the recovery sweep: one replica sweeps at a time.
pub(crate) const LEASE: &str = "payment-svc/recovery-sweep";

/// Every `interval`, re-sends requests that have waited longer than `stale_after` — while this
/// replica holds `lease`.
///
/// Replicas share the payments, so one sweep is enough, and two would send every stale request
/// twice (harmless with the idempotency keys, but doubling the load on a provider that is
/// probably struggling already). The lease is given up at shutdown, so that another replica
/// takes the sweep over at once.
pub(crate) async fn run_sweep(
    requests: Requests,
    lease: Lease,
    interval: Duration,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match lease.held().await {
            Ok(true) => {
                if let Err(error) = sweep_once(&requests, &lease, stale_after).await {
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
    requests: &Requests,
    lease: &Lease,
    stale_after: Duration,
) -> platform::sql::Result<()> {
    let stale_after = TimeDelta::from_std(stale_after).unwrap_or(TimeDelta::MAX);
    let (charges, refunds) = requests
        .db
        .read(move |conn| {
            let before = conn
                .now()
                .checked_sub_signed(stale_after)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            Ok::<_, platform::sql::SqlError>((
                store::stale_charges(conn, before, 500)?,
                store::stale_refunds(conn, before, 500)?,
            ))
        })
        .await?;
    for payment in &readable(charges) {
        if !lease.held().await? {
            return Ok(());
        }
        let span = resubmission_span(requests, payment.order_id).await;
        async {
            tracing::info!("Re-sending a charge request that has no outcome yet.");
            requests.submit_charge(payment).await;
        }
        .instrument(span)
        .await;
    }
    for refund in &readable(refunds) {
        if !lease.held().await? {
            return Ok(());
        }
        let span = resubmission_span(requests, refund.order_id).await;
        async {
            tracing::info!("Re-sending a refund request that has no outcome yet.");
            requests.submit_refund(refund).await;
        }
        .instrument(span)
        .await;
    }
    Ok(())
}

/// The rows that read back; each one that does not is logged and left for an operator (the
/// sweep goes on with the others rather than stopping at the first corrupt row for good).
fn readable<T>(rows: Vec<platform::sql::Result<T>>) -> Vec<T> {
    rows.into_iter()
        .filter_map(|row| {
            row.inspect_err(|error| {
                tracing::error!(%error, "A stale payment's row does not read back; not re-sending it.");
            })
            .ok()
        })
        .collect()
}

/// A span for re-sending a request, in the order's trace when its context was stored.
async fn resubmission_span(requests: &Requests, order_id: OrderId) -> tracing::Span {
    let traceparent = requests
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
