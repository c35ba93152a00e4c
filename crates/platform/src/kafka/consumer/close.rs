//! Closing a consumer off the async runtime, within a limit.

use std::time::Duration;

use tokio::sync::oneshot;

/// Drops `value` on a thread of its own and waits at most `limit` for the drop to end; `true`
/// if it did.
///
/// Dropping a librdkafka consumer closes it, and the close blocks: it leaves the group, a round
/// trip to the coordinator, and it has been known to hang for good in some states of the group
/// protocol (see [`super::context::Hooks::closing`] for the one the consumer avoids). On a
/// runtime worker it would hold the worker, and a runtime's shutdown waits for its workers: the
/// service would not exit. A thread of its own is not waited for at exit, so a close that does
/// not end in time is left behind and the broker drops the member from its group after the
/// session timeout.
pub(super) async fn drop_within<T: Send + 'static>(value: T, limit: Duration) -> bool {
    let (dropped, done) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".to_owned())
        .spawn(move || {
            drop(value);
            let _ = dropped.send(());
        });
    if let Err(error) = spawned {
        // The closure, and the value with it, was dropped on this thread already.
        tracing::warn!(%error, "No thread to close the Kafka consumer on; closed in place.");
        return true;
    }
    tokio::time::timeout(limit, done).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A value whose drop waits until the test lets it go.
    struct Stuck(mpsc::Receiver<()>);

    impl Drop for Stuck {
        fn drop(&mut self) {
            let _ = self.0.recv();
        }
    }

    #[tokio::test]
    async fn a_drop_that_does_not_end_is_left_behind_after_the_limit() {
        let (release, stuck) = mpsc::channel();
        let limit = Duration::from_millis(200);
        let started = std::time::Instant::now();
        assert!(!drop_within(Stuck(stuck), limit).await);
        assert!(started.elapsed() >= limit);
        release.send(()).expect("the stuck drop still waits");
    }

    #[tokio::test]
    async fn a_drop_that_ends_is_waited_for() {
        let (release, stuck) = mpsc::channel();
        release.send(()).expect("sent before the drop");
        assert!(drop_within(Stuck(stuck), Duration::from_secs(30)).await);
    }
}
