//! README's quick start, run as a newcomer runs it: `shopctl up`, README's own `curl` body, and
//! then every answer README shows — the `202` and its body, the transitions on the event
//! stream, the order's total — checked against what the real binary answers. README cannot
//! drift from the product without this failing.
//!
//! README talks to `localhost:8080`; the test starts `shopctl up --http-addr 127.0.0.1:0`, so
//! the system picks a free port, and reads the address from the `ready` line.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde_json::Value;

use saga_tests::{DEADLINE, Order, ShopUp, Status, read_sse, repo_root};

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
        quick.transitions.last(),
        Some(&Status::Confirmed),
        "{quick:?}"
    );

    // README's quick start runs on SQLite, on a free port instead of README's.
    let mut shop = ShopUp::start(&[], &[]).await?;
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
        let update = event.update()?;
        assert_eq!(update.order_id.to_string(), order_id, "{update:?}");
        statuses.push(update.transition.status);
    }
    assert_eq!(statuses, quick.transitions);

    let order: Order = http
        .get(shop.url(&ours(&quick.order_path)))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(order.status, Status::Confirmed, "{order}");
    assert_eq!(order.total_major, quick.total, "{order}");
    assert_eq!(order.total.currency.as_str(), quick.currency, "{order}");

    // It stops cleanly.
    shop.stop().await?;
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
    transitions: Vec<Status>,
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
                .map(|status| Ok(serde_json::from_value(Value::from(status.trim()))?))
                .collect::<Result<_>>()?,
            order_path: find(&format!(r"(?m)^curl -s {addr}(\S+)"), section)?,
            total: find(r#""total":([0-9.]+)"#, section)?.parse()?,
            currency: find(r#""currency":"([A-Z]{3})""#, section)?,
        })
    }
}
