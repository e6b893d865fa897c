//! The Lambda front against a faithful Authlete double: the decision table
//! in both modes and both API versions, what is sent, the context, and
//! every failure kind.

mod common;

use std::time::Duration;

use certbound::fronts::lambda::{handle_event, HandlerError};
use common::*;
use serde_json::{json, Value};
use wiremock::{MockServer, ResponseTemplate};

async fn run(
    env: &std::collections::HashMap<String, String>,
    event: Value,
) -> Result<Value, HandlerError> {
    let (c, a) = authorizer(env);
    handle_event(&a, c.http_api_response, event, None).await
}

#[tokio::test]
async fn decision_table_both_modes_both_versions() {
    let cert = gen_cert("ec-p256", "client-a");
    let bearer = format!("Bearer {TOKEN}");
    let expected = [
        ("OK", "Allow", Ok("Allow")),
        ("BAD_REQUEST", "Deny", Ok("Deny")),
        ("FORBIDDEN", "Deny", Ok("Deny")),
        ("UNAUTHORIZED", "Deny", Err(HandlerError::Unauthorized)),
        (
            "INTERNAL_SERVER_ERROR",
            "Deny",
            Err(HandlerError::InternalServerError),
        ),
    ];
    for v3 in [false, true] {
        for (action, with_policy, without_policy) in &expected {
            let server = MockServer::start().await;
            mount_authlete(&server, bound(action, &cert)).await;
            let event = rest_event(Some(&bearer), Some(&cert.pem));

            let env = authlete_env(&server.uri(), v3, &[]);
            let out = run(&env, event.clone())
                .await
                .expect("policy mode always answers");
            assert_eq!(effect(&out), *with_policy, "v3={v3} {action} policy=true");
            assert_eq!(out["policyDocument"]["Statement"][0]["Resource"], ARN);
            assert_eq!(
                out["policyDocument"]["Statement"][0]["Action"],
                "execute-api:Invoke"
            );
            assert_eq!(out["policyDocument"]["Version"], "2012-10-17");

            let env = authlete_env(&server.uri(), v3, &[("CERTBOUND_POLICY", "false")]);
            let out = run(&env, event).await;
            match without_policy {
                Ok(e) => assert_eq!(effect(&out.unwrap()), *e, "v3={v3} {action} policy=false"),
                Err(err) => assert_eq!(out.unwrap_err(), *err, "v3={v3} {action} policy=false"),
            }
            assert_eq!(
                received_bodies(&server).await.len(),
                2,
                "one call per invocation"
            );
        }
    }
}

#[tokio::test]
async fn what_is_sent_to_authlete() {
    let cert = gen_cert("rsa", "client-a");
    let server = bound_double("OK", &cert).await;
    let rules = "[[rule]]\nmethod='GET'\npath='/accounts/*/balances'\nscopes=['accounts','read']";
    let env = authlete_env(
        &server.uri(),
        false,
        &[("CERTBOUND_SCOPE_RULES_INLINE", rules)],
    );
    // Header name in odd case: still found.
    let mut event = rest_event(None, Some(&cert.pem));
    event["headers"]["aUtHoRiZaTiOn"] = json!(format!("bearer {TOKEN}"));
    run(&env, event).await.unwrap();

    let body = &received_bodies(&server).await[0];
    assert_eq!(body["token"], TOKEN);
    assert_eq!(body["scopes"], json!(["accounts", "read"]));
    let sent_pem = body["clientCertificate"].as_str().unwrap();
    let sent = certbound::cert::ClientCert::from_pem(sent_pem).unwrap();
    assert_eq!(sent.thumbprint(), cert.openssl_thumbprint);
    for absent in ["dpop", "htm", "htu"] {
        assert!(
            body.get(absent).is_none(),
            "{absent} must not be sent for Bearer"
        );
    }
}

