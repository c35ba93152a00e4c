//! `docs/configuration.md` is generated from the binaries' own command-line definitions (the
//! clap `Config` of each service and `shopctl up`'s options), so the reference cannot drift
//! from what the programs read: this test fails when the page differs from what the code
//! declares. `UPDATE_DOCS=1 cargo test -p saga-tests --test saga configuration` rewrites it.

use std::fmt::Write as _;

use anyhow::Result;
use clap::{Arg, Command, CommandFactory};

/// The help headings of the settings every service shares (see `platform::config::Common`).
const SHARED: [&str; 5] = ["Kafka", "Kafka consumer", "Database", "Runtime", "Logs"];

const INTRO: &str = "\
# Configuration

<!-- Generated from the programs' command-line definitions by tests/saga/configuration.rs:
     edit the doc comments of the `Config` structs, then run
     `UPDATE_DOCS=1 cargo test -p saga-tests --test saga configuration`. -->

Every setting of every program is a command-line argument and an environment variable; an
argument wins over its variable, and a variable set to the empty string counts as unset. Each
binary lists its own with `--help` (`cargo run -p order-api -- --help`, `shopctl up --help`)
and answers `--version`; neither starts anything. The same binaries run against the embedded
broker and Apache Kafka: only `KAFKA_BOOTSTRAP_SERVERS` changes.

Secrets (API keys, webhook secrets, database URLs) never appear in logs or `Debug` output.

Beyond the table:

- `KAFKA_CLIENT_<NAME>` (every service and `shopctl dlq`): the librdkafka property `<name>`
  (`KAFKA_CLIENT_SECURITY_PROTOCOL` → `security.protocol`), for TLS, SASL and other cluster
  settings; `--kafka-client name=value` gives the same and wins.
- `PGSSLROOTCERT` (libpq's variable): with `?sslmode=require` in a Postgres URL the connection
  uses TLS, and the server's certificate must chain to the system's roots or to a certificate
  in this PEM file and name the URL's host; without `sslmode=require` connections are plain TCP.
- `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, … (OpenTelemetry's
  standard variables): trace export by OTLP/gRPC when an endpoint is set, none otherwise (see
  [Observability](observability.md)).
";

/// One table row per setting of `command` whose help heading `keep` accepts.
fn table(command: &mut Command, keep: impl Fn(Option<&str>) -> bool) -> String {
    command.build();
    let mut out = String::from("| variable | argument | default | meaning |\n|---|---|---|---|\n");
    for arg in command.get_arguments() {
        if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
            continue;
        }
        if !keep(arg.get_help_heading()) {
            continue;
        }
        let _ = writeln!(out, "{}", row(arg));
    }
    out
}

fn row(arg: &Arg) -> String {
    let variable = arg.get_env().map_or_else(
        || "—".to_owned(),
        |name| format!("`{}`", name.to_string_lossy()),
    );
    let flag = arg
        .get_long()
        .map_or_else(|| arg.get_id().to_string(), |long| format!("`--{long}`"));
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|value| value.to_string_lossy().into_owned())
        .filter(|value| !value.is_empty())
        .collect();
    let default = if defaults.is_empty() {
        "—".to_owned()
    } else {
        format!("`{}`", defaults.join(","))
    };
    let help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "| {variable} | {flag} | {default} | {} |",
        help.replace('|', "\\|")
    )
}

/// `shopctl up`'s options, as a command of their own.
#[derive(clap::Parser)]
#[command(name = "up")]
struct Up {
    #[command(flatten)]
    options: shopctl::up::UpOptions,
}

fn reference() -> String {
    let mut page = String::from(INTRO);
    let shared = |heading: Option<&str>| heading.is_some_and(|heading| SHARED.contains(&heading));
    let own = |heading: Option<&str>| !shared(heading);
    let _ = write!(
        page,
        "\n## Every service\n\nKafka, consumer, database, runtime and log settings, read by \
         order-api, payment-svc and inventory-svc (psp-sim reads only the log settings).\n\n{}",
        table(&mut order_api::Config::command(), shared)
    );
    for (name, mut command) in [
        ("order-api", order_api::Config::command()),
        ("payment-svc", payment_svc::Config::command()),
        ("inventory-svc", inventory_svc::Config::command()),
        ("psp-sim", psp_sim::Config::command()),
    ] {
        let _ = write!(page, "\n## {name}\n\n{}", table(&mut command, own));
    }
    let _ = write!(
        page,
        "\n## shopctl up\n\nIts own options below; it also takes every service setting above \
         (one service's address and database excepted, which it chooses), so the same variables \
         configure it. `shopctl bench`, `dlq`, `order` and `broker` list theirs with `--help`.\n\n{}",
        table(&mut Up::command(), |heading| heading.is_none())
    );
    page
}

#[test]
fn the_configuration_reference_is_what_the_programs_declare() -> Result<()> {
    let path = saga_tests::repo_root().join("docs/configuration.md");
    let generated = reference();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated)?;
        return Ok(());
    }
    let committed = std::fs::read_to_string(&path)?;
    assert!(
        committed == generated,
        "docs/configuration.md differs from the programs' settings; run \
         `UPDATE_DOCS=1 cargo test -p saga-tests --test saga configuration` and commit it"
    );
    Ok(())
}
