//! `inventory-svc` as its own process.

use inventory_svc::{Application, Config};

// The program, not a library it links, chooses the allocator (why mimalloc: docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("inventory-svc", &config.log);
    let app = Application::build(config).await?;
    // Before the ready line: a signal right after it must stop the service cleanly.
    let shutdown = platform::shutdown::on_signal();
    println!("inventory-svc ready on http://{}", app.local_addr()?);
    app.run_until_stopped(shutdown).await?;
    Ok(())
}
