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

    /// The instant where the unit holding `ts` starts, given that start as local wall-clock
    /// time `local_start` (`date_trunc` of [`local`](Self::local)`(ts)`): what `date_trunc`
    /// in a zone returns. A start that occurs twice (in the hour repeated when clocks go back)
    /// is the occurrence on `ts`'s side of the change, so that the start is never after `ts`
    /// nor an hour before its unit: `date_trunc('hour', ts, "Europe/Paris")` of 01:30 UTC on
    /// 2024-10-27 (02:30 CET, the second 02:30 of that night) is 01:00 UTC (02:00 CET), where
    /// [`instant`](Self::instant)'s first occurrence would be 00:00 UTC (02:00 CEST).
    pub fn start_of(&self, local_start: i64, ts: i64, expr: &'static str) -> i64 {
        let offset = self.offset_ms(ts);
        // The start at `ts`'s offset is a true instant of `local_start` when the zone has that
        // offset there too (then it is the one in `ts`'s stretch of the offset, not after `ts`);
        // otherwise a change lies between the start and `ts`, and the start is unambiguous
        // (or not a real time, moved by the gap) on the other side of it.
        match local_start.checked_sub(offset) {
            Some(start) if start <= ts && self.offset_ms(start) == offset => start,
            _ => self.instant(local_start, expr),
        }
    }

    /// The instant where the unit holding `ts` ends, given that end as local wall-clock time
    /// `local_end`: the start of the next unit, so that units tile time. When the zone keeps
    /// `ts`'s offset until then, that is `local_end` at `ts`'s offset (in the hour repeated when
    /// clocks go back, a quarter of an hour ends a quarter of an hour after it starts, although
    /// the local clock is set back at its end); otherwise a change lies before the end, which
    /// is then the instant of `local_end` ([`instant`](Self::instant)).
    pub fn end_of(&self, local_end: i64, ts: i64, expr: &'static str) -> i64 {
        let offset = self.offset_ms(ts);
        match local_end.checked_sub(offset) {
            Some(end) if end > ts && self.offset_ms(end - 1) == offset => end,
            _ => self.instant(local_end, expr),
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
    fn a_start_in_the_repeated_hour_is_on_the_side_of_its_time() {
        let paris = Zone::get("Europe/Paris").unwrap();
        let start = |unit: TimeUnit, t: &str| {
            let t = ts(t);
            paris.start_of(date_trunc(unit, paris.local(t, "e"), "e"), t, "e")
        };
        // 2024-10-27: 03:00 CEST (01:00 UTC) goes back to 02:00 CET, so 02:00..03:00 local
        // is 00:00..01:00 UTC and again 01:00..02:00 UTC. Paris' offsets are whole hours: its
        // hours and minutes start where UTC's do.
        for t in [
            "2024-10-27 00:30:00",
            "2024-10-27 01:00:00",
            "2024-10-27 01:30:00",
            "2024-10-27 01:59:59.999",
            "2024-10-27 02:10:00",
            "2024-03-31 01:30:00",
            "2024-03-31 00:59:00",
        ] {
            let utc = ts(t);
            assert_eq!(
                start(TimeUnit::Hour, t),
                date_trunc(TimeUnit::Hour, utc, "e"),
                "hour of {t}"
            );
            assert_eq!(
                start(TimeUnit::Minute, t),
                date_trunc(TimeUnit::Minute, utc, "e"),
                "minute of {t}"
            );
        }
        // Quarter-hour and hour units through both nights tile time: each holds its time and
        // lasts what it says (Paris' offsets are whole hours).
        for night in ["2024-10-26 23:00:00", "2024-03-30 23:00:00"] {
            for minute in 0..240 {
                let t = ts(night) + minute * 60_000 + 59_999;
                for size in [15 * 60_000, 3_600_000] {
                    let local_start =
                        crate::functions::floor_to(paris.local(t, "e"), size).unwrap();
                    let from = paris.start_of(local_start, t, "e");
                    let to = paris.end_of(local_start + size, t, "e");
                    assert!(from <= t && t < to, "{t}: [{from}, {to})");
                    assert_eq!(to - from, size, "{t}");
                }
            }
        }
        // Days: the local midnight, as before (a 25-hour and a 23-hour day).
        assert_eq!(
            start(TimeUnit::Day, "2024-10-27 22:00:00"),
            ts("2024-10-26 22:00:00")
        );
        assert_eq!(
            start(TimeUnit::Day, "2024-03-31 20:00:00"),
            ts("2024-03-30 23:00:00")
        );
        // A zone whose midnight is skipped (Santiago, 2024-09-08: 00:00 -04 is 01:00 -03).
        let santiago = Zone::get("America/Santiago").unwrap();
        let t = ts("2024-09-08 12:00:00");
        let day = santiago.start_of(
            date_trunc(TimeUnit::Day, santiago.local(t, "e"), "e"),
            t,
            "e",
        );
        assert_eq!(day, ts("2024-09-08 04:00:00"));
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