#[tokio::test]
async fn dpop_proof_method_and_uri_are_forwarded() {
    let cert = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &cert).await;
    let env = authlete_env(&server.uri(), true, &[]);
    let mut event = rest_event(Some(&format!("DPoP {TOKEN}")), Some(&cert.pem));
    event["headers"]["DPoP"] = json!("eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJodG0iOiJHRVQifQ.c2ln");
    let out = run(&env, event).await.unwrap();
    assert_eq!(effect(&out), "Allow");
    let body = &received_bodies(&server).await[0];
    assert_eq!(body["token"], TOKEN);
    assert_eq!(
        body["dpop"],
        "eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJodG0iOiJHRVQifQ.c2ln"
    );
    assert_eq!(body["htm"], "GET");
    assert_eq!(
        body["htu"],
        "https://api.bank.example/prod/accounts/1234/balances"
    );
}

#[tokio::test]
async fn context_holds_flat_values_and_no_nulls() {
    let cert = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &cert).await;
    let env = authlete_env(&server.uri(), false, &[]);
    let out = run(
        &env,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)),
    )
    .await
    .unwrap();
    assert_eq!(out["principalId"], "john");
    let ctx = out["context"].as_object().unwrap();
    assert_eq!(ctx["scope"], "accounts payments");
    assert_eq!(
        ctx["client_id"], "57297408867",
        "alias not used → the number as a string"
    );
    assert_eq!(ctx["sub"], "john");
    assert_eq!(ctx["exp"], EXPIRES_AT_MS / 1000);
    assert_eq!(ctx["action"], "OK");
    assert_eq!(ctx["resultMessage"], "[A056001] The access token is valid.");
    assert_eq!(ctx["resultCode"], "A056001", "Authlete's code kept");
    assert_eq!(ctx["cert_thumbprint"], cert.openssl_thumbprint.as_str());
    assert!(ctx.get("challenge").is_none(), "no challenge on Allow");
    assert!(ctx.get("reason").is_none(), "no reason on Allow");
    assert!(
        ctx.get("introspection_request").is_none() && ctx.get("introspection_response").is_none()
    );
    for (k, v) in ctx {
        assert!(
            v.is_string() || v.is_number() || v.is_boolean(),
            "{k} = {v}"
        );
    }
    assert!(
        !out.to_string().contains(TOKEN),
        "the token never reaches the context"
    );

    // FORBIDDEN: alias used, challenge = Authlete's responseContent.
    server.reset().await;
    mount_authlete(&server, bound("FORBIDDEN", &cert)).await;
    let out = run(
        &env,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)),
    )
    .await
    .unwrap();
    assert_eq!(out["context"]["client_id"], "tpp-app");
    assert_eq!(
        out["context"]["challenge"],
        authlete_answer("FORBIDDEN")["responseContent"],
        "Authlete's challenge, parsed and rendered again, is unchanged"
    );
    assert_eq!(out["context"]["reason"], "scope_insufficient");

    // UNAUTHORIZED: no subject, no client → placeholder principal, no sub/client_id/exp keys.
    server.reset().await;
    mount_authlete(&server, answering("UNAUTHORIZED")).await;
    let out = run(
        &env,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)),
    )
    .await
    .unwrap();
    assert_eq!(out["principalId"], "anonymous");
    // Authlete's expiresAt 0 becomes exp 0, as in the reference.
    assert_eq!(out["context"]["exp"], 0);
    for absent in ["sub", "client_id", "scope"] {
        assert!(
            out["context"].get(absent).is_none(),
            "{absent} must be absent, not null"
        );
    }
    assert!(out["context"]["challenge"]
        .as_str()
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(out["context"]["reason"], "token_inactive");

    // No subject but a client: the client id is the principal.
    server.reset().await;
    let mut answer = authlete_answer("OK");
    answer.as_object_mut().unwrap().remove("subject");
    answer["certificateThumbprint"] = json!(cert.openssl_thumbprint);
    mount_authlete(&server, ResponseTemplate::new(200).set_body_json(answer)).await;
    let out = run(
        &env,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)),
    )
    .await
    .unwrap();
    assert_eq!(out["principalId"], "57297408867");
}

