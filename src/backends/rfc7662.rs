//! A standard RFC 7662 introspection endpoint: a claims backend. The AS
//! says whether the token is active and what it is bound to; the core
//! decides expiry, binding and scopes ([`crate::decision`]).
//!
//! Request building ([`Rfc7662Introspector::build`]) is separate from
//! parsing ([`parse_response`]), which is strict about types: an `active`
//! that is not a boolean, or an `exp` that is not a number, is an invalid
//! answer (fail closed), not a guess.

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{
    parse_typed, Answer, Claims, Confirmation, IntrospectionError, IntrospectionRequest,
    Introspector, Refusal,
};
use crate::transport::{HttpClient, MAX_RESPONSE_BYTES};
use crate::verdict::Reason;

/// How to reach the endpoint. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct Rfc7662Config {
    /// The introspection endpoint URL.
    pub endpoint: String,
    /// certbound's own client id at the AS (client_secret_basic).
    pub client_id: String,
    /// Its secret.
    pub client_secret: SecretString,
}

/// The RFC 7662 answer fields certbound uses, with their JSON types.
#[derive(Debug, Deserialize)]
struct Body {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    cnf: Option<Cnf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Cnf {
    #[serde(rename = "x5t#S256", default)]
    x5t_s256: Option<String>,
    #[serde(default)]
    jkt: Option<String>,
}

/// Reads an RFC 7662 answer into claims. Strict about types.
pub fn parse_response(raw: Value) -> Result<Claims, IntrospectionError> {
    let body: Body = parse_typed(&raw)?;
    Ok(Claims {
        active: body.active,
        sub: body.sub.filter(|s| !s.is_empty()),
        client_id: body.client_id.filter(|s| !s.is_empty()),
        scopes: body
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        exp: body.exp,
        nbf: body.nbf,
        iat: body.iat,
        aud: match body.aud {
            None => Vec::new(),
            Some(OneOrMany::One(a)) => vec![a],
            Some(OneOrMany::Many(a)) => a,
        },
        cnf: body
            .cnf
            .map(|c| Confirmation {
                x5t_s256: c.x5t_s256,
                jkt: c.jkt,
            })
            .unwrap_or_default(),
        context: Default::default(),
        refusal: None,
        raw,
    })
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
    client: HttpClient,
    config: Rfc7662Config,
}

impl Rfc7662Introspector {
    /// Uses the given (shared, keep-alive) client.
    pub fn new(client: HttpClient, config: Rfc7662Config) -> Self {
        Self { client, config }
    }

    /// The HTTP request for one token (not sent).
    pub fn build(&self, request: &IntrospectionRequest) -> reqwest::RequestBuilder {
        self.client
            .post(&self.config.endpoint)
            .basic_auth(
                utf8_percent_encode(&self.config.client_id, FORM),
                Some(utf8_percent_encode(
                    self.config.client_secret.expose_secret(),
                    FORM,
                )),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("token", request.token.expose_secret()),
                ("token_type_hint", "access_token"),
            ])
    }
}

#[async_trait]
impl Introspector for Rfc7662Introspector {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        let call = crate::telemetry::AsCall::start(crate::telemetry::BACKEND_RFC7662);
        let result = self.call(request).await;
        call.finish(result.as_ref().err());
        result
    }

    fn identity(&self) -> String {
        format!("rfc7662 {} {}", self.config.endpoint, self.config.client_id)
    }
}

impl Rfc7662Introspector {
    /// One introspection request and its answer.
    async fn call(&self, request: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        let response = self.client.send(self.build(request)).await?;
        if response.status == reqwest::StatusCode::BAD_REQUEST {
            // Some servers (node oidc-provider with a JWT) refuse to introspect
            // a kind of token: the token is not valid here, the AS is fine.
            let body = response.json_body(MAX_RESPONSE_BYTES).await;
            if body.is_ok_and(|b| {
                b.get("error").and_then(Value::as_str) == Some("unsupported_token_type")
            }) {
                return Ok(Answer::Claims(Claims {
                    active: false,
                    refusal: Some(Refusal {
                        reason: Reason::TokenInvalid,
                        description: "the authorization server does not introspect this kind of token (unsupported_token_type)".into(),
                    }),
                    ..Claims::default()
                }));
            }
            return Err(IntrospectionError::Status { status: 400 });
        }
        let raw = response.json(MAX_RESPONSE_BYTES).await?;
        parse_response(raw).map(Answer::Claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_read_strictly() {
        let c = parse_response(json!({"active": true, "scope": "a  b", "aud": "rs",
            "cnf": {"x5t#S256": "t"}, "exp": 5, "client_id": ""}))
        .unwrap();
        assert_eq!(c.scopes, ["a", "b"]);
        assert_eq!(c.aud, ["rs"]);
        assert_eq!(c.cnf.x5t_s256.as_deref(), Some("t"));
        assert_eq!(c.client_id, None);
        for bad in [
            json!({"active": "true"}),
            json!({"scope": "a"}),
            json!({"active": true, "exp": "soon"}),
            json!({"active": true, "scope": ["a"]}),
            json!({"active": true, "cnf": {"x5t#S256": 5}}),
            json!({"active": true, "cnf": "x"}),
        ] {
            let e = parse_response(bad.clone()).unwrap_err();
            assert!(
                matches!(e, IntrospectionError::InvalidResponse(_)),
                "{bad}: {e}"
            );
        }
        let e = parse_response(json!({"active": true, "exp": "secret-looking-value"})).unwrap_err();
        assert!(e.to_string().contains("exp"), "{e}");
        assert!(
            !e.to_string().contains("secret-looking"),
            "values stay out: {e}"
        );
    }
}
