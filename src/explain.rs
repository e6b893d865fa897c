//! `certbound explain`: one request, step by step, for an operator who asks
//! "why was this call refused?" — what was extracted, which rule required
//! which scopes, what the backend answered, which check decided, and the
//! outcome. It runs the real flow ([`authorize`]) with the real
//! configuration and backend (no cache), and prints only what is safe to
//! paste into a ticket: never the token (an 8-hex SHA-256 prefix instead),
//! never a secret, never a certificate body.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use der::Decode;

use crate::authorizer::{authorize, StandardAuthorizer};
use crate::backends::{
    Answer, CacheScope, Claims, IntrospectionError, IntrospectionRequest, IntrospectionResponse,
    Introspector,
};
use crate::cert::ClientCert;
use crate::config::{Config, ServeConfig};
use crate::decision::ScopeDefault;
use crate::fronts::lambda::read_event;
use crate::request::{AuthRequest, PresentedCert};
use crate::verdict::{Reason, Verdict};

/// What one explained request came to.
#[derive(Debug)]
pub struct Explanation {
    /// The verdict the real flow produced.
    pub verdict: Verdict,
    /// The steps, as text for an operator.
    pub text: String,
}

/// The backend's answer as the flow saw it.
#[derive(Default)]
struct Record {
    asked: Option<(Result<Answer, IntrospectionError>, Duration)>,
}

/// Passes calls through and remembers the answer.
struct Recorder {
    inner: Arc<dyn Introspector>,
    record: Arc<Mutex<Record>>,
}

#[async_trait]
impl Introspector for Recorder {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        let started = Instant::now();
        let result = self.inner.introspect(request).await;
        if let Ok(mut r) = self.record.lock() {
            r.asked = Some((result.clone(), started.elapsed()));
        }
        result
    }

    fn verifies_dpop(&self) -> bool {
        self.inner.verifies_dpop()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn cache_scope(&self) -> CacheScope {
        self.inner.cache_scope()
    }
}

/// Reads a Lambda authorizer event; returns the request and the event kind.
pub fn request_from_event(bytes: &[u8]) -> Result<(AuthRequest, String), String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not JSON ({})", crate::transport::json_error_kind(&e)))?;
    let (request, kind) = read_event(value).map_err(|e| e.to_string())?;
    Ok((request, format!("{kind} event")))
}

/// Reads a raw HTTP/1.1 request as a proxy sends it to `certbound serve`
/// (request line and headers; LF line ends accepted, a body ignored).
pub fn request_from_http(
    bytes: &[u8],
    serve: &ServeConfig,
) -> Result<(AuthRequest, String), String> {
    let mut text = bytes.to_vec();
    if !text.windows(2).any(|w| w == b"\r\n") {
        let mut crlf = Vec::with_capacity(text.len() + 64);
        for b in text {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        text = crlf;
    }
    if !text.windows(4).any(|w| w == b"\r\n\r\n") {
        while text.ends_with(b"\r\n") {
            text.truncate(text.len() - 2);
        }
        text.extend_from_slice(b"\r\n\r\n");
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&text) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete HTTP request".into()),
        Err(e) => return Err(format!("not an HTTP/1.1 request: {e}")),
    }
    let method = http::Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| "the request line has no valid method".to_owned())?;
    let path = parsed.path.unwrap_or("/").to_owned();
    let mut map = http::HeaderMap::new();
    for h in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", clip(h.name, 60)))?;
        let value = http::HeaderValue::from_bytes(h.value)
            .map_err(|_| format!("invalid value for header {name}"))?;
        map.append(name, value);
    }
    let request = crate::fronts::http::to_auth_request(&method, &path, &map, serve)
        .map_err(|e| e.to_string())?;
    Ok((request, format!("HTTP request via {:?}", serve.proxy)))
}

