//! How a service uses its database: the settings it reads from its command line and
//! environment.

use std::time::Duration;

/// How a service uses its database.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Database")]
pub struct DbSettings {
    /// Postgres: writer connections per process (and half as many readers). SQLite has one
    /// writer that commits in batches.
    #[arg(long = "db-pool-size", env = "DB_POOL_SIZE", default_value_t = 4, value_name = "N",
          value_parser = crate::config::at_least_one)]
    pub pool_size: usize,
    /// How long a write waits for a lock (SQLite's busy timeout, Postgres' `lock_timeout`)
    /// before failing; the failure is transient: handlers retry, then dead-letter.
    #[arg(long = "db-busy-timeout-ms", env = "DB_BUSY_TIMEOUT_MS", default_value = "5000",
          value_parser = crate::config::millis, value_name = "MS")]
    pub busy_timeout: Duration,
    /// SQLite: `full` syncs the WAL at every commit (one sync per group-committed batch), so
    /// acknowledged work survives a power loss; `normal` syncs only at checkpoints and when the
    /// WAL starts over — faster, durable against process crashes only; `off` never syncs — no
    /// commit waits for the disk, still durable against process crashes, but a power loss can
    /// leave the database corrupt. Default `full` (`off` under `shopctl up`, whose broker keeps
    /// nothing across runs).
    #[arg(
        long = "db-synchronous",
        env = "DB_SYNCHRONOUS",
        value_enum,
        ignore_case = true
    )]
    pub synchronous: Option<Synchronous>,
    /// SQLite: how often a thread beside the writer copies the WAL into the database file, so
    /// that SQLite's own checkpoint inside a commit finds little left and the writer does not
    /// stall; `0` leaves checkpoints to SQLite alone.
    #[arg(long = "db-checkpoint-ms", env = "DB_CHECKPOINT_MS", default_value = "20",
          value_parser = crate::config::millis, value_name = "MS")]
    pub checkpoint_interval: Duration,
    /// How long a replica holds a job only one replica may do (outbox relay, deadline reaper,
    /// callback delivery, payment recovery) without renewing it: the longest the others wait
    /// after it dies.
    #[arg(long = "lease-ttl-ms", env = "LEASE_TTL_MS", default_value = "5000",
          value_parser = crate::config::millis, value_name = "MS")]
    pub lease_ttl: Duration,
    /// What the database threads' names start with (`order` names them `order-db-write`,
    /// `order-db-read`, `order-db-ckpt`), so that `top -H`, `perf` and `shopctl bench` tell the
    /// services apart when they share a process; set by the service (see
    /// [`thread_prefix`](super::thread_prefix)).
    #[arg(skip)]
    pub thread_prefix: String,
    /// The service the database belongs to: the `service` label of its metrics; set by the
    /// service.
    #[arg(skip)]
    pub service: String,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            pool_size: 4,
            busy_timeout: Duration::from_secs(5),
            synchronous: None,
            checkpoint_interval: super::checkpoint::INTERVAL,
            lease_ttl: Duration::from_secs(5),
            thread_prefix: String::new(),
            service: String::new(),
        }
    }
}

/// When SQLite syncs its write-ahead log to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Synchronous {
    /// At every commit.
    #[default]
    Full,
    /// At checkpoints, and when the WAL starts over.
    Normal,
    /// Never: the writes are the operating system's to keep. Safe against a crash of the
    /// process, not of the machine: for data that can be thrown away.
    Off,
}

impl Synchronous {
    pub(super) fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }
}
