use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn settings() -> Settings {
    Settings {
        consecutive_failures: Some(3),
        failure_rate: None,
        break_duration: Duration::from_secs(1),
        break_growth: 2.0,
        max_break: Duration::from_secs(30),
        half_open_probes: 1,
    }
}

fn admit(circuit: &mut Circuit, s: &Settings, now: Instant) -> Permit {
    circuit.try_acquire(s, now).0.expect("admitted")
}

fn fail_n(circuit: &mut Circuit, s: &Settings, now: Instant, n: u32) -> Option<Transition> {
    let mut last = None;
    for _ in 0..n {
        let permit = admit(circuit, s, now);
        last = circuit.on_failure(s, permit, now);
    }
    last
}

fn t(from: State, to: State) -> Option<Transition> {
    Some(Transition { from, to })
}

#[test]
fn closed_open_half_open_open_half_open_closed() {
    let s = settings();
    let start = Instant::now();
    let mut c = Circuit::new(&s);

    assert_eq!(fail_n(&mut c, &s, start, 2), None);
    assert_eq!(c.state(), State::Closed);
    assert_eq!(fail_n(&mut c, &s, start, 1), t(State::Closed, State::Open));

    let refused = c.try_acquire(&s, start + Duration::from_millis(400));
    assert_eq!(
        refused,
        (
            Err(Refusal::Open {
                retry_after: Duration::from_millis(600)
            }),
            None
        )
    );

    let at = start + Duration::from_secs(1);
    let (probe, transition) = c.try_acquire(&s, at);
    assert_eq!(transition, t(State::Open, State::HalfOpen));
    assert_eq!(c.try_acquire(&s, at).0, Err(Refusal::ProbesBusy));
    assert_eq!(
        c.on_failure(&s, probe.unwrap(), at),
        t(State::HalfOpen, State::Open)
    );

    // The second open in a row lasts twice as long.
    let early = at + Duration::from_millis(1999);
    assert!(matches!(
        c.try_acquire(&s, early).0,
        Err(Refusal::Open { .. })
    ));
    let at = at + Duration::from_secs(2);
    let (probe, transition) = c.try_acquire(&s, at);
    assert_eq!(transition, t(State::Open, State::HalfOpen));
    assert_eq!(
        c.on_success(&s, probe.unwrap()),
        t(State::HalfOpen, State::Closed)
    );

    // Closing resets the growth: the next open lasts the base break again.
    assert_eq!(fail_n(&mut c, &s, at, 3), t(State::Closed, State::Open));
    let (_, transition) = c.try_acquire(&s, at + Duration::from_secs(1));
    assert_eq!(transition, t(State::Open, State::HalfOpen));
}

