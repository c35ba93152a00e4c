//! What the load runs against: a shop already running (`--url`), or a `shopctl up` the bench
//! starts itself, as a child process so that its memory can be measured apart from the bench's.
//!
//! The child is this same executable, given a free port and a fresh data directory; the bench
//! reads the addresses it prints, waits for its `ready` line, and stops it with SIGTERM (a clean
//! shutdown, as Ctrl-C would) when the load is done.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long `shopctl up` may take to print its addresses.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// How long it may take to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// The addresses `shopctl up` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Banner {
    /// order-api's base URL.
    pub(crate) order_url: Option<String>,
    /// psp-sim's base URL (for the provider latency knob).
    pub(crate) psp_url: Option<String>,
    /// The embedded broker (for the broker baseline).
    pub(crate) bootstrap: Option<String>,
    /// Whether the `ready` line was seen.
    pub(crate) ready: bool,
}

impl Banner {
    /// Takes in one printed line.
    pub(crate) fn read(&mut self, line: &str) {
        let value = |name: &str| {
            line.trim_start()
                .strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .map(|rest| rest.trim().to_owned())
        };
        if line.contains("ready") {
            self.ready = true;
        }
        if let Some(url) = value("order-api") {
            self.order_url = Some(url);
        }
        if let Some(url) = value("psp-sim") {
            self.psp_url = Some(url);
        }
        if let Some(servers) = value("kafka") {
            self.bootstrap = Some(servers);
        }
    }

    /// Everything the bench needs has been printed.
    fn complete(&self) -> bool {
        self.ready && self.order_url.is_some() && self.psp_url.is_some() && self.bootstrap.is_some()
    }
}

/// A `shopctl up` child process.
#[derive(Debug)]
pub(crate) struct EmbeddedStack {
    /// The child; killed if dropped while running (an error path), stopped cleanly otherwise.
    child: Child,
    /// Its process id, for RSS.
    pub(crate) pid: u32,
    /// Its addresses.
    pub(crate) banner: Banner,
    /// Its databases and log; removed when the bench ends.
    _dir: tempfile::TempDir,
    /// Its stderr (logs), kept out of the bench's own output.
    log: PathBuf,
}

impl EmbeddedStack {
    /// Starts `shopctl up` on a free port and waits until it is ready.
    pub(crate) async fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("shop-bench-").tempdir()?;
        let log = dir.path().join("shop.log");
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .arg("up")
            // Port 0: the OS picks a free port, and `up` prints the one it got.
            .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            // The bench is one principal standing in for many users: the per-principal limits
            // would measure themselves. The rate limit (100/s by default) would refuse its
            // orders; the bound on held streams (100) would turn the streams of a busy moment
            // into long polls, which cost more and make the moment last. The global bound on
            // streams (`--sse-max-streams`, 10,000) stays.
            .args(["--rate-limit-per-s", "1e9", "--rate-limit-burst", "1e9"])
            .args(["--max-held-per-principal", "1000000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting `shopctl up`")?;
        let pid = child.id().context("`shopctl up` exited at once")?;
        let stdout = child.stdout.take().context("no stdout of `shopctl up`")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Banner::default();
        let read = async {
            while !banner.complete() {
                match lines.next_line().await? {
                    Some(line) => banner.read(&line),
                    None => bail!("`shopctl up` stopped before it was ready"),
                }
            }
            Ok(())
        };
        let started = tokio::time::timeout(STARTUP_DEADLINE, read).await;
        let failure = match started {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some(anyhow::anyhow!(
                "`shopctl up` was not ready within {STARTUP_DEADLINE:?}"
            )),
        };
        if let Some(error) = failure {
            let _ = child.kill().await;
            return Err(error.context(log_tail(&log)));
        }
        // Keep reading what it prints, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            banner,
            _dir: dir,
            log,
        })
    }

    /// SIGTERM, then waits for a clean exit (kills it after [`STOP_DEADLINE`]).
    pub(crate) async fn stop(mut self) -> Result<()> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid)?)
            .context("a child process has a positive pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("sending SIGTERM to `shopctl up`")?;
        match tokio::time::timeout(STOP_DEADLINE, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("`shopctl up` exited with {status}; {}", log_tail(&self.log));
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("`shopctl up` did not stop within {STOP_DEADLINE:?} of SIGTERM")
            }
        }
    }
}

/// The last lines of the child's log, for an error message.
fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("last lines of its log:\n{tail}")
}

/// Resident memory of a process (`VmRSS` in `/proc/<pid>/status`), in MiB; `None` where there is
/// no such file (not Linux, or the process is gone).
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

/// Resident memory over a run, in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Rss {
    /// When the load started.
    pub(crate) start: Option<f64>,
    /// When the load ended.
    pub(crate) end: Option<f64>,
    /// The most seen, sampling every second, at the start and at the end.
    pub(crate) max: Option<f64>,
}

/// Samples a process's RSS every second while a run lasts.
#[derive(Debug)]
pub(crate) struct RssSampler {
    /// The process.
    pid: u32,
    /// The first sample.
    start: Option<f64>,
    /// The highest sample so far.
    max: Arc<Mutex<Option<f64>>>,
    /// The sampling task.
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Takes the first sample now, then one a second.
    pub(crate) fn start(pid: u32) -> Self {
        let start = rss_mib(pid);
        let max = Arc::new(Mutex::new(start));
        let task = {
            let max = Arc::clone(&max);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    keep_max(&max, rss_mib(pid));
                }
            })
        };
        Self {
            pid,
            start,
            max,
            task,
        }
    }

    /// Takes the last sample and stops.
    pub(crate) fn finish(self) -> Rss {
        self.task.abort();
        let end = rss_mib(self.pid);
        keep_max(&self.max, end);
        let max = *self.max.lock().unwrap_or_else(|p| p.into_inner());
        Rss {
            start: self.start,
            end,
            max,
        }
    }
}

fn keep_max(max: &Mutex<Option<f64>>, sample: Option<f64>) {
    let mut max = max.lock().unwrap_or_else(|p| p.into_inner());
    *max = match (*max, sample) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_addresses_up_prints() {
        let mut banner = Banner::default();
        for line in [
            "shop ready: POST http://127.0.0.1:40123/api/orders",
            "  order-api      http://127.0.0.1:40123",
            "  payment-svc    http://127.0.0.1:40124",
            "  inventory-svc  http://127.0.0.1:40125",
            "  psp-sim        http://127.0.0.1:40126",
            "  kafka          127.0.0.1:40127,127.0.0.1:40128",
        ] {
            assert!(!banner.complete());
            banner.read(line);
        }
        assert!(banner.complete());
        assert_eq!(banner.order_url.as_deref(), Some("http://127.0.0.1:40123"));
        assert_eq!(banner.psp_url.as_deref(), Some("http://127.0.0.1:40126"));
        assert_eq!(
            banner.bootstrap.as_deref(),
            Some("127.0.0.1:40127,127.0.0.1:40128")
        );
    }

    #[test]
    fn measures_its_own_memory() {
        let own = rss_mib(std::process::id());
        assert!(own.is_some_and(|mib| mib > 0.0), "{own:?}");
    }
}
