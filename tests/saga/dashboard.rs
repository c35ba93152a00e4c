//! The Grafana dashboard of the `monitoring` compose profile queries only metrics the services
//! serve: a renamed metric otherwise leaves a panel that reads "No data" forever, and nothing
//! fails. The metric names are taken from every panel's PromQL, and looked up in the `/metrics`
//! of a running stack after a saga has ended and a message was dead-lettered (the series that
//! exist only once something happened).

use std::collections::BTreeSet;

use anyhow::Result;
use regex::Regex;
use serde_json::Value;

use saga_tests::{Stack, eventually, repo_root};

const DASHBOARDS: &str = "deploy/grafana/dashboards";

/// Every PromQL expression of the dashboards' panels.
fn dashboard_queries() -> Result<Vec<String>> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(repo_root().join(DASHBOARDS))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let targets = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|panel| panel["targets"].as_array().into_iter().flatten());
        queries.extend(targets.filter_map(|target| target["expr"].as_str().map(str::to_owned)));
    }
    Ok(queries)
}

/// The metric names a PromQL expression reads: the identifiers left once strings, label
/// matchers, range selectors and `by (…)` / `without (…)` groupings are taken out, except
/// function names (followed by `(`) and the language's keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strip = [
        r#""(?:[^"\\]|\\.)*""#,
        r"\{[^}]*\}",
        r"\[[^\]]*\]",
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
    ];
    let mut rest = expr.to_owned();
    for pattern in strip {
        rest = Regex::new(pattern)
            .expect("valid regex")
            .replace_all(&rest, " ")
            .into_owned();
    }
    let keywords = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    Regex::new(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
        .expect("valid regex")
        .captures_iter(&rest)
        .filter(|found| found.get(2).is_none())
        .map(|found| found[1].to_owned())
        .filter(|name| !keywords.contains(&name.as_str()))
        .collect()
}

/// The metric names in a Prometheus text exposition.
fn served_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, outcome) (rate(saga_duration_seconds_bucket{job="order-api"}[5m]))) / on (job) group_left max(up)"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["saga_duration_seconds_bucket".to_owned(), "up".to_owned()])
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_served() -> Result<()> {
    let queried: BTreeSet<String> = dashboard_queries()?
        .iter()
        .flat_map(|expr| metric_names(expr))
        .collect();
    assert!(
        queried.contains("saga_duration_seconds_bucket"),
        "the dashboard queries: {queried:?}"
    );

    let stack = Stack::start().await?;
    let order = stack.place_order("WIDGET-42", 1, "pm_visa_4242").await?;
    stack.wait_terminal(&order).await?;
    stack
        .kafka()?
        .produce("payments", b"ord_poison", b"{not json", &[])
        .await?;

    let services = [
        &stack.order_api,
        &stack.payment,
        &stack.inventory,
        &stack.psp,
    ];
    eventually(|| async {
        let mut served = BTreeSet::new();
        for service in services {
            let exposition = stack.metrics(service).await.map_err(|e| e.to_string())?;
            served.extend(served_names(&exposition));
        }
        let missing: Vec<&String> = queried.difference(&served).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the dashboard queries metrics no service serves: {missing:?}"
            ))
        }
    })
    .await
}
