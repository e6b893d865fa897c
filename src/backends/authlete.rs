//! Authlete's introspection API (`/api/auth/introspection`), v2 and v3.
//!
//! - v2: `POST {base}/api/auth/introspection`, HTTP Basic
//!   `APIKEY:APISECRET`.
//! - v3: `POST {base}/api/{SERVICE_ID}/auth/introspection`,
//!   `Authorization: Bearer {SERVICE_ACCESS_TOKEN}`.
//!
//! Authlete itself checks the certificate binding (given
//! `clientCertificate`), the scopes (given `scopes`) and the DPoP proof
//! (given `dpop`, `htm`, `htu`) and answers with an `action`: a deciding
//! backend. The core still compares `certificateThumbprint` with the
//! presented certificate and enforces `CERTBOUND_REQUIRE_BINDING`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    parse_typed, Action, Answer, IntrospectionError, IntrospectionRequest, IntrospectionResponse,
    Introspector,
};
use crate::transport::{HttpClient, MAX_RESPONSE_BYTES};
use crate::verdict::{Challenge, Reason};

/// Which generation of the Authlete API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// Service API key + secret, Basic auth.
    V2,
    /// Service id in the path, service access token as Bearer.
    V3,
}

/// How to reach Authlete. `Debug` never shows the secrets.
#[derive(Debug, Clone)]
pub struct AuthleteConfig {
    /// e.g. `https://api.authlete.com` or `https://us.authlete.com`.
    pub base_url: String,
    /// v2 or v3.
    pub version: ApiVersion,
    /// v2: the service API key; v3: the service id.
    pub api_key: String,
    /// v2: the service API secret.
    pub api_secret: Option<SecretString>,
    /// v3: the service access token.
    pub access_token: Option<SecretString>,
}

/// The request body of `/auth/introspection` (the fields we send). No
/// `Debug`: it holds the token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthleteRequestBody<'a> {
    /// The access token.
    pub token: &'a str,
    /// Required scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<&'a [String]>,
    /// PEM of the mutual-TLS client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The DPoP proof JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop: Option<&'a str>,
    /// HTTP method of the protected call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htm: Option<&'a str>,
    /// Target URI of the protected call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htu: Option<&'a str>,
}

impl<'a> AuthleteRequestBody<'a> {
    /// Maps the common request to Authlete's body. DPoP fields are sent only
    /// for the DPoP scheme.
    pub fn from_request(r: &'a IntrospectionRequest) -> Self {
        let dpop = r.scheme == crate::request::Scheme::DPoP;
        Self {
            token: r.token.expose_secret(),
            scopes: r.scopes.as_deref(),
            client_certificate: r.client_cert.as_ref().map(|c| c.to_pem()),
            dpop: r.dpop.as_deref().filter(|_| dpop),
            htm: r.htm.as_deref().filter(|_| dpop),
            htu: r.htu.as_deref().filter(|_| dpop),
        }
    }
}

/// The fields of Authlete's answer that we use.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AuthleteResponseBody {
    action: Option<String>,
    result_code: Option<String>,
    result_message: Option<String>,
    response_content: Option<String>,
    client_id: Option<Value>,
    client_id_alias: Option<String>,
    client_id_alias_used: Option<bool>,
    subject: Option<String>,
    scopes: Option<Vec<Value>>,
    expires_at: Option<i64>,
    certificate_thumbprint: Option<String>,
    dpop_nonce: Option<String>,
    existent: Option<bool>,
    usable: Option<bool>,
}

/// Maps Authlete's JSON to its decision. Unknown or missing action and
/// ill-typed fields are errors (fail closed).
pub fn parse_response(raw: Value) -> Result<IntrospectionResponse, IntrospectionError> {
    let body: AuthleteResponseBody = parse_typed(&raw)?;
    let action_name = body
        .action
        .ok_or_else(|| IntrospectionError::InvalidResponse("no action".into()))?;
    let action = Action::parse(&action_name)
        .ok_or_else(|| IntrospectionError::UnknownAction(action_name.chars().take(64).collect()))?;
    let number = match body.client_id {
        Some(Value::Number(n)) if n.as_i64() != Some(0) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() && s != "0" => Some(s),
        _ => None,
    };
    let alias = body.client_id_alias.filter(|a| !a.is_empty());
    let (client_id, other) = if body.client_id_alias_used == Some(true) && alias.is_some() {
        (alias, number)
    } else {
        (number, alias)
    };
    let scopes = body.scopes.map(|list| {
        list.into_iter()
            .filter_map(|s| match s {
                Value::String(s) => Some(s),
                // Some Authlete versions return scope objects.
                Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            })
            .collect()
    });
    // Authlete's flags: `existent`, and `usable` (= exists and has not
    // expired). A hint for the core's reason on UNAUTHORIZED, never more.
    let hint = match (action, body.existent, body.usable) {
        (Action::Unauthorized, Some(true), Some(false)) => Some(Reason::TokenExpired),
        _ => None,
    };
    Ok(IntrospectionResponse {
        action,
        reason: hint,
        result_code: body.result_code,
        result_message: body.result_message,
        challenge: body.response_content.as_deref().and_then(Challenge::parse),
        client_id,
        client_identifiers: other.into_iter().collect(),
        subject: body.subject.filter(|s| !s.is_empty()),
        scopes,
        // Kept even when 0 (Authlete's "no token"): the reference puts `exp: 0`.
        expires_at_ms: body.expires_at,
        certificate_thumbprint: body.certificate_thumbprint.filter(|t| !t.is_empty()),
        dpop_nonce: body.dpop_nonce,
        context: Default::default(),
        raw,
    })
}

