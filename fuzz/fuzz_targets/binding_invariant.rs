//! Invariant: a token the authorization server accepts, bound to
//! certificate A, is **never Allowed** when the certificate the client
//! really presented is not A — whatever its bytes, its encoding, the front,
//! the headers the client adds, the binding policy, the backend kind or
//! the answer cache.
//!
//! Each input builds one request through a real front — REST `REQUEST`,
//! HTTP API 1.0 and 2.0 and `TOKEN` events (`Event::parse` →
//! `into_auth_request`, and `handle_event`), or `certbound serve` behind
//! nginx, Traefik, Envoy or an RFC 9440 / PEM proxy (`to_auth_request`) —
//! carrying in the trusted place (API Gateway's `clientCertPem`, the
//! proxy's certificate header) certificate C: A, B, the RFC 8705 one, A
//! with edited DER bytes, or nothing, encoded the way that producer does.
//! The client adds what it controls: A in other certificate headers, an
//! XFCC element of its own before the proxy's, A after C in a chain,
//! `Authorization` sent twice or in odd case, a `DPoP` proof, any path.
//! The backend is an in-memory claims AS or an Authlete-like deciding one
//! (answers `OK`, `certificateThumbprint` = A), optionally behind the
//! answer cache after a first request that did present A.
//!
//! Asserts: Allow ⇒ C's DER is A's, byte for byte; a certificate the front
//! reads is exactly C's DER (never a client-supplied one).
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use async_trait::async_trait;
use certbound::backends::memory::MemoryBackend;
use certbound::backends::{
    Action, Answer, Claims, Confirmation, IntrospectionError, IntrospectionRequest,
    IntrospectionResponse, Introspector,
};
use certbound::cache::{CacheSettings, CachedBackend};
use certbound::cert::{CertFormat, ClientCert};
use certbound::config::{Config, Env, HttpApiResponse, ProxyKind, ServeConfig};
use certbound::decision::{BindingPolicy, ScopeDefault};
use certbound::fronts::{http as serve, lambda};
use certbound::request::{parse_authorization, PresentedCert, Source};
use certbound::scopes::ScopeRules;
use certbound::{authorize, AuthRequest, Decision, Settings, StandardAuthorizer};
use certbound_fuzz::{
    apply_der_edits, block_on, cert_rfc8705, encode, pem, thumbprint, DerEdit, Style, CERT_A,
    CERT_B,
};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const TOKEN: &str = "tok-A.bound";
const ARN: &str =
    "arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/GET/accounts/1234/balances";
const ROUTE_ARN: &str =
    "arn:aws:execute-api:eu-west-2:123456789012:f9g8h7j6k5/$default/GET/accounts/1234/balances";

/// Authlete-like: decides OK for the token, bound to A, whatever it is
/// shown (it trusts certbound to compare the certificate).
struct Deciding;

#[async_trait]
impl Introspector for Deciding {
    async fn introspect(&self, r: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        if r.token.expose_secret() != TOKEN {
            return Ok(Answer::Decided(IntrospectionResponse::new(
                Action::Unauthorized,
            )));
        }
        Ok(Answer::Decided(IntrospectionResponse {
            subject: Some("alice".into()),
            client_id: Some("app".into()),
            scopes: Some(vec!["accounts".into()]),
            expires_at_ms: Some(4_102_444_800_000),
            certificate_thumbprint: Some(thumbprint(CERT_A)),
            ..IntrospectionResponse::new(Action::Ok)
        }))
    }

    fn verifies_dpop(&self) -> bool {
        true
    }

    fn identity(&self) -> String {
        "deciding".into()
    }

