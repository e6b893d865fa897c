//! `tracing` JSON lines on stderr (CloudWatch-friendly), level from
//! `RUST_LOG` (default `info`).
//!
//! Lambda's advanced logging controls win over `RUST_LOG` when the
//! function sets them: `AWS_LAMBDA_LOG_LEVEL` (`TRACE`, `DEBUG`, `INFO`,
//! `WARN`, `ERROR`, `FATAL`; `FATAL` is `error`) and
//! `AWS_LAMBDA_LOG_FORMAT` (`JSON` → JSON lines, `Text` → plain text lines).
//! An unknown value is ignored (the `RUST_LOG` level, JSON lines).
//!
//! Dependencies are capped at `info` whatever `RUST_LOG` says: at `trace`,
//! `lambda_runtime` logs every raw event (with its `Authorization` header)
//! and hyper/reqwest log request details. `RUST_LOG=certbound=debug` (or
//! `trace`) is safe: certbound itself never logs a token, a secret or a PEM
//! body at any level.

use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    #[default]
    Json,
    /// Plain text lines (`AWS_LAMBDA_LOG_FORMAT=Text`).
    Text,
}

/// The level `AWS_LAMBDA_LOG_LEVEL` names, in any case; `None` for
/// anything else.
pub fn lambda_level(value: &str) -> Option<LevelFilter> {
    Some(match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => return None,
    })
}

/// The filter and format the environment asks for:
/// `AWS_LAMBDA_LOG_LEVEL` before `RUST_LOG`, `AWS_LAMBDA_LOG_FORMAT`
/// before the JSON default. Dependencies stay capped by
/// [`dependency_cap`] whatever these say.
pub fn settings(
    rust_log: Option<&str>,
    lambda_log_level: Option<&str>,
    lambda_log_format: Option<&str>,
) -> (Targets, LogFormat) {
    let filter = match lambda_log_level.and_then(lambda_level) {
        Some(level) => Targets::new().with_default(level),
        None => from_env(rust_log),
    };
    let format = match lambda_log_format.map(|f| f.trim().to_ascii_lowercase()) {
        Some(f) if f == "text" => LogFormat::Text,
        _ => LogFormat::Json,
    };
    (filter, format)
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let var = |name: &str| std::env::var(name).ok();
    let (filter, format) = settings(
        var("RUST_LOG").as_deref(),
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("AWS_LAMBDA_LOG_FORMAT").as_deref(),
    );
    let filter = filter.and(dependency_cap());
    let layer: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(true)
                .with_writer(std::io::stderr)
                .with_filter(filter),
        ),
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt::layer()
                .with_target(true)
                .with_writer(std::io::stderr)
                .with_filter(filter),
        ),
    };
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

    #[test]
    fn lambda_advanced_logging_controls_win_over_rust_log() {
        // Unset: RUST_LOG and JSON, as before.
        let (f, format) = settings(Some("debug"), None, None);
        assert!(f.would_enable("certbound", &Level::DEBUG));
        assert_eq!(format, LogFormat::Json);
        // AWS_LAMBDA_LOG_LEVEL before RUST_LOG, both ways.
        let (f, _) = settings(Some("trace"), Some("WARN"), Some("JSON"));
        assert!(!f.would_enable("certbound::decision", &Level::INFO));
        assert!(f.would_enable("certbound::decision", &Level::WARN));
        let (f, _) = settings(Some("error"), Some("debug"), None);
        assert!(f.would_enable("certbound::cache", &Level::DEBUG));
        assert!(!f.would_enable("certbound::cache", &Level::TRACE));
        let (f, _) = settings(None, Some("FATAL"), None);
        assert!(f.would_enable("certbound", &Level::ERROR));
        assert!(!f.would_enable("certbound", &Level::WARN));
        let (f, _) = settings(None, Some("TRACE"), None);
        assert!(f.would_enable("certbound::x", &Level::TRACE));
        // An unknown level: RUST_LOG still applies.
        let (f, _) = settings(Some("warn"), Some("LOUD"), None);
        assert!(!f.would_enable("certbound", &Level::INFO));
        // Format.
        assert_eq!(settings(None, None, Some("Text")).1, LogFormat::Text);
        assert_eq!(settings(None, None, Some("text")).1, LogFormat::Text);
        assert_eq!(settings(None, None, Some("JSON")).1, LogFormat::Json);
        assert_eq!(settings(None, None, Some("xml")).1, LogFormat::Json);
    }
}
