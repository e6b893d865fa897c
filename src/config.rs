//! Environment → typed configuration. Every error names the variable; no
//! error message holds a secret.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::authorizer::Settings;
use crate::backends::authlete::{ApiVersion, AuthleteConfig};
use crate::backends::jwks::{JwksLocation, JwksSettings};
use crate::backends::jwt::{JwtConfig, JwtProfile, SUPPORTED_ALGORITHMS};
use crate::backends::rfc7662::Rfc7662Config;
use crate::cache::CacheSettings;
use crate::cert::CertFormat;
use crate::decision::{BindingPolicy, ScopeDefault, Validation, DEFAULT_LEEWAY_S};
use crate::scopes::{RulesError, ScopeRules};
use crate::transport::HttpSettings;

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable has a value we cannot use.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Why.
        reason: String,
    },
    /// The scope rules are not usable.
    #[error("{var} is invalid: {source}")]
    Rules {
        /// The variable.
        var: &'static str,
        /// What is wrong with the rules.
        #[source]
        source: RulesError,
    },
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

/// Which backend to use.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BackendConfig {
    /// Authlete's `/auth/introspection` API.
    Authlete(AuthleteConfig),
    /// A standard RFC 7662 endpoint.
    Rfc7662(Rfc7662Config),
    /// JWT access tokens verified locally (RFC 9068, Amazon Cognito).
    Jwt(JwtConfig),
}

impl BackendConfig {
    /// The `backend` label of its metrics.
    pub fn metrics_label(&self) -> &'static str {
        match self {
            BackendConfig::Authlete(_) => crate::telemetry::BACKEND_AUTHLETE,
            BackendConfig::Rfc7662(_) => crate::telemetry::BACKEND_RFC7662,
            BackendConfig::Jwt(_) => crate::telemetry::BACKEND_JWT,
        }
    }
}

/// How HTTP API payload 2.0 events are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpApiResponse {
    /// IAM policy (same shape as REST).
    Policy,
    /// `{"isAuthorized": …, "context": …}`.
    Simple,
}

/// Which proxy calls `certbound serve`, and so where the original method
/// and URI come from (`CERTBOUND_PROXY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// nginx `auth_request`: `X-Original-Method` / `X-Original-URI`.
    Nginx,
    /// Traefik `forwardAuth`: `X-Forwarded-Method` / `X-Forwarded-Uri`.
    Traefik,
    /// Envoy `ext_authz` (HTTP service): the request's own method and path,
    /// minus `CERTBOUND_PATH_PREFIX`.
    Envoy,
}

impl ProxyKind {
    /// The headers holding the original method and URI (`None` for Envoy).
    pub fn original_headers(self) -> Option<(&'static str, &'static str)> {
        match self {
            ProxyKind::Nginx => Some(("x-original-method", "x-original-uri")),
            ProxyKind::Traefik => Some(("x-forwarded-method", "x-forwarded-uri")),
            ProxyKind::Envoy => None,
        }
    }

    /// The certificate format this proxy uses by default.
    pub fn default_cert_format(self) -> CertFormat {
        match self {
            ProxyKind::Nginx => CertFormat::Nginx,
            ProxyKind::Traefik => CertFormat::Traefik,
            ProxyKind::Envoy => CertFormat::Xfcc,
        }
    }
}

/// `certbound serve` settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Who calls us.
    pub proxy: ProxyKind,
    /// How the certificate header is encoded.
    pub cert_format: CertFormat,
    /// The trusted header holding the client certificate.
    pub cert_header: http::HeaderName,
    /// Envoy: the `path_prefix` of the `http_service` (stripped from the
    /// path; requests outside it are not authorization requests).
    pub path_prefix: Option<String>,
    /// What one client connection may cost.
    pub limits: ServeLimits,
}

