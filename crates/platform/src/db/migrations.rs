//! Versioned schema migrations: each runs once, in the order given, recorded by name in
//! `schema_migrations` in the same transaction as its changes.
//!
//! A migration is never edited once released: a later change to a table is a new migration
//! (`ALTER TABLE …`) appended after it, so a database of any earlier version is brought up to
//! date step by step, and one that is already up to date is left alone.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::db::now_text;

/// One step of a schema.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Unique and stable: `<owner>/<table or topic>/<step>`, e.g. `order-api/orders/1`.
    pub name: &'static str,
    /// The SQL batch.
    pub sql: &'static str,
}

impl Migration {
    /// A migration named `name` running `sql`.
    pub const fn new(name: &'static str, sql: &'static str) -> Self {
        Self { name, sql }
    }
}

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
);
";

/// Applies the migrations `conn` has not seen yet; returns how many ran.
///
/// Each runs in its own write transaction and checks again inside it, so two processes opening
/// the same file at once apply each migration once.
pub(super) fn apply(conn: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<usize> {
    conn.execute_batch(TABLE)?;
    let mut applied = 0;
    for migration in migrations {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done = tx
            .query_row(
                "SELECT 1 FROM schema_migrations WHERE name = ?1",
                params![migration.name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if done {
            continue;
        }
        tx.execute_batch(migration.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
            params![migration.name, now_text()],
        )?;
        tx.commit()?;
        tracing::info!(migration = migration.name, "Schema migration applied.");
        applied += 1;
    }
    let known: Vec<&str> = migrations.iter().map(|migration| migration.name).collect();
    let mut stmt = conn.prepare("SELECT name FROM schema_migrations ORDER BY name")?;
    let recorded = stmt.query_map([], |row| row.get::<_, String>(0))?;
    for name in recorded {
        let name = name?;
        if !known.contains(&name.as_str()) {
            tracing::warn!(
                migration = %name,
                "The database has a migration this version does not know (written by a newer version?)."
            );
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Migration = Migration::new(
        "test/things/1",
        "CREATE TABLE things (id INTEGER PRIMARY KEY);",
    );
    const SECOND: Migration = Migration::new(
        "test/things/2",
        "ALTER TABLE things ADD COLUMN label TEXT NOT NULL DEFAULT '';",
    );

    #[test]
    fn each_migration_runs_once_and_later_ones_extend_earlier_ones() -> rusqlite::Result<()> {
        let mut conn = Connection::open_in_memory()?;
        assert_eq!(apply(&mut conn, &[FIRST])?, 1);
        // Not idempotent SQL on purpose: running it twice would fail.
        assert_eq!(apply(&mut conn, &[FIRST])?, 0);
        assert_eq!(apply(&mut conn, &[FIRST, SECOND])?, 1);
        conn.execute("INSERT INTO things (label) VALUES ('x')", [])?;
        assert_eq!(apply(&mut conn, &[FIRST, SECOND])?, 0);
        Ok(())
    }

    #[test]
    fn a_failing_migration_leaves_no_trace() -> rusqlite::Result<()> {
        let mut conn = Connection::open_in_memory()?;
        let broken = Migration::new("test/broken/1", "CREATE TABLE ok (id INTEGER); NOT SQL;");
        assert!(apply(&mut conn, &[broken]).is_err());
        let tables: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ok'",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(tables, 0, "rolled back with its record");
        assert_eq!(apply(&mut conn, &[FIRST])?, 1, "the next one still applies");
        Ok(())
    }
}
