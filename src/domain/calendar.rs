//! The release calendar: freezes (configured windows and ad-hoc ones) and deploy locks
//! that stop a release from starting — never a rollback. Pure: which of them covers an
//! application and environment at a time, and until when.

use serde::{Deserialize, Serialize};

/// What a freeze or lock covers: some applications and environments (empty: all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub applications: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
}

impl Scope {
    pub fn covers(&self, application: &str, environment: &str) -> bool {
        let any = |list: &[String], x: &str| list.is_empty() || list.iter().any(|i| i.eq_ignore_ascii_case(x));
        any(&self.applications, application) && any(&self.environments, environment)
    }

    /// `payments/prod`, `payments`, `*/prod` or `*`.
    pub fn describe(&self) -> String {
        let apps = if self.applications.is_empty() {
            "*".to_string()
        } else {
            self.applications.join(",")
        };
        if self.environments.is_empty() {
            apps
        } else {
            format!("{apps}/{}", self.environments.join(","))
        }
    }
}

/// When a configured freeze holds.
#[derive(Debug, Clone)]
pub enum Window {
    /// From each start of a cron schedule, for `duration_ms`.
    Recurring {
        schedule: Box<cron::Schedule>,
        duration_ms: i64,
        /// The timezone the schedule is read in.
        tz: crate::domain::schedule::Tz,
    },
    /// From one time until another.
    Fixed { from: i64, until: i64 },
}

impl Window {
    /// The end of the window holding at `t`, if one does.
    pub fn holds_until(&self, t: i64) -> Option<i64> {
        match self {
            Window::Fixed { from, until } => (*from <= t && t < *until).then_some(*until),
            Window::Recurring {
                schedule,
                duration_ms,
                tz,
            } => {
                // Starts in (t - duration, t]: the latest one decides how long it holds.
                let mut end = None;
                let mut after = t.saturating_sub(*duration_ms);
                while let Some(start) = crate::domain::schedule::next_after_in(schedule, after, *tz) {
                    if start > t {
                        break;
                    }
                    end = Some(start.saturating_add(*duration_ms));
                    after = start;
                }
                end
            }
        }
    }
}

/// What stops a release from starting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Block {
    Freeze {
        name: String,
        scope: String,
        reason: String,
        until: Option<i64>,
    },
    Lock {
        application: String,
        environment: String,
        reason: String,
        by: String,
        since: i64,
    },
    /// The application releases only in its windows, and none holds now.
    OutsideWindow { application: String, next: Option<i64> },
}

/// The next start of any of `windows` after `t`.
pub fn next_window(windows: &[Window], t: i64) -> Option<i64> {
    windows
        .iter()
        .filter_map(|w| match w {
            Window::Recurring { schedule, tz, .. } => crate::domain::schedule::next_after_in(schedule, t, *tz),
            Window::Fixed { from, .. } => Some(*from).filter(|f| *f > t),
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn scopes_cover_what_they_name() {
        let all = Scope::default();
        assert!(all.covers("web", "prod"));
        let s = Scope {
            applications: vec!["payments".into()],
            environments: vec!["prod".into()],
        };
        assert!(s.covers("Payments", "prod"));
        assert!(!s.covers("payments", "test") && !s.covers("web", "prod"));
        assert_eq!(s.describe(), "payments/prod");
        assert_eq!(all.describe(), "*");
    }

    #[test]
    fn a_recurring_window_holds_from_each_start_for_its_duration() {
        // Fridays 18:00 UTC for 64 hours (until Monday 10:00).
        let w = Window::Recurring {
            schedule: Box::new(cron::Schedule::from_str("0 0 18 * * Fri").unwrap()),
            duration_ms: 64 * 3_600_000,
            tz: crate::domain::schedule::Tz::Utc,
        };
        let friday_six = 1_796_407_200_000; // 2026-12-04 18:00 UTC
        assert_eq!(w.holds_until(friday_six - 1), None);
        assert_eq!(w.holds_until(friday_six), Some(friday_six + 64 * 3_600_000));
        assert_eq!(
            w.holds_until(friday_six + 63 * 3_600_000),
            Some(friday_six + 64 * 3_600_000)
        );
        assert_eq!(w.holds_until(friday_six + 64 * 3_600_000), None);
        let f = Window::Fixed { from: 10, until: 20 };
        assert_eq!(
            (f.holds_until(9), f.holds_until(10), f.holds_until(20)),
            (None, Some(20), None)
        );
    }
}
