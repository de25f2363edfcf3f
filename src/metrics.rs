//! The metrics `/metrics` serves, through `prometheus-client`: one catalogue below names
//! every family with its help text, its kind and the series that exist from the start (at
//! zero); code records by family name. Process metrics and the scrape-time gauges (queue
//! depths and lags) are set when `/metrics` is read.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

/// Bounds for durations from a fraction of a second to minutes (seconds).
pub const BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Bounds for durations of a millisecond or less (seconds).
pub const FINE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Bounds for HTTP request durations (seconds).
pub const REQUEST_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Bounds for how many items one transaction carried.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Bounds for step durations (seconds: a second to an hour).
pub const STEP_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];

type Labels = Vec<(String, String)>;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// One family of the catalogue: name (as served), kind, help, and the label sets that
/// exist from the start (each at zero).
struct Def {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    initial: &'static [&'static [(&'static str, &'static str)]],
}

const PLATFORM_SERIES: &[&[(&str, &str)]] = &[
    &[("platform", "slack")],
    &[("platform", "discord")],
    &[("platform", "dingtalk")],
    &[("platform", "local")],
];

/// The routes served (request latency histograms exist for each from the start).
pub const ROUTES: &[&str] = &[
    "/slack/commands",
    "/slack/interactions",
    "/slack/events",
    "/discord/interactions",
    "/dingtalk/events",
    "/swimlanes/{name}/activity",
    "/",
    "/chat",
    "/chat/messages",
    "/chat/events",
    "/chat/form",
    "/chat/form/dismiss",
    "/chat/as",
    "/chat/command",
    "/chat/action",
    "/executions/{id}",
    "/tickets/{id}",
    "/healthz",
    "/readyz",
    "/metrics",
];

const NONE: &[&[(&str, &str)]] = &[&[]];

