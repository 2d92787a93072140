//! How run events travel as `NOTIFY` payloads: the events a publisher has queued go out as one
//! batch, packed into as few notices as fit under Postgres's 8,000-byte payload limit (one
//! event may span several notices, one notice may hold several events), all sent in one
//! statement; the listener joins a batch's notices again and gets its events in order.
//!
//! A notice is `run_id \t seq \t part \t parts \t piece`: `seq` numbers a run's batches from 0,
//! `part` counts the batch's notices. The batch is its events one after the other, each as
//! `name \t length \t data` (the length in bytes, so data may hold anything). The sequence number
//! keeps two notices of one statement from being identical, which Postgres would deliver once.

use std::fmt::Write;

use super::super::events::RunEvent;

/// Postgres refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_999;
/// Room for the header (run id aside): three decimal numbers and four tabs.
const HEADER_ROOM: usize = 3 * 20 + 4;

/// The notices carrying one batch of a run's events, in the order to send them.
pub fn pack(run_id: &str, seq: u64, events: &[RunEvent]) -> Vec<String> {
    let mut batch = String::with_capacity(events.iter().map(|e| e.data.len() + 40).sum());
    for event in events {
        let _ = write!(
            batch,
            "{}\t{}\t{}",
            event.name,
            event.data.len(),
            event.data
        );
    }
    let budget = MAX_PAYLOAD
        .saturating_sub(run_id.len() + HEADER_ROOM)
        .max(64);
    let mut pieces = vec![];
    let mut rest = batch.as_str();
    loop {
        let mut cut = rest.len().min(budget);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
        if rest.is_empty() {
            break;
        }
    }
    let parts = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(part, piece)| format!("{run_id}\t{seq}\t{part}\t{parts}\t{piece}"))
        .collect()
}

/// One notice, parsed.
#[derive(Debug, PartialEq)]
pub struct Notice<'a> {
    pub run_id: &'a str,
    pub seq: u64,
    pub part: usize,
    pub parts: usize,
    pub piece: &'a str,
}

impl<'a> Notice<'a> {
    pub fn parse(payload: &'a str) -> Option<Self> {
        let mut fields = payload.splitn(5, '\t');
        let notice = Notice {
            run_id: fields.next()?,
            seq: fields.next()?.parse().ok()?,
            part: fields.next()?.parse().ok()?,
            parts: fields.next()?.parse().ok()?,
            piece: fields.next()?,
        };
        (notice.part < notice.parts).then_some(notice)
    }
}

/// A run's batches joined again from its notices, which arrive in the order they were sent.
#[derive(Debug, Default)]
pub struct Assembly {
    /// The batch expected next.
    seq: u64,
    /// Its notices so far.
    parts: usize,
    joined: String,
}

/// A notice that does not follow the one before (a lost notice, a reconnected listener).
#[derive(Debug, PartialEq)]
pub struct OutOfOrder {
    pub expected: (u64, usize),
    pub got: (u64, usize),
}

impl Assembly {
    /// Adds the next notice; returns the batch's events once its last notice arrived. Events
    /// whose bytes do not parse end the batch early (never garbled into the stream).
    pub fn add(&mut self, notice: &Notice) -> Result<Option<Vec<(String, String)>>, OutOfOrder> {
        if (notice.seq, notice.part) != (self.seq, self.parts) {
            let err = OutOfOrder {
                expected: (self.seq, self.parts),
                got: (notice.seq, notice.part),
            };
            // Pick up again at the next whole batch.
            self.seq = notice.seq + 1;
            self.parts = 0;
            self.joined.clear();
            return Err(err);
        }
        self.joined.push_str(notice.piece);
        self.parts += 1;
        if self.parts < notice.parts {
            return Ok(None);
        }
        let events = unbatch(&self.joined);
        self.seq += 1;
        self.parts = 0;
        self.joined.clear();
        Ok(Some(events))
    }
}

