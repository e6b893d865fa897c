//! From an introspection outcome to a decision: the decision table, RFC 6750
//! challenges and the policy context (flat values only).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backends::Action;
use crate::request::Scheme;

/// The answer to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// Let the call through.
    Allow,
    /// Refuse it with a Deny policy (API Gateway: 403).
    Deny,
    /// Refuse it with `Unauthorized` (API Gateway: 401).
    Unauthorized,
    /// Fail with `Internal Server Error` (API Gateway: 500).
    InternalServerError,
}

impl Decision {
    /// The reference's decision table. `policy` = always answer with a
    /// policy (Allow/Deny) rather than errors. `None` = introspection failed.
    pub fn from_action(action: Option<Action>, policy: bool) -> Self {
        match (action, policy) {
            (Some(Action::Ok), _) => Decision::Allow,
            (Some(Action::BadRequest | Action::Forbidden), _) => Decision::Deny,
            (Some(Action::Unauthorized), false) => Decision::Unauthorized,
            (Some(Action::InternalServerError) | None, false) => Decision::InternalServerError,
            (_, true) => Decision::Deny,
        }
    }

    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "Allow",
            Decision::Deny => "Deny",
            Decision::Unauthorized => "Unauthorized",
            Decision::InternalServerError => "InternalServerError",
        }
    }
}

/// A value API Gateway accepts in an authorizer context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ContextValue {
    /// A string.
    String(String),
    /// An integer.
    Number(i64),
    /// A boolean.
    Bool(bool),
}

impl From<String> for ContextValue {
    fn from(v: String) -> Self {
        ContextValue::String(v)
    }
}
impl From<&str> for ContextValue {
    fn from(v: &str) -> Self {
        ContextValue::String(v.to_owned())
    }
}
impl From<i64> for ContextValue {
    fn from(v: i64) -> Self {
        ContextValue::Number(v)
    }
}
impl From<bool> for ContextValue {
    fn from(v: bool) -> Self {
        ContextValue::Bool(v)
    }
}

impl std::fmt::Display for ContextValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextValue::String(s) => f.write_str(s),
            ContextValue::Number(n) => write!(f, "{n}"),
            ContextValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The authorizer context: flat key → string/number/boolean. Keys are
/// absent rather than null.
pub type Context = BTreeMap<String, ContextValue>;

/// The `principalId` used when neither subject nor client id is known.
pub const ANONYMOUS_PRINCIPAL: &str = "anonymous";

/// Why a request was not allowed: a stable, machine-readable name for
/// logs, the context (`reason`) and `X-Certbound-Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// No access token was sent.
    TokenMissing,
    /// The `Authorization` header is not `Bearer <token>` / `DPoP <token>`, or was sent twice.
    TokenMalformed,
    /// The token is unknown, revoked or otherwise not active.
    TokenInactive,
    /// A self-contained token (JWT) that does not verify: signature,
    /// issuer, audience, client, token use, structure.
    TokenInvalid,
    /// The token has expired.
    TokenExpired,
    /// The token is not valid yet (`nbf` / `iat` in the future).
    TokenNotYetValid,
    /// Binding is required and the token is not certificate-bound.
    TokenUnbound,
    /// The token is DPoP-bound (or sent with the DPoP scheme) and this backend cannot verify the proof.
    DpopUnverifiable,
    /// No client certificate reached certbound, but one is needed.
    CertMissing,
    /// The token is bound to a different certificate.
    CertMismatch,
    /// Something was presented as the certificate but it is not one.
    CertUnreadable,
    /// The token lacks a required scope.
    ScopeInsufficient,
    /// No scope rule matched and the scope default is `deny`.
    RouteUnmatched,
    /// The request path could be read two ways (encoded `/`, `;`, …).
    PathRejected,
    /// No usable HTTP answer from the authorization server.
    AsUnavailable,
    /// An HTTP answer that is not a usable success.
    AsError,
    /// The event or proxied request is not understood.
    EventInvalid,
    /// Too many calls to the authorization server are in flight
    /// (`CERTBOUND_MAX_INFLIGHT`): refused at once instead of queued
    /// (`certbound serve` answers 503).
    Overloaded,
}

