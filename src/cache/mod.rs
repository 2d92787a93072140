//! The read cache: response bodies of the reads clients repeat most (an assistant, a thread,
//! a thread's messages), kept in memory so that a repeated read costs no database round trip.
//!
//! Bodies are filed under a *tag*, the id of the object whose change makes them stale: the
//! assistant's id, or the thread's id for the thread and everything read of its messages.
//! A change drops the whole tag.
//!
//! Staying correct:
//! - every write path drops its tags once its transaction has committed, so a server reads its
//!   own writes at once;
//! - database triggers announce every change on the change feed ([`feed`]), so the other
//!   servers on the same database drop theirs as soon as the notice arrives;
//! - a body read from the database is only kept if its shard saw no drop since the read began
//!   ([`Ticket`]), so a slow reader cannot put back what a writer just dropped;
//! - while the feed is down nothing is served from or kept in the cache.

pub mod feed;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hashlink::LruCache;

const SHARDS: usize = 64;
/// A tag with more distinct reads than this (say, many cursors into one thread) starts over.
const BODIES_PER_TAG: usize = 64;
/// Bookkeeping per body beyond its bytes, for the memory budget.
const OVERHEAD: usize = 96;

#[derive(Clone)]
pub struct ReadCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Bytes each shard may hold.
    budget: usize,
    /// False until the change feed listens, and whenever it may have missed a change.
    live: AtomicBool,
}

struct Shard {
    /// Counts drops; a fill whose ticket predates the latest drop is refused.
    epoch: u64,
    tags: LruCache<String, Tagged>,
    bytes: usize,
}

#[derive(Default)]
struct Tagged {
    bodies: HashMap<String, Bytes>,
    bytes: usize,
}

/// Taken before reading from the database; a fill presents it.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    shard: usize,
    epoch: u64,
}

impl ReadCache {
    /// A cache of at most `megabytes`; 0 turns caching off.
    pub fn new(megabytes: usize) -> Self {
        if megabytes == 0 {
            return Self::disabled();
        }
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    epoch: 0,
                    tags: LruCache::new_unbounded(),
                    bytes: 0,
                })
            })
            .collect();
        Self {
            inner: Some(Arc::new(Inner {
                shards,
                hasher: Default::default(),
                budget: megabytes * 1024 * 1024 / SHARDS,
                live: AtomicBool::new(false),
            })),
        }
    }

    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// The cached body of read `key` under `tag`, if there is one.
    pub fn get(&self, tag: &str, key: &str) -> Option<Bytes> {
        let inner = self.live()?;
        let mut shard = inner.shard(tag).1;
        shard.tags.get_mut(tag)?.bodies.get(key).cloned()
    }

    /// To be taken before the database read whose result may be kept with [`Self::fill`].
    pub fn ticket(&self, tag: &str) -> Option<Ticket> {
        let inner = self.live()?;
        let (shard, guard) = inner.shard(tag);
        Some(Ticket {
            shard,
            epoch: guard.epoch,
        })
    }

    /// Keeps `body` unless `tag`'s shard saw a drop since `ticket` was taken.
    pub fn fill(&self, tag: &str, key: String, body: Bytes, ticket: Ticket) {
        let Some(inner) = self.live() else { return };
        let size = key.len() + body.len() + OVERHEAD;
        if size > inner.budget / 4 {
            return;
        }
        let (index, mut guard) = inner.shard(tag);
        if index != ticket.shard || guard.epoch != ticket.epoch {
            return;
        }
        let shard = &mut *guard;
        if !shard.tags.contains_key(tag) {
            shard.tags.insert(tag.to_string(), Tagged::default());
        }
        let tagged = shard.tags.get_mut(tag).expect("present");
        if tagged.bodies.len() >= BODIES_PER_TAG {
            shard.bytes -= tagged.bytes;
            tagged.bytes = 0;
            tagged.bodies.clear();
        }
        let key_len = key.len();
        if let Some(old) = tagged.bodies.insert(key, body) {
            let old_size = key_len + old.len() + OVERHEAD;
            tagged.bytes -= old_size;
            shard.bytes -= old_size;
        }
        tagged.bytes += size;
        shard.bytes += size;
        while shard.bytes > inner.budget {
            let Some((_, evicted)) = shard.tags.remove_lru() else {
                break;
            };
            shard.bytes -= evicted.bytes;
        }
    }

    /// Drops everything filed under `tag`. Called after a change to it has committed.
    pub fn invalidate(&self, tag: &str) {
        let Some(inner) = &self.inner else { return };
        let (_, mut shard) = inner.shard(tag);
        shard.epoch += 1;
        if let Some(tagged) = shard.tags.remove(tag) {
            shard.bytes -= tagged.bytes;
        }
    }

    /// Starts or stops serving. Either way everything is dropped: on the way down because
    /// changes may go unannounced from now on, on the way up because some may have been.
    pub fn set_live(&self, live: bool) {
        let Some(inner) = &self.inner else { return };
        inner.live.store(live, Ordering::SeqCst);
        for shard in &inner.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.epoch += 1;
            shard.tags.clear();
            shard.bytes = 0;
        }
    }

    /// `live`, `off` (the change feed is down) or `disabled` (configured to 0 MiB).
    pub fn state(&self) -> &'static str {
        match (&self.inner, self.live()) {
            (None, _) => "disabled",
            (Some(_), None) => "off",
            (Some(_), Some(_)) => "live",
        }
    }

    /// Bytes held, for tests and metrics.
    pub fn bytes(&self) -> usize {
        let Some(inner) = &self.inner else { return 0 };
        inner
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).bytes)
            .sum()
    }

    fn live(&self) -> Option<&Inner> {
        self.inner
            .as_deref()
            .filter(|inner| inner.live.load(Ordering::SeqCst))
    }
}

