//! The Chrome DevTools Protocol's transport: JSON messages over one WebSocket to the browser.
//! A command carries an `id` and gets the answer with that `id`; everything else the browser
//! sends is an event. Pages are reached through the same socket: each attached page has a
//! session id, which its commands carry and its events name ("flat" sessions).
//!
//! One task owns the socket, as the only reader and writer, so no lock guards it: callers hand
//! it commands through a channel with a place for the answer, and it fans events out on a
//! broadcast channel to whoever listens.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::DEADLINE;

/// Events kept for a listener that falls behind; a page load sends a few dozen.
const EVENT_BUFFER: usize = 4096;

/// The connection to one browser. Dropping the last handle ends the task that owns the socket.
#[derive(Debug)]
pub(super) struct Connection {
    /// Commands for the socket's task.
    commands: mpsc::Sender<Command>,
    /// Where the socket's task publishes events; [`Connection::events`] subscribes.
    events: broadcast::Sender<Event>,
}

/// Something the browser announced: `Page.lifecycleEvent`, `Runtime.consoleAPICalled`, …
#[derive(Clone, Debug)]
pub(super) struct Event {
    /// The domain and the event's name.
    pub(super) method: String,
    /// Its parameters, as the protocol defines them for `method`.
    pub(super) params: Value,
    /// The page session it concerns; none for the browser's own events.
    pub(super) session_id: Option<String>,
}

/// A command on its way to the socket's task.
#[derive(Debug)]
struct Command {
    method: String,
    params: Value,
    session_id: Option<String>,
    /// Where the answer goes: the command's `result`, or the protocol's error message.
    answer: oneshot::Sender<Result<Value, String>>,
}

/// Whatever arrives on the socket: an answer has an `id`, an event a `method`.
#[derive(Debug, Deserialize)]
struct Incoming {
    id: Option<u64>,
    result: Option<Value>,
    error: Option<ProtocolError>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProtocolError {
    message: String,
    #[serde(default)]
    data: Option<String>,
}

impl Connection {
    /// Opens the WebSocket at `url` (the `ws://…/devtools/browser/…` address the browser
    /// printed) and starts the task that owns it.
    pub(super) async fn open(url: &str) -> Result<Self> {
        let (socket, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .with_context(|| format!("connecting to {url} took over {DEADLINE:?}"))?
            .with_context(|| format!("connecting to {url}"))?;
        let (commands, queue) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        tokio::spawn(run(socket, queue, events.clone()));
        Ok(Self { commands, events })
    }

    /// Sends `method` with `params`, to the page of `session_id` or else to the browser, and
    /// waits up to [`DEADLINE`] for its result.
    pub(super) async fn call(
        &self,
        session_id: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value> {
        let (answer, answered) = oneshot::channel();
        let command = Command {
            method: method.to_owned(),
            params,
            session_id: session_id.map(str::to_owned),
            answer,
        };
        let closed = || anyhow!("{method}: the browser's connection is closed");
        self.commands.send(command).await.map_err(|_| closed())?;
        tokio::time::timeout(DEADLINE, answered)
            .await
            .with_context(|| format!("{method}: no answer within {DEADLINE:?}"))?
            .map_err(|_| closed())?
            .map_err(|error| anyhow!("{method}: {error}"))
    }

    /// Every event from now on (events before the call are not replayed).
    pub(super) fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// The socket's task: writes commands with fresh ids, routes answers to their callers by id,
/// publishes events. Ends when every [`Connection`] handle is gone or the browser hangs up;
/// callers still waiting then see their answer channel closed.
async fn run(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    mut commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
) {
    let mut waiting: HashMap<u64, oneshot::Sender<Result<Value, String>>> = HashMap::new();
    let mut next_id = 0;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                next_id += 1;
                let mut message = json!({
                    "id": next_id,
                    "method": command.method,
                    "params": command.params,
                });
                if let Some(session_id) = command.session_id {
                    message["sessionId"] = Value::String(session_id);
                }
                if let Err(error) = socket.send(Message::text(message.to_string())).await {
                    let _ = command.answer.send(Err(format!("sending failed: {error}")));
                    break;
                }
                waiting.insert(next_id, command.answer);
            }
            message = socket.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                // The protocol is the browser's: a message this client cannot read is skipped.
                let Ok(incoming) = serde_json::from_str::<Incoming>(text.as_str()) else {
                    continue;
                };
                match (incoming.id, incoming.method) {
                    (Some(id), _) => {
                        let Some(answer) = waiting.remove(&id) else { continue };
                        let _ = answer.send(match incoming.error {
                            Some(error) => Err(match error.data {
                                Some(data) => format!("{} ({data})", error.message),
                                None => error.message,
                            }),
                            None => Ok(incoming.result.unwrap_or(Value::Null)),
                        });
                    }
                    (None, Some(method)) => {
                        let event = Event {
                            method,
                            params: incoming.params,
                            session_id: incoming.session_id,
                        };
                        // Nobody listening is fine: events are offered, not owed.
                        let _ = events.send(event);
                    }
                    (None, None) => {}
                }
            }
        }
    }
}