/// Runs `request` through the flow of `config` over `backend` and explains
/// it. `origin` names where the request came from (a file, a front).
pub async fn explain(
    config: &Config,
    backend: Arc<dyn Introspector>,
    request: &AuthRequest,
    origin: &str,
) -> Explanation {
    let record = Arc::new(Mutex::new(Record::default()));
    let recorder = Arc::new(Recorder {
        inner: backend.clone(),
        record: record.clone(),
    });
    let authorizer = StandardAuthorizer::new(recorder, config.settings.clone())
        .with_scope_rules(config.scope_rules.clone());
    let verdict = authorize(&authorizer, request).await;
    let asked = record.lock().ok().and_then(|mut r| r.asked.take());

    let mut out = String::new();
    let _ = writeln!(out, "certbound explain: {origin}");
    extracted(&mut out, request);
    scopes(&mut out, config, request);
    let response = backend_step(&mut out, config, asked.as_ref());
    decided(&mut out, request, &verdict, asked.as_ref(), response);
    outcome(&mut out, &verdict);
    Explanation { verdict, text: out }
}

fn extracted(out: &mut String, request: &AuthRequest) {
    let _ = writeln!(out, "\n1. extracted ({:?} request)", request.source);
    let _ = writeln!(out, "   method        {}", request.method);
    match &request.path_error {
        None => {
            let _ = writeln!(out, "   path          {}", request.path);
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "   path          refused: {e} (raw {:?})",
                clip(&request.raw_path, 200)
            );
        }
    }
    if request.raw_path != request.path && request.path_error.is_none() {
        let _ = writeln!(out, "   raw path      {:?}", clip(&request.raw_path, 200));
    }
    if let Some(route) = &request.route {
        let mut params: Vec<_> = request.path_parameters.iter().collect();
        params.sort();
        let params: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", clip(v, 60)))
            .collect();
        if params.is_empty() {
            let _ = writeln!(out, "   route         {route}");
        } else {
            let _ = writeln!(out, "   route         {route} {}", params.join(" "));
        }
    }
    match &request.credentials {
        Ok(c) => {
            let _ = writeln!(
                out,
                "   token         {} scheme, sha256 {}… (the token itself is never shown)",
                c.scheme,
                c.token_hash()
            );
        }
        Err(e) => {
            let _ = writeln!(out, "   token         none: {e}");
        }
    }
    match &request.client_cert {
        PresentedCert::Absent => {
            let _ = writeln!(out, "   certificate   none presented");
        }
        PresentedCert::Invalid(e) => {
            let _ = writeln!(out, "   certificate   unreadable: {e}");
        }
        PresentedCert::Present(cert) => {
            let _ = writeln!(out, "   certificate   x5t#S256 {}", cert.thumbprint());
            if let Some(d) = describe_cert(cert) {
                let _ = writeln!(out, "                 subject {}", d.subject);
                let _ = writeln!(out, "                 issuer  {}", d.issuer);
                let _ = writeln!(
                    out,
                    "                 valid   {} .. {}",
                    d.not_before, d.not_after
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "   DPoP proof    {}",
        if request.dpop_proof.is_some() {
            "present"
        } else {
            "absent"
        }
    );
}

struct CertDescription {
    subject: String,
    issuer: String,
    not_before: String,
    not_after: String,
}

fn describe_cert(cert: &ClientCert) -> Option<CertDescription> {
    let parsed = x509_cert::Certificate::from_der(cert.der()).ok()?;
    let tbs = &parsed.tbs_certificate;
    Some(CertDescription {
        subject: clip(&tbs.subject.to_string(), 200),
        issuer: clip(&tbs.issuer.to_string(), 200),
        not_before: tbs.validity.not_before.to_string(),
        not_after: tbs.validity.not_after.to_string(),
    })
}

fn scopes(out: &mut String, config: &Config, request: &AuthRequest) {
    let _ = writeln!(out, "\n2. scopes");
    let default = config.settings.validation.scope_default;
    match &request.target {
        Err(_) => {
            let _ = writeln!(out, "   no rule consulted: the path was refused");
        }
        Ok(target) => match config.scope_rules.matching(&request.method, target) {
            Some((index, rule)) => {
                let needs = if rule.scopes.is_empty() {
                    "no scope".to_owned()
                } else {
                    rule.scopes.join(" ")
                };
                let _ = writeln!(
                    out,
                    "   rule #{index} ({} {}) requires: {needs}",
                    rule.method, rule.path
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "   no rule matched ({} rules); CERTBOUND_SCOPE_DEFAULT={}",
                    config.scope_rules.len(),
                    match default {
                        ScopeDefault::Deny => "deny → refused (route_unmatched)",
                        _ => "none → no scope required",
                    }
                );
            }
        },
    }
}

/// Prints the backend step; returns the answer the core decided on.
fn backend_step<'a>(
    out: &mut String,
    config: &Config,
    asked: Option<&'a (Result<Answer, IntrospectionError>, Duration)>,
) -> Option<&'a Answer> {
    let (name, at) = match &config.backend {
        crate::config::BackendConfig::Authlete(c) => ("authlete", c.base_url.as_str()),
        crate::config::BackendConfig::Rfc7662(c) => ("rfc7662", c.endpoint.as_str()),
        crate::config::BackendConfig::Jwt(c) => ("jwt", c.issuer.as_str()),
    };
    let _ = writeln!(out, "\n3. backend ({name} {})", clip(at, 200));
    match asked {
        None => {
            let _ = writeln!(
                out,
                "   not asked: the request cannot succeed, certbound answered itself"
            );
            None
        }
        Some((Err(e), took)) => {
            let _ = writeln!(
                out,
                "   failed after {:.1} ms: {} ({})",
                took.as_secs_f64() * 1000.0,
                e,
                e.kind()
            );
            None
        }
        Some((Ok(answer), took)) => {
            let _ = writeln!(out, "   answered in {:.1} ms:", took.as_secs_f64() * 1000.0);
            match answer {
                Answer::Claims(c) => claims(out, c),
                Answer::Decided(r) => decided_by_server(out, r),
            }
            Some(answer)
        }
    }
}

