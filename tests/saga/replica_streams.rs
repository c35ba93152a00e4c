//! Event streams and waiting requests follow an order whichever order-api replica moves it.
//!
//! A client's `GET /api/orders/{id}/events` or `?wait=` may reach one order-api replica while
//! the order's events are handled by another (its partitions are the other's). Each replica
//! wakes its own streams when it commits a change; the changes other replicas commit reach it
//! as Postgres notifications (`platform::db::notify`). Here every order is followed on both
//! replicas at once, so whichever replica moves it, one of the two follows a change it did not
//! make.
//!
//! **Needs Postgres** (replicas share a database only there): ignored by a plain `cargo test`,
//! run by `scripts/test.sh` against a Postgres server of its own; run by hand (`--ignored`)
//! without `TEST_POSTGRES_URL` it fails, saying so.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use saga_tests::{Order, ServiceKind, Stack, Status, read_sse};

/// Below the 10 s a `?wait=10` would take to give up, and than an idle stream lives, so an
/// answer in time proves the replica was woken; as close to it as that allows, because a saga
/// on a loaded two-core machine (the whole suite at once) can take several seconds.
const FOLLOW: Duration = Duration::from_millis(9_500);

#[tokio::test]
#[ignore = "needs Postgres (TEST_POSTGRES_URL): scripts/test.sh runs it"]
async fn streams_and_waits_follow_an_order_whichever_replica_moves_it() -> Result<()> {
    saga_tests::require_postgres()?;
    let mut stack = Stack::start().await?;
    stack.start_replicas(&[ServiceKind::OrderApi]).await?;
    let urls = [
        stack.instance(ServiceKind::OrderApi, 1)?.base_url(),
        stack.instance(ServiceKind::OrderApi, 2)?.base_url(),
    ];
    // Orders placed while the second replica's consumer joins the group wait out the
    // rebalance, which is not what this test times.
    stack
        .wait_for_shared_partitions(ServiceKind::OrderApi)
        .await?;
    for n in 0..8 {
        let order_id = place(&stack, &urls[n % 2]).await?;
        let order_id = order_id.as_str();
        let stream = |url: &str| {
            let url = format!("{url}/api/orders/{order_id}/events");
            let http = stack.http.clone();
            async move { read_sse(&http, &url, FOLLOW).await }
        };
        let wait = |url: &str| {
            let request = stack
                .http
                .get(format!("{url}/api/orders/{order_id}?wait=10"))
                .timeout(FOLLOW)
                .send();
            async move { Ok::<Order, anyhow::Error>(request.await?.json().await?) }
        };
        let (first, second, first_wait, second_wait) = tokio::try_join!(
            stream(&urls[0]),
            stream(&urls[1]),
            wait(&urls[0]),
            wait(&urls[1]),
        )
        .with_context(|| format!("following order {order_id} on both replicas"))?;
        for (replica, (events, _)) in [first, second].iter().enumerate() {
            let last = events.last().context("an empty stream")?.update()?;
            ensure!(
                last.transition.status == Status::Confirmed,
                "order {order_id}: the stream on replica {} ended at {last:?}",
                replica + 1
            );
        }
        for (replica, order) in [first_wait, second_wait].iter().enumerate() {
            ensure!(
                order.status == Status::Confirmed,
                "order {order_id}: ?wait on replica {} answered {order}",
                replica + 1,
            );
        }
    }
    Ok(())
}

/// Places an order on the order-api at `url`; returns its id.
async fn place(stack: &Stack, url: &str) -> Result<String> {
    let accepted: Value = stack
        .http
        .post(format!("{url}/api/orders"))
        .json(&json!({
            "user_id": "usr_replicas",
            "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242",
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(accepted["order_id"]
        .as_str()
        .context("no order id")?
        .to_owned())
}
