//! JWT access tokens verified locally: RFC 9068 (any issuer) and Amazon
//! Cognito. A claims backend: it verifies the signature and what is
//! specific to the issuer (issuer, audience, client, token use, required
//! claims) and reports the claims; the core decides expiry, binding and
//! scopes like for every other backend.
//!
//! What is checked (RFC 9068 §4, RFC 8725):
//! - the token is three base64url parts, at most [`MAX_TOKEN_BYTES`];
//! - header: `alg` in the allow-list (asymmetric only: `none` and `HS*`
//!   can never be enabled), `kid` present, no `crit` (no extension is
//!   understood), `typ` `at+jwt` / `application/at+jwt` (rfc9068 profile);
//!   `jku`, `x5u`, `jwk` and `x5c` are never used;
//! - the key: the JWKS key with that `kid` ([`super::jwks`]), of a type
//!   that fits `alg`, whose own `alg` (when given) is the header's;
//! - the signature;
//! - claims: `iss` exactly the configured issuer; `exp` present; rfc9068:
//!   `aud` holding a configured audience, `sub`, `client_id`, `iat`, `jti`
//!   present; cognito: `token_use` = `access`; `client_id` in the allow-list
//!   (required for cognito, optional for rfc9068).
//!
//! Anything failing makes the token invalid (`token_invalid`, 401); keys
//! that cannot be had make the backend fail (500 / Deny).

use std::str::FromStr;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::jwks::{Jwks, JwksLocation, JwksSettings, Lookup};
use super::jws::Algorithm;
use super::{
    Answer, Claims, Confirmation, IntrospectionError, IntrospectionRequest, Introspector, Refusal,
};
use crate::verdict::{Context, ContextValue, Reason};

/// Largest token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The algorithms certbound can verify (and the default allow-list).
pub const SUPPORTED_ALGORITHMS: [Algorithm; 9] = Algorithm::ALL;

/// Which rules apply to the claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtProfile {
    /// RFC 9068 JWT access tokens (`typ: at+jwt`, `aud`, `client_id`, …).
    Rfc9068,
    /// Amazon Cognito access tokens (no `typ`, no `aud`; `token_use`,
    /// `client_id`).
    Cognito,
}

/// The JWT backend's configuration.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The issuer, compared exactly with `iss`.
    pub issuer: String,
    /// Where the keys are.
    pub jwks: JwksLocation,
    /// Which claim rules apply.
    pub profile: JwtProfile,
    /// Accepted audiences (one must be in `aud`; rfc9068).
    pub audiences: Vec<String>,
    /// Accepted `client_id`s (empty: any; cognito requires a list).
    pub client_ids: Vec<String>,
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Claims copied into the context (arrays joined with spaces).
    pub context_claims: Vec<String>,
    /// Key cache settings.
    pub jwks_settings: JwksSettings,
}

/// The JWT backend: a verifier over a cached JWKS.
pub struct JwtBackend {
    config: JwtConfig,
    jwks: Jwks,
}

impl JwtBackend {
    /// A backend fetching keys through the shared client.
    pub fn new(client: crate::transport::HttpClient, config: JwtConfig) -> Self {
        let jwks = Jwks::new(client, config.jwks.clone(), config.jwks_settings.clone());
        Self { config, jwks }
    }

    /// The key cache (for its fetch count).
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Verifies one token: `Ok` with the claims (inactive with a reason when
    /// the token is not valid), `Err` when the keys cannot be had.
    pub async fn verify(&self, token: &str) -> Result<Claims, IntrospectionError> {
        let parsed = match parse(token, &self.config) {
            Ok(p) => p,
            Err(why) => return Ok(invalid(why)),
        };
        let key = match self.jwks.key(&parsed.kid).await? {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Ok(invalid("no key in the issuer's JWKS has this kid")),
        };
        if !key.public.fits(parsed.alg) || key.alg.is_some_and(|a| a != parsed.alg) {
            return Ok(invalid("the key named by kid does not fit alg"));
        }
        if !key.public.verify(
            parsed.alg,
            parsed.signing_input.as_bytes(),
            &parsed.signature,
        ) {
            return Ok(invalid("signature does not verify"));
        }
        Ok(claims(parsed.payload, &self.config).unwrap_or_else(invalid))
    }
}

#[async_trait]
impl Introspector for JwtBackend {
    async fn introspect(
        &self,
        request: &IntrospectionRequest,
    ) -> Result<Answer, IntrospectionError> {
        self.verify(request.token.expose_secret())
            .await
            .map(Answer::Claims)
    }

