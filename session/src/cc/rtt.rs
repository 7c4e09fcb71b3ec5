//! Round-trip time estimation per path (RFC 9002 §5): latest, minimum, smoothed RTT and
//! its variation, and the probe timeout base derived from them.

use std::time::{Duration, Instant};

/// The smallest timer the estimator reports (RFC 9002's kGranularity).
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// RTT samples of one path, smoothed as RFC 9002 §5.3 describes.
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    initial: Duration,
    latest: Duration,
    smoothed: Option<Duration>,
    var: Duration,
    min: Duration,
}

impl RttEstimator {
    /// An estimator that assumes `initial` until the first sample.
    pub fn new(initial: Duration) -> RttEstimator {
        RttEstimator { initial, latest: initial, smoothed: None, var: initial / 2, min: Duration::MAX }
    }

    /// Folds in one sample (the time from sending a packet to receiving its acknowledgement).
    pub fn update(&mut self, sample: Duration) {
        self.latest = sample;
        self.min = self.min.min(sample);
        match self.smoothed {
            None => {
                self.smoothed = Some(sample);
                self.var = sample / 2;
            }
            Some(s) => {
                let dev = s.abs_diff(sample);
                self.var = (self.var * 3 + dev) / 4;
                self.smoothed = Some((s * 7 + sample) / 8);
            }
        }
    }

    /// The best estimate: the smoothed RTT, else the initial assumption.
    pub fn get(&self) -> Duration {
        self.smoothed.unwrap_or(self.initial)
    }

    /// The smoothed RTT, once a sample arrived.
    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }

    /// The latest sample (the initial assumption before any).
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The smallest sample, once one arrived.
    pub fn min(&self) -> Option<Duration> {
        (self.min != Duration::MAX).then_some(self.min)
    }

    /// The RTT variation.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// `smoothed + max(4 × var, granularity)`: a probe timeout before backoff and the
    /// peer's acknowledgement delay.
    pub fn pto_base(&self) -> Duration {
        self.get() + (self.var * 4).max(GRANULARITY)
    }

    /// How long after a later packet was acknowledged an earlier one counts as lost
    /// (RFC 9002 §6.1.2): 9/8 of the larger of smoothed and latest RTT, at least 1 ms.
    pub fn loss_delay(&self) -> Duration {
        (self.get().max(self.latest) * 9 / 8).max(GRANULARITY)
    }
}

/// The minimum RTT of a path over the recent past: the smallest sample of the current window
/// and of the one before it, so it follows a path that got slower within two windows while
/// ignoring the queueing a path's own traffic adds to its samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowedMin {
    current: Option<Duration>,
    previous: Option<Duration>,
    since: Option<Instant>,
}

impl WindowedMin {
    /// Folds in one sample taken at `now`; windows last `window`.
    pub fn update(&mut self, now: Instant, sample: Duration, window: Duration) {
        let expired = self.since.is_none_or(|s| now.saturating_duration_since(s) >= window);
        if expired {
            self.previous = self.current.take();
            self.since = Some(now);
        }
        self.current = Some(self.current.map_or(sample, |c| c.min(sample)));
    }

    /// The recent minimum, once a sample arrived.
    pub fn get(&self) -> Option<Duration> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_then_smoothing() {
        let ms = Duration::from_millis;
        let mut r = RttEstimator::new(ms(333));
        assert_eq!(r.get(), ms(333));
        assert_eq!(r.smoothed(), None);
        r.update(ms(100));
        assert_eq!((r.get(), r.var(), r.min()), (ms(100), ms(50), Some(ms(100))));
        r.update(ms(180));
        assert_eq!(r.get(), ms(110));
        assert_eq!(r.var(), ms(57) + Duration::from_micros(500));
        assert_eq!(r.pto_base(), ms(110) + ms(230));
        assert_eq!(r.loss_delay(), ms(180) * 9 / 8);
        assert_eq!(r.min(), Some(ms(100)));
    }

    #[test]
    fn windowed_min_forgets_old_windows() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut m = WindowedMin::default();
        assert_eq!(m.get(), None);
        m.update(t0, ms(5), ms(100));
        m.update(t0 + ms(10), ms(20), ms(100));
        assert_eq!(m.get(), Some(ms(5)));
        // The next window still remembers the previous one's minimum.
        m.update(t0 + ms(100), ms(30), ms(100));
        assert_eq!(m.get(), Some(ms(5)));
        // Two windows on, the path got slower: the minimum follows.
        m.update(t0 + ms(200), ms(40), ms(100));
        assert_eq!(m.get(), Some(ms(30)));
        m.update(t0 + ms(210), ms(35), ms(100));
        assert_eq!(m.get(), Some(ms(30)));
    }
}
