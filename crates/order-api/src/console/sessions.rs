//! Operators' browser sessions, in the database: every replica of order-api knows a session
//! another one opened, and signing out ends it everywhere at once (a signed cookie alone could
//! not be taken back before it expires).
//!
//! The cookie holds a random token; the table holds only its SHA-256, so that a copy of the
//! database opens no session. Each session has its own CSRF token, which the console's pages
//! carry and every state-changing request must send back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, Result};

/// How long a session lasts from sign-in: one long night on call, not a week.
pub(crate) const LIFETIME: TimeDelta = TimeDelta::hours(12);

pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/console/1",
    "
CREATE TABLE IF NOT EXISTS console_sessions (
    -- SHA-256 of the cookie's token, hex.
    token_hash TEXT PRIMARY KEY,
    operator   TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
",
);

/// A session found from its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    /// Who signed in.
    pub(crate) operator: String,
    /// What state-changing requests must send in `X-CSRF-Token`.
    pub(crate) csrf_token: String,
    /// When it ends.
    pub(crate) expires_at: DateTime<Utc>,
}

/// A new session: the cookie's token, and the session it opens.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    /// The cookie's value (never stored).
    pub(crate) token: String,
    /// The session.
    pub(crate) session: Session,
}

/// 32 random bytes, base64url: a token nobody guesses.
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Opens a session for `operator`, and drops every expired one on the way.
pub(crate) fn open(conn: &Conn<'_>, operator: &str) -> Result<Opened> {
    let now = conn.now();
    conn.execute(
        "DELETE FROM console_sessions WHERE expires_at < ?1",
        params![now],
    )?;
    let token = random_token();
    let session = Session {
        operator: operator.to_owned(),
        csrf_token: random_token(),
        expires_at: now + LIFETIME,
    };
    conn.execute(
        "INSERT INTO console_sessions (token_hash, operator, csrf_token, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash(&token),
            session.operator,
            session.csrf_token,
            now,
            session.expires_at
        ],
    )?;
    Ok(Opened { token, session })
}

/// The live session the cookie `token` opens, if any.
pub(crate) fn find(conn: &Conn<'_>, token: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
    let mut found = conn.query_map(
        "SELECT operator, csrf_token, expires_at FROM console_sessions \
         WHERE token_hash = ?1 AND expires_at > ?2",
        params![hash(token), now],
        |row| {
            Ok(Session {
                operator: row.get(0)?,
                csrf_token: row.get(1)?,
                expires_at: row.get(2)?,
            })
        },
    )?;
    Ok(found.pop())
}

/// Ends the session of `token` (signing out); ending one that is gone changes nothing.
pub(crate) fn close(conn: &Conn<'_>, token: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM console_sessions WHERE token_hash = ?1",
        params![hash(token)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_with_its_token_only_until_it_is_closed() -> Result<()> {
        let (_scratch, db) = crate::testing::scratch();
        let conn = db.conn();
        let opened = open(&conn, "alice")?;
        let now = conn.now();
        let found = find(&conn, &opened.token, now)?.expect("the session opens");
        assert_eq!(found.operator, "alice");
        assert_eq!(found.csrf_token, opened.session.csrf_token);
        // Stored to the microsecond.
        let stored_end = (found.expires_at - opened.session.expires_at).abs();
        assert!(
            stored_end < chrono::TimeDelta::microseconds(1),
            "{stored_end}"
        );
        assert_ne!(opened.session.csrf_token, opened.token);
        assert_eq!(find(&conn, "someone-else's", now)?, None);
        // Past its end it opens nothing.
        assert_eq!(find(&conn, &opened.token, now + LIFETIME)?, None);
        close(&conn, &opened.token)?;
        assert_eq!(find(&conn, &opened.token, now)?, None);
        Ok(())
    }
}
