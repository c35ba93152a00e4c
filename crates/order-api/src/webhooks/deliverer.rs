//! Sends queued webhooks: signed, retried with exponential backoff and jitter, each attempt
//! logged; after the last attempt the delivery is marked failed, which owes a copy to
//! `orders.dlq` (see [`super::dead_letter`]).
//!
//! Replicas sharing a Postgres database deliver through one of them, the holder of the lease
//! `order-api/webhook-deliverer`. A send can outlast the lease (a slow endpoint holds it for up
//! to the client's timeout), so each attempt is also claimed in the database before it is made:
//! the claim moves the delivery's next attempt [`CLAIM`] ahead, on condition that it is still
//! pending, due and at the attempt count that was read, and the outcome is recorded on the same
//! condition. So one replica makes each attempt. Delivery stays at least once — a crash between
//! a send and its record sends again once the claim runs out — and receivers deduplicate by
//! `webhook-id`.
//!
//! Deliveries are made side by side ([`super::in_flight`]), a few per principal, so that one
//! client's hanging endpoint delays no one else's webhooks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use events::OrderId;
use platform::Db;
use platform::db::lease::Lease;
use platform::kafka::EventProducer;
use platform::params;
use platform::sql::{Conn, Result, Row};

use platform::webhook::Secret;

use super::client::{self, FailureClass, Message, SEND_TIMEOUT};
use super::in_flight::{InFlight, PER_PRINCIPAL};
use super::resolver::SystemLookup;

/// How long a claimed attempt belongs to the replica that claimed it: well beyond the longest
/// send (three times [`SEND_TIMEOUT`]). If that replica dies meanwhile, the attempt is made
/// again after this.
const CLAIM: Duration = Duration::from_secs(15);

/// How long a round waits for the deliveries it started before it looks for newly due ones
/// (and sends the dead-letter copies owed so far); the slower ones go on meanwhile.
const ROUND_BUDGET: Duration = Duration::from_secs(1);

/// Most due deliveries read per round (at most [`PER_PRINCIPAL`] of each principal).
const DUE_BATCH: i64 = 256;

/// Pause between looks for due webhooks when there were none.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct DelivererConfig {
    /// Signing secret by principal.
    pub secrets: Arc<HashMap<String, Secret>>,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Pause after the first failure; doubles each time.
    pub base_backoff: Duration,
    /// Allow internal targets (local development, tests).
    pub allow_private: bool,
}

/// A delivery due for its next attempt.
#[derive(Clone, Debug)]
pub(super) struct Due {
    pub(super) id: String,
    order_id: OrderId,
    url: String,
    pub(super) principal: String,
    payload: String,
    /// Attempts made so far.
    attempts: u32,
    /// Attempts made before the current budget began (an operator's retry, see
    /// [`super::retry`]); 0 for a delivery never retried.
    budget_start: u32,
}

impl Due {
    /// Reads a row of `webhook_deliveries` selected as
    /// `id, order_id, url, principal, payload, attempts, budget_start`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            order_id: row.get(1)?,
            url: row.get(2)?,
            principal: row.get(3)?,
            payload: row.get(4)?,
            attempts: row.get(5)?,
            budget_start: row.get(6)?,
        })
    }
}

/// Delivers due webhooks while this process holds `lease`, until `shutdown`; then gives the
/// lease up, so that another replica takes over without waiting for it to expire.
pub async fn run(
    db: Db,
    lease: Lease,
    producer: EventProducer,
    config: DelivererConfig,
    shutdown: CancellationToken,
) {
    let http = match client::build(config.allow_private, Arc::new(SystemLookup)) {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "Webhook deliveries disabled: no HTTP client.");
            return;
        }
    };
    let mut in_flight = InFlight::default();
    loop {
        let (worked, pause) = match lease.held().await {
            Ok(true) => (
                deliver_due(&db, &lease, &producer, &http, &config, &mut in_flight).await,
                IDLE_POLL,
            ),
            // Another replica delivers; look again well within the time it would take to
            // notice that it died.
            Ok(false) => (false, (lease.ttl() / 4).max(IDLE_POLL)),
            Err(error) => {
                tracing::warn!(%error, lease = lease.name(), "Could not renew the lease.");
                (false, IDLE_POLL)
            }
        };
        if !worked {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
    }
    // Let the attempts under way end and be recorded; any still running after the client's
    // timeout are dropped, and made again once their claims run out.
    in_flight
        .settle(SEND_TIMEOUT + Duration::from_secs(1))
        .await;
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, lease = lease.name(), "Could not release the lease.");
    }
}