impl Reason {
    /// The stable name (`token_missing`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TokenMissing => "token_missing",
            Reason::TokenMalformed => "token_malformed",
            Reason::TokenInactive => "token_inactive",
            Reason::TokenInvalid => "token_invalid",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::TokenUnbound => "token_unbound",
            Reason::DpopUnverifiable => "dpop_unverifiable",
            Reason::CertMissing => "cert_missing",
            Reason::CertMismatch => "cert_mismatch",
            Reason::CertUnreadable => "cert_unreadable",
            Reason::ScopeInsufficient => "scope_insufficient",
            Reason::RouteUnmatched => "route_unmatched",
            Reason::PathRejected => "path_rejected",
            Reason::AsUnavailable => "as_unavailable",
            Reason::AsError => "as_error",
            Reason::EventInvalid => "event_invalid",
            Reason::Overloaded => "overloaded",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Allow / Deny / Unauthorized / InternalServerError.
    pub decision: Decision,
    /// The introspection action (`None` when introspection failed).
    pub action: Option<Action>,
    /// Why it is not an Allow (`None` on Allow).
    pub reason: Option<Reason>,
    /// `principalId`: subject, else client id, else a placeholder.
    pub principal_id: String,
    /// What the policy is about (`methodArn` / `routeArn` / URI).
    pub resource: String,
    /// The `WWW-Authenticate` challenge when the answer is not Allow. Fronts
    /// send this, not the (hook-editable) `challenge` context value.
    pub challenge: Option<Challenge>,
    /// A `DPoP-Nonce` to hand to the client, when the AS asked for one.
    pub dpop_nonce: Option<String>,
    /// REST API usage plans: the API key of the token's client
    /// (`CERTBOUND_USAGE_KEYS`), on Allow only. `Debug` never shows it.
    pub usage_identifier_key: Option<crate::usage::UsageKey>,
    /// The context passed on to the backend.
    pub context: Context,
}

