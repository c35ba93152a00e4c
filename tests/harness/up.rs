//! `shopctl up` as a developer runs it: the embedded broker and every service in one process.
//! One type starts it, reads what it prints and logs all along, waits for its banner, speaks to
//! its order-api and stops it — for every test that runs the program instead of a [`Stack`].
//!
//! [`Stack`]: crate::Stack

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::orders::Orders;
use crate::{binary, eventually_within};

/// How long `shopctl up` may take to start: it builds nothing, but starts a broker, four
/// services and their databases on a machine busy with other tests.
const START: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM.
const STOP: Duration = Duration::from_secs(20);
/// How many of its last log lines a failed stop shows.
const LOG_TAIL: usize = 40;

/// Lines a child process wrote, read all along by a task of its own: a pipe nobody reads fills
/// up and stops the program at its next line.
#[derive(Clone, Debug, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Reads `pipe` to its end in the background.
    fn follow(pipe: impl AsyncRead + Unpin + Send + 'static) -> (Self, JoinHandle<()>) {
        let lines = Self::default();
        let collected = lines.clone();
        let reader = tokio::spawn(async move {
            let mut pipe = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = pipe.next_line().await {
                collected
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        (lines, reader)
    }

    fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn find(&self, needle: &str) -> Option<String> {
        self.all().into_iter().find(|line| line.contains(needle))
    }
}

/// A running `shopctl up`; killed if the test ends before [`ShopUp::stop`].
#[derive(Debug)]
pub struct ShopUp {
    child: Child,
    /// What it printed (stdout): the banner, and what it says on the way out.
    printed: Lines,
    /// Reads stdout to its end, which comes when the program exits.
    stdout_reader: JoinHandle<()>,
    /// Its log (stderr).
    log: Lines,
    /// order-api's base URL (`http://127.0.0.1:PORT`), from the `shop ready` line.
    base: String,
    /// Its `TMPDIR`: the temporary data directory goes in here, so that nothing is left behind
    /// even when the program is killed. Removed when this is dropped.
    _tmpdir: tempfile::TempDir,
    http: reqwest::Client,
}

impl ShopUp {
    /// Starts `shopctl up <args>` with `env` on top of the test's environment, and waits for
    /// the end of its banner. Without `--http-addr` in `args`, order-api listens on a free
    /// loopback port. The settings a developer's shell may hold for it (`ORDER_API_ADDR`,
    /// `SHOP_POSTGRES_URL`, `OTEL_SERVICE_NAME`) are removed: the shop runs as its defaults say.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("shop-up-test-").tempdir()?;
        let mut command = Self::command(args)?;
        let mut child = command
            .env("TMPDIR", dir.path())
            .env("RUST_LOG", "info,rdkafka=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting shopctl up")?;
        let (printed, stdout_reader) = Lines::follow(child.stdout.take().context("no stdout")?);
        let (log, _) = Lines::follow(child.stderr.take().context("no stderr")?);
        let ready = eventually_within(START, || {
            let seen = match child.try_wait() {
                Ok(Some(status)) => Ok(Err(status)),
                Ok(None) => match (printed.find("shop ready"), printed.find("Press Ctrl-C")) {
                    (Some(ready), Some(_)) => Ok(Ok(ready)),
                    _ => Err(format!("no complete banner yet: {:?}", printed.all())),
                },
                Err(error) => Err(error.to_string()),
            };
            std::future::ready(seen)
        })
        .await;
        let ready = match ready {
            Ok(Ok(line)) => line,
            Ok(Err(status)) => bail!(
                "shopctl up exited with {status} before it was ready: {:?}\nits log:\n{}",
                printed.all(),
                log.all().join("\n")
            ),
            Err(error) => bail!("{error:#}\nits log:\n{}", log.all().join("\n")),
        };
        // `shop ready: POST http://127.0.0.1:PORT/api/orders`
        let base = ready
            .split_once("POST ")
            .and_then(|(_, rest)| rest.trim().strip_suffix("/api/orders"))
            .with_context(|| format!("no order URL in the ready line {ready:?}"))?
            .to_owned();
        Ok(Self {
            child,
            printed,
            stdout_reader,
            log,
            base,
            _tmpdir: dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// Runs `shopctl up <args>` that must end by itself within `limit` (a refused or failed
    /// start): its exit status and everything it printed and logged.
    pub async fn run_to_end(args: &[&str], limit: Duration) -> Result<Output> {
        let output = Self::command(args)?.output();
        tokio::time::timeout(limit, output)
            .await
            .with_context(|| format!("`shopctl up {args:?}` did not end within {limit:?}"))?
            .context("running shopctl up")
    }

    fn command(args: &[&str]) -> Result<Command> {
        let mut command = Command::new(binary("shopctl")?);
        command.arg("up").args(args);
        if !args.contains(&"--http-addr") {
            command.args(["--http-addr", "127.0.0.1:0"]);
        }
        command
            .env_remove("ORDER_API_ADDR")
            .env_remove("SHOP_POSTGRES_URL")
            .env_remove("OTEL_SERVICE_NAME")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(command)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `path` on its order-api (`/api/orders/…`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The first log line containing `needle`, waiting up to [`crate::DEADLINE`] for it.
    pub async fn logged(&self, needle: &str) -> Result<String> {
        crate::eventually(|| async {
            self.log
                .find(needle)
                .ok_or_else(|| format!("no log line with {needle:?}"))
        })
        .await
    }

    /// Its data directory, as the banner names it (`  data  <dir>`).
    pub fn data_dir(&self) -> Result<PathBuf> {
        self.printed
            .all()
            .iter()
            .find_map(|line| line.trim().strip_prefix("data "))
            .map(|dir| PathBuf::from(dir.trim()))
            .context("no data line in the banner")
    }

    /// Its order-api's order routes.
    pub fn orders(&self) -> Orders {
        Orders::new(&self.http, self.base.clone())
    }

    /// SIGTERM; it must exit successfully within 20 s. Returns everything it printed. Its
    /// `TMPDIR` stays until it is dropped, for a look at what it left there.
    pub async fn stop(&mut self) -> Result<Vec<String>> {
        let pid = self.child.id().context("shopctl up already exited")?;
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        ensure!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let exited = tokio::time::timeout(STOP, self.child.wait())
            .await
            .with_context(|| {
                let log = self.log.all();
                let tail = &log[log.len().saturating_sub(LOG_TAIL)..];
                format!(
                    "shopctl up did not stop within {STOP:?} of SIGTERM; the end of its log:\n{}",
                    tail.join("\n")
                )
            })??;
        ensure!(
            exited.success(),
            "shopctl up exited with {exited}; its log:\n{}",
            self.log.all().join("\n")
        );
        // Its stdout ends with it.
        tokio::time::timeout(STOP, &mut self.stdout_reader)
            .await
            .context("shopctl up's stdout stayed open after it exited")??;
        Ok(self.printed.all())
    }
}
