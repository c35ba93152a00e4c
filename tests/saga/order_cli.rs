//! `shopctl order` as scripts use it: the real binary against a running stack, its JSON lines
//! parsed, its exit status the saga's outcome (0 confirmed, 3 cancelled, 1 error, 2 usage).

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use saga_tests::Stack;

/// How long one command may take; a saga ends within a few seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `shopctl order <args>` with `ORDER_API_URL` set to `url`; without one, to a port nothing
/// listens on, so that only an explicit `--url` (or no request at all) can succeed.
async fn order(url: Option<&str>, args: &[&str]) -> Result<Output> {
    let mut command = tokio::process::Command::new(saga_tests::binary("shopctl")?);
    command
        .arg("order")
        .args(args)
        .env_remove("ORDER_API_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .env("ORDER_API_URL", url.unwrap_or("http://127.0.0.1:9"))
        .kill_on_drop(true);
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .with_context(|| format!("shopctl order {args:?} still running after {PATIENCE:?}"))?
        .context("running shopctl")
}

/// Each line of stdout as JSON.
fn json_lines(output: &Output) -> Result<Vec<Value>> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Places one order in the form docs/client.md promises scripts (`--url` given, which wins
/// over `ORDER_API_URL`); returns the transitions, the final order and the exit status.
async fn place_watching(url: &str, payment_method: &str) -> Result<(Vec<Value>, Value, i32)> {
    let output = order(
        None,
        &[
            "place",
            "--url",
            url,
            "--sku",
            "WIDGET-42:2",
            "--payment-method",
            payment_method,
            "--watch",
            "--json",
        ],
    )
    .await?;
    let mut lines = json_lines(&output)?;
    let last = lines
        .pop()
        .with_context(|| format!("no output; stderr: {}", stderr(&output)))?;
    let code = output.status.code().context("killed by a signal")?;
    Ok((lines, last, code))
}

#[tokio::test]
async fn order_commands_place_follow_read_and_list_through_the_real_binary() -> Result<()> {
    let stack = Stack::start().await?;
    let url = stack.url("");

    // Confirmed: one line per transition, in order, then the final order; exit 0.
    let (transitions, last, code) = place_watching(&url, "pm_visa_4242").await?;
    assert_eq!(code, 0, "{last}");
    assert_eq!(last["status"], "confirmed", "{last}");
    assert_eq!(last["total_minor"], 4998, "{last}");
    let order_id = last["order_id"].as_str().context("order_id")?.to_owned();
    let moves: Vec<&str> = transitions
        .iter()
        .map(|t| t["to"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        moves,
        [
            "pending",
            "payment_processing",
            "payment_confirmed",
            "confirmed"
        ]
    );
    assert!(
        transitions
            .iter()
            .all(|t| t["order_id"] == order_id.as_str())
    );

    // Declined: cancelled with its reason, exit 3.
    let (_, last, code) = place_watching(&url, "pm_card_declined").await?;
    assert_eq!(last["status"], "cancelled", "{last}");
    assert_eq!(last["cancellation_reason"], "payment_declined", "{last}");
    assert_eq!(code, 3, "a cancelled order exits 3");

    // `get` prints the order and exits 0 when it could be read.
    let got = order(Some(&url), &["get", &order_id, "--json"]).await?;
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
    let lines = json_lines(&got)?;
    assert_eq!(lines.len(), 1, "one line, the order: {lines:?}");
    let read = &lines[0];
    assert_eq!(read["order_id"], order_id.as_str());
    assert_eq!(read["status"], "confirmed");
    assert_eq!(read["history"].as_array().map(Vec::len), Some(4));

    // `list` includes it, and `--status` filters.
    let listed = order(Some(&url), &["list", "--all", "--json"]).await?;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let listed = json_lines(&listed)?;
    assert_eq!(listed.len(), 2, "both orders: {listed:?}");
    assert!(listed.iter().any(|o| o["order_id"] == order_id.as_str()));
    let cancelled =
        json_lines(&order(Some(&url), &["list", "--status", "cancelled", "--json"]).await?)?;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["status"], "cancelled");

    // An order that does not exist: the problem on stderr, nothing on stdout, exit 1.
    let unknown = order(Some(&url), &["get", "ord_0190aaaa000070008000000000000000"]).await?;
    let message = stderr(&unknown);
    assert_eq!(unknown.status.code(), Some(1), "{message}");
    assert!(unknown.stdout.is_empty());
    assert!(
        message.starts_with("error: ") && message.to_lowercase().contains("not found"),
        "{message}"
    );

    // An order the API refuses: the field at fault is named, exit 1.
    let refused = order(
        Some(&url),
        &[
            "place",
            "--sku",
            "NOPE-1:1",
            "--payment-method",
            "pm_visa_4242",
        ],
    )
    .await?;
    let message = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{message}");
    ensure!(
        message.contains("\n  field: items[0].sku"),
        "lists the field: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_malformed_sku_is_a_usage_error() -> Result<()> {
    for sku in ["WIDGET-42:many", "WIDGET-42:0", "widget 42"] {
        let output = order(
            None,
            &["place", "--sku", sku, "--payment-method", "pm_visa_4242"],
        )
        .await?;
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{sku}: {message}");
        assert!(output.stdout.is_empty());
        assert!(message.contains("--sku"), "names the option: {message}");
    }
    Ok(())
}
