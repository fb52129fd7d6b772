use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::CircuitBreaker;
use super::handle::BreakerHandle;
use super::outcome::{Classifier, Outcome, classify};
use super::registry::Registry;
use super::state::{FailureRate, Settings};
use crate::defaults;
use crate::error::{Error, Result};

/// Applies [`CircuitBreaker`] to a service.
///
/// Every service this layer wraps shares its circuits, so one
/// [`handle`](Self::handle) observes them all.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    registry: Arc<Registry>,
}

impl CircuitBreakerLayer {
    /// Settings for a breaker, starting from the defaults.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::default()
    }

    /// A breaker with the default settings.
    ///
    /// # Errors
    ///
    /// None in practice: the defaults are valid.
    pub fn new() -> Result<Self> {
        CircuitBreakerBuilder::default().build()
    }

    pub(crate) fn from_registry(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// A handle to read and force the circuits.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle::new(self.registry.clone())
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker::new(inner, self.registry.clone())
    }
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("name", &self.registry.name())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`CircuitBreakerLayer`], validated by [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use stage7_transport::layer::circuit_breaker::CircuitBreakerLayer;
///
/// let layer = CircuitBreakerLayer::builder()
///     .name("amqp")
///     .consecutive_failures(Some(3))
///     .failure_rate(None)
///     .break_duration(Duration::from_millis(100))
///     .half_open_probes(2)
///     .build()?;
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreakerBuilder {
    name: Option<String>,
    settings: Settings,
    max_keys: usize,
    classify: Classifier,
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self {
            name: None,
            settings: Settings {
                consecutive_failures: Some(defaults::BREAKER_CONSECUTIVE_FAILURES),
                failure_rate: Some(FailureRate {
                    threshold: defaults::BREAKER_FAILURE_RATE,
                    window: defaults::BREAKER_WINDOW,
                    min_calls: defaults::BREAKER_MIN_CALLS,
                }),
                break_duration: defaults::BREAKER_BREAK,
                break_growth: defaults::BREAKER_BREAK_GROWTH,
                max_break: defaults::BREAKER_MAX_BREAK,
                half_open_probes: defaults::BREAKER_HALF_OPEN_PROBES,
            },
            max_keys: defaults::BREAKER_MAX_KEYS,
            classify: Arc::new(classify),
        }
    }
}

impl CircuitBreakerBuilder {
    /// The breaker's name in logs and metric labels. Default: the route of
    /// its branch in a stack, `"breaker"` elsewhere.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Names the breaker unless it was named already.
    pub(crate) fn default_name(mut self, name: &str) -> Self {
        self.name.get_or_insert_with(|| name.to_owned());
        self
    }

    /// Trip after this many failures in a row; `None` disables the rule.
    /// Default [`BREAKER_CONSECUTIVE_FAILURES`](crate::defaults::BREAKER_CONSECUTIVE_FAILURES).
    pub fn consecutive_failures(mut self, failures: Option<u32>) -> Self {
        self.settings.consecutive_failures = failures;
        self
    }

    /// Trip at this failure share over the last `window` calls, once
    /// `min_calls` are counted; `None` disables the rule. Default
    /// [`BREAKER_FAILURE_RATE`](crate::defaults::BREAKER_FAILURE_RATE) over [`BREAKER_WINDOW`](crate::defaults::BREAKER_WINDOW) with
    /// [`BREAKER_MIN_CALLS`](crate::defaults::BREAKER_MIN_CALLS).
    pub fn failure_rate(mut self, rate: Option<(f32, u32, u32)>) -> Self {
        self.settings.failure_rate = rate.map(|(threshold, window, min_calls)| FailureRate {
            threshold,
            window,
            min_calls,
        });
        self
    }

    /// The first break. Default [`BREAKER_BREAK`](crate::defaults::BREAKER_BREAK).
    pub fn break_duration(mut self, duration: Duration) -> Self {
        self.settings.break_duration = duration;
        self
    }

    /// How much longer each further open in a row lasts. Default
    /// [`BREAKER_BREAK_GROWTH`](crate::defaults::BREAKER_BREAK_GROWTH); 1 keeps it constant.
    pub fn break_growth(mut self, growth: f32) -> Self {
        self.settings.break_growth = growth;
        self
    }

    /// The longest break. Default [`BREAKER_MAX_BREAK`](crate::defaults::BREAKER_MAX_BREAK).
    pub fn max_break(mut self, duration: Duration) -> Self {
        self.settings.max_break = duration;
        self
    }

    /// Probes admitted while half-open, all of which must succeed to close.
    /// Default [`BREAKER_HALF_OPEN_PROBES`](crate::defaults::BREAKER_HALF_OPEN_PROBES).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.settings.half_open_probes = probes;
        self
    }

    /// How many keys get a circuit of their own. Past it, the least recently
    /// used closed circuit is recycled; when none is closed, new keys share
    /// one overflow circuit. Default [`BREAKER_MAX_KEYS`](crate::defaults::BREAKER_MAX_KEYS).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// How results count; default [`classify`].
    pub fn classify(
        mut self,
        classify: impl Fn(&Error) -> Outcome + Send + Sync + 'static,
    ) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming the first invalid setting.
    pub fn build(self) -> Result<CircuitBreakerLayer> {
        let name = self.name.as_deref().unwrap_or("breaker");
        let s = &self.settings;
        let invalid =
            |what: String| Err(Error::config(format!("circuit breaker `{name}`: {what}")));
        if s.consecutive_failures.is_none() && s.failure_rate.is_none() {
            return invalid("needs a trip rule: consecutive failures or a failure rate".into());
        }
        if s.consecutive_failures == Some(0) {
            return invalid("consecutive failures must be at least 1".into());
        }
        if let Some(rate) = s.failure_rate {
            if !(rate.threshold > 0.0 && rate.threshold <= 1.0) {
                return invalid(format!(
                    "failure rate must be in (0, 1], got {}",
                    rate.threshold
                ));
            }
            if rate.window == 0 || rate.min_calls > rate.window {
                return invalid(format!(
                    "failure-rate window ({}) must be at least 1 and hold min_calls ({})",
                    rate.window, rate.min_calls
                ));
            }
        }
        if s.break_duration.is_zero() || s.max_break < s.break_duration {
            return invalid(format!(
                "break duration ({:?}) must be positive and at most max_break ({:?})",
                s.break_duration, s.max_break
            ));
        }
        if !s.break_growth.is_finite() || s.break_growth < 1.0 {
            return invalid(format!(
                "break growth must be a finite number >= 1, got {}",
                s.break_growth
            ));
        }
        if s.half_open_probes == 0 || self.max_keys == 0 {
            return invalid("half-open probes and max keys must be at least 1".into());
        }
        let registry = Registry::new(name, self.settings, self.max_keys, self.classify);
        Ok(CircuitBreakerLayer::from_registry(Arc::new(registry)))
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}
