//! The breaker's state machine: pure, synchronous, no runtime.
//!
//! One [`Circuit`] per key. Callers pass the current instant explicitly, so
//! tests drive time by hand; the service around it holds a lock only for the
//! duration of one method call here.
//!
//! ```text
//!            trip policy met                 break elapsed, next call
//!   Closed ──────────────────▶ Open ─────────────────────────▶ HalfOpen
//!     ▲                         ▲                                 │
//!     │                         └──── a probe fails (break grows) ┤
//!     └────────────────── all probes succeed (break resets) ──────┘
//! ```

use std::time::{Duration, Instant};

/// The state of one circuit, as reported by
/// [`BreakerHandle`](super::BreakerHandle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are counted.
    Closed,
    /// Calls are refused until the break elapses.
    Open,
    /// A bounded number of probe calls pass; their outcomes decide.
    HalfOpen,
    /// Held open by hand until reset.
    ForcedOpen,
    /// Held closed by hand until reset: calls pass, nothing trips.
    ForcedClosed,
}

impl State {
    /// Lowercase name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
        }
    }

    /// The value of the `stage7_transport_breaker_state` gauge.
    pub const fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
            Self::ForcedOpen => 3.0,
            Self::ForcedClosed => 4.0,
        }
    }
}

/// Trip when the share of failures among the last `window` calls reaches
/// `threshold`, once at least `min_calls` calls are counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRate {
    /// Share of failures that trips, in `(0, 1]`.
    pub threshold: f32,
    /// Number of most recent calls considered.
    pub window: u32,
    /// Calls needed in the window before the rate counts.
    pub min_calls: u32,
}

/// The trip and recovery settings every circuit of a breaker shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Trip after this many failures in a row.
    pub consecutive_failures: Option<u32>,
    /// Trip on a failure rate over a count window.
    pub failure_rate: Option<FailureRate>,
    /// How long the first open lasts.
    pub break_duration: Duration,
    /// Each further open in a row lasts this many times longer.
    pub break_growth: f32,
    /// The longest an open lasts.
    pub max_break: Duration,
    /// Probe calls admitted while half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl Settings {
    /// The break after `opens` opens in a row without closing.
    pub fn break_after(&self, opens: u32) -> Duration {
        let growth = f64::from(self.break_growth).powi(opens.min(64) as i32);
        self.break_duration
            .mul_f64(growth.min(1e9))
            .min(self.max_break)
    }
}

/// Proof that a call was admitted; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
    probe: bool,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open; the break ends after `retry_after`.
    Open {
        /// Time left in the break.
        retry_after: Duration,
    },
    /// Half-open with every probe slot taken.
    ProbesBusy,
    /// Held open by hand.
    Forced,
}

/// A state change, returned so the caller can log it after unlocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
    ForcedOpen,
    ForcedClosed,
}

/// One key's breaker.
#[derive(Debug, Clone)]
pub struct Circuit {
    phase: Phase,
    /// Bumped on every transition; permits from an earlier phase are stale.
    generation: u64,
    consecutive: u32,
    window: Window,
    opens: u32,
}

impl Circuit {
    /// A closed circuit.
    pub fn new(settings: &Settings) -> Self {
        Self {
            phase: Phase::Closed,
            generation: 0,
            consecutive: 0,
            window: Window::new(settings.failure_rate.map_or(0, |rate| rate.window)),
            opens: 0,
        }
    }

