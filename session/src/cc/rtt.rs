//! Round-trip time estimation per path (RFC 9002 §5): latest, minimum, smoothed RTT and
//! its variation, and the probe timeout base derived from them.

use std::time::Duration;

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
}
