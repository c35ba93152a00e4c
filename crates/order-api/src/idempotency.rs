//! Idempotent `POST /api/orders`: a client that retries a request whose answer it never got
//! (timeout, dropped connection) sends the same `Idempotency-Key`, and gets the original answer
//! instead of a second order.
//!
//! The key, the request it came with and the order it created are stored in the same
//! transaction as the order, so two concurrent requests with one key cannot both create an
//! order. A key is remembered for a configurable window; the same key with a different body is
//! refused, because answering it with the first order would hide a client bug.

use rusqlite::{OptionalExtension, Transaction, params};

use events::OrderId;
use platform::db::Migration;

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

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";

/// A validated `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses the header value; `Err` says what is wrong. Keys are per principal: two clients
    /// choosing the same key do not see each other's orders.
    pub(crate) fn parse(principal: &str, value: &[u8]) -> Result<Self, String> {
        let visible = value.iter().all(|b| (0x21..=0x7e).contains(b));
        if value.is_empty() || value.len() > 255 || !visible {
            return Err("Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice).".into());
        }
        Ok(Self(format!(
            "{principal}:{}",
            String::from_utf8_lossy(value)
        )))
    }
}

/// What a key says about a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Prior {
    /// Not seen (or expired): handle the request.
    New,
    /// Seen with the same request: answer with this order.
    Replay(OrderId),
    /// Seen with a different request.
    Conflict,
}

/// Looks `key` up for `request` (its canonical JSON), forgetting it first if it expired.
pub(crate) fn check(
    tx: &Transaction<'_>,
    key: &IdempotencyKey,
    request: &str,
    now: &str,
) -> rusqlite::Result<Prior> {
    tx.prepare_cached("DELETE FROM idempotency_keys WHERE key = ?1 AND expires_at <= ?2")?
        .execute(params![key.0, now])?;
    let stored: Option<(String, String)> = tx
        .query_row(
            "SELECT request, order_id FROM idempotency_keys WHERE key = ?1",
            params![key.0],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(match stored {
        None => Prior::New,
        Some((stored, order_id)) if stored == request => {
            order_id.parse().map_or(Prior::Conflict, Prior::Replay)
        }
        Some(_) => Prior::Conflict,
    })
}

/// Remembers that `key` with `request` created `order_id`, until `expires_at`.
pub(crate) fn remember(
    tx: &Transaction<'_>,
    key: &IdempotencyKey,
    request: &str,
    order_id: OrderId,
    now: &str,
    expires_at: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO idempotency_keys (key, request, order_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(
        params![key.0, request, order_id.to_string(), now, expires_at],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn same_request_replays_other_request_conflicts_expired_is_new() -> rusqlite::Result<()> {
        let mut conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch(MIGRATION.sql)?;
        let tx = conn.transaction()?;
        let key = IdempotencyKey("k1".into());
        let order = OrderId::new();
        assert_eq!(check(&tx, &key, "{a}", "2026-01-01T00:00:00Z")?, Prior::New);
        remember(
            &tx,
            &key,
            "{a}",
            order,
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
        )?;
        assert_eq!(
            check(&tx, &key, "{a}", "2026-01-01T01:00:00Z")?,
            Prior::Replay(order)
        );
        assert_eq!(
            check(&tx, &key, "{b}", "2026-01-01T01:00:00Z")?,
            Prior::Conflict
        );
        assert_eq!(check(&tx, &key, "{b}", "2026-01-03T00:00:00Z")?, Prior::New);
        Ok(())
    }
}
