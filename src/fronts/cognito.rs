//! The Amazon Cognito pre-token-generation trigger (`CERTBOUND_HANDLER=
//! cognito-pre-token`): binds Cognito access tokens to a certificate by
//! adding `cnf: {"x5t#S256": …}` (RFC 8705) to the **access token**, which
//! the JWT backend then checks like any RFC 9068 token.
//!
//! - V2_0 / V3_0 events only (`version` `2` / `3`): the claim goes into
//!   `response.claimsAndScopeOverrideDetails.accessTokenGeneration.
//!   claimsToAddOrOverride`, keeping everything else the event's response
//!   holds; nothing else is changed. A V1_0 event cannot touch the access
//!   token: it is refused with an error saying so.
//! - The thumbprint comes from the user attribute named by
//!   `CERTBOUND_COGNITO_CERT_ATTRIBUTE` (default `custom:cert_fingerprint`)
//!   in `request.userAttributes` (no Cognito API call), or, for
//!   machine-to-machine tokens (`TokenGeneration_ClientCredentials`), from
//!   `CERTBOUND_COGNITO_CLIENT_CERTS` (`{"client_id": "thumbprint"}`).
//!   Accepted: base64url (the `x5t#S256` itself), standard base64 with or
//!   without padding, hex with or without colons in any case (what
//!   `openssl x509 -fingerprint -sha256` prints); always written as
//!   base64url without padding. Anything that is not a SHA-256 fails the
//!   trigger (Cognito then refuses the sign-in) with a message naming the
//!   attribute, never its value.
//! - No thumbprint: the token is issued unbound (the authorizer refuses it
//!   when binding is required), or, with `CERTBOUND_COGNITO_REQUIRE_CERT=
//!   true`, the sign-in fails.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Map, Value};

use crate::config::{ConfigError, Env};

/// The attribute read by default (the AWS pattern's name).
pub const DEFAULT_CERT_ATTRIBUTE: &str = "custom:cert_fingerprint";

/// The trigger's settings (and nothing of the authorizer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    /// The user attribute holding the thumbprint.
    pub cert_attribute: String,
    /// `client_id` → `x5t#S256`, for client-credentials tokens.
    pub client_certs: HashMap<String, String>,
    /// Fail the sign-in when there is no thumbprint.
    pub require_cert: bool,
}

impl TriggerConfig {
    /// Reads `CERTBOUND_COGNITO_*`.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let invalid = |var: &'static str, reason: String| ConfigError::Invalid { var, reason };
        let cert_attribute = env
            .get("CERTBOUND_COGNITO_CERT_ATTRIBUTE")
            .unwrap_or_else(|| DEFAULT_CERT_ATTRIBUTE.to_owned());
        let require_cert = match env
            .get("CERTBOUND_COGNITO_REQUIRE_CERT")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false" | "0" | "no" | "off") => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some(other) => {
                return Err(invalid(
                    "CERTBOUND_COGNITO_REQUIRE_CERT",
                    format!("{other:?} is not true/false"),
                ))
            }
        };
        let mut client_certs = HashMap::new();
        if let Some(text) = env.get("CERTBOUND_COGNITO_CLIENT_CERTS") {
            let map: HashMap<String, String> = serde_json::from_str(&text).map_err(|_| {
                invalid(
                    "CERTBOUND_COGNITO_CLIENT_CERTS",
                    "not a JSON object of client id → thumbprint strings".into(),
                )
            })?;
            for (client, value) in map {
                let thumbprint = normalize_thumbprint(&value).ok_or_else(|| {
                    invalid(
                        "CERTBOUND_COGNITO_CLIENT_CERTS",
                        format!("the value for client {client:?} is not a SHA-256 thumbprint"),
                    )
                })?;
                client_certs.insert(client, thumbprint);
            }
        }
        Ok(Self {
            cert_attribute,
            client_certs,
            require_cert,
        })
    }
}

/// Reads a SHA-256 certificate thumbprint in any of the accepted encodings
/// and returns it as `x5t#S256` (base64url, no padding).
pub fn normalize_thumbprint(value: &str) -> Option<String> {
    let v = value.trim();
    let hex: String = v.chars().filter(|c| *c != ':').collect();
    let bytes = if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        URL_SAFE_NO_PAD
            .decode(v)
            .or_else(|_| STANDARD.decode(v))
            .or_else(|_| STANDARD_NO_PAD.decode(v))
            .ok()?
    };
    (bytes.len() == 32).then(|| URL_SAFE_NO_PAD.encode(bytes))
}