#[tokio::test]
async fn debug_context_redacts_the_token() {
    let cert = gen_cert("ec-p256", "client-a");
    let server = bound_double("OK", &cert).await;
    let env = authlete_env(&server.uri(), false, &[("CERTBOUND_CONTEXT_DEBUG", "true")]);
    let out = run(
        &env,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)),
    )
    .await
    .unwrap();
    assert_eq!(effect(&out), "Allow");
    let req = out["context"]["introspection_request"].as_str().unwrap();
    let resp = out["context"]["introspection_response"].as_str().unwrap();
    assert!(!req.contains(TOKEN) && req.contains("redacted"), "{req}");
    assert_eq!(
        serde_json::from_str::<Value>(resp).unwrap()["resultCode"],
        "A056001"
    );
}

#[tokio::test]
async fn every_failure_fails_closed() {
    let cert = gen_cert("ec-p256", "client-a");
    let event = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
    let answers: Vec<(&str, ResponseTemplate)> = vec![
        (
            "http 500",
            ResponseTemplate::new(500).set_body_string("oops"),
        ),
        (
            "http 401",
            ResponseTemplate::new(401).set_body_json(json!({"resultCode":"A001202"})),
        ),
        (
            "http 302",
            ResponseTemplate::new(302).insert_header("location", "https://elsewhere/"),
        ),
        (
            "not json",
            ResponseTemplate::new(200).set_body_string("<html>"),
        ),
        (
            "json array",
            ResponseTemplate::new(200).set_body_json(json!([{"action": "OK"}])),
        ),
        (
            "unknown action",
            ResponseTemplate::new(200).set_body_json(json!({"action": "MAYBE"})),
        ),
        (
            "lower-case ok",
            ResponseTemplate::new(200).set_body_json(json!({"action": "ok"})),
        ),
        (
            "no action",
            ResponseTemplate::new(200).set_body_json(json!({"resultCode": "A056001"})),
        ),
        (
            "ill-typed",
            ResponseTemplate::new(200).set_body_json(json!({"action": "OK", "scopes": "all"})),
        ),
        ("empty body", ResponseTemplate::new(200)),
        (
            "timeout",
            ResponseTemplate::new(200)
                .set_body_json(authlete_answer("OK"))
                .set_delay(Duration::from_millis(1500)),
        ),
    ];
    for (name, answer) in answers {
        let server = MockServer::start().await;
        mount_authlete(&server, answer).await;
        for policy in ["true", "false"] {
            let env = authlete_env(
                &server.uri(),
                false,
                &[
                    ("CERTBOUND_POLICY", policy),
                    ("CERTBOUND_TIMEOUT_MS", "300"),
                ],
            );
            let out = run(&env, event.clone()).await;
            match (policy, out) {
                ("true", Ok(v)) => {
                    assert_eq!(effect(&v), "Deny", "{name}");
                    let reason = v["context"]["reason"].as_str().unwrap();
                    let expected = if name == "timeout" {
                        "as_unavailable"
                    } else {
                        "as_error"
                    };
                    assert_eq!(reason, expected, "{name}");
                    assert!(
                        v["context"]["introspection_exception"].is_string(),
                        "{name}: {v}"
                    );
                    assert!(
                        v["context"]["challenge"]
                            .as_str()
                            .unwrap()
                            .contains("server_error"),
                        "{name}"
                    );
                }
                ("false", Err(e)) => assert_eq!(e, HandlerError::InternalServerError, "{name}"),
                (p, other) => panic!("{name} policy={p}: {other:?}"),
            }
        }
    }
    // Nothing listening at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = authlete_env(&format!("http://127.0.0.1:{port}"), false, &[]);
    let out = run(&env, event.clone()).await.unwrap();
    assert_eq!(effect(&out), "Deny");
    assert!(out["context"]["introspection_exception"]
        .as_str()
        .unwrap()
        .starts_with("connect"));
    assert_eq!(out["context"]["reason"], "as_unavailable");
}

