//! The flush interval: how soon buffered output reaches its sink when input trickles.
//!
//! Every source ticks on the wall clock: an idle one (stdin with no line, Kafka with no
//! message) wakes up at least once per interval, and a busy one reads the clock every so many
//! records. On a tick it emits the watermark its tracker owes and calls
//! [`Collector::tick`](crate::collector::Collector::tick) on its chain: exchanges send their
//! partial batches and a [`Message::Tick`](crate::channel::Message::Tick) on, input loops
//! tick their own chains, updating operators emit their pending changes, and stdout and
//! file sinks write what they buffered. Nothing on a record's path reads the clock.

use std::time::{Duration, Instant};

/// The default of `--flush-interval`.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The flush interval of this thread's run (see [`crate::context`]).
pub fn flush_interval() -> Duration {
    crate::context::with(|c| c.flush_interval())
}

/// When a source's next tick is due.
pub(crate) struct Ticker {
    interval: Duration,
    next: Instant,
}

impl Ticker {
    pub(crate) fn new() -> Ticker {
        let interval = flush_interval();
        Ticker {
            interval,
            next: Instant::now() + interval,
        }
    }

    /// Whether the tick is due at `now`.
    #[inline]
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// When the tick is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.next
    }

    /// How long from `now` until the tick is due (zero when it is).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// The tick was given at `now`: the next is due one interval later.
    pub(crate) fn ticked(&mut self, now: Instant) {
        self.next = now + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticker_is_due_one_interval_after_its_last_tick() {
        let mut ticker = Ticker {
            interval: Duration::from_millis(100),
            next: Instant::now(),
        };
        let now = Instant::now();
        assert!(ticker.due(now));
        ticker.ticked(now);
        assert!(!ticker.due(now + Duration::from_millis(99)));
        assert_eq!(
            ticker.wait(now + Duration::from_millis(40)),
            Duration::from_millis(60)
        );
        assert!(ticker.due(now + Duration::from_millis(100)));
        assert_eq!(ticker.wait(now + Duration::from_secs(1)), Duration::ZERO);
    }
}
