//! `payment-svc` as its own process.

use payment_svc::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init("payment-svc");
    let app = Application::build(config).await?;
    println!("payment-svc ready on http://{}", app.local_addr()?);
    app.run_until_stopped(platform::shutdown::on_signal())
        .await?;
    Ok(())
}
