//! Versioned schema migrations: each runs once, in the order given, recorded by name in
//! `schema_migrations` in the same transaction as its changes.
//!
//! A migration is never edited once released: a later change to a table is a new migration
//! (`ALTER TABLE …`) appended after it, so a database of any earlier version is brought up to
//! date step by step, and one that is already up to date is left alone.

use crate::params;
use crate::sql::{Connection, Dialect, OptionalExtension, Result, translate_ddl};

/// One step of a schema.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Unique and stable: `<owner>/<table or topic>/<step>`, e.g. `order-api/orders/1`.
    pub name: &'static str,
    /// The SQL batch, in SQLite's words; Postgres runs it through [`translate_ddl`].
    pub sql: &'static str,
}

impl Migration {
    /// A migration named `name` running `sql`.
    pub const fn new(name: &'static str, sql: &'static str) -> Self {
        Self { name, sql }
    }

    /// The batch for `dialect`.
    pub fn sql_for(&self, dialect: Dialect) -> std::borrow::Cow<'static, str> {
        match dialect {
            Dialect::Sqlite => self.sql.into(),
            Dialect::Postgres => translate_ddl(self.sql).into(),
        }
    }
}

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
);
";

/// An arbitrary constant naming the Postgres advisory lock that replicas starting together take
/// while they migrate.
const MIGRATION_LOCK: i64 = 0x5a6a_0001;

/// Applies the migrations `conn` has not seen yet; returns how many ran.
///
/// Each runs in its own write transaction and checks again inside it, so two processes opening
/// the same database at once apply each migration once (Postgres replicas also take an advisory
/// lock for the whole run: concurrent `CREATE TABLE IF NOT EXISTS` can fail there).
pub(super) fn apply(conn: &Connection, migrations: &[Migration]) -> Result<usize> {
    let dialect = conn.dialect();
    let sql = conn.conn();
    if dialect == Dialect::Postgres {
        sql.query_row(
            "SELECT pg_advisory_lock(?1)::text",
            params![MIGRATION_LOCK],
            |_| Ok(()),
        )?;
    }
    let applied = apply_locked(conn, migrations);
    if dialect == Dialect::Postgres {
        sql.query_row(
            "SELECT pg_advisory_unlock(?1)::text",
            params![MIGRATION_LOCK],
            |_| Ok(()),
        )?;
    }
    applied
}

fn apply_locked(conn: &Connection, migrations: &[Migration]) -> Result<usize> {
    let sql = conn.conn();
    sql.execute_batch(TABLE)?;
    let mut applied = 0;
    for migration in migrations {
        conn.begin()?;
        let result = (|| {
            let done = sql
                .query_row(
                    "SELECT 1 FROM schema_migrations WHERE name = ?1",
                    params![migration.name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if done {
                return Ok(false);
            }
            sql.execute_batch(&migration.sql_for(conn.dialect()))?;
            sql.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                params![migration.name, sql.now()],
            )?;
            Ok(true)
        })();
        match result {
            Ok(true) => {
                conn.commit()?;
                tracing::info!(migration = migration.name, "Schema migration applied.");
                applied += 1;
            }
            Ok(false) => conn.rollback()?,
            Err(error) => {
                conn.rollback()?;
                return Err(error);
            }
        }
    }
    let known: Vec<&str> = migrations.iter().map(|migration| migration.name).collect();
    let recorded = sql.query_map(
        "SELECT name FROM schema_migrations ORDER BY name",
        &[],
        |row| row.get::<String>(0),
    )?;
    for name in recorded {
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
    use crate::sql::{Access, DbTarget};

    const FIRST: Migration = Migration::new(
        "test/things/1",
        "CREATE TABLE things (id INTEGER PRIMARY KEY);",
    );
    const SECOND: Migration = Migration::new(
        "test/things/2",
        "ALTER TABLE things ADD COLUMN label TEXT NOT NULL DEFAULT '';",
    );

    #[test]
    fn each_migration_runs_once_and_later_ones_extend_earlier_ones() -> Result<()> {
        let conn = memory()?;
        assert_eq!(apply(&conn, &[FIRST])?, 1);
        // Not idempotent SQL on purpose: running it twice would fail.
        assert_eq!(apply(&conn, &[FIRST])?, 0);
        assert_eq!(apply(&conn, &[FIRST, SECOND])?, 1);
        conn.conn()
            .execute("INSERT INTO things (id, label) VALUES (1, 'x')", &[])?;
        assert_eq!(apply(&conn, &[FIRST, SECOND])?, 0);
        Ok(())
    }

    fn memory() -> Result<Connection> {
        Connection::open(&DbTarget::parse(":memory:"), Access::ReadWrite)
    }

    #[test]
    fn a_failing_migration_leaves_no_trace() -> Result<()> {
        let conn = memory()?;
        let broken = Migration::new("test/broken/1", "CREATE TABLE ok (id INTEGER); NOT SQL;");
        assert!(apply(&conn, &[broken]).is_err());
        let tables: i64 = conn.conn().query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ok'",
            &[],
            |row| row.get(0),
        )?;
        assert_eq!(tables, 0, "rolled back with its record");
        assert_eq!(apply(&conn, &[FIRST])?, 1, "the next one still applies");
        Ok(())
    }
}
