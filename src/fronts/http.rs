//! HTTP auth front (`certbound serve`): the same core behind an endpoint for
//! nginx `auth_request`, Traefik `forwardAuth` or Envoy `ext_authz` (HTTP
//! service).
//!
//! - **original method and URI** (`CERTBOUND_PROXY`): nginx
//!   `X-Original-Method` / `X-Original-URI`; Traefik `X-Forwarded-Method` /
//!   `X-Forwarded-Uri`; Envoy: the request's own method and path minus
//!   `CERTBOUND_PATH_PREFIX`. Missing or repeated → refused (500,
//!   `event_invalid`), never "no scope";
//! - **client certificate**: the configured trusted header, in the
//!   configured format (`CERTBOUND_CERT_FORMAT`), which the proxy in front
//!   MUST overwrite; sent twice → refused;
//! - **answer**: 200 with the context as `X-Certbound-*` headers; 401 (no or
//!   bad token, `auth_request` passes only 401/403 through) or 403 with
//!   `WWW-Authenticate` and `X-Certbound-Reason`; 500 when the backend
//!   failed or the request is not understood;
//! - **health**: `GET /healthz`, which cannot collide with a protected path
//!   (nginx and Traefik name the protected path in headers; under Envoy
//!   every authorization request starts with the path prefix).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::authorizer::{authorize, Authorizer};
use crate::backends::Action;
use crate::cert::CertError;
use crate::config::{ProxyKind, ServeConfig, ServeLimits};
use crate::request::{
    credentials_from_headers, htu, single_header, AuthRequest, HeaderError, Headers, PresentedCert,
    Source,
};
use crate::verdict::{Reason, Verdict};

/// Prefix of the response headers that carry the context.
pub const CONTEXT_HEADER_PREFIX: &str = "x-certbound-";

/// The health path.
pub const HEALTH_PATH: &str = "/healthz";

struct Front {
    authorizer: Arc<dyn Authorizer>,
    serve: ServeConfig,
}

/// The router: `GET /healthz`, and authorization for everything else
/// (under Envoy: for paths under the prefix only).
pub fn router(authorizer: Arc<dyn Authorizer>, serve: ServeConfig) -> Router {
    let front = Arc::new(Front { authorizer, serve });
    Router::new().fallback(handle).with_state(front)
}

/// Why a proxied request could not be understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A header the configured proxy must send is missing, repeated or not text.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The original method is not an HTTP method token.
    #[error("the original method is not an HTTP method")]
    Method,
}

/// Reads the authorization question from the forwarded request.
pub fn to_auth_request(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    serve: &ServeConfig,
) -> Result<AuthRequest, RequestError> {
    let (method, uri) = match serve.proxy.original_headers() {
        Some((method_header, uri_header)) => {
            let required = |name: &str| {
                single_header(headers, name)?.ok_or_else(|| HeaderError::Missing(name.to_owned()))
            };
            (required(method_header)?, required(uri_header)?)
        }
        None => {
            let prefix = serve.path_prefix.as_deref().unwrap_or("");
            let rest = path_and_query
                .strip_prefix(prefix)
                .unwrap_or(path_and_query);
            let rest = if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_owned()
            };
            (method.as_str().to_owned(), rest)
        }
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(RequestError::Method);
    }
    let method = method.to_ascii_uppercase();
    let mut r = AuthRequest::new(Source::Http, &method, &uri, "");
    r.resource = format!("{method} {}", if r.path.is_empty() { "-" } else { &r.path });
    r.credentials = credentials_from_headers(&[headers]);
    r.dpop_proof = single_header(headers, "dpop")?;
    let certs: Vec<&HeaderValue> = headers.get_all(&serve.cert_header).iter().collect();
    r.client_cert = match certs.as_slice() {
        [] => PresentedCert::Absent,
        [one] => match one.to_str() {
            Ok(text) => PresentedCert::from_format(serve.cert_format, Some(text)),
            Err(_) => PresentedCert::Invalid(CertError::UrlEncoding),
        },
        _ => PresentedCert::Invalid(CertError::Repeated),
    };
    let host = match single_header(headers, "x-forwarded-host")? {
        Some(h) => Some(h),
        None => single_header(headers, "host")?,
    };
    r.htu = htu(host.as_deref(), &r.path);
    r.headers = Headers::new(headers.clone());
    Ok(r)
}

/// Whether an Envoy request path is under the prefix (segment-aware).
fn under_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

async fn handle(State(front): State<Arc<Front>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let authz = match (&front.serve.proxy, &front.serve.path_prefix) {
        (ProxyKind::Envoy, Some(prefix)) => under_prefix(path_and_query, prefix),
        _ => parts.uri.path() != HEALTH_PATH,
    };
    if !authz {
        return if parts.uri.path() == HEALTH_PATH && parts.method == Method::GET {
            (StatusCode::OK, "ok\n").into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        };
    }
    match to_auth_request(&parts.method, path_and_query, &parts.headers, &front.serve) {
        Ok(auth_request) => {
            let verdict = authorize(front.authorizer.as_ref(), &auth_request).await;
            to_response(&verdict)
        }
        Err(e) => {
            crate::telemetry::decision(
                crate::verdict::Decision::InternalServerError,
                Some(Reason::EventInvalid),
            );
            tracing::warn!(
                target: "certbound::decision",
                verdict = "InternalServerError",
                reason = Reason::EventInvalid.as_str(),
                error = %e,
                "request not understood"
            );
            let mut headers = HeaderMap::new();
            headers.insert(
                HeaderName::from_static("x-certbound-reason"),
                HeaderValue::from_static("event_invalid"),
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                headers,
                format!("REQUEST_NOT_UNDERSTOOD: {e}\n"),
            )
                .into_response()
        }
    }
}

