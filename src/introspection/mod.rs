//! The introspection port: one trait, one request and one result shape for
//! every backend (Authlete's API, RFC 7662 servers, a cache in front).
//!
//! The result is expressed in Authlete's terms (an `action` telling which
//! HTTP status the resource server should answer with) because the decision
//! table of the reference design is written in those terms; the RFC 7662
//! backend computes the action itself.

pub mod authlete;
pub mod http;
pub mod rfc7662;

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::cert::ClientCert;
use crate::request::{token_hash, Scheme};

/// What the resource server should do, as decided by introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// The token is valid for this request.
    Ok,
    /// The request carries no usable token.
    BadRequest,
    /// The token is unknown, expired, revoked or bound to another key.
    Unauthorized,
    /// The token lacks a required scope.
    Forbidden,
    /// The authorization server had a problem.
    InternalServerError,
}

impl Action {
    /// The wire name (`OK`, `BAD_REQUEST`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ok => "OK",
            Action::BadRequest => "BAD_REQUEST",
            Action::Unauthorized => "UNAUTHORIZED",
            Action::Forbidden => "FORBIDDEN",
            Action::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Reads a wire name; `None` for anything unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "OK" => Action::Ok,
            "BAD_REQUEST" => Action::BadRequest,
            "UNAUTHORIZED" => Action::Unauthorized,
            "FORBIDDEN" => Action::Forbidden,
            "INTERNAL_SERVER_ERROR" => Action::InternalServerError,
            _ => return None,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The question asked of the authorization server.
#[derive(Clone)]
pub struct IntrospectionRequest {
    /// The access token.
    pub token: String,
    /// How it was presented.
    pub scheme: Scheme,
    /// Scopes the resource requires (`None`: no requirement).
    pub scopes: Option<Vec<String>>,
    /// The mutual-TLS client certificate, when presented.
    pub client_cert: Option<ClientCert>,
    /// The `DPoP` proof (DPoP scheme only).
    pub dpop: Option<String>,
    /// HTTP method of the protected call (DPoP `htm`).
    pub htm: Option<String>,
    /// Target URI of the protected call (DPoP `htu`).
    pub htu: Option<String>,
}

impl fmt::Debug for IntrospectionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionRequest")
            .field("token_sha256", &token_hash(&self.token))
            .field("scheme", &self.scheme)
            .field("scopes", &self.scopes)
            .field("client_cert", &self.client_cert)
            .field("dpop", &self.dpop.is_some())
            .field("htm", &self.htm)
            .field("htu", &self.htu)
            .finish()
    }
}

/// The answer, in the common shape every backend produces.
#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionResponse {
    /// What to do.
    pub action: Action,
    /// A machine-readable result code (Authlete's, or `certbound.*`).
    pub result_code: Option<String>,
    /// A human-readable explanation.
    pub result_message: Option<String>,
    /// The `WWW-Authenticate` value to send when `action` is not `Ok`.
    pub response_content: Option<String>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The resource owner (or the client, for client-credentials tokens).
    pub subject: Option<String>,
    /// Scopes granted to the token.
    pub scopes: Option<Vec<String>>,
    /// Expiry, in milliseconds since the epoch.
    pub expires_at_ms: Option<i64>,
    /// The `x5t#S256` the token is bound to, when the server says.
    pub certificate_thumbprint: Option<String>,
    /// A `DPoP-Nonce` the server wants the client to use.
    pub dpop_nonce: Option<String>,
    /// The server's answer as received (for debug context only).
    pub raw: serde_json::Value,
}

impl IntrospectionResponse {
    /// A response with only an action and texts (used for local decisions).
    pub fn local(action: Action, code: &str, message: &str, challenge: Option<String>) -> Self {
        Self {
            action,
            result_code: Some(code.to_owned()),
            result_message: Some(message.to_owned()),
            response_content: challenge,
            client_id: None,
            subject: None,
            scopes: None,
            expires_at_ms: None,
            certificate_thumbprint: None,
            dpop_nonce: None,
            raw: serde_json::Value::Null,
        }
    }
}

/// Why introspection could not produce an answer. Every variant fails
/// closed (Deny or Internal Server Error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    /// The call did not complete in time.
    #[error("introspection timed out")]
    Timeout,
    /// No connection could be made.
    #[error("cannot connect to the introspection endpoint: {0}")]
    Connect(String),
    /// The server answered with a non-2xx status.
    #[error("introspection endpoint answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The answer is not the JSON we expect.
    #[error("introspection response is not valid: {0}")]
    InvalidResponse(String),
    /// The answer names an action we do not know.
    #[error("introspection response has unknown action {0:?}")]
    UnknownAction(String),
    /// Any other transport failure.
    #[error("introspection request failed: {0}")]
    Transport(String),
}

impl IntrospectionError {
    /// A short, stable name for logs and the policy context.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Status { .. } => "status",
            Self::InvalidResponse(_) => "invalid_response",
            Self::UnknownAction(_) => "unknown_action",
            Self::Transport(_) => "transport",
        }
    }
}

/// A backend that answers "may this token be used for this request?".
#[async_trait]
pub trait Introspector: Send + Sync {
    /// Asks the authorization server about one token.
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<IntrospectionResponse, IntrospectionError>;
}

#[async_trait]
impl<T: Introspector + ?Sized> Introspector for std::sync::Arc<T> {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<IntrospectionResponse, IntrospectionError> {
        (**self).introspect(request).await
    }
}
