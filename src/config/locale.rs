//! The built-in configuration and the per-locale texts of a configuration file.

pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

/// The locales a name may be given in.
pub const LOCALES: &[&str] = &["en", "zh-CN"];

/// Replaces every per-locale text (a table whose keys are all locales and whose values
/// are all strings) by its text in `locale`.
pub(super) fn localize(table: &mut toml::Table, locale: &str) {
    for (_, v) in table.iter_mut() {
        localize_value(v, locale);
    }
}

pub(super) fn localize_value(v: &mut toml::Value, locale: &str) {
    match v {
        toml::Value::Table(t) => {
            let per_locale = !t.is_empty() && t.iter().all(|(k, v)| LOCALES.contains(&k.as_str()) && v.is_str());
            if per_locale {
                let text = t
                    .get(locale)
                    .or_else(|| t.get("en"))
                    .or_else(|| t.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                *v = toml::Value::String(text);
            } else {
                localize(t, locale);
            }
        }
        toml::Value::Array(items) => {
            for i in items {
                localize_value(i, locale);
            }
        }
        _ => {}
    }
}
