//! `shopctl`'s one-shot commands as a person meets them: pointed at a broker that is not there,
//! `shopctl dlq` says so in one line with a hint where to find the right address, within a few
//! seconds, and keeps the Kafka client's own log (dozens of lines a second) out of the way
//! unless `-v` asks for it.

use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

/// How long a one-shot command may take to give up on a broker that refuses connections.
const GIVE_UP_WITHIN: Duration = Duration::from_secs(5);

/// Runs `shopctl dlq --bootstrap <addr> list [extra]`; fails if it is still running after
/// [`GIVE_UP_WITHIN`] (the binary is built before the clock starts).
async fn dlq_list(addr: &str, extra: &[&str]) -> Result<(Output, Duration)> {
    let shopctl = saga_tests::binary("shopctl")?;
    let started = Instant::now();
    let run = tokio::process::Command::new(shopctl)
        .args(["dlq", "--bootstrap", addr, "list"])
        .args(extra)
        // The default log filter, whatever the caller's environment says.
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(GIVE_UP_WITHIN, run)
        .await
        .with_context(|| format!("shopctl dlq list still running after {GIVE_UP_WITHIN:?}"))??;
    Ok((output, started.elapsed()))
}

/// A loopback address nothing listens on: a port the system handed out, closed again.
fn closed_port() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(addr.to_string())
}

#[tokio::test]
async fn dlq_against_a_closed_port_fails_in_one_line_with_a_hint() -> Result<()> {
    let addr = closed_port()?;
    let (output, took) = dlq_list(&addr, &[]).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("shopctl dlq list ({took:?}, {}):\n{stderr}", output.status);

    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 3, "a few lines at most, not {}", lines.len());
    assert!(
        lines[0].starts_with("error: cannot reach the Kafka broker at ")
            && lines[0].contains(&addr),
        "the first line names the broker: {stderr}"
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("kafka <host:port>"),
        "a hint where the address is printed: {stderr}"
    );
    for client_log in ["librdkafka", "rdkafka::", "[thrd:"] {
        assert!(
            !stderr.contains(client_log),
            "no Kafka client log line ({client_log}): {stderr}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn dlq_verbose_shows_the_kafka_clients_log() -> Result<()> {
    let addr = closed_port()?;
    let (output, _) = dlq_list(&addr, &["-v"]).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(output.status.code(), Some(1), "{stderr}");
    ensure!(
        stderr.contains("librdkafka") && stderr.contains(&addr),
        "with -v, the client's own lines about {addr}: {stderr}"
    );
    ensure!(
        stderr.contains("error: cannot reach the Kafka broker"),
        "and the error line still: {stderr}"
    );
    Ok(())
}
