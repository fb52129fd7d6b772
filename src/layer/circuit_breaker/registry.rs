//! The keyed set of circuits a breaker holds, behind one short lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::Outcome;
use super::outcome::Classifier;
use super::state::{Circuit, Permit, Refusal, Settings, State, Transition};
use crate::error::{Error, ErrorClass, ErrorKind};

/// The key of the circuit shared by recipients that arrive while every slot
/// holds a circuit that is not closed.
pub const OVERFLOW_KEY: &str = "<overflow>";

/// All circuits of one breaker. Locked only inside its methods, never across
/// an `.await`; transitions are logged after the lock is released.
pub(crate) struct Registry {
    name: Box<str>,
    created: Instant,
    settings: Settings,
    max_keys: usize,
    classify: Classifier,
    slots: Mutex<Slots>,
}

struct Slots {
    /// foldhash: keys are short recipient names hashed on every call;
    /// SipHash costs more than the rest of the breaker.
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// `entries[0]` is the overflow circuit; it is never in `index`.
    entries: Vec<Entry>,
    tick: u64,
    next_epoch: u64,
}

struct Entry {
    key: Box<str>,
    circuit: Circuit,
    /// Changes when the slot is given to another key, so results of calls
    /// admitted for the evicted key are dropped.
    epoch: u64,
    used: u64,
}

/// An admitted call: where its circuit lives and its permit.
#[derive(Debug)]
pub(crate) struct Ticket {
    slot: usize,
    epoch: u64,
    permit: Permit,
}

impl Registry {
    pub(crate) fn new(
        name: &str,
        settings: Settings,
        max_keys: usize,
        classify: Classifier,
    ) -> Self {
        let overflow = Entry {
            key: OVERFLOW_KEY.into(),
            circuit: Circuit::new(&settings),
            epoch: 0,
            used: 0,
        };
        Self {
            name: name.into(),
            created: now(),
            settings,
            max_keys,
            classify,
            slots: Mutex::new(Slots {
                index: HashMap::default(),
                entries: vec![overflow],
                tick: 0,
                next_epoch: 1,
            }),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // The state machine never panics midway; a poisoned lock still holds
        // consistent circuits.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn acquire(&self, key: &str) -> Result<Ticket, Error> {
        let (result, transition) = {
            let mut slots = self.lock();
            let slot = slots.slot_for(&self.name, key, self.max_keys, &self.settings);
            slots.tick += 1;
            let tick = slots.tick;
            let entry = &mut slots.entries[slot];
            entry.used = tick;
            // Only an open circuit reads the time: closed calls skip the clock.
            let now = if entry.circuit.needs_clock() {
                now()
            } else {
                self.created
            };
            let (admission, transition) = entry.circuit.try_acquire(&self.settings, now);
            let result = admission.map(|permit| Ticket {
                slot,
                epoch: entry.epoch,
                permit,
            });
            (result, transition.map(|t| (entry.key.clone(), t)))
        };
        self.announce(transition);
        result.map_err(|refusal| refused(key, refusal))
    }

    pub(crate) fn complete(&self, ticket: Ticket, error: Option<&Error>) {
        let outcome = error.map_or(Outcome::Success, |error| (self.classify)(error));
        let transition = {
            let mut slots = self.lock();
            let Some(entry) = slots.entries.get_mut(ticket.slot) else {
                return;
            };
            if entry.epoch != ticket.epoch {
                return;
            }
            let transition = match outcome {
                Outcome::Success => entry.circuit.on_success(&self.settings, ticket.permit),
                Outcome::Failure => entry
                    .circuit
                    .on_failure(&self.settings, ticket.permit, now()),
                Outcome::Ignore => {
                    entry.circuit.on_release(ticket.permit);
                    None
                }
            };
            transition.map(|t| (entry.key.clone(), t))
        };
        self.announce(transition);
    }

    pub(crate) fn release(&self, ticket: Ticket) {
        let mut slots = self.lock();
        if let Some(entry) = slots.entries.get_mut(ticket.slot)
            && entry.epoch == ticket.epoch
        {
            entry.circuit.on_release(ticket.permit);
        }
    }

    pub(crate) fn state(&self, key: &str) -> Option<State> {
        let slots = self.lock();
        let slot = if key == OVERFLOW_KEY {
            Some(0)
        } else {
            slots.index.get(key).copied()
        };
        slot.map(|slot| slots.entries[slot].circuit.state())
    }

    pub(crate) fn states(&self) -> Vec<(String, State)> {
        let slots = self.lock();
        let mut states: Vec<_> = slots
            .entries
            .iter()
            .map(|entry| (entry.key.to_string(), entry.circuit.state()))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    pub(crate) fn force(&self, key: &str, target: State) {
        let transition = {
            let mut slots = self.lock();
            let slot = if key == OVERFLOW_KEY {
                0
            } else {
                slots.slot_for(&self.name, key, self.max_keys, &self.settings)
            };
            let entry = &mut slots.entries[slot];
            entry.circuit.force(target).map(|t| (entry.key.clone(), t))
        };
        self.announce(transition);
    }

    fn announce(&self, transition: Option<(Box<str>, Transition)>) {
        let Some((key, Transition { from, to: state })) = transition else {
            return;
        };
        let (breaker, key, from, to) = (&*self.name, &*key, from.as_str(), state.as_str());
        if matches!(state, State::Open | State::ForcedOpen) {
            tracing::warn!(breaker, key, from, to, "circuit breaker opened");
        } else {
            tracing::info!(breaker, key, from, to, "circuit breaker changed state");
        }
        metrics::counter!(
            "stage7_transport_breaker_transitions_total",
            "breaker" => breaker.to_owned(),
            "to" => to,
        )
        .increment(1);
        metrics::gauge!(
            "stage7_transport_breaker_state",
            "breaker" => breaker.to_owned(),
            "key" => key.to_owned(),
        )
        .set(state.gauge());
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl Slots {
    fn slot_for(
        &mut self,
        breaker: &str,
        key: &str,
        max_keys: usize,
        settings: &Settings,
    ) -> usize {
        if let Some(&slot) = self.index.get(key) {
            return slot;
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let entry = Entry {
            key: key.into(),
            circuit: Circuit::new(settings),
            epoch,
            used: self.tick,
        };
        let slot = if self.entries.len() <= max_keys {
            self.entries.push(entry);
            self.entries.len() - 1
        } else {
            let victim = self
                .entries
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, entry)| entry.circuit.state() == State::Closed)
                .min_by_key(|(_, entry)| entry.used)
                .map(|(slot, _)| slot);
            let Some(slot) = victim else {
                tracing::warn!(
                    breaker,
                    key,
                    max_keys,
                    "circuit breaker key limit reached; using the overflow circuit"
                );
                return 0;
            };
            let old = std::mem::replace(&mut self.entries[slot], entry);
            self.index.remove(&old.key);
            slot
        };
        self.index.insert(key.into(), slot);
        slot
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn refused(key: &str, refusal: Refusal) -> Error {
    match refusal {
        Refusal::Open { retry_after } => Error::circuit_open(key, Some(retry_after)),
        Refusal::ProbesBusy => Error::new(
            ErrorKind::CircuitOpen,
            ErrorClass::NotDelivered,
            format!("circuit half-open for `{key}`; every probe slot is taken"),
        )
        .with_key(key),
        Refusal::Forced => Error::new(
            ErrorKind::CircuitOpen,
            ErrorClass::NotDelivered,
            format!("circuit for `{key}` is held open by hand"),
        )
        .with_key(key),
    }
}