const CATALOGUE: &[Def] = &[
    Def {
        name: "releasebot_build_info",
        kind: Kind::Gauge,
        help: "Always 1; its labels name the running build",
        initial: &[],
    },
    Def {
        name: "releasebot_http_requests_total",
        kind: Kind::Counter,
        help: "HTTP requests answered, by route and status",
        initial: &[],
    },
    Def {
        name: "releasebot_http_request_duration_seconds",
        kind: Kind::Histogram(REQUEST_BUCKETS),
        help: "Time to answer an HTTP request (to its headers), by route",
        initial: &[],
    },
    Def {
        name: "releasebot_inbound_duplicates_total",
        kind: Kind::Counter,
        help: "Inbound events delivered again by their platform and recorded once",
        initial: &[],
    },
    Def {
        name: "releasebot_inbox_pending",
        kind: Kind::Gauge,
        help: "Inbound events recorded and not yet handled",
        initial: NONE,
    },
    Def {
        name: "releasebot_inbox_lag_seconds",
        kind: Kind::Gauge,
        help: "Age of the oldest inbound event not yet handled (0 when none waits)",
        initial: NONE,
    },
    Def {
        name: "releasebot_intake_writer_wait_seconds",
        kind: Kind::Histogram(FINE_BUCKETS),
        help: "Time a group commit of acknowledged events waited for the database writer",
        initial: NONE,
    },
    Def {
        name: "releasebot_intake_write_seconds",
        kind: Kind::Histogram(FINE_BUCKETS),
        help: "Time a group commit of acknowledged events took to write, once it had the writer",
        initial: NONE,
    },
    Def {
        name: "releasebot_inbox_events_per_transaction",
        kind: Kind::Histogram(BATCH_BUCKETS),
        help: "Inbound events handled in one transaction",
        initial: NONE,
    },
    Def {
        name: "releasebot_transitions_total",
        kind: Kind::Counter,
        help: "Ticket transitions, by action",
        initial: &[
            &[("action", "submitted")],
            &[("action", "approved")],
            &[("action", "approval_counted")],
            &[("action", "rejected")],
            &[("action", "resubmitted")],
            &[("action", "closed")],
        ],
    },
    Def {
        name: "releasebot_refusals_total",
        kind: Kind::Counter,
        help: "Requests refused, by reason",
        initial: &[
            &[("reason", "need_role")],
            &[("reason", "calendar")],
            &[("reason", "target_busy")],
        ],
    },
    Def {
        name: "releasebot_internal_errors_total",
        kind: Kind::Counter,
        help: "Handlers that failed with an internal error",
        initial: NONE,
    },
    Def {
        name: "releasebot_sla_reminders_total",
        kind: Kind::Counter,
        help: "Reminders of stages waiting past their SLA",
        initial: NONE,
    },
    Def {
        name: "releasebot_escalations_total",
        kind: Kind::Counter,
        help: "Stages escalated to their backup role",
        initial: NONE,
    },
    Def {
        name: "releasebot_outbox_depth",
        kind: Kind::Gauge,
        help: "Outbound messages not yet delivered",
        initial: NONE,
    },
    Def {
        name: "releasebot_outbox_lag_seconds",
        kind: Kind::Gauge,
        help: "Age of the oldest outbound message not yet delivered (0 when none waits)",
        initial: NONE,
    },
    Def {
        name: "releasebot_outbox_delivered_total",
        kind: Kind::Counter,
        help: "Outbound messages delivered, by platform and kind",
        initial: &[],
    },
    Def {
        name: "releasebot_outbox_failed_total",
        kind: Kind::Counter,
        help: "Outbound messages given up on, by platform",
        initial: PLATFORM_SERIES,
    },
    Def {
        name: "releasebot_outbox_retries_total",
        kind: Kind::Counter,
        help: "Deliveries to try again, by platform and reason",
        initial: &[],
    },
    Def {
        name: "releasebot_outbox_reconciled_total",
        kind: Kind::Counter,
        help: "Deliveries found already delivered after a crash, by platform",
        initial: PLATFORM_SERIES,
    },
    Def {
        name: "releasebot_outbox_delivery_latency_seconds",
        kind: Kind::Histogram(BUCKETS),
        help: "Time from an outbound message's commit to its delivery",
        initial: NONE,
    },
    Def {
        name: "releasebot_outbox_claimed_per_transaction",
        kind: Kind::Histogram(BATCH_BUCKETS),
        help: "Outbound messages claimed in one transaction",
        initial: NONE,
    },
    Def {
        name: "releasebot_outbox_recorded_per_transaction",
        kind: Kind::Histogram(BATCH_BUCKETS),
        help: "Delivery outcomes recorded in one transaction",
        initial: NONE,
    },
    Def {
        name: "releasebot_executions_started_total",
        kind: Kind::Counter,
        help: "Release executions started",
        initial: NONE,
    },
    Def {
        name: "releasebot_executions_finished_total",
        kind: Kind::Counter,
        help: "Release executions ended, by outcome",
        initial: &[
            &[("outcome", "released")],
            &[("outcome", "failed")],
            &[("outcome", "rolled_back")],
        ],
    },
    Def {
        name: "releasebot_exec_commands_total",
        kind: Kind::Counter,
        help: "Commands on executions (pause, rollback, …), by command",
        initial: &[],
    },
    Def {
        name: "releasebot_executor_step_overhead_seconds",
        kind: Kind::Histogram(FINE_BUCKETS),
        help: "Executor time per step beyond the step's own work",
        initial: NONE,
    },
    Def {
        name: "releasebot_executor_step_duration_seconds",
        kind: Kind::Histogram(STEP_BUCKETS),
        help: "Duration of release steps, start to end, by step type",
        initial: &[],
    },
    Def {
        name: "releasebot_scheduler_firings_total",
        kind: Kind::Counter,
        help: "Scheduled firings handled, by result",
        initial: &[&[("result", "ok")], &[("result", "error")]],
    },
    Def {
        name: "releasebot_scheduler_failing_firings",
        kind: Kind::Gauge,
        help: "Firings waiting to fire again after their handler failed, by job kind",
        initial: &[
            &[("job", "lane_timer")],
            &[("job", "release_start")],
            &[("job", "release_reminder")],
            &[("job", "sla_reminder")],
            &[("job", "digest")],
            &[("job", "expiring_list")],
        ],
    },
    Def {
        name: "releasebot_scheduler_last_error",
        kind: Kind::Gauge,
        help: "The last error of each job kind's failing firings (1 while one waits to fire again)",
        initial: NONE,
    },
    Def {
        name: "releasebot_scheduler_lateness_seconds",
        kind: Kind::Histogram(BUCKETS),
        help: "How late a scheduled firing ran after it was due",
        initial: NONE,
    },
    Def {
        name: "releasebot_swimlane_transitions_total",
        kind: Kind::Counter,
        help: "Swimlane transitions, by action",
        initial: &[],
    },
    Def {
        name: "process_resident_memory_bytes",
        kind: Kind::Gauge,
        help: "Resident memory size in bytes",
        initial: NONE,
    },
    Def {
        name: "process_virtual_memory_bytes",
        kind: Kind::Gauge,
        help: "Virtual memory size in bytes",
        initial: NONE,
    },
    Def {
        name: "process_cpu_seconds_total",
        kind: Kind::Gauge,
        help: "User and system CPU time spent, in seconds",
        initial: NONE,
    },
    Def {
        name: "process_open_fds",
        kind: Kind::Gauge,
        help: "Open file descriptors",
        initial: NONE,
    },
    Def {
        name: "process_threads",
        kind: Kind::Gauge,
        help: "Operating system threads",
        initial: NONE,
    },
    Def {
        name: "process_start_time_seconds",
        kind: Kind::Gauge,
        help: "Start time of the process since the Unix epoch, in seconds",
        initial: NONE,
    },
];