    fn identity(&self) -> String {
        let c = &self.config;
        format!(
            "jwt {} {:?} {:?} {:?} {:?} {:?}",
            c.issuer, c.jwks, c.profile, c.audiences, c.client_ids, c.algorithms
        )
    }
}

pub(crate) fn invalid(description: &'static str) -> Claims {
    Claims {
        active: false,
        refusal: Some(Refusal {
            reason: Reason::TokenInvalid,
            description: format!("invalid JWT: {description}"),
        }),
        ..Claims::default()
    }
}

pub(crate) struct Parsed<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: String,
    pub(crate) signing_input: &'a str,
    pub(crate) signature: Vec<u8>,
    pub(crate) payload: Map<String, Value>,
}

fn b64_json(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Structure and header checks, before any key is looked up.
pub(crate) fn parse<'a>(token: &'a str, config: &JwtConfig) -> Result<Parsed<'a>, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token too large");
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three dot-separated parts");
    };
    let header = b64_json(h).ok_or("header is not base64url JSON")?;
    let payload = b64_json(p).ok_or("payload is not base64url JSON")?;
    if header.contains_key("crit") {
        return Err("crit header parameter (no extension is understood)");
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| Algorithm::from_str(a).ok())
        .filter(|a| config.algorithms.contains(a))
        .ok_or("alg is missing or not allowed")?;
    if config.profile == JwtProfile::Rfc9068 {
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err("typ is not at+jwt");
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or("no kid")?
        .to_owned();
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or("no base64url signature")?;
    Ok(Parsed {
        alg,
        kid,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
        payload,
    })
}

fn string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, &'static str> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("a string claim has another type"),
    }
}

fn numeric_date(map: &Map<String, Value>, name: &str) -> Result<Option<i64>, &'static str> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or("a date claim is not a number"),
        Some(_) => Err("a date claim is not a number"),
    }
}

fn strings(value: Option<&Value>) -> Result<Vec<String>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or("a list claim holds a non-string")
            })
            .collect(),
        Some(_) => Err("a list claim has another type"),
    }
}

