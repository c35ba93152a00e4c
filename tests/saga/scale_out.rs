//! Scale-out: two replicas of each service share one Postgres database per service (and the
//! broker and the provider). Orders go to both order-api replicas in turn; a third of the way
//! in, one replica of each service — the one holding most of its service's leases — is
//! SIGKILLed and not restarted. The survivors must take over everything: the dead consumer's
//! partitions (consumer group), its singleton jobs (outbox relay, deadline reaper, webhook
//! deliverer, payment recovery sweep: leases that expire after `LEASE_TTL_MS`), the provider's
//! answers to charges the dead payment-svc sent, and the requests cut off by the kill (retried
//! on the other order-api replica with the same `Idempotency-Key`). Then the invariants of the
//! chaos test hold, orders placed on the killed order-api replica are completed, no saga was
//! only ended by its deadline, and every lease is held by a live replica.
//!
//! **Needs Postgres**: replicas share a database only there. So the test is ignored by a plain
//! `cargo test`; `scripts/test.sh` runs it against a Postgres server of its own. Run by hand
//! (`--ignored`) without `TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres:…@127.0.0.1:5432/postgres`) it fails, saying so.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use saga_tests::{Accepted, Order, ServiceKind, Stack, eventually, eventually_within};

use crate::invariants::check_invariants;
use Check::{Fatal, NotYet};

/// Orders placed in all.
const ORDERS: usize = 80;

/// After this many orders, one replica of each service is killed.
const KILL_AFTER: usize = ORDERS / 3;

/// (sku, quantity, payment method), in turn: good cards, a declined card, a sold-out item,
/// `LIMITED-1` (5 in stock: ten orders of it, so overselling would show), a slow card and a
/// flaky one.
const MIX: [(&str, u32, &str); 8] = [
    ("WIDGET-42", 2, "pm_visa_4242"),
    ("GADGET-7", 1, "pm_mastercard_5555"),
    ("LIMITED-1", 1, "pm_visa_4242"),
    ("WIDGET-42", 1, "pm_card_declined"),
    ("DOOHICKEY-3", 3, "pm_visa_4242"),
    ("GADGET-7", 2, "pm_slow_3s"),
    ("GIZMO-9", 1, "pm_visa_4242"),
    ("DOOHICKEY-3", 1, "pm_flaky"),
];

/// Short timings, so that takeovers happen within seconds. A saga stuck for `SAGA_TIMEOUT_MS`
/// would be ended by the reaper: the test counts that as a failure, not as an outcome.
const ENV: [(&str, &str); 8] = [
    ("LEASE_TTL_MS", "1500"),
    ("KAFKA_SESSION_TIMEOUT_MS", "2000"),
    ("SAGA_REAPER_INTERVAL_MS", "200"),
    ("PAYMENT_SWEEP_INTERVAL_MS", "200"),
    ("PAYMENT_RESUBMIT_AFTER_MS", "1000"),
    ("SAGA_TIMEOUT_MS", "20000"),
    ("PSP_SIM_SLOW_MS", "1500"),
    ("PSP_BREAKER_COOLDOWN_MS", "500"),
];

/// How long the run may take to settle after the last order was accepted.
const SETTLE: Duration = Duration::from_secs(30);

/// The services that run replicated.
const SERVICES: [ServiceKind; 3] = [
    ServiceKind::OrderApi,
    ServiceKind::Payment,
    ServiceKind::Inventory,
];

/// An accepted order, and where.
#[derive(Debug)]
struct Placed {
    order_id: String,
    /// Index (0, 1) of the order-api replica that answered 202.
    replica: usize,
    /// Requests that failed before (on either replica).
    failed_attempts: u32,
    /// The answer was a replay of an earlier attempt's order (`Idempotent-Replayed`).
    replayed: bool,
}

/// A killed replica.
#[derive(Debug)]
struct Victim {
    kind: ServiceKind,
    /// Its replica number (1, 2).
    number: usize,
    pid: u32,
    /// The leases it held when it was killed.
    leases: Vec<String>,
}

