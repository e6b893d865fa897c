//! Secrets at start: when `CERTBOUND_SECRET_ID` is set, the secret is read
//! once (in Lambda: on the first invocation, because the extension answers
//! only in the INVOKE phase) from AWS Secrets Manager through the AWS Parameters
//! and Secrets Lambda Extension on localhost (no AWS SDK in the binary: one
//! loopback HTTP call, cached by the extension). Plain environment values
//! still work for local use.
//!
//! The `SecretString` is either a JSON object whose keys are variable names
//! (`{"AUTHLETE_SERVICE_APISECRET": "…"}`) or a plain string, used as the
//! secret of the configured backend. Only credentials may come from the
//! secret ([`CREDENTIAL_VARS`]): whoever can write the secret must not be
//! able to point introspection at another host or switch binding off, so
//! any other key stops the start with a message naming it.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Env;
use crate::transport::{build_client, HttpSettings};

/// The variables a secret may set: credentials, nothing else.
pub const CREDENTIAL_VARS: [&str; 5] = [
    "AUTHLETE_SERVICE_APISECRET",
    "AUTHLETE_SERVICE_ACCESSTOKEN",
    "CERTBOUND_INTROSPECTION_CLIENT_SECRET",
    "CERTBOUND_COGNITO_CLIENT_CERTS",
    "CERTBOUND_USAGE_KEYS",
];

/// Why the secret could not be fetched. Messages never hold its value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A variable the fetch needs is missing.
    #[error("CERTBOUND_SECRET_ID is set but {0} is not")]
    Missing(&'static str),
    /// The extension could not be reached or refused.
    #[error(
        "cannot read secret through the Parameters and Secrets extension at {endpoint}: {reason}"
    )]
    Fetch {
        /// The extension URL (no secret in it).
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The secret has no usable value.
    #[error("secret CERTBOUND_SECRET_ID has no usable SecretString: {0}")]
    Shape(String),
    /// The secret sets a variable that is not a credential.
    #[error("secret CERTBOUND_SECRET_ID may only hold credentials ({allowed}); it sets {key:?}: set that variable in the function's configuration instead", allowed = CREDENTIAL_VARS.join(", "))]
    NotACredential {
        /// The key (a variable name, never a value).
        key: String,
    },
}

#[derive(Deserialize)]
struct ExtensionAnswer {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// The variable a plain-string secret stands for, given the backend.
fn plain_secret_var(env: &Env<'_>) -> &'static str {
    let backend = env
        .get("CERTBOUND_BACKEND")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let v3 = env
        .get("AUTHLETE_API_VERSION")
        .is_some_and(|v| v.eq_ignore_ascii_case("v3"));
    match (backend.as_str(), v3) {
        ("rfc7662", _) => "CERTBOUND_INTROSPECTION_CLIENT_SECRET",
        (_, true) => "AUTHLETE_SERVICE_ACCESSTOKEN",
        _ => "AUTHLETE_SERVICE_APISECRET",
    }
}

/// Turns a `SecretString` into variables.
pub fn secret_to_vars(env: &Env<'_>, secret: &str) -> Result<HashMap<String, String>, SecretError> {
    let trimmed = secret.trim();
    if trimmed.is_empty() {
        return Err(SecretError::Shape("empty".into()));
    }
    if trimmed.starts_with('{') {
        let map: HashMap<String, serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| {
                SecretError::Shape(format!(
                    "JSON object expected ({})",
                    crate::transport::json_error_kind(&e)
                ))
            })?;
        let mut vars = HashMap::new();
        for (k, v) in map {
            if !CREDENTIAL_VARS.contains(&k.as_str()) {
                return Err(SecretError::NotACredential {
                    key: k.chars().take(64).collect(),
                });
            }
            let serde_json::Value::String(v) = v else {
                return Err(SecretError::Shape(format!("{k} is not a string")));
            };
            vars.insert(k, v);
        }
        return Ok(vars);
    }
    Ok(HashMap::from([(
        plain_secret_var(env).to_owned(),
        trimmed.to_owned(),
    )]))
}

/// Fetches the secret named by `CERTBOUND_SECRET_ID`, if any, and returns
/// the variables it provides (empty when the variable is unset).
pub async fn fetch_overlay(env: &Env<'_>) -> Result<HashMap<String, String>, SecretError> {
    let Some(secret_id) = env.get("CERTBOUND_SECRET_ID") else {
        return Ok(HashMap::new());
    };
    let token = env
        .get("AWS_SESSION_TOKEN")
        .ok_or(SecretError::Missing("AWS_SESSION_TOKEN"))?;
    let endpoint = env
        .get("CERTBOUND_SECRETS_EXTENSION_URL")
        .unwrap_or_else(|| {
            let port = env
                .get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
                .unwrap_or_else(|| "2773".into());
            format!("http://localhost:{port}")
        });
    let fail = |reason: String| SecretError::Fetch {
        endpoint: endpoint.clone(),
        reason,
    };
    let client = build_client(&HttpSettings {
        connect_timeout: Duration::from_millis(250),
        timeout: Duration::from_millis(1000),
        ca_file: None,
    })
    .map_err(|e| fail(e.to_string()))?;
    let url = format!("{}/secretsmanager/get", endpoint.trim_end_matches('/'));
    let mut last = String::new();
    // One quick retry for a transient failure; at most ~2.2 s in all, well
    // inside the function timeout.
    for attempt in 0..2u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        let sent = client
            .get(&url)
            .query(&[("secretId", secret_id.as_str())])
            .header("X-Aws-Parameters-Secrets-Token", &token)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                let answer: ExtensionAnswer = r.json().await.map_err(|_| {
                    SecretError::Shape("the extension's answer is not the documented JSON".into())
                })?;
                let secret = answer.secret_string.ok_or_else(|| {
                    SecretError::Shape("no SecretString (binary secrets are not supported)".into())
                })?;
                return secret_to_vars(env, &secret);
            }
            Ok(r) if r.status().is_client_error() => {
                return Err(fail(format!("HTTP {}", r.status().as_u16())));
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(fail(last))
}
