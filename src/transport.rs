//! The one HTTP client a process uses to reach authorization servers and
//! the secrets extension: rustls (ring), keep-alive, timeouts, an optional
//! private CA, no redirects, no proxy from the environment, bounded bodies,
//! and failures named precisely ([`Failure`]) and alike for every backend.
//!
//! Trust: the Mozilla root set compiled in (`webpki-roots`) plus
//! `CERTBOUND_INTROSPECTION_CA_FILE` — never the host's store, which is
//! both host-dependent and slow to read at every cold start (hundreds of
//! files under `/etc/ssl/certs`).
//!
//! **Kept-alive connections the AS closed.** An AS closes idle connections
//! at its own keep-alive timeout. A pooled connection whose close has
//! reached this host's kernel, but not yet the async runtime (a busy or
//! just-thawed process), used to be written to, and the call failed
//! (`connection closed before message completed`, 500). Here every socket
//! read that the runtime would leave pending asks the kernel itself
//! ([`FreshRead`]): the connection is seen closed *before* the request is
//! handed to it, and hyper's pool sends the request on a new connection —
//! exactly once, and only because not a byte of it was written. A request
//! that was written is never sent again, whatever happens next (the AS may
//! have acted on it): that failure is reported as
//! [`Failure::ClosedBeforeAnswer`]. An AS that announces its keep-alive
//! timeout (`Keep-Alive: timeout=N`, as Node's HTTP server does: `timeout=5`)
//! never races a reuse either: a connection idle for `N − 1` s is retired
//! the same way, before a request is handed to it.
//!
//! Requests are built with reqwest's builder ([`HttpClient::get`],
//! [`HttpClient::post`]) and sent with [`HttpClient::send`] (or
//! [`HttpClient::send_for_json`]), which enforce the deadline phase by phase.
//! Sending a builder with its own `send()` uses reqwest's pool instead (fine
//! for tests and the secrets extension, not for calls to the AS).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest JSON answer read from a server (bytes).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How long a kept-alive connection may wait in the pool. An AS that closes
/// idle connections sooner is handled by [`FreshRead`]; one that closes
/// them later never races this client.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// How much later than `CERTBOUND_TIMEOUT_MS` the core's own deadline on the
/// backend step fires: the transport's deadline (which knows the phase, hence
/// a precise reason) fires first; the core's is the backstop.
pub const DEADLINE_GRACE: Duration = Duration::from_millis(50);

type BoxError = Box<dyn StdError + Send + Sync>;

/// Transport settings shared by every HTTP backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (connect, send, read), for all the calls of one
    /// backend step together (JWT: metadata and JWKS).
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