#[tokio::test]
#[ignore = "needs Postgres (TEST_POSTGRES_URL): scripts/test.sh runs it"]
async fn replicas_share_the_work_and_survive_the_death_of_one_of_each() -> Result<()> {
    saga_tests::require_postgres()?;
    let started = Instant::now();
    let mut stack = Stack::start_with_env(&ENV).await?;
    stack.start_replicas(&SERVICES).await?;
    // Every replica's consumer holds partitions before the orders come, so that the kill
    // moves partitions with work on them to the survivor.
    for kind in SERVICES {
        stack.wait_for_shared_partitions(kind).await?;
    }
    let urls = [
        stack.instance(ServiceKind::OrderApi, 1)?.base_url(),
        stack.instance(ServiceKind::OrderApi, 2)?.base_url(),
    ];
    eprintln!(
        "scale_out: broker, provider and 2 replicas of each service up in {:?} (with the binaries' build, if due; logs in {})",
        started.elapsed(),
        stack.dir().display()
    );

    let outcome = run(&mut stack, urls, started).await;
    if let Err(error) = &outcome {
        eprintln!("scale_out: FAILED: {error:#}");
        print_log_excerpts(&stack);
    }
    outcome
}

async fn run(stack: &mut Stack, urls: [String; 2], started: Instant) -> Result<()> {
    // Orders arrive at a steady pace, alternating between the two order-api replicas.
    let progress = Arc::new(AtomicUsize::new(0));
    let placer = tokio::spawn(place_orders(
        stack.http.clone(),
        urls.clone(),
        Arc::clone(&progress),
    ));

    // A third of the way in, with sagas in flight: SIGKILL one replica of each service.
    eventually(|| {
        let placed = progress.load(Ordering::SeqCst);
        std::future::ready(if placed >= KILL_AFTER || placer.is_finished() {
            Ok(())
        } else {
            Err(format!("{placed} of {KILL_AFTER} orders placed"))
        })
    })
    .await?;
    let mut victims = Vec::new();
    for kind in SERVICES {
        victims.push(kill_lease_holder(stack, kind)?);
    }
    let killed_at = started.elapsed();
    let placed_when_killed = progress.load(Ordering::SeqCst);
    let placed = placer.await??;
    let accepted: Vec<String> = placed.iter().map(|p| p.order_id.clone()).collect();
    eprintln!(
        "scale_out: killed {} after {placed_when_killed} orders, at {killed_at:?}; \
         {} orders accepted by {:?}",
        victims
            .iter()
            .map(|v| format!(
                "{} #{} (pid {}, leases {:?})",
                v.kind.binary(),
                v.number,
                v.pid,
                v.leases
            ))
            .collect::<Vec<_>>()
            .join(", "),
        accepted.len(),
        started.elapsed()
    );

    let order_victim = victims
        .iter()
        .find(|v| v.kind == ServiceKind::OrderApi)
        .context("no order-api victim")?;
    // Replica indexes in `urls` are replica numbers minus one.
    let (dead, alive) = (order_victim.number - 1, 2 - order_victim.number);
    let on_killed: Vec<&Placed> = placed.iter().filter(|p| p.replica == dead).collect();
    if on_killed.is_empty() {
        bail!("no order was placed on the order-api replica that was killed: nothing to check");
    }

    // Every accepted order ends and the books balance — polled until the run settles.
    let settle_started = Instant::now();
    let checked = eventually_within(SETTLE, || async {
        match settled(stack, &accepted, &placed, &on_killed, &urls[alive]).await {
            Ok(done) => Ok(Ok(done)),
            // Waiting longer cannot help: out of the poll at once.
            Err(Fatal(error)) => Ok(Err(error)),
            Err(NotYet(error)) => Err(format!("{error:#}")),
        }
    })
    .await
    .with_context(|| format!("the run did not settle within {SETTLE:?} after the last order"))?;
    let (report, leases, completed) = checked?;

    let by_replica = placed.iter().fold([0, 0], |mut n, p| {
        n[p.replica] += 1;
        n
    });
    let failed: u32 = placed.iter().map(|p| p.failed_attempts).sum();
    let replayed = placed.iter().filter(|p| p.replayed).count();
    eprintln!(
        "scale_out: settled in {:?}, {:?} in all",
        settle_started.elapsed(),
        started.elapsed()
    );
    eprintln!(
        "scale_out report:\n  orders: {} accepted, {} by order-api #1 and {} by #2; {failed} \
         failed request(s) retried on the other replica, {replayed} answered as replays\n  \
         {} order(s) placed on the killed order-api #{} before the kill, all ended: {completed:?}\n  \
         no saga ended by its deadline (timeout)\n  leases now held by survivors: {}",
        placed.len(),
        by_replica[0],
        by_replica[1],
        on_killed.len(),
        order_victim.number,
        leases.join(", ")
    );
    eprintln!("{report}");
    Ok(())
}

