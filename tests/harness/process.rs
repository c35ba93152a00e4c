//! Service processes: build once, start, wait for the `ready` line, kill, restart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Which process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// `shopctl broker`.
    Broker,
    /// `order-api`.
    OrderApi,
    /// `payment-svc`.
    Payment,
    /// `inventory-svc`.
    Inventory,
    /// `psp-sim`, the payment provider.
    Psp,
}

impl ServiceKind {
    /// The binary's name (`order-api`; `shopctl` for the broker), which also names its logs.
    pub fn binary(self) -> &'static str {
        match self {
            ServiceKind::Broker => "shopctl",
            ServiceKind::OrderApi => "order-api",
            ServiceKind::Payment => "payment-svc",
            ServiceKind::Inventory => "inventory-svc",
            ServiceKind::Psp => "psp-sim",
        }
    }

    /// The variable with the service's listen address; the harness sets it to a free port.
    fn addr_var(self) -> Option<&'static str> {
        match self {
            ServiceKind::Broker => None,
            ServiceKind::OrderApi => Some("ORDER_API_ADDR"),
            ServiceKind::Payment => Some("PAYMENT_SVC_ADDR"),
            ServiceKind::Inventory => Some("INVENTORY_SVC_ADDR"),
            ServiceKind::Psp => Some("PSP_SIM_ADDR"),
        }
    }
}

/// The built binaries' directory.
#[derive(Clone, Debug)]
pub(crate) struct Binaries(PathBuf);

