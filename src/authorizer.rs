//! The [`Authorizer`] trait, its hooks, and the one flow every front runs:
//!
//! ```text
//! on_enter → determine_scopes → introspect (or a local answer when the
//! request has no usable token/cert) → on_introspection | on_introspection_error
//! → context → update_policy_context → decision →
//! on_allow | on_deny | on_unauthorized | on_internal_server_error
//! ```
//!
//! Implement the trait on your own type to customise a hook; delegate the
//! rest to a [`StandardAuthorizer`] you hold (see `examples/`).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;

use crate::introspection::{
    Action, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
};
use crate::request::{AuthRequest, CredentialsError, PresentedCert};
use crate::scopes::ScopeRules;
use crate::verdict::{
    challenge, server_error_challenge, Context, Decision, Verdict, ANONYMOUS_PRINCIPAL,
};

/// Behaviour switches shared by every front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `true` (default): always answer with a policy (Allow/Deny);
    /// `false`: answer `Unauthorized` / `Internal Server Error` errors.
    pub policy: bool,
    /// Add `introspection_request` / `introspection_response` (token
    /// redacted) to the context.
    pub context_debug: bool,
    /// `realm` for the challenges certbound builds itself.
    pub realm: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: true,
            context_debug: false,
            realm: None,
        }
    }
}

/// An authorizer: a backend, settings, and hooks with no-op defaults.
/// The flow itself is [`authorize`].
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// The introspection backend.
    fn introspector(&self) -> &dyn Introspector;

    /// Behaviour switches.
    fn settings(&self) -> &Settings;

    /// Called first, before anything is decided.
    async fn on_enter(&self, _request: &AuthRequest) {}

    /// The scopes the call needs (`None`: no requirement).
    async fn determine_scopes(&self, _request: &AuthRequest) -> Option<Vec<String>> {
        None
    }

    /// Called with the introspection answer (also for local answers, whose
    /// `result_code` starts with `certbound.`).
    async fn on_introspection(
        &self,
        _request: &AuthRequest,
        _introspection: &IntrospectionRequest,
        _response: &IntrospectionResponse,
    ) {
    }

    /// Called when introspection failed (transport, status, bad answer).
    async fn on_introspection_error(
        &self,
        _request: &AuthRequest,
        _introspection: &IntrospectionRequest,
        _error: &IntrospectionError,
    ) {
    }

    /// Last chance to change the context handed to the backend. Only flat
    /// values fit ([`crate::verdict::ContextValue`]).
    async fn update_policy_context(
        &self,
        _request: &AuthRequest,
        _introspection: &IntrospectionRequest,
        _result: Result<&IntrospectionResponse, &IntrospectionError>,
        _context: &mut Context,
    ) {
    }

    /// Called when the call is allowed.
    async fn on_allow(&self, _request: &AuthRequest, _verdict: &Verdict) {}

    /// Called when the call is denied with a Deny policy.
    async fn on_deny(&self, _request: &AuthRequest, _verdict: &Verdict) {}

    /// Called when the call is refused with `Unauthorized` (policy off).
    async fn on_unauthorized(&self, _request: &AuthRequest, _verdict: &Verdict) {}

    /// Called when the call fails with `Internal Server Error` (policy off).
    async fn on_internal_server_error(&self, _request: &AuthRequest, _verdict: &Verdict) {}
}

/// The ready-made authorizer: scopes from [`ScopeRules`], no other hooks.
pub struct StandardAuthorizer {
    introspector: Arc<dyn Introspector>,
    settings: Settings,
    scope_rules: ScopeRules,
}

impl StandardAuthorizer {
    /// An authorizer over a backend, with no scope rules.
    pub fn new(introspector: Arc<dyn Introspector>, settings: Settings) -> Self {
        Self {
            introspector,
            settings,
            scope_rules: ScopeRules::default(),
        }
    }

    /// Uses these rules in `determine_scopes`.
    pub fn with_scope_rules(mut self, rules: ScopeRules) -> Self {
        self.scope_rules = rules;
        self
    }

