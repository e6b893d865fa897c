//! `tracing` JSON lines on stderr (CloudWatch-friendly), level from
//! `RUST_LOG` (default `info`).
//!
//! Dependencies are capped at `info` whatever `RUST_LOG` says: at `trace`,
//! `lambda_runtime` logs every raw event (with its `Authorization` header)
//! and hyper/reqwest log request details. `RUST_LOG=certbound=debug` (or
//! `trace`) is safe: certbound itself never logs a token, a secret or a PEM
//! body at any level.

use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The cap: certbound's own targets at any level, everything else at most
/// `info`.
pub fn dependency_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("certbound", LevelFilter::TRACE)
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_writer(std::io::stderr)
        .with_filter(filter.and(dependency_cap()));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
