//! The options of `shopctl bench`, and the duration syntax they share (`15s`, `500ms`, `2m`).

use std::path::PathBuf;
use std::time::Duration;

use super::client::Observe;
use super::mix::Mix;

/// `shopctl bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// order-api base URL of a running shop; without it the bench starts its own `shopctl up`.
    #[arg(long)]
    pub url: Option<String>,
    /// With `--url`: the shop's process id, to report its memory (RSS).
    #[arg(long, requires = "url")]
    pub pid: Option<u32>,
    /// With `--url`: psp-sim's base URL (needed by `--inject-provider-latency`).
    #[arg(long, requires = "url")]
    pub psp_url: Option<String>,
    /// With `--url`: an API key, sent as `Authorization: Bearer`.
    #[arg(long, requires = "url")]
    pub api_key: Option<String>,
    /// How long to measure (e.g. 15s, 500ms, 2m), after the warm-up.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Orders placed but not measured before that.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Closed loop: clients, each with one order in flight.
    #[arg(long, default_value_t = 32, conflicts_with = "rate")]
    pub concurrency: usize,
    /// Open loop: orders per second, sent on a fixed schedule whatever the answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: orders in flight at most; an arrival beyond it counts as `client_overloaded`.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// How the end of a saga is observed (after a `202`).
    #[arg(long, value_enum, default_value_t = Observe::Sse)]
    pub observe: Observe,
    /// Place orders with `Prefer: wait=10`: a `201` is the end; a `202` falls back to `--observe`.
    #[arg(long)]
    pub sync: bool,
    /// Payment methods and their weights.
    #[arg(long, default_value = "pm_visa_4242=90,pm_card_declined=10")]
    pub mix: Mix,
    /// SKUs and their weights (LIMITED-1 and GIZMO-9 sell out: leave them out to measure the
    /// happy path).
    #[arg(long, default_value = "WIDGET-42=1,GADGET-7=1,DOOHICKEY-3=1")]
    pub skus: Mix,
    /// Seed of the order sequence: the same seed places the same orders.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also measure the broker's own produce→consume rate with saga-sized messages.
    #[arg(long)]
    pub baseline_broker: bool,
    /// The broker for `--baseline-broker` (default: the one the bench started).
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// How long the broker baseline runs.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub baseline_duration: Duration,
    /// Run the load twice, without and with this much added payment-provider latency
    /// (e.g. 200ms), and compare.
    #[arg(long, value_parser = parse_duration)]
    pub inject_provider_latency: Option<Duration>,
    /// No progress bar and no summary on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Parses `15s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not like 15s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn the_defaults_parse() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cli = Cli::try_parse_from(["bench"]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(cli.bench.concurrency, 32);
        assert_eq!(
            cli.bench.mix.to_string(),
            "pm_visa_4242=90,pm_card_declined=10"
        );
        assert!(Cli::try_parse_from(["bench", "--rate", "10", "--concurrency", "4"]).is_err());
        assert!(
            Cli::try_parse_from(["bench", "--pid", "1"]).is_err(),
            "--pid needs --url"
        );
    }
}
