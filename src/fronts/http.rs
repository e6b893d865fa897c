//! HTTP auth front (`certbound serve`): the same core behind an endpoint for
//! nginx `auth_request`, Traefik `forwardAuth` or Envoy `ext_authz` (HTTP).
//!
//! - method / path: `X-Original-Method` / `X-Original-URI` (else the
//!   request's own);
//! - client certificate: the configured trusted header (nginx
//!   `X-Ssl-Cert`, Envoy `X-Forwarded-Client-Cert`, RFC 9440 `Client-Cert`),
//!   which the proxy in front MUST overwrite;
//! - answer: 200 with the context as `X-Certbound-*` headers; 401 (no or
//!   bad token, `auth_request` passes only 401/403 through) or 403 with
//!   `WWW-Authenticate`; 500 when introspection failed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::authorizer::{authorize, Authorizer};
use crate::introspection::Action;
use crate::request::{
    credentials_from_headers, header_map, htu, single_header, AuthRequest, PresentedCert, Source,
};
use crate::verdict::Verdict;

/// Prefix of the response headers that carry the context.
pub const CONTEXT_HEADER_PREFIX: &str = "x-certbound-";

struct Front {
    authorizer: Arc<dyn Authorizer>,
    cert_header: HeaderName,
}

/// The router: `GET /healthz`, and every other path authorizes.
pub fn router(authorizer: Arc<dyn Authorizer>, cert_header: HeaderName) -> Router {
    let front = Arc::new(Front {
        authorizer,
        cert_header,
    });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback(handle)
        .with_state(front)
}

/// Reads the authorization question from the forwarded request.
pub fn to_auth_request(
    method: &str,
    uri: &str,
    headers: &HeaderMap,
    cert_header: &HeaderName,
) -> AuthRequest {
    let method = single_header(headers, "x-original-method").unwrap_or_else(|| method.to_owned());
    let uri = single_header(headers, "x-original-uri").unwrap_or_else(|| uri.to_owned());
    let path = uri.split(['?', '#']).next().unwrap_or("/").to_owned();
    let mut r = AuthRequest::new(
        Source::Http,
        &method,
        &path,
        &format!("{} {path}", method.to_ascii_uppercase()),
    );
    r.credentials = credentials_from_headers(&[headers]);
    r.dpop_proof = single_header(headers, "dpop");
    let certs: Vec<&HeaderValue> = headers.get_all(cert_header).iter().collect();
    r.client_cert = match certs.as_slice() {
        [] => PresentedCert::Absent,
        [one] => PresentedCert::from_optional(Some(&String::from_utf8_lossy(one.as_bytes()))),
        _ => PresentedCert::Invalid(crate::cert::CertError::NotCertificate(
            "certificate header sent more than once".into(),
        )),
    };
    let host =
        single_header(headers, "x-forwarded-host").or_else(|| single_header(headers, "host"));
    r.htu = htu(host.as_deref(), &path);
    r.headers = header_map(headers);
    r
}

async fn handle(State(front): State<Arc<Front>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let auth_request = to_auth_request(
        parts.method.as_str(),
        &parts.uri.to_string(),
        &parts.headers,
        &front.cert_header,
    );
    let verdict = authorize(front.authorizer.as_ref(), &auth_request).await;
    to_response(&verdict)
}

/// The HTTP status for a verdict: by action, whatever the policy setting.
pub fn status(verdict: &Verdict) -> StatusCode {
    match verdict.action {
        Some(Action::Ok) => StatusCode::OK,
        Some(Action::BadRequest | Action::Unauthorized) => StatusCode::UNAUTHORIZED,
        Some(Action::Forbidden) => StatusCode::FORBIDDEN,
        Some(Action::InternalServerError) | None => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Status, `WWW-Authenticate`, `DPoP-Nonce` and `X-Certbound-*` headers.
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
    } else if let Some(value) = verdict.challenge.as_deref().and_then(header_value) {
        headers.insert(axum::http::header::WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = verdict.dpop_nonce.as_deref().and_then(header_value) {
        headers.insert(HeaderName::from_static("dpop-nonce"), nonce);
    }
    let body = if status == StatusCode::OK {
        String::new()
    } else {
        // The action, not the Lambda decision: in policy mode a 401 is a "Deny".
        let action = verdict
            .action
            .map_or("INTROSPECTION_FAILED", |a| a.as_str());
        format!("{action}\n")
    };
    (status, headers, body).into_response()
}

fn header_value(v: &str) -> Option<HeaderValue> {
    let clean: String = v.chars().filter(|c| (' '..='~').contains(c)).collect();
    HeaderValue::from_str(&clean).ok()
}

/// Serves until SIGTERM / Ctrl-C.
pub async fn serve(
    authorizer: Arc<dyn Authorizer>,
    cert_header: HeaderName,
    listen: SocketAddr,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(listen = %listener.local_addr()?, cert_header = %cert_header, "certbound serve ready");
    axum::serve(listener, router(authorizer, cert_header))
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
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
