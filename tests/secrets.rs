//! Secrets through a double of the AWS Parameters and Secrets Lambda
//! Extension (`GET /secretsmanager/get?secretId=…`, token header), as
//! documented by AWS.

use std::collections::HashMap;

use certbound::config::{BackendConfig, Config, Env};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ARN: &str = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:certbound/authlete-AbCdEf";

async fn extension(secret_string: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/secretsmanager/get"))
        .and(query_param("secretId", ARN))
        .and(header("X-Aws-Parameters-Secrets-Token", "session-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ARN": ARN, "Name": "certbound/authlete", "SecretString": secret_string,
            "VersionId": "v1", "VersionStages": ["AWSCURRENT"], "CreatedDate": "2026-11-22T00:00:00Z"
        })))
        .mount(&server)
        .await;
    server
}

fn base_env(ext: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = [
        ("CERTBOUND_SECRET_ID", ARN),
        ("AWS_SESSION_TOKEN", "session-token"),
        ("CERTBOUND_SECRETS_EXTENSION_URL", ext),
        ("AUTHLETE_BASE_URL", "https://api.authlete.com"),
        ("AUTHLETE_SERVICE_APIKEY", "123"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

async fn load(map: &HashMap<String, String>) -> Result<Config, String> {
    let env = Env::from_map(map);
    certbound::bootstrap::load_config(&env)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn json_secret_fills_the_variables() {
    let ext = extension(r#"{"AUTHLETE_SERVICE_APISECRET":"from-secrets-manager"}"#).await;
    let c = load(&base_env(
        &ext.uri(),
        &[("AUTHLETE_SERVICE_APISECRET", "plain-env-loses")],
    ))
    .await
    .unwrap();
    match c.backend {
        BackendConfig::Authlete(a) => {
            assert_eq!(
                a.api_secret.as_ref().map(|s| s.expose_secret()),
                Some("from-secrets-manager")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn plain_secret_is_the_backends_secret() {
    let ext = extension("v3-service-token").await;
    let c = load(&base_env(&ext.uri(), &[("AUTHLETE_API_VERSION", "V3")]))
        .await
        .unwrap();
    match c.backend {
        BackendConfig::Authlete(a) => {
            assert_eq!(
                a.access_token.as_ref().map(|s| s.expose_secret()),
                Some("v3-service-token")
            )
        }
        other => panic!("{other:?}"),
    }
    let ext = extension("rs-secret").await;
    let map = base_env(
        &ext.uri(),
        &[
            ("CERTBOUND_BACKEND", "rfc7662"),
            (
                "CERTBOUND_INTROSPECTION_ENDPOINT",
                "https://as.example.com/introspect",
            ),
            ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs"),
        ],
    );
    match load(&map).await.unwrap().backend {
        BackendConfig::Rfc7662(r) => assert_eq!(r.client_secret.expose_secret(), "rs-secret"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn secret_problems_are_clear_errors() {
    // Only credentials may come from the secret: whoever writes it must not
    // redirect introspection (and so every token) or switch binding off.
    for (key, value) in [
        ("PATH", "/evil"),
        (
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            "https://attacker.example/introspect",
        ),
        ("AUTHLETE_BASE_URL", "https://attacker.example"),
        ("CERTBOUND_REQUIRE_BINDING", "false"),
        ("CERTBOUND_SCOPE_DEFAULT", "none"),
    ] {
        let ext = extension(
            &serde_json::json!({ key: value, "AUTHLETE_SERVICE_APISECRET": "s" }).to_string(),
        )
        .await;
        let e = load(&base_env(&ext.uri(), &[])).await.unwrap_err();
        assert!(
            e.contains("may only hold credentials") && e.contains(key),
            "{key}: {e}"
        );
        assert!(
            !e.contains(value),
            "the value stays out of the message: {e}"
        );
    }
    let ext = extension(r#"{"AUTHLETE_SERVICE_APISECRET": 42}"#).await;
    let e = load(&base_env(&ext.uri(), &[])).await.unwrap_err();
    assert!(e.contains("not a string"), "{e}");

    let ext = extension("   ").await;
    assert!(load(&base_env(&ext.uri(), &[]))
        .await
        .unwrap_err()
        .contains("empty"));

    let ext = extension("x").await;
    let mut map = base_env(&ext.uri(), &[]);
    map.insert("AWS_SESSION_TOKEN".into(), "wrong".into());
    let e = load(&map).await.unwrap_err();
    assert!(e.contains("HTTP 404") && !e.contains("wrong"), "{e}");

    map.remove("AWS_SESSION_TOKEN");
    assert!(load(&map)
        .await
        .unwrap_err()
        .contains("AWS_SESSION_TOKEN is not"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let map = base_env(&format!("http://127.0.0.1:{port}"), &[]);
    let e = load(&map).await.unwrap_err();
    assert!(e.contains("Parameters and Secrets extension"), "{e}");
}
