//! What the database tests share: a fresh database of either kind.

use platform::sql::{Access, Connection, DbTarget};

/// A fresh database for one test: a SQLite file in a temporary directory, or — when
/// `TEST_POSTGRES_URL` names a Postgres server's admin database — a new database on that
/// server, dropped with this value.
pub(crate) struct Scratch {
    _dir: tempfile::TempDir,
    pub(crate) target: DbTarget,
    /// The admin URL and the database's name, on Postgres.
    postgres: Option<(String, String)>,
}

impl Scratch {
    pub(crate) fn new(prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(admin) => {
                let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
                let (url, db) = (admin.clone(), name.clone());
                // The Postgres client blocks on a runtime of its own: not on a test's.
                let target =
                    std::thread::spawn(move || platform::sql::create_postgres_database(&url, &db))
                        .join()
                        .expect("the thread ends")
                        .expect("the database is created");
                Self {
                    _dir: dir,
                    target,
                    postgres: Some((admin, name)),
                }
            }
            Err(_) => Self {
                target: DbTarget::from(dir.path().join(format!("{prefix}.db"))),
                _dir: dir,
                postgres: None,
            },
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let admin = Connection::open(&DbTarget::Postgres(admin), Access::ReadWrite)?;
            admin
                .conn()
                .execute_batch(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        })
        .join();
    }
}