/// One round: starts the due deliveries there is room for, waits a little for them, then sends
/// the copies owed to the dead-letter topic; `true` if anything was started, ended or copied.
async fn deliver_due(
    db: &Db,
    lease: &Lease,
    producer: &EventProducer,
    http: &reqwest::Client,
    config: &DelivererConfig,
    in_flight: &mut InFlight,
) -> bool {
    let started = in_flight.start_due(db, http, config).await;
    let ended = if started > 0 {
        in_flight.settle(ROUND_BUDGET).await
    } else {
        in_flight.reap()
    };
    let any = started > 0 || ended > 0;
    // Once the lease is lost, the copies are the new holder's to send.
    if !lease.held().await.unwrap_or(false) {
        return any;
    }
    let copied = super::dead_letter::send_owed(db, producer).await;
    any || copied
}

/// Pending deliveries due at `now`, oldest due first, at most [`PER_PRINCIPAL`] of each
/// principal: a principal with a long backlog does not fill the read and hide the others'.
pub(super) fn due(conn: &Conn<'_>, now: DateTime<Utc>) -> Result<Vec<Due>> {
    conn.query_map(
        "SELECT id, order_id, url, principal, payload, attempts, budget_start FROM (
             SELECT id, order_id, url, principal, payload, attempts, budget_start, next_attempt_at,
                    ROW_NUMBER() OVER (PARTITION BY principal ORDER BY next_attempt_at, id) AS nth
             FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= ?1
         ) due
         WHERE nth <= ?2 ORDER BY next_attempt_at, id LIMIT ?3",
        params![now, PER_PRINCIPAL as i64, DUE_BATCH],
        Due::from_row,
    )
}

/// Takes the next attempt of `delivery` for this process, at `now` (the transaction's time) until
/// `until`: `false` if someone else took or made it since it was read (it is no longer due, or
/// no longer at the attempt count read).
fn claim(tx: &Conn<'_>, delivery: &Due, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool> {
    let changed = tx.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = ?3
         WHERE id = ?1 AND status = 'pending' AND attempts = ?2 AND next_attempt_at <= ?4",
        params![delivery.id, delivery.attempts, until, now],
    )?;
    Ok(changed == 1)
}

/// The outcome of one attempt, as recorded.
#[derive(Clone, Debug)]
struct Outcome {
    /// 1 for the first attempt.
    attempt: u32,
    /// `delivered`, `failed` (for good) or `pending` (retried `retry_after` the record).
    status: &'static str,
    /// How long after it is recorded the next attempt is due (for `pending`).
    retry_after: Duration,
    status_code: Option<i64>,
    /// The failure's class, never its detail (see [`super::client`]).
    error: Option<&'static str>,
    duration_ms: f64,
}

/// Records `outcome` for the delivery `id` at `now` (the transaction's time), if its previous
/// attempt count is still the one the attempt was claimed at; `false` (nothing written) if
/// another replica recorded it already.
fn record(tx: &Conn<'_>, id: &str, outcome: &Outcome, now: DateTime<Utc>) -> Result<bool> {
    let finished_at = (outcome.status != "pending").then_some(now);
    let next_attempt_at = now + delta(outcome.retry_after);
    let changed = tx.execute(
        "UPDATE webhook_deliveries SET attempts = ?2, status = ?3, next_attempt_at = ?4, finished_at = ?5
         WHERE id = ?1 AND status = 'pending' AND attempts = ?6",
        params![
            id,
            outcome.attempt,
            outcome.status,
            next_attempt_at,
            finished_at,
            outcome.attempt.saturating_sub(1)
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            outcome.attempt,
            now,
            outcome.status_code,
            outcome.error,
            outcome.duration_ms
        ],
    )?;
    Ok(true)
}

/// `span` as a time difference (the longest one if it does not fit).
fn delta(span: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(span).unwrap_or(chrono::TimeDelta::MAX)
}

