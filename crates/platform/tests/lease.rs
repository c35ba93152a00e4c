//! Leases: one holder at a time, renewals keep it, a silent holder loses it after its time, and
//! a holder that gives it up hands it over at once.

use std::time::{Duration, Instant};

use platform::Db;
use platform::db::lease::Lease;
use platform::sql::ScratchDb;
use test_support::eventually_within;

const TTL: Duration = Duration::from_millis(600);

/// Two processes' views of one lease (two `Lease`s are two holders, as two replicas are).
fn two_replicas() -> (ScratchDb, Lease, Lease) {
    let scratch = ScratchDb::new("lease");
    let first = Db::open(scratch.target(), &[]).expect("the database opens");
    let second = Db::open(scratch.target(), &[]).expect("the database opens again");
    (
        scratch,
        Lease::with_ttl(&first, "job", TTL),
        Lease::with_ttl(&second, "job", TTL),
    )
}

async fn until_held(lease: &Lease) -> Duration {
    let started = Instant::now();
    eventually_within(10 * TTL, || async {
        if lease.held().await.expect("the lease query runs") {
            Ok(())
        } else {
            Err("not taken over".to_owned())
        }
    })
    .await
    .expect("the lease is taken over");
    started.elapsed()
}

#[tokio::test]
async fn one_holder_at_a_time_and_a_silent_one_loses_it_after_its_time() {
    let (_dir, a, b) = two_replicas();
    assert!(a.held().await.expect("query"), "a free lease is taken");
    assert!(!b.held().await.expect("query"), "a held lease is not");
    // `a` renews while it works: `b` keeps waiting.
    let started = Instant::now();
    while started.elapsed() < 2 * TTL {
        assert!(a.held().await.expect("query"));
        assert!(!b.held().await.expect("query"));
        tokio::time::sleep(TTL / 10).await;
    }
    // `a` falls silent (a killed replica): `b` gets the lease once it expired, not before.
    let waited = until_held(&b).await;
    assert!(waited >= TTL / 3, "taken over after {waited:?}, too soon");
    assert!(
        !a.held().await.expect("query"),
        "the old holder knows it lost"
    );
}

#[tokio::test]
async fn a_released_lease_is_taken_over_at_once() {
    let (_dir, a, b) = two_replicas();
    assert!(a.held().await.expect("query"));
    a.release().await.expect("release");
    assert!(b.held().await.expect("query"), "free after the release");
}