/// An RFC 6750 §3 / RFC 9449 §7.1 challenge, kept structured until a front
/// renders it: `Bearer realm="…",error="…",error_description="…",scope="…"`.
///
/// ```
/// use certbound::request::Scheme;
/// use certbound::verdict::Challenge;
///
/// let c = Challenge::new(Scheme::Bearer)
///     .with("error", "insufficient_scope")
///     .with("scope", "accounts payments");
/// assert_eq!(c.to_string(), r#"Bearer error="insufficient_scope",scope="accounts payments""#);
/// assert_eq!(Challenge::parse(&c.to_string()), Some(c));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: Scheme,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// A challenge with no parameters (`Bearer`).
    pub fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            params: Vec::new(),
        }
    }

    /// Adds a parameter unless one of that name is already there.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        if self.param(name).is_none() {
            self.params.push((name.to_owned(), value.into()));
        }
        self
    }

    /// Adds `realm` first, unless the challenge already names one.
    pub fn with_realm(mut self, realm: Option<&str>) -> Self {
        if let Some(realm) = realm {
            if self.param("realm").is_none() {
                self.params
                    .insert(0, ("realm".to_owned(), realm.to_owned()));
            }
        }
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` parameter.
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    /// Reads a challenge an authorization server rendered (Authlete's
    /// `responseContent`): `Bearer` or `DPoP`, then `name=token` or
    /// `name="quoted"` parameters separated by commas. `None` for anything
    /// else, so that nothing unparsed reaches a header.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once(' ') {
            Some((s, r)) => (s, r),
            None => (text, ""),
        };
        let scheme = if scheme.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if scheme.eq_ignore_ascii_case("dpop") {
            Scheme::DPoP
        } else {
            return None;
        };
        let mut params = Vec::new();
        let mut chars = rest.trim().chars().peekable();
        while chars.peek().is_some() {
            let name: String = std::iter::from_fn(|| chars.next_if(|c| is_tchar(*c))).collect();
            if name.is_empty() || chars.next() != Some('=') {
                return None;
            }
            let value = if chars.next_if_eq(&'"').is_some() {
                let mut v = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => v.push(chars.next()?),
                        c => v.push(c),
                    }
                }
                v
            } else {
                let v: String = std::iter::from_fn(|| chars.next_if(|c| is_tchar(*c))).collect();
                if v.is_empty() {
                    return None;
                }
                v
            };
            params.push((name.to_ascii_lowercase(), value));
            while chars.next_if(|c| *c == ' ').is_some() {}
            match chars.next() {
                None => break,
                Some(',') => while chars.next_if(|c| *c == ' ').is_some() {},
                Some(_) => return None,
            }
        }
        Some(Self { scheme, params })
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)
}

impl std::fmt::Display for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.scheme)?;
        for (i, (k, v)) in self.params.iter().enumerate() {
            let sep = if i == 0 { " " } else { "," };
            write!(f, "{sep}{k}=\"{}\"", quote(v))?;
        }
        Ok(())
    }
}

/// Escapes a quoted-string value and drops characters a header cannot hold
/// (RFC 6750 limits error_description to printable ASCII).
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table_matches_the_reference() {
        use Action::*;
        use Decision as D;
        let cases = [
            (Some(Ok), D::Allow, D::Allow),
            (Some(BadRequest), D::Deny, D::Deny),
            (Some(Forbidden), D::Deny, D::Deny),
            (Some(Unauthorized), D::Deny, D::Unauthorized),
            (Some(InternalServerError), D::Deny, D::InternalServerError),
            (None, D::Deny, D::InternalServerError),
        ];
        for (action, with_policy, without_policy) in cases {
            assert_eq!(
                Decision::from_action(action, true),
                with_policy,
                "{action:?}"
            );
            assert_eq!(
                Decision::from_action(action, false),
                without_policy,
                "{action:?}"
            );
        }
    }

    #[test]
    fn challenges_are_rfc6750_shaped_and_escaped() {
        assert_eq!(Challenge::new(Scheme::Bearer).to_string(), "Bearer");
        assert_eq!(
            Challenge::new(Scheme::DPoP)
                .with("error", "invalid_token")
                .with("error_description", "bad \"x\"\n")
                .with_realm(Some("api"))
                .to_string(),
            r#"DPoP realm="api",error="invalid_token",error_description="bad \"x\"""#
        );
    }

    #[test]
    fn authlete_challenges_round_trip() {
        for text in [
            r#"Bearer error="invalid_token",error_description="[A065304] The access token does not exist.",error_uri="https://docs.authlete.com/#A065304""#,
            r#"Bearer error="insufficient_scope",error_description="[A064302] The access token does not cover the required scope 'payments'.",error_uri="https://docs.authlete.com/#A064302",scope="payments""#,
            r#"DPoP realm="x",algs="ES256 PS256",error="invalid_dpop_proof""#,
            "Bearer",
        ] {
            let c = Challenge::parse(text).expect(text);
            assert_eq!(c.to_string(), text);
        }
        let c = Challenge::parse(r#"bearer error=invalid_token, scope="a \"b\"""#).unwrap();
        assert_eq!(c.error(), Some("invalid_token"));
        assert_eq!(c.param("scope"), Some(r#"a "b""#));
        for bad in [
            "Basic realm=x",
            r#"Bearer error="unterminated"#,
            "Bearer error",
            "Bearer =x",
            "Bearer error=a b",
            "Bearer error=\"a\" junk",
            "",
        ] {
            assert_eq!(Challenge::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn context_values_serialize_flat() {
        let mut c = Context::new();
        c.insert("s".into(), "x".into());
        c.insert("n".into(), 5.into());
        c.insert("b".into(), true.into());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"b":true,"n":5,"s":"x"}"#
        );
    }
}
