//! From an introspection outcome to a decision: the decision table, RFC 6750
//! challenges and the policy context (flat values only).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::introspection::{Action, IntrospectionError};
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

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Allow / Deny / Unauthorized / InternalServerError.
    pub decision: Decision,
    /// The introspection action (`None` when introspection failed).
    pub action: Option<Action>,
    /// `principalId`: subject, else client id, else a placeholder.
    pub principal_id: String,
    /// What the policy is about (`methodArn` / `routeArn` / URI).
    pub resource: String,
    /// The `WWW-Authenticate` value when the answer is not Allow.
    pub challenge: Option<String>,
    /// A `DPoP-Nonce` to hand to the client, when the AS asked for one.
    pub dpop_nonce: Option<String>,
    /// The context passed on to the backend.
    pub context: Context,
}

/// The `principalId` used when neither subject nor client id is known.
pub const ANONYMOUS_PRINCIPAL: &str = "anonymous";

/// Builds an RFC 6750 §3 challenge:
/// `Bearer realm="…",error="…",error_description="…",scope="…"`.
pub fn challenge(
    scheme: Scheme,
    realm: Option<&str>,
    error: Option<&str>,
    description: Option<&str>,
    scope: Option<&str>,
) -> String {
    let params: Vec<String> = [
        ("realm", realm),
        ("error", error),
        ("error_description", description),
        ("scope", scope),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}=\"{}\"", quote(v))))
    .collect();
    if params.is_empty() {
        scheme.to_string()
    } else {
        format!("{scheme} {}", params.join(","))
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

/// The challenge used when introspection itself failed.
pub fn server_error_challenge(
    scheme: Scheme,
    realm: Option<&str>,
    e: &IntrospectionError,
) -> String {
    challenge(
        scheme,
        realm,
        Some("server_error"),
        Some(&format!("token introspection failed ({})", e.kind())),
        None,
    )
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
        assert_eq!(challenge(Scheme::Bearer, None, None, None, None), "Bearer");
        assert_eq!(
            challenge(
                Scheme::DPoP,
                Some("api"),
                Some("invalid_token"),
                Some("bad \"x\"\n"),
                None
            ),
            r#"DPoP realm="api",error="invalid_token",error_description="bad \"x\"""#
        );
        assert_eq!(
            challenge(
                Scheme::Bearer,
                None,
                Some("insufficient_scope"),
                None,
                Some("a b")
            ),
            r#"Bearer error="insufficient_scope",scope="a b""#
        );
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