    /// The rules in use.
    pub fn scope_rules(&self) -> &ScopeRules {
        &self.scope_rules
    }
}

#[async_trait]
impl Authorizer for StandardAuthorizer {
    fn introspector(&self) -> &dyn Introspector {
        self.introspector.as_ref()
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn determine_scopes(&self, request: &AuthRequest) -> Option<Vec<String>> {
        self.scope_rules.required(&request.method, &request.path)
    }
}

/// Runs the whole flow for one request. Never panics on input, never
/// allows unless introspection said `OK`.
pub async fn authorize<A: Authorizer + ?Sized>(authorizer: &A, request: &AuthRequest) -> Verdict {
    let settings = authorizer.settings();
    authorizer.on_enter(request).await;
    let scopes = authorizer.determine_scopes(request).await;
    let introspection = introspection_request(request, scopes);

    let started = Instant::now();
    let result = match local_answer(request, settings.realm.as_deref()) {
        Some(answer) => Ok(answer),
        None => authorizer.introspector().introspect(&introspection).await,
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(r) => {
            authorizer
                .on_introspection(request, &introspection, r)
                .await
        }
        Err(e) => {
            authorizer
                .on_introspection_error(request, &introspection, e)
                .await
        }
    }

    let mut context = build_context(request, &introspection, &result, settings);
    authorizer
        .update_policy_context(request, &introspection, result.as_ref(), &mut context)
        .await;

    let action = result.as_ref().ok().map(|r| r.action);
    let decision = Decision::from_action(action, settings.policy);
    let response = result.as_ref().ok();
    let verdict = Verdict {
        decision,
        action,
        principal_id: response
            .and_then(|r| r.subject.clone().or_else(|| r.client_id.clone()))
            .unwrap_or_else(|| ANONYMOUS_PRINCIPAL.to_owned()),
        resource: request.resource.clone(),
        challenge: match decision {
            Decision::Allow => None,
            _ => context.get("challenge").map(ToString::to_string),
        },
        dpop_nonce: response.and_then(|r| r.dpop_nonce.clone()),
        context,
    };
    match decision {
        Decision::Allow => authorizer.on_allow(request, &verdict).await,
        Decision::Deny => authorizer.on_deny(request, &verdict).await,
        Decision::Unauthorized => authorizer.on_unauthorized(request, &verdict).await,
        Decision::InternalServerError => {
            authorizer.on_internal_server_error(request, &verdict).await
        }
    }
    log_decision(request, &verdict, &result, latency_ms);
    verdict
}

/// Builds the backend-neutral introspection request.
fn introspection_request(
    request: &AuthRequest,
    scopes: Option<Vec<String>>,
) -> IntrospectionRequest {
    let (token, scheme) = match &request.credentials {
        Ok(c) => (c.token.clone(), c.scheme),
        Err(_) => (String::new(), request.scheme()),
    };
    IntrospectionRequest {
        token,
        scheme,
        scopes,
        client_cert: request.client_cert.cert().cloned(),
        dpop: request.dpop_proof.clone(),
        htm: Some(request.method.clone()),
        htu: request.htu.clone(),
    }
}

/// Answers requests that cannot succeed without asking the AS: no token, a
/// malformed `Authorization` header, an unreadable client certificate.
fn local_answer(request: &AuthRequest, realm: Option<&str>) -> Option<IntrospectionResponse> {
    let scheme = request.scheme();
    let bad = |code: &str, message: &str, error: Option<&str>| {
        let description = error.map(|_| message);
        Some(IntrospectionResponse::local(
            Action::BadRequest,
            code,
            message,
            Some(challenge(scheme, realm, error, description, None)),
        ))
    };
    match (&request.credentials, &request.client_cert) {
        // RFC 6750 §3.1: no error code when no credentials were sent.
        (Err(CredentialsError::Missing), _) => bad("certbound.no_token", "no access token", None),
        (Err(e), _) => bad(
            "certbound.malformed_authorization",
            &e.to_string(),
            Some("invalid_request"),
        ),
        (Ok(_), PresentedCert::Invalid(e)) => bad(
            "certbound.invalid_client_certificate",
            &format!("client certificate is unreadable: {e}"),
            Some("invalid_request"),
        ),
        _ => None,
    }
}

/// The context: only flat values, keys absent rather than null.
fn build_context(
    request: &AuthRequest,
    introspection: &IntrospectionRequest,
    result: &Result<IntrospectionResponse, IntrospectionError>,
    settings: &Settings,
) -> Context {
    let mut ctx = Context::new();
    if let Some(cert) = request.client_cert.cert() {
        ctx.insert("cert_thumbprint".into(), cert.thumbprint().into());
    }
    match result {
        Ok(r) => {
            ctx.insert("action".into(), r.action.as_str().into());
            if let Some(m) = &r.result_message {
                ctx.insert("resultMessage".into(), m.as_str().into());
            }
            if let Some(scopes) = r.scopes.as_ref().filter(|s| !s.is_empty()) {
                ctx.insert("scope".into(), scopes.join(" ").into());
            }
            if let Some(id) = &r.client_id {
                ctx.insert("client_id".into(), id.as_str().into());
            }
            if let Some(sub) = &r.subject {
                ctx.insert("sub".into(), sub.as_str().into());
            }
            if let Some(ms) = r.expires_at_ms {
                ctx.insert("exp".into(), (ms / 1000).into());
            }
            if r.action != Action::Ok {
                let value = r.response_content.clone().unwrap_or_else(|| {
                    let error = match r.action {
                        Action::BadRequest => "invalid_request",
                        Action::Forbidden => "insufficient_scope",
                        Action::InternalServerError => "server_error",
                        _ => "invalid_token",
                    };
                    challenge(
                        request.scheme(),
                        settings.realm.as_deref(),
                        Some(error),
                        None,
                        None,
                    )
                });
                ctx.insert("challenge".into(), value.into());
            }
        }
        Err(e) => {
            ctx.insert(
                "introspection_exception".into(),
                format!("{}: {e}", e.kind()).into(),
            );
            ctx.insert(
                "challenge".into(),
                server_error_challenge(request.scheme(), settings.realm.as_deref(), e).into(),
            );
        }
    }
    if settings.context_debug {
        let redacted = json!({
            "token": if introspection.token.is_empty() { None } else {
                Some(format!("<redacted sha256:{}>", crate::request::token_hash(&introspection.token)))
            },
            "scheme": introspection.scheme.to_string(),
            "scopes": introspection.scopes,
            "clientCertificateThumbprint": introspection.client_cert.as_ref().map(|c| c.thumbprint()),
            "dpop": introspection.dpop.is_some(),
            "htm": introspection.htm,
            "htu": introspection.htu,
        });
        ctx.insert("introspection_request".into(), redacted.to_string().into());
        if let Ok(r) = result {
            if !r.raw.is_null() {
                ctx.insert("introspection_response".into(), r.raw.to_string().into());
            }
        }
    }
    ctx
}

fn log_decision(
    request: &AuthRequest,
    verdict: &Verdict,
    result: &Result<IntrospectionResponse, IntrospectionError>,
    latency_ms: f64,
) {
    let response = result.as_ref().ok();
    let error = result.as_ref().err().map(ToString::to_string);
    tracing::info!(
        target: "certbound::decision",
        verdict = verdict.decision.as_str(),
        action = verdict.action.map(|a| a.as_str()),
        result_code = response.and_then(|r| r.result_code.as_deref()),
        client_id = response.and_then(|r| r.client_id.as_deref()),
        sub = response.and_then(|r| r.subject.as_deref()),
        token_sha256 = request.token_hash().as_deref(),
        cert_thumbprint = request.client_cert.cert().map(|c| c.thumbprint()),
        method = %request.method,
        path = %request.path,
        request_id = request.request_id.as_deref(),
        introspection_ms = (latency_ms * 1000.0).round() / 1000.0,
        error = error.as_deref(),
        "decision"
    );
}
