//! The one decision, for every backend and every front: request checks
//! before the backend is asked ([`before_backend`]), then activity, expiry,
//! the certificate binding and the scopes over what it answered
//! ([`decide`]). Each rule lives here once.
//!
//! **Binding** ([`BindingPolicy`], `CERTBOUND_REQUIRE_BINDING`):
//! - a token bound to a certificate (`cnf.x5t#S256`, Authlete's
//!   `certificateThumbprint`) is accepted only with that certificate
//!   (constant-time compare), whatever the policy;
//! - `certificate` (default): an unbound token is refused, and a request
//!   without a readable client certificate is refused before any backend
//!   call; a TOKEN event (which cannot carry a certificate) too;
//! - `certificate-or-dpop`: as above, except that a token presented with
//!   the `DPoP` scheme and a `DPoP` proof may be unbound to a certificate
//!   **when the backend verifies the proof** (Authlete). Never a plain
//!   bearer token;
//! - `false`: unbound tokens are accepted (bound ones still need their
//!   certificate).
//!
//! A DPoP-bound token (`cnf.jkt`, or the `DPoP` scheme) is refused by a
//! backend that cannot verify DPoP proofs (claims backends).
//!
//! **Expiry**: `exp`, `nbf`, `iat` with [`Validation::leeway_s`] seconds of
//! clock skew, the same for every claims backend; Authlete's `expiresAt` is
//! checked too.

use subtle::ConstantTimeEq;

use crate::backends::{Action, Answer, Claims, IntrospectionResponse};
use crate::request::{AuthRequest, CredentialsError, PresentedCert, Scheme, Source};
use crate::verdict::{Challenge, Reason};

/// What binding the core requires (`CERTBOUND_REQUIRE_BINDING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BindingPolicy {
    /// Every token must be bound to the presented certificate (`true`,
    /// `certificate`).
    #[default]
    Certificate,
    /// Certificate-bound, or DPoP-bound with a proof the backend verifies.
    CertificateOrDpop,
    /// Unbound tokens are accepted (`false`).
    Off,
}

impl BindingPolicy {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingPolicy::Certificate => "certificate",
            BindingPolicy::CertificateOrDpop => "certificate-or-dpop",
            BindingPolicy::Off => "false",
        }
    }
}

/// What to do with a request no scope rule matches
/// (`CERTBOUND_SCOPE_DEFAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ScopeDefault {
    /// No scope is required (`none`).
    #[default]
    None,
    /// The request is refused with 403 (`deny`).
    Deny,
}

/// The validation policy: what the core requires of every token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The binding rule.
    pub binding: BindingPolicy,
    /// Clock skew allowed on `exp`, `nbf`, `iat` (seconds).
    pub leeway_s: i64,
    /// Requests no rule matches.
    pub scope_default: ScopeDefault,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            binding: BindingPolicy::Certificate,
            leeway_s: DEFAULT_LEEWAY_S,
            scope_default: ScopeDefault::None,
        }
    }
}

/// The default clock skew allowance.
pub const DEFAULT_LEEWAY_S: i64 = 10;

/// The request-side facts the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The request.
    pub request: &'a AuthRequest,
    /// The scopes the route needs (`None`: no rule matched).
    pub scopes: Option<&'a [String]>,
    /// Whether the backend verifies DPoP proofs.
    pub backend_verifies_dpop: bool,
    /// `realm` for challenges.
    pub realm: Option<&'a str>,
}

impl Facts<'_> {
    fn scheme(&self) -> Scheme {
        self.request.scheme()
    }

    fn dpop_verified_by_backend(&self) -> bool {
        self.scheme() == Scheme::DPoP
            && self.request.dpop_proof.is_some()
            && self.backend_verifies_dpop
    }

    fn refuse(&self, reason: Reason, description: &str) -> IntrospectionResponse {
        refusal(self.scheme(), self.realm, reason, description, None)
    }
}

/// The action and RFC 6750 error code for a refusal reason.
fn action_and_error(reason: Reason) -> (Action, Option<&'static str>) {
    use Reason::*;
    match reason {
        TokenMissing => (Action::BadRequest, None),
        TokenMalformed | CertUnreadable => (Action::BadRequest, Some("invalid_request")),
        PathRejected => (Action::Forbidden, Some("invalid_request")),
        ScopeInsufficient | RouteUnmatched => (Action::Forbidden, Some("insufficient_scope")),
        AsUnavailable | AsError | EventInvalid => {
            (Action::InternalServerError, Some("server_error"))
        }
        _ => (Action::Unauthorized, Some("invalid_token")),
    }
}

