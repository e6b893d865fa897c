//! The Cognito pre-token-generation trigger, as a black box
//! (`CERTBOUND_HANDLER=cognito-pre-token certbound invoke`) on V1/V2/V3
//! event fixtures, and its configuration.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

const X5T: &str = "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44";

/// Runs the binary with exactly `env` (plus PATH): the trigger must need
/// nothing of the authorizer's configuration.
fn trigger(event: &Value, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .arg("invoke")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CERTBOUND_HANDLER", "cognito-pre-token")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("events/{name}")).unwrap()).unwrap()
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn error(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errorType"], "CertboundTriggerError");
    v["errorMessage"].as_str().unwrap().to_owned()
}

fn cnf(v: &Value) -> &Value {
    &v["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]
        ["claimsToAddOrOverride"]["cnf"]
}

#[test]
fn v2_binds_the_access_token_and_changes_nothing_else() {
    let event = fixture("cognito-pre-token-v2.json");
    let out = ok(&trigger(&event, &[]));
    assert_eq!(cnf(&out), &json!({"x5t#S256": X5T}));
    // Everything but that one claim is the event as received.
    let mut expected = event.clone();
    expected["response"]["claimsAndScopeOverrideDetails"] =
        json!({"accessTokenGeneration": {"claimsToAddOrOverride": {"cnf": {"x5t#S256": X5T}}}});
    assert_eq!(out, expected);

    // What the event's response already held is kept.
    let mut event = fixture("cognito-pre-token-v2.json");
    event["response"]["claimsAndScopeOverrideDetails"] = json!({
        "idTokenGeneration": {"claimsToAddOrOverride": {"tenant": "acme"}},
        "accessTokenGeneration": {"claimsToAddOrOverride": {"tier": "gold"}, "scopesToAdd": ["x"]},
        "groupOverrideDetails": {"groupsToOverride": ["tpp"]}
    });
    let out = ok(&trigger(&event, &[]));
    let details = &out["response"]["claimsAndScopeOverrideDetails"];
    assert_eq!(
        details["idTokenGeneration"]["claimsToAddOrOverride"]["tenant"],
        "acme"
    );
    assert_eq!(
        details["accessTokenGeneration"]["claimsToAddOrOverride"]["tier"],
        "gold"
    );
    assert_eq!(
        details["accessTokenGeneration"]["scopesToAdd"],
        json!(["x"])
    );
    assert_eq!(
        details["groupOverrideDetails"]["groupsToOverride"],
        json!(["tpp"])
    );
    assert_eq!(cnf(&out)["x5t#S256"], X5T);
}

#[test]
fn attribute_encodings_are_normalised_to_base64url() {
    let bytes = URL_SAFE_NO_PAD.decode(X5T).unwrap();
    // What `openssl x509 -fingerprint -sha256` prints, and standard base64
    // (the AWS pattern's README recipe, which never matched base64url).
    let openssl = bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    for value in [
        openssl.clone(),
        openssl.to_lowercase().replace(':', ""),
        STANDARD.encode(&bytes),
    ] {
        let mut event = fixture("cognito-pre-token-v2.json");
        event["request"]["userAttributes"]["custom:cert_fingerprint"] = json!(value);
        assert_eq!(cnf(&ok(&trigger(&event, &[])))["x5t#S256"], X5T, "{value}");
    }
    // Another attribute name.
    let mut event = fixture("cognito-pre-token-v2.json");
    event["request"]["userAttributes"]["custom:x5t"] = json!(X5T);
    event["request"]["userAttributes"]
        .as_object_mut()
        .unwrap()
        .remove("custom:cert_fingerprint");
    let out = ok(&trigger(
        &event,
        &[("CERTBOUND_COGNITO_CERT_ATTRIBUTE", "custom:x5t")],
    ));
    assert_eq!(cnf(&out)["x5t#S256"], X5T);
}

#[test]
fn a_garbled_attribute_fails_the_sign_in_without_showing_the_value() {
    let mut event = fixture("cognito-pre-token-v2.json");
    event["request"]["userAttributes"]["custom:cert_fingerprint"] =
        json!("not-a-thumbprint-SECRETISH");
    let out = trigger(&event, &[]);
    let message = error(&out);
    assert!(message.contains("custom:cert_fingerprint"), "{message}");
    assert!(!message.contains("SECRETISH"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("SECRETISH"));
}

#[test]
fn no_thumbprint_issues_an_unbound_token_or_fails_when_required() {
    let mut event = fixture("cognito-pre-token-v2.json");
    event["request"]["userAttributes"]
        .as_object_mut()
        .unwrap()
        .remove("custom:cert_fingerprint");
    let out = ok(&trigger(&event, &[]));
    assert_eq!(out, event, "unbound: the event comes back unchanged");
    let message = error(&trigger(
        &event,
        &[("CERTBOUND_COGNITO_REQUIRE_CERT", "true")],
    ));
    assert!(
        message.contains("CERTBOUND_COGNITO_REQUIRE_CERT"),
        "{message}"
    );
}

#[test]
fn v1_events_are_refused_with_what_to_change() {
    let message = error(&trigger(&fixture("cognito-pre-token-v1.json"), &[]));
    assert!(message.contains("V2_0"), "{message}");
}

#[test]
fn v3_client_credentials_use_the_client_map() {
    let event = fixture("cognito-pre-token-v3-client-credentials.json");
    let map = json!({"m2m-client-1": X5T, "other": STANDARD.encode([7u8; 32])}).to_string();
    let out = ok(&trigger(
        &event,
        &[("CERTBOUND_COGNITO_CLIENT_CERTS", &map)],
    ));
    assert_eq!(cnf(&out)["x5t#S256"], X5T);
    // A client without an entry: unbound, or refused when required.
    let out = ok(&trigger(&event, &[]));
    assert!(cnf(&out).is_null());
    assert!(error(&trigger(
        &event,
        &[("CERTBOUND_COGNITO_REQUIRE_CERT", "true")]
    ))
    .contains("client"));
    // A bad map stops the start, naming the client, not the value.
    let out = trigger(
        &event,
        &[(
            "CERTBOUND_COGNITO_CLIENT_CERTS",
            r#"{"m2m-client-1": "garbage-VALUE"}"#,
        )],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("m2m-client-1") && !stderr.contains("garbage-VALUE"),
        "{stderr}"
    );
}

#[test]
fn each_handler_refuses_the_others_events() {
    let authorizer_event = fixture("rest-request.json");
    let message = error(&trigger(&authorizer_event, &[]));
    assert!(
        message.contains("not a Cognito pre token generation event"),
        "{message}"
    );
    // The authorizer, given a trigger event.
    let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["invoke", "--event", "events/cognito-pre-token-v2.json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTHLETE_BASE_URL", "https://as.example")
        .env("AUTHLETE_SERVICE_APIKEY", "1")
        .env("AUTHLETE_SERVICE_APISECRET", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CERTBOUND_HANDLER=cognito-pre-token"),
        "{stderr}"
    );
    // An unknown handler stops the start.
    let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["invoke", "--event", "events/token.json"])
        .env("CERTBOUND_HANDLER", "cognito")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn thumbprint_prints_the_cognito_attribute() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let plain = run(&["thumbprint", "tests/data/rfc8705-appendix-a.pem"]);
    assert_eq!(
        run(&[
            "thumbprint",
            "--cognito-attribute",
            "tests/data/rfc8705-appendix-a.pem"
        ]),
        format!("Name=custom:cert_fingerprint,Value={plain}")
    );
    assert_eq!(
        run(&[
            "thumbprint",
            "--cognito-attribute=custom:x5t",
            "tests/data/rfc8705-appendix-a.pem"
        ]),
        format!("Name=custom:x5t,Value={plain}")
    );
}
