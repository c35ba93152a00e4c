//! What the database threads tell Prometheus: how long work waits for them, and how many
//! transactions each commit carries.
//!
//! A service's writes go through one thread (SQLite) or a few connections (Postgres): the wait
//! for them is where a saturated database shows first, long before a query is slow. A
//! request's jobs and background jobs are counted apart, as they are queued apart (see
//! [`super::queue`]).

use std::sync::Arc;
use std::time::Instant;

use metrics::SharedString;

/// Time from a database job being queued to its start {service, connection, priority}.
pub const CONNECTION_WAIT: &str = "db_client_connection_wait_time_seconds";
/// Transactions committed together by one commit {service}.
pub const COMMIT_TRANSACTIONS: &str = "db_commit_transactions";

/// The buckets of [`COMMIT_TRANSACTIONS`]: up to the writer's largest batch.
pub(crate) const COMMIT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Which connections a job waited for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Connection {
    Write,
    Read,
}

/// The labels of one database's series. The handles are not kept: a histogram idle for a while
/// leaves the exposition (see `crate::metrics`), and a kept handle would go on recording into
/// the series it left.
#[derive(Clone, Debug)]
pub(super) struct DbMetrics {
    service: Arc<str>,
}

impl DbMetrics {
    /// The series of `service`'s database.
    pub(super) fn new(service: &str) -> Self {
        Self {
            service: service.into(),
        }
    }

    fn service(&self) -> SharedString {
        SharedString::from_shared(Arc::clone(&self.service))
    }

    /// Counts a job queued at `queued` for a `connection`, starting now.
    pub(super) fn started(&self, connection: Connection, interactive: bool, queued: Instant) {
        let connection = match connection {
            Connection::Write => "write",
            Connection::Read => "read",
        };
        let priority = if interactive {
            "interactive"
        } else {
            "background"
        };
        metrics::histogram!(
            CONNECTION_WAIT,
            "service" => self.service(),
            "connection" => connection,
            "priority" => priority,
        )
        .record(queued.elapsed().as_secs_f64());
    }

    /// Counts a commit of `transactions` transactions.
    pub(super) fn committed(&self, transactions: usize) {
        // Exact: a batch holds at most 256 transactions.
        let transactions = transactions as f64;
        metrics::histogram!(COMMIT_TRANSACTIONS, "service" => self.service()).record(transactions);
    }
}

#[cfg(test)]
mod tests {
    use crate::db::{Db, DbSettings, Migration, interactive};
    use crate::sql::{ScratchDb, SqlError};

    const TABLE: Migration = Migration::new(
        "stats-test/1",
        "CREATE TABLE IF NOT EXISTS notes (note TEXT PRIMARY KEY);",
    );

    /// The value of the series `name{labels}` in a scrape, or `None` if it is not there.
    fn sample(scrape: &str, name: &str, labels: &str) -> Option<f64> {
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}{{{labels}}} ")))
            .and_then(|value| value.parse().ok())
    }

    #[tokio::test]
    async fn waits_are_counted_by_connection_and_priority_and_commits_by_size() {
        crate::metrics::install();
        let scratch = ScratchDb::new("stats");
        let settings = DbSettings {
            service: "stats-test".to_owned(),
            ..DbSettings::default()
        };
        let db = Db::open_with(scratch.target(), &settings, &[TABLE]).expect("the database opens");
        let insert = |note: &'static str| {
            let db = db.clone();
            async move {
                db.transaction(move |tx| {
                    tx.execute("INSERT INTO notes (note) VALUES (?1)", crate::params![note])
                })
                .await
                .expect("the insert commits")
            }
        };
        insert("background").await;
        interactive(insert("interactive 1")).await;
        interactive(insert("interactive 2")).await;
        let notes: Result<i64, SqlError> = db
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM notes", &[], |row| row.get(0)))
            .await;
        assert_eq!(notes.expect("the count"), 3);

        let scrape = crate::metrics::render();
        let waits = |connection: &str, priority: &str| {
            sample(
                &scrape,
                "db_client_connection_wait_time_seconds_count",
                &format!(
                    "service=\"stats-test\",connection=\"{connection}\",priority=\"{priority}\""
                ),
            )
        };
        assert_eq!(waits("write", "background"), Some(1.0), "{scrape}");
        assert_eq!(waits("write", "interactive"), Some(2.0), "{scrape}");
        assert_eq!(waits("read", "background"), Some(1.0), "{scrape}");
        // One at a time, each transaction was a commit of its own; on Postgres too.
        let ones = sample(
            &scrape,
            "db_commit_transactions_bucket",
            "service=\"stats-test\",le=\"1\"",
        );
        let commits = sample(
            &scrape,
            "db_commit_transactions_count",
            "service=\"stats-test\"",
        );
        assert_eq!((ones, commits), (Some(3.0), Some(3.0)), "{scrape}");
    }
}
