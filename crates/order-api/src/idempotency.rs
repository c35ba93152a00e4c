//! Idempotent `POST /api/orders`: a client that retries a request whose answer it never got
//! (timeout, dropped connection) sends the same `Idempotency-Key`, and gets the original answer
//! instead of a second order.
//!
//! The key, the request it came with and the order it created are stored in the same
//! transaction as the order, so two concurrent requests with one key cannot both create an
//! order — not even on two replicas sharing a Postgres database: the key is claimed with an
//! insert that does nothing if the key is taken, and Postgres makes that insert wait for a
//! concurrent transaction holding the same key to end, then reads what it stored. A key is
//! remembered for a configurable window; the same key with a different body is refused,
//! because answering it with the first order would hide a client bug.
//!
//! One deviation from draft-ietf-httpapi-idempotency-key-header, section 2.6 ("Error
//! Scenarios"), which answers `409` to a duplicate arriving while the first request is still
//! processed: here no such moment is visible. The key and the order are committed together, so
//! a duplicate waits for the first's transaction and is answered with its order, like a retry
//! (documented in `docs/http-api.md` and `schemas/openapi.yaml`).

use chrono::{DateTime, Utc};

use events::OrderId;
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, ErrorKind, OptionalExtension, Result, Row, SqlError};

pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/idempotency/1",
    "
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    request     TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
",
);

/// The index the purge of expired keys walks (without it, each purge would scan the table).
pub(crate) const EXPIRY_MIGRATION: Migration = Migration::new(
    "order-api/idempotency/2",
    "CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at ON idempotency_keys (expires_at);",
);

/// How often expired keys are deleted.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Keys deleted per statement, so that one purge never holds the writer for long.
const PURGE_BATCH: i64 = 1_000;

/// Deletes expired keys every minute until `shutdown`. A key is forgotten anyway when it is
/// reused after its expiry; this keeps the table from growing with every key never reused.
/// Every replica may run it: deleting rows that are already gone changes nothing.
pub(crate) async fn run_purge(db: platform::Db, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
        match purge_expired(&db, platform::time::now()).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "Expired idempotency keys deleted."),
            Err(error) => tracing::warn!(%error, "Could not delete expired idempotency keys."),
        }
    }
}

/// Deletes the keys expired by `now`, a batch per transaction; returns how many.
pub(crate) async fn purge_expired(db: &platform::Db, now: DateTime<Utc>) -> Result<usize> {
    let mut total = 0;
    loop {
        let deleted = db
            .transaction(move |tx| {
                tx.execute(
                    "DELETE FROM idempotency_keys WHERE key IN
                       (SELECT key FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
                    params![now, PURGE_BATCH],
                )
            })
            .await?;
        total += deleted;
        if i64::try_from(deleted).unwrap_or(i64::MAX) < PURGE_BATCH {
            return Ok(total);
        }
    }
}

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";

/// A validated `Idempotency-Key`: 1 to 255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdempotencyKey(String);

/// Longest key accepted, in characters (after unquoting).
const MAX_KEY_LEN: usize = 255;

impl IdempotencyKey {
    /// Parses the header value; `Err` says what is wrong. Keys are per principal: two clients
    /// choosing the same key do not see each other's orders.
    ///
    /// The value is a Structured Field String (draft-ietf-httpapi-idempotency-key-header,
    /// section 2.1 "Syntax"; RFC 8941, section 3.3.3): `"8e03978e-…"`, quoted, with `\"` and
    /// `\\` escapes. A bare value of visible characters (`8e03978e-…`) is accepted too, as the
    /// clients written before this form send it; `"k1"` and `k1` are the same key.
    pub(crate) fn parse(principal: &str, value: &[u8]) -> Result<Self, String> {
        let key = match value.first() {
            Some(b'"') => unquote(value)?,
            _ if value.iter().all(|b| (0x21..=0x7e).contains(b)) => value.to_vec(),
            _ => return Err(Self::RULE.into()),
        };
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(Self::RULE.into());
        }
        Ok(Self(format!(
            "{principal}:{}",
            String::from_utf8_lossy(&key)
        )))
    }

    const RULE: &str = "Idempotency-Key must be a quoted string of 1 to 255 printable ASCII characters, such as \"8e03978e-40d5-43e8-bc93-6894a57f9324\" (a UUID is a good choice).";
}

