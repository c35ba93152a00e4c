//! Test harness for the end-to-end saga tests: builds the binaries, starts the embedded broker
//! and each service as its own OS process on free ports with fresh databases, and offers typed
//! views of what the product shows — an [`Order`] from order-api's API; [`Stock`], a
//! [`PaymentRecord`], a [`Reservation`] from the services' own records where no API shows them —
//! so that a test reads like the product's contract. Every wait polls with a deadline
//! ([`eventually`]), never sleeping a fixed time.
//!
//! The services keep their data in SQLite files in the stack's temporary directory by default.
//! To run the suite on Postgres instead, give an admin URL of a server (Postgres 15 or later):
//!
//! ```text
//! TEST_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres cargo test -p saga-tests
//! ```
//!
//! Every stack then creates three databases of its own on that server
//! (`saga_<random hex>_order_api`, `…_payment_svc`, `…_inventory_svc`), hands their URLs to the
//! services in `ORDER_API_DB`, `PAYMENT_SVC_DB` and `INVENTORY_SVC_DB`, and drops them when it
//! is dropped. `KEEP_TEST_DIR=1` keeps them (and the directory with the logs) for a look after
//! the run. The tests' own queries ([`Stack::with_db`]) are portable SQL and run on both.

mod audit;
mod browser;
mod db;
mod evidence;
mod kafka;
mod orders;
mod otlp;
mod problem;
mod process;
mod receiver;
mod records;
mod sse;
mod stack;
mod timeline;
mod up;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use audit::{SagaTime, StoredOrder};
pub use browser::{Browser, Cookie, Key, Page, SameSite};
pub use db::DbLock;
pub use kafka::{FoundMessage, KafkaTool, is_event};
pub use orders::{Accepted, Line, Order, Orders, Status, StatusUpdate, Transition};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use problem::Problem;
pub use process::{Service, ServiceKind};
pub use receiver::{Seen, receiver, secret_key, webhook_signature};
pub use records::{
    PaymentRecord, PaymentStatus, Refund, RefundStatus, Reservation, ReservationStatus, Stock,
    wait_for,
};
pub use sse::{SseEvent, read_sse};
pub use stack::Stack;
pub use test_support::{DEADLINE, eventually, eventually_within};
pub use timeline::{Timeline, TimelineEvent};
pub use up::ShopUp;

/// The sum of the Prometheus samples of `name` in `metrics` whose labels include every one of
/// `labels` (each written `key="value"`).
pub fn metric_total(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The repository root (for fixtures such as the catalog).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where tests leave files for people to look at after the run, such as the browser's
/// screenshots: `$TEST_ARTIFACTS_DIR` if set, else `test-artifacts/` in the target directory
/// this test binary was built in (`target/` unless `CARGO_TARGET_DIR` says otherwise). Unlike
/// a test's temporary directory it is kept, passed or failed.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEST_ARTIFACTS_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<this test> → target
    let target = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        Some(deps.parent()?.parent()?.to_owned())
    });
    target
        .unwrap_or_else(|| repo_root().join("target"))
        .join("test-artifacts")
}

/// The path of a workspace binary (`shopctl`, `order-api`, …), built first with this test
/// binary's profile if this run has not built them yet: for tests that start a program
/// themselves instead of through a [`Stack`], such as `shopctl up`.
pub fn binary(name: &str) -> Result<PathBuf> {
    Ok(process::binaries()?.path(name))
}

/// The Postgres admin URL in `TEST_POSTGRES_URL`, or an error saying how to get one: for the
/// tests that mean nothing without Postgres. They are `#[ignore]`d, and `scripts/test.sh` runs
/// them against a Postgres server of its own; run by hand without one, they fail rather than
/// pass without checking anything.
pub fn require_postgres() -> Result<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .context(
            "this test needs Postgres: set TEST_POSTGRES_URL to a server's admin database \
             (e.g. postgres://postgres:…@127.0.0.1:5432/postgres), or run scripts/test.sh, \
             which starts a throwaway server and runs it",
        )
}