fn claims(out: &mut String, c: &Claims) {
    let now = now();
    let _ = writeln!(out, "   active        {}", c.active);
    if let Some(r) = &c.refusal {
        let _ = writeln!(
            out,
            "   refused       {} ({})",
            r.reason,
            clip(&r.description, 200)
        );
    }
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| clip(s, 120));
    let _ = writeln!(out, "   client_id     {}", opt(&c.client_id));
    let _ = writeln!(out, "   sub           {}", opt(&c.sub));
    let _ = writeln!(
        out,
        "   scope         {}",
        if c.scopes.is_empty() {
            "-".to_owned()
        } else {
            clip(&c.scopes.join(" "), 300)
        }
    );
    if !c.aud.is_empty() {
        let _ = writeln!(out, "   aud           {}", clip(&c.aud.join(" "), 300));
    }
    for (name, at) in [("exp", c.exp), ("nbf", c.nbf), ("iat", c.iat)] {
        if let Some(at) = at {
            let _ = writeln!(out, "   {name:<13} {at} ({})", relative(at, now));
        }
    }
    let _ = writeln!(
        out,
        "   cnf x5t#S256  {}",
        c.cnf
            .x5t_s256
            .as_deref()
            .map_or("- (not bound to a certificate)".to_owned(), |s| clip(
                s, 100
            ))
    );
    if let Some(jkt) = &c.cnf.jkt {
        let _ = writeln!(out, "   cnf jkt       {}", clip(jkt, 100));
    }
}

