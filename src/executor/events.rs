//! Server-sent events of a run, from the task executing it to the client streaming it.

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Internal: the code of a step's call is about to run (`{"step_id", "index"}`). The
/// Assistants stream has no such event and does not send it; the Responses stream turns it
/// into `code_interpreter_call.interpreting`.
pub const CODE_STARTED: &str = "assistd.code.started";

/// Internal: a step's `shell` call runs now, or (local) goes to the client:
/// `{"step_id", "index", "action", "environment"}`. The Responses stream turns it into the
/// `shell_call_command.*` events and the call's `output_item.done`.
pub const SHELL_CALLED: &str = "assistd.shell.called";

/// Whether an event is the server's own, not sent to an Assistants client.
pub fn is_internal(name: &str) -> bool {
    name.starts_with("assistd.")
}

#[derive(Debug, Clone)]
pub struct RunEvent {
    pub name: &'static str,
    pub data: String,
}

/// Where a run task sends its events; a no-op when nobody streams the run. A client that
/// goes away does not stop the run, so send errors are ignored.
#[derive(Clone, Default)]
pub struct Emitter(Option<mpsc::UnboundedSender<RunEvent>>);

impl Emitter {
    pub fn channel() -> (Emitter, mpsc::UnboundedReceiver<RunEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Emitter(Some(tx)), rx)
    }

    pub fn is_streaming(&self) -> bool {
        self.0.is_some()
    }

    pub fn emit(&self, name: &'static str, data: &impl Serialize) {
        if let Some(tx) = &self.0 {
            let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
            let _ = tx.send(RunEvent { name, data });
        }
    }

    /// An event whose data is already JSON (relayed from another replica).
    pub fn emit_raw(&self, name: &'static str, data: String) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(RunEvent { name, data });
        }
    }

    /// Whether the client streaming these events went away.
    pub fn is_closed(&self) -> bool {
        self.0.as_ref().is_some_and(|tx| tx.is_closed())
    }

    /// The stream's last event; the channel closes when the emitter is dropped.
    pub fn done(&self) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(RunEvent {
                name: "done",
                data: "[DONE]".into(),
            });
        }
    }
}

/// The SSE response for a run's events: `event: NAME` / `data: JSON`, ending with `done`.
pub fn sse_response(rx: mpsc::UnboundedReceiver<RunEvent>) -> Response {
    let stream = UnboundedReceiverStream::new(rx)
        .filter(|e| std::future::ready(!is_internal(e.name)))
        .map(|e| Ok::<_, std::convert::Infallible>(Event::default().event(e.name).data(e.data)));
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