/// Bounds on what clients of `certbound serve` may hold or send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request's headers must arrive within this time, counted from the
    /// end of the previous answer on a kept-alive connection (so it is the
    /// idle timeout too): slowloris. `CERTBOUND_HEADER_READ_TIMEOUT_S`,
    /// default 10 s.
    pub header_read_timeout: Duration,
    /// Request line + headers, bytes; beyond: 431.
    /// `CERTBOUND_MAX_HEADER_BYTES`, default 32 KiB.
    pub max_header_bytes: usize,
    /// Number of header fields; beyond: 431. `CERTBOUND_MAX_HEADERS`,
    /// default 100.
    pub max_headers: usize,
    /// Open client connections; a connection beyond it is answered 503
    /// (`overloaded`) and closed. `CERTBOUND_MAX_CONNECTIONS`, default 4096
    /// (each costs about 27 KiB: hyper's read and write buffers and the
    /// task; a proxy in front keeps a pool of a few dozen).
    pub max_connections: usize,
    /// On SIGTERM: how long requests in flight may take to finish.
    /// `CERTBOUND_SHUTDOWN_GRACE_S`, default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Everything certbound reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The backend.
    pub backend: BackendConfig,
    /// Transport settings.
    pub http: HttpSettings,
    /// Decision/context switches and the validation policy.
    pub settings: Settings,
    /// HTTP API v2 answer format.
    pub http_api_response: HttpApiResponse,
    /// Scope rules for the default `determine_scopes`.
    pub scope_rules: ScopeRules,
    /// `certbound serve` settings.
    pub serve: ServeConfig,
    /// The answer cache (off when its TTL is 0).
    pub cache: CacheSettings,
    /// Calls to the backend in flight at most (`CERTBOUND_MAX_INFLIGHT`,
    /// default 256); beyond: refused at once (`overloaded`).
    pub max_inflight: usize,
    /// Metrics (`CERTBOUND_METRICS`, `CERTBOUND_METRICS_NAMESPACE`,
    /// `CERTBOUND_METRICS_LISTEN`).
    pub metrics: crate::telemetry::MetricsSettings,
}

fn is_loopback(url: &reqwest::Url) -> bool {
    matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// Whether a URL found at run time (a `jwks_uri` in metadata) is https, or
/// http on loopback.
pub fn secure_url(raw: &str) -> bool {
    reqwest::Url::parse(raw)
        .is_ok_and(|u| u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)))
}

/// Reads variables from a lookup function (the process environment, or a
/// map in tests; secrets fetched at start are layered on top).
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + Send + Sync + 'a>;

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env {
            lookup: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// A fixed map (tests).
    pub fn from_map(map: &'a HashMap<String, String>) -> Self {
        Env {
            lookup: Box::new(move |k| map.get(k).cloned()),
        }
    }

    /// Values from `overlay` win over this environment.
    pub fn with_overlay<'b>(&'b self, overlay: &'b HashMap<String, String>) -> Env<'b>
    where
        'a: 'b,
    {
        Env {
            lookup: Box::new(move |k| overlay.get(k).cloned().or_else(|| (self.lookup)(k))),
        }
    }

    /// A variable, `None` when unset or blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A comma-separated list, blanks dropped.
    pub fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn require(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing(var))
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(var, format!("{other:?} is not true/false"))),
        }
    }

    fn millis(&self, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let ms = match self.get(var) {
            None => default,
            Some(v) => v.parse::<u64>().map_err(|_| {
                invalid(var, format!("{v:?} is not a whole number of milliseconds"))
            })?,
        };
        if !(1..=60_000).contains(&ms) {
            return Err(invalid(var, format!("{ms} ms is outside 1..=60000")));
        }
        Ok(Duration::from_millis(ms))
    }

    /// A whole number in `range`, or `default` when unset.
    fn whole(
        &self,
        var: &'static str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    invalid(
                        var,
                        format!(
                            "{v:?} is not a whole number in {}..={}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    fn url(&self, var: &'static str) -> Result<String, ConfigError> {
        let raw = self.require(var)?;
        self.check_url(var, raw)
    }

    fn check_url(&self, var: &'static str, raw: String) -> Result<String, ConfigError> {
        let url = reqwest::Url::parse(&raw).map_err(|e| invalid(var, format!("{raw:?}: {e}")))?;
        match url.scheme() {
            "https" => Ok(raw),
            "http" if is_loopback(&url) || self.bool("CERTBOUND_ALLOW_INSECURE_HTTP", false)? => {
                Ok(raw)
            }
            "http" => Err(invalid(
                var,
                "plain http sends credentials in clear; use https (or CERTBOUND_ALLOW_INSECURE_HTTP=true)",
            )),
            other => Err(invalid(var, format!("unsupported scheme {other:?}"))),
        }
    }
}

