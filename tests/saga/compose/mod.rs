//! `docker-compose.yml` checked without Docker: no Docker engine runs where the tests run, and a
//! compose file that is only ever read by `docker compose up` on a laptop rots silently.
//!
//! The file is read the way Compose reads it (YAML merge keys applied, `${VAR:-default}`
//! interpolated with the defaults, as on a first run without `.env`) and then:
//! - validated against the Compose Specification's JSON schema, vendored in `schemas/vendor`;
//! - every image must be pinned to an exact version;
//! - every environment variable given to our services must be one the code reads — the names
//!   are taken from `crates/**/*.rs`, so there is no second list to keep in sync;
//! - start order and health: `depends_on` targets exist, health conditions point at services
//!   with a healthcheck, one-shot jobs do not restart, no cycles;
//! - each service listens on all interfaces, and its healthcheck and published ports use the
//!   port of its `*_ADDR`;
//! - `.env.example` names every interpolated variable with the same value as the default;
//! - `kafka-init` creates every topic of the code with the code's partition counts;
//! - the Dockerfile builds with the workspace's Rust version and installs the healthcheck tool;
//! - a first run: the image built by one service and never pulled, bind mounts that exist and
//!   carry an SELinux label, cheap healthchecks wherever a service is waited for;
//! - the `monitoring` profile: Prometheus scrapes every service on its port, Grafana's
//!   provisioning loads dashboards that parse and query the provisioned data source.
//!
//! Each check is a function returning the problems it found, so `broken_copies_are_rejected`
//! can show that the same functions catch a broken copy.

mod contents;
mod document;
mod first_run;
mod load;
mod monitoring;
mod ports;
mod source;
mod startup;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde_json::Value;

use saga_tests::repo_root;

use contents::*;
use first_run::{bind_mount_problems, build_problems, healthcheck_problems};
use load::{interpolation_problems, load_compose, parse_env_file};
use ports::*;
use source::{env_names_read_by_code, partition_counts, workspace_binaries};
use startup::*;

/// Variables read by libraries rather than by our code, so no literal in `crates/` names them.
/// Keep this list to third-party names only: every name of ours must come from the code.
const THIRD_PARTY_ENV: &[&str] = &[
    // tracing-subscriber: `EnvFilter::try_from_default_env()` in platform::telemetry.
    "RUST_LOG",
    // The standard library and anyhow: backtraces on panic and on errors.
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    // opentelemetry-otlp 0.33 (gRPC trace exporter) and opentelemetry_sdk 0.33 (resource,
    // sampler, batch span processor, span limits); checked against their sources.
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
];

/// What the checks look at, read from the repository.
struct Project {
    /// docker-compose.yml as written.
    raw: String,
    /// docker-compose.yml as Compose sees it on a first run.
    doc: Value,
    /// `.env.example`'s assignments.
    env_example: BTreeMap<String, String>,
    /// Variables our code and its libraries read.
    known_env: BTreeSet<String>,
}

