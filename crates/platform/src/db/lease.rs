//! Leases: which replica of a service does a job that only one of them may do at a time.
//!
//! Several replicas of a service share one Postgres database. Consumers split the work among
//! themselves through Kafka's consumer groups, but some jobs belong to the database, not to a
//! partition: the outbox relay (one publisher keeps the events of an order in the order they
//! were committed), the deadline reaper, the webhook deliverer, the payment recovery sweep.
//! Each of these takes a named lease — a row with a holder and an expiry — and works only while
//! it holds it. A replica that dies stops renewing; after `LEASE_TTL_MS` another takes over.
//!
//! The holder counts its lease as held only until `renewed + 3/4 ttl` by its own clock
//! (renewing at half-time), so it stops working a quarter of the lease before another replica
//! may start — a margin for a round of work that outlasts the check before it, and for the
//! replicas' clocks disagreeing (NTP does far better than the default 1.25 s). With SQLite there is one process per file: [`Lease::new`] gives a lease that is
//! held without asking, so that a restarted process does not wait out the lease of the process
//! it replaces. A replica of a Postgres deployment that restarts after a crash is a new holder
//! and waits up to `LEASE_TTL_MS` for the old one's lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::Db;
use crate::db::Migration;
use crate::params;
use crate::sql::{Dialect, SqlError};

pub(crate) const MIGRATION: Migration = Migration::new(
    "platform/leases/1",
    "
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    -- RFC 3339 UTC, like every timestamp here: text order is time order.
    expires_at TEXT NOT NULL
);
",
);

/// A named lease, as seen by one process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Lease {
    db: Db,
    name: &'static str,
    holder: Arc<str>,
    ttl: Duration,
    /// Until when this process may act on the lease (its own clock), if it holds it.
    held_until: Arc<Mutex<Option<Instant>>>,
    /// Held without asking: the only process of a SQLite file.
    sole: bool,
}

impl Lease {
    /// The lease `name` on `db`, held for the database's lease time (`LEASE_TTL_MS`, see
    /// [`DbSettings`](super::DbSettings)) at a time; on SQLite, always held.
    pub fn new(db: &Db, name: &'static str) -> Result<Self, crate::PlatformError> {
        let mut lease = Self::with_ttl(db, name, db.lease_ttl());
        lease.sole = db.dialect() == Dialect::Sqlite;
        Ok(lease)
    }

    /// The lease `name` on `db`, held for `ttl` at a time, through the `leases` table whatever
    /// the database (so that processes sharing a SQLite file can use it too, as tests do).
    pub fn with_ttl(db: &Db, name: &'static str, ttl: Duration) -> Self {
        Self {
            db: db.clone(),
            name,
            holder: holder_id().into(),
            ttl,
            held_until: Arc::new(Mutex::new(None)),
            sole: false,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How long a lease lasts without renewal: how long the others wait for a dead holder.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether this process holds the lease now, renewing or taking it when due. Cheap while
    /// the lease is fresh (no query).
    pub async fn held(&self) -> Result<bool, SqlError> {
        if self.sole {
            return Ok(true);
        }
        let mut held_until = self.held_until.lock().await;
        let now = Instant::now();
        if let Some(until) = *held_until
            && until > now + self.ttl / 4
        {
            return Ok(true);
        }
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(5));
        let wall = chrono::Utc::now();
        let text = |at: chrono::DateTime<chrono::Utc>| {
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let (name, holder) = (self.name, Arc::clone(&self.holder));
        let (expires, now_text) = (text(wall + ttl), text(wall));
        let won = self
            .db
            .transaction(move |tx| {
                tx.execute(
                    "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE
                     SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE leases.holder = excluded.holder OR leases.expires_at < ?4",
                    params![name, &*holder, expires, now_text],
                )
            })
            .await;
        let was_held = held_until.is_some();
        match won {
            Ok(1) => {
                // Counted from before the request, and a quarter of the lease short of it: the
                // holder stops before the database's expiry, by a margin for clock skew between
                // replicas and for a round of work that outlasts the check before it.
                *held_until = Some(now + self.ttl - self.ttl / 4);
                if !was_held {
                    tracing::info!(lease = self.name, holder = %self.holder, "Lease taken.");
                }
                Ok(true)
            }
            Ok(_) => {
                if was_held {
                    tracing::warn!(lease = self.name, "Lease lost to another replica.");
                }
                *held_until = None;
                Ok(false)
            }
            Err(error) => {
                // Unknown: act as if lost until a renewal succeeds, but keep what time is left.
                if held_until.is_some_and(|until| until <= now) {
                    *held_until = None;
                }
                Err(error)
            }
        }
    }

    /// Gives the lease up (at shutdown), so that another replica need not wait for it to expire.
    pub async fn release(&self) -> Result<(), SqlError> {
        if self.sole {
            return Ok(());
        }
        let mut held_until = self.held_until.lock().await;
        if held_until.take().is_none() {
            return Ok(());
        }
        let (name, holder) = (self.name, Arc::clone(&self.holder));
        self.db
            .transaction(move |tx| {
                tx.execute(
                    "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                    params![name, &*holder],
                )
            })
            .await?;
        Ok(())
    }
}

/// This process: host name, process id and a random suffix (a restarted process with the same
/// pid is a new holder).
fn holder_id() -> String {
    // The host's name (a container's is its id), so that an operator can tell replicas apart.
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!(
        "{host}/{}/{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