impl Config {
    /// Reads any [`Env`].
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let backend = match env
            .get("CERTBOUND_BACKEND")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("authlete") => BackendConfig::Authlete(authlete(env)?),
            Some("rfc7662") => BackendConfig::Rfc7662(rfc7662(env)?),
            Some("jwt") => BackendConfig::Jwt(jwt(env)?),
            Some(other) => {
                return Err(invalid(
                    "CERTBOUND_BACKEND",
                    format!("{other:?} is not 'authlete', 'rfc7662' or 'jwt'"),
                ))
            }
        };
        let http = HttpSettings {
            connect_timeout: env.millis("CERTBOUND_CONNECT_TIMEOUT_MS", 1000)?,
            timeout: env.millis("CERTBOUND_TIMEOUT_MS", 3000)?,
            ca_file: env
                .get("CERTBOUND_INTROSPECTION_CA_FILE")
                .map(PathBuf::from),
        };
        let settings = Settings {
            policy: env.bool("CERTBOUND_POLICY", true)?,
            context_debug: env.bool("CERTBOUND_CONTEXT_DEBUG", false)?,
            realm: env.get("CERTBOUND_REALM"),
            validation: validation(env)?,
            // The transport's own deadline fires first, naming the phase.
            deadline: http.timeout + crate::transport::DEADLINE_GRACE,
            usage_keys: match env.get("CERTBOUND_USAGE_KEYS") {
                None => crate::usage::UsageKeys::default(),
                Some(json) => crate::usage::UsageKeys::parse(&json)
                    .map_err(|e| invalid("CERTBOUND_USAGE_KEYS", e.to_string()))?,
            },
        };
        let http_api_response = match env
            .get("CERTBOUND_HTTP_API_RESPONSE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("policy") => HttpApiResponse::Policy,
            Some("simple") => HttpApiResponse::Simple,
            Some(other) => {
                return Err(invalid(
                    "CERTBOUND_HTTP_API_RESPONSE",
                    format!("{other:?} is not 'simple' or 'policy'"),
                ))
            }
        };
        let scope_rules =
            match (
                env.get("CERTBOUND_SCOPE_RULES"),
                env.get("CERTBOUND_SCOPE_RULES_INLINE"),
            ) {
                (Some(_), Some(_)) => return Err(invalid(
                    "CERTBOUND_SCOPE_RULES",
                    "set either CERTBOUND_SCOPE_RULES or CERTBOUND_SCOPE_RULES_INLINE, not both",
                )),
                (Some(path), None) => {
                    ScopeRules::load(path.as_ref()).map_err(|source| ConfigError::Rules {
                        var: "CERTBOUND_SCOPE_RULES",
                        source,
                    })?
                }
                (None, Some(text)) => {
                    ScopeRules::from_toml(&text).map_err(|source| ConfigError::Rules {
                        var: "CERTBOUND_SCOPE_RULES_INLINE",
                        source,
                    })?
                }
                (None, None) => ScopeRules::default(),
            };
        Ok(Self {
            backend,
            http,
            settings,
            http_api_response,
            scope_rules,
            serve: serve(env)?,
            cache: cache(env)?,
            max_inflight: env.whole("CERTBOUND_MAX_INFLIGHT", 1..=100_000, 256)? as usize,
            metrics: crate::telemetry::MetricsSettings::from_env(env)?,
        })
    }
}