impl Project {
    fn load() -> Result<Self> {
        let root = repo_root();
        let raw = std::fs::read_to_string(root.join("docker-compose.yml"))?;
        let doc = load_compose(&raw)?;
        let env_example = parse_env_file(&std::fs::read_to_string(root.join(".env.example"))?);
        let mut known_env = env_names_read_by_code(&root.join("crates"))?;
        known_env.extend(THIRD_PARTY_ENV.iter().map(|name| (*name).to_owned()));
        Ok(Self {
            raw,
            doc,
            env_example,
            known_env,
        })
    }
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn compose_file_matches_the_compose_specification() -> Result<()> {
    let project = Project::load()?;
    assert_none(
        "docker-compose.yml against the Compose Specification",
        schema_errors(&project.doc)?,
    );
    Ok(())
}

#[test]
fn images_are_pinned_to_exact_versions() -> Result<()> {
    let project = Project::load()?;
    assert_none("images not pinned", unpinned_images(&project.doc));
    Ok(())
}

#[test]
fn services_get_only_variables_the_code_reads() -> Result<()> {
    let project = Project::load()?;
    // Sanity: the extraction finds names read through each helper, or this test proves nothing.
    for name in [
        "KAFKA_BOOTSTRAP_SERVERS",
        "ORDER_API_ADDR",
        "API_KEYS",
        "CATALOG_PATH",
    ] {
        assert!(project.known_env.contains(name), "extraction missed {name}");
    }
    assert_none(
        "variables no binary reads (a typo, or a setting that does not exist yet)",
        unknown_env_names(&project.doc, &project.known_env),
    );
    Ok(())
}

#[test]
fn services_run_binaries_the_workspace_builds() -> Result<()> {
    let project = Project::load()?;
    let binaries = workspace_binaries(&repo_root())?;
    assert_none(
        "commands that name no binary of the workspace",
        unknown_commands(&project.doc, &binaries),
    );
    Ok(())
}

#[test]
fn services_start_in_order_and_report_health() -> Result<()> {
    let project = Project::load()?;
    assert_none("start order", dependency_problems(&project.doc));
    Ok(())
}

#[test]
fn healthchecks_and_published_ports_use_the_listen_addresses() -> Result<()> {
    let project = Project::load()?;
    assert_none("ports", port_problems(&project.doc));
    assert_none("published ports", exposed_ports(&project.doc));
    Ok(())
}

#[test]
fn env_example_covers_every_interpolated_variable() -> Result<()> {
    let project = Project::load()?;
    assert_none(
        "interpolation",
        interpolation_problems(&project.raw, &project.env_example),
    );
    Ok(())
}

#[test]
fn kafka_init_creates_the_topics_of_the_code() -> Result<()> {
    let project = Project::load()?;
    let partitions = partition_counts(&repo_root().join("crates/embedded-broker/src/lib.rs"))?;
    assert_none("topics", topic_problems(&project.doc, partitions));
    Ok(())
}

#[test]
fn dockerfile_matches_the_workspace_and_the_healthchecks() -> Result<()> {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let project = Project::load()?;
    assert_none(
        "Dockerfile",
        dockerfile_problems(&dockerfile, &manifest, &project.doc),
    );
    Ok(())
}

#[test]
fn the_image_is_built_once_and_never_pulled() -> Result<()> {
    let project = Project::load()?;
    assert_none("building", build_problems(&project.doc));
    Ok(())
}

#[test]
fn bind_mounts_exist_and_carry_an_selinux_label() -> Result<()> {
    let project = Project::load()?;
    assert_none(
        "bind mounts",
        bind_mount_problems(&project.doc, &repo_root()),
    );
    Ok(())
}

#[test]
fn healthchecks_are_cheap_and_present_where_awaited() -> Result<()> {
    let project = Project::load()?;
    assert_none("healthchecks", healthcheck_problems(&project.doc));
    Ok(())
}

#[test]
fn monitoring_scrapes_every_service_and_provisions_the_dashboard() -> Result<()> {
    let project = Project::load()?;
    let root = repo_root();
    let prometheus: Value = serde_norway::from_str(&std::fs::read_to_string(
        root.join(monitoring::PROMETHEUS_CONFIG),
    )?)?;
    assert_none("profiles", monitoring::profile_problems(&project.doc));
    assert_none(
        monitoring::PROMETHEUS_CONFIG,
        monitoring::scrape_problems(&project.doc, &prometheus),
    );
    assert_none(
        "Grafana",
        monitoring::grafana_problems(&project.doc, &root)?,
    );
    Ok(())
}

/// The checks above would pass vacuously if they could not fail: each broken copy must be
/// rejected by the function that guards against that mistake.
#[test]
fn broken_copies_are_rejected() -> Result<()> {
    let project = Project::load()?;
    let partitions = partition_counts(&repo_root().join("crates/embedded-broker/src/lib.rs"))?;
    let broken = |from: &str, to: &str| -> Result<Value> {
        assert!(
            project.raw.contains(from),
            "fixture drifted: {from:?} not in the file"
        );
        load_compose(&project.raw.replacen(from, to, 1))
    };

    let doc = broken("image: apache/kafka:4.1.1", "image: apache/kafka")?;
    assert!(!unpinned_images(&doc).is_empty(), "a missing tag passed");
    let doc = broken(
        "image: jaegertracing/jaeger:2.17.0",
        "image: jaegertracing/jaeger:2",
    )?;
    assert!(!unpinned_images(&doc).is_empty(), "a bare major passed");
    let doc = broken(
        "ghcr.io/kafbat/kafka-ui:v1.5.0",
        "ghcr.io/kafbat/kafka-ui:latest",
    )?;
    assert!(!unpinned_images(&doc).is_empty(), "latest passed");
    let doc = broken("image: postgres:17.6", "image: postgres:17")?;
    assert!(
        !unpinned_images(&doc).is_empty(),
        "a bare Postgres major passed"
    );

    let doc = broken("ORDER_API_DB:", "ORDER_API_DATABASE:")?;
    assert!(
        unknown_env_names(&doc, &project.known_env)
            .iter()
            .any(|problem| problem.contains("ORDER_API_DATABASE")),
        "an unknown variable passed"
    );

    let doc = broken(
        "condition: service_completed_successfully",
        "condition: service_completed",
    )?;
    assert!(
        !schema_errors(&doc)?.is_empty(),
        "an unknown depends_on condition passed the schema"
    );
    let doc = broken("    restart: \"no\"", "    restart_policy: \"no\"")?;
    assert!(
        !schema_errors(&doc)?.is_empty(),
        "an unknown service key passed the schema"
    );
    let doc = broken("stop_grace_period: 15s", "stop_grace_period: [15]")?;
    assert!(
        !schema_errors(&doc)?.is_empty(),
        "a list where a duration goes passed the schema"
    );

    let doc = broken(
        "psp-sim:\n        condition: service_healthy",
        "psp-sim-typo:\n        condition: service_healthy",
    )?;
    assert!(
        !dependency_problems(&doc).is_empty(),
        "a missing depends_on target passed"
    );
    let doc = broken(
        "test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:13133/status\"]",
        "disable: true",
    )?;
    assert!(
        !dependency_problems(&doc).is_empty(),
        "health condition on a service without healthcheck passed"
    );

    let doc = broken(
        "kafka-init:\n    condition: service_completed_successfully",
        "kafka-init:\n    condition: service_started",
    )?;
    assert!(
        dependency_problems(&doc).len() >= 2,
        "services starting before the topics exist, and an unawaited one-shot job, passed"
    );

    let doc = broken(
        "http://127.0.0.1:8081/readyz",
        "http://127.0.0.1:8080/readyz",
    )?;
    assert!(
        !port_problems(&doc).is_empty(),
        "a healthcheck on the wrong port passed"
    );
    let doc = broken(
        "${ORDER_API_PORT:-8080}:8080",
        "${ORDER_API_PORT:-8080}:9999",
    )?;
    assert!(
        !port_problems(&doc).is_empty(),
        "a published port nobody listens on passed"
    );
    let doc = broken(
        "${PUBLISH_ADDRESS:-127.0.0.1}:${KAFKA_HOST_PORT:-9094}:9094",
        "${KAFKA_HOST_PORT:-9094}:9094",
    )?;
    assert!(
        !exposed_ports(&doc).is_empty(),
        "Kafka published on every interface passed"
    );
    let doc = broken(
        "INVENTORY_SVC_ADDR: 0.0.0.0:8082",
        "INVENTORY_SVC_ADDR: 127.0.0.1:8082",
    )?;
    assert!(
        !port_problems(&doc).is_empty(),
        "a loopback-only listener passed"
    );

    let raw = project
        .raw
        .replacen("${LOG_FORMAT:-text}", "${LOG_STYLE:-text}", 1);
    assert!(
        !interpolation_problems(&raw, &project.env_example).is_empty(),
        "an undocumented variable passed"
    );
    let raw = project
        .raw
        .replacen("${RUST_LOG:-info,rdkafka=warn}", "${RUST_LOG:-debug}", 1);
    assert!(
        !interpolation_problems(&raw, &project.env_example).is_empty(),
        "a default differing from .env.example passed"
    );

    let doc = broken(
        "--topic payments --partitions 8",
        "--topic payments --partitions 4",
    )?;
    assert!(
        !topic_problems(&doc, partitions).is_empty(),
        "a wrong partition count passed"
    );
    let doc = broken("--topic inventory.dlq", "--topic inventory-dlq")?;
    assert!(
        !topic_problems(&doc, partitions).is_empty(),
        "a missing topic passed"
    );
    Ok(())
}

/// Likewise for the first-run and monitoring checks.
#[test]
fn broken_first_run_copies_are_rejected() -> Result<()> {
    let project = Project::load()?;
    let root = repo_root();
    let broken = |from: &str, to: &str| -> Result<Value> {
        assert!(
            project.raw.contains(from),
            "fixture drifted: {from:?} not in the file"
        );
        load_compose(&project.raw.replacen(from, to, 1))
    };

    let doc = broken(
        "  pull_policy: never\n",
        "  pull_policy: never\n  build: .\n",
    )?;
    assert!(
        !build_problems(&doc).is_empty(),
        "a build per service passed"
    );
    let doc = broken("  pull_policy: never\n", "")?;
    assert!(
        !build_problems(&doc).is_empty(),
        "pulling the local image passed"
    );

    let doc = broken("init.sh:ro,z", "init.sh:ro")?;
    assert!(
        !bind_mount_problems(&doc, &root).is_empty(),
        "an unlabelled bind mount passed"
    );
    let doc = broken("./deploy/postgres/init.sh:", "./deploy/postgres/setup.sh:")?;
    assert!(
        !bind_mount_problems(&doc, &root).is_empty(),
        "a missing bind mount source passed"
    );

    let doc = broken(
        "test: [\"CMD\", \"bash\", \"-c\", \"exec 3<>/dev/tcp/127.0.0.1/9092\"]",
        "test: [\"CMD-SHELL\", \"/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9092\"]",
    )?;
    assert!(
        !healthcheck_problems(&doc).is_empty(),
        "a JVM started every 10 s passed"
    );

    let prometheus = std::fs::read_to_string(root.join(monitoring::PROMETHEUS_CONFIG))?;
    for (from, to, what) in [
        (
            "\"payment-svc:8081\"",
            "\"payment-svc:8080\"",
            "a scrape of the wrong port",
        ),
        (
            "\"inventory-svc:8082\"",
            "\"inventory:8082\"",
            "a scrape of no service",
        ),
    ] {
        assert!(prometheus.contains(from), "fixture drifted: {from:?}");
        let config: Value = serde_norway::from_str(&prometheus.replacen(from, to, 1))?;
        assert!(
            !monitoring::scrape_problems(&project.doc, &config).is_empty(),
            "{what} passed"
        );
    }
    let doc = broken("profiles: [\"monitoring\"]", "profiles: [\"tools\"]")?;
    assert!(
        !monitoring::profile_problems(&doc).is_empty(),
        "monitoring outside its profile passed"
    );
    let doc = broken(
        ":/var/lib/grafana/dashboards:ro,z",
        ":/etc/grafana/dashboards:ro,z",
    )?;
    assert!(
        !monitoring::grafana_problems(&doc, &root)?.is_empty(),
        "dashboards mounted where no provider reads passed"
    );
    Ok(())
}
