//! Per-client usage plans (REST APIs, `apiKeySource: AUTHORIZER`):
//! `usageIdentifierKey` from `CERTBOUND_USAGE_KEYS`, only on Allow, only
//! for REST `REQUEST`/`TOKEN` events; a client without a key gets none and
//! the log says so, never showing a key.

mod common;

use std::collections::HashMap;

use certbound::config::{Config, Env};
use certbound::fronts::lambda::handle_event;
use common::*;
use serde_json::{json, Value};
use wiremock::{MockServer, ResponseTemplate};

const KEYS: &str =
    r#"{"tpp-app": "usage-k3y-tpp-app-0123456789", "other": "usage-k3y-other-0123456789"}"#;

async fn decide(env: &HashMap<String, String>, event: Value) -> Value {
    let (c, a) = authorizer(env);
    handle_event(&a, c.http_api_response, event, None)
        .await
        .expect("policy mode answers")
}

#[tokio::test]
async fn allow_on_rest_events_carries_the_clients_key() {
    let cert = gen_cert("ec-p256", "client-a");
    let bearer = format!("Bearer {TOKEN}");
    let ok = bound_double("OK", &cert).await;
    // Authlete's answer: clientId 57297408867, alias "tpp-app" not used →
    // client_id is the number, the alias still finds the key.
    let env = authlete_env(&ok.uri(), true, &[("CERTBOUND_USAGE_KEYS", KEYS)]);
    let out = decide(&env, rest_event(Some(&bearer), Some(&cert.pem))).await;
    assert_eq!(effect(&out), "Allow");
    assert_eq!(out["context"]["client_id"], "57297408867");
    assert_eq!(out["usageIdentifierKey"], "usage-k3y-tpp-app-0123456789");
    // …and by number.
    let by_number = authlete_env(
        &ok.uri(),
        true,
        &[(
            "CERTBOUND_USAGE_KEYS",
            r#"{"57297408867": "usage-k3y-by-number-01"}"#,
        )],
    );
    let out = decide(&by_number, rest_event(Some(&bearer), Some(&cert.pem))).await;
    assert_eq!(out["usageIdentifierKey"], "usage-k3y-by-number-01");
    // The key is never in the context (which reaches the backend).
    assert!(!out["context"].to_string().contains("usage-k3y"));

    // Deny: no key.
    let out = decide(&env, rest_event(Some(&bearer), None)).await;
    assert_eq!(effect(&out), "Deny");
    assert!(out.get("usageIdentifierKey").is_none(), "{out}");

    // HTTP API 2.0 (no usage plans): no key, even on Allow.
    let out = decide(&env, v2_event(Some(&bearer), Some(&cert.pem))).await;
    assert_eq!(effect(&out), "Allow");
    assert!(out.get("usageIdentifierKey").is_none(), "{out}");

    // No map: no key, as before.
    let plain = authlete_env(&ok.uri(), true, &[]);
    let out = decide(&plain, rest_event(Some(&bearer), Some(&cert.pem))).await;
    assert_eq!(effect(&out), "Allow");
    assert!(out.get("usageIdentifierKey").is_none());
}

#[tokio::test]
async fn token_events_carry_the_key_when_binding_is_off() {
    let server = MockServer::start().await;
    mount_authlete(&server, answering("OK")).await;
    let env = authlete_env(
        &server.uri(),
        false,
        &[
            ("CERTBOUND_USAGE_KEYS", KEYS),
            ("CERTBOUND_REQUIRE_BINDING", "false"),
        ],
    );
    let event = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {TOKEN}"),
        "methodArn": ARN});
    let out = decide(&env, event).await;
    assert_eq!(effect(&out), "Allow");
    assert_eq!(out["usageIdentifierKey"], "usage-k3y-tpp-app-0123456789");
}

#[tokio::test]
async fn a_client_without_a_key_gets_none_and_the_log_says_so() {
    let cert = gen_cert("ec-p256", "client-a");
    let ok = bound_double("OK", &cert).await;
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)).to_string(),
    )
    .unwrap();
    let mut env = authlete_env(&ok.uri(), true, &[]);
    env.insert(
        "CERTBOUND_USAGE_KEYS".into(),
        r#"{"someone-else": "usage-k3y-someone-else-01"}"#.into(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args(["invoke", "--event"])
            .arg(&event)
            .env_clear()
            .envs(&env)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(effect(&answer), "Allow");
    assert!(answer.get("usageIdentifierKey").is_none(), "{answer}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.contains("no usage key"))
        .unwrap_or_else(|| panic!("no log line: {stderr}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["client_id"], "57297408867");
    assert!(!stderr.contains("usage-k3y"), "{stderr}");
}

#[test]
fn invalid_map_stops_the_start_naming_the_variable_not_the_values() {
    for bad in [
        r#"{"tpp-app": "usage-k3y-broken"#,
        r#"{"tpp-app": 12345}"#,
        r#"["usage-k3y-list"]"#,
    ] {
        let mut env = authlete_env("https://api.authlete.com", true, &[]);
        env.insert("CERTBOUND_USAGE_KEYS".into(), bad.into());
        let e = Config::from_env(&Env::from_map(&env))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("CERTBOUND_USAGE_KEYS is invalid"), "{e}");
        assert!(!e.contains("usage-k3y") && !e.contains("12345"), "{e}");
    }
    // Debug of the configuration never shows a key.
    let env = authlete_env(
        "https://api.authlete.com",
        true,
        &[("CERTBOUND_USAGE_KEYS", KEYS)],
    );
    let c = Config::from_env(&Env::from_map(&env)).unwrap();
    assert_eq!(c.settings.usage_keys.len(), 2);
    assert!(!format!("{c:?}").contains("usage-k3y"));
}

#[test]
fn the_map_may_come_from_the_secret() {
    let env: HashMap<String, String> = HashMap::new();
    let vars = certbound::secrets::secret_to_vars(
        &Env::from_map(&env),
        &json!({"CERTBOUND_USAGE_KEYS": KEYS}).to_string(),
    )
    .unwrap();
    assert_eq!(vars["CERTBOUND_USAGE_KEYS"], KEYS);
}

#[tokio::test]
async fn failures_never_carry_a_key() {
    let server = MockServer::start().await;
    mount_authlete(&server, ResponseTemplate::new(500)).await;
    let cert = gen_cert("ec-p256", "client-a");
    let env = authlete_env(&server.uri(), true, &[("CERTBOUND_USAGE_KEYS", KEYS)]);
    let out = decide(
        &env,
        rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem)),
    )
    .await;
    assert_eq!(effect(&out), "Deny");
    assert!(out.get("usageIdentifierKey").is_none());
}