fn cache(env: &Env<'_>) -> Result<CacheSettings, ConfigError> {
    let number =
        |var: &'static str, max: u64, default: u64| -> Result<u64, ConfigError> {
            match env.get(var) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                    invalid(var, format!("{v:?} is not a whole number in 0..={max}"))
                }),
            }
        };
    let max_entries = number("CERTBOUND_CACHE_MAX_ENTRIES", 10_000_000, 10_000)?;
    if max_entries == 0 {
        return Err(invalid("CERTBOUND_CACHE_MAX_ENTRIES", "must be at least 1"));
    }
    Ok(CacheSettings {
        ttl: Duration::from_secs(number("CERTBOUND_CACHE_TTL_S", 3600, 0)?),
        negative_ttl: Duration::from_secs(number("CERTBOUND_CACHE_NEGATIVE_TTL_S", 300, 0)?),
        max_entries,
    })
}

fn validation(env: &Env<'_>) -> Result<Validation, ConfigError> {
    let binding = match env
        .get("CERTBOUND_REQUIRE_BINDING")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("true" | "1" | "yes" | "on" | "certificate") => BindingPolicy::Certificate,
        Some("certificate-or-dpop") => BindingPolicy::CertificateOrDpop,
        Some("false" | "0" | "no" | "off") => BindingPolicy::Off,
        Some(other) => {
            return Err(invalid(
                "CERTBOUND_REQUIRE_BINDING",
                format!("{other:?} is not true (= certificate), certificate-or-dpop or false"),
            ))
        }
    };
    // CERTBOUND_JWT_LEEWAY_S is the same setting under the JWT backend's name.
    let leeway = |var: &'static str| -> Result<Option<i64>, ConfigError> {
        env.get(var)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|s| (0..=300).contains(s))
                    .ok_or_else(|| {
                        invalid(
                            var,
                            format!("{v:?} is not a whole number of seconds in 0..=300"),
                        )
                    })
            })
            .transpose()
    };
    let leeway_s = match (
        leeway("CERTBOUND_LEEWAY_S")?,
        leeway("CERTBOUND_JWT_LEEWAY_S")?,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "CERTBOUND_JWT_LEEWAY_S",
                "differs from CERTBOUND_LEEWAY_S (one clock skew for every backend): set one",
            ))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_LEEWAY_S,
    };
    let scope_default = match env
        .get("CERTBOUND_SCOPE_DEFAULT")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("none") => ScopeDefault::None,
        Some("deny") => ScopeDefault::Deny,
        Some(other) => {
            return Err(invalid(
                "CERTBOUND_SCOPE_DEFAULT",
                format!("{other:?} is not 'none' or 'deny'"),
            ))
        }
    };
    Ok(Validation {
        binding,
        leeway_s,
        scope_default,
    })
}