/// The profile's claim rules; the claims for the core.
pub(crate) fn claims(
    payload: Map<String, Value>,
    config: &JwtConfig,
) -> Result<Claims, &'static str> {
    if string(&payload, "iss")?.as_deref() != Some(config.issuer.as_str()) {
        return Err("iss is not the configured issuer");
    }
    let exp = numeric_date(&payload, "exp")?.ok_or("no exp")?;
    let client_id = string(&payload, "client_id")?;
    let aud = match payload.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        other => strings(other)?,
    };
    let sub = string(&payload, "sub")?;
    let iat = numeric_date(&payload, "iat")?;
    match config.profile {
        JwtProfile::Rfc9068 => {
            if !aud.iter().any(|a| config.audiences.contains(a)) {
                return Err("aud holds no configured audience");
            }
            if sub.is_none()
                || client_id.is_none()
                || iat.is_none()
                || string(&payload, "jti")?.is_none()
            {
                return Err("sub, client_id, iat or jti is missing (RFC 9068)");
            }
        }
        JwtProfile::Cognito => {
            if string(&payload, "token_use")?.as_deref() != Some("access") {
                return Err("token_use is not access");
            }
        }
    }
    if !config.client_ids.is_empty()
        && !client_id
            .as_ref()
            .is_some_and(|c| config.client_ids.contains(c))
    {
        return Err("client_id is not allowed");
    }
    let mut scopes = strings(payload.get("scope"))?;
    scopes.extend(strings(payload.get("scp"))?);
    let cnf = match payload.get("cnf") {
        None | Some(Value::Null) => Confirmation::default(),
        Some(Value::Object(c)) => Confirmation {
            x5t_s256: string(c, "x5t#S256")?,
            jkt: string(c, "jkt")?,
        },
        Some(_) => return Err("cnf is not an object"),
    };
    let mut context = Context::new();
    for name in &config.context_claims {
        let value = match payload.get(name) {
            Some(Value::String(s)) => ContextValue::from(s.as_str()),
            Some(Value::Bool(b)) => ContextValue::from(*b),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => ContextValue::from(i),
                None => ContextValue::from(n.to_string()),
            },
            Some(Value::Array(items)) => ContextValue::from(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => continue,
        };
        context.insert(name.clone(), value);
    }
    Ok(Claims {
        active: true,
        sub,
        client_id,
        scopes,
        exp: Some(exp),
        nbf: numeric_date(&payload, "nbf")?,
        iat,
        aud,
        cnf,
        context,
        refusal: None,
        raw: Value::Object(payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(profile: JwtProfile) -> JwtConfig {
        JwtConfig {
            issuer: "https://as.example".into(),
            jwks: JwksLocation::Uri("https://as.example/jwks".into()),
            profile,
            audiences: vec!["https://api.example".into()],
            client_ids: vec![],
            algorithms: SUPPORTED_ALGORITHMS.to_vec(),
            context_claims: vec!["username".into(), "cognito:groups".into(), "n".into()],
            jwks_settings: JwksSettings::default(),
        }
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn header_rules() {
        let c = config(JwtProfile::Rfc9068);
        let payload = b64(&json!({}));
        let token = |h: Value| format!("{}.{payload}.c2ln", b64(&h));
        assert!(parse(
            &token(json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"})),
            &c
        )
        .is_ok());
        assert!(parse(
            &token(json!({"alg": "RS256", "typ": "application/AT+JWT", "kid": "k"})),
            &c
        )
        .is_ok());
        for (h, why) in [
            (json!({"alg": "none", "typ": "at+jwt", "kid": "k"}), "alg"),
            (json!({"alg": "HS256", "typ": "at+jwt", "kid": "k"}), "alg"),
            (json!({"typ": "at+jwt", "kid": "k"}), "alg"),
            (json!({"alg": "RS256", "typ": "JWT", "kid": "k"}), "typ"),
            (json!({"alg": "RS256", "kid": "k"}), "typ"),
            (json!({"alg": "RS256", "typ": "at+jwt"}), "kid"),
            (
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "k", "crit": ["exp"]}),
                "crit",
            ),
        ] {
            let e = parse(&token(h.clone()), &c).err().unwrap();
            assert!(e.contains(why), "{h}: {e}");
        }
        assert!(parse("a.b", &c).is_err());
        assert!(parse("a.b.c.d", &c).is_err());
        assert!(parse(
            &format!("{}=.{payload}.x", b64(&json!({"alg": "RS256"}))),
            &c
        )
        .is_err());
        let cognito = config(JwtProfile::Cognito);
        assert!(
            parse(&token(json!({"alg": "RS256", "kid": "k"})), &cognito).is_ok(),
            "Cognito tokens have no typ"
        );
    }

    #[test]
    fn claim_rules_per_profile() {
        let now = 1_800_000_000i64;
        let base = json!({"iss": "https://as.example", "exp": now + 60, "iat": now, "sub": "s",
            "client_id": "app", "jti": "j", "aud": ["x", "https://api.example"], "scope": "a b",
            "cnf": {"x5t#S256": "t"}, "username": "alice", "cognito:groups": ["g1", "g2"], "n": 5});
        let obj = |v: Value| v.as_object().unwrap().clone();
        let c = claims(obj(base.clone()), &config(JwtProfile::Rfc9068)).unwrap();
        assert_eq!(c.scopes, ["a", "b"]);
        assert_eq!(c.cnf.x5t_s256.as_deref(), Some("t"));
        assert_eq!(c.context["cognito:groups"], ContextValue::from("g1 g2"));
        assert_eq!(c.context["n"], ContextValue::from(5));
        let mutate = |k: &str, v: Value| {
            let mut m = obj(base.clone());
            if v.is_null() {
                m.remove(k);
            } else {
                m.insert(k.into(), v);
            }
            m
        };
        for (k, v, why) in [
            ("iss", json!("https://evil.example"), "iss"),
            ("iss", Value::Null, "iss"),
            ("exp", Value::Null, "exp"),
            ("exp", json!("soon"), "date"),
            ("aud", json!("https://other.example"), "aud"),
            ("aud", Value::Null, "aud"),
            ("jti", Value::Null, "jti"),
            ("client_id", Value::Null, "client_id"),
            ("cnf", json!("t"), "cnf"),
            ("scope", json!(5), "list"),
        ] {
            let e = claims(mutate(k, v), &config(JwtProfile::Rfc9068))
                .err()
                .unwrap();
            assert!(e.contains(why), "{k}: {e}");
        }
        let mut cognito = config(JwtProfile::Cognito);
        cognito.client_ids = vec!["app".into()];
        let token_use = |v: Value| {
            let mut m = mutate("aud", Value::Null);
            m.insert("token_use".into(), v);
            m
        };
        assert!(claims(token_use(json!("access")), &cognito).is_ok());
        assert!(claims(token_use(json!("id")), &cognito).is_err());
        cognito.client_ids = vec!["other".into()];
        assert!(claims(token_use(json!("access")), &cognito).is_err());
        let mut scp = mutate("scope", Value::Null);
        scp.insert("scp".into(), json!(["r", "w"]));
        assert_eq!(
            claims(scp, &config(JwtProfile::Rfc9068)).unwrap().scopes,
            ["r", "w"]
        );
    }
}
