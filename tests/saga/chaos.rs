//! The saga under attack: a few hundred orders (good cards, declined cards, out-of-stock and
//! limited items, slow and flaky payments) while every service is SIGKILLed and restarted,
//! brokers go down and come back, requests fail, events are duplicated and poison is injected.
//! Then the invariants are checked from each service's own database and printed.
//!
//! `CHAOS_ORDERS` (default 150) and `CHAOS_SEED` make it bigger or replay a run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use saga_tests::{Accepted, ServiceKind, Stack, eventually_within};

use crate::invariants::settled;

/// (sku, quantity, payment method): the order mix, picked at random.
const MIX: [(&str, u32, &str); 8] = [
    ("WIDGET-42", 2, "pm_visa_4242"),
    ("GADGET-7", 1, "pm_mastercard_5555"),
    ("DOOHICKEY-3", 3, "pm_visa_4242"),
    ("WIDGET-42", 1, "pm_card_declined"),
    ("GIZMO-9", 1, "pm_visa_4242"),
    ("LIMITED-1", 1, "pm_visa_4242"),
    ("GADGET-7", 2, "pm_slow_3s"),
    ("DOOHICKEY-3", 1, "pm_flaky"),
];

/// How long the whole run may take to settle after the last fault.
const SETTLE: Duration = Duration::from_secs(60);

/// What the chaos did, for the report.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Chaos {
    /// SIGKILLs, by service.
    pub(crate) kills: BTreeMap<&'static str, u32>,
    /// Brokers taken down (and brought back).
    pub(crate) broker_outages: u32,
    /// Request errors armed on the broker (each fails a few requests of its kind).
    pub(crate) request_faults: u32,
    /// Copies of events produced.
    pub(crate) duplicates: u32,
    /// Poison messages produced.
    pub(crate) poison: u32,
}

#[tokio::test]
async fn the_saga_survives_crashes_broker_faults_duplicates_and_poison() -> Result<()> {
    let orders: usize = std::env::var("CHAOS_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(7);
    eprintln!("chaos: {orders} orders, seed {seed} (CHAOS_ORDERS, CHAOS_SEED)");
    let started = Instant::now();
    let mut stack = chaos_stack().await?;

    // Orders arrive at a steady pace while the chaos runs.
    let placer = tokio::spawn(place_orders(
        stack.http.clone(),
        stack.url("/api/orders"),
        orders,
        seed,
    ));
    let mut chaos = Chaos::default();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut round = 0;
    // At least three rounds, so that every service dies several times.
    while !placer.is_finished() || round < 3 {
        attack(&mut stack, &mut rng, &mut chaos, round).await?;
        round += 1;
    }
    let accepted = placer.await??;
    eprintln!(
        "chaos: {} orders accepted in {:?}, {chaos:?}",
        accepted.len(),
        started.elapsed()
    );

    // Every accepted order ends, and the books balance.
    let settle_started = Instant::now();
    let report = settled(&stack, &accepted, SETTLE)
        .await
        .context("invariants did not hold after the chaos settled")?;
    let poison = poison_dead_lettered(&stack)?;
    assert!(
        poison >= 1,
        "the poison message is not in the dead-letter topic"
    );
    eprintln!(
        "chaos: invariants hold after {:?} (settled in {:?})",
        started.elapsed(),
        settle_started.elapsed()
    );
    eprintln!("{report}");
    eprintln!(
        "chaos: {poison} poison message(s) dead-lettered with their reason; consumers went on"
    );
    Ok(())
}

/// A stack for chaos: three brokers with a fault-injection endpoint, and deadlines, session
/// timeouts, retries and sweeps short enough that a run settles within a minute of its last
/// fault.
pub(crate) async fn chaos_stack() -> Result<Stack> {
    Stack::start_with_env(&[
        ("EMBEDDED_BROKERS", "3"),
        ("BROKER_CONTROL_ADDR", "127.0.0.1:0"),
        ("SAGA_TIMEOUT_MS", "20000"),
        ("KAFKA_SESSION_TIMEOUT_MS", "2000"),
        ("SAGA_REAPER_INTERVAL_MS", "200"),
        ("PSP_SIM_SLOW_MS", "1500"),
        ("PAYMENT_RESUBMIT_AFTER_MS", "1000"),
        ("PAYMENT_SWEEP_INTERVAL_MS", "200"),
        ("PSP_BREAKER_COOLDOWN_MS", "500"),
    ])
    .await
}

/// How many messages `payments.dlq` holds as poison (`dlq.error.class: poison`).
pub(crate) fn poison_dead_lettered(stack: &Stack) -> Result<usize> {
    let dlq = stack.kafka()?.read_all("payments.dlq")?;
    Ok(dlq
        .iter()
        .filter(|m| {
            m.headers
                .iter()
                .any(|(k, v)| k == "dlq.error.class" && v == "poison")
        })
        .count())
}

/// Places `count` orders, one after the other, each accepted before the next is sent.
async fn place_orders(
    http: reqwest::Client,
    url: String,
    count: usize,
    seed: u64,
) -> Result<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut accepted = Vec::with_capacity(count);
    for _ in 0..count {
        let body = random_order(&mut rng, "usr_chaos");
        accepted.push(place_until_accepted(&http, &url, &body).await?);
        // Pacing: orders arrive at a steady rate, not all at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(accepted)
}

/// An order of `user_id` from the [`MIX`], picked with `rng`.
pub(crate) fn random_order(rng: &mut StdRng, user_id: &str) -> Value {
    let (sku, quantity, method) = MIX[rng.random_range(0..MIX.len())];
    json!({"user_id": user_id, "items": [{"sku": sku, "quantity": quantity}], "payment_method": method})
}

/// Posts `body` to order-api's `url` until it is accepted (order-api may be down, restarting
/// or refusing while the broker is); returns the order's id.
pub(crate) async fn place_until_accepted(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<String> {
    eventually_within(Duration::from_secs(30), || async {
        let response = http
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|error| format!("order-api did not accept an order: {error}"))?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            return Err(format!(
                "order-api did not accept an order: {}",
                response.status()
            ));
        }
        let accepted: Accepted = response.json().await.map_err(|error| error.to_string())?;
        Ok(accepted.order_id.to_string())
    })
    .await
}