fn serve(env: &Env<'_>) -> Result<ServeConfig, ConfigError> {
    let proxy = match env
        .get("CERTBOUND_PROXY")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("nginx") => ProxyKind::Nginx,
        Some("traefik") => ProxyKind::Traefik,
        Some("envoy") => ProxyKind::Envoy,
        Some(other) => {
            return Err(invalid(
                "CERTBOUND_PROXY",
                format!("{other:?} is not nginx, traefik or envoy"),
            ))
        }
    };
    let cert_format = match env.get("CERTBOUND_CERT_FORMAT") {
        None => proxy.default_cert_format(),
        Some(v) => v
            .parse::<CertFormat>()
            .map_err(|e| invalid("CERTBOUND_CERT_FORMAT", e))?,
    };
    if cert_format == CertFormat::Pem {
        return Err(invalid(
            "CERTBOUND_CERT_FORMAT",
            "raw PEM cannot travel in a header; use nginx, xfcc, rfc9440 or traefik",
        ));
    }
    let header = env
        .get("CERTBOUND_CERT_HEADER")
        .unwrap_or_else(|| cert_format.default_header().to_owned());
    let cert_header = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
        invalid(
            "CERTBOUND_CERT_HEADER",
            format!("{header:?} is not a header name"),
        )
    })?;
    let path_prefix = match (proxy, env.get("CERTBOUND_PATH_PREFIX")) {
        (ProxyKind::Envoy, None) => return Err(ConfigError::Missing("CERTBOUND_PATH_PREFIX")),
        (ProxyKind::Envoy, Some(p)) => {
            let valid = p.starts_with('/')
                && p.len() > 1
                && !p.ends_with('/')
                && !"/healthz".starts_with(&p)
                && !p.starts_with("/healthz")
                && crate::route::normalize_path(&p).is_ok_and(|n| n.as_path() == p);
            if !valid {
                return Err(invalid(
                    "CERTBOUND_PATH_PREFIX",
                    format!(
                        "{p:?} must be a normalised path such as /ext_authz (not /, not /healthz)"
                    ),
                ));
            }
            Some(p)
        }
        (_, Some(_)) => {
            return Err(invalid(
                "CERTBOUND_PATH_PREFIX",
                "only used with CERTBOUND_PROXY=envoy",
            ))
        }
        (_, None) => None,
    };
    let d = ServeLimits::default();
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(env.whole(
            "CERTBOUND_HEADER_READ_TIMEOUT_S",
            1..=300,
            d.header_read_timeout.as_secs(),
        )?),
        // hyper's smallest read buffer is 8 KiB.
        max_header_bytes: env.whole(
            "CERTBOUND_MAX_HEADER_BYTES",
            8192..=1 << 20,
            d.max_header_bytes as u64,
        )? as usize,
        max_headers: env.whole("CERTBOUND_MAX_HEADERS", 8..=1000, d.max_headers as u64)? as usize,
        max_connections: env.whole(
            "CERTBOUND_MAX_CONNECTIONS",
            1..=1_000_000,
            d.max_connections as u64,
        )? as usize,
        shutdown_grace: Duration::from_secs(env.whole(
            "CERTBOUND_SHUTDOWN_GRACE_S",
            0..=300,
            d.shutdown_grace.as_secs(),
        )?),
    };
    Ok(ServeConfig {
        proxy,
        cert_format,
        cert_header,
        path_prefix,
        limits,
    })
}

fn secret(env: &Env<'_>, var: &'static str) -> Result<SecretString, ConfigError> {
    env.require(var).map(SecretString::from)
}

fn authlete(env: &Env<'_>) -> Result<AuthleteConfig, ConfigError> {
    let version = match env
        .get("AUTHLETE_API_VERSION")
        .map(|v| v.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("V2") => ApiVersion::V2,
        Some("V3") => ApiVersion::V3,
        Some(other) => {
            return Err(invalid(
                "AUTHLETE_API_VERSION",
                format!("{other:?} is not V2 or V3"),
            ))
        }
    };
    let base_url = env.url("AUTHLETE_BASE_URL")?;
    let api_key = env.require("AUTHLETE_SERVICE_APIKEY")?;
    let (api_secret, access_token) = match version {
        ApiVersion::V2 => (Some(secret(env, "AUTHLETE_SERVICE_APISECRET")?), None),
        ApiVersion::V3 => (None, Some(secret(env, "AUTHLETE_SERVICE_ACCESSTOKEN")?)),
    };
    Ok(AuthleteConfig {
        base_url,
        version,
        api_key,
        api_secret,
        access_token,
    })
}

