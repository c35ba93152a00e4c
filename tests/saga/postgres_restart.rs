//! The Postgres server restarted while orders arrive: every connection of every service dies,
//! and for a second there is no server to connect to at all.
//!
//! What it proves: order-api answers each order 202, or 503 problem+json with `Retry-After`
//! while it cannot reach its database; a client that retries under the same `Idempotency-Key`
//! loses nothing and makes no order twice; and once the server is back every service carries
//! on without a restart of its own: every order ends, with the books balanced.
//!
//! The restart is `scripts/test.sh`'s: it starts a throwaway server and, in a pass of its own
//! where no other test shares the server, sets `TEST_POSTGRES_RESTART`, a script that stops it
//! (`pg_ctl stop -m fast`), waits a second and starts it again. Without that script — in the
//! parallel Postgres pass, or on a server of the user's own (`TEST_POSTGRES_URL`) — the test
//! will not restart a server other tests are using: it ends every connection to the stack's own
//! databases instead (`pg_terminate_backend`) and says so. That is the lesser fault — the server
//! answers again at once — so only the restart pass shows a server gone.
//!
//! **Needs Postgres**: ignored by a plain `cargo test`, run by `scripts/test.sh` against a
//! Postgres server of its own; run by hand (`--ignored`) without `TEST_POSTGRES_URL` it fails,
//! saying so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use saga_tests::{ServiceKind, Stack};

use crate::invariants::settled;
use crate::load::Placer;

/// Orders placed: enough for the load to go on before, between and after the outages.
const ORDERS: usize = 36;

/// Outages during the load, each after another share of the orders has been answered.
const OUTAGES: usize = 2;

/// How long the run may take to settle after the last outage: the services' consumers retry
/// what failed meanwhile with their backoff, and their sweeps and relays run on their own
/// intervals.
const SETTLE: Duration = Duration::from_secs(60);

/// How the database goes away.
#[derive(Debug)]
enum Outage {
    /// A real restart, by `scripts/test.sh`'s script (`TEST_POSTGRES_RESTART`).
    Restart(PathBuf),
    /// Every connection to the stack's databases ended, on a server the test may not restart.
    Disconnect,
}

impl Outage {
    fn from_env() -> Self {
        match std::env::var_os("TEST_POSTGRES_RESTART").filter(|path| !path.is_empty()) {
            Some(script) => Self::Restart(script.into()),
            None => Self::Disconnect,
        }
    }

    /// Takes the database away once; returns when it is back.
    async fn cause(&self, stack: &Stack) -> Result<()> {
        match self {
            Self::Restart(script) => {
                let status = tokio::process::Command::new(script)
                    .status()
                    .await
                    .with_context(|| format!("running {}", script.display()))?;
                ensure!(status.success(), "{} failed: {status}", script.display());
            }
            Self::Disconnect => {
                for kind in [
                    ServiceKind::OrderApi,
                    ServiceKind::Payment,
                    ServiceKind::Inventory,
                ] {
                    stack.with_db(kind, |conn| {
                        let ended: i64 = conn.query_row(
                            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM \
                             pg_stat_activity WHERE datname = current_database() \
                             AND pid <> pg_backend_pid()) AS ended",
                            &[],
                            |row| row.get(0),
                        )?;
                        ensure!(ended > 0, "no connection of {kind:?} to end");
                        Ok(())
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[tokio::test]
#[ignore = "needs the Postgres server scripts/test.sh starts"]
async fn orders_placed_across_a_postgres_restart_are_each_accepted_once_and_all_end() -> Result<()>
{
    saga_tests::require_postgres()?;
    let outage = Outage::from_env();
    match &outage {
        Outage::Restart(script) => {
            eprintln!(
                "postgres_restart: restarting the server with {}",
                script.display()
            );
        }
        Outage::Disconnect => eprintln!(
            "postgres_restart: TEST_POSTGRES_RESTART is not set, so the server is not restarted; \
             every connection to the stack's databases is ended instead (pg_terminate_backend)"
        ),
    }
    let stack = Stack::start().await?;
    let placer = Placer::start_retrying(&stack, ORDERS);
    for outage_number in 1..=OUTAGES {
        placer
            .answered(ORDERS * outage_number / (OUTAGES + 1))
            .await?;
        let started = Instant::now();
        outage.cause(&stack).await?;
        eprintln!(
            "postgres_restart: outage {outage_number} over after {:?}",
            started.elapsed()
        );
    }
    let placed = placer.finish().await?;

    // Each order accepted exactly once: one id per order (and, below, no order in the
    // database that the client was not told about).
    placed.ensure_each_accepted_once(ORDERS)?;
    // After the invariants have settled: the test's own connections died in the outages too,
    // and `settled` polls past the failure of their first use.
    let report = settled(&stack, &placed.accepted, SETTLE).await?;
    let stored = stack.orders_of_user("usr_faults")?;
    if stored != ORDERS as i64 {
        bail!("order-api holds {stored} orders for {ORDERS} placed: a retry made a second one");
    }
    eprintln!(
        "postgres_restart: {ORDERS} orders accepted across {OUTAGES} outages, {} refusals retried\n{report}",
        placed.retried
    );
    Ok(())
}