fn unbatch(mut batch: &str) -> Vec<(String, String)> {
    let mut events = vec![];
    while !batch.is_empty() {
        let Some((name, rest)) = batch.split_once('\t') else {
            break;
        };
        let Some((len, rest)) = rest.split_once('\t') else {
            break;
        };
        let Some(data) = len.parse().ok().and_then(|len: usize| rest.get(..len)) else {
            break;
        };
        events.push((name.to_string(), data.to_string()));
        batch = &rest[data.len()..];
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &'static str, data: &str) -> RunEvent {
        RunEvent {
            name,
            data: data.to_string(),
        }
    }

    /// Sends the notices through an assembly, as the listener does.
    fn receive(notices: &[String], assembly: &mut Assembly) -> Vec<(String, String)> {
        let mut events = vec![];
        for payload in notices {
            assert!(payload.len() < 8_000, "{} bytes", payload.len());
            let notice = Notice::parse(payload).expect("a notice");
            assert_eq!(notice.run_id, "run_abc");
            if let Some(batch) = assembly.add(&notice).expect("in order") {
                events.extend(batch);
            }
        }
        events
    }

    fn named(events: &[RunEvent]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| (e.name.to_string(), e.data.clone()))
            .collect()
    }

    #[test]
    fn small_events_share_one_notice() {
        let events: Vec<RunEvent> = (0..20)
            .map(|i| event("thread.message.delta", &format!("{{\"i\":{i}}}")))
            .collect();
        let notices = pack("run_abc", 0, &events);
        assert_eq!(notices.len(), 1);
        assert_eq!(receive(&notices, &mut Assembly::default()), named(&events));
    }

    #[test]
    fn a_large_event_among_small_ones_spans_notices_and_keeps_its_place() {
        let large = "é".repeat(9_000) + "\t\nend";
        let batches = [
            vec![event("thread.run.in_progress", "{\"a\":1}")],
            vec![
                event("thread.run.step.created", "{\"b\":\"tab\\there\"}"),
                event("thread.message.delta", &large),
                event("thread.message.delta", ""),
                event("thread.message.completed", "{\"c\":3}"),
            ],
            vec![event("done", "[DONE]")],
        ];
        let mut assembly = Assembly::default();
        let mut sent = vec![];
        let mut got = vec![];
        for (seq, batch) in batches.iter().enumerate() {
            let notices = pack("run_abc", seq as u64, batch);
            if seq == 1 {
                assert!(notices.len() >= 3, "{} notices", notices.len());
            }
            got.extend(receive(&notices, &mut assembly));
            sent.extend(named(batch));
        }
        assert_eq!(got, sent);
    }

    #[test]
    fn repeated_events_make_distinct_notices() {
        // Postgres delivers identical payloads of one transaction once.
        let same = vec![event("thread.message.delta", &"x".repeat(20_000))];
        let notices = pack("run_abc", 7, &same);
        let distinct: std::collections::HashSet<&String> = notices.iter().collect();
        assert_eq!(distinct.len(), notices.len());
        let again = pack("run_abc", 8, &same);
        assert!(notices.iter().all(|n| !again.contains(n)));
    }

    #[test]
    fn a_lost_notice_drops_its_batch_and_the_next_batch_comes_through() {
        let big = vec![event("thread.message.delta", &"y".repeat(10_000))];
        let first = pack("run_abc", 0, &big);
        let second = pack("run_abc", 1, &[event("done", "[DONE]")]);
        let mut assembly = Assembly::default();
        let notice = Notice::parse(&first[1]).unwrap();
        assert_eq!(
            assembly.add(&notice),
            Err(OutOfOrder {
                expected: (0, 0),
                got: (0, 1)
            })
        );
        assert_eq!(
            receive(&second, &mut assembly),
            vec![("done".to_string(), "[DONE]".to_string())]
        );
    }

    #[test]
    fn malformed_notices_are_refused() {
        assert_eq!(Notice::parse("run_1\t0\t1"), None);
        assert_eq!(Notice::parse("run_1\tx\t0\t1\tdata"), None);
        assert_eq!(Notice::parse("run_1\t0\t1\t1\tdata"), None);
        let notice = Notice::parse("run_1\t0\t0\t1\tdone\t99\t[DONE]").unwrap();
        assert_eq!(
            Assembly::default().add(&notice),
            Ok(Some(vec![])),
            "a length past the end"
        );
    }
}
