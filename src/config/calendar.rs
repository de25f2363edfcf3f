//! `[[freezes]]`, `[calendar]` and release windows.

use super::*;

/// A recurring window: from each start of a cron schedule, for a duration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub start: String,
    pub duration: Span,
}

/// `[[freezes]]`: a window in which releases do not start (rollbacks always do).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    pub name: String,
    #[serde(default)]
    pub reason: String,
    /// A cron schedule (with seconds, in `[calendar] timezone`) of the freeze's starts, with `duration`.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub duration: Option<Span>,
    /// Or fixed dates (`"2026-12-24 00:00"`, UTC, or RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    /// What it covers; all applications and environments when empty.
    #[serde(default)]
    pub applications: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
}

/// A configured freeze, checked.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub name: String,
    pub reason: String,
    pub window: crate::domain::calendar::Window,
    pub scope: crate::domain::calendar::Scope,
}

impl FreezeConfig {
    pub(super) fn checked(
        &self,
        at: &str,
        tz: crate::domain::schedule::Tz,
        errors: &mut Vec<String>,
    ) -> Option<Freeze> {
        let date = |key: &str, v: &str, errors: &mut Vec<String>| {
            let t = crate::domain::fields::parse_datetime(v).map(|t| t.timestamp_millis());
            if t.is_none() {
                errors.push(format!(
                    "{at}.{key}: \"{v}\" is not a date and time (write \"2026-12-24 00:00\", UTC)"
                ));
            }
            t
        };
        let window = match (&self.start, self.duration, &self.from, &self.until) {
            (Some(start), Some(d), None, None) => match crate::domain::schedule::parse_schedule(start) {
                Ok(schedule) if d.0 >= std::time::Duration::from_secs(1) => {
                    crate::domain::calendar::Window::Recurring {
                        schedule: Box::new(schedule),
                        duration_ms: d.ms(),
                        tz,
                    }
                }
                Ok(_) => {
                    errors.push(format!("{at}.duration: must be at least \"1s\""));
                    return None;
                }
                Err(why) => {
                    errors.push(format!("{at}.start: {why}"));
                    return None;
                }
            },
            (None, None, Some(from), Some(until)) => {
                let (from, until) = (date("from", from, errors)?, date("until", until, errors)?);
                if until <= from {
                    errors.push(format!("{at}.until: must be after `from`"));
                    return None;
                }
                crate::domain::calendar::Window::Fixed { from, until }
            }
            _ => {
                errors.push(format!(
                    "{at}: give `start` (a cron schedule) and `duration`, or `from` and `until`"
                ));
                return None;
            }
        };
        Some(Freeze {
            name: self.name.clone(),
            reason: self.reason.clone(),
            window,
            scope: crate::domain::calendar::Scope {
                applications: self.applications.clone(),
                environments: self.environments.clone(),
            },
        })
    }
}

/// `[calendar]`: who may let a release through a freeze or lock, and the daily digest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// The role that may `/release override` a freeze or a lock (reason required).
    #[serde(default = "default_override_role")]
    pub override_role: String,
    /// A cron schedule of the daily digest per channel (tickets waiting, releases running).
    #[serde(default)]
    pub digest: Option<String>,
    /// The timezone every schedule is read in: `local` (the daemon's `TZ`), `UTC`, `+08:00`.
    #[serde(default, rename = "timezone", deserialize_with = "tz")]
    pub tz: crate::domain::schedule::Tz,
    /// A release approved before its ticket's planned time waits for it.
    #[serde(default = "yes")]
    pub hold_until_planned: bool,
    /// The release role is reminded this long before a scheduled release starts.
    #[serde(default = "default_release_reminder")]
    pub release_reminder: Span,
    /// How much later **Postpone** moves a scheduled release.
    #[serde(default = "default_postpone")]
    pub postpone: Span,
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn default_release_reminder() -> Span {
    Span::secs(30 * 60)
}

pub(super) fn default_postpone() -> Span {
    Span::secs(3600)
}

pub(super) fn tz<'de, D: serde::Deserializer<'de>>(d: D) -> Result<crate::domain::schedule::Tz, D::Error> {
    let text = String::deserialize(d)?;
    crate::domain::schedule::Tz::parse(&text).map_err(serde::de::Error::custom)
}

pub(super) fn default_override_role() -> String {
    "admin".into()
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            override_role: default_override_role(),
            digest: None,
            tz: crate::domain::schedule::Tz::Local,
            hold_until_planned: true,
            release_reminder: default_release_reminder(),
            postpone: default_postpone(),
        }
    }
}