/// What went wrong below HTTP, as one stable, specific phrase (the same on
/// every backend). Never holds a URL, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// Nothing listens at the address (TCP RST to the SYN).
    ConnectRefused,
    /// No TCP + TLS connection within the connect timeout.
    ConnectTimeout {
        /// The connect timeout, milliseconds.
        ms: u128,
    },
    /// The host name does not resolve.
    Dns,
    /// The server's certificate does not chain to a trusted root.
    TlsUntrusted,
    /// The server's certificate is not valid for the host name.
    TlsWrongName,
    /// The server's certificate has expired or is not valid yet.
    TlsExpired,
    /// The server offers only TLS versions older than 1.2 (or no cipher
    /// in common): it refused or broke the handshake.
    TlsVersion(String),
    /// Any other TLS failure (rustls's own description).
    Tls(String),
    /// Connected and sent, but no answer within the deadline.
    NoAnswer {
        /// The step's timeout (`CERTBOUND_TIMEOUT_MS`), milliseconds.
        ms: u128,
    },
    /// The answer's head came, its body did not finish within the deadline.
    BodyTimeout {
        /// The step's timeout (`CERTBOUND_TIMEOUT_MS`), milliseconds.
        ms: u128,
    },
    /// The AS closed the connection after the request was written and
    /// before any answer: it may have received the request, which is
    /// therefore not sent again.
    ClosedBeforeAnswer,
    /// The AS closed the connection in the middle of the answer's body.
    ClosedMidBody,
    /// The AS reset the connection.
    Reset,
    /// What came back is not HTTP/1.1.
    NotHttp,
    /// Anything else (the innermost cause, which holds no secret).
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ConnectRefused => f.write_str("connect refused"),
            Failure::ConnectTimeout { ms } => write!(f, "connect timeout (no connection within {ms} ms)"),
            Failure::Dns => f.write_str("cannot resolve the host name"),
            Failure::TlsUntrusted => f.write_str("TLS: certificate not trusted (unknown issuer)"),
            Failure::TlsWrongName => f.write_str("TLS: certificate not valid for the host name"),
            Failure::TlsExpired => f.write_str("TLS: certificate expired or not yet valid"),
            Failure::TlsVersion(what) => write!(
                f,
                "TLS: handshake refused, the server offers no TLS 1.2/1.3 ({what})"
            ),
            Failure::Tls(what) => write!(f, "TLS: {what}"),
            Failure::NoAnswer { ms } => write!(f, "read timeout: no answer within {ms} ms"),
            Failure::BodyTimeout { ms } => {
                write!(f, "read timeout mid-body: answer incomplete after {ms} ms")
            }
            Failure::ClosedBeforeAnswer => f.write_str(
                "connection closed by the AS before an answer (not retried: the AS may have received the request)",
            ),
            Failure::ClosedMidBody => f.write_str("connection closed by the AS mid-body"),
            Failure::Reset => f.write_str("connection reset by the AS"),
            Failure::NotHttp => f.write_str("the answer is not HTTP/1.1"),
            Failure::Other(what) => f.write_str(what),
        }
    }
}

/// A transport failure: what happened ([`Failure`]) and, when there is one,
/// the underlying error (its chain kept as `source`). Cloneable, compared by
/// [`Failure`].
#[derive(Debug, Clone)]
pub struct TransportError {
    failure: Failure,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl TransportError {
    /// A failure without an underlying error (a deadline).
    pub fn new(failure: Failure) -> Self {
        Self {
            failure,
            source: None,
        }
    }

    fn caused_by(failure: Failure, source: BoxError) -> Self {
        Self {
            failure,
            source: Some(Arc::from(source)),
        }
    }

    /// What happened.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// A short, stable name for logs and the context: `connect`, `tls`,
    /// `timeout`, `closed`, `reset`, `transport`.
    pub fn kind(&self) -> &'static str {
        match self.failure {
            Failure::ConnectRefused | Failure::ConnectTimeout { .. } | Failure::Dns => "connect",
            Failure::TlsUntrusted
            | Failure::TlsWrongName
            | Failure::TlsExpired
            | Failure::TlsVersion(_)
            | Failure::Tls(_) => "tls",
            Failure::NoAnswer { .. } | Failure::BodyTimeout { .. } => "timeout",
            Failure::ClosedBeforeAnswer | Failure::ClosedMidBody => "closed",
            Failure::Reset => "reset",
            Failure::NotHttp | Failure::Other(_) => "transport",
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.failure.fmt(f)
    }
}

impl StdError for TransportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.failure == other.failure
    }
}