#[test]
fn success_resets_the_consecutive_count() {
    let s = settings();
    let now = Instant::now();
    let mut c = Circuit::new(&s);
    fail_n(&mut c, &s, now, 2);
    let permit = admit(&mut c, &s, now);
    c.on_success(&s, permit);
    assert_eq!(fail_n(&mut c, &s, now, 2), None);
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn failure_rate_needs_min_calls_then_trips() {
    let s = Settings {
        consecutive_failures: None,
        failure_rate: Some(FailureRate {
            threshold: 0.5,
            window: 10,
            min_calls: 6,
        }),
        ..settings()
    };
    let now = Instant::now();
    let mut c = Circuit::new(&s);
    // Alternate: success, failure. After 5 calls the rate is 40 %; after the
    // sixth it is 50 % with six calls counted.
    for i in 0..5 {
        let permit = admit(&mut c, &s, now);
        if i % 2 == 1 {
            assert_eq!(c.on_failure(&s, permit, now), None);
        } else {
            c.on_success(&s, permit);
        }
    }
    let permit = admit(&mut c, &s, now);
    assert_eq!(c.on_failure(&s, permit, now), t(State::Closed, State::Open));
}

#[test]
fn failure_rate_window_forgets_old_calls() {
    let s = Settings {
        consecutive_failures: None,
        failure_rate: Some(FailureRate {
            threshold: 0.5,
            window: 4,
            min_calls: 4,
        }),
        ..settings()
    };
    let now = Instant::now();
    let mut c = Circuit::new(&s);
    // f s s s: 25 %. Then f pushes out the first f: still 25 %.
    let outcomes = [true, false, false, false, true];
    for failed in outcomes {
        let permit = admit(&mut c, &s, now);
        let transition = if failed {
            c.on_failure(&s, permit, now)
        } else {
            c.on_success(&s, permit)
        };
        assert_eq!(transition, None);
    }
    // One more failure: s s f f = 50 %.
    assert_eq!(fail_n(&mut c, &s, now, 1), t(State::Closed, State::Open));
}

#[test]
fn stale_permits_do_not_count() {
    let s = settings();
    let now = Instant::now();
    let mut c = Circuit::new(&s);
    let old = admit(&mut c, &s, now);
    fail_n(&mut c, &s, now, 3);
    let at = now + Duration::from_secs(1);
    let (probe, _) = c.try_acquire(&s, at);
    // A call admitted while closed finishes during half-open: ignored.
    assert_eq!(c.on_failure(&s, old, at), None);
    assert_eq!(c.state(), State::HalfOpen);
    assert_eq!(
        c.on_success(&s, probe.unwrap()),
        t(State::HalfOpen, State::Closed)
    );
    assert_eq!(c.on_failure(&s, old, at), None);
}

#[test]
fn released_probe_frees_its_slot() {
    let s = Settings {
        half_open_probes: 2,
        ..settings()
    };
    let now = Instant::now();
    let mut c = Circuit::new(&s);
    fail_n(&mut c, &s, now, 3);
    let at = now + Duration::from_secs(1);
    let a = c.try_acquire(&s, at).0.unwrap();
    let b = c.try_acquire(&s, at).0.unwrap();
    assert_eq!(c.try_acquire(&s, at).0, Err(Refusal::ProbesBusy));
    c.on_release(a);
    let a2 = c.try_acquire(&s, at).0.unwrap();
    assert_eq!(c.on_success(&s, b), None);
    assert_eq!(c.on_success(&s, a2), t(State::HalfOpen, State::Closed));
}

#[test]
fn break_growth_is_capped() {
    let s = Settings {
        max_break: Duration::from_secs(5),
        ..settings()
    };
    assert_eq!(s.break_after(0), Duration::from_secs(1));
    assert_eq!(s.break_after(2), Duration::from_secs(4));
    assert_eq!(s.break_after(3), Duration::from_secs(5));
    assert_eq!(s.break_after(u32::MAX), Duration::from_secs(5));
}

#[test]
fn forced_states_hold_until_reset() {
    let s = settings();
    let now = Instant::now();
    let mut c = Circuit::new(&s);
    assert_eq!(
        c.force(State::ForcedOpen),
        t(State::Closed, State::ForcedOpen)
    );
    let later = now + Duration::from_secs(3600);
    assert_eq!(c.try_acquire(&s, later).0, Err(Refusal::Forced));
    assert_eq!(
        c.force(State::ForcedClosed),
        t(State::ForcedOpen, State::ForcedClosed)
    );
    assert_eq!(fail_n(&mut c, &s, now, 10), None);
    assert_eq!(c.state(), State::ForcedClosed);
    assert_eq!(
        c.force(State::Closed),
        t(State::ForcedClosed, State::Closed)
    );
    assert_eq!(fail_n(&mut c, &s, now, 3), t(State::Closed, State::Open));
}

/// A deliberately plain model of the same rules: a queue of outcomes and
/// explicit fields, no bitsets, no generations (permits carry the model's
/// epoch instead).
#[derive(Debug)]
struct Model {
    state: State,
    until: Instant,
    history: VecDeque<bool>,
    consecutive: u32,
    opens: u32,
    admitted: u32,
    succeeded: u32,
    epoch: u64,
}

#[derive(Debug, Clone, Copy)]
struct ModelPermit {
    epoch: u64,
    probe: bool,
}

impl Model {
    fn new() -> Self {
        Self {
            state: State::Closed,
            until: Instant::now(),
            history: VecDeque::new(),
            consecutive: 0,
            opens: 0,
            admitted: 0,
            succeeded: 0,
            epoch: 0,
        }
    }

    fn go(&mut self, state: State) {
        self.state = state;
        self.epoch += 1;
        self.history.clear();
        self.consecutive = 0;
        self.admitted = 0;
        self.succeeded = 0;
    }

    fn open(&mut self, s: &Settings, now: Instant) {
        let mut len = s.break_duration.as_secs_f64();
        for _ in 0..self.opens.min(64) {
            len *= f64::from(s.break_growth);
        }
        let len = Duration::from_secs_f64(len.min(s.max_break.as_secs_f64()));
        self.until = now + len;
        self.opens += 1;
        self.go(State::Open);
    }

    fn acquire(&mut self, s: &Settings, now: Instant) -> Option<ModelPermit> {
        if self.state == State::Open && now >= self.until {
            self.go(State::HalfOpen);
        }
        match self.state {
            State::Closed | State::ForcedClosed => Some(ModelPermit {
                epoch: self.epoch,
                probe: false,
            }),
            State::HalfOpen if self.admitted < s.half_open_probes => {
                self.admitted += 1;
                Some(ModelPermit {
                    epoch: self.epoch,
                    probe: true,
                })
            }
            _ => None,
        }
    }

    fn outcome(&mut self, s: &Settings, p: ModelPermit, failed: bool, now: Instant) {
        if p.epoch != self.epoch {
            return;
        }
        match self.state {
            State::Closed => {
                if failed {
                    self.consecutive += 1;
                } else {
                    self.consecutive = 0;
                }
                if let Some(rate) = s.failure_rate {
                    self.history.push_back(failed);
                    if self.history.len() > rate.window as usize {
                        self.history.pop_front();
                    }
                }
                if failed {
                    let by_count = s
                        .consecutive_failures
                        .is_some_and(|n| self.consecutive >= n);
                    let by_rate = s.failure_rate.is_some_and(|rate| {
                        let n = self.history.len() as u32;
                        let f = self.history.iter().filter(|f| **f).count() as f32;
                        n >= rate.min_calls.max(1) && f >= rate.threshold * n as f32
                    });
                    if by_count || by_rate {
                        self.open(s, now);
                    }
                }
            }
            State::HalfOpen if p.probe => {
                if failed {
                    self.open(s, now);
                } else {
                    self.succeeded += 1;
                    if self.succeeded >= s.half_open_probes {
                        self.opens = 0;
                        self.go(State::Closed);
                    }
                }
            }
            _ => {}
        }
    }

    fn release(&mut self, p: ModelPermit) {
        if p.epoch == self.epoch && p.probe && self.state == State::HalfOpen {
            self.admitted = self.admitted.saturating_sub(1);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Succeed(usize),
    Fail(usize),
    Release(usize),
    Advance(u64),
    Force(State),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        3 => any::<usize>().prop_map(Op::Succeed),
        4 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Release),
        2 => (0u64..3000).prop_map(Op::Advance),
        1 => prop_oneof![
            Just(State::Closed),
            Just(State::ForcedOpen),
            Just(State::ForcedClosed)
        ]
        .prop_map(Op::Force),
    ]
}

fn settings_strategy() -> impl Strategy<Value = Settings> {
    (
        proptest::option::of(1u32..6),
        proptest::option::of((0.1f32..1.0, 1u32..20, 0u32..10)),
        1u32..4,
        1.0f32..3.0,
    )
        .prop_map(|(consecutive, rate, probes, growth)| Settings {
            consecutive_failures: consecutive,
            failure_rate: rate.map(|(threshold, window, min_calls)| FailureRate {
                threshold,
                window,
                min_calls,
            }),
            break_duration: Duration::from_millis(500),
            break_growth: growth,
            max_break: Duration::from_secs(4),
            half_open_probes: probes,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_the_reference_model(s in settings_strategy(), ops in prop::collection::vec(op(), 1..200)) {
        let mut now = Instant::now();
        let mut circuit = Circuit::new(&s);
        let mut model = Model::new();
        let mut outstanding: Vec<(Permit, ModelPermit)> = Vec::new();

        for op in ops {
            match op {
                Op::Acquire => {
                    let real = circuit.try_acquire(&s, now).0.ok();
                    let expected = model.acquire(&s, now);
                    prop_assert_eq!(real.is_some(), expected.is_some(), "admission differs");
                    if let (Some(real), Some(expected)) = (real, expected) {
                        outstanding.push((real, expected));
                    }
                }
                Op::Succeed(i) | Op::Fail(i) | Op::Release(i) if !outstanding.is_empty() => {
                    let (real, expected) = outstanding.swap_remove(i % outstanding.len());
                    match op {
                        Op::Succeed(_) => {
                            circuit.on_success(&s, real);
                            model.outcome(&s, expected, false, now);
                        }
                        Op::Fail(_) => {
                            circuit.on_failure(&s, real, now);
                            model.outcome(&s, expected, true, now);
                        }
                        _ => {
                            circuit.on_release(real);
                            model.release(expected);
                        }
                    }
                }
                Op::Succeed(_) | Op::Fail(_) | Op::Release(_) => {}
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Force(state) => {
                    circuit.force(state);
                    if state == State::Closed {
                        model.opens = 0;
                    }
                    model.go(state);
                }
            }
            prop_assert_eq!(circuit.state(), model.state);
        }
    }
}