/// The Authlete backend.
pub struct AuthleteIntrospector {
    client: HttpClient,
    url: String,
    config: AuthleteConfig,
}

impl AuthleteIntrospector {
    /// Uses the given (shared, keep-alive) client.
    pub fn new(client: HttpClient, config: AuthleteConfig) -> Self {
        let base = config.base_url.trim_end_matches('/');
        let url = match config.version {
            ApiVersion::V2 => format!("{base}/api/auth/introspection"),
            ApiVersion::V3 => format!(
                "{base}/api/{}/auth/introspection",
                percent_encoding::utf8_percent_encode(
                    &config.api_key,
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
        };
        Self {
            client,
            url,
            config,
        }
    }

    /// The endpoint this backend posts to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl AuthleteIntrospector {
    /// The HTTP request for one token (not sent).
    pub fn build(&self, request: &IntrospectionRequest) -> reqwest::RequestBuilder {
        let body = AuthleteRequestBody::from_request(request);
        let http = self.client.post(&self.url).json(&body);
        match self.config.version {
            ApiVersion::V2 => http.basic_auth(
                &self.config.api_key,
                self.config.api_secret.as_ref().map(|s| s.expose_secret()),
            ),
            ApiVersion::V3 => http.bearer_auth(
                self.config
                    .access_token
                    .as_ref()
                    .map(|s| s.expose_secret())
                    .unwrap_or_default(),
            ),
        }
    }
}

#[async_trait]
impl Introspector for AuthleteIntrospector {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        let call = crate::telemetry::AsCall::start(crate::telemetry::BACKEND_AUTHLETE);
        let result = match self
            .client
            .send_for_json(self.build(request), MAX_RESPONSE_BYTES)
            .await
        {
            Ok(raw) => parse_response(raw),
            Err(e) => Err(e.into()),
        };
        call.finish(result.as_ref().err());
        result.map(Answer::Decided)
    }

    fn verifies_dpop(&self) -> bool {
        true
    }

    fn identity(&self) -> String {
        format!("authlete {} {}", self.url, self.config.api_key)
    }

    fn cache_scope(&self) -> super::CacheScope {
        super::CacheScope::PerRequest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_id_prefers_alias_only_when_used() {
        let r = parse_response(
            json!({"action":"OK","clientId":57,"clientIdAlias":"app","clientIdAliasUsed":true}),
        )
        .unwrap();
        assert_eq!(r.client_id.as_deref(), Some("app"));
        let r = parse_response(
            json!({"action":"OK","clientId":57,"clientIdAlias":"app","clientIdAliasUsed":false}),
        )
        .unwrap();
        assert_eq!(r.client_id.as_deref(), Some("57"));
        let r = parse_response(json!({"action":"UNAUTHORIZED","clientId":0})).unwrap();
        assert_eq!(r.client_id, None);
    }

    #[test]
    fn unknown_missing_or_mistyped_fields_fail_closed() {
        assert_eq!(
            parse_response(json!({"action":"MAYBE"})).err(),
            Some(IntrospectionError::UnknownAction("MAYBE".into()))
        );
        assert!(matches!(
            parse_response(json!({})),
            Err(IntrospectionError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_response(json!({"action":"OK","expiresAt":"soon"})),
            Err(IntrospectionError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_response(json!({"action":1})),
            Err(IntrospectionError::InvalidResponse(_))
        ));
        // action names are case-sensitive, as Authlete sends them
        assert!(matches!(
            parse_response(json!({"action":"ok"})),
            Err(IntrospectionError::UnknownAction(_))
        ));
    }

    fn client() -> HttpClient {
        crate::transport::build_client(&Default::default()).unwrap()
    }

    #[test]
    fn v3_url_carries_the_service_id() {
        let cfg = AuthleteConfig {
            base_url: "https://us.authlete.com/".into(),
            version: ApiVersion::V3,
            api_key: "715948317".into(),
            api_secret: None,
            access_token: Some("service-token-value".into()),
        };
        let i = AuthleteIntrospector::new(client(), cfg.clone());
        assert_eq!(
            i.url(),
            "https://us.authlete.com/api/715948317/auth/introspection"
        );
        let v2 = AuthleteIntrospector::new(
            client(),
            AuthleteConfig {
                version: ApiVersion::V2,
                ..cfg
            },
        );
        assert_eq!(v2.url(), "https://us.authlete.com/api/auth/introspection");
        assert!(!format!("{:?}", v2.config).contains("service-token-value"));
    }
}
