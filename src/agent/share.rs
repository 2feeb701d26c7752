//! Concurrent identical scrapes share one answer. A scrape that arrives while another one with
//! the same key (configuration, format, encoding, collector selection) is being built, and
//! that other one is due no later than this one's own deadline, waits for that answer and
//! serves the same bytes, instead of merging, encoding and compressing them again. An answer
//! is shared only with the scrapes that arrived while it was being built: once it has been
//! handed out it is forgotten, so the next scrape collects afresh (nothing is cached across
//! scrapes).
//!
//! This is the answer-level counterpart of the scheduler's shared collector runs (an HA pair
//! of Prometheus servers scraping at the same moment): the runs are shared whatever the
//! request; the answer only between requests that would get the same bytes.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;

/// The answers being built, by key.
pub struct Flights<K, V> {
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    next_id: u64,
    flying: Vec<Flight<K, V>>,
}

struct Flight<K, V> {
    id: u64,
    key: K,
    /// When the leader's collectors give up: a scrape due earlier does not wait for it.
    due: Instant,
    tx: watch::Sender<Option<V>>,
}

/// What [`Flights::seat`] gives a scrape: build the answer (and hand it to those who wait
/// for it), or wait for the one being built.
pub enum Seat<'a, K, V> {
    Lead(Lead<'a, K, V>),
    Follow(Follow<V>),
}

/// The duty of building an answer. Landing it hands it to the followers; dropped without
/// landing (the leader's client went away and its request was cancelled), the followers are
/// released to seat themselves again.
pub struct Lead<'a, K, V> {
    flights: &'a Flights<K, V>,
    id: u64,
}

/// A wait for an answer being built by another scrape.
pub struct Follow<V> {
    rx: watch::Receiver<Option<V>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            state: Mutex::new(State {
                next_id: 0,
                flying: Vec::new(),
            }),
        }
    }
}

impl<K, V> Flights<K, V> {
    fn state(&self) -> MutexGuard<'_, State<K, V>> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Removes flight `id`, if still flying.
    fn take(&self, id: u64) -> Option<Flight<K, V>> {
        let mut st = self.state();
        let i = st.flying.iter().position(|f| f.id == id)?;
        Some(st.flying.swap_remove(i))
    }

    /// Answers being built now (for tests).
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.state().flying.len()
    }
}

impl<K: PartialEq, V: Clone> Flights<K, V> {
    /// Joins the answer being built for `key` if it is due by `due`, or takes the duty of
    /// building it.
    pub fn seat(&self, key: K, due: Instant) -> Seat<'_, K, V> {
        let mut st = self.state();
        if let Some(f) = st.flying.iter().find(|f| f.key == key && f.due <= due) {
            return Seat::Follow(Follow {
                rx: f.tx.subscribe(),
            });
        }
        st.next_id += 1;
        let id = st.next_id;
        let (tx, _) = watch::channel(None);
        st.flying.push(Flight { id, key, due, tx });
        Seat::Lead(Lead { flights: self, id })
    }
}

impl<K, V> Lead<'_, K, V>
where
    K: PartialEq,
    V: Clone,
{
    /// Hands the answer to the scrapes that wait for it and forgets it: a scrape arriving
    /// from now on builds its own.
    pub fn land(self, answer: V) {
        if let Some(f) = self.flights.take(self.id) {
            if f.tx.receiver_count() > 0 {
                let _ = f.tx.send(Some(answer));
            }
        }
    }
}

impl<K, V> Drop for Lead<'_, K, V> {
    fn drop(&mut self) {
        // After `land` the flight is gone and this finds nothing. Otherwise the sender is
        // dropped with it and the followers see the flight end without an answer.
        drop(self.flights.take(self.id));
    }
}

impl<V: Clone> Follow<V> {
    /// The leader's answer, or `None` when the leader went away without one or `until`
    /// passed first.
    pub async fn answer(mut self, until: Instant) -> Option<V> {
        match tokio::time::timeout_at(until, self.rx.wait_for(Option::is_some)).await {
            Ok(Ok(v)) => v.clone(),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn scrapes_during_a_build_get_its_answer_and_later_ones_build_anew() {
        let rt = rt();
        let flights: Flights<&str, u32> = Flights::default();
        let due = Instant::now() + Duration::from_secs(10);
        let Seat::Lead(lead) = flights.seat("text", due) else {
            panic!("the first scrape leads")
        };
        let followers: Vec<Follow<u32>> = (0..3)
            .map(|_| match flights.seat("text", due) {
                Seat::Follow(f) => f,
                Seat::Lead(_) => panic!("a scrape during the build follows"),
            })
            .collect();
        assert_eq!(flights.in_flight(), 1);
        lead.land(7);
        assert_eq!(flights.in_flight(), 0, "a landed answer is forgotten");
        for f in followers {
            assert_eq!(rt.block_on(f.answer(due)), Some(7));
        }
        assert!(
            matches!(flights.seat("text", due), Seat::Lead(_)),
            "a scrape after the answer was handed out builds its own"
        );
    }

    #[test]
    fn other_keys_and_earlier_deadlines_build_their_own() {
        let flights: Flights<&str, u32> = Flights::default();
        let now = Instant::now();
        let _a = flights.seat("text", now + Duration::from_secs(10));
        let other = flights.seat("openmetrics", now + Duration::from_secs(10));
        assert!(matches!(other, Seat::Lead(_)), "another key does not share");
        let early = flights.seat("text", now + Duration::from_secs(1));
        assert!(
            matches!(early, Seat::Lead(_)),
            "a scrape due before the build's deadline does not wait for it"
        );
        assert_eq!(flights.in_flight(), 3);
        let late = flights.seat("text", now + Duration::from_secs(20));
        assert!(matches!(late, Seat::Follow(_)), "a scrape due later waits");
        assert_eq!(flights.in_flight(), 3, "a follower adds no flight");
    }

    #[test]
    fn a_leader_that_goes_away_releases_its_followers() {
        let rt = rt();
        let flights: Flights<&str, u32> = Flights::default();
        let due = Instant::now() + Duration::from_secs(10);
        let lead = flights.seat("text", due);
        let Seat::Follow(f) = flights.seat("text", due) else {
            panic!("follows")
        };
        drop(lead);
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(rt.block_on(f.answer(due)), None);
        assert!(matches!(flights.seat("text", due), Seat::Lead(_)));
    }

    #[test]
    fn a_follower_stops_waiting_at_its_limit() {
        let rt = rt();
        let flights: Flights<&str, u32> = Flights::default();
        let due = Instant::now() + Duration::from_secs(10);
        let _lead = flights.seat("text", due);
        let Seat::Follow(f) = flights.seat("text", due) else {
            panic!("follows")
        };
        let until = Instant::now() + Duration::from_millis(20);
        assert_eq!(rt.block_on(f.answer(until)), None);
    }
}
