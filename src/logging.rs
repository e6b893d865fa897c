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
use tracing_subscriber::Layer;

/// The cap: certbound's own targets at any level, everything else at most
/// `info`.
pub fn dependency_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("certbound", LevelFilter::TRACE)
}

/// The filter `RUST_LOG` asks for: `level` and `target=level` directives,
/// comma-separated (`info`, `certbound=debug,warn`); unset or unreadable →
/// `info`. Targets and levels only — no span or field filters — so no
/// regular-expression engine is linked in (smaller binary, faster start).
pub fn from_env(value: Option<&str>) -> Targets {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = from_env(std::env::var("RUST_LOG").ok().as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_levels_and_targets() {
        let info = from_env(None);
        assert!(info.would_enable("certbound::decision", &Level::INFO));
        assert!(!info.would_enable("certbound::decision", &Level::DEBUG));
        let debug = from_env(Some("debug"));
        assert!(debug.would_enable("certbound", &Level::DEBUG));
        let mixed = from_env(Some("warn,certbound=trace"));
        assert!(mixed.would_enable("certbound::cache", &Level::TRACE));
        assert!(!mixed.would_enable("hyper", &Level::INFO));
        // Unreadable: the default, not silence.
        let bad = from_env(Some("certbound=[{x}]"));
        assert!(bad.would_enable("certbound", &Level::INFO));
        // Whatever RUST_LOG says, dependencies stay at info.
        let cap = dependency_cap();
        assert!(!cap.would_enable("lambda_runtime", &Level::TRACE));
        assert!(cap.would_enable("certbound::x", &Level::TRACE));
    }
}
