//! Webhook signing secrets hold 24 to 64 bytes (Standard Webhooks): every service that reads
//! one refuses a shorter or longer one at start-up, naming the setting and the rule, and never
//! printing the secret.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::process::Command;

use saga_tests::binary;

/// Longest a refused start may take; refusing reads the configuration and opens a database.
const REFUSAL: Duration = Duration::from_secs(10);

fn secret_of(len: usize) -> String {
    format!("whsec_{}", STANDARD.encode(vec![b'k'; len]))
}

#[tokio::test]
async fn secrets_outside_24_to_64_bytes_are_refused_at_start_up() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for len in [16, 23, 65] {
        let secret = secret_of(len);
        let cases = [
            ("order-api", "CALLBACK_SECRETS", format!("dev:{secret}")),
            ("payment-svc", "PSP_WEBHOOK_SECRET", secret.clone()),
            ("psp-sim", "PSP_WEBHOOK_SECRET", secret.clone()),
        ];
        for (name, variable, value) in cases {
            let output = tokio::time::timeout(
                REFUSAL,
                Command::new(binary(name)?)
                    .current_dir(dir.path())
                    .env(variable, &value)
                    .env("ORDER_API_DB", dir.path().join("order.db"))
                    .env("PAYMENT_SVC_DB", dir.path().join("payment.db"))
                    .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
                    .args(["--http-addr", "127.0.0.1:0"])
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .with_context(|| format!("{name} neither started nor refused a {len}-byte secret"))??;
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success(),
                "{name} started with a {len}-byte {variable}"
            );
            assert!(
                stderr.contains(variable) && stderr.contains("24 to 64 bytes"),
                "{name}, {len} bytes: {stderr}"
            );
            assert!(
                !stderr.contains(&secret),
                "{name} printed the secret: {stderr}"
            );
        }
    }
    Ok(())
}