impl Binaries {
    /// The path of binary `name`.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

/// Builds the service binaries once per test run, with the profile of this test binary, so
/// `cargo test` alone is enough; later calls reuse the result.
pub(crate) fn binaries() -> Result<Binaries> {
    static BUILT: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = built.as_ref() {
        return Ok(Binaries(dir.clone()));
    }
    // target/<profile>/deps/<this test> → target/<profile>
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary is not in target/<profile>/deps")?;
    let target_dir = profile_dir.parent().context("no target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    let profile = if profile == "debug" { "dev" } else { profile };
    let status = Command::new(env!("CARGO"))
        .current_dir(crate::repo_root())
        // `cargo test` runs tests with `CARGO_MANIFEST_DIR` set, and some build scripts (ring's)
        // count it among their inputs: passed on, it would make this build and the next
        // `cargo build` rebuild each other's dependencies every time.
        .env_remove("CARGO_MANIFEST_DIR")
        .args([
            "build",
            "--quiet",
            "--bins",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(target_dir)
        .args([
            "-p",
            "order-api",
            "-p",
            "payment-svc",
            "-p",
            "inventory-svc",
            "-p",
            "psp-sim",
            "-p",
            "shopctl",
        ])
        .status()
        .context("running cargo build for the service binaries")?;
    if !status.success() {
        bail!("building the service binaries failed: {status}");
    }
    *built = Some(profile_dir.to_owned());
    Ok(Binaries(profile_dir.to_owned()))
}

/// A running (or killed) child process.
#[derive(Debug)]
pub struct Service {
    kind: ServiceKind,
    child: Option<Child>,
    env: Vec<(String, String)>,
    /// `host:port` of its HTTP listener (fixed across restarts).
    addr: Option<String>,
    /// For the broker: its bootstrap servers.
    pub bootstrap: Option<String>,
    /// For the broker: its fault-injection endpoint, if started with one.
    pub control: Option<String>,
    /// Which replica of its service this is: 1 for the stack's own, 2… for those started by
    /// [`crate::Stack::start_replicas`]; names its log files.
    replica: usize,
    /// Number of starts, to name log files.
    starts: u32,
    /// When the current process was started: a restarted service's figures (its memory, say)
    /// cover only the time since.
    started_at: Option<Instant>,
}

impl Service {
    /// Starts `kind` with `env` and waits for its ready line.
    pub(crate) async fn start(
        kind: ServiceKind,
        bins: &Binaries,
        dir: &Path,
        env: &[(String, String)],
    ) -> Result<Self> {
        Self::start_numbered(kind, 1, bins, dir, env).await
    }

    /// Replica `replica` (2, 3, …) of this service: the same binary with exactly the same
    /// environment (database, broker, provider, settings), but a listen port of its own, chosen
    /// on its first start like the first replica's. So payment-svc's replicas each tell the
    /// provider their own webhook URL (the harness sets no `PAYMENT_WEBHOOK_URL`; one given in
    /// the stack's extra environment is shared by all). Logs: `<binary>-<replica>.<start>.log`.
    pub(crate) async fn start_replica(
        &self,
        replica: usize,
        bins: &Binaries,
        dir: &Path,
    ) -> Result<Self> {
        if replica < 2 {
            bail!("replica numbers of extra replicas start at 2");
        }
        Self::start_numbered(self.kind, replica, bins, dir, &self.env).await
    }

    async fn start_numbered(
        kind: ServiceKind,
        replica: usize,
        bins: &Binaries,
        dir: &Path,
        env: &[(String, String)],
    ) -> Result<Self> {
        let mut service = Self {
            kind,
            child: None,
            env: env.to_vec(),
            addr: None,
            bootstrap: None,
            control: None,
            replica,
            starts: 0,
            started_at: None,
        };
        service.spawn(bins, dir).await?;
        Ok(service)
    }

    /// Which process this is.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// Which replica of its service: 1 for the stack's own, 2… for extra replicas.
    pub fn replica(&self) -> usize {
        self.replica
    }

    /// The OS process id while it runs (`None` once killed); the services' lease holders
    /// (`<host>/<pid>/<random>`) carry it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times the process was started: 1, plus one per restart.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// How long the current process has been running; `None` once killed.
    pub fn uptime(&self) -> Option<Duration> {
        self.child
            .as_ref()
            .and(self.started_at.map(|at| at.elapsed()))
    }

    /// The resident memory of the running process in KiB (`VmRSS` in `/proc/<pid>/status`, so
    /// Linux only); `None` once killed.
    pub fn rss_kib(&self) -> Result<Option<u64>> {
        let Some(pid) = self.pid() else {
            return Ok(None);
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading the status of {} ({pid})", self.kind.binary()))?;
        let rss = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .with_context(|| format!("no VmRSS in the status of {} ({pid})", self.kind.binary()))?;
        Ok(Some(rss))
    }

    /// The log file of the current (latest) start.
    pub fn log_path(&self, dir: &Path) -> PathBuf {
        dir.join(self.log_name(self.starts.max(1)))
    }

    fn log_name(&self, start: u32) -> String {
        match self.replica {
            1 => format!("{}.{start}.log", self.kind.binary()),
            n => format!("{}-{n}.{start}.log", self.kind.binary()),
        }
    }

    async fn spawn(&mut self, bins: &Binaries, dir: &Path) -> Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(dir.join(self.log_name(self.starts)))?;
        let mut command = Command::new(bins.0.join(self.kind.binary()));
        if self.kind == ServiceKind::Broker {
            command.arg("broker");
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(var) = self.kind.addr_var() {
            // First start: any free port; restarts keep the port so clients can reconnect.
            command.env(var, self.addr.as_deref().unwrap_or("127.0.0.1:0"));
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.kind.binary()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        self.child = Some(child);
        self.started_at = Some(Instant::now());
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.push(line.clone());
                if line.contains("ready")
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(lines.clone());
                }
            }
        });
        let lines = tokio::time::timeout(Duration::from_secs(60), receiver)
            .await
            .with_context(|| format!("{} did not print `ready` in time", self.kind.binary()))?
            .with_context(|| {
                format!(
                    "{} exited before it was ready (see its log in {})",
                    self.kind.binary(),
                    dir.display()
                )
            })?;
        for line in lines {
            if let Some(bootstrap) = line.strip_prefix("KAFKA_BOOTSTRAP_SERVERS=") {
                self.bootstrap = Some(bootstrap.to_owned());
            }
            if let Some(control) = line.strip_prefix("BROKER_CONTROL=") {
                self.control = Some(control.to_owned());
            }
            if let Some((_, url)) = line.split_once("ready on http://") {
                self.addr = Some(url.trim().to_owned());
            }
        }
        Ok(())
    }

    /// `http://host:port` of the service.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr.as_deref().unwrap_or("127.0.0.1:0"))
    }

    /// SIGKILL: no shutdown, no flush, no offset commit — a crash.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait (up to [`crate::DEADLINE`]) for the process to exit; returns whether it exited
    /// successfully.
    pub async fn terminate(&mut self) -> Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        let exited = crate::eventually(|| {
            let seen = match child.try_wait() {
                Ok(Some(status)) => Ok(status.success()),
                Ok(None) => Err(format!("{} is still running", self.kind.binary())),
                Err(error) => Err(error.to_string()),
            };
            std::future::ready(seen)
        })
        .await;
        if exited.is_err() {
            child.kill()?;
        }
        exited.with_context(|| format!("{} did not stop after SIGTERM", self.kind.binary()))
    }

    pub(crate) async fn restart(&mut self, bins: &Binaries, dir: &Path) -> Result<()> {
        self.kill()?;
        self.spawn(bins, dir).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
