//! The backend port: one trait for every way of learning what a token is.
//!
//! A backend either **reports claims** ([`Answer::Claims`]: RFC 7662
//! introspection, the in-memory backend) and the core decides everything
//! (activity, expiry, binding, scopes), or **decides itself**
//! ([`Answer::Decided`]: Authlete, which checks binding, scopes and DPoP
//! when given the certificate, the scopes and the proof) and the core still
//! applies the checks that do not depend on trusting it (binding against the
//! presented certificate, expiry). Backends build requests and parse
//! answers; they make no decision the core makes ([`crate::decision`]).

pub mod authlete;
pub mod jwks;
pub mod jws;
pub mod jwt;
pub mod limit;
pub mod memory;
pub mod rfc7662;

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::cert::ClientCert;
use crate::request::Scheme;
use crate::transport::{FetchError, TransportError};
use crate::verdict::{Challenge, Context, Reason};

/// What the resource server should do (Authlete's vocabulary, which the
/// reference's decision table is written in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// The token is valid for this request.
    Ok,
    /// The request carries no usable token.
    BadRequest,
    /// The token is unknown, expired, revoked or bound to another key.
    Unauthorized,
    /// The token lacks a required scope (or the request is refused).
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

/// The question asked of the backend. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct IntrospectionRequest {
    /// The access token.
    pub token: SecretString,
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

/// RFC 7800 confirmation (`cnf`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// RFC 8705 certificate thumbprint.
    pub x5t_s256: Option<String>,
    /// RFC 9449 JWK thumbprint (DPoP).
    pub jkt: Option<String>,
}

/// What a claims backend knows about a token (RFC 7662 / RFC 9068 names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// Whether the authorization server considers the token active.
    pub active: bool,
    /// Subject.
    pub sub: Option<String>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: Option<i64>,
    /// Not before, seconds since the epoch.
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    pub iat: Option<i64>,
    /// Audiences.
    pub aud: Vec<String>,
    /// Confirmation: what the token is bound to.
    pub cnf: Confirmation,
    /// Extra claims for the context (`CERTBOUND_JWT_CONTEXT_CLAIMS`).
    pub context: Context,
    /// Why the token is not active, when the backend can say (a JWT whose
    /// signature does not verify, a wrong issuer, …).
    pub refusal: Option<Refusal>,
    /// The answer as received (debug context only).
    pub raw: serde_json::Value,
}

/// Why a claims backend considers a token not active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The stable reason.
    pub reason: Reason,
    /// What exactly (for operators; never holds the token).
    pub description: String,
}

/// What a backend answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The token's claims; the core decides.
    Claims(Claims),
    /// The server's own decision (Authlete), in the shape the core produces;
    /// `reason` is at most a hint the answer supports (Authlete: `usable`
    /// false on UNAUTHORIZED → [`Reason::TokenExpired`]): the core re-checks
    /// what it can and sets the reason.
    Decided(IntrospectionResponse),
}

/// The outcome of the introspection step as hooks see it: the core's
/// decision over what the backend answered (or a local answer, whose
/// `result_code` starts with `certbound.`).
#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionResponse {
    /// What to do.
    pub action: Action,
    /// Why it is not `OK` (`None` on `OK`).
    pub reason: Option<Reason>,
    /// A machine-readable result code (Authlete's, or `certbound.<reason>`).
    pub result_code: Option<String>,
    /// A human-readable explanation.
    pub result_message: Option<String>,
    /// The `WWW-Authenticate` challenge when `action` is not `Ok`.
    pub challenge: Option<Challenge>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// Other names of that client, for look-ups by client (usage keys):
    /// Authlete's alias and number, whichever `client_id` is not.
    pub client_identifiers: Vec<String>,
    /// The resource owner (or the client, for client-credentials tokens).
    pub subject: Option<String>,
    /// Scopes granted to the token.
    pub scopes: Option<Vec<String>>,
    /// Expiry, in milliseconds since the epoch.
    pub expires_at_ms: Option<i64>,
    /// The `x5t#S256` the token is bound to, when known.
    pub certificate_thumbprint: Option<String>,
    /// A `DPoP-Nonce` the server wants the client to use.
    pub dpop_nonce: Option<String>,
    /// Extra context values the backend reports (JWT context claims).
    pub context: Context,
    /// The server's answer as received (debug context only).
    pub raw: serde_json::Value,
}

impl IntrospectionResponse {
    /// A response with an action and nothing else.
    pub fn new(action: Action) -> Self {
        Self {
            action,
            reason: None,
            result_code: None,
            result_message: None,
            challenge: None,
            client_id: None,
            client_identifiers: Vec::new(),
            subject: None,
            scopes: None,
            expires_at_ms: None,
            certificate_thumbprint: None,
            dpop_nonce: None,
            context: Context::new(),
            raw: serde_json::Value::Null,
        }
    }
}