fn decided_by_server(out: &mut String, r: &IntrospectionResponse) {
    let _ = writeln!(out, "   action        {}", r.action);
    if let Some(code) = &r.result_code {
        let _ = writeln!(out, "   resultCode    {}", clip(code, 60));
    }
    if let Some(m) = &r.result_message {
        let _ = writeln!(out, "   resultMessage {}", clip(m, 300));
    }
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| clip(s, 120));
    let _ = writeln!(out, "   client_id     {}", opt(&r.client_id));
    let _ = writeln!(out, "   subject       {}", opt(&r.subject));
    if let Some(scopes) = &r.scopes {
        let _ = writeln!(out, "   scopes        {}", clip(&scopes.join(" "), 300));
    }
    if let Some(ms) = r.expires_at_ms {
        let _ = writeln!(
            out,
            "   expiresAt     {} ({})",
            ms / 1000,
            relative(ms / 1000, now())
        );
    }
    let _ = writeln!(
        out,
        "   bound to      {}",
        r.certificate_thumbprint
            .as_deref()
            .map_or("- (no certificate thumbprint)".to_owned(), |s| clip(s, 100))
    );
}

fn decided(
    out: &mut String,
    request: &AuthRequest,
    verdict: &Verdict,
    asked: Option<&(Result<Answer, IntrospectionError>, Duration)>,
    answer: Option<&Answer>,
) {
    let _ = writeln!(out, "\n4. decided by");
    let Some(reason) = verdict.reason else {
        let _ = writeln!(
            out,
            "   every check passed: token active and in date, bound to the presented certificate (or binding off), scopes present"
        );
        return;
    };
    let presented = request
        .client_cert
        .cert()
        .map(|c| c.thumbprint().to_owned());
    let bound = match answer {
        Some(Answer::Claims(c)) => c.cnf.x5t_s256.clone(),
        Some(Answer::Decided(r)) => r.certificate_thumbprint.clone(),
        None => None,
    };
    let detail = match reason {
        Reason::CertMismatch => format!(
            "the token is bound to x5t#S256 {}, the request presented {}",
            bound.as_deref().unwrap_or("?"),
            presented.as_deref().unwrap_or("none")
        ),
        Reason::CertMissing => "a certificate is needed (binding required, or the token is bound) and none reached certbound — check the mTLS domain / the proxy's certificate header".into(),
        Reason::TokenUnbound => "binding is required (CERTBOUND_REQUIRE_BINDING) and the token carries no cnf.x5t#S256".into(),
        Reason::ScopeInsufficient => "the token lacks a scope the rule in step 2 requires".into(),
        Reason::AsUnavailable | Reason::AsError | Reason::Overloaded => match asked {
            Some((Err(e), _)) => format!("the backend step failed: {e}"),
            _ => "the backend step failed".into(),
        },
        _ => verdict
            .context
            .get("resultMessage")
            .map(ToString::to_string)
            .unwrap_or_default(),
    };
    let _ = writeln!(out, "   {reason}: {}", clip(&detail, 400));
    if let Some(m) = verdict.context.get("resultMessage") {
        let m = m.to_string();
        if m != detail {
            let _ = writeln!(out, "   ({})", clip(&m, 300));
        }
    }
}

fn outcome(out: &mut String, verdict: &Verdict) {
    let _ = writeln!(out, "\n5. outcome");
    let _ = writeln!(
        out,
        "   {} (action {}; certbound serve: HTTP {})",
        verdict.decision.as_str(),
        verdict.action.map_or("-", |a| a.as_str()),
        crate::fronts::http::status(verdict).as_u16()
    );
    let _ = writeln!(out, "   principalId   {}", clip(&verdict.principal_id, 120));
    if let Some(reason) = verdict.reason {
        let _ = writeln!(out, "   reason        {reason}");
    }
    if let Some(c) = &verdict.challenge {
        let _ = writeln!(
            out,
            "   challenge     WWW-Authenticate: {}",
            clip(&c.to_string(), 400)
        );
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn relative(at: i64, now: i64) -> String {
    let d = at.saturating_sub(now);
    if d >= 0 {
        format!("in {d} s")
    } else {
        format!("{} s ago", d.unsigned_abs())
    }
}

/// At most `max` characters, control characters replaced: a hostile value
/// cannot flood or forge the explanation.
fn clip(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '�' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}