/// One round of faults: every kind once, in a random order, with random pauses between them.
async fn attack(stack: &mut Stack, rng: &mut StdRng, chaos: &mut Chaos, round: u32) -> Result<()> {
    for fault in Fault::shuffled(rng) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        inflict(fault, stack, rng, chaos, round).await?;
    }
    Ok(())
}

/// One kind of fault the chaos inflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// SIGKILL payment-svc, restart it.
    KillPayment,
    /// SIGKILL inventory-svc, restart it.
    KillInventory,
    /// SIGKILL order-api, restart it.
    KillOrderApi,
    /// One of the three brokers down for up to 1.5 s.
    BrokerOutage,
    /// Produce, fetch, commit and heartbeat requests fail, connections drop.
    RequestErrors,
    /// Copies of recent events, as a redelivery would bring them.
    Duplicates,
    /// Messages that are not events, on two topics.
    Poison,
    /// SIGKILL the payment provider, which forgets everything (memory only); restart it.
    KillPsp,
}

impl Fault {
    /// Every kind, in a fixed order (a seed replays the same shuffles of it).
    pub(crate) const ALL: [Fault; 8] = [
        Fault::KillPayment,
        Fault::KillInventory,
        Fault::KillOrderApi,
        Fault::BrokerOutage,
        Fault::RequestErrors,
        Fault::Duplicates,
        Fault::Poison,
        Fault::KillPsp,
    ];

    /// Every kind once, in a random order.
    pub(crate) fn shuffled(rng: &mut StdRng) -> [Fault; 8] {
        let mut faults = Fault::ALL;
        for i in (1..faults.len()).rev() {
            faults.swap(i, rng.random_range(0..=i));
        }
        faults
    }