/// Why the backend could not produce an answer. Every variant fails
/// closed (Deny or Internal Server Error). Messages never hold a token or
/// a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectionError {
    /// The backend step did not complete in time (the core's deadline; the
    /// transport's own timeouts, which say which phase, are [`Self::Connect`]
    /// and [`Self::Transport`]).
    #[error("the authorization server (introspection, metadata or JWKS) did not answer in time")]
    Timeout,
    /// No connection could be made: refused, connect timeout, name
    /// resolution, TLS.
    #[error("cannot connect to the authorization server (introspection, metadata or JWKS): {0}")]
    Connect(#[source] TransportError),
    /// The server answered with a non-2xx status (a redirect included:
    /// redirects are not followed).
    #[error(
        "the authorization server (introspection, metadata or JWKS) answered {}",
        crate::transport::describe_status(.status)
    )]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The answer is not the JSON we expect.
    #[error("the authorization server's answer is not valid: {0}")]
    InvalidResponse(String),
    /// The answer names an action we do not know.
    #[error("the authorization server's answer has unknown action {0:?}")]
    UnknownAction(String),
    /// Connected, but no complete answer: read timeouts, reset, the
    /// connection closed.
    #[error("the request to the authorization server failed: {0}")]
    Transport(#[source] TransportError),
    /// Too many calls to the authorization server are already in flight
    /// (`CERTBOUND_MAX_INFLIGHT`): not sent, refused at once.
    #[error("not sent: {limit} calls to the authorization server are already in flight")]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
}

impl IntrospectionError {
    /// A short, stable name for logs and the policy context.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(t) | Self::Transport(t) => t.kind(),
            Self::Status { .. } => "status",
            Self::InvalidResponse(_) => "invalid_response",
            Self::UnknownAction(_) => "unknown_action",
            Self::Overloaded { .. } => "overloaded",
        }
    }

    /// The denial reason: no usable HTTP answer, or an unusable one.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Timeout | Self::Connect(_) | Self::Transport(_) => Reason::AsUnavailable,
            Self::Status { .. } | Self::InvalidResponse(_) | Self::UnknownAction(_) => {
                Reason::AsError
            }
            Self::Overloaded { .. } => Reason::Overloaded,
        }
    }
}

/// Whether a decision came from the cache (`cache` in the decision log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// No cache configured.
    Off,
    /// Answered from the cache (or by another request's call in flight).
    Hit,
    /// Not in the cache: the backend was asked.
    Miss,
    /// Never cached (a DPoP proof is single-use): the backend was asked.
    Bypass,
}

impl CacheStatus {
    /// The log name.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Off => "off",
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }

    /// Whether this request made a call to the authorization server.
    pub fn called_backend(self) -> bool {
        !matches!(self, CacheStatus::Hit)
    }
}

/// A backend's answer and how it was obtained.
#[derive(Debug)]
pub struct Traced {
    /// The answer, or why there is none.
    pub result: Result<Answer, IntrospectionError>,
    /// Cache involvement.
    pub cache: CacheStatus,
}

/// What a cache may keep of a backend's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// The answer depends on the token only (claims): one entry per token,
    /// every check re-run on every request.
    PerToken,
    /// The answer depends on the request (the backend decided over the
    /// certificate and the scopes): one entry per token, certificate and
    /// scope set.
    PerRequest,
}

/// A backend that answers "what is this token?".
#[async_trait]
pub trait Introspector: Send + Sync {
    /// Asks about one token.
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError>;

    /// [`Introspector::introspect`], saying whether a cache answered. The
    /// core calls this one.
    async fn introspect_traced(&self, request: &IntrospectionRequest) -> Traced {
        Traced {
            result: self.introspect(request).await,
            cache: CacheStatus::Off,
        }
    }

    /// Whether the backend verifies DPoP proofs itself (Authlete does, given
    /// `dpop`, `htm` and `htu`). Claims backends cannot.
    fn verifies_dpop(&self) -> bool {
        false
    }

    /// Who answers (endpoint, issuer…): part of every cache key, so that
    /// answers of one server are never served for another.
    fn identity(&self) -> String {
        String::new()
    }

    /// What an answer depends on.
    fn cache_scope(&self) -> CacheScope {
        CacheScope::PerToken
    }
}

#[async_trait]
impl<T: Introspector + ?Sized> Introspector for std::sync::Arc<T> {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        (**self).introspect(request).await
    }

    async fn introspect_traced(&self, request: &IntrospectionRequest) -> Traced {
        (**self).introspect_traced(request).await
    }

    fn verifies_dpop(&self) -> bool {
        (**self).verifies_dpop()
    }

    fn identity(&self) -> String {
        (**self).identity()
    }

    fn cache_scope(&self) -> CacheScope {
        (**self).cache_scope()
    }
}

impl From<FetchError> for IntrospectionError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Connect(t) => Self::Connect(t),
            FetchError::Transport(t) => Self::Transport(t),
            FetchError::Status { status } => Self::Status { status },
            FetchError::TooLarge { .. } | FetchError::NotJson(_) => {
                Self::InvalidResponse(e.to_string())
            }
        }
    }
}

/// Deserializes an answer; the error names the field at fault and the kind
/// of problem, never the value (answers may echo what they were sent).
pub(crate) fn parse_typed<T: serde::de::DeserializeOwned>(
    raw: &serde_json::Value,
) -> Result<T, IntrospectionError> {
    serde_path_to_error::deserialize(raw)
        .map_err(|e| IntrospectionError::InvalidResponse(crate::transport::describe_json_error(&e)))
}
