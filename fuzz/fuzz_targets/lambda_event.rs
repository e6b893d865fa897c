//! Lambda event (JSON bytes) → `Event::parse` → `into_auth_request` → the
//! whole flow (`handle_event`) against an in-memory AS that accepts the
//! sample events' token, bound to certificate A.
//!
//! Asserts, beyond "no panic":
//! - a Cognito trigger event is refused as such (`WrongHandler`);
//! - an event that parses yields a request whose method is upper case and
//!   whose path is either normalised (starts with `/`) or refused with a
//!   reason;
//! - an answer is an Allow only when the event's own certificate field
//!   (read here independently) holds certificate A, and never for a TOKEN
//!   event; a policy is always about the event's `methodArn`/`routeArn`.
#![no_main]

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use certbound::backends::memory::MemoryBackend;
use certbound::backends::{Claims, Confirmation};
use certbound::config::HttpApiResponse;
use certbound::fronts::lambda::{handle_event, Event, EventError};
use certbound::scopes::ScopeRules;
use certbound::{Settings, StandardAuthorizer};
use certbound_fuzz::{block_on, thumbprint, CERT_A};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TOKEN: &str = "Mx9c3Ufo1kcbl4Jd0Vn3nqGNM2vA3hT2-_8sWl2aHno";

const RULES: &str = r#"
[[rule]]
method = "GET"
path = "/accounts/{id}/balances"
scopes = ["accounts"]
[[rule]]
method = "*"
path = "/admin/**"
scopes = ["admin"]
"#;

fn authorizers() -> &'static [(StandardAuthorizer, HttpApiResponse); 2] {
    static A: OnceLock<[(StandardAuthorizer, HttpApiResponse); 2]> = OnceLock::new();
    A.get_or_init(|| {
        let backend = Arc::new(MemoryBackend::new());
        backend.insert(
            TOKEN,
            Claims {
                active: true,
                sub: Some("alice".into()),
                client_id: Some("app".into()),
                scopes: vec!["accounts".into(), "payments".into()],
                exp: Some(4_102_444_800),
                cnf: Confirmation {
                    x5t_s256: Some(thumbprint(CERT_A)),
                    jkt: None,
                },
                ..Default::default()
            },
        );
        let rules = ScopeRules::from_toml(RULES).expect("rules");
        let make = |policy: bool| {
            let settings = Settings {
                policy,
                ..Settings::default()
            };
            StandardAuthorizer::new(backend.clone(), settings).with_scope_rules(rules.clone())
        };
        [
            (make(true), HttpApiResponse::Policy),
            (make(false), HttpApiResponse::Simple),
        ]
    })
}

/// The first CERTIFICATE block of a PEM text, decoded here (not by
/// certbound).
fn pem_leaf(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let body: String = text[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

fn cert_fields(event: &Value) -> Vec<&str> {
    ["authentication", "identity"]
        .iter()
        .filter_map(|holder| {
            event
                .get("requestContext")?
                .get(holder)?
                .get("clientCert")?
                .get("clientCertPem")?
                .as_str()
        })
        .collect()
}

fn check(payload: Value) {
    let is_trigger = payload
        .as_object()
        .is_some_and(|o| o.contains_key("triggerSource") && o.contains_key("userPoolId"));
    let parsed = Event::parse(&payload);
    if is_trigger {
        assert!(matches!(parsed, Err(EventError::WrongHandler)));
    }
    let kind = parsed.as_ref().ok().map(Event::kind);
    if let Ok(event) = parsed {
        if let Ok(r) = event.into_auth_request() {
            assert_eq!(r.method, r.method.to_ascii_uppercase());
            assert_eq!(r.path.is_empty(), r.path_error.is_some());
            assert!(r.path.is_empty() || r.path.starts_with('/'));
            if r.path_error.is_some() {
                // Nothing but a route template may stand in for a refused path.
                assert!(r.target.is_err() || r.route.is_some());
            }
        }
    }
    let arn = ["methodArn", "routeArn"]
        .iter()
        .find_map(|k| payload.get(k).and_then(Value::as_str))
        .map(str::to_owned);
    let certs: Vec<Option<Vec<u8>>> = cert_fields(&payload).into_iter().map(pem_leaf).collect();
    for (authorizer, http_api) in authorizers() {
        let out = block_on(handle_event(authorizer, *http_api, payload.clone(), None));
        let Ok(answer) = out else { continue };
        let allowed = answer.get("isAuthorized") == Some(&Value::Bool(true))
            || answer.pointer("/policyDocument/Statement/0/Effect")
                == Some(&Value::String("Allow".into()));
        if let Some(resource) = answer.pointer("/policyDocument/Statement/0/Resource") {
            assert_eq!(
                resource.as_str(),
                arn.as_deref(),
                "policy about another resource"
            );
        }
        if allowed {
            assert_ne!(kind, Some("TOKEN"), "a TOKEN event was allowed");
            assert!(
                certs.iter().flatten().any(|der| der.as_slice() == CERT_A),
                "Allow without certificate A in the event"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    if let Ok(payload) = serde_json::from_slice::<Value>(data) {
        check(payload);
    }
});
