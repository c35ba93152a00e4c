//! Notifications between replicas (`platform::db::notify`): a listener hears what another
//! replica announces, and waits for it without spending a core.
//!
//! Needs Postgres: ignored by a plain `cargo test`, run by `scripts/test.sh` against a server
//! of its own; run by hand (`--ignored`) without `TEST_POSTGRES_URL` it fails, saying so.

use std::time::Duration;

use platform::Db;
use platform::db::notify::{self, Notice};
use platform::sql::ScratchDb;
use tokio::sync::mpsc::UnboundedReceiver;

const CHANNEL: &str = "notify_test";

/// How long the listener is watched while nothing is announced: several of its quiet spells
/// (it asks every 500 ms whether it is still wanted).
const QUIET_WINDOW: Duration = Duration::from_secs(2);

/// The CPU time (user + system) of this process's listener threads (`db-listen`), in clock
/// ticks (`USER_HZ`, 100 a second on Linux).
fn listener_cpu_ticks() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux's /proc");
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "db-listen")
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| {
            // The fields after the name, which is in parentheses: state is the first, then
            // utime and stime the 12th and 13th.
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0)
        })
        .sum()
}

async fn next_notice(notices: &mut UnboundedReceiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .expect("a notice within 10 s")
        .expect("the listener runs")
}

#[tokio::test]
#[ignore = "needs Postgres (TEST_POSTGRES_URL): scripts/test.sh runs it"]
async fn a_listener_hears_other_replicas_and_waits_without_spinning() {
    let url = std::env::var("TEST_POSTGRES_URL").unwrap_or_default();
    assert!(
        !url.trim().is_empty(),
        "this test needs Postgres: set TEST_POSTGRES_URL to a server's admin database, or run \
         scripts/test.sh, which starts a throwaway server and runs it"
    );
    let scratch = ScratchDb::new("notify");
    let db = Db::open(scratch.target(), &[]).expect("the database opens");
    let mut notices = notify::listen(&db, CHANNEL).expect("a listener on Postgres");
    assert_eq!(
        next_notice(&mut notices).await,
        Notice::MayHaveMissed,
        "a listener that (re)connects first says it may have missed some"
    );

    // Nothing is announced for a while: a window of time measured, not an outcome awaited.
    let before = listener_cpu_ticks();
    tokio::time::sleep(QUIET_WINDOW).await;
    let spent = listener_cpu_ticks() - before;
    let window = QUIET_WINDOW.as_secs() * 100;
    assert!(
        spent * 10 < window,
        "the listener spent {spent} ticks of CPU in {window} ticks of quiet"
    );

    // After the quiet spells, another replica's notification still arrives (one of this
    // process's own, `announce`, would be passed over: the payload names its origin).
    db.transaction(|tx| {
        tx.query_row(
            "SELECT pg_notify(?1, ?2)::text",
            &[CHANNEL, "another-replica|ord_1:2"],
            |_| Ok(()),
        )
    })
    .await
    .expect("the notification is sent");
    assert_eq!(
        next_notice(&mut notices).await,
        Notice::Changed("ord_1:2".to_owned())
    );
}