impl Inner {
    fn shard(&self, tag: &str) -> (usize, MutexGuard<'_, Shard>) {
        let index = (self.hasher.hash_one(tag) as usize) % SHARDS;
        let guard = self.shards[index].lock().unwrap_or_else(|e| e.into_inner());
        (index, guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(megabytes: usize) -> ReadCache {
        let cache = ReadCache::new(megabytes);
        cache.set_live(true);
        cache
    }

    fn keep(cache: &ReadCache, tag: &str, key: &str, body: &'static [u8]) {
        let ticket = cache.ticket(tag).expect("live");
        cache.fill(tag, key.into(), Bytes::from_static(body), ticket);
    }

    #[test]
    fn a_kept_body_is_served_until_its_tag_is_dropped() {
        let cache = live(1);
        keep(&cache, "thread_a", "p|list", b"[1]");
        keep(&cache, "thread_a", "p|thread", b"{}");
        keep(&cache, "thread_b", "p|list", b"[2]");
        assert_eq!(
            cache.get("thread_a", "p|list").as_deref(),
            Some(&b"[1]"[..])
        );
        assert_eq!(cache.get("thread_a", "q|list"), None, "keys are exact");

        cache.invalidate("thread_a");
        assert_eq!(cache.get("thread_a", "p|list"), None);
        assert_eq!(cache.get("thread_a", "p|thread"), None);
        assert_eq!(
            cache.get("thread_b", "p|list").as_deref(),
            Some(&b"[2]"[..])
        );
    }

    #[test]
    fn a_fill_that_started_before_a_drop_is_refused() {
        let cache = live(1);
        let ticket = cache.ticket("asst_1").unwrap();
        // A writer commits and drops the tag while the reader still holds the old row.
        cache.invalidate("asst_1");
        cache.fill("asst_1", "k".into(), Bytes::from_static(b"old"), ticket);
        assert_eq!(cache.get("asst_1", "k"), None);

        keep(&cache, "asst_1", "k", b"new");
        assert_eq!(cache.get("asst_1", "k").as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn nothing_is_served_or_kept_while_the_feed_is_down() {
        let cache = ReadCache::new(1);
        assert!(
            cache.ticket("asst_1").is_none(),
            "not live before the feed listens"
        );
        cache.set_live(true);
        keep(&cache, "asst_1", "k", b"v");
        let ticket = cache.ticket("asst_1").unwrap();

        cache.set_live(false);
        assert_eq!(cache.get("asst_1", "k"), None);
        cache.set_live(true);
        assert_eq!(cache.get("asst_1", "k"), None, "coming back starts empty");
        cache.fill("asst_1", "k".into(), Bytes::from_static(b"v"), ticket);
        assert_eq!(
            cache.get("asst_1", "k"),
            None,
            "a ticket from before the outage is void"
        );
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let cache = live(1);
        let body: &'static [u8] = &[b'x'; 2048];
        for n in 0..2000 {
            keep(&cache, &format!("thread_{n}"), "k", body);
        }
        assert!(cache.bytes() <= 1024 * 1024, "{} bytes", cache.bytes());
        assert!(
            cache.bytes() > 512 * 1024,
            "the budget is used: {}",
            cache.bytes()
        );
        // The most recent survive.
        assert!(cache.get("thread_1999", "k").is_some());
        assert!(cache.get("thread_0", "k").is_none());
    }

    #[test]
    fn many_reads_under_one_tag_start_over_instead_of_growing() {
        let cache = live(1);
        for n in 0..(BODIES_PER_TAG * 3) {
            keep(&cache, "thread_a", &format!("after={n}"), b"page");
        }
        let per_body = "after=100".len() + 4 + OVERHEAD;
        assert!(
            cache.bytes() <= BODIES_PER_TAG * per_body,
            "{}",
            cache.bytes()
        );
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = ReadCache::new(0);
        cache.set_live(true);
        assert!(cache.ticket("asst_1").is_none());
        assert_eq!(cache.get("asst_1", "k"), None);
    }
}