/// Why the trigger fails (Cognito then refuses the token request). Messages
/// never hold an attribute's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// Not a pre-token-generation event.
    #[error("not a Cognito pre token generation event (this function runs CERTBOUND_HANDLER=cognito-pre-token)")]
    NotATriggerEvent,
    /// A V1_0 event: it cannot change the access token.
    #[error("pre token generation event version {0:?}: the access token can only be bound with the V2_0 or V3_0 trigger (LambdaVersion V2_0/V3_0, Essentials or Plus feature plan)")]
    Version(String),
    /// The thumbprint attribute is set but is not a SHA-256 thumbprint.
    #[error(
        "user attribute {0} is not a SHA-256 certificate thumbprint (base64url, base64 or hex)"
    )]
    BadAttribute(String),
    /// No thumbprint, and one is required.
    #[error("no certificate thumbprint for this {0} and CERTBOUND_COGNITO_REQUIRE_CERT=true")]
    NoCertificate(&'static str),
    /// The event's `response` has another shape than documented.
    #[error("the event's response.claimsAndScopeOverrideDetails is not an object")]
    Shape,
}

impl From<TriggerError> for Diagnostic {
    fn from(e: TriggerError) -> Self {
        Diagnostic {
            error_type: "CertboundTriggerError".into(),
            error_message: e.to_string(),
        }
    }
}

/// Handles one event: the event back, with `cnf` added to the access token.
pub fn handle(config: &TriggerConfig, mut event: Value) -> Result<Value, TriggerError> {
    let obj = event.as_object().ok_or(TriggerError::NotATriggerEvent)?;
    let source = obj
        .get("triggerSource")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("TokenGeneration_"))
        .ok_or(TriggerError::NotATriggerEvent)?
        .to_owned();
    match obj.get("version").and_then(Value::as_str) {
        Some("2" | "3") => {}
        other => {
            return Err(TriggerError::Version(
                other.unwrap_or("?").chars().take(8).collect(),
            ))
        }
    }
    let (thumbprint, subject) = if source == "TokenGeneration_ClientCredentials" {
        let client = event
            .pointer("/callerContext/clientId")
            .and_then(Value::as_str)
            .unwrap_or("");
        (config.client_certs.get(client).cloned(), "client")
    } else {
        let attribute = event
            .pointer("/request/userAttributes")
            .and_then(Value::as_object)
            .and_then(|a| a.get(&config.cert_attribute))
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty());
        let thumbprint = match attribute {
            None => None,
            Some(v) => Some(
                normalize_thumbprint(v)
                    .ok_or_else(|| TriggerError::BadAttribute(config.cert_attribute.clone()))?,
            ),
        };
        (thumbprint, "user")
    };
    let Some(thumbprint) = thumbprint else {
        if config.require_cert {
            return Err(TriggerError::NoCertificate(subject));
        }
        tracing::info!(target: "certbound::cognito", trigger = %source, "no certificate thumbprint: the access token is issued unbound");
        return Ok(event);
    };
    let root = event
        .as_object_mut()
        .ok_or(TriggerError::NotATriggerEvent)?;
    let details = object_at(root, "response")
        .and_then(|r| object_at(r, "claimsAndScopeOverrideDetails"))
        .and_then(|d| object_at(d, "accessTokenGeneration"))
        .and_then(|a| object_at(a, "claimsToAddOrOverride"))
        .ok_or(TriggerError::Shape)?;
    details.insert("cnf".into(), json!({ "x5t#S256": thumbprint }));
    tracing::info!(target: "certbound::cognito", trigger = %source, x5t_s256 = %thumbprint, "access token bound to a certificate");
    Ok(event)
}

/// The object under `key`, created when absent or null; `None` when it is
/// something else.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Serves the Lambda Runtime API as the trigger.
pub async fn run(config: TriggerConfig) -> Result<(), lambda_runtime::Error> {
    let config = std::sync::Arc::new(config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let config = std::sync::Arc::clone(&config);
        async move {
            handle(&config, event.payload).map_err(|e| {
                tracing::warn!(target: "certbound::cognito", error = %e, "trigger refused");
                e
            })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const X5T: &str = "t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44";

    #[test]
    fn every_documented_encoding_reads_as_base64url() {
        let bytes = URL_SAFE_NO_PAD.decode(X5T).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let colons = bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        for input in [
            X5T.to_owned(),
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            hex.clone(),
            hex.to_lowercase(),
            colons.clone(),
            colons.to_lowercase(),
            format!("  {X5T}\n"),
        ] {
            assert_eq!(
                normalize_thumbprint(&input).as_deref(),
                Some(X5T),
                "{input}"
            );
        }
        for bad in [
            "",
            "abc",
            &hex[..62],
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 48]),
            "zz:zz",
        ] {
            assert_eq!(normalize_thumbprint(bad), None, "{bad}");
        }
    }
}
