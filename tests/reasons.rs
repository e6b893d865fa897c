//! The same situation gives the same denial reason on every backend —
//! Authlete (its documented answers), RFC 7662 and JWT — wherever the
//! backend's answer can tell the situations apart.

mod common;

use std::collections::HashMap;

use certbound::explain::request_from_event;
use certbound::{authorize, Reason};
use common::signing::*;
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RULES: &str = "[[rule]]\nmethod='GET'\npath='/accounts/*/balances'\nscopes=['accounts']";
const AUDIENCE: &str = "https://api.bank.example";

/// A situation: what the token is, as each backend would answer it.
struct Situation {
    name: &'static str,
    /// Present a certificate (the other one when the token is bound).
    cert: bool,
    bound: bool,
    expired: bool,
    scope: &'static str,
    /// CERTBOUND_REQUIRE_BINDING.
    require_binding: bool,
    /// What the denial says on every backend.
    want: Reason,
}

/// Authlete's answer for a situation, as Authlete documents it: UNAUTHORIZED
/// for a token that does not exist, has expired (`usable` false) or whose
/// certificate does not match (`certificateThumbprint` reported); FORBIDDEN
/// when a scope is missing; OK otherwise.
fn authlete(s: &Situation, owner: &str, presented: Option<&str>) -> Value {
    let mut answer = authlete_answer("OK");
    let now_ms = now() * 1000;
    answer["expiresAt"] = json!(if s.expired {
        now_ms - 600_000
    } else {
        now_ms + 600_000
    });
    if s.bound {
        answer["certificateThumbprint"] = json!(owner);
    }
    let unauthorized = |answer: &mut Value, usable: bool| {
        let template = authlete_answer("UNAUTHORIZED");
        for key in ["action", "resultCode", "resultMessage", "responseContent"] {
            answer[key] = template[key].clone();
        }
        answer["existent"] = json!(true);
        answer["usable"] = json!(usable);
    };
    if s.expired {
        unauthorized(&mut answer, false);
    } else if s.bound && presented != Some(owner) {
        unauthorized(&mut answer, true);
    } else if !s.scope.contains("accounts") {
        let template = authlete_answer("FORBIDDEN");
        for key in ["action", "resultCode", "resultMessage", "responseContent"] {
            answer[key] = template[key].clone();
        }
        answer["scopes"] = json!(s.scope.split_whitespace().collect::<Vec<_>>());
    }
    answer
}

fn claims(s: &Situation, iss: &str, owner: &str) -> Value {
    let now = now();
    let exp = if s.expired { now - 600 } else { now + 600 };
    let mut c = json!({"active": true, "iss": iss, "sub": "alice", "client_id": "tpp",
                       "aud": AUDIENCE, "iat": now - 700, "exp": exp, "jti": "j-1",
                       "scope": s.scope});
    if s.bound {
        c["cnf"] = json!({"x5t#S256": owner});
    }
    c
}

async fn reason_of(env: &HashMap<String, String>, event: &Value) -> Option<Reason> {
    let (_, authorizer) = authorizer(env);
    let (request, _) = request_from_event(event.to_string().as_bytes()).unwrap();
    authorize(&authorizer, &request).await.reason
}

#[tokio::test]
async fn the_same_situation_has_the_same_reason_on_every_backend() {
    let owner = gen_cert("ec-p256", "owner");
    let other = gen_cert("ec-p256", "other");
    let key = signing_key("ec", "k1");
    let situations = [
        Situation {
            name: "bound, own certificate",
            cert: true,
            bound: true,
            expired: false,
            scope: "accounts",
            require_binding: true,
            want: Reason::TokenMissing,
        },
        Situation {
            name: "bound to another certificate",
            cert: true,
            bound: true,
            expired: false,
            scope: "accounts",
            require_binding: true,
            want: Reason::CertMismatch,
        },
        Situation {
            name: "bound, no certificate, binding not required",
            cert: false,
            bound: true,
            expired: false,
            scope: "accounts",
            require_binding: false,
            want: Reason::CertMissing,
        },
        Situation {
            name: "expired",
            cert: true,
            bound: true,
            expired: true,
            scope: "accounts",
            require_binding: true,
            want: Reason::TokenExpired,
        },
        Situation {
            name: "scope missing",
            cert: true,
            bound: true,
            expired: false,
            scope: "payments",
            require_binding: true,
            want: Reason::ScopeInsufficient,
        },
    ];
    for (i, s) in situations.iter().enumerate() {
        // The first situation is the control: Allowed everywhere.
        let presented = if !s.cert {
            None
        } else if i == 1 {
            Some(&other)
        } else {
            Some(&owner)
        };
        let binding = if s.require_binding { "true" } else { "false" };
        let mut got = Vec::new();

        // Authlete.
        let server = MockServer::start().await;
        let answer = authlete(
            s,
            &owner.openssl_thumbprint,
            presented.map(|c| c.openssl_thumbprint.as_str()),
        );
        mount_authlete(&server, ResponseTemplate::new(200).set_body_json(answer)).await;
        let env = authlete_env(
            &server.uri(),
            false,
            &[
                ("CERTBOUND_REQUIRE_BINDING", binding),
                ("CERTBOUND_SCOPE_RULES_INLINE", RULES),
            ],
        );
        let event = rest_event(
            Some(&format!("Bearer {TOKEN}")),
            presented.map(|c| c.pem.as_str()),
        );
        got.push(("authlete", reason_of(&env, &event).await));

        // RFC 7662.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/introspect"))
            .respond_with(ResponseTemplate::new(200).set_body_json(claims(
                s,
                "https://as.example",
                &owner.openssl_thumbprint,
            )))
            .mount(&server)
            .await;
        let env: HashMap<String, String> = [
            ("CERTBOUND_BACKEND", "rfc7662".to_string()),
            (
                "CERTBOUND_INTROSPECTION_ENDPOINT",
                format!("{}/introspect", server.uri()),
            ),
            ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs".into()),
            ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "s".into()),
            ("CERTBOUND_REQUIRE_BINDING", binding.into()),
            ("CERTBOUND_SCOPE_RULES_INLINE", RULES.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        got.push(("rfc7662", reason_of(&env, &event).await));

        // JWT (RFC 9068).
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [key.jwk]})))
            .mount(&server)
            .await;
        let mut c = claims(s, &server.uri(), &owner.openssl_thumbprint);
        c.as_object_mut().unwrap().remove("active");
        let jwt = sign(&key, Some("at+jwt"), &c);
        let env: HashMap<String, String> = [
            ("CERTBOUND_BACKEND", "jwt".to_string()),
            ("CERTBOUND_JWT_ISSUER", server.uri()),
            ("CERTBOUND_JWT_JWKS_URI", format!("{}/jwks", server.uri())),
            ("CERTBOUND_JWT_AUDIENCE", AUDIENCE.into()),
            ("CERTBOUND_REQUIRE_BINDING", binding.into()),
            ("CERTBOUND_SCOPE_RULES_INLINE", RULES.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let event = rest_event(
            Some(&format!("Bearer {jwt}")),
            presented.map(|c| c.pem.as_str()),
        );
        got.push(("jwt", reason_of(&env, &event).await));

        let want = if i == 0 { None } else { Some(s.want) };
        for (backend, reason) in &got {
            assert_eq!(
                *reason, want,
                "{}: {backend} said {reason:?}, every backend: {got:?}",
                s.name
            );
        }
    }
}
