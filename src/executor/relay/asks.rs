//! Requests from one replica to another, and their answers, on `NOTIFY assistd_session_files`
//! (what they carry is `session_files`' business): `ask:<to>:<body>` for the replica `to`,
//! `answer:<to>:<id>:<body>` back to the asking one, which waits for the answer by its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub const CHANNEL: &str = "assistd_session_files";

/// A notice on [`CHANNEL`], as far as the listener needs to read it.
#[derive(Debug, PartialEq)]
pub enum Notice<'a> {
    Ask {
        to: &'a str,
        body: &'a str,
    },
    Answer {
        to: &'a str,
        id: &'a str,
        body: &'a str,
    },
}

impl<'a> Notice<'a> {
    pub fn parse(payload: &'a str) -> Option<Notice<'a>> {
        if let Some(rest) = payload.strip_prefix("ask:") {
            let (to, body) = rest.split_once(':')?;
            return Some(Notice::Ask { to, body });
        }
        let rest = payload.strip_prefix("answer:")?;
        let (to, rest) = rest.split_once(':')?;
        let (id, body) = rest.split_once(':')?;
        Some(Notice::Answer { to, id, body })
    }
}

pub fn ask_payload(to: &str, body: &str) -> String {
    format!("ask:{to}:{body}")
}

pub fn answer_payload(to: &str, id: &str, body: &str) -> String {
    format!("answer:{to}:{id}:{body}")
}

/// The answers this replica waits for, by request id.
#[derive(Clone, Default)]
pub struct Asks {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>,
}

/// One awaited answer; dropping it stops waiting.
pub struct Waiting {
    asks: Asks,
    id: String,
    pub answer: oneshot::Receiver<String>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.asks.waiting.lock() {
            waiting.remove(&self.id);
        }
    }
}

impl Asks {
    /// Wait for the answer to `id` (before asking, so it cannot arrive first).
    pub fn expect(&self, id: &str) -> Waiting {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id.to_string(), tx);
        }
        Waiting {
            asks: self.clone(),
            id: id.to_string(),
            answer: rx,
        }
    }

    pub fn answered(&self, id: &str, body: &str) {
        let found = self.waiting.lock().ok().and_then(|mut w| w.remove(id));
        if let Some(tx) = found {
            let _ = tx.send(body.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_and_answers_name_their_replica_and_keep_colons_in_the_body() {
        let ask = ask_payload("worker_b", r#"{"path":"a:b"}"#);
        assert_eq!(
            Notice::parse(&ask),
            Some(Notice::Ask {
                to: "worker_b",
                body: r#"{"path":"a:b"}"#
            })
        );
        let answer = answer_payload("worker_a", "op1", r#"{"x":"1:2"}"#);
        assert_eq!(
            Notice::parse(&answer),
            Some(Notice::Answer {
                to: "worker_a",
                id: "op1",
                body: r#"{"x":"1:2"}"#
            })
        );
        assert_eq!(Notice::parse("bogus"), None);
    }

    #[tokio::test]
    async fn an_answer_reaches_only_the_request_waiting_for_it() {
        let asks = Asks::default();
        let mut waiting = asks.expect("op1");
        asks.answered("op2", "other");
        asks.answered("op1", "mine");
        assert_eq!((&mut waiting.answer).await.unwrap(), "mine");
    }
}
