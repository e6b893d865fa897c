//! A standard RFC 7662 introspection endpoint. The AS only says whether the
//! token is active and what it is bound to; certbound decides the rest
//! itself ([`decide`]): expiry, the RFC 8705 certificate binding (constant-
//! time compare), and the required scopes.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

use super::http::send_for_json;
use super::{
    Action, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
};
use crate::cert::thumbprints_match;
use crate::request::Scheme;
use crate::verdict::challenge;

/// How to reach the endpoint, and what to require.
#[derive(Clone, PartialEq, Eq)]
pub struct Rfc7662Config {
    /// The introspection endpoint URL.
    pub endpoint: String,
    /// certbound's own client id at the AS (client_secret_basic).
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Refuse tokens that carry no `cnf.x5t#S256` (default true).
    pub require_binding: bool,
}

impl std::fmt::Debug for Rfc7662Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc7662Config")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("require_binding", &self.require_binding)
            .finish()
    }
}

/// The RFC 7662 answer fields certbound uses.
#[derive(Debug, Deserialize)]
pub struct Rfc7662Body {
    /// Whether the token is currently active.
    pub active: bool,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// Client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Not-before, seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// RFC 7800 confirmation (`x5t#S256` for RFC 8705, `jkt` for DPoP).
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim.
#[derive(Debug, Default, Deserialize)]
pub struct Confirmation {
    /// RFC 8705 certificate thumbprint.
    #[serde(rename = "x5t#S256", default)]
    pub x5t_s256: Option<String>,
    /// RFC 9449 JWK thumbprint.
    #[serde(default)]
    pub jkt: Option<String>,
}

/// Decides on a parsed RFC 7662 answer. Pure: `now` is seconds since the
/// epoch.
pub fn decide(
    body: &Rfc7662Body,
    raw: Value,
    request: &IntrospectionRequest,
    require_binding: bool,
    realm: Option<&str>,
    now: i64,
) -> IntrospectionResponse {
    let scheme = request.scheme;
    let granted: Vec<String> = body
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let bound_to = body.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref());
    let presented = request.client_cert.as_ref().map(|c| c.thumbprint());
    let invalid_token = |code: &str, message: &str| {
        (
            Action::Unauthorized,
            code.to_owned(),
            message.to_owned(),
            Some(challenge(
                scheme,
                realm,
                Some("invalid_token"),
                Some(message),
                None,
            )),
        )
    };
    let missing: Vec<&str> = request
        .scopes
        .iter()
        .flatten()
        .filter(|s| !granted.contains(s))
        .map(String::as_str)
        .collect();

    let (action, code, message, content) = if !body.active {
        invalid_token(
            "certbound.inactive",
            "token is not active (unknown, expired or revoked)",
        )
    } else if body.exp.is_some_and(|exp| exp <= now) {
        invalid_token("certbound.expired", "token has expired")
    } else if body.nbf.is_some_and(|nbf| nbf > now) {
        invalid_token("certbound.not_yet_valid", "token is not valid yet")
    } else if scheme == Scheme::DPoP || body.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) {
        invalid_token(
            "certbound.dpop_unsupported",
            "DPoP-bound tokens cannot be verified with the rfc7662 backend",
        )
    } else if let Some(expected) = bound_to {
        match presented {
            None => invalid_token(
                "certbound.certificate_missing",
                "token is certificate-bound but no client certificate was presented",
            ),
            Some(actual) if !thumbprints_match(expected, actual) => invalid_token(
                "certbound.certificate_mismatch",
                "token is bound to a different client certificate",
            ),
            Some(_) => scope_check(scheme, realm, &missing),
        }
    } else if require_binding {
        invalid_token("certbound.unbound_token", "token is not certificate-bound")
    } else {
        scope_check(scheme, realm, &missing)
    };

    IntrospectionResponse {
        action,
        result_code: Some(code),
        result_message: Some(message),
        response_content: content,
        client_id: body.client_id.clone().filter(|s| !s.is_empty()),
        subject: body.sub.clone().filter(|s| !s.is_empty()),
        scopes: Some(granted),
        expires_at_ms: body.exp.map(|s| s.saturating_mul(1000)),
        certificate_thumbprint: bound_to.map(str::to_owned),
        dpop_nonce: None,
        raw,
    }
}

fn scope_check(
    scheme: Scheme,
    realm: Option<&str>,
    missing: &[&str],
) -> (Action, String, String, Option<String>) {
    if missing.is_empty() {
        return (
            Action::Ok,
            "certbound.ok".into(),
            "token is valid".into(),
            None,
        );
    }
    let message = "token lacks a required scope";
    (
        Action::Forbidden,
        "certbound.insufficient_scope".into(),
        format!("{message}: {}", missing.join(" ")),
        Some(challenge(
            scheme,
            realm,
            Some("insufficient_scope"),
            Some(message),
            Some(&missing.join(" ")),
        )),
    )
}

/// `application/x-www-form-urlencoded` for client_secret_basic (RFC 6749
/// §2.3.1).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

/// The RFC 7662 backend.
pub struct Rfc7662Introspector {
    client: reqwest::Client,
    config: Rfc7662Config,
    realm: Option<String>,
}

impl Rfc7662Introspector {
    /// Uses the given (shared, keep-alive) client.
    pub fn new(client: reqwest::Client, config: Rfc7662Config, realm: Option<String>) -> Self {
        Self {
            client,
            config,
            realm,
        }
    }
}

#[async_trait]
impl Introspector for Rfc7662Introspector {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<IntrospectionResponse, IntrospectionError> {
        let http = self
            .client
            .post(&self.config.endpoint)
            .basic_auth(
                utf8_percent_encode(&self.config.client_id, FORM),
                Some(utf8_percent_encode(&self.config.client_secret, FORM)),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("token", request.token.as_str()),
                ("token_type_hint", "access_token"),
            ]);
        let raw = send_for_json(http).await?;
        let body: Rfc7662Body = serde_json::from_value(raw.clone())
            .map_err(|e| IntrospectionError::InvalidResponse(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        Ok(decide(
            &body,
            raw,
            request,
            self.config.require_binding,
            self.realm.as_deref(),
            now,
        ))
    }
}
