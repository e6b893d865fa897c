//! CloudWatch Embedded Metric Format (EMF) for the Lambda front: a
//! [`metrics::Recorder`] that accumulates what one invocation records, and
//! [`EmfRecorder::take_documents`], which renders it as EMF documents and
//! starts over. The Lambda front prints them on stdout (one line each)
//! after every invocation ([`flush`]); Lambda sends stdout to CloudWatch
//! Logs, which extracts the metrics.
//!
//! One invocation makes one decision, so it produces **one document**:
//!
//! | EMF metric | unit | dimension sets | from |
//! |---|---|---|---|
//! | `Decisions` | Count | `[Verdict]`, `[Verdict, Reason]` | `certbound_decisions_total` |
//! | `AsRequests` | Count | `[]` | `certbound_as_requests_total` |
//! | `AsFailures` | Count | `[]`, `[Kind]` | `certbound_as_failures_total` |
//! | `AsLatency` | Milliseconds (the values) | `[]` | `certbound_as_request_duration_seconds` |
//! | `CacheHits`, `CacheMisses`, `CacheBypasses` | Count | `[]` | `certbound_cache_total` |
//! | `JwksFetches` | Count | `[]` | `certbound_jwks_fetches_total` |
//!
//! Metrics with nothing to report are left out; build information is two
//! plain properties (`CertboundVersion`, `Backend`), not a metric. Should
//! several label combinations be recorded between two flushes (not in
//! Lambda, where invocations come one at a time), each further combination
//! gets a document of its own — a document holds one value per dimension.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use serde_json::{json, Map, Value};

use super::{AS_DURATION, AS_FAILURES, AS_REQUESTS, BUILD_INFO, CACHE, DECISIONS, JWKS_FETCHES};

/// EMF allows at most 100 values in one metric's array.
const MAX_VALUES: usize = 100;

/// The recorder; clones share what is recorded.
#[derive(Clone)]
pub struct EmfRecorder {
    registry: Arc<Registry<Key, AtomicStorage>>,
    namespace: Arc<str>,
}

impl std::fmt::Debug for EmfRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfRecorder")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// What was recorded since the last flush, by EMF metric.
#[derive(Default)]
struct Taken {
    decisions: BTreeMap<(String, String), u64>,
    as_requests: u64,
    as_failures: BTreeMap<String, u64>,
    latency_ms: Vec<f64>,
    cache: [u64; 3],
    jwks_fetches: u64,
    build: Option<(String, String)>,
}

fn label<'k>(key: &'k Key, name: &str) -> &'k str {
    key.labels()
        .find(|l| l.key() == name)
        .map_or("", |l| l.value())
}

impl EmfRecorder {
    /// A recorder for the CloudWatch namespace `namespace`.
    pub fn new(namespace: &str) -> Self {
        Self {
            registry: Arc::new(Registry::atomic()),
            namespace: namespace.into(),
        }
    }

    fn take(&self) -> Taken {
        let mut t = Taken::default();
        self.registry.visit_counters(|key, counter| {
            let n = counter.swap(0, Ordering::Relaxed);
            if n == 0 {
                return;
            }
            match key.name() {
                DECISIONS => {
                    *t.decisions
                        .entry((
                            label(key, "verdict").to_owned(),
                            label(key, "reason").to_owned(),
                        ))
                        .or_default() += n;
                }
                AS_REQUESTS => t.as_requests += n,
                AS_FAILURES => {
                    *t.as_failures
                        .entry(label(key, "kind").to_owned())
                        .or_default() += n
                }
                CACHE => match label(key, "result") {
                    "hit" => t.cache[0] += n,
                    "miss" => t.cache[1] += n,
                    "bypass" => t.cache[2] += n,
                    _ => {}
                },
                JWKS_FETCHES => t.jwks_fetches += n,
                _ => {}
            }
        });
        self.registry.visit_histograms(|key, bucket| {
            if key.name() == AS_DURATION {
                bucket.clear_with(|seconds| {
                    t.latency_ms
                        .extend(seconds.iter().map(|s| (s * 1_000_000.0).round() / 1000.0))
                });
            }
        });
        self.registry.visit_gauges(|key, _| {
            if key.name() == BUILD_INFO {
                t.build = Some((
                    label(key, "version").to_owned(),
                    label(key, "backend").to_owned(),
                ));
            }
        });
        t
    }

