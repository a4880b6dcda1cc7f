//! When a soak cuts its server's database: the plan of cuts, and the windows they really took.
//! The cutting itself is `roomgate_faults::Relay`'s.

use std::time::Duration;

use serde::Serialize;

/// One fault: the relay is cut from `start` to `end`, measured from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaultWindow {
    pub start_s: f64,
    pub end_s: f64,
}

/// The faults of a soak: the first one `every` after the warm-up ends, then one every
/// `every`, each lasting `length`; none that would not heal by the end of `duration`.
pub fn schedule(
    duration: Duration,
    warmup: Duration,
    every: Duration,
    length: Duration,
) -> Vec<(Duration, Duration)> {
    let mut faults = Vec::new();
    if every.is_zero() {
        return faults;
    }
    let mut start = warmup + every;
    while start + length <= duration {
        faults.push((start, start + length));
        start += every;
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn faults_start_after_the_warm_up_and_heal_before_the_end() {
        assert_eq!(
            schedule(secs(60), secs(10), secs(15), secs(3)),
            [
                (secs(25), secs(28)),
                (secs(40), secs(43)),
                (secs(55), secs(58))
            ]
        );
        // The default soak: 17 cuts, the last one from 570 s to 573 s.
        let faults = schedule(secs(600), secs(60), secs(30), secs(3));
        assert_eq!(faults.len(), 17);
        assert_eq!(faults.last(), Some(&(secs(570), secs(573))));
        // A cut that would still be on at the end is not made.
        assert!(schedule(secs(27), secs(10), secs(15), secs(3)).is_empty());
        assert_eq!(schedule(secs(28), secs(10), secs(15), secs(3)).len(), 1);
        assert!(schedule(secs(20), secs(10), secs(15), secs(3)).is_empty());
    }
}
