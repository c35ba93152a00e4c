//! `shopctl dlq replay`: sends letters back to their saga topics, and failed callbacks back to
//! order-api's deliverer ([`super::callback`]); each letter sent back is marked replayed in its
//! dead-letter topic (see [`dead_letters::REPLAY_OF`]).

use anyhow::{Context, Result, bail};

use dead_letters::{DeadLetter, Quiet, ReplayError, Replayer};

use super::{OrderApi, callback, client_config, printable};

/// Sends `letters` back to their original topics, and failed callbacks back to `order_api`'s
/// deliverer; returns how many were acknowledged. A letter that cannot go back (see
/// `dead_letters::ReplayError`) is passed over and the others are sent; the command then
/// fails naming it. The Kafka client's log goes to stderr only when `verbose`.
pub async fn replay(
    bootstrap: &str,
    verbose: bool,
    letters: &[DeadLetter],
    order_api: &OrderApi,
) -> Result<usize> {
    let replayer = Replayer::with_context(client_config(bootstrap), Quiet::new(verbose))?;
    let mut replayed = 0;
    let mut refused = Vec::new();
    for letter in letters {
        if let Some(delivery) = letter.delivery_id() {
            match callback::retry(order_api, delivery).await {
                Ok(retried) => {
                    marked(replayer.mark_replayed(letter, "order-api").await, letter)?;
                    let what = if retried.requeued {
                        "requeued".to_owned()
                    } else {
                        format!("already {}: nothing changed", retried.status)
                    };
                    println!(
                        "replayed {} -> order-api delivery {delivery} ({what})",
                        letter.id
                    );
                    replayed += 1;
                }
                Err(error) => refused.push(format!("{}: {error:#}", letter.id)),
            }
            continue;
        }
        let topic = match replayer.send_back(letter).await {
            Ok(topic) => topic,
            Err(ReplayError::NotShopTopic { .. }) => {
                bail!("{} is not in a dead-letter topic of the shop", letter.id)
            }
            Err(ReplayError::OtherOrigin { from, topic }) => {
                refused.push(format!(
                    "{}: its original was on {:?}, not on {topic}, and no service consumes that",
                    letter.id,
                    printable(&from, false)
                ));
                continue;
            }
            Err(refusal @ (ReplayError::TopicMissing { .. } | ReplayError::Callback { .. })) => {
                refused.push(format!("{}: {refusal}", letter.id));
                continue;
            }
            Err(error @ ReplayError::Topics(_)) => return Err(error.into()),
            Err(error @ ReplayError::Send(_)) => {
                return Err(error).with_context(|| format!("replaying {}", letter.id));
            }
        };
        marked(replayer.mark_replayed(letter, topic).await, letter)?;
        println!("replayed {} -> {topic}", letter.id);
        replayed += 1;
    }
    if !refused.is_empty() {
        bail!(
            "{replayed} dead letter(s) replayed; not replayed (see docs/operations.md): {}",
            refused.join("; ")
        );
    }
    Ok(replayed)
}

/// The outcome of marking `letter` replayed, as the command reports it.
fn marked(outcome: Result<(), ReplayError>, letter: &DeadLetter) -> Result<()> {
    outcome.with_context(|| format!("marking {} as replayed", letter.id))
}
