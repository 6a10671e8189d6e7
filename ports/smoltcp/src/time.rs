//! Converting between smoltcp's clock and the core's.
//!
//! smoltcp counts signed microseconds, the core unsigned milliseconds. Both conversions
//! saturate instead of overflowing: smoltcp's `Instant::from_millis` multiplies by 1000
//! unchecked, so a far-future deadline of the core must be clamped before it gets there.

use echoloop_core::{Duration, Instant};
use smoltcp::time::{Duration as NetDuration, Instant as NetInstant};

/// The latest instant, in whole milliseconds, that smoltcp can represent.
const NET_MAX_MILLIS: i64 = i64::MAX / 1000;

/// smoltcp's instant as the core's: a time before smoltcp's epoch counts as the epoch.
pub fn to_core(t: NetInstant) -> Instant {
    Instant::from_millis(u64::try_from(t.total_millis()).unwrap_or(0))
}

/// The core's instant as smoltcp's, clamped to the latest instant smoltcp can represent.
pub fn to_smoltcp(t: Instant) -> NetInstant {
    let millis = i64::try_from(t.as_millis()).map_or(NET_MAX_MILLIS, |m| m.min(NET_MAX_MILLIS));
    NetInstant::from_millis(millis)
}

/// The core's duration as smoltcp's (both unsigned; smoltcp's counts microseconds),
/// saturating.
pub fn to_smoltcp_duration(d: Duration) -> NetDuration {
    NetDuration::from_micros(d.as_millis().saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_range() {
        let t = NetInstant::from_millis(123_456);
        assert_eq!(to_core(t), Instant::from_millis(123_456));
        assert_eq!(to_smoltcp(to_core(t)), t);
    }

    #[test]
    fn durations_convert_and_saturate() {
        assert_eq!(
            to_smoltcp_duration(Duration::from_secs(10)),
            NetDuration::from_secs(10)
        );
        assert_eq!(
            to_smoltcp_duration(Duration::from_millis(u64::MAX)).total_micros(),
            u64::MAX
        );
    }

    #[test]
    fn before_the_epoch_is_the_epoch() {
        assert_eq!(to_core(NetInstant::from_millis(-5)), Instant::ZERO);
    }

    #[test]
    fn far_future_is_clamped_not_overflowed() {
        let far = to_smoltcp(Instant::from_millis(u64::MAX));
        assert_eq!(far.total_millis(), NET_MAX_MILLIS);
        assert_eq!(to_smoltcp(Instant::from_millis(i64::MAX as u64)), far);
    }
}
