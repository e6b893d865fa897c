//! Thumbprints (RFC 8705 Appendix A, openssl-generated certificates in
//! every encoding) and the CLI (`thumbprint`, `invoke`) as a black box.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use certbound::cert::ClientCert;
use common::*;
use serde_json::Value;
use wiremock::MockServer;

const BIN: &str = env!("CARGO_BIN_EXE_certbound");
const RFC8705_X5T: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

fn cli(args: &[&str], stdin: &[u8], env: &[(String, String)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn rfc8705_appendix_a_vector() {
    let pem = std::fs::read_to_string("tests/data/rfc8705-appendix-a.pem").unwrap();
    assert_eq!(
        ClientCert::from_pem(&pem).unwrap().thumbprint(),
        RFC8705_X5T
    );
    let out = cli(
        &["thumbprint", "tests/data/rfc8705-appendix-a.pem"],
        b"",
        &[],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), RFC8705_X5T);
}

#[test]
fn generated_certificates_match_openssl_in_every_encoding() {
    for kind in ["ec-p256", "ec-p384", "rsa", "ed25519"] {
        let c = gen_cert(kind, "client");
        let b64 = STANDARD.encode(&c.der);
        let url_pem: String =
            percent_encoding::utf8_percent_encode(&c.pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let chain = format!("{}{}", c.pem, gen_cert("ec-p256", "ca").pem);
        let encodings: Vec<(&str, Vec<u8>)> = vec![
            ("pem", c.pem.clone().into_bytes()),
            ("pem with chain", chain.into_bytes()),
            ("pem crlf", c.pem.replace('\n', "\r\n").into_bytes()),
            ("url-encoded pem (nginx)", url_pem.clone().into_bytes()),
            ("base64 der", b64.clone().into_bytes()),
            (
                "base64url der",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(&c.der)
                    .into_bytes(),
            ),
            ("rfc9440", format!(":{b64}:").into_bytes()),
            (
                "xfcc (envoy)",
                format!("By=spiffe://gw;Hash=abc;Cert=\"{url_pem}\";Subject=\"CN=x\"").into_bytes(),
            ),
            ("der", c.der.clone()),
        ];
        for (name, bytes) in encodings {
            let lib = ClientCert::detect(&bytes).unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
            assert_eq!(lib.thumbprint(), c.openssl_thumbprint, "{kind} {name}");
            let out = cli(&["thumbprint", "-"], &bytes, &[]);
            assert!(out.status.success(), "{kind} {name}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                c.openssl_thumbprint,
                "{kind} {name}"
            );
        }
    }
}

#[test]
fn thumbprint_refuses_anything_else_with_exit_2() {
    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB\n-----END PRIVATE KEY-----\n";
    for (input, needle) in [
        (&b""[..], "no certificate data"),
        (b"hello world", "not valid base64"),
        (key.as_bytes(), "no readable CERTIFICATE"),
        (b"aGVsbG8=", "not a DER-encoded X.509"),
        (
            &[0x30, 0x82, 0x01, 0x00, 0xff][..],
            "not a DER-encoded X.509",
        ),
    ] {
        let out = cli(&["thumbprint"], input, &[]);
        assert_eq!(out.status.code(), Some(2), "{input:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    }
    let out = cli(&["thumbprint", "/nonexistent/cert.pem"], b"", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/cert.pem"));
}

/// Answers like Authlete for a token bound to the events' certificate.
async fn bound_token_double() -> MockServer {
    let server = MockServer::start().await;
    mount_authlete(&server, bound_to_events("OK")).await;
    server
}

fn env_vec(base: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    authlete_env(base, false, extra).into_iter().collect()
}

#[tokio::test]
async fn invoke_every_sample_event() {
    let server = bound_token_double().await;
    let cases = [
        ("events/rest-request.json", "true", 0, "Allow"),
        ("events/rest-request-dpop.json", "true", 0, "Allow"),
        ("events/http-api-v2.json", "true", 0, "Allow"),
        ("events/rest-request-no-cert.json", "true", 0, "Deny"),
        ("events/token.json", "true", 0, "Deny"),
        (
            "events/rest-request-no-cert.json",
            "false",
            1,
            "Unauthorized",
        ),
        ("events/token.json", "false", 1, "Unauthorized"),
        ("events/rest-request.json", "false", 0, "Allow"),
    ];
    for (file, policy, code, expected) in cases {
        let env = env_vec(&server.uri(), &[("CERTBOUND_POLICY", policy)]);
        let out = tokio::task::spawn_blocking(move || cli(&["invoke", "--event", file], b"", &env))
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{file} policy={policy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
        if code == 0 {
            assert_eq!(effect(&json), expected, "{file}");
        } else {
            assert_eq!(
                json,
                serde_json::json!({"errorType": expected, "errorMessage": expected})
            );
        }
        // Logs: JSON lines on stderr, one decision, the token never.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("Mx9c3Ufo1kcbl4Jd0Vn3nqGNM2vA3hT2"),
            "token in logs: {stderr}"
        );
        let decisions: Vec<Value> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "decision")
            .collect();
        assert_eq!(decisions.len(), 1, "{stderr}");
        assert_eq!(decisions[0]["token_sha256"].as_str().unwrap().len(), 8);
        assert!(decisions[0]["verdict"].is_string(), "{stderr}");
        // The AS call's latency, only when one was made (no certificate:
        // refused locally).
        assert_eq!(
            decisions[0]["introspection_ms"].is_number(),
            !file.contains("no-cert") && !file.contains("token"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn invoke_errors_and_exit_codes() {
    let server = bound_token_double().await;
    let env = env_vec(&server.uri(), &[]);
    let e = env.clone();
    let out = tokio::task::spawn_blocking(move || cli(&["invoke"], b"{not json", &e))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"errorType": "InvalidEvent", "errorMessage": "Internal Server Error"})
    );

    let e: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "AUTHLETE_SERVICE_APISECRET")
        .cloned()
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        cli(&["invoke", "--event", "events/token.json"], b"", &e)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTHLETE_SERVICE_APISECRET is not set"));

    let out = cli(&["invoke", "--bogus"], b"", &env);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&["invoke", "--event", "/nonexistent.json"], b"", &env);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&["--help"], b"", &env);
    assert_eq!(out.status.code(), Some(0));
}