    /// The current state. An open circuit whose break has elapsed reports
    /// `Open` until the next call moves it to half-open.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
            Phase::ForcedOpen => State::ForcedOpen,
            Phase::ForcedClosed => State::ForcedClosed,
        }
    }

    /// Whether [`try_acquire`](Self::try_acquire) needs the current time;
    /// lets callers skip reading the clock while closed.
    pub fn needs_clock(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// Admits or refuses a call.
    pub fn try_acquire(
        &mut self,
        settings: &Settings,
        now: Instant,
    ) -> (Result<Permit, Refusal>, Option<Transition>) {
        match self.phase {
            Phase::Open { until } if now < until => (
                Err(Refusal::Open {
                    retry_after: until - now,
                }),
                None,
            ),
            Phase::Open { .. } => {
                let transition = self.enter(Phase::HalfOpen {
                    admitted: 1,
                    succeeded: 0,
                });
                (Ok(self.permit(true)), transition)
            }
            Phase::HalfOpen {
                admitted,
                succeeded,
            } if admitted < settings.half_open_probes => {
                self.phase = Phase::HalfOpen {
                    admitted: admitted + 1,
                    succeeded,
                };
                (Ok(self.permit(true)), None)
            }
            Phase::HalfOpen { .. } => (Err(Refusal::ProbesBusy), None),
            Phase::Closed | Phase::ForcedClosed => (Ok(self.permit(false)), None),
            Phase::ForcedOpen => (Err(Refusal::Forced), None),
        }
    }

    /// Records a successful call.
    pub fn on_success(&mut self, settings: &Settings, permit: Permit) -> Option<Transition> {
        if permit.generation != self.generation {
            return None;
        }
        match &mut self.phase {
            Phase::Closed => {
                self.consecutive = 0;
                self.window.push(false);
                None
            }
            Phase::HalfOpen { succeeded, .. } if permit.probe => {
                *succeeded += 1;
                if *succeeded >= settings.half_open_probes {
                    self.opens = 0;
                    self.enter(Phase::Closed)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Records a failed call.
    pub fn on_failure(
        &mut self,
        settings: &Settings,
        permit: Permit,
        now: Instant,
    ) -> Option<Transition> {
        if permit.generation != self.generation {
            return None;
        }
        match self.phase {
            Phase::Closed => {
                self.consecutive = self.consecutive.saturating_add(1);
                self.window.push(true);
                let by_count = settings
                    .consecutive_failures
                    .is_some_and(|limit| self.consecutive >= limit);
                let by_rate = settings.failure_rate.is_some_and(|rate| {
                    self.window.len >= rate.min_calls.max(1)
                        && self.window.failures as f32 >= rate.threshold * self.window.len as f32
                });
                (by_count || by_rate)
                    .then(|| self.open(settings, now))
                    .flatten()
            }
            Phase::HalfOpen { .. } if permit.probe => self.open(settings, now),
            _ => None,
        }
    }

    /// Records a call that ended without an outcome (dropped, or an error
    /// the classifier ignores): frees its probe slot.
    pub fn on_release(&mut self, permit: Permit) {
        if permit.generation != self.generation || !permit.probe {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut self.phase {
            *admitted = admitted.saturating_sub(1);
        }
    }

    /// Forces a state by hand: `ForcedOpen`, `ForcedClosed`, or `Closed`
    /// (a reset). Every change of phase, including a reset of a closed
    /// circuit, clears the counters; a reset also clears the break growth.
    pub fn force(&mut self, target: State) -> Option<Transition> {
        let phase = match target {
            State::ForcedOpen => Phase::ForcedOpen,
            State::ForcedClosed => Phase::ForcedClosed,
            State::Closed | State::Open | State::HalfOpen => {
                self.opens = 0;
                Phase::Closed
            }
        };
        self.enter(phase)
    }

    fn permit(&self, probe: bool) -> Permit {
        Permit {
            generation: self.generation,
            probe,
        }
    }

    fn open(&mut self, settings: &Settings, now: Instant) -> Option<Transition> {
        let until = now + settings.break_after(self.opens);
        self.opens = self.opens.saturating_add(1);
        self.enter(Phase::Open { until })
    }

    fn enter(&mut self, phase: Phase) -> Option<Transition> {
        let from = self.state();
        self.phase = phase;
        self.generation += 1;
        self.consecutive = 0;
        self.window.clear();
        let to = self.state();
        (from != to).then_some(Transition { from, to })
    }
}

/// The outcomes of the last `size` calls, one bit each.
#[derive(Debug, Clone)]
struct Window {
    bits: Box<[u64]>,
    size: u32,
    len: u32,
    next: u32,
    failures: u32,
}

impl Window {
    fn new(size: u32) -> Self {
        Self {
            bits: vec![0; size.div_ceil(64) as usize].into_boxed_slice(),
            size,
            len: 0,
            next: 0,
            failures: 0,
        }
    }

    fn push(&mut self, failed: bool) {
        if self.size == 0 {
            return;
        }
        let (word, bit) = ((self.next / 64) as usize, 1u64 << (self.next % 64));
        if self.len == self.size {
            if self.bits[word] & bit != 0 {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        if failed {
            self.bits[word] |= bit;
            self.failures += 1;
        } else {
            self.bits[word] &= !bit;
        }
        self.next += 1;
        if self.next == self.size {
            self.next = 0;
        }
    }

    fn clear(&mut self) {
        self.bits.fill(0);
        self.len = 0;
        self.next = 0;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests;
