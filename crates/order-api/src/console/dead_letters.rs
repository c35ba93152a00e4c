//! The console's dead-letter routes: every dead-lettered message of every saga topic, the
//! callbacks that failed for good, and replaying them.
//!
//! order-api follows the dead-letter topics with a [`dead_letters::Tail`] (a consumer of its
//! own, in no group, from the start of each topic), so the page lists letters as they arrive.
//! Replaying one sends it back to its saga topic and marks it replayed in its dead-letter topic
//! (the same marker `shopctl dlq replay` writes), which takes it off the "to handle" list for
//! every console and every command. A replay is safe to repeat: the event keeps its id, and the
//! consumer's inbox drops a second copy.
//!
//! A copy of a failed callback (its original was an HTTP request, not a message) is replayed
//! by requeueing the delivery itself ([`crate::webhooks::retry`]), keeping its `webhook-id`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use dead_letters::{DeadLetter, Replayer, Tail};

use super::auth::Operator;
use crate::api::admin::retry_delivery::{self, RetryAnswer};
use crate::api::{ApiError, AppState};
use crate::webhooks::{self, FailedDelivery};

/// The most failed callbacks a page lists.
const FAILED_SHOWN: i64 = 200;

/// What the console reads dead letters from and sends them back with.
#[derive(Debug)]
pub struct Desk {
    /// The live index of every dead-letter topic.
    pub tail: Tail,
    /// Sends letters back, and writes the replay markers.
    pub replayer: Replayer,
}

impl Desk {
    /// Starts following the dead-letter topics (until `shutdown`) and readies a producer for
    /// replays. Without them the console still lists sagas and failed callbacks: a client that
    /// cannot be created is logged and the dead-letter view says it is off.
    pub fn start(config: rdkafka::ClientConfig, shutdown: CancellationToken) -> Option<Arc<Self>> {
        let tail = Tail::start(config.clone(), shutdown)
            .map_err(|error| tracing::error!(%error, "Cannot follow the dead-letter topics."))
            .ok()?;
        let replayer = Replayer::new(config)
            .map_err(|error| tracing::error!(%error, "Cannot replay dead letters."))
            .ok()?;
        Some(Arc::new(Self { tail, replayer }))
    }
}

/// The counts the summary shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Counts {
    /// Letters not replayed yet (copies of one message counted once each).
    to_handle: usize,
    /// Letters replayed already.
    replayed: usize,
    /// Callbacks that failed for good and were not sent again.
    failed_callbacks: i64,
    /// Whether the dead-letter topics are still being read from their start.
    loading: bool,
    /// Whether order-api reads the dead-letter topics at all.
    available: bool,
}

/// The counts now.
pub(crate) async fn counts(state: &AppState) -> Result<Counts, ApiError> {
    let failed_callbacks = state.db.read(webhooks::count_failed).await?;
    let mut counts = Counts {
        failed_callbacks,
        ..Counts::default()
    };
    if let Some(desk) = &state.console.dead_letters {
        let letters = desk.tail.snapshot();
        counts.replayed = letters.iter().filter(|letter| letter.replayed).count();
        counts.to_handle = letters.len() - counts.replayed;
        counts.loading = !desk.tail.caught_up();
        counts.available = true;
    }
    Ok(counts)
}

/// Wakes when a letter or a replay marker arrives (see [`super::live`]).
pub(crate) fn changes(state: &AppState) -> Option<tokio::sync::watch::Receiver<u64>> {
    state
        .console
        .dead_letters
        .as_ref()
        .map(|desk| desk.tail.changes())
}

/// `?include_replayed=true`, `?topic=payments.dlq`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    include_replayed: Option<bool>,
    topic: Option<String>,
}

/// One letter as the page shows it.
#[derive(Debug, Serialize)]
struct LetterView {
    id: String,
    dlq_topic: String,
    /// The saga topic a replay sends it back to.
    topic: Option<&'static str>,
    event_type: Option<String>,
    order_id: Option<String>,
    service: Option<String>,
    error_class: Option<String>,
    error_message: Option<String>,
    attempts: Option<u32>,
    first_failure: Option<String>,
    last_failure: Option<String>,
    /// The original payload: pretty JSON when it is JSON, else the text (lossy).
    payload: String,
    /// The original headers (not the `dlq.*` ones).
    headers: Vec<(String, String)>,
    /// The callback delivery it is the copy of, if it is one.
    delivery_id: Option<String>,
    replayed: bool,
}