/// A refusal decided by certbound: action, `certbound.<reason>` result
/// code, and the challenge built from structured data.
pub fn refusal(
    scheme: Scheme,
    realm: Option<&str>,
    reason: Reason,
    description: &str,
    scope: Option<&str>,
) -> IntrospectionResponse {
    let (action, error) = action_and_error(reason);
    let mut challenge = Challenge::new(scheme).with_realm(realm);
    if let Some(error) = error {
        challenge = challenge
            .with("error", error)
            .with("error_description", description);
    }
    if let Some(scope) = scope {
        challenge = challenge.with("scope", scope);
    }
    IntrospectionResponse {
        reason: Some(reason),
        result_code: Some(format!("certbound.{reason}")),
        result_message: Some(description.to_owned()),
        challenge: Some(challenge),
        ..IntrospectionResponse::new(action)
    }
}

/// Checks that need no backend: a request that cannot succeed is answered
/// here, and the authorization server is not asked.
pub fn before_backend(facts: &Facts<'_>, validation: &Validation) -> Option<IntrospectionResponse> {
    let r = facts.request;
    if let Err(e) = &r.target {
        return Some(facts.refuse(
            Reason::PathRejected,
            &format!("{e}: refused rather than guessed"),
        ));
    }
    match &r.credentials {
        // RFC 6750 §3.1: no error code when no credentials were sent.
        Err(CredentialsError::Missing) => {
            return Some(facts.refuse(Reason::TokenMissing, "no access token"))
        }
        Err(e) => return Some(facts.refuse(Reason::TokenMalformed, &e.to_string())),
        Ok(_) => {}
    }
    if let PresentedCert::Invalid(e) = &r.client_cert {
        return Some(facts.refuse(
            Reason::CertUnreadable,
            &format!("client certificate is unreadable: {e}"),
        ));
    }
    if facts.scopes.is_none() && validation.scope_default == ScopeDefault::Deny {
        return Some(facts.refuse(Reason::RouteUnmatched, "no scope rule covers this request"));
    }
    if facts.scheme() == Scheme::DPoP && !facts.backend_verifies_dpop {
        return Some(facts.refuse(
            Reason::DpopUnverifiable,
            "DPoP-bound tokens cannot be verified with this backend",
        ));
    }
    if r.client_cert.cert().is_none() {
        let dpop_instead = validation.binding == BindingPolicy::CertificateOrDpop
            && facts.dpop_verified_by_backend();
        if validation.binding != BindingPolicy::Off && !dpop_instead {
            let description = if r.source == Source::RestToken {
                "a client certificate is required, and TOKEN authorizers never see it: use a REQUEST authorizer"
            } else {
                "a client certificate is required (certificate-bound tokens only)"
            };
            return Some(facts.refuse(Reason::CertMissing, description));
        }
    }
    None
}

/// Decides over a backend's answer. Pure: `now` is seconds since the epoch.
pub fn decide(
    facts: &Facts<'_>,
    validation: &Validation,
    answer: Answer,
    now: i64,
) -> IntrospectionResponse {
    match answer {
        Answer::Claims(c) => decide_claims(facts, validation, c, now),
        Answer::Decided(d) => decide_as(facts, validation, d, now),
    }
}

fn decide_claims(
    facts: &Facts<'_>,
    validation: &Validation,
    claims: Claims,
    now: i64,
) -> IntrospectionResponse {
    let leeway = validation.leeway_s;
    if !claims.active {
        let (reason, description) = match &claims.refusal {
            Some(r) => (r.reason, r.description.as_str()),
            None => (
                Reason::TokenInactive,
                "token is not active (unknown, expired or revoked)",
            ),
        };
        let mut out = facts.refuse(reason, description);
        out.raw = claims.raw;
        return out;
    }
    let check = if claims
        .exp
        .is_some_and(|exp| exp.saturating_add(leeway) <= now)
    {
        Err((Reason::TokenExpired, "token has expired"))
    } else if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        Err((Reason::TokenNotYetValid, "token is not valid yet (nbf)"))
    } else if claims
        .iat
        .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        Err((
            Reason::TokenNotYetValid,
            "token is issued in the future (iat)",
        ))
    } else if claims.cnf.jkt.is_some() && !facts.dpop_verified_by_backend() {
        Err((
            Reason::DpopUnverifiable,
            "token is DPoP-bound and this backend cannot verify DPoP proofs",
        ))
    } else {
        binding(facts, validation, claims.cnf.x5t_s256.as_deref())
    };
    let mut out = match check {
        Err((reason, description)) => facts.refuse(reason, description),
        Ok(()) => scopes(facts, Some(&claims.scopes)),
    };
    out.client_id = claims.client_id;
    out.subject = claims.sub;
    out.scopes = Some(claims.scopes);
    out.expires_at_ms = claims.exp.map(|s| s.saturating_mul(1000));
    out.certificate_thumbprint = claims.cnf.x5t_s256;
    out.context = claims.context;
    out.raw = claims.raw;
    out
}

