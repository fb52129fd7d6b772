//! A retry budget: retries may add at most a fixed share of load.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::time::Instant;

use crate::defaults;
use crate::error::{Error, Result};

/// Thousandths of a retry token.
const TOKEN: i64 = 1000;

/// Limits retries to a share of calls so they cannot multiply load during an
/// outage.
///
/// Every call deposits `retry_ratio` of a token; every retry withdraws a whole
/// one. A reserve of `min_retries_per_sec` tokens flows in over time, and one
/// second's worth is there from the start, so that light traffic can still
/// retry. Tokens never accumulate past `max_tokens`.
/// Shared by every clone of a [`RetryPolicy`](super::RetryPolicy); share one
/// budget across policies to cap them together.
///
/// The deposit on the success path is one atomic load when the budget is
/// full, one atomic add otherwise; the clock is read only when withdrawing.
///
/// ```
/// use stage7_transport::layer::retry::RetryBudget;
///
/// let budget = RetryBudget::new(0.5, 0, 10)?;
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw());
/// # Ok::<(), stage7_transport::Error>(())
/// ```
pub struct RetryBudget {
    balance: AtomicI64,
    deposit: i64,
    max_balance: i64,
    reserve_per_sec: i64,
    refilled_at: Mutex<Instant>,
}

impl RetryBudget {
    /// A budget allowing retries for `retry_ratio` of calls (0.2 = 20 %),
    /// plus `min_retries_per_sec`, holding at most `max_tokens`.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when `retry_ratio` is not in
    /// `0.0..=10.0` or `max_tokens` is zero.
    pub fn new(retry_ratio: f64, min_retries_per_sec: u32, max_tokens: u32) -> Result<Self> {
        if !(0.0..=10.0).contains(&retry_ratio) {
            return Err(Error::config(format!(
                "retry ratio must be between 0.0 and 10.0, got {retry_ratio}"
            )));
        }
        if max_tokens == 0 {
            return Err(Error::config("retry budget needs max_tokens >= 1"));
        }
        Ok(Self::unchecked(
            retry_ratio,
            min_retries_per_sec,
            max_tokens,
        ))
    }

    fn unchecked(retry_ratio: f64, min_retries_per_sec: u32, max_tokens: u32) -> Self {
        let reserve_per_sec = i64::from(min_retries_per_sec) * TOKEN;
        let max_balance = i64::from(max_tokens) * TOKEN;
        Self {
            balance: AtomicI64::new(reserve_per_sec.min(max_balance)),
            deposit: (retry_ratio * TOKEN as f64).round() as i64,
            max_balance,
            reserve_per_sec,
            refilled_at: Mutex::new(Instant::now()),
        }
    }

    /// Records a call.
    pub fn deposit(&self) {
        if self.balance.load(Ordering::Relaxed) < self.max_balance {
            self.balance.fetch_add(self.deposit, Ordering::Relaxed);
        }
    }

    /// Takes one retry token; false when none is left.
    pub fn withdraw(&self) -> bool {
        self.refill();
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                (balance >= TOKEN).then_some(balance - TOKEN)
            })
            .is_ok()
    }

    /// Whole retry tokens available now.
    pub fn available(&self) -> u32 {
        self.refill();
        u32::try_from(self.balance.load(Ordering::Acquire) / TOKEN).unwrap_or(0)
    }

    fn refill(&self) {
        let Ok(mut refilled_at) = self.refilled_at.lock() else {
            return;
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(*refilled_at);
        let add = (self.reserve_per_sec as f64 * elapsed.as_secs_f64()) as i64;
        if add > 0 {
            *refilled_at = now;
            let max = self.max_balance;
            let _ = self
                .balance
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                    Some(balance.saturating_add(add).min(max.max(balance)))
                });
        }
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::unchecked(
            defaults::RETRY_RATIO,
            defaults::RETRY_MIN_PER_SEC,
            defaults::RETRY_MAX_TOKENS,
        )
    }
}

impl tower::retry::budget::Budget for RetryBudget {
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        RetryBudget::withdraw(self)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field(
                "balance",
                &(self.balance.load(Ordering::Relaxed) as f64 / TOKEN as f64),
            )
            .field("deposit", &(self.deposit as f64 / TOKEN as f64))
            .field("max_tokens", &(self.max_balance / TOKEN))
            .field("min_retries_per_sec", &(self.reserve_per_sec / TOKEN))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn ratio_caps_retries() {
        let budget = RetryBudget::new(0.1, 0, 100).unwrap();
        for _ in 0..100 {
            budget.deposit();
        }
        let granted = (0..50).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_refills_with_time_up_to_the_cap() {
        let budget = RetryBudget::new(0.0, 5, 20).unwrap();
        assert_eq!(
            budget.available(),
            5,
            "one second of reserve from the start"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(budget.available(), 15);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(budget.available(), 20);
    }

    #[test]
    fn invalid_settings_are_config_errors() {
        assert!(RetryBudget::new(-1.0, 0, 1).unwrap_err().is_config());
        assert!(RetryBudget::new(0.2, 0, 0).unwrap_err().is_config());
    }
}
