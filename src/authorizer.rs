//! The [`Authorizer`] trait, its hooks, and the one flow every front runs:
//!
//! ```text
//! on_enter → determine_scopes → request checks (a local answer when the
//! request cannot succeed) → backend → the core's decision (binding, expiry,
//! scopes) → on_introspection | on_introspection_error → context →
//! update_policy_context → verdict →
//! on_allow | on_deny | on_unauthorized | on_internal_server_error
//! ```
//!
//! Implement the trait on your own type to customise a hook; delegate the
//! rest to a [`StandardAuthorizer`] you hold (see `examples/`).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::backends::{
    Action, CacheStatus, IntrospectionError, IntrospectionRequest, IntrospectionResponse,
    Introspector, Traced,
};
use crate::decision::{self, Facts, Validation};
use crate::request::AuthRequest;
use crate::request::Source;
use crate::scopes::ScopeRules;
use crate::usage::{UsageKey, UsageKeys};
use crate::verdict::{Challenge, Context, Decision, Verdict, ANONYMOUS_PRINCIPAL};

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
    /// What the core requires of every token (binding, leeway, scope default).
    pub validation: Validation,
    /// The most the backend step may take, all its HTTP calls together
    /// (introspection; JWKS discovery and fetch): beyond it the answer is
    /// a timeout (500 / Deny). `CERTBOUND_TIMEOUT_MS`.
    pub deadline: std::time::Duration,
    /// API key values by client (`CERTBOUND_USAGE_KEYS`): on Allow for a
    /// REST `REQUEST`/`TOKEN` event, the answer's `usageIdentifierKey`.
    pub usage_keys: UsageKeys,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: true,
            context_debug: false,
            realm: None,
            validation: Validation::default(),
            deadline: std::time::Duration::from_millis(3000),
            usage_keys: UsageKeys::default(),
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

    /// The scopes the call needs: `Some(scopes)` (possibly empty) when a
    /// rule covers the request, `None` when none does — the core then
    /// applies `CERTBOUND_SCOPE_DEFAULT` (`none`: no scope required;
    /// `deny`: refused). Compare [`AuthRequest::path`] (normalised) or
    /// [`AuthRequest::route`], never the raw path.
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
        let target = request.target.as_ref().ok()?;
        self.scope_rules.required(&request.method, target)
    }
}

