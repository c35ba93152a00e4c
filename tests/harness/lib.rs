//! Test harness for the end-to-end saga tests: builds the binaries, starts the embedded broker
//! and each service as its own OS process on free ports with fresh databases, and offers typed
//! helpers to place orders, wait for outcomes (polling with a deadline, never sleeping a fixed
//! time), read each service's database, and put messages on topics.

mod kafka;
mod otlp;
mod process;
mod receiver;
mod sse;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub use kafka::{FoundMessage, KafkaTool, is_event};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::{Service, ServiceKind};
pub use receiver::{Seen, receiver, secret_key, webhook_signature};
pub use sse::{SseEvent, read_sse};

/// How long any single outcome may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running shop: broker + order-api + payment-svc + inventory-svc + the payment provider,
/// each a child process.
#[derive(Debug)]
pub struct Stack {
    /// The broker process (`shopctl broker`).
    pub broker: Service,
    /// The services, restartable.
    pub order_api: Service,
    /// payment-svc.
    pub payment: Service,
    /// inventory-svc.
    pub inventory: Service,
    /// psp-sim, the payment provider.
    pub psp: Service,
    /// The `whsec_…` secret psp-sim signs webhooks with (and payment-svc verifies).
    pub psp_secret: String,
    /// `KAFKA_BOOTSTRAP_SERVERS` of the broker.
    pub bootstrap: String,
    /// Databases and logs; deleted when the stack is dropped.
    dir: tempfile::TempDir,
    /// HTTP client for order-api.
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts everything and waits until each process says it is ready.
    pub async fn start() -> Result<Self> {
        Self::start_with_env(&[]).await
    }