/// Makes a family's histograms with its bounds.
#[derive(Clone, Copy, Debug)]
struct Bounds(&'static [f64]);

impl MetricConstructor<Histogram> for Bounds {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

pub struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    gauges: HashMap<&'static str, Gauges>,
    histograms: HashMap<&'static str, Family<Labels, Histogram, Bounds>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
            histograms: HashMap::new(),
        };
        for d in CATALOGUE {
            match d.kind {
                Kind::Counter => {
                    let f = Family::<Labels, Counter>::default();
                    for l in d.initial {
                        let _ = f.get_or_create(&labels(l));
                    }
                    // The registry adds the `_total` suffix of counters itself.
                    m.registry
                        .register(d.name.trim_end_matches("_total"), d.help, f.clone());
                    m.counters.insert(d.name, f);
                }
                Kind::Gauge => {
                    let f = Gauges::default();
                    for l in d.initial {
                        let _ = f.get_or_create(&labels(l));
                    }
                    m.registry.register(d.name, d.help, f.clone());
                    m.gauges.insert(d.name, f);
                }
                Kind::Histogram(bounds) => {
                    let f = Family::<Labels, Histogram, Bounds>::new_with_constructor(Bounds(bounds));
                    for l in d.initial {
                        let _ = f.get_or_create(&labels(l));
                    }
                    m.registry.register(d.name, d.help, f.clone());
                    m.histograms.insert(d.name, f);
                }
            }
        }
        m.set("releasebot_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        m.set("process_start_time_seconds", &[], process::start_time());
        // Families whose labels take values known in advance: every series from the start.
        for route in ROUTES {
            m.touch("releasebot_http_request_duration_seconds", &[("route", route)]);
            m.touch("releasebot_http_requests_total", &[("route", route), ("status", "200")]);
        }
        for platform in PLATFORMS {
            m.touch("releasebot_inbound_duplicates_total", &[("platform", platform)]);
            for kind in [
                "post",
                "update",
                "ephemeral",
                "direct",
                "reply",
                "open_form",
                "progress",
            ] {
                m.touch(
                    "releasebot_outbox_delivered_total",
                    &[("platform", platform), ("kind", kind)],
                );
            }
            for reason in ["rate_limited", "transient"] {
                m.touch(
                    "releasebot_outbox_retries_total",
                    &[("platform", platform), ("reason", reason)],
                );
            }
        }
        for command in [
            "pause",
            "resume",
            "retry",
            "skip",
            "rollback",
            "abort",
            "continue",
            "stop-rollback",
            "stop-abort",
        ] {
            m.touch("releasebot_exec_commands_total", &[("command", command)]);
        }
        for kind in STEP_TYPES {
            m.touch("releasebot_executor_step_duration_seconds", &[("type", kind)]);
        }
        for action in SWIMLANE_ACTIONS {
            m.touch("releasebot_swimlane_transitions_total", &[("action", action)]);
        }
        m
    }
}

const PLATFORMS: [&str; 4] = crate::domain::actor::PLATFORMS;

const STEP_TYPES: &[&str] = &[
    "VERIFY_PACKAGE",
    "DEPLOY",
    "HEALTH_CHECK",
    "TEST",
    "TRAFFIC_SHIFT",
    "MONITOR",
    "APPROVAL_GATE",
    "SCRIPT",
    "NOTIFY",
    "ROLLBACK",
];

const SWIMLANE_ACTIONS: &[&str] = &[
    "swimlane_created",
    "swimlane_provisioned",
    "swimlane_renewed",
    "swimlane_activity",
    "swimlane_pending_deletion",
    "swimlane_expired",
    "swimlane_delete_requested",
    "swimlane_deleted",
    "swimlane_hook_failed",
    "swimlane_failed",
];

/// A family that is not in the catalogue is a programming error: it fails tests, and in
/// production the observation is dropped with a log line.
fn unknown(name: &str) {
    debug_assert!(false, "metric {name} is not in the catalogue");
    tracing::warn!(metric = name, "metric not in the catalogue");
}

impl Metrics {
    /// Creates a series at zero (whatever its family's kind).
    fn touch(&self, name: &str, pairs: &[(&str, &str)]) {
        let l = labels(pairs);
        if let Some(f) = self.counters.get(name) {
            let _ = f.get_or_create(&l);
        } else if let Some(f) = self.histograms.get(name) {
            let _ = f.get_or_create(&l);
        } else if let Some(f) = self.gauges.get(name) {
            let _ = f.get_or_create(&l);
        } else {
            unknown(name);
        }
    }

