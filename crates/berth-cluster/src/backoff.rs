//! The one retry wait of the cluster loops: doubling from 100 ms to 2 s.

use std::time::Duration;

/// Longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A doubling wait, from 100 ms to [`MAX_BACKOFF`].
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: Duration::from_millis(100), max: MAX_BACKOFF }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}