#[tokio::test]
async fn missing_or_unusable_credentials_are_denied_without_asking_the_as() {
    let cert = gen_cert("ec-p256", "client-a");
    let server = authlete_double("OK").await;
    let mut query_token = rest_event(None, Some(&cert.pem));
    query_token["queryStringParameters"] = json!({"access_token": TOKEN});
    let mut twice = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
    twice["multiValueHeaders"] =
        json!({"Authorization": [format!("Bearer {TOKEN}"), "Bearer other"]});
    let cases = [
        (
            "no header",
            rest_event(None, Some(&cert.pem)),
            "Bearer",
            "token_missing",
        ),
        (
            "token in query only",
            query_token,
            "Bearer",
            "token_missing",
        ),
        (
            "basic scheme",
            rest_event(Some("Basic dXNlcjpwYXNz"), Some(&cert.pem)),
            "invalid_request",
            "token_malformed",
        ),
        (
            "scheme only",
            rest_event(Some("Bearer"), Some(&cert.pem)),
            "invalid_request",
            "token_malformed",
        ),
        ("two tokens", twice, "invalid_request", "token_malformed"),
        (
            "garbage cert",
            rest_event(
                Some(&format!("Bearer {TOKEN}")),
                Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
            ),
            "invalid_request",
            "cert_unreadable",
        ),
    ];
    for policy in ["true", "false"] {
        let env = authlete_env(&server.uri(), false, &[("CERTBOUND_POLICY", policy)]);
        for (name, event, challenge, reason) in &cases {
            let out = run(&env, event.clone()).await.unwrap();
            assert_eq!(effect(&out), "Deny", "{name} policy={policy}");
            assert_eq!(out["context"]["action"], "BAD_REQUEST", "{name}");
            assert_eq!(out["context"]["reason"], *reason, "{name}");
            assert!(
                out["context"]["challenge"]
                    .as_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{name}"
            );
            assert!(
                out["context"]["challenge"]
                    .as_str()
                    .unwrap()
                    .contains(challenge),
                "{name}"
            );
        }
    }
    assert!(
        received_bodies(&server).await.is_empty(),
        "the AS must not be asked"
    );
}

