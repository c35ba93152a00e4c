//! Every metric a running service serves follows Prometheus's conventions ("Metric and label
//! naming", "Writing exporters"): each family has a `# HELP` line saying what it measures, only
//! counters end in `_total`, and a family whose HELP names seconds says so in its name.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use saga_tests::{Stack, Status, eventually, metric_total};

/// The families of a scrape: name → type (from `# TYPE`), and the names with a `# HELP` line.
fn families(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                types.insert(name.to_owned(), kind.to_owned());
            }
            (Some("#"), Some("HELP"), Some(name), help) => {
                helps.insert(name.to_owned(), help.unwrap_or_default().to_owned());
            }
            _ => {}
        }
    }
    (types, helps)
}

/// The family a sample line belongs to: its name without a histogram's `_bucket`, `_sum` or
/// `_count`.
fn family_of<'a>(sample: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    let name = sample.split(['{', ' ']).next().unwrap_or_default();
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|family| types.get(*family).is_some_and(|t| t == "histogram"))
        .unwrap_or(name)
}

fn check(service: &str, text: &str) {
    let (types, helps) = families(text);
    assert!(!types.is_empty(), "{service} serves no metric:\n{text}");
    let samples: BTreeSet<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| family_of(line, &types))
        .collect();
    for family in samples {
        assert!(
            types.contains_key(family),
            "{service}: {family} has no # TYPE line"
        );
    }
    for (name, kind) in &types {
        let help = helps.get(name).map(String::as_str).unwrap_or_default();
        assert!(
            !help.trim().is_empty(),
            "{service}: {name} ({kind}) has no # HELP line"
        );
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{service}: {name} is a {kind}; only counters end in _total"
        );
        if help.contains("in seconds") {
            assert!(
                name.ends_with("_seconds"),
                "{service}: {name} measures seconds but does not say so"
            );
        }
    }
}

#[tokio::test]
async fn every_metric_served_has_help_and_only_counters_end_in_total() -> Result<()> {
    let stack = Stack::start().await?;
    // A saga that ends makes the series that exist only once something happened.
    let order_id = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    assert_eq!(
        stack.wait_terminal(&order_id).await?.status,
        Status::Confirmed
    );
    let order_metrics = eventually(|| async {
        let text = stack
            .metrics(&stack.order_api)
            .await
            .map_err(|error| format!("{error:#}"))?;
        if metric_total(&text, "saga_duration_seconds_count", &[]) >= 1.0 {
            Ok(text)
        } else {
            Err(format!("no saga ended yet: {text}"))
        }
    })
    .await?;
    check("order-api", &order_metrics);
    // The gauge of stored orders is not a counter's name.
    assert!(
        order_metrics
            .lines()
            .any(|line| line.starts_with("orders ")),
        "{order_metrics}"
    );
    for (name, service) in [
        ("payment-svc", &stack.payment),
        ("inventory-svc", &stack.inventory),
        ("psp-sim", &stack.psp),
    ] {
        check(name, &stack.metrics(service).await?);
    }
    Ok(())
}
