//! The five-field cron expressions a CronJob takes (`minute hour day-of-month month day-of-week`),
//! as the API server reads them: robfig/cron's standard parser (`cron.ParseStandard`, which
//! Kubernetes' CronJob validation and controller use) — numbers, `*` and `?`, ranges `a-b`, steps
//! `*/n`, `a/n` (a to the end) and `a-b/n`, lists, month and weekday names (three letters, any
//! case), day of week 0–6 with 0 Sunday (7 is refused: "end of range (7) above maximum (6)"),
//! the descriptors `@yearly` … `@hourly`; a day-of-month and a day-of-week that are both
//! restricted match either. Its error messages are robfig's. Used to check the profile's
//! schedule and to tell `status` when the next snapshot is due.

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
    /// Day-of-month and day-of-week are both restricted (neither is `*`/`?`): either may match.
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's values, and whether it is unrestricted (robfig's "star bit": a part that is `*`
/// or `?` without a step above 1).
fn field(
    text: &str,
    lo: u8,
    hi: u8,
    names: &[&str],
    first: u8,
) -> Result<(BTreeSet<u8>, bool), String> {
    let number = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(u32::from(first) + i as u32);
        }
        s.parse::<u32>()
            .map_err(|_| format!("failed to parse int from {s}"))
    };
    let mut out = BTreeSet::new();
    let mut star = false;
    for part in text.split(',') {
        let pieces: Vec<&str> = part.split('/').collect();
        if pieces.len() > 2 {
            return Err(format!("too many slashes: {part}"));
        }
        let bounds: Vec<&str> = pieces[0].split('-').collect();
        let (mut start, mut end, mut starred) = if bounds[0] == "*" || bounds[0] == "?" {
            (u32::from(lo), u32::from(hi), true)
        } else {
            let start = number(bounds[0])?;
            let end = match bounds.len() {
                1 => start,
                2 => number(bounds[1])?,
                _ => return Err(format!("too many hyphens: {part}")),
            };
            (start, end, false)
        };
        let step = match pieces.get(1) {
            None => 1,
            Some(step) => {
                let step = step
                    .parse::<u32>()
                    .map_err(|_| format!("failed to parse int from {step}"))?;
                // "N/step" means N to the end.
                if bounds.len() == 1 {
                    end = u32::from(hi);
                }
                if step > 1 {
                    starred = false;
                }
                step
            }
        };
        if start < u32::from(lo) {
            return Err(format!(
                "beginning of range ({start}) below minimum ({lo}): {part}"
            ));
        }
        if end > u32::from(hi) {
            return Err(format!("end of range ({end}) above maximum ({hi}): {part}"));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {part}"
            ));
        }
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
        while start <= end {
            out.insert(start as u8);
            start += step;
        }
        star |= starred;
    }
    Ok((out, star))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let text = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with('@') => {
                return Err(format!(
                    "unrecognized descriptor: {t} (give five fields: minute hour day-of-month month day-of-week)"
                ));
            }
            t => t,
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts[..] else {
            return Err(format!(
                "expected exactly 5 fields, found {}: minute hour day-of-month month day-of-week",
                parts.len()
            ));
        };
        let (days, any_day) =
            field(dom, 1, 31, &[], 1).map_err(|e| format!("day of month: {e}"))?;
        let (weekdays, any_weekday) =
            field(dow, 0, 6, &WEEKDAYS, 0).map_err(|e| format!("day of week: {e}"))?;
        Ok(Schedule {
            minutes: field(m, 0, 59, &[], 0)
                .map_err(|e| format!("minute: {e}"))?
                .0,
            hours: field(h, 0, 23, &[], 0).map_err(|e| format!("hour: {e}"))?.0,
            days,
            months: field(mon, 1, 12, &MONTHS, 1)
                .map_err(|e| format!("month: {e}"))?
                .0,
            weekdays,
            either_day: !any_day && !any_weekday,
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
        // The 1st, or any Sunday.
        let s = Schedule::parse("0 0 1 * SUN").unwrap();
        assert_eq!(
            s.next_after(at("2026-11-23T00:00:00Z"), &utc),
            Some(at("2026-11-29T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-11-29T00:00:00Z"), &utc),
            Some(at("2026-12-01T00:00:00Z"))
        );
        // `?` is `*`; a stepped `*` restricts (robfig): then either day matches.
        assert_eq!(
            Schedule::parse("0 0 ? * 0").unwrap(),
            Schedule::parse("0 0 * * 0").unwrap()
        );
        let s = Schedule::parse("0 0 */10 * 1").unwrap();
        assert!(s.either_day);
        // "N/step" runs from N to the end.
        assert_eq!(
            Schedule::parse("5/20 * * * *").unwrap().minutes,
            [5, 25, 45].into_iter().collect()
        );
        assert_eq!(
            Schedule::parse("@daily").unwrap(),
            Schedule::parse("0 0 * * *").unwrap()
        );
        assert_eq!(
            Schedule::parse("0 0 30 feb *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z"), &utc),
            None
        );
    }

    /// What the API server refuses (robfig/cron's messages, which its 422 carries).
    #[test]
    fn bad_schedules_say_what_is_wrong_as_the_api_server_does() {
        for (bad, says) in [
            ("0 3 * *", "expected exactly 5 fields, found 4"),
            (
                "60 3 * * *",
                "minute: end of range (60) above maximum (59): 60",
            ),
            (
                "0 24 * * *",
                "hour: end of range (24) above maximum (23): 24",
            ),
            (
                "0 3 * * 7",
                "day of week: end of range (7) above maximum (6): 7",
            ),
            (
                "0 3 * * 1-7",
                "day of week: end of range (7) above maximum (6): 1-7",
            ),
            (
                "0 3 0 * *",
                "day of month: beginning of range (0) below minimum (1): 0",
            ),
            (
                "0 3 * * funday",
                "day of week: failed to parse int from funday",
            ),
            (
                "*/0 * * * *",
                "minute: step of range should be a positive number: */0",
            ),
            (
                "0 5-3 * * *",
                "hour: beginning of range (5) beyond end of range (3): 5-3",
            ),
            ("0 1-2-3 * * *", "hour: too many hyphens: 1-2-3"),
            ("0 */2/3 * * *", "hour: too many slashes: */2/3"),
            ("@every 1h", "unrecognized descriptor: @every 1h"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(zone("Asia/Seoul").is_some() && zone("Mars/Olympus").is_none());
    }
}