/// Places [`ORDERS`] orders, each with an `Idempotency-Key`, first on replica `i % 2` and, while
/// that fails (killed: connection refused or cut off), again on the other one with the same key.
async fn place_orders(
    http: reqwest::Client,
    urls: [String; 2],
    progress: Arc<AtomicUsize>,
) -> Result<Vec<Placed>> {
    let run = format!("{:08x}", rand::random::<u32>());
    let mut placed = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS {
        let (sku, quantity, method) = MIX[i % MIX.len()];
        let body = json!({
            "user_id": "usr_scale_out",
            "items": [{"sku": sku, "quantity": quantity}],
            "payment_method": method,
        });
        let key = format!("scale-out-{run}-{i}");
        let mut attempts = 0_u32..;
        let (order, fatal) = eventually(|| {
            let attempt = attempts.next().unwrap_or_default();
            let replica = (i + attempt as usize) % 2;
            let (http, url, body, key) = (&http, &urls[replica], &body, &key);
            async move {
                let response = http
                    .post(format!("{url}/api/orders"))
                    .header("idempotency-key", key)
                    .json(body)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .map_err(|error| error.to_string())?;
                let status = response.status();
                if status == reqwest::StatusCode::ACCEPTED {
                    let replayed = response.headers().get("idempotent-replayed").is_some();
                    let answer: Accepted =
                        response.json().await.map_err(|error| error.to_string())?;
                    Ok((
                        Some(Placed {
                            order_id: answer.order_id.to_string(),
                            replica,
                            // Every earlier attempt failed.
                            failed_attempts: attempt,
                            replayed,
                        }),
                        None,
                    ))
                } else if status.is_client_error()
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    // Refused for good: out of the poll at once.
                    let text = response.text().await.unwrap_or_default();
                    Ok((
                        None,
                        Some(format!("order-api #{}: {status} {text}", replica + 1)),
                    ))
                } else {
                    Err(format!("order-api #{}: {status}", replica + 1))
                }
            }
        })
        .await
        .with_context(|| format!("neither order-api replica accepted order {i}"))?;
        if let Some(refusal) = fatal {
            bail!("order {i} refused by {refusal}");
        }
        placed.extend(order);
        progress.store(i + 1, Ordering::SeqCst);
        // Pacing: orders arrive at a steady rate, not all at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(placed)
}

/// SIGKILLs the replica of `kind` that holds most of the service's leases (the first replica if
/// none holds any): the takeover of its singleton jobs is what the test is about.
fn kill_lease_holder(stack: &mut Stack, kind: ServiceKind) -> Result<Victim> {
    let leases = stack.leases(kind)?;
    let mut best: Option<(usize, u32, Vec<String>)> = None;
    for service in stack.instances(kind) {
        let pid = service
            .pid()
            .context("a replica was down before the kill")?;
        let held: Vec<String> = leases
            .iter()
            .filter(|(_, holder)| holder_pid(holder) == Some(pid))
            .map(|(name, _)| name.clone())
            .collect();
        if best
            .as_ref()
            .is_none_or(|(_, _, most)| held.len() > most.len())
        {
            best = Some((service.replica(), pid, held));
        }
    }
    let (number, pid, held) = best.context("no replica to kill")?;
    stack.instance_mut(kind, number)?.kill()?;
    Ok(Victim {
        kind,
        number,
        pid,
        leases: held,
    })
}

fn holder_pid(holder: &str) -> Option<u32> {
    holder.rsplit('/').nth(1)?.parse().ok()
}

/// Why [`settled`] did not return its report.
enum Check {
    /// Not (yet) — the run may still settle.
    NotYet(anyhow::Error),
    /// Failed for good: waiting longer cannot help.
    Fatal(anyhow::Error),
}