/// The HTTP status for a verdict: by action, whatever the policy setting.
pub fn status(verdict: &Verdict) -> StatusCode {
    if verdict.reason == Some(Reason::Overloaded) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match verdict.action {
        Some(Action::Ok) => StatusCode::OK,
        Some(Action::BadRequest | Action::Unauthorized) => StatusCode::UNAUTHORIZED,
        Some(Action::Forbidden) => StatusCode::FORBIDDEN,
        Some(Action::InternalServerError) | None => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Status, `WWW-Authenticate` (from the verdict, not from the hook-editable
/// context), `X-Certbound-Reason`, `DPoP-Nonce` and `X-Certbound-*` headers.
pub fn to_response(verdict: &Verdict) -> Response {
    let status = status(verdict);
    let mut headers = HeaderMap::new();
    if status == StatusCode::OK {
        for (key, value) in &verdict.context {
            if key.starts_with("introspection_") {
                continue;
            }
            let name = format!(
                "{CONTEXT_HEADER_PREFIX}{}",
                key.to_ascii_lowercase().replace('_', "-")
            );
            if let (Ok(name), Some(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                header_value(&value.to_string()),
            ) {
                headers.insert(name, value);
            }
        }
    } else {
        if let Some(value) = verdict
            .challenge
            .as_ref()
            .and_then(|c| header_value(&c.to_string()))
        {
            headers.insert(axum::http::header::WWW_AUTHENTICATE, value);
        }
        if let Some(reason) = verdict.reason {
            headers.insert(
                HeaderName::from_static("x-certbound-reason"),
                HeaderValue::from_static(reason.as_str()),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
        }
    }
    if let Some(nonce) = verdict.dpop_nonce.as_deref().and_then(header_value) {
        headers.insert(HeaderName::from_static("dpop-nonce"), nonce);
    }
    let body = if status == StatusCode::OK {
        String::new()
    } else {
        // The action, not the Lambda decision: in policy mode a 401 is a "Deny".
        let action = match (verdict.action, verdict.reason) {
            (Some(a), _) => a.as_str(),
            (None, Some(Reason::Overloaded)) => "OVERLOADED",
            (None, _) => "INTROSPECTION_FAILED",
        };
        format!("{action}\n")
    };
    (status, headers, body).into_response()
}

fn header_value(v: &str) -> Option<HeaderValue> {
    let clean: String = v.chars().filter(|c| (' '..='~').contains(c)).collect();
    HeaderValue::from_str(&clean).ok()
}

/// The answer to a connection beyond `CERTBOUND_MAX_CONNECTIONS`: written
/// without reading anything, then the connection is closed.
const OVERLOADED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain\r\nx-certbound-reason: overloaded\r\nretry-after: 1\r\n\
connection: close\r\ncontent-length: 11\r\n\r\nOVERLOADED\n";

/// Connections the kernel may queue before `accept`.
const LISTEN_BACKLOG: u32 = 1024;

/// Serves until SIGTERM / Ctrl-C, then drains (see [`run`]).
pub async fn serve(
    authorizer: Arc<dyn Authorizer>,
    serve: ServeConfig,
    listen: SocketAddr,
) -> std::io::Result<()> {
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    // Tokio's `TcpListener::bind` uses a backlog of 128: a burst of new
    // connections then overflows it and clients wait a 1 s SYN
    // retransmission. The kernel caps this at `net.core.somaxconn`.
    let listener = socket.listen(LISTEN_BACKLOG)?;
    let limits = serve.limits;
    tracing::info!(
        listen = %listener.local_addr()?,
        proxy = ?serve.proxy,
        cert_format = %serve.cert_format,
        cert_header = %serve.cert_header,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        max_header_bytes = limits.max_header_bytes,
        max_connections = limits.max_connections,
        "certbound serve ready"
    );
    run(listener, router(authorizer, serve), limits, shutdown()).await;
    Ok(())
}

/// The accept loop, with the bounds of [`ServeLimits`]:
///
/// - each connection: HTTP/1.1, headers within `header_read_timeout`
///   (also the keep-alive idle timeout), at most `max_header_bytes` /
///   `max_headers` (431 beyond); a request body is never read (hyper
///   discards a small one and closes the connection on a large one);
/// - at most `max_connections` open: one more is answered 503
///   (`overloaded`) and closed at once, nothing queues in certbound;
/// - when `stop` completes: the listener closes (new connections are
///   refused), requests in flight finish (their connections then close,
///   idle ones close at once), for at most `shutdown_grace`.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let (mut refused, mut last_refusal_log) = (0u64, None);
    tokio::pin!(stop);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or memory: back off instead
                    // of spinning; the connections in the backlog wait.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            let _ = stream.try_write(OVERLOADED_RESPONSE);
            // One line a second at most, however hard the flood.
            refused += 1;
            if last_refusal_log
                .is_none_or(|t: std::time::Instant| t.elapsed() >= Duration::from_secs(1))
            {
                tracing::warn!(
                    reason = Reason::Overloaded.as_str(),
                    max_connections = limits.max_connections,
                    refused,
                    "connections refused: too many open connections"
                );
                refused = 0;
                last_refusal_log = Some(std::time::Instant::now());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open_now = limits.max_connections - open.available_permits();
    tracing::info!(
        connections = open_now,
        grace_s = limits.shutdown_grace.as_secs(),
        "stopping: no new connections; draining"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("stopped: all connections drained"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!(
            connections = limits.max_connections - open.available_permits(),
            "stopped: grace period over, connections dropped"
        ),
    }
}
/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
