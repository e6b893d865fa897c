//! Lambda's advanced logging controls (`AWS_LAMBDA_LOG_LEVEL`,
//! `AWS_LAMBDA_LOG_FORMAT`) over `RUST_LOG`, through the binary.

use std::process::Command;

/// `certbound invoke` on an event refused locally (no certificate): one
/// decision line at info. Returns stderr.
fn invoke_stderr(vars: &[(&str, &str)]) -> String {
    let event = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/rest-request-no-cert.json"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["invoke", "--event", event])
        .env_clear()
        .env("CERTBOUND_BACKEND", "rfc7662")
        .env(
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            "https://as.example/introspect",
        )
        .env("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs")
        .env("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "s3cret-value")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "a Deny policy");
    String::from_utf8(out.stderr).unwrap()
}

fn decision_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("decision")).collect()
}

#[test]
fn lambda_log_format_and_level_win_over_rust_log() {
    // Default: JSON lines at RUST_LOG's level.
    let json = invoke_stderr(&[("RUST_LOG", "info")]);
    let lines = decision_lines(&json);
    assert_eq!(lines.len(), 1, "{json}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(line["reason"], "cert_missing");
    assert_eq!(line["level"], "INFO");

    // AWS_LAMBDA_LOG_FORMAT=Text: plain text.
    let text = invoke_stderr(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]);
    let lines = decision_lines(&text);
    assert_eq!(lines.len(), 1, "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(lines[0]).is_err());
    assert!(
        lines[0].contains("INFO") && lines[0].contains("reason=\"cert_missing\""),
        "{}",
        lines[0]
    );

    // AWS_LAMBDA_LOG_LEVEL=ERROR silences the info line whatever RUST_LOG says…
    let quiet = invoke_stderr(&[("RUST_LOG", "debug"), ("AWS_LAMBDA_LOG_LEVEL", "ERROR")]);
    assert!(decision_lines(&quiet).is_empty(), "{quiet}");
    // …and AWS_LAMBDA_LOG_LEVEL=INFO brings it back over RUST_LOG=error.
    let loud = invoke_stderr(&[("RUST_LOG", "error"), ("AWS_LAMBDA_LOG_LEVEL", "INFO")]);
    assert_eq!(decision_lines(&loud).len(), 1, "{loud}");
    for out in [json, text, quiet, loud] {
        assert!(!out.contains("s3cret-value"));
    }
}
