//! The one HTTP client a process uses to reach authorization servers and
//! the secrets extension: rustls (ring), keep-alive, timeouts, an optional
//! private CA, no redirects, no proxy from the environment, bounded bodies.
//!
//! Trust: the Mozilla root set compiled in (`webpki-roots`) plus
//! `CERTBOUND_INTROSPECTION_CA_FILE` — never the host's store, which is
//! both host-dependent and slow to read at every cold start (hundreds of
//! files under `/etc/ssl/certs`).

use std::sync::{Arc, Once};
use std::time::Duration;

/// Largest JSON answer read from a server (bytes).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Transport settings shared by every HTTP backend.
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
#[non_exhaustive]
pub enum ClientBuildError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    CaFileRead {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("CA file {path} is not a PEM bundle of CA certificates: {reason}")]
    CaFileContent {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest refused the configuration.
    #[error("cannot build HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// The TLS configuration could not be built.
    #[error("cannot configure TLS: {0}")]
    Tls(String),
}

/// A transport failure with its source chain kept. Cloneable, and compared
/// by its message (tests).
#[derive(Debug, Clone)]
pub struct TransportError(Arc<reqwest::Error>);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The root cause says what happened (refused, reset, certificate);
        // reqwest's own message repeats the URL.
        let mut cur: &(dyn std::error::Error + 'static) = self.0.as_ref();
        while let Some(next) = cur.source() {
            cur = next;
        }
        write!(f, "{cur}")
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Why a JSON fetch failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The call did not complete in time.
    #[error("timed out")]
    Timeout,
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(#[source] TransportError),
    /// A non-2xx status (redirects are not followed).
    #[error("HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The body is larger than allowed.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not a JSON object.
    #[error("{0}")]
    NotJson(String),
    /// Any other failure (reset, TLS, protocol).
    #[error("{0}")]
    Transport(#[source] TransportError),
}

/// Builds the process-wide client: rustls (ring), connection pooling,
/// no proxy from the environment, no redirects (an endpoint that redirects
/// is misconfigured, and credentials must not follow it elsewhere).
pub fn build_client(settings: &HttpSettings) -> Result<reqwest::Client, ClientBuildError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first: fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &settings.ca_file {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClientBuildError::CaFileRead {
            path: shown.clone(),
            source,
        })?;
        let blocks = pem::parse_many(&pem).map_err(|e| ClientBuildError::CaFileContent {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let (added, ignored) = roots.add_parsable_certificates(
            blocks
                .into_iter()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(|p| rustls::pki_types::CertificateDer::from(p.into_contents())),
        );
        if added == 0 || ignored > 0 {
            return Err(ClientBuildError::CaFileContent {
                path: shown,
                reason: format!("{added} usable CA certificates, {ignored} unusable"),
            });
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientBuildError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("certbound/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(ClientBuildError::Build)
}

/// Maps a reqwest failure to what we report.
pub fn map_error(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_connect() {
        FetchError::Connect(TransportError(Arc::new(e)))
    } else {
        FetchError::Transport(TransportError(Arc::new(e)))
    }
}

/// Sends a request and reads a 2xx JSON object (at most `limit` bytes).
pub async fn send_for_json(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<serde_json::Value, FetchError> {
    let response = request.send().await.map_err(map_error)?;
    read_json(response, limit).await
}

/// Reads a 2xx JSON object (at most `limit` bytes) from a response.
pub async fn read_json(
    response: reqwest::Response,
    limit: usize,
) -> Result<serde_json::Value, FetchError> {
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status {
            status: status.as_u16(),
        });
    }
    read_json_body(response, limit).await
}

/// Reads a JSON object (at most `limit` bytes), whatever the status.
pub async fn read_json_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<serde_json::Value, FetchError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FetchError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_error)? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| FetchError::NotJson(format!("not JSON ({})", json_error_kind(&e))))?;
    if !value.is_object() {
        return Err(FetchError::NotJson("JSON is not an object".into()));
    }
    Ok(value)
}

/// A serde_json error's category: its message may quote the input.
pub fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong types",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

/// Where and what went wrong deserializing JSON, without the offending value
/// (serde's messages may quote it: a token, a secret): `at `a.b`: wrong types`.
pub fn describe_json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = e.inner().to_string();
    // "missing field `x`" holds no value.
    let what = if inner.starts_with("missing field") {
        inner.split(" at line").next().unwrap_or("").to_owned()
    } else {
        json_error_kind(e.inner()).to_owned()
    };
    format!("at `{}`: {what}", e.path())
}
