//! Times for people: how long ago, and the local clock time. The daemon
//! sends RFC 3339 UTC (and `--json` passes it on unchanged); tables show
//! "3 min ago (14:03)" in the zone of the machine (`TZ`, else
//! /etc/localtime).

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// The present and the zone to show times in, read once per command.
pub struct Clock {
    now: ZonedDateTime,
}

impl Clock {
    /// The system's time and zone; UTC when the zone cannot be read.
    pub fn system() -> Clock {
        let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
        Clock {
            now: Timestamp::now().to_zoned_datetime(zone),
        }
    }

    /// A fixed present, for tests.
    #[cfg(test)]
    fn at(now: &str, zone: TimeZone) -> Clock {
        Clock {
            now: now
                .parse::<Timestamp>()
                .expect("a time")
                .to_zoned_datetime(zone),
        }
    }

    /// An RFC 3339 time as "3 min ago (14:03)"; text that is not one is
    /// shown as it came.
    pub fn ago(&self, rfc3339: &str) -> String {
        match rfc3339.parse::<Timestamp>() {
            Ok(t) => self.ago_at(t),
            Err(_) => rfc3339.to_string(),
        }
    }

    /// The time `seconds` before now, as [`Clock::ago`] shows it.
    pub fn seconds_ago(&self, seconds: u64) -> String {
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        match Timestamp::from_second(self.now.timestamp().as_second().saturating_sub(seconds)) {
            Ok(t) => self.ago_at(t),
            Err(_) => "-".into(),
        }
    }

    fn ago_at(&self, t: Timestamp) -> String {
        let then = t.to_zoned_datetime(self.now.time_zone().clone());
        let seconds = self.now.timestamp().as_second() - t.as_second();
        let clock = then.strftime("%H:%M");
        // A time a little ahead (clocks of two machines sharing a
        // database) reads as now.
        let relative = match seconds {
            s if s < 60 => return format!("just now ({clock})"),
            s if s < 3600 => format!("{} min ago", s / 60),
            s if s < 86_400 => format!("{} h ago", s / 3600),
            s if s < 2 * 86_400 => "yesterday".to_string(),
            s if s < 31 * 86_400 => format!("{} days ago", s / 86_400),
            // Long ago: the date says enough.
            _ => return then.strftime("%Y-%m-%d %H:%M").to_string(),
        };
        if then.date() == self.now.date() {
            format!("{relative} ({clock})")
        } else if seconds < 7 * 86_400 {
            format!("{relative} ({})", then.strftime("%a %H:%M"))
        } else {
            format!("{relative} ({})", then.strftime("%b %-d %H:%M"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central European time, without the system's time zone database.
    fn paris() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("a POSIX zone")
    }

    #[test]
    fn recent_times_read_as_how_long_ago_with_the_local_clock() {
        let clock = Clock::at("2026-12-08T13:00:00Z", paris());
        assert_eq!(clock.ago("2026-12-08T12:59:30Z"), "just now (13:59)");
        assert_eq!(clock.ago("2026-12-08T13:00:20Z"), "just now (14:00)");
        assert_eq!(clock.ago("2026-12-08T12:57:00Z"), "3 min ago (13:57)");
        assert_eq!(clock.ago("2026-12-08T08:10:00Z"), "4 h ago (09:10)");
        assert_eq!(clock.ago("2026-12-07T22:00:00Z"), "15 h ago (Mon 23:00)");
        assert_eq!(clock.ago("2026-12-07T08:00:00Z"), "yesterday (Mon 09:00)");
        assert_eq!(clock.ago("2026-12-04T13:00:00Z"), "4 days ago (Fri 14:00)");
        assert_eq!(
            clock.ago("2026-11-20T13:00:00Z"),
            "18 days ago (Nov 20 14:00)"
        );
        assert_eq!(clock.ago("2026-06-01T10:00:00Z"), "2026-06-01 12:00");
    }

    #[test]
    fn seconds_ago_count_back_from_now() {
        let clock = Clock::at("2026-12-08T13:00:00Z", TimeZone::UTC);
        assert_eq!(clock.seconds_ago(5), "just now (12:59)");
        assert_eq!(clock.seconds_ago(7200), "2 h ago (11:00)");
        assert_eq!(clock.seconds_ago(u64::MAX), "-");
    }

    #[test]
    fn text_that_is_not_a_time_is_shown_as_it_came() {
        let clock = Clock::at("2026-12-08T13:00:00Z", TimeZone::UTC);
        assert_eq!(clock.ago("sometime"), "sometime");
    }
}
