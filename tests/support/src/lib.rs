//! Waiting for an outcome in a test: poll until it shows, fail after a deadline, never sleep a
//! fixed time and hope. One function for the whole workspace, so that every test waits the same
//! way and every timeout says what it saw last.
//!
//! A dev-dependency only: the services never wait like this.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How long any single outcome may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a probe runs: often enough that a test does not idle, seldom enough that the
/// probing does not slow down what it waits for.
const INTERVAL: Duration = Duration::from_millis(20);

/// Polls `probe` until it gives a value, failing after [`DEADLINE`]. Until then `probe`
/// answers `Err` with what it saw, which the failure reports.
pub async fn eventually<T, F, Fut>(probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_within(DEADLINE, probe).await
}

/// [`eventually`] with a deadline of its own: for an outcome that the system under test is
/// allowed more (or less) time for than [`DEADLINE`].
pub async fn eventually_within<T, F, Fut>(deadline: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if started.elapsed() > deadline {
            bail!("not within {deadline:?}: {last}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_the_first_value_the_probe_finds() -> Result<()> {
        let mut tries = 0;
        let found = eventually(|| {
            tries += 1;
            let tried = tries;
            async move {
                if tried < 3 {
                    Err(format!("try {tried}"))
                } else {
                    Ok(tried)
                }
            }
        })
        .await?;
        assert_eq!(found, 3);
        Ok(())
    }

    #[tokio::test]
    async fn fails_after_the_deadline_with_what_it_saw_last() {
        let error = eventually_within(Duration::from_millis(50), || async {
            Err::<(), _>("still waiting".to_owned())
        })
        .await
        .expect_err("the probe never succeeds");
        let message = error.to_string();
        assert!(message.contains("still waiting"), "{message}");
        assert!(message.contains("50ms"), "{message}");
    }
}