    /// Renders what was recorded since the last call as EMF documents and
    /// starts over: none when nothing was recorded, one per invocation in
    /// Lambda. `timestamp_ms`: milliseconds since the epoch.
    pub fn take_documents(&self, timestamp_ms: u64) -> Vec<Value> {
        let t = self.take();
        let dimensionless: Vec<(&str, &str, Value)> = [
            ("AsRequests", t.as_requests),
            ("CacheHits", t.cache[0]),
            ("CacheMisses", t.cache[1]),
            ("CacheBypasses", t.cache[2]),
            ("JwksFetches", t.jwks_fetches),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name, "Count", json!(n)))
        .collect();
        let latency: Vec<&[f64]> = t.latency_ms.chunks(MAX_VALUES).collect();
        let decisions: Vec<_> = t.decisions.iter().collect();
        let failures: Vec<_> = t.as_failures.iter().collect();
        let count = decisions
            .len()
            .max(failures.len())
            .max(latency.len())
            .max(usize::from(!dimensionless.is_empty()));
        (0..count)
            .map(|i| {
                let mut root = Map::new();
                let mut directives = Vec::new();
                if let Some(((verdict, reason), n)) = decisions.get(i) {
                    directives.push(self.directive(
                        json!([["Verdict"], ["Verdict", "Reason"]]),
                        &[("Decisions", "Count")],
                    ));
                    root.insert("Verdict".into(), json!(verdict));
                    root.insert("Reason".into(), json!(reason));
                    root.insert("Decisions".into(), json!(n));
                }
                if let Some((kind, n)) = failures.get(i) {
                    directives
                        .push(self.directive(json!([[], ["Kind"]]), &[("AsFailures", "Count")]));
                    root.insert("Kind".into(), json!(kind));
                    root.insert("AsFailures".into(), json!(n));
                }
                let mut plain: Vec<(&str, &str)> = Vec::new();
                if i == 0 {
                    for (name, unit, value) in &dimensionless {
                        plain.push((name, unit));
                        root.insert((*name).into(), value.clone());
                    }
                }
                if let Some(values) = latency.get(i) {
                    plain.push(("AsLatency", "Milliseconds"));
                    root.insert("AsLatency".into(), json!(values));
                }
                if !plain.is_empty() {
                    directives.push(self.directive(json!([[]]), &plain));
                }
                if let Some((version, backend)) = &t.build {
                    root.insert("CertboundVersion".into(), json!(version));
                    root.insert("Backend".into(), json!(backend));
                }
                root.insert(
                    "_aws".into(),
                    json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
                );
                Value::Object(root)
            })
            .collect()
    }

    fn directive(&self, dimensions: Value, metrics: &[(&str, &str)]) -> Value {
        let metrics: Vec<Value> = metrics
            .iter()
            .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
            .collect();
        json!({"Namespace": &*self.namespace, "Dimensions": dimensions, "Metrics": metrics})
    }

    /// [`EmfRecorder::take_documents`] stamped now, one JSON line each on
    /// stdout. A failed write is ignored (metrics never fail an answer).
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let documents = self.take_documents(now);
        if documents.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        for doc in documents {
            let _ = writeln!(out, "{doc}");
        }
        let _ = out.flush();
    }
}

static INSTALLED: OnceLock<EmfRecorder> = OnceLock::new();

/// Installs an EMF recorder as the process's global recorder (once; later
/// calls, or another recorder already installed, change nothing).
pub fn install(namespace: &str) -> Option<&'static EmfRecorder> {
    let recorder = INSTALLED.get_or_init(|| EmfRecorder::new(namespace));
    match metrics::set_global_recorder(recorder.clone()) {
        Ok(()) => Some(recorder),
        Err(_) => installed(),
    }
}

/// The installed EMF recorder, if any.
pub fn installed() -> Option<&'static EmfRecorder> {
    INSTALLED.get()
}

/// Prints what this invocation recorded (nothing when no EMF recorder is
/// installed). The Lambda front calls it after each invocation.
pub fn flush() {
    if let Some(recorder) = installed() {
        recorder.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::CacheStatus;
    use crate::telemetry;
    use crate::verdict::{Decision, Reason};

    #[test]
    fn one_document_per_invocation_with_every_directive_target_present() {
        let recorder = EmfRecorder::new("certbound-test");
        let docs = metrics::with_local_recorder(&recorder, || {
            telemetry::build_info("rfc7662");
            let call = telemetry::AsCall::start("rfc7662");
            call.finish(Some(&crate::IntrospectionError::Status { status: 502 }));
            telemetry::cache(CacheStatus::Miss);
            telemetry::decision(Decision::Deny, Some(Reason::AsError));
            recorder.take_documents(1_700_000_000_000)
        });
        assert_eq!(docs.len(), 1, "{docs:?}");
        let d = &docs[0];
        assert_eq!(d["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(d["Verdict"], "Deny");
        assert_eq!(d["Reason"], "as_error");
        assert_eq!(d["Decisions"], 1);
        assert_eq!(d["AsRequests"], 1);
        assert_eq!(d["AsFailures"], 1);
        assert_eq!(d["Kind"], "as_error");
        assert_eq!(d["CacheMisses"], 1);
        assert_eq!(d["AsLatency"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["Backend"], "rfc7662");
        for directive in d["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], "certbound-test");
            for set in directive["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    assert!(d[dim.as_str().unwrap()].is_string(), "{dim}");
                }
            }
            for m in directive["Metrics"].as_array().unwrap() {
                assert!(
                    d[m["Name"].as_str().unwrap()].is_number()
                        || d[m["Name"].as_str().unwrap()].is_array()
                );
            }
        }
        // Taken: the next invocation starts from zero.
        assert!(recorder.take_documents(0).is_empty());
    }

    #[test]
    fn different_label_sets_never_share_a_document() {
        let recorder = EmfRecorder::new("ns");
        metrics::with_local_recorder(&recorder, || {
            telemetry::decision(Decision::Allow, None);
            telemetry::decision(Decision::Allow, None);
            telemetry::decision(Decision::Deny, Some(Reason::CertMismatch));
        });
        let docs = recorder.take_documents(1);
        assert_eq!(docs.len(), 2);
        let allow = docs.iter().find(|d| d["Verdict"] == "Allow").unwrap();
        assert_eq!(
            (allow["Reason"].as_str(), allow["Decisions"].as_u64()),
            (Some("none"), Some(2))
        );
        let deny = docs.iter().find(|d| d["Verdict"] == "Deny").unwrap();
        assert_eq!(deny["Reason"], "cert_mismatch");
    }

    #[test]
    fn an_unfinished_as_call_is_a_failure() {
        let recorder = EmfRecorder::new("ns");
        metrics::with_local_recorder(&recorder, || {
            let _cancelled = telemetry::AsCall::start("authlete");
        });
        let docs = recorder.take_documents(1);
        assert_eq!(docs[0]["AsFailures"], 1);
        assert_eq!(docs[0]["Kind"], "as_unavailable");
    }
}