/// Claims and makes the next attempt of `delivery`, and records its outcome: for the client a
/// status code or a [`FailureClass`], for the service's log the details.
pub(super) async fn deliver(db: Db, http: reqwest::Client, config: DelivererConfig, delivery: Due) {
    let claimed = {
        let delivery = delivery.clone();
        db.transaction(move |tx| claim(tx, &delivery, tx.now(), tx.now() + delta(CLAIM)))
            .await
    };
    match claimed {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(delivery = %delivery.id, "Webhook attempt taken by another replica.");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, delivery = %delivery.id, "Could not claim a webhook attempt.");
            return;
        }
    }
    let started = Instant::now();
    let attempt = delivery.attempts + 1;
    let message = Message {
        id: &delivery.id,
        url: &delivery.url,
        principal: &delivery.principal,
        payload: &delivery.payload,
    };
    let result = client::send(&http, &config, &message).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status_code, error, detail) = match result {
        Ok(code) if (200..300).contains(&code) => (Some(i64::from(code)), None, None),
        Ok(code) => (
            Some(i64::from(code)),
            Some(FailureClass::HttpStatus),
            Some(format!("answered {code}")),
        ),
        Err(failure) => (None, Some(failure.class), Some(failure.detail)),
    };
    let delivered = error.is_none();
    // Counted within the current budget: a retried delivery gets `max_attempts` more.
    let in_budget = attempt.saturating_sub(delivery.budget_start);
    let give_up = !delivered && in_budget >= config.max_attempts;
    let backoff = config.base_backoff.mul_f64(
        2f64.powi(i32::try_from(in_budget.saturating_sub(1)).unwrap_or(30))
            .min(64.0)
            * rand::random_range(0.75..1.25),
    );
    let outcome = Outcome {
        attempt,
        status: if delivered {
            "delivered"
        } else if give_up {
            "failed"
        } else {
            "pending"
        },
        retry_after: backoff,
        status_code,
        error: error.map(FailureClass::as_str),
        duration_ms: elapsed_ms,
    };
    let id = delivery.id.clone();
    let recorded = db
        .transaction(move |tx| record(tx, &id, &outcome, tx.now()))
        .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            // The claim ran out before the send ended and another replica made this attempt.
            tracing::warn!(delivery = %delivery.id, attempt, "Webhook attempt recorded elsewhere first.");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, delivery = %delivery.id, "Could not record a webhook attempt.");
            return;
        }
    }
    if delivered {
        tracing::info!(order_id = %delivery.order_id, delivery = %delivery.id, attempt, "Webhook delivered.");
    } else if give_up {
        // Its copy to the dead-letter topic is owed now; the round sends it after the deliveries.
        tracing::warn!(order_id = %delivery.order_id, delivery = %delivery.id, attempt, error = detail.as_deref(), "Webhook failed for good; its copy goes to the dead-letter topic.");
    } else {
        tracing::info!(order_id = %delivery.order_id, delivery = %delivery.id, attempt, error = detail.as_deref(), "Webhook attempt failed; will retry.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    /// `seconds` into 2026.
    fn at(seconds: i64) -> DateTime<Utc> {
        platform::time::parse("2026-01-01T00:00:00Z").expect("a valid time")
            + chrono::TimeDelta::seconds(seconds)
    }

    fn outcome(attempt: u32, status: &'static str, retry_after: u64) -> Outcome {
        Outcome {
            attempt,
            status,
            retry_after: Duration::from_secs(retry_after),
            status_code: Some(500),
            error: None,
            duration_ms: 1.5,
        }
    }

    #[test]
    fn each_attempt_is_claimed_by_one_replica_and_recorded_once() -> Result<()> {
        let (_scratch, db) = testing::scratch();
        let conn = db.conn();
        conn.execute(
            "INSERT INTO webhook_deliveries (id, order_id, url, principal, event_type, payload, status, next_attempt_at, created_at)
             VALUES ('msg_1', ?1, 'http://hook', 'alice', 'order.confirmed', '{}', 'pending', ?2, ?2)",
            params![OrderId::new(), at(0)],
        )?;
        let read = due(&conn, at(1))?;
        assert_eq!(read.len(), 1);
        let delivery = &read[0];
        assert!(claim(&conn, delivery, at(1), at(61))?);
        // A second replica that read the same row finds it taken, and not due any more.
        assert!(!claim(&conn, delivery, at(1), at(61))?);
        assert!(due(&conn, at(2))?.is_empty());
        // The claim ran out (its replica died): another may make the attempt.
        assert!(claim(&conn, delivery, at(62), at(122))?);
        // Recorded at 62 s, retried 118 s later.
        assert!(record(
            &conn,
            &delivery.id,
            &outcome(1, "pending", 118),
            at(62)
        )?);
        assert!(
            !record(&conn, &delivery.id, &outcome(1, "pending", 118), at(62))?,
            "the attempt is recorded once"
        );
        // What was read before the first attempt is stale now, even once the retry is due.
        assert!(!claim(&conn, delivery, at(200), at(260))?);
        let retry = due(&conn, at(200))?;
        assert_eq!(retry[0].attempts, 1);
        assert!(claim(&conn, &retry[0], at(200), at(260))?);
        assert!(record(
            &conn,
            &retry[0].id,
            &outcome(2, "delivered", 1),
            at(200)
        )?);
        assert!(due(&conn, at(100_000))?.is_empty());
        let logged = conn.query_map(
            "SELECT attempt FROM webhook_attempts WHERE delivery_id = 'msg_1' ORDER BY attempt",
            &[],
            |row| row.get::<i64>(0),
        )?;
        assert_eq!(logged, [1, 2]);
        let finished = conn.query_row(
            "SELECT status, finished_at IS NOT NULL FROM webhook_deliveries WHERE id = 'msg_1'",
            &[],
            |row| Ok((row.get::<String>(0)?, row.get::<bool>(1)?)),
        )?;
        assert_eq!(finished, ("delivered".to_owned(), true));
        Ok(())
    }
}
