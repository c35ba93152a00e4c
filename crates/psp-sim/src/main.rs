//! `psp-sim` as its own process.

use psp_sim::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = platform::telemetry::init(Config::SERVICE);
    let app = Application::build(config).await?;
    println!("psp-sim ready on http://{}", app.local_addr()?);
    app.run_until_stopped(platform::shutdown::on_signal())
        .await?;
    Ok(())
}
