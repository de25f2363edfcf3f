//! Time as the configuration and the calendar write it: durations (`"90s"`), cron
//! schedules with seconds, and the timezone they are read in. Pure: no clock, no I/O.

use serde::Deserialize;
use std::str::FromStr;

/// A duration as the configuration writes it: `"500ms"`, `"90s"`, `"15m"`, `"4h"`, `"6d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub std::time::Duration);

impl Span {
    pub fn secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    pub fn ms(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Parses `"90s"`, `"15m"`, `"4h"`, `"6d"` or `"500ms"`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let bad = || format!("\"{text}\" is not a duration (write it like \"90s\", \"15m\", \"4h\" or \"6d\")");
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).map(std::time::Duration::from_millis).ok_or_else(bad)
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.ms()))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Span).map_err(serde::de::Error::custom)
    }
}

/// Parses a cron schedule with seconds (`"0 0 10 * * Mon-Fri"`).
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!(
            "\"{text}\" has {fields} fields; a schedule has 6 (seconds minutes hours day-of-month month day-of-week), e.g. \"0 0 10 * * Mon-Fri\""
        ));
    }
    cron::Schedule::from_str(text).map_err(|e| format!("\"{text}\" is not a cron schedule: {e}"))
}

/// The timezone schedules are read in (`[calendar] timezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tz {
    /// The daemon's (`TZ`, or the system's).
    #[default]
    Local,
    Utc,
    Fixed(chrono::FixedOffset),
}

impl Tz {
    /// `local`, `UTC`, or an offset like `+08:00`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("local") => Ok(Tz::Local),
            t if t.eq_ignore_ascii_case("utc") || t == "Z" => Ok(Tz::Utc),
            t => t
                .parse::<chrono::FixedOffset>()
                .map(Tz::Fixed)
                .map_err(|_| format!("\"{t}\" is not a timezone (write local, UTC, or an offset like +08:00)")),
        }
    }
}

/// The first time of `schedule` strictly after `after_ms` (UTC), if it has one.
pub fn next_after(schedule: &cron::Schedule, after_ms: i64) -> Option<i64> {
    next_after_in(schedule, after_ms, Tz::Utc)
}

/// The first time of `schedule`, read in `tz`, strictly after `after_ms`.
pub fn next_after_in(schedule: &cron::Schedule, after_ms: i64, tz: Tz) -> Option<i64> {
    use chrono::TimeZone;
    match tz {
        Tz::Utc => {
            let after = chrono::Utc.timestamp_millis_opt(after_ms).single()?;
            schedule.after(&after).next().map(|t| t.timestamp_millis())
        }
        Tz::Local => {
            let after = chrono::Local.timestamp_millis_opt(after_ms).single()?;
            schedule.after(&after).next().map(|t| t.timestamp_millis())
        }
        Tz::Fixed(offset) => {
            let after = offset.timestamp_millis_opt(after_ms).single()?;
            schedule.after(&after).next().map(|t| t.timestamp_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_seconds_and_name_their_problem() {
        let s = parse_schedule("0 0 10 * * Mon-Fri").unwrap();
        // Friday 2026-12-04 10:00 UTC → Monday 2026-12-07 10:00 UTC.
        let friday_ten = 1_796_378_400_000;
        assert_eq!(next_after(&s, friday_ten), Some(friday_ten + 3 * 86_400_000));
        assert!(parse_schedule("0 10 * * *").unwrap_err().contains("has 5 fields"));
        // 10:00 at +08:00 is 02:00 UTC.
        let tz = Tz::parse("+08:00").unwrap();
        assert_eq!(
            next_after_in(&s, friday_ten, tz),
            Some(friday_ten + 3 * 86_400_000 - 8 * 3_600_000)
        );
        assert!(Tz::parse("Mars/Olympus").unwrap_err().contains("is not a timezone"));
        assert!(parse_schedule("0 0 25 * * *")
            .unwrap_err()
            .contains("is not a cron schedule"));
    }
}