/// Why a JSON fetch failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No connection: refused, connect timeout, name resolution, TLS.
    #[error("{0}")]
    Connect(#[source] TransportError),
    /// Connected, but no complete answer: read timeouts, reset, closed.
    #[error("{0}")]
    Transport(#[source] TransportError),
    /// A non-2xx status (redirects are not followed).
    #[error("{}", describe_status(.status))]
    Status {
        /// The status code.
        status: u16,
    },
    /// The body is larger than allowed.
    #[error("body larger than the limit ({limit} bytes)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not a JSON object, or not the one expected.
    #[error("{0}")]
    NotJson(String),
}

/// `HTTP 503 (server error)`, `HTTP 302 (redirects are not followed)`, …:
/// the status and what it means for certbound.
pub fn describe_status(status: &u16) -> String {
    let meaning = match status {
        300..=399 => "redirects are not followed",
        401 => "credentials refused",
        403 => "caller refused",
        404 => "no such endpoint",
        429 => "rate limited",
        400..=499 => "request refused",
        500..=599 => "server error",
        _ => "not a success",
    };
    format!("HTTP {status} ({meaning})")
}

/// Builds the process-wide client: rustls (ring), connection pooling,
/// no proxy from the environment, no redirects (an endpoint that redirects
/// is misconfigured, and credentials must not follow it elsewhere).
pub fn build_client(settings: &HttpSettings) -> Result<HttpClient, ClientBuildError> {
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
    let builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(USER_AGENT)
        .tls_backend_preconfigured(tls.clone())
        .build()
        .map_err(ClientBuildError::Build)?;

    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(Duration::from_secs(30)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(FreshConnector(tcp));
    let connector = TimedConnector {
        inner: https,
        timeout: settings.connect_timeout,
    };
    let sender = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // A request handed to a pooled connection found closed before a byte
        // was written goes out again on a new connection (the default,
        // stated: this is what makes a kept-alive connection closed by the
        // AS harmless).
        .retry_canceled_requests(true)
        .build(connector);
    Ok(HttpClient {
        builder,
        sender,
        timeout: settings.timeout,
        connect_timeout: settings.connect_timeout,
    })
}

const USER_AGENT: &str = concat!("certbound/", env!("CARGO_PKG_VERSION"));

type Sender = hyper_util::client::legacy::Client<TimedConnector, Full<Bytes>>;

/// The process-wide HTTP client (cheap to clone: one pool).
#[derive(Clone)]
pub struct HttpClient {
    builder: reqwest::Client,
    sender: Sender,
    timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A `GET` to build (then [`HttpClient::send`] it).
    pub fn get<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.builder.get(url)
    }

    /// A `POST` to build (then [`HttpClient::send`] it).
    pub fn post<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.builder.post(url)
    }

    /// The whole-step timeout (`CERTBOUND_TIMEOUT_MS`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends a request; the answer's head must come, and its body be read,
    /// within the timeout.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, FetchError> {
        self.send_by(request, Instant::now() + self.timeout).await
    }

    /// Sends a request whose head and body must be had by `deadline` (one
    /// deadline for several calls of one step).
    pub async fn send_by(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<Reply, FetchError> {
        let unbuildable = |e: BoxError| {
            FetchError::Transport(TransportError::caused_by(
                Failure::Other("the request cannot be built".into()),
                e,
            ))
        };
        let mut request = request.build().map_err(|e| unbuildable(Box::new(e)))?;
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        let mut http = http::Request::builder()
            .method(request.method().clone())
            .uri(request.url().as_str())
            .body(Full::new(body))
            .map_err(|e| unbuildable(Box::new(e)))?;
        // Moved, not copied: the reqwest request is only the builder.
        *http.headers_mut() = std::mem::take(request.headers_mut());
        http.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(USER_AGENT));
        let response = match tokio::time::timeout_at(deadline, self.sender.request(http)).await {
            Err(_) => {
                return Err(FetchError::Transport(TransportError::new(
                    Failure::NoAnswer {
                        ms: self.timeout.as_millis(),
                    },
                )))
            }
            Ok(Err(e)) => return Err(classify(Box::new(e), self.connect_timeout, Phase::Head)),
            Ok(Ok(response)) => response,
        };
        let (parts, body) = response.into_parts();
        // The AS's announced keep-alive timeout, for when the body is read.
        let keep_alive = match (
            parts.extensions.get::<ConnHandle>(),
            announced_keep_alive(&parts.headers),
        ) {
            (Some(conn), Some(limit)) => Some((conn.clone(), conn.0.writes(), limit)),
            _ => None,
        };
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            deadline,
            budget_ms: self.timeout.as_millis(),
            keep_alive,
        })
    }

    /// Sends a request and reads a 2xx JSON object (at most `limit` bytes).
    pub async fn send_for_json(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<serde_json::Value, FetchError> {
        self.send(request).await?.json(limit).await
    }
}

