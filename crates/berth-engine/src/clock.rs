//! The engine's clock. Every decision that depends on time (retry backoff, the cleanup
//! wait, the orphan grace, reconnecting to Docker, reopening its event stream, the
//! steady-state check) reads it, so tests drive time with a [`ManualClock`].

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Where the engine gets the time, and how it waits for a moment.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// Resolves once `wait` has passed on `clock`.
pub(crate) fn sleep(clock: &dyn Clock, wait: std::time::Duration) -> BoxFuture<'static, ()> {
    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    clock.sleep_until(clock.now().checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC))
}

/// A doubling wait between retries, from `first` up to `max`: the engine's one backoff.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    first: std::time::Duration,
    next: std::time::Duration,
    max: std::time::Duration,
}

impl Backoff {
    /// Waits of `first`, twice that, ... up to `max`.
    pub(crate) fn new(first: std::time::Duration, max: std::time::Duration) -> Backoff {
        Backoff { first, next: first, max }
    }

    /// The wait before the next attempt (each call doubles the one after, up to `max`).
    pub(crate) fn next_wait(&mut self) -> std::time::Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The wait that would come next, without taking it.
    pub(crate) fn peek(&self) -> std::time::Duration {
        self.next
    }

    /// Start again from the first wait (an attempt worked).
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The system's clock, read once: from then on time moves with the monotonic clock, so a
/// step of the wall clock (NTP, an operator's `date -s`) while berth runs neither stalls
/// every retry and cleanup wait (a step back of a day) nor makes them all due at once (a
/// step forward). Times berth reports follow the wall clock as it was at start; a restart
/// reads it again.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    wall: DateTime<Utc>,
    since: std::time::Instant,
}

impl SystemClock {
    /// The clock, the wall time read now.
    pub fn new() -> SystemClock {
        SystemClock::anchored_at(Utc::now())
    }

    /// A clock that stands at `wall` now and moves with the monotonic clock.
    pub fn anchored_at(wall: DateTime<Utc>) -> SystemClock {
        SystemClock { wall, since: std::time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.since.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.wall.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock { now: Arc::new(Mutex::new(start)), moved: watch::Sender::new(start) }
    }

    /// Move the clock forward, waking whoever waits for a moment now past.
    pub fn advance(&self, by: chrono::Duration) {
        let now = {
            let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *now += by;
            *now
        };
        self.moved.send_replace(now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            // An error means the clock is gone: nothing will ever move it, so wait forever.
            if moved.wait_for(|now| *now >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max_and_resets() {
        let ms = std::time::Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(350));
        let waits: Vec<_> = (0..4).map(|_| b.next_wait()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(350), ms(350)]);
        b.reset();
        assert_eq!(b.peek(), ms(100));
    }

    /// Issue 14 item 11: after it is made, the clock never reads the wall clock again: a
    /// clock made standing a day in the past (as if the wall clock had been stepped a day
    /// forward since) still moves only by the time that passed, and a deadline a moment
    /// ahead comes after that moment, not a day later or at once.
    #[tokio::test]
    async fn the_system_clock_moves_with_elapsed_time_not_with_the_wall_clock() {
        let day_ago = Utc::now() - chrono::Duration::days(1);
        let clock = SystemClock::anchored_at(day_ago);
        let begun = std::time::Instant::now();
        let start = clock.now();
        assert!(start - day_ago < chrono::Duration::seconds(1), "{start} vs {day_ago}");
        clock.sleep_until(start + chrono::Duration::milliseconds(200)).await;
        let waited = begun.elapsed();
        assert!(waited >= std::time::Duration::from_millis(200), "{waited:?}");
        assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
        let moved = clock.now() - start;
        assert!(moved >= chrono::Duration::milliseconds(200) && moved < chrono::Duration::seconds(5), "{moved}");
    }
}
