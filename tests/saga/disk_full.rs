//! A service's disk full for a few seconds while orders arrive: every write it makes to a file
//! fails, its SQLite database's included.
//!
//! What it proves: order-api answers each order 202, or 503 problem+json with `Retry-After`
//! while it cannot write (never 500), and a client retrying under the same `Idempotency-Key`
//! loses nothing; a worker that cannot write retries the message it holds without moving its
//! offset past it and dead-letters nothing; once writes work again every order ends with the
//! books balanced — in the same process, which neither crashed nor was restarted.
//!
//! The fault is the process's file-size limit (`RLIMIT_FSIZE`) dropped to 0 from outside with
//! `prlimit`: every write to a regular file then fails with `EFBIG`, as on a full disk, and the
//! kernel sends SIGXFSZ, which the services catch (`platform::shutdown`) rather than die of.
//! Only the soft limit is dropped: an unprivileged process may lower a hard limit but not raise
//! it again. On Postgres the database is another process that the limit does not reach, so
//! the test says so and checks nothing there.

use std::time::Duration;

use anyhow::{Context, Result, ensure};

use saga_tests::{ServiceKind, Stack, Status, metric_total};

use crate::invariants::settled;
use crate::load::Placer;

/// Orders placed: enough for the load to go on before, during and after the fault.
const ORDERS: usize = 30;

/// How long the disk stays full: longer than the consumers' retries with their default
/// backoff (about 1.5 s over 6 attempts), so that a worker giving up would show.
const FULL_FOR: Duration = Duration::from_secs(4);

/// How long the run may take to settle once writes work again: the consumers retry with a
/// backoff of up to 2 s, and the sweeps and relays run on their own intervals.
const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn order_api_refuses_orders_while_its_disk_is_full_and_loses_none() -> Result<()> {
    if on_postgres() {
        return Ok(());
    }
    let stack = Stack::start().await?;
    let pid = pid_of(&stack, ServiceKind::OrderApi)?;
    let placer = Placer::start_retrying(&stack, ORDERS);
    placer.answered(ORDERS / 3).await?;

    fill_disk(&stack, ServiceKind::OrderApi).await?;
    let placed = placer.finish().await?;

    ensure!(
        placed.retried > 0,
        "order-api refused no order while it could not write"
    );
    placed.ensure_each_accepted_once(ORDERS)?;
    let report = settled(&stack, &placed.accepted, SETTLE).await?;
    let stored = stack.orders_of_user("usr_faults")?;
    ensure!(
        stored == ORDERS as i64,
        "order-api holds {stored} orders for {ORDERS} placed: a retry made a second one"
    );
    still_running(&stack, ServiceKind::OrderApi, pid).await?;
    eprintln!(
        "disk_full (order-api): {ORDERS} orders accepted, {} refusals retried\n{report}",
        placed.retried
    );
    Ok(())
}

#[tokio::test]
async fn inventory_svc_waits_out_a_full_disk_and_every_order_ends() -> Result<()> {
    if on_postgres() {
        return Ok(());
    }
    let stack = Stack::start().await?;
    let pid = pid_of(&stack, ServiceKind::Inventory)?;
    let placer = Placer::start_retrying(&stack, ORDERS);
    placer.answered(ORDERS / 3).await?;

    limit_file_size(pid, "0")?;
    let held = async {
        // An order paid for while inventory-svc cannot write waits for its stock meanwhile.
        let order_id = stack.place_order("GIZMO-9", 1, "pm_visa_4242").await?;
        stack
            .wait_order(&order_id, |o| o.status == Status::PaymentConfirmed)
            .await?;
        tokio::time::sleep(FULL_FOR).await;
        let order = stack.order(&order_id).await?;
        ensure!(
            order.status == Status::PaymentConfirmed,
            "an order paid for while inventory-svc could not write is {}",
            order.status.as_str()
        );
        Ok(order_id)
    }
    .await;
    // Lifted whatever happened, so that a failure leaves no process unable to write.
    limit_file_size(pid, "unlimited")?;
    let paid_meanwhile = held?;

    let mut placed = placer.finish().await?;
    placed.accepted.push(paid_meanwhile);
    let report = settled(&stack, &placed.accepted, SETTLE).await?;
    still_running(&stack, ServiceKind::Inventory, pid).await?;
    let metrics = stack
        .metrics(stack.instance(ServiceKind::Inventory, 1)?)
        .await?;
    let dead = metric_total(
        &metrics,
        "messaging_events_consumed_total",
        &["outcome=\"dead_lettered\""],
    );
    ensure!(
        dead == 0.0,
        "inventory-svc dead-lettered {dead} event(s) while it could not write"
    );
    eprintln!(
        "disk_full (inventory-svc): {} orders accepted\n{report}",
        placed.accepted.len()
    );
    Ok(())
}

/// Whether the stack runs on Postgres (`TEST_POSTGRES_URL`), where the fault cannot reach the
/// database; says so.
fn on_postgres() -> bool {
    let postgres = std::env::var("TEST_POSTGRES_URL").is_ok_and(|url| !url.trim().is_empty());
    if postgres {
        eprintln!(
            "disk_full: on Postgres the database server is not the service's process, so a \
             file-size limit on the service cannot fill its disk; nothing checked"
        );
    }
    postgres
}

/// The pid of `kind`'s running process.
fn pid_of(stack: &Stack, kind: ServiceKind) -> Result<u32> {
    stack
        .instance(kind, 1)?
        .pid()
        .with_context(|| format!("{kind:?} is not running"))
}

/// Fills `kind`'s disk for [`FULL_FOR`], then frees it.
async fn fill_disk(stack: &Stack, kind: ServiceKind) -> Result<()> {
    let pid = pid_of(stack, kind)?;
    limit_file_size(pid, "0")?;
    tokio::time::sleep(FULL_FOR).await;
    limit_file_size(pid, "unlimited")
}

/// Sets the soft file-size limit of process `pid` to `soft` bytes (`unlimited` lifts it),
/// leaving the hard limit unlimited.
fn limit_file_size(pid: u32, soft: &str) -> Result<()> {
    let output = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={soft}:unlimited"))
        .output()
        .context("running prlimit (util-linux)")?;
    ensure!(
        output.status.success(),
        "prlimit --pid={pid} --fsize={soft}:unlimited failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Fails unless `kind` is still process `pid`, alive (not a zombie: the harness reaps no
/// child that died on its own) and serving.
async fn still_running(stack: &Stack, kind: ServiceKind, pid: u32) -> Result<()> {
    let service = stack.instance(kind, 1)?;
    ensure!(
        service.pid() == Some(pid) && service.starts() == 1,
        "{kind:?} was restarted"
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("{kind:?} ({pid}) is gone"))?;
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    ensure!(state != Some(Some('Z')), "{kind:?} ({pid}) died");
    stack
        .metrics(service)
        .await
        .with_context(|| format!("{kind:?} ({pid}) does not answer"))?;
    Ok(())
}
