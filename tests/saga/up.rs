//! `shopctl up` as a newcomer meets it: safe by default, and leaving nothing behind.
//!
//! - on an address other machines can reach, anonymous orders are refused at start-up unless
//!   asked for explicitly, which then prints a warning;
//! - the temporary data directory is private and removed on exit, also after a failed start;
//! - every binary explains itself (`--help` lists each setting with its variable and default;
//!   `--version`) without starting anything.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tokio::process::Command;

use saga_tests::{ShopUp, binary};

/// Longest a refused start may take: it must not start a broker or services first.
const REFUSAL: Duration = Duration::from_secs(5);

/// `shopctl up <args>` that must refuse to start: its exit status, stdout and stderr.
async fn refused(args: &[&str]) -> Result<(std::process::ExitStatus, String, String)> {
    // The binaries are built (or found fresh) first: that is cargo's time, not the refusal's.
    binary("shopctl")?;
    let started = Instant::now();
    let output = ShopUp::run_to_end(args, REFUSAL).await?;
    assert!(started.elapsed() < REFUSAL);
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test]
async fn anonymous_orders_on_a_reachable_address_are_refused_unless_asked_for() -> Result<()> {
    let (status, stdout, stderr) = refused(&["--http-addr", "0.0.0.0:0"]).await?;
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("refusing to serve anonymous orders on 0.0.0.0:0")
            && stderr.contains("--require-auth"),
        "{stderr}"
    );
    assert!(!stdout.contains("ready"), "{stdout}");

    // Asked for: it starts, says what it means, and refuses callbacks to private addresses.
    let port = free_port()?;
    let addr = format!("0.0.0.0:{port}");
    let mut up = ShopUp::start(&["--http-addr", &addr, "--allow-anonymous-remote"], &[]).await?;
    let warning = up.logged("WARNING").await?;
    assert!(warning.contains("without an API key"), "{warning}");
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/orders"))
        .json(&serde_json::json!({
            "user_id": "usr_1",
            "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242",
            "callback_url": format!("http://127.0.0.1:{port}/hook"),
        }))
        .send()
        .await?;
    assert_eq!(answer.status(), 422, "{}", answer.text().await?);
    up.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_temporary_data_directory_is_private_and_removed_on_exit() -> Result<()> {
    let mut up = ShopUp::start(&[], &[]).await?;
    let dir = up.data_dir()?;
    assert!(dir.join("order-api.db").exists(), "{}", dir.display());
    assert_private(&dir)?;
    let printed = up.stop().await?;
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(
        printed.iter().any(|line| line.contains("removed")),
        "{printed:?}"
    );

    // `--keep-data` keeps it, and says where.
    let mut up = ShopUp::start(&["--keep-data"], &[]).await?;
    let kept = up.data_dir()?;
    up.stop().await?;
    assert!(kept.join("order-api.db").exists());
    std::fs::remove_dir_all(&kept)?;
    Ok(())
}

/// The payment provider stands for another company: under `shopctl up` it has a thread of its
/// own, named so that `shopctl bench` counts its CPU apart from the shop's.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_payment_provider_runs_on_a_thread_of_its_own() -> Result<()> {
    let mut up = ShopUp::start(&[], &[]).await?;
    let pid = up.pid().context("running")?;
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        names.push(comm.trim().to_owned());
    }
    up.stop().await?;
    let provider = names.iter().filter(|name| *name == "psp-sim").count();
    ensure!(provider == 1, "{names:?}");
    Ok(())
}

#[tokio::test]
async fn a_failed_start_leaves_no_data_directory() -> Result<()> {
    // order-api cannot bind: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let output = ShopUp::run_to_end(&["--http-addr", &addr], Duration::from_secs(60)).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("starting order-api on {addr}")),
        "{stderr}"
    );
    let dir = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("removed "))
        .map(|dir| PathBuf::from(dir.trim()))
        .with_context(|| format!("no `removed` line: {stdout}"))?;
    assert!(!dir.exists(), "{} is left behind", dir.display());
    Ok(())
}

#[cfg(unix)]
fn assert_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    ensure!(mode == 0o700, "{} has mode {mode:o}", dir.display());
    Ok(())
}