/// Runs the whole flow for one request. Never panics on input, never
/// allows unless the backend vouched for the token and the core's checks
/// (binding, expiry, scopes) passed. Runs on a Tokio runtime with time
/// enabled (`enable_all`, as `#[tokio::main]` and `lambda_runtime` build
/// it): the backend step has a deadline, and the HTTP client timeouts.
pub async fn authorize<A: Authorizer + ?Sized>(authorizer: &A, request: &AuthRequest) -> Verdict {
    let settings = authorizer.settings();
    authorizer.on_enter(request).await;
    let scopes = authorizer.determine_scopes(request).await;
    let introspection = introspection_request(request, scopes.clone());
    let backend = authorizer.introspector();
    let facts = Facts {
        request,
        scopes: scopes.as_deref(),
        backend_verifies_dpop: backend.verifies_dpop(),
        realm: settings.realm.as_deref(),
    };

    let started = Instant::now();
    let (result, cache) = match decision::before_backend(&facts, &settings.validation) {
        Some(local) => (Ok(local), None),
        None => {
            let traced =
                tokio::time::timeout(settings.deadline, backend.introspect_traced(&introspection))
                    .await
                    .unwrap_or(Traced {
                        result: Err(IntrospectionError::Timeout),
                        cache: CacheStatus::Miss,
                    });
            let result = traced
                .result
                .map(|a| decision::decide(&facts, &settings.validation, a, now()));
            (result, Some(traced.cache))
        }
    };
    // The AS call's latency, only when this request made one.
    let latency_ms = cache
        .filter(|c| c.called_backend())
        .map(|_| started.elapsed().as_secs_f64() * 1000.0);
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

    let (reason, challenge) = match &result {
        Ok(r) if r.action == Action::Ok => (None, None),
        Ok(r) => (r.reason, r.challenge.clone()),
        Err(e) => (
            Some(e.reason()),
            Some(server_error_challenge(request, settings, e)),
        ),
    };
    let mut context = build_context(
        request,
        &introspection,
        &result,
        settings,
        challenge.as_ref(),
    );
    authorizer
        .update_policy_context(request, &introspection, result.as_ref(), &mut context)
        .await;

    let action = result.as_ref().ok().map(|r| r.action);
    let decision = Decision::from_action(action, settings.policy);
    let response = result.as_ref().ok();
    let verdict = Verdict {
        decision,
        action,
        reason,
        principal_id: response
            .and_then(|r| r.subject.clone().or_else(|| r.client_id.clone()))
            .unwrap_or_else(|| ANONYMOUS_PRINCIPAL.to_owned()),
        resource: request.resource.clone(),
        challenge,
        dpop_nonce: response.and_then(|r| r.dpop_nonce.clone()),
        usage_identifier_key: match (decision, response) {
            (Decision::Allow, Some(r)) => usage_key(request, settings, r),
            _ => None,
        },
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
    log_decision(request, &verdict, &result, cache, latency_ms);
    crate::telemetry::decision(verdict.decision, verdict.reason);
    verdict
}

/// The API key of the token's client, for REST API usage plans (REST
/// `REQUEST` and `TOKEN` events only; HTTP APIs have no usage plans). A
/// client without one is logged (its id, never a key).
fn usage_key(
    request: &AuthRequest,
    settings: &Settings,
    response: &IntrospectionResponse,
) -> Option<UsageKey> {
    if settings.usage_keys.is_empty()
        || !matches!(request.source, Source::RestRequest | Source::RestToken)
    {
        return None;
    }
    let names = response
        .client_id
        .iter()
        .chain(&response.client_identifiers)
        .map(String::as_str);
    let key = settings.usage_keys.lookup(names).cloned();
    if key.is_none() {
        tracing::info!(
            target: "certbound::usage",
            client_id = response.client_id.as_deref(),
            request_id = request.request_id.as_deref(),
            "no usage key for this client: no usageIdentifierKey (API Gateway refuses methods that require an API key)"
        );
    }
    key
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Builds the backend-neutral introspection request.
fn introspection_request(
    request: &AuthRequest,
    scopes: Option<Vec<String>>,
) -> IntrospectionRequest {
    let (token, scheme) = match &request.credentials {
        Ok(c) => (c.token.clone(), c.scheme),
        Err(_) => (SecretString::from(""), request.scheme()),
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

/// The challenge used when the backend itself failed.
fn server_error_challenge(
    request: &AuthRequest,
    settings: &Settings,
    e: &IntrospectionError,
) -> Challenge {
    Challenge::new(request.scheme())
        .with_realm(settings.realm.as_deref())
        .with("error", "server_error")
        .with(
            "error_description",
            format!("token introspection failed ({})", e.kind()),
        )
}

/// The context: only flat values, keys absent rather than null.
fn build_context(
    request: &AuthRequest,
    introspection: &IntrospectionRequest,
    result: &Result<IntrospectionResponse, IntrospectionError>,
    settings: &Settings,
    challenge: Option<&Challenge>,
) -> Context {
    let mut ctx = Context::new();
    if let Some(cert) = request.client_cert.cert() {
        ctx.insert("cert_thumbprint".into(), cert.thumbprint().into());
    }
    if let Some(challenge) = challenge {
        ctx.insert("challenge".into(), challenge.to_string().into());
    }
    match result {
        Ok(r) => {
            ctx.insert("action".into(), r.action.as_str().into());
            if let Some(reason) = r.reason {
                ctx.insert("reason".into(), reason.as_str().into());
            }
            if let Some(code) = &r.result_code {
                ctx.insert("resultCode".into(), code.as_str().into());
            }
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
            for (k, v) in &r.context {
                ctx.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Err(e) => {
            ctx.insert("reason".into(), e.reason().as_str().into());
            ctx.insert(
                "introspection_exception".into(),
                format!("{}: {e}", e.kind()).into(),
            );
        }
    }
    if settings.context_debug {
        let token = introspection.token.expose_secret();
        let redacted = json!({
            "token": if token.is_empty() { None } else {
                Some(format!("<redacted sha256:{}>", crate::request::token_hash(token)))
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
    cache: Option<CacheStatus>,
    latency_ms: Option<f64>,
) {
    let response = result.as_ref().ok();
    let error = result.as_ref().err().map(ToString::to_string);
    tracing::info!(
        target: "certbound::decision",
        verdict = verdict.decision.as_str(),
        reason = verdict.reason.map(|r| r.as_str()),
        action = verdict.action.map(|a| a.as_str()),
        result_code = response.and_then(|r| r.result_code.as_deref()),
        client_id = response.and_then(|r| r.client_id.as_deref()),
        sub = response.and_then(|r| r.subject.as_deref()),
        token_sha256 = request.token_hash().as_deref(),
        cert_thumbprint = request.client_cert.cert().map(|c| c.thumbprint()),
        method = %request.method,
        path = %request.path,
        route = request.route.as_deref(),
        request_id = request.request_id.as_deref(),
        cache = cache.map(CacheStatus::as_str),
        introspection_ms = latency_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
        error = error.as_deref(),
        "decision"
    );
}
