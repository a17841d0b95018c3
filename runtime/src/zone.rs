//! Time zones (feature `tz`): the calendar functions' optional zone argument
//! (`hour(ts, "Europe/Paris")`, `date_format(ts, fmt, zone)`, `date_trunc('day', ts, zone)`).
//!
//! A timestamp stays an instant (UTC milliseconds); a zone turns it into the local wall-clock
//! time as milliseconds counted as if UTC ([`Zone::local`]), on which the UTC functions then
//! work. The IANA database is jiff's bundled copy, so every binary sees the same rules.

use crate::formats::time::MS_PER_DAY;
use crate::overflow::raise;

/// A time zone from the IANA database, looked up once per pipeline (a static).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone(jiff::tz::TimeZone);

/// jiff's instants span the years -9999 ..= 9999; a time outside takes the offset of the
/// nearest end (zones have no rules that far out anyway).
const MIN_MS: i64 = -377_705_116_800_000;
const MAX_MS: i64 = 253_402_207_199_999;

impl Zone {
    /// The zone named `name` (`"Europe/Paris"`, `"UTC"`), case-insensitively.
    pub fn get(name: &str) -> Result<Zone, String> {
        jiff::tz::TimeZone::get(name)
            .map(Zone)
            .map_err(|e| e.to_string())
    }

    /// The offset from UTC at instant `ts`, in milliseconds.
    pub fn offset_ms(&self, ts: i64) -> i64 {
        let probe = ts.clamp(MIN_MS, MAX_MS);
        let instant =
            jiff::Timestamp::from_millisecond(probe).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        i64::from(self.0.to_offset(instant).seconds()) * 1000
    }

    /// The local wall-clock time of instant `ts`, in milliseconds counted as if UTC: the UTC
    /// calendar functions applied to it give the zone's fields. Overflow raises the flag.
    pub fn local(&self, ts: i64, expr: &'static str) -> i64 {
        match ts.checked_add(self.offset_ms(ts)) {
            Some(v) => v,
            None => {
                raise(expr);
                0
            }
        }
    }

    /// The instant of the local wall-clock time `local` (milliseconds as if UTC). A time that
    /// occurs twice (clocks set back) is its first occurrence; one that does not occur (clocks
    /// set forward) is shifted by the gap, as PostgreSQL and jiff's "compatible" rule do.
    pub fn instant(&self, local: i64, expr: &'static str) -> i64 {
        let days = local.div_euclid(MS_PER_DAY);
        let of_day = local.rem_euclid(MS_PER_DAY);
        let civil = (|| {
            let (y, m, d) = crate::formats::time::civil_from_days(days);
            let date = jiff::civil::Date::new(i16::try_from(y).ok()?, m as i8, d as i8).ok()?;
            let time = jiff::civil::Time::new(
                (of_day / 3_600_000) as i8,
                (of_day / 60_000 % 60) as i8,
                (of_day / 1000 % 60) as i8,
                (of_day % 1000 * 1_000_000) as i32,
            )
            .ok()?;
            let ts = self
                .0
                .to_ambiguous_timestamp(date.to_datetime(time))
                .compatible()
                .ok()?;
            Some(ts.as_millisecond())
        })();
        match civil {
            Some(v) => v,
            // Outside jiff's years: the offset of the nearest end.
            None => match local.checked_sub(self.offset_ms(local)) {
                Some(v) => v,
                None => {
                    raise(expr);
                    0
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_timestamp;
    use crate::functions::{date_trunc, extract, TimeUnit};

    fn ts(s: &str) -> i64 {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn local_times_follow_summer_time() {
        let paris = Zone::get("Europe/Paris").unwrap();
        // CET (+1) in winter, CEST (+2) in summer.
        assert_eq!(
            paris.local(ts("2024-01-15 12:00:00"), "e"),
            ts("2024-01-15 13:00:00")
        );
        assert_eq!(
            paris.local(ts("2024-07-15 12:00:00"), "e"),
            ts("2024-07-15 14:00:00")
        );
        let ny = Zone::get("america/new_york").unwrap();
        assert_eq!(
            extract(TimeUnit::Hour, ny.local(ts("2024-03-10 06:59:59"), "e")),
            1
        );
        assert_eq!(
            extract(TimeUnit::Hour, ny.local(ts("2024-03-10 07:00:00"), "e")),
            3
        );
        assert!(Zone::get("Mars/Olympus").is_err());
    }

    #[test]
    fn local_midnights_on_days_of_23_and_25_hours() {
        let ny = Zone::get("America/New_York").unwrap();
        let day_start = |t: i64| ny.instant(date_trunc(TimeUnit::Day, ny.local(t, "e"), "e"), "e");
        // 2024-03-10 (spring forward) has 23 hours; 2024-11-03 (fall back) has 25.
        let march = day_start(ts("2024-03-10 20:00:00"));
        assert_eq!(march, ts("2024-03-10 05:00:00"));
        assert_eq!(day_start(ts("2024-03-11 12:00:00")) - march, 23 * 3_600_000);
        let nov = day_start(ts("2024-11-03 12:00:00"));
        assert_eq!(nov, ts("2024-11-03 04:00:00"));
        assert_eq!(day_start(ts("2024-11-04 12:00:00")) - nov, 25 * 3_600_000);
        // 02:30 does not exist on 2024-03-10: shifted forward by the hour skipped.
        assert_eq!(
            ny.instant(ts("2024-03-10 02:30:00"), "e"),
            ts("2024-03-10 07:30:00")
        );
        // 01:30 occurs twice on 2024-11-03: the first (EDT).
        assert_eq!(
            ny.instant(ts("2024-11-03 01:30:00"), "e"),
            ts("2024-11-03 05:30:00")
        );
        assert_eq!(crate::overflow::take(), None);
    }

    #[test]
    fn times_beyond_the_database_take_the_nearest_offset() {
        let tokyo = Zone::get("Asia/Tokyo").unwrap();
        assert_eq!(
            tokyo.local(i64::MIN / 2, "e"),
            i64::MIN / 2 + tokyo.offset_ms(MIN_MS)
        );
        assert_eq!(tokyo.local(i64::MAX, "e"), 0);
        assert_eq!(crate::overflow::take().map(|f| f.expr), Some("e"));
    }
}