/// The content of an sf-string (RFC 8941, section 4.2.5): `"` … `"`, printable ASCII, `\` only
/// before `"` or `\`. Parameters after it (`"k";p=1`) are refused: the draft defines none.
fn unquote(value: &[u8]) -> Result<Vec<u8>, String> {
    let mut key = Vec::with_capacity(value.len());
    let mut bytes = value.iter().skip(1);
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\\' => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => key.push(escaped),
                _ => return Err(IdempotencyKey::RULE.into()),
            },
            b'"' if bytes.next().is_none() => return Ok(key),
            0x20..=0x7e if byte != b'"' => key.push(byte),
            _ => return Err(IdempotencyKey::RULE.into()),
        }
    }
    Err(IdempotencyKey::RULE.into())
}

/// What a key says about a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Prior {
    /// Not seen (or expired): the key is now this request's; handle it.
    New,
    /// Seen with the same request: answer with this order.
    Replay(OrderId),
    /// Seen with a different request.
    Conflict,
}

/// The key's expiry and the new order's id, for [`claim`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claim {
    /// The order the request creates if the key is new.
    pub(crate) order_id: OrderId,
    /// The time of the claiming transaction: keys that expired by then are forgotten first.
    pub(crate) now: DateTime<Utc>,
    /// Until when a new key is remembered.
    pub(crate) expires_at: DateTime<Utc>,
}

/// What a key was stored with: the request's canonical JSON and the order it created.
#[derive(Debug)]
struct StoredKey {
    request: String,
    order_id: OrderId,
}

impl StoredKey {
    /// Reads a row of `idempotency_keys` selected as `request, order_id`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            request: row.get(0)?,
            order_id: row.get(1)?,
        })
    }
}