/// The checks once the run has settled: the shared invariants; no order cancelled by its
/// deadline (a saga that stalled for `SAGA_TIMEOUT_MS` would otherwise settle as cancelled);
/// the orders placed on the killed order-api replica ended, as the survivor's API tells; every
/// lease of every service held by a live replica. Returns the invariants' report, the leases,
/// and the outcomes of the killed replica's orders.
async fn settled(
    stack: &Stack,
    accepted: &[String],
    placed: &[Placed],
    on_killed: &[&Placed],
    survivor: &str,
) -> Result<(String, Vec<String>, BTreeMap<String, usize>), Check> {
    let timed_out = stack.timed_out_orders().map_err(NotYet)?;
    if !timed_out.is_empty() {
        return Err(Fatal(stalled(stack, placed, &timed_out)));
    }

    let report = check_invariants(stack, accepted).map_err(NotYet)?;

    let mut completed: BTreeMap<String, usize> = BTreeMap::new();
    for p in on_killed {
        let url = format!("{survivor}/api/orders/{}", p.order_id);
        let fetched = async {
            let response = stack.http.get(&url).send().await?;
            let status = response.status();
            let text = response.text().await?;
            anyhow::Ok((status, text))
        };
        let (status, text) = fetched.await.map_err(NotYet)?;
        let order = serde_json::from_str::<Order>(&text)
            .ok()
            .filter(|order| status == reqwest::StatusCode::OK && order.status.is_terminal())
            .ok_or_else(|| {
                NotYet(anyhow::anyhow!(
                    "order {} placed on the killed order-api replica: {status} {text}",
                    p.order_id
                ))
            })?;
        let outcome = match order.cancellation_reason {
            Some(reason) => reason.as_str(),
            None => "confirmed",
        };
        *completed.entry(outcome.to_owned()).or_default() += 1;
    }

    let mut held = Vec::new();
    for kind in SERVICES {
        let live: HashMap<u32, usize> = stack
            .instances(kind)
            .into_iter()
            .filter_map(|service| Some((service.pid()?, service.replica())))
            .collect();
        for (name, holder) in stack.leases(kind).map_err(NotYet)? {
            let Some(number) = holder_pid(&holder).and_then(|pid| live.get(&pid)) else {
                return Err(NotYet(anyhow::anyhow!(
                    "{} lease {name} is still held by {holder}, not a live replica",
                    kind.binary()
                )));
            };
            held.push(format!("{}:{name} #{number}", kind.binary()));
        }
    }
    Ok((report, held, completed))
}

/// What is known about sagas the deadline reaper had to end: where each order was placed, its
/// payment method, its payment's state, and what the invariants say.
fn stalled(stack: &Stack, placed: &[Placed], timed_out: &[(String, String)]) -> anyhow::Error {
    let replica: HashMap<&str, usize> = placed
        .iter()
        .map(|p| (p.order_id.as_str(), p.replica + 1))
        .collect();
    let mut which = Vec::with_capacity(timed_out.len());
    for (id, method) in timed_out {
        let payment = match stack.payment_for(id).ok().flatten() {
            Some(payment) => format!(
                "payment {:?}, {} submission(s) to the provider",
                payment.status, payment.submissions
            ),
            None => "no payment".to_owned(),
        };
        let replica = replica.get(id.as_str()).map_or_else(
            || "not placed by the test".to_owned(),
            |n| format!("placed on order-api #{n}"),
        );
        which.push(format!("{id} ({method}, {replica}, {payment})"));
    }
    let invariants = match check_invariants(stack, &[]) {
        Ok(_) => "hold otherwise".to_owned(),
        Err(error) => format!("{error:#}"),
    };
    anyhow::anyhow!(
        "{} saga(s) stalled until the deadline reaper cancelled them (reason `timeout`): {}; \
         invariants: {invariants}",
        which.len(),
        which.join("; ")
    )
}

/// The last warnings and errors of every replica's log (the logs are in the stack's directory;
/// `KEEP_TEST_DIR=1` keeps them).
fn print_log_excerpts(stack: &Stack) {
    let dir = stack.dir().to_owned();
    eprintln!(
        "scale_out: service logs in {} (KEEP_TEST_DIR=1 keeps them)",
        dir.display()
    );
    for kind in SERVICES {
        for service in stack.instances(kind) {
            let path = service.log_path(&dir);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                .collect();
            eprintln!(
                "--- {} ({} warnings/errors, last ones):",
                path.display(),
                lines.len()
            );
            for line in &lines[lines.len().saturating_sub(8)..] {
                eprintln!("  {line}");
            }
        }
    }
}
