//! Per-client API Gateway usage plans (REST APIs, `apiKeySource:
//! AUTHORIZER`): on Allow, the authorizer answers `usageIdentifierKey` —
//! the API key *value* mapped from the token's client through
//! `CERTBOUND_USAGE_KEYS` (JSON `{"client_id": "key value"}`, read at start,
//! also accepted from the secret). Key values are secrets: never logged,
//! never in `Debug`, never in an error message (client ids may be).

use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// An API key value. `Debug` never shows it.
#[derive(Clone)]
pub struct UsageKey(SecretString);

impl UsageKey {
    /// The value, for the answer to API Gateway only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for UsageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UsageKey(<redacted>)")
    }
}

impl PartialEq for UsageKey {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for UsageKey {}

/// Client id → API key value. `Debug` shows the client ids only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UsageKeys(HashMap<String, UsageKey>);

impl fmt::Debug for UsageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut clients: Vec<&String> = self.0.keys().collect();
        clients.sort();
        f.debug_struct("UsageKeys")
            .field("clients", &clients)
            .finish_non_exhaustive()
    }
}

/// Why `CERTBOUND_USAGE_KEYS` cannot be used. Never holds a key value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageKeysError {
    /// Not a JSON object.
    #[error("not a JSON object {{\"client_id\": \"api key value\"}} ({0})")]
    NotAnObject(&'static str),
    /// A value that is not a non-empty string (names the client, not the value).
    #[error("the value for client {0:?} is not a non-empty string")]
    NotAKey(String),
    /// An empty client id.
    #[error("a client id is empty")]
    EmptyClient,
}

impl UsageKeys {
    /// Reads `{"client_id": "key value", …}`.
    pub fn parse(json: &str) -> Result<Self, UsageKeysError> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| UsageKeysError::NotAnObject(crate::transport::json_error_kind(&e)))?;
        let mut keys = HashMap::with_capacity(map.len());
        for (client, value) in map {
            if client.is_empty() {
                return Err(UsageKeysError::EmptyClient);
            }
            match value {
                serde_json::Value::String(v) if !v.trim().is_empty() => {
                    keys.insert(client, UsageKey(SecretString::from(v)));
                }
                _ => return Err(UsageKeysError::NotAKey(client.chars().take(128).collect())),
            }
        }
        Ok(Self(keys))
    }

    /// No map configured (or an empty one).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Clients with a key.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The key of the first of `clients` (the names the token's client goes
    /// by) that has one.
    pub fn lookup<'c>(&self, clients: impl IntoIterator<Item = &'c str>) -> Option<&UsageKey> {
        clients.into_iter().find_map(|c| self.0.get(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_strictly_and_never_shown() {
        let keys =
            UsageKeys::parse(r#"{"tpp-app": "k3y-value-a", "1234": "k3y-value-b"}"#).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys.lookup(["nobody", "1234"]).map(UsageKey::expose),
            Some("k3y-value-b")
        );
        assert_eq!(keys.lookup(["nobody"]), None);
        let debug = format!("{keys:?} {:?}", keys.lookup(["tpp-app"]));
        assert!(
            debug.contains("tpp-app") && !debug.contains("k3y-value"),
            "{debug}"
        );
        for bad in [
            r#"["k3y-value"]"#,
            r#"{"a": 5}"#,
            r#"{"a": ""}"#,
            r#"{"": "k3y-value"}"#,
            r#"{"a": "k3y-value""#,
        ] {
            let e = UsageKeys::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("k3y-value"), "{e}");
        }
        assert!(UsageKeys::parse("{}").unwrap().is_empty());
    }
}