/// Claims `key` for `request` (its canonical JSON) and the order it is about to create, or says
/// what the key was used for before. A key that expired is forgotten first.
///
/// The key is inserted without a prior look, and a key already there makes the insert do
/// nothing rather than fail, so the transaction stays usable (Postgres refuses every statement
/// after a failed one). If another transaction holds the key uncommitted, the insert waits for
/// it; the following read then sees its row.
pub(crate) fn claim(
    tx: &Conn<'_>,
    key: &IdempotencyKey,
    request: &str,
    claim: Claim,
) -> Result<Prior> {
    tx.execute(
        "DELETE FROM idempotency_keys WHERE key = ?1 AND expires_at <= ?2",
        params![key.0, claim.now],
    )?;
    let inserted = tx.execute(
        "INSERT INTO idempotency_keys (key, request, order_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key) DO NOTHING",
        params![key.0, request, claim.order_id, claim.now, claim.expires_at],
    )?;
    if inserted == 1 {
        return Ok(Prior::New);
    }
    let stored = tx
        .query_row(
            "SELECT request, order_id FROM idempotency_keys WHERE key = ?1",
            params![key.0],
            StoredKey::from_row,
        )
        .optional()?;
    match stored {
        Some(stored) if stored.request == request => Ok(Prior::Replay(stored.order_id)),
        Some(_) => Ok(Prior::Conflict),
        // Taken a moment ago and gone already (forgotten by a concurrent request that found it
        // expired): the client's retry will find the key in a settled state.
        None => Err(SqlError::new(
            ErrorKind::Transient,
            "the idempotency key changed hands during the request",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_structured_field_strings_or_bare_tokens() {
        let key = |value: &str| IdempotencyKey::parse("alice", value.as_bytes());
        let uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324";
        assert_eq!(
            key(&format!("\"{uuid}\"")),
            key(uuid),
            "quoted and bare: one key"
        );
        assert_eq!(
            key(r#""a \"b\" \\c""#),
            Ok(IdempotencyKey(r#"alice:a "b" \c"#.into()))
        );
        assert!(key(&format!("\"{}\"", "k".repeat(255))).is_ok());
        for refused in [
            "\"unterminated",
            "\"\"",
            "\"k\";param=1",
            "\"k\" trailing",
            r#""bad \escape""#,
            "\"tab\there\"",
            &format!("\"{}\"", "k".repeat(256)),
        ] {
            assert!(key(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("alice", b"0b6f7a52-8a3f-4c2e-9d41-1c0f8e6b2a77").is_ok());
        assert!(IdempotencyKey::parse("alice", b"").is_err());
        assert!(IdempotencyKey::parse("alice", b"has space").is_err());
        assert!(IdempotencyKey::parse("alice", &[b'k'; 256]).is_err());
        assert_ne!(
            IdempotencyKey::parse("alice", b"k1"),
            IdempotencyKey::parse("bob", b"k1")
        );
    }

    #[test]
    fn same_request_replays_other_request_conflicts_expired_is_new() -> Result<()> {
        let (_scratch, db) = crate::testing::scratch();
        let conn = db.conn();
        let key = IdempotencyKey("k1".into());
        let (first, second) = (OrderId::new(), OrderId::new());
        let time = |text: &str| platform::time::parse(text).expect("a valid time");
        // Keys claimed on the first day are remembered for that day.
        let at = |order_id, now: &str| {
            let now = time(now);
            Claim {
                order_id,
                now,
                expires_at: if now < time("2026-01-02T00:00:00Z") {
                    time("2026-01-02T00:00:00Z")
                } else {
                    time("2026-01-04T00:00:00Z")
                },
            }
        };
        assert_eq!(
            claim(&conn, &key, "{a}", at(first, "2026-01-01T00:00:00Z"))?,
            Prior::New
        );
        assert_eq!(
            claim(&conn, &key, "{a}", at(second, "2026-01-01T01:00:00Z"))?,
            Prior::Replay(first)
        );
        assert_eq!(
            claim(&conn, &key, "{b}", at(second, "2026-01-01T01:00:00Z"))?,
            Prior::Conflict
        );
        assert_eq!(
            claim(&conn, &key, "{b}", at(second, "2026-01-03T00:00:00Z"))?,
            Prior::New
        );
        assert_eq!(
            claim(&conn, &key, "{b}", at(first, "2026-01-03T00:00:01Z"))?,
            Prior::Replay(second),
            "the expired key was taken over by the new request"
        );
        Ok(())
    }

    /// Expired keys are deleted in batches; keys still valid stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_keys_are_purged_and_live_ones_kept() {
        let (_dir, _target, db) = crate::testing::fresh_db();
        let expired = usize::try_from(PURGE_BATCH).expect("small") + 5;
        db.transaction(move |tx| {
            for n in 0..expired + 3 {
                let expires_at = if n < expired {
                    "2026-01-01T00:00:00.000000Z"
                } else {
                    "2026-01-03T00:00:00.000000Z"
                };
                tx.execute(
                    "INSERT INTO idempotency_keys (key, request, order_id, created_at, expires_at)
                     VALUES (?1, '{}', ?2, '2025-12-31T00:00:00.000000Z', ?3)",
                    params![format!("alice:k{n}"), OrderId::new(), expires_at],
                )?;
            }
            Ok::<_, SqlError>(())
        })
        .await
        .expect("the keys are stored");
        let now = platform::time::parse("2026-01-02T00:00:00Z").expect("a valid time");
        let purged = purge_expired(&db, now).await.expect("the purge runs");
        assert_eq!(purged, expired);
        let left: i64 = db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM idempotency_keys", &[], |row| {
                    row.get(0)
                })
            })
            .await
            .expect("the count");
        assert_eq!(left, 3);
    }

    /// Retries of one request reaching two replicas at once make one order: every other
    /// attempt is answered with it, and none fails on the taken key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_retries_on_two_replicas_claim_the_key_once() {
        let (_dir, target, first) = crate::testing::fresh_db();
        let second = platform::Db::open(&target, crate::app::MIGRATIONS).expect("a second replica");
        let tasks: Vec<_> = (0..12)
            .map(|n| {
                let db = if n % 2 == 0 { &first } else { &second }.clone();
                let order_id = OrderId::new();
                tokio::spawn(async move {
                    let prior = db
                        .transaction(move |tx| {
                            let key = IdempotencyKey("alice:k1".into());
                            let claim = Claim {
                                order_id,
                                now: tx.now(),
                                expires_at: tx.now() + chrono::TimeDelta::days(1),
                            };
                            super::claim(tx, &key, "{a}", claim)
                        })
                        .await;
                    (order_id, prior)
                })
            })
            .collect();
        let mut created = Vec::new();
        let mut replayed = Vec::new();
        for task in tasks {
            match task.await.expect("the task ends") {
                (order_id, Ok(Prior::New)) => created.push(order_id),
                (_, Ok(Prior::Replay(original))) => replayed.push(original),
                (_, other) => panic!("unexpected answer {other:?}"),
            }
        }
        assert_eq!(created.len(), 1, "one request made the order");
        assert!(replayed.iter().all(|original| *original == created[0]));
    }
}