/// An answer whose head has come; its body is read with [`Reply::json`].
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: http::StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    body: Incoming,
    deadline: Instant,
    budget_ms: u128,
    /// The connection, its write count when the head came, and how long it
    /// may then stay idle (from the AS's `Keep-Alive: timeout=N`).
    keep_alive: Option<(ConnHandle, u64, Duration)>,
}

impl Reply {
    /// A 2xx JSON object (at most `limit` bytes).
    pub async fn json(self, limit: usize) -> Result<serde_json::Value, FetchError> {
        if !self.status.is_success() {
            return Err(FetchError::Status {
                status: self.status.as_u16(),
            });
        }
        self.json_body(limit).await
    }

    /// A JSON object (at most `limit` bytes), whatever the status.
    pub async fn json_body(self, limit: usize) -> Result<serde_json::Value, FetchError> {
        let body = self.bytes(limit).await?;
        parse_json_object(&body)
    }

    /// The body (at most `limit` bytes), by the deadline.
    pub async fn bytes(mut self, limit: usize) -> Result<Vec<u8>, FetchError> {
        let declared = self
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut body = Vec::new();
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => {
                    return Err(FetchError::Transport(TransportError::new(
                        Failure::BodyTimeout { ms: self.budget_ms },
                    )))
                }
                Ok(None) => {
                    if let Some((conn, writes, limit)) = &self.keep_alive {
                        conn.0
                            .idle_from(*writes, std::time::Instant::now() + *limit);
                    }
                    return Ok(body);
                }
                Ok(Some(Err(e))) => return Err(classify(Box::new(e), Duration::ZERO, Phase::Body)),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                body.extend_from_slice(&data);
            }
        }
    }
}

/// `Keep-Alive: timeout=N` → how long this client may leave the connection
/// idle: `N − 1` s (undici's margin), so that a reuse never races the AS's
/// own close.
fn announced_keep_alive(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("keep-alive")?.to_str().ok()?;
    let seconds = value.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("timeout")
            .then(|| v.trim().parse::<u64>().ok())
            .flatten()
    })?;
    Some(Duration::from_secs(seconds.saturating_sub(1)))
}

/// Parses a JSON object: `empty body`, `body is not JSON (syntax error)`,
/// `JSON nested too deeply`, `JSON is not an object` — never the content.
pub fn parse_json_object(body: &[u8]) -> Result<serde_json::Value, FetchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(FetchError::NotJson("empty body".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            FetchError::NotJson("JSON nested too deeply".into())
        } else {
            FetchError::NotJson(format!("body is not JSON ({})", json_error_kind(&e)))
        }
    })?;
    if !value.is_object() {
        return Err(FetchError::NotJson("JSON is not an object".into()));
    }
    Ok(value)
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Head,
    Body,
}

/// The errors of a chain, looking inside `io::Error`s (whose `source()`
/// skips the error they wrap).
fn chain<'a>(top: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut cur = Some(top);
    while let Some(e) = cur {
        out.push(e);
        if out.len() > 32 {
            break;
        }
        cur = match e.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// Names a failure of the hyper client.
fn classify(e: BoxError, connect_timeout: Duration, phase: Phase) -> FetchError {
    let failure = failure_of(&*e, connect_timeout, phase);
    let connecting = chain(&*e).iter().any(|x| {
        x.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|h| h.is_connect())
            || x.is::<ConnectTimedOut>()
    });
    let error = TransportError::caused_by(failure, e);
    if connecting || error.kind() == "tls" {
        FetchError::Connect(error)
    } else {
        FetchError::Transport(error)
    }
}