#[tokio::test]
async fn token_and_http_api_events() {
    let cert = gen_cert("ec-p384", "client-a");
    let server = bound_double("OK", &cert).await;
    let env = authlete_env(&server.uri(), false, &[]);

    let v2 = v2_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
    let out = run(&env, v2.clone()).await.unwrap();
    assert_eq!(effect(&out), "Allow");
    assert_eq!(
        out["policyDocument"]["Statement"][0]["Resource"],
        "arn:aws:execute-api:eu-west-2:123456789012:f9g8h7j6k5/$default/POST/payments"
    );
    assert_eq!(
        out["context"]["cert_thumbprint"],
        cert.openssl_thumbprint.as_str()
    );

    let simple = authlete_env(
        &server.uri(),
        false,
        &[("CERTBOUND_HTTP_API_RESPONSE", "simple")],
    );
    let out = run(&simple, v2.clone()).await.unwrap();
    assert_eq!(out["isAuthorized"], true);
    assert_eq!(out["context"]["sub"], "john");
    assert!(out.get("policyDocument").is_none());

    // The v2 certificate location is read, and validity may be missing.
    let mut no_validity = v2.clone();
    no_validity["requestContext"]["authentication"]["clientCert"]
        .as_object_mut()
        .unwrap()
        .remove("validity");
    let out = run(&simple, no_validity).await.unwrap();
    assert_eq!(
        out["context"]["cert_thumbprint"],
        cert.openssl_thumbprint.as_str()
    );
    let bodies = received_bodies(&server).await;
    let last = bodies.last().unwrap();
    assert!(last["clientCertificate"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    server.reset().await;
    mount_authlete(&server, bound("UNAUTHORIZED", &cert)).await;
    let out = run(&simple, v2.clone()).await.unwrap();
    assert_eq!(out["isAuthorized"], false);
    let strict = authlete_env(
        &server.uri(),
        false,
        &[
            ("CERTBOUND_HTTP_API_RESPONSE", "simple"),
            ("CERTBOUND_POLICY", "false"),
        ],
    );
    assert_eq!(
        run(&strict, v2).await.unwrap_err(),
        HandlerError::Unauthorized
    );
}

#[tokio::test]
async fn malformed_events_are_internal_errors_in_both_modes() {
    let server = authlete_double("OK").await;
    let mut no_arn = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    no_arn.as_object_mut().unwrap().remove("methodArn");
    let mut bad_arn = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    bad_arn["methodArn"] = json!("arn:aws:s3:::bucket");
    let mut no_ctx = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    no_ctx.as_object_mut().unwrap().remove("requestContext");
    let mut wrong_type = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    wrong_type["headers"] = json!(["Authorization"]);
    let mut header_number = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    header_number["headers"]["X-Number"] = json!(5);
    let mut header_list = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    header_list["headers"]["Authorization"] = json!([format!("Bearer {TOKEN}")]);
    let mut multi_not_list = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    multi_not_list["multiValueHeaders"] = json!({"Authorization": format!("Bearer {TOKEN}")});
    let mut authentication_string = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    authentication_string["requestContext"]["authentication"] = json!("yes");
    let mut pem_number = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    pem_number["requestContext"]["identity"]["clientCert"] = json!({"clientCertPem": 42});
    let mut arn_without_path = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    arn_without_path["methodArn"] =
        json!("arn:aws:execute-api:eu-west-2:123456789012:a1b2c3d4e5/prod/GET");
    let mut method_mismatch = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    method_mismatch["httpMethod"] = json!("DELETE");
    let mut dpop_twice = rest_event(Some(&format!("Bearer {TOKEN}")), None);
    dpop_twice["headers"]["DPoP"] = json!("a");
    dpop_twice["headers"]["dpop"] = json!("b");
    let cases = [
        ("null", Value::Null),
        ("array", json!([1, 2])),
        ("string", json!("TOKEN")),
        ("empty object", json!({})),
        ("unknown type", json!({"type": "COOKIE", "methodArn": ARN})),
        (
            "token without arn",
            json!({"type": "TOKEN", "authorizationToken": format!("Bearer {TOKEN}")}),
        ),
        ("no methodArn", no_arn),
        ("bad methodArn", bad_arn),
        ("no requestContext", no_ctx),
        ("headers not a map", wrong_type),
        ("a header value is a number", header_number),
        ("a headers value is a list", header_list),
        ("multiValueHeaders value not a list", multi_not_list),
        ("authentication not an object", authentication_string),
        ("clientCertPem not a string", pem_number),
        ("methodArn without the path part", arn_without_path),
        ("httpMethod contradicts methodArn", method_mismatch),
        ("DPoP header twice", dpop_twice),
        (
            "type not a string",
            json!({"type": ["TOKEN"], "methodArn": ARN}),
        ),
        (
            "v2 without http",
            json!({"version": "2.0", "type": "REQUEST", "routeArn": ARN, "requestContext": {}}),
        ),
    ];
    for policy in ["true", "false"] {
        let env = authlete_env(&server.uri(), false, &[("CERTBOUND_POLICY", policy)]);
        for (name, event) in &cases {
            let out = run(&env, event.clone()).await;
            assert!(
                matches!(out, Err(HandlerError::InvalidEvent(_))),
                "{name}: {out:?}"
            );
        }
    }
    assert!(received_bodies(&server).await.is_empty());
}