fn jwt(env: &Env<'_>) -> Result<JwtConfig, ConfigError> {
    let pool = env.get("CERTBOUND_COGNITO_USER_POOL_ID");
    let profile = match (
        env.get("CERTBOUND_JWT_PROFILE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref(),
        &pool,
    ) {
        (None, Some(_)) | (Some("cognito"), _) => JwtProfile::Cognito,
        (None | Some("rfc9068"), None) => JwtProfile::Rfc9068,
        (Some("rfc9068"), Some(_)) => {
            return Err(invalid(
                "CERTBOUND_COGNITO_USER_POOL_ID",
                "is for CERTBOUND_JWT_PROFILE=cognito",
            ))
        }
        (Some(other), _) => {
            return Err(invalid(
                "CERTBOUND_JWT_PROFILE",
                format!("{other:?} is not rfc9068 or cognito"),
            ))
        }
    };
    let derived = match &pool {
        None => None,
        Some(pool) => {
            let region = pool
                .split_once('_')
                .map(|(r, _)| r)
                .filter(|r| {
                    !r.is_empty()
                        && r.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
                .filter(|_| {
                    pool.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
                .ok_or_else(|| {
                    invalid(
                        "CERTBOUND_COGNITO_USER_POOL_ID",
                        format!("{pool:?} is not a user pool id such as eu-west-2_AbCdEf123"),
                    )
                })?;
            Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
        }
    };
    let issuer = match env.get("CERTBOUND_JWT_ISSUER") {
        Some(i) => env.check_url("CERTBOUND_JWT_ISSUER", i)?,
        None => derived.ok_or(ConfigError::Missing("CERTBOUND_JWT_ISSUER"))?,
    };
    let jwks = match env.get("CERTBOUND_JWT_JWKS_URI") {
        Some(uri) => JwksLocation::Uri(env.check_url("CERTBOUND_JWT_JWKS_URI", uri)?),
        None if profile == JwtProfile::Cognito => JwksLocation::Uri(format!(
            "{}/.well-known/jwks.json",
            issuer.trim_end_matches('/')
        )),
        None => JwksLocation::Discover {
            issuer: issuer.clone(),
        },
    };
    let audiences = env.list("CERTBOUND_JWT_AUDIENCE");
    let client_ids = env.list("CERTBOUND_JWT_CLIENT_IDS");
    match profile {
        JwtProfile::Rfc9068 if audiences.is_empty() => {
            return Err(ConfigError::Missing("CERTBOUND_JWT_AUDIENCE"))
        }
        JwtProfile::Cognito if !audiences.is_empty() => {
            return Err(invalid(
                "CERTBOUND_JWT_AUDIENCE",
                "Cognito access tokens have no aud: allow clients with CERTBOUND_JWT_CLIENT_IDS",
            ))
        }
        JwtProfile::Cognito if client_ids.is_empty() => {
            return Err(ConfigError::Missing("CERTBOUND_JWT_CLIENT_IDS"))
        }
        _ => {}
    }
    let algorithms = match env.get("CERTBOUND_JWT_ALGORITHMS") {
        None => SUPPORTED_ALGORITHMS.to_vec(),
        Some(_) => env
            .list("CERTBOUND_JWT_ALGORITHMS")
            .iter()
            .map(|a| {
                a.parse::<crate::backends::jws::Algorithm>()
                    .ok()
                    .filter(|alg| SUPPORTED_ALGORITHMS.contains(alg))
                    .ok_or_else(|| {
                        invalid(
                            "CERTBOUND_JWT_ALGORITHMS",
                            format!(
                                "{a:?} is not one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA (none and HS* can never be enabled)"
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let cooldown = match env.get("CERTBOUND_JWT_JWKS_COOLDOWN_S") {
        None => JwksSettings::default().cooldown,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                invalid(
                    "CERTBOUND_JWT_JWKS_COOLDOWN_S",
                    format!("{v:?} is not a whole number of seconds in 1..=3600"),
                )
            })?,
    };
    Ok(JwtConfig {
        issuer,
        jwks,
        profile,
        audiences,
        client_ids,
        algorithms,
        context_claims: env.list("CERTBOUND_JWT_CONTEXT_CLAIMS"),
        jwks_settings: JwksSettings {
            cooldown,
            ..JwksSettings::default()
        },
    })
}

fn rfc7662(env: &Env<'_>) -> Result<Rfc7662Config, ConfigError> {
    Ok(Rfc7662Config {
        endpoint: env.url("CERTBOUND_INTROSPECTION_ENDPOINT")?,
        client_id: env.require("CERTBOUND_INTROSPECTION_CLIENT_ID")?,
        client_secret: secret(env, "CERTBOUND_INTROSPECTION_CLIENT_SECRET")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Env::from_map(&map);
        Config::from_env(&env)
    }

    const V2: [(&str, &str); 3] = [
        ("AUTHLETE_BASE_URL", "https://api.authlete.com"),
        ("AUTHLETE_SERVICE_APIKEY", "123"),
        ("AUTHLETE_SERVICE_APISECRET", "s3cr3t"),
    ];

    #[test]
    fn defaults() {
        let c = cfg(&V2).unwrap();
        assert!(c.settings.policy);
        assert!(!c.settings.context_debug);
        assert_eq!(c.http.connect_timeout, Duration::from_millis(1000));
        assert_eq!(c.http.timeout, Duration::from_millis(3000));
        assert_eq!(c.http_api_response, HttpApiResponse::Policy);
        assert_eq!(c.serve.cert_header, "x-ssl-cert");
        assert_eq!(c.serve.proxy, ProxyKind::Nginx);
        assert_eq!(c.serve.cert_format, CertFormat::Nginx);
        assert_eq!(c.settings.validation, Validation::default());
        assert_eq!(c.settings.validation.binding, BindingPolicy::Certificate);
        let bad = cfg(&[&V2[..], &[("CERTBOUND_CERT_HEADER", "x ssl")]].concat());
        assert!(bad
            .unwrap_err()
            .to_string()
            .starts_with("CERTBOUND_CERT_HEADER is invalid"));
        assert!(matches!(c.backend, BackendConfig::Authlete(ref a) if a.version == ApiVersion::V2));
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "AUTHLETE_BASE_URL is not set"),
            (
                vec![("AUTHLETE_BASE_URL", "https://x")],
                "AUTHLETE_SERVICE_APIKEY is not set",
            ),
            (V2[..2].to_vec(), "AUTHLETE_SERVICE_APISECRET is not set"),
            (
                [&V2[..], &[("AUTHLETE_API_VERSION", "v4")]].concat(),
                "AUTHLETE_API_VERSION is invalid",
            ),
            (
                [&V2[..2], &[("AUTHLETE_API_VERSION", "v3")]].concat(),
                "AUTHLETE_SERVICE_ACCESSTOKEN is not set",
            ),
            (
                [&V2[..], &[("CERTBOUND_POLICY", "maybe")]].concat(),
                "CERTBOUND_POLICY is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_TIMEOUT_MS", "0")]].concat(),
                "CERTBOUND_TIMEOUT_MS is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_CONNECT_TIMEOUT_MS", "1s")]].concat(),
                "CERTBOUND_CONNECT_TIMEOUT_MS is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_BACKEND", "ldap")]].concat(),
                "CERTBOUND_BACKEND is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_HTTP_API_RESPONSE", "x")]].concat(),
                "CERTBOUND_HTTP_API_RESPONSE is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_SCOPE_RULES", "/nonexistent.toml")]].concat(),
                "CERTBOUND_SCOPE_RULES is invalid",
            ),
            (
                [
                    &V2[..],
                    &[("CERTBOUND_SCOPE_RULES_INLINE", "[[rule]]\nmethod=1")],
                ]
                .concat(),
                "CERTBOUND_SCOPE_RULES_INLINE is invalid",
            ),
            (
                vec![
                    ("AUTHLETE_BASE_URL", "http://authlete.example.com"),
                    ("AUTHLETE_SERVICE_APIKEY", "1"),
                    ("AUTHLETE_SERVICE_APISECRET", "2"),
                ],
                "AUTHLETE_BASE_URL is invalid",
            ),
            (
                vec![("AUTHLETE_BASE_URL", "not a url")],
                "AUTHLETE_BASE_URL is invalid",
            ),
            (
                vec![("CERTBOUND_BACKEND", "rfc7662")],
                "CERTBOUND_INTROSPECTION_ENDPOINT is not set",
            ),
            (
                [&V2[..], &[("CERTBOUND_REQUIRE_BINDING", "sometimes")]].concat(),
                "CERTBOUND_REQUIRE_BINDING is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_LEEWAY_S", "3600")]].concat(),
                "CERTBOUND_LEEWAY_S is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_SCOPE_DEFAULT", "allow")]].concat(),
                "CERTBOUND_SCOPE_DEFAULT is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_PROXY", "haproxy")]].concat(),
                "CERTBOUND_PROXY is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_CERT_FORMAT", "der")]].concat(),
                "CERTBOUND_CERT_FORMAT is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_CERT_FORMAT", "pem")]].concat(),
                "CERTBOUND_CERT_FORMAT is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_PROXY", "envoy")]].concat(),
                "CERTBOUND_PATH_PREFIX is not set",
            ),
            (
                [
                    &V2[..],
                    &[("CERTBOUND_PROXY", "envoy"), ("CERTBOUND_PATH_PREFIX", "/")],
                ]
                .concat(),
                "CERTBOUND_PATH_PREFIX is invalid",
            ),
            (
                [
                    &V2[..],
                    &[
                        ("CERTBOUND_PROXY", "envoy"),
                        ("CERTBOUND_PATH_PREFIX", "/health"),
                    ],
                ]
                .concat(),
                "CERTBOUND_PATH_PREFIX is invalid",
            ),
            (
                [&V2[..], &[("CERTBOUND_PATH_PREFIX", "/authz")]].concat(),
                "CERTBOUND_PATH_PREFIX is invalid",
            ),
            (
                vec![
                    ("CERTBOUND_BACKEND", "RFC7662"),
                    ("CERTBOUND_INTROSPECTION_ENDPOINT", "https://as/introspect"),
                    ("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs"),
                ],
                "CERTBOUND_INTROSPECTION_CLIENT_SECRET is not set",
            ),
        ];
        for (pairs, expected) in cases {
            let err = cfg(&pairs).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{pairs:?}: got {err:?}, want {expected:?}"
            );
            assert!(!err.contains("s3cr3t"), "secret leaked: {err}");
        }
    }

    #[test]
    fn v3_any_case_and_loopback_http() {
        let c = cfg(&[
            ("AUTHLETE_BASE_URL", "http://127.0.0.1:9999"),
            ("AUTHLETE_API_VERSION", "v3"),
            ("AUTHLETE_SERVICE_APIKEY", "svc"),
            ("AUTHLETE_SERVICE_ACCESSTOKEN", "tok"),
            ("CERTBOUND_POLICY", "FALSE"),
            ("CERTBOUND_HTTP_API_RESPONSE", "Simple"),
        ])
        .unwrap();
        assert!(matches!(c.backend, BackendConfig::Authlete(ref a) if a.version == ApiVersion::V3));
        assert!(!c.settings.policy);
        assert_eq!(c.http_api_response, HttpApiResponse::Simple);
    }

    #[test]
    fn serve_and_validation_settings() {
        let c = cfg(&[
            &V2[..],
            &[
                ("CERTBOUND_PROXY", "Envoy"),
                ("CERTBOUND_PATH_PREFIX", "/ext_authz"),
                ("CERTBOUND_REQUIRE_BINDING", "certificate-or-dpop"),
                ("CERTBOUND_LEEWAY_S", "0"),
                ("CERTBOUND_SCOPE_DEFAULT", "DENY"),
            ],
        ]
        .concat())
        .unwrap();
        assert_eq!(c.serve.proxy, ProxyKind::Envoy);
        assert_eq!(c.serve.cert_format, CertFormat::Xfcc);
        assert_eq!(c.serve.cert_header, "x-forwarded-client-cert");
        assert_eq!(c.serve.path_prefix.as_deref(), Some("/ext_authz"));
        assert_eq!(
            c.settings.validation,
            Validation {
                binding: BindingPolicy::CertificateOrDpop,
                leeway_s: 0,
                scope_default: ScopeDefault::Deny
            }
        );
        let c = cfg(&[
            &V2[..],
            &[
                ("CERTBOUND_PROXY", "traefik"),
                ("CERTBOUND_CERT_FORMAT", "rfc9440"),
                ("CERTBOUND_REQUIRE_BINDING", "false"),
            ],
        ]
        .concat())
        .unwrap();
        assert_eq!(c.serve.cert_header, "client-cert");
        assert_eq!(c.settings.validation.binding, BindingPolicy::Off);
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "Debug redacts secrets"
        );
    }
}