    /// Like [`Stack::start`], with extra environment variables for every service.
    pub async fn start_with_env(extra: &[(&str, &str)]) -> Result<Self> {
        let bins = process::binaries()?;
        let mut dir = tempfile::Builder::new().prefix("saga-test-").tempdir()?;
        if std::env::var_os("KEEP_TEST_DIR").is_some() {
            // Keep databases and service logs for a look after the run.
            dir.disable_cleanup(true);
            eprintln!("test directory (kept): {}", dir.path().display());
        }
        let extra_env: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let broker = Service::start(ServiceKind::Broker, &bins, dir.path(), &extra_env).await?;
        let bootstrap = broker
            .bootstrap
            .clone()
            .context("broker printed no bootstrap servers")?;
        let env = |db: &str| -> Vec<(String, String)> {
            vec![
                ("KAFKA_BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
                ("KAFKA_LINGER_MS".into(), "0".into()),
                // A killed consumer's partitions move to its replacement after this long.
                ("KAFKA_SESSION_TIMEOUT_MS".into(), "3000".into()),
                ("KAFKA_AUTO_COMMIT_INTERVAL_MS".into(), "200".into()),
                (
                    db.into(),
                    dir.path()
                        .join(format!("{}.db", db.to_lowercase()))
                        .display()
                        .to_string(),
                ),
                ("RUST_LOG".into(), "info,rdkafka=warn".into()),
                // Tests speak to order-api without keys unless they set API keys themselves.
                ("ALLOW_ANONYMOUS".into(), "true".into()),
            ]
            .into_iter()
            .chain(extra_env.iter().cloned())
            .collect()
        };
        let psp_secret = format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 24]>()));
        let secret_env = ("PSP_WEBHOOK_SECRET".to_owned(), psp_secret.clone());
        let psp_env: Vec<(String, String)> = [
            secret_env.clone(),
            ("RUST_LOG".into(), "info".into()),
            // Quick webhook retries, so a refused delivery is retried within a test's patience.
            ("PSP_SIM_WEBHOOK_BACKOFF_MS".into(), "100".into()),
        ]
        .into_iter()
        .chain(extra_env.iter().cloned())
        .collect();
        let psp = Service::start(ServiceKind::Psp, &bins, dir.path(), &psp_env).await?;
        let mut payment_env = env("PAYMENT_SVC_DB");
        payment_env.push(("PSP_URL".into(), psp.base_url()));
        payment_env.push(secret_env);
        let (order_env, inventory_env) = (env("ORDER_API_DB"), env("INVENTORY_SVC_DB"));
        let (order_api, payment, inventory) = tokio::try_join!(
            Service::start(ServiceKind::OrderApi, &bins, dir.path(), &order_env),
            Service::start(ServiceKind::Payment, &bins, dir.path(), &payment_env),
            Service::start(ServiceKind::Inventory, &bins, dir.path(), &inventory_env),
        )?;
        Ok(Self {
            broker,
            order_api,
            payment,
            inventory,
            psp,
            psp_secret,
            bootstrap,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// The base URL of order-api.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.order_api.base_url())
    }

    /// `POST /api/orders` with a JSON body.
    pub async fn post_order(&self, body: &Value) -> Result<reqwest::Response> {
        Ok(self
            .http
            .post(self.url("/api/orders"))
            .json(body)
            .send()
            .await?)
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn place_order(
        &self,
        sku: &str,
        quantity: u32,
        payment_method: &str,
    ) -> Result<String> {
        let body = json!({
            "user_id": "usr_test",
            "items": [{"sku": sku, "quantity": quantity}],
            "payment_method": payment_method,
        });
        let response = self.post_order(&body).await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != reqwest::StatusCode::ACCEPTED {
            bail!("order not accepted: {status} {body}");
        }
        body["order_id"]
            .as_str()
            .map(str::to_owned)
            .context("no order_id in 202 body")
    }

    /// `GET /api/orders/{id}` as JSON (any status code).
    pub async fn get_order(&self, order_id: &str) -> Result<(reqwest::StatusCode, Value)> {
        let response = self
            .http
            .get(self.url(&format!("/api/orders/{order_id}")))
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    /// Polls the order until its status is terminal (`confirmed` / `cancelled`).
    pub async fn wait_terminal(&self, order_id: &str) -> Result<Value> {
        self.wait_order(order_id, |order| {
            matches!(order["status"].as_str(), Some("confirmed" | "cancelled"))
        })
        .await
    }

    /// Polls the order until `done` holds, failing after [`DEADLINE`].
    pub async fn wait_order(&self, order_id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < DEADLINE {
            // Connection errors are expected while order-api restarts.
            if let Ok((reqwest::StatusCode::OK, order)) = self.get_order(order_id).await {
                if done(&order) {
                    return Ok(order);
                }
                last = order;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "order {order_id} did not reach the expected state within {DEADLINE:?}; last seen: {last}"
        )
    }

    /// A connection to a service's database (for checking invariants from its own records).
    pub fn db(&self, kind: ServiceKind) -> Result<rusqlite::Connection> {
        let name = match kind {
            ServiceKind::OrderApi => "order_api_db",
            ServiceKind::Payment => "payment_svc_db",
            ServiceKind::Inventory => "inventory_svc_db",
            ServiceKind::Broker | ServiceKind::Psp => bail!("{kind:?} has no database"),
        };
        let conn = rusqlite::Connection::open(self.dir.path().join(format!("{name}.db")))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn)
    }

    /// One integer from a query on a service's database.
    pub fn query_i64(
        &self,
        kind: ServiceKind,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<i64> {
        Ok(self.db(kind)?.query_row(sql, params, |row| row.get(0))?)
    }

    /// Polls a query on a service's database until it returns `expected`.
    pub async fn wait_query(
        &self,
        kind: ServiceKind,
        sql: &str,
        param: &str,
        expected: i64,
    ) -> Result<()> {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < DEADLINE {
            let value = self.query_i64(kind, sql, [param]).ok();
            if value == Some(expected) {
                return Ok(());
            }
            last = value;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("`{sql}` with {param:?} gave {last:?}, expected {expected}")
    }

    /// A Kafka client on the stack's broker.
    pub fn kafka(&self) -> Result<KafkaTool> {
        KafkaTool::new(&self.bootstrap)
    }

    /// Restarts a service (after [`Service::kill`]) with the same environment and database.
    pub async fn restart(&mut self, kind: ServiceKind) -> Result<()> {
        let bins = process::binaries()?;
        let service = match kind {
            ServiceKind::OrderApi => &mut self.order_api,
            ServiceKind::Payment => &mut self.payment,
            ServiceKind::Inventory => &mut self.inventory,
            ServiceKind::Broker => &mut self.broker,
            ServiceKind::Psp => &mut self.psp,
        };
        service.restart(&bins, self.dir.path()).await
    }

    /// Runs `shopctl <args>` against the stack's broker; returns its stdout, failing if it fails.
    pub fn shopctl(&self, args: &[&str]) -> Result<String> {
        let output = std::process::Command::new(process::binaries()?.path("shopctl"))
            .args(args)
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "shopctl {args:?} failed: {}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    /// Asks the broker to inject a fault (`brokers/2/down`, `faults/produce/20`, …); needs
    /// `BROKER_CONTROL_ADDR` in the environment given to [`Stack::start_with_env`].
    pub async fn broker_fault(&self, path: &str) -> Result<()> {
        let control = self
            .broker
            .control
            .as_deref()
            .context("broker started without BROKER_CONTROL_ADDR")?;
        let response = self.http.post(format!("{control}/{path}")).send().await?;
        if !response.status().is_success() {
            bail!("fault {path} refused: {}", response.text().await?);
        }
        Ok(())
    }

    /// Where logs and databases live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The repository root (for fixtures such as the catalog).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
