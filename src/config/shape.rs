//! Shape checking: every key of the file deserialized on its own, so that each problem is
//! reported with its dotted path, in words a person reads.

use super::*;

/// Deserializes `value` as a `T`; the problem, if any, with its dotted path under `path`.
pub(super) fn shaped<T: serde::de::DeserializeOwned>(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(value.clone()) {
        let inner = e.path().to_string();
        let at = match (path.is_empty(), inner.as_str()) {
            (_, ".") => path.to_string(),
            (true, inner) => inner.to_string(),
            (false, inner) if inner.starts_with('[') => format!("{path}{inner}"),
            (false, inner) => format!("{path}.{inner}"),
        };
        out.push(format!("{at}: {}", humane(&e.into_inner().to_string())));
    }
}

/// Each entry of a table (`roles.*`) or array (`applications[*]`) on its own.
pub(super) fn shaped_each<T: serde::de::DeserializeOwned>(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| shaped::<T>(v, &format!("{path}.{k}"), out)),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| shaped::<T>(v, &format!("{path}[{i}]"), out)),
        _ => shaped::<BTreeMap<String, T>>(value, path, out),
    }
}

/// A table whose `list` (stages, steps) is checked item by item, the rest as a `T`.
pub(super) fn shaped_with_list<T: serde::de::DeserializeOwned, I: serde::de::DeserializeOwned>(
    value: &toml::Value,
    path: &str,
    list: &str,
    out: &mut Vec<String>,
) {
    let toml::Value::Table(t) = value else {
        return shaped::<T>(value, path, out);
    };
    let mut rest = t.clone();
    if let Some(items) = rest.insert(list.to_string(), toml::Value::Array(vec![])) {
        shaped_each::<I>(&items, &format!("{path}.{list}"), out);
    }
    shaped::<T>(&toml::Value::Table(rest), path, out);
}

/// The file with its unknown keys taken out, if that makes it a configuration: what the
/// rest means can then be checked in the same run.
pub(super) fn without_unknown_keys(table: &toml::Table) -> Option<RawConfig> {
    let mut t = table.clone();
    // Each round takes out one unknown key (serde stops at the first).
    for _ in 0..100 {
        match serde_path_to_error::deserialize::<_, RawConfig>(toml::Value::Table(t.clone())) {
            Ok(raw) => return Some(raw),
            Err(e) if e.inner().to_string().starts_with("unknown field") => {
                let path: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                if !remove_at(&mut t, &path) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// Removes the key at `path`; false when the path does not lead to a key.
fn remove_at(table: &mut toml::Table, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    fn walk<'a>(mut here: &'a mut toml::Value, path: &[Segment]) -> Option<&'a mut toml::Value> {
        for segment in path {
            here = match (here, segment) {
                (toml::Value::Table(t), Segment::Map { key }) => t.get_mut(key)?,
                (toml::Value::Array(a), Segment::Seq { index }) => a.get_mut(*index)?,
                _ => return None,
            };
        }
        Some(here)
    }
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    let mut root = toml::Value::Table(std::mem::take(table));
    let removed = match walk(&mut root, parents) {
        Some(toml::Value::Table(t)) => t.remove(key).is_some(),
        _ => false,
    };
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    removed
}

/// Every problem of a configuration file's shape (unknown keys, wrong types, values out of
/// range), each with its dotted path.
pub(super) fn shape_problems(table: &toml::Table) -> Vec<String> {
    const KEYS: [&str; 12] = [
        "default_service",
        "roles",
        "applications",
        "services",
        "flows",
        "plans",
        "executor",
        "runtime",
        "sim",
        "swimlanes",
        "freezes",
        "calendar",
    ];
    let mut out = Vec::new();
    for (key, v) in table {
        match key.as_str() {
            "default_service" => shaped::<String>(v, key, &mut out),
            "roles" => shaped_each::<RoleConfig>(v, key, &mut out),
            "applications" => shaped_each::<ApplicationConfig>(v, key, &mut out),
            "services" => shaped_each::<ServiceConfig>(v, key, &mut out),
            "flows" => match v {
                toml::Value::Table(flows) => {
                    for (id, f) in flows {
                        shaped_with_list::<RawFlow, crate::domain::Stage>(
                            f,
                            &format!("flows.{id}"),
                            "stages",
                            &mut out,
                        );
                    }
                }
                _ => shaped::<BTreeMap<String, RawFlow>>(v, key, &mut out),
            },
            "plans" => match v {
                toml::Value::Table(plans) => {
                    for (id, p) in plans {
                        shaped_with_list::<crate::domain::plan::Plan, crate::domain::plan::StepDef>(
                            p,
                            &format!("plans.{id}"),
                            "steps",
                            &mut out,
                        );
                    }
                }
                _ => shaped::<BTreeMap<String, crate::domain::plan::Plan>>(v, key, &mut out),
            },
            "executor" => shaped::<ExecutorConfig>(v, key, &mut out),
            "runtime" => shaped::<RuntimeConfig>(v, key, &mut out),
            "sim" => shaped::<crate::config::SimConfig>(v, key, &mut out),
            "swimlanes" => shaped_with_list::<SwimlaneConfig, HookConfig>(v, key, "hooks", &mut out),
            "freezes" => shaped_each::<FreezeConfig>(v, key, &mut out),
            "calendar" => shaped::<CalendarConfig>(v, key, &mut out),
            other => out.push(format!("{other}: unknown key (expected one of {})", KEYS.join(", "))),
        }
    }
    out
}

/// A deserializer's message in the words of the configuration, not of Rust's types.
pub(super) fn humane(message: &str) -> String {
    // The path is given already: the parser's own "in `key`" line goes.
    let mut m = message.lines().next().unwrap_or_default().trim_end().to_string();
    for (rust, words) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a string", "expected text in quotes"),
        ("unknown field", "unknown key"),
    ] {
        m = m.replace(rust, words);
    }
    // `expected struct Thresholds`, `expected enum FailurePolicy`: name the shape instead.
    for (marker, words) in [
        ("expected struct ", "expected a table"),
        ("expected enum ", "expected one of the documented values"),
    ] {
        if let Some(i) = m.find(marker) {
            let end = m[i + marker.len()..]
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .map(|e| i + marker.len() + e)
                .unwrap_or(m.len());
            m.replace_range(i..end, words);
        }
    }
    m
}
