//! Authorization server answers (JSON bytes) → Authlete's and RFC 7662's
//! `parse_response` → the core's `decide`, for a request presenting
//! certificate B, under every binding policy.
//!
//! Asserts, beyond "no panic":
//! - RFC 7662: `active` is read only from a JSON boolean; the
//!   `cnf.x5t#S256` read is the one sent; an `action` read from Authlete is
//!   the one sent (exact name);
//! - the decision is `OK` only when the answer vouched for the token
//!   (`active: true` / `action: OK`), the token is bound to certificate B
//!   (or unbound with binding `false`), it is not DPoP-bound (claims), it
//!   has not expired, and it holds every required scope.
#![no_main]

use arbitrary::Arbitrary;
use certbound::backends::{authlete, rfc7662, Action, Answer};
use certbound::cert::{CertFormat, ClientCert};
use certbound::decision::{decide, BindingPolicy, Facts, Validation};
use certbound::request::{parse_authorization, PresentedCert, Source};
use certbound::AuthRequest;
use certbound_fuzz::{encode, thumbprint, CERT_B};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NOW: i64 = 1_800_000_000;

#[derive(Debug, Arbitrary)]
struct Input {
    policy: u8,
    require_scope: bool,
    json: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Ok(raw) = serde_json::from_slice::<Value>(&input.json) else {
        return;
    };
    let binding = [
        BindingPolicy::Certificate,
        BindingPolicy::CertificateOrDpop,
        BindingPolicy::Off,
    ][usize::from(input.policy) % 3];
    let validation = Validation {
        binding,
        ..Validation::default()
    };
    let leeway = validation.leeway_s;
    let b = ClientCert::from_format(
        CertFormat::Rfc9440,
        &encode(CertFormat::Rfc9440, &[CERT_B], Default::default()),
    )
    .expect("certificate B");
    let tb = thumbprint(CERT_B);
    let mut request = AuthRequest::new(Source::Http, "GET", "/accounts/1", "GET /accounts/1");
    request.credentials = parse_authorization("Bearer tok");
    request.client_cert = PresentedCert::Present(b);
    let required = vec!["accounts".to_owned()];
    let scopes = input.require_scope.then_some(required.as_slice());

    if let Ok(claims) = rfc7662::parse_response(raw.clone()) {
        assert_eq!(
            Some(claims.active),
            raw.get("active").and_then(Value::as_bool)
        );
        assert_eq!(
            claims.cnf.x5t_s256.as_deref(),
            raw.pointer("/cnf/x5t#S256").and_then(Value::as_str)
        );
        let facts = Facts {
            request: &request,
            scopes,
            backend_verifies_dpop: false,
            realm: None,
        };
        let out = decide(&facts, &validation, Answer::Claims(claims.clone()), NOW);
        if out.action == Action::Ok {
            assert!(claims.active, "inactive token allowed");
            match claims.cnf.x5t_s256.as_deref() {
                Some(t) => assert_eq!(t, tb, "bound to another certificate, allowed"),
                None => assert_eq!(binding, BindingPolicy::Off, "unbound token allowed"),
            }
            assert!(claims.cnf.jkt.is_none(), "DPoP-bound token allowed");
            assert!(claims.exp.is_none_or(|e| e.saturating_add(leeway) > NOW));
            assert!(claims.nbf.is_none_or(|n| n <= NOW + leeway));
            assert!(scopes.is_none_or(|s| s.iter().all(|x| claims.scopes.contains(x))));
        }
    }

    if let Ok(d) = authlete::parse_response(raw.clone()) {
        assert_eq!(
            Some(d.action.as_str()),
            raw.get("action").and_then(Value::as_str)
        );
        let facts = Facts {
            request: &request,
            scopes,
            backend_verifies_dpop: true,
            realm: None,
        };
        let out = decide(&facts, &validation, Answer::Decided(d.clone()), NOW);
        if out.action == Action::Ok {
            assert_eq!(d.action, Action::Ok, "the AS refused, certbound allowed");
            match d.certificate_thumbprint.as_deref() {
                Some(t) => assert_eq!(t, tb, "bound to another certificate, allowed"),
                None => assert_eq!(binding, BindingPolicy::Off, "unbound token allowed"),
            }
            assert!(d
                .expires_at_ms
                .filter(|ms| *ms > 0)
                .is_none_or(|ms| (ms / 1000).saturating_add(leeway) > NOW));
            if let (Some(req), Some(granted)) = (scopes, d.scopes.as_ref()) {
                assert!(req.iter().all(|x| granted.contains(x)));
            }
        }
    }
});