fn failure_of(e: &(dyn StdError + 'static), connect_timeout: Duration, phase: Phase) -> Failure {
    let errors = chain(e);
    if errors.iter().any(|x| x.is::<ConnectTimedOut>()) {
        return Failure::ConnectTimeout {
            ms: connect_timeout.as_millis(),
        };
    }
    for x in &errors {
        if let Some(tls) = x.downcast_ref::<rustls::Error>() {
            return tls_failure(tls);
        }
    }
    for x in &errors {
        if let Some(io) = x.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Failure::ConnectRefused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => return Failure::Reset,
                io::ErrorKind::UnexpectedEof => {
                    return if phase == Phase::Body {
                        Failure::ClosedMidBody
                    } else {
                        Failure::ClosedBeforeAnswer
                    }
                }
                io::ErrorKind::TimedOut => {
                    return Failure::ConnectTimeout {
                        ms: connect_timeout.as_millis(),
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = x.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return if phase == Phase::Body {
                    Failure::ClosedMidBody
                } else {
                    Failure::ClosedBeforeAnswer
                };
            }
            if h.is_parse() || h.is_parse_status() {
                return Failure::NotHttp;
            }
        }
    }
    let root = errors.last().map(ToString::to_string).unwrap_or_default();
    if root.contains("dns error") || root.contains("failed to lookup address") {
        return Failure::Dns;
    }
    Failure::Other(root)
}

fn tls_failure(e: &rustls::Error) -> Failure {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => Failure::TlsUntrusted,
            C::NotValidForName | C::NotValidForNameContext { .. } => Failure::TlsWrongName,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => Failure::TlsExpired,
            other => Failure::Tls(format!("certificate rejected ({other:?})")),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            rustls::AlertDescription::ProtocolVersion
            | rustls::AlertDescription::HandshakeFailure
            | rustls::AlertDescription::InsufficientSecurity => {
                Failure::TlsVersion(format!("{alert:?} alert"))
            }
            other => Failure::Tls(format!("the server sent a {other:?} alert")),
        },
        rustls::Error::PeerIncompatible(why) => Failure::TlsVersion(format!("{why:?}")),
        rustls::Error::InvalidMessage(_) => {
            Failure::Tls("not a TLS server (invalid message)".into())
        }
        other => Failure::Tls(other.to_string()),
    }
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

/// The connect timeout fired (TCP and TLS together).
#[derive(Debug)]
struct ConnectTimedOut;

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connect timeout")
    }
}

impl StdError for ConnectTimedOut {}

/// TCP connections whose reads ask the kernel when the runtime has nothing.
#[derive(Clone)]
struct FreshConnector(HttpConnector);

impl tower_service::Service<Uri> for FreshConnector {
    type Response = FreshIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<FreshIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let state = Arc::new(ConnState::default());
            Ok(FreshIo(
                TokioIo::new(FreshRead {
                    tcp,
                    state: state.clone(),
                }),
                ConnHandle(state),
            ))
        })
    }
}

/// The connector with one timeout over TCP and TLS.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<FreshConnector>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for TimedConnector {
    type Response = MaybeHttpsStream<FreshIo>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

/// What the transport knows of one connection, shared with its
/// [`FreshRead`]: how many writes it has seen, and after when it must be
/// retired if no write came since (the AS's keep-alive timeout).
#[derive(Default)]
struct ConnState {
    writes: AtomicU64,
    retire: Mutex<Option<(u64, std::time::Instant)>>,
}

impl ConnState {
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// The exchange that had seen `writes` writes is over: retire the
    /// connection at `at` unless another request is written before.
    fn idle_from(&self, writes: u64, at: std::time::Instant) {
        *self.retire.lock().unwrap_or_else(|e| e.into_inner()) = Some((writes, at));
    }

    /// Idle (no write since the last exchange) past the AS's timeout.
    fn retired(&self) -> bool {
        let retire = *self.retire.lock().unwrap_or_else(|e| e.into_inner());
        retire
            .is_some_and(|(writes, at)| writes == self.writes() && std::time::Instant::now() >= at)
    }
}

/// Hands the connection's [`ConnState`] to the transport (through the
/// answer's extensions).
#[derive(Clone)]
struct ConnHandle(Arc<ConnState>);

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("writes", &self.0.writes())
            .finish_non_exhaustive()
    }
}