    fn cache_scope(&self) -> certbound::backends::CacheScope {
        certbound::backends::CacheScope::PerRequest
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Front {
    Rest,
    HttpV1,
    HttpV2,
    Token,
    Nginx,
    Traefik,
    Envoy,
    Rfc9440,
    PemHeader,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Presented {
    A,
    B,
    Rfc8705,
    EditedA,
    Nothing,
}

#[derive(Debug, Clone, Arbitrary)]
enum Trick {
    /// A, encoded in `format`, in a header the front does not trust
    /// (name picked from the usual ones, any case).
    HeaderWithA { name: u8, format: u8, upper: bool },
    /// The trusted header once more, holding A (proxies overwrite it; a
    /// second copy must never be read as the certificate).
    TrustedAgainWithA,
    /// The client's own XFCC element with A before the proxy's.
    XfccBeforeWithA,
    /// A after C in the chain (leaf first).
    ChainThenA,
    /// A second `Authorization` value.
    SecondAuthorization(String),
    /// A `DPoP` proof header.
    Dpop(String),
    /// A's PEM in the event outside `requestContext` (client fields:
    /// query string, path parameters).
    EventFieldsWithA,
}

#[derive(Debug, Arbitrary)]
struct Input {
    front: Front,
    presented: Presented,
    der_edits: Vec<DerEdit>,
    style: Style,
    tricks: Vec<Trick>,
    /// 0 `Bearer`, 1 `bearer`, 2 `DPoP`, 3 `Bearer` with extra spaces.
    scheme: u8,
    binding: u8,
    policy: bool,
    deny_unmatched: bool,
    deciding: bool,
    cache: bool,
    path: String,
}

const HEADERS: [&str; 6] = [
    "x-ssl-cert",
    "client-cert",
    "x-forwarded-client-cert",
    "x-forwarded-tls-client-cert",
    "ssl-client-cert",
    "x-amzn-mtls-clientcert",
];

fn authorization(scheme: u8) -> String {
    match scheme % 4 {
        0 => format!("Bearer {TOKEN}"),
        1 => format!("bearer {TOKEN}"),
        2 => format!("DPoP {TOKEN}"),
        _ => format!("Bearer   {TOKEN}  "),
    }
}

fn serve_config(front: Front) -> Option<ServeConfig> {
    let (proxy, format) = match front {
        Front::Nginx => (ProxyKind::Nginx, CertFormat::Nginx),
        Front::Traefik => (ProxyKind::Traefik, CertFormat::Traefik),
        Front::Envoy => (ProxyKind::Envoy, CertFormat::Xfcc),
        Front::Rfc9440 => (ProxyKind::Nginx, CertFormat::Rfc9440),
        Front::PemHeader => (ProxyKind::Traefik, CertFormat::Pem),
        _ => return None,
    };
    // The serve settings of a valid configuration (whatever else they
    // hold), with this proxy and format.
    static BASE: OnceLock<ServeConfig> = OnceLock::new();
    let mut serve = BASE
        .get_or_init(|| {
            let env: HashMap<String, String> = [
                ("CERTBOUND_BACKEND", "rfc7662"),
                (
                    "CERTBOUND_INTROSPECTION_ENDPOINT",
                    "https://as.example/introspect",
                ),
                ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs"),
                ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "not-a-secret"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let config = Config::from_env(&Env::from_map(&env)).expect("configuration");
            config.serve
        })
        .clone();
    serve.proxy = proxy;
    serve.cert_format = format;
    serve.cert_header = http::HeaderName::from_static(format.default_header());
    serve.path_prefix = None;
    Some(serve)
}

/// The request as the front builds it, for a certificate chain in the
/// trusted place (`None`: no certificate).
fn build(input: &Input, trusted: Option<&[&[u8]]>) -> Option<(AuthRequest, Option<Value>)> {
    let auth = authorization(input.scheme);
    let path = if input.path.is_empty() {
        "/accounts/1234/balances"
    } else {
        input.path.as_str()
    };
    let tricks = &input.tricks[..input.tricks.len().min(4)];
    let chain_then_a = |chain: &[&[u8]]| -> Vec<Vec<u8>> {
        let mut c: Vec<Vec<u8>> = chain.iter().map(|d| d.to_vec()).collect();
        if tricks.iter().any(|t| matches!(t, Trick::ChainThenA)) {
            c.push(CERT_A.to_vec());
        }
        c
    };
    if let Some(serve_config) = serve_config(input.front) {
        let format = serve_config.cert_format;
        let mut headers = http::HeaderMap::new();
        let mut add = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        };
        add("authorization", &auth);
        add("host", "api.bank.example");
        match serve_config.proxy {
            ProxyKind::Nginx => {
                add("x-original-method", "GET");
                add("x-original-uri", path);
            }
            ProxyKind::Traefik => {
                add("x-forwarded-method", "GET");
                add("x-forwarded-uri", path);
            }
            _ => {}
        }
        for t in tricks {
            match t {
                Trick::HeaderWithA {
                    name,
                    format: f,
                    upper,
                } => {
                    let name = HEADERS[usize::from(*name) % HEADERS.len()];
                    if name == serve_config.cert_header.as_str() {
                        continue;
                    }
                    let name = if *upper {
                        name.to_ascii_uppercase()
                    } else {
                        name.to_owned()
                    };
                    add(
                        &name,
                        &encode(certbound_fuzz::format(*f), &[CERT_A], input.style),
                    );
                }
                Trick::SecondAuthorization(v) => add("authorization", v),
                Trick::Dpop(v) => add("dpop", v),
                _ => {}
            }
        }
        if let Some(chain) = trusted {
            let chain: Vec<Vec<u8>> = if format == CertFormat::Xfcc {
                // The proxy's own element comes last; the client's before it.
                let mut elements = Vec::new();
                if tricks.iter().any(|t| matches!(t, Trick::XfccBeforeWithA)) {
                    elements.push(CERT_A.to_vec());
                }
                elements.extend(chain.iter().map(|d| d.to_vec()));
                elements
            } else {
                chain_then_a(chain)
            };
            let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            add(
                serve_config.cert_header.as_str(),
                &encode(format, &refs, input.style),
            );
        }
        if trusted.is_some() && tricks.iter().any(|t| matches!(t, Trick::TrustedAgainWithA)) {
            add(
                serve_config.cert_header.as_str(),
                &encode(format, &[CERT_A], input.style),
            );
        }
        let method = http::Method::GET;
        let r = serve::to_auth_request(&method, path, &headers, &serve_config).ok()?;
        return Some((r, None));
    }

    // Lambda events: the certificate is API Gateway's `clientCertPem`.
    let cert_pem = trusted.map(|chain| {
        chain_then_a(chain)
            .iter()
            .map(|d| pem(d, input.style))
            .collect::<String>()
    });
    let mut headers = json!({"Host": "api.bank.example", "Authorization": auth});
    let mut multi = json!({"Authorization": [auth]});
    for t in tricks {
        match t {
            Trick::HeaderWithA {
                name,
                format: f,
                upper,
            } => {
                let name = HEADERS[usize::from(*name) % HEADERS.len()];
                let name = if *upper {
                    name.to_ascii_uppercase()
                } else {
                    name.to_owned()
                };
                let v = encode(certbound_fuzz::format(*f), &[CERT_A], input.style);
                headers[&name] = json!(v);
                multi[&name] = json!([v]);
            }
            Trick::SecondAuthorization(v) => {
                if let Some(list) = multi["Authorization"].as_array_mut() {
                    list.push(json!(v));
                }
            }
            Trick::Dpop(v) => headers["DPoP"] = json!(v),
            _ => {}
        }
    }
    let a_pem = pem(CERT_A, Style::default());
    let client_fields = tricks.iter().any(|t| matches!(t, Trick::EventFieldsWithA));
    let cert_obj = |pem: &str| {
        json!({"clientCertPem": pem, "subjectDN": "CN=x", "issuerDN": "CN=x", "serialNumber": "1",
        "validity": {"notBefore": "May 28 12:30:02 2019 GMT", "notAfter": "Aug  5 09:36:04 2031 GMT"}})
    };
    let event = match input.front {
        Front::Token => json!({"type": "TOKEN", "methodArn": ARN, "authorizationToken": auth}),
        Front::HttpV2 => {
            let mut ctx = json!({"http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "t"},
                "requestId": "r-2", "routeKey": "GET /accounts/{accountId}/balances", "stage": "$default", "domainName": "api.bank.example"});
            if let Some(p) = &cert_pem {
                ctx["authentication"] = json!({"clientCert": cert_obj(p)});
            }
            let mut e = json!({"version": "2.0", "type": "REQUEST", "routeArn": ROUTE_ARN,
                "routeKey": "GET /accounts/{accountId}/balances", "rawPath": path,
                "rawQueryString": "", "headers": headers, "requestContext": ctx,
                "pathParameters": {"accountId": "1234"}});
            if client_fields {
                e["queryStringParameters"] = json!({"cert": a_pem});
                e["rawQueryString"] = json!(format!("cert={a_pem}"));
            }
            // HTTP API 2.0 headers are lower case.
            if let Some(h) = e["headers"].as_object_mut() {
                let lowered: serde_json::Map<String, Value> = h
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect();
                *h = lowered;
            }
            e
        }
        Front::Rest | Front::HttpV1 => {
            let holder = if matches!(input.front, Front::HttpV1) {
                "authentication"
            } else {
                "identity"
            };
            let mut ctx = json!({"path": format!("/prod{path}"), "stage": "prod", "requestId": "r-1", "httpMethod": "GET"});
            if let Some(p) = &cert_pem {
                ctx[holder] = json!({"clientCert": cert_obj(p)});
            }
            let mut e = json!({"type": "REQUEST", "methodArn": ARN, "resource": "/accounts/{accountId}/balances",
                "path": path, "httpMethod": "GET", "headers": headers, "multiValueHeaders": multi,
                "pathParameters": {"accountId": "1234"}, "requestContext": ctx});
            if matches!(input.front, Front::HttpV1) {
                e["version"] = json!("1.0");
            }
            if client_fields {
                e["queryStringParameters"] = json!({"clientCertPem": a_pem});
                e["pathParameters"]["accountId"] = json!(a_pem);
            }
            e
        }
        _ => return None,
    };
    let r = lambda::Event::parse(&event)
        .ok()?
        .into_auth_request()
        .ok()?;
    Some((r, Some(event)))
}

fuzz_target!(|input: Input| {
    let rfc = cert_rfc8705();
    let edited = apply_der_edits(CERT_A, &input.der_edits);
    let c: Option<&[u8]> = match input.presented {
        Presented::A => Some(CERT_A),
        Presented::B => Some(CERT_B),
        Presented::Rfc8705 => Some(&rfc),
        Presented::EditedA => Some(&edited),
        Presented::Nothing => None,
    };
    let Some((request, event)) = build(&input, c.map(|d| vec![d]).as_deref()) else {
        return;
    };
    // The front read the trusted certificate, and only it.
    if let PresentedCert::Present(cert) = &request.client_cert {
        assert_eq!(
            Some(cert.der()),
            c,
            "the front read another certificate than the presented one"
        );
    }

    // Settings, backend, cache.
    let mut settings = Settings::default();
    settings.policy = input.policy;
    settings.validation.binding = [
        BindingPolicy::Certificate,
        BindingPolicy::CertificateOrDpop,
        BindingPolicy::Off,
    ][usize::from(input.binding) % 3];
    if input.deny_unmatched {
        settings.validation.scope_default = ScopeDefault::Deny;
    }
    settings.deadline = Duration::from_secs(5);
    let inner: Arc<dyn Introspector> = if input.deciding {
        Arc::new(Deciding)
    } else {
        let memory = MemoryBackend::new();
        memory.insert(
            TOKEN,
            Claims {
                active: true,
                sub: Some("alice".into()),
                scopes: vec!["accounts".into()],
                exp: Some(4_102_444_800),
                cnf: Confirmation {
                    x5t_s256: Some(thumbprint(CERT_A)),
                    jkt: None,
                },
                ..Default::default()
            },
        );
        Arc::new(memory)
    };
    let backend: Arc<dyn Introspector> = if input.cache {
        Arc::new(CachedBackend::new(
            inner,
            CacheSettings {
                ttl: Duration::from_secs(300),
                negative_ttl: Duration::from_secs(300),
                max_entries: 100,
            },
        ))
    } else {
        inner
    };
    let rules = ScopeRules::from_toml(
        "[[rule]]\nmethod = \"GET\"\npath = \"/accounts/**\"\nscopes = [\"accounts\"]\n",
    )
    .expect("rules");
    let authorizer = StandardAuthorizer::new(backend, settings).with_scope_rules(rules);

    if input.cache {
        // A first request that did present A (same token) fills the cache.
        let mut warm = request.clone();
        warm.client_cert =
            PresentedCert::Present(ClientCert::from_der(CERT_A.to_vec()).expect("certificate A"));
        warm.credentials = parse_authorization(&format!("Bearer {TOKEN}"));
        let _ = block_on(authorize(&authorizer, &warm));
    }

    let is_a = c == Some(CERT_A);
    let verdict = block_on(authorize(&authorizer, &request));
    if verdict.decision == Decision::Allow {
        assert!(
            is_a,
            "allowed with another certificate than A ({:?})",
            input.presented
        );
        assert_ne!(request.source, Source::RestToken);
    }
    if let Some(event) = event {
        let answer = block_on(lambda::handle_event(
            &authorizer,
            HttpApiResponse::Simple,
            event,
            None,
        ));
        if let Ok(a) = answer {
            let allowed = a.get("isAuthorized") == Some(&Value::Bool(true))
                || a.pointer("/policyDocument/Statement/0/Effect") == Some(&json!("Allow"));
            assert!(
                !allowed || is_a,
                "handle_event allowed another certificate than A"
            );
        }
    }
});
