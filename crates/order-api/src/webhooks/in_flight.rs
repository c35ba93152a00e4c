//! The deliveries being made, side by side, so that one client's slow endpoint does not hold up
//! everyone else's webhooks.
//!
//! A send can take up to the client's timeout; made one after another, the webhooks of a tenant
//! whose endpoint hangs would delay every other tenant's by that much each. So each due delivery
//! is its own task, with at most [`PER_PRINCIPAL`] of one principal's and [`IN_FLIGHT`] in all at
//! once: a hanging endpoint holds its own principal's slots, and the others' webhooks go out as
//! soon as they are due. The due rows are read fairly (a few per principal, see
//! [`super::deliverer`]), so a tenant with a long backlog cannot crowd the others out of a read
//! either.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::{self, JoinSet};

use platform::Db;

use super::deliverer::{self, DelivererConfig, Due};

/// Most deliveries in flight at once, over all principals.
pub(super) const IN_FLIGHT: usize = 64;

/// Most deliveries of one principal in flight at once.
pub(super) const PER_PRINCIPAL: usize = 4;

/// The tasks delivering, and whose delivery each one makes.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    tasks: JoinSet<()>,
    /// Delivery id and principal of each task, so that a task that ends (or panics) frees its
    /// principal's slot.
    owners: HashMap<task::Id, (String, String)>,
    /// Tasks in flight per principal.
    by_principal: HashMap<String, usize>,
}

impl InFlight {
    /// Starts every due delivery that fits under the limits; how many it started.
    pub(super) async fn start_due(
        &mut self,
        db: &Db,
        http: &reqwest::Client,
        config: &DelivererConfig,
    ) -> usize {
        self.reap();
        if self.owners.len() >= IN_FLIGHT {
            return 0;
        }
        let due = match db
            .read(|conn| deliverer::due(conn, platform::time::now()))
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "Could not read due webhooks.");
                return 0;
            }
        };
        let mut started = 0;
        for delivery in due {
            if self.owners.len() >= IN_FLIGHT {
                break;
            }
            let busy = self
                .by_principal
                .get(&delivery.principal)
                .copied()
                .unwrap_or(0)
                >= PER_PRINCIPAL;
            // Read before its task claimed it: already being made.
            let running = self.owners.values().any(|(id, _)| *id == delivery.id);
            if busy || running {
                continue;
            }
            self.start(db, http, config, delivery);
            started += 1;
        }
        started
    }

    fn start(&mut self, db: &Db, http: &reqwest::Client, config: &DelivererConfig, delivery: Due) {
        let owner = (delivery.id.clone(), delivery.principal.clone());
        *self.by_principal.entry(owner.1.clone()).or_default() += 1;
        let handle = self.tasks.spawn(deliverer::deliver(
            db.clone(),
            http.clone(),
            config.clone(),
            delivery,
        ));
        self.owners.insert(handle.id(), owner);
    }

    /// Waits until every delivery in flight has ended, or `budget` has passed; how many ended.
    pub(super) async fn settle(&mut self, budget: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + budget;
        let mut ended = 0;
        while let Ok(Some(result)) =
            tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await
        {
            self.ended(result);
            ended += 1;
        }
        ended
    }

    /// Forgets the deliveries that have ended, without waiting; how many.
    pub(super) fn reap(&mut self) -> usize {
        let mut ended = 0;
        while let Some(result) = self.tasks.try_join_next_with_id() {
            self.ended(result);
            ended += 1;
        }
        ended
    }

    fn ended(&mut self, result: Result<(task::Id, ()), task::JoinError>) {
        let id = match result {
            Ok((id, ())) => id,
            Err(error) => {
                // Its claim runs out and the attempt is made again.
                tracing::error!(%error, "A webhook delivery task failed.");
                error.id()
            }
        };
        let Some((_, principal)) = self.owners.remove(&id) else {
            return;
        };
        if let Some(count) = self.by_principal.get_mut(&principal) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_principal.remove(&principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Instant;

    use platform::params;
    use platform::webhook::Secret;

    use super::super::client;
    use super::super::resolver::SystemLookup;
    use super::super::test_server::Receiver;
    use super::*;
    use crate::testing;

    async fn queue(db: &Db, id: &str, principal: &str, url: String, due: &str) {
        let (id, principal) = (id.to_owned(), principal.to_owned());
        let due = platform::time::parse(due).expect("a valid time");
        db.transaction(move |tx| {
            tx.execute(
                "INSERT INTO webhook_deliveries (id, order_id, url, principal, event_type, payload, status, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'order.confirmed', '{}', 'pending', ?5, ?5)",
                params![id, events::OrderId::new(), url, principal, due],
            )
        })
        .await
        .expect("the delivery is queued");
    }

    async fn status(db: &Db, id: &str) -> String {
        let id = id.to_owned();
        db.read(move |conn| {
            conn.query_row(
                "SELECT status FROM webhook_deliveries WHERE id = ?1",
                params![id],
                |row| row.get::<String>(0),
            )
        })
        .await
        .expect("the delivery exists")
    }

    #[tokio::test]
    async fn a_hanging_endpoint_holds_up_only_its_own_principal() -> anyhow::Result<()> {
        let (_scratch, _target, db) = testing::fresh_db();
        let hanging = Receiver::hanging().await?;
        let receiver = Receiver::start().await?;
        // The slow tenant's webhooks are all due before the other's.
        for n in 0..10 {
            let due = format!("2026-01-01T00:00:{n:02}.000000Z");
            queue(
                &db,
                &format!("msg_slow_{n}"),
                "slow",
                hanging.url("/hook"),
                &due,
            )
            .await;
        }
        queue(
            &db,
            "msg_fast",
            "fast",
            receiver.url("/hook"),
            "2026-01-01T00:01:00.000000Z",
        )
        .await;
        let secret = Secret::parse("whsec_c2VjcmV0LWZvci10ZXN0cy1vZi1jYWxsYmFja3M=")
            .map_err(anyhow::Error::msg)?;
        let config = DelivererConfig {
            secrets: Arc::new(HashMap::from([
                ("slow".to_owned(), secret.clone()),
                ("fast".to_owned(), secret),
            ])),
            max_attempts: 3,
            base_backoff: Duration::from_secs(60),
            allow_private: true,
        };
        let http = client::build(true, Arc::new(SystemLookup))?;

        let started_at = Instant::now();
        let mut in_flight = InFlight::default();
        let started = in_flight.start_due(&db, &http, &config).await;
        assert_eq!(
            started,
            PER_PRINCIPAL + 1,
            "four of the slow tenant's, and the other's"
        );

        // The other tenant's webhook lands well within the time the hanging sends are held.
        let bound = client::SEND_TIMEOUT / 2;
        while status(&db, "msg_fast").await != "delivered" {
            assert!(
                started_at.elapsed() < bound,
                "the other tenant's webhook waited behind the hanging endpoint"
            );
            in_flight.settle(Duration::from_millis(20)).await;
        }
        assert_eq!(receiver.connections(), 1);
        assert_eq!(status(&db, "msg_slow_0").await, "pending");
        // The hanging endpoint has had its principal's share of connections, no more.
        while hanging.connections() < PER_PRINCIPAL {
            assert!(
                started_at.elapsed() < bound,
                "the slow sends never connected"
            );
            in_flight.settle(Duration::from_millis(20)).await;
        }
        assert_eq!(
            in_flight.start_due(&db, &http, &config).await,
            0,
            "the slow tenant is at its cap"
        );
        assert_eq!(hanging.connections(), PER_PRINCIPAL);
        Ok(())
    }
}
