//! Prometheus text format for `certbound serve`: the recorder of
//! `metrics-exporter-prometheus` (its own HTTP server left out), served as
//! `GET /metrics` on a listener of its own (`CERTBOUND_METRICS_LISTEN`) by
//! the same accept loop as the authorization endpoint — never a path of
//! the protected listener, so it cannot shadow a protected path.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use super::AS_DURATION;

/// The path served on the metrics listener.
pub const METRICS_PATH: &str = "/metrics";

/// Upper bounds of the AS latency histogram's buckets, seconds: 1 ms to 5 s.
pub const AS_DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0,
];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes (keeps memory flat).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Builds the recorder (AS latency as a true histogram) and installs it as
/// the process's global recorder.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(AS_DURATION.to_owned()), &AS_DURATION_BUCKETS)?
        .install_recorder()?;
    super::describe();
    Ok(handle)
}

/// `GET /metrics` → the text format; anything else 404.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        METRICS_PATH,
        get(move || {
            let handle = handle.clone();
            async move { render(&handle) }
        }),
    )
}

fn render(handle: &PrometheusHandle) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Keeps the recorder's histograms drained (call once, on a Tokio runtime).
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Why the metrics listener cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The same address as the authorization endpoint.
    #[error("CERTBOUND_METRICS_LISTEN is invalid: {0} is the authorization listener's address; metrics need a listener of their own")]
    SameAsProtected(SocketAddr),
    /// The address cannot be bound.
    #[error("cannot serve metrics on {addr} (CERTBOUND_METRICS_LISTEN): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the metrics listener (refusing the protected listener's address).
pub async fn bind(
    metrics: SocketAddr,
    protected: SocketAddr,
) -> Result<tokio::net::TcpListener, ListenError> {
    if metrics == protected {
        return Err(ListenError::SameAsProtected(metrics));
    }
    tokio::net::TcpListener::bind(metrics)
        .await
        .map_err(|source| ListenError::Bind {
            addr: metrics,
            source,
        })
}
