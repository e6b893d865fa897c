//! The one HTTP client a process uses for introspection (rustls, keep-alive,
//! timeouts), and the mapping of transport failures to
//! [`IntrospectionError`].

use std::sync::Once;
use std::time::Duration;

use super::IntrospectionError;

/// Largest introspection answer we read (bytes).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Transport settings shared by the HTTP backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (connect, send, read).
    pub timeout: Duration,
    /// Extra PEM CA bundle to trust (an AS behind a private CA).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(1000),
            timeout: Duration::from_millis(3000),
            ca_file: None,
        }
    }
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The CA file could not be read or parsed.
    #[error("cannot use CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// reqwest refused the configuration.
    #[error("cannot build HTTP client: {0}")]
    Build(String),
}

/// Builds the process-wide client: rustls (ring), connection pooling,
/// no proxy from the environment, no redirects (an introspection endpoint
/// that redirects is misconfigured).
pub fn build_client(settings: &HttpSettings) -> Result<reqwest::Client, ClientBuildError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first: fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("certbound/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let ca_err = |reason: String| ClientBuildError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in file".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ClientBuildError::Build(e.to_string()))
}

/// Maps a reqwest failure to the error kinds we report.
pub fn map_error(e: reqwest::Error) -> IntrospectionError {
    if e.is_timeout() {
        IntrospectionError::Timeout
    } else if e.is_connect() {
        IntrospectionError::Connect(root_cause(&e))
    } else {
        IntrospectionError::Transport(root_cause(&e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Sends a request and reads a 2xx JSON body (bounded in size).
pub async fn send_for_json(
    request: reqwest::RequestBuilder,
) -> Result<serde_json::Value, IntrospectionError> {
    let mut response = request.send().await.map_err(map_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(IntrospectionError::Status {
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(IntrospectionError::InvalidResponse(format!(
                "body larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| IntrospectionError::InvalidResponse(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(IntrospectionError::InvalidResponse(
            "JSON is not an object".into(),
        ));
    }
    Ok(value)
}