    pub fn inc(&self, name: &str, pairs: &[(&str, &str)]) {
        match self.counters.get(name) {
            Some(f) => {
                f.get_or_create(&labels(pairs)).inc();
            }
            None => unknown(name),
        }
    }

    pub fn observe(&self, name: &str, value: f64) {
        self.observe_with(name, &[], value);
    }

    pub fn observe_with(&self, name: &str, pairs: &[(&str, &str)], value: f64) {
        match self.histograms.get(name) {
            Some(f) => f.get_or_create(&labels(pairs)).observe(value),
            None => unknown(name),
        }
    }

    pub fn set(&self, name: &str, pairs: &[(&str, &str)], value: f64) {
        match self.gauges.get(name) {
            Some(f) => {
                f.get_or_create(&labels(pairs)).set(value);
            }
            None => unknown(name),
        }
    }

    /// Replaces every series of a gauge family by `series` (a family read from rows at
    /// scrape time, whose label sets come and go).
    pub fn replace(&self, name: &str, series: &[(Vec<(&str, &str)>, f64)]) {
        match self.gauges.get(name) {
            Some(f) => {
                f.clear();
                for (pairs, value) in series {
                    f.get_or_create(&labels(pairs)).set(*value);
                }
            }
            None => unknown(name),
        }
    }

    pub fn counter(&self, name: &str, pairs: &[(&str, &str)]) -> u64 {
        self.counters
            .get(name)
            .map(|f| f.get_or_create(&labels(pairs)).get())
            .unwrap_or(0)
    }

    /// Every metric in the Prometheus text format (process metrics read now).
    pub fn render(&self) -> String {
        process::sample(self);
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics");
        }
        out
    }

    /// A histogram's cumulative buckets (bound, observations at most that) and its count,
    /// read from the text format (for benchmarks).
    pub fn buckets(&self, name: &str) -> Option<(Vec<(f64, u64)>, u64)> {
        let text = self.render();
        let mut buckets = Vec::new();
        let mut count = None;
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if let Some(rest) = series.strip_prefix(&format!("{name}_bucket{{le=\"")) {
                let bound = rest.trim_end_matches("\"}");
                if let (Ok(b), Ok(n)) = (bound.parse::<f64>(), value.parse::<u64>()) {
                    buckets.push((b, n));
                }
            } else if series == format!("{name}_count") {
                count = value.parse::<u64>().ok();
            }
        }
        count.map(|c| (buckets, c))
    }
}

/// The process's own metrics, read from `/proc` (Linux; elsewhere they stay at zero).
mod process {
    use super::Metrics;

    /// Clock ticks per second of `/proc`'s CPU times.
    fn ticks() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    fn stat_fields() -> Option<Vec<String>> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces: fields start after its ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        Some(rest.split_whitespace().map(str::to_string).collect())
    }

    /// When the process started (seconds since the epoch).
    pub fn start_time() -> f64 {
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))
        });
        // Field 22 (starttime) is the 20th after the command name.
        let started = stat_fields().and_then(|f| f.get(19).and_then(|v| v.parse::<f64>().ok()));
        match (boot, started) {
            (Some(b), Some(s)) => b + s / ticks(),
            _ => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }

    pub fn sample(m: &Metrics) {
        if let Some(f) = stat_fields() {
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // utime (14), stime (15), num_threads (20), vsize (23), rss (24) in pages.
            m.set("process_cpu_seconds_total", &[], (num(11) + num(12)) / ticks());
            m.set("process_threads", &[], num(17));
            m.set("process_virtual_memory_bytes", &[], num(20));
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
            m.set("process_resident_memory_bytes", &[], num(21) * page);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            m.set("process_open_fds", &[], fds.count() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_the_advertised_series_start_at_zero() {
        let m = Metrics::default();
        m.inc("releasebot_http_requests_total", &[("route", "/x"), ("status", "200")]);
        m.inc("releasebot_http_requests_total", &[("route", "/x"), ("status", "200")]);
        m.observe("releasebot_scheduler_lateness_seconds", 0.3);
        let text = m.render();
        assert!(
            text.contains("releasebot_http_requests_total{route=\"/x\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# HELP releasebot_refusals_total Requests refused, by reason"));
        assert!(
            text.contains("releasebot_refusals_total{reason=\"calendar\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("releasebot_build_info{version=\""), "{text}");
        assert_eq!(
            m.counter("releasebot_http_requests_total", &[("route", "/x"), ("status", "200")]),
            2
        );
        let (buckets, count) = m.buckets("releasebot_scheduler_lateness_seconds").unwrap();
        assert_eq!(count, 1);
        assert!(
            buckets.contains(&(0.5, 1)) && buckets.contains(&(0.25, 0)),
            "{buckets:?}"
        );
    }
}
