//! Coalescing of identical in-flight upstream queries: the first caller (leader) asks the
//! upstreams, later identical callers wait for and share its result.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use fnv::FnvBuildHasher;
use parking_lot::Mutex;
use tokio::sync::Notify;

const SHARDS: usize = 16;

/// What a finished flight left for its followers.
enum Done<T> {
    Value(T),
    Abandoned,
}

struct Flight<T> {
    done: OnceLock<Done<T>>,
    notify: Notify,
}

/// One shard: key → flight.
type FlightMap<T> = HashMap<Vec<u8>, Arc<Flight<T>>, FnvBuildHasher>;

/// A table of in-flight keys.
pub struct Inflight<T> {
    shards: [Mutex<FlightMap<T>>; SHARDS],
    hasher: FnvBuildHasher,
}

impl<T: Clone> Default for Inflight<T> {
    fn default() -> Self {
        Inflight { shards: std::array::from_fn(|_| Mutex::new(HashMap::default())), hasher: FnvBuildHasher::default() }
    }
}

/// The leader's handle; finishing (or dropping) it releases the followers.
pub struct Leader<'a, T> {
    table: &'a Inflight<T>,
    shard: usize,
    key: Vec<u8>,
    flight: Arc<Flight<T>>,
    finished: bool,
}

/// Either lead the query or wait for the leader.
pub enum Role<'a, T> {
    /// Do the work, then call [`Leader::finish`].
    Leader(Leader<'a, T>),
    /// Wait with [`Follower::wait`].
    Follower(Follower<T>),
}

/// A waiting caller.
pub struct Follower<T> {
    flight: Arc<Flight<T>>,
}

impl<T: Clone> Inflight<T> {
    /// Joins the flight for `key`, or starts one.
    pub fn join(&self, key: Vec<u8>) -> Role<'_, T> {
        let shard = (self.hasher.hash_one(&key) as usize) % SHARDS;
        let mut map = self.shards[shard].lock();
        if let Some(f) = map.get(&key) {
            return Role::Follower(Follower { flight: f.clone() });
        }
        let flight = Arc::new(Flight { done: OnceLock::new(), notify: Notify::new() });
        map.insert(key.clone(), flight.clone());
        drop(map);
        Role::Leader(Leader { table: self, shard, key, flight, finished: false })
    }

    /// Number of keys in flight (for tests).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Leader<'_, T> {
    fn release(&mut self, value: Option<&T>) {
        self.finished = true;
        let removed = {
            let mut map = self.table.shards[self.shard].lock();
            let ours = map.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight));
            if ours {
                map.remove(&self.key);
            }
            // Followers clone the flight under the lock, so the count is now final.
            Arc::strong_count(&self.flight) > 1
        };
        if removed {
            let done = match value {
                Some(v) => Done::Value(v.clone()),
                None => Done::Abandoned,
            };
            let _ = self.flight.done.set(done);
            self.flight.notify.notify_waiters();
        }
    }

    /// Publishes the result to any followers.
    pub fn finish(mut self, value: &T) {
        self.release(Some(value));
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        if !self.finished {
            // The leader was cancelled: let followers do their own work.
            self.finished = true;
            let mut map = self.table.shards[self.shard].lock();
            if map.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                map.remove(&self.key);
            }
            drop(map);
            let _ = self.flight.done.set(Done::Abandoned);
            self.flight.notify.notify_waiters();
        }
    }
}

impl<T: Clone> Follower<T> {
    /// The leader's result, or None when the leader gave up.
    pub async fn wait(self) -> Option<T> {
        loop {
            let notified = self.flight.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.flight.done.get() {
                Some(Done::Value(v)) => return Some(v.clone()),
                Some(Done::Abandoned) => return None,
                None => notified.await,
            }
        }
    }
}
