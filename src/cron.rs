//! The five-field cron expressions a CronJob takes (`minute hour day-of-month month day-of-week`,
//! as Kubernetes reads them: numbers, `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists, month and
//! weekday names, 0 or 7 for Sunday; a restricted day-of-month and day-of-week match either, as in
//! Vixie cron), and when one fires next in a time zone. Used to check the profile's schedule and to
//! tell `status` when the next snapshot is due.

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    weekdays: BTreeSet<u8>,
    /// Day-of-month and day-of-week were both given (not `*`): either may match.
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, lo: u8, hi: u8, names: &[&str], first: u8) -> Result<BTreeSet<u8>, String> {
    let value = |s: &str| -> Result<u8, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(first + i as u8);
        }
        let n: u8 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
        if n < lo || n > hi {
            return Err(format!("{n} is outside {lo}-{hi}"));
        }
        Ok(n)
    };
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u8 = s
                    .parse()
                    .map_err(|_| format!("step `{s}` is not a number"))?;
                if step == 0 {
                    return Err("a step of 0".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, hi),
                None => (value(r)?, value(r)?),
            },
        };
        if a > b {
            return Err(format!("the range {a}-{b} runs backwards"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    Ok(out)
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts[..] else {
            return Err(format!(
                "{} fields; a schedule has five: minute hour day-of-month month day-of-week",
                parts.len()
            ));
        };
        let mut weekdays =
            field(dow, 0, 7, &WEEKDAYS, 0).map_err(|e| format!("day of week: {e}"))?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        Ok(Schedule {
            minutes: field(m, 0, 59, &[], 0).map_err(|e| format!("minute: {e}"))?,
            hours: field(h, 0, 23, &[], 0).map_err(|e| format!("hour: {e}"))?,
            days: field(dom, 1, 31, &[], 1).map_err(|e| format!("day of month: {e}"))?,
            months: field(mon, 1, 12, &MONTHS, 1).map_err(|e| format!("month: {e}"))?,
            weekdays,
            either_day: dom != "*" && dow != "*",
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days.contains(&(d.day() as u8));
        let dow = self
            .weekdays
            .contains(&(d.weekday().to_sunday_zero_offset() as u8));
        self.months.contains(&(d.month() as u8))
            && if self.either_day {
                dom || dow
            } else {
                dom && dow
            }
    }

    /// The first time after `after` it fires, in zone `tz` (None: not within eight years, e.g.
    /// 30 February).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let mut day = start.date();
        for _ in 0..(366 * 8) {
            if self.day_matches(day) {
                for &h in &self.hours {
                    for &m in &self.minutes {
                        let t = DateTime::from_parts(day, Time::new(h as i8, m as i8, 0, 0).ok()?);
                        if t <= start {
                            continue;
                        }
                        // A local time skipped by a DST change does not exist; the next one does.
                        if let Ok(z) = t.to_zoned(tz.clone()) {
                            return Some(z.timestamp());
                        }
                    }
                }
            }
            day = day.checked_add(1.day()).ok()?;
        }
        None
    }
}

/// A time zone by its IANA name (the tz database is built into the binary).
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn daily_at_three_in_seoul() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        let seoul = zone("Asia/Seoul").unwrap();
        // 02:30 in Seoul is 17:30 UTC the day before: next is 03:00 Seoul = 18:00 UTC.
        assert_eq!(
            s.next_after(at("2026-11-23T17:30:00Z"), &seoul),
            Some(at("2026-11-23T18:00:00Z"))
        );
        // Just after: the day after.
        assert_eq!(
            s.next_after(at("2026-11-23T18:00:00Z"), &seoul),
            Some(at("2026-11-24T18:00:00Z"))
        );
    }

    #[test]
    fn lists_ranges_steps_names_and_either_day() {
        let s = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
        let utc = zone("UTC").unwrap();
        // Saturday 2026-11-28 10:00 → Monday 09:00.
        assert_eq!(
            s.next_after(at("2026-11-28T10:00:00Z"), &utc),
            Some(at("2026-11-30T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-11-30T09:00:00Z"), &utc),
            Some(at("2026-11-30T09:15:00Z"))
        );
        // The 1st, or any Sunday (7 is Sunday too).
        let s = Schedule::parse("0 0 1 * 7").unwrap();
        assert_eq!(
            s.next_after(at("2026-11-23T00:00:00Z"), &utc),
            Some(at("2026-11-29T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-11-29T00:00:00Z"), &utc),
            Some(at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("0 0 30 feb *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z"), &utc),
            None
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (bad, says) in [
            ("0 3 * *", "4 fields"),
            ("60 3 * * *", "minute: 60 is outside 0-59"),
            ("0 24 * * *", "hour: 24 is outside"),
            ("0 3 * * funday", "day of week: `funday`"),
            ("*/0 * * * *", "a step of 0"),
            ("0 5-3 * * *", "runs backwards"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(zone("Asia/Seoul").is_some() && zone("Mars/Olympus").is_none());
    }
}
