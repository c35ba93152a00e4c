//! README's quick start, run as a newcomer runs it: `shopctl up`, README's own `curl` body, and
//! then every answer README shows — the `202` and its body, the transitions on the event
//! stream, the order's total — checked against what the real binary answers. README cannot
//! drift from the product without this failing.
//!
//! README talks to `localhost:8080`; the test starts `shopctl up --http-addr 127.0.0.1:0`, so
//! the system picks a free port, and reads the address from the `ready` line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde_json::Value;

use saga_tests::{DEADLINE, read_sse, repo_root};

/// How README writes an order id it cannot know.
const PLACEHOLDER: &str = "ord_01a2…";
/// Where README's `curl`s send their requests.
const README_ADDR: &str = "localhost:8080";

#[tokio::test]
async fn the_quick_start_does_what_readme_says() -> Result<()> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    assert_eq!(
        opening_commands(&readme)?,
        ["cargo run --release -p shopctl -- up", "scripts/test.sh"],
        "README must open with the command that runs the shop and the one that tests it"
    );
    let quick = QuickStart::parse(&readme)?;
    assert_eq!(
        quick.transitions.last().map(String::as_str),
        Some("confirmed"),
        "{quick:?}"
    );

    let dir = tempfile::Builder::new().prefix("readme-test-").tempdir()?;
    let mut shop = ShopUp::start(dir.path()).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // Place the order with README's body, as its `curl` does.
    let response = http
        .post(shop.url(&quick.post_path))
        .header("content-type", "application/json")
        .body(quick.body.clone())
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), quick.status, "{quick:?}");
    let location = response
        .headers()
        .get("location")
        .context("no location header")?
        .to_str()?
        .to_owned();
    let accepted: Value = response.json().await?;
    let order_id = accepted["order_id"]
        .as_str()
        .context("no order_id in the answer")?
        .to_owned();
    assert!(order_id.starts_with("ord_"), "{accepted}");
    let ours = |documented: &str| documented.replace(PLACEHOLDER, &order_id);
    assert_eq!(location, ours(&quick.location));
    let documented: Value = serde_json::from_str(&ours(&quick.accepted))
        .with_context(|| format!("README's answer is not JSON: {}", quick.accepted))?;
    assert_eq!(accepted, documented);

    // The stream replays what happened, follows the rest, and ends with the saga.
    let (events, _) = read_sse(&http, &shop.url(&ours(&quick.events_path)), DEADLINE).await?;
    let mut statuses = Vec::new();
    for event in &events {
        assert_eq!(event.event, "status_update", "{event:?}");
        let update: Value = serde_json::from_str(&event.data)?;
        assert_eq!(update["order_id"], order_id.as_str(), "{update}");
        statuses.push(update["status"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(statuses, quick.transitions);

    let order: Value = http
        .get(shop.url(&ours(&quick.order_path)))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["total"].as_f64(), Some(quick.total), "{order}");
    assert_eq!(order["currency"], quick.currency.as_str(), "{order}");

    let stopped = shop.terminate().await?;
    assert!(
        stopped.success(),
        "shopctl up did not stop cleanly: {stopped}"
    );
    Ok(())
}

/// The commands of README's first code block, which must come right after the title.
fn opening_commands(readme: &str) -> Result<Vec<String>> {
    let mut lines = readme
        .lines()
        .skip(1)
        .skip_while(|line| line.trim().is_empty());
    if lines.next() != Some("```sh") {
        bail!("README's title is not followed by a ```sh block");
    }
    Ok(lines
        .take_while(|line| !line.starts_with("```"))
        .map(|line| {
            line.split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|command| !command.is_empty())
        .collect())
}

/// What README's quick start does and shows.
#[derive(Debug)]
struct QuickStart {
    /// The path the first `curl -si -X POST` sends to.
    post_path: String,
    /// Its `-d` body, verbatim.
    body: String,
    /// The status code shown (`# HTTP/1.1 202 Accepted`).
    status: u16,
    /// The `location` shown.
    location: String,
    /// The JSON body shown.
    accepted: String,
    /// The path of the `curl -sN` that follows the event stream.
    events_path: String,
    /// The transitions named in the text (`pending → … → confirmed`).
    transitions: Vec<String>,
    /// The path of the `curl -s` that reads the order.
    order_path: String,
    /// The order's `"total"` and `"currency"` shown.
    total: f64,
    currency: String,
}

impl QuickStart {
    fn parse(readme: &str) -> Result<Self> {
        let start = readme
            .find("\n## Quick start\n")
            .context("README has no `## Quick start`")?;
        let section = &readme[start + 1..];
        let section = &section[..section[1..]
            .find("\n## ")
            .map_or(section.len(), |end| end + 1)];
        let lines: Vec<&str> = section.lines().collect();
        let post = lines
            .iter()
            .position(|line| line.starts_with("curl -si -X POST"))
            .context("no `curl -si -X POST` in the quick start")?;
        // The command with its continuation lines, then the answer shown as comments.
        let mut command = String::new();
        let mut rest = lines[post..].iter();
        for line in rest.by_ref() {
            command.push_str(line.trim_end_matches('\\'));
            if !line.ends_with('\\') {
                break;
            }
        }
        let shown: Vec<&str> = rest.map_while(|line| line.strip_prefix("# ")).collect();
        let find = |pattern: &str, text: &str| -> Result<String> {
            Regex::new(pattern)?
                .captures(text)
                .map(|captures| captures[1].to_owned())
                .with_context(|| format!("`{pattern}` not found in README's quick start"))
        };
        let shown_text = shown.join("\n");
        let addr = regex::escape(README_ADDR);
        Ok(Self {
            post_path: find(&format!(r"-X POST {addr}(\S+)"), &command)?,
            body: find(r"-d '([^']*)'", &command)?,
            status: find(r"(?m)^HTTP/1\.1 (\d{3})\b", &shown_text)?.parse()?,
            location: find(r"(?m)^location: (\S+)", &shown_text)?,
            accepted: find(r"(?m)^(\{.*\})$", &shown_text)?,
            events_path: find(&format!(r"(?m)^curl -sN {addr}(\S+)"), section)?,
            transitions: find(r"`([a-z_]+(?:\s+→\s+[a-z_]+)+)`", section)?
                .split('→')
                .map(|status| status.trim().to_owned())
                .collect(),
            order_path: find(&format!(r"(?m)^curl -s {addr}(\S+)"), section)?,
            total: find(r#""total":([0-9.]+)"#, section)?.parse()?,
            currency: find(r#""currency":"([A-Z]{3})""#, section)?,
        })
    }
}

/// `shopctl up` as a child process; killed if the test ends before stopping it.
struct ShopUp {
    child: Child,
    /// `http://127.0.0.1:<port>` of order-api, from the `ready` line.
    base: String,
}

impl ShopUp {
    /// Starts `shopctl up` on a free loopback port and waits for its `ready` line.
    async fn start(dir: &Path) -> Result<Self> {
        let log = dir.join("shopctl-up.log");
        let mut child = Command::new(saga_tests::binary("shopctl")?)
            .args(["up", "--http-addr", "127.0.0.1:0"])
            // Its data directory goes under the system's temporary directory: ours.
            .env("TMPDIR", dir)
            // README's quick start runs on SQLite.
            .env_remove("SHOP_POSTGRES_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting shopctl up")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (ready, ready_line) = tokio::sync::oneshot::channel();
        // Reads stdout to its end, so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("ready")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(line);
                }
            }
        });
        let mut shop = Self {
            child,
            base: String::new(),
        };
        let line = tokio::time::timeout(Duration::from_secs(60), ready_line)
            .await
            .context("shopctl up did not print `ready` within 60 s")?
            .with_context(|| format!("shopctl up exited before `ready`; see {}", log.display()))?;
        shop.base = Regex::new(r"http://[^/\s]+")?
            .find(&line)
            .with_context(|| format!("no URL in the ready line: {line}"))?
            .as_str()
            .to_owned();
        Ok(shop)
    }

    /// README's `localhost:8080` path, on this shop.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits (at most 20 s) for the process to exit.
    async fn terminate(&mut self) -> Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            bail!("kill -TERM failed: {sent}");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("shopctl up did not stop within 20 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ShopUp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
