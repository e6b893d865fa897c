//! Metrics through one seam, the [`metrics`] facade: recorded once, where
//! things happen — the decision in [`crate::authorizer::authorize`], AS
//! calls in the backends, cache lookups in [`crate::cache`], JWKS fetches
//! in [`crate::backends::jwks`] — and exported per front: CloudWatch
//! Embedded Metric Format in Lambda ([`emf`]), Prometheus text in
//! `certbound serve` ([`prometheus`]). Without an installed recorder
//! (`CERTBOUND_METRICS=off`, `invoke`, `explain`, library use) every call
//! here is a no-op.
//!
//! Labels are low-cardinality only: verdict, reason, backend, failure kind,
//! cache result, fetch outcome, version. Never a token, a client id, a
//! subject or a path.

pub mod emf;
pub mod prometheus;

use std::time::Instant;

use crate::backends::{CacheStatus, IntrospectionError};
use crate::config::{ConfigError, Env};
use crate::verdict::{Decision, Reason};

/// Counter: decisions, labels `verdict`, `reason` (`none` on Allow).
pub const DECISIONS: &str = "certbound_decisions_total";
/// Counter: HTTP requests to the authorization server, label `backend`.
pub const AS_REQUESTS: &str = "certbound_as_requests_total";
/// Counter: failed AS requests, labels `backend`, `kind`
/// (`as_unavailable` | `as_error`).
pub const AS_FAILURES: &str = "certbound_as_failures_total";
/// Histogram: AS request duration in seconds, label `backend`.
pub const AS_DURATION: &str = "certbound_as_request_duration_seconds";
/// Counter: cache lookups, label `result` (`hit` | `miss` | `bypass`).
pub const CACHE: &str = "certbound_cache_total";
/// Counter: JWKS fetches, label `outcome` (`ok` | `error`).
pub const JWKS_FETCHES: &str = "certbound_jwks_fetches_total";
/// Gauge, always 1: labels `version`, `backend`.
pub const BUILD_INFO: &str = "certbound_build_info";

/// The `reason` label of an Allow.
pub const NO_REASON: &str = "none";

/// The `backend` label of the Authlete backend.
pub const BACKEND_AUTHLETE: &str = "authlete";
/// The `backend` label of the RFC 7662 backend.
pub const BACKEND_RFC7662: &str = "rfc7662";
/// The `backend` label of the JWT backend (its AS requests are the
/// metadata and JWKS fetches).
pub const BACKEND_JWT: &str = "jwt";

/// Describes every metric to the installed recorder (Prometheus `# HELP`).
pub fn describe() {
    metrics::describe_counter!(
        DECISIONS,
        "Authorization decisions by verdict and reason (none on Allow)"
    );
    metrics::describe_counter!(
        AS_REQUESTS,
        "HTTP requests to the authorization server (introspection; JWKS and metadata for jwt)"
    );
    metrics::describe_counter!(
        AS_FAILURES,
        "Failed requests to the authorization server: as_unavailable (no usable answer) or as_error (an unusable one)"
    );
    metrics::describe_histogram!(
        AS_DURATION,
        metrics::Unit::Seconds,
        "Duration of requests to the authorization server"
    );
    metrics::describe_counter!(CACHE, "Answer cache look-ups: hit, miss, bypass");
    metrics::describe_counter!(JWKS_FETCHES, "JWKS fetches: ok, error");
    metrics::describe_gauge!(BUILD_INFO, "Always 1: the version and the backend");
}

/// One decision (every front, including requests not understood).
pub fn decision(decision: Decision, reason: Option<Reason>) {
    metrics::counter!(
        DECISIONS,
        "verdict" => decision.as_str(),
        "reason" => reason.map_or(NO_REASON, Reason::as_str),
    )
    .increment(1);
}

/// One cache lookup (`Off` is not recorded: there is no cache).
pub fn cache(status: CacheStatus) {
    if status != CacheStatus::Off {
        metrics::counter!(CACHE, "result" => status.as_str()).increment(1);
    }
}

/// One JWKS fetch.
pub fn jwks_fetch(ok: bool) {
    metrics::counter!(JWKS_FETCHES, "outcome" => if ok { "ok" } else { "error" }).increment(1);
}

/// `certbound_build_info{version, backend} 1`.
pub fn build_info(backend: &'static str) {
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "backend" => backend)
        .set(1.0);
}

/// The `kind` label of a failed AS request, from the error's reason.
pub fn failure_kind(e: &IntrospectionError) -> &'static str {
    match e.reason() {
        Reason::AsError => Reason::AsError.as_str(),
        _ => Reason::AsUnavailable.as_str(),
    }
}

