//! Validation of form answers. Pure: the caller passes the clock and the known applications.

use super::flow::{FieldDef, FieldKind};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use std::collections::BTreeMap;

/// Longest answer accepted for any field.
pub const MAX_FIELD_LEN: usize = 2000;

/// Why one answer was refused; `messages/*/field_error_<code>.hbs` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Required,
    TooLong { max: usize },
    Md5,
    Url,
    DateTimeFormat,
    DateTimePast,
    UnknownOption { options: Vec<String> },
    UnknownApplication { known: Vec<String> },
    UnknownEnvironment { known: Vec<String> },
}

impl FieldError {
    pub fn code(&self) -> &'static str {
        match self {
            FieldError::Required => "required",
            FieldError::TooLong { .. } => "too_long",
            FieldError::Md5 => "md5",
            FieldError::Url => "url",
            FieldError::DateTimeFormat => "datetime_format",
            FieldError::DateTimePast => "datetime_past",
            FieldError::UnknownOption { .. } => "unknown_option",
            FieldError::UnknownApplication { .. } => "unknown_application",
            FieldError::UnknownEnvironment { .. } => "unknown_environment",
        }
    }

    /// Values the message template may mention.
    pub fn params(&self) -> serde_json::Value {
        match self {
            FieldError::TooLong { max } => serde_json::json!({ "max": max }),
            FieldError::UnknownOption { options } => {
                serde_json::json!({ "options": options.join(", ") })
            }
            FieldError::UnknownApplication { known } | FieldError::UnknownEnvironment { known } => {
                serde_json::json!({ "known": known.join(", ") })
            }
            _ => serde_json::json!({}),
        }
    }
}

pub struct ValidationContext<'a> {
    pub now_ms: i64,
    pub applications: &'a [String],
    pub environments: &'a [String],
}

/// Validates every field; returns the normalised answers or every error, keyed by field id.
pub fn validate(
    defs: &[FieldDef],
    answers: &BTreeMap<String, String>,
    ctx: &ValidationContext<'_>,
) -> Result<BTreeMap<String, String>, BTreeMap<String, FieldError>> {
    let mut ok = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for def in defs {
        let raw = answers.get(&def.id).map(|s| s.trim()).unwrap_or("");
        if raw.is_empty() {
            if def.required {
                errors.insert(def.id.clone(), FieldError::Required);
            }
            continue;
        }
        match validate_one(def, raw, ctx) {
            Ok(v) => {
                ok.insert(def.id.clone(), v);
            }
            Err(e) => {
                errors.insert(def.id.clone(), e);
            }
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

fn validate_one(def: &FieldDef, raw: &str, ctx: &ValidationContext<'_>) -> Result<String, FieldError> {
    if raw.chars().count() > MAX_FIELD_LEN {
        return Err(FieldError::TooLong { max: MAX_FIELD_LEN });
    }
    match def.kind {
        FieldKind::Text | FieldKind::Multiline => Ok(raw.to_string()),
        FieldKind::Md5 => {
            if raw.len() == 32 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(raw.to_ascii_lowercase())
            } else {
                Err(FieldError::Md5)
            }
        }
        FieldKind::Url => match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(raw.to_string()),
            _ => Err(FieldError::Url),
        },
        FieldKind::DateTime => {
            let at = parse_datetime(raw).ok_or(FieldError::DateTimeFormat)?;
            if at.timestamp_millis() <= ctx.now_ms {
                return Err(FieldError::DateTimePast);
            }
            Ok(format_datetime(at))
        }
        FieldKind::Select => def
            .options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(raw))
            .cloned()
            .ok_or_else(|| FieldError::UnknownOption {
                options: def.options.clone(),
            }),
        FieldKind::Environment => ctx
            .environments
            .iter()
            .find(|e| e.eq_ignore_ascii_case(raw))
            .cloned()
            .ok_or_else(|| FieldError::UnknownEnvironment {
                known: ctx.environments.to_vec(),
            }),
        FieldKind::Application => {
            if ctx.applications.is_empty() {
                return Ok(raw.to_string());
            }
            ctx.applications
                .iter()
                .find(|a| a.eq_ignore_ascii_case(raw))
                .cloned()
                .ok_or_else(|| FieldError::UnknownApplication {
                    known: ctx.applications.to_vec(),
                })
        }
    }
}

/// Accepts RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` (also with `T`) read as UTC.
pub fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    let raw = raw.trim_end_matches(" UTC").trim_end_matches('Z');
    for fmt in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(raw, fmt) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    None
}

pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(format_datetime)
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(id: &str, kind: FieldKind) -> FieldDef {
        FieldDef {
            id: id.into(),
            label: id.into(),
            kind,
            options: vec!["pass".into(), "fail".into()],
            required: true,
            hint: None,
        }
    }

    fn check(kind: FieldKind, raw: &str) -> Result<String, FieldError> {
        let apps = vec!["payments".to_string()];
        let envs = vec!["prod".to_string(), "staging".to_string()];
        let ctx = ValidationContext {
            now_ms: 1_700_000_000_000, // 2023-11-14
            applications: &apps,
            environments: &envs,
        };
        let d = def("f", kind);
        let mut answers = BTreeMap::new();
        answers.insert("f".to_string(), raw.to_string());
        validate(&[d], &answers, &ctx)
            .map(|mut ok| ok.remove("f").unwrap_or_default())
            .map_err(|mut e| e.remove("f").unwrap_or(FieldError::Required))
    }

    #[test]
    fn md5_must_be_32_hex() {
        assert_eq!(
            check(FieldKind::Md5, "D41D8CD98F00B204E9800998ECF8427E").as_deref(),
            Ok("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            check(FieldKind::Md5, "d41d8cd98f00b204e9800998ecf8427"),
            Err(FieldError::Md5)
        );
        assert_eq!(
            check(FieldKind::Md5, "z41d8cd98f00b204e9800998ecf8427e"),
            Err(FieldError::Md5)
        );
    }

    #[test]
    fn url_scheme_allow_list() {
        assert!(check(FieldKind::Url, "https://repo.example.com/app-1.2.tgz").is_ok());
        assert!(check(FieldKind::Url, "http://repo/app.tgz").is_ok());
        assert_eq!(check(FieldKind::Url, "ftp://repo/app.tgz"), Err(FieldError::Url));
        assert_eq!(check(FieldKind::Url, "file:///etc/passwd"), Err(FieldError::Url));
        assert_eq!(check(FieldKind::Url, "not a url"), Err(FieldError::Url));
    }

    #[test]
    fn datetime_must_parse_and_be_in_the_future() {
        assert_eq!(
            check(FieldKind::DateTime, "2030-01-02 03:04").as_deref(),
            Ok("2030-01-02 03:04 UTC")
        );
        assert_eq!(
            check(FieldKind::DateTime, "2030-01-02T03:04:00+08:00").as_deref(),
            Ok("2030-01-01 19:04 UTC")
        );
        assert_eq!(
            check(FieldKind::DateTime, "2020-01-02 03:04"),
            Err(FieldError::DateTimePast)
        );
        assert_eq!(check(FieldKind::DateTime, "tomorrow"), Err(FieldError::DateTimeFormat));
    }

    #[test]
    fn select_and_application() {
        assert_eq!(check(FieldKind::Select, "PASS").as_deref(), Ok("pass"));
        assert!(matches!(
            check(FieldKind::Select, "maybe"),
            Err(FieldError::UnknownOption { .. })
        ));
        assert_eq!(check(FieldKind::Application, "Payments").as_deref(), Ok("payments"));
        assert!(matches!(
            check(FieldKind::Application, "billing"),
            Err(FieldError::UnknownApplication { .. })
        ));
    }

    #[test]
    fn required_and_length() {
        assert_eq!(check(FieldKind::Text, "   "), Err(FieldError::Required));
        assert_eq!(
            check(FieldKind::Text, &"x".repeat(MAX_FIELD_LEN + 1)),
            Err(FieldError::TooLong { max: MAX_FIELD_LEN })
        );
        let ctx = ValidationContext {
            now_ms: 0,
            applications: &[],
            environments: &[],
        };
        let mut d = def("opt", FieldKind::Text);
        d.required = false;
        assert_eq!(validate(&[d], &BTreeMap::new(), &ctx), Ok(BTreeMap::new()));
    }

    #[test]
    fn environments_come_from_the_registry() {
        assert_eq!(check(FieldKind::Environment, "Staging").as_deref(), Ok("staging"));
        assert_eq!(
            check(FieldKind::Environment, "qa"),
            Err(FieldError::UnknownEnvironment {
                known: vec!["prod".into(), "staging".into()]
            })
        );
    }

    #[test]
    fn any_application_when_none_registered() {
        let ctx = ValidationContext {
            now_ms: 0,
            applications: &[],
            environments: &[],
        };
        let mut answers = BTreeMap::new();
        answers.insert("app".to_string(), "anything".to_string());
        assert!(validate(&[def("app", FieldKind::Application)], &answers, &ctx).is_ok());
    }
}
