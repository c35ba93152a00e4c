//! A real browser for the tests: headless Chromium driven over the Chrome DevTools Protocol, so
//! a test can load order-api's pages, let their scripts run, click, type, read cookies and take
//! screenshots — what `chromium --dump-dom` cannot.
//!
//! Deliberately small: the few protocol commands the tests use, over a WebSocket we own
//! ([`cdp`]), rather than a crate that wraps the whole protocol. Every wait has a deadline.
//!
//! ```no_run
//! # async fn example(stack: &saga_tests::Stack) -> anyhow::Result<()> {
//! use saga_tests::Browser;
//!
//! let browser = Browser::launch().await?;
//! let page = browser.new_page().await?;
//! page.goto(&stack.url("/orders/ord_…")).await?;
//! page.wait_for("document.querySelectorAll('li.event').length > 0", saga_tests::DEADLINE)
//!     .await?;
//! page.screenshot("timeline").await?;
//! # Ok(())
//! # }
//! ```

mod cdp;
mod page;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal};
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::DEADLINE;
use cdp::Connection;
pub use page::{Cookie, Key, Page, SameSite};

/// What Chromium prints on stderr once it accepts DevTools connections, before the address.
const LISTENING: &str = "DevTools listening on ";

/// A headless Chromium with a profile of its own. Dropping it kills the browser (with every
/// process it started) and removes the profile; its pages stop working then.
#[derive(Debug)]
pub struct Browser {
    /// The DevTools connection, shared with every [`Page`].
    connection: Arc<Connection>,
    /// Declared last, dropped last: the process outlives the connection to it.
    _process: Process,
}

impl Browser {
    /// Starts [`chromium`] headless on a fresh temporary profile and connects to it. It picks
    /// its own DevTools port (`--remote-debugging-port=0`) and says which on stderr, so
    /// browsers of tests running side by side never clash.
    pub async fn launch() -> Result<Self> {
        let chromium = chromium()?;
        let profile = tempfile::Builder::new().prefix("chromium-").tempdir()?;
        let mut command = Command::new(&chromium);
        command
            .args([
                "--headless",
                "--remote-debugging-port=0",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that the renderers it forks die with it.
            .process_group(0);
        // Chromium refuses to run its sandbox as root (as in a CI container); anyone else keeps it.
        if rustix::process::getuid().is_root() {
            command.arg("--no-sandbox");
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", chromium.display()))?;
        let stderr = child.stderr.take().context("chromium's stderr")?;
        let process = Process {
            child,
            _profile: profile,
        };
        let address = tokio::time::timeout(DEADLINE, devtools_address(stderr))
            .await
            .with_context(|| format!("chromium did not start listening within {DEADLINE:?}"))??;
        let connection = Connection::open(&address).await?;
        Ok(Self {
            connection: Arc::new(connection),
            _process: process,
        })
    }

    /// Opens a new tab on `about:blank`, with its own viewport, history and console.
    pub async fn new_page(&self) -> Result<Page> {
        let created = self
            .connection
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = created["targetId"]
            .as_str()
            .context("Target.createTarget gave no targetId")?;
        let attached = self
            .connection
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session_id = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget gave no sessionId")?;
        Page::attach(Arc::clone(&self.connection), session_id.to_owned()).await
    }
}

/// Chromium's process and its profile directory.
#[derive(Debug)]
struct Process {
    child: Child,
    /// Removed when dropped, after the process group is dead.
    _profile: TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let group = Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
        let _ = self.child.wait();
    }
}

/// Reads Chromium's stderr until it says where DevTools listens, and keeps reading it
/// afterwards on the same thread, so that a full pipe never blocks the browser.
async fn devtools_address(stderr: std::process::ChildStderr) -> Result<String> {
    let (found, address) = oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        let mut before = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            match line.split_once(LISTENING) {
                Some((_, address)) => {
                    if let Some(found) = found.take() {
                        let _ = found.send(Ok(address.trim().to_owned()));
                    }
                }
                None if found.is_some() => before.push(line),
                None => {}
            }
        }
        if let Some(found) = found {
            let _ = found.send(Err(before.join("\n")));
        }
    });
    match address.await {
        Ok(Ok(address)) => Ok(address),
        Ok(Err(stderr)) => bail!("chromium exited before listening for DevTools:\n{stderr}"),
        Err(_) => bail!("chromium's stderr reader stopped"),
    }
}

/// Chromium (on `PATH`, or Debian's), which `scripts/test.sh` installs; a machine without it
/// fails the browser tests rather than skipping them.
fn chromium() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    on_path
        .or_else(|| {
            let debian = Path::new("/usr/bin/chromium");
            debian.is_file().then(|| debian.to_owned())
        })
        .context(
            "Chromium is not installed, and the browser tests drive order-api's pages in \
             headless Chromium. Run scripts/test.sh, which installs it, or install it with \
             `apt-get update && apt-get install -y chromium` (Debian).",
        )
}