fn decide_as(
    facts: &Facts<'_>,
    validation: &Validation,
    d: IntrospectionResponse,
    now: i64,
) -> IntrospectionResponse {
    let mut out = if d.action != Action::Ok {
        // The AS refused: keep its result and its challenge (structured),
        // adding the configured realm; build one when it sent none.
        let reason = match d.action {
            Action::BadRequest => Reason::TokenMalformed,
            Action::Forbidden => Reason::ScopeInsufficient,
            Action::InternalServerError => Reason::AsError,
            _ => unauthorized_reason(facts, validation, &d, now),
        };
        let challenge = d.challenge.unwrap_or_else(|| {
            let base = Challenge::new(facts.scheme());
            match action_and_error(reason).1 {
                Some(error) => base.with("error", error),
                None => base,
            }
        });
        IntrospectionResponse {
            reason: Some(reason),
            result_code: d.result_code,
            result_message: d.result_message,
            challenge: Some(challenge.with_realm(facts.realm)),
            ..IntrospectionResponse::new(d.action)
        }
    } else {
        let expired = d
            .expires_at_ms
            .filter(|ms| *ms > 0)
            .is_some_and(|ms| (ms / 1000).saturating_add(validation.leeway_s) <= now);
        let check = if expired {
            Err((Reason::TokenExpired, "token has expired"))
        } else {
            binding(facts, validation, d.certificate_thumbprint.as_deref())
        };
        match check {
            Err((reason, description)) => facts.refuse(reason, description),
            Ok(()) => {
                let mut ok = scopes(facts, d.scopes.as_deref());
                if ok.action == Action::Ok {
                    ok.result_code = d.result_code;
                    ok.result_message = d.result_message;
                }
                ok
            }
        }
    };
    out.client_id = d.client_id;
    out.client_identifiers = d.client_identifiers;
    out.subject = d.subject;
    out.scopes = d.scopes;
    out.expires_at_ms = d.expires_at_ms;
    out.certificate_thumbprint = d.certificate_thumbprint;
    out.dpop_nonce = d.dpop_nonce;
    out.raw = d.raw;
    out
}

/// The binding rule, once: `bound_to` is the thumbprint the token is bound
/// to, as the backend reports it.
fn binding(
    facts: &Facts<'_>,
    validation: &Validation,
    bound_to: Option<&str>,
) -> Result<(), (Reason, &'static str)> {
    let presented = facts.request.client_cert.cert();
    match (bound_to, presented) {
        (Some(expected), Some(cert)) => {
            if expected
                .as_bytes()
                .ct_eq(cert.thumbprint().as_bytes())
                .into()
            {
                Ok(())
            } else {
                Err((
                    Reason::CertMismatch,
                    "token is bound to a different client certificate",
                ))
            }
        }
        (Some(_), None) => Err((
            Reason::CertMissing,
            "token is certificate-bound but no client certificate was presented",
        )),
        (None, _) => match validation.binding {
            BindingPolicy::Off => Ok(()),
            BindingPolicy::CertificateOrDpop if facts.dpop_verified_by_backend() => Ok(()),
            _ => Err((Reason::TokenUnbound, "token is not certificate-bound")),
        },
    }
}

/// Why a deciding backend (Authlete) said UNAUTHORIZED, as precisely as
/// its answer tells: the token is bound to a certificate it reports
/// (`certificateThumbprint`) and another or none was presented; or the
/// backend's hint (Authlete's documented `existent` / `usable` flags:
/// [`Reason::TokenExpired`] only when `expiresAt` is past, too); else
/// `token_inactive`. Only the label: the action stays the server's.
fn unauthorized_reason(
    facts: &Facts<'_>,
    validation: &Validation,
    d: &IntrospectionResponse,
    now: i64,
) -> Reason {
    if let Some(bound) = d.certificate_thumbprint.as_deref() {
        if let Err((reason, _)) = binding(facts, validation, Some(bound)) {
            return reason;
        }
    }
    let expired = d
        .expires_at_ms
        .filter(|ms| *ms > 0)
        .is_some_and(|ms| (ms / 1000).saturating_add(validation.leeway_s) <= now);
    match d.reason {
        Some(Reason::TokenExpired) if expired => Reason::TokenExpired,
        _ => Reason::TokenInactive,
    }
}

/// The scope check: every required scope must be granted. `granted: None`
/// (a deciding backend that lists none) trusts the backend's own check.
fn scopes(facts: &Facts<'_>, granted: Option<&[String]>) -> IntrospectionResponse {
    let missing: Vec<&str> = match granted {
        None => Vec::new(),
        Some(granted) => facts
            .scopes
            .into_iter()
            .flatten()
            .filter(|s| !granted.contains(s))
            .map(String::as_str)
            .collect(),
    };
    if missing.is_empty() {
        return IntrospectionResponse {
            result_code: Some("certbound.ok".into()),
            result_message: Some("token is valid".into()),
            ..IntrospectionResponse::new(Action::Ok)
        };
    }
    let missing = missing.join(" ");
    let mut out = refusal(
        facts.scheme(),
        facts.realm,
        Reason::ScopeInsufficient,
        "token lacks a required scope",
        Some(&missing),
    );
    out.result_message = Some(format!("token lacks a required scope: {missing}"));
    out
}