/// A TCP stream whose reads, when the runtime has no readiness recorded,
/// still ask the kernel (one non-blocking `recv`): a FIN or RST that has
/// arrived but that the runtime has not processed yet is seen at once. hyper
/// reads before it writes a request on a pooled connection, so a connection
/// the AS has closed is found closed before the request is handed to it, and
/// the pool retries on a new connection. Cost: one `recv` returning
/// `EAGAIN` each time a read would wait. A connection idle past the AS's
/// announced keep-alive timeout reads as closed the same way.
struct FreshRead {
    tcp: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for FreshRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.retired() {
            // As if the AS had closed it: hyper drops the connection, and a
            // request not yet written goes to another one.
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Pending => {}
            ready => return ready,
        }
        // The waker is registered; ask the kernel directly.
        let socket = socket2::SockRef::from(&this.tcp);
        let mut reader: &socket2::Socket = &socket;
        let unfilled = buf.initialize_unfilled();
        match io::Read::read(&mut reader, unfilled) {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for FreshRead {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.count(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.count(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl FreshRead {
    fn count(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.state.writes.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// [`FreshRead`] for hyper, with its connection's state.
struct FreshIo(TokioIo<FreshRead>, ConnHandle);

impl Connection for FreshIo {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.1.clone())
    }
}

impl hyper::rt::Read for FreshIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for FreshIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_described_without_their_content() {
        let e = |b: &[u8]| parse_json_object(b).unwrap_err().to_string();
        assert_eq!(e(b""), "empty body");
        assert_eq!(e(b" \n"), "empty body");
        assert_eq!(
            e(b"<html>secret-value</html>"),
            "body is not JSON (syntax error)"
        );
        assert_eq!(e(b"[1]"), "JSON is not an object");
        let deep = [
            &b"{\"a\":"[..],
            &b"[".repeat(1000),
            &b"]".repeat(1000),
            b"}",
        ]
        .concat();
        assert_eq!(e(&deep), "JSON nested too deeply");
        assert!(parse_json_object(b"{\"active\":true}").is_ok());
    }

    #[test]
    fn the_announced_keep_alive_timeout_less_a_second() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert("keep-alive", v.parse().unwrap());
            announced_keep_alive(&m)
        };
        assert_eq!(h("timeout=5, max=1000"), Some(Duration::from_secs(4)));
        assert_eq!(h("max=1000, Timeout = 75"), Some(Duration::from_secs(74)));
        assert_eq!(h("timeout=1"), Some(Duration::ZERO));
        assert_eq!(h("timeout=soon"), None);
        assert_eq!(h("max=5"), None);
        assert_eq!(announced_keep_alive(&http::HeaderMap::new()), None);
    }

    #[test]
    fn tls_failures_are_named() {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        let cases = [
            (
                E::InvalidCertificate(C::UnknownIssuer),
                "TLS: certificate not trusted (unknown issuer)",
            ),
            (
                E::InvalidCertificate(C::NotValidForName),
                "TLS: certificate not valid for the host name",
            ),
            (
                E::InvalidCertificate(C::Expired),
                "TLS: certificate expired or not yet valid",
            ),
            (
                E::AlertReceived(A::ProtocolVersion),
                "TLS: handshake refused, the server offers no TLS 1.2/1.3 (ProtocolVersion alert)",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(tls_failure(&e).to_string(), want);
            // Found through the io::Error layers hyper-rustls wraps it in.
            let wrapped = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, e));
            let f = failure_of(&wrapped, Duration::from_millis(5), Phase::Head);
            assert_eq!(f.to_string(), want);
        }
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            failure_of(&refused, Duration::ZERO, Phase::Head),
            Failure::ConnectRefused
        );
        let timed_out: BoxError = Box::new(ConnectTimedOut);
        assert_eq!(
            classify(timed_out, Duration::from_millis(300), Phase::Head).to_string(),
            "connect timeout (no connection within 300 ms)"
        );
    }

    #[test]
    fn statuses_say_what_they_mean_for_certbound() {
        assert_eq!(
            describe_status(&302),
            "HTTP 302 (redirects are not followed)"
        );
        assert_eq!(describe_status(&401), "HTTP 401 (credentials refused)");
        assert_eq!(describe_status(&403), "HTTP 403 (caller refused)");
        assert_eq!(describe_status(&503), "HTTP 503 (server error)");
    }
}
