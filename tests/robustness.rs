//! Malformed input never panics and never yields Allow when the AS cannot
//! vouch for it: thousands of deterministic mutations of the sample events
//! and of certificate bytes.

use std::sync::Arc;

use async_trait::async_trait;
use certbound::cert::ClientCert;
use certbound::config::HttpApiResponse;
use certbound::fronts::lambda::handle_event;
use certbound::{
    Action, Answer, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
    Settings, StandardAuthorizer,
};
use serde_json::{json, Value};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Replaces, deletes or retypes one random node of the JSON tree.
fn mutate(v: &mut Value, rng: &mut Rng, depth: usize) {
    let replacement = |rng: &mut Rng| match rng.below(8) {
        0 => Value::Null,
        1 => json!(rng.next() as i64),
        2 => json!(""),
        3 => json!("Bearer"),
        4 => json!([]),
        5 => json!({}),
        6 => json!(true),
        _ => json!("%%%-----BEGIN CERTIFICATE-----\u{0}"),
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(rng.below(map.len())).cloned().unwrap();
            match rng.below(4) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, replacement(rng));
                }
                _ if depth < 8 => mutate(map.get_mut(&key).unwrap(), rng, depth + 1),
                _ => {
                    map.insert(key, replacement(rng));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len());
            mutate(&mut items[i], rng, depth + 1);
        }
        Value::String(s) if !s.is_empty() => {
            // Cut or corrupt the string at a char boundary.
            let cut = s
                .char_indices()
                .nth(rng.below(s.chars().count()))
                .map(|(i, _)| i)
                .unwrap_or(0);
            match rng.below(3) {
                0 => s.truncate(cut),
                1 => s.insert(cut, ['\u{0}', '"', '%', ' ', 'é', '\n'][rng.below(6)]),
                _ => *v = replacement(rng),
            }
        }
        other => *other = replacement(rng),
    }
}

struct Always(Result<Answer, IntrospectionError>);

#[async_trait]
impl Introspector for Always {
    async fn introspect(&self, _: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        self.0.clone()
    }

    fn verifies_dpop(&self) -> bool {
        true
    }
}

/// The `x5t#S256` of the certificate in `events/*.json`.
const EVENTS_THUMBPRINT: &str = "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44";

fn events() -> Vec<Value> {
    [
        "rest-request.json",
        "rest-request-dpop.json",
        "rest-request-no-cert.json",
        "token.json",
        "http-api-v2.json",
    ]
    .iter()
    .map(|f| {
        serde_json::from_str(&std::fs::read_to_string(format!("events/{f}")).unwrap()).unwrap()
    })
    .collect()
}

fn allowed(out: &Result<Value, certbound::fronts::lambda::HandlerError>) -> bool {
    match out {
        Ok(v) => {
            v["policyDocument"]["Statement"][0]["Effect"] == "Allow" || v["isAuthorized"] == true
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn mutated_events_never_panic_and_never_allow_without_an_ok() {
    let failing = StandardAuthorizer::new(
        Arc::new(Always(Err(IntrospectionError::Timeout))),
        Settings::default(),
    );
    let unauthorized = StandardAuthorizer::new(
        Arc::new(Always(Ok(Answer::Decided(IntrospectionResponse::new(
            Action::Unauthorized,
        ))))),
        Settings {
            policy: false,
            ..Settings::default()
        },
    );
    // An AS that says OK for a token bound to the events' certificate.
    let mut bound_ok = IntrospectionResponse::new(Action::Ok);
    bound_ok.certificate_thumbprint = Some(EVENTS_THUMBPRINT.into());
    let ok = StandardAuthorizer::new(
        Arc::new(Always(Ok(Answer::Decided(bound_ok)))),
        Settings::default(),
    );
    let pem_body = "MIIBzDCCAXGgAwIBAgIUOI3fMszDoInlRlHelxGUQ4MsWNMw";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    for event in events() {
        for _ in 0..600 {
            let mut e = event.clone();
            for _ in 0..=rng.below(3) {
                mutate(&mut e, &mut rng, 0);
            }
            for mode in [HttpApiResponse::Policy, HttpApiResponse::Simple] {
                assert!(
                    !allowed(&handle_event(&failing, mode, e.clone(), None).await),
                    "{e}"
                );
                assert!(
                    !allowed(&handle_event(&unauthorized, mode, e.clone(), None).await),
                    "{e}"
                );
                // With an AS that says OK: whatever happens, no panic, and an
                // Allow only for an event that still carries a token and the
                // certificate the token is bound to.
                if allowed(&handle_event(&ok, mode, e.clone(), None).await) {
                    let text = e.to_string();
                    let lower = text.to_ascii_lowercase();
                    assert!(lower.contains("bearer ") || lower.contains("dpop "), "{e}");
                    assert!(text.contains(pem_body), "{e}");
                }
                runs += 3;
            }
        }
    }
    assert!(runs >= 18_000);
}

#[test]
fn certificate_parser_survives_random_and_truncated_input() {
    let pem = std::fs::read_to_string("tests/data/rfc8705-appendix-a.pem").unwrap();
    let der = ClientCert::from_pem(&pem).unwrap().der().to_vec();
    let mut rng = Rng(42);
    for len in 0..der.len() {
        assert!(
            ClientCert::detect(&der[..len]).is_err(),
            "truncated DER at {len} accepted"
        );
    }
    for _ in 0..5000 {
        let mut bytes = if rng.below(2) == 0 {
            der.clone()
        } else {
            pem.clone().into_bytes()
        };
        for _ in 0..=rng.below(4) {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
        // Must not panic; may or may not parse (a flip inside a signature
        // still yields a well-formed certificate, with another thumbprint).
        if let Ok(c) = ClientCert::detect(&bytes) {
            assert_eq!(c.thumbprint().len(), 43);
        }
        let random: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        let _ = ClientCert::detect(&random);
    }
}