#[cfg(not(unix))]
fn assert_private(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Every binary and every `shopctl` subcommand answers `--help` and `--version` at once,
/// without starting anything, and `--help` names each setting's variable.
#[tokio::test]
async fn every_binary_explains_itself() -> Result<()> {
    let cases: [(&str, &[&str], &[&str]); 9] = [
        (
            "order-api",
            &[],
            &[
                "ORDER_API_ADDR",
                "API_KEYS",
                "RATE_LIMIT_PER_S",
                "KAFKA_BOOTSTRAP_SERVERS",
                "DB_SYNCHRONOUS",
                "LOG_FORMAT",
            ],
        ),
        (
            "payment-svc",
            &[],
            &[
                "PAYMENT_SVC_ADDR",
                "PSP_WEBHOOK_SECRET",
                "PSP_URL",
                "CONSUMER_CONCURRENCY",
            ],
        ),
        (
            "inventory-svc",
            &[],
            &["INVENTORY_SVC_ADDR", "CATALOG_PATH", "LEASE_TTL_MS"],
        ),
        ("psp-sim", &[], &["PSP_SIM_ADDR", "PSP_SIM_DELAY_MS"]),
        ("shopctl", &[], &["up", "bench", "dlq", "broker"]),
        (
            "shopctl",
            &["up"],
            &[
                "ORDER_API_ADDR",
                "RATE_LIMIT_PER_S",
                "PSP_SIM_DELAY_MS",
                "PSP_URL",
                "SHUTDOWN_TIMEOUT_MS",
            ],
        ),
        ("shopctl", &["bench"], &["--duration"]),
        ("shopctl", &["dlq"], &["KAFKA_BOOTSTRAP_SERVERS"]),
        ("shopctl", &["broker"], &["EMBEDDED_BROKERS"]),
    ];
    for (name, subcommand, expected) in cases {
        let program = binary(name)?;
        for flag in ["--help", "--version"] {
            let started = Instant::now();
            let output = tokio::time::timeout(
                Duration::from_secs(10),
                Command::new(&program)
                    .args(subcommand)
                    .arg(flag)
                    // A setting that would not parse must not matter to --help.
                    .env("ORDER_API_ADDR", "not an address")
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .with_context(|| format!("{name} {subcommand:?} {flag} did not return"))??;
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{name} {subcommand:?} {flag}: {}{stdout}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(started.elapsed() < Duration::from_secs(10));
            if flag == "--version" {
                assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
                continue;
            }
            for word in expected {
                assert!(
                    stdout.contains(word),
                    "{name} {subcommand:?} --help lacks {word}:\n{stdout}"
                );
            }
        }
    }
    Ok(())
}

/// The secrets published with the project (docker-compose's defaults) are refused at start-up
/// unless the configuration says this is a development setup.
#[tokio::test]
async fn published_development_secrets_are_refused() -> Result<()> {
    let cases = [
        ("order-api", "API_KEYS", "dev:sk_dev_local_only"),
        (
            "payment-svc",
            "PSP_WEBHOOK_SECRET",
            platform::config::DEVELOPMENT_SECRETS[1],
        ),
        (
            "psp-sim",
            "PSP_WEBHOOK_SECRET",
            platform::config::DEVELOPMENT_SECRETS[1],
        ),
        (
            "inventory-svc",
            "INVENTORY_SVC_DB",
            "postgres://shop:shop_local_only@127.0.0.1:1/inventory",
        ),
    ];
    for (name, variable, value) in cases {
        let program = binary(name)?;
        let output = tokio::time::timeout(
            REFUSAL,
            Command::new(program)
                .env(variable, value)
                .env_remove("ALLOW_DEVELOPMENT_SECRETS")
                .args(["--http-addr", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| format!("{name} neither started nor refused"))??;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{name} started with {variable}={value}"
        );
        assert!(
            stderr.contains(variable) && stderr.contains("ALLOW_DEVELOPMENT_SECRETS"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains(value),
            "{name} printed the secret: {stderr}"
        );
    }
    Ok(())
}
