//! A small Prometheus text-format registry: counters by label set, and histograms.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Bounds for durations of a millisecond or less (seconds).
pub const FINE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
    histograms: Mutex<BTreeMap<String, Histogram>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    pub fn inc(&self, name: &str, pairs: &[(&str, &str)]) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name.to_string(), labels(pairs))).or_default() += 1;
        }
    }

    pub fn observe(&self, name: &str, value: f64) {
        self.observe_in(name, value, BUCKETS);
    }

    /// Observes into a histogram with its own bucket bounds (those of its first observation).
    pub fn observe_in(&self, name: &str, value: f64, bounds: &'static [f64]) {
        if let Ok(mut h) = self.histograms.lock() {
            let h = h.entry(name.to_string()).or_insert_with(|| Histogram {
                bounds,
                counts: vec![0; bounds.len()],
                ..Default::default()
            });
            for (i, b) in h.bounds.iter().enumerate() {
                if value <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += value;
            h.count += 1;
        }
    }

    /// A histogram's cumulative buckets (bound, observations at most that) and its count.
    pub fn buckets(&self, name: &str) -> Option<(Vec<(f64, u64)>, u64)> {
        let h = self.histograms.lock().ok()?;
        let h = h.get(name)?;
        Some((
            h.bounds.iter().copied().zip(h.counts.iter().copied()).collect(),
            h.count,
        ))
    }

    pub fn counter(&self, name: &str, pairs: &[(&str, &str)]) -> u64 {
        self.counters
            .lock()
            .map(|c| c.get(&(name.to_string(), labels(pairs))).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Renders every metric, plus the gauges given by the caller.
    pub fn render(&self, gauges: &[(&str, f64)]) -> String {
        let mut out = String::new();
        if let Ok(c) = self.counters.lock() {
            let mut last = "";
            for ((name, l), v) in c.iter() {
                if name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name;
                }
                let _ = writeln!(out, "{name}{l} {v}");
            }
        }
        if let Ok(h) = self.histograms.lock() {
            for (name, h) in h.iter() {
                let _ = writeln!(out, "# TYPE {name} histogram");
                for (i, b) in h.bounds.iter().enumerate() {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i]);
                }
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum {}", h.sum);
                let _ = writeln!(out, "{name}_count {}", h.count);
            }
        }
        for (name, v) in gauges {
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc("req_total", &[("route", "/x"), ("status", "200")]);
        m.inc("req_total", &[("route", "/x"), ("status", "200")]);
        m.observe("lat_seconds", 0.3);
        let text = m.render(&[("depth", 3.0)]);
        assert!(
            text.contains("# TYPE req_total counter\nreq_total{route=\"/x\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.25\"} 0\nlat_seconds_bucket{le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count 1\n"));
        assert!(text.contains("# TYPE depth gauge\ndepth 3\n"));
        assert_eq!(m.counter("req_total", &[("route", "/x"), ("status", "200")]), 2);
    }
}