impl From<&DeadLetter> for LetterView {
    fn from(letter: &DeadLetter) -> Self {
        let json = serde_json::from_slice::<serde_json::Value>(&letter.payload).ok();
        let payload = json
            .as_ref()
            .and_then(|json| serde_json::to_string_pretty(json).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&letter.payload).into_owned());
        // A copy may lack the original's headers; the envelope names its type too.
        let event_type = letter.event_type().map(str::to_owned).or_else(|| {
            json.as_ref()
                .and_then(|json| json.get("type"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        });
        Self {
            id: letter.id.clone(),
            dlq_topic: letter.dlq_topic.clone(),
            topic: dead_letters::original_topic(&letter.dlq_topic),
            event_type,
            order_id: letter.order_id().map(|id| id.to_string()),
            service: letter.service().map(str::to_owned),
            error_class: letter.error_class().map(str::to_owned),
            error_message: letter.error_message().map(str::to_owned),
            attempts: letter.attempts(),
            first_failure: letter.first_failure().map(platform::time::format),
            last_failure: letter.last_failure().map(platform::time::format),
            payload,
            headers: letter
                .headers
                .iter()
                .filter(|(name, _)| !name.starts_with("dlq."))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            delivery_id: letter.delivery_id().map(str::to_owned),
            replayed: letter.replayed,
        }
    }
}

/// The answer of `GET /console/api/dead-letters`.
#[derive(Debug, Serialize)]
pub(crate) struct Listing {
    /// Newest first.
    letters: Vec<LetterView>,
    failed_callbacks: Vec<FailedDelivery>,
    counts: Counts,
}

/// `GET /console/api/dead-letters`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Listing>, ApiError> {
    let include_replayed = query.include_replayed.unwrap_or(false);
    let topic = query.topic.filter(|topic| !topic.is_empty());
    let mut letters: Vec<LetterView> = match &state.console.dead_letters {
        Some(desk) => desk
            .tail
            .snapshot()
            .iter()
            .filter(|letter| include_replayed || !letter.replayed)
            .filter(|letter| {
                topic
                    .as_ref()
                    .is_none_or(|topic| *topic == letter.dlq_topic)
            })
            .map(LetterView::from)
            .collect(),
        None => Vec::new(),
    };
    letters.sort_by(|a, b| b.last_failure.cmp(&a.last_failure).then(b.id.cmp(&a.id)));
    let failed_callbacks = state
        .db
        .read(|conn| webhooks::failed(conn, FAILED_SHOWN))
        .await?;
    Ok(Json(Listing {
        letters,
        failed_callbacks,
        counts: counts(&state).await?,
    }))
}

/// What to replay: some letters by id, or every letter of a topic still to handle.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplayRequest {
    #[serde(default)]
    ids: Vec<String>,
    /// Every letter of this dead-letter topic that is still to handle.
    all_of_topic: Option<String>,
}

/// What a replay did, letter by letter.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ReplayAnswer {
    /// Letters sent back (or callbacks requeued), with where they went.
    replayed: Vec<Replayed>,
    /// Letters not sent back, with why.
    refused: Vec<Refused>,
}

#[derive(Debug, Serialize)]
struct Replayed {
    id: String,
    to: String,
}

#[derive(Debug, Serialize)]
struct Refused {
    id: String,
    reason: String,
}

/// `POST /console/api/dead-letters/replay`.
pub(crate) async fn replay(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Json(request): Json<ReplayRequest>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let desk = state.console.dead_letters.clone().ok_or_else(|| {
        ApiError::Invalid("order-api does not read the dead-letter topics here.".into())
    })?;
    let letters = desk.tail.snapshot();
    let chosen: Vec<DeadLetter> = match &request.all_of_topic {
        Some(topic) => letters
            .into_iter()
            .filter(|letter| &letter.dlq_topic == topic && !letter.replayed)
            .collect(),
        None => {
            if request.ids.is_empty() {
                return Err(ApiError::Invalid(
                    "Name the letters to replay (`ids`) or a topic (`all_of_topic`).".into(),
                ));
            }
            let mut chosen = Vec::new();
            for id in &request.ids {
                match letters.iter().find(|letter| &letter.id == id) {
                    Some(letter) => chosen.push(letter.clone()),
                    None => {
                        return Err(ApiError::Invalid(format!("No dead letter has id {id:?}.")));
                    }
                }
            }
            chosen
        }
    };
    let mut answer = ReplayAnswer::default();
    // Copies of one message dead-lettered by several groups go back once.
    for letter in dead_letters::once_per_origin(chosen) {
        match replay_one(&state, &desk, &letter).await {
            Ok(to) => {
                tracing::info!(operator = %operator.name, letter = %letter.id, %to,
                    "Dead letter replayed from the console.");
                answer.replayed.push(Replayed { id: letter.id, to });
            }
            Err(reason) => answer.refused.push(Refused {
                id: letter.id,
                reason,
            }),
        }
    }
    Ok(Json(answer))
}

/// Sends one letter back (or requeues its callback) and marks it replayed.
async fn replay_one(
    state: &AppState,
    desk: &Arc<Desk>,
    letter: &DeadLetter,
) -> Result<String, String> {
    let to = if let Some(delivery) = letter.delivery_id().map(str::to_owned) {
        retry_delivery::retry(state, delivery.clone())
            .await
            .map_err(|error| format!("callback delivery {delivery}: {error}"))?;
        format!("callback delivery {delivery}")
    } else {
        desk.replayer
            .send_back(letter)
            .await
            .map_err(|error| error.to_string())?
            .to_owned()
    };
    desk.replayer
        .mark_replayed(letter, &to)
        .await
        .map_err(|error| format!("sent back, but not marked replayed: {error}"))?;
    Ok(to)
}

/// `POST /console/api/callbacks/{id}/resend`: sends a failed callback again; its copy in
/// `orders.dlq`, if the tail has it, is marked replayed too.
pub(crate) async fn resend(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Path(delivery_id): Path<String>,
) -> Result<Json<RetryAnswer>, ApiError> {
    let answer = retry_delivery::retry(&state, delivery_id.clone()).await?;
    tracing::info!(operator = %operator.name, delivery = %delivery_id,
        requeued = answer.requeued, "Failed callback re-sent from the console.");
    if let Some(desk) = &state.console.dead_letters {
        for copy in desk
            .tail
            .snapshot()
            .iter()
            .filter(|letter| !letter.replayed && letter.delivery_id() == Some(&delivery_id))
        {
            if let Err(error) = desk
                .replayer
                .mark_replayed(copy, &format!("callback delivery {delivery_id}"))
                .await
            {
                tracing::warn!(%error, letter = %copy.id, "Could not mark a callback's copy replayed.");
            }
        }
    }
    Ok(Json(answer))
}
