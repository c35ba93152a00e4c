//! The shop as separate processes: the broker, each service and the payment provider, each a
//! child process on free ports with a fresh database, restartable and replicable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use platform::sql::{Conn, Params};
use serde_json::Value;

use crate::db::{self, DbLock};
use crate::kafka::KafkaTool;
use crate::orders::{Order, Orders};
use crate::process::{self, Service, ServiceKind};

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
    /// Extra replicas of the services ([`Stack::start_replicas`]), sharing the first replica's
    /// database, broker and provider; killed with the stack.
    pub replicas: Vec<Service>,
    /// The `whsec_…` secret psp-sim signs webhooks with (and payment-svc verifies).
    pub psp_secret: String,
    /// `KAFKA_BOOTSTRAP_SERVERS` of the broker.
    pub bootstrap: String,
    /// The services' databases. Declared after the services: fields drop in order, so the
    /// services have stopped before their Postgres databases are dropped.
    databases: db::Databases,
    /// Logs (and the SQLite databases); deleted when the stack is dropped.
    dir: tempfile::TempDir,
    /// Where the logs are kept when the stack is dropped (see [`Stack::keep_logs`]).
    kept_logs: PathBuf,
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
        let keep = std::env::var_os("KEEP_TEST_DIR").is_some();
        if keep {
            // Keep databases and service logs for a look after the run.
            dir.disable_cleanup(true);
            eprintln!("test directory (kept): {}", dir.path().display());
        }
        // Before any service starts; dropped (with its Postgres databases) if one fails to.
        let databases = db::Databases::create(dir.path())?;
        let extra_env: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let broker = Service::start(ServiceKind::Broker, &bins, dir.path(), &extra_env).await?;
        let bootstrap = broker
            .bootstrap
            .clone()
            .context("broker printed no bootstrap servers")?;
        let env = |kind: ServiceKind| -> Result<Vec<(String, String)>> {
            Ok(vec![
                ("KAFKA_BOOTSTRAP_SERVERS".into(), bootstrap.clone()),
                ("KAFKA_LINGER_MS".into(), "0".into()),
                // A killed consumer's partitions move to its replacement after this long.
                ("KAFKA_SESSION_TIMEOUT_MS".into(), "3000".into()),
                ("KAFKA_AUTO_COMMIT_INTERVAL_MS".into(), "200".into()),
                // On Postgres a killed service's restart is a new lease holder: it takes the
                // relay, reaper and sweeps over after this long (SQLite needs no lease).
                ("LEASE_TTL_MS".into(), "1000".into()),
                databases.env(kind)?,
                ("RUST_LOG".into(), "info,rdkafka=warn".into()),
                // Tests speak to order-api without keys unless they set API keys themselves.
                ("ALLOW_ANONYMOUS".into(), "true".into()),
            ]
            .into_iter()
            .chain(extra_env.iter().cloned())
            .collect())
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
        let mut payment_env = env(ServiceKind::Payment)?;
        payment_env.push(("PSP_URL".into(), psp.base_url()));
        payment_env.push(secret_env);
        let (order_env, inventory_env) =
            (env(ServiceKind::OrderApi)?, env(ServiceKind::Inventory)?);
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
            replicas: Vec::new(),
            psp_secret,
            bootstrap,
            databases,
            dir,
            kept_logs: kept_logs_for_this_test(),
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

    /// The Prometheus text of `service`'s `/metrics`.
    pub async fn metrics(&self, service: &Service) -> Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", service.base_url()))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// Waits until every running replica of `kind` holds a share of its consumer group's
    /// partitions (`messaging_kafka_consumer_assigned_partitions` above 0). A replica says it
    /// is ready before its consumer has joined the group, and the partitions that move to it
    /// wait out the rebalance — seconds with the cooperative protocol — so a test that times
    /// what replicas do together waits for this first.
    pub async fn wait_for_shared_partitions(&self, kind: ServiceKind) -> Result<()> {
        let group = format!("group=\"{}\"", kind.binary());
        for replica in self
            .instances(kind)
            .into_iter()
            .filter(|s| s.pid().is_some())
        {
            crate::eventually(|| {
                let group = group.clone();
                async move {
                    let metrics = self.metrics(replica).await.map_err(|e| format!("{e:#}"))?;
                    let held = crate::metric_total(
                        &metrics,
                        "messaging_kafka_consumer_assigned_partitions",
                        &[&group],
                    );
                    if held > 0.0 {
                        Ok(())
                    } else {
                        Err(format!("{} holds no partitions yet", replica.base_url()))
                    }
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn place_order(
        &self,
        sku: &str,
        quantity: u32,
        payment_method: &str,
    ) -> Result<String> {
        self.orders()
            .place_order(sku, quantity, payment_method)
            .await
    }

    /// `GET /api/orders/{id}`: the order as it is now (which must be found).
    pub async fn order(&self, order_id: &str) -> Result<Order> {
        self.orders().order(order_id).await
    }

    /// Polls the order until its status is terminal (`confirmed` / `cancelled`).
    pub async fn wait_terminal(&self, order_id: &str) -> Result<Order> {
        self.orders().wait_terminal(order_id).await
    }

    /// Polls the order until `done` holds, failing after [`crate::DEADLINE`].
    pub async fn wait_order(&self, order_id: &str, done: impl Fn(&Order) -> bool) -> Result<Order> {
        self.orders().wait_order(order_id, done).await
    }

    /// order-api's order routes.
    pub fn orders(&self) -> Orders {
        Orders::new(&self.http, self.order_api.base_url())
    }

    /// Runs `f` with a connection to a service's database (for checking invariants from its own
    /// records), on a thread of its own: the Postgres client must not run on the test's runtime
    /// thread. The connection is the stack's, kept open between calls; `f` must not leave a
    /// transaction open on it, and must not call `with_db` for the same service.
    pub fn with_db<T, F>(&self, kind: ServiceKind, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce(&Conn<'_>) -> Result<T> + Send,
    {
        self.databases.with_db(kind, f)
    }

    /// One integer from a query on a service's database: `params` are `&[x]`, `&[]` or
    /// `platform::params![a, b]`. For the named queries of the records module.
    pub(crate) fn query_i64<P: Params + ?Sized>(
        &self,
        kind: ServiceKind,
        sql: &str,
        params: &P,
    ) -> Result<i64> {
        let params = db::Bound(params.values()?);
        self.with_db(kind, |conn| {
            Ok(conn.query_row(sql, &params, |row| row.get(0))?)
        })
    }

    /// Holds a service's database so that its writes fail as transient errors until the
    /// returned lock is released or dropped (see [`DbLock`]).
    pub fn lock_db(&self, kind: ServiceKind) -> Result<DbLock> {
        self.databases.lock(kind)
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

    /// Starts one more replica of each of `kinds` (at once; `OrderApi`, `Payment`, `Inventory`,
    /// repeated for more than one) with exactly the environment the stack's own replica got —
    /// the same database, broker, provider and settings — but a listen port of its own, and waits
    /// until each is ready. Replicas of a service form one consumer group and share singleton
    /// jobs through leases, which takes a shared (Postgres) database: on SQLite files, every
    /// replica would be a lone process on the same file. Returns the new replicas' numbers
    /// (2, 3, …, as in [`Stack::instance`]).
    pub async fn start_replicas(&mut self, kinds: &[ServiceKind]) -> Result<Vec<usize>> {
        let bins = process::binaries()?;
        let mut numbers = Vec::with_capacity(kinds.len());
        let mut starts = Vec::with_capacity(kinds.len());
        for (i, &kind) in kinds.iter().enumerate() {
            if !matches!(
                kind,
                ServiceKind::OrderApi | ServiceKind::Payment | ServiceKind::Inventory
            ) {
                bail!("{kind:?} is not a service with replicas");
            }
            let before = kinds[..i].iter().filter(|&&k| k == kind).count();
            let number = self.instances(kind).len() + before + 1;
            numbers.push(number);
            starts.push(
                self.instance(kind, 1)?
                    .start_replica(number, &bins, self.dir.path()),
            );
        }
        let started = futures::future::try_join_all(starts).await?;
        self.replicas.extend(started);
        Ok(numbers)
    }

    /// Every replica of `kind`, running or killed: the stack's own first, then the extra ones
    /// in the order they were started.
    pub fn instances(&self, kind: ServiceKind) -> Vec<&Service> {
        let first = match kind {
            ServiceKind::OrderApi => &self.order_api,
            ServiceKind::Payment => &self.payment,
            ServiceKind::Inventory => &self.inventory,
            ServiceKind::Broker => &self.broker,
            ServiceKind::Psp => &self.psp,
        };
        std::iter::once(first)
            .chain(
                self.replicas
                    .iter()
                    .filter(|service| service.kind() == kind),
            )
            .collect()
    }

    /// Replica `number` of `kind`: 1 is the stack's own (`order_api`, …), 2… the extra ones.
    pub fn instance(&self, kind: ServiceKind, number: usize) -> Result<&Service> {
        self.instances(kind)
            .into_iter()
            .find(|service| service.replica() == number)
            .with_context(|| format!("{kind:?} has no replica {number}"))
    }

    /// Like [`Stack::instance`], to kill it.
    pub fn instance_mut(&mut self, kind: ServiceKind, number: usize) -> Result<&mut Service> {
        let first = match kind {
            ServiceKind::OrderApi => &mut self.order_api,
            ServiceKind::Payment => &mut self.payment,
            ServiceKind::Inventory => &mut self.inventory,
            ServiceKind::Broker => &mut self.broker,
            ServiceKind::Psp => &mut self.psp,
        };
        if number == 1 {
            return Ok(first);
        }
        self.replicas
            .iter_mut()
            .find(|service| service.kind() == kind && service.replica() == number)
            .with_context(|| format!("{kind:?} has no replica {number}"))
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

    /// Where logs (and SQLite databases) live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where [`Stack::keep_logs`] copies the logs (when the stack is dropped, at the latest).
    pub fn kept_logs_dir(&self) -> &Path {
        &self.kept_logs
    }

    /// Copies every service's logs (one file per start, `payment-svc.2.log` for its second) to
    /// `logs/<database>/<test>/` in the [artifacts directory](crate::artifacts_dir) (see
    /// [`kept_logs_for_this_test`]), replacing those of
    /// an earlier run of the same test, and returns that directory. The temporary directory
    /// goes with the stack, and a failure that shows only at the end of a long run (an event
    /// left unpublished, a request that timed out) is explained by what the services said
    /// during it. Done when the stack is dropped, passed or failed (a test that returns its
    /// error drops the stack before anyone knows it failed).
    pub fn keep_logs(&self) -> Result<PathBuf> {
        let kept = &self.kept_logs;
        if kept.exists() {
            std::fs::remove_dir_all(kept)?;
        }
        std::fs::create_dir_all(kept)?;
        for entry in std::fs::read_dir(self.dir())? {
            let path = entry?.path();
            if path.extension().is_some_and(|extension| extension == "log")
                && let Some(name) = path.file_name()
            {
                std::fs::copy(&path, kept.join(name))
                    .with_context(|| format!("keeping {}", path.display()))?;
            }
        }
        Ok(kept.clone())
    }
}

/// `logs/<database>/<test>/` in the artifacts directory for the first stack of the running
/// test (its thread's name, `::` made `.`), `logs/<database>/<test>.2/` for its second, and so
/// on; `<database>` is `sqlite` or `postgres`, so that a run on Postgres after one on SQLite
/// (as `scripts/test.sh` does) leaves the first's logs alone.
fn kept_logs_for_this_test() -> PathBuf {
    static STACKS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace("::", ".");
    let mut stacks = STACKS.lock().unwrap_or_else(PoisonError::into_inner);
    let nth = stacks.entry(test.clone()).or_default();
    *nth += 1;
    let name = match *nth {
        1 => test,
        n => format!("{test}.{n}"),
    };
    let database = if std::env::var("TEST_POSTGRES_URL").is_ok_and(|url| !url.trim().is_empty()) {
        "postgres"
    } else {
        "sqlite"
    };
    crate::artifacts_dir()
        .join("logs")
        .join(database)
        .join(name)
}

impl Drop for Stack {
    /// Keeps the services' logs (see [`Stack::keep_logs`]); the services are killed by their
    /// own drop, after this.
    fn drop(&mut self) {
        if let Err(error) = self.keep_logs() {
            eprintln!("could not keep the service logs: {error:#}");
        } else if std::thread::panicking() {
            eprintln!("service logs of this test: {}", self.kept_logs.display());
        }
    }
}
