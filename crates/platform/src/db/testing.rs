//! What the services' handler tests read back from a [`Db`] (with the `test-util` feature).

use events::EventKind;

use super::Db;

/// The single number `sql` selects (a `COUNT(*)`, say).
///
/// # Panics
/// When the query fails: a test's mistake.
pub async fn count(db: &Db, sql: &'static str) -> i64 {
    db.read(move |conn| conn.query_row(sql, &[], |row| row.get::<i64>(0)))
        .await
        .expect("the count")
}

/// Events of `kind` waiting in the outbox.
///
/// # Panics
/// When the query fails: a test's mistake.
pub async fn events_of(db: &Db, kind: EventKind) -> i64 {
    let name = kind.type_name();
    db.read(move |conn| {
        conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE event_type = ?1",
            &[name],
            |row| row.get::<i64>(0),
        )
    })
    .await
    .expect("the count")
}
