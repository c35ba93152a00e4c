//! The `monitoring` profile's configuration, read without Docker: Prometheus scrapes every
//! shop service on the port it listens on, and Grafana's provisioning loads dashboards that
//! parse and query the provisioned data source. That each metric a panel queries exists is
//! checked against running services (`tests/saga/dashboard.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::document::services;
use super::ports::listen_addrs;

/// The file Prometheus is given, as mounted in docker-compose.yml.
pub(super) const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
/// Where the dashboards are, and where Grafana's provisioning looks for them.
pub(super) const DASHBOARDS: &str = "deploy/grafana/dashboards";
const PROVISIONING: &str = "deploy/grafana/provisioning";

fn yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

/// Both monitoring services exist, only in the `monitoring` profile (a plain `up` stays lean).
pub(super) fn profile_problems(doc: &Value) -> Vec<String> {
    let all = services(doc);
    ["prometheus", "grafana"]
        .into_iter()
        .filter_map(|name| match all.get(name) {
            None => Some(format!("no {name} service")),
            Some(service) if service["profiles"] != serde_json::json!(["monitoring"]) => {
                Some(format!(
                    "{name} is not in (only) the monitoring profile: {}",
                    service["profiles"]
                ))
            }
            Some(_) => None,
        })
        .collect()
}

/// Every service of ours scraped at `<service>:<port of its *_ADDR>` under a job named after
/// it (the dashboard groups by `job`), and no target that is none of ours.
pub(super) fn scrape_problems(doc: &Value, prometheus: &Value) -> Vec<String> {
    let (addrs, mut problems) = listen_addrs(doc);
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = job["job_name"].as_str().unwrap_or_default();
        let path = job["metrics_path"].as_str().unwrap_or("/metrics");
        let targets = job["static_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|config| config["targets"].as_array().into_iter().flatten())
            .filter_map(Value::as_str);
        for target in targets {
            let (host, port) = target.rsplit_once(':').unwrap_or((target, ""));
            match addrs.get(host) {
                Some(addr) if port == addr.port().to_string() && path == "/metrics" => {
                    scraped.insert(host.to_owned());
                    if name != host {
                        problems.push(format!("job {name} scrapes {target}: name the job {host}"));
                    }
                }
                Some(addr) => problems.push(format!(
                    "job {name} scrapes {target}{path}, but {host} serves /metrics on port {}",
                    addr.port()
                )),
                None => problems.push(format!(
                    "job {name} scrapes {target}, which is no service of ours"
                )),
            }
        }
    }
    for service in addrs.keys().filter(|name| !scraped.contains(*name)) {
        problems.push(format!("{service} is not scraped"));
    }
    problems
}

/// The dashboards of `DASHBOARDS`, parsed.
pub(super) fn dashboards(root: &Path) -> Result<Vec<(String, Value)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join(DASHBOARDS))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path)?;
            let dashboard = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            found.push((path.display().to_string(), dashboard));
        }
    }
    Ok(found)
}

/// Grafana's provisioning: a data source per `uid` the panels name, a dashboard provider
/// reading the directory the dashboards are mounted at, and panels that each query something.
pub(super) fn grafana_problems(doc: &Value, root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for entry in std::fs::read_dir(root.join(PROVISIONING).join("datasources"))? {
        let file = yaml(&entry?.path())?;
        for source in file["datasources"].as_array().into_iter().flatten() {
            uids.insert(source["uid"].as_str().unwrap_or_default().to_owned());
        }
    }
    let mounted_at = services(doc)
        .get("grafana")
        .and_then(|grafana| grafana["volumes"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|volume| {
            let mut parts = volume.split(':');
            (parts.next()? == format!("./{DASHBOARDS}")).then(|| parts.next())?
        });
    let mut provided = Vec::new();
    for entry in std::fs::read_dir(root.join(PROVISIONING).join("dashboards"))? {
        let file = yaml(&entry?.path())?;
        for provider in file["providers"].as_array().into_iter().flatten() {
            provided.extend(provider["options"]["path"].as_str().map(str::to_owned));
        }
    }
    match mounted_at {
        Some(path) if provided.iter().any(|p| p == path) => {}
        other => problems.push(format!(
            "{DASHBOARDS} is mounted at {other:?}, but the providers read {provided:?}"
        )),
    }
    let dashboards = dashboards(root)?;
    if dashboards.is_empty() {
        problems.push(format!("no dashboard in {DASHBOARDS}"));
    }
    for (file, dashboard) in &dashboards {
        let panels = dashboard["panels"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if panels.is_empty() {
            problems.push(format!("{file}: no panels"));
        }
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            let uid = panel["datasource"]["uid"].as_str().unwrap_or_default();
            if !uids.contains(uid) {
                problems.push(format!(
                    "{file}: panel {title:?} uses data source {uid:?}, provisioned are {uids:?}"
                ));
            }
            let exprs = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|target| {
                    target["expr"]
                        .as_str()
                        .is_some_and(|e| !e.trim().is_empty())
                })
                .count();
            if exprs == 0 {
                problems.push(format!("{file}: panel {title:?} queries nothing"));
            }
        }
    }
    Ok(problems)
}