    /// The fault's name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::KillPayment => "kill payment-svc",
            Fault::KillInventory => "kill inventory-svc",
            Fault::KillOrderApi => "kill order-api",
            Fault::BrokerOutage => "broker outage",
            Fault::RequestErrors => "request errors",
            Fault::Duplicates => "duplicates",
            Fault::Poison => "poison",
            Fault::KillPsp => "kill psp-sim",
        }
    }
}

/// Inflicts one fault and counts it in `chaos`; `round` marks the poison it injects.
pub(crate) async fn inflict(
    fault: Fault,
    stack: &mut Stack,
    rng: &mut StdRng,
    chaos: &mut Chaos,
    round: u32,
) -> Result<()> {
    match fault {
        Fault::KillPayment => kill_and_restart(stack, ServiceKind::Payment, chaos, rng).await,
        Fault::KillInventory => kill_and_restart(stack, ServiceKind::Inventory, chaos, rng).await,
        Fault::KillOrderApi => kill_and_restart(stack, ServiceKind::OrderApi, chaos, rng).await,
        Fault::KillPsp => kill_and_restart(stack, ServiceKind::Psp, chaos, rng).await,
        Fault::BrokerOutage => {
            let broker = rng.random_range(1..=3);
            stack
                .broker_fault(&format!("brokers/{broker}/down"))
                .await?;
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
            stack.broker_fault(&format!("brokers/{broker}/up")).await?;
            chaos.broker_outages += 1;
            Ok(())
        }
        Fault::RequestErrors => {
            for fault in [
                "produce/10",
                "fetch/10",
                "commit/5",
                "heartbeat/5",
                "disconnect/3",
            ] {
                stack.broker_fault(&format!("faults/{fault}")).await?;
                chaos.request_faults += 1;
            }
            Ok(())
        }
        Fault::Duplicates => {
            chaos.duplicates += duplicate_recent_events(stack).await?;
            Ok(())
        }
        Fault::Poison => {
            let kafka = stack.kafka()?;
            let payload = format!("{{\"round\": {round}, not an event");
            kafka
                .produce("payments", b"ord_chaos", payload.as_bytes(), &[])
                .await?;
            kafka
                .produce("inventory", b"ord_chaos", b"\x00\x01 binary garbage", &[])
                .await?;
            chaos.poison += 2;
            Ok(())
        }
    }
}

/// SIGKILL (no shutdown, no flush, no commit), a pause, and a restart.
async fn kill_and_restart(
    stack: &mut Stack,
    kind: ServiceKind,
    chaos: &mut Chaos,
    rng: &mut StdRng,
) -> Result<()> {
    let service = match kind {
        ServiceKind::OrderApi => &mut stack.order_api,
        ServiceKind::Payment => &mut stack.payment,
        ServiceKind::Inventory => &mut stack.inventory,
        ServiceKind::Psp => &mut stack.psp,
        ServiceKind::Broker => {
            bail!("the broker keeps its data only in memory; it is not restarted")
        }
    };
    service.kill()?;
    tokio::time::sleep(Duration::from_millis(rng.random_range(50..800))).await;
    stack.restart(kind).await?;
    *chaos.kills.entry(kind_name(kind)).or_default() += 1;
    Ok(())
}

fn kind_name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::OrderApi => "order-api",
        ServiceKind::Payment => "payment-svc",
        ServiceKind::Inventory => "inventory-svc",
        ServiceKind::Psp => "psp-sim",
        ServiceKind::Broker => "broker",
    }
}

/// Produces exact copies of the newest `order.created` and `payment.completed` events.
async fn duplicate_recent_events(stack: &Stack) -> Result<u32> {
    let kafka = stack.kafka()?;
    let mut copies = 0;
    for (topic, event_type) in [
        ("orders", "shop.order.created.v1"),
        ("payments", "shop.payment.completed.v1"),
    ] {
        let messages = kafka.read_all(topic)?;
        let recent = messages.iter().rev().filter(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload)
                .is_ok_and(|doc| doc["type"] == event_type)
        });
        for message in recent.take(3) {
            kafka
                .produce(topic, &message.key, &message.payload, &message.headers)
                .await?;
            copies += 1;
        }
    }
    Ok(copies)
}