/// One request to the authorization server, timed from [`AsCall::start`]
/// to [`AsCall::finish`]. Dropped unfinished — the core's deadline
/// cancelled it — it counts as a failure of kind `as_unavailable`, so a
/// timeout is never missing from the numbers.
#[must_use = "finish the call with its outcome"]
pub struct AsCall {
    backend: &'static str,
    started: Instant,
    done: bool,
    jwks: bool,
}

impl AsCall {
    /// The request is about to be sent.
    pub fn start(backend: &'static str) -> Self {
        Self {
            backend,
            started: Instant::now(),
            done: false,
            jwks: false,
        }
    }

    /// A JWKS fetch (metadata discovery included): also counted in
    /// `certbound_jwks_fetches_total`.
    pub fn start_jwks() -> Self {
        Self {
            backend: BACKEND_JWT,
            started: Instant::now(),
            done: false,
            jwks: true,
        }
    }

    /// The request ended: `None` = a usable answer, else the failure.
    pub fn finish(mut self, failure: Option<&IntrospectionError>) {
        self.record(failure.map(failure_kind));
    }

    fn record(&mut self, failure: Option<&'static str>) {
        self.done = true;
        metrics::counter!(AS_REQUESTS, "backend" => self.backend).increment(1);
        metrics::histogram!(AS_DURATION, "backend" => self.backend)
            .record(self.started.elapsed().as_secs_f64());
        if let Some(kind) = failure {
            metrics::counter!(AS_FAILURES, "backend" => self.backend, "kind" => kind).increment(1);
        }
        if self.jwks {
            jwks_fetch(failure.is_none());
        }
    }
}

impl Drop for AsCall {
    fn drop(&mut self) {
        if !self.done {
            self.record(Some(Reason::AsUnavailable.as_str()));
        }
    }
}

/// What the metrics settings say (`CERTBOUND_METRICS`,
/// `CERTBOUND_METRICS_NAMESPACE`, `CERTBOUND_METRICS_LISTEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `CERTBOUND_METRICS` (default `on`): `off` disables metrics in both
    /// fronts.
    pub enabled: bool,
    /// Lambda: the CloudWatch namespace (default `certbound`).
    pub namespace: String,
    /// `serve`: where the Prometheus listener listens (unset: none).
    pub listen: Option<std::net::SocketAddr>,
}

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "certbound";

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            listen: None,
        }
    }
}

impl MetricsSettings {
    /// Reads the three variables; an invalid value names its variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let invalid = |var: &'static str, reason: String| ConfigError::Invalid { var, reason };
        let enabled = match env
            .get("CERTBOUND_METRICS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("on" | "true" | "1" | "yes") => true,
            Some("off" | "false" | "0" | "no") => false,
            Some(other) => {
                return Err(invalid(
                    "CERTBOUND_METRICS",
                    format!("{other:?} is not on/off"),
                ))
            }
        };
        let namespace = env
            .get("CERTBOUND_METRICS_NAMESPACE")
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        // CloudWatch: 1–255 characters, no colon-led `AWS/` namespace.
        if namespace.len() > 255
            || namespace.starts_with("AWS/")
            || namespace.chars().any(|c| c.is_control() || c == ':')
        {
            return Err(invalid(
                "CERTBOUND_METRICS_NAMESPACE",
                "must be 1-255 printable characters without ':' and not start with AWS/".into(),
            ));
        }
        let listen = match env.get("CERTBOUND_METRICS_LISTEN") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| {
                invalid(
                    "CERTBOUND_METRICS_LISTEN",
                    format!("{v:?} is not an address:port (e.g. 127.0.0.1:9464)"),
                )
            })?),
        };
        Ok(Self {
            enabled,
            namespace,
            listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<MetricsSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Env::from_map(&map);
        MetricsSettings::from_env(&env)
    }

    #[test]
    fn settings_defaults_switch_and_errors_name_the_variable() {
        assert_eq!(settings(&[]).unwrap(), MetricsSettings::default());
        assert!(!settings(&[("CERTBOUND_METRICS", "OFF")]).unwrap().enabled);
        let s = settings(&[
            ("CERTBOUND_METRICS_NAMESPACE", "bank/authz"),
            ("CERTBOUND_METRICS_LISTEN", "127.0.0.1:9464"),
        ])
        .unwrap();
        assert_eq!(s.namespace, "bank/authz");
        assert_eq!(s.listen, Some("127.0.0.1:9464".parse().unwrap()));
        for (var, value) in [
            ("CERTBOUND_METRICS", "maybe"),
            ("CERTBOUND_METRICS_NAMESPACE", "AWS/Lambda"),
            ("CERTBOUND_METRICS_LISTEN", "/metrics"),
        ] {
            let e = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(var), "{e}");
        }
    }
}
